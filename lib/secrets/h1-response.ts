// An HTTP/1.1 response parser for the interceptor's upstream connections (./h1-upstream.ts), pure:
// bytes in, head and body pieces out. Strict where a lenient reading could let a response be read
// two ways (RFC 9112): one status line, no obs-fold, token field names, no control characters in
// values, Content-Length with Transfer-Encoding refused, any transfer coding but a lone `chunked`
// refused (a `gzip, chunked` body would reach the redactor compressed), differing Content-Length
// values refused, the head bounded by http.maxHeaderSize like node's own client. Whatever it
// refuses is a ResponseError: the exchange fails with a 502 and its connection is closed.
import { maxHeaderSize } from 'node:http';
import type { HeaderPairs } from './rewrite';

export class ResponseError extends Error {}

export interface ResponseSink {
  head(status: number, pairs: HeaderPairs): void;
  body(chunk: Buffer): void;
  /** The message is complete; `reusable`: the connection may carry another request. */
  end(reusable: boolean): void;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: a field value may hold no control character but HTAB
const BAD_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9][0-9]{2})(?: [^\r\n]*)?$/;
const CHUNK_SIZE = /^([0-9a-fA-F]{1,12})[ \t]*(;[^\r\n]*)?$/;
const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');
/** A chunk-size line with its extensions; longer is not a client we want to talk to. */
const MAX_CHUNK_LINE = 4096;

type State = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailers' | 'close' | 'done';

export class ResponseParser {
  private state: State = 'head';
  /** Bytes of a head, chunk-size line or trailer section not yet complete. */
  private pending: Buffer = Buffer.alloc(0);
  private remaining = 0;
  private reusable = false;

  constructor(
    private readonly method: string,
    private readonly sink: ResponseSink,
  ) {}

  get complete(): boolean {
    return this.state === 'done';
  }

  /** Passes up to `remaining` bytes of `data` on as body; returns the rest. */
  private body(data: Buffer): Buffer {
    const n = Math.min(this.remaining, data.length);
    this.remaining -= n;
    this.sink.body(n === data.length ? data : data.subarray(0, n));
    return data.subarray(n);
  }

  /** Feeds bytes from the connection. Throws ResponseError on anything it refuses. */
  push(chunk: Buffer): void {
    let data = chunk;
    while (data.length > 0) {
      switch (this.state) {
        case 'head':
          data = this.readHead(data);
          break;
        case 'length': {
          data = this.body(data);
          if (this.remaining === 0) {
            this.finish(data);
            return;
          }
          break;
        }
        case 'close':
          this.sink.body(data);
          return;
        case 'chunk-size': {
          const line = this.line(data, MAX_CHUNK_LINE, 'chunk size line');
          if (!line) return;
          data = line.rest;
          const m = CHUNK_SIZE.exec(line.text);
          if (!m) throw new ResponseError('malformed chunk size');
          this.remaining = Number.parseInt(m[1], 16);
          this.state = this.remaining === 0 ? 'trailers' : 'chunk-data';
          break;
        }
        case 'chunk-data': {
          data = this.body(data);
          if (this.remaining === 0) this.state = 'chunk-crlf';
          break;
        }
        case 'chunk-crlf': {
          const line = this.line(data, 2, 'chunk');
          if (!line) return;
          if (line.text !== '') throw new ResponseError('chunk data longer than its size');
          data = line.rest;
          this.state = 'chunk-size';
          break;
        }
        case 'trailers': {
          // Trailer fields are not relayed (node's client did not either); only their end matters.
          const line = this.line(data, maxHeaderSize, 'trailer section');
          if (!line) return;
          data = line.rest;
          if (line.text === '') {
            this.finish(data);
            return;
          }
          break;
        }
        case 'done':
          return;
      }
    }
  }

  /** The connection ended (EOF). Throws ResponseError if the message was not complete. */
  eof(): void {
    if (this.state === 'close') {
      this.state = 'done';
      this.sink.end(false);
      return;
    }
    if (this.state !== 'done')
      throw new ResponseError(this.state === 'head' ? 'connection closed before a response' : 'connection closed mid-response');
  }

  private finish(rest: Buffer): void {
    this.state = 'done';
    // More than the response: the connection is not in a state to trust for another request.
    if (rest.length > 0) this.reusable = false;
    this.sink.end(this.reusable);
  }

  /** Takes one CRLF-terminated line from pending + data, or holds the bytes (bounded) and returns null. */
  private line(data: Buffer, max: number, what: string): { text: string; rest: Buffer } | null {
    const buf = this.pending.length ? Buffer.concat([this.pending, data]) : data;
    const i = buf.indexOf(CRLF);
    if (i < 0) {
      if (buf.length > max) throw new ResponseError(`${what} too long`);
      this.pending = Buffer.from(buf);
      return null;
    }
    if (i > max) throw new ResponseError(`${what} too long`);
    this.pending = Buffer.alloc(0);
    return { text: buf.toString('latin1', 0, i), rest: buf.subarray(i + 2) };
  }

  private readHead(data: Buffer): Buffer {
    const buf = this.pending.length ? Buffer.concat([this.pending, data]) : data;
    const end = buf.indexOf(HEAD_END);
    if (end < 0) {
      if (buf.length > maxHeaderSize) throw new ResponseError('response head too large');
      this.pending = Buffer.from(buf);
      return Buffer.alloc(0);
    }
    if (end > maxHeaderSize) throw new ResponseError('response head too large');
    this.pending = Buffer.alloc(0);
    const lines = buf.toString('latin1', 0, end).split('\r\n');
    const rest = buf.subarray(end + 4);
    const status = STATUS_LINE.exec(lines[0]);
    if (!status) throw new ResponseError('malformed status line');
    const code = Number(status[2]);
    const pairs: HeaderPairs = [];
    let te: string | undefined;
    let cl: string | undefined;
    let close = status[1] === '0';
    for (let i = 1; i < lines.length; i++) {
      const l = lines[i];
      const colon = l.indexOf(':');
      const name = colon < 0 ? '' : l.slice(0, colon);
      if (!TOKEN.test(name)) throw new ResponseError('malformed header field');
      const value = l.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
      if (BAD_VALUE.test(value)) throw new ResponseError(`control character in header ${name}`);
      const lname = name.toLowerCase();
      if (lname === 'transfer-encoding') te = te === undefined ? value : `${te},${value}`;
      else if (lname === 'content-length') {
        for (const v of value.split(',')) {
          const n = v.trim();
          if (!/^[0-9]{1,15}$/.test(n) || (cl !== undefined && cl !== n)) throw new ResponseError('invalid content-length');
          cl = n;
        }
      } else if (lname === 'connection' && /(^|,)[ \t]*close[ \t]*(,|$)/i.test(value)) close = true;
      pairs.push([name, value]);
    }
    if (code < 200) {
      // 101 answers an upgrade this path never asks for; other 1xx are interim: the next head follows.
      if (code === 101) throw new ResponseError('unexpected 101 Switching Protocols');
      return rest;
    }
    // Every refusal before the head goes out: after it, the sandbox would get half a response.
    if (te !== undefined && cl !== undefined) throw new ResponseError('both transfer-encoding and content-length');
    if (te !== undefined) {
      const codings = te
        .split(',')
        .map((c) => c.trim().toLowerCase())
        .filter((c) => c !== '');
      if (codings.length !== 1 || codings[0] !== 'chunked') throw new ResponseError(`transfer-encoding ${te} not supported`);
    }
    this.reusable = !close;
    this.sink.head(code, pairs);
    if (this.method === 'HEAD' || code === 204 || code === 304) {
      this.finish(rest);
    } else if (te !== undefined) {
      this.state = 'chunk-size';
    } else if (cl !== undefined) {
      this.remaining = Number(cl);
      this.state = 'length';
      if (this.remaining === 0) this.finish(rest);
    } else {
      this.state = 'close';
      this.reusable = false;
    }
    return this.state === 'done' ? Buffer.alloc(0) : rest;
  }
}
