// The launch record (README, "A launcher that is not a Node process"): what a `stockade run`
// resolved (the addon's encoded plan), under the key native/launch.cc computed for the start
// (its argv, working directory, environment and ids), with every check of the resolution's host
// reads (lib/launch/readset.ts). native/launch.cc reads it at the next start with the same key,
// performs every check again and, only if each sees what the record holds, spawns the sandbox
// from the plan itself and execs `stockade attach`, so that the server starts before any Node
// process has. The layout is native/launchrecord.h's.
import fs = require('node:fs');
import path = require('node:path');

import { packageRoot } from '../location';
import { type Check, CheckOp, type StatView } from './readset';

/**
 * Where records live: beside the code, in the package's own dist/, for the reason the compile
 * cache and the scan witnesses are there (bin/stockade.js, lib/hostpath.ts): a record chooses
 * what the next sandbox is given, so whoever could write it could as well rewrite the launcher.
 * native/launch.cc reads one only when it and this directory are the user's own and writable by
 * nobody else; a root-owned global install has none.
 */
export const RECORD_DIR = path.join(packageRoot, 'dist', '.launch-cache');

/** The environment variables native/launch.cc hands the Node launcher; never part of a key. */
export const RECORD_ENV = 'STOCKADE_LAUNCH_RECORD';
export const ATTACH_ENV = 'STOCKADE_LAUNCH_ATTACH';

/** A change this close to the recording could share a ctime tick with it: no record then. */
export const RACY_NS = 2_000_000_000n;

const MAGIC = Buffer.from('STKLREC1', 'latin1');
const Tag = { key: 1, check: 2, plan: 3, pid: 4 } as const;

class Writer {
  readonly parts: Buffer[] = [];
  u8(n: number): void {
    this.parts.push(Buffer.from([n]));
  }
  u32(n: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    this.parts.push(b);
  }
  i32(n: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    this.parts.push(b);
  }
  u64(n: bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, n));
    this.parts.push(b);
  }
  bytes(b: Buffer | string): void {
    const buf = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
    this.u32(buf.length);
    this.parts.push(buf);
  }
  section(tag: number, body: Buffer): void {
    this.u8(tag);
    this.bytes(body);
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function statFields(w: Writer, s: StatView): void {
  for (const v of [s.dev, s.ino, s.mode, s.nlink, s.uid, s.gid, s.rdev, s.size, s.mtimeNs, s.ctimeNs]) w.u64(v);
}

function encodeCheck(c: Check): Buffer {
  const w = new Writer();
  w.u8(CheckOp[c.op]);
  switch (c.op) {
    case 'lstat':
    case 'stat':
      w.bytes(c.path);
      w.i32(c.errno ?? 0);
      if (c.stat) statFields(w, c.stat);
      break;
    case 'access':
      w.bytes(c.path);
      w.i32(c.mode);
      w.i32(c.errno);
      break;
    case 'read':
      w.bytes(c.path);
      w.i32(c.errno ?? 0);
      if (c.bytes) w.bytes(c.bytes);
      break;
    case 'readdir':
      w.bytes(c.path);
      w.i32(c.errno ?? 0);
      if (c.entries) {
        w.u32(c.entries.length);
        for (const e of c.entries) {
          w.u8(e.type);
          w.bytes(e.name);
        }
      }
      break;
    case 'realpath':
    case 'readlink':
      w.bytes(c.path);
      w.i32(c.errno ?? 0);
      if (c.result !== undefined) w.bytes(c.result);
      break;
    case 'totalmem':
      w.u64(c.value);
      break;
    case 'witness':
      w.bytes(c.root);
      w.bytes(c.file);
      w.u64(BigInt(c.limit));
      break;
    case 'native':
      w.bytes(c.name);
      w.u64(BigInt(c.value));
      break;
  }
  return w.done();
}

/** Why these checks cannot be trusted at the next start, or undefined. */
export function racyCheck(checks: readonly Check[], nowNs: bigint): string | undefined {
  for (const c of checks) {
    if (c.op !== 'stat' && c.op !== 'lstat') continue;
    // A directory's times are not compared (native/launchrecord.cc): only a file's can be racy.
    if (c.stat && (c.stat.mode & 0o170000n) !== 0o040000n && nowNs - c.stat.ctimeNs < RACY_NS) return `${c.path} changed just now`;
  }
  return undefined;
}

/** The record's bytes. */
export function encodeRecord(key: Buffer, checks: readonly Check[], plan: Buffer, pid: number): Buffer {
  const w = new Writer();
  w.parts.push(MAGIC);
  w.section(Tag.key, key);
  for (const c of checks) w.section(Tag.check, encodeCheck(c));
  w.section(Tag.plan, plan);
  w.section(Tag.pid, Buffer.from(String(pid), 'latin1'));
  return w.done();
}

/**
 * What native/launch.cc asked for, from RECORD_ENV ("<key fd>:<record file>"), or undefined:
 * the key (read from the fd, which is closed) and where the record goes, which must be a file
 * of RECORD_DIR. The variable is taken out of the environment before anything else reads it.
 */
export function takeRecordRequest(): { key: Buffer; file: string } | undefined {
  const value = process.env[RECORD_ENV];
  delete process.env[RECORD_ENV];
  if (value === undefined) return undefined;
  const m = /^(\d+):(.+)$/.exec(value);
  if (!m) return undefined;
  const fd = Number(m[1]);
  let key: Buffer;
  try {
    key = fs.readFileSync(fd);
  } catch {
    return undefined;
  } finally {
    try {
      fs.closeSync(fd);
    } catch {}
  }
  const file = m[2] as string;
  if (path.dirname(file) !== RECORD_DIR || !/^\d+-[0-9a-f]{16}$/.test(path.basename(file))) return undefined;
  return { key, file };
}

/** Records kept per user: a key per server config, and one per environment it is started with. */
export const KEPT_RECORDS = 64;

/**
 * Writes the record atomically (a temporary file renamed over it), 0600 in a 0700 directory,
 * and keeps this user's newest KEPT_RECORDS; false where it could not (dist/ not writable:
 * every start is then the Node launcher's).
 */
export function writeRecord(file: string, bytes: Buffer): boolean {
  try {
    fs.mkdirSync(RECORD_DIR, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}`;
    fs.writeFileSync(tmp, bytes, { mode: 0o600, flag: 'wx' });
    fs.renameSync(tmp, file);
  } catch {
    return false;
  }
  try {
    const mine = `${process.geteuid?.()}-`;
    const kept = fs
      .readdirSync(RECORD_DIR)
      .filter((n) => n.startsWith(mine) && !n.includes('.'))
      .map((n) => ({ n, at: fs.statSync(path.join(RECORD_DIR, n)).mtimeMs }))
      .sort((a, b) => b.at - a.at);
    for (const old of kept.slice(KEPT_RECORDS)) fs.rmSync(path.join(RECORD_DIR, old.n), { force: true });
  } catch {
    // Another launcher removed one meanwhile: the next write tidies up.
  }
  return true;
}

/** No record for this key: a start that cannot be recorded leaves none that could be tried. */
export function dropRecord(file: string): void {
  try {
    fs.rmSync(file, { force: true });
  } catch {
    // Not this user's to remove (a record directory another user made): launch.cc never reads it.
  }
}
