// Both protocol eras through the tool layer, sandboxed, with the official SDKs: the v2 client
// pinned to 2026-07-28 (server/discover, stateless requests with the revision and capabilities
// in _meta, a multi round-trip InputRequiredResult answered through an elicitation handler) and
// the 1.x client (initialize), against one fixture server on the v2 server API that serves both.
// Pins recorded in one era hold in the other: the tool definitions are the same.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { repoRoot, sharedTempDir } from './helpers';

// The v2 packages publish types only through their `exports` map, which this project's
// moduleResolution does not read: loaded untyped, used through the few calls below.
// biome-ignore lint/suspicious/noExplicitAny: untyped SDK v2 entry points
const { Client } = require('@modelcontextprotocol/client') as any;
// biome-ignore lint/suspicious/noExplicitAny: untyped SDK v2 entry points
const { StdioClientTransport } = require('@modelcontextprotocol/client/stdio') as any;

const launcher = path.join(repoRoot, 'bin', 'stockade.js');
const modules = path.join(repoRoot, 'node_modules');
const fixtures = path.join(repoRoot, 'test', 'fixtures');
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };

type Content = { type: string; text?: string }[];
const text = (result: unknown) => (((result as { content?: Content }).content ?? []) as Content).map((c) => c.text ?? '').join('\n');

describe('MCP 2026-07-28 and the initialize-based revisions through stockade run', () => {
  let dir: string;
  let policy: string;
  let auditFile: string;
  before(() => {
    dir = sharedTempDir('protocol');
    policy = path.join(dir, 'modern.policy.json');
    auditFile = path.join(dir, 'audit.jsonl');
    fs.writeFileSync(
      policy,
      JSON.stringify({
        command: ['node', path.join(fixtures, 'mcp-modern-server.cjs')],
        filesystem: { readOnly: [modules, fixtures] },
        audit: auditFile,
      }),
    );
    const approved = spawnSync(process.execPath, [launcher, 'approve', policy, '--yes'], { env, encoding: 'utf8' });
    assert.equal(approved.status, 0, approved.stderr);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function modern(flags: string[] = []) {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [launcher, 'run', '--policy', policy, ...flags],
      env,
      stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr?.on('data', (d: Buffer) => (stderr += d));
    const client = new Client(
      { name: 'stockade-test', version: '0.0.0' },
      { capabilities: { elicitation: { form: {} } }, versionNegotiation: { mode: { pin: '2026-07-28' } } },
    );
    const asked: string[] = [];
    client.setRequestHandler('elicitation/create', async (req: { params: { message: string } }) => {
      asked.push(req.params.message);
      return { action: 'accept', content: { confirm: true } };
    });
    await client.connect(transport);
    return { client, asked, stderr: () => stderr };
  }

  test('2026-07-28: discover, list, and a multi round-trip call; the first listing is pinned', async () => {
    const { client, asked, stderr } = await modern();
    try {
      assert.equal(client.getNegotiatedProtocolVersion(), '2026-07-28');
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t: { name: string }) => t.name).sort(), ['deploy', 'status']);
      assert.equal(text(await client.callTool({ name: 'deploy', arguments: { env: 'prod' } })), 'deployed to prod');
      assert.deepEqual(asked, ['Deploy to prod?']);
    } finally {
      await client.close();
    }
    assert.match(stderr(), /pinned 2 tool definitions/);
    const calls = fs
      .readFileSync(auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.event === 'mcp.tool_call');
    // The InputRequiredResult is not the end of the call; the retry is a call of its own.
    assert.deepEqual(
      calls.map((e) => [e.tool, e.outcome, e.protocolVersion]),
      [
        ['deploy', 'input-required', '2026-07-28'],
        ['deploy', 'ok', '2026-07-28'],
      ],
    );
  });

  test('initialize-based (SDK 1.x client): the same pins hold, nothing is withheld', async () => {
    const transport = new LegacyTransport({ command: process.execPath, args: [launcher, 'run', '--policy', policy], env, stderr: 'pipe' });
    let stderr = '';
    transport.stderr?.on('data', (d) => (stderr += d));
    const client = new LegacyClient({ name: 'stockade-test', version: '0.0.0' });
    await client.connect(transport);
    try {
      assert.match(client.getServerVersion()?.name ?? '', /modern-fixture/);
      assert.deepEqual((await client.listTools()).tools.map((t) => t.name).sort(), ['deploy', 'status']);
      assert.equal(text(await client.callTool({ name: 'status', arguments: {} })), 'all green');
    } finally {
      await client.close();
    }
    assert.equal(stderr, '');
  });

  test('2026-07-28 with --tools: the retry of a refused tool never reaches the server', async () => {
    const { client, asked } = await modern(['--tools', 'status']);
    try {
      const { tools } = await client.listTools();
      assert.deepEqual(
        tools.map((t: { name: string }) => t.name),
        ['status'],
      );
      await assert.rejects(
        client.callTool({ name: 'deploy', arguments: { env: 'prod' } }),
        /tool "deploy" is not allowed by the stockade policy/,
      );
      assert.deepEqual(asked, []);
    } finally {
      await client.close();
    }
  });
});
