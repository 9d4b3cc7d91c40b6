// Landlock alone (native/landlock.cc, lib/landlock.ts): the rules stockade derives from a real
// sandbox's mount plan are applied, by stockade's own C++ code compiled into a fixture
// (test/fixtures/landlock-run.cc), to a process OUTSIDE every namespace and mount — it sees the
// whole host filesystem, writable where the host lets it write. So each refusal below
// (EACCES, EPERM) is Landlock's alone, and each success shows a rule that mirrors a mount. The
// sandbox's own use of the same rules is shown at the end.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { FS } from '../lib/landlock';
import { native } from '../lib/native';
import { resolveSandbox } from '../lib/plan';
import { repoRoot, run } from './helpers';

const execFileAsync = promisify(execFile);
const abi = native().landlockAbi();

describe('Landlock rules, applied outside the mount layer', { skip: abi < 2 && `Landlock ABI ${abi} on this kernel` }, () => {
  // Not under /tmp: the plan grants /tmp read-write, as the sandbox's private /tmp. Made now,
  // since the test names below carry its paths; removed after.
  const base = fs.mkdtempSync('/var/tmp/stockade-landlock-');
  const fixture = path.join(base, 'ro', 'landlock-run');
  let rules: string[] = [];
  let server: net.Server | undefined;
  const abstractName = `stockade-landlock-test-${process.pid}`;

  before(async () => {
    fs.chmodSync(base, 0o755);
    for (const d of ['ro', 'rw', 'hidden']) fs.mkdirSync(path.join(base, d), { mode: 0o777 });
    fs.chmodSync(path.join(base, 'rw'), 0o777);
    fs.writeFileSync(path.join(base, 'ro', 'file'), 'read only\n', { mode: 0o666 });
    fs.writeFileSync(path.join(base, 'hidden', 'secret'), 'secret\n', { mode: 0o666 });
    execFileSync('c++', [
      '-O1',
      '-static',
      '-std=gnu++17',
      '-D_GNU_SOURCE',
      `-I${path.join(repoRoot, 'native')}`,
      '-o',
      fixture,
      path.join(repoRoot, 'test', 'fixtures', 'landlock-run.cc'),
    ]);
    fs.copyFileSync(fixture, path.join(base, 'hidden', 'program'));
    fs.chmodSync(path.join(base, 'hidden', 'program'), 0o755);
    // The rules of a real sandbox that binds ro/ read-only and rw/ read-write.
    const { plan } = resolveSandbox('/bin/true', [], {
      filesystem: { readOnly: [path.join(base, 'ro')], readWrite: [path.join(base, 'rw')] },
    });
    const landlock = plan.landlock;
    assert.ok(landlock);
    rules = [`handled=${landlock.handledFs}`, ...landlock.rules.map((r) => `rule=${r.access}:${r.path}`), 'scope'];
    server = net.createServer((c) => c.end()).listen(`\0${abstractName}`);
    await new Promise((resolve) => server?.once('listening', resolve));
  });

  after(() => {
    server?.close();
    fs.rmSync(base, { recursive: true, force: true });
  });

  async function outcomes(ops: string[], withRules = true): Promise<Map<string, string>> {
    const { stdout } = await execFileAsync(fixture, [...(withRules ? rules : []), '--', ...ops]);
    const map = new Map<string, string>();
    for (const line of stdout.trim().split('\n')) {
      const space = line.lastIndexOf(' ');
      map.set(line.slice(0, space), line.slice(space + 1));
    }
    return map;
  }

  const p = (rel: string) => path.join(base, rel);
  const cases = (): [op: string, outcome: string, why: string][] => [
    [`read:${p('ro/file')}`, 'ok', 'a read-only bind is readable'],
    [`write:${p('ro/file')}`, 'errno=EACCES', 'a read-only bind is not writable (the host would allow it)'],
    [`truncate:${p('ro/file')}`, 'errno=EACCES', 'a read-only bind cannot be truncated'],
    [`mkdir:${p('ro/dir')}`, 'errno=EACCES', 'nothing is created in a read-only bind'],
    [`exec:${fixture}`, 'ok', 'a read-only bind is executable'],
    [`write:${p('rw/new')}`, 'ok', 'a read-write bind takes new files'],
    [`truncate:${p('rw/new')}`, 'ok', 'a read-write bind allows truncation'],
    [`mkdir:${p('rw/dir')}`, 'ok', 'a read-write bind takes directories'],
    [`rename:${p('rw/new')}:${p('rw/dir/new')}`, 'ok', 'rename across directories of a read-write bind (REFER)'],
    [`rename:${p('rw/dir/new')}:${p('hidden/moved')}`, 'errno=EACCES', 'nothing is moved out of the grants'],
    [`read:${p('hidden/secret')}`, 'errno=EACCES', 'a host file outside every mount is not readable'],
    [`write:${p('hidden/secret')}`, 'errno=EACCES', 'a host file outside every mount is not writable'],
    [`exec:${p('hidden/program')}`, 'errno=EACCES', 'a host program outside every mount does not run'],
    [`list:${p('hidden')}`, 'ok', 'directories can be listed anywhere (names, not contents: `ls /`)'],
    ['read:/etc/passwd', 'ok', 'a synthesized /etc file is readable'],
    ['read:/etc/debian_version', 'errno=EACCES', 'the rest of /etc is not'],
    ['read:/usr/bin/env', 'ok', '/usr is readable'],
    ['exec:/usr/bin/true', 'ok', '/usr is executable'],
    ['write:/dev/null', 'ok', 'the planned devices are writable'],
    ['read:/dev/urandom', 'ok', 'and readable'],
    ['read:/proc/self/status', 'ok', '/proc is readable'],
    ['write:/proc/self/comm', 'ok', 'and its writable files writable'],
    [`write:${p('rw2')}`, 'errno=EACCES', 'a sibling of a grant is not covered by it'],
    ...(abi >= 6
      ? ([
          [`abstract:${abstractName}`, 'errno=EPERM', 'an abstract unix socket outside the domain is unreachable (ABI 6 scope)'],
          [`signal:${process.pid}`, 'errno=EPERM', 'a process outside the domain cannot be signalled (ABI 6 scope)'],
        ] as [string, string, string][])
      : []),
  ];

  test('control: without the rules, the host allows every refused operation', async () => {
    const refused = cases().filter(([op, outcome]) => outcome !== 'ok' && !op.startsWith('rename:'));
    // Not the rename, which depends on the operations before it.
    const seen = await outcomes(
      refused.map(([op]) => op),
      false,
    );
    for (const [op] of refused) {
      if (op === 'read:/etc/debian_version' && !fs.existsSync('/etc/debian_version')) continue;
      assert.equal(seen.get(op), 'ok', op);
    }
    // Undo what the control created.
    fs.rmSync(p('ro/dir'), { recursive: true, force: true });
    fs.rmSync(p('rw2'), { force: true });
    fs.writeFileSync(p('ro/file'), 'read only\n');
  });

  describe('with the rules', () => {
    let seen: Map<string, string>;
    before(async () => {
      seen = await outcomes(cases().map(([op]) => op));
    });
    for (const [op, outcome, why] of cases()) {
      test(`${why} (${op.replace(base, '$BASE')} → ${outcome})`, {
        skip: op === 'read:/etc/debian_version' && !fs.existsSync(op.slice(5)) && 'no such file',
      }, () => {
        assert.equal(seen.get(op), outcome);
      });
    }
    test('the refused files are unchanged, byte for byte', () => {
      assert.equal(fs.readFileSync(p('ro/file'), 'utf8'), 'read only\n');
      assert.equal(fs.readFileSync(p('hidden/secret'), 'utf8'), 'secret\n');
      assert.equal(fs.existsSync(p('ro/dir')), false);
    });
  });

  test('the rule set derives from the mounts: each read-only bind is read-only, each read-write bind read-write', () => {
    const { plan } = resolveSandbox('/bin/true', [], {
      filesystem: { readOnly: [p('ro')], readWrite: [p('rw')] },
    });
    const rights = new Map(plan.landlock?.rules.map((r) => [r.path, r.access]));
    const ro = rights.get(p('ro')) ?? 0;
    const rw = rights.get(p('rw')) ?? 0;
    assert.equal(ro & FS.writeFile, 0);
    assert.notEqual(rw & FS.writeFile, 0);
    assert.equal(rights.get('/'), FS.readDir);
    assert.equal(rights.get('/etc/passwd'), FS.readFile);
    assert.equal(rights.has(p('hidden')), false);
  });
});

describe('Landlock in the sandbox', () => {
  test('the start event lists the layers in force, Landlock with its ABI or why not', async () => {
    const { spawnSandboxed } = await import('../lib');
    const child = spawnSandboxed('/bin/true', [], { stdio: 'ignore' });
    const start = await new Promise<Record<string, unknown>>((resolve) =>
      child.on('audit', (e: Record<string, unknown>) => e.event === 'sandbox-start' && resolve(e)),
    );
    await child.exited;
    const layers = start.layers as string[];
    assert.ok(layers.some((l) => l.startsWith('seccomp default')));
    if (abi >= 2)
      assert.ok(
        layers.includes(`landlock ABI ${abi}: filesystem${abi >= 6 ? ', signals and abstract unix sockets scoped' : ''}`),
        layers.join('; '),
      );
    else assert.ok(layers.some((l) => l.startsWith('landlock unavailable')));
  });

  test('a sandboxed payload cannot signal a host process even with the pid namespace out of the way: EPERM vs ESRCH', {
    skip: abi < 6 && 'ABI 6 needed',
  }, async () => {
    // Inside, host pids do not exist (ESRCH from the pid namespace, the outer layer); the
    // scope is the second layer, shown above outside the namespaces.
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const r = await run('/bin/sh', ['-c', `kill -0 ${sleeper.pid} 2>&1; echo rc=$?`]);
      assert.match(r.stdout, /rc=1/);
    } finally {
      sleeper.kill();
    }
  });
});
