// `stockade run` as an MCP client config launches it: stdio handed over (not copied), the exit
// code and death by signal propagated, signals forwarded, usage errors on one line.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './helpers';

const launcher = path.join(repoRoot, 'bin', 'stockade.js');
const run = (...args: string[]) => spawnSync(process.execPath, [launcher, 'run', ...args], { encoding: 'utf8', input: '' });

test("the exit code is the payload's, and 128+N after death by signal N", () => {
  assert.equal(run('--', 'sh', '-c', 'exit 7').status, 7);
  assert.equal(run('--', 'sh', '-c', 'kill -SEGV $$').status, 139);
  assert.equal(run('--', 'sh', '-c', 'kill -KILL $$').status, 137);
});

test("stdin, stdout and stderr are the launcher's own pipes, handed over without copying", async () => {
  const child = spawn(
    process.execPath,
    [launcher, 'run', '--', 'sh', '-c', 'readlink /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2; read line; echo "got $line"'],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  while (!out.includes('\n')) await once(child.stdout, 'data');
  // The payload's fds are the very pipes the launcher was given (same inodes), not copies.
  const mine = [0, 1, 2].map((fd) => fs.readlinkSync(`/proc/${child.pid}/fd/${fd}`));
  child.stdin.end('hello\n');
  await once(child, 'close');
  const lines = out.trim().split('\n');
  assert.deepEqual(lines.slice(0, 3), mine);
  assert.ok(
    mine.every((l) => /^(pipe|socket):\[\d+\]$/.test(l)),
    mine.join(),
  );
  assert.equal(lines[3], 'got hello');
});

test('SIGTERM and SIGINT to the launcher reach the payload', async () => {
  for (const [signal, code] of [
    ['SIGTERM', 42],
    ['SIGINT', 43],
  ] as const) {
    const child = spawn(
      process.execPath,
      [launcher, 'run', '--', 'sh', '-c', `trap 'exit 42' TERM; trap 'exit 43' INT; echo ready; while :; do sleep 0.05; done`],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    await once(child.stdout, 'data');
    child.kill(signal);
    const [status] = (await once(child, 'exit')) as [number];
    assert.equal(status, code, signal);
  }
});

test('a bad flag: one line on stderr, exit 2; --help: usage on stdout, exit 0', () => {
  const bad = run('--frobnicate', '--', 'true');
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  assert.match(bad.stderr, /^stockade run: .*frobnicate/);
  const missing = run('--ro', '/does/not/exist', '--', 'true');
  assert.equal(missing.status, 2);
  assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
  const help = run('--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^Usage: stockade run \[options\] -- COMMAND \[ARGS\.\.\.\]/);
  const unknown = spawnSync(process.execPath, [launcher, 'frob'], { encoding: 'utf8' });
  assert.equal(unknown.status, 2);
  assert.equal(unknown.stderr, "stockade: unknown command 'frob' (see stockade --help)\n");
});

test('a command that does not exist inside: one line, exit 127', () => {
  const r = run('--', 'no-such-program');
  assert.equal(r.status, 127);
  assert.match(r.stderr, /^stockade: ENOENT: no such file or directory, spawn no-such-program/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});

test('the X.509 library is read only by a run with a credential, from its own bundle and code cache', () => {
  // A preload records every file the launcher reads; the run with a credential needs the
  // per-run CA (lib/bundles.ts), the plain run must not pay for it.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stockade-bundles-'));
  try {
    const log = path.join(dir, 'reads');
    const preload = path.join(dir, 'reads.js');
    fs.writeFileSync(
      preload,
      `const fs = require('fs'); const read = fs.readFileSync; const seen = [];
fs.readFileSync = function (p, ...a) { seen.push(String(p)); return read.call(this, p, ...a); };
process.on('exit', () => fs.writeFileSync(${JSON.stringify(log)}, seen.join('\\n')));`,
    );
    const reads = (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const r = spawnSync(process.execPath, ['-r', preload, launcher, 'run', ...args, '--', '/bin/true'], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH, ...env },
      });
      assert.equal(r.status, 0, r.stderr);
      return fs.readFileSync(log, 'utf8').split('\n');
    };
    const bundle = path.join(repoRoot, 'dist', 'lib', 'x509.js');
    assert.ok(!reads([]).includes(bundle));
    reads(['--secret', 'T@api.example.com'], { T: 'token' });
    const second = reads(['--secret', 'T@api.example.com'], { T: 'token' });
    assert.ok(second.includes(bundle), second.join(' '));
    if (typeof (require('node:module') as { enableCompileCache?: unknown }).enableCompileCache !== 'function') {
      // Node 20: bin/stockade.js's own code cache, one file per bundle, named after its size and mtime.
      const st = fs.statSync(bundle);
      const cache = `x509-${process.version}-${process.arch}-${st.size}-${Math.floor(st.mtimeMs)}.v8`;
      assert.ok(second.includes(path.join(repoRoot, 'dist', '.compile-cache', cache)), second.join(' '));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("run's code cache holds its start: written once the payload exec'd, never by a run whose payload did not start", {
  skip:
    typeof (require('node:module') as { enableCompileCache?: unknown }).enableCompileCache === 'function'
      ? "Node's own compile cache (22.1+) is used instead"
      : false,
}, () => {
  // A package of its own (the launcher and the bundle copied, the rest linked), so that its
  // dist/.compile-cache starts empty and no other test's run writes into it.
  const pkg = fs.mkdtempSync(path.join(os.tmpdir(), 'stockade-cache-'));
  try {
    fs.mkdirSync(path.join(pkg, 'bin'));
    fs.copyFileSync(launcher, path.join(pkg, 'bin', 'stockade.js'));
    fs.cpSync(path.join(repoRoot, 'dist', 'lib'), path.join(pkg, 'dist', 'lib'), { recursive: true });
    for (const f of ['build', 'node_modules', 'package.json', 'stockade.schema.json']) {
      if (fs.existsSync(path.join(repoRoot, f))) fs.symlinkSync(path.join(repoRoot, f), path.join(pkg, f));
    }
    const cacheDir = path.join(pkg, 'dist', '.compile-cache');
    const caches = () => (fs.existsSync(cacheDir) ? fs.readdirSync(cacheDir).filter((f) => f.startsWith('run-')) : []);
    const own = (...args: string[]) =>
      spawnSync(process.execPath, [path.join(pkg, 'bin', 'stockade.js'), 'run', ...args], { encoding: 'utf8', input: '' });

    assert.equal(own('--', 'no-such-program').status, 127);
    assert.deepEqual(caches(), [], 'a run whose payload never started writes no cache');
    const first = own('--', '/bin/true');
    assert.equal(first.status, 0, first.stderr);
    const [cache] = caches();
    const st = fs.statSync(path.join(pkg, 'dist', 'lib', 'cli.js'));
    assert.equal(cache, `run-${process.version}-${process.arch}-${st.size}-${Math.floor(st.mtimeMs)}.v8`);
    // The next start takes it as it is (V8 accepts it, so nothing is written again).
    const written = fs.statSync(path.join(cacheDir, cache));
    const second = own('--', 'sh', '-c', 'exit 3');
    assert.equal(second.status, 3, second.stderr);
    assert.deepEqual(caches(), [cache]);
    assert.equal(fs.statSync(path.join(cacheDir, cache)).mtimeMs, written.mtimeMs);
    assert.equal(fs.statSync(path.join(cacheDir, cache)).ino, written.ino);
  } finally {
    fs.rmSync(pkg, { recursive: true, force: true });
  }
});
