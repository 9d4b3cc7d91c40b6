// The warm pool (native/spawn.cc, "The warm pool"; README, Architecture notes): the spawner makes
// the next sandbox's user, pid, net, ipc, uts and cgroup namespaces while it is idle, and the
// next spawn like the last one takes them. What must hold: a sandbox made from a warm child is
// as fresh as one made by clone() (no state of the sandbox before it, its mount table copied
// when its plan arrives, only its planned fds), a plan that differs never takes one, a warm
// child that died is replaced, and none outlives its process or 2 s unused.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { type SandboxOptions, spawnSandboxed } from '../lib';
import { openFdCount, repoRoot, settleWarmPool, sharedTempDir, warmChildren } from './helpers';
import { waitFor } from './helpers/wait';

const isRoot = process.getuid?.() === 0;

function comm(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Runs a sandbox to its end: its output, exit code and whether it was made from a warm child. */
async function runOnce(command: string, args: string[], options: SandboxOptions = {}) {
  const child = spawnSandboxed(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  let warm: boolean | undefined;
  child.on('audit', (e) => {
    if (e.event === 'sandbox-start') warm = e.warm === true;
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d;
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d;
  });
  const { exitCode } = await child.exited;
  return { stdout, stderr, code: exitCode, warm };
}

/** A sandbox is over and the spawner has made the next warm child. */
async function warmReady(): Promise<number> {
  await waitFor(() => warmChildren().length === 1, 'the spawner to make a warm child');
  return warmChildren()[0];
}

// The sandbox before: listens on TCP and on an abstract unix socket, leaves a file in its /tmp
// and a SysV message queue, and keeps running while the next one looks for all of it.
const holder = `
const net = require('node:net');
require('node:fs').writeFileSync('/tmp/left-by-the-first', 'x');
const a = net.createServer().listen(47123, '127.0.0.1');
const b = net.createServer().listen('\\0stockade-warm-test');
Promise.all([a, b].map((s) => new Promise((r) => s.once('listening', r)))).then(() => process.stdout.write('up\\n'));
setTimeout(() => {}, 60000);
`;

const probe = `
const net = require('node:net');
const fs = require('node:fs');
const tryConnect = (to) => new Promise((r) => net.connect(to).once('connect', () => r('connected')).once('error', (e) => r(e.code)));
(async () => {
  const out = {
    tcp: await tryConnect({ host: '127.0.0.1', port: 47123 }),
    unix: await tryConnect({ path: '\\0stockade-warm-test' }),
    pids: fs.readdirSync('/proc').filter((e) => /^\\d+$/.test(e)).sort(),
    tmp: fs.readdirSync('/tmp'),
    abstract: fs.readFileSync('/proc/net/unix', 'utf8').includes('stockade-warm-test'),
  };
  process.stdout.write(JSON.stringify(out));
})();
`;

describe('the warm pool', () => {
  test('a sandbox made from a warm child sees nothing of the sandbox before it', async () => {
    await runOnce('/bin/true', []); // the first spawn of the process: a warm child follows
    await warmReady();
    const first = spawnSandboxed('/usr/bin/node', ['-e', holder], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await once(first.stdout as NodeJS.ReadableStream, 'data');
      await warmReady();
      const next = await runOnce('/usr/bin/node', ['-e', probe]);
      assert.equal(next.warm, true, 'made from the warm child');
      assert.equal(next.code, 0, next.stderr);
      const seen = JSON.parse(next.stdout);
      assert.equal(seen.tcp, 'ECONNREFUSED');
      assert.equal(seen.unix, 'ECONNREFUSED');
      assert.equal(seen.abstract, false);
      // Its own pid namespace: stockade-init and the probe, nothing of the first sandbox.
      assert.deepEqual(seen.pids, ['1', '2']);
      assert.equal(seen.tmp.includes('left-by-the-first'), false);
      // Only its planned fds (stdin, stdout, stderr) and the one ls opened for the listing.
      await warmReady();
      const fds = await runOnce('/bin/ls', ['/proc/self/fd']);
      assert.deepEqual([fds.warm, fds.stdout], [true, '0\n1\n2\n3\n']);
      // The budgets of its user namespace (set before its wake) are those a fresh sandbox gets:
      // no namespaces of its own, its share of inotify and fanotify.
      const budgets = ['max_user_namespaces', 'max_net_namespaces', 'max_inotify_instances', 'max_inotify_watches'].map(
        (f) => `/proc/sys/user/${f}`,
      );
      await warmReady();
      const warmBudgets = await runOnce('/bin/cat', budgets);
      const freshBudgets = await runOnce('/bin/cat', budgets, { warm: false });
      assert.deepEqual([warmBudgets.warm, freshBudgets.warm], [true, false]);
      assert.equal(warmBudgets.stdout, freshBudgets.stdout);
      assert.match(warmBudgets.stdout, /^0\n0\n\d+\n\d+\n$/);
    } finally {
      first.kill('SIGKILL');
      await first.exited;
    }
  });

  test('its mount table is copied when its plan arrives: a mount made on the host after the warm child is seen', {
    skip: isRoot ? false : 'mounting on the host needs root',
  }, async () => {
    const dir = sharedTempDir('warm-mount');
    fs.writeFileSync(path.join(dir, 'file'), 'underneath\n');
    try {
      await runOnce('/bin/true', []);
      const warm = await warmReady();
      // The warm child exists; the host's tree changes only now.
      const mount = spawn('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'tmpfs', dir]);
      assert.equal((await once(mount, 'exit'))[0], 0);
      fs.writeFileSync(path.join(dir, 'file'), 'mounted later\n');
      fs.chmodSync(path.join(dir, 'file'), 0o644);
      assert.deepEqual(warmChildren(), [warm], 'the same warm child is still waiting');
      const r = await runOnce('/bin/cat', [path.join(dir, 'file')], { filesystem: { readOnly: [dir] } });
      assert.equal(r.warm, true);
      assert.equal(r.stdout, 'mounted later\n', r.stderr);
    } finally {
      spawn('umount', [dir]).once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  test('a plan that differs does not take the warm child: host network, then its own again', async () => {
    await runOnce('/bin/true', []);
    await warmReady();
    const interfaces = (r: { stdout: string }) => r.stdout.trim().split('\n').length;
    const host = await runOnce('/bin/cat', ['/proc/net/dev'], { network: 'host' });
    assert.equal(host.warm, false, 'a sandbox on the host network is not made from one with a network of its own');
    const hostInterfaces = interfaces(host);
    // The spawner now keeps a warm child like the last plan (host network): the next sandbox of
    // its own network is made afresh, and the one after that from a warm child.
    await warmReady();
    const fresh = await runOnce('/bin/cat', ['/proc/net/dev']);
    assert.equal(fresh.warm, false);
    await warmReady();
    const warm = await runOnce('/bin/cat', ['/proc/net/dev']);
    assert.equal(warm.warm, true);
    // Two header lines and lo, in both; the host has more than lo (this machine's eth0 at least).
    assert.equal(interfaces(fresh), 3);
    assert.equal(interfaces(warm), 3);
    assert.ok(hostInterfaces > 3, `host network: ${host.stdout}`);
  });

  test('a warm child killed while it waits is replaced, and the spawn still works', async () => {
    await runOnce('/bin/true', []);
    const warm = await warmReady();
    process.kill(warm, 'SIGKILL');
    await waitFor(() => comm(warm) === undefined, 'the warm child to be reaped');
    const r = await runOnce('/bin/echo', ['still here']);
    assert.deepEqual([r.stdout, r.code, r.warm], ['still here\n', 0, false]);
    await warmReady();
    assert.equal((await runOnce('/bin/true', [])).warm, true);
  });

  test('warm: false neither takes nor leaves one; STOCKADE_WARM_POOL=0 turns the pool off for the process', async () => {
    await runOnce('/bin/true', []);
    const warm = await warmReady();
    const r = await runOnce('/bin/true', [], { warm: false });
    assert.equal(r.warm, false);
    assert.deepEqual(warmChildren(), [warm], 'the warm child is left for a spawn that wants it');
    const script = `const { spawnSandboxed } = require(${JSON.stringify(path.join(repoRoot, 'dist', 'lib'))});
      (async () => { for (let i = 0; i < 3; i++) await spawnSandboxed('/bin/true', []).exited;
        await new Promise((r) => setTimeout(r, 300));
        process.stdout.write(String(process.pid)); setTimeout(() => {}, 5000); })();`;
    const child = spawn(process.execPath, ['-e', script], {
      env: { ...process.env, STOCKADE_WARM_POOL: '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const [pid] = await once(child.stdout, 'data');
      assert.deepEqual(warmChildren(Number(String(pid))), []);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('`stockade run` takes a warm child made while its plan is resolved, and makes none after it', async () => {
    // The warm child is made by the spawner thread while the launcher's JS resolves the plan,
    // ~5 ms: where the machine is busy (the suite runs two files at once) that thread may not get
    // a CPU before the spawn comes, which then clones as usual ('warm' absent). So up to five
    // launchers, of which one must have been warm; none may leave a warm child for a next spawn.
    const seen: unknown[] = [];
    for (let attempt = 0; attempt < 5 && !seen.includes(true); attempt++) {
      const audit = path.join(sharedTempDir('warm-run'), `audit-${attempt}.jsonl`);
      // The sandbox sleeps, so the launcher is looked at after its spawn: no warm child for a next.
      const launcher = spawn(
        process.execPath,
        [path.join(repoRoot, 'bin', 'stockade.js'), 'run', '--audit', audit, '--', '/bin/sleep', '1'],
        {
          stdio: ['ignore', 'ignore', 'inherit'],
        },
      );
      try {
        await waitFor(() => fs.existsSync(audit) && fs.readFileSync(audit, 'utf8').includes('"sandbox-start"'), 'the sandbox to start');
        const start = fs
          .readFileSync(audit, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l))
          .find((e) => e.event === 'sandbox-start');
        seen.push(start.warm);
        await new Promise((r) => setTimeout(r, 300));
        assert.deepEqual(warmChildren(launcher.pid as number), [], 'none made for a next spawn');
      } finally {
        const [code] = await once(launcher, 'exit');
        assert.equal(code, 0);
      }
    }
    assert.ok(seen.includes(true), `made from the warm child the spawner made during the plan (warm: ${JSON.stringify(seen)})`);
  });

  test('a warm child dies with its process, and one left unused is let go after 2 s with its cgroup and fds', async () => {
    const script = `const { spawnSandboxed } = require(${JSON.stringify(path.join(repoRoot, 'dist', 'lib'))});
      spawnSandboxed('/bin/true', []).exited.then(() => setTimeout(() => {}, 60000));`;
    const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    let orphan: number | undefined;
    try {
      await waitFor(() => warmChildren(child.pid as number).length === 1, 'the other process to make a warm child');
      orphan = warmChildren(child.pid as number)[0];
    } finally {
      child.kill('SIGKILL');
    }
    await once(child, 'exit');
    // PR_SET_PDEATHSIG: killed with the spawner thread that made it, not by a cleanup.
    await waitFor(() => comm(orphan as number) === undefined, 'the orphaned warm child to die');

    // In this process: after the spawns, the fds and processes come back to what they were once
    // the warm child is let go (its cgroup too, where it had one).
    await settleWarmPool();
    const fds = openFdCount();
    await runOnce('/bin/true', []);
    const warm = await warmReady();
    const cgroup = fs
      .readFileSync(`/proc/${warm}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'))
      ?.slice(3);
    const v2 =
      cgroup && /-w\d+$/.test(cgroup)
        ? path.join('/sys/fs/cgroup', fs.existsSync('/sys/fs/cgroup/unified') ? 'unified' : '', cgroup)
        : undefined;
    if (v2 !== undefined) assert.ok(fs.existsSync(v2), `the warm child's cgroup ${v2}`);
    await waitFor(() => warmChildren().length === 0, { what: 'the unused warm child to be let go' });
    // Removed right after the reap (the process is gone from /proc a moment before).
    if (v2 !== undefined) await waitFor(() => !fs.existsSync(v2), { what: `${v2} removed with it` });
    await waitFor(() => openFdCount() === fds, { what: () => `the fd count back to ${fds} (now ${openFdCount()})` });
  });
});
