// The malformed-policy corpus: every file in test/fixtures/policies/bad/ must fail with exactly
// the errors in its .expected sibling (one issue per line, in order; a line ending in '...'
// matches by prefix, for parser messages that differ between Node versions).
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { describe, it } from 'node:test';
import { loadPolicy, PolicyError } from '../lib/policy';

const dir = join(__dirname, '..', '..', 'test', 'fixtures', 'policies', 'bad');

function issuesOf(file: string): string[] {
  try {
    loadPolicy(file);
  } catch (err) {
    assert.ok(err instanceof PolicyError, `${file}: expected a PolicyError, got ${err}`);
    assert.equal(err.file, file);
    assert.equal(err.code, 'ERR_STOCKADE_POLICY');
    return err.issues.map((i) => i.message);
  }
  assert.fail(`${basename(file)} was accepted`);
}

describe('malformed policies', () => {
  const files = readdirSync(dir).filter((f) => ['.json', '.yaml', '.yml'].includes(extname(f)));
  it('the corpus is there', () => assert.ok(files.length >= 30, `only ${files.length} files in ${dir}`));
  for (const f of files) {
    it(f, () => {
      const expected = readFileSync(join(dir, `${basename(f, extname(f))}.expected`), 'utf8')
        .trimEnd()
        .split('\n');
      const actual = issuesOf(join(dir, f));
      assert.equal(actual.length, expected.length, `issues:\n${actual.join('\n')}`);
      expected.forEach((e, i) => {
        if (e.endsWith('...')) assert.ok(actual[i].startsWith(e.slice(0, -3)), `${actual[i]}\n  should start with\n${e}`);
        else assert.equal(actual[i], e);
      });
    });
  }

  it('a huge file is refused before parsing, with its size', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'stockade-policy-'));
    try {
      const file = join(tmp, 'huge.json');
      writeFileSync(file, `{"env":{"X":"${'a'.repeat(3 * 1024 * 1024)}"}}`);
      assert.deepEqual(issuesOf(file), ['the file is 3.0 MiB; a policy may be at most 1 MiB (is this the right file?)']);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('a missing file names the file and the errno code', () => {
    const [msg] = issuesOf('/nonexistent/policy.json');
    assert.match(msg, /^cannot read the policy file: ENOENT/);
  });
});
