// Worker threads and the addon's per-environment state (native/loop_handles.h, addon.cc's
// AddonData). Each Worker loads its own copy of the addon's state; when a Worker ends — by
// terminate(), by process.exit() inside it, or by running out of work — with sandboxes, UDP
// endpoints, relays or OOM watches alive, its async cleanup hook kills and reaps the sandboxes
// (their whole pid namespace), removes their cgroups, closes every fd and libuv handle, and only
// then lets Node unload the addon. What these tests check, each against the real kernel:
// the process survives (it used to segfault: a uv_close callback ran after the addon was
// unloaded), every process of the sandbox is gone by the time terminate() resolves (compared by
// pid and start time, so a reused pid is not mistaken for a survivor), no cgroup directory and
// no fd of the process is left behind, and the main thread spawns correctly afterwards.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { spawnSandboxed } from '../lib';
import { probeLimits } from '../lib/probe';
import { descendants, isRoot, openFdCount } from './helpers';
import { waitFor } from './helpers/wait';

const distLib = path.join(__dirname, '..', 'lib');
const delegated = process.env.STOCKADE_TEST_CGROUP_PARENT;
// As uid 65534 cgroups exist only under the subtree scripts/test.sh delegates; the Worker
// inherits the variable from process.env at its creation.
if (!isRoot && delegated !== undefined) process.env.STOCKADE_CGROUP_PARENT = delegated;
const cgroups = probeLimits().held.includes('memory');

/** Start time of a process (field 22 of /proc/PID/stat), or undefined when it is gone or a zombie. */
function startTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

/** What a Worker reports once everything it holds is alive. */
interface Alive {
  /** Host pids of the sandbox's processes (stockade-init, the shell, its background sleeps). */
  pids: number[];
}

/**
 * The cgroup directories of a Worker's sandboxes: lib/limits names them `<pid>-<threadId>-<n>`
 * under its parent in every hierarchy (`threadId` undefined: the warm pool's, `<pid>-<tid>-w<n>`,
 * of any thread). A bounded walk of the cgroup mounts (depth 8).
 */
function sandboxCgroups(threadId: number | undefined): string[] {
  const warm = new RegExp(`^${process.pid}-\\d+-w\\d+$`);
  const mine = (name: string) => (threadId === undefined ? warm.test(name) : name.startsWith(`${process.pid}-${threadId}-`));
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      if (mine(e.name)) found.push(path.join(dir, e.name));
      else if (depth < 8) walk(path.join(dir, e.name), depth + 1);
    }
  };
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n')) {
    const [left, right] = line.split(' - ');
    if (right.startsWith('cgroup ') || right.startsWith('cgroup2 ')) walk(left.split(' ')[4], 0);
  }
  return [...new Set(found)].sort();
}

/**
 * The inodes of the UDP sockets bound to 127.0.0.1:53 in the sandbox's network namespace (the
 * DNS responder's), and whether this process holds each: the native UdpEndpoint owns that fd.
 */
function dnsSocketsHeld(sandboxPid: number): boolean[] {
  const table = fs.readFileSync(`/proc/${sandboxPid}/net/udp`, 'utf8').trim().split('\n').slice(1);
  const inodes = table
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1] === '0100007F:0035')
    .map((f) => f[9]);
  const held = new Set(
    fs.readdirSync('/proc/self/fd').map((fd) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    }),
  );
  return inodes.map((inode) => held.has(`socket:[${inode}]`));
}

// The Worker's side. It spawns a sandbox with an allow list (so its egress proxy serves a UDP
// endpoint: the DNS responder on the sandbox's 127.0.0.1:53) and a memory limit (a cgroup; on
// cgroup v1 also an OOM watch, native/oomwatch.cc), whose shell leaves a process in the background, and relays two
// connections to the main thread's server through the kernel relay (native/relay.cc). `mode` says how it ends.
const workerBody = (lib: string) => `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
const { spawnSandboxed } = require(${JSON.stringify(path.join(lib, 'index.js'))});
const { startKernelRelay, stopReading, whenFlushed } = require(${JSON.stringify(path.join(lib, 'net', 'relay.js'))});
const fs = require('node:fs');

function descendants(root) {
  const parent = new Map();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\\d+$/.test(e)) continue;
    try {
      const s = fs.readFileSync('/proc/' + e + '/stat', 'utf8');
      parent.set(Number(e), Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {}
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [p, pp] of parent) if (pp === out[i]) out.push(p);
  return out;
}

const child = spawnSandboxed('/bin/sh', ['-c', 'sleep 1000 & echo up; exec sleep 1000'], {
  stdio: ['ignore', 'pipe', 'ignore'],
  network: { allow: ['example.com:443'] },
  limits: { memory: 256 * 1024 * 1024 },
});
child.on('error', (e) => parentPort.postMessage({ error: e.message }));
parentPort.on('message', (m) => m === 'exit' && process.exit(3));
// The cgroups exist once the spawner thread has taken the job (native/cgroup.cc), before the clone.
if (workerData.mode === 'in-flight') parentPort.postMessage({ inFlight: true });
const spawned = new Promise((r) => child.once('spawn', r));
child.stdout.once('data', async () => {
  // The shell is up with its background sleep (the output may come before 'spawn' is seen).
  await spawned;
  const pids = descendants(child.pid);
  const a = net.connect(workerData.port, '127.0.0.1');
  const b = net.connect(workerData.port, '127.0.0.1');
  await Promise.all([a, b].map((s) => new Promise((r) => s.once('connect', r))));
  a.write('A');
  b.write('B');
  await new Promise((r) => whenFlushed([a, b], r));
  // The hand-off lib/net makes: Node stops reading, the relay takes duplicates of both fds and
  // Node's sockets are destroyed; only the relay holds the connections now.
  stopReading(a);
  stopReading(b);
  const relay = startKernelRelay(a, b, Buffer.alloc(0), 600000, true, () => {});
  if (typeof relay === 'string') throw new Error('startKernelRelay: ' + relay);
  parentPort.postMessage({ alive: { pids } });
});
`;

/** The main thread's side of the relay: a server that pairs the Worker's two connections. */
async function relayServer(): Promise<{ port: number; sockets: net.Socket[]; received: string[]; close(): Promise<void> }> {
  const sockets: net.Socket[] = [];
  const received: string[] = [];
  const server = net.createServer((s) => {
    const i = sockets.push(s) - 1;
    received[i] = '';
    s.on('data', (d: Buffer) => {
      received[i] += d.toString();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    received,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Resolves when the peer has closed its end (every duplicate of its fd is closed). */
function peerClosed(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.readableEnded) return resolve();
    s.once('end', resolve);
    s.once('error', () => resolve());
  });
}

/**
 * One Worker holding a sandbox, a UDP endpoint, a relay (and an OOM watch on cgroup v1), ended
 * by `mode`; asserts what must hold once it is gone.
 */
async function workerWithEverythingAlive(mode: 'terminate' | 'exit'): Promise<void> {
  const server = await relayServer();
  const worker = new Worker(workerBody(distLib), { eval: true, workerData: { port: server.port, mode } });
  const exited = new Promise<number>((r) => worker.once('exit', r));
  try {
    const alive = await new Promise<Alive>((resolve, reject) => {
      worker.on('message', (m) => (m.alive ? resolve(m.alive) : m.error ? reject(new Error(m.error)) : undefined));
      worker.once('error', reject);
    });
    const started = new Map(alive.pids.map((pid) => [pid, startTime(pid)]));
    assert.ok(alive.pids.length >= 3, `stockade-init, sh and the background sleep: ${alive.pids}`);
    for (const [pid, t] of started) assert.notEqual(t, undefined, `sandbox process ${pid} runs`);
    assert.deepEqual(dnsSocketsHeld(alive.pids[0]), [true], "the DNS responder's UDP socket, held by a native UdpEndpoint");
    const cgroupDirs = sandboxCgroups(worker.threadId);
    assert.equal(cgroupDirs.length > 0, cgroups, `cgroups ${cgroups ? '' : 'not '}held: ${cgroupDirs}`);
    // The relay moves bytes both ways between the two connections.
    await until(() => server.sockets.length === 2, 'both relayed connections accepted');
    const [s0, s1] = server.sockets;
    // Each side got what the Worker wrote on it; then what one side sends comes out of the other.
    await until(() => server.received.join('').length === 2, 'the first bytes');
    assert.deepEqual([...server.received].sort(), ['A', 'B']);
    s0.write('x');
    s1.write('y');
    await until(() => server.received.join('').length === 4, `the relayed bytes (so far ${JSON.stringify(server.received)})`);
    assert.deepEqual(server.received, [`${server.received[0][0]}y`, `${server.received[1][0]}x`]);

    if (mode === 'terminate') await worker.terminate();
    else worker.postMessage('exit');
    assert.equal(await exited, mode === 'terminate' ? 1 : 3);

    // By the time the Worker is gone, nothing of the sandbox runs, and its cgroups are gone.
    for (const [pid, t] of started) assert.notEqual(startTime(pid), t, `sandbox process ${pid} outlived its Worker`);
    for (const dir of cgroupDirs) assert.equal(fs.existsSync(dir), false, `cgroup ${dir} left behind`);
    // The relay's duplicates of both sockets are closed: the main thread's ends see the FIN.
    await Promise.all([peerClosed(s0), peerClosed(s1)]);
  } finally {
    await worker.terminate();
    await server.close();
  }
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (condition()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.fail(`gave up waiting: ${what}`);
}

/**
 * No process of ours but ourselves: every sandbox spawned so far has been reaped, and so has
 * every warm child the Workers' spawners kept (the main thread keeps none: echoFromMain), with
 * its cgroup.
 */
function noChildren(): void {
  assert.deepEqual(descendants(process.pid), [process.pid]);
  assert.deepEqual(sandboxCgroups(undefined), []);
}

/** Runs /bin/echo from the main thread (keeping no warm child) and returns its stdout and exit. */
async function echoFromMain(text: string): Promise<{ out: string; exit: unknown }> {
  const child = spawnSandboxed('/bin/echo', [text], { warm: false });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const closed = new Promise((r) => child.once('close', r));
  const exit = await child.exited;
  await closed;
  return { out, exit };
}

describe('worker threads', () => {
  test('a Worker terminated with a sandbox, a UDP endpoint and a relay alive: the process survives, nothing is left', async () => {
    // The first round opens what the process keeps for good (the addon, libuv's and the
    // proxy's lazily made fds); from then on each round must give back every fd it took.
    await workerWithEverythingAlive('terminate');
    const fds = openFdCount();
    for (let i = 0; i < 3; i++) await workerWithEverythingAlive('terminate');
    assert.equal(openFdCount(), fds, 'fds of the process after three more Workers');
    noChildren();
    assert.deepEqual(await echoFromMain('after'), { out: 'after\n', exit: { exitCode: 0, signalCode: null } });
  });

  test('a Worker that calls process.exit() with everything alive: the same', async () => {
    await workerWithEverythingAlive('exit');
    noChildren();
  });

  test('a Worker terminated while its spawn is still on the spawner thread: killed, reaped, cgroup removed', async () => {
    const server = await relayServer();
    try {
      const fds = openFdCount();
      for (let i = 0; i < 5; i++) {
        const worker = new Worker(workerBody(distLib), { eval: true, workerData: { port: server.port, mode: 'in-flight' } });
        await new Promise<void>((resolve, reject) => {
          worker.on('message', (m) => m.inFlight && resolve());
          worker.once('error', reject);
        });
        // The spawner thread makes the cgroups as it takes the job (native/cgroup.cc), first thing.
        if (cgroups) await waitFor(() => sandboxCgroups(worker.threadId).length > 0, 'the spawner thread to make the cgroups');
        const dirs = sandboxCgroups(worker.threadId);
        assert.equal(dirs.length > 0, cgroups, `cgroups ${cgroups ? '' : 'not '}held: ${dirs}`);
        await worker.terminate();
        noChildren();
        for (const dir of dirs) assert.equal(fs.existsSync(dir), false, `cgroup ${dir} left behind`);
      }
      assert.equal(openFdCount(), fds);
    } finally {
      await server.close();
    }
  });

  test("a Worker that stops while onSpawn wraps the sandbox's listeners: not one listener fd is left open", async () => {
    // Deterministic version of the race above: the Worker calls process.exit() (which stops its
    // JavaScript as terminate() does) right after the k-th listener is wrapped and before it is
    // adopted (lib/net/sandbox.ts), so one fd is wrapped but still the native handle's, and the
    // rest are bare numbers nobody wrapped. Each must be closed exactly once.
    const stopping = (stopAt: string) => `
const { parentPort } = require('node:worker_threads');
const net = require('node:net');
const { native } = require(${JSON.stringify(path.join(distLib, 'native.js'))});
const { spawnSandboxed } = require(${JSON.stringify(path.join(distLib, 'index.js'))});
const stopAt = ${JSON.stringify(stopAt)};
let wrapped = 0;
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const r = listen.apply(this, args);
  if (String(++wrapped) === stopAt) process.exit(4);
  return r;
};
const addon = native();
const Udp = addon.UdpEndpoint;
addon.UdpEndpoint = function (...args) {
  const e = new Udp(...args);
  if (stopAt === 'udp') process.exit(4);
  return e;
};
const child = spawnSandboxed('/bin/sh', ['-c', 'exec sleep 1000'], { stdio: 'ignore', network: { allow: ['example.com:443'] } });
child.on('error', (e) => parentPort.postMessage({ error: e.message }));
child.on('spawn', () => parentPort.postMessage({ error: 'onSpawn ran to its end' }));
`;
    const fds = openFdCount();
    for (const stopAt of ['1', 'udp', '3', '7']) {
      const worker = new Worker(stopping(stopAt), { eval: true });
      const said: unknown[] = [];
      worker.on('message', (m) => said.push(m));
      assert.equal(await new Promise((r) => worker.once('exit', r)), 4, `stopped at ${stopAt}: ${JSON.stringify(said)}`);
      assert.deepEqual(said, []);
      noChildren();
      assert.equal(openFdCount(), fds, `fds left after stopping at ${stopAt}`);
    }
  });

  test('a Worker that stops in onSpawn before it watches the OOM eventfd: the eventfd is closed all the same', async (t) => {
    // cgroup v1 only (lib/limits): the spawner registers the eventfd before the clone and the
    // sandbox handle holds it until new OomWatch(handle, ...) takes it over. The Worker exits
    // in the constructor's place, so the watch is never made.
    const body = `
const { parentPort } = require('node:worker_threads');
const { native } = require(${JSON.stringify(path.join(distLib, 'native.js'))});
const { spawnSandboxed } = require(${JSON.stringify(path.join(distLib, 'index.js'))});
native().OomWatch = function () { process.exit(4); };
const child = spawnSandboxed('/bin/sh', ['-c', 'exec sleep 1000'], { stdio: 'ignore', limits: { memory: 256 * 1024 * 1024 } });
child.on('error', (e) => parentPort.postMessage({ error: e.message }));
child.on('spawn', () => { parentPort.postMessage({ watched: false }); child.kill('SIGKILL'); child.on('exit', () => process.exit(0)); });
`;
    const fds = openFdCount();
    const worker = new Worker(body, { eval: true });
    const said: unknown[] = [];
    worker.on('message', (m) => said.push(m));
    const code = await new Promise((r) => worker.once('exit', r));
    if (code === 0) return t.skip(`no v1 memory cgroup OOM watch here: ${JSON.stringify(said)}`);
    assert.equal(code, 4, JSON.stringify(said));
    noChildren();
    assert.equal(openFdCount(), fds, 'fds left (the OOM eventfd)');
  });

  test('20 Workers load the addon and end (some after a spawn); then the main thread spawns and its output is right', async () => {
    assert.deepEqual(await echoFromMain('before'), { out: 'before\n', exit: { exitCode: 0, signalCode: null } });
    const fds = openFdCount();
    for (let i = 0; i < 20; i++) {
      const worker = new Worker(
        `const { parentPort } = require('node:worker_threads');
         const { native } = require(${JSON.stringify(path.join(distLib, 'native.js'))});
         const { spawnSandboxed } = require(${JSON.stringify(path.join(distLib, 'index.js'))});
         native().landlockAbi();
         if (${i % 2} === 1) {
           const c = spawnSandboxed('/bin/echo', ['w${i}']);
           let out = '';
           c.stdout.on('data', (d) => { out += d; });
           c.on('close', (code) => parentPort.postMessage(out + code));
         } else {
           parentPort.postMessage('loaded');
         }`,
        { eval: true },
      );
      const exited = new Promise((r) => worker.once('exit', r));
      const said = await new Promise<string>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      assert.equal(said, i % 2 === 1 ? `w${i}\n0` : 'loaded');
      assert.equal(await exited, 0);
    }
    assert.deepEqual(await echoFromMain('after'), { out: 'after\n', exit: { exitCode: 0, signalCode: null } });
    assert.equal(openFdCount(), fds);
    noChildren();
  });
});
