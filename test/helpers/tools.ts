// Optional system tools some tests drive (real clients and servers: curl, python3, redis, a C
// compiler for static fixtures). A fresh machine with only Node passes `npm test`: a test whose
// tool is missing is skipped, saying what to install, and scripts/test.sh lists every such skip
// at the end of the run. With STOCKADE_TEST_STRICT=1 (.ci/run, which installs them all) a
// missing tool is a failure instead: CI must never pass by skipping (bubblewrap's
// BWRAP_MUST_WORK).
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, join } from 'node:path';
import { test } from 'node:test';

export type Tool = 'curl' | 'python3' | 'pip' | 'redis' | 'static-cc' | 'cross-cc' | 'strace';

const INSTALL: Record<Tool, string> = {
  curl: 'apt-get install curl',
  python3: 'apt-get install python3',
  // Pinned uvx servers are installed by pip in the sandbox (lib/cli/pypi-pin.ts).
  pip: 'apt-get install python3-pip (/usr/bin/python3 -m pip)',
  redis: 'apt-get install redis-server (redis-server and redis-cli)',
  'static-cc': 'apt-get install gcc libc6-dev (cc -static)',
  // The launch record's reads, compared with what the resolution's system calls touch.
  strace: 'apt-get install strace',
  // Packing builds both architectures' prebuilds: the other one is cross-compiled.
  'cross-cc': `apt-get install g++-${crossTriple()} (packing cross-compiles the other architecture)`,
};

function crossTriple(): string {
  return process.arch === 'arm64' ? 'x86-64-linux-gnu' : 'aarch64-linux-gnu';
}

/** The sandbox sees the host's /usr and /bin, so tools run inside must live there. */
function inSystemPath(program: string): boolean {
  return ['/usr/bin', '/bin', '/usr/local/bin'].some((d) => existsSync(join(d, program)));
}

function onPath(program: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((d) => d !== '' && existsSync(join(d, program)));
}

/** The system python3's pip (the sandbox binds /usr, not a user's pyenv). */
function systemPipWorks(): boolean {
  try {
    execFileSync('/usr/bin/python3', ['-m', 'pip', '--version'], { stdio: 'ignore', env: { PATH: '/usr/bin:/bin' } });
    return true;
  } catch {
    return false;
  }
}

function staticCcWorks(): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'stockade-cc-'));
  try {
    writeFileSync(join(dir, 'a.c'), 'int main(void) { return 0; }\n');
    execFileSync('cc', ['-static', '-o', join(dir, 'a'), join(dir, 'a.c')], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const present = new Map<Tool, boolean>();
function has(tool: Tool): boolean {
  let p = present.get(tool);
  if (p === undefined) {
    p =
      tool === 'curl'
        ? onPath('curl') && inSystemPath('curl')
        : tool === 'python3'
          ? onPath('python3') && inSystemPath('python3')
          : tool === 'pip'
            ? systemPipWorks()
            : tool === 'redis'
              ? onPath('redis-server') && inSystemPath('redis-cli')
              : tool === 'cross-cc'
                ? onPath(`${crossTriple().replace('x86-64', 'x86_64')}-g++`)
                : tool === 'strace'
                  ? onPath('strace')
                  : staticCcWorks();
    present.set(tool, p);
  }
  return p;
}

const strict = process.env.STOCKADE_TEST_STRICT === '1';
const reported = new Set<Tool>();

/**
 * The `skip` option for a test that needs these tools: false when all are there, else the
 * reason (recorded for the end-of-run list). Strict: never skips; a missing tool adds one
 * failing test naming it.
 */
export function needs(...tools: Tool[]): string | false {
  const missing = tools.filter((t) => !has(t));
  if (missing.length === 0) return false;
  const reason = `needs ${missing.join(', ')}: ${missing.map((t) => INSTALL[t]).join('; ')}`;
  if (strict) {
    for (const t of missing) {
      if (reported.has(t)) continue;
      reported.add(t);
      test(`${t} is installed (STOCKADE_TEST_STRICT=1)`, () => {
        throw new Error(`${t} is missing: ${INSTALL[t]}`);
      });
    }
    return false;
  }
  const log = process.env.STOCKADE_TEST_SKIPS;
  if (log) appendFileSync(log, `${basename(process.argv[1] ?? '')}\t${reason}\n`);
  return reason;
}
