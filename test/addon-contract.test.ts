// The addon's contract with lib/ (native/addon.cc): TypeScript validates policy and builds the
// plan; the addon checks only its shape, and every shape it refuses is a synchronous TypeError
// that names the field (`plan.mounts[0].target must be an absolute path`). Each message the plan
// reader can produce is exercised here with the exact text, and so are the constructors of the
// other native classes. Hostile shapes (getters that throw, proxies, huge sparse arrays, NaN,
// 2^32 as a uid) must come back as errors, never as a crash, a hang or a silently wrapped value.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { type NativePlan, type NativeSpawnResult, native, stepNames } from '../lib/native';
import { resolveSandbox } from '../lib/plan';

/** A plan of the right shape: it spawns, and fails at exec (the root tmpfs has no /bin/true). */
function base(): Record<string, unknown> {
  return {
    file: '/bin/true',
    argv: ['true'],
    envp: [],
    cwd: '/',
    hostname: 'contract',
    baseDir: '/tmp',
    rootOptions: 'mode=0755,size=1m',
    mounts: [],
    fds: [-1, -1, -1],
    useInit: false,
    seccomp: false,
  };
}

const noop = () => {};

/** spawn() with `plan` must throw exactly TypeError(message), synchronously. */
function refuses(plan: unknown, message: string): void {
  assert.throws(
    () => native().spawn(plan as NativePlan, noop, noop),
    (err: unknown) => {
      assert.ok(err instanceof TypeError, `a TypeError, got ${String(err)}`);
      assert.equal(err.message, message);
      return true;
    },
  );
}

/** `base()` with `patch` applied (undefined deletes a key). */
function withPlan(patch: Record<string, unknown>): Record<string, unknown> {
  const plan = base();
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete plan[k];
    else plan[k] = v;
  }
  return plan;
}

const bind = (over: Record<string, unknown> = {}) => ({ kind: 0, source: '/usr', target: '/usr', ...over });
const listener = (over: Record<string, unknown> = {}) => ({ type: 'tcp', address: Buffer.from([127, 0, 0, 1]), port: 80, ...over });

// [what, plan patch, exact message]
const cases: [string, Record<string, unknown>, string][] = [
  ['file missing', { file: undefined }, 'plan.file must be a string'],
  ['file a number', { file: 7 }, 'plan.file must be a string'],
  ['file relative', { file: 'bin/true' }, 'plan.file must be an absolute path'],
  ['file empty', { file: '' }, 'plan.file must be an absolute path'],
  ['argv missing', { argv: undefined }, 'plan.argv must be an array of strings'],
  ['argv a string', { argv: 'true' }, 'plan.argv must be an array of strings'],
  ['argv with a number', { argv: ['true', 1] }, 'plan.argv must be an array of strings'],
  ['argv with a NUL', { argv: ['tr\0ue'] }, 'plan.argv must be strings without NUL'],
  ['argv empty', { argv: [] }, 'plan.argv must be a non-empty array'],
  ['envp missing', { envp: undefined }, 'plan.envp must be an array of strings'],
  ['envp with a NUL', { envp: ['A=\0'] }, 'plan.envp must be strings without NUL'],
  ['cwd a number', { cwd: 1 }, 'plan.cwd must be a string'],
  ['hostname missing', { hostname: undefined }, 'plan.hostname must be a string'],
  ['uid a string', { uid: '0' }, 'plan.uid must be a number'],
  ['uid negative', { uid: -1 }, 'plan.uid must be an integer from 0 to 4294967294'],
  ['uid 2^32 (would wrap to root)', { uid: 2 ** 32 }, 'plan.uid must be an integer from 0 to 4294967294'],
  ['uid (uid_t)-1', { uid: 4294967295 }, 'plan.uid must be an integer from 0 to 4294967294'],
  ['gid fractional', { gid: 1.5 }, 'plan.gid must be an integer from 0 to 4294967294'],
  ['hostUid NaN', { hostUid: Number.NaN }, 'plan.hostUid must be an integer from 0 to 4294967294'],
  ['hostGid Infinity', { hostGid: Number.POSITIVE_INFINITY }, 'plan.hostGid must be an integer from 0 to 4294967294'],
  ['baseDir missing', { baseDir: undefined }, 'plan.baseDir must be a string'],
  ['rootOptions a boolean', { rootOptions: true }, 'plan.rootOptions must be a string'],
  ['mounts an object', { mounts: {} }, 'plan.mounts must be an array'],
  ['mounts with a number', { mounts: [1] }, 'plan.mounts must be an array of objects'],
  ['mount kind missing', { mounts: [{ target: '/x' }] }, 'plan.mounts[0].kind must be a number'],
  ['mount kind 9', { mounts: [bind({ kind: 9 })] }, 'plan.mounts[0].kind must be a MountOp kind'],
  ['mount kind -1', { mounts: [bind({ kind: -1 })] }, 'plan.mounts[0].kind must be a MountOp kind'],
  ['mount kind 0.5', { mounts: [bind({ kind: 0.5 })] }, 'plan.mounts[0].kind must be a MountOp kind'],
  ['mount target relative', { mounts: [bind({ target: 'usr' })] }, 'plan.mounts[0].target must be an absolute path'],
  ['mount target /', { mounts: [bind({ target: '/' })] }, 'plan.mounts[0].target must be an absolute path'],
  ['mount target missing', { mounts: [bind({ target: undefined })] }, 'plan.mounts[0].target must be a string'],
  ['bind source relative', { mounts: [bind({ source: 'usr' })] }, 'plan.mounts[0].source must be an absolute host path'],
  ['bind source missing', { mounts: [bind({ source: undefined })] }, 'plan.mounts[0].source must be an absolute host path'],
  ['mount source a number', { mounts: [bind({ source: 5 })] }, 'plan.mounts[0].source must be a string'],
  ['mount data a number', { mounts: [{ kind: 1, target: '/t', data: 5 }] }, 'plan.mounts[0].data must be a string'],
  ['mount readOnly a string', { mounts: [bind({ readOnly: 'yes' })] }, 'plan.mounts[0].readOnly must be a boolean'],
  ['mount devices a number', { mounts: [bind({ devices: 1 })] }, 'plan.mounts[0].devices must be a boolean'],
  ['mount createTarget null', { mounts: [bind({ createTarget: null })] }, 'plan.mounts[0].createTarget must be a boolean'],
  ['mount idmap a string', { mounts: [bind({ idmap: 'no' })] }, 'plan.mounts[0].idmap must be a boolean'],
  ['mount mode a string', { mounts: [{ kind: 1, target: '/t', mode: '755' }] }, 'plan.mounts[0].mode must be a number'],
  ['mount mode 0o10000', { mounts: [{ kind: 1, target: '/t', mode: 0o10000 }] }, 'plan.mounts[0].mode must be a mode from 0 to 0o7777'],
  ['second mount bad', { mounts: [bind(), bind({ target: 'x' })] }, 'plan.mounts[1].target must be an absolute path'],
  ['shareNetwork a number', { shareNetwork: 1 }, 'plan.shareNetwork must be a boolean'],
  ['routeAllLocal a string', { routeAllLocal: 'true' }, 'plan.routeAllLocal must be a boolean'],
  ['listeners an object', { listeners: {} }, 'plan.listeners must be an array'],
  ['listener type sctp', { listeners: [listener({ type: 'sctp' })] }, "plan.listeners[0].type must be 'tcp' or 'udp'"],
  ['listener type missing', { listeners: [listener({ type: undefined })] }, 'plan.listeners[0].type must be a string'],
  ['listener port 65536', { listeners: [listener({ port: 65536 })] }, 'plan.listeners[0].port must be a port number'],
  ['listener port -1', { listeners: [listener({ port: -1 })] }, 'plan.listeners[0].port must be a port number'],
  ['listener port 80.5', { listeners: [listener({ port: 80.5 })] }, 'plan.listeners[0].port must be a port number'],
  ['listener port a string', { listeners: [listener({ port: '80' })] }, 'plan.listeners[0].port must be a number'],
  [
    'listener address 5 bytes',
    { listeners: [listener({ address: Buffer.alloc(5) })] },
    'plan.listeners[0].address must be a Buffer of 4 or 16 bytes',
  ],
  [
    'listener address a string',
    { listeners: [listener({ address: '127.0.0.1' })] },
    'plan.listeners[0].address must be a Buffer of 4 or 16 bytes',
  ],
  ['65 listeners', { listeners: Array.from({ length: 65 }, () => listener()) }, 'plan.listeners must be at most 64 entries'],
  ['fds missing', { fds: undefined }, 'plan.fds must be an array of fds'],
  ['fds with a string', { fds: ['0'] }, 'plan.fds must be an array of fds'],
  ['fds with -2', { fds: [-2] }, 'plan.fds must be an array of fds'],
  ['fds with 2^31', { fds: [2 ** 31] }, 'plan.fds must be an array of fds'],
  ['fds with 1.5', { fds: [1.5] }, 'plan.fds must be an array of fds'],
  ['65 fds', { fds: Array.from({ length: 65 }, () => -1) }, 'plan.fds must be at most 64 entries'],
  ['limits an object', { limits: {} }, 'plan.limits must be an array'],
  ['limit resource missing', { limits: [{ soft: 1, hard: 1 }] }, 'plan.limits[0].resource must be a number'],
  [
    'limit resource 16',
    { limits: [{ resource: 16, soft: 1, hard: 1 }] },
    'plan.limits[0].resource must be an RLIMIT_* number from 0 to 15',
  ],
  ['limit soft negative', { limits: [{ resource: 4, soft: -1, hard: 1 }] }, 'plan.limits[0].soft must be an integer from 0 to 2^53'],
  ['limit hard above 2^53', { limits: [{ resource: 4, soft: 0, hard: 2 ** 54 }] }, 'plan.limits[0].hard must be an integer from 0 to 2^53'],
  ['useInit a string', { useInit: 'no' }, 'plan.useInit must be a boolean'],
  ['useInit without initPath', { useInit: true }, 'plan.initPath must be a string'],
  ['seccomp a number', { seccomp: 0 }, 'plan.seccomp must be a boolean'],
  ['seccompProfile 2', { seccompProfile: 2 }, 'plan.seccompProfile must be 0 (default) or 1 (strict)'],
  ['seccompProfile a string', { seccompProfile: 'strict' }, 'plan.seccompProfile must be a number'],
  ['landlock a number', { landlock: 5 }, 'plan.landlock must be an object'],
  ['landlock handledFs missing', { landlock: { rules: [] } }, 'plan.landlock.handledFs must be a number'],
  [
    'landlock handledFs negative',
    { landlock: { handledFs: -1, rules: [] } },
    'plan.landlock.handledFs must be a LANDLOCK_ACCESS_FS_* bit mask',
  ],
  ['landlock rules an object', { landlock: { handledFs: 1, rules: {} } }, 'plan.landlock.rules must be an array'],
  [
    'landlock rule path relative',
    { landlock: { handledFs: 1, rules: [{ path: 'usr', access: 1 }] } },
    'plan.landlock.rules[0].path must be an absolute path',
  ],
  [
    'landlock rule path with NUL',
    { landlock: { handledFs: 1, rules: [{ path: '/u\0', access: 1 }] } },
    'plan.landlock.rules[0].path must be an absolute path',
  ],
  [
    'landlock rule access a string',
    { landlock: { handledFs: 1, rules: [{ path: '/', access: '1' }] } },
    'plan.landlock.rules[0].access must be a number',
  ],
  [
    'landlock rule access 0.5',
    { landlock: { handledFs: 1, rules: [{ path: '/', access: 0.5 }] } },
    'plan.landlock.rules[0].access must be a LANDLOCK_ACCESS_FS_* bit mask',
  ],
  ['landlock scope a number', { landlock: { handledFs: 1, rules: [], scope: 1 } }, 'plan.landlock.scope must be a boolean'],
  [
    'landlock allowStdio a string',
    { landlock: { handledFs: 1, rules: [], allowStdio: 'y' } },
    'plan.landlock.allowStdio must be a boolean',
  ],
  // The sandbox's cgroups, made by the spawner thread (native/cgroup.cc) from what lib/limits decided.
  ['cgroups an object', { cgroups: {} }, 'plan.cgroups must be an array'],
  ['a relative cgroup dir', { cgroups: [{ dir: 'rel', version: 2, files: [] }] }, 'plan.cgroups[0].dir must be an absolute path'],
  ['cgroup version 3', { cgroups: [{ dir: '/x', version: 3, files: [] }] }, 'plan.cgroups[0].version must be 1 or 2'],
  [
    'a cgroup file name with a slash',
    { cgroups: [{ dir: '/x', version: 1, files: [{ name: 'a/b', value: '1' }] }] },
    'plan.cgroups[0].files[0].name must be a file name',
  ],
  [
    '9 cgroups',
    { cgroups: Array.from({ length: 9 }, () => ({ dir: '/x', version: 2, files: [] })) },
    'plan.cgroups must be at most 8 entries',
  ],
  ['budgets an object', { budgets: {} }, 'plan.budgets must be an array'],
  [
    'budget path elsewhere',
    { budgets: [{ path: '/proc/sys/kernel/pid_max', value: '1' }] },
    'plan.budgets[0].path must be a path under /proc/sys/user/',
  ],
  [
    'budget path with NUL',
    { budgets: [{ path: '/proc/sys/user/\0', value: '1' }] },
    'plan.budgets[0].path must be a path under /proc/sys/user/',
  ],
  [
    'budget value a number',
    { budgets: [{ path: '/proc/sys/user/max_user_namespaces', value: 1 }] },
    'plan.budgets[0].value must be a string',
  ],
  ['cgroupDirs a string', { cgroupDirs: '/sys/fs/cgroup/x' }, 'plan.cgroupDirs must be an array of strings'],
  ['cgroupDirs relative', { cgroupDirs: ['x'] }, 'plan.cgroupDirs must be an array of absolute paths'],
  ['9 cgroupDirs', { cgroupDirs: Array.from({ length: 9 }, () => '/x') }, 'plan.cgroupDirs must be at most 8 entries'],
];

describe('addon contract: the plan reader', () => {
  test('the base plan has the right shape: it spawns and fails at exec, with the step named', async () => {
    const result = await new Promise<unknown>((resolve) => native().spawn(base() as unknown as NativePlan, noop, resolve));
    assert.deepEqual(result, { error: { step: 26, errno: 2, index: -1 } });
    assert.deepEqual(stepNames()[26], { step: 'exec', syscall: 'execve' });
  });

  for (const [what, patch, message] of cases) {
    test(`${what}: ${message}`, () => refuses(withPlan(patch), message));
  }

  test('the first failure is the one reported', () => {
    refuses(withPlan({ file: 1, argv: 2 }), 'plan.file must be a string');
  });

  test('spawn() arguments other than (object, function, function) are a usage TypeError', () => {
    const usage = 'spawn(plan, onExit, onSpawn) takes a plan object and two functions';
    const spawn = native().spawn as unknown as (...args: unknown[]) => void;
    for (const args of [[], [base()], [base(), noop], ['plan', noop, noop], [base(), 1, noop], [base(), noop, null]]) {
      assert.throws(() => spawn(...args), { name: 'TypeError', message: usage });
    }
  });

  test('hostile shapes: a throwing getter, a Proxy, huge sparse arrays, a null prototype', () => {
    const getter = base();
    Object.defineProperty(getter, 'cwd', {
      get() {
        throw new RangeError('getter says no');
      },
    });
    // The getter's own exception is what the caller gets (the addon does not throw over it).
    assert.throws(() => native().spawn(getter as unknown as NativePlan, noop, noop), { name: 'RangeError', message: 'getter says no' });
    const trap = new Proxy(base(), {
      get() {
        throw new Error('trap');
      },
    });
    assert.throws(() => native().spawn(trap as unknown as NativePlan, noop, noop), { message: 'trap' });
    const proxy = new Proxy(base(), {
      get(target, key) {
        return key === 'argv' ? 42 : Reflect.get(target, key);
      },
    });
    refuses(proxy, 'plan.argv must be an array of strings');
    // length 2^32 - 1, all holes: refused at the first element, not walked.
    refuses(withPlan({ argv: new Array(2 ** 32 - 1) }), 'plan.argv must be an array of strings');
    refuses(withPlan({ mounts: new Array(2 ** 32 - 1) }), 'plan.mounts must be an array of objects');
    refuses(withPlan({ fds: new Array(2 ** 32 - 1) }), 'plan.fds must be an array of fds');
    const bare = Object.assign(Object.create(null), base(), { file: 'x' });
    refuses(bare, 'plan.file must be an absolute path');
    // The process still spawns afterwards.
    assert.doesNotThrow(() => native().spawn(base() as unknown as NativePlan, noop, noop));
  });

  test('the step table comes from native/steps.h: numbers 1 to 34, each name once', () => {
    const table = stepNames();
    assert.ok(Object.isFrozen(table));
    const numbers = Object.keys(table).map(Number);
    assert.deepEqual(
      numbers,
      Array.from({ length: 34 }, (_, i) => i + 1),
    );
    const names = numbers.map((n) => table[n].step);
    assert.equal(new Set(names).size, names.length);
    assert.deepEqual(
      [26, 29, 30, 31, 32, 33].map((n) => table[n]),
      [
        { step: 'exec', syscall: 'execve' },
        { step: 'init', syscall: 'fork' },
        { step: 'idmap-mount', syscall: 'mount_setattr' },
        { step: 'landlock', syscall: 'landlock_add_rule' },
        { step: 'cgroup', syscall: 'write' },
        { step: 'kernel-budget', syscall: 'write' },
      ],
    );
  });
});

describe('addon contract: the other classes', () => {
  const { UdpEndpoint, Relay, OomWatch } = native();
  const ctor = (C: unknown, ...args: unknown[]) => new (C as new (...a: unknown[]) => unknown)(...args);

  test('UdpEndpoint(fd, onMessage)', () => {
    const usage = { name: 'TypeError', message: 'new UdpEndpoint(fd, onMessage) takes an fd and a function' };
    assert.throws(() => ctor(UdpEndpoint), usage);
    assert.throws(() => ctor(UdpEndpoint, '3', noop), usage);
    assert.throws(() => ctor(UdpEndpoint, 3, 'f'), usage);
  });

  test('UdpEndpoint with an fd libuv cannot poll', () => {
    // An fd libuv cannot poll (none here: -1) is an Error with .errno, and nothing stays open.
    assert.throws(
      () => ctor(UdpEndpoint, -1, noop),
      (err: Error & { errno?: number }) => {
        assert.match(err.message, /^uv_poll_init: /);
        assert.equal(typeof err.errno, 'number');
        return true;
      },
    );
  });

  test('Relay(upHead, downHead, idleMs, onDone) and start(clientFd, upstreamFd)', () => {
    const usage = { name: 'TypeError', message: 'new Relay(upHead, downHead, idleMs, onDone) takes two Buffers, a number and a function' };
    assert.throws(() => ctor(Relay), usage);
    assert.throws(() => ctor(Relay, 'a', Buffer.alloc(0), 1, noop), usage);
    assert.throws(() => ctor(Relay, Buffer.alloc(0), Buffer.alloc(0), '1', noop), usage);
    assert.throws(() => ctor(Relay, Buffer.alloc(0), Buffer.alloc(0), 0, noop), {
      name: 'TypeError',
      message: 'new Relay(): idleMs must be positive',
    });
    const relay = ctor(Relay, Buffer.alloc(0), Buffer.alloc(0), 1000, noop) as { start(...a: unknown[]): number; close(): void };
    assert.throws(() => relay.start(), { name: 'TypeError', message: 'start(clientFd, upstreamFd) takes two fds' });
    assert.throws(() => relay.start(1, '2'), { name: 'TypeError', message: 'start(clientFd, upstreamFd) takes two fds' });
    assert.equal(relay.start(-1, -1), 9, 'EBADF: nothing taken');
    relay.close();
  });

  test('OomWatch(handle, onOom)', () => {
    // Only a sandbox handle holding an OOM eventfd will do (its fd moves to the watch, in native
    // code: worker.test.ts): no number, no other object, no other class's instance.
    const usage = {
      name: 'TypeError',
      message: 'new OomWatch(handle, onOom) takes a sandbox handle holding an OOM eventfd and a function',
    };
    assert.throws(() => ctor(OomWatch), usage);
    assert.throws(() => ctor(OomWatch, 3, noop), usage);
    assert.throws(() => ctor(OomWatch, {}, noop), usage);
  });

  test('pipe() and closeFd(fd)', () => {
    const [r, w] = native().pipe();
    assert.equal(native().closeFd(r), 0);
    assert.equal(native().closeFd(w), 0);
    assert.equal(native().closeFd(w), 9, 'EBADF: already closed');
    assert.throws(() => (native().closeFd as unknown as () => number)(), { name: 'TypeError', message: 'closeFd(fd) takes an fd' });
  });

  test('sha256Hex(text): the SHA-256 of its UTF-8, as node:crypto makes it', () => {
    for (const text of ['', 'abc', 'h\u00e9llo \u{1F600}', 'x'.repeat(100_000), '\u0000 nul inside']) {
      assert.equal(native().sha256Hex(text), createHash('sha256').update(text).digest('hex'));
    }
    const usage = { name: 'TypeError', message: 'sha256Hex(text) takes a string' };
    assert.throws(() => (native().sha256Hex as unknown as () => string)(), usage);
    assert.throws(() => (native().sha256Hex as unknown as (b: Buffer) => string)(Buffer.from('abc')), usage);
  });

  test('onMainThread(): true here, false in a Worker', async () => {
    assert.equal(native().onMainThread(), true);
    const worker = new Worker(
      `require('node:worker_threads').parentPort.postMessage(require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'native.js'))}).native().onMainThread())`,
      { eval: true },
    );
    // Both listened for at once: the exit can come in the same turn as the message.
    const exited = once(worker, 'exit');
    const [answer] = (await once(worker, 'message')) as [boolean];
    assert.equal(answer, false);
    await exited;
  });

  test('prewarm(key): its shape checked, then 0', () => {
    assert.throws(() => (native().prewarm as (...a: unknown[]) => unknown)(), {
      name: 'TypeError',
      message: 'prewarm(key) takes an object',
    });
    for (const [key, message] of [
      [{ cgroupParent: 'relative' }, /cgroupParent/],
      [{ budgets: [{ path: '/etc/passwd', value: '1' }] }, /a path under \/proc\/sys\/user\//],
      [{ landlock: { handledNet: 9 } }, /handledNet/],
      [{ landlock: 3 }, /landlock/],
      [{ uid: -1 }, /uid/],
    ] as const) {
      assert.throws(() => native().prewarm(key as never), { name: 'TypeError', message }, JSON.stringify(key));
    }
  });

  test('startSpecialScan, finishSpecialScan and cancelSpecialScan: each handle once', () => {
    const finishUsage = { name: 'TypeError', message: 'finishSpecialScan(handle) takes an unfinished startSpecialScan handle' };
    const cancelUsage = { name: 'TypeError', message: 'cancelSpecialScan(handle) takes an unfinished startSpecialScan handle' };
    const finished = native().startSpecialScan('/proc/self/fdinfo', 1000);
    assert.deepEqual(native().finishSpecialScan(finished), { witness: 'none' });
    assert.throws(() => native().finishSpecialScan(finished), finishUsage);
    assert.throws(() => native().cancelSpecialScan(finished), cancelUsage);
    const cancelled = native().startSpecialScan('/proc/self/fdinfo', 1000);
    native().cancelSpecialScan(cancelled);
    assert.throws(() => native().cancelSpecialScan(cancelled), cancelUsage);
    assert.throws(() => native().finishSpecialScan(cancelled), finishUsage);
    for (const bad of [undefined, 3, {}, Buffer.alloc(8)]) {
      assert.throws(() => native().cancelSpecialScan(bad as never), cancelUsage);
      assert.throws(() => native().finishSpecialScan(bad as never), finishUsage);
    }
    const startUsage = {
      name: 'TypeError',
      message: 'startSpecialScan(root, limit, witness?, racyMs?) takes a path, a number and optionally a witness file and a number',
    };
    for (const args of [[], ['/tmp'], [3, 3], ['/tmp', 10, 3, 0], ['/tmp', 10, '/tmp/w'], ['/tmp', 10, '/tmp/w', '0']]) {
      assert.throws(() => (native().startSpecialScan as (...a: unknown[]) => unknown)(...args), startUsage);
    }
  });

  test("a sandbox handle's kill(signal)", async () => {
    // A plan as lib/plan.ts makes it, spawned through the addon directly to get at the handle.
    const plan = { ...resolveSandbox('/bin/sleep', ['100'], {}).plan, file: '/bin/sleep', fds: [-1, -1, -1] };
    let exited!: (v: [number | null, string | null]) => void;
    const exit = new Promise<[number | null, string | null]>((r) => {
      exited = r;
    });
    const result = await new Promise<NativeSpawnResult>((resolve) =>
      native().spawn(plan as NativePlan, (code, signal) => exited([code, signal]), resolve),
    );
    assert.ok('handle' in result, JSON.stringify(result));
    const handle = result.handle as unknown as { kill(...a: unknown[]): number };
    assert.throws(() => handle.kill(), { name: 'TypeError', message: 'kill(signal) takes a signal number' });
    assert.throws(() => handle.kill('SIGKILL'), { name: 'TypeError', message: 'kill(signal) takes a signal number' });
    assert.equal(handle.kill(0), 0, 'signal 0: it runs');
    assert.equal(handle.kill(9), 0);
    assert.deepEqual(await exit, [null, 'SIGKILL']);
    assert.equal(handle.kill(0), 3, 'ESRCH once it has exited');
  });
});
