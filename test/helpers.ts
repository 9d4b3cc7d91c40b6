// Shared by the sandbox tests: run a sandbox to completion, build C fixtures where the sandbox
// user can read them, and know whether this run is privileged.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type SandboxOptions, spawnSandboxed } from '../lib';

export const isRoot = process.getuid?.() === 0;
export const repoRoot = path.join(__dirname, '..', '..');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command in a sandbox and collects its output (stdin closed). */
export async function run(command: string, args: string[] = [], options: SandboxOptions = {}, input?: string | Buffer): Promise<RunResult> {
  const child = spawnSandboxed(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (d: Buffer) => out.push(d));
  child.stderr?.on('data', (d: Buffer) => err.push(d));
  child.stdin?.end(input);
  const { exitCode, signalCode } = await child.exited;
  return { code: exitCode, signal: signalCode, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

/** Runs `sh -c script` in a sandbox. */
export function sh(script: string, options: SandboxOptions = {}): Promise<RunResult> {
  return run('/bin/sh', ['-c', script], options);
}

/**
 * A directory every user can read, for fixtures and planted files: the repository may sit where
 * the sandbox user (nobody) cannot traverse, e.g. under /root in CI.
 */
export function sharedTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `stockade-${prefix}-`));
  fs.chmodSync(dir, 0o755);
  return dir;
}

/**
 * A copy of this build installed as a package at `pkg` (bin, the bundle, the addon, stockade-init
 * and stockade-launch, package.json): a launcher whose dist/ the test user owns, as a user's own
 * install is, wherever the checkout itself sits.
 */
export function installCopy(pkg: string): void {
  fs.mkdirSync(path.join(pkg, 'dist'), { recursive: true });
  fs.mkdirSync(path.join(pkg, 'build', 'Release'), { recursive: true });
  fs.cpSync(path.join(repoRoot, 'bin'), path.join(pkg, 'bin'), { recursive: true });
  fs.cpSync(path.join(repoRoot, 'dist', 'lib'), path.join(pkg, 'dist', 'lib'), { recursive: true });
  for (const f of ['stockade.node', 'stockade-init', 'stockade-launch']) {
    fs.copyFileSync(path.join(repoRoot, 'build', 'Release', f), path.join(pkg, 'build', 'Release', f));
  }
  for (const f of ['package.json', 'stockade.schema.json']) fs.copyFileSync(path.join(repoRoot, f), path.join(pkg, f));
}

const fixtureCache = new Map<string, string>();

/**
 * Compiles test/fixtures/NAME.c (static, so it needs nothing from the sandbox) into a
 * world-readable directory and returns that directory; bind it read-only into the sandbox.
 */
export function compileFixture(name: string, extraFlags: string[] = []): string {
  const source = path.join(repoRoot, 'test', 'fixtures', `${name}.c`);
  const text = fs.readFileSync(source);
  const key = createHash('sha256').update(text).update(extraFlags.join(' ')).digest('hex').slice(0, 12);
  const cached = fixtureCache.get(key);
  if (cached) return cached;
  const dir = path.join(os.tmpdir(), `stockade-fixture-${name}-${key}-${process.getuid?.()}`);
  const binary = path.join(dir, name);
  if (!fs.existsSync(binary)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    const tmp = `${binary}.${process.pid}`;
    execFileSync('cc', ['-O1', '-static', '-Wall', '-o', tmp, source, ...extraFlags], { stdio: 'inherit' });
    fs.renameSync(tmp, binary);
  }
  fixtureCache.set(key, dir);
  return dir;
}

/** Number of open fds of this process. */
export function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** Host pids of `root` and all its descendants, from /proc. */
export function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {}
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [pid, ppid] of parent) if (ppid === out[i]) out.push(pid);
  return out;
}

/**
 * Host pids of the warm children below `root`: the spawner's warm pool (native/spawn.cc) keeps
 * one after a spawn, named `stockade-warm` until a spawn hands it a plan.
 */
export function warmChildren(root = process.pid): number[] {
  return descendants(root).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'stockade-warm';
    } catch {
      return false;
    }
  });
}

/**
 * Spawns one sandbox, waits for the warm child the spawner makes after it, and then until that
 * is let go (2 s unused): from here until the next spawn the process holds no warm child, so fd
 * and process counts taken now are exact.
 */
export async function settleWarmPool(): Promise<void> {
  const { waitFor } = await import('./helpers/wait');
  await spawnSandboxed('/bin/true', [], { stdio: 'ignore' }).exited;
  await waitFor(() => warmChildren().length === 1, 'the spawner to make a warm child');
  await waitFor(() => warmChildren().length === 0, 'the warm child to be let go');
  // The spawner's fds for it may close a moment after the child is gone
  // (limits.test once counted them in its baseline: 25 before, 21 after): the count must hold.
  let last = openFdCount();
  await waitFor(async () => {
    await new Promise((r) => setTimeout(r, 100));
    const now = openFdCount();
    const still = now === last;
    last = now;
    return still;
  }, 'the fd count to settle');
}

/** A host process as /proc shows it: its pid, name and start time (which tells a reused pid apart). */
export interface ProcessIdentity {
  pid: number;
  comm: string;
  start: string;
}

/** The identity of `pid`, or undefined when there is no such process. */
export function processIdentity(pid: number): ProcessIdentity | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    // Fields after the comm: state is field 3, starttime field 22 (proc(5)).
    const fields = stat.slice(close + 2).split(' ');
    return { pid, comm: stat.slice(stat.indexOf('(') + 1, close), start: fields[19] };
  } catch {
    return undefined;
  }
}

/** Whether that very process (not a later one with its pid) still exists, zombie or not. */
export function stillExists(p: ProcessIdentity): boolean {
  return processIdentity(p.pid)?.start === p.start;
}
