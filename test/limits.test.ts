// Limits that hold (lib/limits): bombs of every kind are stopped by the mechanism this host
// gives — a cgroup as root here (v1 memory/pids/cpu, plus the v2 hierarchy the child is cloned
// into), the fallback unprivileged (RLIMIT_NPROC in the sandbox's own user namespace), a
// delegated cgroup when the test run provides one (scripts/test.sh) — and the host stays
// unharmed: its own fork and inotify_init still work and the launcher keeps answering.
// Every bomb is bounded in count and time and runs only under a limit the start event shows
// in force.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { type LimitViolation, policyToOptions, type SandboxOptions, SandboxOptionsError, spawnSandboxed, validatePolicy } from '../lib';
import { cgroupLayout, placement, SandboxCgroup } from '../lib/limits/cgroup';
import { grownGrants, policyGrants } from '../lib/policy/grants';
import { assertPolicy } from '../lib/policy/validate';
import { probeHost, probeLimits } from '../lib/probe';
import { isRoot, openFdCount, type RunResult, repoRoot, settleWarmPool } from './helpers';
import { waitFor } from './helpers/wait';

const unprivileged = process.env.STOCKADE_TEST_UNPRIVILEGED === '1';
const delegated = process.env.STOCKADE_TEST_CGROUP_PARENT;
const mechanism = probeLimits();
const cgroups = mechanism.held.includes('memory') && mechanism.held.includes('pids');

interface Run extends RunResult {
  audit: Record<string, unknown>[];
  violations: LimitViolation[];
}

/** Runs python3 -c CODE in a sandbox; audit events collected. A wall-time cap bounds every bomb. */
async function py(code: string, options: SandboxOptions = {}): Promise<Run> {
  const child = spawnSandboxed('python3', ['-c', code], {
    stdio: ['pipe', 'pipe', 'pipe'],
    ...options,
    limits: { wallTime: 60_000, ...options.limits },
  });
  const audit: Record<string, unknown>[] = [];
  const violations: LimitViolation[] = [];
  child.on('audit', (e) => audit.push(e));
  child.on('violation', (v: LimitViolation) => violations.push(v));
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (d: Buffer) => out.push(d));
  child.stderr?.on('data', (d: Buffer) => err.push(d));
  child.stdin?.end();
  const { exitCode, signalCode } = await child.exited;
  return {
    code: exitCode,
    signal: signalCode,
    stdout: Buffer.concat(out).toString(),
    stderr: Buffer.concat(err).toString(),
    audit,
    violations,
  };
}

/** Runs `fn` with STOCKADE_CGROUP_PARENT set to `value` (the environment is restored after). */
async function withParent<T>(value: string, fn: () => Promise<T> | T): Promise<T> {
  const before = process.env.STOCKADE_CGROUP_PARENT;
  process.env.STOCKADE_CGROUP_PARENT = value;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.STOCKADE_CGROUP_PARENT;
    else process.env.STOCKADE_CGROUP_PARENT = before;
  }
}

/** Python: `n` children that burn CPU until killed; the parent waits. Bounded by the wallTime of py(). */
function burners(n: number): string {
  return `import os
for i in range(${n}):
    if os.fork() == 0:
        while True: pass
for i in range(${n}):
    pid, status = os.wait()
    print("child", os.WTERMSIG(status) if os.WIFSIGNALED(status) else "exit", flush=True)`;
}

function startLimits(r: Run): Record<string, { value: number; by: string }> & { notHeld: string[]; budgets?: Record<string, number> } {
  const start = r.audit.find((e) => e.event === 'sandbox-start');
  assert.ok(start, 'a sandbox-start event');
  return start.limits as ReturnType<typeof startLimits>;
}

/** The host is unharmed: this uid can still fork and exec, and make an inotify instance. */
function assertHostUnharmed(): void {
  assert.equal(execFileSync('/bin/echo', ['host ok']).toString(), 'host ok\n');
  const out = execFileSync('python3', ['-c', inotifyInit(1)]).toString();
  assert.equal(out.trim(), '1 0', 'the host can still make an inotify instance');
}

/** Python that makes up to `max` inotify instances and prints "<count> <errno of the first failure or 0>". */
function inotifyInit(max: number): string {
  return `import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
n, err = 0, 0
for i in range(${max}):
    if libc.inotify_init1(os.O_CLOEXEC) < 0:
        err = ctypes.get_errno(); break
    n += 1
print(n, err, flush=True)`;
}

/** Python that forks until refused (at most `max`), children wait for the parent; prints "<forks> <errno>". */
function forkBomb(max: number): string {
  return `import os, errno
r, w = os.pipe()
n, err = 0, 0
for i in range(${max}):
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno; break
    if pid == 0:
        os.close(w); os.read(r, 1); os._exit(0)
    n += 1
print(n, errno.errorcode.get(err, 0), flush=True)`;
}

describe('limits: what holds them is visible', () => {
  test('doctor names the mechanism of this run', () => {
    if (isRoot) assert.deepEqual(mechanism.held.sort(), ['cpu', 'memory', 'pids'], mechanism.detail);
    if (unprivileged && delegated === undefined) {
      // uid 65534 has no delegated memory/pids cgroup on this host.
      assert.equal(mechanism.held.includes('memory'), false, mechanism.detail);
      assert.match(mechanism.detail, /not held|no cgroup/);
    }
    assert.equal(mechanism.budgets, true);
    // limits.cpu: the v2 cgroup counts CPU time on this host wherever the sandbox gets one.
    if (isRoot && cgroupLayout().unified) assert.equal(mechanism.cpuSeconds, 'cgroup v2 cpu.stat');
    assert.match(mechanism.detail, /CPU seconds \(limits\.cpu\) by (cgroup v2 cpu\.stat|cgroup v1 cpuacct\.usage|RLIMIT_CPU per process)/);
  });

  test('the start event lists every limit in force and what enforces it, defaults included', async () => {
    const r = await py('print("hi")');
    assert.equal(r.stdout, 'hi\n', r.stderr);
    const limits = startLimits(r);
    assert.equal(limits.pids.value, 1024);
    if (cgroups) {
      assert.match(limits.pids.by, /^cgroup v[12] pids\.max$/);
      assert.match(limits.memory.by, /^cgroup v[12] memory\.(limit_in_bytes|max), no swap, OOM ends the sandbox$/);
      assert.ok(limits.memory.value > 0 && limits.memory.value <= 2 * 1024 ** 3);
      assert.deepEqual(limits.notHeld, []);
    } else {
      assert.equal(limits.pids.by, "RLIMIT_NPROC in the sandbox's own user namespace");
      assert.equal(limits.memory, undefined);
      assert.match(limits.notHeld.join('\n'), /^memory of the whole sandbox: /);
    }
    assert.equal(limits.budgets?.max_user_namespaces, 0);
    assert.ok((limits.budgets?.max_inotify_instances ?? 0) >= 1);
  });
});

describe('limits: the sandbox is in its own cgroups from the start', () => {
  test('in every hierarchy that holds a controller, and born in its v2 cgroup (clone3)', async () => {
    const layout = cgroupLayout();
    const child = spawnSandboxed('python3', ['-c', 'import sys; print(open("/proc/self/cgroup").read(), flush=True); sys.stdin.read()'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const inside = await new Promise<string>((resolve) => child.stdout?.once('data', (d: Buffer) => resolve(d.toString())));
    const host = fs.readFileSync(`/proc/${child.pid}/cgroup`, 'utf8');
    child.stdin?.end();
    await child.exited;
    // lib/limits' name, or the warm pool's (native/spawn.cc) for a sandbox made from a warm child.
    const name = new RegExp(`/stockade/${process.pid}-\\d+-w?\\d+$`);
    for (const c of mechanism.held.filter((h) => h !== 'cpu')) {
      const line = host.split('\n').find((l) => l.split(':')[1]?.split(',').includes(c));
      assert.match(line ?? '', name, `${c}: ${host}`);
    }
    const v2 = layout.unified && probeHost().cgroupDelegation.ok;
    if (v2) {
      assert.match(host.split('\n').find((l) => l.startsWith('0::')) ?? '', name);
      // Cloned into it: its cgroup namespace is rooted there, so it sees itself at the root.
      assert.match(inside, /^0::\/$/m);
    }
    if (isRoot) assert.ok(v2 || layout.unified === undefined, 'as root the v2 hierarchy takes a sandbox cgroup');
  });
});

describe('limits: bombs are stopped and the host is unharmed', () => {
  test('fork bomb: refused at the pids limit, with a violation event where a cgroup counts', async () => {
    const r = await py(forkBomb(500), { limits: { pids: 64 } });
    assert.equal(r.code, 0, r.stderr);
    const [forks, err] = r.stdout.trim().split(' ');
    // 64 tasks in all: stockade-init, python and its children.
    assert.ok(Number(forks) <= 62 && Number(forks) >= 50, r.stdout);
    assert.equal(err, 'EAGAIN');
    if (cgroups) {
      const v = r.audit.filter((e) => e.event === 'violation' && e.kind === 'pids-limit');
      assert.equal(v.length, 1, 'one pids-limit violation');
      assert.equal(v[0].limit, 64);
      assert.deepEqual(
        r.violations,
        [v[0]].map(({ event, pid, policy, ...rest }) => rest),
      );
    }
    assertHostUnharmed();
  });

  test('a refused fork is reported while the sandbox runs, naming the limit', {
    skip: !cgroups && 'the RLIMIT_NPROC fallback keeps no count',
  }, async () => {
    // The bomb holds its children and waits on stdin, which the test closes only once the
    // violation has arrived: the report cannot have come from the exit.
    const child = spawnSandboxed('python3', ['-c', `${forkBomb(200)}\nimport sys; sys.stdin.read()`], {
      stdio: ['pipe', 'pipe', 'inherit'],
      limits: { pids: 32, wallTime: 60_000 },
    });
    const audit: Record<string, unknown>[] = [];
    child.on('audit', (e) => audit.push(e));
    const v = await new Promise<LimitViolation>((resolve) => child.on('violation', resolve));
    assert.equal(
      audit.some((e) => e.event === 'sandbox-exit'),
      false,
      'before the sandbox ended',
    );
    assert.equal(v.kind, 'pids-limit');
    assert.equal(v.action, 'refused');
    assert.equal(v.limit, 32);
    assert.ok((v.count ?? 0) >= 1);
    assert.match(v.by, /^cgroup v[12] pids\.max$/);
    assert.equal(
      v.message,
      `the sandbox reached its limit of 32 processes and threads (--pids, limits.pids; ${v.by}): fork and clone fail with EAGAIN`,
    );
    child.stdin?.end();
    const { exitCode } = await child.exited;
    assert.equal(exitCode, 0);
    assert.equal(audit.filter((e) => e.event === 'violation').length, 1, 'reported once');
  });

  test('thread bomb: threads count against the same limit', async () => {
    const r = await py(
      `import threading
ev = threading.Event()
n = 0
try:
    for i in range(500):
        threading.Thread(target=ev.wait, daemon=True).start(); n += 1
except RuntimeError as e:
    print(n, "refused", flush=True)
ev.set()`,
      { limits: { pids: 48 } },
    );
    assert.equal(r.code, 0, r.stderr);
    const [n, word] = r.stdout.trim().split(' ');
    assert.equal(word, 'refused');
    assert.ok(Number(n) <= 46 && Number(n) >= 30, r.stdout);
    assertHostUnharmed();
  });

  test("RLIMIT_NPROC counts only the sandbox's processes, not the same uid's on the host", async () => {
    // 40 host processes of the uid the sandbox runs as on the host; then a sandbox limited to 32
    // by RLIMIT_NPROC (no cgroups) must still fork 20 children of its own.
    const host = Array.from({ length: 40 }, () => spawn('sleep', ['60'], isRoot ? { uid: 65534, gid: 65534 } : {}));
    const before = process.env.STOCKADE_CGROUP_PARENT;
    process.env.STOCKADE_CGROUP_PARENT = 'none';
    try {
      const r = await py(forkBomb(20), { limits: { pids: 32 } });
      assert.equal(startLimits(r).pids.by, "RLIMIT_NPROC in the sandbox's own user namespace");
      assert.equal(r.stdout, '20 0\n', r.stderr);
      const bomb = await py(forkBomb(200), { limits: { pids: 32 } });
      const [forks, err] = bomb.stdout.trim().split(' ');
      assert.equal(err, 'EAGAIN');
      assert.ok(Number(forks) <= 30, bomb.stdout);
    } finally {
      if (before === undefined) delete process.env.STOCKADE_CGROUP_PARENT;
      else process.env.STOCKADE_CGROUP_PARENT = before;
      for (const p of host) p.kill('SIGKILL');
    }
    assertHostUnharmed();
  });

  test('memory bomb in a child process: the OOM ends the whole sandbox, with a violation event', {
    skip: !cgroups && 'fallback: see the RLIMIT_AS test',
  }, async () => {
    // The parent sleeps; without the whole-sandbox kill it would print "survived" after the
    // child's death. wallTime bounds the run if nothing held.
    const r = await py(
      `import subprocess, time
subprocess.run(["python3", "-c", "b = bytearray(256 << 20); b[::4096] = b'x' * (len(b) // 4096)"])
print("survived", flush=True)`,
      { limits: { memory: 64 * 1024 ** 2 } },
    );
    assert.equal(r.signal, 'SIGKILL', r.stdout + r.stderr);
    assert.equal(r.stdout, '');
    const v = r.audit.find((e) => e.event === 'violation' && e.kind === 'oom');
    assert.ok(v, 'an oom violation');
    assert.equal(v.limit, 64 * 1024 ** 2);
    assert.ok(r.audit.indexOf(v) < r.audit.findIndex((e) => e.event === 'sandbox-exit'));
    assertHostUnharmed();
  });

  test('memfd bomb: memfd pages are charged to the sandbox', {
    skip: !cgroups && 'not held without a memory cgroup (README: Limits)',
  }, async () => {
    // Either outcome holds the limit, and which one comes depends on where the charge fails:
    // a page the OOM killer can free for it ends the sandbox (SIGKILL, an oom violation); a
    // charge refused inside write(2) with no victim to take comes back as ENOMEM (cgroup v1).
    // What must never happen is 256 MiB of memfd pages in a 64 MiB sandbox.
    const r = await py(
      `import errno, os
fd = os.memfd_create("bomb")
chunk = b"x" * (1 << 20)
n = 0
try:
    for i in range(256):
        os.write(fd, chunk)
        n += 1
    print("wrote 256 MiB", flush=True)
except OSError as e:
    print(n, errno.errorcode[e.errno], flush=True)`,
      { limits: { memory: 64 * 1024 ** 2 } },
    );
    assert.doesNotMatch(r.stdout, /wrote 256 MiB/);
    if (r.signal === 'SIGKILL') {
      assert.ok(
        r.audit.some((e) => e.event === 'violation' && e.kind === 'oom'),
        r.stderr,
      );
    } else {
      const [n, code] = r.stdout.trim().split(' ');
      assert.equal(code, 'ENOMEM', r.stdout + r.stderr);
      assert.ok(Number(n) <= 64, r.stdout);
    }
    assertHostUnharmed();
  });

  test('tmpfs bomb: /dev/shm and /tmp stop at their size, under every mechanism', async () => {
    const r = await py(
      `import errno
for p in ["/dev/shm/bomb", "/tmp/bomb"]:
    n = 0
    try:
        with open(p, "wb") as f:
            for i in range(256):
                f.write(b"x" * (1 << 20)); f.flush(); n += 1
    except OSError as e:
        print(p, n, errno.errorcode[e.errno], flush=True)`,
      { filesystem: { tmpSize: 16 * 1024 ** 2 } },
    );
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 2, r.stdout);
    for (const line of lines) {
      const [, n, code] = line.split(' ');
      assert.equal(code, 'ENOSPC');
      assert.ok(Number(n) <= 16);
    }
  });

  test('RLIMIT_AS holds a single process where no memory cgroup exists', async () => {
    const before = process.env.STOCKADE_CGROUP_PARENT;
    process.env.STOCKADE_CGROUP_PARENT = 'none';
    try {
      const r = await py('try:\n    b = bytearray(512 << 20)\nexcept MemoryError:\n    print("MemoryError")', {
        limits: { memory: 256 * 1024 ** 2 },
      });
      assert.equal(r.stdout, 'MemoryError\n', r.stderr);
      assert.equal(startLimits(r).memory.by, 'RLIMIT_AS per process');
    } finally {
      if (before === undefined) delete process.env.STOCKADE_CGROUP_PARENT;
      else process.env.STOCKADE_CGROUP_PARENT = before;
    }
  });

  test('CPU burners across processes share one cpus limit', {
    skip: !mechanism.held.includes('cpu') && 'no cpu cgroup: see the refusal test',
  }, async () => {
    // Three burners for 1.5 s of wall time under cpus=0.25: the kernel's own account of their CPU
    // time (os.times of the reaped children) stays within the quota plus one period per burner.
    const r = await py(
      `import os, time
start = time.monotonic()
pids = []
for i in range(3):
    pid = os.fork()
    if pid == 0:
        while time.monotonic() - start < 1.5: pass
        os._exit(0)
    pids.append(pid)
for p in pids: os.waitpid(p, 0)
wall = time.monotonic() - start
t = os.times()
print(round(t.children_user + t.children_system, 3), round(wall, 3), flush=True)`,
      { limits: { cpus: 0.25 } },
    );
    assert.equal(r.code, 0, r.stderr);
    const [cpu, wall] = r.stdout.trim().split(' ').map(Number);
    assert.match(startLimits(r).cpus.by, /^cgroup v[12] cpu\.(cfs_quota_us|max)$/);
    assert.ok(cpu <= 0.25 * wall + 3 * 0.1 + 0.05, `cpu ${cpu}s over ${wall}s of wall time`);
  });

  test('cpus is refused, not silently dropped, where no cpu cgroup exists', () => {
    const before = process.env.STOCKADE_CGROUP_PARENT;
    process.env.STOCKADE_CGROUP_PARENT = 'none';
    try {
      assert.throws(
        () => spawnSandboxed('/bin/true', [], { limits: { cpus: 1 } }),
        (err: Error) => err instanceof SandboxOptionsError && /^options\.limits\.cpus: needs the cgroup cpu controller/.test(err.message),
      );
    } finally {
      if (before === undefined) delete process.env.STOCKADE_CGROUP_PARENT;
      else process.env.STOCKADE_CGROUP_PARENT = before;
    }
  });

  test("CPU seconds: four burners together are stopped at the whole sandbox's limit", {
    skip: mechanism.cpuSeconds.startsWith('RLIMIT') && 'no cgroup counts CPU time: see the RLIMIT_CPU test',
  }, async () => {
    const r = await py(burners(4), { limits: { cpu: 2 } });
    assert.equal(r.signal, 'SIGKILL', r.stdout + r.stderr);
    assert.equal(r.stdout, '', 'no burner ended before the whole sandbox');
    const limits = startLimits(r);
    assert.match(
      limits.cpu.by,
      /^cgroup v[12] (cpu\.stat usage_usec|cpuacct\.usage), all processes together; the launcher ends the sandbox at the limit$/,
    );
    const v = r.violations.find((x) => x.kind === 'cpu-limit');
    assert.ok(v, 'a cpu-limit violation');
    assert.equal(v.action, 'killed');
    assert.match(
      v.message,
      /^the sandbox reached its CPU time limit of 2 s \(--cpu, limits\.cpu; all its processes together, cgroup v[12] [a-z._ ]+\) and was killed$/,
    );
    // The cgroup's own count once every process is gone: at the limit, and over it by at most
    // what 4 burners on this host's CPUs burn between two readings (generous: 1 s).
    const exit = r.audit.find((e) => e.event === 'sandbox-exit') as { cpuSeconds: number };
    assert.ok(exit.cpuSeconds >= 2, `used ${exit.cpuSeconds} s`);
    assert.ok(exit.cpuSeconds <= 3, `used ${exit.cpuSeconds} s of a 2 s limit`);
    assert.ok((v.used ?? 0) >= 2 && (v.used ?? 0) <= exit.cpuSeconds);
    assertHostUnharmed();
  });

  test('CPU seconds by v1 cpuacct where the v2 hierarchy takes no sandbox', {
    skip:
      (!isRoot || !cgroupLayout().unified || !cgroupLayout().byController.cpuacct || cgroupLayout().byController.cpuacct?.version !== 1) &&
      'root on a hybrid host with v1 cpuacct',
  }, async () => {
    // A v2 parent that can have no children (cgroup.max.depth 0) makes the v2 placement fail,
    // as on a host where the v2 hierarchy is not the caller's to write; v1 still places.
    const layout = cgroupLayout();
    const blocker = `stockade-test-blocked-${process.pid}`;
    const v2dir = path.join(layout.unified?.own as string, blocker);
    fs.mkdirSync(v2dir);
    fs.writeFileSync(path.join(v2dir, 'cgroup.max.depth'), '0');
    try {
      const r = await withParent(`${blocker}/p`, () => py(burners(2), { limits: { cpu: 1 } }));
      assert.equal(startLimits(r).cpu.by, 'cgroup v1 cpuacct.usage, all processes together; the launcher ends the sandbox at the limit');
      assert.equal(r.signal, 'SIGKILL', r.stdout + r.stderr);
      const exit = r.audit.find((e) => e.event === 'sandbox-exit') as { cpuSeconds: number };
      assert.ok(exit.cpuSeconds >= 1 && exit.cpuSeconds <= 2, `used ${exit.cpuSeconds} s of a 1 s limit`);
      assert.ok(r.violations.some((x) => x.kind === 'cpu-limit' && x.by === 'cgroup v1 cpuacct.usage'));
    } finally {
      for (const h of new Set(Object.values(layout.byController)))
        if (h?.version === 1) {
          try {
            fs.rmdirSync(path.join(h.own, blocker, 'p'));
          } catch {}
          try {
            fs.rmdirSync(path.join(h.own, blocker));
          } catch {}
        }
      fs.rmdirSync(v2dir);
    }
  });

  test('CPU seconds without a cgroup: RLIMIT_CPU per process, and the start event says the whole is not held', async () => {
    const r = await withParent('none', () => py(burners(2), { limits: { cpu: 1 } }));
    const limits = startLimits(r);
    assert.deepEqual(limits.cpu, { value: 1, by: 'RLIMIT_CPU per process' });
    assert.match(limits.notHeld.join('\n'), /^CPU seconds of the whole sandbox \(limits\.cpu holds per process only\): /m);
    // Each burner is stopped at its own second (SIGKILL at the hard limit, which equals the soft).
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n').sort(), ['child 9', 'child 9']);
  });

  test('inotify exhaustion: the sandbox spends its own budget, the host keeps its inotify_init', async () => {
    // The sandbox takes all it can and holds them until stdin closes; meanwhile the host makes one.
    const child = spawnSandboxed('python3', ['-c', `${inotifyInit(1000)}\nimport sys; sys.stdin.read()`], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const audit: Record<string, unknown>[] = [];
    child.on('audit', (e) => audit.push(e));
    const line = await new Promise<string>((resolve) => child.stdout?.once('data', (d: Buffer) => resolve(d.toString())));
    const start = audit.find((e) => e.event === 'sandbox-start') as { limits: { budgets: Record<string, number> } };
    const budget = start.limits.budgets;
    assert.equal(line, `${budget.max_inotify_instances} 24\n`, 'EMFILE at its own budget');
    assertHostUnharmed();
    child.stdin?.end();
    await child.exited;
  });

  test('fanotify and namespaces: at most the sandbox budget, and no namespace budget at all', async () => {
    const r = await py(`import ctypes
libc = ctypes.CDLL(None, use_errno=True)
n, err = 0, 0
for i in range(1000):
    if libc.fanotify_init(0x200 | 0x1, 0) < 0:  # FAN_REPORT_FID | FAN_CLOEXEC: allowed unprivileged (5.13)
        err = ctypes.get_errno(); break
    n += 1
print(n, err)
print(*(open("/proc/sys/user/" + k).read().strip() for k in ["max_user_namespaces", "max_pid_namespaces", "max_net_namespaces"]))`);
    assert.equal(r.code, 0, r.stderr);
    const [fan, ns] = r.stdout.trim().split('\n');
    const [n, err] = fan.split(' ').map(Number);
    const budget = startLimits(r).budgets?.max_fanotify_groups ?? 0;
    assert.ok(n <= budget, `fanotify groups ${n} within ${budget}`);
    assert.ok(err === 24 || err === 1, `stopped with EMFILE, or EPERM where the kernel allows none: ${err}`);
    assert.equal(ns, '0 0 0');
  });
});

describe('limits: kernel budgets from the policy and the API', () => {
  test("limits.kernel sets the sandbox's own budgets; unset ones keep their default", async () => {
    const r = await py(`${inotifyInit(100)}\nprint(open("/proc/sys/user/max_inotify_watches").read().strip())`, {
      limits: { kernel: { inotifyInstances: 3 } },
    });
    assert.equal(r.code, 0, r.stderr);
    const [line, watches] = r.stdout.trim().split('\n');
    assert.equal(line, '3 24', 'EMFILE at the 4th instance');
    const budgets = startLimits(r).budgets ?? {};
    assert.equal(budgets.max_inotify_instances, 3);
    assert.equal(String(budgets.max_inotify_watches), watches);
    assert.equal(
      budgets.max_inotify_watches,
      Math.max(1, Math.floor(Number(fs.readFileSync('/proc/sys/user/max_inotify_watches', 'utf8')) / 4)),
    );
  });

  test('a budget of 0 allows none', async () => {
    const r = await py(inotifyInit(5), { limits: { kernel: { inotifyInstances: 0 } } });
    assert.equal(r.stdout, '0 24\n', r.stderr);
  });

  test('bad budgets are refused with the field named', () => {
    const cases: [unknown, RegExp][] = [
      [{ inotifyInstances: -1 }, /^options\.limits\.kernel\.inotifyInstances: expected an integer from 0 to 2147483647, found -1$/],
      [{ fanotifyMarks: 1.5 }, /^options\.limits\.kernel\.fanotifyMarks: expected an integer from 0 to 2147483647, found 1\.5$/],
      [
        { inotifyWatches: 2 ** 31 },
        /^options\.limits\.kernel\.inotifyWatches: expected an integer from 0 to 2147483647, found 2147483648$/,
      ],
      [{ inotifyInstances: '8' }, /^options\.limits\.kernel\.inotifyInstances: expected an integer from 0 to 2147483647, found "8"$/],
      [
        { userNamespaces: 1 },
        /^options\.limits\.kernel\.userNamespaces: unknown option \(known: inotifyInstances, inotifyWatches, fanotifyGroups, fanotifyMarks\)$/,
      ],
      [[], /^options\.limits\.kernel: expected an object$/],
    ];
    for (const [kernel, message] of cases) {
      assert.throws(
        () => spawnSandboxed('/bin/true', [], { limits: { kernel: kernel as never } }),
        (err: Error) => err instanceof SandboxOptionsError && message.test(err.message),
        JSON.stringify(kernel),
      );
    }
  });

  test('policy files: limits.kernel is validated by the schema, carried to the options, and raising it is growth', () => {
    assert.deepEqual(
      validatePolicy({ command: ['cat'], limits: { kernel: { inotifyInstances: -1 } } }).map((i) => i.message),
      ['/limits/kernel/inotifyInstances: expected an integer from 0 to 2147483647, found the number -1'],
    );
    assert.deepEqual(
      validatePolicy({ command: ['cat'], limits: { kernel: { mntNamespaces: 1 } } }).map((i) => i.message),
      [
        'unknown key `/limits/kernel/mntNamespaces`; expected one of `inotifyInstances`, `inotifyWatches`, `fanotifyGroups`, `fanotifyMarks`',
      ],
    );
    const policy = assertPolicy({ command: ['cat'], limits: { kernel: { inotifyInstances: 8, fanotifyGroups: 0 } } });
    assert.deepEqual(policyToOptions(policy).options.limits, { kernel: { inotifyInstances: 8, fanotifyGroups: 0 } });
    const approved = policyGrants(policy);
    const raised = policyGrants(assertPolicy({ command: ['cat'], limits: { kernel: { inotifyInstances: 16, fanotifyGroups: 0 } } }));
    assert.deepEqual(grownGrants(approved, raised), ['limits.kernel.inotifyInstances 8 -> 16']);
    const lowered = policyGrants(assertPolicy({ command: ['cat'], limits: { kernel: { inotifyInstances: 4, fanotifyGroups: 0 } } }));
    assert.deepEqual(grownGrants(approved, lowered), []);
  });
});

describe('limits: cgroup v2 without controllers, for real', () => {
  const v2 = cgroupLayout().unified;
  const p = v2 && placement(v2, []);
  test('a populated v2 sandbox cgroup is announced (cgroup.events), emptied by cgroup.kill and removed', {
    skip: !p?.ok && `no writable v2 hierarchy for this uid: ${p?.reason ?? 'none mounted'}`,
  }, async () => {
    const cg = new SandboxCgroup([{ placement: p as NonNullable<typeof p>, holds: [] }], {});
    const dir = cg.dirs[0].dir;
    const events = path.join(dir, 'cgroup.events');
    // The same notification the pids watch uses on v2 (lib/limits/watch.ts): a modified-file event.
    const populated = new Promise<void>((resolve) => {
      const w = fs.watch(events, () => {
        if (/^populated 1$/m.test(fs.readFileSync(events, 'utf8'))) {
          w.close();
          resolve();
        }
      });
    });
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => sleeper.once('exit', (_c, sig) => resolve(sig)));
    fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(sleeper.pid));
    await populated;
    assert.equal(fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').trim(), String(sleeper.pid));
    await cg.remove(); // rmdir fails with EBUSY while populated; cgroup.kill (5.14) empties it
    assert.equal(await exited, 'SIGKILL');
    assert.equal(fs.existsSync(dir), false);
  });

  test('a configured parent: 50 sandboxes born in v2 cgroups under it, none left after', {
    skip: !p?.ok && 'no writable v2 hierarchy',
  }, async () => {
    const layout = cgroupLayout();
    const parent = `stockade-test-parent-${process.pid}`;
    const dirs = [...new Set([layout.unified, ...Object.values(layout.byController)])].flatMap((h) =>
      h ? [path.join(h.own, parent)] : [],
    );
    try {
      await withParent(parent, async () => {
        for (let i = 0; i < 50; i++) {
          const child = spawnSandboxed('python3', ['-c', 'import sys; sys.stdin.read()'], { stdio: ['pipe', 'ignore', 'inherit'] });
          await new Promise((resolve) => child.once('spawn', resolve));
          const line = fs
            .readFileSync(`/proc/${child.pid}/cgroup`, 'utf8')
            .split('\n')
            .find((l) => l.startsWith('0::'));
          assert.match(line ?? '', new RegExp(`^0::.*/${parent}/${process.pid}-\\d+-w?\\d+$`));
          child.stdin?.end();
          assert.equal((await child.exited).exitCode, 0);
        }
      });
      // The warm child the spawner made after the last spawn holds a cgroup there until it is let
      // go, 2 s unused.
      const left = () => dirs.flatMap((d) => (fs.existsSync(d) ? fs.readdirSync(d).filter((n) => /^\d+-\d+-w?\d+$/.test(n)) : []));
      await waitFor(() => left().length === 0, { what: () => `no sandbox cgroup left (${left()})` });
    } finally {
      for (const d of dirs) {
        try {
          fs.rmdirSync(d);
        } catch {}
      }
    }
  });

  test('cpu.stat counts the whole sandbox in its v2 cgroup, without the cpu controller', {
    skip: !p?.ok && 'no writable v2 hierarchy',
  }, async () => {
    const r = await py(`import os, time
for i in range(2):
    if os.fork() == 0:
        t = time.process_time()
        while time.process_time() - t < 0.3: pass
        os._exit(0)
for i in range(2): os.wait()`);
    assert.equal(r.code, 0, r.stderr);
    const exit = r.audit.find((e) => e.event === 'sandbox-exit') as { cpuSeconds: number };
    assert.ok(exit.cpuSeconds >= 0.6, `the children's 0.6 s are counted: ${exit.cpuSeconds}`);
  });
});

describe('limits: the OOM from the launcher', () => {
  test('stockade run: an OOM kill exits 137 with one line on stderr', { skip: !cgroups && 'no memory cgroup' }, () => {
    const cli = path.join(repoRoot, 'bin', 'stockade.js');
    let status = 0;
    let stderr = '';
    try {
      execFileSync(
        process.execPath,
        [cli, 'run', '--memory', '48m', '--timeout', '60', '--', 'python3', '-c', 'b = bytearray(256 << 20)'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
    } catch (err) {
      status = (err as { status: number }).status;
      stderr = String((err as { stderr: Buffer }).stderr);
    }
    assert.equal(status, 137);
    assert.match(
      stderr,
      /^stockade: the sandbox ran out of memory \(limit 50331648 bytes, cgroup v[12] memory\.[a-z_.]+, no swap, OOM ends the sandbox\) and was killed\n$/,
    );
  });

  test('stockade run: a refused fork is one line on stderr, and the run goes on', { skip: !cgroups && 'no pids cgroup' }, () => {
    const cli = path.join(repoRoot, 'bin', 'stockade.js');
    const r = spawnSync(process.execPath, [cli, 'run', '--pids', '24', '--timeout', '60', '--', 'python3', '-c', forkBomb(100)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.equal(r.status, 0, String(r.stderr));
    assert.match(String(r.stdout), / EAGAIN\n$/);
    assert.match(
      String(r.stderr),
      /^stockade: the sandbox reached its limit of 24 processes and threads \(--pids, limits\.pids; cgroup v[12] pids\.max\): fork and clone fail with EAGAIN\n$/,
    );
  });

  test('stockade run: the CPU seconds limit ends the sandbox, 137 and one line', {
    skip: mechanism.cpuSeconds.startsWith('RLIMIT') && 'no cgroup counts CPU time',
  }, () => {
    const cli = path.join(repoRoot, 'bin', 'stockade.js');
    const r = spawnSync(process.execPath, [cli, 'run', '--cpu', '1', '--timeout', '60', '--', 'python3', '-c', burners(2)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.equal(r.status, 137, String(r.stderr));
    assert.match(
      String(r.stderr),
      /^stockade: the sandbox reached its CPU time limit of 1 s \(--cpu, limits\.cpu; all its processes together, cgroup v[12] (cpu\.stat usage_usec|cpuacct\.usage)\) and was killed\n$/,
    );
  });
});

describe('limits: nothing left behind', () => {
  test('1,000 spawns leave no cgroup and no fd', async () => {
    await settleWarmPool();
    const fdsBefore = openFdCount();
    const dirs = new Set<string>();
    for (const h of [cgroupLayout().unified, ...Object.values(cgroupLayout().byController)]) {
      if (h) dirs.add(path.join(h.own, process.env.STOCKADE_CGROUP_PARENT ?? 'stockade'));
    }
    const ours = () =>
      [...dirs].flatMap((d) => {
        try {
          return fs.readdirSync(d).filter((n) => n.startsWith(`${process.pid}-`));
        } catch {
          return [];
        }
      });
    const total = 1000;
    let next = 0;
    const worker = async () => {
      while (next < total) {
        next++;
        const child = spawnSandboxed('/bin/true', [], { stdio: 'ignore' });
        const { exitCode } = await child.exited;
        assert.equal(exitCode, 0);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    // The spawner's warm child (its cgroup and 4 fds) is let go 2 s after the last spawn.
    await waitFor(() => ours().length === 0 && openFdCount() === fdsBefore, {
      what: () => `no cgroup left (${ours()}) and the fd count back to ${fdsBefore} (now ${openFdCount()})`,
    });
  });
});

describe('limits: a delegated cgroup, unprivileged', () => {
  test('uid 65534 with a delegated subtree gets memory, pids and cpus held by cgroups', {
    skip: !unprivileged && 'the unprivileged pass runs this',
  }, async () => {
    assert.ok(delegated, 'scripts/test.sh delegates a cgroup subtree to uid 65534 (STOCKADE_TEST_CGROUP_PARENT)');
    const before = process.env.STOCKADE_CGROUP_PARENT;
    process.env.STOCKADE_CGROUP_PARENT = delegated;
    try {
      const r = await py(
        `import subprocess
subprocess.run(["python3", "-c", "b = bytearray(256 << 20)"])
print("survived", flush=True)`,
        { limits: { memory: 64 * 1024 ** 2, pids: 64, cpus: 1 } },
      );
      const limits = startLimits(r);
      assert.match(limits.memory.by, /^cgroup v[12] memory/);
      assert.match(limits.pids.by, /^cgroup v[12] pids\.max$/);
      assert.match(limits.cpus.by, /^cgroup v[12] cpu/);
      assert.equal(r.signal, 'SIGKILL', r.stdout + r.stderr);
      assert.ok(r.audit.some((e) => e.event === 'violation' && e.kind === 'oom'));
      const bomb = await py(forkBomb(500), { limits: { pids: 64 } });
      assert.equal(bomb.stdout.trim().split(' ')[1], 'EAGAIN');
      assert.ok(bomb.audit.some((e) => e.event === 'violation' && e.kind === 'pids-limit'));
      const cpu = await py(burners(2), { limits: { cpu: 1 } });
      assert.match(startLimits(cpu).cpu.by, /^cgroup v[12] (cpu\.stat usage_usec|cpuacct\.usage), all processes together/);
      assert.equal(cpu.signal, 'SIGKILL');
      assert.ok(cpu.violations.some((v) => v.kind === 'cpu-limit'));
    } finally {
      if (before === undefined) delete process.env.STOCKADE_CGROUP_PARENT;
      else process.env.STOCKADE_CGROUP_PARENT = before;
    }
    assertHostUnharmed();
  });
});

describe('limits: the cgroups of dead launchers', () => {
  const layout = cgroupLayout();
  const h = layout.byController.memory ?? layout.unified;
  const p = h && placement(h, []);
  test("are swept on the first placement, once the caller's spawn is under way", {
    skip: !p?.ok && `no writable cgroup hierarchy for this uid: ${p?.reason ?? 'none mounted'}`,
  }, () => {
    // A fresh process (placements are settled once per process): it places, finds the cgroup a
    // SIGKILLed launcher left (named after its pid, now dead), and removes it after its current turn.
    const dead = spawnSync('true').pid;
    const script = `const fs = require('fs');
const { cgroupLayout, placement } = require(${JSON.stringify(path.join(repoRoot, 'dist', 'lib', 'limits', 'cgroup.js'))});
const layout = cgroupLayout();
const p = placement(layout.byController.memory ?? layout.unified, []);
const left = p.parent + '/${dead}-1-1';
fs.mkdirSync(left);
const mine = p.parent + '/' + process.pid + '-1-1';
fs.mkdirSync(mine);
const before = fs.existsSync(left);
setImmediate(() => { console.log(before, fs.existsSync(left), fs.existsSync(mine)); fs.rmdirSync(mine); });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    assert.equal(r.stdout, 'true false true\n', r.stderr);
  });
});
