// `stockade update POLICY`: moves a server's package pin deliberately. Asks the registry (npm
// through the user's own npm; PyPI's JSON API, lib/cli/package-resolve.ts) what the command's
// package (npx or uvx) resolves to now, shows
// the version change, and records name, version and integrity in the policy; an approved policy
// is approved again with the new pin, since running this command is the consent.
import fs = require('node:fs');

import { randomBytes } from 'node:crypto';
import { approvalFiles, readApproval, writeApproval } from '../approval';
import { loadPolicy } from '../policy';
import type { Policy } from '../policy/types';
import { parseCommandArgs } from './args';
import { UsageError } from './errors';
import { commandPackage, resolveCommandPackage } from './package-resolve';

function updateUsage(): string {
  return `Usage: stockade update POLICY
       stockade update CONFIG NAME     (the policy of server NAME in a wrapped client config)

Pins the package of an \`npx -y PKG\` or \`uvx PKG\` server: asks the registry (npm with
your configuration; PyPI's JSON API at PIP_INDEX_URL / UV_INDEX_URL, default pypi.org) for the
version PKG resolves to now, shows the change, and records package: { name, version,
integrity } in POLICY (a JSON policy). The launcher then installs exactly that version, checks
its tarball (or wheel) against the integrity before any of it runs, and runs it with the
registry out of reach.`;
}

interface CliIO {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

export async function main(argv: string[], io: CliIO = process): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { command: 'update', positional: 'POLICY', min: 1, max: 2, options: {} });
  if (values.help) {
    io.stdout.write(`${updateUsage()}\n`);
    return 0;
  }
  let file = positionals[0];
  // A policy wrap wrote has no command: the client config runs it after `--`.
  let command: string[] | undefined;
  if (positionals.length === 2) {
    const { policyOfServer, WrapError } = require('./wrap') as typeof import('./wrap');
    try {
      ({ policy: file, command } = policyOfServer(positionals[0], positionals[1]));
    } catch (err) {
      if (!(err instanceof WrapError)) throw err;
      io.stderr.write(`stockade update: ${err.message}\n`);
      return 2;
    }
  }
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
  const runs = command?.length ? command : [...(policy.command ?? []), ...(policy.args ?? [])];
  if (runs.length === 0) throw new UsageError(`${file} has no command (the client config gives it): use stockade update CONFIG NAME`);
  const spec = commandPackage(runs);
  if (spec === undefined) throw new UsageError(`the server's command is not \`npx [-y] PACKAGE\` or \`uvx PACKAGE\``);
  // The registry configuration is the user's (npm's config; PIP_INDEX_URL / UV_INDEX_URL), then the policy's env.
  const policyEnv = Object.fromEntries(Object.entries(policy.env ?? {}).filter((e): e is [string, string] => typeof e[1] === 'string'));
  const now = await resolveCommandPackage(spec, { ...policyEnv, ...process.env });
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
