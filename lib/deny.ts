// Deny inside a grant: paths under a granted directory that stay invisible. People grant a
// project or their home for convenience and, with it, the credentials that live there. Over each
// denied path that exists, the plan binds an empty read-only directory (a tmpfs) or an empty file
// (/dev/null), so the server reads nothing and cannot write there.
//
// Default denials, looked for at the top of every granted directory and of a persistent home:
// DEFAULT_DENY below. Granting one of these paths itself (or something inside it) keeps it
// visible; `denyDefaults: false` turns them all off.
//
// Host paths are resolved as if an attacker chose them (a read-write grant may hold whatever a
// previous run left): each component is checked with lstat, and a denied path reached through a
// symlink is refused with an error rather than left visible, since a mount cannot be put on a
// symlink and its target may be anywhere. The child opens each mask's target again without
// following symlinks (native/mounts.cc), so a swap after this check fails the start instead.
import fs = require('node:fs');
import path = require('node:path');

import { SandboxOptionsError } from './errors';
import { MountKind, type NativeMount } from './native';

/** Relative to a granted directory. `.env.*` is the only pattern (every `.env.something`). */
export const DEFAULT_DENY = [
  '.env',
  '.env.*',
  '.git/config',
  '.ssh',
  '.aws',
  '.npmrc',
  '.netrc',
  '.pypirc',
  '.docker/config.json',
  '.kube/config',
  '.gnupg',
  '.config/gh',
];

export interface DenyGrant {
  /** The granted directory on the host (already resolved). */
  host: string;
  /** Where it is inside the sandbox (the same path, or /home/nobody for a persistent home). */
  inside: string;
}

function within(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir === '/' ? '/' : `${dir}/`);
}

/**
 * lstat of `rel` below `root`, one component at a time. undefined when it does not exist;
 * throws when a component is a symlink or not a directory where one is needed.
 */
function lstatBelow(root: string, rel: string, field: string): fs.Stats | undefined {
  let at = root;
  const parts = rel.split('/').filter((p) => p !== '');
  for (let i = 0; i < parts.length; i++) {
    at = path.join(at, parts[i]);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(at);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw new SandboxOptionsError(field, `'${at}' cannot be checked on the host (${code})`);
    }
    if (st.isSymbolicLink()) {
      throw new SandboxOptionsError(
        field,
        `'${at}' is a symlink, so it cannot be hidden; deny its target instead, or turn the denial off (filesystem.denyDefaults: false)`,
      );
    }
    if (i < parts.length - 1 && !st.isDirectory()) return undefined;
    if (i === parts.length - 1) return st;
  }
  return undefined;
}

function maskOf(inside: string, st: fs.Stats): NativeMount {
  return st.isDirectory() ? { kind: MountKind.maskDir, target: inside } : { kind: MountKind.maskFile, target: inside };
}

/**
 * The masks for one sandbox. `grants`: every granted directory; `explicit`: every path granted
 * by name (a default denial at or above one of them is skipped); `deny`: the caller's extra paths.
 */
export function denyMounts(
  grants: readonly DenyGrant[],
  explicit: readonly string[],
  deny: readonly string[],
  defaults: boolean,
): NativeMount[] {
  const out = new Map<string, NativeMount>();
  const wanted = (host: string) => !explicit.some((e) => within(e, host));
  if (defaults) {
    for (const g of grants) {
      let st: fs.Stats;
      try {
        st = fs.lstatSync(g.host);
      } catch {
        continue;
      }
      if (!st.isDirectory()) continue;
      const rels = DEFAULT_DENY.filter((d) => !d.includes('*'));
      // `.env.*`: the directory's own entries, read once (a listing, not a walk).
      for (const name of fs.readdirSync(g.host)) if (name.startsWith('.env.')) rels.push(name);
      for (const rel of rels) {
        const host = path.join(g.host, rel);
        if (!wanted(host)) continue;
        const found = lstatBelow(g.host, rel, 'filesystem.denyDefaults');
        if (found) out.set(host, maskOf(path.join(g.inside, rel), found));
      }
    }
  }
  deny.forEach((p, i) => {
    const field = `filesystem.deny[${i}]`;
    if (typeof p !== 'string' || !path.isAbsolute(p) || p.includes('\0') || path.normalize(p) !== p) {
      throw new SandboxOptionsError(field, `expected a normalized absolute path, found ${JSON.stringify(p)}`);
    }
    // The most specific grant holding it decides where it is inside; outside every grant it is
    // invisible already.
    const holder = grants.filter((g) => within(p, g.host) && p !== g.host).sort((a, b) => b.host.length - a.host.length)[0];
    if (holder === undefined) {
      if (grants.some((g) => g.host === p)) throw new SandboxOptionsError(field, `'${p}' is itself granted; remove the grant instead`);
      return;
    }
    const rel = path.relative(holder.host, p);
    const found = lstatBelow(holder.host, rel, field);
    if (found) out.set(p, maskOf(path.join(holder.inside, rel), found));
  });
  return [...out.values()];
}
