// The sandbox's DNS responder, as pure functions over Buffers (RFC 1035 4.1). Allowlisted names
// get an A record from a private pool (default 198.18.0.0/15, RFC 2544 benchmarking space, never
// routed) where each name gets one stable address for the proxy's lifetime, so transparent mode
// can map a connection's destination address back to the name the program asked for. Other names
// get NXDOMAIN; AAAA and every other type get NODATA (so clients fall back to IPv4). Nothing is
// ever forwarded to the host's resolver: a query is a decision, not a lookup, so a program cannot
// exfiltrate data by encoding it into names. The lead's native UDP socket calls handleQuery();
// serveDnsTcp() speaks the length-prefixed TCP form (RFC 7766) on an accepted socket.
import type { Socket } from 'node:net';
import type { Allowlist } from './allowlist';
import { normalizeHost } from './hostname';
import { type Cidr, cidrContains, formatIp, parseCidr, parseIp } from './ip';

export const DEFAULT_DNS_POOL = '198.18.0.0/15';
const TTL = 300;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const QTYPE = { A: 1, AAAA: 28 } as const;

/** Names a sandbox's pool remembers at once, by default (see DnsPool). */
export const DEFAULT_DNS_NAMES = 4096;

/**
 * Hands out one stable IPv4 address per name from a CIDR and maps addresses back to names. At
 * most `maxNames` are remembered: past that the least recently used name gives its address back
 * (a program that still holds it reaches nothing or a later name — both allowed — and a new
 * lookup of the old name gets a new address), so a sandbox that asks for names without end
 * (under a wildcard entry) costs bounded memory and new names keep resolving. Addresses are
 * handed out round-robin over the whole CIDR, so a freed one is not reused soon.
 */
export class DnsPool {
  private readonly cidr: Cidr;
  private readonly size: number;
  private readonly base: number;
  /** Name -> address, least recently used first. */
  private readonly byName = new Map<string, string>();
  private readonly byAddress = new Map<string, string>();
  private cursor = 0;
  readonly maxNames: number;
  /** Names given back to make room (for the audit: a sandbox enumerating names). */
  recycled = 0;

  constructor(cidr: string = DEFAULT_DNS_POOL, maxNames = DEFAULT_DNS_NAMES) {
    this.cidr = parseCidr(cidr);
    if (this.cidr.family !== 4 || this.cidr.prefix > 30) {
      throw new TypeError(`invalid DNS pool '${cidr}': must be an IPv4 CIDR of /30 or larger`);
    }
    // The network and broadcast addresses are skipped.
    this.size = 2 ** (32 - this.cidr.prefix) - 2;
    this.base = Buffer.from(this.cidr.bytes).readUInt32BE(0);
    if (!Number.isInteger(maxNames) || maxNames < 1) throw new TypeError(`invalid DNS pool size ${maxNames}`);
    this.maxNames = Math.min(maxNames, this.size);
  }

  /** Names currently holding an address. */
  get names(): number {
    return this.byName.size;
  }

  /** The name's address, allocating one on first use (recycling the least recently used). */
  addressFor(name: string): string | null {
    const known = this.byName.get(name);
    if (known) {
      this.byName.delete(name);
      this.byName.set(name, known);
      return known;
    }
    if (this.byName.size >= this.maxNames) {
      const [oldest, address] = this.byName.entries().next().value as [string, string];
      this.byName.delete(oldest);
      this.byAddress.delete(address);
      this.recycled++;
    }
    let address: string;
    do {
      const bytes = Buffer.alloc(4);
      bytes.writeUInt32BE((this.base + this.cursor + 1) >>> 0);
      this.cursor = (this.cursor + 1) % this.size;
      address = formatIp({ family: 4, bytes });
    } while (this.byAddress.has(address));
    this.byName.set(name, address);
    this.byAddress.set(address, name);
    return address;
  }

  /** The name an address was handed out for, if it came from this pool. */
  nameFor(address: string): string | undefined {
    return this.byAddress.get(address);
  }

  contains(address: string): boolean {
    const ip = parseIp(address);
    return ip !== null && ip.family === 4 && cidrContains(this.cidr, ip);
  }
}

export interface DnsQuestion {
  id: number;
  opcode: number;
  rd: boolean;
  /** Raw question section bytes, echoed in the answer. */
  raw: Buffer;
  /** The name as received (labels joined by '.', latin1). */
  name: string;
  qtype: number;
  qclass: number;
}

export type ParsedQuery = { ok: true; q: DnsQuestion } | { ok: false; id: number; rcode: number; reason: string } | null;

/** Parses a query; null means "drop silently" (too short to answer, or itself a response). */
export function parseQuery(msg: Buffer): ParsedQuery {
  if (msg.length < 12) return null;
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000) return null; // a response: answering it could start a loop
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== 0) return { ok: false, id, rcode: RCODE.NOTIMP, reason: `opcode ${opcode} not supported` };
  if (msg.readUInt16BE(4) !== 1) return { ok: false, id, rcode: RCODE.FORMERR, reason: 'QDCOUNT is not 1' };
  const labels: string[] = [];
  let pos = 12;
  let wire = 0;
  for (;;) {
    if (pos >= msg.length) return { ok: false, id, rcode: RCODE.FORMERR, reason: 'truncated name' };
    const len = msg[pos];
    if (len === 0) {
      pos++;
      break;
    }
    // Compression pointers (0xC0) and the reserved label types have no place in a question.
    if (len > 63) return { ok: false, id, rcode: RCODE.FORMERR, reason: 'compressed or invalid label in question' };
    if (pos + 1 + len > msg.length) return { ok: false, id, rcode: RCODE.FORMERR, reason: 'truncated label' };
    wire += len + 1;
    if (wire > 254) return { ok: false, id, rcode: RCODE.FORMERR, reason: 'name longer than 255 bytes' };
    labels.push(msg.subarray(pos + 1, pos + 1 + len).toString('latin1'));
    pos += 1 + len;
  }
  if (pos + 4 > msg.length) return { ok: false, id, rcode: RCODE.FORMERR, reason: 'truncated question' };
  const q: DnsQuestion = {
    id,
    opcode,
    rd: (flags & 0x0100) !== 0,
    raw: msg.subarray(12, pos + 4),
    name: labels.join('.'),
    qtype: msg.readUInt16BE(pos),
    qclass: msg.readUInt16BE(pos + 2),
  };
  // A label containing '.' would make two different names look alike once joined.
  if (labels.some((l) => l.includes('.'))) return { ok: false, id, rcode: RCODE.FORMERR, reason: 'label contains "."' };
  return { ok: true, q };
}

/** Builds a response: the question echoed, plus one A record when `address` is given. */
export function buildResponse(q: Pick<DnsQuestion, 'id' | 'opcode' | 'rd'> & { raw?: Buffer }, rcode: number, address?: string): Buffer {
  const question = q.raw ?? Buffer.alloc(0);
  const answer = address ? 16 : 0;
  const out = Buffer.alloc(12 + question.length + answer);
  out.writeUInt16BE(q.id, 0);
  // QR=1, opcode echoed, AA=1, RD echoed, RA=1 (stub resolvers warn when RA is clear).
  out.writeUInt16BE(0x8000 | (q.opcode << 11) | 0x0400 | (q.rd ? 0x0100 : 0) | 0x0080 | rcode, 2);
  out.writeUInt16BE(question.length > 0 ? 1 : 0, 4);
  out.writeUInt16BE(address ? 1 : 0, 6);
  question.copy(out, 12);
  if (address) {
    let p = 12 + question.length;
    out.writeUInt16BE(0xc00c, p); // pointer to the question's name
    out.writeUInt16BE(QTYPE.A, p + 2);
    out.writeUInt16BE(1, p + 4); // IN
    out.writeUInt32BE(TTL, p + 6);
    out.writeUInt16BE(4, p + 10);
    p += 12;
    for (const part of address.split('.')) out[p++] = Number(part);
  }
  return out;
}

export interface DnsDecision {
  name: string;
  qtype: number;
  allowed: boolean;
  rule: string;
  rcode: number;
  address?: string;
}

/** The responder's policy: allowlist + pool. `onDecision` receives one record per answered query. */
export class DnsResponder {
  constructor(
    private readonly allowlist: Allowlist,
    readonly pool: DnsPool,
    private readonly onDecision: (d: DnsDecision) => void = () => {},
  ) {}

  handleQuery(msg: Buffer): Buffer | null {
    const parsed = parseQuery(msg);
    if (parsed === null) return null;
    if (!parsed.ok) {
      this.onDecision({ name: '', qtype: 0, allowed: false, rule: `dns: ${parsed.reason}`, rcode: parsed.rcode });
      return buildResponse({ id: parsed.id, opcode: 0, rd: false }, parsed.rcode);
    }
    const { q } = parsed;
    const decide = (d: Omit<DnsDecision, 'qtype'>): Buffer => {
      this.onDecision({ ...d, qtype: q.qtype });
      return buildResponse(q, d.rcode, d.address);
    };
    if (q.qclass !== 1) return decide({ name: q.name, allowed: false, rule: 'dns: class is not IN', rcode: RCODE.REFUSED });
    let name: string;
    try {
      const host = normalizeHost(q.name);
      if (host.kind !== 'name') {
        return decide({ name: q.name, allowed: false, rule: 'dns: an IP address is not a name', rcode: RCODE.NXDOMAIN });
      }
      name = host.host;
    } catch (err) {
      return decide({ name: q.name, allowed: false, rule: (err as Error).message, rcode: RCODE.NXDOMAIN });
    }
    const entry = this.allowlist.allowsName(name);
    if (!entry) return decide({ name, allowed: false, rule: `no allowlist entry matches ${name}`, rcode: RCODE.NXDOMAIN });
    if (q.qtype !== QTYPE.A) return decide({ name, allowed: true, rule: entry.text, rcode: RCODE.NOERROR });
    const address = this.pool.addressFor(name);
    if (!address) return decide({ name, allowed: false, rule: 'dns: address pool exhausted', rcode: RCODE.SERVFAIL });
    return decide({ name, allowed: true, rule: entry.text, rcode: RCODE.NOERROR, address });
  }
}

/**
 * DNS over TCP on one accepted connection: 2-byte length prefix per message, several queries per
 * connection, any fragmentation. Garbage that cannot be answered closes the connection.
 */
export function serveDnsTcp(socket: Socket, handle: (msg: Buffer) => Buffer | null, idleMs: number): void {
  let buf: Buffer = Buffer.alloc(0);
  socket.setTimeout(idleMs, () => socket.destroy());
  socket.on('error', () => {});
  // Backpressure: a client that sends queries and never reads the answers stops being read
  // once its answers fill the socket's buffer (Node queues every write otherwise: 350 MB in 8 s).
  socket.on('drain', () => socket.resume());
  socket.on('data', (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 2) {
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) break;
      const msg = buf.subarray(2, 2 + len);
      buf = buf.subarray(2 + len);
      let reply: Buffer | null;
      try {
        reply = handle(msg);
      } catch {
        reply = null;
      }
      if (!reply) {
        socket.destroy();
        return;
      }
      const head = Buffer.alloc(2);
      head.writeUInt16BE(reply.length);
      if (!socket.write(Buffer.concat([head, reply]))) socket.pause();
    }
    // What is left is at most one partial message (< 64 KiB + 2); a copy, so the chunk it came
    // from is not kept alive.
    if (buf.length > 0) buf = Buffer.from(buf);
  });
}
