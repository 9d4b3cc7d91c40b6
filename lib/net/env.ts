// Environment for a sandbox whose explicit proxy listens on 127.0.0.1:PORT (inside its netns).
//
// Node's fetch and proxy variables, as checked on this host (Node v20.20.2, bundled undici
// 6.24.1): Node 20 ignores NODE_USE_ENV_PROXY; fetch() to a name goes straight to getaddrinfo.
// Its bundled undici does contain EnvHttpProxyAgent, but only behind --expose-internals, which
// NODE_OPTIONS refuses. NODE_USE_ENV_PROXY=1 is honoured by fetch from Node 24.0 / 22.21 on
// (and by node:http(s) agents from 24.5), so it is set for those, and for older versions the
// preload (preload.ts, compiled next to this file) installs a proxy dispatcher itself: a
// CONNECT-tunnelling Agent built from the bundled undici's own Agent class. Programs that ignore
// all of this are still caught by transparent interception.
import { join } from 'node:path';
import { libDir } from '../location';

export const PRELOAD_PATH = join(libDir, 'net', 'preload.js');

export interface ProxyEnvOptions {
  /** Path of the preload as seen inside the sandbox (default: PRELOAD_PATH, bound read-only). */
  preloadPath?: string;
  /** The sandbox's existing NODE_OPTIONS, to which --require is appended. */
  nodeOptions?: string;
  /** SOCKS5 port, if one is served; ALL_PROXY then points at it (socks5h: names resolved by us). */
  socksPort?: number;
  /**
   * A CA bundle (path inside) node must trust, with credential injection's per-run CA in it. node
   * is told with --use-openssl-ca (its roots are then OpenSSL's store: SSL_CERT_FILE, set by
   * sandboxTrustEnv, loaded at the first TLS handshake), not NODE_EXTRA_CA_CERTS: node 20 reads
   * that file and builds its whole root store when it starts, whether it makes a TLS connection or
   * not, which cost every node process in the sandbox 40 ms (one certificate) to 80 ms (the host's
   * bundle) on the development VM (`perf stat node -e 0`: 30 → 110 ms of CPU). Where the
   * sandbox's own NODE_OPTIONS asks for --use-bundled-ca (node refuses both flags), it is
   * NODE_EXTRA_CA_CERTS after all.
   */
  trustStore?: string;
}

/** The variables to add to the sandbox's environment. */
export function proxyEnv(port: number, opts: ProxyEnvOptions = {}): Record<string, string> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError(`invalid proxy port: ${port}`);
  const http = `http://127.0.0.1:${port}`;
  const all = opts.socksPort ? `socks5h://127.0.0.1:${opts.socksPort}` : http;
  const noProxy = 'localhost,127.0.0.1,::1';
  const preload = opts.preloadPath ?? PRELOAD_PATH;
  if (/\s|"/.test(preload)) throw new TypeError(`preload path must not contain spaces or quotes: ${preload}`);
  const nodeOptions = [opts.nodeOptions, `--require=${preload}`];
  const trust: Record<string, string> = {};
  if (opts.trustStore !== undefined) {
    const given = opts.nodeOptions?.split(/\s+/) ?? [];
    if (given.includes('--use-bundled-ca')) trust.NODE_EXTRA_CA_CERTS = opts.trustStore;
    else if (!given.includes('--use-openssl-ca')) nodeOptions.push('--use-openssl-ca');
  }
  return {
    HTTP_PROXY: http,
    http_proxy: http,
    HTTPS_PROXY: http,
    https_proxy: http,
    ALL_PROXY: all,
    all_proxy: all,
    NO_PROXY: noProxy,
    no_proxy: noProxy,
    NODE_USE_ENV_PROXY: '1',
    NODE_OPTIONS: nodeOptions.filter(Boolean).join(' '),
    ...trust,
  };
}
