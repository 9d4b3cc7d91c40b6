import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { main } from '../lib/cli/check';
import { describeCliError } from '../lib/cli/errors';

const fixtures = join(__dirname, '..', '..', 'test', 'fixtures', 'policies');

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io = { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } };
  // As lib/cli/main.ts does: a thrown usage error is one line and its exit status.
  const code = await main(argv, io).catch((e: unknown) => {
    const { line, exitCode } = describeCliError('check', e);
    err += `${line}\n`;
    return exitCode;
  });
  return { code, out, err };
}

describe('stockade check', () => {
  it('prints the effective policy of a valid file and exits 0', async () => {
    const r = await run([join(fixtures, 'good', 'github.yaml')]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    const policy = JSON.parse(r.out);
    // The node profile is merged in: npx gets the registry, the user's hosts stay.
    assert.ok(policy.network.allow.includes('registry.npmjs.org'));
    assert.ok(policy.network.allow.includes('api.github.com'));
    assert.ok(policy.filesystem.readOnly.includes('/srv/data'));
    assert.equal(policy.hostname, 'github-mcp');
  });

  it('exits 1 with every error on stderr for an invalid file', async () => {
    const file = join(fixtures, 'bad', 'limits.yaml');
    const r = await run([file]);
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.ok(r.err.startsWith(`stockade check: invalid policy ${file}:\n`));
    assert.match(r.err, /\/limits\/pids: expected a positive integer, found the number 0/);
    assert.match(r.err, /\/limits\/timeout: expected a positive number/);
  });

  it('exits 1 for a missing file', async () => {
    const r = await run(['/nonexistent.json']);
    assert.equal(r.code, 1);
    assert.match(r.err, /ENOENT/);
  });

  it('exits 2 on usage errors', async () => {
    assert.equal((await run([])).code, 2);
    assert.equal((await run(['a.json', 'b.json'])).code, 2);
    const r = await run(['--strict', 'a.json']);
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown option --strict/);
    assert.equal((await run(['--help'])).code, 0);
  });
});
