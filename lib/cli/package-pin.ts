// Pinned servers (supply chain; PyPI's uvx in ./pypi-pin.ts): `npx -y PKG` runs whatever the registry calls PKG's latest
// version today. A policy with `package: { name, version, integrity }` runs exactly that
// version, and only if its tarball is the one pinned:
//
//   install phase  a sandbox with the policy's grants runs npm only: `npm exec --ignore-scripts
//                  --package NAME@VERSION -- true` installs the pinned version into npx's
//                  directory of the server's private cache and runs no code of the package
//                  (no install scripts, `true` instead of its bin). npm checks the tarball
//                  against the integrity the registry advertises and records it in the
//                  lockfile; the launcher compares that with the pin. A mismatch stops here,
//                  naming both digests.
//   run phase      `npx -y NAME@VERSION` with npm offline: the verified install runs, and the
//                  registry is no longer reachable unless the policy names it.
//
// The previous install (npx's `_npx` directory, which the server could have modified while it
// ran) is removed inside the install sandbox first, so every start installs afresh from the
// cache. Install scripts of a pinned package never run.
// The pin covers the package's own tarball; its dependencies are resolved by npm as usual
// (a package that ships an npm-shrinkwrap.json pins those too).
import fs = require('node:fs');
import path = require('node:path');

import type { PolicyLaunch } from '../policy';
import type { PackagePin } from '../policy/types';
import { type SandboxedProcess, spawnSandboxed } from '../process';
import { npxPackage } from './package-resolve';

export { npxPackage } from './package-resolve';

/** A lockfile larger than this is not npx's. */
const MAX_FILE_BYTES = 64 * 1024 * 1024;

export class PackagePinError extends Error {
  readonly code = 'ERR_STOCKADE_PACKAGE_PIN';
}

/**
 * Reads `rel` below `root` (the sandbox-writable cache) the way a setuid helper would: every
 * component lstat'ed (no symlinks), the file opened with O_NOFOLLOW and checked to be the same
 * inode that was lstat'ed.
 */
export function readBelow(root: string, rel: string): Buffer {
  let at = root;
  for (const part of rel.split('/')) {
    at = path.join(at, part);
    const st = fs.lstatSync(at);
    if (st.isSymbolicLink()) throw new PackagePinError(`stockade: ${at} is a symlink; the package cache was tampered with`);
  }
  const before = fs.lstatSync(at);
  if (!before.isFile() || before.size > MAX_FILE_BYTES)
    throw new PackagePinError(`stockade: ${at} is not a regular file of at most 64 MiB`);
  const fd = fs.openSync(at, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  try {
    const st = fs.fstatSync(fd);
    if (st.ino !== before.ino || st.dev !== before.dev) throw new PackagePinError(`stockade: ${at} changed while it was checked`);
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The integrity npm verified the installed tarball against, from the lockfile npm wrote in
 * npx's install directory (only npm ran there: no package code).
 */
function installedIntegrity(cache: string, pin: PackagePin): string {
  try {
    const dirs = fs.readdirSync(path.join(cache, '_npx'));
    if (dirs.length !== 1) throw new PackagePinError(`stockade: expected one npx install of ${pin.name}, found ${dirs.length}`);
    const lock = JSON.parse(readBelow(cache, `_npx/${dirs[0]}/package-lock.json`).toString('utf8'));
    const entry = lock?.packages?.[`node_modules/${pin.name}`];
    if (entry?.version !== pin.version)
      throw new PackagePinError(`stockade: npm installed ${pin.name}@${entry?.version}, not ${pin.version}`);
    return typeof entry.integrity === 'string' ? entry.integrity : 'no integrity';
  } catch (err) {
    if (err instanceof PackagePinError) throw err;
    throw new PackagePinError(
      `stockade: cannot check the install of ${pin.name} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
}

/**
 * The program npx runs for the installed pin: the package's bin (the only one, or the one named
 * like the package), as `_npx/HASH/node_modules/.bin/BIN` below the cache. `stockade serve` runs
 * it directly, from a cache its sessions get read-only (lib/serve/trust.ts).
 */
export function installedBin(cache: string, pin: PackagePin): string {
  const dirs = fs.readdirSync(path.join(cache, '_npx'));
  if (dirs.length !== 1) throw new PackagePinError(`stockade: expected one npx install of ${pin.name}, found ${dirs.length}`);
  const rel = `_npx/${dirs[0]}/node_modules`;
  let manifest: { bin?: unknown };
  try {
    manifest = JSON.parse(readBelow(cache, `${rel}/${pin.name}/package.json`).toString('utf8'));
  } catch (err) {
    if (err instanceof PackagePinError) throw err;
    throw new PackagePinError(`stockade: the installed ${pin.name} has no readable package.json`);
  }
  const own = pin.name.slice(pin.name.lastIndexOf('/') + 1);
  const bins = typeof manifest.bin === 'string' ? [own] : manifest.bin && typeof manifest.bin === 'object' ? Object.keys(manifest.bin) : [];
  const bin = bins.length === 1 ? bins[0] : bins.find((b) => b === own);
  if (bin === undefined || !/^[A-Za-z0-9@._-]+$/.test(bin))
    throw new PackagePinError(`stockade: ${pin.name} names no single program to run`);
  return path.join(cache, rel, '.bin', bin);
}

function finished(child: SandboxedProcess): Promise<number | null> {
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code));
  });
}

/**
 * The install phase and the verification, for an npx or a uvx (./pypi-pin.ts) server. Resolves
 * with the launch for the run phase; rejects with PackagePinError when the package does not
 * match the pin. `registryNamed(host)`: does the user's policy itself allow that registry host
 * (then the run phase keeps it)?
 */
export async function installPinned(
  launch: PolicyLaunch,
  pin: PackagePin,
  registryNamed: (host: string) => boolean,
): Promise<PolicyLaunch> {
  const command = [launch.command, ...launch.args];
  if (path.basename(launch.command) === 'uvx') {
    const { installPinnedPypi } = require('./pypi-pin') as typeof import('./pypi-pin');
    return installPinnedPypi(launch, pin, registryNamed);
  }
  const spec = npxPackage(command);
  if (spec === undefined || spec.name !== pin.name) {
    throw new PackagePinError(
      `stockade: the policy pins ${pin.name}, but the command does not run it with npx (${JSON.stringify(command)})`,
    );
  }
  if (!pin.integrity.startsWith('sha512-'))
    throw new PackagePinError(`stockade: only sha512 integrity pins are supported, found ${pin.integrity}`);
  const env = launch.options.env ?? {};
  const cache = typeof env.npm_config_cache === 'string' ? env.npm_config_cache : undefined;
  if (cache === undefined) throw new PackagePinError('stockade: a pinned package needs the node profile (its private npm cache)');
  const wanted = `${pin.name}@${pin.version}`;
  // npm only: --ignore-scripts keeps the package's (and its dependencies') install scripts from
  // running before the check; `true` is run instead of the package's bin.
  const install = spawnSandboxed(
    '/bin/sh',
    ['-c', 'rm -rf -- "$npm_config_cache/_npx" && exec npm exec --yes --ignore-scripts --package="$1" -- true', 'sh', wanted],
    { ...launch.options, stdio: ['ignore', 2, 2] },
  );
  const code = await finished(install);
  if (code !== 0) throw new PackagePinError(`stockade: installing ${wanted} failed (npm exited with ${code}); not starting the server`);
  const got = installedIntegrity(cache, pin);
  if (got !== pin.integrity) {
    throw new PackagePinError(
      `stockade: ${wanted} from the registry is not the pinned package: its tarball is ${got}, the pin is ${pin.integrity}; not starting it (if the change is expected: stockade update POLICY)`,
    );
  }
  const args = [...launch.args];
  args[spec.index - 1] = wanted;
  const network = launch.options.network;
  const options = { ...launch.options, env: { ...env, npm_config_offline: 'true' } };
  if (typeof network === 'object' && !registryNamed('registry.npmjs.org')) {
    options.network = { ...network, allow: network.allow.filter((h) => h !== 'registry.npmjs.org') };
  }
  return { ...launch, args, options };
}
