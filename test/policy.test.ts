// Policies that are valid: loading, schema agreement with ajv, merging rules, profiles and
// conversion to SandboxOptions.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { describe, it } from 'node:test';
import Ajv2020 from 'ajv/dist/2020';
import {
  closest,
  effectivePolicy,
  guessProfile,
  loadPolicy,
  mergePolicies,
  nodeProfile,
  type Policy,
  PolicyError,
  parsePolicyText,
  parseSize,
  policySchema,
  policyToOptions,
  pythonProfile,
  toolMatches,
  validatePolicy,
} from '../lib/policy';
import { FORMATS, NUMBER_FORMATS } from '../lib/policy/formats';
import { which } from '../lib/policy/profiles';
import { repoRoot } from './helpers';
import { needs } from './helpers/tools';

const fixtures = join(__dirname, '..', '..', 'test', 'fixtures', 'policies');

describe('loading', () => {
  it('reads the same policy from JSON and YAML', () => {
    const json = loadPolicy(join(fixtures, 'good', 'github.json'));
    const yaml = loadPolicy(join(fixtures, 'good', 'github.yaml'));
    assert.deepEqual(yaml, json);
    assert.deepEqual(json.mcp, { tools: ['get_*', 'search_repositories'] });
  });

  it('decides the format by content when the extension says nothing', () => {
    assert.deepEqual(parsePolicyText('{"seccomp":"default"}', 'auto'), { seccomp: 'default' });
    assert.deepEqual(parsePolicyText('seccomp: default\n', 'auto'), { seccomp: 'default' });
    const tmp = mkdtempSync(join(tmpdir(), 'stockade-policy-'));
    try {
      writeFileSync(join(tmp, 'policy'), 'network: none\n');
      assert.deepEqual(loadPolicy(join(tmp, 'policy')), { network: 'none' });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('lists every issue in a PolicyError message, naming the file', () => {
    const err = new PolicyError(
      [
        { path: '/a', message: '/a: x' },
        { path: '/b', message: '/b: y' },
      ],
      'p.json',
    );
    assert.equal(err.message, 'invalid policy p.json:\n  /a: x\n  /b: y');
  });
});

describe('schema', () => {
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  for (const [name, [check]] of Object.entries(FORMATS)) {
    if (NUMBER_FORMATS.has(name)) ajv.addFormat(name, { type: 'number', validate: (v: number) => check(v) === null });
    else ajv.addFormat(name, { type: 'string', validate: (v: string) => check(v) === null });
  }
  const schemaAccepts = ajv.compile(policySchema());

  it('is a valid draft 2020-12 schema with a description on every property', () => {
    const missing: string[] = [];
    const visit = (node: Record<string, unknown>, path: string) => {
      for (const [key, sub] of Object.entries((node.properties ?? {}) as Record<string, Record<string, unknown>>)) {
        if (typeof sub.description !== 'string') missing.push(`${path}/${key}`);
        visit(sub, `${path}/${key}`);
        for (const alt of (sub.anyOf ?? []) as Record<string, unknown>[]) visit(alt, `${path}/${key}`);
        if (sub.items) visit(sub.items as Record<string, unknown>, `${path}/${key}/*`);
      }
    };
    visit(policySchema(), '');
    assert.deepEqual(missing, []);
  });

  it('agrees with the validator on every fixture', () => {
    for (const kind of ['good', 'bad']) {
      for (const f of readdirSync(join(fixtures, kind)).filter((n) => ['.json', '.yaml'].includes(extname(n)))) {
        let doc: unknown;
        try {
          doc = parsePolicyText(readFileSync(join(fixtures, kind, f), 'utf8'), extname(f) === '.json' ? 'json' : 'yaml');
        } catch {
          continue; // syntax errors never reach the schema
        }
        const ours = validatePolicy(doc).length === 0;
        const semantic = ['secret-network-none.json', 'secret-in-env.yaml'].includes(f);
        assert.equal(schemaAccepts(doc), kind === 'good' || semantic, `ajv on ${kind}/${f}`);
        assert.equal(ours, kind === 'good', `validatePolicy on ${kind}/${f}`);
      }
    }
  });

  it('suggests the closest key only when it is plausibly a typo', () => {
    assert.equal(closest('filesystm', ['filesystem', 'network']), 'filesystem');
    assert.equal(closest('readonly', ['readOnly', 'readWrite']), 'readOnly');
    assert.equal(closest('banana', ['filesystem', 'network']), undefined);
  });
});

describe('schema location', () => {
  // The bundled CLI (dist/lib/cli.js) read ../../../stockade.schema.json first: from an installed
  // package that is the node_modules directory holding it, where any other package can write.
  it('the CLI reads the schema of its own package, not one planted in the directory above it', () => {
    const base = mkdtempSync(join(tmpdir(), 'stockade-schema-'));
    try {
      const pkg = join(base, 'stockade-sandbox');
      for (const part of [
        'bin',
        'dist/lib',
        'build/Release/stockade.node',
        'build/Release/stockade-init',
        'package.json',
        'stockade.schema.json',
      ])
        cpSync(join(repoRoot, part), join(pkg, part), { recursive: true });
      symlinkSync(join(repoRoot, 'node_modules'), join(pkg, 'node_modules'));
      writeFileSync(join(base, 'stockade.schema.json'), '{}'); // a schema that lets everything through
      const policy = join(base, 'policy.json');
      writeFileSync(policy, '{"bogus": 1}');
      const r = spawnSync(process.execPath, [join(pkg, 'bin', 'stockade.js'), 'run', '--policy', policy, '--', '/bin/true'], {
        encoding: 'utf8',
      });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /unknown key `\/bogus`/);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});

describe('formats', () => {
  it('parses sizes in binary units', () => {
    assert.equal(parseSize('64m'), 64 * 1024 * 1024);
    assert.equal(parseSize('1.5G'), 1.5 * 1024 ** 3);
    assert.equal(parseSize('4KiB'), 4096);
    assert.equal(parseSize(100), 100);
    assert.throws(() => parseSize('12q'), /invalid size "12q"/);
  });

  it('matches tool patterns with * only', () => {
    assert.ok(toolMatches('get_*', 'get_issue'));
    assert.ok(toolMatches('*', 'anything'));
    assert.ok(!toolMatches('get_*', 'xget_issue'));
    assert.ok(!toolMatches('a.b', 'aXb'), '. is literal');
    assert.ok(toolMatches('echo', 'echo') && !toolMatches('echo', 'echo2'));
  });
});

describe('merging', () => {
  it('appends lists, replaces scalars, merges objects, replaces the command whole', () => {
    const lower: Policy = {
      command: ['node', 'a.js'],
      args: ['--x'],
      filesystem: { readOnly: ['/usr', '/opt'], home: 'tmpfs' },
      env: { A: '1', B: '2' },
      limits: { memory: '1g', pids: 10 },
      network: { allow: ['a.com'] },
      secrets: [
        { name: 'T', hosts: ['a.com'] },
        { name: 'U', hosts: ['b.com'] },
      ],
    };
    const upper: Policy = {
      command: ['python3', 'b.py'],
      filesystem: { readOnly: ['/opt', '/data'], home: '/home/me/state' },
      env: { B: 'two', C: true },
      limits: { memory: '2g' },
      network: { allow: ['b.com'] },
      secrets: [{ name: 'T', hosts: ['c.com'] }],
    };
    assert.deepEqual(mergePolicies(lower, upper), {
      command: ['python3', 'b.py'],
      filesystem: { readOnly: ['/usr', '/opt', '/data'], home: '/home/me/state' },
      env: { A: '1', B: 'two', C: true },
      limits: { memory: '2g', pids: 10 },
      network: { allow: ['a.com', 'b.com'] },
      secrets: [
        { name: 'U', hosts: ['b.com'] },
        { name: 'T', hosts: ['c.com'] },
      ],
    });
  });

  it("a network string on top replaces the whole network; an allow list on top of 'none' replaces it", () => {
    assert.equal(mergePolicies({ network: { allow: ['a.com'] } }, { network: 'none' }).network, 'none');
    assert.deepEqual(mergePolicies({ network: 'none' }, { network: { allow: ['a.com'] } }).network, { allow: ['a.com'] });
    assert.deepEqual(mergePolicies({ network: 'host' }, {}).network, 'host');
  });
});

describe('profiles', () => {
  const cacheRoot = '/nonexistent-cache-root';

  it('node: the real node prefix read-only, a private npm cache, HOME on tmpfs', () => {
    const { fragment, mkdirs } = nodeProfile({ command: ['node', 'server.js'], cacheRoot });
    const prefix = dirname(dirname(realpathSync(process.execPath)));
    assert.ok(fragment.filesystem?.readOnly?.includes(prefix), `${prefix} in ${fragment.filesystem?.readOnly}`);
    assert.equal(fragment.filesystem?.home, 'tmpfs');
    assert.equal(mkdirs.length, 1);
    assert.ok(mkdirs[0].startsWith(`${cacheRoot}/npm-`));
    assert.deepEqual(fragment.filesystem?.readWrite, mkdirs);
    assert.equal(fragment.env?.npm_config_cache, mkdirs[0]);
    assert.ok(String(fragment.env?.PATH).startsWith(`${dirname(realpathSync(process.execPath))}:`));
    assert.equal(fragment.network, undefined, 'plain node gets no network');
  });

  it('node: npx may reach the registry, and each command has its own cache', () => {
    const a = nodeProfile({ command: ['npx', '-y', 'server-a'], cacheRoot });
    const b = nodeProfile({ command: ['npx', '-y', 'server-b'], cacheRoot });
    assert.deepEqual(a.fragment.network, { allow: ['registry.npmjs.org'] });
    assert.notEqual(a.mkdirs[0], b.mkdirs[0]);
    assert.deepEqual(nodeProfile({ command: ['npx', '-y', 'server-a'], cacheRoot }).mkdirs, a.mkdirs, 'stable');
  });

  it('python: the interpreter prefix read-only, uv and pip caches, PyPI for uvx', { skip: needs('python3') }, () => {
    const python = which('python3');
    assert.ok(python, 'this test needs python3 on PATH');
    const { fragment, mkdirs } = pythonProfile({ command: ['uvx', 'mcp-server-fetch'], cacheRoot });
    const out = require('node:child_process')
      .execFileSync(python, ['-c', 'import sys; print(sys.base_prefix)'], { encoding: 'utf8' })
      .trim() as string;
    assert.ok(fragment.filesystem?.readOnly?.includes(out), `${out} in ${fragment.filesystem?.readOnly}`);
    assert.deepEqual(fragment.filesystem?.readWrite, mkdirs);
    assert.equal(fragment.env?.UV_CACHE_DIR, mkdirs[0]);
    assert.equal(fragment.env?.PIP_CACHE_DIR, mkdirs[1]);
    assert.deepEqual(fragment.network, { allow: ['pypi.org', 'files.pythonhosted.org'] });
    assert.equal(pythonProfile({ command: ['python3', 'server.py'], cacheRoot }).fragment.network, undefined);
  });

  it('is merged under the policy: the user wins', () => {
    const { policy, mkdirs } = effectivePolicy(
      { profile: 'node', command: ['npx', '-y', 's'], network: 'none', filesystem: { readOnly: ['/data'] }, env: { PATH: '/mine' } },
      { cacheRoot },
    );
    assert.equal(policy.network, 'none');
    assert.ok(policy.filesystem?.readOnly?.includes('/data'));
    assert.ok(policy.filesystem?.readOnly?.includes('/usr') || !existsSync('/usr'));
    assert.equal(policy.env?.PATH, '/mine');
    assert.equal(mkdirs.length, 1);
    assert.ok(!existsSync(cacheRoot), 'effectivePolicy creates nothing');
  });

  it('guesses a profile from the command', () => {
    assert.equal(guessProfile('npx'), 'node');
    assert.equal(guessProfile('/usr/local/bin/node'), 'node');
    assert.equal(guessProfile('uvx'), 'python');
    assert.equal(guessProfile('python3.12'), 'python');
    assert.equal(guessProfile('docker'), undefined);
  });
});

describe('policyToOptions', () => {
  it('converts units, binds a persistent home, adds secret hosts to the allow list', () => {
    const launch = policyToOptions({
      command: ['node', 'server.js'],
      args: ['--verbose'],
      filesystem: { readOnly: ['/srv'], home: '/home/me/.local/state/srv', tmpSize: '32m' },
      network: { allow: ['registry.npmjs.org'] },
      secrets: [{ name: 'T', hosts: ['api.example.com'] }],
      limits: { memory: '512m', fileSize: '1m', timeout: 2.5, pids: 32 },
      hostname: 'box',
      cwd: '/srv',
      upstreamCa: ['/etc/ca.pem'],
      mcp: { tools: ['echo'] },
      audit: '/var/log/stockade.jsonl',
    });
    assert.equal(launch.command, 'node');
    assert.deepEqual(launch.args, ['server.js', '--verbose']);
    assert.deepEqual(launch.tools, ['echo']);
    assert.equal(launch.home, '/home/me/.local/state/srv');
    assert.equal(launch.audit, '/var/log/stockade.jsonl');
    assert.deepEqual(launch.options, {
      filesystem: { home: '/home/me/.local/state/srv', readOnly: ['/srv'], tmpSize: '32m' },
      env: {},
      cwd: '/srv',
      hostname: 'box',
      upstreamCa: ['/etc/ca.pem'],
      secrets: [{ name: 'T', hosts: ['api.example.com'] }],
      network: { allow: ['registry.npmjs.org', 'api.example.com'] },
      limits: { memory: 512 * 1024 * 1024, fileSize: 1024 * 1024, wallTime: 2500, pids: 32 },
    });
  });

  it('a tmpfs home by default; no tools means the tool layer is off', () => {
    const launch = policyToOptions({ command: ['cat'] });
    assert.equal(launch.options.filesystem?.home, 'tmpfs');
    assert.equal(launch.options.env?.HOME, undefined);
    assert.equal(launch.tools, undefined);
    assert.equal(launch.options.network, undefined);
  });

  it('creates the profile cache directories, private to the user', () => {
    const cacheRoot = mkdtempSync(join(tmpdir(), 'stockade-cache-'));
    try {
      const launch = policyToOptions({ profile: 'node', command: ['npx', '-y', 'x'] }, { cacheRoot });
      const cache = launch.options.filesystem?.readWrite?.[0] ?? '';
      assert.ok(cache.startsWith(cacheRoot));
      assert.equal(statSync(cache).mode & 0o777, 0o700);
    } finally {
      rmSync(cacheRoot, { recursive: true, force: true });
    }
  });

  it('refuses a policy with no command', () => {
    assert.throws(() => policyToOptions({}), /no command to run/);
  });
});
