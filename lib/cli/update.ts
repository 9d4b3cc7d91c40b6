// `stockade update POLICY`: moves a server's package pin deliberately. Asks the registry (with
// the user's own npm and its configuration) what the command's package resolves to now, shows
// the version change, and records name, version and integrity in the policy; an approved policy
// is approved again with the new pin, since running this command is the consent.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { approvalFiles, readApproval, writeApproval } from '../approval';
import { loadPolicy } from '../policy';
import type { PackagePin, Policy } from '../policy/types';
import { parseCommandArgs } from './args';
import { UsageError } from './errors';
import { npxPackage } from './package-pin';

function updateUsage(): string {
  return `Usage: stockade update POLICY

Pins the package of an \`npx -y PKG\` server: asks the registry (with your npm and its
configuration) for the version PKG resolves to now, shows the change, and records
package: { name, version, integrity } in POLICY (a JSON policy). The launcher then installs
exactly that version, checks its tarball against the integrity before it runs, and runs it
with the registry out of reach.`;
}

interface CliIO {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

/** The registry's answer for name@range, through npm itself (registry, auth and proxy as the user configured them). */
function resolvePackage(name: string, range: string, env: NodeJS.ProcessEnv = process.env): PackagePin {
  let out: string;
  try {
    out = execFileSync('npm', ['view', `${name}@${range}`, 'name', 'version', 'dist.integrity', '--json'], {
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    const said = String((err as { stderr?: string }).stderr ?? (err as Error).message)
      .split('\n')
      .find((l) => l.trim() !== '');
    throw new UsageError(`npm view ${name}@${range} failed: ${said ?? 'no output'}`);
  }
  let doc = JSON.parse(out) as unknown;
  // A range matching several versions gives an array, oldest first: the newest wins, as npm install picks.
  if (Array.isArray(doc)) doc = doc[doc.length - 1];
  const d = doc as { name?: unknown; version?: unknown; 'dist.integrity'?: unknown };
  if (typeof d?.name !== 'string' || typeof d.version !== 'string' || typeof d['dist.integrity'] !== 'string') {
    throw new UsageError(`npm view ${name}@${range} gave no name, version and integrity`);
  }
  return { name: d.name, version: d.version, integrity: d['dist.integrity'] };
}

export async function main(argv: string[], io: CliIO = process): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { command: 'update', positional: 'POLICY', options: {} });
  if (values.help) {
    io.stdout.write(`${updateUsage()}\n`);
    return 0;
  }
  const [file] = positionals;
  if (!file.endsWith('.json'))
    throw new UsageError('update rewrites JSON policies only; for YAML, set package: { name, version, integrity } by hand');
  let policy: Policy;
  try {
    policy = loadPolicy(file);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_STOCKADE_POLICY') throw err;
    io.stderr.write(`stockade update: ${(err as Error).message}\n`);
    return 2;
  }
  const spec = npxPackage([...(policy.command ?? []), ...(policy.args ?? [])]);
  if (spec === undefined) throw new UsageError(`the policy's command is not \`npx [-y] PACKAGE\``);
  const now = resolvePackage(spec.name, spec.range);
  const was = policy.package;
  if (was && was.version === now.version && was.integrity === now.integrity) {
    io.stdout.write(`stockade update: ${now.name} is pinned to ${now.version} already\n`);
    return 0;
  }
  const change = was
    ? `${was.version} -> ${now.version}${was.version === now.version ? ' (same version, another tarball!)' : ''}`
    : `(unpinned) -> ${now.version}`;
  io.stdout.write(`stockade update: ${now.name} ${change}\n  integrity ${now.integrity}\n`);
  const next: Policy = { ...policy, package: now };
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(next, null, 2)}\n`, { flag: 'wx', mode: fs.statSync(file).mode & 0o777 });
  fs.renameSync(tmp, file);
  const files = approvalFiles(file);
  const approval = readApproval(files);
  if (approval) writeApproval(files, next, approval.tools);
  io.stdout.write(`stockade update: recorded in ${file}${approval ? ' (and approved)' : ''}\n`);
  return 0;
}
