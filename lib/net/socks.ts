// SOCKS5 front-end (RFC 1928), no authentication, CONNECT only, with domain names, IPv4 and IPv6.
// The parser is a pair of pure functions over the bytes received so far, so partial reads and
// garbage are handled in one place: 'need-more' until a message is complete, a refusal with the
// proper reply code otherwise. SOCKS4/4a is refused with its own reply format (0x5B, "request
// rejected"), and BIND / UDP ASSOCIATE with 0x07 "command not supported".
import type { Socket } from 'node:net';
import type { Connector, Decision } from './connector';
import { formatIp, parseIp } from './ip';

export const SOCKS_REPLY = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;

/** SOCKS4 "request rejected or failed" reply: VN=0, CD=0x5B, then 6 ignored bytes. */
export const SOCKS4_REJECT = Buffer.from([0x00, 0x5b, 0, 0, 0, 0, 0, 0]);
/** SOCKS5 "no acceptable methods". */
export const SOCKS5_NO_METHOD = Buffer.from([0x05, 0xff]);

export type GreetingResult =
  | { kind: 'need-more' }
  | { kind: 'socks4' }
  | { kind: 'invalid'; reason: string }
  | { kind: 'greeting'; noAuth: boolean; length: number };

export function parseGreeting(buf: Buffer): GreetingResult {
  if (buf.length === 0) return { kind: 'need-more' };
  if (buf[0] === 0x04) return { kind: 'socks4' };
  if (buf[0] !== 0x05) return { kind: 'invalid', reason: `not SOCKS5 (first byte 0x${buf[0].toString(16)})` };
  if (buf.length < 2) return { kind: 'need-more' };
  const n = buf[1];
  if (n === 0) return { kind: 'invalid', reason: 'no authentication methods offered' };
  if (buf.length < 2 + n) return { kind: 'need-more' };
  return { kind: 'greeting', noAuth: buf.subarray(2, 2 + n).includes(0x00), length: 2 + n };
}

export type RequestResult =
  | { kind: 'need-more' }
  | { kind: 'error'; reply: number; reason: string }
  | { kind: 'connect'; host: string; port: number; length: number };

export function parseRequest(buf: Buffer): RequestResult {
  if (buf.length < 4) return { kind: 'need-more' };
  if (buf[0] !== 0x05) return { kind: 'error', reply: SOCKS_REPLY.GENERAL_FAILURE, reason: `bad request version 0x${buf[0].toString(16)}` };
  const cmd = buf[1];
  const atyp = buf[3];
  let host: string;
  let at: number;
  if (atyp === 0x01) {
    if (buf.length < 10) return { kind: 'need-more' };
    host = formatIp({ family: 4, bytes: buf.subarray(4, 8) });
    at = 8;
  } else if (atyp === 0x04) {
    if (buf.length < 22) return { kind: 'need-more' };
    host = formatIp({ family: 6, bytes: buf.subarray(4, 20) });
    at = 20;
  } else if (atyp === 0x03) {
    if (buf.length < 5) return { kind: 'need-more' };
    const len = buf[4];
    if (len === 0) return { kind: 'error', reply: SOCKS_REPLY.GENERAL_FAILURE, reason: 'empty domain name' };
    if (buf.length < 5 + len + 2) return { kind: 'need-more' };
    // latin1 keeps every byte (NUL included) visible to hostname validation, which refuses it.
    host = buf.subarray(5, 5 + len).toString('latin1');
    at = 5 + len;
  } else {
    return { kind: 'error', reply: SOCKS_REPLY.ADDRESS_TYPE_NOT_SUPPORTED, reason: `address type 0x${atyp.toString(16)} not supported` };
  }
  if (cmd !== 0x01) {
    const name = cmd === 0x02 ? 'BIND' : cmd === 0x03 ? 'UDP ASSOCIATE' : `0x${cmd.toString(16)}`;
    return { kind: 'error', reply: SOCKS_REPLY.COMMAND_NOT_SUPPORTED, reason: `command ${name} not supported` };
  }
  const port = buf.readUInt16BE(at);
  if (port === 0) return { kind: 'error', reply: SOCKS_REPLY.GENERAL_FAILURE, reason: 'port 0' };
  return { kind: 'connect', host, port, length: at + 2 };
}

/** A SOCKS5 reply; BND.ADDR is the upstream's local address when known, else 0.0.0.0:0. */
export function socksReply(code: number, bound?: { address?: string; port?: number }): Buffer {
  const ip = bound?.address ? parseIp(bound.address) : null;
  const out = Buffer.alloc(ip?.family === 6 ? 22 : 10);
  out.set([0x05, code, 0x00, ip?.family === 6 ? 0x04 : 0x01]);
  if (ip) out.set(ip.bytes, 4);
  out.writeUInt16BE(bound?.port ?? 0, out.length - 2);
  return out;
}

function replyForError(code: string | undefined): number {
  switch (code) {
    case 'ECONNREFUSED':
      return SOCKS_REPLY.CONNECTION_REFUSED;
    case 'ENETUNREACH':
      return SOCKS_REPLY.NETWORK_UNREACHABLE;
    case 'EHOSTUNREACH':
      return SOCKS_REPLY.HOST_UNREACHABLE;
    case 'ETIMEDOUT':
      return SOCKS_REPLY.TTL_EXPIRED;
    default:
      return SOCKS_REPLY.GENERAL_FAILURE;
  }
}

/** Serves one accepted SOCKS client connection. */
export function serveSocksConnection(connector: Connector, socket: Socket): void {
  const started = Date.now();
  let buf: Buffer = Buffer.alloc(0);
  let stage: 'greeting' | 'request' | 'busy' = 'greeting';
  socket.on('error', () => {});
  // The handshake must complete within headersTimeout; afterwards the tunnel's idle timeout rules.
  const deadline = setTimeout(() => socket.destroy(), connector.limits.headersTimeout);
  deadline.unref();
  socket.once('close', () => clearTimeout(deadline));
  const refuse = (reply: Buffer, rule: string, host = '', port = 0): void => {
    clearTimeout(deadline);
    connector.audit({ via: 'socks', host, port, decision: 'deny', rule, durationMs: Date.now() - started });
    socket.end(reply);
    socket.removeListener('data', onData);
  };
  const onData = connector.fenced(socket, 'socks', (chunk: Buffer): void => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    if (buf.length > 1024) {
      refuse(socksReply(SOCKS_REPLY.GENERAL_FAILURE), 'socks: handshake too long');
      return;
    }
    if (stage === 'greeting') {
      const g = parseGreeting(buf);
      if (g.kind === 'need-more') return;
      if (g.kind === 'socks4') {
        refuse(SOCKS4_REJECT, 'socks: SOCKS4 is not supported (use SOCKS5)');
        return;
      }
      if (g.kind === 'invalid') {
        clearTimeout(deadline);
        connector.audit({ via: 'socks', host: '', port: 0, decision: 'deny', rule: `socks: ${g.reason}`, durationMs: 0 });
        socket.removeListener('data', onData);
        socket.destroy();
        return;
      }
      if (!g.noAuth) {
        refuse(SOCKS5_NO_METHOD, 'socks: client offered no "no authentication" method');
        return;
      }
      socket.write(Buffer.from([0x05, 0x00]));
      buf = buf.subarray(g.length);
      stage = 'request';
    }
    if (stage === 'request') {
      const r = parseRequest(buf);
      if (r.kind === 'need-more') return;
      if (r.kind === 'error') {
        refuse(socksReply(r.reply), `socks: ${r.reason}`);
        return;
      }
      stage = 'busy';
      socket.removeListener('data', onData);
      socket.pause();
      clearTimeout(deadline);
      connector.fence(connect(r.host, r.port, buf.subarray(r.length)), socket, 'socks');
    }
  });
  const connect = async (host: string, port: number, head: Buffer): Promise<void> => {
    const d: Decision = await connector.decide(host, port);
    if (!d.allowed) {
      connector.auditDenied('socks', d, started);
      socket.end(socksReply(d.status === 403 ? SOCKS_REPLY.NOT_ALLOWED : SOCKS_REPLY.HOST_UNREACHABLE));
      return;
    }
    await connector.forward('socks', socket, d, head, started, {
      inspect: true,
      ready: (upstream) => {
        socket.write(
          socksReply(SOCKS_REPLY.SUCCEEDED, upstream ? { address: upstream.localAddress, port: upstream.localPort } : undefined),
        );
        socket.resume();
      },
      failed: (err) => socket.end(socksReply(replyForError((err as NodeJS.ErrnoException).code))),
    });
  };
  socket.on('data', onData);
}
