// Landlock alone (native/landlock.cc, lib/landlock.ts): the rules stockade derives from a real
// sandbox's mount plan are applied, by stockade's own C++ code compiled into a fixture
// (test/fixtures/landlock-run.cc), to a process OUTSIDE every namespace and mount — it sees the
// whole host filesystem, writable where the host lets it write. So each refusal below
// (EACCES, EPERM) is Landlock's alone, and each success shows a rule that mirrors a mount. The
// sandbox's own use of the same rules is shown at the end.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { flagsToPolicy, parseRunArgs } from '../lib/cli/flags';
import { FS, NET, tcpRules } from '../lib/landlock';
import { native } from '../lib/native';
import { resolveSandbox } from '../lib/plan';
import { policyToOptions } from '../lib/policy/resolve';
import { validatePolicy } from '../lib/policy/validate';
import { repoRoot, run, sharedTempDir } from './helpers';

const execFileAsync = promisify(execFile);
const abi = native().landlockAbi();

describe('Landlock rules, applied outside the mount layer', { skip: abi < 2 && `Landlock ABI ${abi} on this kernel` }, () => {
  // Not under /tmp: the plan grants /tmp read-write, as the sandbox's private /tmp. Made now,
  // since the test names below carry its paths; removed after.
  const base = fs.mkdtempSync('/var/tmp/stockade-landlock-');
  const fixture = path.join(base, 'ro', 'landlock-run');
  let rules: string[] = [];
  let server: net.Server | undefined;
  const abstractName = `stockade-landlock-test-${process.pid}`;

  before(async () => {
    fs.chmodSync(base, 0o755);
    for (const d of ['ro', 'rw', 'hidden']) fs.mkdirSync(path.join(base, d), { mode: 0o777 });
    fs.chmodSync(path.join(base, 'rw'), 0o777);
    fs.writeFileSync(path.join(base, 'ro', 'file'), 'read only\n', { mode: 0o666 });
    fs.writeFileSync(path.join(base, 'hidden', 'secret'), 'secret\n', { mode: 0o666 });
    execFileSync('c++', [
      '-O1',
      '-static',
      '-std=gnu++17',
      '-D_GNU_SOURCE',
      `-I${path.join(repoRoot, 'native')}`,
      '-o',
      fixture,
      path.join(repoRoot, 'test', 'fixtures', 'landlock-run.cc'),
    ]);
    fs.copyFileSync(fixture, path.join(base, 'hidden', 'program'));
    fs.chmodSync(path.join(base, 'hidden', 'program'), 0o755);
    // The rules of a real sandbox that binds ro/ read-only and rw/ read-write.
    const { plan } = resolveSandbox('/bin/true', [], {
      filesystem: { readOnly: [path.join(base, 'ro')], readWrite: [path.join(base, 'rw')] },
    });
    const landlock = plan.landlock;
    assert.ok(landlock);
    rules = [`handled=${landlock.handledFs}`, ...landlock.rules.map((r) => `rule=${r.access}:${r.path}`), 'scope'];
    server = net.createServer((c) => c.end()).listen(`\0${abstractName}`);
    await new Promise((resolve) => server?.once('listening', resolve));
  });

  after(() => {
    server?.close();
    fs.rmSync(base, { recursive: true, force: true });
  });

  async function outcomes(ops: string[], withRules = true): Promise<Map<string, string>> {
    const { stdout } = await execFileAsync(fixture, [...(withRules ? rules : []), '--', ...ops]);
    const map = new Map<string, string>();
    for (const line of stdout.trim().split('\n')) {
      const space = line.lastIndexOf(' ');
      map.set(line.slice(0, space), line.slice(space + 1));
    }
    return map;
  }

  const p = (rel: string) => path.join(base, rel);
  const cases = (): [op: string, outcome: string, why: string][] => [
    [`read:${p('ro/file')}`, 'ok', 'a read-only bind is readable'],
    [`write:${p('ro/file')}`, 'errno=EACCES', 'a read-only bind is not writable (the host would allow it)'],
    [`truncate:${p('ro/file')}`, 'errno=EACCES', 'a read-only bind cannot be truncated'],
    [`mkdir:${p('ro/dir')}`, 'errno=EACCES', 'nothing is created in a read-only bind'],
    [`exec:${fixture}`, 'ok', 'a read-only bind is executable'],
    [`write:${p('rw/new')}`, 'ok', 'a read-write bind takes new files'],
    [`truncate:${p('rw/new')}`, 'ok', 'a read-write bind allows truncation'],
    [`mkdir:${p('rw/dir')}`, 'ok', 'a read-write bind takes directories'],
    [`rename:${p('rw/new')}:${p('rw/dir/new')}`, 'ok', 'rename across directories of a read-write bind (REFER)'],
    [`rename:${p('rw/dir/new')}:${p('hidden/moved')}`, 'errno=EACCES', 'nothing is moved out of the grants'],
    [`read:${p('hidden/secret')}`, 'errno=EACCES', 'a host file outside every mount is not readable'],
    [`write:${p('hidden/secret')}`, 'errno=EACCES', 'a host file outside every mount is not writable'],
    [`exec:${p('hidden/program')}`, 'errno=EACCES', 'a host program outside every mount does not run'],
    [`list:${p('hidden')}`, 'ok', 'directories can be listed anywhere (names, not contents: `ls /`)'],
    ['read:/etc/passwd', 'ok', 'a synthesized /etc file is readable'],
    ['read:/etc/debian_version', 'errno=EACCES', 'the rest of /etc is not'],
    ['read:/usr/bin/env', 'ok', '/usr is readable'],
    ['exec:/usr/bin/true', 'ok', '/usr is executable'],
    ['write:/dev/null', 'ok', 'the planned devices are writable'],
    ['read:/dev/urandom', 'ok', 'and readable'],
    ['read:/proc/self/status', 'ok', '/proc is readable'],
    ['write:/proc/self/comm', 'ok', 'and its writable files writable'],
    [`write:${p('rw2')}`, 'errno=EACCES', 'a sibling of a grant is not covered by it'],
    ...(abi >= 6
      ? ([
          [`abstract:${abstractName}`, 'errno=EPERM', 'an abstract unix socket outside the domain is unreachable (ABI 6 scope)'],
          [`signal:${process.pid}`, 'errno=EPERM', 'a process outside the domain cannot be signalled (ABI 6 scope)'],
        ] as [string, string, string][])
      : []),
  ];

  test('control: without the rules, the host allows every refused operation', async () => {
    const refused = cases().filter(([op, outcome]) => outcome !== 'ok' && !op.startsWith('rename:'));
    // Not the rename, which depends on the operations before it.
    const seen = await outcomes(
      refused.map(([op]) => op),
      false,
    );
    for (const [op] of refused) {
      if (op === 'read:/etc/debian_version' && !fs.existsSync('/etc/debian_version')) continue;
      assert.equal(seen.get(op), 'ok', op);
    }
    // Undo what the control created.
    fs.rmSync(p('ro/dir'), { recursive: true, force: true });
    fs.rmSync(p('rw2'), { force: true });
    fs.writeFileSync(p('ro/file'), 'read only\n');
  });

  describe('with the rules', () => {
    let seen: Map<string, string>;
    before(async () => {
      seen = await outcomes(cases().map(([op]) => op));
    });
    for (const [op, outcome, why] of cases()) {
      test(`${why} (${op.replace(base, '$BASE')} → ${outcome})`, {
        skip: op === 'read:/etc/debian_version' && !fs.existsSync(op.slice(5)) && 'no such file',
      }, () => {
        assert.equal(seen.get(op), outcome);
      });
    }
    test('the refused files are unchanged, byte for byte', () => {
      assert.equal(fs.readFileSync(p('ro/file'), 'utf8'), 'read only\n');
      assert.equal(fs.readFileSync(p('hidden/secret'), 'utf8'), 'secret\n');
      assert.equal(fs.existsSync(p('ro/dir')), false);
    });
  });

  describe('TCP by port (ABI 4), the rules of a proxy-mode sandbox', { skip: abi < 4 && `Landlock ABI ${abi}: no network rules` }, () => {
    // Real listeners on the host's 127.0.0.1, which this process (outside every network
    // namespace) reaches: `declared` is a local port of the policy, `other` is not. Two free
    // ports for bind(). Without the rules every operation below succeeds (the control).
    const servers: net.Server[] = [];
    let declared = 0;
    let other = 0;
    let freeDeclared = 0;
    let freeOther = 0;
    let tcpArgs: string[] = [];
    let listenerPorts: number[] = [];
    const listen = async () => {
      const server = net.createServer((c) => c.destroy());
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return (server.address() as net.AddressInfo).port;
    };
    const freePort = async () => {
      const port = await listen();
      await new Promise((resolve) => servers.pop()?.close(resolve));
      return port;
    };
    before(async () => {
      declared = await listen();
      other = await listen();
      freeDeclared = await freePort();
      freeOther = await freePort();
      const { plan, tcp } = resolveSandbox('/bin/true', [], { network: { allow: ['example.test'] }, localPorts: [declared, freeDeclared] });
      const landlock = plan.landlock;
      assert.ok(landlock?.handledNet && landlock.ports && tcp);
      listenerPorts = [...new Set((plan.listeners ?? []).filter((l) => l.type === 'tcp').map((l) => l.port))].sort((a, b) => a - b);
      tcpArgs = [`net=${landlock.handledNet}`, ...landlock.ports.map((r) => `port=${r.access}:${r.port}`)];
    });
    after(() => {
      for (const server of servers) server.close();
    });
    async function tcpOutcomes(ops: string[], withRules: boolean): Promise<Map<string, string>> {
      const { stdout } = await execFileAsync(fixture, [...(withRules ? tcpArgs : []), '--', ...ops]);
      return new Map(
        stdout
          .trim()
          .split('\n')
          .map((l) => [l.slice(0, l.lastIndexOf(' ')), l.slice(l.lastIndexOf(' ') + 1)]),
      );
    }
    // The ports exist only once `before` ran: each case names its operation by a function.
    const tcpCases: [op: () => string, outcome: string, why: string][] = [
      [() => `connect:${declared}`, 'ok', 'connect() to a declared local port'],
      [() => `connect:${other}`, 'errno=EACCES', 'connect() to any other port, though a server listens there'],
      [() => `connect6:${other}`, 'errno=EACCES', 'the same over IPv6 (refused before the address is looked at)'],
      [() => `bind:${freeDeclared}`, 'ok', 'bind() to a declared local port'],
      [() => `bind:${freeOther}`, 'errno=EACCES', 'bind() to any other port'],
      [() => 'bind:0', 'errno=EACCES', 'bind() to an ephemeral port (port 0) is not granted either'],
    ];

    test('control: without the rules, every refused operation succeeds on the host', async () => {
      const seen = await tcpOutcomes(
        tcpCases.map(([op]) => op()),
        false,
      );
      for (const op of tcpCases.map(([op]) => op())) {
        // ::1 has no listener on `other` (it listens on 127.0.0.1): refused by TCP, not by Landlock.
        assert.equal(seen.get(op), op.startsWith('connect6:') ? 'errno=ECONNREFUSED' : 'ok', op);
      }
    });

    describe('with the rules', () => {
      let seen: Map<string, string>;
      before(async () => {
        seen = await tcpOutcomes(
          tcpCases.map(([op]) => op()),
          true,
        );
      });
      for (const [op, outcome, why] of tcpCases) {
        test(`${why} → ${outcome}`, () => assert.equal(seen.get(op()), outcome, op()));
      }
    });

    test("the proxy's listener ports stay connectable (nothing listens on them here: ECONNREFUSED, not EACCES)", async () => {
      const seen = await tcpOutcomes(
        listenerPorts.map((p) => `connect:${p}`),
        true,
      );
      assert.deepEqual(listenerPorts, [53, 80, 443, 1080, 3128]);
      for (const p of listenerPorts) assert.notEqual(seen.get(`connect:${p}`), 'errno=EACCES', `port ${p}`);
    });

    test('TCP Fast Open connects without connect(): where Landlock does not see it, the sandbox turns it off', async () => {
      // sendto(MSG_FASTOPEN) to `other` goes through where connect() was EACCES (with the host's
      // net.ipv4.tcp_fastopen client bit; EOPNOTSUPP where the host has it off), unless the
      // kernel's Landlock checks Fast Open's implicit connect like connect() (landlock-lsm/linux
      // issue 41; this VM's 6.18.44 does): EACCES. The sandbox's own network namespace has
      // tcp_fastopen 0 either way (native/net.cc), tested in the sandbox below.
      const seen = await tcpOutcomes([`fastopen:${other}`], true);
      assert.ok(['ok', 'errno=EOPNOTSUPP', 'errno=EACCES'].includes(seen.get(`fastopen:${other}`) ?? ''), seen.get(`fastopen:${other}`));
    });
  });

  test('the rule set derives from the mounts: each read-only bind is read-only, each read-write bind read-write', () => {
    const { plan } = resolveSandbox('/bin/true', [], {
      filesystem: { readOnly: [p('ro')], readWrite: [p('rw')] },
    });
    const rights = new Map(plan.landlock?.rules.map((r) => [r.path, r.access]));
    const ro = rights.get(p('ro')) ?? 0;
    const rw = rights.get(p('rw')) ?? 0;
    assert.equal(ro & FS.writeFile, 0);
    assert.notEqual(rw & FS.writeFile, 0);
    assert.equal(rights.get('/'), FS.readDir);
    assert.equal(rights.get('/etc/passwd'), FS.readFile);
    assert.equal(rights.has(p('hidden')), false);
  });
});

describe('Landlock in the sandbox', () => {
  test('the start event lists the layers in force, Landlock with its ABI or why not', async () => {
    const { spawnSandboxed } = await import('../lib');
    const child = spawnSandboxed('/bin/true', [], { stdio: 'ignore' });
    const start = await new Promise<Record<string, unknown>>((resolve) =>
      child.on('audit', (e: Record<string, unknown>) => e.event === 'sandbox-start' && resolve(e)),
    );
    await child.exited;
    const layers = start.layers as string[];
    assert.ok(layers.some((l) => l.startsWith('seccomp default')));
    if (abi >= 2)
      assert.ok(
        layers.includes(`landlock ABI ${abi}: filesystem${abi >= 6 ? ', signals and abstract unix sockets scoped' : ''}`),
        layers.join('; '),
      );
    else assert.ok(layers.some((l) => l.startsWith('landlock unavailable')));
  });

  test('a sandboxed payload cannot signal a host process even with the pid namespace out of the way: EPERM vs ESRCH', {
    skip: abi < 6 && 'ABI 6 needed',
  }, async () => {
    // Inside, host pids do not exist (ESRCH from the pid namespace, the outer layer); the
    // scope is the second layer, shown above outside the namespaces.
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const r = await run('/bin/sh', ['-c', `kill -0 ${sleeper.pid} 2>&1; echo rc=$?`]);
      assert.match(r.stdout, /rc=1/);
    } finally {
      sleeper.kill();
    }
  });
});

describe('TCP rules by network mode (lib/landlock.ts tcpRules)', () => {
  const ports = (options: Parameters<typeof resolveSandbox>[2]) => {
    const { plan, tcp } = resolveSandbox('/bin/true', [], options);
    return { tcp, handledNet: plan.landlock?.handledNet, rules: plan.landlock?.ports };
  };

  test('proxy mode: connect to the listeners and the local ports, bind to the local ports only', () => {
    const r = ports({ network: { allow: ['example.test:8443'] }, localPorts: [9000, 9000, 7000] });
    assert.deepEqual(r.tcp, { connect: [53, 80, 443, 1080, 3128, 7000, 8443, 9000], bind: [7000, 9000] });
    assert.equal(r.handledNet, NET.bindTcp | NET.connectTcp);
    assert.deepEqual(
      r.rules?.find((p) => p.port === 9000),
      { port: 9000, access: NET.bindTcp | NET.connectTcp },
    );
    assert.deepEqual(
      r.rules?.find((p) => p.port === 3128),
      { port: 3128, access: NET.connectTcp },
    );
    assert.deepEqual(ports({ network: { allow: [] } }).tcp, { connect: [53, 80, 443, 1080, 3128], bind: [] });
  });

  test("none mode: TCP left to the namespace unless local ports are declared; 'host': never", () => {
    assert.equal(ports({}).tcp, undefined);
    assert.equal(ports({}).handledNet, undefined);
    assert.deepEqual(ports({ localPorts: [8080] }).tcp, { connect: [8080], bind: [8080] });
    assert.deepEqual(ports({ localPorts: [] }).tcp, { connect: [], bind: [] });
    assert.equal(tcpRules('host', [], undefined), undefined);
    assert.throws(() => resolveSandbox('/bin/true', [], { network: 'host', localPorts: [80] }), {
      message: /localPorts: restricts the sandbox's own network namespace; network 'host' has none/,
    });
  });

  test('one validator: bad ports are refused naming the entry, in the API, the policy and --local-port', () => {
    for (const [bad, message] of [
      [[0], /localPorts\[0\]: expected a TCP port from 1 to 65535, found 0/],
      [[1, 65536], /localPorts\[1\]: expected a TCP port from 1 to 65535, found 65536/],
      [['80'], /localPorts\[0\]: expected a TCP port from 1 to 65535, found "80"/],
      [80, /localPorts: expected an array of TCP ports, found 80/],
    ] as [unknown, RegExp][]) {
      assert.throws(() => resolveSandbox('/bin/true', [], { localPorts: bad as number[] }), { message }, String(bad));
    }
    assert.deepEqual(validatePolicy({ command: ['x'], localPorts: [8080] }), []);
    assert.match(validatePolicy({ command: ['x'], localPorts: [0] })[0]?.message ?? '', /localPorts/);
    assert.match(validatePolicy({ command: ['x'], network: 'host', localPorts: [80] })[0]?.message ?? '', /network 'host'/);
    assert.deepEqual(policyToOptions({ command: ['/bin/true'], localPorts: [8080] }).options.localPorts, [8080]);
    const { flags } = parseRunArgs(['--local-port', '8080', '--local-port', '9222', '--', '/bin/true']);
    assert.deepEqual(flagsToPolicy(flags).localPorts, [8080, 9222]);
    assert.throws(() => flagsToPolicy(parseRunArgs(['--local-port', 'x', '--', '/bin/true']).flags), /--local-port/);
  });
});

describe('TCP in the sandbox (ABI 4)', { skip: abi < 4 && `Landlock ABI ${abi}: no network rules` }, () => {
  // The payload probes ports of its own network namespace: each errno is what it sees.
  const probe = (ops: string) => `import socket
def attempt(what, port):
    s = socket.socket()
    try:
        if what == 'bind': s.bind(('127.0.0.1', port)); s.listen()
        elif what == 'tfo': s.sendto(b'x', socket.MSG_FASTOPEN, ('127.0.0.1', port))
        else: s.connect(('127.0.0.1', port))
        print(what, port, 'ok')
    except OSError as e:
        print(what, port, e.errno)
    return s
${ops}
`;
  const py = (script: string, options: Parameters<typeof run>[2]) => run('/usr/bin/python3', ['-c', script], options);

  test('proxy mode: an unlisted port is EACCES (it was ECONNREFUSED), Fast Open refused, the proxy reachable', async () => {
    const r = await py(probe("attempt('connect', 22)\nattempt('tfo', 22)\nattempt('connect', 3128)\nattempt('bind', 8080)"), {
      network: { allow: ['example.test'] },
    });
    // Fast Open: EOPNOTSUPP from the namespace's tcp_fastopen 0, or EACCES first where the
    // kernel's Landlock checks its implicit connect (the test above).
    assert.match(r.stdout, /^connect 22 13\ntfo 22 (95|13)\nconnect 3128 ok\nbind 8080 13\n$/, r.stderr);
  });

  test('proxy mode with a local port: the payload serves it and connects to it; the rest stays refused', async () => {
    const r = await py(
      probe(`l = attempt('bind', 8080)
c = attempt('connect', 8080)
a, _ = l.accept(); a.sendall(b'pong'); print(c.recv(4).decode())
attempt('bind', 8081)`),
      { network: { allow: ['example.test'] }, localPorts: [8080] },
    );
    assert.equal(r.stdout, 'bind 8080 ok\nconnect 8080 ok\npong\nbind 8081 13\n', r.stderr);
  });

  test('none mode: loopback unrestricted without local ports (port 0 works); with them, only those', async () => {
    const free = await py(probe("l = attempt('bind', 0)\nattempt('connect', l.getsockname()[1]).close()\nattempt('connect', 22)"), {});
    assert.match(free.stdout, /^bind 0 ok\nconnect \d+ ok\nconnect 22 111\n$/, free.stderr);
    const declared = await py(probe("attempt('bind', 0)\nattempt('bind', 8080)\nattempt('connect', 22)"), { localPorts: [8080] });
    assert.equal(declared.stdout, 'bind 0 13\nbind 8080 ok\nconnect 22 13\n', declared.stderr);
  });

  test('the start event names the ports', async () => {
    const { spawnSandboxed } = await import('../lib');
    const layersOf = async (options: Parameters<typeof spawnSandboxed>[2]) => {
      const child = spawnSandboxed('/bin/true', [], { stdio: 'ignore', ...options });
      const start = await new Promise<Record<string, unknown>>((resolve) =>
        child.on('audit', (e: Record<string, unknown>) => e.event === 'sandbox-start' && resolve(e)),
      );
      await child.exited;
      return (start.layers as string[]).filter((l) => l.startsWith('landlock tcp'));
    };
    assert.deepEqual(await layersOf({ network: { allow: ['example.test'] }, localPorts: [9222] }), [
      'landlock tcp: connect only to ports 53 80 443 1080 3128 9222; bind only to 9222',
    ]);
    assert.deepEqual(await layersOf({}), ['landlock tcp: left to the network namespace (network none, no localPorts)']);
    assert.deepEqual(await layersOf({ network: 'host' }), ['landlock tcp: not restricted (network host)']);
  });
});

describe('the MCP servers of the suite in proxy mode, TCP restricted by Landlock', { skip: abi < 4 && `Landlock ABI ${abi}` }, () => {
  const launcher = path.join(repoRoot, 'bin', 'stockade.js');
  const modules = path.join(repoRoot, 'node_modules');
  const entry = (pkg: string) => path.join(modules, '@modelcontextprotocol', pkg, 'dist', 'index.js');
  let dir = '';
  let auditDir = '';
  before(() => {
    dir = sharedTempDir('landlock-mcp');
    auditDir = sharedTempDir('landlock-mcp-audit');
    fs.chmodSync(dir, 0o777);
    fs.writeFileSync(path.join(dir, 'hello.txt'), 'hello\n', { mode: 0o666 });
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(auditDir, { recursive: true, force: true });
  });

  async function withServer(serverArgs: string[], flags: string[], use: (client: Client) => Promise<void>) {
    // Not in `dir`, which a test grants read-write: the audit log stays out of the sandbox's reach.
    const audit = path.join(auditDir, `audit-${process.hrtime.bigint()}.jsonl`);
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [launcher, 'run', '--allow-net', 'example.test', '--audit', audit, '--ro', modules, ...flags, '--', 'node', ...serverArgs],
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
    const start = fs
      .readFileSync(audit, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .find((e) => e.event === 'sandbox-start');
    assert.ok(
      ((start?.layers ?? []) as string[]).includes('landlock tcp: connect only to ports 53 80 443 1080 3128; bind only to none'),
      JSON.stringify(start?.layers),
    );
  }

  test('server-everything: tools list, echo', async () => {
    await withServer([entry('server-everything'), 'stdio'], [], async (client) => {
      const { tools } = await client.listTools();
      assert.ok(tools.some((t) => t.name === 'echo'));
      const r = (await client.callTool({ name: 'echo', arguments: { message: 'tcp' } })) as { content: { text: string }[] };
      assert.match(r.content[0].text, /tcp/);
    });
  });

  test('server-filesystem: read and list a granted directory', async () => {
    await withServer([entry('server-filesystem'), dir], ['--ro', dir], async (client) => {
      const read = (await client.callTool({ name: 'read_text_file', arguments: { path: path.join(dir, 'hello.txt') } })) as {
        content: { text: string }[];
      };
      assert.equal(read.content[0].text, 'hello\n');
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

describe('Landlock denials and the audit log (native/audit.cc)', () => {
  test('doctor says whether the records exist here and whether this uid could read them', () => {
    const { probeHost } = require('../lib/probe') as typeof import('../lib/probe');
    const { landlockAudit } = probeHost();
    assert.equal(landlockAudit.ok, false); // never violation events; a note, not a failure
    if (process.getuid?.() === 0) {
      // Root of the initial user namespace holds CAP_AUDIT_CONTROL and CAP_AUDIT_READ.
      assert.ok([0, 1].includes(landlockAudit.auditEnabled), String(landlockAudit.auditEnabled));
      assert.equal(landlockAudit.readLog, 0);
      assert.match(landlockAudit.detail, /its read-only log is joinable/);
    } else {
      assert.equal(landlockAudit.readLog, -1); // EPERM
      assert.match(landlockAudit.detail, /not joinable \(EPERM; needs CAP_AUDIT_READ\)/);
    }
    if (abi >= 7) assert.match(landlockAudit.detail, new RegExp(`Landlock ABI ${abi} logs denials to the kernel audit log only while`));
  });
});
