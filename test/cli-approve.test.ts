// Consent when a policy grows: once approved (stockade approve, or stockade wrap), a policy that
// grants more than what was approved is refused by the launcher with one line naming what grew,
// until `stockade approve`. A policy that shrank runs. Real launcher processes, real sandboxes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { grownGrants, policyGrants } from '../lib/policy/grants';
import type { Policy } from '../lib/policy/types';
import { repoRoot, sharedTempDir } from './helpers';

// Approved policies pin tools, which puts the tool layer on stdout: the payload speaks JSON-RPC.
const RAN = '{"jsonrpc":"2.0","method":"ran"}\n';

const launcher = path.join(repoRoot, 'bin', 'stockade.js');
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };
const stockade = (...args: string[]) =>
  spawnSync(process.execPath, [launcher, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe('what counts as growth', () => {
  const base: Policy = {
    command: ['npx', '-y', 'server'],
    profile: 'node',
    filesystem: { readOnly: ['/srv/data'], readWrite: ['/srv/work'], deny: ['/srv/work/keys'] },
    network: { allow: ['api.example.com'] },
    secrets: [{ name: 'TOKEN', hosts: ['api.example.com'] }],
    env: { LOG: 'debug', LANG: true },
    limits: { memory: '1g', pids: 64 },
    mcp: { tools: ['read_*'] },
  };
  const grew = (change: (p: Policy) => void) => {
    const next = structuredClone(base);
    change(next);
    return grownGrants(policyGrants(base), policyGrants(next));
  };

  test('more of anything grows', () => {
    assert.deepEqual(
      grew((p) => (p.network as { allow: string[] }).allow.push('evil.example.net')),
      ['network.allow evil.example.net'],
    );
    assert.deepEqual(
      grew((p) => p.secrets?.[0].hosts.push('other.example.com')),
      ['secret TOKEN for other.example.com'],
    );
    assert.deepEqual(
      grew((p) => (p.secrets = [{ name: 'TOKEN', hosts: ['api.example.com'], source: { command: ['pass', 'show', 'x'] } }])),
      ['secret TOKEN from command ["pass","show","x"]'],
    );
    assert.deepEqual(
      grew((p) => (p.env = { ...p.env, AWS_SECRET_ACCESS_KEY: true })),
      ['env AWS_SECRET_ACCESS_KEY (passed through)'],
    );
    assert.deepEqual(
      grew((p) => p.filesystem?.readWrite?.push('/srv/data')),
      ['filesystem.readWrite /srv/data'],
    );
    assert.deepEqual(
      grew((p) => (p.command = ['npx', '-y', 'server@evil'])),
      ['command ["npx","-y","server@evil"]'],
    );
    assert.deepEqual(
      grew((p) => (p.network = 'host')),
      ['network host'],
    );
    assert.deepEqual(
      grew((p) => (p.limits = { memory: '2g' })),
      ['limits.memory 1073741824 -> 2147483648', 'limits.pids removed (was 64)'],
    );
    assert.deepEqual(
      grew((p) => delete p.mcp),
      ['mcp.tools *'],
    );
    assert.deepEqual(
      grew((p) => {
        delete p.filesystem?.deny;
        if (p.filesystem) p.filesystem.denyDefaults = false;
      }),
      ['filesystem.deny no longer hides /srv/work/keys', 'filesystem.denyDefaults turned off'],
    );
    assert.deepEqual(
      grew((p) => {
        if (p.filesystem) p.filesystem.allowSockets = true;
      }),
      ['filesystem.allowSockets'],
    );
  });

  test('dropping a restriction the policy opted into grows', () => {
    const strict: Policy = { command: ['/bin/true'], seccomp: 'strict', localPorts: [8080] };
    const loosened = (change: (p: Policy) => void) => {
      const next = structuredClone(strict);
      change(next);
      return grownGrants(policyGrants(strict), policyGrants(next));
    };
    assert.deepEqual(
      loosened((p) => delete p.seccomp),
      ['no longer: seccomp strict'],
    );
    // With no network, no local ports means Landlock leaves TCP alone.
    assert.deepEqual(
      loosened((p) => delete p.localPorts),
      ['no longer: TCP ports restricted to localPorts'],
    );
    // Under a proxy the TCP rules hold anyway: fewer local ports is less.
    const proxied: Policy = { ...strict, network: { allow: ['api.example.com'] } };
    assert.deepEqual(grownGrants(policyGrants(proxied), policyGrants({ ...proxied, localPorts: [] })), []);
    // An approval recorded before restrictions existed has none to lose.
    const { restrictions: _, ...old } = policyGrants(strict);
    assert.deepEqual(grownGrants(old, policyGrants({ command: ['/bin/true'], localPorts: [8080] })), []);
  });

  test('less, or the same again, does not', () => {
    assert.deepEqual(
      grew((p) => p.filesystem?.readOnly?.push('/srv/work/sub')),
      [],
    );
    assert.deepEqual(
      grew((p) => p.filesystem?.readOnly?.push('/srv/data/inner')),
      [],
    );
    assert.deepEqual(
      grew((p) => {
        p.network = 'none';
        delete p.secrets;
        p.limits = { memory: '512m', pids: 8, cpu: 10 };
        p.env = { LOG: 'info' };
        p.hostname = 'other';
      }),
      [],
    );
    // A prefix is not a parent: /srv/workshop is not inside /srv/work.
    assert.deepEqual(
      grew((p) => p.filesystem?.readWrite?.push('/srv/workshop')),
      ['filesystem.readWrite /srv/workshop'],
    );
  });
});

describe('stockade run refuses a policy that grew since it was approved', () => {
  let dir: string;
  let policy: string;
  const write = (doc: Policy) => fs.writeFileSync(policy, `${JSON.stringify(doc, null, 2)}\n`);
  before(() => {
    dir = sharedTempDir('approve');
    policy = path.join(dir, 'echo.policy.json');
    write({ command: ['/bin/echo', RAN.trim()] });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('a policy never approved runs as before', () => {
    const r = stockade('run', '--policy', policy);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, RAN);
    assert.ok(!fs.existsSync(path.join(dir, 'echo.approved.json')));
  });

  test('approved, grown, refused with one line, approved again, runs', () => {
    assert.equal(stockade('approve', policy, '--yes').status, 0);
    assert.equal(stockade('run', '--policy', policy).stdout, RAN);
    write({ command: ['/bin/echo', RAN.trim()], network: { allow: ['exfil.example.net'] }, env: { HOME_TOKEN: true } });
    const r = stockade('run', '--policy', policy);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      `stockade: echo.policy.json grew since it was approved (network.allow exfil.example.net; env HOME_TOKEN (passed through)); not starting it. To allow this, run: stockade approve ${policy}\n`,
    );
    const shown = stockade('approve', policy);
    assert.equal(shown.status, 1);
    assert.match(
      shown.stdout,
      /grants beyond the last approval:\n {2}\+ network\.allow exfil\.example\.net\n {2}\+ env HOME_TOKEN \(passed through\)/,
    );
    assert.equal(stockade('run', '--policy', policy).status, 2, 'showing is not approving');
    assert.equal(stockade('approve', policy, '--yes').status, 0);
    const after = stockade('run', '--policy', policy);
    assert.equal(after.status, 0, after.stderr);
    assert.equal(after.stdout, RAN);
  });

  test('a policy that shrank runs without a new approval', () => {
    write({ command: ['/bin/echo', RAN.trim()], network: 'none', limits: { pids: 32 } });
    const r = stockade('run', '--policy', policy);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(stockade('approve', policy).stdout.includes('grants nothing new'), true);
  });

  test('a planted or broken approval file is refused, never trusted', () => {
    const approved = path.join(dir, 'echo.approved.json');
    const real = fs.readFileSync(approved);
    fs.renameSync(approved, `${approved}.real`);
    try {
      fs.symlinkSync(`${approved}.real`, approved);
      const r = stockade('run', '--policy', policy);
      assert.equal(r.status, 2);
      assert.equal(r.stderr, `stockade: cannot read ${approved} (a symlink)\n`);
      fs.rmSync(approved);
      fs.writeFileSync(approved, '{"stockade":1,"policyDigest":');
      assert.match(stockade('run', '--policy', policy).stderr, /is not valid JSON; run `stockade approve` again\n$/);
      fs.writeFileSync(approved, '{"stockade":1}');
      assert.match(stockade('run', '--policy', policy).stderr, /is not an approval file/);
    } finally {
      fs.rmSync(approved, { force: true });
      fs.renameSync(`${approved}.real`, approved);
    }
    assert.ok(fs.readFileSync(approved).equals(real));
  });

  test('usage errors', () => {
    assert.equal(stockade('approve').status, 2);
    assert.match(stockade('approve', policy, '--bogus').stderr, /unknown option --bogus/);
    const missing = stockade('approve', path.join(dir, 'nope.json'));
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /cannot read the policy file/);
  });
});
