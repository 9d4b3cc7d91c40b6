// `stockade wrap` on sample configs of each client format: what is wrapped, what is left alone,
// the policies written, idempotence, --dry-run, and a byte-for-byte --undo.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { describeCliError } from '../lib/cli/errors';
import { looksLikeSecret, main, PLACEHOLDER_HOST, parseJsonc, wrapConfig } from '../lib/cli/wrap';
import { launchPath } from '../lib/native';
import { loadPolicy } from '../lib/policy';
import { repoRoot } from './helpers';

const fixtures = join(__dirname, '..', '..', 'test', 'fixtures', 'wrap');
const tmpRoot = mkdtempSync(join(tmpdir(), 'stockade-wrap-'));
after(() => rmSync(tmpRoot, { recursive: true, force: true }));

/** A private copy of one fixture directory; returns the config path inside it. */
function copy(fixture: string, config: string): string {
  const dir = mkdtempSync(join(tmpRoot, `${fixture}-`));
  cpSync(join(fixtures, fixture), dir, { recursive: true });
  return join(dir, config);
}

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
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

type Entry = { command: string; args: string[]; env?: Record<string, string>; type?: string; url?: string };

const launcherBin = join(repoRoot, 'bin', 'stockade.js');
/** What wrap writes: stockade-launch in front of this node and launcher (native/launch.cc). */
const launchBin = launchPath();
function wrappedArgs(policyFile: string, ...cmd: string[]): string[] {
  return [process.execPath, launcherBin, 'run', '--policy', policyFile, '--', ...cmd];
}

const samples: [string, string, string][] = [
  ['claude-desktop', 'claude_desktop_config.json', 'claude-desktop'],
  ['claude-code', '.mcp.json', 'claude-code'],
  ['vscode', '.vscode/mcp.json', 'vscode'],
  ['cursor', '.cursor/mcp.json', 'cursor'],
];

describe('stockade wrap', () => {
  it('Claude Desktop: wraps stdio servers, leaves remote ones, writes starting policies', async () => {
    const file = copy('claude-desktop', 'claude_desktop_config.json');
    const original = readFileSync(file);
    const r = await run([file]);
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { mcpServers: Record<string, Entry>; globalShortcut: string };
    const dir = join(file, '..', 'stockade');
    const s = doc.mcpServers;
    // This installed launcher by absolute path: no npx lookup, no other package of that name.
    assert.equal(s.github.command, launchBin);
    assert.deepEqual(s.github.args, wrappedArgs(join(dir, 'github.policy.json'), 'npx', '-y', '@modelcontextprotocol/server-github'));
    // The secret's value stays in the client config, where the launcher reads it.
    assert.equal(s.github.env?.GITHUB_PERSONAL_ACCESS_TOKEN, 'ghp_example');
    assert.deepEqual(s.fetch.args, wrappedArgs(join(dir, 'fetch.policy.json'), 'uvx', 'mcp-server-fetch'));
    assert.deepEqual(s.remote, { url: 'https://mcp.example.com/sse' });
    assert.equal(doc.globalShortcut, 'Ctrl+Space', 'other settings untouched');
    assert.ok(readFileSync(`${file}.stockade-backup`).equals(original), 'backup is byte for byte');

    // Every policy written is valid, with the guessed profile and the secrets.
    const github = loadPolicy(join(dir, 'github.policy.json'));
    assert.equal(github.profile, 'node');
    assert.deepEqual(github.secrets, [{ name: 'GITHUB_PERSONAL_ACCESS_TOKEN', hosts: ['api.github.com'] }]);
    assert.deepEqual(github.env, { GITHUB_TOOLSETS: true });
    assert.equal(loadPolicy(join(dir, 'fetch.policy.json')).profile, 'python');
    assert.deepEqual(loadPolicy(join(dir, 'files.policy.json')).filesystem, { readWrite: ['/tmp'] });
    const weather = loadPolicy(join(dir, 'weather.policy.json'));
    assert.deepEqual(weather.secrets, [{ name: 'WEATHER_API_KEY', hosts: [PLACEHOLDER_HOST] }]);
    assert.deepEqual(weather.filesystem, { readOnly: ['/opt/weather/bin'] });
    assert.deepEqual(readdirSync(dir).sort(), [
      'fetch.approved.json',
      'fetch.policy.json',
      'files.approved.json',
      'files.policy.json',
      'github.approved.json',
      'github.policy.json',
      'weather.approved.json',
      'weather.policy.json',
    ]);
    // wrap approves what it wrote: the launcher refuses these policies once they grow.
    const approval = JSON.parse(readFileSync(join(dir, 'github.approved.json'), 'utf8'));
    assert.ok(approval.grants.entries.includes('secret GITHUB_PERSONAL_ACCESS_TOKEN for api.github.com'));
    assert.equal(approval.tools, undefined);

    assert.match(r.out, /wrapped github: policy .*github\.policy\.json/);
    assert.match(
      r.out,
      /secret GITHUB_PERSONAL_ACCESS_TOKEN: its value stays in the client config's env; the proxy injects it for api\.github\.com only/,
    );
    assert.match(r.out, new RegExp(`secret WEATHER_API_KEY: .*EDIT the policy: replace ${PLACEHOLDER_HOST.replace('.', '\\.')}`));
    assert.match(r.out, /left remote: remote url server at https:\/\/mcp\.example\.com\/sse/);
  });

  it('Claude Code: keeps indentation, type and the missing final newline; fixes a legacy `npx -y stockade` launcher', async () => {
    const file = copy('claude-code', '.mcp.json');
    const result = wrapConfig(file);
    assert.equal(result.format, 'claude-code');
    assert.deepEqual(
      result.servers.map((s) => [s.name, s.action]),
      [
        ['memory', 'wrapped'],
        ['everything', 'relaunched'],
        ['api', 'remote'],
      ],
    );
    const text = readFileSync(file, 'utf8');
    assert.ok(text.startsWith('{\n    "mcpServers": {\n        "memory": {\n            "type": "stdio",'));
    assert.ok(!text.endsWith('\n'));
    const doc = JSON.parse(text) as { mcpServers: Record<string, Entry> };
    assert.equal(doc.mcpServers.memory.env?.MEMORY_FILE_PATH, '/tmp/m\u00e9moire.json');
    // A project config refers to its policy relative to the project, so both can be committed.
    assert.deepEqual(
      doc.mcpServers.memory.args,
      wrappedArgs('stockade/memory.policy.json', 'npx', '-y', '@modelcontextprotocol/server-memory'),
    );
    const memory = loadPolicy(join(file, '..', 'stockade', 'memory.policy.json'));
    assert.deepEqual(memory.env, { MEMORY_FILE_PATH: true });
    // The state file's directory is granted read-write, so the server can write it — unless it
    // is the home directory (the unprivileged pass runs with HOME=/tmp), which is never granted.
    if (homedir() === '/tmp') assert.equal(memory.filesystem, undefined);
    else assert.deepEqual(memory.filesystem, { readWrite: ['/tmp'] });
    // The old launcher fetched an unrelated npm package: replaced, the rest kept.
    assert.deepEqual(
      doc.mcpServers.everything.args,
      wrappedArgs('/x/stockade/everything.policy.json', 'npx', '-y', '@modelcontextprotocol/server-everything'),
    );
    assert.equal(doc.mcpServers.everything.command, launchBin);
  });

  it('an entry an earlier version wrapped as `node bin/stockade.js run` gets stockade-launch in front, once', () => {
    const dir = mkdtempSync(join(tmpRoot, 'relaunch-'));
    const file = join(dir, 'claude_desktop_config.json');
    const old = { command: process.execPath, args: [launcherBin, 'run', '--policy', '/x/p.json', '--', 'npx', '-y', 'server'] };
    writeFileSync(file, `${JSON.stringify({ mcpServers: { s: old } }, null, 2)}\n`);
    const result = wrapConfig(file);
    assert.deepEqual(
      result.servers.map((s) => [s.name, s.action, 'detail' in s ? s.detail : undefined]),
      [['s', 'relaunched', 'stockade-launch now starts its sandbox before Node does']],
    );
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { mcpServers: Record<string, Entry> };
    assert.deepEqual(doc.mcpServers.s, { command: launchBin, args: [process.execPath, ...old.args] });
    assert.deepEqual(
      wrapConfig(file).servers.map((s) => s.action),
      ['already-wrapped'],
    );
  });

  it('VS Code: the `servers` key, JSONC comments kept, CRLF line ends, policy under the workspace folder', async () => {
    const file = copy('vscode', '.vscode/mcp.json');
    const r = await run([file]);
    assert.equal(r.code, 0, r.err);
    const text = readFileSync(file, 'utf8');
    assert.ok(
      text
        .split('\n')
        .slice(0, -1)
        .every((l) => l.endsWith('\r')),
      'CRLF kept',
    );
    assert.match(text, /\/\/ MCP servers for this workspace\r\n/);
    assert.match(text, /\/\* local dev \*\//);
    const doc = parseJsonc(text) as { servers: Record<string, Entry>; inputs: unknown[] };
    assert.equal(doc.servers.py.type, 'stdio');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: VS Code's variable, written literally
    assert.deepEqual(doc.servers.py.args, wrappedArgs('${workspaceFolder}/.vscode/stockade/py.policy.json', 'python3', '-m', 'my_server'));
    // biome-ignore lint/suspicious/noTemplateCurlyInString: VS Code's input syntax, not a template
    assert.equal(doc.servers.py.env?.SERVICE_TOKEN, '${input:token}');
    assert.equal(doc.servers.sse.url, 'http://localhost:3000/sse');
    assert.equal(doc.inputs.length, 1);
    assert.match(r.out, /left sse: remote sse server/);
  });

  it('Cursor: tabs kept, an entry without a command is reported and left alone', async () => {
    const file = copy('cursor', '.cursor/mcp.json');
    const r = await run([file]);
    assert.equal(r.code, 0, r.err);
    assert.ok(readFileSync(file, 'utf8').includes(`\n\t\t"linear": {\n\t\t\t"command": ${JSON.stringify(launchBin)},`));
    assert.match(r.out, /left broken: not a stdio server entry \(no `command`\)/);
    const policy = loadPolicy(join(file, '..', 'stockade', 'linear.policy.json'));
    // Linear takes its API key in Authorization without a scheme.
    assert.deepEqual(policy.secrets, [
      { name: 'LINEAR_API_KEY', hosts: ['api.linear.app'], inject: { header: 'Authorization', format: '{secret}' } },
    ]);
    assert.deepEqual(policy.env, { DEBUG: true });
  });

  for (const [fixture, config, format] of samples) {
    it(`${format}: idempotent, and --undo restores the original byte for byte`, async () => {
      const file = copy(fixture, config);
      const original = readFileSync(file);
      assert.equal((await run([file])).code, 0);
      const wrapped = readFileSync(file);
      assert.ok(!wrapped.equals(original));
      // A second wrap changes nothing, not even the backup.
      const again = await run([file]);
      assert.equal(again.code, 0);
      assert.match(again.out, /nothing to change/);
      assert.ok(readFileSync(file).equals(wrapped));
      assert.ok(readFileSync(`${file}.stockade-backup`).equals(original));
      const undo = await run(['--undo', file]);
      assert.equal(undo.code, 0, undo.err);
      assert.ok(readFileSync(file).equals(original), 'restored byte for byte');
      assert.ok(!existsSync(`${file}.stockade-backup`));
      // Wrapping again after an undo keeps the user's (possibly edited) policies.
      const policies = readdirSync(join(file, '..', 'stockade')).filter((f) => f.endsWith('.policy.json'));
      const policy = join(file, '..', 'stockade', policies[0]);
      writeFileSync(policy, '{"profile":"node"}\n');
      const rewrap = await run([file]);
      assert.match(rewrap.out, /\(exists, kept\)/);
      assert.equal(readFileSync(policy, 'utf8'), '{"profile":"node"}\n');
    });
  }

  it('--dry-run prints a unified diff and the policies, and changes nothing', async () => {
    const file = copy('claude-desktop', 'claude_desktop_config.json');
    const original = readFileSync(file);
    const r = await run(['--dry-run', file]);
    assert.equal(r.code, 0, r.err);
    assert.ok(r.out.startsWith(`--- ${file}\n+++ ${file} (wrapped)\n@@ -`));
    assert.match(r.out, /^- {6}"args": \["-y", "@modelcontextprotocol\/server-github"\],$/m);
    assert.match(r.out, /^\+ {8}"run",$/m);
    assert.match(r.out, /--- would create .*github\.policy\.json\n\{/);
    assert.match(r.out, /would wrap github/);
    assert.ok(readFileSync(file).equals(original));
    assert.ok(!existsSync(`${file}.stockade-backup`));
    assert.ok(!existsSync(join(file, '..', 'stockade')));
  });

  it('--portable writes npx with this exact version, recognised as wrapped afterwards', () => {
    const file = copy('cursor', '.cursor/mcp.json');
    wrapConfig(file, { portable: true });
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { mcpServers: Record<string, Entry> };
    const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(doc.mcpServers.linear.command, 'npx');
    assert.deepEqual(doc.mcpServers.linear.args.slice(0, 3), ['-y', `stockade-sandbox@${version}`, 'run']);
    assert.equal(wrapConfig(file).changed, false);
  });

  it('refuses unknown formats and invalid JSON, changing nothing', async () => {
    const file = copy('unknown', 'settings.json');
    const original = readFileSync(file);
    const r = await run([file]);
    assert.equal(r.code, 1);
    assert.match(r.err, /unknown config format \(no `mcpServers` or `servers` object\); nothing changed/);
    assert.ok(readFileSync(file).equals(original));
    writeFileSync(file, '{ nope');
    assert.match((await run([file])).err, /is not valid JSON/);
  });

  it('usage errors exit 2; --undo without a backup exits 1', async () => {
    assert.equal((await run([])).code, 2);
    assert.equal((await run(['--force', 'x.json'])).code, 2);
    assert.equal((await run(['--undo', '--dry-run', 'x.json'])).code, 2);
    assert.equal((await run(['--undo', '--portable', 'x.json'])).code, 2);
    const file = copy('cursor', '.cursor/mcp.json');
    const r = await run(['--undo', file]);
    assert.equal(r.code, 1);
    assert.match(r.err, /no backup/);
  });

  it('recognises secret-looking names', () => {
    for (const n of [
      'GITHUB_TOKEN',
      'BRAVE_API_KEY',
      'DB_PASSWORD',
      'client_secret',
      'GITLAB_PAT',
      'OPENAI_APIKEY',
      'PGPASSWORD',
      'MYSQL_PWD',
    ]) {
      assert.ok(looksLikeSecret(n, 'x'), n);
    }
    for (const n of ['DEBUG', 'KEYBOARD', 'TOKENIZER_MODEL', 'LOG_LEVEL']) assert.ok(!looksLikeSecret(n, 'x'), n);
    assert.ok(!looksLikeSecret('SSH_KEY_PATH', '/home/me/.ssh/id'), 'a path is not a secret value');
  });

  it('writes back JSONC byte for byte outside the wrapped entry: strings holding `, ]`, `//` and `/*` are not edited (issue #12)', async () => {
    // The old hand-rolled JSONC handling removed "trailing commas" inside strings: "echo a, ]"
    // came back as "echo a ]". Everything around the rewritten entry must be the same bytes.
    const head = [
      '// servers for this machine, with a trailing comma or two',
      '{',
      '  "note": "echo a, ]", /* a, ] in a comment */',
      '  "url": "http://x//y /* not a comment */",',
      '  "mcpServers": {',
      '    "remote": { "url": "https://mcp.example.com/sse", "headers": { "X": "a, }" }, },',
      '    ',
    ].join('\n');
    const entry = '"shell": { "command": "sh", "args": ["-c", "echo a, ]"], "env": { "LABEL": "b, ]" } }';
    const tail = ['', '  },', '  "tail": [1, 2,],', '}', '// end, ]', ''].join('\n');
    const dir = mkdtempSync(join(tmpRoot, 'jsonc-'));
    const file = join(dir, 'claude_desktop_config.json');
    writeFileSync(file, head + entry + tail);
    const r = await run([file]);
    assert.equal(r.code, 0, r.err);
    const text = readFileSync(file, 'utf8');
    assert.ok(text.startsWith(head), `the bytes before the wrapped entry are unchanged:\n${text}`);
    assert.ok(text.endsWith(tail), `the bytes after the wrapped entry are unchanged:\n${text}`);
    const doc = parseJsonc(text) as { mcpServers: Record<string, Entry> };
    assert.deepEqual(doc.mcpServers.shell.args.slice(-3), ['sh', '-c', 'echo a, ]'], 'the wrapped command keeps its string');
    assert.deepEqual(doc.mcpServers.shell.env, { LABEL: 'b, ]' });
    const undo = await run(['--undo', file]);
    assert.equal(undo.code, 0, undo.err);
    assert.equal(readFileSync(file, 'utf8'), head + entry + tail, '--undo restores it byte for byte');
  });

  it('parses JSONC without touching strings that look like comments or trailing commas', () => {
    assert.deepEqual(parseJsonc('{"a":"http://x//y", /* c */ "b":[1,2,],"c":"echo a, ]"}\n// end'), {
      a: 'http://x//y',
      b: [1, 2],
      c: 'echo a, ]',
    });
    assert.throws(() => parseJsonc('{"a": 1,\n "b": }'), /ValueExpected at line 2, column 7/);
  });
});
