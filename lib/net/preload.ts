// Loaded inside the sandbox with NODE_OPTIONS=--require=<this file> (see env.ts for why).
// Makes fetch() honour HTTP(S)_PROXY/NO_PROXY on Node versions that ignore NODE_USE_ENV_PROXY.
// Must never throw or print: it runs before the sandboxed program, whose stdio may be MCP.
// Plain CommonJS with only node: built-ins, because nothing else can be assumed inside.
// node:net and node:tls are loaded at the first connection: node:tls alone is ~7 ms of CPU, paid
// by every node process in the sandbox if loaded here.
import type { Socket } from 'node:net';

const netConnect = (o: import('node:net').NetConnectOpts): Socket => (require('node:net') as typeof import('node:net')).connect(o);
const tlsConnect = (o: import('node:tls').ConnectionOptions): Socket => (require('node:tls') as typeof import('node:tls')).connect(o);

const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

function nativeEnvProxy(): boolean {
  const [major, minor] = process.versions.node.split('.').map(Number);
  return major >= 24 || (major === 22 && minor >= 21);
}

function proxyFor(protocol: string): URL | undefined {
  const env = process.env;
  const raw = protocol === 'https:' ? (env.https_proxy ?? env.HTTPS_PROXY) : (env.http_proxy ?? env.HTTP_PROXY);
  try {
    return raw ? new URL(raw) : undefined;
  } catch {
    return undefined;
  }
}

function bypass(hostname: string): boolean {
  const list = (process.env.no_proxy ?? process.env.NO_PROXY ?? '').split(',').map((s) => s.trim().toLowerCase());
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return list.some((e) => e === '*' || (e !== '' && (h === e.replace(/^\./, '') || h.endsWith(e.startsWith('.') ? e : `.${e}`))));
}

type ConnectOpts = { protocol: string; hostname: string; port: string | number; servername?: string | null };
type ConnectCb = (err: Error | null, socket?: Socket) => void;

/** undici connector: every origin (http and https) through a CONNECT tunnel, then TLS if https. */
function tunnelConnect(opts: ConnectOpts, cb: ConnectCb): void {
  const https = opts.protocol === 'https:';
  const port = Number(opts.port) || (https ? 443 : 80);
  const host = opts.hostname;
  const servername = opts.servername || host.replace(/^\[|\]$/g, '');
  const proxy = proxyFor(opts.protocol);
  let done = false;
  const finish = (err: Error | null, s?: Socket): void => {
    if (done) return;
    done = true;
    cb(err, s);
  };
  const secure = (raw: Socket): void => {
    if (!https) {
      finish(null, raw);
      return;
    }
    const t = tlsConnect({ socket: raw, servername, ALPNProtocols: ['http/1.1'] });
    t.once('secureConnect', () => finish(null, t));
    t.once('error', (e) => finish(e));
  };
  if (!proxy || bypass(host)) {
    const raw = netConnect({ host: host.replace(/^\[|\]$/g, ''), port });
    raw.once('connect', () => secure(raw));
    raw.once('error', (e) => finish(e));
    return;
  }
  const raw = netConnect({ host: proxy.hostname.replace(/^\[|\]$/g, ''), port: Number(proxy.port) || 80 });
  raw.once('error', (e) => finish(e));
  raw.once('connect', () => raw.write(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`));
  let head: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (head.length > 65536) finish(new Error('proxy response head too large'));
      return;
    }
    const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
    if (!/^HTTP\/1\.[01] 200/.test(status)) {
      // Wait briefly for the denial body: it names the rule, which is what the user needs to see.
      raw.removeListener('data', onData);
      const rest = [head.subarray(end + 4)];
      raw.on('data', (c: Buffer) => rest.push(c));
      const fail = (): void => {
        raw.destroy();
        finish(new Error(`proxy refused CONNECT ${host}:${port}: ${status} ${Buffer.concat(rest).toString('utf8').trim()}`));
      };
      raw.once('end', fail);
      setTimeout(fail, 200).unref();
      return;
    }
    raw.removeListener('data', onData);
    const extra = head.subarray(end + 4);
    if (extra.length > 0) raw.unshift(extra);
    secure(raw);
  };
  raw.on('data', onData);
}

function install(): void {
  if (nativeEnvProxy() || typeof globalThis.fetch !== 'function') return;
  if (!proxyFor('http:') && !proxyFor('https:')) return;
  // Node's bundled undici, always: a program's own undici (another major version) may not fit
  // the dispatcher interface of the fetch built into this Node, and its EnvHttpProxyAgent prints
  // an experimental warning on stderr. The bundled Agent class is reachable through the default
  // global dispatcher, which a fetch() of a data: URL creates synchronously (checked on Node 20.20).
  // That first fetch() loads the bundled undici, ~50 ms of CPU on the development VM: done at the
  // program's first fetch(), not at the start of every node process in the sandbox (`perf stat
  // node -e 0`: 34 ms of CPU, 97 with the dispatcher made here at start).
  const builtin = globalThis.fetch;
  let installed = false;
  const ensure = (): void => {
    if (installed) return;
    installed = true;
    void builtin('data:,').catch(() => {});
    const current = (globalThis as Record<symbol, unknown>)[GLOBAL_DISPATCHER] as { constructor: new (o: object) => unknown } | undefined;
    if (!current) return;
    const Agent = current.constructor;
    (globalThis as Record<symbol, unknown>)[GLOBAL_DISPATCHER] = new Agent({ connect: tunnelConnect });
  };
  function fetch(input: Parameters<typeof builtin>[0], init: Parameters<typeof builtin>[1] = undefined): ReturnType<typeof builtin> {
    try {
      ensure();
    } catch {
      // As below: without the dispatcher, fetch() goes direct and transparent interception applies.
    }
    return builtin(input, init);
  }
  Object.defineProperty(globalThis, 'fetch', { value: fetch, writable: true, enumerable: true, configurable: true });
}

try {
  install();
} catch {
  // A broken preload must not break the program: transparent interception still applies.
}
