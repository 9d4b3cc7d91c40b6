// The payload's life: interpreters run, data passes intact, exit statuses and signals come
// back exactly, options and errors behave like child_process.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { SandboxError, SandboxOptionsError, spawnSandboxed } from '../lib';
import { descendants, type ProcessIdentity, processIdentity, run, sh, sharedTempDir, stillExists } from './helpers';
import { needs } from './helpers/tools';
import { waitFor } from './helpers/wait';

/** The host processes named `comm` in the sandbox whose init is `init`, once there are `count`. */
async function sandboxProcesses(init: number, comm: string, count: number): Promise<ProcessIdentity[]> {
  let found: ProcessIdentity[] = [];
  await waitFor(
    () => {
      found = descendants(init)
        .map(processIdentity)
        .filter((p): p is ProcessIdentity => p?.comm === comm);
      return found.length >= count;
    },
    { what: () => `${count} ${comm} processes under ${init}, found ${found.length}` },
  );
  return found;
}

describe('interpreters and processes', () => {
  test('node runs inside, as uid 65534, with a working event loop and fs', async () => {
    const r = await run('node', [
      '-e',
      'require("fs").writeFileSync("/tmp/a", "ok"); setTimeout(() => console.log(process.getuid(), require("fs").readFileSync("/tmp/a", "utf8")), 10)',
    ]);
    assert.equal(r.stdout, '65534 ok\n', r.stderr);
  });

  test('python3 runs inside', { skip: needs('python3') }, async () => {
    const r = await run('python3', ['-c', 'import os, json; print(json.dumps({"uid": os.getuid()}))']);
    assert.equal(r.stdout, '{"uid": 65534}\n', r.stderr);
  });

  test('fork and exec inside work, and the payload is PID 2 under stockade-init', async () => {
    const r = await sh('echo $$; (echo sub); /bin/echo exec; cat /proc/1/comm');
    assert.equal(r.stdout, '2\nsub\nexec\nstockade-init\n', r.stderr);
  });
});

describe('stdio', () => {
  test('10 MiB through stdout arrive intact', { skip: needs('python3') }, async () => {
    const size = 10 * 1024 * 1024;
    const r = spawnSandboxed('python3', ['-c', `import sys\nsys.stdout.buffer.write(bytes(range(256)) * ${size / 256})`]);
    const hash = createHash('sha256');
    let length = 0;
    r.stdout?.on('data', (d: Buffer) => {
      length += d.length;
      hash.update(d);
    });
    const { exitCode } = await r.exited;
    assert.equal(exitCode, 0);
    assert.equal(length, size);
    assert.equal(
      hash.digest('hex'),
      createHash('sha256')
        .update(Buffer.alloc(size, 0).map((_, i) => i % 256))
        .digest('hex'),
    );
  });

  test('1 MiB written to stdin comes back through cat', async () => {
    const input = Buffer.alloc(1024 * 1024, 'stockade');
    const r = await run('cat', [], {}, input);
    assert.equal(r.stdout.length, input.length);
    assert.equal(r.stdout, input.toString());
  });

  test("'ignore' gives /dev/null", async () => {
    const r = await run('sh', ['-c', 'cat; echo out; readlink /proc/self/fd/0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    assert.equal(r.stdout, 'out\n/dev/null\n');
  });

  test('the payload starts with its stdio only, in an fd table of 256 slots (no grace period to grow it)', async () => {
    // Run straight from stockade-init's child (no shell in between: a fork would size the table
    // again for the fds its parent holds). The slot that sized it is close-on-exec: not there.
    const fds = await run('/bin/ls', ['/proc/self/fd'], { stdio: ['ignore', 'pipe', 'pipe'] });
    assert.deepEqual(
      fds.stdout
        .trim()
        .split('\n')
        .map(Number)
        .sort((a, b) => a - b),
      [0, 1, 2, 3],
    ); // 3: ls's own listing
    const status = await run('/bin/grep', ['^FDSize:', '/proc/self/status'], { stdio: ['ignore', 'pipe', 'pipe'] });
    assert.match(status.stdout, /^FDSize:\s+256\n$/);
  });

  test("an fd number passes the parent's open file: the payload reads one and writes the other", async () => {
    const dir = sharedTempDir('fdpass');
    try {
      const input = path.join(dir, 'in');
      const output = path.join(dir, 'out');
      const content = Buffer.concat([Buffer.from('passed by fd\n'), Buffer.from([0, 255, 10])]);
      fs.writeFileSync(input, content);
      // Neither file is bound into the sandbox: the open file descriptions are all it gets.
      const inFd = fs.openSync(input, 'r');
      const outFd = fs.openSync(output, 'w', 0o644);
      try {
        const r = await run('sh', ['-c', 'cat; echo "in $(readlink /proc/self/fd/0)"; test -e "$0" || echo "not visible"', input], {
          stdio: [inFd, outFd, 'pipe'],
        });
        assert.equal(r.code, 0, r.stderr);
      } finally {
        fs.closeSync(inFd);
        fs.closeSync(outFd);
      }
      // Byte for byte: the input through fd 0 and fd 1, then what the payload said about fd 0.
      const written = fs.readFileSync(output);
      assert.deepEqual(written.subarray(0, content.length), content);
      assert.equal(written.subarray(content.length).toString(), `in ${input}\nnot visible\n`);
      assert.deepEqual(fs.readFileSync(input), content, 'the input file is unchanged');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('exit status', () => {
  for (const code of [0, 1, 42, 255]) {
    test(`exit code ${code} propagates`, async () => {
      const r = await sh(`exit ${code}`);
      assert.deepEqual([r.code, r.signal], [code, null]);
    });
  }

  test('death by a signal inside propagates as signalCode', async () => {
    const r = await sh('kill -SEGV $$');
    assert.deepEqual([r.code, r.signal], [null, 'SIGSEGV']);
  });

  test('kill() from the host: SIGTERM is forwarded by PID 1 to the payload', async () => {
    const child = spawnSandboxed('sleep', ['100']);
    await once(child, 'spawn');
    assert.equal(child.kill(), true);
    const { exitCode, signalCode } = await child.exited;
    assert.deepEqual([exitCode, signalCode, child.killed], [null, 'SIGTERM', true]);
  });

  test('kill("SIGKILL") ends the whole sandbox, background processes included (checked by pid)', async () => {
    const child = spawnSandboxed('sh', ['-c', 'sleep 100 & sleep 100 & wait'], { stdio: 'ignore' });
    await once(child, 'spawn');
    const sleeps = await sandboxProcesses(child.pid as number, 'sleep', 2);
    child.kill('SIGKILL');
    const { signalCode } = await child.exited;
    assert.equal(signalCode, 'SIGKILL');
    assert.deepEqual(sleeps.filter(stillExists), [], 'both background sleeps are gone');
    assert.equal(child.kill(), false); // already gone
  });

  test('the payload exiting ends a daemonized grandchild too (setsid, reparented to PID 1; checked by pid)', async () => {
    // The grandchild leaves the payload's session and process group, with its stdio on
    // /dev/null, so nothing of the payload holds it: only the sandbox's end does.
    const child = spawnSandboxed('sh', ['-c', '(setsid sleep 100 </dev/null >/dev/null 2>&1 &); echo started; read line'], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    // Output may come before 'spawn' (the payload runs while the spawner thread reports back).
    await Promise.all([once(child.stdout as NodeJS.ReadableStream, 'data'), once(child, 'spawn')]);
    const [daemon] = await sandboxProcesses(child.pid as number, 'sleep', 1);
    const parentOf = fs.readFileSync(`/proc/${daemon.pid}/stat`, 'utf8').split(') ')[1].split(' ')[1];
    assert.equal(Number(parentOf), child.pid, 'reparented to the sandbox init, not a child of the payload');
    child.stdin?.end('go\n'); // the payload exits
    assert.deepEqual(await child.exited, { exitCode: 0, signalCode: null });
    assert.equal(stillExists(daemon), false, `the daemon ${daemon.pid} is gone`);
  });

  test("events arrive in child_process order: 'spawn', 'exit', 'close'", async () => {
    const child = spawnSandboxed('true');
    const events: string[] = [];
    for (const e of ['spawn', 'exit', 'close']) child.on(e, () => events.push(e));
    await child.exited;
    assert.deepEqual(events, ['spawn', 'exit', 'close']);
    assert.equal(typeof child.pid, 'number');
  });
});

describe('options and errors', () => {
  test('env: values are set, `true` passes the host value through, nothing else is inherited', async () => {
    process.env.STOCKADE_PASS = 'through';
    try {
      const r = await sh('echo "$A $STOCKADE_PASS $HOME"', { env: { A: 'set', STOCKADE_PASS: true } });
      assert.equal(r.stdout, 'set through /home/nobody\n');
    } finally {
      delete process.env.STOCKADE_PASS;
    }
  });

  test('cwd is honoured; a missing cwd is a runtime error naming chdir and the path', async () => {
    assert.equal((await sh('pwd', { cwd: '/usr/bin' })).stdout, '/usr/bin\n');
    const child = spawnSandboxed('true', [], { cwd: '/nope' });
    const [err] = (await once(child, 'error')) as [SandboxError];
    assert.ok(err instanceof SandboxError);
    assert.equal(err.message, "ENOENT: no such file or directory, chdir '/nope' [step: chdir]");
    assert.deepEqual([err.code, err.errno, err.syscall, err.path, err.step], ['ENOENT', -2, 'chdir', '/nope', 'chdir']);
  });

  test('a command that is not in the sandbox emits ENOENT like child_process', async () => {
    const child = spawnSandboxed('no-such-command-xyz');
    const [err] = (await once(child, 'error')) as [SandboxError];
    assert.deepEqual([err.code, err.syscall, err.path], ['ENOENT', 'spawn no-such-command-xyz', 'no-such-command-xyz']);
    await assert.rejects(child.exited, { code: 'ENOENT' });
  });

  test('a host binary outside the binds is not found (it would not exist inside)', async () => {
    const child = spawnSandboxed(process.execPath === '/usr/bin/node' ? '/etc/hostname' : process.execPath);
    const [err] = (await once(child, 'error')) as [SandboxError];
    assert.equal(err.code, 'ENOENT');
  });

  test('invalid options throw synchronously, naming the field', () => {
    const cases: [unknown, RegExp][] = [
      [{ cwd: 'relative' }, /^options\.cwd: the path is relative; absolute paths only \(a path inside the sandbox\), found "relative"$/],
      [{ env: { 'BAD NAME': 'x' } }, /^options\.env\.BAD NAME: not a valid environment variable name$/],
      [{ env: { A: 1 } }, /^options\.env\.A: expected a string or true, found 1$/],
      [
        { filesystem: { readOnly: ['rel/path'] } },
        /^options\.filesystem\.readOnly\[0\]: the path is relative; absolute paths only, found "rel\/path"$/,
      ],
      [{ filesystem: { readWrite: ['/'] } }, /^options\.filesystem\.readWrite\[0\]: the host's \/ cannot be bound/],
      [{ filesystem: { readOnly: ['/proc/self'] } }, /managed by the sandbox itself/],
      [{ filesystem: { rw: [] } }, /^options\.filesystem\.rw: unknown option/],
      [{ limits: { memory: -1 } }, /^options\.limits\.memory: the size must be at least one byte, found -1$/],
      [{ limits: { openFiles: 1.5 } }, /^options\.limits\.openFiles: expected a positive integer, found 1\.5$/],
      [
        { hostname: 'bad host' },
        /^options\.hostname: `bad host` is not a valid hostname label \(letters, digits, inner hyphens\), found "bad host"$/,
      ],
      [{ network: 'everything' }, /^options\.network: expected 'none', 'host' or \{ allow: \[\.\.\.\] \}, found "everything"$/],
      [{ stdio: ['pipe', 'pipe'] }, /^options\.stdio: expected 3 slots, found 2$/],
      [{ stdio: 'bogus' }, /^options\.stdio\[0\]: expected 'pipe', 'inherit', 'ignore' or an fd/],
      [{ colour: 'blue' }, /^options\.colour: unknown option/],
    ];
    for (const [options, message] of cases) {
      assert.throws(
        () => spawnSandboxed('true', [], options as never),
        (err: Error) => err instanceof SandboxOptionsError && message.test(err.message),
        JSON.stringify(options),
      );
    }
    assert.throws(() => spawnSandboxed('', []), /options\.command: expected a non-empty string/);
    assert.throws(() => spawnSandboxed('true', ['a\0b']), /options\.args: expected an array of strings without NUL bytes/);
  });

  test('limits: rlimits apply inside', async () => {
    const r = await sh('ulimit -n; ulimit -c', { limits: { openFiles: 64 } });
    assert.equal(r.stdout, '64\n0\n');
  });

  test('limits.wallTime kills the sandbox with SIGKILL, and says so in a wall-time event', async () => {
    const child = spawnSandboxed('sleep', ['100'], { stdio: 'ignore', limits: { wallTime: 300 } });
    const events: Record<string, unknown>[] = [];
    child.on('audit', (e) => events.push(e));
    assert.deepEqual(await child.exited, { exitCode: null, signalCode: 'SIGKILL' });
    assert.deepEqual(
      events.filter((e) => e.event === 'wall-time').map((e) => e.limitMs),
      [300],
    );
  });

  test("network 'host' shares the host network (its namespace, a server on the host's loopback) and is logged as such", async () => {
    const server = net.createServer((s) => s.end('hello from the host loopback\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const script = `require('net').connect(${port}, '127.0.0.1').on('error', (e) => console.log(e.code)).pipe(process.stdout)`;
      const shared = spawnSandboxed('sh', ['-c', `readlink /proc/self/ns/net; exec node -e "${script}"`], {
        network: 'host',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const events: Record<string, unknown>[] = [];
      shared.on('audit', (e) => events.push(e));
      let out = '';
      shared.stdout?.on('data', (d) => {
        out += d;
      });
      assert.deepEqual(await shared.exited, { exitCode: 0, signalCode: null });
      assert.equal(out, `${fs.readlinkSync('/proc/self/ns/net')}\nhello from the host loopback\n`);
      assert.ok(events.some((e) => e.event === 'network-host'));
      // Without it, the same connection finds a loopback of the sandbox's own, with nothing on it.
      const own = await sh(`readlink /proc/self/ns/net; exec node -e "${script}"`);
      assert.equal(own.stdout.split('\n')[1], 'ECONNREFUSED');
      assert.notEqual(own.stdout.split('\n')[0], fs.readlinkSync('/proc/self/ns/net'));
    } finally {
      server.close();
    }
  });

  test('audit events: sandbox-start and sandbox-exit carry the pid and the policy digest', async () => {
    const child = spawnSandboxed('true');
    const events: Record<string, unknown>[] = [];
    child.on('audit', (e) => events.push(e));
    await child.exited;
    assert.deepEqual(
      events.map((e) => e.event),
      ['sandbox-start', 'sandbox-exit'],
    );
    assert.equal(events[0].pid, child.pid);
    assert.equal(events[1].policy, child.policyDigest);
    assert.match(child.policyDigest, /^[0-9a-f]{16}$/);
  });
});
