// The witness of a clean socket scan (native/scanwitness.cc): the next scan of an unchanged
// tree checks every directory's identity and ctime instead of reading it. Each test is what a
// payload, or a host, could do to a granted tree after a witness was written, and a scan that
// must then walk again and see it. Real trees, real sockets and FIFOs, the real addon.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { SCAN_LIMIT, WITNESS_RACY_MS, witnessFile } from '../lib/hostpath';
import { native } from '../lib/native';
import { isRoot, repoRoot, sharedTempDir } from './helpers';

const launcher = path.join(repoRoot, 'bin', 'stockade.js');
const cli = (...args: string[]) => spawnSync(process.execPath, [launcher, 'run', ...args], { encoding: 'utf8', input: '' });

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A tree of directories (some nested), with files, and a directory of its own for witnesses. */
function tree(name: string): { base: string; root: string; witness: string } {
  const base = sharedTempDir(name);
  dirs.push(base);
  const root = path.join(base, 'grant');
  for (const d of ['a/b/c', 'a/d', 'e', 'f/g/h/i']) fs.mkdirSync(path.join(root, d), { recursive: true });
  for (const f of ['a/b/c/file', 'e/file', 'top']) fs.writeFileSync(path.join(root, f), 'x');
  fs.mkdirSync(path.join(base, 'witnesses'), { mode: 0o755 });
  fs.chmodSync(path.join(base, 'witnesses'), 0o755);
  return { base, root, witness: path.join(base, 'witnesses', 'scan-test') };
}

/** One scan with a witness; `racyMs` 0: a tree made a moment ago is settled enough here. */
function scan(root: string, witness: string, { racyMs = 0, limit = SCAN_LIMIT } = {}) {
  return native().finishSpecialScan(native().startSpecialScan(root, limit, witness, racyMs));
}

/**
 * Lets a clock tick pass: a change in the tick the witness was written in could keep its ctime
 * (why production waits WITNESS_RACY_MS); tests make their change after it instead.
 */
function nextTick(): void {
  const until = Date.now() + 25;
  while (Date.now() < until) {}
}

/** A listening unix socket at `p` (closed when the test ends). */
async function socketAt(p: string): Promise<net.Server> {
  const server = net.createServer((s) => s.end());
  await new Promise<void>((resolve) => server.listen(p, resolve));
  return server;
}

describe('the witness of a clean scan', () => {
  test('a clean tree leaves one; the next scan holds it, and finds what the first found', () => {
    const { root, witness } = tree('held');
    assert.deepEqual(scan(root, witness), { witness: 'written' });
    assert.equal(fs.statSync(witness).mode & 0o777, 0o644);
    assert.deepEqual(scan(root, witness), { witness: 'held' });
    assert.deepEqual(scan(root, witness), { witness: 'held' });
    // Without a witness the walk is as it was.
    assert.deepEqual(native().finishSpecialScan(native().startSpecialScan(root, SCAN_LIMIT)), { witness: 'none' });
  });

  test('a tree changed within racyMs of the scan leaves none', () => {
    const { root, witness } = tree('racy');
    assert.deepEqual(scan(root, witness, { racyMs: 60_000 }), { witness: 'none' });
    assert.equal(fs.existsSync(witness), false);
    assert.equal(WITNESS_RACY_MS >= 1000, true);
  });

  test('every change a payload can make below the root makes the next scan walk, and see it', async () => {
    const changes: [string, (root: string, base: string) => Promise<(() => void) | undefined> | void, unknown][] = [
      ['a FIFO made deep down', (r) => void spawnSync('mkfifo', [path.join(r, 'f/g/h/i/pipe')]), 'FIFO'],
      [
        "a FIFO made, its directory's times set back",
        (r) => {
          const dir = path.join(r, 'a/b/c');
          const old = fs.statSync(dir);
          spawnSync('mkfifo', [path.join(dir, 'pipe')]);
          fs.utimesSync(dir, old.atime, old.mtime); // mtime back as it was: ctime moves anyway
        },
        'FIFO',
      ],
      [
        'a socket bound in a directory',
        async (r) => {
          const server = await socketAt(path.join(r, 'a/d/svc.sock'));
          return () => server.close();
        },
        'unix socket',
      ],
      [
        'a directory holding a FIFO renamed into the tree',
        (r, base) => {
          fs.mkdirSync(path.join(base, 'outside'));
          spawnSync('mkfifo', [path.join(base, 'outside', 'pipe')]);
          fs.renameSync(path.join(base, 'outside'), path.join(r, 'e', 'moved'));
        },
        'FIFO',
      ],
      [
        'a directory swapped for another holding a FIFO (same name)',
        (r, base) => {
          fs.mkdirSync(path.join(base, 'twin'));
          spawnSync('mkfifo', [path.join(base, 'twin', 'pipe')]);
          fs.rmSync(path.join(r, 'f/g/h/i'), { recursive: true });
          fs.renameSync(path.join(base, 'twin'), path.join(r, 'f/g/h/i'));
        },
        'FIFO',
      ],
      [
        'a FIFO hard-linked in from outside',
        (r, base) => {
          spawnSync('mkfifo', [path.join(base, 'elsewhere')]);
          fs.linkSync(path.join(base, 'elsewhere'), path.join(r, 'a/b/linked'));
        },
        'FIFO',
      ],
    ];
    for (const [what, change, found] of changes) {
      const { base, root, witness } = tree('change');
      assert.deepEqual(scan(root, witness), { witness: 'written' }, what);
      nextTick();
      const undo = await change(root, base);
      try {
        const second = scan(root, witness);
        assert.equal('type' in second && second.type, found, `${what}: ${JSON.stringify(second)}`);
        // And no witness vouches for it afterwards.
        assert.equal('type' in scan(root, witness), true, what);
      } finally {
        undo?.();
      }
    }
  });

  test('a change that hides nothing still makes the next scan walk (and write it anew)', () => {
    for (const change of [
      (r: string) => fs.mkdirSync(path.join(r, 'a/b/c/new')),
      (r: string) => fs.chmodSync(path.join(r, 'e'), 0o700),
      (r: string) => fs.renameSync(path.join(r, 'top'), path.join(r, 'top2')),
      (r: string) => fs.symlinkSync('/run', path.join(r, 'f/g/link')),
      (r: string) => fs.rmSync(path.join(r, 'a/d'), { recursive: true }),
    ]) {
      const { root, witness } = tree('harmless');
      assert.deepEqual(scan(root, witness), { witness: 'written' });
      nextTick();
      change(root);
      assert.deepEqual(scan(root, witness), { witness: 'written' }, String(change));
      assert.deepEqual(scan(root, witness), { witness: 'held' });
    }
  });

  test("the limit is the current scan's", () => {
    const { root, witness } = tree('limit');
    assert.deepEqual(scan(root, witness), { witness: 'written' });
    // 9 directories and 3 files below the root.
    assert.deepEqual(scan(root, witness, { limit: 12 }), { witness: 'held' });
    const over = scan(root, witness, { limit: 11 });
    assert.equal('errno' in over && over.errno, 7); // E2BIG, from the walk
  });

  test("a witness that is not the user's own, or torn, or anything but a plain file, is not read", () => {
    const { base, root, witness } = tree('trust');
    assert.deepEqual(scan(root, witness), { witness: 'written' });
    const good = fs.readFileSync(witness);
    // Every byte flipped in turn at a few places, and cut short: never held (the walk writes it anew).
    for (const at of [0, 9, 20, good.length - 40, good.length - 1]) {
      const bad = Buffer.from(good);
      bad[at] ^= 0xff;
      fs.writeFileSync(witness, bad);
      assert.deepEqual(scan(root, witness), { witness: 'written' }, `byte ${at}`);
    }
    fs.writeFileSync(witness, good.subarray(0, good.length - 9));
    assert.deepEqual(scan(root, witness), { witness: 'written' });
    // Writable by others: not read, and replaced by the user's own.
    fs.chmodSync(witness, 0o666);
    assert.deepEqual(scan(root, witness), { witness: 'written' });
    assert.equal(fs.statSync(witness).mode & 0o777, 0o644);
    // A symlink to a good witness: not followed (and replaced, not written through).
    fs.renameSync(witness, `${witness}.real`);
    fs.symlinkSync(`${witness}.real`, witness);
    assert.deepEqual(scan(root, witness), { witness: 'written' });
    assert.equal(fs.lstatSync(witness).isFile(), true);
    // The witness of another root, under this root's name: not held.
    const other = tree('other');
    assert.deepEqual(scan(other.root, witness), { witness: 'written' });
    assert.deepEqual(scan(root, witness), { witness: 'written' });
    // A directory others may write: neither read nor written.
    fs.chmodSync(path.join(base, 'witnesses'), 0o777);
    assert.deepEqual(scan(root, witness), { witness: 'none' });
    fs.chmodSync(path.join(base, 'witnesses'), 0o755);
    if (isRoot) {
      // Another user's witness (a good one, made as it would be): not read.
      assert.deepEqual(scan(root, witness), { witness: 'held' });
      fs.chownSync(witness, 65534, 65534);
      assert.deepEqual(scan(root, witness), { witness: 'written' });
    }
  });

  test('a scan that skipped or lost something leaves no witness', { skip: isRoot && 'root lists every directory' }, () => {
    const { root, witness } = tree('skipped');
    fs.chmodSync(path.join(root, 'e'), 0o000);
    try {
      assert.deepEqual(scan(root, witness), { witness: 'none' });
      assert.equal(fs.existsSync(witness), false);
    } finally {
      fs.chmodSync(path.join(root, 'e'), 0o755);
    }
  });

  test('a cancelled scan leaves no witness', () => {
    const { root, witness } = tree('cancel');
    native().cancelSpecialScan(native().startSpecialScan(root, SCAN_LIMIT, witness, 0));
    assert.equal(fs.existsSync(witness), false);
  });

  test('a socket mounted over a file below the root is found, witness or not', { skip: !isRoot && 'mounting needs root' }, () => {
    const { base, root, witness } = tree('mount');
    // In a mount namespace of its own: the scan before, a socket bound over a plain file of the
    // tree, the scans after. No ctime moves, and the walk alone would not see it either
    // (getdents gives the type of the file under the mount).
    const script = `
      const { native } = require(${JSON.stringify(path.join(repoRoot, 'dist', 'lib', 'native.js'))});
      const net = require('node:net');
      const scan = () => native().finishSpecialScan(native().startSpecialScan(${JSON.stringify(root)}, 200000, ${JSON.stringify(witness)}, 0));
      const first = scan();
      const server = net.createServer().listen(${JSON.stringify(path.join(base, 'host.sock'))}, () => {
        require('node:child_process').execFileSync('mount', ['--bind', ${JSON.stringify(path.join(base, 'host.sock'))}, ${JSON.stringify(path.join(root, 'e', 'file'))}]);
        const bare = native().finishSpecialScan(native().startSpecialScan(${JSON.stringify(root)}, 200000));
        console.log(JSON.stringify([first, scan(), bare]));
        server.close();
      });`;
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', process.execPath, '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [
      { witness: 'written' },
      { type: 'unix socket', path: path.join(root, 'e', 'file') },
      { type: 'unix socket', path: path.join(root, 'e', 'file') },
    ]);
  });

  test('the witnesses kept in a directory are bounded: the oldest go', () => {
    const { base, root } = tree('prune');
    for (let i = 0; i < 70; i++) scan(root, path.join(base, 'witnesses', `scan-${String(i).padStart(2, '0')}`));
    const kept = fs.readdirSync(path.join(base, 'witnesses')).sort();
    assert.equal(kept.length, 64);
    assert.equal(kept[0], 'scan-06');
  });
});

describe('`stockade run` and the witness', () => {
  test('a payload that plants a socket in its read-write grant is refused at the next start, witness or not', async () => {
    const base = sharedTempDir('run-witness');
    dirs.push(base);
    const grant = path.join(base, 'grant');
    fs.mkdirSync(path.join(grant, 'deep', 'er'), { recursive: true });
    fs.chmodSync(base, 0o777);
    fs.chmodSync(grant, 0o777);
    for (const d of ['deep', 'deep/er']) fs.chmodSync(path.join(grant, d), 0o777);
    // Settled, so that the first start leaves a witness where dist/ is this user's.
    await new Promise((r) => setTimeout(r, WITNESS_RACY_MS + 100));
    const first = cli('--ro', grant, '--', '/bin/true');
    assert.equal(first.status, 0, first.stderr);
    const file = witnessFile(fs.realpathSync(grant));
    const ours = fs.statSync(path.dirname(path.dirname(file))).uid === process.geteuid?.();
    assert.equal(fs.existsSync(file), ours);
    // The payload: binds a socket deep in its grant (and exits: libuv would unlink it on close),
    // then sets the directory's times back.
    const plant = `const fs = require('node:fs'); const d = ${JSON.stringify(path.join(grant, 'deep', 'er'))};
      const t = fs.statSync(d); require('node:net').createServer().listen(d + '/planted.sock', function () {
        fs.utimesSync(d, t.atime, t.mtime); process.exit(0); });`;
    const payload = cli('--rw', grant, '--', process.execPath, '-e', plant);
    assert.equal(payload.status, 0, payload.stderr);
    assert.equal(fs.lstatSync(path.join(grant, 'deep', 'er', 'planted.sock')).isSocket(), true);
    const next = cli('--ro', grant, '--', '/bin/true');
    assert.equal(next.status, 2);
    assert.match(
      next.stderr,
      new RegExp(`^stockade run: options\\.filesystem\\.readOnly\\[0\\]: '${grant}' holds the unix socket '${grant}/deep/er/planted.sock'`),
    );
  });
});
