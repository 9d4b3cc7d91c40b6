// The package as a user gets it: `npm pack` (prepack builds the prebuilt binaries for linux-x64
// and linux-arm64), the tarball's contents, an install into a clean directory whose PATH holds
// no compiler and no python (node, npm and sh only), a sandbox run from it, and the README's
// quick start run verbatim against that install — as root and, in the suite's second pass, as
// uid 65534.
//
// Packing takes a while (two architectures), so scripts/test.sh gives both passes one
// STOCKADE_PACK_DIR: the first pass packs into it, the second installs the same tarball.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repoRoot, sharedTempDir } from './helpers';
import { needs } from './helpers/tools';

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const tarballName = `stockade-sandbox-${version}.tgz`;
const work = sharedTempDir('pack');
after(() => rmSync(work, { recursive: true, force: true }));

/** Packs from a copy of the sources, so the checkout's build/ and prebuilds/ stay as they are. */
function pack(into: string): string {
  const stage = mkdtempSync(join(tmpdir(), 'stockade-pack-src-'));
  try {
    for (const f of ['package.json', 'package-lock.json', 'binding.gyp', 'tsconfig.json', 'stockade.schema.json', 'README.md']) {
      cpSync(join(repoRoot, f), join(stage, f));
    }
    for (const d of ['native', 'lib', 'bin', 'scripts']) cpSync(join(repoRoot, d), join(stage, d), { recursive: true });
    symlinkSync(join(repoRoot, 'node_modules'), join(stage, 'node_modules'));
    execFileSync('npm', ['pack', '--silent', '--pack-destination', into], { cwd: stage, stdio: ['ignore', 'ignore', 'inherit'] });
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  return join(into, tarballName);
}

/** A PATH directory with node, npm, npx and sh only: no cc, no make, no python. */
function barePath(): string {
  const bin = join(work, 'bin');
  mkdirSync(bin, { recursive: true });
  const npmCli = join(execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim(), 'npm', 'bin');
  symlinkSync(process.execPath, join(bin, 'node'));
  symlinkSync(join(npmCli, 'npm-cli.js'), join(bin, 'npm'));
  symlinkSync(join(npmCli, 'npx-cli.js'), join(bin, 'npx'));
  symlinkSync('/bin/sh', join(bin, 'sh'));
  return bin;
}

// Packing needs the cross compiler unless a shared tarball is already there.
const packed = process.env.STOCKADE_PACK_DIR !== undefined && existsSync(join(process.env.STOCKADE_PACK_DIR, tarballName));

describe('the packed package', { skip: packed ? false : needs('cross-cc') }, () => {
  let tarball = '';
  let project = '';
  let env: NodeJS.ProcessEnv = {};

  before(() => {
    const shared = process.env.STOCKADE_PACK_DIR;
    const dir = shared ?? work;
    tarball = join(dir, tarballName);
    if (!existsSync(tarball)) tarball = pack(dir);
    const bin = barePath();
    project = join(work, 'project');
    mkdirSync(project);
    // A fresh HOME and npm cache: nothing of this machine's npm state helps the install.
    const home = join(work, 'home');
    mkdirSync(home);
    env = {
      PATH: bin,
      HOME: home,
      npm_config_cache: join(work, 'npm-cache'),
      npm_config_update_notifier: 'false',
      npm_config_fund: 'false',
      npm_config_audit: 'false',
    };
    // The registry's TLS may need the CA bundle this machine's npm is configured with.
    const cafile = execFileSync('npm', ['config', 'get', 'cafile'], { encoding: 'utf8' }).trim();
    if (cafile && cafile !== 'null' && cafile !== 'undefined') env.npm_config_cafile = cafile;
    writeFileSync(join(project, 'package.json'), '{ "name": "quickstart", "version": "1.0.0", "private": true }\n');
  });

  it('holds the prebuilt binaries for linux-x64 and linux-arm64, the compiled library, and no tests', () => {
    const files = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).trim().split('\n');
    for (const f of [
      'package/prebuilds/linux-x64/stockade.glibc.node',
      'package/prebuilds/linux-x64/stockade-init',
      'package/prebuilds/linux-arm64/stockade.glibc.node',
      'package/prebuilds/linux-arm64/stockade-init',
      'package/dist/lib/index.js',
      'package/dist/lib/index.d.ts',
      'package/bin/stockade.js',
      'package/stockade.schema.json',
      'package/native/init.c',
      'package/binding.gyp',
      'package/README.md',
    ]) {
      assert.ok(files.includes(f), `${f} in the tarball`);
    }
    for (const prefix of ['package/test/', 'package/dist/test/', 'package/build/', 'package/node_modules/', 'package/dist/bench/']) {
      assert.ok(!files.some((f) => f.startsWith(prefix)), `nothing under ${prefix}`);
    }
    const manifest = JSON.parse(execFileSync('tar', ['xzOf', tarball, 'package/package.json'], { encoding: 'utf8' })) as {
      name: string;
      bin: Record<string, string>;
    };
    assert.equal(manifest.name, 'stockade-sandbox');
    assert.deepEqual(manifest.bin, { 'stockade-sandbox': 'bin/stockade.js', stockade: 'bin/stockade.js' });
  });

  it("the README's quick start, verbatim, against the tarball: installs without a compiler and runs a sandbox", () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Quick start'));
    const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(block, 'a sh block in the quick start');
    const lines = block.split('\n').filter((l) => l.trim() !== '');
    // Commands, each followed by the output the README promises (its `# ` lines).
    const steps: { command: string; expected: string[] }[] = [];
    for (const line of lines) {
      if (line.startsWith('# ')) steps.at(-1)?.expected.push(line.slice(2));
      else steps.push({ command: line.replace(/\s+#\s.*$/, ''), expected: [] });
    }
    assert.equal(steps[0].command, 'npm install stockade-sandbox');
    for (const [i, step] of steps.entries()) {
      // The one substitution: the package comes from this tarball, not from the registry.
      const command = i === 0 ? `npm install --no-audit --no-fund ${tarball}` : step.command;
      const r = spawnSync('sh', ['-c', command], { cwd: project, env, encoding: 'utf8' });
      assert.equal(r.status, step.expected.some((e) => e.startsWith('cat:')) ? 1 : 0, `${step.command}\n${r.stdout}\n${r.stderr}`);
      if (step.expected.length) assert.deepEqual(`${r.stdout}${r.stderr}`.trimEnd().split('\n'), step.expected, step.command);
    }
    // Installed from the prebuild: nothing was compiled.
    const installed = join(project, 'node_modules', 'stockade-sandbox');
    assert.ok(!existsSync(join(installed, 'build')), 'no build/ directory: the prebuild was used');
    assert.ok(readdirSync(join(installed, 'prebuilds')).includes(`linux-${process.arch}`));
  });

  it('both bins work from the install, and npx resolves the local one', () => {
    const run = (cmd: string[]) => spawnSync(cmd[0], cmd.slice(1), { cwd: project, env, encoding: 'utf8' });
    const local = run([join(project, 'node_modules', '.bin', 'stockade'), 'run', '--', '/bin/sh', '-c', 'echo sandboxed as $(id -u)']);
    assert.equal(local.stdout, 'sandboxed as 65534\n', local.stderr);
    const npx = run(['npx', '--no-install', 'stockade-sandbox', '--version']);
    assert.equal(npx.stdout.trim(), version, npx.stderr);
  });
});
