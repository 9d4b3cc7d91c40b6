// Transparent interception. Inside the sandbox's netns, `ip route add local 0.0.0.0/0 dev lo`
// makes every address local, so a listener on port P accepts a connect() to ANY address on port
// P, and the accepted socket's local address/port (getsockname) is the original destination.
// The name comes from, in order: the DNS pool (the address was handed out for a name by our DNS
// responder), else the first bytes the client sends (TLS SNI, HTTP Host). An address the
// allowlist names explicitly (IP/CIDR entry) needs no name. With no name the connection is
// refused (closed at once), never guessed.
import type { Socket } from 'node:net';
import type { Connector, Decision } from './connector';
import { hostOfHeader } from './connector';
import type { DnsPool } from './dns';
import { canonicalIp } from './ip';
import { sniff } from './sniff';

export interface OriginalDestination {
  address: string;
  port: number;
}

/** getsockname() of the accepted socket; IPv4-mapped IPv6 (dual-stack listeners) unwrapped. */
export function originalDestination(socket: Socket): OriginalDestination | null {
  const raw = socket.localAddress;
  const port = socket.localPort;
  if (!raw || !port) return null;
  const address = canonicalIp(raw.startsWith('::ffff:') && raw.includes('.') ? raw.slice(7) : raw);
  return address ? { address, port } : null;
}

export function serveTransparentConnection(connector: Connector, pool: DnsPool, socket: Socket): void {
  const started = Date.now();
  socket.on('error', () => {});
  const dest = originalDestination(socket);
  const refuse = (host: string, port: number, rule: string): void => {
    connector.audit({ via: 'transparent', host, port, decision: 'deny', rule, durationMs: Date.now() - started });
    // resetAndDestroy() sends RST so the client sees ECONNRESET at once instead of an EOF it
    // might read as an empty response.
    socket.resetAndDestroy();
  };
  if (!dest) {
    refuse('', 0, 'transparent: original destination unknown');
    return;
  }

  const go = async (host: string, head: Buffer, inspect: boolean): Promise<void> => {
    const d: Decision = await connector.decide(host, dest.port);
    if (!d.allowed) {
      connector.auditDenied('transparent', d, started);
      socket.resetAndDestroy();
      return;
    }
    await connector.forward('transparent', socket, d, head, started, {
      inspect,
      ready: () => socket.resume(),
      failed: () => socket.resetAndDestroy(),
    });
  };

  const pooled = pool.nameFor(dest.address);
  if (pooled) {
    // The name is known from DNS: connect now (server-speaks-first protocols such as MySQL or
    // SMTP need that), and let splice() check any SNI/Host against it.
    connector.fence(go(pooled, Buffer.alloc(0), true), socket, 'transparent');
    return;
  }
  if (connector.opts.allowlist.namesAddress(dest.address, dest.port)) {
    connector.fence(go(dest.address, Buffer.alloc(0), false), socket, 'transparent');
    return;
  }
  // Otherwise the client must say who it wants before we connect anywhere.
  let pending: Buffer = Buffer.alloc(0);
  const deadline = setTimeout(
    () =>
      refuse(
        dest.address,
        dest.port,
        `transparent: no TLS SNI or HTTP Host within ${connector.limits.headersTimeout} ms for ${dest.address}:${dest.port}`,
      ),
    connector.limits.headersTimeout,
  );
  deadline.unref();
  socket.once('close', () => clearTimeout(deadline));
  const onData = connector.fenced(socket, 'transparent', (chunk: Buffer): void => {
    pending = Buffer.concat([pending, chunk]);
    const r = sniff(pending, connector.limits.maxHeaderSize);
    if (r.kind === 'need-more') return;
    socket.removeListener('data', onData);
    socket.pause();
    clearTimeout(deadline);
    if (r.kind === 'invalid') {
      refuse(dest.address, dest.port, `transparent: malformed ${r.protocol}: ${r.reason}`);
      return;
    }
    const name = r.kind === 'tls' ? r.host : r.kind === 'http' && r.host !== null ? hostOfHeader(r.host) : null;
    if (name === null) {
      refuse(dest.address, dest.port, `transparent: no name for ${dest.address}:${dest.port} (not from the DNS pool, no SNI or Host)`);
      return;
    }
    connector.fence(go(name, pending, false), socket, 'transparent');
  });
  socket.on('data', onData);
}
