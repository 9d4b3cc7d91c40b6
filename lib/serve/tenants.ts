// The gateway's sandboxes: one per MCP session, each belonging to exactly one principal and one
// server. Tenants never share a sandbox: a session id is only honoured for the principal that
// opened it (anyone else gets the same 404 as for an unknown id), and a principal's HOME for a
// server is its own directory under stateDir, bound only into that principal's sandboxes. The
// stdio server speaks one MCP session, so a session is a sandbox; a principal's sessions of one
// server share its state directory (one tenant), never another principal's.
//
// Bridge: the SDK's StreamableHTTPServerTransport speaks HTTP/SSE to the client; the sandbox
// speaks newline-delimited JSON-RPC on stdio. Messages cross as parsed JSON, each way, so the
// HTTP framing is the SDK's and the stdio framing is the one lib/mcp uses for `stockade run`.
// The tool allowlist (policy mcp.tools) is the same filter `stockade run --tools` uses.
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import { LineSplitter, type ToolGate, wireToolFilter } from '../mcp';
import { policyToOptions } from '../policy/resolve';
import type { Policy } from '../policy/types';
import { type SandboxedProcess, spawnSandboxed } from '../process';
import type { Principal } from './auth';
import type { ServeLimits } from './config';
import { type ServerTrust, ServerWithheld } from './trust';

/** Largest message a sandboxed server may send in one line (the SDK's own client cap is similar). */
const MAX_SERVER_MESSAGE_BYTES = 16 * 1024 * 1024;

export class CapacityError extends Error {
  constructor(
    message: string,
    readonly scope: 'principal' | 'total',
  ) {
    super(message);
    this.name = 'CapacityError';
  }
}

/** A session that cannot start for this principal (e.g. no credential of theirs for the server). */
export class TenantStartError extends Error {
  constructor(
    /** What the client is told: nothing about the gateway's paths. */
    message: string,
    /** What the audit log gets. */
    readonly detail: string,
    /** Why: no credential of the principal's, or the server is withheld (consent, package pin). */
    readonly kind: 'credential' | 'consent' | 'package' = 'credential',
  ) {
    super(message);
    this.name = 'TenantStartError';
  }
}

export interface Tenant {
  /** Sandbox id, in every audit record of this sandbox. */
  id: string;
  principal: Principal;
  server: string;
  transport: StreamableHTTPServerTransport;
  child: SandboxedProcess;
  lastUsed: number;
  /** Requests from the client not yet answered by the server, by JSON id (type included). */
  inFlight: Map<string, RequestId>;
  stopping: boolean;
}

export interface TenantEvents {
  onToolCall(t: Tenant, tool: string): void;
  onDenial(t: Tenant, kind: string): void;
}

export class Tenants {
  private readonly bySession = new Map<string, Tenant>();
  private readonly live = new Set<Tenant>();
  private readonly reaper: NodeJS.Timeout;

  constructor(
    private readonly servers: Record<string, Policy>,
    private readonly stateDir: string,
    private readonly secretsDir: string | undefined,
    private readonly limits: ServeLimits,
    private readonly logger: Logger,
    private readonly events: TenantEvents,
    /** Consent, tool pins and package pins per server (./trust.ts). */
    private readonly trust: Record<string, ServerTrust> = {},
  ) {
    const every = Math.max(250, Math.min(30_000, (limits.idleSeconds * 1000) / 4));
    this.reaper = setInterval(() => this.reapIdle(), every).unref();
  }

  get size(): number {
    return this.live.size;
  }

  countFor(principal: string): number {
    let n = 0;
    for (const t of this.live) if (t.principal.id === principal) n++;
    return n;
  }

  /** The tenant behind a session id, only for the principal and server that opened it. */
  lookup(sessionId: string, principal: Principal, server: string): Tenant | undefined {
    const t = this.bySession.get(sessionId);
    if (!t || t.principal.id !== principal.id || t.server !== server || t.stopping) return undefined;
    t.lastUsed = Date.now();
    return t;
  }

  /** Starts a sandbox for a new session of `server` for `principal`; throws CapacityError. */
  open(principal: Principal, server: string): Tenant {
    if (this.live.size >= this.limits.sandboxes)
      throw new CapacityError(`the gateway runs its maximum of ${this.limits.sandboxes} sandboxes`, 'total');
    if (this.countFor(principal.id) >= this.limits.sandboxesPerPrincipal) {
      throw new CapacityError(
        `you have ${this.limits.sandboxesPerPrincipal} live sessions, the most a principal may hold; close one`,
        'principal',
      );
    }
    const policy = this.servers[server];
    const id = randomUUID();
    const logger = this.logger.child({ principal: principal.id, server, sandbox: id });
    const home = this.homeFor(principal, server);
    let launch = policyToOptions({ ...policy, filesystem: { ...(policy.filesystem ?? {}), home } });
    const trust = this.trust[server];
    let gate: ToolGate | undefined;
    try {
      gate = trust?.admit(launch);
    } catch (err) {
      if (!(err instanceof ServerWithheld)) throw err;
      throw new TenantStartError(err.message, err.detail, err.kind);
    }
    if (trust) launch = trust.applyPackage(launch);
    if (this.secretsDir !== undefined && launch.options.secrets) {
      const own = join(this.secretsDir, encodeURIComponent(principal.id));
      launch.options.secrets = launch.options.secrets.map((s) => ({ ...s, source: { file: join(own, s.name) } }));
    }
    // Required lazily: `stockade run` never loads the HTTP transport.
    const { StreamableHTTPServerTransport } =
      require('@modelcontextprotocol/sdk/server/streamableHttp.js') as typeof import('@modelcontextprotocol/sdk/server/streamableHttp.js');
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (sessionId) => {
        this.bySession.set(sessionId, tenant);
      },
      onsessionclosed: () => this.stop(tenant, 'session closed by the client'),
      maxRequestBodySize: this.limits.requestBytes,
    });
    let child: SandboxedProcess;
    try {
      child = spawnSandboxed(launch.command, launch.args, { ...launch.options, stdio: ['pipe', 'pipe', 'pipe'], logger });
    } catch (err) {
      const e = err as Error & { code?: string; secret?: string };
      if (e.name !== 'SecretError' && !e.code?.startsWith('ESECRET')) throw err;
      throw new TenantStartError(
        `the gateway has no credential ${e.secret ?? ''} for you on server ${server}`.replace('  ', ' '),
        e.message,
      );
    }
    const tenant: Tenant = { id, principal, server, transport, child, lastUsed: Date.now(), inFlight: new Map(), stopping: false };
    this.live.add(tenant);
    this.bridge(tenant, launch.tools, logger, gate);
    logger.info({ event: 'serve-sandbox-start', home });
    return tenant;
  }

  /** Stops a tenant's sandbox and forgets its session. */
  stop(t: Tenant, reason: string): void {
    if (t.stopping) return;
    t.stopping = true;
    this.logger.info({ event: 'serve-sandbox-stop', principal: t.principal.id, server: t.server, sandbox: t.id, reason });
    if (t.transport.sessionId) this.bySession.delete(t.transport.sessionId);
    t.transport.close().catch(() => {});
    t.child.kill('SIGKILL');
  }

  /** Stops every sandbox and waits until each has closed. */
  async close(): Promise<void> {
    clearInterval(this.reaper);
    const all = [...this.live];
    for (const t of all) this.stop(t, 'gateway shutting down');
    await Promise.all(all.map((t) => t.child.exited.catch(() => {})));
  }

  private reapIdle(): void {
    // A session waiting on an answer gets six times as long (a slow tool call is not idle), but
    // not forever: a server that never answers cannot keep its sandbox alive by that.
    const now = Date.now();
    const idle = this.limits.idleSeconds * 1000;
    for (const t of this.live) if (now - t.lastUsed > (t.inFlight.size === 0 ? idle : 6 * idle)) this.stop(t, 'idle');
  }

  /** stateDir/SERVER/PRINCIPAL-DIGEST: a principal's name may hold anything, its digest cannot. */
  private homeFor(principal: Principal, server: string): string {
    const dir = join(this.stateDir, server, createHash('sha256').update(principal.id).digest('hex').slice(0, 32));
    // Owned by the gateway's user: as host root too, the home is an idmapped mount in which the
    // payload owns it, while on the host its files stay the gateway's.
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  private bridge(t: Tenant, tools: string[] | undefined, logger: Logger, gate?: ToolGate): void {
    const { child, transport } = t;
    const stdin = child.stdin as Writable;
    const stdout = child.stdout as Readable;
    let toServer: Writable = stdin;
    let fromServer: Readable = stdout;
    if (tools !== undefined || gate !== undefined) {
      // The same tool filter `stockade run --tools` puts on stdio, between two in-memory pipes;
      // with pinned tools and no allowlist it allows every tool and only the pins decide.
      const clientSide = new PassThrough();
      const serverSide = new PassThrough();
      const filter = wireToolFilter(
        { fromClient: clientSide, toClient: serverSide, toServer: stdin, fromServer: stdout },
        { tools: tools ?? ['*'], logger, ...(gate ? { gate } : {}) },
      );
      filter.on('tool-call', (e: { outcome: string }) => e.outcome === 'refused' && this.events.onDenial(t, 'tool'));
      filter.on('error', (err: Error) => logger.warn({ event: 'serve-bridge-error', error: err.message }));
      toServer = clientSide;
      fromServer = serverSide;
    }
    const key = (id: RequestId) => JSON.stringify(id);
    transport.onmessage = (message: JSONRPCMessage) => {
      t.lastUsed = Date.now();
      const m = message as { id?: RequestId; method?: string; params?: { name?: unknown } };
      if (m.method !== undefined && m.id !== undefined) t.inFlight.set(key(m.id), m.id);
      if (m.method === 'tools/call' && typeof m.params?.name === 'string') {
        // With an allowlist the filter audits each call with its outcome; without one, here.
        if (tools === undefined && gate === undefined) logger.info({ event: 'mcp.tool_call', tool: m.params.name, id: m.id });
        this.events.onToolCall(t, m.params.name);
      }
      toServer.write(`${JSON.stringify(message)}\n`);
    };
    const splitter = new LineSplitter({
      maxLineBytes: MAX_SERVER_MESSAGE_BYTES,
      onLine: (line) => this.fromServer(t, line, logger),
      onOversize: (_piece, end) => {
        if (end) logger.warn({ event: 'serve-server-message-dropped', reason: `longer than ${MAX_SERVER_MESSAGE_BYTES} bytes` });
      },
    });
    fromServer.on('data', (chunk: Buffer) => splitter.push(chunk));
    child.stderr?.on('data', (d: Buffer) =>
      logger.info({ event: 'serve-server-stderr', text: d.toString('utf8', 0, Math.min(d.length, 4096)) }),
    );
    child.on('egress', (r: { decision?: string }) => r.decision === 'deny' && this.events.onDenial(t, 'egress'));
    child.on('error', (err) => {
      logger.error({ event: 'serve-sandbox-error', error: err.message });
      this.stop(t, 'spawn failed');
      this.forget(t);
    });
    child.on('close', (exitCode, signal) => {
      logger.info({ event: 'serve-sandbox-exit', exitCode, signal });
      this.stop(t, 'server exited');
      this.forget(t);
    });
  }

  private forget(t: Tenant): void {
    this.live.delete(t);
    if (t.transport.sessionId) this.bySession.delete(t.transport.sessionId);
  }

  /**
   * One line from the sandboxed server: parsed here, then sent through the session's transport.
   * The server is hostile: a line that does not parse, or answers a request that was never made,
   * is dropped with an audit record, and never reaches another session (each has its own).
   */
  private fromServer(t: Tenant, line: Buffer, logger: Logger): void {
    let message: JSONRPCMessage;
    try {
      message = JSON.parse(line.toString('utf8')) as JSONRPCMessage;
    } catch {
      logger.warn({ event: 'serve-server-message-dropped', reason: 'not JSON' });
      return;
    }
    const m = message as { id?: RequestId; method?: string; result?: unknown; error?: unknown };
    let related: RequestId | undefined;
    if (m.method === undefined && m.id !== undefined) {
      // A response: only to a request of this session still waiting, matched by value and type.
      if (!t.inFlight.delete(JSON.stringify(m.id))) {
        logger.warn({ event: 'serve-server-message-dropped', reason: 'a response to no pending request' });
        return;
      }
    } else {
      // A notification or request of the server's: on the stream of the latest pending request,
      // where the client is listening for it (progress, logging), else on the standalone stream.
      for (const id of t.inFlight.values()) related = id;
    }
    t.transport.send(message, related !== undefined ? { relatedRequestId: related } : undefined).catch((err: Error) => {
      logger.warn({ event: 'serve-server-message-dropped', reason: err.message });
    });
  }
}
