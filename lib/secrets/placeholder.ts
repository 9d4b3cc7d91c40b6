// Placeholders (what the sandbox sees instead of a secret), the scanners that find them in
// headers, URLs and streamed bodies, and the scrubber that keeps real values out of logs and errors.
import { randomBytes } from 'node:crypto';

/** Every placeholder starts with this, so one indexOf() finds candidates for all secrets at once. */
export const PLACEHOLDER_PREFIX = 'stockade-ph-';

/**
 * A fresh placeholder: prefix, the lowercased name (so a human reading a log knows which secret it
 * stands for) and 128 random bits (so a sandbox cannot guess another secret's placeholder).
 * Only [a-z0-9_-]: it survives URL encoding, header values and JSON unchanged.
 */
export function makePlaceholder(name: string): string {
  const tag = name.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  return `${PLACEHOLDER_PREFIX}${tag}-${randomBytes(16).toString('hex')}`;
}

const PREFIX_BYTES = Buffer.from(PLACEHOLDER_PREFIX);
/** Code points latin1 cannot hold: Buffer.from(s, 'latin1') keeps only their low byte. */
const BEYOND_LATIN1 = /[\u0100-\uffff]/;
/** Never written to: the scanners' "nothing held back", shared rather than allocated per body. */
const EMPTY = Buffer.alloc(0);

/** A placeholder occurrence: which secret, and where. */
export interface PlaceholderMatch {
  name: string;
  index: number;
}

/**
 * The set of placeholders of one run. find() costs one native indexOf for the common prefix, so
 * scanning is cheap however many secrets there are.
 */
export class PlaceholderSet {
  private readonly byPlaceholder = new Map<string, string>();
  private readonly prefix = PREFIX_BYTES;
  /** Length of the longest placeholder: how much a streaming scan must hold back at most. */
  maxLength = 0;

  constructor(entries: Iterable<{ name: string; placeholder: string }> = []) {
    for (const e of entries) this.add(e.name, e.placeholder);
  }

  add(name: string, placeholder: string): void {
    if (!placeholder.startsWith(PLACEHOLDER_PREFIX)) throw new TypeError('placeholder must start with the stockade prefix');
    this.byPlaceholder.set(placeholder, name);
    this.maxLength = Math.max(this.maxLength, placeholder.length);
  }

  get size(): number {
    return this.byPlaceholder.size;
  }

  /** The first placeholder in `data` at or after `from`, or null. */
  find(data: Buffer | string, from = 0): PlaceholderMatch | null {
    if (this.byPlaceholder.size === 0) return null;
    // A string of code points up to U+00FF (every header, URL and method node's parser hands
    // us) is its latin1 bytes one to one: searched as it is, without a copy per field.
    if (typeof data === 'string' && !BEYOND_LATIN1.test(data)) return this.findInText(data, from);
    const buf = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    let i = buf.indexOf(this.prefix, from);
    while (i >= 0) {
      for (const [ph, name] of this.byPlaceholder) {
        // Placeholders are ASCII, so comparing latin1 bytes is exact.
        if (buf.length - i >= ph.length && buf.toString('latin1', i, i + ph.length) === ph) return { name, index: i };
      }
      i = buf.indexOf(this.prefix, i + 1);
    }
    return null;
  }

  private findInText(text: string, from: number): PlaceholderMatch | null {
    let i = text.indexOf(PLACEHOLDER_PREFIX, from);
    while (i >= 0) {
      for (const [ph, name] of this.byPlaceholder) if (text.startsWith(ph, i)) return { name, index: i };
      i = text.indexOf(PLACEHOLDER_PREFIX, i + 1);
    }
    return null;
  }

  /** Names of every secret whose placeholder occurs in `data` (deduplicated, in order of first occurrence). */
  names(data: Buffer | string): string[] {
    const out: string[] = [];
    let m = this.find(data);
    while (m) {
      if (!out.includes(m.name)) out.push(m.name);
      m = this.find(data, m.index + 1);
    }
    return out;
  }

  /** Whether any placeholder of this run occurs in `data`. What the proxy calls on plaintext. */
  contains(data: Buffer | string): boolean {
    return this.find(data) !== null;
  }

  /** A scanner for a body arriving in chunks. */
  stream(): StreamScanner {
    return new StreamScanner(this);
  }
}

/**
 * Length of the longest suffix of `buf` that is a proper prefix of `needle`: the bytes a streaming
 * scan must keep until the next chunk shows whether they start a match. For ordinary data this is
 * 0, so streams (SSE, gRPC) are not delayed.
 */
export function partialSuffix(buf: Buffer, needle: Buffer): number {
  const max = Math.min(buf.length, needle.length - 1);
  for (let k = max; k > 0; k--) {
    if (buf[buf.length - k] !== needle[0]) continue;
    if (buf.compare(needle, 0, k, buf.length - k, buf.length) === 0) return k;
  }
  return 0;
}

/**
 * Finds placeholders in a body that arrives in chunks, including one split across chunks.
 * push() returns the bytes that are safe to forward now and the match, if any; a possible
 * placeholder start at the end of a chunk is held back until the next chunk or end().
 *
 * Two kinds of tail are held. A full common prefix followed by less than a placeholder is one
 * in the making: held until it completes (a violation) or the body ends. A tail that is only the
 * start of the common prefix (`s`, `stock`...) is as likely the last byte of anything (a TLS
 * ClientHello ends in `s` one time in 256): a stream that then waits for an answer would wait
 * for ever, so release() lets such a tail go once nothing followed for a while (the tunnel's
 * caller decides how long). What is released stays in the scan, so a placeholder it turns out to
 * start is still found, before its first byte of its own goes on: the far end can get at most
 * those first bytes of the public prefix, never a placeholder's own.
 */
export class StreamScanner {
  /** The tail kept for the next chunk's scan; its first `sent` bytes are forwarded already. */
  private carry: Buffer = EMPTY;
  private sent = 0;
  /** Whether the carry holds a full prefix (a placeholder in the making): never released. */
  private inProgress = false;
  private readonly prefix = PREFIX_BYTES;

  constructor(private readonly set: PlaceholderSet) {}

  push(chunk: Buffer): { forward: Buffer; match: PlaceholderMatch | null } {
    const data = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    const match = this.set.find(data);
    if (match) return { forward: EMPTY, match };
    // The prefix followed by an incomplete rest (at most maxLength - 1 bytes from its start).
    const last = data.lastIndexOf(this.prefix);
    const held = last >= 0 && data.length - last < this.set.maxLength ? data.length - last : 0;
    const keep = Math.max(held, partialSuffix(data, this.prefix));
    // Forwarded up to here: what was forwarded before (released) is not sent again.
    const upTo = Math.max(this.sent, data.length - keep);
    const forward = data.subarray(this.sent, upTo);
    this.carry = keep ? Buffer.from(data.subarray(data.length - keep)) : EMPTY;
    this.sent = Math.max(0, upTo - (data.length - keep));
    this.inProgress = held > 0;
    return { forward, match: null };
  }

  /** Bytes held back that release() would let go: only the start of the common prefix. */
  get releasable(): number {
    return this.inProgress ? 0 : this.carry.length - this.sent;
  }

  /** The held start of the common prefix, to forward now; kept for the next chunk's scan. */
  release(): Buffer {
    if (this.releasable === 0) return EMPTY;
    const out = this.carry.subarray(this.sent);
    this.sent = this.carry.length;
    return out;
  }

  /** The held-back tail, at the end of the body. It cannot contain a full placeholder. */
  end(): Buffer {
    const rest = this.carry.subarray(this.sent);
    this.carry = EMPTY;
    this.sent = 0;
    this.inProgress = false;
    return rest;
  }
}

/**
 * Replaces real secret values in a streamed response body with a mask of the same length, so an API
 * that echoes the token back (error messages, debug endpoints) cannot hand it to the sandbox, and
 * Content-Length stays right.
 */
export class StreamRedactor {
  private carry: Buffer = EMPTY;
  private readonly needles: readonly Buffer[];

  /** `values` as strings, or as the Buffers of an earlier redactNeedles() (one response each: no copies). */
  constructor(values: readonly string[] | readonly Buffer[]) {
    this.needles =
      values.length > 0 && Buffer.isBuffer(values[0]) ? (values as readonly Buffer[]) : redactNeedles(values as readonly string[]);
  }

  push(chunk: Buffer): Buffer {
    let data = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    let copied = false;
    for (const n of this.needles) {
      let i = data.indexOf(n);
      while (i >= 0) {
        if (!copied) {
          data = Buffer.from(data);
          copied = true;
        }
        data.fill(0x2a, i, i + n.length); // '*'
        i = data.indexOf(n, i + n.length);
      }
    }
    let hold = 0;
    for (const n of this.needles) hold = Math.max(hold, partialSuffix(data, n));
    this.carry = hold ? Buffer.from(data.subarray(data.length - hold)) : EMPTY;
    return hold ? data.subarray(0, data.length - hold) : data;
  }

  end(): Buffer {
    const rest = this.carry;
    this.carry = EMPTY;
    return rest;
  }
}

/** The byte strings a StreamRedactor masks, made once per run rather than once per response. */
export function redactNeedles(values: readonly string[]): Buffer[] {
  return values.filter((v) => v.length > 0).map((v) => Buffer.from(v));
}

/**
 * Every form in which the proxy itself put a secret on the wire, as an upstream echoing it back
 * (an error message, a redirect, a debug endpoint) would most likely write it: the value (a
 * header format), base64 of `user:value` (Basic), percent-encoded (query parameter; upper- and
 * lowercase hex), form-encoded (space as +), and each of those as a JSON string escapes it
 * (`\/` included, as PHP writes). What an upstream does beyond that (hashing, another base64
 * alphabet, splitting the value) no proxy can recognize; see README, credentials.
 */
export function secretForms(value: string, basicUser?: string): string[] {
  if (!value) return [];
  const base = [value];
  if (basicUser !== undefined) base.push(Buffer.from(`${basicUser}:${value}`).toString('base64'));
  const out = new Set<string>();
  for (const f of base) {
    const pct = encodeURIComponent(f);
    for (const v of [f, pct, pct.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()), pct.replace(/%20/g, '+')]) {
      out.add(v);
      const json = JSON.stringify(v).slice(1, -1);
      out.add(json);
      out.add(json.replace(/\//g, '\\/'));
      // \u-escaped non-ASCII, as JSON encoders with ensure_ascii (Python's default) write it.
      out.add(json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
    }
  }
  // Longest first, so a form containing another is masked whole.
  return [...out].filter((f) => f.length > 0).sort((a, b) => b.length - a.length);
}

/**
 * Returns a function that removes every real value from a string, for log lines and error
 * messages. Also covers the forms a value travels in: URL-encoded and base64 (Basic auth).
 */
export function makeScrubber(secrets: readonly { name: string; value: string; basicUser?: string }[]): (text: string) => string {
  const forms: Array<[string, string]> = [];
  for (const s of secrets) {
    const tag = `[redacted ${s.name}]`;
    for (const f of secretForms(s.value, s.basicUser)) forms.push([f, tag]);
  }
  // Longest first, so a value containing another value is replaced whole.
  forms.sort((a, b) => b[0].length - a[0].length);
  return (text: string) => {
    let out = text;
    for (const [needle, tag] of forms) if (out.includes(needle)) out = out.split(needle).join(tag);
    return out;
  };
}

/** Applies a scrubber to every string inside a JSON-like value (for structured log records). */
export function scrubDeep<T>(value: T, scrub: (s: string) => string, depth = 0): T {
  if (typeof value === 'string') return scrub(value) as T;
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    const e = value as Error & { code?: unknown };
    return { type: e.name, message: scrub(e.message), code: e.code, stack: e.stack ? scrub(e.stack) : undefined } as T;
  }
  if (Array.isArray(value)) return value.map((v) => scrubDeep(v, scrub, depth + 1)) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = scrubDeep(v, scrub, depth + 1);
  return out as T;
}
