import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../lib/cli/errors';
import { flagsToPolicy, mergeFlags, parseRunArgs } from '../lib/cli/flags';
import type { Policy, PolicyError } from '../lib/policy';
import { parseSecretSpec } from '../lib/secrets/spec';

describe('stockade run flags', () => {
  it('parses every flag into RunFlags, the command after --', () => {
    const { flags, policyFile } = parseRunArgs([
      '--ro',
      '/usr',
      '--ro',
      '/opt',
      '--rw',
      '/data',
      '--env',
      'A=1',
      '--env',
      'B',
      '--cwd',
      '/data',
      '--allow-net',
      'api.github.com',
      '--resolve',
      'api.github.com:443:127.0.0.1',
      '--secret',
      'T@api.github.com',
      '--upstream-ca',
      '/ca.pem',
      '--tools',
      'a,b',
      '--policy',
      '/p.json',
      '--audit',
      '/a.jsonl',
      '--verbose',
      '--hostname',
      'h',
      '--memory',
      '1g',
      '--pids',
      '10',
      '--cpu',
      '5',
      '--open-files',
      '64',
      '--timeout',
      '30',
      '--tmp-size',
      '16m',
      '--home',
      'tmpfs',
      '--profile',
      'node',
      '--',
      'node',
      'server.js',
      '--ro',
      'not-a-flag',
    ]);
    assert.equal(policyFile, '/p.json');
    assert.deepEqual(flags.command, ['node', 'server.js', '--ro', 'not-a-flag']);
    assert.deepEqual(flags.ro, ['/usr', '/opt']);
    assert.equal(flags.openFiles, '64');
    assert.equal(flags.verbose, true);
    // Every parsed flag is understood by the policy layer.
    const p = flagsToPolicy(flags);
    assert.deepEqual(p.limits, { memory: '1g', pids: 10, cpu: 5, openFiles: 64, timeout: 30 });
    assert.deepEqual(p.mcp, { tools: ['a', 'b'] });
  });

  it('rejects unknown flags and stray arguments with a UsageError', () => {
    assert.throws(() => parseRunArgs(['--rox', '/usr', '--', 'x']), UsageError);
    assert.throws(() => parseRunArgs(['node', 'x']), UsageError);
    assert.throws(() => parseRunArgs(['--ro', '/usr']), /nothing to run/);
    assert.deepEqual(parseRunArgs(['--policy', 'p.yaml']), { flags: {}, policyFile: 'p.yaml' });
  });
});

// From lib/policy's tests, with the flag model that moved to lib/cli/flags.ts.
describe('flags to a policy, and over a policy file', () => {
  it('turns flags into a policy, resolving relative flag paths against the cwd', () => {
    const p = flagsToPolicy(
      {
        ro: ['data', '/usr'],
        rw: ['/tmp/out'],
        env: ['DEBUG=1', 'HOME_DIR=', 'TERM'],
        allowNet: ['api.github.com', '*.npmjs.org:443'],
        resolve: ['api.github.com:443:127.0.0.1'],
        secret: ['GITHUB_TOKEN@api.github.com:Authorization=token {secret}'],
        tools: ['echo,get-sum', ' add '],
        memory: '512m',
        pids: '64',
        cpu: '10',
        openFiles: '256',
        timeout: '1.5',
        tmpSize: '32m',
        home: 'state',
        hostname: 'box',
        profile: 'node',
        cwd: '/work',
        upstreamCa: ['ca.pem'],
        audit: 'audit.jsonl',
        verbose: true,
        command: ['node', 'server.js'],
      },
      '/home/me',
    );
    assert.deepEqual(p, {
      command: ['node', 'server.js'],
      profile: 'node',
      filesystem: { readOnly: ['/home/me/data', '/usr'], readWrite: ['/tmp/out'], home: '/home/me/state', tmpSize: '32m' },
      network: { allow: ['api.github.com', '*.npmjs.org:443'], resolve: ['api.github.com:443:127.0.0.1'] },
      env: { DEBUG: '1', HOME_DIR: '', TERM: true },
      cwd: '/work',
      secrets: [{ name: 'GITHUB_TOKEN', hosts: ['api.github.com'], inject: { header: 'Authorization', format: 'token {secret}' } }],
      upstreamCa: ['/home/me/ca.pem'],
      mcp: { tools: ['echo', 'get-sum', 'add'] },
      audit: '/home/me/audit.jsonl',
      verbose: true,
      hostname: 'box',
      limits: { memory: '512m', pids: 64, cpu: 10, openFiles: 256, timeout: 1.5 },
    });
  });

  it('names the flag in errors', () => {
    assert.throws(
      () => flagsToPolicy({ allowNet: ['*bad.com'], pids: 'many', net: undefined, cwd: 'rel' }),
      (err: PolicyError) => {
        assert.deepEqual(
          err.issues.map((i) => i.message),
          [
            '--allow-net: expected a host pattern (example.com, *.example.com, example.com:8443, 10.0.0.0/8), found "*bad.com": a wildcard must be the whole first label, as in `*.example.com` (or `:*` for every port)',
            '--cwd: expected an absolute path, found "rel": the path is relative; absolute paths only',
            '--pids: expected a positive integer, found the string "many"',
          ],
        );
        return true;
      },
    );
    assert.throws(() => flagsToPolicy({ net: 'none', allowNet: ['a.com'] }), /--net none and --allow-net contradict/);
    assert.throws(() => flagsToPolicy({ net: 'proxy' }), /--net: expected "none" or "host" .*found the string "proxy"/);
    assert.throws(() => flagsToPolicy({ secret: ['TOKEN'] }), /--secret 'TOKEN': expected NAME@HOST/);
  });

  it('merges flags over a policy: flags win', () => {
    const policy: Policy = {
      command: ['node', 'old.js'],
      args: ['--old'],
      network: 'none',
      filesystem: { readOnly: ['/a'] },
      limits: { memory: '1g' },
      env: { X: '1' },
      mcp: { tools: ['echo'] },
    };
    const merged = mergeFlags(policy, {
      ro: ['/b'],
      allowNet: ['a.com'],
      memory: '2g',
      env: ['X=2'],
      tools: ['add'],
      command: ['node', 'new.js'],
    });
    assert.deepEqual(merged, {
      command: ['node', 'new.js'],
      network: { allow: ['a.com'] },
      filesystem: { readOnly: ['/a', '/b'] },
      limits: { memory: '2g' },
      env: { X: '2' },
      mcp: { tools: ['echo', 'add'] },
    });
    assert.deepEqual(mergeFlags(policy, {}), policy, 'no flags, no change');
    assert.equal(mergeFlags({ network: { allow: ['a.com'] } }, { net: 'host' }).network, 'host');
  });

  it('parses --secret with ports, several hosts and a header', () => {
    assert.deepEqual(parseSecretSpec('T@a.com'), { name: 'T', hosts: ['a.com'] });
    assert.deepEqual(parseSecretSpec('T@a.com:8443,*.b.com:X-Api-Key={secret}'), {
      name: 'T',
      hosts: ['a.com:8443', '*.b.com'],
      inject: { header: 'X-Api-Key', format: '{secret}' },
    });
    assert.deepEqual(parseSecretSpec('T@a.com:Authorization=Bearer {secret}').inject, {
      header: 'Authorization',
      format: 'Bearer {secret}',
    });
  });
});
