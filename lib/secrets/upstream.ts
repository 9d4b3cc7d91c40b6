// The upstream side of credential injection: one verified TLS context for upstream servers
// (system and Node roots plus --upstream-ca), a keep-alive HTTP/1.1 agent, and one shared
// HTTP/2 session per target (or the note that the target only speaks HTTP/1.1).
import * as http2 from 'node:http2';
import * as https from 'node:https';
import { isIP } from 'node:net';
import * as tls from 'node:tls';
import type { InterceptTarget } from './rewrite';

/** An upstream failure with the status the sandbox gets (502, 504) and an error kind. */
export class UpstreamError extends Error {
  constructor(
    readonly status: number,
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

export function targetKey(t: InterceptTarget): string {
  return `${t.host.toLowerCase()}\0${t.port}\0${t.address}`;
}

export class UpstreamPool {
  // maxTotalSockets: a sandbox's requests may not open upstream connections without end (each
  // is an fd of the launcher); those past it wait for a free socket (see INTERCEPT_LIMITS).
  readonly agent = new https.Agent({ keepAlive: true, maxFreeSockets: 16, maxTotalSockets: 256, scheduling: 'lifo' });
  private readonly sessions = new Map<string, Promise<http2.ClientHttp2Session | null>>();
  private readonly h1Only = new Set<string>();

  constructor(
    private readonly upstreamContext: tls.SecureContext,
    private readonly upstreamTimeout: number,
    private readonly onSessionError: (target: InterceptTarget, err: Error) => void,
  ) {}

  /** Whether the target answered ALPN with HTTP/1.1 only before. */
  isH1Only(target: InterceptTarget): boolean {
    return this.h1Only.has(targetKey(target));
  }

  tlsOptions(target: InterceptTarget): tls.ConnectionOptions {
    return {
      host: target.address,
      port: target.connectPort ?? target.port,
      // SNI must be a name; for an IP target none is sent and the certificate is checked for the IP.
      servername: isIP(target.host) ? undefined : target.host,
      secureContext: this.upstreamContext,
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(target.host, cert),
    };
  }

  /** An upstream HTTP/2 session per target, or null when the upstream only speaks HTTP/1.1. */
  sessionFor(target: InterceptTarget): Promise<http2.ClientHttp2Session | null> {
    const key = targetKey(target);
    const cached = this.sessions.get(key);
    if (cached) {
      // A session that got GOAWAY or died between requests must not take the next request with it.
      const alive = cached.then((s) => (s === null || (!s.closed && !s.destroyed) ? s : undefined));
      return alive.then((s) => {
        if (s !== undefined) return s;
        if (this.sessions.get(key) === cached) this.sessions.delete(key);
        return this.sessionFor(target);
      });
    }
    const p = new Promise<http2.ClientHttp2Session | null>((resolve, reject) => {
      const socket = tls.connect({ ...this.tlsOptions(target), ALPNProtocols: ['h2', 'http/1.1'] });
      const timer = setTimeout(
        () => socket.destroy(new UpstreamError(504, 'upstream-timeout', `stockade: TLS to ${target.host} timed out`)),
        this.upstreamTimeout,
      );
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        if (socket.alpnProtocol !== 'h2') {
          // Remember, so HTTP/2 clients of this target go straight to the HTTP/1.1 pool next time.
          this.h1Only.add(key);
          socket.destroy();
          resolve(null);
          return;
        }
        const session = http2.connect(`https://${target.host}:${target.port}`, { createConnection: () => socket });
        session.on('error', (err) => this.onSessionError(target, err));
        const drop = () => {
          if (this.sessions.get(key) === p) this.sessions.delete(key);
        };
        session.on('close', drop);
        session.on('goaway', drop);
        resolve(session);
      });
    });
    p.catch(() => this.sessions.delete(key));
    this.sessions.set(key, p);
    return p;
  }

  /** Destroys every session and pooled socket. */
  async close(): Promise<void> {
    const sessions = await Promise.all([...this.sessions.values()].map((p) => p.catch(() => null)));
    for (const s of sessions) s?.destroy();
    this.sessions.clear();
    this.agent.destroy();
  }
}
