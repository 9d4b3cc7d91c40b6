// What a policy grants, as a flat set of readable entries, and what one policy grants beyond
// another. The launcher compares the policy it is about to run with the one the user last
// approved (lib/approval.ts) and refuses to run one that grew: a new host, path, secret,
// pass-through variable, tool or command, or a looser limit. A policy that only shrank runs.
//
// Grants are computed from the policy as written (before its profile is merged in): what a
// profile adds depends on the host (where node is installed), and would make every node upgrade
// look like growth. The profile's name is a grant of its own.
import { parseSize } from './formats';
import type { Policy } from './types';

export interface PolicyGrants {
  /** One readable entry per grant: 'network.allow api.github.com', 'filesystem.readWrite /srv'. */
  entries: string[];
  /** Limits in their base units (bytes, seconds); absent means unlimited. */
  limits: Record<string, number>;
  /** Paths the policy keeps hidden, and whether the default denials are on (lib/deny.ts). */
  denied: string[];
  denyDefaults: boolean;
  /**
   * Restrictions the policy opts into, each a readable phrase: dropping one loosens the sandbox
   * as much as a new grant does. Optional: approvals recorded before it existed have none.
   */
  restrictions?: string[];
}

const LIMIT_UNITS: Record<string, 'size' | 'count'> = {
  memory: 'size',
  pids: 'count',
  cpu: 'count',
  cpus: 'count',
  openFiles: 'count',
  fileSize: 'size',
  timeout: 'count',
};

function sourceOf(s: NonNullable<Policy['secrets']>[number]): string {
  const src = s.source ?? { env: s.name };
  if ('env' in src) return `env ${src.env}`;
  if ('file' in src) return `file ${src.file}`;
  if ('command' in src) return `command ${JSON.stringify(src.command)}`;
  if ('keyring' in src) return `keyring ${JSON.stringify(src.keyring)}`;
  return 'a value in the policy';
}

export function policyGrants(p: Policy): PolicyGrants {
  const entries: string[] = [];
  const add = (e: string) => {
    if (!entries.includes(e)) entries.push(e);
  };
  add(`command ${JSON.stringify([...(p.command ?? []), ...(p.args ?? [])])}`);
  if (p.profile) add(`profile ${p.profile}`);
  if (p.package) add(`package ${p.package.name}@${p.package.version} ${p.package.integrity}`);
  for (const d of p.filesystem?.readOnly ?? []) add(`filesystem.readOnly ${d}`);
  for (const d of p.filesystem?.readWrite ?? []) add(`filesystem.readWrite ${d}`);
  if (p.filesystem?.home !== undefined && p.filesystem.home !== 'tmpfs') add(`filesystem.home ${p.filesystem.home}`);
  const net = p.network;
  if (net === 'host') add('network host');
  if (typeof net === 'object') {
    for (const h of net.allow) add(`network.allow ${h}`);
    const resolve = Array.isArray(net.resolve) ? net.resolve : Object.entries(net.resolve ?? {}).map(([k, v]) => `${k}:${v}`);
    for (const r of resolve) add(`network.resolve ${r}`);
  }
  for (const [name, value] of Object.entries(p.env ?? {})) if (value === true) add(`env ${name} (passed through)`);
  for (const s of p.secrets ?? []) {
    add(`secret ${s.name} from ${sourceOf(s)}`);
    for (const h of s.hosts) add(`secret ${s.name} for ${h}`);
  }
  for (const ca of p.upstreamCa ?? []) add(`upstreamCa ${ca}`);
  // A declared local port may be bound and connected to (Landlock ABI 4, lib/landlock.ts).
  for (const port of p.localPorts ?? []) add(`localPorts ${port}`);
  // Sockets and FIFOs inside grants reach host services (lib/layout.ts): a grant of its own.
  if (p.filesystem?.allowSockets === true) add('filesystem.allowSockets');
  // No tool list means every tool: a policy that drops its list grew.
  const tools = p.mcp?.tools;
  if (tools === undefined) add('mcp.tools *');
  else if (Array.isArray(tools)) for (const t of tools) add(`mcp.tools ${t}`);
  else {
    for (const [t, g] of Object.entries(tools)) {
      add(`mcp.tools ${t}`);
      for (const h of g.network ?? []) add(`mcp.tools.${t}.network ${h}`);
      for (const s of g.secrets ?? []) add(`mcp.tools.${t}.secrets ${s}`);
    }
  }
  const limits: Record<string, number> = {};
  for (const [key, unit] of Object.entries(LIMIT_UNITS)) {
    const v = (p.limits as Record<string, number | string> | undefined)?.[key];
    if (v !== undefined) limits[key] = unit === 'size' ? parseSize(v) : Number(v);
  }
  // A kernel budget raised is a looser limit like any other.
  for (const [key, v] of Object.entries(p.limits?.kernel ?? {})) if (typeof v === 'number') limits[`kernel.${key}`] = v;
  if (p.filesystem?.tmpSize !== undefined) limits.tmpSize = parseSize(p.filesystem.tmpSize);
  const restrictions: string[] = [];
  if (p.seccomp === 'strict') restrictions.push('seccomp strict');
  // With no network, declaring local ports is what turns Landlock's TCP rules on (lib/landlock.ts);
  // in proxy mode the rules hold without them, and fewer ports is less.
  if ((p.network ?? 'none') === 'none' && (p.localPorts?.length ?? 0) > 0) restrictions.push('TCP ports restricted to localPorts');
  return {
    entries,
    limits,
    denied: [...(p.filesystem?.deny ?? [])],
    denyDefaults: p.filesystem?.denyDefaults !== false,
    restrictions,
  };
}

/** Everything `current` grants beyond `approved`, one readable phrase each; empty when it did not grow. */
export function grownGrants(approved: PolicyGrants, current: PolicyGrants): string[] {
  const out: string[] = [];
  const had = new Set(approved.entries);
  for (const e of current.entries) if (!had.has(e) && !coveredPath(e, approved.entries)) out.push(e);
  for (const [key, was] of Object.entries(approved.limits)) {
    const now = current.limits[key];
    if (now === undefined) out.push(`limits.${key} removed (was ${was})`);
    else if (now > was) out.push(`limits.${key} ${was} -> ${now}`);
  }
  for (const d of approved.denied) if (!current.denied.includes(d)) out.push(`filesystem.deny no longer hides ${d}`);
  if (approved.denyDefaults && !current.denyDefaults) out.push('filesystem.denyDefaults turned off');
  for (const r of approved.restrictions ?? []) if (!current.restrictions?.includes(r)) out.push(`no longer: ${r}`);
  return out;
}

/** A path grant inside an approved one is not growth (read-only under read-write neither). */
function coveredPath(entry: string, approved: string[]): boolean {
  const m = /^filesystem\.(readOnly|readWrite) (.*)$/.exec(entry);
  if (!m) return false;
  const [, kind, p] = m;
  return approved.some((a) => {
    const n = /^filesystem\.(readOnly|readWrite) (.*)$/.exec(a);
    if (!n || (kind === 'readWrite' && n[1] !== 'readWrite')) return false;
    return p === n[2] || p.startsWith(n[2].endsWith('/') ? n[2] : `${n[2]}/`);
  });
}
