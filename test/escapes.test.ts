// The host-side setup a sandbox cannot steer (issue #8). Each test is a hostile payload that
// leaves state behind in what it may write — symlinks, renamed or replaced directories, FIFOs —
// and a second start that must not act on the host for it. Host files are compared byte for
// byte before and after; tests that grant /etc run over a copy in a private mount namespace.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { fromNative, type SandboxError } from '../lib/errors';
import { dropPrefetchedScans, findSocketOrFifo, prefetchSocketScans, startSocketScan } from '../lib/hostpath';
import { initPath, type NativeSpawnResult, native } from '../lib/native';
import { resolveSandbox } from '../lib/plan';
import { PLACEHOLDER_PREFIX } from '../lib/secrets/placeholder';
import { installCopy, isRoot, repoRoot, settleWarmPool, sh, sharedTempDir } from './helpers';
import { waitFor } from './helpers/wait';

const launcher = path.join(repoRoot, 'bin', 'stockade.js');
const cli = (...args: string[]) => spawnSync(process.execPath, [launcher, 'run', ...args], { encoding: 'utf8', input: '' });

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A scratch tree: `secret/id_rsa` outside every grant, and `victim`, a file nothing may write. */
function scene(name: string): { base: string; key: string; victim: string; keyBytes: Buffer; victimBytes: Buffer } {
  const base = sharedTempDir(name);
  dirs.push(base);
  fs.mkdirSync(path.join(base, 'secret'), { mode: 0o755 });
  const key = path.join(base, 'secret', 'id_rsa');
  fs.writeFileSync(key, '-----BEGIN OPENSSH PRIVATE KEY----- not for the sandbox\n', { mode: 0o644 });
  const victim = path.join(base, 'victim');
  fs.writeFileSync(victim, 'the host file, untouched\n', { mode: 0o644 });
  return { base, key, victim, keyBytes: fs.readFileSync(key), victimBytes: fs.readFileSync(victim) };
}

const threadCount = () => fs.readdirSync('/proc/self/task').length;

/**
 * Waits, bounded, for this process to have `n` threads again: a joined thread can still be
 * listed in /proc/self/task for a moment (pthread_join returns when the kernel clears its tid,
 * before the task is released). A thread that never ends times the wait out.
 */
async function threadsBackTo(n: number): Promise<void> {
  await waitFor(() => threadCount() === n, { what: () => `the thread count back to ${n} (now ${threadCount()})` });
}

function mkdirs(...dirsToMake: string[]): void {
  for (const d of dirsToMake) fs.mkdirSync(d, { recursive: true, mode: 0o755 });
}

/** Every file below `root` (symlinks as their text), hashed: a byte-for-byte picture of a tree. */
function treeDigest(root: string, skip: (p: string) => boolean = () => false): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      out.set(dir, (err as NodeJS.ErrnoException).code ?? 'error'); // unreadable for this caller
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (skip(p)) continue;
      if (e.isDirectory()) walk(p);
      else if (e.isSymbolicLink()) out.set(p, `-> ${fs.readlinkSync(p)}`);
      else if (e.isFile()) {
        try {
          out.set(p, createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
        } catch (err) {
          out.set(p, (err as NodeJS.ErrnoException).code ?? 'error');
        }
      }
    }
  };
  walk(root);
  return out;
}

describe('grants name what the user named, and stay that', () => {
  test('a grant below a read-write grant is not resolved through a symlink the payload planted there', async () => {
    const { base, key, keyBytes } = scene('nested');
    const rw = path.join(base, 'rw');
    const ref = path.join(rw, 'sub', 'ref');
    mkdirs(ref);
    fs.writeFileSync(path.join(ref, 'ok'), 'granted\n');
    const options = { filesystem: { readWrite: [rw], readOnly: [ref] } };
    // First run: replace the directory above the read-only grant and plant ref -> secret.
    const first = await sh(`cat ${ref}/ok && mv ${rw}/sub ${rw}/old && mkdir ${rw}/sub && ln -s ${base}/secret ${ref}`, options);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'granted\n');
    assert.equal(fs.readlinkSync(ref), path.join(base, 'secret'));
    // Second run: refused before anything is spawned, naming the planted symlink.
    await assert.rejects(sh(`cat ${ref}/id_rsa`, options), {
      name: 'SandboxOptionsError',
      message: `options.filesystem.readOnly[0]: '${ref}' goes through the symlink '${ref}', inside the writable grant '${rw}' (the sandbox could have planted it); symlinks are followed only outside writable grants: name the real path`,
    });
    assert.deepEqual(fs.readFileSync(key), keyBytes);
  });

  test('what is bound is what was checked: a symlink planted after the check fails the spawn with ELOOP', async () => {
    const { base } = scene('toctou');
    const rw = path.join(base, 'rw');
    const ref = path.join(rw, 'sub', 'ref');
    mkdirs(ref);
    const resolved = resolveSandbox('/usr/bin/true', [], { filesystem: { readWrite: [rw], readOnly: [ref] } });
    // Between the launcher's check and the child's bind, the directory is swapped for a link.
    fs.renameSync(path.join(rw, 'sub'), path.join(rw, 'old'));
    fs.mkdirSync(path.join(rw, 'sub'));
    fs.symlinkSync(path.join(base, 'secret'), ref);
    const result = await new Promise<NativeSpawnResult>((resolve) =>
      native().spawn({ ...resolved.plan, file: '/usr/bin/true', fds: [-1, -1, -1] }, () => {}, resolve),
    );
    assert.ok('error' in result, 'the spawn must fail');
    const err = fromNative(result.error, resolved.describe);
    assert.equal(err.code, 'ELOOP');
    assert.equal(err.step, 'mount');
    assert.equal(err.path, ref);
    assert.match(err.message, /a symlink appeared on the way since the path was checked/);
  });

  test('a read-only file inside a read-write grant, its directory replaced by the payload, is refused', async () => {
    const { base, key, keyBytes } = scene('rofile');
    const rw = path.join(base, 'rw');
    mkdirs(path.join(rw, 'conf'));
    const config = path.join(rw, 'conf', 'config.json');
    fs.writeFileSync(config, '{"trusted":true}\n');
    const options = { filesystem: { readWrite: [rw], readOnly: [config] } };
    const first = await sh(`echo x >> ${config}; mv ${rw}/conf ${rw}/conf.old && mkdir ${rw}/conf && ln -s ${key} ${config}`, options);
    // Read-only inside (EROFS; as host root already EACCES, the file being root's).
    assert.match(first.stderr, /config\.json: (Read-only file system|Permission denied)/);
    assert.equal(first.code, 0, first.stderr);
    await assert.rejects(sh(`cat ${config}`, options), {
      name: 'SandboxOptionsError',
      message: new RegExp(`goes through the symlink '${config}', inside the writable grant '${rw}'`),
    });
    assert.deepEqual(fs.readFileSync(key), keyBytes);
    assert.equal(fs.readFileSync(path.join(rw, 'conf.old', 'config.json'), 'utf8'), '{"trusted":true}\n');
  });

  test('a persistent home replaced by a symlink to elsewhere is refused', async () => {
    const { base, key, keyBytes } = scene('homelink');
    const parent = path.join(base, 'state');
    const home = path.join(parent, 'home');
    mkdirs(home);
    // The payload may write its parent too (a second grant): it swaps the home for a link.
    const first = await sh(`mv ${home} ${parent}/was && ln -s ${base}/secret ${home}`, { filesystem: { readWrite: [parent] } });
    assert.equal(first.code, 0, first.stderr);
    await assert.rejects(sh('cat ~/id_rsa', { filesystem: { readWrite: [parent], home } }), {
      name: 'SandboxOptionsError',
      message: new RegExp(`^options.filesystem.home: '${home}' goes through the symlink '${home}', inside the writable grant '${parent}'`),
    });
    assert.deepEqual(fs.readFileSync(key), keyBytes);
  });

  test('a symlink the host made, outside every writable grant, is followed to the real path', async () => {
    const { base } = scene('hostlink');
    mkdirs(path.join(base, 'data'));
    fs.writeFileSync(path.join(base, 'data', 'f'), 'real\n');
    fs.symlinkSync('data', path.join(base, 'link'));
    const r = await sh(`cat ${base}/data/f; ls ${base}`, { filesystem: { readOnly: [path.join(base, 'link')] } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'real\ndata\n');
  });
});

describe('setup never writes into a host directory', () => {
  const secretOptions = (home: string) => ({
    network: { allow: ['api.example.test'] },
    secrets: [{ name: 'TOKEN', source: { value: 'real-secret-value' }, hosts: ['api.example.test'], file: '/home/nobody/token' }],
    filesystem: { home },
  });

  test("a secret's file under a persistent home is bound over the host file, and never written through a planted symlink", async () => {
    const { base, victim, victimBytes } = scene('secretfile');
    const home = path.join(base, 'home');
    mkdirs(home);
    // Nothing is created in the host home: the file must be there first.
    await assert.rejects(sh('true', secretOptions(home)), (err: SandboxError) => {
      assert.match(err.message, new RegExp(`where the host has nothing at '${home}/token'.*create '${home}/token' first`));
      return true;
    });
    assert.deepEqual(fs.readdirSync(home), []);
    fs.writeFileSync(path.join(home, 'token'), '');
    const inside = await sh('cat /home/nobody/token; echo x > /home/nobody/token', secretOptions(home));
    assert.match(inside.stdout, new RegExp(`^${PLACEHOLDER_PREFIX}`));
    assert.doesNotMatch(inside.stdout, /real-secret-value/);
    assert.match(inside.stderr, /Read-only file system/);
    assert.equal(fs.readFileSync(path.join(home, 'token'), 'utf8'), '', 'the host file is untouched');
    // A run without the secret plants token -> victim; the next run with it must not write there.
    const plant = await sh(`rm /home/nobody/token && ln -s ${victim} /home/nobody/token`, { filesystem: { home } });
    assert.equal(plant.code, 0, plant.stderr);
    await assert.rejects(sh('cat /home/nobody/token', secretOptions(home)), (err: SandboxError) => {
      assert.match(err.message, new RegExp(`where the host has a symlink on the way at '${home}/token'`));
      return true;
    });
    assert.deepEqual(fs.readFileSync(victim), victimBytes);
  });

  test('a grant of /etc: the synthesized files win inside, the host files stay byte for byte, a planted link is refused', async (t) => {
    const { base, victim, victimBytes } = scene('etc');
    const payload = 'cat /etc/hostname; grep -c . /etc/passwd; echo pwned > /etc/hostname; echo pwned > /etc/hosts; true';
    if (!isRoot) {
      // Unprivileged, the caller cannot write /etc at all: the real /etc is safe to grant.
      const before = treeDigest('/etc');
      const r = cli('--rw', '/etc', '--', '/bin/sh', '-c', payload);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, 'stockade\n2\n');
      assert.deepEqual(treeDigest('/etc'), before);
      return;
    }
    // As root: over a copy of /etc, bound at /etc in a private mount namespace.
    const copy = path.join(base, 'etc-copy');
    const cp = spawnSync('cp', ['-a', '/etc', copy]);
    assert.equal(cp.status, 0, String(cp.stderr));
    const inNamespace = (...args: string[]) =>
      spawnSync(
        'unshare',
        [
          '--mount',
          '--propagation',
          'private',
          '--',
          'sh',
          '-c',
          'mount --bind "$0" /etc && exec "$@"',
          copy,
          process.execPath,
          launcher,
          'run',
          ...args,
        ],
        { encoding: 'utf8', input: '' },
      );
    const before = treeDigest(copy);
    const first = inNamespace('--rw', '/etc', '--', '/bin/sh', '-c', `${payload}; ln -s ${base} /etc/stockade`);
    assert.equal(first.status, 0, first.stderr);
    assert.equal(first.stdout, 'stockade\n2\n');
    assert.match(first.stderr, /hostname: Read-only file system/);
    assert.match(first.stderr, /hosts: Read-only file system/);
    // The fetch preload is synthesized at /etc/stockade/proxy-preload.js: the planted link is refused.
    const second = inNamespace('--rw', '/etc', '--allow-net', 'example.test', '--', '/bin/true');
    assert.equal(second.status, 2, second.stderr);
    assert.match(
      second.stderr,
      /'\/etc\/stockade\/proxy-preload\.js' \(a synthesized file\) lies in the host directory bound from '\/etc', where the host has a symlink on the way/,
    );
    const planted = path.join(copy, 'stockade');
    assert.equal(fs.readlinkSync(planted), base);
    fs.unlinkSync(planted);
    assert.deepEqual(treeDigest(copy), before);
    assert.deepEqual(fs.readFileSync(victim), victimBytes);
    assert.ok(!fs.existsSync(path.join(base, 'proxy-preload.js')));
    t.diagnostic(`${before.size} files of the /etc copy compared`);
  });

  test('nothing inside names where stockade is installed: mountinfo, environ, argv', async () => {
    const r = await sh(
      'cat /proc/self/mountinfo /proc/self/environ /proc/self/cmdline /proc/1/cmdline /proc/1/environ 2>&1; readlink /proc/1/exe 2>&1; ls -l /etc/stockade',
      {
        network: { allow: ['example.test'] },
      },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /proxy-preload\.js/);
    for (const p of new Set([repoRoot, fs.realpathSync(repoRoot), path.dirname(initPath())])) {
      assert.ok(!r.stdout.includes(p), `'${p}' appears inside:\n${r.stdout}`);
    }
    assert.ok(!/\/(old|new)root/.test(r.stdout), 'no setup path either');
  });
});

describe('the audit file', () => {
  test('a symlink planted in a writable grant, or one outside, is not followed; a good file is created 0600', async () => {
    const { base, victim, victimBytes } = scene('audit');
    const rw = path.join(base, 'rw');
    mkdirs(rw);
    const plant = await sh(`ln -s ${victim} ${rw}/audit.log`, { filesystem: { readWrite: [rw] } });
    assert.equal(plant.code, 0, plant.stderr);
    const inside = cli('--rw', rw, '--audit', `${rw}/audit.log`, '--', '/bin/true');
    assert.equal(inside.status, 2);
    assert.equal(
      inside.stderr,
      `stockade run: --audit ${rw}/audit.log: lies inside the read-write grant '${rw}', where the sandbox could replace it; put the audit log outside every writable grant\n`,
    );
    // Even where no grant reaches, a symlink is not followed (O_NOFOLLOW).
    fs.symlinkSync(victim, path.join(base, 'link.log'));
    const link = cli('--audit', `${base}/link.log`, '--', '/bin/true');
    assert.equal(link.status, 2);
    assert.equal(link.stderr, `stockade run: --audit ${base}/link.log: is a symlink, which the launcher does not follow\n`);
    // A FIFO would block an ordinary open; this one is refused at once.
    assert.equal(spawnSync('mkfifo', [path.join(base, 'fifo')]).status, 0);
    const fifo = cli('--audit', `${base}/fifo`, '--', '/bin/true');
    assert.equal(fifo.status, 2);
    assert.match(fifo.stderr, /--audit .*fifo: cannot be opened \(ENXIO\)/);
    assert.deepEqual(fs.readFileSync(victim), victimBytes);
    const good = cli('--audit', `${base}/audit.log`, '--', '/bin/true');
    assert.equal(good.status, 0, good.stderr);
    assert.equal(fs.statSync(`${base}/audit.log`).mode & 0o777, 0o600);
    assert.match(fs.readFileSync(`${base}/audit.log`, 'utf8'), /"event":"sandbox-start"/);
  });
});

describe('what the next start trusts stays out of every writable grant', () => {
  const refusal = (grant: string, why: string) =>
    `stockade run: options.filesystem.readWrite[0]: '${grant}' ${why}, which the next start runs on the host: a sandbox that can write it could run code outside; grant a path that does not hold it\n`;

  test("stockade installed in a project: a grant of the project, of its node_modules or in the package is refused, and the package's bytes stay", () => {
    const { base } = scene('install');
    const project = path.join(base, 'project');
    const modules = path.join(project, 'node_modules');
    const pkg = path.join(modules, 'stockade-sandbox');
    mkdirs(path.join(project, 'src'));
    installCopy(pkg);
    const installed = (...args: string[]) =>
      spawnSync(process.execPath, [path.join(pkg, 'bin', 'stockade.js'), 'run', ...args], { encoding: 'utf8', input: '' });
    // A grant beside the package runs (and leaves the launcher's compile cache, as any start does).
    const beside = installed('--rw', path.join(project, 'src'), '--', '/bin/true');
    assert.equal(beside.status, 0, beside.stderr);
    const before = treeDigest(pkg);
    // The payload would replace the launcher's code, which the next start runs outside.
    const evil = `echo 'require("child_process").execSync("touch ${base}/pwned")' > ${pkg}/dist/lib/cli.js`;
    const whole = installed('--rw', project, '--', '/bin/sh', '-c', evil);
    assert.equal(whole.status, 2);
    assert.equal(whole.stderr, refusal(project, `holds stockade's own package (${pkg})`));
    const cache = path.join(pkg, 'dist', '.compile-cache');
    const inPackage = installed('--rw', cache, '--', '/bin/true');
    assert.equal(inPackage.stderr, refusal(cache, `lies in stockade's own package (${pkg})`));
    // Its dependencies are hoisted beside it, and loaded from there.
    mkdirs(path.join(modules, '.cache'));
    const hoisted = installed('--rw', path.join(modules, '.cache'), '--', '/bin/true');
    assert.equal(
      hoisted.stderr,
      refusal(path.join(modules, '.cache'), `lies in the node_modules directory stockade's dependencies are loaded from (${modules})`),
    );
    assert.deepEqual(treeDigest(pkg), before);
    assert.ok(!fs.existsSync(path.join(base, 'pwned')));
  });

  test('the Node executable the launcher runs on cannot be granted writable', async () => {
    const node = fs.realpathSync(process.execPath);
    await assert.rejects(sh('true', { filesystem: { readWrite: [path.dirname(node)] } }), {
      name: 'SandboxOptionsError',
      message: `options.filesystem.readWrite[0]: '${path.dirname(node)}' holds the Node executable stockade runs on (${node}), which the next start runs on the host: a sandbox that can write it could run code outside; grant a path that does not hold it`,
    });
  });

  test('a policy file in its own read-write grant is refused before its payload could rewrite it', () => {
    const { base } = scene('policy');
    const rw = path.join(base, 'rw');
    const conf = path.join(rw, 'conf');
    mkdirs(conf);
    const policy = path.join(conf, 'policy.json');
    fs.writeFileSync(policy, `${JSON.stringify({ filesystem: { readWrite: [rw] } })}\n`);
    const bytes = fs.readFileSync(policy);
    // The payload would grant its next start the host's network and more of the disk.
    const rewrite = `echo '{"network":"host","filesystem":{"readWrite":["${rw}","${base}/secret"]}}' > ${policy}`;
    const r = cli('--policy', policy, '--', '/bin/sh', '-c', rewrite);
    assert.equal(r.status, 2);
    assert.equal(
      r.stderr,
      `stockade run: options.filesystem.readWrite[0]: '${rw}' holds the policy file '${policy}', which the next start reads again: a sandbox that can write there could choose what it is given next time; move the policy file out of every writable grant\n`,
    );
    assert.deepEqual(fs.readFileSync(policy), bytes);
    // Granted read-only, or beside the grant, the policy runs.
    fs.writeFileSync(policy, `${JSON.stringify({ filesystem: { readOnly: [rw], readWrite: [path.join(base, 'secret')] } })}\n`);
    const ok = cli('--policy', policy, '--', '/bin/true');
    assert.equal(ok.status, 0, ok.stderr);
  });

  test('an upstream CA in a read-write grant is refused', async () => {
    const { base } = scene('ca');
    const rw = path.join(base, 'rw');
    mkdirs(rw);
    const bundle = fs.readFileSync('/etc/ssl/certs/ca-certificates.crt', 'utf8');
    const ca = path.join(rw, 'ca.pem');
    fs.writeFileSync(ca, bundle.slice(0, bundle.indexOf('-----END CERTIFICATE-----') + 26));
    const secrets = [{ name: 'X', hosts: ['example.com'], source: { value: 'v' } }];
    const options = { network: { allow: ['example.com'] }, secrets, upstreamCa: [ca], filesystem: { readWrite: [rw] } };
    assert.throws(() => resolveSandbox('/bin/true', [], options), {
      name: 'SandboxOptionsError',
      message: `options.filesystem.readWrite[0]: '${rw}' holds the upstream CA '${ca}', which the next start reads again: a sandbox that can write there could choose what it is given next time; move the upstream CA out of every writable grant`,
    });
  });
});

describe('sockets and FIFOs in grants', () => {
  test('a grant holding a listening unix socket is refused; allowSockets lets it through, and connect() then reaches the host', async () => {
    const { base } = scene('socket');
    const dir = path.join(base, 'run');
    mkdirs(dir);
    const sock = path.join(dir, 'docker.sock');
    const received: string[] = [];
    const server = net.createServer((c) => c.on('data', (d) => received.push(d.toString())));
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    fs.chmodSync(sock, 0o777);
    try {
      const connect = `/usr/bin/python3 -c "import socket; s = socket.socket(socket.AF_UNIX); s.connect('${sock}'); s.sendall(b'reached')"`;
      await assert.rejects(sh(connect, { filesystem: { readOnly: [dir] } }), {
        name: 'SandboxOptionsError',
        message: `options.filesystem.readOnly[0]: '${dir}' holds the unix socket '${sock}': a read-only bind does not stop connect() to a socket or writes to a FIFO, so it would reach a host service; grant a path without it, or allow it explicitly with filesystem.allowSockets (--allow-sockets)`,
      });
      const r = await sh(connect, { filesystem: { readOnly: [dir], allowSockets: true } });
      assert.equal(r.code, 0, r.stderr);
      while (received.join('') !== 'reached') await new Promise((resolve) => setImmediate(resolve));
    } finally {
      server.close();
    }
  });

  test('a FIFO the payload leaves in its read-write grant makes the next start refuse the grant', async () => {
    const { base } = scene('fifo');
    const rw = path.join(base, 'rw');
    mkdirs(path.join(rw, 'deep'));
    const first = await sh(`mkfifo ${rw}/deep/pipe`, { filesystem: { readWrite: [rw] } });
    assert.equal(first.code, 0, first.stderr);
    const second = cli('--rw', rw, '--', '/bin/true');
    assert.equal(second.status, 2);
    assert.match(second.stderr, new RegExp(`^stockade run: options.filesystem.readWrite\\[0\\]: '${rw}' holds the FIFO '${rw}/deep/pipe'`));
    const allowed = cli('--rw', rw, '--allow-sockets', '--', '/bin/true');
    assert.equal(allowed.status, 0, allowed.stderr);
  });

  test('the walk follows no symlink, finds what is deep down, and refuses what it cannot finish', () => {
    const { base } = scene('walk');
    const outside = path.join(base, 'outside');
    const grant = path.join(base, 'grant');
    mkdirs(outside, path.join(grant, 'a', 'b'));
    spawnSync('mkfifo', [path.join(outside, 'pipe')]);
    // A symlink to a directory holding a FIFO is a symlink inside: it points into the sandbox's
    // own view, so it neither hides nor reveals anything.
    fs.symlinkSync(outside, path.join(grant, 'a', 'link'));
    assert.equal(findSocketOrFifo(grant), undefined);
    const deep = path.join(grant, 'a', 'b', ...Array.from({ length: 40 }, (_, i) => `d${i}`));
    mkdirs(deep);
    spawnSync('mkfifo', [path.join(deep, 'pipe')]);
    assert.deepEqual(findSocketOrFifo(grant), { type: 'FIFO', path: path.join(deep, 'pipe') });
    assert.deepEqual(findSocketOrFifo(path.join(deep, 'pipe')), { type: 'FIFO', path: path.join(deep, 'pipe') });
    assert.throws(() => findSocketOrFifo(grant, 10), {
      code: 'E2BIG',
      message: `'${grant}' has more than 10 entries, too many to check for unix sockets and FIFOs; grant a narrower path, or allow sockets explicitly`,
    });
    // Nested past the walk's bound (a payload can build this in its read-write grant): a clear
    // refusal, not a crash, an fd per level without end, or a grant left unchecked.
    const nest = path.join(base, 'nest');
    let at = nest;
    mkdirs(nest);
    for (let i = 0; i < 600; i++) {
      at = path.join(at, 'n');
      fs.mkdirSync(at);
    }
    assert.throws(() => findSocketOrFifo(nest), {
      code: 'ELOOP',
      message: `'${nest}' is nested too deep (more than 512 directories) to be checked for unix sockets and FIFOs; grant a narrower path, or allow sockets explicitly`,
    });
    const r = cli('--ro', nest, '--', '/bin/true');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^stockade run: options\.filesystem\.readOnly\[0\]: '.*nest' is nested too deep/);
  });

  test('the walk on several threads: every branch looked at, its limit and depth bound kept, no fd or thread left', async () => {
    const { base } = scene('wide');
    const grant = path.join(base, 'grant');
    // Wider than the workers' queue, each branch with subtrees: whichever worker takes it.
    for (let i = 0; i < 40; i++) mkdirs(path.join(grant, `b${i}`, 'x', 'y'), path.join(grant, `b${i}`, 'z'));
    const fds = () => fs.readdirSync('/proc/self/fd').length;
    // Counted with no warm child (its fds are in this process's table until it is let go).
    await settleWarmPool();
    const before = { fds: fds(), threads: threadCount() };
    assert.equal(findSocketOrFifo(grant), undefined);
    for (const at of ['b0/x/y', 'b17/z', 'b39/x/y']) {
      const pipe = path.join(grant, at, 'pipe');
      spawnSync('mkfifo', [pipe]);
      assert.deepEqual(findSocketOrFifo(grant), { type: 'FIFO', path: pipe });
      fs.rmSync(pipe);
    }
    // 40 x 4 directories: the count is shared by the workers.
    assert.equal(findSocketOrFifo(grant, 160), undefined);
    assert.throws(() => findSocketOrFifo(grant, 159), { code: 'E2BIG' });
    // Two chains past the bound, on two workers at once.
    for (const chain of ['b3', 'b30']) {
      let at = path.join(grant, chain);
      for (let i = 0; i < 520; i++) {
        at = path.join(at, 'n');
        fs.mkdirSync(at);
      }
    }
    assert.throws(() => findSocketOrFifo(grant), { code: 'ELOOP' });
    assert.equal(fds(), before.fds);
    await threadsBackTo(before.threads);
    // A scan nobody waits for is stopped (or, done already, freed) when collected: nothing left.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    // (One that ended early keeps the directories it had queued open until then.)
    startSocketScan(grant);
    await waitFor(
      () => {
        gc();
        return fds() === before.fds && threadCount() === before.threads;
      },
      { what: () => `the fds and threads back to ${JSON.stringify(before)} (now ${fds()}, ${threadCount()})` },
    );
  });

  test('a directory that can be entered but not listed (0711) ends the check: a socket in it is reachable by name', async () => {
    const { base } = scene('unlisted');
    const grant = path.join(base, 'grant');
    const hidden = path.join(grant, 'hidden');
    mkdirs(hidden);
    const sock = path.join(hidden, 'svc.sock');
    let reached = 0;
    const server = net.createServer((s) => {
      reached++;
      s.end('host service\n');
    });
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    fs.chmodSync(sock, 0o777);
    try {
      fs.chmodSync(hidden, 0o311); // searchable, not readable, even for its owner
      const reach = `require('node:net').connect(${JSON.stringify(sock)}).on('data', (d) => process.stdout.write(d)).on('error', (e) => { console.log(e.code); })`;
      if (isRoot) {
        // Root lists it anyway (CAP_DAC_READ_SEARCH): the socket itself is found.
        assert.deepEqual(findSocketOrFifo(grant), { type: 'unix socket', path: sock });
      } else {
        assert.throws(() => findSocketOrFifo(grant), {
          code: 'EACCES',
          message: `'${hidden}' can be entered but not listed by this user (as mode 0711 allows), so what it holds, reachable by name from the sandbox, cannot be checked for unix sockets and FIFOs; grant a narrower path, or allow sockets explicitly`,
        });
        // The grant's own root, likewise.
        assert.throws(() => findSocketOrFifo(hidden), { code: 'EACCES' });
      }
      // Not spawnSync: the host service is this process's, and must answer meanwhile.
      const run = (...args: string[]) =>
        new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
          const c = spawn(process.execPath, [launcher, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
          let stdout = '';
          let stderr = '';
          c.stdout.on('data', (d) => (stdout += d));
          c.stderr.on('data', (d) => (stderr += d));
          c.on('close', (status) => resolve({ status, stdout, stderr }));
        });
      const refused = await run('--ro', grant, '--', process.execPath, '-e', reach);
      assert.equal(refused.status, 2, refused.stderr);
      assert.match(refused.stderr, /^stockade run: options\.filesystem\.readOnly\[0\]: /);
      assert.equal(reached, 0);
      // Why: with the check waived, the sandbox connects by name to what it could not list.
      const waived = await run('--ro', grant, '--allow-sockets', '--', process.execPath, '-e', reach);
      assert.equal(waived.stdout, 'host service\n', waived.stderr);
      assert.equal(reached, 1);
      // Closed to this user (0000): the sandbox cannot enter it either, so nothing is refused
      // (as root it is listed, and the socket found).
      fs.chmodSync(hidden, 0o000);
      if (isRoot) assert.deepEqual(findSocketOrFifo(grant), { type: 'unix socket', path: sock });
      else assert.equal(findSocketOrFifo(grant), undefined);
    } finally {
      fs.chmodSync(hidden, 0o755);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('scans started ahead of the plan (stockade run): the plan takes the one of its root, the rest are stopped', async () => {
    const { base } = scene('prefetch');
    const grant = path.join(base, 'grant');
    const wide = path.join(base, 'wide');
    mkdirs(path.join(grant, 'a', 'b'));
    for (let i = 0; i < 300; i++) mkdirs(path.join(wide, `d${i}`, 'x'));
    spawnSync('mkfifo', [path.join(grant, 'a', 'b', 'pipe')]);
    fs.symlinkSync(grant, path.join(base, 'link'));
    const fds = () => fs.readdirSync('/proc/self/fd').length;
    await settleWarmPool();
    const before = { fds: fds(), threads: threadCount() };
    // Through a symlink outside every writable grant, as the plan resolves it; a relative path,
    // a missing one and a system directory start nothing (the plan reports the first two).
    prefetchSocketScans([path.join(base, 'link'), wide, 'relative', path.join(base, 'missing'), '/usr']);
    assert.throws(() => resolveSandbox('/bin/true', [], { filesystem: { readOnly: [grant] } }), {
      name: 'SandboxOptionsError',
      message: new RegExp(`^options\\.filesystem\\.readOnly\\[0\\]: '${grant}' holds the FIFO '${grant}/a/b/pipe'`),
    });
    // Another limit than the plan's is a scan of its own.
    prefetchSocketScans([grant]);
    assert.throws(() => findSocketOrFifo(grant, 1), { code: 'E2BIG' });
    // The scans nothing took (the wide tree's, perhaps still walking; the grant's second) stop.
    dropPrefetchedScans();
    assert.equal(findSocketOrFifo(wide), undefined, 'a later scan of a dropped root is a fresh one');
    assert.equal(fds(), before.fds);
    await threadsBackTo(before.threads);
  });

  test('a refused grant is reported first when a later option is wrong too, and its scan is waited for', async () => {
    const { base } = scene('order');
    const grant = path.join(base, 'grant');
    mkdirs(grant);
    spawnSync('mkfifo', [path.join(grant, 'pipe')]);
    const threads = threadCount();
    assert.throws(() => resolveSandbox('/bin/true', [], { filesystem: { readOnly: [grant, '/nonexistent-stockade'] } }), {
      name: 'SandboxOptionsError',
      message: new RegExp(`^options\\.filesystem\\.readOnly\\[0\\]: '${grant}' holds the FIFO`),
    });
    assert.throws(() => resolveSandbox('/bin/true', [], { filesystem: { readOnly: [grant] }, limits: { memory: 'lots' } }), {
      name: 'SandboxOptionsError',
      message: new RegExp(`^options\\.filesystem\\.readOnly\\[0\\]: '${grant}' holds the FIFO`),
    });
    await threadsBackTo(threads);
  });

  test('the opt-in is one validated field', () => {
    assert.throws(() => resolveSandbox('/bin/true', [], { filesystem: { allowSockets: 'yes' as unknown as boolean } }), {
      name: 'SandboxOptionsError',
      message: 'options.filesystem.allowSockets: expected true or false, found "yes"',
    });
    const r = cli('--policy', '/dev/null', '--allow-sockets');
    assert.notEqual(r.stderr, '', 'a policy without a command is refused, not the flag');
    assert.doesNotMatch(r.stderr, /allow-sockets/);
  });
});

describe('read-write grants as host root', () => {
  test('what the payload creates in a grant belongs to the caller; set-ID bits are refused', async () => {
    const { base } = scene('owner');
    const rw = path.join(base, 'rw');
    mkdirs(rw);
    const r = await sh(`cd ${rw} && cp /bin/sh s && chmod 4755 s; chmod 2755 s; chmod 755 s && id -u && stat -c %u s`, {
      filesystem: { readWrite: [rw] },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '65534\n65534\n', 'inside, the payload owns what it made');
    assert.equal(r.stderr.match(/Operation not permitted/g)?.length, 2, r.stderr);
    const stat = fs.statSync(path.join(rw, 's'));
    assert.equal(stat.uid, process.getuid?.(), 'outside, the caller does');
    assert.equal(stat.mode & 0o7777, 0o755);
  });

  test('a filesystem without idmapped mounts is a clear error with the fix, not a silent EACCES', {
    skip: !isRoot && 'idmapped mounts are made for host root only',
  }, async () => {
    // sysfs does not support idmapped mounts; the spawn fails before anything runs.
    await assert.rejects(sh('true', { filesystem: { readWrite: ['/sys/kernel/mm'] } }), (err: SandboxError) => {
      assert.equal(err.code, 'EINVAL');
      assert.equal(err.step, 'idmap-mount');
      assert.equal(err.path, '/sys/kernel/mm');
      assert.match(err.hint ?? '', /chown it to 65534:65534, or run stockade as an unprivileged user/);
      return true;
    });
  });
});
