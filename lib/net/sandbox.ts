// Egress for one sandbox: which sockets the child binds inside its network namespace (the plan),
// and serving them from this process once their fds have been handed up (the attachment).
//
// Inside the sandbox's netns:
//   127.0.0.1:HTTP   the explicit HTTP proxy (HTTP_PROXY/HTTPS_PROXY point here)
//   127.0.0.1:SOCKS  SOCKS5 (ALL_PROXY=socks5h://...)
//   127.0.0.1:53     DNS over UDP (served natively: Node's dgram cannot adopt an fd) and TCP
//   0.0.0.0:P, [::]:P  transparent listeners for 80, 443 and every port the allowlist names;
//                    with `local 0.0.0.0/0 dev lo` (and ::/0) every address is local, so a
//                    connect() to any address on P lands here, and the accepted socket's local
//                    address is the original destination.
// Nothing else listens, so any other port is refused at once, and no packet leaves the netns.
import * as net from 'node:net';
import type { Logger } from 'pino';
import { type NativeListener, type NativeUdpEndpoint, native } from '../native';
import type { EgressOptions } from '../options';
import { Allowlist } from './allowlist';
import { proxyEnv } from './env';
import { EgressProxy, type EgressProxyExtras } from './proxy';

type Role = 'http' | 'socks' | 'dns-udp' | 'dns-tcp' | 'transparent';

export interface EgressPlan {
  listeners: NativeListener[];
  roles: Role[];
  httpPort: number;
  socksPort: number;
  /** Ports the transparent listeners cover. */
  transparentPorts: number[];
  /** resolv.conf for the sandbox: the DNS responder. */
  resolvConf: string;
}

const LOOPBACK = Buffer.from([127, 0, 0, 1]);
const ANY4 = Buffer.alloc(4);
const ANY6 = Buffer.alloc(16);

/**
 * The addon takes at most 64 listeners (native/plan.h kMaxListeners): four are the proxy's own
 * (HTTP, SOCKS, DNS over UDP and TCP), and each transparent port takes two (IPv4 and IPv6).
 */
const MAX_LISTENERS = 64;
export const MAX_TRANSPARENT_PORTS = (MAX_LISTENERS - 4) / 2;

/** Validates the egress options (TypeError naming the bad entry) and lays out the listeners. */
export function planEgress(options: EgressOptions): EgressPlan {
  const allowlist = new Allowlist(options.allow);
  const ports = new Set([80, 443]);
  for (const entry of allowlist.entries) if (entry.ports !== 'any') for (const p of entry.ports) ports.add(p);
  ports.delete(53);
  // The proxy's own ports must not collide with a transparent port.
  const pick = (candidates: number[]) => candidates.find((p) => !ports.has(p)) ?? 0;
  const httpPort = pick([3128, 8118, 39128, 49128]);
  const socksPort = pick([1080, 39080, 49080]);
  const listeners: NativeListener[] = [];
  const roles: Role[] = [];
  const add = (role: Role, type: 'tcp' | 'udp', address: Buffer, port: number) => {
    listeners.push({ type, address, port });
    roles.push(role);
  };
  add('http', 'tcp', LOOPBACK, httpPort);
  add('socks', 'tcp', LOOPBACK, socksPort);
  add('dns-udp', 'udp', LOOPBACK, 53);
  add('dns-tcp', 'tcp', LOOPBACK, 53);
  const transparentPorts = [...ports].sort((a, b) => a - b);
  if (transparentPorts.length > MAX_TRANSPARENT_PORTS) {
    throw new TypeError(
      `the allowlist names ${transparentPorts.length} ports (80 and 443 included); at most ${MAX_TRANSPARENT_PORTS} distinct ports are supported (use ':*' for every port)`,
    );
  }
  for (const port of transparentPorts) {
    add('transparent', 'tcp', ANY4, port);
    add('transparent', 'tcp', ANY6, port);
  }
  return { listeners, roles, httpPort, socksPort, transparentPorts, resolvConf: 'nameserver 127.0.0.1\noptions edns0\n' };
}

/**
 * Where the fetch preload is bound inside: a fixed path, so the sandbox does not learn where
 * stockade is installed on the host (a home directory names its user).
 */
export const PRELOAD_INSIDE = '/etc/stockade/proxy-preload.js';

/**
 * The environment cooperative clients use to find the proxy; `trustStore`, the CA bundle node must
 * trust when credentials are injected (ProxyEnvOptions.trustStore).
 */
export function egressEnv(plan: EgressPlan, nodeOptions?: string, trustStore?: string): Record<string, string> {
  return proxyEnv(plan.httpPort, { socksPort: plan.socksPort, nodeOptions, preloadPath: PRELOAD_INSIDE, trustStore });
}

/** Serves one sandbox's injected listeners through an EgressProxy; close() frees everything. */
export class EgressAttachment {
  readonly proxy: EgressProxy;
  private readonly servers: net.Server[] = [];
  private readonly udp: NativeUdpEndpoint[] = [];

  /**
   * `fds` are the sandbox's listeners, still owned by its native handle: each is adopted
   * (`adopt(i)`) in the statement right after the one that wraps it, so that whatever stops this
   * code half way (a Worker's terminate() interrupts any JavaScript) loses no fd: the handle
   * closes the ones not adopted (native/addon.cc, Sandbox::AdoptListener).
   */
  constructor(
    options: EgressOptions,
    plan: EgressPlan,
    fds: number[],
    adopt: (index: number) => void,
    sandbox: string,
    logger?: Logger,
    extras?: EgressProxyExtras,
  ) {
    this.proxy = new EgressProxy(options, sandbox, logger, extras);
    const { UdpEndpoint } = native();
    plan.roles.forEach((role, i) => {
      const fd = fds[i];
      if (role === 'dns-udp') {
        const endpoint: NativeUdpEndpoint = new UdpEndpoint(fd, (msg, peer) => {
          const answer = this.proxy.handleDnsQuery(msg);
          if (answer) endpoint.send(answer, peer);
        });
        adopt(i);
        this.udp.push(endpoint);
        return;
      }
      const server = net.createServer();
      server.listen({ fd });
      adopt(i);
      this.servers.push(server);
      if (role === 'http') this.proxy.serveHttpProxy(server);
      else if (role === 'socks') this.proxy.serveSocks(server);
      else if (role === 'dns-tcp') this.proxy.serveDnsTcp(server);
      else this.proxy.serveTransparent(server);
    });
  }

  ref(): void {
    for (const s of this.servers) s.ref();
  }

  unref(): void {
    for (const s of this.servers) s.unref();
  }

  async close(): Promise<void> {
    for (const u of this.udp) u.close();
    this.udp.length = 0;
    await this.proxy.close();
  }
}
