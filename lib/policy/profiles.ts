// Runtime profiles: what an interpreter needs, so a user writes intent ("a node server that may
// reach api.github.com") instead of mount lists. A profile returns a policy fragment that is
// merged *under* the user's policy (the user's scalars win, lists are combined).
//
// Caches: a package cache shared between servers would let one sandboxed server plant code that
// another (perhaps holding more secrets) later runs. So each distinct command gets its own cache
// directory under ~/.cache/stockade/, bound read-write: warm starts, no cross-server poisoning,
// and the user's own ~/.npm and ~/.cache/uv are never exposed.
import { existsSync, realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, delimiter, dirname, join } from 'node:path';
import { systemDirs as layoutSystemDirs } from '../layout';
import type { Policy, ProfileName } from './types';

export interface ProfileResult {
  /** Policy fragment to merge under the user's policy. */
  fragment: Policy;
  /** Host directories the fragment binds and that must exist before spawning (created 0700). */
  mkdirs: string[];
}

export interface ProfileContext {
  /** The full command (command[0] and its arguments); decides npx/uvx extras and the cache key. */
  command: string[];
  /** Root of the per-command caches. Default $XDG_CACHE_HOME/stockade or ~/.cache/stockade. */
  cacheRoot?: string;
  /** Host environment used to find interpreters (PATH). Default process.env. */
  hostEnv?: NodeJS.ProcessEnv;
}

/** System directories a dynamically linked interpreter needs (libc, ld.so, /usr/bin/env). */
export function systemDirs(): string[] {
  // The sandbox layout's own list (lib/layout.ts), so a profile names what every sandbox binds.
  return layoutSystemDirs.filter((d) => existsSync(d));
}

const SYSTEM_PATH = '/usr/local/bin:/usr/bin:/bin';

function cacheDir(ctx: ProfileContext, kind: string): string {
  const env = ctx.hostEnv ?? process.env;
  const root = ctx.cacheRoot ?? join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'stockade');
  const { createHash } = require('node:crypto') as typeof import('node:crypto'); // loaded for profiles only (cold start)
  const key = createHash('sha256').update(JSON.stringify(ctx.command)).digest('hex').slice(0, 16);
  return join(root, `${kind}-${key}`);
}

/** Finds an executable on PATH like `which`, then resolves symlinks (as `realpath`). */
export function which(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      return realpathSync(candidate);
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}

/** PATH for the sandbox: the interpreter's dirs first, then the usual system dirs, no repeats. */
function searchPath(dirs: string[]): string {
  return unique([...dirs, ...SYSTEM_PATH.split(':')]).join(':');
}

function unique(items: string[]): string[] {
  return [...new Set(items)];
}

/** The command's program name without directory: '/usr/bin/npx' -> 'npx'. */
function programOf(command: string[]): string {
  return basename(command[0] ?? '');
}

/**
 * node: the real node binary's install prefix read-only (node, npm, npx and global modules live
 * there), a private npm cache, HOME on tmpfs, and registry.npmjs.org when the command is npx
 * (`npx -y pkg` must be able to fetch pkg from a cold cache).
 */
export function nodeProfile(ctx: ProfileContext): ProfileResult {
  const node = realpathSync(process.execPath);
  const bin = dirname(node);
  const prefix = dirname(bin);
  const cache = cacheDir(ctx, 'npm');
  const fragment: Policy = {
    filesystem: { readOnly: unique([...systemDirs(), prefix]), readWrite: [cache], home: 'tmpfs' },
    env: {
      PATH: searchPath([bin]),
      npm_config_cache: cache,
      // npm otherwise tries to phone home and to write ~/.npmrc-adjacent state.
      npm_config_update_notifier: 'false',
      npm_config_fund: 'false',
      npm_config_audit: 'false',
    },
  };
  if (['npx', 'npm', 'pnpm', 'yarn'].includes(programOf(ctx.command))) {
    fragment.network = { allow: ['registry.npmjs.org'] };
  }
  return { fragment, mkdirs: [cache] };
}

interface PythonInfo {
  executable: string;
  prefix: string;
  basePrefix: string;
  path: string[];
}

function pythonInfo(python: string): PythonInfo | undefined {
  try {
    const { execFileSync } = require('node:child_process') as typeof import('node:child_process');
    const out = execFileSync(
      python,
      ['-I', '-c', 'import sys,os,json; print(json.dumps([os.path.realpath(sys.executable), sys.prefix, sys.base_prefix, sys.path]))'],
      { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const [executable, prefix, basePrefix, path] = JSON.parse(out) as [string, string, string, string[]];
    return { executable, prefix, basePrefix, path };
  } catch {
    return undefined;
  }
}

/**
 * python: the interpreter (`which python3`, real path), its prefix and site-packages read-only,
 * private uv and pip caches, and PyPI when the command is uvx/uv/pip/pipx.
 */
export function pythonProfile(ctx: ProfileContext): ProfileResult {
  const env = ctx.hostEnv ?? process.env;
  const readOnly = systemDirs();
  const pathDirs: string[] = [];
  const python = which('python3', env);
  if (python) {
    // Ask the interpreter for its real executable: `which python3` may be a shim script (pyenv,
    // asdf) that would need the whole version manager inside the sandbox.
    const info = pythonInfo(python);
    pathDirs.push(dirname(info?.executable ?? python));
    if (info) {
      // sys.path entries outside the prefixes are site-packages of other installs (e.g. pip
      // --user); the zip entry of the stdlib does not exist on most systems, hence the filter.
      readOnly.push(info.basePrefix, info.prefix, ...info.path.filter((p) => p.startsWith('/') && existsSync(p)));
    }
  }
  for (const tool of ['uv', 'uvx']) {
    const found = which(tool, env);
    if (found) pathDirs.push(dirname(found));
  }
  const uvCache = cacheDir(ctx, 'uv');
  const pipCache = cacheDir(ctx, 'pip');
  const fragment: Policy = {
    filesystem: { readOnly: unique(readOnly), readWrite: [uvCache, pipCache], home: 'tmpfs' },
    env: {
      PATH: searchPath(pathDirs),
      UV_CACHE_DIR: uvCache,
      PIP_CACHE_DIR: pipCache,
      // Use the bound interpreter rather than downloading one into a throwaway home.
      UV_PYTHON_PREFERENCE: 'only-system',
      // site-packages are read-only: writing .pyc there fails noisily on every import.
      PYTHONDONTWRITEBYTECODE: '1',
    },
  };
  if (['uvx', 'uv', 'pip', 'pip3', 'pipx'].includes(programOf(ctx.command))) {
    fragment.network = { allow: ['pypi.org', 'files.pythonhosted.org'] };
  }
  return { fragment, mkdirs: [uvCache, pipCache] };
}

export function profileFor(name: ProfileName, ctx: ProfileContext): ProfileResult {
  return name === 'node' ? nodeProfile(ctx) : pythonProfile(ctx);
}

/** The profile a command most likely needs (used by `stockade wrap`), or undefined. */
export function guessProfile(command: string): ProfileName | undefined {
  const program = basename(command);
  if (['npx', 'node', 'npm', 'pnpm', 'yarn', 'tsx'].includes(program) || /^node\d*$/.test(program)) return 'node';
  if (['uvx', 'uv', 'pip', 'pip3', 'pipx'].includes(program) || /^python[\d.]*$/.test(program)) return 'python';
  return undefined;
}
