// Host paths the launcher resolves for a sandbox, resolved as if an attacker chose them.
//
// A payload can leave symlinks, renamed directories, FIFOs and sockets in whatever it may write
// (its read-write grants, a persistent home) and wait for the next start. So a path the user
// typed is resolved here one component at a time: a symlink is followed only where no grant of
// this sandbox can write it (a symlink the host put outside every writable grant, such as
// /bin -> usr/bin or a ~/.nvm link); one inside a writable grant is refused, naming it. The
// result is canonical, and the child then opens exactly that path with RESOLVE_NO_SYMLINKS and
// binds from the fd it opened (native/mounts.cc), so a symlink planted between this check and
// the bind makes the spawn fail with ELOOP instead of binding something else.
import fs = require('node:fs');
import path = require('node:path');
import util = require('node:util');

import { constants as osConstants } from 'node:os';
import { systemDirs } from './layout';
import { packageRoot } from './location';
import { native, type SpecialScanHandle, sha256Hex } from './native';

/** A host path that cannot be used: what is wrong, for the caller to name the field. */
export class HostPathError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** `p` is `root` or lies below it. */
export function within(p: string, root: string): boolean {
  return p === root || p.startsWith(root === '/' ? '/' : `${root}/`);
}

/** The writable root that holds `p`, if any. */
export function writableRootOf(p: string, writable: readonly string[]): string | undefined {
  return writable.find((root) => within(p, root));
}

/** What the next start of the launcher runs without looking at it again, canonical (launcherFiles). */
export interface LauncherFile {
  path: string;
  what: string;
  /** A grant below it is refused too (a directory whose every file is trusted). */
  below: boolean;
}

let launcherFilesMade: LauncherFile[] | undefined;

/**
 * What a sandbox must never be able to write, because the next start of stockade runs it on the
 * host: the package itself (its code, the addon, stockade-init, and dist/'s compile cache and
 * scan witnesses, which vouch for code and for trees), the node_modules directories Node looks
 * in for its dependencies (an install hoists them beside the package), and the Node executable.
 * A read-write grant holding one, or lying in the package or those directories, would let a
 * payload leave code that runs outside at the next start. Node's global folders (~/.node_modules,
 * NODE_PATH) are not listed: they are only looked in for a module none of these holds.
 */
export function launcherFiles(): LauncherFile[] {
  if (launcherFilesMade !== undefined) return launcherFilesMade;
  const real = (p: string) => {
    try {
      return fs.realpathSync(p);
    } catch {
      return undefined;
    }
  };
  const made: LauncherFile[] = [];
  const root = real(packageRoot);
  if (root !== undefined) made.push({ path: root, what: "stockade's own package", below: true });
  // Where require() from the package looks, nearest first (Module._nodeModulePaths).
  for (let dir = root ?? packageRoot; ; dir = path.dirname(dir)) {
    const modules = path.basename(dir) === 'node_modules' ? undefined : real(path.join(dir, 'node_modules'));
    if (modules !== undefined && (root === undefined || !within(modules, root))) {
      made.push({ path: modules, what: "the node_modules directory stockade's dependencies are loaded from", below: true });
    }
    if (dir === '/') break;
  }
  const node = real(process.execPath);
  if (node !== undefined) made.push({ path: node, what: 'the Node executable stockade runs on', below: false });
  launcherFilesMade = made;
  return made;
}

/**
 * Why a sandbox that can write the canonical `grant` could change what the launcher runs, or
 * undefined: the launcher file the grant holds, or the trusted directory it lies in.
 */
export function launcherReach(grant: string): string | undefined {
  for (const f of launcherFiles()) {
    if (within(f.path, grant)) return `holds ${f.what} (${f.path})`;
    if (f.below && within(grant, f.path)) return `lies in ${f.what} (${f.path})`;
  }
  return undefined;
}

const MAX_LINKS = 40; // as the kernel's MAXSYMLINKS

/**
 * The canonical host path of `typed` (absolute), following a symlink only where none of the
 * `writable` roots (canonical) holds it. Throws a HostPathError otherwise, or when the path
 * does not exist.
 */
export function resolveHostPath(typed: string, writable: readonly string[]): string {
  let done = '/';
  let rest = typed.split('/').filter((c) => c !== '');
  let links = 0;
  while (rest.length > 0) {
    const name = rest.shift() as string;
    if (name === '.') continue;
    if (name === '..') {
      done = path.dirname(done);
      continue;
    }
    const next = path.join(done, name);
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(next);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      throw new HostPathError(`'${typed}' cannot be used on the host (${code})`, code);
    }
    if (stat.isSymbolicLink()) {
      const root = writableRootOf(next, writable);
      if (root !== undefined) {
        throw new HostPathError(
          `'${typed}' goes through the symlink '${next}', inside the writable grant '${root}' (the sandbox could have planted it); symlinks are followed only outside writable grants: name the real path`,
          'ELOOP',
        );
      }
      if (++links > MAX_LINKS) throw new HostPathError(`'${typed}': too many symlinks`, 'ELOOP');
      const target = fs.readlinkSync(next);
      if (target.startsWith('/')) done = '/';
      rest = [...target.split('/').filter((c) => c !== ''), ...rest];
      continue;
    }
    if (rest.length > 0 && !stat.isDirectory()) {
      throw new HostPathError(`'${typed}' cannot be used on the host (ENOTDIR)`, 'ENOTDIR');
    }
    done = next;
  }
  return done;
}

/**
 * The type of the host entry at the canonical `p`, read without following anything: 'file',
 * 'dir', 'symlink', 'other' or undefined when it does not exist. Any symlink on the way is
 * reported as 'symlink'.
 */
export function entryType(p: string): 'file' | 'dir' | 'symlink' | 'other' | undefined {
  let done = '/';
  for (const name of p.split('/').filter((c) => c !== '')) {
    done = path.join(done, name);
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(done);
    } catch {
      return undefined;
    }
    if (stat.isSymbolicLink()) return 'symlink';
    if (done !== p && !stat.isDirectory()) return undefined;
    if (done === p) return stat.isFile() ? 'file' : stat.isDirectory() ? 'dir' : 'other';
  }
  return 'dir';
}

/** How many entries a grant may have for the socket check before it gives up (and refuses). */
export const SCAN_LIMIT = 200_000;

/** How deep the socket check descends before it gives up (and refuses): native/hostscan.cc. */
const MAX_SCAN_DEPTH = 512;

/**
 * Where the witnesses of clean scans live (native/scanwitness.cc): beside the bundle, in the
 * package's own dist/, for the reason the compile cache is there (bin/stockade.js): a witness
 * vouches that a tree holds no socket, so whoever can write it could let one through, and beside
 * the code it is exactly as protected as the code. The addon reads one only when it and this
 * directory are the user's own and writable by nobody else; where dist/ is not writable (a
 * root-owned global install) there is none, and every scan walks.
 */
export const WITNESS_DIR = path.join(packageRoot, 'dist', '.scan-cache');

/**
 * A directory changed less than this long before a scan makes its clean walk write no witness:
 * a change in the same tick of a coarse file system clock could leave its ctime as it was.
 */
export const WITNESS_RACY_MS = 2000;

/** The witness file of `root` for this user. */
export function witnessFile(root: string): string {
  return path.join(WITNESS_DIR, `scan-${sha256Hex(`${root}\0${process.geteuid?.() ?? ''}`).slice(0, 32)}`);
}

/** A unix socket or FIFO found in a grant. */
export interface SpecialFile {
  path: string;
  type: 'unix socket' | 'FIFO';
}

/**
 * Starts looking for the first unix socket or FIFO at or below `root`; the function returned
 * waits for the answer: the file, or undefined. A read-only bind does not stop connect() to a
 * socket or a write to a FIFO in it (kernel semantics), so a grant holding one (docker.sock,
 * $XDG_RUNTIME_DIR, /run) reaches a host service. The walk is the addon's (native/hostscan.cc: a
 * granted node_modules cost ~45 ms of a start in JavaScript), on threads of its own, so the
 * caller resolves the rest of a plan meanwhile: entry types from getdents64, each directory
 * opened from its parent's fd without following a symlink, submounts included (a bind takes
 * them along). The answer throws a HostPathError past `limit` entries, or when a directory could
 * not be read for another reason than permissions, since what was not looked at may hold one.
 * A tree found clean leaves a witness (native/scanwitness.cc): the next scan of it checks that
 * every directory is the one seen, unchanged since (one statx each, ~3–4 ms of the scan's thread
 * for node_modules instead of ~23 ms of CPU), and walks only if one is not.
 */
export function startSocketScan(root: string, limit = SCAN_LIMIT): () => SpecialFile | undefined {
  const early = limit === SCAN_LIMIT ? prefetched.get(root) : undefined;
  if (early !== undefined) prefetched.delete(root);
  const handle = early ?? startScan(root, limit);
  return () => {
    const found = native().finishSpecialScan(handle);
    if ('witness' in found) return undefined;
    if ('type' in found) return found;
    if (found.errno === osConstants.errno.E2BIG) {
      throw new HostPathError(
        `'${root}' has more than ${limit} entries, too many to check for unix sockets and FIFOs; grant a narrower path, or allow sockets explicitly`,
        'E2BIG',
      );
    }
    const code = util.getSystemErrorName(-found.errno);
    const why =
      code === 'ELOOP'
        ? `'${root}' is nested too deep (more than ${MAX_SCAN_DEPTH} directories) to be checked`
        : code === 'EACCES'
          ? `'${found.path}' can be entered but not listed by this user (as mode 0711 allows), so what it holds, reachable by name from the sandbox, cannot be checked`
          : `'${found.path}' cannot be read (${code}), so '${root}' cannot be checked`;
    throw new HostPathError(`${why} for unix sockets and FIFOs; grant a narrower path, or allow sockets explicitly`, code);
  };
}

function startScan(root: string, limit: number): SpecialScanHandle {
  return native().startSpecialScan(root, limit, witnessFile(root), WITNESS_RACY_MS);
}

/**
 * Scans started before the plan by prefetchSocketScans, by canonical root, each taken by the
 * plan's startSocketScan of the same root (and the default limit).
 */
const prefetched = new Map<string, SpecialScanHandle>();

/**
 * Starts the socket scans of grants as soon as their paths are known (`stockade run` knows them
 * from its flags and policy file before it loads what resolves a plan, and the 13–17 ms walk of
 * a granted node_modules then overlaps that loading instead of following it). Each path is resolved as
 * the plan resolves it, and the plan's own scan of the same canonical root is this one: the walk
 * is the same, only started earlier. A path the plan resolves otherwise (a symlink inside a
 * read-write grant, a profile's rewrite) gets its own scan then, and anything that goes wrong
 * here is left for the plan to report. Scans nothing takes are stopped by dropPrefetchedScans.
 */
export function prefetchSocketScans(paths: readonly string[]): void {
  for (const p of paths) {
    if (!path.isAbsolute(p)) continue;
    try {
      const host = resolveHostPath(p, []);
      if (!prefetched.has(host) && !underSystemDir(host)) prefetched.set(host, startScan(host, SCAN_LIMIT));
    } catch {
      // The plan resolves it again and says what is wrong.
    }
  }
}

/** Stops the prefetched scans no plan took (their threads, their directory fds). */
export function dropPrefetchedScans(): void {
  for (const handle of prefetched.values()) native().cancelSpecialScan(handle);
  prefetched.clear();
}

let realSystemDirs: string[] | undefined;
/**
 * `p` lies in one of the host's system directories as the sandbox binds them anyway (their
 * contents are visible in every sandbox, so a grant there is not scanned).
 */
export function underSystemDir(p: string): boolean {
  realSystemDirs ??= systemDirs.filter((d) => fs.existsSync(d)).map((d) => fs.realpathSync(d));
  return realSystemDirs.some((d) => within(p, d));
}

/** startSocketScan, waited for at once. */
export function findSocketOrFifo(root: string, limit = SCAN_LIMIT): SpecialFile | undefined {
  return startSocketScan(root, limit)();
}
