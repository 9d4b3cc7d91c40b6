// Real MCP servers from the registry, driven by the official MCP SDK client over stdio through
// `stockade run` — exactly as an MCP client config launches them — on the real kernel.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { repoRoot, sharedTempDir } from './helpers';

const launcher = path.join(repoRoot, 'bin', 'stockade.js');
const modules = path.join(repoRoot, 'node_modules');
const entry = (pkg: string) => path.join(modules, '@modelcontextprotocol', pkg, 'dist', 'index.js');

type Content = { type: string; text?: string }[];
const text = (result: unknown) => (((result as { content?: Content }).content ?? []) as Content).map((c) => c.text ?? '').join('\n');

/** Connects the SDK client to `stockade run [flags] -- node ENTRY [args]`. */
async function connect(
  flags: string[],
  serverArgs: string[],
  env: Record<string, string> = {},
): Promise<{ client: Client; stderr: () => string }> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [launcher, 'run', '--ro', modules, ...flags, '--', 'node', ...serverArgs],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (d) => (stderr += d));
  const client = new Client({ name: 'stockade-test', version: '0.0.0' });
  await client.connect(transport);
  return { client, stderr: () => stderr };
}

describe('server-filesystem under stockade run', () => {
  let granted: string;
  let outside: string;
  let client: Client;
  before(async () => {
    granted = sharedTempDir('mcp-fs');
    fs.chmodSync(granted, 0o777);
    fs.writeFileSync(path.join(granted, 'hello.txt'), 'hello from the granted dir\n', { mode: 0o666 });
    outside = sharedTempDir('mcp-outside');
    fs.writeFileSync(path.join(outside, 'secret.txt'), 'outside secret\n');
    // The server is told it may use "/" and the granted directory: the sandbox decides.
    ({ client } = await connect(['--rw', granted], [entry('server-filesystem'), '/', granted]));
  });
  after(async () => {
    await client?.close();
    for (const d of [granted, outside]) fs.rmSync(d, { recursive: true, force: true });
  });

  test('every tool works on the granted directory', async () => {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    for (const t of [
      'read_text_file',
      'write_file',
      'edit_file',
      'create_directory',
      'list_directory',
      'move_file',
      'search_files',
      'get_file_info',
      'list_allowed_directories',
    ]) {
      assert.ok(names.includes(t), `missing tool ${t} in ${names}`);
    }
    const f = (n: string) => path.join(granted, n);
    assert.equal(
      text(await client.callTool({ name: 'read_text_file', arguments: { path: f('hello.txt') } })),
      'hello from the granted dir\n',
    );
    await client.callTool({ name: 'write_file', arguments: { path: f('new.txt'), content: 'written inside' } });
    assert.equal(fs.readFileSync(f('new.txt'), 'utf8'), 'written inside');
    await client.callTool({
      name: 'edit_file',
      arguments: { path: f('new.txt'), edits: [{ oldText: 'inside', newText: 'by the sandbox' }] },
    });
    assert.equal(fs.readFileSync(f('new.txt'), 'utf8'), 'written by the sandbox');
    await client.callTool({ name: 'create_directory', arguments: { path: f('sub') } });
    await client.callTool({ name: 'move_file', arguments: { source: f('new.txt'), destination: f('sub/moved.txt') } });
    assert.ok(fs.existsSync(f('sub/moved.txt')));
    assert.match(
      text(await client.callTool({ name: 'list_directory', arguments: { path: granted } })),
      /\[FILE\] hello\.txt[\s\S]*\[DIR\] sub/,
    );
    assert.match(text(await client.callTool({ name: 'search_files', arguments: { path: granted, pattern: '**/moved*' } })), /moved\.txt/);
    assert.match(text(await client.callTool({ name: 'get_file_info', arguments: { path: f('hello.txt') } })), /size: 27/);
  });

  test('started with "/", the server still cannot see outside what the policy grants', async () => {
    const read = await client.callTool({ name: 'read_text_file', arguments: { path: path.join(outside, 'secret.txt') } });
    assert.equal(read.isError, true);
    assert.match(text(read), /ENOENT/);
    assert.doesNotMatch(text(read), /outside secret/);
    const listing = text(await client.callTool({ name: 'list_directory', arguments: { path: '/' } }));
    const entries = listing
      .split('\n')
      .map((l) => l.replace(/^\[(DIR|FILE)\] /, ''))
      .sort();
    // Only the bound paths and the directories leading to them exist; those hold nothing else.
    const [top, next] = modules.split('/').slice(1);
    assert.deepEqual(
      entries.filter((e) => ['root', 'work', 'var', 'opt', 'srv', 'boot', 'mnt'].includes(e) && e !== top),
      [],
    );
    const topListing = text(await client.callTool({ name: 'list_directory', arguments: { path: `/${top}` } }));
    if (top !== 'tmp') assert.deepEqual(topListing.split('\n'), [`[DIR] ${next}`]);
    const etc = text(await client.callTool({ name: 'list_directory', arguments: { path: '/etc' } }));
    assert.doesNotMatch(etc, /shadow|ssh/);
  });
});

describe('server-everything under stockade run', () => {
  let client: Client;
  before(async () => {
    ({ client } = await connect([], [entry('server-everything'), 'stdio']));
  });
  after(async () => client?.close());

  test('tools, prompts and resources work', async () => {
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'through the sandbox' } });
    assert.match(text(echo), /through the sandbox/);
    const sum = await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } });
    assert.match(text(sum), /42/);
    assert.ok((await client.listPrompts()).prompts.length > 0);
    assert.ok((await client.listResources()).resources.length > 0);
  });

  test('its environment holds nothing of the host', async () => {
    const env = await client.callTool({ name: 'get-env', arguments: {} });
    const vars = Object.keys(JSON.parse(text(env)));
    assert.deepEqual(vars.sort(), ['HOME', 'LANG', 'PATH', 'TERM', 'USER']);
  });
});

describe('the tool layer (--tools) under stockade run', () => {
  let client: Client;
  let auditFile: string;
  let dir: string;
  before(async () => {
    dir = sharedTempDir('mcp-audit');
    auditFile = path.join(dir, 'audit.jsonl');
    ({ client } = await connect(['--tools', 'echo', '--audit', auditFile], [entry('server-everything'), 'stdio']));
  });
  after(async () => {
    await client?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('tools/list shows only the allowed tools; another tool is refused without reaching the server', async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(
      tools.map((t) => t.name),
      ['echo'],
    );
    assert.match(text(await client.callTool({ name: 'echo', arguments: { message: 'ok' } })), /ok/);
    await assert.rejects(client.callTool({ name: 'get-env', arguments: {} }), /get-env/);
    const events = fs
      .readFileSync(auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const calls = events.filter((e) => e.event === 'mcp.tool_call');
    assert.deepEqual(
      calls.map((e) => [e.tool, e.outcome]),
      [
        ['echo', 'ok'],
        ['get-env', 'refused'],
      ],
    );
    assert.ok(events.some((e) => e.event === 'sandbox-start'));
  });
});

describe('server-memory with a persistent home', () => {
  test("data survives a restart of the sandbox, in the caller's own directory, root or not", async () => {
    // The caller's directory as it is (root's, as host root): an idmapped mount makes it the
    // server's inside, and what the server writes stays the caller's on the host.
    const home = sharedTempDir('mcp-home');
    const flags = ['--home', home, '--env', 'MEMORY_FILE_PATH=/home/nobody/memory.jsonl'];
    try {
      const first = await connect(flags, [entry('server-memory')]);
      await first.client.callTool({
        name: 'create_entities',
        arguments: { entities: [{ name: 'stockade', entityType: 'project', observations: ['confines MCP servers'] }] },
      });
      await first.client.close();
      assert.equal(fs.statSync(path.join(home, 'memory.jsonl')).uid, process.getuid?.());
      const second = await connect(flags, [entry('server-memory')]);
      const graph = text(await second.client.callTool({ name: 'read_graph', arguments: {} }));
      await second.client.close();
      assert.match(graph, /confines MCP servers/);
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('stockade wrap, then the wrapped config launched for real', () => {
  test('a Claude Code .mcp.json server runs sandboxed through the rewritten command', async () => {
    const dir = sharedTempDir('wrap-launch');
    const config = path.join(dir, '.mcp.json');
    const server = entry('server-everything');
    const original = `${JSON.stringify({ mcpServers: { everything: { command: process.execPath, args: [server, 'stdio'], env: { EXAMPLE_API_TOKEN: 'tok-123' } } } }, null, 2)}\n`;
    fs.writeFileSync(config, original);
    const { main: wrap } = await import('../lib/cli/wrap');
    const io = { stdout: { write: () => true }, stderr: { write: () => true } };
    assert.equal(await wrap([config], io), 0);
    const wrapped = JSON.parse(fs.readFileSync(config, 'utf8')).mcpServers.everything as {
      command: string;
      args: string[];
      env: Record<string, string>;
    };
    assert.ok(wrapped.args.includes('run') && wrapped.args.includes('--policy'), JSON.stringify(wrapped));
    // The server's own files are granted by wrap (the script's project: this checkout, read-only),
    // and the policy is referred to relative to the project, which is where Claude Code starts it.
    const transport = new StdioClientTransport({
      command: wrapped.command,
      args: wrapped.args,
      env: { PATH: '/usr/bin:/bin', ...wrapped.env },
      cwd: dir,
      stderr: 'pipe',
    });
    const client = new Client({ name: 'stockade-test', version: '0.0.0' });
    await client.connect(transport);
    try {
      assert.match(text(await client.callTool({ name: 'echo', arguments: { message: 'wrapped' } })), /wrapped/);
      // The token became a proxy-injected secret: the server does not see its value.
      const env = JSON.parse(text(await client.callTool({ name: 'get-env', arguments: {} })));
      assert.notEqual(env.EXAMPLE_API_TOKEN, 'tok-123');
    } finally {
      await client.close();
    }
    assert.equal(await wrap(['--undo', config], io), 0);
    assert.equal(fs.readFileSync(config, 'utf8'), original);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
