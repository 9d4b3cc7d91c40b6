// `stockade doctor`: what this host supports, and the fix for each missing piece.
import fs = require('node:fs');

import { type HostCheck, probeHost } from '../probe';
import { parseCommandArgs } from './args';

/**
 * An AppArmor profile that lets this node binary create user namespaces on Ubuntu 23.10+
 * (kernel.apparmor_restrict_unprivileged_userns=1), in the form Ubuntu ships for such programs:
 * unconfined otherwise, with the `userns` permission.
 */
function apparmorProfile(nodePath = fs.realpathSync(process.execPath)): string {
  return `# stockade: allow ${nodePath} to create user namespaces (Ubuntu 23.10+).
# Install: sudo tee /etc/apparmor.d/stockade-node < this file; sudo apparmor_parser -r /etc/apparmor.d/stockade-node
abi <abi/4.0>,
include <tunables/global>

profile stockade-node ${nodePath} flags=(unconfined) {
  userns,

  include if exists <local/stockade-node>
}
`;
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    command: 'doctor',
    options: { json: { type: 'boolean' }, 'apparmor-profile': { type: 'boolean' } },
  });
  if (values['apparmor-profile'] && !values.help) {
    process.stdout.write(apparmorProfile());
    return 0;
  }
  if (values.help) {
    process.stdout.write(
      'Usage: stockade doctor [--json] [--apparmor-profile]\n\nChecks what this host supports and prints the fix for each missing piece.\n--apparmor-profile prints an AppArmor profile that lets this node create user namespaces (Ubuntu 23.10+).\n',
    );
    return 0;
  }
  const report = probeHost();
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return report.ready ? 0 : 1;
  }
  const rows: [string, HostCheck, boolean][] = [
    ['kernel', report.kernelVersion, true],
    ['user namespaces', report.userNamespaces, true],
    ['seccomp', report.seccomp, true],
    ['AppArmor', report.apparmor, true],
    ['Landlock', report.landlock, false],
    ['Landlock denials', report.landlockAudit, false],
    ['cgroup v2 delegation', report.cgroupDelegation, false],
    ['limits', report.limitsCheck, false],
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
