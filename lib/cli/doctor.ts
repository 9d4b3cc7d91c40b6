// `stockade doctor`: what this host supports, and the fix for each missing piece.
import { type HostCheck, probeHost } from '../probe';

export async function main(argv: string[]): Promise<number> {
  const report = probeHost();
  if (argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return report.ready ? 0 : 1;
  }
  const rows: [string, HostCheck, boolean][] = [
    ['kernel', report.kernelVersion, true],
    ['user namespaces', report.userNamespaces, true],
    ['seccomp', report.seccomp, true],
    ['AppArmor', report.apparmor, true],
    ['Landlock', report.landlock, false],
    ['cgroup v2 delegation', report.cgroupDelegation, false],
  ];
  const lines = [`stockade doctor — Linux ${report.kernel} (${report.arch}), running as uid ${report.uid}`];
  for (const [name, check, required] of rows) {
    const mark = check.ok ? 'ok  ' : required ? 'FAIL' : 'note';
    lines.push(`  [${mark}] ${name}: ${check.detail}`);
    if (!check.ok && check.fix) lines.push(`         fix: ${check.fix}`);
  }
  lines.push(
    report.ready ? 'This host can run stockade sandboxes.' : 'This host cannot run stockade sandboxes until the FAIL lines are fixed.',
  );
  process.stdout.write(`${lines.join('\n')}\n`);
  return report.ready ? 0 : 1;
}
