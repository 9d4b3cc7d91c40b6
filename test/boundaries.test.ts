// Boundaries: each test tries to cross one and asserts the exact failure the kernel gives.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run, sh, sharedTempDir } from './helpers';
import { needs } from './helpers/tools';

const py = (code: string) => run('/usr/bin/python3', ['-c', code]);

describe('filesystem', () => {
  let dir: string;
  before(() => {
    dir = sharedTempDir('fs');
    fs.writeFileSync(path.join(dir, 'secret'), 'TOP-SECRET\n');
    // World-writable on the host, so that only the read-only bind can refuse the write below.
    fs.chmodSync(path.join(dir, 'secret'), 0o666);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('a planted host file outside the binds does not exist inside', async () => {
    const r = await sh(`cat ${dir}/secret`);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /No such file or directory/);
    assert.doesNotMatch(r.stdout, /TOP-SECRET/);
  });

  test("the host's home directories, /root and /etc are not there", async () => {
    const r = await sh('ls -A /; echo ---; ls -A /etc; echo ---; ls /root 2>&1; ls -A /home');
    const [root, etc, rest] = r.stdout.split('---\n');
    assert.deepEqual(
      root.trim().split('\n').sort(),
      ['bin', 'dev', 'etc', 'home', 'lib', 'lib64', 'proc', 'sbin', 'tmp', 'usr']
        .filter((d) => fs.existsSync(`/${d}`) || ['dev', 'proc', 'tmp', 'etc', 'home'].includes(d))
        .sort(),
    );
    assert.ok(!etc.includes('shadow') && !etc.includes('ssh'), etc);
    assert.match(rest, /ls: cannot access '\/root': No such file or directory/);
    assert.match(rest, /^nobody$/m);
  });

  test('/etc/passwd lists only root and nobody, not the host users', async () => {
    const r = await sh('cat /etc/passwd');
    assert.deepEqual(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(':')[0]),
      ['root', 'nobody'],
    );
  });

  test('/, /usr and read-only binds refuse writes with EROFS and the host is untouched', async () => {
    const before = fs.readdirSync(dir);
    const r = await sh(`touch /x; touch /usr/x; touch ${dir}/x; echo data >> ${dir}/secret`, { filesystem: { readOnly: [dir] } });
    assert.equal(r.stderr.match(/Read-only file system/g)?.length, 4, r.stderr);
    assert.deepEqual(fs.readdirSync(dir), before);
    assert.equal(fs.readFileSync(path.join(dir, 'secret'), 'utf8'), 'TOP-SECRET\n');
  });

  test('a read-write bind is writable and writes land on the host', async () => {
    // The caller's own directory, 0755: as host root it is writable inside through an idmapped
    // mount, and what the payload writes belongs to the caller on the host.
    const rw = sharedTempDir('rw');
    const r = await sh(`echo written > ${rw}/out && id -u`, { filesystem: { readWrite: [rw] } });
    assert.equal(r.code, 0, r.stderr);
    // Host root must not have handed root to the payload: it runs as 65534 either way.
    assert.equal(r.stdout, '65534\n');
    assert.equal(fs.readFileSync(path.join(rw, 'out'), 'utf8'), 'written\n');
    assert.equal(fs.statSync(path.join(rw, 'out')).uid, process.getuid?.());
    fs.rmSync(rw, { recursive: true, force: true });
  });

  test('/tmp is private: a file written there does not reach the host /tmp', async () => {
    const name = `stockade-private-${process.pid}-${Date.now()}`;
    const r = await sh(`echo x > /tmp/${name} && ls /tmp`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), name);
    assert.equal(fs.existsSync(`/tmp/${name}`), false);
  });

  test('/tmp is size-capped', async () => {
    const r = await sh('head -c 3000000 /dev/zero > /tmp/big', { filesystem: { tmpSize: '1m' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /No space left on device/);
  });

  test('a path that does not exist on the host fails before anything is spawned', async () => {
    await assert.rejects(sh('true', { filesystem: { readOnly: ['/does/not/exist'] } }), {
      name: 'SandboxOptionsError',
      message: "options.filesystem.readOnly[0]: '/does/not/exist' cannot be used on the host (ENOENT)",
    });
  });

  test('sensitive /proc entries are masked and /proc/sys is read-only', async () => {
    // Entries differ between kernels (kcore needs CONFIG_PROC_KCORE): check those the host has.
    const masked = ['kcore', 'keys', 'key-users', 'timer_list', 'sched_debug', 'kallsyms', 'sysrq-trigger'].filter((f) =>
      fs.existsSync(`/proc/${f}`),
    );
    assert.ok(masked.length >= 3, `expected several maskable entries, found ${masked}`);
    const r = await sh(
      `for f in ${masked.join(' ')}; do wc -c < /proc/$f; done; ls /proc/acpi | wc -l; echo x > /proc/sys/kernel/hostname`,
    );
    const counts = r.stdout.trim().split('\n');
    assert.deepEqual(counts, [...masked.map(() => '0'), '0'], r.stderr);
    assert.match(r.stderr, /Read-only file system/);
  });

  test('/dev holds only the minimal devices', async () => {
    const r = await sh('ls /dev');
    assert.deepEqual(r.stdout.trim().split('\n').sort(), [
      'fd',
      'full',
      'null',
      'ptmx',
      'pts',
      'random',
      'shm',
      'stderr',
      'stdin',
      'stdout',
      'tty',
      'urandom',
      'zero',
    ]);
  });
});

describe('processes', () => {
  test('host processes are invisible: /proc shows only the sandbox', async () => {
    const r = await sh('ls /proc | grep -E "^[0-9]+$"');
    const pids = r.stdout.trim().split('\n').map(Number);
    // stockade-init (1), sh (2) and its ls/grep children.
    assert.ok(
      pids.every((p) => p < 10),
      r.stdout,
    );
    assert.ok(pids.includes(1) && pids.includes(2));
  });

  test('a host process cannot be signalled: ESRCH', { skip: needs('python3') }, async () => {
    // The test runner's host pid does not exist in the sandbox's pid namespace.
    const r = await run('/usr/bin/python3', [
      '-c',
      `import os\ntry:\n  os.kill(${process.pid}, 9)\nexcept OSError as e:\n  print(e.errno)`,
    ]);
    assert.equal(r.stdout.trim(), '3'); // ESRCH
  });

  test('PID 1 (stockade-init) is not readable by the payload: no /proc/1/environ or /proc/1/mem', async () => {
    const r = await sh('cat /proc/1/environ; cat /proc/1/mem');
    assert.equal(r.stderr.match(/Permission denied/g)?.length, 2, r.stderr);
  });
});

describe('identity and privileges', () => {
  test('uid and gid are 65534, CapEff is 0, NoNewPrivs is 1, seccomp is on', async () => {
    const r = await sh('id -u; id -g; grep -E "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):" /proc/self/status');
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], '65534');
    assert.equal(lines[1], '65534');
    const status = Object.fromEntries(lines.slice(2).map((l) => l.split(/:\s+/)));
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.equal(status[set], '0000000000000000', set);
    assert.equal(status.NoNewPrivs, '1');
    assert.equal(status.Seccomp, '2');
  });

  test('a host environment variable is absent inside', async () => {
    process.env.STOCKADE_TEST_HOST_SECRET = 'do-not-leak';
    try {
      const r = await sh('env');
      assert.doesNotMatch(r.stdout, /STOCKADE_TEST_HOST_SECRET|do-not-leak/);
      assert.deepEqual(
        r.stdout
          .trim()
          .split('\n')
          .map((l) => l.split('=')[0])
          .sort(),
        ['HOME', 'LANG', 'PATH', 'PWD', 'TERM', 'USER'],
      );
    } finally {
      delete process.env.STOCKADE_TEST_HOST_SECRET;
    }
  });

  test("the hostname is the sandbox's own", async () => {
    const r = await sh('hostname', { hostname: 'box' });
    assert.equal(r.stdout.trim(), 'box');
  });
});

describe('network (mode none)', () => {
  let server: net.Server;
  let port: number;
  let abstract: net.Server;
  const abstractName = `\0stockade-test-${process.pid}`;
  before(async () => {
    server = net.createServer((s) => s.end('host-secret\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
    abstract = net.createServer((s) => s.end('host-secret\n'));
    await new Promise<void>((resolve) => abstract.listen(abstractName, resolve));
  });
  after(() => {
    server.close();
    abstract.close();
  });

  test('a server on the host 127.0.0.1 is unreachable: ECONNREFUSED', { skip: needs('python3') }, async () => {
    const r = await py(
      `import socket\ns = socket.socket()\ntry:\n  s.connect(('127.0.0.1', ${port}))\n  print('connected', s.recv(100))\nexcept OSError as e:\n  print(e.errno)`,
    );
    assert.equal(r.stdout.trim(), '111'); // ECONNREFUSED: the sandbox's own loopback has no listener
  });

  test('a host abstract unix socket is unreachable: ECONNREFUSED', { skip: needs('python3') }, async () => {
    const r = await py(
      `import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n  s.connect(${JSON.stringify(abstractName)})\n  print('connected')\nexcept OSError as e:\n  print(e.errno)`,
    );
    assert.equal(r.stdout.trim(), '111');
  });

  test('no interface but lo, and no route out: ENETUNREACH', { skip: needs('python3') }, async () => {
    const r = await py(
      `import socket, os\nprint(sorted(os.listdir('/sys/class/net')) if os.path.exists('/sys/class/net') else [n for _, n in socket.if_nameindex()])\ns = socket.socket()\ntry:\n  s.connect(('192.0.2.1', 80))\nexcept OSError as e:\n  print(e.errno)`,
    );
    assert.equal(r.stdout.trim(), "['lo']\n101");
  });

  test('loopback works inside the sandbox', { skip: needs('python3') }, async () => {
    const r = await py(
      `import socket\nl = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()\nc = socket.create_connection(l.getsockname())\na, _ = l.accept(); a.sendall(b'pong'); print(c.recv(4).decode())`,
    );
    assert.equal(r.stdout.trim(), 'pong');
  });
});
