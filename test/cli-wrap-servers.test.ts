// `stockade wrap` on configs shaped like real users' — local scripts, state files named in env,
// API keys of well-known servers, credentials stockade cannot inject, Claude Code's project
// scopes, JSONC with tricky strings — and then the wrapped entries started exactly as the client
// would start them, driven by the official MCP SDK client on the real kernel.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { describeCliError } from '../lib/cli/errors';
import { main, parseJsonc } from '../lib/cli/wrap';
import { launchPath } from '../lib/native';
import { loadPolicy } from '../lib/policy';
import { repoRoot, sharedTempDir } from './helpers';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});
function tempDir(prefix: string): string {
  const d = sharedTempDir(prefix);
  roots.push(d);
  return d;
}

async function wrap(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  // No registry is asked here: pinning npx/uvx servers has its own test (test/wrap-pin.test.ts).
  if (!argv.includes('--undo') && argv.length > 0) argv = [...argv, '--no-pin'];
  const io = { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } };
  // As lib/cli/main.ts does: a thrown usage error is one line and its exit status.
  const code = await main(argv, io).catch((e: unknown) => {
    const { line, exitCode } = describeCliError('wrap', e);
    err += `${line}\n`;
    return exitCode;
  });
  return { code, out, err };
}

type Entry = { command: string; args: string[]; env?: Record<string, string> };
const serverEntry = (pkg: string) => join(repoRoot, 'node_modules', '@modelcontextprotocol', pkg, 'dist', 'index.js');

/** Starts a wrapped entry as an MCP client does: command, args, env, in `cwd`. */
async function connect(entry: Entry, cwd: string): Promise<{ client: Client; stderr: () => string }> {
  const transport = new StdioClientTransport({
    command: entry.command,
    args: entry.args,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...entry.env },
    cwd,
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (d) => (stderr += d));
  const client = new Client({ name: 'stockade-wrap-test', version: '0.0.0' });
  await client.connect(transport);
  return { client, stderr: () => stderr };
}

type Content = { type: string; text?: string }[];
const text = (result: unknown) => (((result as { content?: Content }).content ?? []) as Content).map((c) => c.text ?? '').join('\n');

describe('wrapped servers start and work', () => {
  it('a project .mcp.json: local scripts (node /abs/server.js), a state file in env, a directory argument', async () => {
    const project = tempDir('wrap-project');
    const state = join(project, 'state');
    const notes = join(project, 'notes');
    for (const d of [state, notes]) {
      mkdirSync(d);
      chmodSync(d, 0o777); // the sandbox writes as uid 65534
    }
    writeFileSync(join(notes, 'todo.txt'), 'ship it\n', { mode: 0o644 });
    const config = join(project, '.mcp.json');
    const memoryFile = join(state, 'memory.jsonl');
    writeFileSync(
      config,
      `${JSON.stringify(
        {
          mcpServers: {
            memory: { command: 'node', args: [serverEntry('server-memory')], env: { MEMORY_FILE_PATH: memoryFile } },
            files: { command: 'node', args: [serverEntry('server-filesystem'), notes] },
          },
        },
        null,
        2,
      )}\n`,
    );
    const r = await wrap([config]);
    assert.equal(r.code, 0, r.err);
    // What was granted is printed, with the reason.
    assert.match(r.out, new RegExp(`granted read-write ${state} \\(the directory of MEMORY_FILE_PATH\\)`));
    assert.match(r.out, new RegExp(`granted read-only ${repoRoot} \\(the project of ${serverEntry('server-memory')}\\)`));
    assert.match(r.out, new RegExp(`granted read-write ${notes} \\(a directory on the command line\\)`));
    const doc = JSON.parse(readFileSync(config, 'utf8')) as { mcpServers: Record<string, Entry> };
    assert.equal(doc.mcpServers.memory.args[4], 'stockade/memory.policy.json', 'relative to the project');

    // Started from the project directory, as Claude Code starts project servers.
    const memory = await connect(doc.mcpServers.memory, project);
    try {
      const created = await memory.client.callTool({
        name: 'create_entities',
        arguments: { entities: [{ name: 'stockade', entityType: 'project', observations: ['wrapped'] }] },
      });
      assert.match(text(created), /stockade/);
    } finally {
      await memory.client.close();
    }
    // The server wrote its state file on the host, through the granted directory.
    assert.match(readFileSync(memoryFile, 'utf8'), /"name":"stockade"/);

    const files = await connect(doc.mcpServers.files, project);
    try {
      const read = await files.client.callTool({ name: 'read_text_file', arguments: { path: join(notes, 'todo.txt') } });
      assert.equal(text(read).trim(), 'ship it');
      // The checkout is granted read-only (the server's project): the rest of the host is not there.
      const outside = await files.client.callTool({ name: 'list_directory', arguments: { path: '/root' } });
      assert.ok((outside as { isError?: boolean }).isError, text(outside));
    } finally {
      await files.client.close();
    }
  });

  it('a server granted its whole project is told it could rewrite the config and its policy, and its start is refused', async () => {
    const project = tempDir('wrap-whole');
    const config = join(project, '.mcp.json');
    writeFileSync(
      config,
      `${JSON.stringify({ mcpServers: { files: { command: 'node', args: [serverEntry('server-filesystem'), project] } } })}\n`,
    );
    const r = await wrap([config]);
    assert.equal(r.code, 0, r.err);
    const policy = join(project, 'stockade', 'files.policy.json');
    assert.ok(
      r.out.includes(
        `warning: its read-write grant ${project} holds this client config (${config}): the server could rewrite it and run without stockade at its next start; grant it the directories it works on, not the one holding this client config`,
      ),
      r.out,
    );
    assert.ok(
      r.out.includes(
        `warning: its read-write grant ${project} holds its policy file (${policy}): the server could rewrite it so \`stockade run\` refuses to start it; grant it the directories it works on, not the one holding its policy file`,
      ),
      r.out,
    );
    const doc = JSON.parse(readFileSync(config, 'utf8')) as { mcpServers: Record<string, Entry> };
    const start = spawnSync(doc.mcpServers.files.command, doc.mcpServers.files.args, { cwd: project, encoding: 'utf8', input: '' });
    assert.equal(start.status, 2);
    // wrap approved the policy it wrote: its approval, beside it, is refused first (lib/approval.ts).
    assert.equal(
      start.stderr,
      `stockade: the policy's directory ${join(project, 'stockade')} is writable from inside the sandbox (granted ${project}), so its approval cannot be trusted; move the policy out of it\n`,
    );
  });

  it('Claude Code ~/.claude.json: user and project scopes wrapped, policies beside Claude Code files', async () => {
    const home = tempDir('wrap-home');
    const config = join(home, '.claude.json');
    const original = `${JSON.stringify(
      {
        numStartups: 3,
        mcpServers: { memory: { type: 'stdio', command: 'node', args: [serverEntry('server-memory')], env: {} } },
        projects: {
          '/srv/app': { allowedTools: [], mcpServers: { everything: { command: 'node', args: [serverEntry('server-everything')] } } },
          '/srv/other': { allowedTools: [] },
        },
      },
      null,
      2,
    )}\n`;
    writeFileSync(config, original);
    const r = await wrap([config]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /wrapped memory: policy .*\.claude\/stockade\/memory\.policy\.json/);
    assert.match(r.out, /wrapped everything \(project \/srv\/app\): policy .*\.claude\/stockade\/app-everything\.policy\.json/);
    const doc = JSON.parse(readFileSync(config, 'utf8')) as {
      numStartups: number;
      projects: Record<string, { mcpServers?: Record<string, Entry>; allowedTools: unknown[] }>;
    };
    assert.equal(doc.numStartups, 3);
    const everything = doc.projects['/srv/app'].mcpServers?.everything as Entry;
    assert.equal(everything.command, launchPath());
    assert.equal(everything.args[4], join(home, '.claude', 'stockade', 'app-everything.policy.json'));
    assert.deepEqual(doc.projects['/srv/other'], { allowedTools: [] });

    const { client } = await connect(everything, '/');
    try {
      const echoed = await client.callTool({ name: 'echo', arguments: { message: 'through a project scope' } });
      assert.match(text(echoed), /through a project scope/);
    } finally {
      await client.close();
    }
    // The undo hint names the config by absolute path, so it works from any directory.
    const hint = /restore with: stockade wrap --undo (.+)\)$/m.exec(r.out)?.[1];
    assert.equal(hint, config);
    execFileSync(process.execPath, [join(repoRoot, 'bin', 'stockade.js'), 'wrap', '--undo', hint], { cwd: '/' });
    assert.equal(readFileSync(config, 'utf8'), original);
  });
});

describe('starting policies for credentials', () => {
  it("known servers' headers; credentials stockade cannot inject are warned about", async () => {
    const dir = tempDir('wrap-secrets');
    const config = join(dir, 'claude_desktop_config.json');
    writeFileSync(
      config,
      JSON.stringify({
        mcpServers: {
          brave: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-brave-search'], env: { BRAVE_API_KEY: 'BSA-x' } },
          maps: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-google-maps'], env: { GOOGLE_MAPS_API_KEY: 'AIza-x' } },
          postgres: { command: 'npx', args: ['-y', 'mcp-postgres'], env: { PGPASSWORD: 'hunter2', PGHOST: 'db.internal' } },
          openapi: {
            command: 'npx',
            args: ['-y', '@ivotoby/openapi-mcp-server'],
            env: { OPENAPI_MCP_HEADERS: 'Authorization: Bearer sk-abcdefghijklmnop', API_BASE_URL: 'https://api.example.com' },
          },
        },
      }),
    );
    const r = await wrap([config]);
    assert.equal(r.code, 0, r.err);
    const policy = (name: string) => loadPolicy(join(dir, 'stockade', `${name}.policy.json`));
    // Brave's API reads X-Subscription-Token, not Authorization.
    assert.deepEqual(policy('brave').secrets, [
      { name: 'BRAVE_API_KEY', hosts: ['api.search.brave.com'], inject: { header: 'X-Subscription-Token', format: '{secret}' } },
    ]);
    assert.match(r.out, /secret BRAVE_API_KEY: .*api\.search\.brave\.com only \(X-Subscription-Token: \{secret\}\)/);
    assert.deepEqual(policy('maps').secrets, [{ name: 'GOOGLE_MAPS_API_KEY', hosts: ['maps.googleapis.com'], inject: { query: 'key' } }]);
    // A database password travels in the database's own protocol: passed, with a warning.
    assert.deepEqual(policy('postgres').env, { PGPASSWORD: true, PGHOST: true });
    assert.equal(policy('postgres').secrets, undefined);
    assert.match(r.out, /warning: PGPASSWORD is a credential the server sends itself \(not over HTTPS\)/);
    // A token inside a header block cannot be replaced by a placeholder: warned about.
    assert.match(r.out, /warning: OPENAPI_MCP_HEADERS carries a credential inside its value \(headers\)/);
    assert.deepEqual(policy('openapi').env, { OPENAPI_MCP_HEADERS: true, API_BASE_URL: true });
  });
});

describe('JSONC is edited, not re-serialized', () => {
  it('strings with commas and brackets, comments and trailing commas survive', async () => {
    const dir = tempDir('wrap-jsonc');
    mkdirSync(join(dir, '.vscode'));
    const config = join(dir, '.vscode', 'mcp.json');
    const before = [
      '{',
      '  // servers of this workspace',
      '  "servers": {',
      '    "shell": { "command": "/bin/sh", "args": ["-c", "echo a, ] >&2"] }, // a tricky string',
      '    /* kept */ "remote": { "url": "https://x.example/mcp", },',
      '  },',
      '}',
      '',
    ].join('\n');
    writeFileSync(config, before);
    const r = await wrap([config]);
    assert.equal(r.code, 0, r.err);
    const after = readFileSync(config, 'utf8');
    for (const kept of [
      '// servers of this workspace',
      '// a tricky string',
      '/* kept */ "remote": { "url": "https://x.example/mcp", },',
    ]) {
      assert.ok(after.includes(kept), `${kept} kept in:\n${after}`);
    }
    const doc = parseJsonc(after) as { servers: { shell: Entry } };
    assert.deepEqual(doc.servers.shell.args.slice(-3), ['/bin/sh', '-c', 'echo a, ] >&2']);
    // And the wrapped entry runs the same command under stockade.
    // (On stderr: the approved policy pins tools, so stdout is the tool layer's, JSON-RPC only.)
    const out = spawnSync(
      doc.servers.shell.command,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: VS Code's variable, expanded as VS Code would
      doc.servers.shell.args.map((a) => a.replace('${workspaceFolder}', dir)),
      { encoding: 'utf8' },
    );
    assert.equal(out.status, 0, out.stderr);
    assert.match(out.stderr, /^a, \]$/m);
  });
});
