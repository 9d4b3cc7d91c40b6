// Deny inside a grant: credentials under a granted directory stay invisible. A real sandbox on
// the real kernel reads, lists and writes the denied paths; the host files are compared byte for
// byte afterwards.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spawnSandboxed } from '../lib';
import { repoRoot, sh, sharedTempDir } from './helpers';

const files: Record<string, string> = {
  '.env': 'DATABASE_URL=postgres://admin:hunter2@db/prod\n',
  '.env.local': 'STRIPE_KEY=sk_live_1\n',
  '.git/config': '[remote "origin"]\n\turl = https://user:ghp_token@github.com/me/app\n',
  '.git/HEAD': 'ref: refs/heads/main\n',
  '.ssh/id_ed25519': '-----BEGIN OPENSSH PRIVATE KEY-----\n',
  '.aws/credentials': '[default]\naws_secret_access_key = abc\n',
  '.npmrc': '//registry.npmjs.org/:_authToken=npm_abc\n',
  'keys/signing.pem': '-----BEGIN PRIVATE KEY-----\n',
  'src/app.js': 'console.log(1)\n',
  'sub/.env': 'NESTED=1\n',
};

function plant(root: string): void {
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.chmodSync(path.dirname(path.join(root, rel)), 0o777);
    fs.writeFileSync(path.join(root, rel), content, { mode: 0o666 });
  }
  fs.chmodSync(root, 0o777);
}

function unchanged(root: string): void {
  for (const [rel, content] of Object.entries(files)) assert.ok(fs.readFileSync(path.join(root, rel)).equals(Buffer.from(content)), rel);
}

describe('filesystem.deny and the default denials', () => {
  let dir: string;
  let project: string;
  before(() => {
    dir = sharedTempDir('deny');
    project = path.join(dir, 'project');
    fs.mkdirSync(project);
    plant(project);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('defaults hide .env*, .git/config, .ssh, .aws, .npmrc; deny hides more; the rest stays', async () => {
    const r = await sh(
      [
        `cd ${project}`,
        'for f in .env .env.local .git/config .npmrc; do printf "%s:%s " $f "$(wc -c < $f)"; done; echo',
        'ls -A .ssh .aws keys | tr "\\n" " "; echo',
        'cat .git/HEAD src/app.js sub/.env',
        // A hidden file is /dev/null bound read-only: writes to it are discarded, reads stay empty.
        'echo planted > .env && wc -c < .env',
        'touch .ssh/authorized_keys || true',
        'rm .npmrc || true',
        'mv .env moved || true',
        'echo written > src/new.txt && echo wrote',
      ].join('; '),
      { filesystem: { readWrite: [project], deny: [path.join(project, 'keys')] } },
    );
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], '.env:0 .env.local:0 .git/config:0 .npmrc:0 ', r.stderr);
    assert.equal(lines[1], '.aws:  .ssh:  keys: ');
    assert.deepEqual(lines.slice(2, 5), ['ref: refs/heads/main', 'console.log(1)', 'NESTED=1']);
    assert.equal(lines.at(-2), 'wrote', r.stderr);
    assert.equal(lines[5], '0');
    assert.match(r.stderr, /\.ssh\/authorized_keys': Read-only file system/);
    assert.match(r.stderr, /cannot remove '.npmrc': (Read-only file system|Device or resource busy)/);
    assert.match(r.stderr, /cannot move '.env' to 'moved': Device or resource busy/);
    unchanged(project);
    assert.equal(fs.readFileSync(path.join(project, 'src', 'new.txt'), 'utf8'), 'written\n');
    assert.ok(!fs.existsSync(path.join(project, '.ssh', 'authorized_keys')));
    fs.rmSync(path.join(project, 'src', 'new.txt'));
  });

  test('granting a default-denied path itself keeps it visible; denyDefaults: false turns them off', async () => {
    const explicit = await sh(`cat ${project}/.env.local; wc -c < ${project}/.env`, {
      filesystem: { readWrite: [project], readOnly: [path.join(project, '.env.local')] },
    });
    assert.equal(explicit.stdout, 'STRIPE_KEY=sk_live_1\n0\n', explicit.stderr);
    const off = await sh(`cat ${project}/.env; ls ${project}/.ssh`, { filesystem: { readOnly: [project], denyDefaults: false } });
    assert.equal(off.stdout, `${files['.env']}id_ed25519\n`, off.stderr);
  });

  test('a persistent home has its .ssh hidden at /home/nobody/.ssh', async () => {
    const home = path.join(dir, 'home');
    fs.mkdirSync(path.join(home, '.ssh'), { recursive: true, mode: 0o777 });
    fs.chmodSync(home, 0o777);
    fs.writeFileSync(path.join(home, '.ssh', 'id_rsa'), 'key\n', { mode: 0o666 });
    fs.writeFileSync(path.join(home, 'notes.txt'), 'notes\n', { mode: 0o666 });
    const r = await sh('ls -A /home/nobody/.ssh; cat /home/nobody/notes.txt', { filesystem: { home } });
    assert.equal(r.stdout, 'notes\n', r.stderr);
  });

  test('a denied path reached through a symlink is refused before anything starts, not left visible', () => {
    const trap = path.join(dir, 'trap');
    fs.mkdirSync(trap);
    fs.writeFileSync(path.join(dir, 'real-npmrc'), 'token\n');
    fs.symlinkSync(path.join(dir, 'real-npmrc'), path.join(trap, '.npmrc'));
    assert.throws(() => spawnSandboxed('true', [], { filesystem: { readOnly: [trap] } }), {
      code: 'ERR_SANDBOX_OPTIONS',
      message: `options.filesystem.denyDefaults: '${trap}/.npmrc' is a symlink, so it cannot be hidden; deny its target instead, or turn the denial off (filesystem.denyDefaults: false)`,
    });
    fs.mkdirSync(path.join(trap, 'real'));
    fs.symlinkSync('real', path.join(trap, 'linked'));
    assert.throws(
      () => spawnSandboxed('true', [], { filesystem: { readOnly: [trap], deny: [path.join(trap, 'linked', 'x')], denyDefaults: false } }),
      {
        message: /options\.filesystem\.deny\[0\]: '.*\/trap\/linked' is a symlink/,
      },
    );
  });

  test('stockade run --deny', () => {
    const r = spawnSync(
      process.execPath,
      [
        path.join(repoRoot, 'bin', 'stockade.js'),
        'run',
        '--ro',
        project,
        '--deny',
        path.join(project, 'src'),
        '--',
        'ls',
        '-A',
        path.join(project, 'src'),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '');
  });
});
