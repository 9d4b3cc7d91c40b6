// Robustness of the parent side: nothing outlives the parent, nothing leaks into the sandbox
// or out of the parent, and the Node process is left as it was found.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { spawnSandboxed } from '../lib';
import { descendants, openFdCount, processIdentity, repoRoot, run, settleWarmPool } from './helpers';
import { waitFor } from './helpers/wait';

/** Running (not dead, not zombie) processes among `pids`. */
function alive(pids: number[]): number[] {
  return pids.filter((pid) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
    } catch {
      return false;
    }
  });
}

function zombieChildren(): number[] {
  return descendants(process.pid).filter((pid) => {
    if (pid === process.pid) return false;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
    } catch {
      return false;
    }
  });
}

const libPath = path.join(repoRoot, 'dist', 'lib');

describe('robustness', () => {
  test('parent SIGKILLed: every sandbox process is gone (PR_SET_PDEATHSIG, not a cleanup the parent runs)', async () => {
    const script = `
      const { spawnSandboxed } = require(${JSON.stringify(libPath)});
      const c = spawnSandboxed('sh', ['-c', 'sleep 1000 & sleep 1000 & sh -c "sleep 1000" & wait'], { stdio: 'ignore' });
      c.on('spawn', () => console.log(c.pid));`;
    const parent = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [chunk] = (await once(parent.stdout, 'data')) as [Buffer];
    const init = Number(chunk.toString().trim());
    let sandbox: number[] = [];
    await waitFor(
      () => {
        sandbox = descendants(init);
        return sandbox.filter((pid) => processIdentity(pid)?.comm === 'sleep').length === 3;
      },
      { what: () => `three sleeps under ${init}, found ${sandbox}` },
    );
    parent.kill('SIGKILL');
    await once(parent, 'exit');
    await waitFor(() => alive(sandbox).length === 0, { what: () => `the sandbox's processes to go; alive: ${alive(sandbox)}` });
  });

  test('no fd of the parent leaks into the sandbox, even without close-on-exec', async () => {
    // fds 3 and 4 of this helper are inherited pipes without FD_CLOEXEC.
    const script = `
      const { spawnSandboxed } = require(${JSON.stringify(libPath)});
      const c = spawnSandboxed('sh', ['-c', 'ls /proc/self/fd; cat /proc/1/status | grep -c . >/dev/null'], { stdio: ['ignore', 'inherit', 'inherit'] });`;
    const helper = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit', 'pipe', 'pipe'] });
    let out = '';
    helper.stdout?.on('data', (d) => (out += d));
    await once(helper, 'close');
    // ls itself holds fd 3 (the directory it lists).
    assert.deepEqual(out.trim().split('\n'), ['0', '1', '2', '3']);
  });

  test('200 spawns in a row leak no fds, no zombies and no memory in the parent', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const spawnOne = async () => {
      const c = spawnSandboxed('true', [], { stdio: 'ignore' });
      await c.exited;
    };
    for (let i = 0; i < 20; i++) await spawnOne(); // warm up
    // Counted with no warm child (its 4 fds are in this process's table until it is let go, 2 s
    // after the last spawn); the one the last spawn leaves goes the same way below.
    await settleWarmPool();
    gc();
    const fdsBefore = openFdCount();
    const rssBefore = process.memoryUsage().rss;
    for (let i = 0; i < 200; i++) await spawnOne();
    // The spawner makes the next warm child a moment after the last spawn is over, so the count
    // may dip to the baseline before its 4 fds arrive (CI once read 24 against 20 right after
    // such a dip): the pool is settled as it was for the baseline. Then the sockets of the last
    // sandbox, which close on a later tick than its 'close': an fd that leaked never comes back
    // and times the wait out.
    await settleWarmPool();
    await waitFor(() => openFdCount() <= fdsBefore, { what: () => `the fd count back to ${fdsBefore} (now ${openFdCount()})` });
    gc();
    assert.equal(openFdCount(), fdsBefore);
    assert.deepEqual(zombieChildren(), []);
    const growth = process.memoryUsage().rss - rssBefore;
    assert.ok(growth < 16 * 1024 * 1024, `RSS grew by ${(growth / 1048576).toFixed(1)} MiB over 200 spawns`);
  });

  test('the signal mask of the calling thread is restored after a spawn', async () => {
    const mask = () => /SigBlk:\s*(\w+)/.exec(fs.readFileSync('/proc/thread-self/status', 'utf8'))?.[1];
    const before = mask();
    await run('true');
    assert.equal(mask(), before);
  });

  test('a failing spawn leaves no fd and no process behind', async () => {
    const fds = openFdCount();
    for (let i = 0; i < 20; i++) {
      const c = spawnSandboxed('true', [], { cwd: '/does-not-exist' });
      await assert.rejects(c.exited, { code: 'ENOENT', step: 'chdir' });
    }
    // The spawner makes the next warm child (4 fds) after a spawn is over, on its own thread, and
    // lets it go 2 s after: one may be there now and not at the start, or the other way round.
    // A leaked fd never comes back and times the wait out.
    await waitFor(() => openFdCount() === fds, { what: () => `the fd count back to ${fds} (now ${openFdCount()})` });
    assert.deepEqual(zombieChildren(), []);
  });

  test('concurrent sandboxes are independent', async () => {
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => run('sh', ['-c', `echo ${i}; exit ${i}`])));
    for (const [i, r] of results.entries()) assert.deepEqual([r.stdout, r.code], [`${i}\n`, i]);
  });
});
