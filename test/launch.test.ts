// stockade-launch (native/launch.cc) and its launch records (lib/launch): the second start of a
// server spawns its sandbox from the record, before any Node process; every host read the
// record holds is performed again, and whatever a payload changed since makes the start the
// Node launcher's, which then refuses what it refuses. Each start runs a copy of this build
// installed in a scratch directory (helpers installCopy), whose dist/ the test user owns.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { installCopy, repoRoot, sharedTempDir } from './helpers';
import { needs } from './helpers/tools';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** An installed copy and a start through its stockade-launch, as `stockade wrap` writes it. */
function install(name: string) {
  const base = sharedTempDir(`launch-${name}`);
  dirs.push(base);
  const pkg = path.join(base, 'pkg');
  installCopy(pkg);
  const records = path.join(pkg, 'dist', '.launch-cache');
  const start = (args: string[], env: Record<string, string> = {}) => {
    const r = spawnSync(
      path.join(pkg, 'build', 'Release', 'stockade-launch'),
      [process.execPath, path.join(pkg, 'bin', 'stockade.js'), 'run', ...args],
      { encoding: 'utf8', input: '', cwd: base, env: { PATH: '/usr/bin:/bin', HOME: base, STOCKADE_LAUNCH_DEBUG: '1', ...env } },
    );
    const said = (r.stderr.match(/^stockade: launch record: .*$/gm) ?? []).map((l) => l.slice(25));
    return { ...r, said, rest: r.stderr.replace(/^stockade: launch record: .*\n/gm, '') };
  };
  return { base, pkg, records, start, list: () => (fs.existsSync(records) ? fs.readdirSync(records) : []) };
}

const ATTACHED = 'attached (the sandbox stockade-launch spawned from it)';
/** The start was the Node launcher's, which wrote a record. */
const recorded = (said: string[]) => said.some((l) => /^written \(\d+ checks\)$/.test(l));

/** Waits until a ctime of the first start is older than the racy window (lib/launch/record.ts). */
function settle(): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2100);
}

describe('launch records', () => {
  test('the first start records, the second is spawned from the record: same output, same exit code', () => {
    const { base, records, start, list } = install('replay');
    const data = path.join(base, 'data');
    fs.mkdirSync(data, { mode: 0o755 });
    fs.writeFileSync(path.join(data, 'hello.txt'), 'hello from the host\n', { mode: 0o644 });
    settle();
    const args = ['--ro', data, '--', '/bin/sh', '-c', `cat ${data}/hello.txt; id -u; exit 3`];
    const first = start(args);
    assert.equal(first.status, 3, first.stderr);
    assert.equal(first.stdout, 'hello from the host\n65534\n');
    assert.deepEqual(first.said[0], "not used (none of this user's own)");
    assert.ok(recorded(first.said), first.stderr);
    assert.equal(list().length, 1);
    const st = fs.statSync(path.join(records, list()[0] as string));
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(fs.statSync(records).mode & 0o777, 0o700);
    const second = start(args);
    assert.equal(second.status, 3, second.stderr);
    assert.equal(second.stdout, first.stdout);
    assert.deepEqual(second.said, [ATTACHED]);
    assert.equal(second.rest, '');
  });

  test('another environment, another working directory or other arguments are another key', () => {
    const { start, list } = install('key');
    settle();
    assert.ok(recorded(start(['--', '/bin/true']).said));
    assert.deepEqual(start(['--', '/bin/true']).said, [ATTACHED]);
    assert.ok(recorded(start(['--', '/bin/true'], { EXTRA: '1' }).said));
    assert.ok(recorded(start(['--hostname', 'other', '--', '/bin/true']).said));
    assert.equal(list().length, 3);
  });

  test('a FIFO the payload leaves in its read-write grant: the next start is the Node launcher’s, which refuses the grant', () => {
    const { base, start } = install('fifo');
    const rw = path.join(base, 'rw');
    fs.mkdirSync(path.join(rw, 'deep'), { recursive: true, mode: 0o777 });
    fs.chmodSync(rw, 0o777);
    settle();
    const quiet = ['--rw', rw, '--', '/bin/true'];
    assert.ok(recorded(start(quiet).said));
    assert.deepEqual(start(quiet).said, [ATTACHED]);
    // The same key, a hostile payload: it plants a FIFO deep in its grant.
    const plant = start(['--rw', rw, '--', '/usr/bin/mkfifo', `${rw}/deep/pipe`]);
    assert.equal(plant.status, 0, plant.stderr);
    const after = start(quiet);
    assert.equal(after.status, 2);
    assert.match(after.rest, new RegExp(`^stockade run: options.filesystem.readWrite\\[0\\]: '${rw}' holds the FIFO '${rw}/deep/pipe'`));
    assert.deepEqual(after.said, [`not used (a check differs: witness ${rw})`, 'none (the start failed)']);
  });

  test('a symlink the payload plants where a read-only grant was: the next start refuses it instead of following it', () => {
    const { base, start } = install('symlink');
    const rw = path.join(base, 'rw');
    const ref = path.join(rw, 'ref');
    fs.mkdirSync(ref, { recursive: true, mode: 0o777 });
    fs.chmodSync(rw, 0o777);
    fs.mkdirSync(path.join(base, 'secret'), { mode: 0o755 });
    fs.writeFileSync(path.join(base, 'secret', 'id_rsa'), 'not for the sandbox\n', { mode: 0o644 });
    settle();
    const args = ['--rw', rw, '--ro', ref, '--', '/bin/sh', '-c', `cat ${ref}/id_rsa 2>/dev/null; true`];
    assert.ok(recorded(start(args).said));
    const swap = start(['--rw', rw, '--', '/bin/sh', '-c', `mv ${ref} ${rw}/was && ln -s ${base}/secret ${ref}`]);
    assert.equal(swap.status, 0, swap.stderr);
    const next = start(args);
    assert.equal(next.status, 2);
    assert.equal(next.stdout, '');
    assert.match(next.rest, new RegExp(`'${ref}' goes through the symlink '${ref}', inside the writable grant '${rw}'`));
  });

  test('a policy file edited since: the next start resolves it again, and its new grant is there', () => {
    const { base, start } = install('policy');
    const a = path.join(base, 'a');
    const b = path.join(base, 'b');
    for (const d of [a, b]) fs.mkdirSync(d, { mode: 0o755 });
    const policy = path.join(base, 'policy.json');
    fs.writeFileSync(policy, `${JSON.stringify({ filesystem: { readOnly: [a] } })}\n`);
    settle();
    const args = ['--policy', policy, '--', '/bin/sh', '-c', `ls -d ${b} 2>/dev/null; true`];
    assert.ok(recorded(start(args).said));
    assert.deepEqual(start(args).said, [ATTACHED]);
    fs.writeFileSync(policy, `${JSON.stringify({ filesystem: { readOnly: [a, b] } })}\n`);
    const edited = start(args);
    assert.equal(edited.stdout, `${b}\n`);
    assert.deepEqual(edited.said[0], `not used (a check differs: lstat ${policy})`);
  });

  test('a record that is not the user’s own alone, or not a record, is not used; the start is the Node launcher’s', () => {
    const { records, start, list } = install('trust');
    settle();
    assert.ok(recorded(start(['--', '/bin/true']).said));
    const file = path.join(records, list()[0] as string);
    fs.chmodSync(file, 0o666);
    const open = start(['--', '/bin/true']);
    assert.equal(open.status, 0, open.stderr);
    assert.deepEqual(open.said[0], "not used (none of this user's own)");
    assert.ok(recorded(open.said), 'a record others could write is never read (and is replaced)');
    assert.deepEqual(start(['--', '/bin/true']).said, [ATTACHED]);
    // Torn or garbled records: each start falls back, none crashes.
    const good = fs.readFileSync(file);
    for (const cut of [0, 8, 9, good.length >> 1, good.length - 1]) {
      fs.writeFileSync(file, good.subarray(0, cut), { mode: 0o600 });
      const r = start(['--', '/bin/true']);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(r.said[0], 'not used (not a record of this start)');
      assert.ok(recorded(r.said));
    }
  });

  test('a record whose plan the resolution does not make: the sandbox is killed, the record dropped', () => {
    const { records, start, list } = install('disagree');
    settle();
    const args = ['--hostname', 'launchtest1', '--', '/bin/sh', '-c', 'hostname; sleep 5'];
    assert.ok(recorded(start(args).said));
    const file = path.join(records, list()[0] as string);
    // A plan the checks still vouch for but this resolution would not make (the other hostname).
    const bytes = fs.readFileSync(file);
    const at = bytes.lastIndexOf('launchtest1');
    assert.ok(at > 0);
    bytes.write('launchtest2', at, 'latin1');
    fs.writeFileSync(file, bytes, { mode: 0o600 });
    const r = start(args);
    assert.equal(r.status, 137);
    assert.deepEqual(r.said, ['did not hold this plan']);
    assert.match(
      r.rest,
      /^stockade: the launch record did not hold this start's plan; the sandbox was stopped \(a bug: please report it\)\n/,
    );
    assert.deepEqual(list(), []);
  });

  test("every host path the resolution's own thread touches is a check of the record (strace)", { skip: needs('strace') }, () => {
    const { base, pkg } = install('strace');
    const data = path.join(base, 'data');
    const rw = path.join(base, 'rw');
    for (const d of [data, rw]) fs.mkdirSync(d, { mode: 0o755 });
    fs.writeFileSync(path.join(data, 'x'), 'x\n');
    const policy = path.join(base, 'policy.json');
    fs.writeFileSync(policy, `${JSON.stringify({ filesystem: { readOnly: [data], readWrite: [rw] }, limits: { memory: '512m' } })}\n`);
    settle();
    const trace = path.join(base, 'trace');
    const r = spawnSync(
      'strace',
      [
        '-f',
        '-qq',
        '-e',
        'trace=%file,getdents64',
        '-o',
        trace,
        path.join(pkg, 'build', 'Release', 'stockade-launch'),
        process.execPath,
        path.join(pkg, 'bin', 'stockade.js'),
        'run',
        '--policy',
        policy,
        '--',
        '/bin/true',
      ],
      { encoding: 'utf8', input: '', cwd: base, env: { PATH: '/usr/bin:/bin', HOME: base, STOCKADE_LAUNCH_DEBUG: '2' } },
    );
    assert.equal(r.status, 0, r.stderr);
    const line = /^stockade: launch record: checks (.*)$/m.exec(r.stderr);
    assert.ok(line, r.stderr);
    const checks = JSON.parse(line[1] as string) as { op: string; path: string; result?: string }[];
    const covered = new Set(checks.map((c) => c.path));
    // What realpath(3) walks to its answer is the answer's, which the check compares.
    // A witness check reads the witness, in its directory (scanwitness.cc readOwnFile).
    for (const c of checks.filter((c) => c.op === 'witness' && c.result !== undefined)) {
      covered.add(c.result as string);
      covered.add(path.dirname(c.result as string));
    }
    for (const c of checks.filter((c) => c.op === 'realpath' && c.result !== undefined)) {
      for (let p = c.result as string; p !== path.dirname(p); p = path.dirname(p)) covered.add(p);
    }
    // The launcher's own thread (stockade-launch's pid, then Node's main thread): every absolute
    // path it names. Its other threads walk grants (the witness check) and spawn (launch.cc does
    // that itself); the sandbox's processes are not the launcher.
    const lines = fs.readFileSync(trace, 'utf8').split('\n');
    const main = lines[0]?.split(' ')[0];
    const own = lines.filter((l) => l.startsWith(`${main} `));
    // The recording's window, marked by access(2) of two paths (lib/launch/readset.ts mark()).
    const begin = own.findIndex((l) => l.includes('"/.stockade-recording-begin"'));
    const end = own.findIndex((l) => l.includes('"/.stockade-recording-end"'));
    assert.ok(begin >= 0 && end > begin, 'the recording is marked in the trace');
    const touched = new Set<string>();
    for (const l of own.slice(begin + 1, end)) {
      for (const m of l.matchAll(/^\d+ \w+\((?:AT_FDCWD, )?"(\/[^"]*)"/g)) touched.add(m[1] as string);
    }
    const uncovered = [...touched].filter((p) => !covered.has(p) && !(p === '/proc/meminfo' && checks.some((c) => c.op === 'totalmem')));
    assert.deepEqual(uncovered, [], `host paths the record does not check: ${uncovered.join(' ')}`);
  });

  test("no code in lib/ reads a stat's times or link count, which a record does not compare for directories", () => {
    // native/launchrecord.cc compares a directory by device, inode, mode and owner only. A file's
    // stat is compared whole, and its bytes where it was read. lib/launch itself records them.
    const found: string[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) {
          if (e.name !== 'launch') walk(p);
        } else if (e.name.endsWith('.ts')) {
          fs.readFileSync(p, 'utf8')
            .split('\n')
            .forEach((line, i) => {
              if (/\.(mtime|ctime|atime|birthtime)(Ms|Ns)?\b|\.nlink\b|\.blocks\b|\.blksize\b/.test(line))
                found.push(`${path.relative(repoRoot, p)}:${i + 1}`);
            });
        }
      }
    };
    walk(path.join(repoRoot, 'lib'));
    // A secret file's link count: a file's stat (compared whole), and a start with credentials
    // is never recorded.
    assert.deepEqual(found, ['lib/secrets/sources.ts:56']);
  });
});
