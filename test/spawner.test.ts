// The spawner thread (native/spawner.cc): spawns run off the JS thread, so spawnSandboxed()
// returns before the sandbox exists. What that must not change: the caller's fds may be closed
// at once, signals sent early arrive, many spawns in flight each get their own result, and a
// Worker's sandboxes die with the Worker while another Worker can still spawn.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { spawnSandboxed } from '../lib';

const lib = path.join(__dirname, '..', 'lib', 'index.js');

/** Runs `body` in a Worker that posts the sandbox's pid at 'spawn' and then its output. */
function inWorker(script: string): { worker: Worker; pid: Promise<number> } {
  const worker = new Worker(
    `const { parentPort } = require('node:worker_threads');
     const { spawnSandboxed } = require(${JSON.stringify(lib)});
     const c = spawnSandboxed('/bin/sh', ['-c', ${JSON.stringify(script)}], { stdio: 'ignore' });
     c.on('spawn', () => parentPort.postMessage(c.pid));
     c.on('error', (e) => parentPort.postMessage(e.message));`,
    { eval: true },
  );
  const pid = new Promise<number>((resolve, reject) => {
    worker.once('message', (m) => (typeof m === 'number' ? resolve(m) : reject(new Error(String(m)))));
    worker.once('error', reject);
  });
  return { worker, pid };
}

/** Gone or a zombie: the process no longer runs. */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (condition()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`gave up waiting: ${what}`);
}

describe('spawning off the JS thread', () => {
  test("spawnSandboxed returns before the sandbox exists; pid comes with 'spawn'", async () => {
    const child = spawnSandboxed('/bin/true');
    assert.equal(child.pid, undefined);
    await new Promise((r) => child.once('spawn', r));
    assert.equal(typeof child.pid, 'number');
    assert.deepEqual(await child.exited, { exitCode: 0, signalCode: null });
  });

  test('a stdio fd closed right after the call still reaches the payload, and its reused number is not touched', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stockade-spawner-'));
    try {
      const out = fs.openSync(path.join(dir, 'out'), 'w');
      const child = spawnSandboxed('/bin/sh', ['-c', 'echo to-out'], { stdio: ['ignore', out, 'ignore'] });
      fs.closeSync(out);
      const reused = fs.openSync(path.join(dir, 'other'), 'w'); // most likely the same number
      try {
        assert.deepEqual(await child.exited, { exitCode: 0, signalCode: null });
      } finally {
        fs.closeSync(reused);
      }
      assert.equal(fs.readFileSync(path.join(dir, 'out'), 'utf8'), 'to-out\n');
      assert.equal(fs.readFileSync(path.join(dir, 'other'), 'utf8'), '');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a signal sent before 'spawn' reaches the sandbox", async () => {
    const child = spawnSandboxed('/bin/sleep', ['100'], { stdio: 'ignore' });
    assert.equal(child.kill('SIGKILL'), true);
    assert.deepEqual(await child.exited, { exitCode: null, signalCode: 'SIGKILL' });
  });

  test('20 spawns in flight at once each get their own sandbox and output, in order', async () => {
    const children = Array.from({ length: 20 }, (_, i) => spawnSandboxed('/bin/sh', ['-c', `echo ${i}; cat /proc/1/comm`]));
    const order: number[] = [];
    for (const [i, c] of children.entries()) c.once('spawn', () => order.push(i));
    const outputs = await Promise.all(
      children.map(
        (c) =>
          new Promise<string>((resolve, reject) => {
            let out = '';
            c.stdout?.on('data', (d: Buffer) => {
              out += d.toString();
            });
            c.exited.then(() => resolve(out), reject);
          }),
      ),
    );
    assert.deepEqual(
      outputs,
      children.map((_, i) => `${i}\nstockade-init\n`),
    );
    assert.deepEqual(
      order,
      children.map((_, i) => i),
    );
    assert.equal(new Set(children.map((c) => c.pid)).size, 20);
  });

  test('a sandbox spawned in a Worker dies when the Worker ends; another Worker spawns afterwards', async () => {
    const first = inWorker('exec sleep 100');
    const pid = await first.pid;
    assert.ok(running(pid), 'the sandbox runs while its Worker does');
    await first.worker.terminate();
    await until(() => !running(pid), `sandbox ${pid} to die with its Worker`);

    const second = inWorker('exec sleep 100');
    const pid2 = await second.pid;
    assert.notEqual(pid2, pid);
    await second.worker.terminate();
    await until(() => !running(pid2), `sandbox ${pid2} to die with its Worker`);
  });
});
