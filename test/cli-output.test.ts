// What a person sees from the CLI: every error is one line naming the fix (no stack trace, the
// documented exit status), a closed stdout ends quietly, and `stockade run` says on stderr what
// it denied (blocked hosts and why, the SSRF guard's address class, refused tool calls, the
// timeout), then sums it up at exit. All through the real launcher on the real kernel.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { native } from '../lib/native';
import { repoRoot, sharedTempDir } from './helpers';

const launcher = join(repoRoot, 'bin', 'stockade.js');
const scratch = sharedTempDir('cli-output');
after(() => spawnSync('rm', ['-rf', scratch]));

/** Runs the launcher to completion; stdin closed, no proxy variables of ours leak in. */
function cli(args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [launcher, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: scratch, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const STACK_LINE = /^\s+at |Error: .*\n\s+at |node:internal/m;

describe('CLI errors: one line with the fix, no stack trace', () => {
  const dir = join(scratch, 'a-directory');
  mkdirSync(dir);
  const corpus: { args: string[]; code: number; says: RegExp }[] = [
    { args: ['frob'], code: 2, says: /^stockade: unknown command 'frob' \(see stockade --help\)$/ },
    { args: ['run'], code: 2, says: /nothing to run: give a command after `--`/ },
    { args: ['run', '--bogus', '--', '/bin/true'], code: 2, says: /^stockade run: unknown option --bogus \(see stockade run --help\)$/ },
    { args: ['run', '--memory', 'lots', '--', '/bin/true'], code: 2, says: /--memory: expected a size/ },
    {
      args: ['run', '--ro', '/nonexistent-stockade', '--', '/bin/true'],
      code: 2,
      says: /'\/nonexistent-stockade' cannot be used on the host \(ENOENT\)/,
    },
    {
      args: ['run', '--secret', 'STOCKADE_UNSET_X@api.example.com', '--', '/bin/true'],
      code: 2,
      says: /environment variable STOCKADE_UNSET_X is not set .*: set it in the launcher's environment \(in an MCP client config: the server's "env"\)/,
    },
    {
      args: ['run', '--audit', '/nonexistent-stockade/audit.log', '--', '/bin/true'],
      code: 2,
      says: /^stockade run: --audit \/nonexistent-stockade\/audit\.log: /,
    },
    { args: ['run', '--policy', '/nonexistent-stockade.json'], code: 2, says: /cannot read the policy file: ENOENT/ },
    { args: ['run', '--', '/nonexistent-stockade'], code: 127, says: /ENOENT.*not found in the sandbox PATH/ },
    { args: ['wrap', dir], code: 1, says: /is a directory: give the config file itself \(e\.g\. .*\.mcp\.json/ },
    {
      args: ['wrap', '/nonexistent-stockade.json'],
      code: 1,
      says: /cannot read \/nonexistent-stockade\.json: ENOENT: give the path of an MCP client config/,
    },
    { args: ['wrap'], code: 2, says: /expected exactly one CONFIG/ },
    { args: ['check', '/nonexistent-stockade.json'], code: 1, says: /cannot read the policy file: ENOENT/ },
    { args: ['check'], code: 2, says: /expected exactly one FILE/ },
    // Every subcommand parses argv the same way (lib/cli/args.ts): the same line for the same mistake.
    ...['run', 'check', 'doctor', 'wrap', 'demo', 'approve', 'update', 'serve'].map((cmd) => ({
      args: [cmd, '--bogus'],
      code: 2,
      says: new RegExp(`^stockade ${cmd}: unknown option --bogus \\(see stockade ${cmd} --help\\)$`),
    })),
    ...['doctor', 'demo'].map((cmd) => ({
      args: [cmd, 'stray'],
      code: 2,
      says: new RegExp(`^stockade ${cmd}: unexpected argument stray \\(see stockade ${cmd} --help\\)$`),
    })),
    { args: ['serve', '--audit'], code: 2, says: /^stockade serve: --audit needs a value \(see stockade serve --help\)$/ },
    {
      args: ['check', 'a.json', 'b.json'],
      code: 2,
      says: /^stockade check: expected exactly one FILE, found 2 \(see stockade check --help\)$/,
    },
    { args: ['approve', '--yes=no', 'p.json'], code: 2, says: /^stockade approve: --yes takes no value/ },
  ];
  for (const c of corpus) {
    it(`stockade ${c.args.join(' ')} -> exit ${c.code}`, () => {
      const r = cli(c.args);
      assert.equal(r.code, c.code, r.stderr);
      assert.doesNotMatch(r.stderr, STACK_LINE, r.stderr);
      assert.match(r.stderr.trimEnd(), c.says);
      // One line: a policy error lists its problems on indented lines below it, nothing else.
      const lines = r.stderr.trimEnd().split('\n');
      assert.ok(
        lines.slice(1).every((l) => l.startsWith('  ') && !/^\s+at /.test(l)),
        r.stderr,
      );
      if (!/policy/.test(lines[0]) && !c.args.includes('check')) assert.equal(lines.length, 1, r.stderr);
    });
  }

  it('a closed stdout (wrap --dry-run | head) ends quietly with the command status', async () => {
    const config = join(scratch, 'claude_desktop_config.json');
    writeFileSync(config, JSON.stringify({ mcpServers: { a: { command: 'npx', args: ['-y', 'a'] } } }));
    // A pipe whose read end is closed before the launcher writes: its first write gets EPIPE.
    const [readEnd, writeEnd] = native().pipe();
    closeSync(readEnd);
    const child = spawn(process.execPath, [launcher, 'wrap', '--dry-run', config], { stdio: ['ignore', writeEnd, 'pipe'] });
    closeSync(writeEnd);
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr += d));
    const code = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(stderr, '');
    assert.equal(code, 0);
  });
});

/** `stockade run` of a node one-liner, egress allowed for `allow`. */
function runNode(flags: string[], script: string) {
  return cli(['run', '--profile', 'node', ...flags, '--', 'node', '-e', script]);
}
// An HTTP request through the proxy variables the sandbox gets, whatever the target.
const viaProxy = (url: string) =>
  `{const p=new URL(process.env.HTTP_PROXY);require('http').get({host:p.hostname,port:p.port,path:${JSON.stringify(url)},headers:{host:new URL(${JSON.stringify(url)}).host}},r=>r.resume()).on('error',()=>{})}`;

describe('stockade run says what it denied', () => {
  it('a blocked host: one line the first time, and a summary counting repeats', () => {
    const r = runNode(['--allow-net', 'allowed.example'], `${viaProxy('http://evil.test/a')};${viaProxy('http://evil.test/b')}`);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.deepEqual(lines, [
      'stockade: blocked evil.test:80 (http): not allowed (no allowlist entry matches evil.test; to allow it: --allow-net evil.test, or network.allow in the policy)',
      'stockade: 2 denials in this run: evil.test:80 ×2 (--verbose or --audit FILE for every event)',
    ]);
  });

  it('the SSRF guard names the address class', () => {
    const r = runNode(['--allow-net', 'localhost:8080'], viaProxy('http://localhost:8080/'));
    assert.match(
      r.stderr,
      /^stockade: blocked localhost:8080 \(http\): SSRF guard: 127\.0\.0\.1 is a loopback address and no allowlist or resolve entry names it/m,
    );
  });

  it('the timeout', () => {
    const r = cli(['run', '--timeout', '1', '--', '/bin/sleep', '30']);
    assert.equal(r.code, 137);
    assert.match(r.stderr, /^stockade: timeout: the sandbox ran for 1 s \(--timeout, limits\.timeout\) and was killed$/m);
    assert.match(r.stderr, /^stockade: 1 denial in this run: timeout/m);
  });

  it('--net host shares the host network namespace and says so out loud; a run with nothing denied prints nothing', () => {
    // The network namespace's inode, inside and here: the same one with --net host, another without.
    const hostNs = readlinkSync('/proc/self/ns/net');
    const shared = cli(['run', '--net', 'host', '--', '/bin/readlink', '/proc/self/ns/net']);
    assert.equal(shared.code, 0, shared.stderr);
    assert.equal(shared.stdout, `${hostNs}\n`);
    assert.match(shared.stderr, /^stockade: warning: --net host: the sandbox shares this host network/);
    const quiet = cli(['run', '--', '/bin/readlink', '/proc/self/ns/net']);
    assert.equal(quiet.code, 0);
    assert.equal(quiet.stderr, '');
    assert.match(quiet.stdout, /^net:\[\d+\]\n$/);
    assert.notEqual(quiet.stdout, `${hostNs}\n`, 'without --net host: a namespace of its own');
  });

  it('--verbose prints readable lines, denials at WARN; --audit stays JSON lines', () => {
    const audit = join(scratch, 'audit.jsonl');
    const r = runNode(['--verbose', '--audit', audit, '--allow-net', 'allowed.example'], viaProxy('http://evil.test/'));
    assert.doesNotMatch(r.stderr, /^\{/m);
    assert.match(r.stderr, /^stockade \d\d:\d\d:\d\d\.\d{3} info {2}sandbox-start: /m);
    assert.match(r.stderr, /^stockade \d\d:\d\d:\d\d\.\d{3} WARN {2}egress: blocked evil\.test:80 \(http\): not allowed/m);
    const records = require('node:fs')
      .readFileSync(audit, 'utf8')
      .trim()
      .split('\n')
      .map((l: string) => JSON.parse(l));
    const denial = records.find((e: { event: string; decision?: string }) => e.event === 'egress' && e.decision === 'deny');
    assert.equal(denial.host, 'evil.test');
    assert.equal(denial.level, 40);
  });

  it('a refused tool call (MCP SDK client, server-everything)', async () => {
    const serverEntry = join(repoRoot, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [launcher, 'run', '--ro', join(repoRoot, 'node_modules'), '--tools', 'echo', '--', 'node', serverEntry, 'stdio'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr?.on('data', (d) => (stderr += d));
    const client = new Client({ name: 'stockade-test', version: '0.0.0' });
    await client.connect(transport);
    const refused = await client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } }).catch((e: Error) => e);
    assert.match(String((refused as Error).message), /not allowed by the stockade policy/);
    await client.close();
    assert.match(stderr, /^stockade: refused tool call "get-sum": tool "get-sum" is not allowed by the stockade policy$/m);
  });
});
