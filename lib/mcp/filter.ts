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
//   - client messages the filter cannot read unambiguously (invalid JSON, duplicate keys, larger
//     than maxMessageBytes) are answered with an error and not forwarded: a lenient server
//     parser (Python's json accepts NaN) could otherwise see a call the filter did not.
// Every other message, from either side, is forwarded byte for byte, in order, with
// backpressure. Batches (JSON arrays) are handled element by element.
//
// When the tool layer is off the launcher does not call this at all: stdio is not touched.
import { EventEmitter } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import { toolMatches } from '../policy/formats';
import { LineSplitter } from './framing';
import { hasDuplicateKeys } from './json';
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
}

/** Decides, after the allowlist, which listed tools the client sees and which calls pass. */
export interface ToolGate {
  /** One page of a tools/list result (allowed tools only); returns the same array to change nothing. */
  filterList(tools: Json[], hasNextCursor: boolean): Json[];
  /** The refusal reason for a call of an allowed tool, or undefined to forward it. */
  refuseCall(name: string): string | undefined;
}

/** 'input-required': a 2026-07-28 InputRequiredResult; the client's retry is a call of its own. */
export type ToolCallOutcome = 'ok' | 'error' | 'refused' | 'input-required';

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
 * (ToolCallEvent) when it completes or is refused, 'error' (Error) if a stream fails, 'close'
 * when both directions have ended.
 */
export interface ToolFilter extends EventEmitter {
  /** Calls forwarded and not yet answered: lets the launcher tag egress events with the call. */
  activeCalls(): ActiveToolCall[];
  /** Stops filtering and detaches from the streams (they are not ended or destroyed). */
  close(): void;
}

// JSON-RPC / MCP error codes.
const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
const INVALID_PARAMS = -32602; // what MCP servers answer for an unknown tool

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

/** Per-direction writer with backpressure: pauses the source while the sink is full. */
function makeWriter(source: Readable, sink: Writable): (buf: Buffer) => void {
  let waiting = false;
  return (buf: Buffer) => {
    // One chunk may hold many messages: pause once and wait for one 'drain', not one per write.
    if (!sink.write(buf) && !waiting) {
      waiting = true;
      source.pause();
      sink.once('drain', () => {
        waiting = false;
        source.resume();
      });
    }
  };
}

const NL = Buffer.from('\n');

export function wireToolFilter(streams: ToolFilterStreams, options: ToolFilterOptions): ToolFilter {
  const { fromClient, toClient, toServer, fromServer } = streams;
  const allowed = [...options.tools];
  const log = options.logger;
  const maxBytes = options.maxMessageBytes ?? 64 * 1024 * 1024;
  const maxPending = options.maxPending ?? 10000;
  const emitter = new EventEmitter() as ToolFilter;

  const isAllowed = (name: string) => allowed.some((p) => toolMatches(p, name));
  const pendingCalls = new Map<string, ActiveToolCall>();
  const pendingLists = new Set<string>();

  const remember = <T>(map: Map<string, T> | Set<string>, key: string, value?: T) => {
    // Ids are the client's; a client that never reads responses must not grow us without bound.
    if (map.size >= maxPending) {
      const oldest = map.keys().next().value as string;
      map.delete(oldest);
    }
    if (map instanceof Map) map.set(key, value as T);
    else map.add(key);
  };

  const writeServer = makeWriter(fromClient, toServer);
  const writeClientRaw = makeWriter(fromServer, toClient);

  // Messages the filter itself sends to the client must not land inside a server message that
  // is being streamed through (oversize mode), so they wait for the server side's line end.
  let injectQueue: Buffer[] = [];
  const sendToClient = (msg: Json) => {
    const buf = Buffer.concat([Buffer.from(JSON.stringify(msg)), NL]);
    if (serverSide.midLine) injectQueue.push(buf);
    else writeClientRaw(buf);
  };
  const flushInjected = () => {
    for (const buf of injectQueue) writeClientRaw(buf);
    injectQueue = [];
  };

  const audit = (event: ToolCallEvent) => {
    if (log) {
      const level = event.outcome === 'refused' ? 'warn' : 'info';
      log[level]({ event: 'tool-call', ...event }, `tool ${event.tool} ${event.outcome}`);
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
    if (msg.method !== 'tools/call') return null;
    const params = msg.params;
    const name = isObject(params) && typeof params.name === 'string' ? params.name : undefined;
    const gated = name !== undefined && isAllowed(name) ? options.gate?.refuseCall(name) : undefined;
    if (name !== undefined && isAllowed(name) && gated === undefined) {
      if (id !== undefined) {
        const version = requestProtocolVersion(params);
        const call: ActiveToolCall = { id, tool: name, startedAt: Date.now(), ...(version ? { protocolVersion: version } : {}) };
        remember(pendingCalls, idKey(id), call);
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

  const onClientLine = (line: Buffer) => {
    const text = line.toString('utf8');
    if (text.trim() === '') {
      writeServer(Buffer.concat([line, NL]));
      return;
    }
    let msg: Json;
    try {
      msg = JSON.parse(text) as Json;
    } catch (err) {
      refuseUnreadable(`not valid JSON: ${(err as Error).message}`, PARSE_ERROR);
      return;
    }
    if (hasDuplicateKeys(text)) {
      refuseUnreadable('message has duplicate keys, which parsers read differently', INVALID_REQUEST);
      return;
    }
    if (!Array.isArray(msg)) {
      const verdict = checkClientMessage(msg);
      if (verdict === null) writeServer(Buffer.concat([line, NL]));
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
    if (keep.length === msg.length) writeServer(Buffer.concat([line, NL]));
    else if (keep.length > 0) writeServer(Buffer.concat([Buffer.from(JSON.stringify(keep)), NL]));
    if (errors.length > 0) sendToClient(errors);
  };

  const refuseUnreadable = (reason: string, code: number) => {
    log?.warn({ event: 'tool-message-refused', reason }, 'client message not forwarded');
    emitter.emit('refused-message', { reason });
    sendToClient(errorResponse(null, code, `stockade: ${reason}; message not forwarded`));
  };

  const clientSide = new LineSplitter({
    maxLineBytes: maxBytes,
    onLine: onClientLine,
    onOversize: (_piece, end) => {
      // Too large to inspect: drop it (the server never sees a byte) and say so once, at its end.
      if (end) refuseUnreadable(`message larger than ${maxBytes} bytes`, INVALID_REQUEST);
    },
  });

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
    if (!isObject(msg) || msg.method !== undefined || !isRequestId(msg.id)) return null;
    const key = idKey(msg.id);
    const call = pendingCalls.get(key);
    if (call) {
      pendingCalls.delete(key);
      completeCall(msg, call);
      return null;
    }
    if (!pendingLists.delete(key)) return null;
    const result = msg.result;
    if (!isObject(result) || !Array.isArray(result.tools)) return null;
    let tools = result.tools.filter((t) => isObject(t) && typeof t.name === 'string' && isAllowed(t.name));
    if (options.gate) tools = options.gate.filterList(tools, result.nextCursor !== undefined && result.nextCursor !== null);
    if (tools.length === result.tools.length) return null;
    return { ...msg, result: { ...result, tools } };
  };

  const onServerLine = (line: Buffer) => {
    let replacement: Json | null = null;
    const first = line.find((b) => b !== 0x20 && b !== 0x09 && b !== 0x0d);
    if (first === 0x7b /* { */ || first === 0x5b /* [ */) {
      try {
        const msg = JSON.parse(line.toString('utf8')) as Json;
        if (Array.isArray(msg)) {
          let changed = false;
          const out = msg.map((m) => {
            const r = rewriteServerMessage(m);
            if (r !== null) changed = true;
            return r ?? m;
          });
          if (changed) replacement = out;
        } else {
          replacement = rewriteServerMessage(msg);
        }
      } catch {
        // Not JSON: the server's business; the client will complain.
      }
    }
    writeClientRaw(replacement === null ? Buffer.concat([line, NL]) : Buffer.concat([Buffer.from(JSON.stringify(replacement)), NL]));
    flushInjected();
  };

  const serverSide = new LineSplitter({
    maxLineBytes: maxBytes,
    onLine: onServerLine,
    // A huge server message is streamed through unread. Only list filtering is lost (calls are
    // still refused on the way in), and buffering it would let the server exhaust our memory.
    onOversize: (piece, end) => {
      writeClientRaw(end ? Buffer.concat([piece, NL]) : piece);
      if (end) flushInjected();
    },
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
    if (rest) onClientLine(rest);
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
    for (const call of pendingCalls.values()) {
      audit({
        id: call.id,
        tool: call.tool,
        outcome: 'error',
        durationMs: Date.now() - call.startedAt,
        reason: 'server exited before answering',
      });
    }
    pendingCalls.clear();
    serverEnded = true;
    toClient.end();
    maybeClose();
  };
  const onError = (err: Error) => emitter.emit('error', err);
  // EPIPE on the server's stdin means it exited; its stdout's end reports that, not an error.
  const onServerStdinError = (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') emitter.emit('error', err);
  };

  fromClient.on('data', onClientData);
  fromClient.on('end', onClientEnd);
  fromClient.on('error', onError);
  fromServer.on('data', onServerData);
  fromServer.on('end', onServerEnd);
  fromServer.on('error', onError);
  toServer.on('error', onServerStdinError);
  toClient.on('error', onError);

  emitter.activeCalls = () => [...pendingCalls.values()];
  emitter.close = () => {
    fromClient.off('data', onClientData);
    fromClient.off('end', onClientEnd);
    fromClient.off('error', onError);
    fromServer.off('data', onServerData);
    fromServer.off('end', onServerEnd);
    fromServer.off('error', onError);
    toServer.off('error', onServerStdinError);
    toClient.off('error', onError);
  };
  return emitter;
}
