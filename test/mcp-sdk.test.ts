// A real MCP server from the registry (@modelcontextprotocol/server-everything), driven by the
// official SDK client over stdio, through the tool filter. Not sandboxed: this proves the filter
// keeps a real client/server conversation working; the sandboxed end-to-end tests live with
// `stockade run`.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const serverEntry = require.resolve('@modelcontextprotocol/server-everything/dist/index.js');
const proxy = join(__dirname, 'helpers', 'mcp-proxy.js');

describe('tool filter with the MCP SDK client and server-everything', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stockade-mcp-'));
  const auditFile = join(dir, 'audit.jsonl');
  let client: Client;

  before(async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [proxy, '--tools', 'echo,get-sum', '--audit', auditFile, '--', process.execPath, serverEntry, 'stdio'],
      stderr: 'ignore',
    });
    client = new Client({ name: 'stockade-test', version: '0.0.0' });
    await client.connect(transport);
  });

  after(async () => {
    await client?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists only the allowed tools', async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['echo', 'get-sum']);
  });

  it('calls allowed tools', async () => {
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'through the filter \u00e9' } });
    assert.deepEqual(echo.content, [{ type: 'text', text: 'Echo: through the filter \u00e9' }]);
    const sum = await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } });
    assert.match(JSON.stringify(sum.content), /42/);
  });

  it('carries a 1 MiB argument and its 1 MiB echo through real pipes', async () => {
    const message = 'x\u00e9'.repeat(512 * 1024);
    const echo = await client.callTool({ name: 'echo', arguments: { message } });
    assert.deepEqual(echo.content, [{ type: 'text', text: `Echo: ${message}` }]);
  });

  it('refuses a tool the server has but the policy does not allow', async () => {
    await assert.rejects(client.callTool({ name: 'get-env', arguments: {} }), (err: Error & { code?: number }) => {
      assert.equal(err.code, -32602);
      assert.match(err.message, /tool "get-env" is not allowed by the stockade policy/);
      return true;
    });
  });

  it('passes everything else (prompts, resources, ping)', async () => {
    await client.ping();
    const prompts = await client.listPrompts();
    assert.ok(prompts.prompts.length > 0);
    const resources = await client.listResources();
    assert.ok(resources.resources.length > 0);
  });

  it('audits each call with name, outcome and duration', () => {
    const events = readFileSync(auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; tool: string; outcome: string; durationMs: number; id: unknown });
    const calls = events.filter((e) => e.event === 'mcp.tool_call');
    assert.deepEqual(
      calls.map((e) => [e.tool, e.outcome]),
      [
        ['echo', 'ok'],
        ['get-sum', 'ok'],
        ['echo', 'ok'],
        ['get-env', 'refused'],
      ],
    );
    for (const e of calls) {
      assert.equal(typeof e.durationMs, 'number');
      assert.notEqual(e.id, undefined);
    }
  });
});
