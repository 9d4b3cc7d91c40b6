// Combining policies: a profile under the user's policy, and command-line flags over a policy
// file (lib/cli/flags.ts turns the flags into a policy first). One rule everywhere, so nobody has to remember per-field behaviour:
//   - lists append (duplicates dropped): `--ro /data` adds to filesystem.readOnly, `--tools x`
//     adds to mcp.tools, a profile's mounts add to the user's;
//   - scalars replace: `--memory 1g` replaces limits.memory, `--net none` replaces network;
//   - objects merge key by key (env: a flag's NAME wins over the file's NAME);
//   - secrets merge by name (the upper one replaces a secret of the same name);
//   - the command is whole: a command after `--` replaces the file's command and args.
// network is the one mixed field: a string ('none'/'host') is a scalar and replaces; an allow
// list merges with an allow list. `--allow-net` over a file saying 'none' (or nothing) yields an
// allow list of just the flags' hosts: the flag is the later, explicit intent.
import type { SecretOptions } from '../options';
import type { Policy, PolicyNetwork, PolicyToolGrant } from './types';

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function appendUnique<T>(lower: T[], upper: T[]): T[] {
  const seen = new Set(lower.map((x) => JSON.stringify(x)));
  const out = [...lower];
  for (const x of upper) {
    const key = JSON.stringify(x);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(x);
    }
  }
  return out;
}

function deepMerge(lower: unknown, upper: unknown): unknown {
  if (upper === undefined) return lower;
  if (Array.isArray(lower) && Array.isArray(upper)) return appendUnique(lower, upper);
  if (isPlainObject(lower) && isPlainObject(upper)) {
    const out: Record<string, unknown> = { ...lower };
    for (const [k, v] of Object.entries(upper)) out[k] = deepMerge(lower[k], v);
    return out;
  }
  return upper;
}

function mergeNetwork(lower: PolicyNetwork | undefined, upper: PolicyNetwork | undefined): PolicyNetwork | undefined {
  if (upper === undefined) return lower;
  if (typeof upper === 'string' || lower === undefined || typeof lower === 'string') return upper;
  return deepMerge(lower, upper) as PolicyNetwork;
}

function mergeSecrets(lower: SecretOptions[] | undefined, upper: SecretOptions[] | undefined): SecretOptions[] | undefined {
  if (!upper) return lower;
  if (!lower) return upper;
  const names = new Set(upper.map((s) => s.name));
  return [...lower.filter((s) => !names.has(s.name)), ...upper];
}

/** `upper` over `lower` by the rules above. Neither input is modified. */
export function mergePolicies(lower: Policy, upper: Policy): Policy {
  const out = deepMerge(lower, upper) as Policy;
  const network = mergeNetwork(lower.network, upper.network);
  if (network !== undefined) out.network = network;
  const secrets = mergeSecrets(lower.secrets, upper.secrets);
  if (secrets !== undefined) out.secrets = secrets;
  // A list of tools over per-tool grants (--tools over a policy's map) adds names without grants.
  const lt = lower.mcp?.tools;
  const ut = upper.mcp?.tools;
  if (lt !== undefined && ut !== undefined && Array.isArray(lt) !== Array.isArray(ut)) {
    const map: Record<string, unknown> = {};
    for (const t of [lt, ut]) {
      if (Array.isArray(t)) for (const name of t) map[name] ??= {};
      else for (const [name, g] of Object.entries(t)) map[name] = deepMerge(map[name], g);
    }
    out.mcp = { ...out.mcp, tools: map as Record<string, PolicyToolGrant> };
  }
  if (upper.command !== undefined) {
    out.command = upper.command;
    out.args = upper.args;
    if (out.args === undefined) delete out.args;
  }
  return out;
}
