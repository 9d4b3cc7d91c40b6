import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sh } from './helpers';

test('a sandbox runs sh and reports its exit code', async () => {
  const r = await sh('echo hello; exit 3');
  assert.equal(r.stdout, 'hello\n');
  assert.equal(r.code, 3);
  assert.equal(r.signal, null);
});
