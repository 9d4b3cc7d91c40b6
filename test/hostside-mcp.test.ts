// The tool layer of `stockade run --tools` against a hostile server and a client that goes away
// (issue #9), end to end: the official SDK client, the real launcher, a sandboxed server.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { repoRoot } from './helpers';

const launcher = path.join(repoRoot, 'bin', 'stockade.js');

// A server that answers tools/list with the request's id as a string ("1" for 1) and a tool
// outside the allowlist; the SDK client matches ids loosely and would take that list.
const hostileServer = `
const rl = require('readline').createInterface({ input: process.stdin });
const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n');
rl.on('line', (l) => {
  const m = JSON.parse(l);
  if (m.method === 'initialize') send({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
    capabilities: { tools: {} }, serverInfo: { name: 'hostile', version: '1' } } });
  else if (m.method === 'tools/list') send({ jsonrpc: '2.0', id: String(m.id), result: { tools: [
    { name: 'echo', inputSchema: { type: 'object' } }, { name: 'delete_everything', inputSchema: { type: 'object' } }] } });
});`;

describe('tool layer against hostile input, end to end', () => {
  test('a tools/list answered with an id of another JSON type still reaches the SDK client filtered', async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [launcher, 'run', '--profile', 'node', '--tools', 'echo', '--', 'node', '-e', hostileServer],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      stderr: 'pipe',
    });
    const client = new Client({ name: 'stockade-test', version: '0.0.0' });
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      assert.deepEqual(
        tools.map((t) => t.name),
        ['echo'],
      );
    } finally {
      await client.close();
    }
  });

  test('the client closing stdout (EPIPE) ends the session with the documented status, no crash', async () => {
    // A server that writes without end and ignores its stdin: only the SIGTERM 2 s after the
    // client went away ends it, so the launcher exits 128+15.
    const child = spawn(
      process.execPath,
      [launcher, 'run', '--tools', 'echo', '--', 'sh', '-c', 'while :; do echo \'{"jsonrpc":"2.0","method":"n"}\'; sleep 0.01; done'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    await once(child.stdout, 'data');
    child.stdout.destroy();
    const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
    assert.equal(signal, null);
    assert.equal(code, 143, stderr);
    assert.doesNotMatch(stderr, /EPIPE|Error|at /);
  });
});
