// Pinned servers: `stockade update` pins an npx package to what the registry serves (a local
// stand-in on 127.0.0.1, named registry.test inside the sandbox), the launcher installs exactly
// that version, checks its tarball before anything of it runs, and runs it with npm offline.
// A registry that later serves another tarball for the same version is refused, naming both
// digests; `stockade update` moves the pin to a new version deliberately.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { repoRoot, sharedTempDir } from './helpers';

const launcher = path.join(repoRoot, 'bin', 'stockade.js');
let dir: string;
let home: string;
let policy: string;
let registry: http.Server;
let port: number;
const requests: string[] = [];
/** version -> tarball bytes the stand-in serves (and advertises the integrity of). */
const published = new Map<string, Buffer>();
let latest = '1.0.0';

const integrity = (b: Buffer) => `sha512-${createHash('sha512').update(b).digest('base64')}`;

function pack(version: string, says: string): Buffer {
  const src = path.join(dir, `src-${version}-${published.size}`, 'package');
  fs.mkdirSync(src, { recursive: true });
  fs.writeFileSync(
    path.join(src, 'package.json'),
    JSON.stringify({ name: 'stockade-pinned', version, bin: { 'stockade-pinned': 'cli.js' } }),
  );
  fs.writeFileSync(path.join(src, 'cli.js'), `#!/usr/bin/env node\nconsole.log(${JSON.stringify(says)});\n`, { mode: 0o755 });
  const out = path.join(dir, `t-${version}-${published.size}.tgz`);
  execFileSync('tar', ['-czf', out, '-C', path.dirname(src), 'package']);
  return fs.readFileSync(out);
}

before(async () => {
  dir = sharedTempDir('npx-pin');
  home = path.join(dir, 'home');
  fs.mkdirSync(home, { mode: 0o755 });
  published.set('1.0.0', pack('1.0.0', 'pinned 1.0.0 runs'));
  registry = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const host = req.headers.host ?? `127.0.0.1:${port}`;
    if (req.url === '/stockade-pinned') {
      const versions: Record<string, object> = {};
      for (const [v, bytes] of published) {
        versions[v] = {
          name: 'stockade-pinned',
          version: v,
          bin: { 'stockade-pinned': 'cli.js' },
          dist: {
            tarball: `http://${host}/stockade-pinned/-/stockade-pinned-${v}.tgz`,
            shasum: createHash('sha1').update(bytes).digest('hex'),
            integrity: integrity(bytes),
          },
        };
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ name: 'stockade-pinned', 'dist-tags': { latest }, versions }));
      return;
    }
    const m = /^\/stockade-pinned\/-\/stockade-pinned-(.+)\.tgz$/.exec(req.url ?? '');
    const bytes = m ? published.get(m[1]) : undefined;
    if (bytes) res.end(bytes);
    else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
  port = (registry.address() as AddressInfo).port;
  policy = path.join(dir, 'pinned.policy.json');
  fs.writeFileSync(
    policy,
    `${JSON.stringify(
      {
        command: ['npx', '-y', 'stockade-pinned'],
        profile: 'node',
        network: { allow: [`registry.test:${port}`], resolve: [`registry.test:${port}:127.0.0.1`] },
        env: { npm_config_registry: `http://registry.test:${port}/` },
      },
      null,
      2,
    )}\n`,
  );
});

after(() => {
  registry.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const env = () => ({
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: home,
  npm_config_registry: `http://127.0.0.1:${port}/`,
  npm_config_cache: path.join(home, '.npm'),
});
/** Runs the CLI without blocking: the registry stand-in lives in this process. */
function stockade(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [launcher, ...args], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
}

test('update pins the version the registry serves; the pinned server runs with npm offline', async () => {
  const u = await stockade('update', policy);
  assert.equal(u.status, 0, u.stderr);
  assert.equal(
    u.stdout,
    `stockade update: stockade-pinned (unpinned) -> 1.0.0\n  integrity ${integrity(published.get('1.0.0') as Buffer)}\nstockade update: recorded in ${policy}\n`,
  );
  const doc = JSON.parse(fs.readFileSync(policy, 'utf8'));
  assert.deepEqual(doc.package, { name: 'stockade-pinned', version: '1.0.0', integrity: integrity(published.get('1.0.0') as Buffer) });
  requests.length = 0;
  const r = await stockade('run', '--policy', policy);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'pinned 1.0.0 runs\n');
  // The install phase fetched the pinned tarball; the run phase, offline, asked the registry nothing.
  assert.deepEqual([...new Set(requests)], ['GET /stockade-pinned', 'GET /stockade-pinned/-/stockade-pinned-1.0.0.tgz']);
  const second = await stockade('run', '--policy', policy);
  assert.equal(second.stdout, 'pinned 1.0.0 runs\n', second.stderr);
});

test('a registry serving another tarball for the pinned version is refused before anything runs', async () => {
  const good = published.get('1.0.0') as Buffer;
  const evil = pack('1.0.0', 'tampered code runs');
  published.set('1.0.0', evil);
  try {
    const r = await stockade('run', '--policy', policy);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.ok(
      r.stderr.endsWith(
        `stockade: stockade-pinned@1.0.0 from the registry is not the pinned package: its tarball is ${integrity(evil)}, the pin is ${integrity(good)}; not starting it (if the change is expected: stockade update POLICY)\n`,
      ),
      r.stderr,
    );
  } finally {
    published.set('1.0.0', good);
  }
});

test('update moves the pin to a new version, showing the change', async () => {
  published.set('1.0.1', pack('1.0.1', 'pinned 1.0.1 runs'));
  latest = '1.0.1';
  const u = await stockade('update', policy);
  assert.equal(u.status, 0, u.stderr);
  assert.match(u.stdout, /^stockade update: stockade-pinned 1\.0\.0 -> 1\.0\.1\n/);
  assert.equal((await stockade('update', policy)).stdout, 'stockade update: stockade-pinned is pinned to 1.0.1 already\n');
  const r = await stockade('run', '--policy', policy);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'pinned 1.0.1 runs\n');
});
