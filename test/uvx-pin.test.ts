// Pinned uvx servers (PyPI): `stockade update` pins `uvx PKG` to the wheel a PyPI stand-in serves
// (a real HTTP server on 127.0.0.1 with the JSON API and the simple API, named pypi.test inside
// the sandbox, serving real wheels built here), the launcher downloads it with pip, checks the
// wheel's sha256 before any of it is installed or run, installs it offline and runs its console
// script with the index out of reach. An index serving another wheel for the pinned version is
// refused, naming both digests; `stockade update` moves the pin deliberately.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pypiJsonApi, uvxPackage } from '../lib/cli/package-resolve';
import { repoRoot, sharedTempDir } from './helpers';
import { needs } from './helpers/tools';

const launcher = path.join(repoRoot, 'bin', 'stockade.js');
const NAME = 'stockade-pinned-py';
const MODULE = 'stockade_pinned_py';

// A wheel (PEP 427) with a console script, written by the system python's zipfile.
const BUILD_WHEEL = `
import sys, zipfile, hashlib, base64
out, ver, says = sys.argv[1], sys.argv[2], sys.argv[3]
m, di = '${MODULE}', '${MODULE}-' + ver + '.dist-info'
files = {
  m + '/__init__.py': ('def main():\\n    print(%r)\\n' % says).encode(),
  di + '/METADATA': ('Metadata-Version: 2.1\\nName: ${NAME}\\nVersion: ' + ver + '\\n').encode(),
  di + '/WHEEL': b'Wheel-Version: 1.0\\nGenerator: stockade-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n',
  di + '/entry_points.txt': b'[console_scripts]\\n${NAME} = ${MODULE}:main\\n',
}
record = ''
for k, v in files.items():
  h = base64.urlsafe_b64encode(hashlib.sha256(v).digest()).rstrip(b'=').decode()
  record += '%s,sha256=%s,%d\\n' % (k, h, len(v))
files[di + '/RECORD'] = (record + di + '/RECORD,,\\n').encode()
with zipfile.ZipFile(out, 'w') as z:
  for k, v in files.items():
    z.writestr(k, v)
`;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const fileOf = (version: string) => `${MODULE}-${version}-py3-none-any.whl`;

describe('uvx servers pinned to a PyPI wheel', { skip: needs('pip') }, () => {
  let dir: string;
  let home: string;
  let policy: string;
  let index: http.Server;
  let port: number;
  const requests: string[] = [];
  /** version -> the wheel the stand-in serves (and advertises the sha256 of). */
  const published = new Map<string, Buffer>();
  let latest = '1.0.0';
  let builds = 0;

  function wheel(version: string, says: string): Buffer {
    const out = path.join(dir, `w${builds++}.whl`);
    execFileSync('/usr/bin/python3', ['-c', BUILD_WHEEL, out, version, says]);
    return fs.readFileSync(out);
  }

  function release(version: string) {
    const bytes = published.get(version) as Buffer;
    return {
      info: { name: NAME, version },
      urls: [
        { filename: fileOf(version), packagetype: 'bdist_wheel', digests: { sha256: sha256(bytes) }, url: `/files/${fileOf(version)}` },
      ],
    };
  }

  before(async () => {
    dir = sharedTempDir('uvx-pin');
    home = path.join(dir, 'home');
    fs.mkdirSync(home, { mode: 0o755 });
    published.set('1.0.0', wheel('1.0.0', 'pinned py 1.0.0 runs'));
    index = http.createServer((req, res) => {
      const url = req.url ?? '';
      requests.push(`${req.method} ${url}`);
      const json = (v: unknown) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(v));
      };
      if (url === `/pypi/${NAME}/json`) return json(release(latest));
      const exact = new RegExp(`^/pypi/${NAME}/([^/]+)/json$`).exec(url);
      if (exact && published.has(exact[1])) return json(release(exact[1]));
      if (url === `/simple/${NAME}/`) {
        res.setHeader('content-type', 'text/html');
        const links = [...published].map(([v, b]) => `<a href="/files/${fileOf(v)}#sha256=${sha256(b)}">${fileOf(v)}</a>`);
        res.end(`<!DOCTYPE html><html><body>${links.join('\n')}</body></html>`);
        return;
      }
      const file = /^\/files\/(.+)$/.exec(url);
      const version = file ? [...published.keys()].find((v) => fileOf(v) === file[1]) : undefined;
      if (version) return res.end(published.get(version));
      res.statusCode = 404;
      res.end('not found');
    });
    await new Promise<void>((resolve) => index.listen(0, '127.0.0.1', resolve));
    port = (index.address() as AddressInfo).port;
    policy = path.join(dir, 'pinned-py.policy.json');
    fs.writeFileSync(
      policy,
      `${JSON.stringify(
        {
          command: ['uvx', NAME],
          profile: 'python',
          network: { allow: [`pypi.test:${port}`], resolve: [`pypi.test:${port}:127.0.0.1`] },
          env: { PIP_INDEX_URL: `http://pypi.test:${port}/simple`, PIP_TRUSTED_HOST: 'pypi.test' },
        },
        null,
        2,
      )}\n`,
    );
  });

  after(() => {
    index.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the CLI without blocking: the index stand-in lives in this process. */
  function stockade(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
    const env = { PATH: '/usr/bin:/bin', HOME: home, PIP_INDEX_URL: `http://127.0.0.1:${port}/simple` };
    const child = spawn(process.execPath, [launcher, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
  }

  test('update pins the wheel the index serves; the pinned server runs from the verified install', async () => {
    const u = await stockade('update', policy);
    assert.equal(u.status, 0, u.stderr);
    const pin = `sha256:${sha256(published.get('1.0.0') as Buffer)}`;
    assert.equal(u.stdout, `stockade update: ${NAME} (unpinned) -> 1.0.0\n  integrity ${pin}\nstockade update: recorded in ${policy}\n`);
    const doc = JSON.parse(fs.readFileSync(policy, 'utf8'));
    assert.deepEqual(doc.package, { name: NAME, version: '1.0.0', integrity: pin, file: fileOf('1.0.0') });
    requests.length = 0;
    const r = await stockade('run', '--policy', policy);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'pinned py 1.0.0 runs\n');
    // The download asked the simple index and fetched the wheel; the run phase asked nothing.
    assert.deepEqual([...new Set(requests)], [`GET /simple/${NAME}/`, `GET /files/${fileOf('1.0.0')}`]);
  });

  test('an index serving another wheel for the pinned version is refused before any of it runs', async () => {
    const good = published.get('1.0.0') as Buffer;
    const evil = wheel('1.0.0', 'tampered code runs');
    published.set('1.0.0', evil);
    try {
      const r = await stockade('run', '--policy', policy);
      assert.equal(r.status, 2);
      assert.equal(r.stdout, '');
      assert.ok(
        r.stderr.endsWith(
          `stockade: ${NAME} 1.0.0 from the index is not the pinned package: its wheel is sha256:${sha256(evil)}, the pin is sha256:${sha256(good)}; not starting it (if the change is expected: stockade update POLICY)\n`,
        ),
        r.stderr,
      );
    } finally {
      published.set('1.0.0', good);
    }
  });

  test('update moves the pin to a new version, showing the change', async () => {
    published.set('1.0.1', wheel('1.0.1', 'pinned py 1.0.1 runs'));
    latest = '1.0.1';
    const u = await stockade('update', policy);
    assert.equal(u.status, 0, u.stderr);
    assert.match(u.stdout, new RegExp(`^stockade update: ${NAME} 1\\.0\\.0 -> 1\\.0\\.1\\n`));
    assert.equal((await stockade('update', policy)).stdout, `stockade update: ${NAME} is pinned to 1.0.1 already\n`);
    const r = await stockade('run', '--policy', policy);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'pinned py 1.0.1 runs\n');
  });
});

describe('uvx commands and PyPI indexes', () => {
  test('the package argument of a uvx command', () => {
    assert.deepEqual(uvxPackage(['uvx', 'mcp-server-fetch', '--x']), {
      ecosystem: 'pypi',
      index: 1,
      name: 'mcp-server-fetch',
      range: 'latest',
    });
    assert.deepEqual(uvxPackage(['/usr/bin/uvx', '-q', 'a_b==1.2']), { ecosystem: 'pypi', index: 2, name: 'a_b', range: '1.2' });
    assert.deepEqual(uvxPackage(['uvx', 'pkg@3']), { ecosystem: 'pypi', index: 1, name: 'pkg', range: '3' });
    assert.equal(uvxPackage(['uvx', '--from', 'x', 'y']), undefined);
    assert.equal(uvxPackage(['uvx', 'x>=1']), undefined);
    assert.equal(uvxPackage(['npx', 'x']), undefined);
  });

  test('the JSON API beside a simple index', () => {
    assert.equal(pypiJsonApi('https://pypi.org/simple'), 'https://pypi.org/pypi');
    assert.equal(pypiJsonApi('https://pypi.org/simple/'), 'https://pypi.org/pypi');
    assert.equal(pypiJsonApi('http://127.0.0.1:8080/simple'), 'http://127.0.0.1:8080/pypi');
  });
});
