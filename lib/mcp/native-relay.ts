// The tool layer on native/toolrelay.cc's two threads: the same filter as wireToolFilter
// (lib/mcp/filter.ts), with the launcher's event loop off the path of every message it need not
// decide. The threads pass on by themselves what native/mcpcheck.cc is sure of; what it is not
// (refusals, tools lists, batches, anything unusual) comes here and the direction waits for
// toolFilterCore's answer. Lines passed on by themselves that matter to the records (calls,
// tools/list and cancel requests, responses) come here afterwards as copies: toolFilterCore keeps
// its records from them and must have decided them the same way, or the session ends (a
// disagreement is a bug in native/mcpcheck.cc, and the line has gone on already).
//
// Used by `stockade run` when the launcher's stdin and stdout are pipes or sockets (what MCP
// clients give it); a terminal or a file gets wireToolFilter, which Node's streams handle.
import fs = require('node:fs');

import { EventEmitter } from 'node:events';
import { native, TOOL_RELAY_EVENTS } from '../native';
import { type FilterSink, filterLimits, type ToolFilter, type ToolFilterOptions, toolFilterCore } from './filter';

export interface NativeToolFilterFds {
  /** The MCP client's side: the launcher's stdin and stdout (duplicated, left open). */
  clientIn: number;
  clientOut: number;
  /** The parent's ends of the server's stdin and stdout pipes: the relay closes them. */
  serverIn: number;
  serverOut: number;
}

/** Whether fd can be carried by the native relay: a pipe or a socket (not a terminal or a file). */
export function relayableFd(fd: number): boolean {
  try {
    const st = fs.fstatSync(fd);
    return st.isFIFO() || st.isSocket();
  } catch {
    return false;
  }
}

/** Sink that collects what a decision writes. */
function collector(): FilterSink & { server: Buffer[]; client: Buffer[] } {
  const server: Buffer[] = [];
  const client: Buffer[] = [];
  return { server, client, toServer: (b) => server.push(b), toClient: (b) => client.push(b) };
}

const joined = (bufs: Buffer[]) => (bufs.length === 0 ? null : bufs.length === 1 ? bufs[0] : Buffer.concat(bufs));

/** What the threads passed on is what the filter would have: exactly `raw`, to the one side. */
function sameAsPassed(out: { server: Buffer[]; client: Buffer[] }, side: 0 | 1, raw: Buffer): boolean {
  const [to, other] = side === 0 ? [out.server, out.client] : [out.client, out.server];
  return other.length === 0 && to.length === 1 && to[0].equals(raw);
}

/**
 * `recordDelayMs`: how long copies for the records may wait to be read together (one wakeup of
 * the event loop per batch, not two per call). Calls in flight are always current (activeCalls
 * reads what is queued); what waits is the 'tool-call' event of a finished call. Not for per-tool
 * grants (lib/mcp/tool-grants.ts): an answer goes on before that event, so a grant would end
 * after the client has its answer (lib/cli/run.ts keeps those on the stream filter).
 */
export function wireNativeToolFilter(fds: NativeToolFilterFds, options: ToolFilterOptions, recordDelayMs = 0): ToolFilter {
  const emitter = new EventEmitter() as ToolFilter;
  const core = toolFilterCore(options, emitter);
  const { maxBytes, maxDepth } = filterLimits(options);
  let ended = [false, false];
  let closed = false;
  let resolveServerDone: () => void = () => {};
  const serverDone = new Promise<void>((resolve) => {
    resolveServerDone = resolve;
  });
  const disagree = (side: 0 | 1) =>
    emitter.emit(
      'error',
      Object.assign(
        new Error(`the native tool relay passed on a ${side === 0 ? 'client' : 'server'} message the tool layer would have changed`),
        {
          code: 'ERR_STOCKADE_TOOL_RELAY',
        },
      ),
    );

  const onEvent = (side: 0 | 1, kind: number, bytes: Buffer | undefined, errno: number, at: number) => {
    const event = TOOL_RELAY_EVENTS[kind];
    const out = collector();
    try {
      if (event === 'observe' || event === 'defer') {
        const raw = bytes as Buffer;
        const line = raw.subarray(0, raw.length - 1);
        if (side === 0) core.clientLine(line, raw, out, at);
        else core.serverLine(line, raw, out, at);
        if (event === 'observe' && !sameAsPassed(out, side, raw)) disagree(side);
      } else if (event === 'oversize') {
        if (side === 0) core.clientOversize(out);
        else core.serverOversize(out);
      } else if (event === 'end') {
        ended[side] = true;
        if (side === 1) {
          core.serverEnded(at);
          if (errno !== 0)
            emitter.emit('error', Object.assign(new Error(`reading the server's output failed (errno ${errno})`), { errno }));
          resolveServerDone();
        }
        if (ended[0] && ended[1]) emitter.emit('close');
      } else if (event === 'client-gone') {
        ended[0] = true;
        emitter.emit(
          'client-closed',
          errno === 0 ? undefined : Object.assign(new Error(`the MCP client went away (errno ${errno})`), { errno }),
        );
      } else if (event === 'done') {
        relay.close();
      }
    } finally {
      // A deferred line's side waits for this, whatever happened above.
      if (event === 'defer' || event === 'oversize') relay.answer(side, joined(out.server), joined(out.client));
    }
  };

  const relay = new (native().ToolRelay)(options.tools, options.gate !== undefined, maxBytes, maxDepth, onEvent, recordDelayMs);
  const err = relay.start(fds.clientIn, fds.clientOut, fds.serverIn, fds.serverOut);
  if (err !== 0) {
    throw Object.assign(new Error(`the native tool relay could not start (errno ${err})`), { errno: err, code: 'ERR_STOCKADE_TOOL_RELAY' });
  }
  emitter.activeCalls = (at) => {
    // A call passed on by the threads is queued before its first byte reaches the server, and
    // stamped then: with `at`, a call answered since (drained now) is still in flight at `at`.
    if (!closed) relay.drain();
    return core.activeCalls(at);
  };
  emitter.serverDone = () => serverDone;
  emitter.close = () => {
    if (closed) return;
    closed = true;
    relay.drain();
    relay.close();
    ended = [true, true];
  };
  return emitter;
}
