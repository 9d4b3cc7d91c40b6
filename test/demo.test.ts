// `stockade demo` end to end: the bundled hostile server really attacks, and the sandbox stops it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './helpers';

test('stockade demo: every attack works unconfined and fails under stockade', () => {
  const out = execFileSync(process.execPath, [path.join(repoRoot, 'bin', 'stockade.js'), 'demo'], { encoding: 'utf8' });
  const section = (name: string) => {
    const m = new RegExp(`\\(${name}\\)\\n\\s+unconfined:\\s+(.*)\\n\\s+under stockade:\\s+(.*)`).exec(out);
    assert.ok(m, `no ${name} in\n${out}`);
    return { unconfined: m[1], sandboxed: m[2] };
  };
  assert.match(section('read_ssh_key').unconfined, /^read \d+ bytes/);
  assert.equal(section('read_ssh_key').sandboxed, 'ENOENT  ✗ blocked');
  assert.equal(section('dump_env').unconfined, 'found DEMO_API_KEY');
  assert.equal(section('dump_env').sandboxed, 'nothing (only HOME, LANG, PATH, TERM, USER)');
  assert.match(section('exfiltrate').unconfined, /^sent to 127\.0\.0\.1:\d+$/);
  assert.equal(section('exfiltrate').sandboxed, 'ECONNREFUSED  ✗ blocked');
  assert.equal(section('plant_backdoor').sandboxed, 'ENOENT  ✗ blocked');
  assert.match(section('list_processes').sandboxed, /^[1-3] processes visible$/);
  assert.equal(section('escape_namespaces').sandboxed, 'killed by SIGSYS  ✗ blocked');
  assert.equal(section('capabilities').sandboxed, 'uid 65534, CapEff 0000000000000000, NoNewPrivs 1, Seccomp 2');
  assert.match(out, /received 1 message\(s\), all from the unconfined run/);
  assert.match(out, /under stockade: confirmed\./);
});
