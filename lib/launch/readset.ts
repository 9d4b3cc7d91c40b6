// What a plan's resolution read from the host, recorded so that a later start can check it again
// without resolving: the launch record of native/launch.cc (README, "A launcher that is not a
// Node process"). A record is only as sound as this list, so the recording is fail-closed: while
// it runs, every function of node:fs, the addon and the parts of node:os a resolution could read
// goes through here. A read this module knows becomes a check that native/launch.cc performs
// again and compares (the same call's observable result: a stat's fields, a file's bytes, a
// directory's names and types); anything else (a write, an fd, an asynchronous call, a function
// not listed) poisons the recording, and no record is written. test/launch-record.test.ts
// compares the list with what strace sees the resolution do.
import fs = require('node:fs');
import os = require('node:os');

/** The operations of a check; the numbers are native/launchrecord.h's. */
export const CheckOp = {
  lstat: 1,
  stat: 2,
  access: 3,
  read: 4,
  readdir: 5,
  realpath: 6,
  readlink: 7,
  totalmem: 8,
  witness: 9,
  native: 10,
} as const;

/** A stat as a check compares it: every field a caller could act on, times in nanoseconds. */
export interface StatView {
  dev: bigint;
  ino: bigint;
  mode: bigint;
  nlink: bigint;
  uid: bigint;
  gid: bigint;
  rdev: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

/** One read, with what it saw: `errno` (positive) where the call failed. */
export type Check =
  | { op: 'lstat' | 'stat'; path: string; stat?: StatView; errno?: number }
  | { op: 'access'; path: string; mode: number; errno: number }
  | { op: 'read'; path: string; bytes?: Buffer; errno?: number }
  | { op: 'readdir'; path: string; entries?: { name: string; type: number }[]; errno?: number }
  | { op: 'realpath' | 'readlink'; path: string; result?: string; errno?: number }
  | { op: 'totalmem'; value: bigint }
  | { op: 'witness'; root: string; file: string; limit: number }
  | { op: 'native'; name: 'landlockAbi' | 'seccompNotify' | 'probeNamespaces'; value: number };

/**
 * STOCKADE_LAUNCH_DEBUG=2: where the recording begins and ends, as a system call strace shows
 * (an access(2) of a path that is never there), for test/launch.test.ts.
 */
function mark(where: 'begin' | 'end'): void {
  if (process.env.STOCKADE_LAUNCH_DEBUG !== '2') return;
  try {
    real.access(`/.stockade-recording-${where}`);
  } catch {}
}

/** Directory entry types as getdents64 reports them (d_type), which native/launch.cc compares. */
function direntType(d: fs.Dirent): number {
  if (d.isFIFO()) return 1;
  if (d.isCharacterDevice()) return 2;
  if (d.isDirectory()) return 4;
  if (d.isBlockDevice()) return 6;
  if (d.isFile()) return 8;
  if (d.isSymbolicLink()) return 10;
  if (d.isSocket()) return 12;
  return 0;
}

/** The fields of a bigint stat a check compares. */
export function statView(s: fs.BigIntStats): StatView {
  return {
    dev: s.dev,
    ino: s.ino,
    mode: s.mode,
    nlink: s.nlink,
    uid: s.uid,
    gid: s.gid,
    rdev: s.rdev,
    size: s.size,
    mtimeNs: s.mtimeNs,
    ctimeNs: s.ctimeNs,
  };
}

const errnoOf = (err: unknown): number => {
  const n = (err as NodeJS.ErrnoException).errno;
  if (typeof n !== 'number') throw err; // not a system call's failure: nothing to record
  return -n;
};

/** The functions the checks themselves read with, as they were before anything was wrapped. */
const { statSync, lstatSync } = fs;
const real = {
  stat: (p: string) => statSync(p, { bigint: true }),
  lstat: (p: string) => lstatSync(p, { bigint: true }),
  access: fs.accessSync,
  readFileSync: fs.readFileSync,
  readdirSync: fs.readdirSync,
  readlinkSync: fs.readlinkSync,
  realpath: fs.realpathSync.native,
};

/** The functions of node:fs a resolution may call while recording; every other one poisons. */
const READS = [
  'statSync',
  'lstatSync',
  'existsSync',
  'accessSync',
  'readFileSync',
  'readdirSync',
  'realpathSync',
  'readlinkSync',
  'mkdirSync',
] as const;

/** Addon functions that read nothing of the host, or only this process's own state. */
const NATIVE_PURE = new Set(['sha256Hex', 'onMainThread', 'threadCpuTime', 'prewarm', 'raiseOpenFileLimit', 'cancelSpecialScan', 'steps']);
const NATIVE_CHECKED = new Set(['landlockAbi', 'seccompNotify', 'probeNamespaces']);

export class Recording {
  readonly checks: Check[] = [];
  /** Why no record can be made of this resolution, once something it could not check happened. */
  poisoned: string | undefined;
  readonly #undo: (() => void)[] = [];
  #depth = 0;
  /** Fds of files opened read-only by path while recording (checked as reads of that path). */
  readonly #readFds = new Set<number>();
  readonly #scans = new Map<unknown, { root: string; file?: string; limit: number }>();

  /** Starts recording: node:fs, node:os and `addon` (the loaded addon's exports) are wrapped. */
  constructor(addon: object) {
    mark('begin');
    this.#wrapFs();
    this.#wrapOs();
    this.#wrapAddon(addon as Record<string, unknown>);
  }

  poison(why: string): void {
    if (this.poisoned === undefined && process.env.STOCKADE_LAUNCH_DEBUG === '2') process.stderr.write(`${why}: ${new Error().stack}\n`);
    this.poisoned ??= why;
  }

  /** Puts back every function it wrapped; the checks stay. */
  stop(): void {
    if (this.#undo.length > 0) mark('end');
    for (const undo of this.#undo.splice(0).reverse()) undo();
  }

  #replace<T extends object>(
    target: T,
    name: string,
    make: (real: (...args: unknown[]) => unknown) => (...args: unknown[]) => unknown,
  ): void {
    const obj = target as Record<string, unknown>;
    const real = obj[name];
    if (typeof real !== 'function') return;
    const bound = real.bind(target) as (...args: unknown[]) => unknown;
    const inner = make(bound);
    // Only the resolution's own calls count: one function of node:fs calling another (readFileSync
    // opens, stats, reads and closes through the module's own functions) is part of the first.
    const wrapped = (...args: unknown[]) => {
      if (this.#depth > 0) return bound(...args);
      this.#depth++;
      try {
        return inner(...args);
      } finally {
        this.#depth--;
      }
    };
    // realpathSync.native and the like: a property of the function itself.
    for (const key of Object.keys(real))
      (wrapped as unknown as Record<string, unknown>)[key] = (real as unknown as Record<string, unknown>)[key];
    obj[name] = wrapped;
    this.#undo.push(() => {
      obj[name] = real;
    });
  }

  #wrapFs(): void {
    const reads = new Set<string>(READS);
    // A file opened read-only by path, then read through its fd (the bounded read of a policy,
    // lib/policy/load.ts; an approval file opened without following a symlink, lib/approval.ts)
    // is a check of what the open found (lstat) and of its bytes; what is done with that fd is
    // part of the same read.
    const readFds = this.#readFds;
    const FD_READS = new Set(['fstatSync', 'readSync', 'closeSync']);
    const { O_RDONLY, O_NOFOLLOW } = fs.constants;
    const O_CLOEXEC = 0o2000000; // Node adds it to every open; not in fs.constants
    const readOnly = (flags: unknown) =>
      flags === undefined || flags === 'r' || (typeof flags === 'number' && (flags & ~(O_NOFOLLOW | O_CLOEXEC)) === O_RDONLY);
    for (const name of Object.keys(fs)) {
      if (reads.has(name) || typeof (fs as unknown as Record<string, unknown>)[name] !== 'function') continue;
      if (/^[A-Z]/.test(name)) continue; // classes (Stats, Dirent, ...): constructing one reads nothing
      this.#replace(fs, name, (original) => (...args) => {
        const [p, flags] = args;
        if (name === 'openSync' && typeof p === 'string' && readOnly(flags)) {
          let fd: number;
          try {
            fd = original(...args) as number;
          } finally {
            this.#stat('lstat', p);
            this.#access(p, fs.constants.R_OK);
          }
          readFds.add(fd);
          const last = this.checks.at(-2);
          if (last?.op === 'lstat' && last.stat !== undefined && (last.stat.mode & 0o170000n) === 0o100000n) {
            this.#try({ op: 'read', path: p }, () => ({ bytes: real.readFileSync(p) }));
          }
          return fd;
        }
        if (FD_READS.has(name) && typeof p === 'number' && readFds.has(p)) {
          if (name === 'closeSync') readFds.delete(p);
          return original(...args);
        }
        this.poison(`fs.${name}`);
        return original(...args);
      });
    }
    for (const name of Object.keys(fs.promises)) {
      this.#replace(fs.promises, name, (real) => (...args) => {
        this.poison(`fs.promises.${name}`);
        return real(...args);
      });
    }
    // Each wrapped read calls the real function for its caller, then looks again for the check,
    // in the check's own terms (a bigint stat, the raw bytes), with the functions as they were
    // before any wrapping: the two see the same host unless it changes in between, and then the
    // record holds what the check saw, which is what the next start compares.
    const wrap = (name: (typeof READS)[number] | 'realpathSync', check: (p: string, args: unknown[]) => void) => {
      this.#replace(fs, name, (real) => (...args) => {
        const p = args[0];
        if (typeof p === 'number' && this.#readFds.has(p)) return real(...args);
        if (typeof p !== 'string') this.poison(`fs.${name} of a ${typeof p === 'number' ? 'file descriptor' : 'non-string path'}`);
        try {
          return real(...args);
        } finally {
          // A call that threw (ENOENT is an answer too) is checked as one that returned.
          if (typeof p === 'string') check(p, args);
        }
      });
    };
    for (const op of ['stat', 'lstat'] as const) wrap(`${op}Sync`, (p) => this.#stat(op, p));
    wrap('existsSync', (p) => this.#access(p, fs.constants.F_OK));
    wrap('accessSync', (p, args) => this.#access(p, typeof args[1] === 'number' ? args[1] : fs.constants.F_OK));
    wrap('readFileSync', (p) => this.#try({ op: 'read', path: p }, () => ({ bytes: real.readFileSync(p) })));
    wrap('readdirSync', (p) =>
      this.#try({ op: 'readdir', path: p }, () => ({
        entries: real.readdirSync(p, { withFileTypes: true }).map((d) => ({ name: d.name, type: direntType(d) })),
      })),
    );
    wrap('readlinkSync', (p) => this.#try({ op: 'readlink', path: p }, () => ({ result: real.readlinkSync(p) })));
    const realpath = (p: string) => this.#try({ op: 'realpath', path: p }, () => ({ result: real.realpath(p) }));
    wrap('realpathSync', realpath);
    this.#replace(fs.realpathSync, 'native', (native) => (...args) => {
      try {
        return native(...args);
      } finally {
        if (typeof args[0] === 'string') realpath(args[0]);
        else this.poison('fs.realpathSync.native of a non-string path');
      }
    });
    // mkdir of a directory that is there already changes nothing, and is a check that it is
    // there; one that makes something is a change the next start would not repeat.
    this.#replace(fs, 'mkdirSync', (mkdir) => (...args) => {
      let made: unknown;
      try {
        made = mkdir(...args);
      } catch (err) {
        // Not made (EEXIST without `recursive`, or a failure the caller handles): a check still.
        if (typeof args[0] === 'string') this.#stat('lstat', args[0]);
        throw err;
      }
      if (made !== undefined || typeof args[0] !== 'string') this.poison(`fs.mkdirSync made ${String(args[0])}`);
      else this.#stat('lstat', args[0]);
      return made;
    });
  }

  #try(base: { op: Check['op']; path: string }, look: () => object): void {
    try {
      this.checks.push({ ...base, ...look() } as unknown as Check);
    } catch (err) {
      this.checks.push({ ...base, errno: errnoOf(err) } as unknown as Check);
    }
  }

  #stat(op: 'stat' | 'lstat', p: string): void {
    this.#try({ op, path: p }, () => ({ stat: statView(op === 'stat' ? real.stat(p) : real.lstat(p)) }));
  }

  #access(p: string, mode: number): void {
    try {
      real.access(p, mode);
      this.checks.push({ op: 'access', path: p, mode, errno: 0 });
    } catch (err) {
      this.checks.push({ op: 'access', path: p, mode, errno: errnoOf(err) });
    }
  }

  #wrapOs(): void {
    this.#replace(os, 'totalmem', (real) => () => {
      const value = real() as number;
      this.checks.push({ op: 'totalmem', value: BigInt(value) });
      return value;
    });
    // Node's homedir is $HOME where it is set (the environment is part of the record's key);
    // otherwise the password database, which no check reads.
    this.#replace(os, 'homedir', (real) => () => {
      if (!process.env.HOME) this.poison('os.homedir without HOME');
      return real();
    });
    for (const name of [
      'cpus',
      'availableParallelism',
      'networkInterfaces',
      'userInfo',
      'hostname',
      'loadavg',
      'freemem',
      'uptime',
      'tmpdir',
    ]) {
      this.#replace(os, name, (real) => (...args) => {
        this.poison(`os.${name}`);
        return real(...args);
      });
    }
  }

  #wrapAddon(addon: Record<string, unknown>): void {
    for (const name of Object.keys(addon)) {
      if (NATIVE_PURE.has(name) || typeof addon[name] !== 'function') continue;
      if (/^[A-Z]/.test(name)) {
        // A class (ToolRelay, Relay, PlanTemplate, ...): made while recording, it poisons, and
        // stays a class.
        const real = addon[name] as new (...args: unknown[]) => object;
        addon[name] = new Proxy(real, {
          construct: (target, args, newTarget) => {
            this.poison(`addon.${name}`);
            return Reflect.construct(target, args, newTarget);
          },
        });
        this.#undo.push(() => {
          addon[name] = real;
        });
        continue;
      }
      if (NATIVE_CHECKED.has(name)) {
        this.#replace(addon, name, (real) => () => {
          const value = real();
          this.checks.push({ op: 'native', name: name as 'landlockAbi', value: Number(value) });
          return value;
        });
      } else if (name === 'startSpecialScan') {
        this.#replace(addon, name, (real) => (...args) => {
          const handle = real(...args);
          const [root, limit, file] = args as [string, number, string | undefined];
          this.#scans.set(handle, { root, limit, file });
          return handle;
        });
      } else if (name === 'finishSpecialScan') {
        this.#replace(addon, name, (real) => (...args) => {
          const found = real(...args) as { witness?: string };
          const scan = this.#scans.get(args[0]);
          // A clean tree vouched for by its witness is a check; a walk without one is not.
          if (scan?.file !== undefined && (found.witness === 'held' || found.witness === 'written')) {
            this.checks.push({ op: 'witness', root: scan.root, file: scan.file, limit: scan.limit });
          } else {
            this.poison('a socket scan without a witness');
          }
          return found;
        });
      } else if (name !== 'spawn') {
        this.#replace(addon, name, (real) => (...args) => {
          this.poison(`addon.${name}`);
          return real(...args);
        });
      }
    }
  }
}
