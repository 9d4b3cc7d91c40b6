// The strict seccomp profile (native/seccomp.cc, kStrictAllowed) keeps real workloads working:
// node and python3 doing what servers do (files, processes, threads, sockets, TLS setup, event
// loops), and the MCP servers of the suite driven by the official SDK client through
// `stockade run --seccomp strict`. Each run also checks that nothing was refused: a missing
// table entry would show as a named violation (test/seccomp.test.ts shows that they are named).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { type SandboxOptions, type SeccompViolation, spawnSandboxed } from '../lib';
import { repoRoot, sharedTempDir } from './helpers';

const launcher = path.join(repoRoot, 'bin', 'stockade.js');
const modules = path.join(repoRoot, 'node_modules');
const entry = (pkg: string) => path.join(modules, '@modelcontextprotocol', pkg, 'dist', 'index.js');

async function strictRun(command: string, args: string[], options: SandboxOptions = {}) {
  const child = spawnSandboxed(command, args, { stdio: ['ignore', 'pipe', 'pipe'], seccomp: 'strict', ...options });
  const violations: SeccompViolation[] = [];
  child.on('violation', (v: SeccompViolation) => violations.push(v));
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += d));
  child.stderr?.on('data', (d) => (stderr += d));
  const { exitCode, signalCode } = await child.exited;
  return { exitCode, signalCode, stdout, stderr, violations };
}

const NODE_WORK = `
const fs = require('fs'), http = require('http'), cp = require('child_process'), os = require('os');
const crypto = require('crypto'), zlib = require('zlib'), net = require('net'), dns = require('dns');
const { Worker } = require('worker_threads');
fs.writeFileSync('/tmp/x', 'y'); fs.renameSync('/tmp/x', '/tmp/z'); fs.readFileSync('/tmp/z'); fs.unlinkSync('/tmp/z');
fs.mkdtempSync('/tmp/d'); fs.readdirSync('/'); os.cpus(); os.networkInterfaces(); os.userInfo();
crypto.randomBytes(8); crypto.createHash('sha256').update('x').digest(); zlib.gzipSync('x');
cp.execSync('/bin/sh -c "echo hi >/dev/null; ls / >/dev/null"'); fs.watch('/tmp', () => {}).close();
new Worker('1 + 1', { eval: true }).on('exit', () => {
  const s = http.createServer((q, r) => r.end('ok')).listen(0, '127.0.0.1', async () => {
    const r = await fetch('http://127.0.0.1:' + s.address().port + '/');
    const body = await r.text();
    dns.lookup('localhost', () => {
      const u = net.createServer((c) => c.end()).listen('/tmp/sock', () => {
        net.connect('/tmp/sock').on('close', () => { u.close(); s.close(); console.log('node ' + body); });
      });
    });
  });
});`;

const PYTHON_WORK = `
import os, json, asyncio, ssl, socket, subprocess, threading, tempfile, hashlib, sqlite3, multiprocessing
import concurrent.futures, signal, select, mmap, shutil, uuid
tempfile.mkdtemp(); subprocess.run(['/bin/true'], check=True); subprocess.run('echo hi >/dev/null', shell=True, check=True)
t = threading.Thread(target=lambda: None); t.start(); t.join()
ssl.create_default_context(); os.urandom(8); uuid.uuid4(); hashlib.sha256(b'x').hexdigest()
sqlite3.connect(':memory:').execute('create table t(x)')
with concurrent.futures.ThreadPoolExecutor(2) as ex: list(ex.map(abs, [1, -2]))
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(); c = socket.create_connection(srv.getsockname())
a, _ = srv.accept(); a.send(b'x'); assert c.recv(1) == b'x'
async def main():
    server = await asyncio.start_server(lambda r, w: w.close(), '127.0.0.1', 0)
    r, w = await asyncio.open_connection(*server.sockets[0].getsockname()); w.close()
asyncio.run(main())
with multiprocessing.Pool(2) as p: assert p.map(abs, [-1, 2]) == [1, 2]
m = mmap.mmap(-1, 4096); m.close(); select.select([], [], [], 0); shutil.copy('/etc/hostname', '/tmp/h')
signal.signal(signal.SIGUSR1, lambda *a: None); os.kill(os.getpid(), signal.SIGUSR1)
print('python ok')`;

describe('strict profile: interpreters', () => {
  test('node: files, processes, a worker, http server and fetch, dns, unix sockets, fs.watch', async () => {
    const r = await strictRun('node', ['-e', NODE_WORK], { filesystem: { readOnly: [path.dirname(process.execPath)] } });
    assert.deepEqual(r.violations, []);
    assert.equal(r.signalCode, null, r.stderr);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, 'node ok\n');
  });

  test('python3: subprocess, threads, multiprocessing, asyncio, ssl, sqlite3, sockets, mmap, signals', async () => {
    const r = await strictRun('python3', ['-c', PYTHON_WORK]);
    assert.deepEqual(r.violations, []);
    assert.equal(r.signalCode, null, r.stderr);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, 'python ok\n');
  });

  test('sh, coreutils: ls, cat, cp, mv, rm, find, sort', async () => {
    const r = await strictRun('/bin/sh', [
      '-c',
      'cd /tmp && echo b > f && cp f g && mv g h && cat f h | sort | uniq && find . -name h && ls -la / >/dev/null && rm f h && echo done',
    ]);
    assert.deepEqual(r.violations, []);
    assert.equal(r.stdout, 'b\n./h\ndone\n');
  });
});

describe('strict profile: the MCP servers of the suite, through stockade run --seccomp strict', () => {
  let dir = '';
  before(() => {
    dir = sharedTempDir('strict-mcp');
    fs.chmodSync(dir, 0o777);
    fs.writeFileSync(path.join(dir, 'hello.txt'), 'hello\n', { mode: 0o666 });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function withServer(serverArgs: string[], flags: string[], use: (client: Client) => Promise<void>) {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [launcher, 'run', '--seccomp', 'strict', '--ro', modules, ...flags, '--', 'node', ...serverArgs],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr?.on('data', (d) => (stderr += d));
    const client = new Client({ name: 'stockade-test', version: '0.0.0' });
    await client.connect(transport);
    try {
      await use(client);
    } finally {
      await client.close();
    }
    assert.doesNotMatch(stderr, /stockade: (killed|refused)/);
  }

  test('server-everything: tools list, echo, add', async () => {
    await withServer([entry('server-everything'), 'stdio'], [], async (client) => {
      const { tools } = await client.listTools();
      assert.ok(tools.some((t) => t.name === 'echo'));
      const r = (await client.callTool({ name: 'echo', arguments: { message: 'strict' } })) as { content: { text: string }[] };
      assert.match(r.content[0].text, /strict/);
    });
  });

  test('server-filesystem: read, write, list in a granted directory', async () => {
    await withServer([entry('server-filesystem'), dir], ['--rw', dir], async (client) => {
      const read = (await client.callTool({ name: 'read_text_file', arguments: { path: path.join(dir, 'hello.txt') } })) as {
        content: { text: string }[];
      };
      assert.equal(read.content[0].text, 'hello\n');
      await client.callTool({ name: 'write_file', arguments: { path: path.join(dir, 'new.txt'), content: 'written' } });
      assert.equal(fs.readFileSync(path.join(dir, 'new.txt'), 'utf8'), 'written');
      const list = (await client.callTool({ name: 'list_directory', arguments: { path: dir } })) as { content: { text: string }[] };
      assert.match(list.content[0].text, /hello\.txt/);
    });
  });

  test('server-memory: create and read entities', async () => {
    await withServer(
      [entry('server-memory')],
      ['--env', `MEMORY_FILE_PATH=${path.join(dir, 'memory.json')}`, '--rw', dir],
      async (client) => {
        await client.callTool({ name: 'create_entities', arguments: { entities: [{ name: 'a', entityType: 't', observations: ['x'] }] } });
        const r = (await client.callTool({ name: 'read_graph', arguments: {} })) as { content: { text: string }[] };
        assert.match(r.content[0].text, /"a"/);
      },
    );
  });
});

describe('choosing the profile: one validator for the option, the policy field and --seccomp', () => {
  test("the API option: 'strict' and 'default' are taken, anything else throws naming the field", () => {
    assert.throws(() => spawnSandboxed('/bin/true', [], { seccomp: 'lenient' as 'strict' }), {
      name: 'SandboxOptionsError',
      message: /seccomp: expected 'default' or 'strict', found "lenient"/,
    });
  });

  test('the policy field and the flag reach the sandbox options', async () => {
    const { policyToOptions, validatePolicy } = await import('../lib/policy');
    const { mergeFlags, parseRunArgs } = await import('../lib/cli/flags');
    assert.deepEqual(validatePolicy({ command: ['x'], seccomp: 'strict' }), []);
    assert.equal(validatePolicy({ command: ['x'], seccomp: 'lenient' }).length, 1);
    assert.equal(policyToOptions({ command: ['/bin/true'], seccomp: 'strict' }).options.seccomp, 'strict');
    const { flags } = parseRunArgs(['--seccomp', 'strict', '--', '/bin/true']);
    assert.equal(policyToOptions(mergeFlags({}, flags)).options.seccomp, 'strict');
  });

  test('stockade doctor reports the Landlock ABI and what it enforces', async () => {
    const { probeHost } = await import('../lib');
    const report = probeHost();
    if (report.landlock.abi >= 2) {
      assert.ok(report.landlock.enforced.includes('filesystem rules mirroring the mounts'));
      assert.match(report.landlock.detail, new RegExp(`^Landlock ABI ${report.landlock.abi}, enforced under the mounts: `));
    } else {
      assert.deepEqual(report.landlock.enforced, []);
      assert.match(report.landlock.detail, /not used|unavailable/);
    }
    assert.match(report.seccomp.detail, /violations are (not )?named/);
  });
});
