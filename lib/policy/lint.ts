// Policy lint: what a policy may say but rarely means. Warnings on top of the one grammar, never
// a second grammar: every value linted here is valid (lib/net/allowlist.ts accepts it, and so do
// the API and `stockade run`). `stockade check` and `stockade run` print them; the API does not
// (a program building its options knows what it asked for).
import { lintAllowEntry } from '../net/allowlist';
import type { Policy } from './types';
import type { PolicyIssue } from './validate';

/** Warnings about a valid policy, one line each, starting with the JSON path. */
export function lintPolicy(policy: Policy): PolicyIssue[] {
  const out: PolicyIssue[] = [];
  const entry = (path: string, text: string) => {
    const warning = lintAllowEntry(text);
    if (warning !== null) out.push({ path, message: `${path}: ${warning}` });
  };
  const network = policy.network;
  if (typeof network === 'object' && network !== null) {
    for (const [i, h] of (network.allow ?? []).entries()) entry(`/network/allow/${i}`, h);
  }
  // Per-tool grants (mcp.tools in its object form): their network entries are allow entries too.
  const tools = policy.mcp?.tools as unknown;
  if (tools !== null && typeof tools === 'object' && !Array.isArray(tools)) {
    for (const [name, grant] of Object.entries(tools as Record<string, { network?: unknown }>)) {
      const network = grant?.network;
      if (!Array.isArray(network)) continue;
      for (const [i, h] of network.entries()) {
        if (typeof h === 'string') entry(`/mcp/tools/${name.replace(/~/g, '~0').replace(/\//g, '~1')}/network/${i}`, h);
      }
    }
  }
  for (const [i, s] of (policy.secrets ?? []).entries()) {
    for (const [j, h] of (s.hosts ?? []).entries()) entry(`/secrets/${i}/hosts/${j}`, h);
  }
  return out;
}
