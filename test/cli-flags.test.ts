import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRunArgs, UsageError } from '../lib/cli/flags';
import { flagsToPolicy } from '../lib/policy';

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
