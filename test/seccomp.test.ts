// Adversarial tests of the seccomp profiles (native/seccomp.cc, DESIGN.md "seccomp"), each rule
// under both `default` and `strict`, and of the violations stockade-init's supervisor names.
// test/fixtures/try-syscall.c makes each syscall with arguments the kernel would reject with an
// ordinary error (bubblewrap's try-syscall.c is the model), so what a sandboxed run shows —
// SIGSYS death, EPERM, ENOSYS, EAFNOSUPPORT — is the filter's decision alone. The control runs
// the same binary outside the sandbox and shows those ordinary errors.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { type SandboxOptions, type SeccompViolation, spawnSandboxed } from '../lib';
import { monotonicMs, SEEN_AT } from '../lib/violations';
import { compileFixture, type RunResult, run, sharedTempDir } from './helpers';
import { needs } from './helpers/tools';

const execFileAsync = promisify(execFile);

// Every syscall the profile kills with SECCOMP_RET_KILL_PROCESS. A kill ends the whole process,
// so each gets a sandbox of its own.
const KILLED = [
  // namespaces and the mount family
  'unshare',
  'setns',
  'mount',
  'umount2',
  'pivot_root',
  'chroot',
  'fsopen',
  'fsconfig',
  'fsmount',
  'fspick',
  'move_mount',
  'open_tree',
  'mount_setattr',
  'open_tree_attr',
  // other processes' memory and identity
  'ptrace',
  'process_vm_readv',
  'process_vm_writev',
  'kcmp',
  'pidfd_getfd',
  // keyrings, bpf, perf, userfaultfd, io_uring
  'keyctl',
  'add_key',
  'request_key',
  'bpf',
  'perf_event_open',
  'userfaultfd',
  'io_uring_setup',
  'io_uring_enter',
  'io_uring_register',
  // the kernel itself
  'init_module',
  'finit_module',
  'delete_module',
  'kexec_load',
  'kexec_file_load',
  'reboot',
  'swapon',
  'swapoff',
  'acct',
  'syslog',
  'quotactl',
  'quotactl_fd',
  'open_by_handle_at',
  'name_to_handle_at',
  'settimeofday',
  'clock_settime',
  'adjtimex',
  'clock_adjtime',
  ...(process.arch === 'x64' ? ['iopl', 'ioperm', 'uselib'] : []),
  // clone() with each CLONE_NEW* flag
  'clone_newns',
  'clone_newcgroup',
  'clone_newuts',
  'clone_newipc',
  'clone_newuser',
  'clone_newpid',
  'clone_newnet',
  // from a second thread: the whole process dies, not only the thread
  'unshare_in_thread',
];

// Other ABIs of x86_64, killed by the architecture check at the top of the filter.
// i386 chroot (61) and setns (346) are allowed numbers on x86_64 (wait4, unassigned), so only
// the architecture check stops them; i386 unshare (310) is x86_64's process_vm_readv.
const KILLED_ABI = process.arch === 'x64' ? ['int80_unshare', 'int80_chroot', 'int80_setns', 'x32_unshare'] : [];

// Rules that answer instead of killing, run together in one sandbox: name → exact outcome.
const ANSWERED: [name: string, outcome: string, why: string][] = [
  ['clone', 'ok', 'clone without CLONE_NEW* flags is allowed'],
  ['fork', 'ok', "glibc's fork (clone with CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID|SIGCHLD) is allowed"],
  ['clone_newuser_high', 'ok', 'CLONE_NEWUSER above bit 32 is no namespace: the kernel ignores the high half, so must the filter'],
  ['threads', 'ok', '8 pthreads start and join: glibc falls back from clone3 to clone'],
  ['clone3', 'errno=ENOSYS', 'clone3 answers ENOSYS (its flags cannot be inspected)'],
  ['ioctl_tiocsti', 'errno=EPERM', 'ioctl TIOCSTI is EPERM'],
  ['ioctl_tioclinux', 'errno=EPERM', 'ioctl TIOCLINUX is EPERM'],
  ['ioctl_tiocsti_high', 'errno=EPERM', 'ioctl 0x100005412 (TIOCSTI with bits above 32) is still EPERM'],
  ['ioctl_fionread', 'errno=EBADF', 'an unrelated ioctl reaches the kernel'],
  ['personality_query', 'ok', 'personality(0xffffffff) (query) is allowed'],
  ['personality_linux', 'ok', 'personality(PER_LINUX) is allowed'],
  ['personality_addr_no_randomize', 'errno=EPERM', 'personality(ADDR_NO_RANDOMIZE) is EPERM'],
  ['socket_unix', 'ok', 'AF_UNIX sockets are allowed'],
  ['socket_inet', 'ok', 'AF_INET sockets are allowed'],
  ['socket_inet6', 'ok', 'AF_INET6 sockets are allowed'],
  ['socket_netlink', 'ok', 'AF_NETLINK sockets are allowed'],
  ['socket_unix_invalid', 'errno=EINVAL', 'an allowed family reaches the kernel, which rejects the bad type flag'],
  ['socket_packet', 'errno=EAFNOSUPPORT', 'AF_PACKET is EAFNOSUPPORT'],
  ['socket_bluetooth', 'errno=EAFNOSUPPORT', 'AF_BLUETOOTH is EAFNOSUPPORT'],
  ['socket_vsock', 'errno=EAFNOSUPPORT', 'AF_VSOCK is EAFNOSUPPORT'],
  ['socket_alg', 'errno=EAFNOSUPPORT', 'AF_ALG is EAFNOSUPPORT'],
  ['socket_key', 'errno=EAFNOSUPPORT', 'AF_KEY is EAFNOSUPPORT'],
  ['socket_packet_high', 'errno=EAFNOSUPPORT', 'AF_PACKET with bits above 32 (the kernel reads an int) is EAFNOSUPPORT'],
  ['socket_inet_packet', 'errno=EAFNOSUPPORT', 'AF_INET with the type SOCK_PACKET (a packet socket in disguise) is EAFNOSUPPORT'],
  // socketpair() runs the family's create function before asking it for a pair, so the family
  // rule covers it too (the refused ones would get EINVAL from the kernel for the bad type).
  ['socketpair_unix', 'ok', 'socketpair(AF_UNIX) is allowed'],
  ['socketpair_packet', 'errno=EAFNOSUPPORT', 'socketpair(AF_PACKET) is EAFNOSUPPORT'],
  ['socketpair_vsock', 'errno=EAFNOSUPPORT', 'socketpair(AF_VSOCK) is EAFNOSUPPORT'],
  ['socketpair_alg', 'errno=EAFNOSUPPORT', 'socketpair(AF_ALG) is EAFNOSUPPORT'],
  ['socketpair_tipc', 'errno=EAFNOSUPPORT', 'socketpair(AF_TIPC), which makes real pairs, is EAFNOSUPPORT'],
  ['socketpair_vsock_valid', 'errno=EAFNOSUPPORT', 'a valid socketpair(AF_VSOCK) never reaches vsock_create'],
  // 469 (file_setattr, Linux 6.17) is the highest number the filter knows: it must reach the
  // kernel (EINVAL for a zero-sized attr), and the next one must not.
  ['file_setattr', 'errno=EINVAL', 'the highest known syscall (469, file_setattr) reaches the kernel'],
  ['nr_470', 'errno=ENOSYS', 'syscall 470, above the highest known, is ENOSYS'],
  ['nr_1000', 'errno=ENOSYS', 'syscall 1000 is ENOSYS'],
];

// Outside the sandbox, as this user (root or not): the ordinary error each killed call gets
// with these arguments. The kernel validates these arguments before any privilege check, so
// the answers are the same for root and for an unprivileged user.
const CONTROL: [name: string, errno: string][] = [
  ['unshare', 'EINVAL'],
  ['setns', 'EBADF'],
  ['mount', 'EFAULT'],
  ['umount2', 'EINVAL'],
  ['chroot', 'EFAULT'],
  ['open_tree', 'EINVAL'],
  ['mount_setattr', 'EINVAL'],
  ['ptrace', 'ESRCH'],
  ['process_vm_readv', 'EINVAL'],
  ['pidfd_getfd', 'EINVAL'],
  ['keyctl', 'EOPNOTSUPP'],
  ['add_key', 'EFAULT'],
  ['perf_event_open', 'EINVAL'],
  ['swapon', 'EINVAL'],
  ['quotactl', 'EINVAL'],
  ['name_to_handle_at', 'EINVAL'],
  ['settimeofday', 'EFAULT'],
  ['clock_settime', 'EINVAL'],
  ['adjtimex', 'EFAULT'],
  ['clone_newns', 'EINVAL'],
  ['clone_newuser', 'EINVAL'],
  ['clone_newpid', 'EINVAL'],
  ['clone_newnet', 'EINVAL'],
  // The answered rules, to show that EPERM/ENOSYS/EAFNOSUPPORT inside come from the filter.
  ['clone3', 'EFAULT'],
  ['ioctl_tiocsti', 'EBADF'],
  ['ioctl_tiocsti_high', 'EBADF'],
  ['ioctl_tioclinux', 'EBADF'],
  ['socket_packet', 'EINVAL'],
  ['socket_alg', 'EINVAL'],
  ['socket_packet_high', 'EINVAL'],
  ['socket_inet_packet', 'EINVAL'],
  ['setxattr', 'EFAULT'],
  ['socketpair_vsock', 'EINVAL'],
  ['socketpair_tipc', 'EINVAL'],
  // int 0x80 works for a 64-bit process on this kernel (CONFIG_IA32_EMULATION): without the
  // architecture check, i386 unshare would reach the kernel.
  ...(process.arch === 'x64'
    ? ([
        ['int80_unshare', 'EINVAL'],
        ['int80_chroot', 'EFAULT'],
        ['int80_setns', 'EBADF'],
      ] as [string, string][])
    : []),
];

// Where the strict profile answers differently: calls outside its allow list, and its EPERM group.
const STRICT_ANSWERED: [name: string, outcome: string, why: string][] = [
  ['setuid_self', 'errno=EPERM', 'setuid (even to itself) is in the EPERM group'],
];
const STRICT_KILLED = ['file_setattr', 'setxattr'];
const DEFAULT_ANSWERED: [name: string, outcome: string, why: string][] = [
  ['setuid_self', 'ok', 'setuid to the caller itself is allowed'],
  ['setxattr', 'errno=EFAULT', 'setxattr reaches the kernel'],
];

/** The result lines of a try-syscall run ("NAME ok", "NAME errno=E..."), keyed by NAME. */
function outcomes(stdout: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    if (line === '' || line.startsWith('trying ')) continue;
    const space = line.indexOf(' ');
    map.set(line.slice(0, space), line.slice(space + 1));
  }
  return map;
}

for (const profile of ['default', 'strict'] as const) {
  describe(`seccomp ${profile} profile`, { skip: needs('static-cc') }, () => {
    let dir = '';
    let binary = '';

    before(() => {
      dir = compileFixture('try-syscall', ['-pthread']);
      binary = path.join(dir, 'try-syscall');
    });

    function trySyscalls(names: string[]): Promise<RunResult> {
      return run(binary, names, { filesystem: { readOnly: [dir] }, seccomp: profile });
    }

    async function assertKilledAt(name: string): Promise<void> {
      const r = await trySyscalls([name]);
      // Only "trying NAME" was printed: the process died at that call, before reporting it.
      assert.equal(r.stdout, `trying ${name}\n`);
      assert.equal(r.signal, 'SIGSYS');
      assert.equal(r.code, null);
    }

    describe('killed by SIGSYS at the call', () => {
      for (const name of [...KILLED, ...(profile === 'strict' ? STRICT_KILLED : [])]) {
        test(name, () => assertKilledAt(name));
      }
    });

    describe('other ABIs are killed by the architecture check', () => {
      for (const name of KILLED_ABI) {
        test(name, () => assertKilledAt(name));
      }
    });

    test('a kill ends the process at that call: the calls before it ran, nothing after it runs', async () => {
      const r = await trySyscalls(['clone', 'ioctl_tiocsti', 'unshare', 'setns']);
      assert.equal(r.stdout, 'trying clone\nclone ok\ntrying ioctl_tiocsti\nioctl_tiocsti errno=EPERM\ntrying unshare\n');
      assert.equal(r.signal, 'SIGSYS');
    });

    describe('answered rules (one sandbox)', () => {
      const answered =
        profile === 'strict'
          ? [...ANSWERED.filter(([name]) => !STRICT_KILLED.includes(name)), ...STRICT_ANSWERED]
          : [...ANSWERED, ...DEFAULT_ANSWERED];
      let result: RunResult;
      let seen: Map<string, string>;

      before(async () => {
        result = await trySyscalls(answered.map(([name]) => name));
        seen = outcomes(result.stdout);
      });

      test('the run completes', () => {
        assert.equal(result.signal, null, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
        assert.equal(result.code, 0);
        assert.equal(seen.size, answered.length);
      });

      for (const [name, outcome, why] of answered) {
        test(`${why} (${name} → ${outcome})`, () => {
          assert.equal(seen.get(name), outcome);
        });
      }
    });
  });
}

describe('seccomp default profile', () => {
  let dir = '';
  let binary = '';

  before(() => {
    dir = compileFixture('try-syscall', ['-pthread']);
    binary = path.join(dir, 'try-syscall');
  });

  describe('control: outside the sandbox the same calls get ordinary errors', () => {
    let seen: Map<string, string>;

    before(async () => {
      // Plain child_process, as this user: no namespaces, no filter.
      const { stdout } = await execFileAsync(
        binary,
        CONTROL.map(([name]) => name),
      );
      seen = outcomes(stdout);
    });

    for (const [name, errno] of CONTROL) {
      test(`${name} → ${errno}`, () => {
        assert.equal(seen.get(name), `errno=${errno}`);
      });
    }

    // x32 is compiled out of most kernels (ENOSYS); where it is in, the call is unshare with a
    // bad flag (EINVAL). Either way no SIGSYS: that comes from the filter alone.
    test('x32_unshare → ENOSYS or EINVAL', { skip: process.arch !== 'x64' && 'x86_64 only' }, async () => {
      const { stdout } = await execFileAsync(binary, ['x32_unshare']);
      assert.match(outcomes(stdout).get('x32_unshare') ?? '', /^errno=(ENOSYS|EINVAL)$/);
    });
  });
});

/** Runs try-syscall in a sandbox and collects the 'violation' events and the audit records. */
async function violationsOf(
  binary: string,
  names: string[],
  options: SandboxOptions,
): Promise<{ violations: SeccompViolation[]; audit: Record<string, unknown>[]; signal: string | null; order: string[] }> {
  const t0 = monotonicMs();
  const child = spawnSandboxed(binary, names, { stdio: ['ignore', 'ignore', 'ignore'], ...options });
  const violations: SeccompViolation[] = [];
  const audit: Record<string, unknown>[] = [];
  const order: string[] = [];
  child.on('violation', (v: SeccompViolation) => {
    violations.push(v);
    order.push('violation');
  });
  child.on('audit', (e: Record<string, unknown>) => audit.push(e));
  child.on('exit', () => order.push('exit'));
  const { signalCode } = await child.exited;
  // Every violation record says when it happened: inside the run, on the launcher's clock.
  for (const e of audit.filter((r) => r.event === 'violation')) {
    const at = (e as { [SEEN_AT]?: number })[SEEN_AT];
    assert.ok(typeof at === 'number' && at >= t0 && at <= monotonicMs(), `${at} within [${t0}, now]`);
    assert.ok(!Object.keys(e).includes(String(SEEN_AT)) && !JSON.stringify(e).includes('seen'));
  }
  return { violations, audit, signal: signalCode, order };
}

describe('violations name the syscall and the deciding argument', () => {
  let dir = '';
  let binary = '';
  before(() => {
    dir = compileFixture('try-syscall', ['-pthread']);
    binary = path.join(dir, 'try-syscall');
  });

  const arch = process.arch === 'x64' ? 'x86_64' : 'aarch64';
  const KILLS: [name: string, syscall: string, argument: string | undefined, message: string][] = [
    ['clone_newuser', 'clone', 'CLONE_NEWUSER', 'killed: clone(CLONE_NEWUSER) is not allowed in the sandbox'],
    ['clone_newnet', 'clone', 'CLONE_NEWNET', 'killed: clone(CLONE_NEWNET) is not allowed in the sandbox'],
    ['unshare', 'unshare', '0x1', 'killed: unshare(0x1) is not allowed in the sandbox'],
    ['mount', 'mount', undefined, 'killed: mount() is not allowed in the sandbox'],
    ['unshare_in_thread', 'unshare', '0x1', 'killed: unshare(0x1) is not allowed in the sandbox'],
  ];
  for (const profile of ['default', 'strict'] as const) {
    for (const [name, syscall, argument, message] of KILLS) {
      test(`${profile}: ${name} → ${message}`, async () => {
        const r = await violationsOf(binary, [name], { filesystem: { readOnly: [dir] }, seccomp: profile });
        assert.equal(r.signal, 'SIGSYS');
        assert.equal(r.violations.length, 1);
        const [v] = r.violations;
        assert.equal(v.syscall, syscall);
        assert.equal(v.arch, arch);
        assert.equal(v.argument, argument);
        assert.equal(v.action, 'killed');
        assert.equal(v.message, message);
        // Before 'exit', and in the audit log as a `violation` event.
        assert.deepEqual(r.order, ['violation', 'exit']);
        const record = r.audit.find((e) => e.event === 'violation');
        assert.equal(record?.syscall, syscall);
        assert.equal(record?.message, message);
      });
    }
  }

  test('strict: a syscall outside the allow list is killed and named', async () => {
    const r = await violationsOf(binary, ['setxattr'], { filesystem: { readOnly: [dir] }, seccomp: 'strict' });
    assert.equal(r.signal, 'SIGSYS');
    assert.deepEqual(
      r.violations.map((v) => v.message),
      ['killed: setxattr() is not allowed in the sandbox'],
    );
  });

  // The argument rules are common to both profiles (emitCommon in native/seccomp.cc).
  for (const profile of ['default', 'strict'] as const) {
    test(`${profile}: answered refusals are named with their errno, and the run goes on`, async () => {
      const names = ['socket_packet', 'socket_inet_packet', 'socketpair_vsock', 'ioctl_tiocsti', 'personality_addr_no_randomize', 'clone'];
      const r = await violationsOf(binary, names, { filesystem: { readOnly: [dir] }, seccomp: profile });
      assert.equal(r.signal, null);
      // The first refusal of each syscall is reported (a loop cannot flood the launcher):
      // socket_inet_packet is answered, not reported again.
      assert.deepEqual(
        r.violations.map((v) => [v.action, v.errno, v.message]),
        [
          ['refused', 'EAFNOSUPPORT', 'refused: socket(AF_PACKET, SOCK_RAW) is not allowed in the sandbox (EAFNOSUPPORT)'],
          ['refused', 'EAFNOSUPPORT', 'refused: socketpair(AF_VSOCK, SOCK_STREAM) is not allowed in the sandbox (EAFNOSUPPORT)'],
          ['refused', 'EPERM', 'refused: ioctl(TIOCSTI) is not allowed in the sandbox (EPERM)'],
          ['refused', 'EPERM', 'refused: personality(0x40000) is not allowed in the sandbox (EPERM)'],
        ],
      );
    });
  }

  test('a process that catches SIGSYS is killed by SIGKILL instead, the call still never runs', async () => {
    // python3 installs a SIGSYS handler, then calls unshare(CLONE_NEWUSER) through ctypes: the
    // handler never runs, nothing after the call prints, and the shell sees a SIGKILL death.
    const script = `import ctypes, signal
signal.signal(signal.SIGSYS, lambda *a: print('handler ran', flush=True))
print('calling', flush=True)
print('returned', ctypes.CDLL(None).syscall(${process.arch === 'x64' ? 272 : 97}, 0x10000000), flush=True)`;
    const r = await run('/bin/sh', ['-c', `python3 -c "${script}"; echo "rc=$?"`]);
    assert.equal(r.stdout, 'calling\nrc=137\n');
  });
});

describe('the launcher names the violation on stderr', () => {
  test('stockade run: `stockade: killed: clone(CLONE_NEWUSER) is not allowed in the sandbox`, exit 128+SIGSYS', async () => {
    const dir = compileFixture('try-syscall', ['-pthread']);
    const bin = path.join(__dirname, '..', '..', 'bin', 'stockade.js');
    const r = await execFileAsync(process.execPath, [bin, 'run', '--ro', dir, '--', path.join(dir, 'try-syscall'), 'clone_newuser']).catch(
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    assert.equal((r as { code?: number }).code, 128 + 31);
    assert.equal(r.stdout, 'trying clone_newuser\n');
    assert.equal(r.stderr, 'stockade: killed: clone(CLONE_NEWUSER) is not allowed in the sandbox\n');
  });
});

describe('a violation during an MCP tool call', () => {
  test('mcp.tool_violation names the tool call in flight and the refused syscall', async () => {
    // The bundled hostile server (stockade demo) runs `unshare -r` in its escape_namespaces tool.
    const server = path.join(__dirname, '..', 'lib', 'demo', 'hostile-server.js');
    const dir = sharedTempDir('tool-violation');
    const audit = path.join(dir, 'audit.jsonl');
    const bin = path.join(__dirname, '..', '..', 'bin', 'stockade.js');
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [bin, 'run', '--ro', path.dirname(server), '--tools', 'escape_namespaces', '--audit', audit, '--', 'node', server, '{}'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      stderr: 'pipe',
    });
    const client = new Client({ name: 'stockade-test', version: '0.0.0' });
    try {
      await client.connect(transport);
      const result = (await client.callTool({ name: 'escape_namespaces', arguments: {} })) as { content: { text: string }[] };
      assert.match(result.content[0].text, /killed by SIGSYS/);
    } finally {
      await client.close();
    }
    const events = fs
      .readFileSync(audit, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    fs.rmSync(dir, { recursive: true, force: true });
    const during = events.find((e) => e.event === 'mcp.tool_violation');
    assert.ok(during, JSON.stringify(events));
    assert.deepEqual(
      during.calls.map((c: { tool: string }) => c.tool),
      ['escape_namespaces'],
    );
    assert.equal(during.violation.syscall, 'unshare');
    assert.equal(during.violation.argument, 'CLONE_NEWUSER');
    assert.equal(during.violation.message, 'killed: unshare(CLONE_NEWUSER) is not allowed in the sandbox');
  });
});
