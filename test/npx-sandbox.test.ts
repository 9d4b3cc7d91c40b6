// `npx -y` from a cold cache through the egress proxy, with the node profile: the sandboxed npm
// downloads a package from a registry (a local stand-in named registry.test, so nothing leaves
// this machine), installs it into the profile's private cache and runs it.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { repoRoot, sharedTempDir } from './helpers';

let dir: string;
let registry: http.Server;
let port: number;
const requests: string[] = [];

before(async () => {
  dir = sharedTempDir('npx');
  const pkg = path.join(dir, 'src', 'package');
  fs.mkdirSync(pkg, { recursive: true });
  fs.writeFileSync(
    path.join(pkg, 'package.json'),
    JSON.stringify({ name: 'stockade-hello', version: '1.0.0', bin: { 'stockade-hello': 'cli.js' } }),
  );
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the script's own template literal
  fs.writeFileSync(path.join(pkg, 'cli.js'), '#!/usr/bin/env node\nconsole.log(`hello from npx as uid ${process.getuid()}`);\n', {
    mode: 0o755,
  });
  const tarball = path.join(dir, 'stockade-hello-1.0.0.tgz');
  execFileSync('tar', ['-czf', tarball, '-C', path.join(dir, 'src'), 'package']);
  const bytes = fs.readFileSync(tarball);
  registry = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.url === '/stockade-hello') {
      const base = `http://registry.test:${port}`;
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          name: 'stockade-hello',
          'dist-tags': { latest: '1.0.0' },
          versions: {
            '1.0.0': {
              name: 'stockade-hello',
              version: '1.0.0',
              bin: { 'stockade-hello': 'cli.js' },
              dist: {
                tarball: `${base}/stockade-hello/-/stockade-hello-1.0.0.tgz`,
                shasum: createHash('sha1').update(bytes).digest('hex'),
                integrity: `sha512-${createHash('sha512').update(bytes).digest('base64')}`,
              },
            },
          },
        }),
      );
    } else if (req.url === '/stockade-hello/-/stockade-hello-1.0.0.tgz') {
      res.end(bytes);
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
  port = (registry.address() as AddressInfo).port;
});

after(() => {
  registry.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('npx -y runs a package fetched through the proxy into the profile cache, from a cold cache', async () => {
  // A fresh HOME for the launcher: the profile's per-command cache (~/.cache/stockade) is cold.
  const home = path.join(dir, 'home');
  fs.mkdirSync(home, { mode: 0o755 });
  const child = spawn(
    process.execPath,
    [
      path.join(repoRoot, 'bin', 'stockade.js'),
      'run',
      '--profile',
      'node',
      '--allow-net',
      `registry.test:${port}`,
      '--resolve',
      `registry.test:${port}:127.0.0.1`,
      '--env',
      `npm_config_registry=http://registry.test:${port}/`,
      '--',
      'npx',
      '-y',
      'stockade-hello',
    ],
    { env: { PATH: process.env.PATH, HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise((resolve) => child.on('close', resolve));
  assert.equal(code, 0, stderr);
  assert.equal(stdout, 'hello from npx as uid 65534\n');
  // npx reads the packument once to resolve and once to install.
  assert.deepEqual([...new Set(requests)], ['GET /stockade-hello', 'GET /stockade-hello/-/stockade-hello-1.0.0.tgz']);
  const caches = fs.readdirSync(path.join(home, '.cache', 'stockade'));
  assert.equal(caches.length, 1);
  assert.match(caches[0], /^npm-[0-9a-f]+$/);
});
