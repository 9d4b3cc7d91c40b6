// TLS ClientHello parser: extracts the server_name (SNI) from the first bytes a client sends.
// Pure and incremental: feed it everything received so far; it says 'need-more' until the whole
// ClientHello is there (it may span several TLS records, and records may be split across reads),
// and never throws on garbage. RFC 8446 4.1.2 (ClientHello), RFC 6066 3 (server_name).

export type ClientHelloResult =
  | { kind: 'need-more' }
  | { kind: 'not-tls' }
  | { kind: 'invalid'; reason: string }
  | { kind: 'tls'; sni: string | null };

/** The largest ClientHello we wait for; real ones are a few hundred bytes to ~2 KiB (PQ keys: ~8 KiB). */
export const MAX_CLIENT_HELLO = 64 * 1024;

export function parseClientHello(data: Buffer): ClientHelloResult {
  if (data.length === 0) return { kind: 'need-more' };
  if (data[0] !== 0x16) return { kind: 'not-tls' };
  // Reassemble the handshake bytes from consecutive handshake records.
  const chunks: Buffer[] = [];
  let have = 0;
  let offset = 0;
  let needed = -1;
  while (needed < 0 || have < needed) {
    if (offset + 5 > data.length) return moreOrTooBig(data);
    if (data[offset] !== 0x16) return { kind: 'invalid', reason: 'non-handshake record inside ClientHello' };
    if (data[offset + 1] !== 0x03) return { kind: 'invalid', reason: 'unknown TLS record version' };
    const len = data.readUInt16BE(offset + 3);
    if (len === 0 || len > 16384 + 2048) return { kind: 'invalid', reason: 'bad TLS record length' };
    const avail = Math.min(len, data.length - offset - 5);
    chunks.push(data.subarray(offset + 5, offset + 5 + avail));
    have += avail;
    if (needed < 0 && have >= 4) {
      const hs = Buffer.concat(chunks);
      if (hs[0] !== 0x01) return { kind: 'invalid', reason: 'first handshake message is not a ClientHello' };
      needed = 4 + hs.readUIntBE(1, 3);
      if (needed > MAX_CLIENT_HELLO) return { kind: 'invalid', reason: 'ClientHello too large' };
    }
    if (avail < len) {
      if (needed >= 0 && have >= needed) break;
      return moreOrTooBig(data);
    }
    offset += 5 + len;
  }
  const hello = Buffer.concat(chunks).subarray(4, needed);
  try {
    return { kind: 'tls', sni: readServerName(hello) };
  } catch (err) {
    return { kind: 'invalid', reason: (err as Error).message };
  }
}

function moreOrTooBig(data: Buffer): ClientHelloResult {
  return data.length > MAX_CLIENT_HELLO + 1024 ? { kind: 'invalid', reason: 'ClientHello too large' } : { kind: 'need-more' };
}

class Reader {
  pos = 0;
  constructor(private readonly buf: Buffer) {}
  need(n: number): void {
    if (this.pos + n > this.buf.length) throw new Error('truncated ClientHello');
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
}

function readServerName(hello: Buffer): string | null {
  const r = new Reader(hello);
  r.bytes(2 + 32); // legacy_version, random
  r.bytes(r.u8()); // legacy_session_id
  r.bytes(r.u16()); // cipher_suites
  r.bytes(r.u8()); // legacy_compression_methods
  if (r.done) return null; // no extensions at all (SSL 3 style)
  const ext = new Reader(r.bytes(r.u16()));
  let sni: string | null = null;
  while (!ext.done) {
    const type = ext.u16();
    const body = ext.bytes(ext.u16());
    if (type !== 0) continue;
    if (sni !== null) throw new Error('duplicate server_name extension');
    const list = new Reader(body);
    const names = new Reader(list.bytes(list.u16()));
    while (!names.done) {
      const nameType = names.u8();
      const name = names.bytes(names.u16());
      if (nameType !== 0) continue;
      if (sni !== null) throw new Error('more than one host_name in server_name');
      // Kept as latin1 so a NUL or a non-ASCII byte reaches hostname validation and is refused.
      sni = name.toString('latin1');
    }
  }
  return sni;
}
