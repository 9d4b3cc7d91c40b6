// `stockade wrap` pins the npx and uvx servers it wraps: it asks the registry (a real HTTP
// stand-in on 127.0.0.1 serving npm packuments and PyPI's JSON API, with tarballs and files
// built here) for the exact version and digest, records package: { name, version, integrity }
// in each policy it writes (approved with it), and says so; a package it cannot pin is a
// warning naming why. `stockade update CONFIG NAME` then moves one server's pin, showing the
// version change, and re-approves.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { approvalFiles, policyDigest, readApproval } from '../lib/approval';
import { repoRoot, sharedTempDir } from './helpers';

const launcher = path.join(repoRoot, 'bin', 'stockade.js');
const integrity = (b: Buffer) => `sha512-${createHash('sha512').update(b).digest('base64')}`;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('wrap pins npx and uvx servers; update CONFIG NAME moves a pin', () => {
  let dir: string;
  let home: string;
  let registry: http.Server;
  let port: number;
  const tarballs = new Map<string, Buffer>();
  let latest = '1.0.0';
  const wheel = Buffer.from('a wheel stand-in: wrap only hashes what the index advertises');

  function pack(version: string): Buffer {
    const src = path.join(dir, `src-${version}`, 'package');
    fs.mkdirSync(src, { recursive: true });
    fs.writeFileSync(path.join(src, 'package.json'), JSON.stringify({ name: 'stockade-pinned', version, bin: { x: 'cli.js' } }));
    fs.writeFileSync(path.join(src, 'cli.js'), `console.log(${JSON.stringify(version)});\n`);
    const out = path.join(dir, `t-${version}.tgz`);
    execFileSync('tar', ['-czf', out, '-C', path.dirname(src), 'package']);
    return fs.readFileSync(out);
  }

  before(async () => {
    dir = sharedTempDir('wrap-pin');
    home = path.join(dir, 'home');
    fs.mkdirSync(home, { mode: 0o755 });
    tarballs.set('1.0.0', pack('1.0.0'));
    registry = http.createServer((req, res) => {
      const json = (v: unknown) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(v));
      };
      if (req.url === '/stockade-pinned') {
        const versions = Object.fromEntries(
          [...tarballs].map(([v, b]) => [
            v,
            { name: 'stockade-pinned', version: v, dist: { tarball: `http://127.0.0.1:${port}/t/${v}.tgz`, integrity: integrity(b) } },
          ]),
        );
        return json({ name: 'stockade-pinned', 'dist-tags': { latest }, versions });
      }
      if (req.url === '/pypi/stockade-pinned-py/json') {
        return json({
          info: { name: 'stockade-pinned-py', version: '0.3.0' },
          urls: [
            { filename: 'stockade_pinned_py-0.3.0.tar.gz', packagetype: 'sdist', digests: { sha256: sha256(Buffer.from('sdist')) } },
            { filename: 'stockade_pinned_py-0.3.0-py3-none-any.whl', packagetype: 'bdist_wheel', digests: { sha256: sha256(wheel) } },
          ],
        });
      }
      if (req.url === '/pypi/sdist-only/json') {
        return json({
          info: { name: 'sdist-only', version: '2.0.0' },
          urls: [{ filename: 'sdist-only-2.0.0.tar.gz', packagetype: 'sdist', digests: { sha256: sha256(Buffer.from('x')) } }],
        });
      }
      res.statusCode = 404;
      json({ error: 'not found' });
    });
    await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
    port = (registry.address() as AddressInfo).port;
  });
  after(() => {
    registry.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function stockade(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      npm_config_registry: `http://127.0.0.1:${port}/`,
      npm_config_cache: path.join(home, '.npm'),
      PIP_INDEX_URL: `http://127.0.0.1:${port}/simple`,
    };
    const child = spawn(process.execPath, [launcher, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
  }

  function config(name: string): string {
    const d = path.join(dir, name);
    fs.mkdirSync(d);
    const file = path.join(d, 'claude_desktop_config.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        mcpServers: {
          npm: { command: 'npx', args: ['-y', 'stockade-pinned'] },
          py: { command: 'uvx', args: ['stockade-pinned-py', '--flag'] },
          sdist: { command: 'uvx', args: ['sdist-only'] },
          gone: { command: 'npx', args: ['-y', 'no-such-package'] },
        },
      }),
    );
    return file;
  }
  const policyOf = (file: string, name: string) =>
    JSON.parse(fs.readFileSync(path.join(path.dirname(file), 'stockade', `${name}.policy.json`), 'utf8'));

  test('wrap records the registry pin of each npx/uvx server it wraps, approved with the policy', async () => {
    const file = config('pinned');
    const r = await stockade('wrap', file);
    assert.equal(r.status, 0, r.stderr);
    const npmPin = { name: 'stockade-pinned', version: '1.0.0', integrity: integrity(tarballs.get('1.0.0') as Buffer) };
    const pyPin = {
      name: 'stockade-pinned-py',
      version: '0.3.0',
      integrity: `sha256:${sha256(wheel)}`,
      file: 'stockade_pinned_py-0.3.0-py3-none-any.whl',
    };
    assert.deepEqual(policyOf(file, 'npm').package, npmPin);
    assert.deepEqual(policyOf(file, 'py').package, pyPin);
    assert.equal(policyOf(file, 'sdist').package, undefined);
    assert.equal(policyOf(file, 'gone').package, undefined);
    const npmPolicy = path.join(path.dirname(file), 'stockade', 'npm.policy.json');
    assert.ok(
      r.stdout.includes(`  pinned stockade-pinned 1.0.0 (${npmPin.integrity}); move it with: stockade update ${file} npm\n`),
      r.stdout,
    );
    assert.match(
      r.stdout,
      / {2}warning: not pinned: sdist-only 2\.0\.0 has no pure-Python wheel on http:\/\/127\.0\.0\.1:\d+\/simple; stockade pins wheels that install without running their code, so pin it by hand or leave it unpinned; to pin it later: stockade update .*claude_desktop_config\.json sdist\n/,
    );
    assert.match(
      r.stdout,
      / {2}warning: not pinned: npm view no-such-package@latest failed: .*; to pin it later: stockade update .*claude_desktop_config\.json gone\n/,
    );
    // The approval wrap writes covers the pin.
    const approval = readApproval(approvalFiles(npmPolicy));
    assert.ok(approval?.grants.entries.includes(`package stockade-pinned@1.0.0 ${npmPin.integrity}`));
  });

  test('update CONFIG NAME moves that server pin, shows the change and re-approves', async () => {
    const file = path.join(dir, 'pinned', 'claude_desktop_config.json');
    tarballs.set('1.1.0', pack('1.1.0'));
    latest = '1.1.0';
    const npmPolicy = path.join(path.dirname(file), 'stockade', 'npm.policy.json');
    const u = await stockade('update', file, 'npm');
    assert.equal(u.status, 0, u.stderr);
    assert.equal(
      u.stdout,
      `stockade update: stockade-pinned 1.0.0 -> 1.1.0\n  integrity ${integrity(tarballs.get('1.1.0') as Buffer)}\nstockade update: recorded in ${npmPolicy} (and approved)\n`,
    );
    const policy = JSON.parse(fs.readFileSync(npmPolicy, 'utf8'));
    assert.equal(policy.package.version, '1.1.0');
    assert.equal(readApproval(approvalFiles(npmPolicy))?.policyDigest, policyDigest(policy));
    const missing = await stockade('update', file, 'nope');
    assert.equal(missing.status, 2);
    assert.equal(missing.stderr, `stockade update: ${file} has no server named "nope"\n`);
  });

  test('--no-pin asks no registry and records no pin', async () => {
    const file = config('nopin');
    const r = await stockade('wrap', '--no-pin', file);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(policyOf(file, 'npm').package, undefined);
    assert.ok(!r.stdout.includes('pinned') && !r.stdout.includes('not pinned'), r.stdout);
  });
});
