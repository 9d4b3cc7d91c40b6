// The egress plan of one sandbox: which sockets its child binds inside its network namespace,
// and the environment that points cooperative clients at them. Kept apart from the attachment
// that serves them (./sandbox.ts), which loads node:net, node:http and the proxy (~12 ms of a
// start): the plan is made before the spawn, the attachment after it, while the sandbox starts.
import type { NativeListener } from '../native';
import type { EgressOptions } from '../options';
import { Allowlist } from './allowlist';
import { proxyEnv } from './env';

export type Role = 'http' | 'socks' | 'dns-udp' | 'dns-tcp' | 'transparent';

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
