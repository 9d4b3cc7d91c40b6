// The library's shape, checked against node:child_process itself where both can be asked: the
// same argument errors (type, code, message), the same event order for a failed spawn, spawn()'s
// `signal`, `timeout` and `killSignal`, Symbol.asyncDispose, runSandboxed() with its bounded
// output, TERM inside, and nothing internal on the public object. Real sandboxes throughout.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { AbortError, MaxBufferError, runSandboxed, SandboxError, SandboxedProcess, spawnSandboxed } from '../lib';
import { run } from './helpers';

/** What child_process.spawn() throws for these arguments (its error is the reference). */
function nodeThrows(fn: () => unknown): { name: string; code: string; message: string } {
  try {
    fn();
  } catch (err) {
    const e = err as Error & { code: string };
    return { name: e.name, code: e.code, message: e.message };
  }
  assert.fail('node did not throw');
}

function shape(err: unknown) {
  const e = err as Error & { code: string };
  return { name: e.name, code: e.code, message: e.message };
}

/** 'close' as [code, signal]; unlike events.once(), an 'error' before it does not reject. */
function closeOf(child: NodeJS.EventEmitter): Promise<[number | null, string | null]> {
  return new Promise((resolve) => child.once('close', (code, signal) => resolve([code, signal])));
}

/** The events of a process, in order, until 'close'. */
function eventsUntilClose(child: NodeJS.EventEmitter): Promise<string[]> {
  const seen: string[] = [];
  for (const name of ['spawn', 'error', 'exit']) child.on(name, () => seen.push(name));
  return new Promise((resolve) =>
    child.once('close', (code, signal) => {
      seen.push(`close ${code} ${signal}`);
      resolve(seen);
    }),
  );
}

describe('arguments, as spawn() takes them', () => {
  test("spawnSandboxed('echo', 'hello') throws spawn()'s ERR_INVALID_ARG_TYPE, and runs nothing", () => {
    const expected = nodeThrows(() => spawn('echo', 'hello' as never));
    assert.equal(expected.code, 'ERR_INVALID_ARG_TYPE');
    let thrown: unknown;
    try {
      spawnSandboxed('echo', 'hello' as never);
    } catch (err) {
      thrown = err;
    }
    assert.deepEqual(shape(thrown), expected);
    assert.ok(thrown instanceof TypeError);
    for (const bad of [42, true, Symbol('x')]) {
      assert.deepEqual(
        shape(
          (() => {
            try {
              spawnSandboxed('echo', bad as never);
            } catch (err) {
              return err;
            }
          })(),
        ),
        nodeThrows(() => spawn('echo', bad as never)),
        String(bad),
      );
    }
  });

  test('options in place of args, and args omitted, work as for spawn()', async () => {
    const a = spawnSandboxed('echo', { stdio: ['ignore', 'pipe', 'ignore'] });
    const b = spawnSandboxed('echo', undefined, { stdio: ['ignore', 'pipe', 'ignore'] });
    // Listened to from the start, and 'close' awaited, not only the exit: as with child_process,
    // the exit can come before stdout's last bytes are read (CI: '' for '\n').
    const runs = [a, b].map((child) => {
      const r = { child, out: '', closed: once(child, 'close') };
      child.stdout?.on('data', (d) => {
        r.out += d;
      });
      return r;
    });
    for (const r of runs) {
      assert.deepEqual(await r.child.exited, { exitCode: 0, signalCode: null });
      await r.closed;
      assert.equal(r.out, '\n');
    }
  });

  test("a non-object options throws spawn()'s error", () => {
    for (const bad of ['x', 5, null]) {
      let thrown: unknown;
      try {
        spawnSandboxed('echo', [], bad as never);
      } catch (err) {
        thrown = err;
      }
      assert.deepEqual(
        shape(thrown),
        nodeThrows(() => spawn('echo', [], bad as never)),
        String(bad),
      );
    }
  });

  test('signal, timeout and killSignal are checked as spawn() checks them, before anything runs', () => {
    assert.throws(() => spawnSandboxed('true', [], { signal: {} as AbortSignal }), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_TYPE',
      message: nodeThrows(() => spawn('true', [], { signal: {} as AbortSignal })).message,
    });
    assert.throws(() => spawnSandboxed('true', [], { timeout: -1 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => spawnSandboxed('true', [], { timeout: 1.5 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    // Above 2^31-1 ms setTimeout fires after 1 ms: refused rather than honoured that way.
    assert.throws(() => spawnSandboxed('true', [], { timeout: 2 ** 31 }), /out of range\. It must be >= 0 and <= 2147483647/);
    assert.throws(() => spawnSandboxed('true', [], { killSignal: 'SIGNOPE' as NodeJS.Signals }), {
      name: 'TypeError',
      code: 'ERR_UNKNOWN_SIGNAL',
      message: nodeThrows(() => spawn('true', [], { killSignal: 'SIGNOPE' as NodeJS.Signals })).message,
    });
  });

  test('kill() takes what spawn().kill() takes, and refuses what it refuses', async () => {
    const child = spawnSandboxed('sleep', ['30'], { stdio: 'ignore' });
    assert.throws(() => child.kill('SIGNOPE' as NodeJS.Signals), { code: 'ERR_UNKNOWN_SIGNAL', message: 'Unknown signal: SIGNOPE' });
    assert.equal(child.kill('sigterm' as NodeJS.Signals), true, 'a lower-case name, as Node accepts');
    assert.deepEqual(await child.exited, { exitCode: null, signalCode: 'SIGTERM' });
    assert.equal(child.kill('SIGTERM'), false, 'after the exit');
  });
});

describe('events, as child_process emits them', () => {
  test("a spawn that fails emits 'error' then 'close' (no 'exit'), with the negative errno as the code", async () => {
    const node = spawn('/nonexistent/program');
    const nodeEvents = await eventsUntilClose(node);
    const child = spawnSandboxed('/nonexistent/program');
    const errors: unknown[] = [];
    child.on('error', (err) => errors.push(err));
    const events = await eventsUntilClose(child);
    assert.deepEqual(nodeEvents, ['error', 'close -2 null']);
    assert.deepEqual(events, nodeEvents);
    assert.ok(errors[0] instanceof SandboxError);
    assert.equal((errors[0] as SandboxError).code, 'ENOENT');
    assert.equal(child.exitCode, -2);
    assert.equal(child.pid, undefined);
    await assert.rejects(child.exited, { code: 'ENOENT' });
  });

  test("a run emits 'spawn', 'exit', 'close', and pid is undefined until 'spawn'", async () => {
    const child = spawnSandboxed('true', [], { stdio: 'ignore' });
    // The sandbox is set up on the addon's spawner thread: no pid yet (README, API).
    assert.equal(child.pid, undefined);
    const spawned = once(child, 'spawn').then(() => child.pid);
    const events = await eventsUntilClose(child);
    assert.deepEqual(events, ['spawn', 'exit', 'close 0 null']);
    const pid = await spawned;
    assert.ok(typeof pid === 'number' && pid > 0, `pid ${pid}`);
  });
});

describe('signal, timeout, killSignal', () => {
  test('aborting the signal kills the sandbox and emits an AbortError carrying the reason', async () => {
    const controller = new AbortController();
    const child = spawnSandboxed('sleep', ['30'], { stdio: 'ignore', signal: controller.signal });
    await once(child, 'spawn');
    const errors: Error[] = [];
    child.on('error', (err) => errors.push(err));
    const reason = new Error('the user went away');
    controller.abort(reason);
    const [code, signal] = await closeOf(child);
    assert.deepEqual([code, signal], [null, 'SIGTERM']);
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof AbortError);
    assert.equal(errors[0].name, 'AbortError');
    assert.equal((errors[0] as AbortError).code, 'ABORT_ERR');
    assert.equal(errors[0].cause, reason);
    assert.equal(child.killed, true);
  });

  test('a signal aborted already: the sandbox is killed as it starts, with killSignal', async () => {
    const child = spawnSandboxed('sleep', ['30'], { stdio: 'ignore', signal: AbortSignal.abort(), killSignal: 'SIGKILL' });
    const errors: Error[] = [];
    child.on('error', (err) => errors.push(err));
    const [code, signal] = await closeOf(child);
    assert.deepEqual([code, signal], [null, 'SIGKILL']);
    assert.deepEqual(
      errors.map((e) => e.name),
      ['AbortError'],
    );
  });

  test('an abort after the exit does nothing', async () => {
    const controller = new AbortController();
    const child = spawnSandboxed('true', [], { stdio: 'ignore', signal: controller.signal });
    child.on('error', () => assert.fail('no error after the exit'));
    await child.exited;
    controller.abort();
    assert.equal(child.killed, false);
  });

  test('timeout sends killSignal once it has passed (a payload ignoring SIGTERM gets SIGKILL when asked)', async () => {
    const term = spawnSandboxed('sleep', ['30'], { stdio: 'ignore', timeout: 200 });
    assert.deepEqual(await term.exited, { exitCode: null, signalCode: 'SIGTERM' });
    assert.equal(term.killed, true);
    const stubborn = spawnSandboxed('sh', ['-c', 'trap "" TERM; while :; do sleep 1; done'], {
      stdio: 'ignore',
      timeout: 200,
      killSignal: 'SIGKILL',
    });
    assert.deepEqual(await stubborn.exited, { exitCode: null, signalCode: 'SIGKILL' });
  });

  test('a payload done before its timeout is not killed', async () => {
    const child = spawnSandboxed('true', [], { stdio: 'ignore', timeout: 60_000 });
    assert.deepEqual(await child.exited, { exitCode: 0, signalCode: null });
    assert.equal(child.killed, false);
  });
});

describe('Symbol.asyncDispose', () => {
  test('leaving an `await using` scope kills the sandbox and resolves once it has closed', async () => {
    const child = spawnSandboxed('sleep', ['30'], { stdio: 'ignore' });
    await once(child, 'spawn');
    const closed = closeOf(child);
    // `await using` is TypeScript 5.2+ syntax over ES2022 here; the method is what it calls.
    await child[Symbol.asyncDispose]();
    assert.deepEqual(await closed, [null, 'SIGKILL']);
    await child[Symbol.asyncDispose](); // twice: nothing left to do
  });

  test('disposing a sandbox that failed to spawn resolves', async () => {
    const child = spawnSandboxed('/nonexistent/program');
    child.on('error', () => {});
    await child[Symbol.asyncDispose]();
    assert.equal(child.exitCode, -2);
  });
});

describe('runSandboxed()', () => {
  test('resolves { stdout, stderr, exitCode, signalCode } for any exit status', async () => {
    assert.deepEqual(await runSandboxed('sh', ['-c', 'echo out; echo err >&2; exit 3']), {
      stdout: 'out\n',
      stderr: 'err\n',
      exitCode: 3,
      signalCode: null,
    });
    assert.deepEqual(await runSandboxed('sh', ['-c', 'kill -KILL $$']), { stdout: '', stderr: '', exitCode: null, signalCode: 'SIGKILL' });
  });

  test('input goes to stdin; without it stdin is at its end; encoding buffer gives Buffers', async () => {
    assert.equal((await runSandboxed('cat', [], { input: 'fed\n' })).stdout, 'fed\n');
    assert.equal((await runSandboxed('cat')).stdout, '', 'cat ends: stdin was closed');
    const bytes = await runSandboxed('printf', ['\\377\\000'], { encoding: 'buffer' });
    assert.deepEqual(bytes.stdout, Buffer.from([0xff, 0]));
  });

  test('output beyond maxBuffer kills the sandbox and rejects with what was kept', async () => {
    // An endless writer: only the bound stops it.
    const err = await runSandboxed('sh', ['-c', 'echo start >&2; yes'], { maxBuffer: 64 * 1024 }).then(
      () => assert.fail('resolved'),
      (e: MaxBufferError) => e,
    );
    assert.ok(err instanceof MaxBufferError);
    assert.ok(err instanceof RangeError);
    assert.equal(err.code, 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER');
    assert.match(err.message, /^stdout maxBuffer length exceeded: the sandbox wrote more than 65536 bytes to stdout, so it was killed/);
    assert.equal(err.stdout.length, 64 * 1024, 'exactly maxBuffer bytes kept');
    assert.equal(err.stdout, 'y\n'.repeat(32 * 1024));
    assert.equal(err.stderr, 'start\n');
  });

  test('the same bound holds for stderr, and maxBuffer is checked as execFile checks it', async () => {
    const err = await runSandboxed('sh', ['-c', 'yes >&2'], { maxBuffer: 1000 }).catch((e: MaxBufferError) => e);
    assert.ok(err instanceof MaxBufferError);
    assert.match(err.message, /^stderr maxBuffer length exceeded/);
    assert.equal(err.stderr.length, 1000);
    assert.throws(() => runSandboxed('true', [], { maxBuffer: -1 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => runSandboxed('true', 'x' as never), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  test('a spawn failure rejects with the SandboxError; an abort with the AbortError; a timeout resolves with the signal', async () => {
    await assert.rejects(runSandboxed('/nonexistent/program'), (e: SandboxError) => e instanceof SandboxError && e.code === 'ENOENT');
    const controller = new AbortController();
    const pending = runSandboxed('sleep', ['30'], { signal: controller.signal });
    setImmediate(() => controller.abort());
    await assert.rejects(pending, { name: 'AbortError', code: 'ABORT_ERR' });
    assert.deepEqual(await runSandboxed('sleep', ['30'], { timeout: 100 }), {
      stdout: '',
      stderr: '',
      exitCode: null,
      signalCode: 'SIGTERM',
    });
  });
});

describe('environment and public surface', () => {
  test("TERM inside is the caller's, or 'dumb' where the caller has none; env.TERM overrides", async () => {
    const saved = process.env.TERM;
    try {
      process.env.TERM = 'xterm-256color';
      assert.equal((await run('sh', ['-c', 'echo $TERM'])).stdout, 'xterm-256color\n');
      delete process.env.TERM;
      assert.equal((await run('sh', ['-c', 'echo $TERM'])).stdout, 'dumb\n');
      process.env.TERM = 'x; rm -rf /'; // not a terminal name: not passed
      assert.equal((await run('sh', ['-c', 'echo "$TERM"'])).stdout, 'dumb\n');
      assert.equal((await run('sh', ['-c', 'echo $TERM'], { env: { TERM: 'vt100' } })).stdout, 'vt100\n');
    } finally {
      if (saved === undefined) delete process.env.TERM;
      else process.env.TERM = saved;
    }
  });

  test("limits.memory and fileSize take size strings ('1g'), as the type says", async () => {
    const r = await run('sh', ['-c', 'head -c 2048 /dev/zero > /tmp/f; echo $?'], { limits: { memory: '1g', fileSize: '1k' } });
    assert.notEqual(r.stdout, '0\n', 'a 2 KiB file is refused under fileSize 1k');
  });

  test('nothing internal is reachable on the object: only the ChildProcess-shaped fields', async () => {
    const child = spawnSandboxed('true', [], { stdio: 'ignore' });
    assert.ok(child instanceof SandboxedProcess);
    await child.exited;
    const own = Object.keys(child).filter((k) => !k.startsWith('_')); // EventEmitter's own _events, _eventsCount, _maxListeners
    assert.deepEqual(own.sort(), [
      'exitCode',
      'killed',
      'pid',
      'policyDigest',
      'signalCode',
      'spawnargs',
      'spawnfile',
      'stderr',
      'stdin',
      'stdio',
      'stdout',
    ]);
    for (const internal of ['handle', 'exitPromise', 'options', 'resolved', 'cgroup', 'egress', 'spawnError']) {
      assert.equal(internal in child, false, internal);
    }
  });
});
