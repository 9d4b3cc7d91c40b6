// The tool layer on native/toolrelay.cc's threads, against the reference: every message of a
// hostile corpus goes through wireToolFilter (Node streams) and through wireNativeToolFilter
// (real pipes, the relay's two threads), and the server and the client must receive the same
// bytes, with the same records. Then what only the threads do: backpressure, a client that goes
// away, close() wherever a thread waits, and `stockade run --tools` choosing the threads.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { type ToolCallEvent, type ToolFilter, type ToolFilterOptions, wireToolFilter } from '../lib/mcp/filter';
import { wireNativeToolFilter } from '../lib/mcp/native-relay';
import { native } from '../lib/native';

const root = path.join(__dirname, '..', '..');
const launcher = path.join(root, 'bin', 'stockade.js');
const serverEverything = path.join(root, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');

interface Outcome {
  toServer: Buffer;
  toClient: Buffer;
  calls: Omit<ToolCallEvent, 'durationMs'>[];
  refused: unknown[];
  errors: string[];
}

function record(filter: ToolFilter): Pick<Outcome, 'calls' | 'refused' | 'errors'> {
  const out = { calls: [] as Outcome['calls'], refused: [] as unknown[], errors: [] as string[] };
  filter.on('tool-call', ({ durationMs: _, ...e }: ToolCallEvent) => out.calls.push(e));
  filter.on('refused-message', (e) => out.refused.push(e));
  filter.on('error', (e: Error) => out.errors.push(e.message));
  return out;
}

/** The reference: the client's bytes, then (once they are through) the server's. */
async function throughStreams(client: Buffer, server: Buffer, options: ToolFilterOptions): Promise<Outcome> {
  const fromClient = new PassThrough();
  const fromServer = new PassThrough();
  const sink = () => {
    const chunks: Buffer[] = [];
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const stream = new Writable({
      write(chunk, _e, cb) {
        chunks.push(Buffer.from(chunk));
        cb();
      },
      final(cb) {
        done();
        cb();
      },
    });
    return { stream, bytes: () => Buffer.concat(chunks), finished };
  };
  const toServer = sink();
  const toClient = sink();
  const filter = wireToolFilter({ fromClient, toClient: toClient.stream, toServer: toServer.stream, fromServer }, options);
  const rec = record(filter);
  fromClient.end(client);
  await toServer.finished;
  fromServer.end(server);
  await toClient.finished;
  return { toServer: toServer.bytes(), toClient: toClient.bytes(), ...rec };
}

/** A stream over one end of a native pipe (the test's side). */
function socketOf(fd: number, readable: boolean): net.Socket {
  return new net.Socket({ fd, readable, writable: !readable });
}

function readAll(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve, reject) => {
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

interface Wired {
  filter: ToolFilter;
  client: net.Socket; // the test writes what the client sends
  fromRelay: Promise<Buffer>; // what the client receives, until the relay closes
  serverStdin: net.Socket; // what the server receives
  server: net.Socket; // the test writes what the server sends
}

/** The relay on four real pipes; the test holds the client's and the server's far ends. */
function wireNative(options: ToolFilterOptions, recordDelayMs = 0): Wired {
  const n = native();
  const [clientR, clientW] = n.pipe();
  const [outR, outW] = n.pipe();
  const [inR, inW] = n.pipe();
  const [srvR, srvW] = n.pipe();
  const filter = wireNativeToolFilter({ clientIn: clientR, clientOut: outW, serverIn: inW, serverOut: srvR }, options, recordDelayMs);
  // The relay holds its own duplicates of the client's fds.
  n.closeFd(clientR);
  n.closeFd(outW);
  const fromRelay = readAll(socketOf(outR, true));
  return { filter, client: socketOf(clientW, false), fromRelay, serverStdin: socketOf(inR, true), server: socketOf(srvW, false) };
}

async function throughThreads(client: Buffer, server: Buffer, options: ToolFilterOptions): Promise<Outcome> {
  const w = wireNative(options);
  const rec = record(w.filter);
  const closed = new Promise<void>((r) => w.filter.once('close', r));
  const toServer = readAll(w.serverStdin);
  w.client.end(client);
  const received = await toServer; // the relay ends the server's stdin after the client's EOF
  w.server.end(server);
  await w.filter.serverDone();
  await closed;
  w.filter.close();
  return { toServer: received, toClient: await w.fromRelay, ...rec };
}

/** Both paths through the same input: the threads pass on exactly the bytes and records the reference does. */
async function sameThroughBoth(client: Buffer, server: Buffer, options: ToolFilterOptions): Promise<Outcome> {
  const reference = await throughStreams(client, server, options);
  const threads = await throughThreads(client, server, options);
  assert.deepEqual(threads.errors, []);
  assert.equal(threads.toServer.toString('latin1'), reference.toServer.toString('latin1'));
  assert.equal(threads.toClient.toString('latin1'), reference.toClient.toString('latin1'));
  assert.deepEqual(threads.calls, reference.calls);
  assert.deepEqual(threads.refused, reference.refused);
  return reference;
}

const lines = (...xs: (string | Buffer)[]) => Buffer.concat(xs.map((x) => Buffer.concat([Buffer.from(x), Buffer.from('\n')])));
const call = (id: unknown, name: string, extra = '') =>
  `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"method":"tools/call","params":{"name":${JSON.stringify(name)},"arguments":{"message":"m"}${extra}}}`;
const deep = (n: number) => `{"jsonrpc":"2.0","id":50,"method":"ping","params":${'['.repeat(n)}${']'.repeat(n)}}`;
const manyKeys = (dup: boolean) =>
  `{"jsonrpc":"2.0","id":51,"method":"tools/call","params":{"name":"echo","arguments":{${Array.from({ length: 20 }, (_, i) => `"k${i}":${i}`).join(',')}${dup ? ',"k7":0' : ''}}}}`;

// Every message is one a client could send; the comment says what the reference does with it.
const clientCorpus = lines(
  '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}',
  '{"jsonrpc":"2.0","method":"notifications/initialized"}',
  '{"jsonrpc":"2.0","id":9,"method":"tools/list"}', // remembered
  call(1, 'echo'), // allowed: passes, recorded
  call(2, 'add'), // refused
  call('s3', 'fs_read'), // allowed by fs_*
  call(4, 'fs'), // refused: fs_* needs the underscore
  '{"jsonrpc":"2.0","id":5,"method":"tools\\/call","params":{"name":"add"}}', // escaped method: refused
  '{"jsonrpc":"2.0","id":6,"method":"\\u0074ools/call","params":{"name":"add"}}',
  '{"jsonrpc":"2.0","id":7,"m\\u0065thod":"tools/call","params":{"name":"add"}}', // escaped key
  '{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"a\\u0064d"}}', // escaped name: refused
  '{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"ech\\u006f","arguments":{}}}', // allowed
  '{"jsonrpc":"2.0","id":11,"method":"tools/list","method":"tools/call","params":{"name":"add"}}', // duplicate keys
  '{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"echo","name":"add"}}',
  deep(127), // at the limit: passes
  deep(200), // too deep
  Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":13,"method":"ping","params":{"x":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}}')]),
  Buffer.concat([
    Buffer.from('{"jsonrpc":"2.0","id":14,"method":"ping","params":{"x":"'),
    Buffer.from([0xed, 0xa0, 0x80]),
    Buffer.from('"}}'),
  ]),
  '{"jsonrpc":"2.0","id":NaN,"method":"ping"}',
  '{"jsonrpc":"2.0","id":15,"method":"ping",}',
  '{"jsonrpc":"2.0","id":016,"method":"ping"}',
  '{"jsonrpc":"2.0","id":-0,"method":"ping","params":{"a":1e5,"b":-2.5E-3,"c":"\\ud800"}}', // passes
  Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"jsonrpc":"2.0","id":17,"method":"ping"}')]), // BOM
  '{"jsonrpc":"2.0","id":18,"method":"ping","params":{"x":"a\tb"}}', // raw tab in a string
  '',
  '\r',
  ' \t ',
  '42',
  '"tools/call"',
  'null',
  `[${call(19, 'echo')},${call(20, 'add')}]`, // batch: the allowed part goes on
  '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"add"}}', // refused notification: no answer
  '{"jsonrpc":"2.0","id":21,"method":"tools/call","params":["echo"]}',
  '{"jsonrpc":"2.0","id":22,"method":"tools/call","params":{"name":7}}',
  '{"jsonrpc":"2.0","id":23,"method":"tools/call"}',
  call(24, 'ech\u2028o'), // '*' in ech* does not match U+2028 (RegExp '.')
  call(25, 'echo\u00e9'), // allowed by ech*: any other character is matched
  '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}',
  call(26, 'echo'),
  manyKeys(false),
  manyKeys(true),
  '{"__proto__":{"method":"tools/call"},"method":"ping","id":27}',
  '{"jsonrpc":"2.0","id":28,"method":5}',
  '{"jsonrpc":"2.0","id":29,"result":{}}', // the client's answer to a server request
  `{"jsonrpc":"2.0","id":30,"method":"ping","params":{"pad":"${'x'.repeat(5000)}"}}`, // over maxMessageBytes
  `{"jsonrpc":"2.0","id":31,"method":"tools/call","params":{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`,
  '{"jsonrpc":"2.0","id":32,"method":"tools/call","params":{"name":"echo"}} trailing',
  '{"jsonrpc":"2.0","id":33,"method":"tools/call","params":{"name":"echo"}}{}',
  '{"jsonrpc":"2.0","id":34,"method":"tools/call","params":{"name":"echo","arguments":{"s":"\\"}\\\\"}}}',
  '{"jsonrpc":"2.0","id":35,"method":"tools/call","params":{"name":"echo","arguments":{"s":"\\x"}}}',
  '{"jsonrpc":"2.0","id":36,"method":"tools/call","params":{"name":"echo","arguments":{"s":"\\u12"}}}',
  '{"jsonrpc":"2.0","id":37,"method":"tools/call","params":{"name":"echo"',
  'tru',
  '{"jsonrpc":"2.0","id":38,"method":"tools/call","params":{"name":"echo","arguments":[1,2,[3,{"a":[]}],true,false,null]}}',
);
// A last line without '\n' is read like any other.
const clientCorpusEnd = Buffer.from(call(39, 'add'));

const serverCorpus = lines(
  '{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"s","version":"0"}}}',
  '{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"Echo: m"}]}}', // completes call 1
  '{"jsonrpc":"2.0","id":"s3","result":{"content":[],"isError":true}}', // an error outcome
  '{"jsonrpc":"2.0","id":10,"error":{"code":-32000,"message":"boom"}}',
  '{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"echo"},{"name":"add"},{"name":"fs_x"}]}}', // filtered
  '{"jsonrpc":"2.0","id":"9","result":{"tools":[{"name":"add"}]}}', // unmatched list: filtered all the same
  '{"jsonrpc":"2.0","id":77,"result":{"tools":"not a list"}}',
  '{"jsonrpc":"2.0","id":26,"result":{"tools":[{"name":"add"}]}}', // answers call 26: passes
  '{"jsonrpc":"2.0","id":25,"result":{"a":1,"a":2}}', // duplicate keys: re-serialized
  Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":31,"result":{"x":"'), Buffer.from([0xff]), Buffer.from('"}}')]), // invalid UTF-8
  '{"jsonrpc":"2.0","id":19,"result":{}, }', // not JSON: dropped
  deep(200).replace('"method":"ping",', ''),
  '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}',
  '{"jsonrpc":"2.0","id":"srv-1","method":"sampling/createMessage","params":{"messages":[]}}',
  '{"jsonrpc":"2.0","method":"tools/list","result":{"tools":[{"name":"add"}]}}', // has a method: passes
  `[{"jsonrpc":"2.0","id":38,"result":{}},{"jsonrpc":"2.0","id":100,"result":{"tools":[{"name":"add"}]}}]`,
  `{"jsonrpc":"2.0","id":101,"result":{"pad":"${'y'.repeat(5000)}"}}`, // over maxMessageBytes
  '{"jsonrpc":"2.0","id":31,"result":{"resultType":"input_required"}}',
  '',
  '{"jsonrpc":"2.0","id":102,"result":{}}',
);
// A last line without '\n' goes out as it came, unread (no client parses it).
const serverCorpusEnd = Buffer.from('{"jsonrpc":"2.0","id":103,"result":{"tools":[{"name":"add"}]}}');

describe('the native tool relay against the reference filter', () => {
  const cases: [string, ToolFilterOptions][] = [
    ['an allowlist with patterns', { tools: ['echo', 'fs_*', 'ech*'], maxMessageBytes: 4096 }],
    ['nothing allowed', { tools: [], maxMessageBytes: 4096 }],
    ['everything allowed', { tools: ['*'], maxMessageBytes: 4096, maxDepth: 16 }],
    [
      'a gate after the allowlist (every call deferred)',
      {
        tools: ['*'],
        maxMessageBytes: 4096,
        gate: { filterList: (tools) => tools.slice(0, 1), refuseCall: (name) => (name === 'echo' ? undefined : `${name} is not pinned`) },
      },
    ],
  ];
  for (const [name, options] of cases) {
    it(`delivers the same bytes and records: ${name}`, async () => {
      const client = Buffer.concat([clientCorpus, clientCorpusEnd]);
      const server = Buffer.concat([serverCorpus, serverCorpusEnd]);
      const reference = await sameThroughBoth(client, server, options);
      // The corpus does reach every branch: something was refused, something passed.
      assert.ok(reference.refused.length > 5 && reference.toServer.length > 500 && reference.toClient.length > 500);
    });
  }

  it('delivers the same bytes for 2,000 mutations of the corpus (seeded: the same every run)', async () => {
    let seed = 0x5eed;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    // Bytes that change what a message means: quotes, escapes, structure, separators, high bytes.
    const alphabet = Buffer.from('"\\{}[]:,u0aeE-+.\t \r nt/_*');
    const mutate = (line: Buffer) => {
      const b = Buffer.from(line);
      const at = rand(Math.max(1, b.length));
      switch (rand(4)) {
        case 0:
          b[at] = alphabet[rand(alphabet.length)];
          return b;
        case 1:
          b[at] = 0x80 + rand(0x80);
          return b;
        case 2:
          return Buffer.concat([b.subarray(0, at), b.subarray(rand(b.length)), b.subarray(at)]).subarray(0, 6000);
        default:
          return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rand(4))]);
      }
    };
    const corpusLines = (bytes: Buffer) =>
      bytes
        .toString('latin1')
        .split('\n')
        .slice(0, -1)
        .map((l) => Buffer.from(l, 'latin1'));
    const clientLines = corpusLines(clientCorpus);
    const serverLines = corpusLines(serverCorpus);
    const options: ToolFilterOptions = { tools: ['echo', 'fs_*'], maxMessageBytes: 4096 };
    for (let round = 0; round < 4; round++) {
      const pick = (from: Buffer[]) => Array.from({ length: 250 }, () => mutate(from[rand(from.length)]).filter((c) => c !== 0x0a));
      const client = lines(...pick(clientLines).map((x) => Buffer.from(x)));
      const server = lines(...pick(serverLines).map((x) => Buffer.from(x)));
      await sameThroughBoth(client, server, options);
    }
  });

  it('delivers the same bytes when messages arrive a byte at a time and in large writes', async () => {
    const options: ToolFilterOptions = { tools: ['echo'], maxMessageBytes: 4096 };
    const reference = await throughStreams(clientCorpus, serverCorpus, options);
    const w = wireNative(options, 5);
    const rec = record(w.filter);
    const toServer = readAll(w.serverStdin);
    for (let i = 0; i < 600; i++) w.client.write(clientCorpus.subarray(i, i + 1));
    w.client.end(clientCorpus.subarray(600));
    assert.equal((await toServer).toString('latin1'), reference.toServer.toString('latin1'));
    for (let i = 0; i < serverCorpus.length; i += 7) w.server.write(serverCorpus.subarray(i, i + 7));
    w.server.end();
    await w.filter.serverDone();
    w.filter.close();
    assert.equal((await w.fromRelay).toString('latin1'), reference.toClient.toString('latin1'));
    assert.deepEqual(rec.calls, reference.calls);
    assert.deepEqual(rec.errors, []);
  });
});

describe('the native tool relay on its own', () => {
  it('says which calls are in flight as soon as their bytes reach the server, even while records wait', async () => {
    const w = wireNative({ tools: ['echo'] }, 1000);
    const stdin = w.serverStdin;
    const got = new Promise<Buffer>((r) => stdin.once('data', r));
    w.client.write(lines(call(1, 'echo')));
    await got;
    assert.deepEqual(
      w.filter.activeCalls().map((c) => [c.id, c.tool]),
      [[1, 'echo']],
    );
    w.client.end();
    w.server.end();
    await w.filter.serverDone();
    w.filter.close();
    await w.fromRelay;
  });

  it('stops reading the client while the server does not read, and close() ends it there', async () => {
    const w = wireNative({ tools: ['echo'] });
    // 4 MiB of allowed calls: far more than the two pipes hold while nobody reads the server's stdin.
    const one = lines(call(1, 'echo', `,"pad":"${'p'.repeat(1000)}"`));
    let written = 0;
    let blocked = false;
    while (written < 4 * 1024 * 1024) {
      written += one.length;
      if (!w.client.write(one)) {
        blocked = true;
        break;
      }
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(blocked || w.client.writableLength > 0, 'the client side filled up');
    // Threads waiting in poll() on a full pipe stop when asked.
    w.filter.close();
    w.client.destroy();
    w.server.destroy();
    w.serverStdin.destroy();
    await w.fromRelay;
  });

  it('ends the server stdin and reports the client gone when the client stops reading (EPIPE)', async () => {
    const n = native();
    const [clientR, clientW] = n.pipe();
    const [outR, outW] = n.pipe();
    const [inR, inW] = n.pipe();
    const [srvR, srvW] = n.pipe();
    const filter = wireNativeToolFilter({ clientIn: clientR, clientOut: outW, serverIn: inW, serverOut: srvR }, { tools: ['echo'] });
    n.closeFd(clientR);
    n.closeFd(outW);
    n.closeFd(outR); // the client closed its end of our stdout
    const gone = new Promise<void>((r) => filter.once('client-closed', () => r()));
    const stdin = readAll(socketOf(inR, true));
    const server = socketOf(srvW, false);
    server.write(lines('{"jsonrpc":"2.0","id":1,"result":{}}'));
    await gone;
    assert.equal((await stdin).length, 0); // EOF, as a client shutting a stdio server down sends
    // What the server still writes is read and dropped: it is never blocked on a full pipe.
    for (let i = 0; i < 200; i++) server.write(lines(`{"jsonrpc":"2.0","id":${i},"result":{"pad":"${'z'.repeat(4000)}"}}`));
    server.end();
    await filter.serverDone();
    filter.close();
    socketOf(clientW, false).destroy();
  });

  it('passes on a flood of 100,000 responses in order, its copies for the records bounded', async () => {
    const w = wireNative({ tools: ['echo'] }, 5);
    const rec = record(w.filter);
    w.client.end();
    const flood = Buffer.concat(Array.from({ length: 100_000 }, (_, i) => Buffer.from(`{"id":${i},"result":{}}\n`)));
    w.server.end(flood);
    await w.filter.serverDone();
    w.filter.close();
    const got = await w.fromRelay;
    assert.equal(got.length, flood.length);
    assert.ok(got.equals(flood));
    assert.deepEqual(rec.errors, []);
  });

  it('leaves a message deeper than it reads (1,024 levels) to the filter, whatever the filter allows', async () => {
    const options: ToolFilterOptions = { tools: ['echo'], maxDepth: 1_000_000 };
    const message = lines(`{"jsonrpc":"2.0","id":1,"method":"ping","params":${'['.repeat(100_000)}${']'.repeat(100_000)}}`, call(2, 'add'));
    const reference = await throughStreams(message, Buffer.alloc(0), options);
    const threads = await throughThreads(message, Buffer.alloc(0), options);
    assert.ok(threads.toServer.equals(reference.toServer));
    assert.ok(threads.toServer.length > 200_000);
    assert.equal(threads.toClient.toString(), reference.toClient.toString());
  });

  it('refuses bad arguments with a TypeError', () => {
    const { ToolRelay } = native();
    assert.throws(() => new ToolRelay('echo' as unknown as string[], false, 1, 1, () => {}), TypeError);
    assert.throws(() => new ToolRelay([1 as unknown as string], false, 1, 1, () => {}), /strings only/);
    assert.throws(() => new ToolRelay([], false, 0, 1, () => {}), /must be positive/);
    const relay = new ToolRelay([], false, 1, 1, () => {});
    assert.throws(() => relay.start(0, 1, 'x' as unknown as number, 3), /four fds/);
    assert.equal(relay.start(-1, 1, -1, -1), 9 /* EBADF */);
    relay.close();
  });
});

describe('stockade run --tools', () => {
  const initialize =
    '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}';

  /** The launcher with pipes (as MCP clients start it); its threads' names once the server answered. */
  async function session(env: NodeJS.ProcessEnv, stdin: 'pipe' | number = 'pipe') {
    const child = spawn(
      process.execPath,
      [launcher, 'run', '--ro', path.join(root, 'node_modules'), '--tools', 'echo', '--', process.execPath, serverEverything, 'stdio'],
      { stdio: [stdin, 'pipe', 'pipe'], env: { ...process.env, ...env } },
    );
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const answered = (id: number) =>
      new Promise<void>((resolve) => {
        const check = () => (out.includes(`"id":${id}`) ? resolve() : setTimeout(check, 20));
        check();
      });
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    return { child, out: () => out, answered, exited };
  }

  const threadNames = (pid: number) =>
    fs.readdirSync(`/proc/${pid}/task`).map((t) => fs.readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim());

  it('carries a session on the relay threads when the client gives pipes, refusing as the filter does', async () => {
    const s = await session({});
    s.child.stdin?.write(lines(initialize, call(1, 'echo'), call(2, 'add')));
    await s.answered(1);
    await s.answered(2);
    const names = threadNames(s.child.pid as number);
    assert.ok(names.includes('mcp-relay-up') && names.includes('mcp-relay-down'), names.join(','));
    s.child.stdin?.end();
    assert.equal(await s.exited, 0);
    assert.match(s.out(), /"id":1,?.*|Echo: m/);
    assert.match(s.out(), /"id":2,"error":\{"code":-32602,"message":"tool \\"add\\" is not allowed by the stockade policy"/);
  });

  it('keeps Node streams with STOCKADE_TOOL_RELAY=js, and for a file on stdin', async () => {
    const js = await session({ STOCKADE_TOOL_RELAY: 'js' });
    js.child.stdin?.write(lines(initialize, call(1, 'echo')));
    await js.answered(1);
    assert.ok(!threadNames(js.child.pid as number).includes('mcp-relay-up'));
    js.child.stdin?.end();
    assert.equal(await js.exited, 0);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stockade-relay-'));
    try {
      const file = path.join(dir, 'requests.jsonl');
      fs.writeFileSync(file, lines(initialize, call(1, 'echo'), call(2, 'add')));
      const fd = fs.openSync(file, 'r');
      const f = await session({}, fd);
      fs.closeSync(fd);
      assert.equal(await f.exited, 0);
      assert.match(f.out(), /Echo: m/);
      assert.match(f.out(), /"id":2,"error"/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
