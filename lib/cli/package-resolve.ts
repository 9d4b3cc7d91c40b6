// Which exact package a server command runs, as the registry says today: `npx -y PKG` (npm) and
// `uvx PKG` (PyPI). Used by `stockade wrap` (the first pin) and `stockade update` (moving it);
// the launcher checks what it installs against the pin (./package-pin.ts, ./pypi-pin.ts).
//
//   npm   `npm view NAME@RANGE name version dist.integrity`, through the user's own npm, so the
//         registry, auth and proxy are the ones the user configured. The pin is the tarball's
//         dist.integrity ('sha512-<base64>'), which npm itself checks when it installs.
//   PyPI  the JSON API of the index (https://pypi.org/pypi/NAME/json, or NAME/VERSION/json) for
//         the version and the sha256 of its files. The index is the one uv or pip would use
//         (UV_DEFAULT_INDEX, UV_INDEX_URL, PIP_INDEX_URL; default https://pypi.org/simple), its
//         JSON API beside the simple API. The pin is one file: the pure-Python wheel
//         ('*-none-any.whl'), which installs without running any of its code; a release with
//         only platform wheels or an sdist is not pinned (the user is told so).
import type { PackagePin } from '../policy/types';
import { UsageError } from './errors';

/** How long a registry may take to answer, and the largest answer read. */
const TIMEOUT_MS = 60_000;
const MAX_BYTES = 16 * 1024 * 1024;

export type Ecosystem = 'npm' | 'pypi';

export interface CommandPackage {
  ecosystem: Ecosystem;
  /** Index of the package argument in the command (command[0] is the program). */
  index: number;
  name: string;
  /** 'latest', or what the command asked for (npm range; PyPI exact version). */
  range: string;
}

const basename = (p: string) => p.slice(p.lastIndexOf('/') + 1);

/** `npx [-y|--yes] SPEC ...`: where SPEC is, and its name and version range. */
export function npxPackage(command: readonly string[]): CommandPackage | undefined {
  if (basename(command[0] ?? '') !== 'npx') return undefined;
  for (let i = 1; i < command.length; i++) {
    const a = command[i];
    if (a === '-y' || a === '--yes' || a === '-q' || a === '--quiet') continue;
    if (a.startsWith('-')) return undefined; // -p/--package/-c forms: not pinned
    const at = a.indexOf('@', a.startsWith('@') ? 1 : 0);
    return at < 0
      ? { ecosystem: 'npm', index: i, name: a, range: 'latest' }
      : { ecosystem: 'npm', index: i, name: a.slice(0, at), range: a.slice(at + 1) };
  }
  return undefined;
}

/** PEP 503 normalized name: lowercase, runs of '-', '_' and '.' as one '-'. */
export function normalizePypiName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

const PYPI_NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;

/** `uvx [-q] SPEC ...` with SPEC `name`, `name==1.2.3`, `name@1.2.3` or `name@latest`. */
export function uvxPackage(command: readonly string[]): CommandPackage | undefined {
  if (basename(command[0] ?? '') !== 'uvx') return undefined;
  for (let i = 1; i < command.length; i++) {
    const a = command[i];
    if (a === '-q' || a === '--quiet') continue;
    if (a.startsWith('-')) return undefined; // --from, --with, --python...: not pinned
    const m = /^([^=@<>!~\s]+)(?:(?:==|@)([^\s]+))?$/.exec(a);
    if (!m || !PYPI_NAME.test(m[1])) return undefined;
    return { ecosystem: 'pypi', index: i, name: m[1], range: m[2] ?? 'latest' };
  }
  return undefined;
}

/** The package a server command runs from a registry, if stockade can pin it. */
export function commandPackage(command: readonly string[]): CommandPackage | undefined {
  return npxPackage(command) ?? uvxPackage(command);
}

/** The registry's answer for name@range, through npm itself (registry, auth and proxy as the user configured them). */
export function resolveNpm(name: string, range: string, env: NodeJS.ProcessEnv = process.env): PackagePin {
  let out: string;
  try {
    // node:child_process is loaded here, not with `run` (cold start).
    const { execFileSync } = require('node:child_process') as typeof import('node:child_process');
    out = execFileSync('npm', ['view', `${name}@${range}`, 'name', 'version', 'dist.integrity', '--json'], {
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: TIMEOUT_MS,
      maxBuffer: MAX_BYTES,
    });
  } catch (err) {
    const said = String((err as { stderr?: string }).stderr ?? (err as Error).message)
      .split('\n')
      .find((l) => l.trim() !== '');
    throw new UsageError(`npm view ${name}@${range} failed: ${said ?? 'no output'}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(out);
  } catch {
    throw new UsageError(`npm view ${name}@${range} did not answer JSON`);
  }
  // A range matching several versions gives an array, oldest first: the newest wins, as npm install picks.
  if (Array.isArray(doc)) doc = doc[doc.length - 1];
  const d = doc as { name?: unknown; version?: unknown; 'dist.integrity'?: unknown };
  if (typeof d?.name !== 'string' || typeof d.version !== 'string' || typeof d['dist.integrity'] !== 'string') {
    throw new UsageError(`npm view ${name}@${range} gave no name, version and integrity`);
  }
  return { name: d.name, version: d.version, integrity: d['dist.integrity'] };
}

/** The index uv or pip would use, from the environment. */
export function pypiIndex(env: NodeJS.ProcessEnv | Record<string, unknown> = process.env): string {
  for (const k of ['UV_DEFAULT_INDEX', 'UV_INDEX_URL', 'PIP_INDEX_URL']) {
    const v = env[k];
    if (typeof v === 'string' && /^https?:\/\//.test(v)) return v;
  }
  return 'https://pypi.org/simple';
}

/** The JSON API beside a simple index: https://pypi.org/simple -> https://pypi.org/pypi. */
export function pypiJsonApi(index: string): string {
  return `${index.replace(/\/+$/, '').replace(/\/simple$/, '')}/pypi`;
}

interface PypiFile {
  filename?: unknown;
  packagetype?: unknown;
  digests?: { sha256?: unknown };
  yanked?: unknown;
}

/** PyPI's answer for name (latest) or name==version: the version and its pure-Python wheel. */
export async function resolvePypi(name: string, range: string, index: string): Promise<PackagePin> {
  const api = pypiJsonApi(index);
  const url = `${api}/${encodeURIComponent(normalizePypiName(name))}${range === 'latest' ? '' : `/${encodeURIComponent(range)}`}/json`;
  let doc: { info?: { name?: unknown; version?: unknown }; urls?: PypiFile[] };
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS), headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const length = Number(res.headers.get('content-length') ?? 0);
    if (length > MAX_BYTES) throw new Error(`an answer of ${length} bytes`);
    const body = Buffer.from(await res.arrayBuffer());
    if (body.length > MAX_BYTES) throw new Error(`an answer of ${body.length} bytes`);
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    throw new UsageError(`PyPI ${url} failed: ${e.cause?.code ?? e.message}`);
  }
  const version = doc?.info?.version;
  const canonical = doc?.info?.name;
  if (typeof version !== 'string' || typeof canonical !== 'string' || !Array.isArray(doc.urls)) {
    throw new UsageError(`PyPI ${url} gave no name, version and files`);
  }
  const wheel = doc.urls.find(
    (f) =>
      f.packagetype === 'bdist_wheel' &&
      typeof f.filename === 'string' &&
      f.filename.endsWith('-none-any.whl') &&
      typeof f.digests?.sha256 === 'string' &&
      /^[0-9a-f]{64}$/.test(f.digests.sha256) &&
      f.yanked !== true,
  );
  if (!wheel) {
    throw new UsageError(
      `${canonical} ${version} has no pure-Python wheel on ${index}; stockade pins wheels that install without running their code, so pin it by hand or leave it unpinned`,
    );
  }
  return { name: canonical, version, integrity: `sha256:${wheel.digests?.sha256}`, file: wheel.filename as string };
}

/** Resolves a command's package in its ecosystem. `env`: where the registry configuration comes from. */
export async function resolveCommandPackage(spec: CommandPackage, env: NodeJS.ProcessEnv = process.env): Promise<PackagePin> {
  return spec.ecosystem === 'npm' ? resolveNpm(spec.name, spec.range, env) : resolvePypi(spec.name, spec.range, pypiIndex(env));
}
