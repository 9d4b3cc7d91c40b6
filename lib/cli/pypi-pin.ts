// Pinned `uvx PKG` servers (supply chain, PyPI): a policy with `package: { name, version,
// integrity: 'sha256:<hex>', file }` runs exactly that wheel, and only if its bytes are the
// pinned ones. Three sandboxes, each with the policy's grants:
//
//   download  pip fetches NAME==VERSION and its dependencies as wheels only
//             (`pip download --only-binary=:all:`: no sdist, so no build backend runs, no code of
//             any package) into a fresh directory of the server's private pip cache, with the
//             index reachable. pip checks each file against the hash the index advertises.
//   verify    the launcher (host side, never following a symlink the sandbox could have
//             planted) hashes the pinned wheel it finds there and compares it with the pin. A
//             mismatch stops here, naming both digests.
//   install   pip installs from that directory only (`--no-index --find-links`, network none)
//             into a target directory beside it; installing a wheel runs none of its code.
//   run       the package's console script from the target (PYTHONPATH pointing there), with
//             the index no longer reachable unless the policy names it.
//
// pip, not uv, does the work: pip is what Debian and most Python installs ship (`python3 -m
// pip`), uv's cache layout is not a stable interface to verify, and the verified install is
// then independent of uvx. The server runs with the python3 the python profile binds. The pin
// covers the package's own wheel; dependencies are resolved by pip as usual (wheels only).
import fs = require('node:fs');
import path = require('node:path');

import { createHash } from 'node:crypto';
import type { PolicyLaunch } from '../policy';
import type { PackagePin } from '../policy/types';
import { type SandboxedProcess, spawnSandboxed } from '../process';
import { PackagePinError, readBelow } from './package-pin';
import { normalizePypiName, uvxPackage } from './package-resolve';

/** Hosts the python profile adds for uvx; removed for the run phase unless the policy names them. */
export const PYPI_HOSTS = ['pypi.org', 'files.pythonhosted.org'];

function finished(child: SandboxedProcess): Promise<number | null> {
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code));
  });
}

/** The wheel of `pin` in `dir` (below the sandbox-writable cache), by its recorded file name or its name and version. */
function pinnedWheel(cache: string, rel: string, pin: PackagePin): string {
  let names: string[];
  try {
    names = fs.readdirSync(path.join(cache, rel));
  } catch (err) {
    throw new PackagePinError(`stockade: cannot check the download of ${pin.name} (${(err as NodeJS.ErrnoException).code})`);
  }
  // Wheel file names use the name with '-' as '_' (PEP 427); compare normalized.
  const wanted = `${normalizePypiName(pin.name)}-${pin.version}-`;
  const found =
    pin.file !== undefined
      ? names.find((n) => n === pin.file)
      : names.find((n) => n.endsWith('.whl') && normalizePypiName(n.replace(/_/g, '-')).startsWith(wanted));
  if (found === undefined) throw new PackagePinError(`stockade: pip did not download ${pin.file ?? `${pin.name} ${pin.version}`}`);
  return `${rel}/${found}`;
}

export async function installPinnedPypi(
  launch: PolicyLaunch,
  pin: PackagePin,
  registryNamed: (host: string) => boolean,
): Promise<PolicyLaunch> {
  const command = [launch.command, ...launch.args];
  const spec = uvxPackage(command);
  if (spec === undefined || normalizePypiName(spec.name) !== normalizePypiName(pin.name)) {
    throw new PackagePinError(
      `stockade: the policy pins ${pin.name}, but the command does not run it with uvx (${JSON.stringify(command)})`,
    );
  }
  const m = /^sha256:([0-9a-f]{64})$/.exec(pin.integrity);
  if (!m) throw new PackagePinError(`stockade: a PyPI pin is 'sha256:<hex>', found ${pin.integrity}`);
  const env = launch.options.env ?? {};
  const cache = typeof env.PIP_CACHE_DIR === 'string' ? env.PIP_CACHE_DIR : undefined;
  if (cache === undefined) throw new PackagePinError('stockade: a pinned PyPI package needs the python profile (its private pip cache)');
  const wanted = `${pin.name}==${pin.version}`;
  const base = 'stockade-pinned';
  const stdio: ['ignore', number, number] = ['ignore', 2, 2];
  // The previous download and install (which the server could have modified while it ran) go
  // first, inside the sandbox: every start downloads and installs afresh (pip's cache beside
  // them makes that quick).
  const download = spawnSandboxed(
    '/bin/sh',
    [
      '-c',
      'rm -rf -- "$PIP_CACHE_DIR/$2" && mkdir -p -- "$PIP_CACHE_DIR/$2/wheels" && exec python3 -m pip download --disable-pip-version-check --no-input --only-binary=:all: --dest "$PIP_CACHE_DIR/$2/wheels" -- "$1"',
      'sh',
      wanted,
      base,
    ],
    { ...launch.options, stdio },
  );
  const code = await finished(download);
  if (code !== 0) throw new PackagePinError(`stockade: downloading ${wanted} failed (pip exited with ${code}); not starting the server`);
  const wheel = pinnedWheel(cache, `${base}/wheels`, pin);
  const got = `sha256:${createHash('sha256').update(readBelow(cache, wheel)).digest('hex')}`;
  if (got !== pin.integrity) {
    throw new PackagePinError(
      `stockade: ${pin.name} ${pin.version} from the index is not the pinned package: its wheel is ${got}, the pin is ${pin.integrity}; not starting it (if the change is expected: stockade update POLICY)`,
    );
  }
  // Offline: only what was downloaded (and checked) can be installed.
  const { secrets: _secrets, upstreamCa: _ca, network: _net, ...offline } = launch.options;
  const install = spawnSandboxed(
    '/bin/sh',
    [
      '-c',
      'exec python3 -m pip install --disable-pip-version-check --no-input --no-index --no-compile --find-links "$PIP_CACHE_DIR/$2/wheels" --target "$PIP_CACHE_DIR/$2/site" -- "$1"',
      'sh',
      wanted,
      base,
    ],
    { ...offline, network: 'none', stdio },
  );
  const installed = await finished(install);
  if (installed !== 0)
    throw new PackagePinError(`stockade: installing ${wanted} failed (pip exited with ${installed}); not starting the server`);
  const site = path.join(cache, base, 'site');
  const options = { ...launch.options, env: { ...env, PYTHONPATH: site } };
  const network = launch.options.network;
  if (typeof network === 'object') {
    options.network = { ...network, allow: network.allow.filter((h) => !PYPI_HOSTS.includes(h) || registryNamed(h)) };
  }
  // `uvx NAME args` runs NAME's console script: now the verified one.
  return { ...launch, command: path.join(site, 'bin', spec.name), args: command.slice(spec.index + 1), options };
}
