// The recorded form of a plan (native/planwire.h): what a launcher that is not a Node process
// spawns from. A real plan (lib/plan.ts, completed as lib/process.ts completes it) encodes, and
// decoding then encoding again gives the same bytes. The decoder takes bytes from a file: every
// truncation of a real encoding and a seeded run of mutations (bytes, bits, length and count
// fields; the seed is printed, rerun one with STOCKADE_FUZZ_SEED) come back as the bytes or as a
// reason, never a crash or a hang. A mutation that decodes re-encodes to itself: the form is
// canonical. The specific refusals are checked by their exact message.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, describe, test } from 'node:test';
import { MountKind, type NativePlan, native } from '../lib/native';
import { resolveSandbox } from '../lib/plan';
import { sharedTempDir } from './helpers';

const SEED = Number(process.env.STOCKADE_FUZZ_SEED ?? Date.now() % 2 ** 31);
const MUTATIONS = 2000;
console.log(`# planwire: ${MUTATIONS} mutations, seed ${SEED}`);
// A hang is a failure, not a stalled suite: a bound far above what this takes (well under a second).
const BOUND = { timeout: 120_000 };

/** mulberry32, as test/fuzz.test.ts: small, seeded, good enough to pick mutations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** A resolved plan with every part the form carries: each mount kind, IPv4 and IPv6, TCP and UDP listeners, cgroups of both versions. */
function realPlan(): NativePlan {
  const readOnly = sharedTempDir('planwire-ro');
  const readWrite = sharedTempDir('planwire-rw');
  after(() => {
    for (const dir of [readOnly, readWrite]) fs.rmSync(dir, { recursive: true, force: true });
  });
  const resolved = resolveSandbox('/bin/true', ['--flag', 'an argument'], {
    filesystem: { readOnly: [readOnly], readWrite: [readWrite] },
    limits: { openFiles: 256, pids: 100, memory: '256m', fileSize: '64m' },
    network: { allow: ['example.com'] },
    env: { LANG: 'C.UTF-8' },
  });
  // What lib/process.ts adds per spawn (fds, warm; its cgroups are lib/limits' SandboxCgroup.spec()).
  const plan: NativePlan = {
    ...resolved.plan,
    fds: [-1, 1, 2],
    uid: 1000,
    gid: 1001,
    hostUid: 100000,
    hostGid: 100001,
    cgroups: [
      {
        dir: '/sys/fs/cgroup/stockade/sandbox-1',
        version: 2,
        files: [
          { name: 'memory.max', value: '268435456' },
          { name: 'memory.swap.max', value: '0', optional: true },
        ],
      },
      {
        dir: '/sys/fs/cgroup/memory/stockade/sandbox-1',
        version: 1,
        files: [{ name: 'memory.limit_in_bytes', value: '1' }],
        watchOom: true,
      },
    ],
    cgroupDirs: ['/sys/fs/cgroup/stockade/sandbox-1', '/sys/fs/cgroup/memory/stockade/sandbox-1'],
    warm: true,
    warmRefill: false,
  };
  // A host whose /proc/sys is read-only (a container) gives no budgets: one of the kind lib/limits makes.
  if ((plan.budgets ?? []).length === 0) plan.budgets = [{ path: '/proc/sys/user/max_inotify_instances', value: '32' }];
  return plan;
}

interface Field {
  at: number;
  size: number;
}

/**
 * The layout of planwire.h, walked in TypeScript: where each field is ('plan.mounts[0].target',
 * and 'plan.mounts#count', 'plan.file#length' for the prefixes), and where every u32 length or
 * count is. Throws unless the walk ends exactly at the end, so it checks the documented layout too.
 */
function layout(b: Buffer): { fields: Map<string, Field>; prefixes: number[] } {
  const fields = new Map<string, Field>();
  const prefixes: number[] = [];
  let at = 8;
  const fixed = (name: string, size: number) => {
    fields.set(name, { at, size });
    at += size;
  };
  const prefix = (name: string): number => {
    const n = b.readUInt32LE(at);
    prefixes.push(at);
    fixed(name, 4);
    return n;
  };
  const str = (name: string) => fixed(name, prefix(`${name}#length`));
  const list = (name: string, entry: (at: string) => void) => {
    const n = prefix(`${name}#count`);
    for (let i = 0; i < n; i++) entry(`${name}[${i}]`);
  };
  const bools = (p: string, names: string[]) => {
    for (const n of names) fixed(`${p}${n}`, 1);
  };
  str('plan.file');
  list('plan.argv', str);
  list('plan.envp', str);
  str('plan.cwd');
  str('plan.hostname');
  for (const id of ['uid', 'gid', 'hostUid', 'hostGid']) fixed(`plan.${id}`, 4);
  str('plan.baseDir');
  str('plan.rootOptions');
  list('plan.mounts', (m) => {
    fixed(`${m}.kind`, 4);
    str(`${m}.source`);
    str(`${m}.target`);
    str(`${m}.data`);
    bools(`${m}.`, ['readOnly', 'devices', 'createTarget', 'idmap']);
    fixed(`${m}.mode`, 4);
  });
  bools('plan.', ['shareNetwork', 'routeAllLocal']);
  list('plan.listeners', (l) => {
    fixed(`${l}.family`, 4);
    fixed(`${l}.type`, 4);
    fixed(`${l}.address`, 16);
    fixed(`${l}.port`, 2);
  });
  list('plan.fds', (f) => fixed(f, 4));
  list('plan.cgroups', (c) => {
    str(`${c}.dir`);
    fixed(`${c}.version`, 4);
    list(`${c}.files`, (f) => {
      str(`${f}.name`);
      str(`${f}.value`);
      fixed(`${f}.optional`, 1);
    });
    fixed(`${c}.watchOom`, 1);
  });
  bools('plan.', ['warm', 'warmRefill']);
  list('plan.limits', (l) => {
    fixed(`${l}.resource`, 4);
    fixed(`${l}.soft`, 8);
    fixed(`${l}.hard`, 8);
  });
  fixed('plan.useInit', 1);
  str('plan.initPath');
  fixed('plan.seccomp', 1);
  fixed('plan.seccompProfile', 4);
  fixed('plan.landlock.enabled', 1);
  fixed('plan.landlock.handledFs', 8);
  list('plan.landlock.rules', (r) => {
    str(`${r}.path`);
    fixed(`${r}.access`, 8);
  });
  fixed('plan.landlock.handledNet', 8);
  list('plan.landlock.ports', (p) => {
    fixed(`${p}.port`, 2);
    fixed(`${p}.access`, 8);
  });
  bools('plan.landlock.', ['scope', 'allowStdio']);
  list('plan.budgets', (x) => {
    str(`${x}.path`);
    str(`${x}.value`);
  });
  list('plan.cgroupDirs', str);
  assert.equal(at, b.length, 'the layout of planwire.h ends where the encoding does');
  return { fields, prefixes };
}

/** Whether `name` is a string's content (it has a '#length' prefix field). */
function isStringContent(name: string, fields: Map<string, Field>): boolean {
  return fields.has(`${name}#length`);
}

/** planRoundTrip(bytes): a Buffer, which then equals `bytes` (the form is canonical), or a reason. */
function roundTrip(bytes: Buffer): Buffer | string {
  const out = native().planRoundTrip(bytes);
  if (typeof out === 'string') {
    assert.ok(out.length > 0, 'a refusal has a reason');
    return out;
  }
  assert.ok(Buffer.isBuffer(out), `a Buffer or a string, got ${typeof out}`);
  assert.ok(out.equals(bytes), 'bytes that decode encode back to themselves');
  return out;
}

/** `bytes` with field `name` (from layout()) overwritten by `write`. */
function patched(bytes: Buffer, name: string, write: (b: Buffer, at: number) => void): Buffer {
  const field = layout(bytes).fields.get(name);
  assert.ok(field !== undefined, `the encoding has ${name}`);
  const copy = Buffer.from(bytes);
  write(copy, field.at);
  return copy;
}

describe('planwire: a recorded plan', () => {
  const plan = realPlan();
  const bytes = native().encodePlan(plan);

  test('the real plan has every part the form carries', () => {
    const kinds = new Set(plan.mounts.map((m) => m.kind));
    assert.deepEqual([...kinds].sort(), Object.values(MountKind).sort(), 'every mount kind');
    assert.ok(
      plan.mounts.some((m) => Buffer.isBuffer(m.data)),
      'a file mount with Buffer content',
    );
    assert.ok(
      plan.mounts.some((m) => m.kind === MountKind.bind && m.readOnly === false),
      'a read-write bind',
    );
    const listeners = plan.listeners ?? [];
    assert.ok(listeners.some((l) => l.type === 'udp') && listeners.some((l) => l.address.length === 16), 'UDP and IPv6 listeners');
    assert.ok((plan.landlock?.rules.length ?? 0) > 1 && (plan.landlock?.ports?.length ?? 0) > 0, 'Landlock path and port rules');
    assert.ok((plan.limits ?? []).length > 1, 'rlimits');
    assert.equal(bytes.subarray(0, 8).toString('latin1'), 'STKPLAN1');
    layout(bytes);
  });

  test('decoded and encoded again: the same bytes', () => {
    assert.ok(Buffer.isBuffer(roundTrip(bytes)));
  });

  test('every field of the plan reaches the bytes', () => {
    const mounts = plan.mounts;
    const patches: Partial<NativePlan>[] = [
      { cwd: '/tmp' },
      { hostname: 'other' },
      { uid: 7 },
      { gid: 7 },
      { hostUid: 7 },
      { hostGid: 7 },
      { baseDir: '/mnt' },
      { rootOptions: 'mode=0700' },
      { mounts: mounts.map((m, i) => (i === 0 ? { ...m, readOnly: !(m.readOnly ?? true) } : m)) },
      { mounts: mounts.map((m, i) => (i === 0 ? { ...m, devices: true } : m)) },
      { mounts: mounts.map((m, i) => (i === 0 ? { ...m, createTarget: false } : m)) },
      { mounts: mounts.map((m, i) => (i === 0 ? { ...m, idmap: true } : m)) },
      { mounts: mounts.map((m, i) => (i === 0 ? { ...m, mode: 0o700 } : m)) },
      { shareNetwork: !plan.shareNetwork },
      { routeAllLocal: !plan.routeAllLocal },
      { fds: [0, 1, 2] },
      { warm: false },
      { warmRefill: true },
      { limits: [{ resource: 7, soft: 1, hard: 2 }] },
      { useInit: false },
      { initPath: '/elsewhere' },
      { seccomp: false },
      { seccompProfile: 1 - (plan.seccompProfile ?? 0) },
      { landlock: undefined },
      { landlock: { ...plan.landlock!, handledFs: 1 } },
      { landlock: { ...plan.landlock!, handledNet: 1 } },
      { landlock: { ...plan.landlock!, scope: false } },
      { landlock: { ...plan.landlock!, allowStdio: false } },
      { cgroups: plan.cgroups!.map((c) => ({ ...c, watchOom: !c.watchOom })) },
      { cgroups: plan.cgroups!.map((c) => ({ ...c, files: c.files.map((f) => ({ ...f, optional: !f.optional })) })) },
      { budgets: [] },
      { cgroupDirs: [] },
    ];
    for (const patch of patches) {
      const other = native().encodePlan({ ...plan, ...patch });
      assert.ok(!other.equals(bytes), `${JSON.stringify(Object.keys(patch))} changes the encoding`);
      assert.ok(Buffer.isBuffer(roundTrip(other)));
    }
  });

  test('every truncation is refused', BOUND, () => {
    for (let n = 0; n < bytes.length; n++) {
      const out = roundTrip(bytes.subarray(0, n));
      assert.equal(typeof out, 'string', `truncated to ${n} bytes`);
    }
  });

  test(`${MUTATIONS} seeded mutations: the bytes or a reason, never a crash`, BOUND, () => {
    const rand = prng(SEED);
    const { fields, prefixes } = layout(bytes);
    // Half the byte and bit mutations hit a field other than a string's content (any bytes are a
    // string's): the integers, flags, lengths and counts the decoder has to judge.
    const structural = [...fields.entries()]
      .filter(([name, f]) => !isStringContent(name, fields) && f.size > 0)
      .flatMap(([, f]) => Array.from({ length: f.size }, (_, i) => f.at + i));
    const interesting = [
      0,
      1,
      2,
      3,
      4,
      0x7f,
      0x80,
      0xff,
      4095,
      4096,
      4097,
      2 ** 20,
      2 ** 20 + 1,
      2 ** 24,
      2 ** 31 - 1,
      2 ** 31,
      2 ** 32 - 1,
    ];
    let decoded = 0;
    for (let i = 0; i < MUTATIONS; i++) {
      const copy = Buffer.from(bytes);
      const what = rand();
      const at = rand() < 0.5 ? structural[Math.floor(rand() * structural.length)] : Math.floor(rand() * copy.length);
      if (what < 0.4) {
        copy[at] = Math.floor(rand() * 256);
      } else if (what < 0.8) {
        copy[at] ^= 1 << Math.floor(rand() * 8);
      } else {
        // A length or count: a value from the edges, or off by a little from its own.
        const p = prefixes[Math.floor(rand() * prefixes.length)];
        const own = copy.readUInt32LE(p);
        const value = rand() < 0.5 ? interesting[Math.floor(rand() * interesting.length)] : own + Math.floor(rand() * 9) - 4;
        copy.writeUInt32LE(value >>> 0, p);
      }
      if (Buffer.isBuffer(roundTrip(copy))) decoded++;
    }
    // Most mutations of a string's bytes decode (any bytes are a string); most others are refused.
    console.log(`# planwire: ${decoded} of ${MUTATIONS} mutations decoded (and encoded back to themselves)`);
  });

  test('the refusals, by their message', () => {
    const wrongMagic = Buffer.from(bytes);
    wrongMagic[7] = '2'.charCodeAt(0);
    assert.equal(roundTrip(wrongMagic), 'not a recorded plan: the header is not STKPLAN1');
    assert.equal(roundTrip(Buffer.alloc(0)), 'not a recorded plan: the header is not STKPLAN1');
    assert.equal(roundTrip(Buffer.concat([bytes, Buffer.from([0])])), 'the recorded plan has 1 byte after its end');
    assert.equal(roundTrip(Buffer.concat([bytes, Buffer.alloc(3)])), 'the recorded plan has 3 bytes after its end');
    assert.equal(roundTrip(bytes.subarray(0, 12)), 'the recorded plan ends inside plan.file');
    // Semantic rules, checkPlan's (the messages spawn() gives for the same plan).
    const relative = patched(bytes, 'plan.mounts[0].target', (b, at) => {
      b[at] = 'x'.charCodeAt(0);
    });
    assert.equal(roundTrip(relative), 'plan.mounts[0].target must be an absolute path');
    for (const kind of [9, -1, 2 ** 31 - 1]) {
      const bad = patched(bytes, 'plan.mounts[0].kind', (b, at) => b.writeInt32LE(kind, at));
      assert.equal(roundTrip(bad), 'plan.mounts[0].kind must be a MountOp kind', `kind ${kind}`);
    }
    const expect = (name: string, write: (b: Buffer, at: number) => void, message: string) =>
      assert.equal(roundTrip(patched(bytes, name, write)), message, name);
    expect('plan.uid', (b, at) => b.writeUInt32LE(2 ** 32 - 1, at), 'plan.uid must be an integer from 0 to 4294967294');
    expect('plan.mounts[0].mode', (b, at) => b.writeUInt32LE(0o10000, at), 'plan.mounts[0].mode must be a mode from 0 to 0o7777');
    expect('plan.mounts[0].readOnly', (b, at) => b.writeUInt8(2, at), 'plan.mounts[0].readOnly must be a boolean byte (0 or 1), found 2');
    expect('plan.listeners[0].family', (b, at) => b.writeInt32LE(1, at), 'plan.listeners[0].address must be a Buffer of 4 or 16 bytes');
    expect('plan.listeners[0].type', (b, at) => b.writeInt32LE(3, at), "plan.listeners[0].type must be 'tcp' or 'udp'");
    expect('plan.cgroups[0].version', (b, at) => b.writeInt32LE(3, at), 'plan.cgroups[0].version must be 1 or 2');
    expect('plan.limits[0].resource', (b, at) => b.writeInt32LE(16, at), 'plan.limits[0].resource must be an RLIMIT_* number from 0 to 15');
    expect(
      'plan.limits[0].soft',
      (b, at) => b.writeBigUInt64LE(2n ** 64n - 1n, at),
      'plan.limits[0].soft must be an integer from 0 to 2^53',
    );
    expect('plan.seccompProfile', (b, at) => b.writeInt32LE(2, at), 'plan.seccompProfile must be 0 (default) or 1 (strict)');
    expect(
      'plan.landlock.handledNet',
      (b, at) => b.writeBigUInt64LE(4n, at),
      'plan.landlock.handledNet must be LANDLOCK_ACCESS_NET_* bits (0 to 3)',
    );
    expect('plan.fds[0]', (b, at) => b.writeInt32LE(-2, at), 'plan.fds must be an array of fds');
    expect(
      'plan.budgets[0].path',
      (b, at) => b.write('/proc/sys/kern', at, 'latin1'),
      'plan.budgets[0].path must be a path under /proc/sys/user/',
    );
    expect('plan.argv[0]', (b, at) => b.writeUInt8(0, at), 'plan.argv must be strings without NUL');
    expect('plan.file', (b, at) => b.writeUInt8('b'.charCodeAt(0), at), 'plan.file must be an absolute path');
    // The form's own limits, before anything is allocated.
    expect('plan.envp#count', (b, at) => b.writeUInt32LE(4097, at), 'plan.envp has 4097 entries, more than 4096');
    // A count above what is left (each entry takes a byte at least) is refused before any entry is read.
    const argvCount = layout(bytes).fields.get('plan.argv#count')!.at;
    const short = patched(bytes, 'plan.argv#count', (b, at) => b.writeUInt32LE(100, at)).subarray(0, argvCount + 4 + 10);
    assert.equal(roundTrip(short), 'the recorded plan ends inside plan.argv');
    expect('plan.cwd#length', (b, at) => b.writeUInt32LE(2 ** 32 - 1, at), 'plan.cwd is 4294967295 bytes long, more than 1048576');
    expect('plan.cwd#length', (b, at) => b.writeUInt32LE(2 ** 20, at), 'the recorded plan ends inside plan.cwd');
    assert.equal(roundTrip(Buffer.alloc(16 * 2 ** 20 + 1)), 'the recorded plan is 16777217 bytes, more than 16777216');
    // Lists within lists: 16 cgroups of 4096 files each pass every list's own cap, not the cap on
    // all entries together (no plan checkPlan accepts comes near it: cgroups are at most 8).
    const at = layout(bytes).fields.get('plan.cgroups#count')!.at;
    const file = Buffer.from([1, 0, 0, 0, 'a'.charCodeAt(0), 0, 0, 0, 0, 0]);
    const cgroup = Buffer.concat([
      Buffer.from([2, 0, 0, 0, 0x2f, 0x78, 2, 0, 0, 0, 0, 0x10, 0, 0]),
      ...Array(4096).fill(file),
      Buffer.from([0]),
    ]);
    const nested = Buffer.concat([bytes.subarray(0, at), Buffer.from([16, 0, 0, 0]), ...Array(16).fill(cgroup)]);
    assert.equal(roundTrip(nested), "the recorded plan's lists have more than 65536 entries in all (at plan.cgroups[15].files)");
  });

  test('encodePlan checks the plan as spawn() does, and refuses one past the form', () => {
    assert.throws(() => native().encodePlan({ ...plan, file: 'bin/true' }), {
      name: 'TypeError',
      message: 'plan.file must be an absolute path',
    });
    assert.throws(() => native().encodePlan({ ...plan, uid: -1 }), {
      name: 'TypeError',
      message: 'plan.uid must be an integer from 0 to 4294967294',
    });
    assert.throws(() => native().encodePlan(7 as never), { name: 'TypeError', message: 'encodePlan(plan) takes a plan object' });
    assert.throws(() => native().encodePlan({ ...plan, envp: ['A='.padEnd(2 ** 20 + 1, 'a')] }), {
      name: 'RangeError',
      message: 'encodePlan: the plan exceeds the recorded form: plan.envp[0] is 1048577 bytes long, more than 1048576',
    });
    assert.throws(() => native().planRoundTrip('STKPLAN1' as never), { name: 'TypeError', message: 'planRoundTrip(bytes) takes a Buffer' });
  });
});
