// What the sandbox adds per system call, for syscall-heavy payloads: `dd bs=1` copies /dev/zero
// to /dev/null one byte at a time (two syscalls per byte) and reports its own time, so sandbox
// setup is not in the figure. Modes, interleaved:
//   direct                      dd on the host (in a session of its own, as the sandbox is)
//   sandbox, seccomp            spawnSandboxed: the default filter (native/seccomp.cc)
//   sandbox, no filter          the same plan with the filter left out (native layer, bench only)
//   direct, SSBD+STIBP forced   dd with PR_SET_SPECULATION_CTRL disabling store bypass and
//                               indirect branch speculation: what a kernel booted with
//                               spec_store_bypass_disable=seccomp (or before 5.16, its default)
//                               imposes on every filtered task unless the filter is installed
//                               with SECCOMP_FILTER_FLAG_SPEC_ALLOW
// ns per syscall = dd's seconds / (2 x bytes).
//
//   SECCOMP_BYTES (default 200000), SECCOMP_ROUNDS (default 6)
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { spawnSandboxed } from '../lib';
import { native } from '../lib/native';
import { resolveSandbox } from '../lib/plan';
import { interleave, knob, ratio, report, type Sampler, section } from './harness';

const BYTES = knob('SECCOMP_BYTES', 200_000);
const ROUNDS = knob('SECCOMP_ROUNDS', 6);
const DD = '/usr/bin/dd';
const ddArgs = ['if=/dev/zero', 'of=/dev/null', 'bs=1', `count=${BYTES}`];

/** dd's own report: "... copied, 0.297833 s, 672 kB/s" -> ns per syscall. */
function nsPerSyscall(stderr: string): number {
  const m = /copied, ([\d.]+) s/.exec(stderr);
  if (!m) throw new Error(`dd said: ${stderr}`);
  return (Number(m[1]) * 1e9) / (2 * BYTES);
}

function collect(stream: NodeJS.ReadableStream, done: Promise<unknown>): Promise<string> {
  let text = '';
  stream.on('data', (d: Buffer) => {
    text += d.toString();
  });
  return new Promise((resolve, reject) => {
    stream.on('end', () => done.then(() => resolve(text), reject));
    stream.on('error', reject);
  });
}

// The direct modes run in the launcher's session, as the sandbox does (it leaves the terminal
// without setsid, native/child.cc): where the scheduler groups by session
// (sched_autogroup_enabled) a new session is a new share of the CPU, which decided this
// comparison on a busy machine while the sandbox was a session of its own.
function direct(argv: string[]): Sampler {
  return async () => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    return nsPerSyscall(await collect(child.stderr, exited));
  };
}

const sandboxed: Sampler = async () => {
  const child = spawnSandboxed(DD, ddArgs, { stdio: ['ignore', 'ignore', 'pipe'] });
  return nsPerSyscall(await collect(child.stderr as NodeJS.ReadableStream, child.exited));
};

/** The plan spawnSandboxed would run, without the filter: only for this measurement. */
const unfiltered: Sampler = async () => {
  const resolved = resolveSandbox(DD, ddArgs, {});
  const [r, w] = native().pipe();
  const stderr = new net.Socket({ fd: r, readable: true, writable: false });
  const exited = new Promise<void>((resolve, reject) => {
    native().spawn(
      { ...resolved.plan, file: DD, fds: [-1, -1, w], seccomp: false },
      () => resolve(),
      (result) => {
        fs.closeSync(w);
        if ('error' in result) reject(new Error(`spawn failed: ${JSON.stringify(result.error)}`));
      },
    );
  });
  return nsPerSyscall(await collect(stderr, exited));
};

// PR_SET_SPECULATION_CTRL (53): PR_SPEC_STORE_BYPASS (0) and PR_SPEC_INDIRECT_BRANCH (1) set to
// PR_SPEC_DISABLE (4), each where the host lets a task control it; both survive execve. python3's ctypes, so that no compiler is needed.
const forceMitigations = [
  'import ctypes, os, sys',
  'libc = ctypes.CDLL(None, use_errno=True)',
  'forced = 0',
  'for which in (0, 1):',
  // ENXIO, EPERM: this misfeature cannot be controlled per task here (the CPU, boot options).
  '    if libc.prctl(53, which, 4, 0, 0) == 0: forced += 1',
  '    elif ctypes.get_errno() not in (1, 6): sys.exit("prctl: errno %d" % ctypes.get_errno())',
  'if forced == 0: sys.exit("prctl: neither SSBD nor STIBP can be forced per task here")',
  `os.execv(${JSON.stringify(DD)}, [${JSON.stringify(DD)}] + sys.argv[1:])`,
].join('\n');

function python(): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin').split(':')) {
    try {
      fs.accessSync(`${dir}/python3`, fs.constants.X_OK);
      return `${dir}/python3`;
    } catch {}
  }
  return undefined;
}

async function main(): Promise<void> {
  const modes: Record<string, Sampler> = {
    direct: direct([DD, ...ddArgs]),
    'sandbox, seccomp': sandboxed,
    'sandbox, no filter': unfiltered,
  };
  const py = python();
  // Whether this host lets a task force either mitigation at all (a VM may expose neither).
  const canForce = py !== undefined && spawnSync(py, ['-c', forceMitigations.replace(/os\.execv\(.*$/, 'sys.exit(0)')]).status === 0;
  if (py && canForce) modes['direct, SSBD+STIBP forced'] = direct([py, '-c', forceMitigations, ...ddArgs]);
  const s = section(
    'seccomp',
    `per-syscall cost, dd bs=1 count=${BYTES} (${2 * BYTES} syscalls), ${ROUNDS} rounds, interleaved (ns/syscall)`,
  );
  s.modes = await interleave(modes, { rounds: ROUNDS, perRound: 1, warmup: 1, unit: 'ns/syscall' });
  s.ratios.push(ratio(s.modes, 'sandbox, seccomp', 'direct'), ratio(s.modes, 'sandbox, seccomp', 'sandbox, no filter'));
  if (py && canForce) s.ratios.push(ratio(s.modes, 'direct, SSBD+STIBP forced', 'direct'));
  if (py && !canForce) s.notes.push('this host lets no task force SSBD or STIBP (prctl EPERM/ENXIO): the forced mode is left out');
  const filterCost = s.modes['sandbox, seccomp'].roundMedians.map((x, i) => x - s.modes['sandbox, no filter'].roundMedians[i]);
  s.figures['filter cost per syscall, per round (ns)'] = filterCost.map((x) => x.toFixed(0)).join(', ');
  const vuln = '/sys/devices/system/cpu/vulnerabilities/spec_store_bypass';
  s.figures['this kernel, spec_store_bypass'] = fs.existsSync(vuln) ? fs.readFileSync(vuln, 'utf8').trim() : 'unknown';
  const state = String(s.figures['this kernel, spec_store_bypass']);
  s.notes.push(
    state.includes('seccomp')
      ? 'the kernel switches SSBD on for seccomp-filtered tasks here: SECCOMP_FILTER_FLAG_SPEC_ALLOW would save about what the forced mode costs'
      : state.includes('prctl')
        ? '"via prctl": seccomp does not switch SSBD on here, so SECCOMP_FILTER_FLAG_SPEC_ALLOW would change nothing on this host; the forced mode shows what it would save where the kernel does'
        : 'no per-task SSBD mitigation on this host at all, so SECCOMP_FILTER_FLAG_SPEC_ALLOW would change nothing here',
  );
  report(s);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
