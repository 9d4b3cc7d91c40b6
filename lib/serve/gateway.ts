// The HTTP face of `stockade serve`: each configured server at /mcp/NAME over MCP's streamable
// HTTP transport (the SDK's), plus /healthz, /metrics and the OAuth protected-resource metadata.
// Every request passes the same gate, in this order, each refusal cheap and before any sandbox
// exists: Host (on a loopback bind, against DNS rebinding) and Origin (the spec's MUST), then
// authentication, then the principal's rate limit, then the body (size-capped, parsed once,
// Mcp-Method/Mcp-Name headers checked against it), and only then a sandbox: an existing
// session's, or a new one for an initialize request.
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { splitAuthority } from '../net/hostname';
import { AuthError, Authenticator, type Principal } from './auth';
import type { ServeConfig } from './config';
import { CapacityError, TenantStartError, Tenants } from './tenants';

export interface GatewayOptions {
  logger?: Logger;
}

interface Bucket {
  tokens: number;
  at: number;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export class Gateway {
  readonly server: Server;
  readonly tenants: Tenants;
  private readonly trust: Record<string, import('./trust').ServerTrust>;
  private readonly auth: Authenticator;
  private readonly logger: Logger;
  private readonly buckets = new Map<string, Bucket>();
  private readonly counters = { requests: 0, toolCalls: 0, denials: new Map<string, number>() };

  constructor(
    private readonly config: ServeConfig,
    options: GatewayOptions = {},
  ) {
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.auth = new Authenticator(config.auth);
    const { ServerTrust } = require('./trust') as typeof import('./trust');
    this.trust = Object.fromEntries(
      Object.entries(config.servers).map(([name, policy]) => [
        name,
        new ServerTrust(name, policy, config.policyFiles?.[name], this.logger),
      ]),
    );
    this.tenants = new Tenants(
      config.servers,
      config.stateDir,
      config.secretsDir,
      config.limits,
      this.logger,
      {
        onToolCall: () => this.counters.toolCalls++,
        onDenial: (_t, kind) => this.deny(kind),
      },
      this.trust,
    );
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((err: Error) => {
        // Nothing a client sends may take the gateway down: the request fails, the rest go on.
        this.logger.error({ event: 'serve-request-error', error: err.message });
        if (!res.headersSent) this.reply(res, 500, { error: 'internal error' });
        else res.destroy();
      });
    };
    this.server = config.tls
      ? createHttpsServer({ cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) }, handler)
      : createHttpServer(handler);
    this.server.headersTimeout = 30_000;
    this.server.requestTimeout = 0; // SSE streams are long-lived; idle sandboxes are reaped instead.
  }

  /**
   * Listens once every server's package pin was checked (the install phase, ./trust.ts): a server
   * whose package does not match is withheld from sessions, the others are served.
   */
  async listen(): Promise<AddressInfo> {
    await Promise.all(Object.values(this.trust).map((t) => t.preparePackage()));
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.config.listen.port, this.config.listen.host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  async close(): Promise<void> {
    await this.tenants.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private deny(kind: string): void {
    this.counters.denials.set(kind, (this.counters.denials.get(kind) ?? 0) + 1);
  }

  private reply(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.counters.requests++;
    const url = new URL(req.url ?? '/', 'http://gateway');
    const path = url.pathname;
    if (!this.hostAllowed(req)) {
      this.deny('host');
      return this.reply(res, 421, { error: 'unexpected Host header' });
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !this.config.origins.includes(origin)) {
      this.deny('origin');
      this.logger.warn({ event: 'serve-origin-refused', origin });
      return this.reply(res, 403, { error: `Origin ${origin} is not allowed` });
    }
    if (req.method === 'GET' && path === '/healthz') return this.reply(res, 200, { status: 'ok', sandboxes: this.tenants.size });
    if (req.method === 'GET' && path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(this.metrics());
      return;
    }
    if (path === '/.well-known/oauth-protected-resource' || path.startsWith('/.well-known/oauth-protected-resource/')) {
      if (!this.config.auth.oauth) return this.reply(res, 404, { error: 'not found' });
      const suffix = path.slice('/.well-known/oauth-protected-resource'.length);
      return this.reply(res, 200, {
        resource: `${this.publicBase(req)}${suffix}`,
        authorization_servers: [this.config.auth.oauth.issuer],
        bearer_methods_supported: ['header'],
      });
    }
    const m = /^\/mcp\/([a-z0-9][a-z0-9_-]{0,62})$/.exec(path);
    if (!m || !(m[1] in this.config.servers)) return this.reply(res, 404, { error: 'no such server' });
    const server = m[1];

    let principal: Principal;
    try {
      principal = await this.auth.authenticate(req.headers.authorization);
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      this.deny('auth');
      this.logger.warn({ event: 'serve-auth-refused', server, reason: err.message });
      const params = [`error="${err.oauthError}"`, `error_description="${err.message}"`];
      if (this.config.auth.oauth) params.push(`resource_metadata="${this.publicBase(req)}/.well-known/oauth-protected-resource${path}"`);
      return this.reply(res, 401, { error: err.message }, { 'www-authenticate': `Bearer ${params.join(', ')}` });
    }
    if (!this.takeToken(principal.id)) {
      this.deny('rate');
      this.logger.warn({ event: 'serve-rate-limited', principal: principal.id, server });
      return this.reply(res, 429, { error: 'too many requests' }, { 'retry-after': '1' });
    }

    const sessionId = req.headers['mcp-session-id'];
    if (req.method === 'POST') {
      const body = await this.readBody(req, res);
      if (body === undefined) return;
      const mismatch = headerMismatch(req, body);
      if (mismatch) {
        this.deny('header');
        return this.reply(res, 400, { jsonrpc: '2.0', id: null, error: { code: -32600, message: mismatch } });
      }
      if (typeof sessionId === 'string') {
        const t = this.tenants.lookup(sessionId, principal, server);
        if (!t) return this.reply(res, 404, { jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } });
        return t.transport.handleRequest(req, res, body);
      }
      if ((body as { method?: unknown }).method !== 'initialize') {
        return this.reply(res, 400, {
          jsonrpc: '2.0',
          id: null,
          error: { code: -32000, message: 'Bad Request: no Mcp-Session-Id; start with initialize' },
        });
      }
      let t: ReturnType<Tenants['open']>;
      try {
        t = this.tenants.open(principal, server);
      } catch (err) {
        if (err instanceof TenantStartError) {
          this.deny(err.kind);
          this.logger.warn({ event: 'serve-session-refused', principal: principal.id, server, reason: err.detail });
          return this.reply(res, 403, { jsonrpc: '2.0', id: null, error: { code: -32000, message: err.message } });
        }
        if (!(err instanceof CapacityError)) throw err;
        this.deny(`capacity_${err.scope}`);
        this.logger.warn({ event: 'serve-capacity-refused', principal: principal.id, server, scope: err.scope });
        return this.reply(res, err.scope === 'principal' ? 429 : 503, {
          jsonrpc: '2.0',
          id: null,
          error: { code: -32000, message: err.message },
        });
      }
      await t.transport.handleRequest(req, res, body);
      // The transport refused the initialize (a bad version, say): no session, no sandbox.
      if (t.transport.sessionId === undefined) this.tenants.stop(t, 'initialize refused');
      return;
    }
    if (req.method === 'GET' || req.method === 'DELETE') {
      const t = typeof sessionId === 'string' ? this.tenants.lookup(sessionId, principal, server) : undefined;
      if (!t) return this.reply(res, typeof sessionId === 'string' ? 404 : 400, { error: 'a valid Mcp-Session-Id is required' });
      return t.transport.handleRequest(req, res);
    }
    return this.reply(res, 405, { error: 'method not allowed' }, { allow: 'GET, POST, DELETE' });
  }

  /** On a loopback bind only loopback names are valid Host values (DNS rebinding). */
  private hostAllowed(req: IncomingMessage): boolean {
    if (!LOOPBACK.has(this.config.listen.host)) return true;
    // The proxy's own splitter (lib/net/hostname.ts): one reading of `host:port` everywhere.
    let name: string;
    try {
      name = splitAuthority(req.headers.host ?? '').host;
    } catch {
      return false;
    }
    return LOOPBACK.has(name.startsWith('[') ? name.slice(1, -1) : name.toLowerCase());
  }

  private publicBase(req: IncomingMessage): string {
    if (this.config.auth.oauth?.resource) return new URL(this.config.auth.oauth.resource).origin;
    return `${this.config.tls ? 'https' : 'http'}://${req.headers.host ?? `${this.config.listen.host}:${this.config.listen.port}`}`;
  }

  /** Token bucket per principal: requestsPerMinute, refilled continuously. */
  private takeToken(principal: string): boolean {
    const rate = this.config.limits.requestsPerMinute;
    const now = Date.now();
    const b = this.buckets.get(principal) ?? { tokens: rate, at: now };
    b.tokens = Math.min(rate, b.tokens + ((now - b.at) / 60_000) * rate);
    b.at = now;
    this.buckets.set(principal, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Reads a JSON body of at most requestBytes; answers 413/400 itself and returns undefined. */
  private async readBody(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const max = this.config.limits.requestBytes;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) {
      this.deny('size');
      this.reply(res, 413, { error: `the body is larger than ${max} bytes` }, { connection: 'close' });
      req.destroy();
      return undefined;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > max) {
        this.deny('size');
        this.reply(res, 413, { error: `the body is larger than ${max} bytes` }, { connection: 'close' });
        req.destroy();
        return undefined;
      }
      chunks.push(chunk as Buffer);
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      this.reply(res, 400, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
      return undefined;
    }
  }

  private metrics(): string {
    const lines = [
      '# HELP stockade_sandboxes Live sandboxes.',
      '# TYPE stockade_sandboxes gauge',
      `stockade_sandboxes ${this.tenants.size}`,
      '# HELP stockade_requests_total HTTP requests received.',
      '# TYPE stockade_requests_total counter',
      `stockade_requests_total ${this.counters.requests}`,
      '# HELP stockade_tool_calls_total MCP tools/call requests forwarded.',
      '# TYPE stockade_tool_calls_total counter',
      `stockade_tool_calls_total ${this.counters.toolCalls}`,
      '# HELP stockade_denials_total Refusals, by kind.',
      '# TYPE stockade_denials_total counter',
      ...[...this.counters.denials].map(([kind, n]) => `stockade_denials_total{kind="${kind}"} ${n}`),
    ];
    return `${lines.join('\n')}\n`;
  }
}

/**
 * The Mcp-Method and Mcp-Name headers (newer protocol revisions) let intermediaries route on a
 * request without parsing it; a gateway that trusted them while the server acts on the body
 * could be told one thing and do another. Where present they must match the body exactly.
 */
export function headerMismatch(req: IncomingMessage, body: unknown): string | undefined {
  const method = req.headers['mcp-method'];
  const name = req.headers['mcp-name'];
  if (method === undefined && name === undefined) return undefined;
  if (Array.isArray(body) || typeof body !== 'object' || body === null) return 'Mcp-Method/Mcp-Name headers need a single JSON-RPC message';
  const b = body as { method?: unknown; params?: { name?: unknown; uri?: unknown } };
  if (method !== undefined && method !== b.method)
    return `Mcp-Method ${JSON.stringify(method)} does not match the body's method ${JSON.stringify(b.method)}`;
  if (name !== undefined) {
    const actual = b.method === 'resources/read' ? b.params?.uri : b.params?.name;
    if (name !== actual) return `Mcp-Name ${JSON.stringify(name)} does not match the body's ${JSON.stringify(actual)}`;
  }
  return undefined;
}
