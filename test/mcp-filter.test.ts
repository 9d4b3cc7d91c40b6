// The tool filter on in-memory streams: what passes untouched, what is rewritten, what is refused.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { PassThrough, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import pino from 'pino';
import { type ToolCallEvent, wireToolFilter } from '../lib/mcp';
import { type FilterSink, toolFilterCore } from '../lib/mcp/filter';
import { hasDuplicateKeys } from '../lib/mcp/json';

interface Harness {
  client: PassThrough; // test writes what the client sends
  server: PassThrough; // test writes what the server sends
  toServer: () => Buffer; // bytes the server received so far
  toClient: () => Buffer; // bytes the client received so far
  events: ToolCallEvent[];
  logs: Record<string, unknown>[];
  endClient: () => Promise<void>;
  endServer: () => Promise<void>;
}

function collector(): [Writable, () => Buffer, Promise<void>] {
  const chunks: Buffer[] = [];
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const w = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(Buffer.from(chunk));
      cb();
    },
    final(cb) {
      done();
      cb();
    },
  });
  return [w, () => Buffer.concat(chunks), finished];
}

function harness(tools: string[], maxMessageBytes?: number): Harness {
  const client = new PassThrough();
  const server = new PassThrough();
  const [toServerStream, toServer, serverFinished] = collector();
  const [toClientStream, toClient, clientFinished] = collector();
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) });
  const filter = wireToolFilter(
    { fromClient: client, toClient: toClientStream, toServer: toServerStream, fromServer: server },
    { tools, logger, maxMessageBytes },
  );
  const events: ToolCallEvent[] = [];
  filter.on('tool-call', (e: ToolCallEvent) => events.push(e));
  return {
    client,
    server,
    toServer,
    toClient,
    events,
    logs,
    endClient: async () => {
      client.end();
      await serverFinished;
    },
    endServer: async () => {
      server.end();
      await clientFinished;
    },
  };
}

const line = (o: unknown) => `${JSON.stringify(o)}\n`;
const call = (id: number | string, name: string, args: unknown = {}) =>
  line({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
const tick = () => new Promise((r) => setImmediate(r));

function parseLines(buf: Buffer): unknown[] {
  return buf
    .toString('utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

describe('tool filter', () => {
  it('passes other messages byte for byte, both ways', async () => {
    const h = harness(['echo']);
    // Odd spacing, key order, escapes, CRLF, non-ASCII: any re-serialization would change them.
    const fromClient =
      '{ "method" :"initialize","jsonrpc":"2.0", "id":0,"params":{"x":"\\u00e9t\u00e9 \ud83d\ude00"}}\r\n' +
      '{"jsonrpc":"2.0","method":"notifications/initialized"}\n' +
      '\n' +
      '{"jsonrpc":"2.0","id":"r1","result":{}}\n';
    const fromServer =
      '{"jsonrpc":"2.0","id":0,"result":{"big":12345678901234567890,"f":1.0}}\n' +
      '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info"}}\n';
    h.client.write(fromClient);
    h.server.write(fromServer);
    await tick();
    assert.equal(h.toServer().toString('utf8'), fromClient);
    assert.equal(h.toClient().toString('utf8'), fromServer);
  });

  it('shows only allowed tools in a tools/list response', async () => {
    const h = harness(['echo', 'get-*']);
    const req = line({ jsonrpc: '2.0', id: 7, method: 'tools/list', params: {} });
    h.client.write(req);
    await tick();
    assert.equal(h.toServer().toString(), req);
    const tools = ['echo', 'get-sum', 'get-env', 'delete-all', 'echo2'].map((name) => ({ name, inputSchema: { type: 'object' } }));
    h.server.write(line({ jsonrpc: '2.0', id: 7, result: { tools, nextCursor: 'c2' } }));
    await tick();
    const [resp] = parseLines(h.toClient()) as { id: number; result: { tools: { name: string }[]; nextCursor: string } }[];
    assert.equal(resp.id, 7);
    assert.deepEqual(
      resp.result.tools.map((t) => t.name),
      ['echo', 'get-sum', 'get-env'],
    );
    assert.equal(resp.result.nextCursor, 'c2');
  });

  it('filters a tools list in a response whose id matches no tools/list exactly ("1" for 1)', async () => {
    // The official SDK client matches response ids loosely (Number(id)): a server answering the
    // tools/list with id 1 as "1" must not get its unfiltered list to the model.
    const h = harness(['echo']);
    h.client.write(line({ jsonrpc: '2.0', id: 1, method: 'tools/list' }));
    await tick();
    h.server.write(line({ jsonrpc: '2.0', id: '1', result: { tools: [{ name: 'echo' }, { name: 'rm' }] } }));
    h.server.write(line({ jsonrpc: '2.0', id: 7, result: { tools: [{ name: 'other' }] } }));
    await tick();
    const out = parseLines(h.toClient()) as { id: unknown; result: { tools: { name: string }[] } }[];
    assert.deepEqual(
      out.map((m) => [m.id, m.result.tools.map((t) => t.name)]),
      [
        ['1', ['echo']],
        [7, []],
      ],
    );
    assert.ok(h.logs.some((l) => l.event === 'mcp.unmatched_tools_list'));
  });

  it('refuses deep nesting both ways with a JSON-RPC error, and survives 200,000 levels', async () => {
    const h = harness(['echo']);
    const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    h.client.write(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":${deep(200_000)}}}}\n`);
    h.client.write(line({ jsonrpc: '2.0', id: 2, method: 'tools/list' }));
    await tick();
    assert.deepEqual(
      (parseLines(h.toServer()) as { id: number }[]).map((m) => m.id),
      [2],
    );
    h.server.write(`{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"rm","x":${deep(200_000)}}]}}\n`);
    await tick();
    const errs = parseLines(h.toClient()) as { id: null; error: { code: number; message: string } }[];
    assert.equal(errs.length, 2);
    assert.match(errs[0].error.message, /nested deeper than 128 levels; message not forwarded/);
    assert.equal(errs[0].error.code, -32600);
    assert.match(errs[1].error.message, /the server sent a message nested deeper than 128 levels/);
    assert.equal(errs[1].id, null);
  });

  it('a server message the client could parse differently never reaches it as sent', async () => {
    const h = harness(['echo']);
    h.client.write(line({ jsonrpc: '2.0', id: 1, method: 'tools/list' }));
    await tick();
    // NaN: Python's json accepts it, JSON.parse does not; duplicate keys: parsers pick either.
    h.server.write('{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"rm"}]},"x":NaN}\n');
    h.server.write('{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"rm"}]},"result":{"ok":1}}\n');
    h.server.write(
      Buffer.concat([Buffer.from('{"jsonrpc":"2.0","method":"n","params":{"s":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}}\n')]),
    );
    await tick();
    const out = h.toClient().toString('utf8').split('\n').filter(Boolean);
    assert.equal(out.length, 3);
    assert.match(JSON.parse(out[0]).error.message, /not valid JSON/);
    assert.equal(out[1], '{"jsonrpc":"2.0","id":5,"result":{"ok":1}}');
    assert.equal(out[2], '{"jsonrpc":"2.0","method":"n","params":{"s":"\ufffd\ufffd"}}'.replace(/\\ufffd/g, '\ufffd'));
  });

  it('EPIPE on the client side ends the session: the server stdin is ended, no error escapes', async () => {
    const client = new PassThrough();
    const server = new PassThrough();
    const [toServerStream, , serverFinished] = collector();
    const toClient = new Writable({
      write(_c, _e, cb) {
        cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const filter = wireToolFilter({ fromClient: client, toClient, toServer: toServerStream, fromServer: server }, { tools: ['echo'] });
    const closed = new Promise((r) => filter.once('client-closed', r));
    server.write(line({ jsonrpc: '2.0', method: 'notifications/x' }));
    const err = (await closed) as NodeJS.ErrnoException;
    assert.equal(err.code, 'EPIPE');
    await serverFinished;
    // What the server writes afterwards is read and dropped (it must not block on a full pipe).
    server.write('x'.repeat(1 << 20));
    await tick();
    assert.equal(server.readableLength, 0);
  });

  it('refuses a call to a tool not allowed, without reaching the server', async () => {
    const h = harness(['echo']);
    h.client.write(call(3, 'delete-all'));
    await tick();
    assert.equal(h.toServer().length, 0);
    const [resp] = parseLines(h.toClient()) as { id: number; error: { code: number; message: string; data: unknown } }[];
    assert.equal(resp.id, 3);
    assert.equal(resp.error.code, -32602);
    assert.match(resp.error.message, /tool "delete-all" is not allowed by the stockade policy/);
    assert.deepEqual(resp.error.data, { stockade: 'refused', tool: 'delete-all' });
    assert.deepEqual(
      h.events.map((e) => [e.id, e.tool, e.outcome]),
      [[3, 'delete-all', 'refused']],
    );
    assert.equal(h.logs[0].event, 'mcp.tool_call');
    assert.equal(h.logs[0].outcome, 'refused');
  });

  it('refuses a call without a tool name and a call sent as a notification (no response)', async () => {
    const h = harness(['echo']);
    h.client.write(line({ jsonrpc: '2.0', id: 'a', method: 'tools/call', params: { name: 5 } }));
    h.client.write(line({ jsonrpc: '2.0', method: 'tools/call', params: { name: 'delete-all' } }));
    await tick();
    assert.equal(h.toServer().length, 0);
    const out = parseLines(h.toClient()) as { id: string; error: { message: string } }[];
    assert.equal(out.length, 1);
    assert.equal(out[0].id, 'a');
    assert.match(out[0].error.message, /without a tool name/);
    assert.deepEqual(
      h.events.map((e) => e.outcome),
      ['refused', 'refused'],
    );
  });

  it('forwards an allowed call and audits its outcome and duration by request id', async () => {
    const h = harness(['echo', 'fail']);
    const c1 = call(1, 'echo', { message: 'hi' });
    const c2 = call('two', 'fail');
    const c3 = call(3, 'echo');
    h.client.write(c1 + c2 + c3);
    await tick();
    assert.equal(h.toServer().toString(), c1 + c2 + c3);
    // Answered out of order: correlation is by id.
    h.server.write(line({ jsonrpc: '2.0', id: 'two', result: { content: [], isError: true } }));
    h.server.write(line({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'hi' }] } }));
    h.server.write(line({ jsonrpc: '2.0', id: 3, error: { code: -32000, message: 'boom' } }));
    await tick();
    assert.deepEqual(
      h.events.map((e) => [e.id, e.tool, e.outcome, e.reason]),
      [
        ['two', 'fail', 'error', undefined],
        [1, 'echo', 'ok', undefined],
        [3, 'echo', 'error', 'boom'],
      ],
    );
    for (const e of h.events) assert.ok(e.durationMs >= 0);
    assert.deepEqual(
      h.logs.map((l) => l.outcome),
      ['error', 'ok', 'error'],
    );
  });

  it('reports calls still pending when the server exits', async () => {
    const h = harness(['echo']);
    h.client.write(call(1, 'echo'));
    await tick();
    await h.endServer();
    assert.deepEqual(
      h.events.map((e) => [e.outcome, e.reason]),
      [['error', 'server exited before answering']],
    );
  });

  it('ends the server stdin when the client ends, and the client stdout when the server ends', async () => {
    const h = harness([]);
    h.client.write('{"jsonrpc":"2.0","method":"x"}'); // no trailing newline: flushed as is at EOF
    await h.endClient();
    assert.equal(h.toServer().toString(), '{"jsonrpc":"2.0","method":"x"}\n');
    h.server.write('{"partial":');
    await h.endServer();
    assert.equal(h.toClient().toString(), '{"partial":');
  });

  it('handles batches element by element', async () => {
    const h = harness(['echo']);
    const okBatch = line([
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } },
      { jsonrpc: '2.0', method: 'notifications/progress' },
      { jsonrpc: '2.0', id: 2, method: 'tools/list' },
    ]);
    h.client.write(okBatch);
    await tick();
    assert.equal(h.toServer().toString(), okBatch, 'a batch with nothing refused passes untouched');
    h.client.write(
      line([
        { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo' } },
        { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'rm' } },
        { jsonrpc: '2.0', method: 'tools/call', params: { name: 'rm' } },
      ]),
    );
    await tick();
    const sent = parseLines(h.toServer()) as unknown[][];
    assert.deepEqual(sent[1], [{ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo' } }]);
    const errs = parseLines(h.toClient()) as { id: number; error: { code: number } }[][];
    assert.deepEqual(
      errs[0].map((e) => [e.id, e.error.code]),
      [[4, -32602]],
    );
    // A batch response: the tools/list element is filtered, the call is audited.
    h.server.write(
      line([
        { jsonrpc: '2.0', id: 1, result: { content: [] } },
        { jsonrpc: '2.0', id: 2, result: { tools: [{ name: 'echo' }, { name: 'rm' }] } },
      ]),
    );
    await tick();
    const batchResp = parseLines(h.toClient())[1] as { result: { tools?: { name: string }[] } }[];
    assert.deepEqual(
      batchResp[1].result.tools?.map((t) => t.name),
      ['echo'],
    );
    assert.deepEqual(
      h.events.map((e) => [e.id, e.outcome]),
      [
        [4, 'refused'],
        [undefined, 'refused'],
        [1, 'ok'],
      ],
    );
  });

  it('does not forward client messages it cannot read unambiguously', async () => {
    const h = harness(['echo']);
    // Python's json module accepts NaN: forwarding this would let a server see a call we did not.
    h.client.write('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm","arguments":{"x":NaN}}}\n');
    // JSON.parse keeps the last duplicate, other parsers the first.
    h.client.write('{"jsonrpc":"2.0","id":2,"method":"tools/list","method":"tools/call","params":{"name":"echo"}}\n');
    h.client.write('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"rm","n\\u0061me":"echo"}}\n');
    await tick();
    assert.equal(h.toServer().length, 0);
    const out = parseLines(h.toClient()) as { id: null; error: { code: number; message: string } }[];
    assert.deepEqual(
      out.map((o) => o.error.code),
      [-32700, -32600, -32600],
    );
    assert.match(out[1].error.message, /duplicate keys/);
  });

  it('refuses a client message larger than the limit, and drops a server message larger than it', async () => {
    const h = harness(['echo'], 1000);
    h.client.write(call(1, 'echo', { blob: 'x'.repeat(600) }));
    h.client.write(call(2, 'echo', { blob: 'x'.repeat(300) }).slice(0, 100));
    h.client.write(call(2, 'echo', { blob: 'x'.repeat(3000) }).slice(100));
    await tick();
    const forwarded = parseLines(h.toServer()) as { id: number }[];
    assert.deepEqual(
      forwarded.map((m) => m.id),
      [1],
    );
    const errs = parseLines(h.toClient()) as { error: { message: string } }[];
    assert.match(errs[0].error.message, /larger than 1000 bytes/);
    const big = line({ jsonrpc: '2.0', id: 9, result: { tools: [{ name: 'rm' }], text: 'y'.repeat(5000) } });
    h.server.write(big.slice(0, 2000));
    h.server.write(big.slice(2000));
    h.server.write(line({ jsonrpc: '2.0', id: 10, result: {} }));
    await tick();
    const out = parseLines(h.toClient()) as { id: unknown; error?: { message: string } }[];
    assert.equal(out.length, 3);
    assert.match(out[1].error?.message ?? '', /the server sent a message larger than 1000 bytes/);
    assert.equal(out[2].id, 10);
  });

  it('copes with a message split at every byte boundary', async () => {
    // Multi-byte UTF-8 (split mid-character too), a refused call, a batch, a filtered list.
    const clientText =
      line({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) +
      call(2, 'echo', { message: 'h\u00e9\u4e16\ud83d\ude00' }) +
      call(3, 'rm') +
      line([
        { jsonrpc: '2.0', method: 'notifications/x' },
        { jsonrpc: '2.0', id: 4, method: 'ping' },
      ]);
    const serverText =
      line({ jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'echo' }, { name: 'rm' }] } }) +
      line({ jsonrpc: '2.0', id: 2, result: { content: [{ type: 'text', text: '\u4e16\ud83d\ude00' }] } });
    const clientBytes = Buffer.from(clientText);
    const serverBytes = Buffer.from(serverText);

    const run = async (clientCuts: number[], serverCuts: number[]) => {
      const h = harness(['echo']);
      for (const [buf, cuts, stream] of [
        [clientBytes, clientCuts, h.client],
        [serverBytes, serverCuts, h.server],
      ] as const) {
        let prev = 0;
        for (const cut of [...cuts, buf.length]) {
          stream.write(buf.subarray(prev, cut));
          prev = cut;
        }
        await tick();
      }
      return { server: h.toServer(), client: h.toClient(), events: h.events.map((e) => `${e.id}:${e.outcome}`) };
    };
    const whole = await run([], []);
    assert.deepEqual(whole.events, ['3:refused', '2:ok']);
    assert.equal(parseLines(whole.client).length, 3);
    for (let i = 1; i < clientBytes.length; i++) {
      const r = await run([i], []);
      assert.ok(r.server.equals(whole.server), `client split at byte ${i}`);
      assert.ok(r.client.equals(whole.client), `client split at byte ${i}`);
    }
    for (let i = 1; i < serverBytes.length; i++) {
      const r = await run([], [i]);
      assert.ok(r.client.equals(whole.client), `server split at byte ${i}`);
      assert.deepEqual(r.events, whole.events);
    }
    // And one byte at a time.
    const everyByte = (n: number) => Array.from({ length: n - 1 }, (_, i) => i + 1);
    const r = await run(everyByte(clientBytes.length), everyByte(serverBytes.length));
    assert.ok(r.server.equals(whole.server));
    assert.ok(r.client.equals(whole.client));
  });

  it('passes 1 MiB messages intact, in arbitrary chunks', async () => {
    const h = harness(['echo']);
    const mib = 1024 * 1024;
    const bigCall = call(1, 'echo', { message: 'a\u00e9'.repeat(mib / 2) }); // ~1.5 MiB of UTF-8
    const bigOther = line({ jsonrpc: '2.0', id: 2, method: 'resources/read', params: { data: 'z'.repeat(mib) } });
    const input = Buffer.from(bigCall + bigOther);
    for (let i = 0; i < input.length; i += 65521) h.client.write(input.subarray(i, i + 65521));
    await tick();
    assert.ok(h.toServer().equals(input));
    // A 1 MiB tools/list response is filtered.
    h.client.write(line({ jsonrpc: '2.0', id: 3, method: 'tools/list' }));
    await tick();
    const tools = Array.from({ length: 2000 }, (_, i) => ({ name: i % 2 ? 'echo' : `t${i}`, description: 'd'.repeat(520) }));
    const resp = Buffer.from(line({ jsonrpc: '2.0', id: 3, result: { tools } }));
    assert.ok(resp.length > mib);
    for (let i = 0; i < resp.length; i += 4096) h.server.write(resp.subarray(i, i + 4096));
    h.server.write(line({ jsonrpc: '2.0', id: 1, result: { content: [] } }));
    await tick();
    const [list] = parseLines(h.toClient()) as { result: { tools: { name: string }[] } }[];
    assert.equal(list.result.tools.length, 1000);
    assert.ok(list.result.tools.every((t) => t.name === 'echo'));
    assert.deepEqual(
      h.events.map((e) => e.outcome),
      ['ok'],
    );
  });
});

describe('tool filter backpressure', () => {
  it('pauses the client side while the server side is full, losing nothing', async () => {
    const client = new PassThrough();
    const server = new PassThrough();
    const received: Buffer[] = [];
    let pending = 0;
    // A slow server stdin with a tiny buffer: each write completes on a later tick.
    const toServer = new Writable({
      highWaterMark: 1024,
      write(chunk, _enc, cb) {
        pending++;
        setTimeout(() => {
          received.push(Buffer.from(chunk));
          pending--;
          cb();
        }, 1);
      },
    });
    const [toClient] = collector();
    wireToolFilter({ fromClient: client, toClient, toServer, fromServer: server }, { tools: ['echo'] });
    const messages = Array.from({ length: 200 }, (_, i) => call(i, 'echo', { pad: 'p'.repeat(500) })).join('');
    client.write(messages);
    await tick();
    assert.ok(client.isPaused(), 'client stream paused while the server side is full');
    client.end();
    await new Promise<void>((r) => toServer.on('finish', () => r()));
    assert.equal(pending, 0);
    assert.equal(Buffer.concat(received).toString(), messages);
  });
});

describe('the calls in flight at a moment past', () => {
  // A seccomp violation reaches the launcher after it happened (lib/violations.ts SEEN_AT), maybe
  // after the answer of the call that caused it: activeCalls(at) answers for then, not now.
  const sink: FilterSink = { toServer: () => {}, toClient: () => {} };
  const line = (msg: object) => {
    const raw = Buffer.from(`${JSON.stringify(msg)}\n`);
    return [raw.subarray(0, raw.length - 1), raw] as const;
  };
  const call = (id: number, name: string) => line({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });
  const answer = (id: number) => line({ jsonrpc: '2.0', id, result: { content: [] } });
  const ids = (calls: { id: unknown }[]) => calls.map((c) => c.id);

  it('a call is in flight from its request to its answer, cancellation or the server end', () => {
    const core = toolFilterCore({ tools: ['*'] }, new EventEmitter());
    core.clientLine(...call(1, 'a'), sink, 10);
    core.serverLine(...answer(1), sink, 20);
    core.clientLine(...call(2, 'b'), sink, 30);
    core.clientLine(...line({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 2 } }), sink, 40);
    core.clientLine(...call(3, 'c'), sink, 50);
    assert.deepEqual(ids(core.activeCalls()), [3]);
    assert.deepEqual(ids(core.activeCalls(5)), []);
    assert.deepEqual(ids(core.activeCalls(10)), [1]);
    assert.deepEqual(ids(core.activeCalls(19.5)), [1]);
    assert.deepEqual(ids(core.activeCalls(20)), [], 'answered at 20: no longer in flight then');
    assert.deepEqual(ids(core.activeCalls(35)), [2]);
    assert.deepEqual(ids(core.activeCalls(45)), []);
    assert.deepEqual(ids(core.activeCalls(55)), [3]);
    core.serverEnded(60);
    assert.deepEqual(ids(core.activeCalls()), []);
    assert.deepEqual(ids(core.activeCalls(59)), [3]);
    assert.deepEqual(ids(core.activeCalls(60)), []);
  });

  it('keeps the last 256 answered calls, no more', () => {
    const core = toolFilterCore({ tools: ['*'] }, new EventEmitter());
    for (let i = 0; i < 300; i++) {
      core.clientLine(...call(i, 't'), sink, i * 10);
      core.serverLine(...answer(i), sink, i * 10 + 5);
    }
    assert.deepEqual(ids(core.activeCalls(2)), [], 'the first call is forgotten');
    assert.deepEqual(ids(core.activeCalls(43 * 10 + 2)), [], 'the 44th too: 300 - 256 = 44 forgotten');
    assert.deepEqual(ids(core.activeCalls(44 * 10 + 2)), [44]);
    assert.deepEqual(ids(core.activeCalls(299 * 10 + 2)), [299]);
  });
});

describe('hasDuplicateKeys', () => {
  it('finds duplicates at any depth, after unescaping, and only within one object', () => {
    assert.equal(hasDuplicateKeys('{"a":1,"b":{"a":2}}'), false);
    assert.equal(hasDuplicateKeys('{"a":1,"b":{"c":2,"c":3}}'), true);
    assert.equal(hasDuplicateKeys('{"a":1,"\\u0061":2}'), true);
    assert.equal(hasDuplicateKeys('[{"a":1},{"a":1}]'), false);
    assert.equal(hasDuplicateKeys('{"a":["a","a"],"b":"a\\"a"}'), false);
    assert.equal(hasDuplicateKeys('{"a":{"x":1},"a":2}'), true);
    assert.equal(hasDuplicateKeys('{"__proto__":1,"__proto__":2}'), true);
  });

  it('reads colons, quotes and backslash runs inside strings as text', () => {
    assert.equal(hasDuplicateKeys('{"a:b":"c:d","e":"\\\\","f":"\\"x:y\\""}'), false);
    assert.equal(hasDuplicateKeys('{"a":"\\\\","a":1}'), true);
    assert.equal(hasDuplicateKeys(' { "a" : [ 1 , { "b" : "::" } ] , "c" : { } } '), false);
  });

  it('walks a value nested far deeper than the stack allows', () => {
    const deep = `${'['.repeat(200_000)}{"a":1,"a":2}${']'.repeat(200_000)}`;
    assert.equal(hasDuplicateKeys(deep), true);
  });
});
