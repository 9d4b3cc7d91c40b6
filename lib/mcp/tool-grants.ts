// Per-tool grants: `mcp.tools.<name>.network` and `.secrets` give hosts and secrets to the calls of
// one tool only. The tool layer knows which tools/call requests are in flight (their ids); this
// file turns that into the sandbox's *current grant*, which the egress proxy and the credential
// interceptor consult per decision (lib/net/decision.ts GrantScope):
//
//   current grant = base grant ∪ the grants of every call in flight
//
//   - base grant: `network.allow`, and the secrets no tool grant names (with their hosts). It
//     holds at all times, between calls too.
//   - while only calls of tool A are in flight, A's hosts are reachable and A's secrets injected,
//     and nothing of B's; with calls of A and B in flight at once, the union of both: the server
//     is one process, and stockade cannot tell which of its connections serves which call. That
//     is the documented limit of this layer: it narrows *when* a host or secret is usable, not
//     which code path uses it.
//   - between calls: the base grant only.
//   - connections are checked when they are opened (and every plain-HTTP request and every
//     injected request on its own). A connection that only a call's grant allowed is held: when
//     that call ends (answered, cancelled) and no other call in flight grants its host, the
//     proxy cuts it, so a keep-alive connection or a WebSocket opened during A's call does not
//     carry on into B's call or the time between calls. A secret is checked per request.
//   - a call the client cancels (notifications/cancelled) or that is forgotten stops granting.
//
// Every decision names the calls it was joined to (the calls whose grant allowed it; for a
// refusal, every call in flight), so audit records join call ids to egress, injections and
// violations.
import { Allowlist } from '../net/allowlist';
import type { CallRef, GrantScope, ScopeVerdict } from '../net/decision';
import { type NormalizedHost, normalizeHost } from '../net/hostname';
import { toolMatcher } from '../policy/formats';

/** What one tool (or tool pattern) is granted beyond the base, as the policy writes it. */
export interface ToolGrant {
  /** Allowlist entries reachable only while a call of the tool is in flight. */
  network?: string[];
  /** Names of `secrets` injected only while a call of the tool is in flight. */
  secrets?: string[];
}

/** The resolved per-tool grants of a launch (lib/policy/resolve.ts). */
export interface ToolGrantsSpec {
  /** Reachable at all times. */
  base: string[];
  /** Tool pattern -> its grant; secret hosts already added to `network`. */
  tools: Record<string, Required<ToolGrant>>;
}

interface Compiled {
  pattern: string;
  matches: (tool: string) => boolean;
  allow: Allowlist;
  secrets: ReadonlySet<string>;
}

/** `call 3 (fetch_a)`. */
export function describeCalls(calls: readonly CallRef[]): string {
  if (calls.length === 0) return 'none';
  return calls.map((c) => `call ${JSON.stringify(c.id)} (${c.tool})`).join(', ');
}

export class ToolGrants implements GrantScope {
  private readonly base: Allowlist | undefined;
  private readonly compiled: Compiled[];
  /** Secrets some tool grant names: injected only during such calls. */
  private readonly scopedSecrets: ReadonlySet<string>;
  private active: () => readonly CallRef[] = () => [];
  private readonly byTool = new Map<string, Compiled[]>();
  /** Connections allowed by a call's grant, cut when it ends (GrantScope.hold). */
  private readonly held = new Set<{ host: NormalizedHost; port: number; cut: (reason: string) => void }>();

  /**
   * Without a spec, nothing is narrowed: every decision is allowed and only joined to the calls
   * in flight (the tool layer's audit join when the policy has no per-tool grants).
   * Throws a TypeError naming a bad allowlist entry.
   */
  constructor(spec?: ToolGrantsSpec) {
    this.base = spec ? new Allowlist(spec.base) : undefined;
    this.compiled = Object.entries(spec?.tools ?? {}).map(([pattern, g]) => ({
      pattern,
      matches: toolMatcher(pattern),
      allow: new Allowlist(g.network),
      secrets: new Set(g.secrets),
    }));
    this.scopedSecrets = new Set(this.compiled.flatMap((c) => [...c.secrets]));
  }

  /** Where the calls in flight come from: the tool layer (ToolFilter.activeCalls). */
  attach(active: () => readonly CallRef[]): void {
    this.active = active;
  }

  /**
   * A call ended (the tool layer's 'tool-call' event): cuts every held connection no call in
   * flight grants any more.
   */
  recheck(): void {
    for (const h of this.held) {
      const v = this.checkHost(h.host, h.port);
      if (v.allowed) continue;
      this.held.delete(h);
      h.cut(`closed: the call that granted ${h.host.host}:${h.port} ended (${v.rule})`);
    }
  }

  hold(host: string, port: number, cut: (reason: string) => void): () => void {
    let normalized: NormalizedHost;
    try {
      normalized = normalizeHost(host);
    } catch {
      cut(`closed: ${host} is not a valid host`);
      return () => {};
    }
    const entry = { host: normalized, port, cut };
    // The call may have ended between the decision and the connect.
    const v = this.checkHost(normalized, port);
    if (!v.allowed) {
      cut(`closed: the call that granted ${normalized.host}:${port} ended (${v.rule})`);
      return () => {};
    }
    this.held.add(entry);
    return () => this.held.delete(entry);
  }

  /** Connections held now (for tests and the audit). */
  get heldConnections(): number {
    return this.held.size;
  }

  /** The calls in flight now (id and tool). */
  inFlight(): CallRef[] {
    return this.active().map((c) => ({ id: c.id, tool: c.tool }));
  }

  checkHost(host: NormalizedHost, port: number): ScopeVerdict {
    const calls = this.inFlight();
    if (this.base === undefined) return { allowed: true, rule: '', calls };
    const base = this.base.matchNormalized(host, port);
    if (base.allowed) return { allowed: true, rule: base.rule, calls };
    const granting: CallRef[] = [];
    let rule = '';
    for (const call of calls) {
      for (const c of this.grantsOf(call.tool)) {
        const m = c.allow.matchNormalized(host, port);
        if (!m.allowed) continue;
        granting.push(call);
        rule ||= `tool ${call.tool} (call ${JSON.stringify(call.id)}): ${m.rule}`;
        break;
      }
    }
    if (granting.length > 0) return { allowed: true, rule, calls: granting, scoped: true };
    const owners = this.compiled.filter((c) => c.allow.matchNormalized(host, port).allowed).map((c) => c.pattern);
    return {
      allowed: false,
      rule: `tool-grant: ${host.host}:${port} is granted to tool ${owners.join(', ') || '(none)'} only, and no call in flight has it (in flight: ${describeCalls(calls)})`,
      calls,
    };
  }

  checkSecret(name: string): ScopeVerdict {
    const calls = this.inFlight();
    if (!this.scopedSecrets.has(name)) return { allowed: true, rule: 'base grant', calls };
    const granting = calls.filter((call) => this.grantsOf(call.tool).some((c) => c.secrets.has(name)));
    if (granting.length > 0) return { allowed: true, rule: `tool ${granting[0].tool}`, calls: granting };
    const owners = this.compiled.filter((c) => c.secrets.has(name)).map((c) => c.pattern);
    return {
      allowed: false,
      rule: `tool-grant: secret ${name} is granted to tool ${owners.join(', ')} only, and no call in flight has it (in flight: ${describeCalls(calls)})`,
      calls,
    };
  }

  /** Every pattern matching the tool: a tool's grant is the union of them (remembered per tool name, a bounded number). */
  private grantsOf(tool: string): Compiled[] {
    let grants = this.byTool.get(tool);
    if (grants === undefined) {
      grants = this.compiled.filter((c) => c.matches(tool));
      if (this.byTool.size >= 1024) this.byTool.clear();
      this.byTool.set(tool, grants);
    }
    return grants;
  }
}
