// The MCP tool layer: a JSON-RPC filter on the stdio path between the MCP client (the launcher's
// stdin/stdout) and the sandboxed server (its stdin/stdout).
//
//   client --fromClient--> [ClientToServer] --toServer--> server
//   client <--toClient---- [ServerToClient] <-fromServer-- server
//
// What it changes, and nothing else:
//   - a tools/call of a tool not on the allowlist is answered by the filter with a JSON-RPC
//     error and never reaches the server (this is the enforcement);
//   - the response to a tools/list shows only allowed tools (so the model is not offered tools
//     it cannot call);
//   - client messages the filter cannot read unambiguously (invalid JSON or UTF-8, duplicate keys,
//     nesting deeper than maxDepth, larger than maxMessageBytes) are answered with an error and
//     not forwarded: a lenient server parser (Python's json accepts NaN) could otherwise see a
//     call the filter did not;
//   - the client never parses a server message the filter did not: invalid JSON, too deep or too
//     large is dropped (the client gets an error with id null instead), duplicate keys or invalid
//     UTF-8 go out re-serialized from what the filter read, and a tools list in any response is
//     filtered, whatever its id (the SDK client matches ids loosely, "1" to 1: the filter
//     matches exactly, so it cannot rely on ids to find the list).
// Every other message, from either side, is forwarded byte for byte, in order, with
// backpressure. Batches (JSON arrays) are handled element by element.
//
// When the tool layer is off the launcher does not call this at all: stdio is not touched.
import { isUtf8 } from 'node:buffer';
import { EventEmitter } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import { toolMatcher } from '../policy/formats';
import { monotonicMs } from '../violations';
import { LineSplitter } from './framing';
import { inspectJson, MAX_JSON_DEPTH } from './json';
import { isInputRequired, requestProtocolVersion } from './protocol';

export interface ToolFilterStreams {
  /** Messages from the MCP client (the launcher's stdin). */
  fromClient: Readable;
  /** Messages to the MCP client (the launcher's stdout). */
  toClient: Writable;
  /** The sandboxed server's stdin. */
  toServer: Writable;
  /** The sandboxed server's stdout. */
  fromServer: Readable;
}

export interface ToolFilterOptions {
  /** Allowed tool names; `*` matches any run of characters. An empty list allows nothing. */
  tools: string[];
  /** pino logger for audit events (one per tool call). */
  logger?: Logger;
  /** Largest message read whole, default 64 MiB. Larger client messages are refused. */
  maxMessageBytes?: number;
  /** Requests remembered while waiting for their response (oldest forgotten first). Default 10000. */
  maxPending?: number;
  /** A second check after the allowlist, e.g. pinned tool definitions (lib/mcp/pins.ts). */
  gate?: ToolGate;
  /** Deepest nesting of arrays and objects read, default 128. Deeper messages are refused. */
  maxDepth?: number;
}

/** Decides, after the allowlist, which listed tools the client sees and which calls pass. */
export interface ToolGate {
  /** One page of a tools/list result (allowed tools only); returns the same array to change nothing. */
  filterList(tools: Json[], hasNextCursor: boolean): Json[];
  /** The refusal reason for a call of an allowed tool, or undefined to forward it. */
  refuseCall(name: string): string | undefined;
}

/** 'input-required': a 2026-07-28 InputRequiredResult; the client's retry is a call of its own. */
export type ToolCallOutcome = 'ok' | 'error' | 'refused' | 'input-required' | 'cancelled';

export interface ToolCallEvent {
  /** JSON-RPC id of the tools/call request (undefined for a notification). */
  id: string | number | null | undefined;
  tool: string;
  outcome: ToolCallOutcome;
  /** Milliseconds from the request passing the filter to its response (0 when refused). */
  durationMs: number;
  /** Why: the refusal reason, or the error message of an error outcome. */
  reason?: string;
  /** The revision a 2026-07-28-style request named in its _meta. */
  protocolVersion?: string;
}

export interface ActiveToolCall {
  id: string | number | null;
  tool: string;
  startedAt: number;
  protocolVersion?: string;
}

/**
 * Events: 'tool-call-start' (ActiveToolCall) when an allowed call is forwarded, 'tool-call'
 * (ToolCallEvent) when it completes or is refused, 'client-closed' when the client went away
 * (EPIPE on toClient, or an error reading fromClient: the server's stdin is ended, as on EOF),
 * 'error' (Error) if another stream error happens, 'close' when both directions have ended.
 */
export interface ToolFilter extends EventEmitter {
  /**
   * Calls forwarded and not yet answered: lets the launcher tag egress events with the call.
   * With `at` (ms on the monotonic clock, lib/violations.ts monotonicMs), the calls in flight
   * then: forwarded by then and answered after, of the last 256 answered (a seccomp violation
   * reaches the launcher after it happened, perhaps after the answer of the call that caused it).
   */
  activeCalls(at?: number): ActiveToolCall[];
  /** Settles once everything the server wrote has been passed on (or dropped): its output ended. */
  serverDone(): Promise<void>;
  /** Stops filtering and detaches from the streams (they are not ended or destroyed). */
  close(): void;
}

// JSON-RPC / MCP error codes.
const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
const INVALID_PARAMS = -32602; // what MCP servers answer for an unknown tool
const INTERNAL_ERROR = -32603;

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isRequestId(v: Json | undefined): v is string | number {
  return typeof v === 'string' || typeof v === 'number';
}

function idKey(id: string | number): string {
  return JSON.stringify(id);
}

function errorResponse(id: string | number | null, code: number, message: string, data?: Json): JsonObject {
  const error: JsonObject = { code, message };
  if (data !== undefined) error.data = data;
  return { jsonrpc: '2.0', id, error };
}

/**
 * Writer with backpressure: pauses the sources while the sink is full. The client's stdout is
 * written from both sides (server messages, and the filter's own answers to client messages), so
 * a client that sends refused calls and never reads stops being read too.
 */
function makeWriter(sources: Readable[], sink: Writable): (buf: Buffer) => void {
  let waiting = false;
  return (buf: Buffer) => {
    if (sink.destroyed || sink.writableEnded) return;
    // One chunk may hold many messages: pause once and wait for one 'drain', not one per write.
    if (!sink.write(buf) && !waiting) {
      waiting = true;
      for (const s of sources) s.pause();
      sink.once('drain', () => {
        waiting = false;
        for (const s of sources) s.resume();
      });
    }
  };
}

/** Where the filter's answer to one message goes: bytes for the server, bytes for the client. */
export interface FilterSink {
  toServer(buf: Buffer): void;
  toClient(buf: Buffer): void;
}

/**
 * The filter's decisions and records, apart from the I/O that carries them: wireToolFilter feeds
 * it from Node streams, lib/mcp/native-relay.ts from native/toolrelay.cc's threads. Each call
 * writes what the message becomes to the sink it is given, synchronously.
 */
export interface ToolFilterCore {
  /**
   * A complete client line, without its '\n' (`line`) and with it (`raw`); `at`: when it was read
   * (monotonicMs, now by default), which is what activeCalls(at) compares.
   */
  clientLine(line: Buffer, raw: Buffer, sink: FilterSink, at?: number): void;
  /** A client line longer than maxMessageBytes ended: it was dropped. */
  clientOversize(sink: FilterSink): void;
  serverLine(line: Buffer, raw: Buffer, sink: FilterSink, at?: number): void;
  serverOversize(sink: FilterSink): void;
  /** The server's output ended: calls still in flight are recorded as never answered. */
  serverEnded(at?: number): void;
  activeCalls(at?: number): ActiveToolCall[];
}

/** A call in flight and when its request was read (monotonicMs); `until`: when it ended. */
interface InFlight {
  call: ActiveToolCall;
  since: number;
  until?: number;
}

// Answered calls kept for activeCalls(at): a violation arrives within milliseconds of its call.
const ENDED_KEPT = 256;

/** The resolved limits of ToolFilterOptions. */
export function filterLimits(options: ToolFilterOptions): { maxBytes: number; maxDepth: number } {
  return { maxBytes: options.maxMessageBytes ?? 64 * 1024 * 1024, maxDepth: options.maxDepth ?? MAX_JSON_DEPTH };
}

export function toolFilterCore(options: ToolFilterOptions, emitter: EventEmitter): ToolFilterCore {
  const allowed = [...options.tools];
  const log = options.logger;
  const { maxBytes, maxDepth } = filterLimits(options);
  const maxPending = options.maxPending ?? 10000;

  // Compiled once: a patterns list is checked for every listed tool and every call.
  const matchers = allowed.map(toolMatcher);
  const isAllowed = (name: string) => matchers.some((m) => m(name));
  const pendingCalls = new Map<string, InFlight>();
  const ended: InFlight[] = [];
  const pendingLists = new Set<string>();
  // When the message being decided was read (every entry point below sets it first).
  let lineAt = 0;
  const end = (f: InFlight) => {
    f.until = lineAt;
    ended.push(f);
    if (ended.length > ENDED_KEPT) ended.shift();
  };

  const remember = <T>(map: Map<string, T> | Set<string>, key: string, value?: T) => {
    // Ids are the client's; a client that never reads responses must not grow us without bound.
    if (map.size >= maxPending) {
      const oldest = map.keys().next().value as string;
      map.delete(oldest);
    }
    if (map instanceof Map) map.set(key, value as T);
    else map.add(key);
  };

  // The sink of the message being decided (every entry point below sets it first).
  let sink: FilterSink = { toServer: () => {}, toClient: () => {} };
  const writeServer = (buf: Buffer) => sink.toServer(buf);
  const writeClientRaw = (buf: Buffer) => sink.toClient(buf);
  const sendToClient = (msg: Json) => sink.toClient(Buffer.from(`${JSON.stringify(msg)}\n`));

  const audit = (event: ToolCallEvent) => {
    if (log) {
      const level = event.outcome === 'refused' ? 'warn' : 'info';
      log[level]({ event: 'mcp.tool_call', ...event }, `tool ${event.tool} ${event.outcome}`);
    }
    emitter.emit('tool-call', event);
  };

  // ---- client -> server --------------------------------------------------------------------------

  /** Decides one client message. Returns the error response to send instead, or null to forward. */
  const checkClientMessage = (msg: Json): JsonObject | null | 'drop' => {
    if (!isObject(msg) || typeof msg.method !== 'string') return null; // responses etc. pass
    const id = isRequestId(msg.id) ? msg.id : undefined;
    if (msg.method === 'tools/list') {
      if (id !== undefined) remember(pendingLists, idKey(id));
      return null;
    }
    // The client gave up on a call: the server should not answer it, so it is no longer in
    // flight (and its per-tool grant ends now, not never). The notification goes on to the server.
    if (msg.method === 'notifications/cancelled') {
      const p = msg.params;
      const rid = isObject(p) && isRequestId(p.requestId) ? p.requestId : undefined;
      const flight = rid === undefined ? undefined : pendingCalls.get(idKey(rid));
      if (rid !== undefined && flight) {
        pendingCalls.delete(idKey(rid));
        end(flight);
        const { call } = flight;
        const version = call.protocolVersion ? { protocolVersion: call.protocolVersion } : {};
        audit({ id: call.id, tool: call.tool, outcome: 'cancelled', durationMs: Date.now() - call.startedAt, ...version });
      }
      return null;
    }
    if (msg.method !== 'tools/call') return null;
    const params = msg.params;
    const name = isObject(params) && typeof params.name === 'string' ? params.name : undefined;
    const gated = name !== undefined && isAllowed(name) ? options.gate?.refuseCall(name) : undefined;
    if (name !== undefined && isAllowed(name) && gated === undefined) {
      if (id !== undefined) {
        const version = requestProtocolVersion(params);
        const call: ActiveToolCall = { id, tool: name, startedAt: Date.now(), ...(version ? { protocolVersion: version } : {}) };
        remember(pendingCalls, idKey(id), { call, since: lineAt });
        emitter.emit('tool-call-start', call);
      }
      return null;
    }
    const reason =
      gated ?? (name === undefined ? 'tools/call without a tool name' : `tool "${name}" is not allowed by the stockade policy`);
    audit({
      id: msg.id === undefined ? undefined : (msg.id as string | number | null),
      tool: name ?? '',
      outcome: 'refused',
      durationMs: 0,
      reason,
    });
    // A notification gets no response, even an error (JSON-RPC 2.0 §4.1).
    if (msg.id === undefined) return 'drop';
    return errorResponse(isRequestId(msg.id) ? msg.id : null, INVALID_PARAMS, reason, { stockade: 'refused', tool: name ?? null });
  };

  // Every message is read whole (JSON.parse, then inspectJson over the same text) before a byte of
  // it goes on; what goes on unchanged is the line as it came (`raw`, with its '\n').
  const onClientLine = (line: Buffer, raw: Buffer) => {
    const text = line.toString('utf8');
    let msg: Json;
    try {
      msg = JSON.parse(text) as Json;
    } catch (err) {
      // An empty line is not JSON, and is passed on as it came.
      if (text.trim() === '') writeServer(raw);
      else refuseUnreadable(`not valid JSON: ${(err as Error).message}`, PARSE_ERROR);
      return;
    }
    const shape = inspectJson(text, msg, maxDepth);
    if (shape === 'too-deep') {
      refuseUnreadable(`message nested deeper than ${maxDepth} levels`, INVALID_REQUEST);
      return;
    }
    if (shape === 'duplicate-keys') {
      refuseUnreadable('message has duplicate keys, which parsers read differently', INVALID_REQUEST);
      return;
    }
    if (!isUtf8(line)) {
      refuseUnreadable('message is not valid UTF-8, which parsers read differently', PARSE_ERROR);
      return;
    }
    if (!Array.isArray(msg)) {
      const verdict = checkClientMessage(msg);
      if (verdict === null) writeServer(raw);
      else if (verdict !== 'drop') sendToClient(verdict);
      return;
    }
    // A batch: forward it untouched if nothing in it is refused; otherwise forward the allowed
    // part as a smaller batch and answer the refused part in a batch of our own. (MCP removed
    // batching in 2025-06-18, so this is rare; clients match responses by id either way.)
    const keep: Json[] = [];
    const errors: Json[] = [];
    for (const item of msg) {
      const verdict = checkClientMessage(item);
      if (verdict === null) keep.push(item);
      else if (verdict !== 'drop') errors.push(verdict);
    }
    if (keep.length === msg.length) writeServer(raw);
    else if (keep.length > 0) writeServer(Buffer.from(`${JSON.stringify(keep)}\n`));
    if (errors.length > 0) sendToClient(errors);
  };

  const refuseUnreadable = (reason: string, code: number) => {
    log?.warn({ event: 'mcp.refused_message', reason }, 'client message not forwarded');
    emitter.emit('refused-message', { reason });
    sendToClient(errorResponse(null, code, `stockade: ${reason}; message not forwarded`));
  };

  // ---- server -> client --------------------------------------------------------------------------

  const completeCall = (msg: JsonObject, call: ActiveToolCall) => {
    let outcome: ToolCallOutcome = 'ok';
    let reason: string | undefined;
    if (isObject(msg.error)) {
      outcome = 'error';
      reason = typeof msg.error.message === 'string' ? msg.error.message : undefined;
    } else if (isObject(msg.result) && msg.result.isError === true) {
      // A tool-level failure (MCP reports it in the result, not as a JSON-RPC error).
      outcome = 'error';
    } else if (isInputRequired(msg.result)) {
      outcome = 'input-required';
    }
    const version = call.protocolVersion ? { protocolVersion: call.protocolVersion } : {};
    audit({ id: call.id, tool: call.tool, outcome, durationMs: Date.now() - call.startedAt, ...(reason ? { reason } : {}), ...version });
  };

  /** Returns the replacement for a server message, or null to forward the original bytes. */
  const rewriteServerMessage = (msg: Json): Json | null => {
    if (!isObject(msg) || msg.method !== undefined) return null;
    // Matched by exact JSON value and type: "1" is not 1.
    const key = isRequestId(msg.id) ? idKey(msg.id) : undefined;
    const flight = key === undefined ? undefined : pendingCalls.get(key);
    if (key !== undefined && flight) {
      pendingCalls.delete(key);
      end(flight);
      completeCall(msg, flight.call);
      return null;
    }
    const listed = key !== undefined && pendingLists.delete(key);
    const result = msg.result;
    if (!isObject(result) || !Array.isArray(result.tools)) return null;
    if (!listed) {
      // A tools list that answers no tools/list of the client exactly (another id type, no id,
      // a replay): a lenient client may still take it for the answer, so it is filtered all the same.
      log?.warn({ event: 'mcp.unmatched_tools_list', id: msg.id }, 'tools list in a response to no pending tools/list');
    }
    let tools = result.tools.filter((t) => isObject(t) && typeof t.name === 'string' && isAllowed(t.name));
    if (options.gate) tools = options.gate.filterList(tools, result.nextCursor !== undefined && result.nextCursor !== null);
    if (tools.length === result.tools.length) return null;
    return { ...msg, result: { ...result, tools } };
  };

  const refuseServerMessage = (reason: string) => {
    log?.warn({ event: 'mcp.refused_server_message', reason }, 'server message not forwarded');
    emitter.emit('refused-message', { reason, from: 'server' });
    sendToClient(errorResponse(null, INTERNAL_ERROR, `stockade: the server sent ${reason}; message not forwarded`));
  };

  const onServerLine = (line: Buffer, raw: Buffer) => {
    const text = line.toString('utf8');
    let msg: Json;
    try {
      msg = JSON.parse(text) as Json;
    } catch {
      if (text.trim() === '') writeClientRaw(raw);
      // A lenient client parser (NaN, comments, single quotes) could read what the filter did not.
      else refuseServerMessage('a message that is not valid JSON');
      return;
    }
    const shape = inspectJson(text, msg, maxDepth);
    if (shape === 'too-deep') {
      refuseServerMessage(`a message nested deeper than ${maxDepth} levels`);
      return;
    }
    let replacement: Json | null;
    if (Array.isArray(msg)) {
      let changed = false;
      const out = msg.map((m) => {
        const r = rewriteServerMessage(m);
        if (r !== null) changed = true;
        return r ?? m;
      });
      replacement = changed ? out : null;
    } else {
      replacement = rewriteServerMessage(msg);
    }
    // Duplicate keys or invalid UTF-8: the client gets the message as the filter read it.
    if (replacement === null && (shape === 'duplicate-keys' || !isUtf8(line))) replacement = msg;
    writeClientRaw(replacement === null ? raw : Buffer.from(`${JSON.stringify(replacement)}\n`));
  };

  return {
    clientLine(line, raw, to, at = monotonicMs()) {
      sink = to;
      lineAt = at;
      onClientLine(line, raw);
    },
    // Too large to inspect: dropped (the server never sees a byte), said once, at its end.
    clientOversize(to) {
      sink = to;
      refuseUnreadable(`message larger than ${maxBytes} bytes`, INVALID_REQUEST);
    },
    serverLine(line, raw, to, at = monotonicMs()) {
      sink = to;
      lineAt = at;
      onServerLine(line, raw);
    },
    // A message too large to read whole is dropped: streaming it through unread would let the
    // server hand the client a tools list the filter never saw.
    serverOversize(to) {
      sink = to;
      refuseServerMessage(`a message larger than ${maxBytes} bytes`);
    },
    serverEnded(at = monotonicMs()) {
      lineAt = at;
      for (const flight of pendingCalls.values()) {
        end(flight);
        const { call } = flight;
        audit({
          id: call.id,
          tool: call.tool,
          outcome: 'error',
          durationMs: Date.now() - call.startedAt,
          reason: 'server exited before answering',
        });
      }
      pendingCalls.clear();
    },
    activeCalls(at) {
      const calls: ActiveToolCall[] = [];
      if (at !== undefined) for (const f of ended) if (f.since <= at && at < (f.until as number)) calls.push(f.call);
      for (const f of pendingCalls.values()) if (at === undefined || f.since <= at) calls.push(f.call);
      return calls;
    },
  };
}

export function wireToolFilter(streams: ToolFilterStreams, options: ToolFilterOptions): ToolFilter {
  const { fromClient, toClient, toServer, fromServer } = streams;
  const emitter = new EventEmitter() as ToolFilter;
  const core = toolFilterCore(options, emitter);
  const { maxBytes } = filterLimits(options);
  const writeServer = makeWriter([fromClient], toServer);
  const writeClientRaw = makeWriter([fromServer, fromClient], toClient);

  // Messages the filter itself sends to the client must not land inside a server message that
  // is being passed on, so they wait for the server side's line end.
  let injectQueue: Buffer[] = [];
  const clientSink: FilterSink = {
    toServer: writeServer,
    toClient: (buf) => {
      if (serverSide.midLine) injectQueue.push(buf);
      else writeClientRaw(buf);
    },
  };
  const serverSink: FilterSink = { toServer: () => {}, toClient: writeClientRaw };
  const flushInjected = () => {
    for (const buf of injectQueue) writeClientRaw(buf);
    injectQueue = [];
  };
  const onClientLine = (line: Buffer, raw: Buffer) => core.clientLine(line, raw, clientSink);
  const clientSide = new LineSplitter({
    maxLineBytes: maxBytes,
    onLine: onClientLine,
    onOversize: (_piece, end) => end && core.clientOversize(clientSink),
  });
  const serverSide = new LineSplitter({
    maxLineBytes: maxBytes,
    onLine: (line, raw) => {
      core.serverLine(line, raw, serverSink);
      flushInjected();
    },
    onOversize: (_piece, end) => {
      if (!end) return;
      core.serverOversize(serverSink);
      flushInjected();
    },
  });
  let resolveServerDone: () => void = () => {};
  const serverDone = new Promise<void>((resolve) => {
    resolveServerDone = resolve;
  });

  // ---- wiring ------------------------------------------------------------------------------------

  let clientEnded = false;
  let serverEnded = false;
  const maybeClose = () => {
    if (clientEnded && serverEnded) emitter.emit('close');
  };

  const onClientData = (chunk: Buffer | string) => clientSide.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  const onClientEnd = () => {
    const rest = clientSide.end();
    // A last line without '\n' is read like any other, and goes on with one.
    if (rest) onClientLine(rest, Buffer.concat([rest, Buffer.from('\n')]));
    clientEnded = true;
    // EOF on the server's stdin is how an MCP client asks a stdio server to exit.
    toServer.end();
    maybeClose();
  };
  const onServerData = (chunk: Buffer | string) => serverSide.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  const onServerEnd = () => {
    const rest = serverSide.end();
    // A last line without '\n' goes out exactly as it came.
    if (rest) writeClientRaw(rest);
    flushInjected();
    core.serverEnded();
    serverEnded = true;
    resolveServerDone();
    if (!toClient.destroyed) toClient.end();
    maybeClose();
  };
  let clientGone = false;
  // The client closed our stdout (EPIPE) or its stdin failed: the session is over. The server's
  // stdin is ended, as an MCP client does to shut a stdio server down; what the server still
  // writes is read and discarded so it is not blocked on a full pipe.
  const onClientGone = (err?: Error) => {
    if (clientGone) return;
    clientGone = true;
    fromClient.off('data', onClientData);
    if (!toServer.writableEnded) toServer.end();
    if (!toClient.destroyed) toClient.destroy();
    fromServer.resume();
    emitter.emit('client-closed', err);
  };
  const onError = (err: Error) => emitter.emit('error', err);
  const onClientError = (err: NodeJS.ErrnoException) => onClientGone(err);
  // EPIPE on the server's stdin means it exited; its stdout's end reports that, not an error.
  const onServerStdinError = (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') emitter.emit('error', err);
  };

  fromClient.on('data', onClientData);
  fromClient.on('end', onClientEnd);
  fromClient.on('error', onClientError);
  fromServer.on('data', onServerData);
  fromServer.on('end', onServerEnd);
  fromServer.on('error', onError);
  toServer.on('error', onServerStdinError);
  toClient.on('error', onClientError);

  emitter.activeCalls = core.activeCalls;
  emitter.serverDone = () => serverDone;
  emitter.close = () => {
    fromClient.off('data', onClientData);
    fromClient.off('end', onClientEnd);
    fromClient.off('error', onClientError);
    fromServer.off('data', onServerData);
    fromServer.off('end', onServerEnd);
    fromServer.off('error', onError);
    toServer.off('error', onServerStdinError);
    toClient.off('error', onClientError);
  };
  return emitter;
}
