// `stockade doctor` on this host: it must find what a sandbox needs, and say so.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './helpers';

const doctor = (...args: string[]) =>
  spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'stockade.js'), 'doctor', ...args], { encoding: 'utf8' });

test('doctor reports a ready host, each check on its line', () => {
  const r = doctor();
  assert.equal(r.status, 0, r.stdout + r.stderr);
  for (const check of ['kernel', 'user namespaces', 'seccomp', 'AppArmor', 'Landlock', 'cgroup v2 delegation', 'limits']) {
    assert.match(r.stdout, new RegExp(`\\[(ok  |note)\\] ${check}: `));
  }
  assert.match(r.stdout, /This host can run stockade sandboxes\.$/m);
});

test('doctor --json: the probe, machine-readable', () => {
  const report = JSON.parse(doctor('--json').stdout);
  assert.equal(report.ready, true);
  assert.equal(report.userNamespaces.ok, true);
  assert.equal(report.seccomp.ok, true);
  assert.equal(typeof report.landlock.abi, 'number');
});

test('doctor --apparmor-profile: a profile granting userns to this node binary', () => {
  const r = doctor('--apparmor-profile');
  assert.equal(r.status, 0);
  assert.match(
    r.stdout,
    new RegExp(`^profile stockade-node ${fs.realpathSync(process.execPath)} flags=\\(unconfined\\) \\{\\n  userns,$`, 'm'),
  );
});
