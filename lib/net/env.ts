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
}

/** The variables to add to the sandbox's environment. */
export function proxyEnv(port: number, opts: ProxyEnvOptions = {}): Record<string, string> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError(`invalid proxy port: ${port}`);
  const http = `http://127.0.0.1:${port}`;
  const all = opts.socksPort ? `socks5h://127.0.0.1:${opts.socksPort}` : http;
  const noProxy = 'localhost,127.0.0.1,::1';
  const preload = opts.preloadPath ?? PRELOAD_PATH;
  if (/\s|"/.test(preload)) throw new TypeError(`preload path must not contain spaces or quotes: ${preload}`);
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
    NODE_OPTIONS: [opts.nodeOptions, `--require=${preload}`].filter(Boolean).join(' '),
  };
}
