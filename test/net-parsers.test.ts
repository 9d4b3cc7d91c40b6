// The hand-written parsers (TLS ClientHello/SNI, first-bytes sniffing, SOCKS5, DNS) against real
// and fragmented input, plus a bounded fuzz loop: random bytes and mutations of valid messages
// must never throw, and every answer must be one of the parser's declared outcomes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { Allowlist, parseAllowEntry } from '../lib/net/allowlist';
import { DnsPool, DnsResponder, parseQuery, RCODE } from '../lib/net/dns';
import { normalizeHost } from '../lib/net/hostname';
import { parseClientHello } from '../lib/net/sni';
import { sniff } from '../lib/net/sniff';
import { parseGreeting, parseRequest, SOCKS_REPLY } from '../lib/net/socks';
import { dnsQuery, listen, portOf } from './helpers/net';

/** A real ClientHello from node:tls for `servername`. */
async function captureClientHello(servername?: string): Promise<Buffer> {
  const server = await listen(createServer());
  const got = new Promise<Buffer>((resolve) => {
    server.once('connection', (s: Socket) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        const all = Buffer.concat(chunks);
        if (all.length >= 5 && all.length >= 5 + all.readUInt16BE(3)) {
          resolve(all);
          s.destroy();
        }
      });
    });
  });
  const client = tlsConnect({ host: '127.0.0.1', port: portOf(server), servername, rejectUnauthorized: false });
  client.on('error', () => {});
  const hello = await got;
  client.destroy();
  server.close();
  return hello;
}

describe('TLS ClientHello parser', () => {
  it('finds the SNI in a real ClientHello, whole and split at every byte', async () => {
    const hello = await captureClientHello('good.test');
    assert.deepEqual(parseClientHello(hello), { kind: 'tls', sni: 'good.test' });
    for (let i = 0; i < hello.length; i++) {
      assert.deepEqual(parseClientHello(hello.subarray(0, i)), { kind: 'need-more' }, `prefix ${i}`);
    }
  });

  it('reassembles a ClientHello fragmented over several TLS records', async () => {
    const hello = await captureClientHello('frag.good.test');
    const body = hello.subarray(5);
    const records: Buffer[] = [];
    for (let i = 0; i < body.length; i += 37) {
      const part = body.subarray(i, i + 37);
      records.push(Buffer.from([0x16, 0x03, 0x01, part.length >> 8, part.length & 0xff]), part);
    }
    assert.deepEqual(parseClientHello(Buffer.concat(records)), { kind: 'tls', sni: 'frag.good.test' });
  });

  it('reports no SNI, not-TLS and garbage precisely', async () => {
    // Node sends no SNI when connecting to an IP address without a servername.
    assert.deepEqual(parseClientHello(await captureClientHello()), { kind: 'tls', sni: null });
    assert.deepEqual(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n')), { kind: 'not-tls' });
    assert.deepEqual(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0, 0, 0])), {
      kind: 'invalid',
      reason: 'first handshake message is not a ClientHello',
    });
    assert.deepEqual(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0, 0, 1, 0])), {
      kind: 'invalid',
      reason: 'truncated ClientHello',
    });
    assert.deepEqual(parseClientHello(Buffer.from([0x16, 0x09, 0x01, 0x00, 0x05])), {
      kind: 'invalid',
      reason: 'unknown TLS record version',
    });
  });
});

describe('first-bytes sniffing', () => {
  it('reads Host from an HTTP request and waits for the whole head', () => {
    const req = Buffer.from('GET /x HTTP/1.1\r\nUser-Agent: t\r\nHOST: good.test:8080\r\n\r\n');
    assert.deepEqual(sniff(req, 16384), { kind: 'http', host: 'good.test:8080' });
    assert.deepEqual(sniff(req.subarray(0, 20), 16384), { kind: 'need-more' });
    assert.deepEqual(sniff(Buffer.from('GE'), 16384), { kind: 'need-more' });
  });

  it('refuses two Host headers and oversized heads; passes opaque protocols as other', () => {
    assert.deepEqual(sniff(Buffer.from('GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n'), 16384), {
      kind: 'invalid',
      protocol: 'http',
      reason: 'more than one Host header',
    });
    assert.deepEqual(sniff(Buffer.from(`GET / HTTP/1.1\r\nX: ${'a'.repeat(200)}`), 100), {
      kind: 'invalid',
      protocol: 'http',
      reason: 'request head larger than 100 bytes',
    });
    assert.deepEqual(sniff(Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'), 16384), { kind: 'other' });
    assert.deepEqual(sniff(Buffer.from([0x2a, 0x31, 0x0d, 0x0a]), 16384), { kind: 'other' });
  });

  it("tells a line protocol's upper-case command from HTTP at its first line, and reads a bare-LF head as lenient servers do", () => {
    // What an SMTP or Redis client sends, then waits on: opaque at once, not a head to wait for.
    for (const line of ['EHLO relay.example\r\n', 'SET k v\r\n', 'AUTH PLAIN x\n', 'GET /legacy\r\n']) {
      assert.deepEqual(sniff(Buffer.from(line), 16384), { kind: 'other' }, line);
    }
    // Still partial, or a line that names HTTP in a form a lenient server might accept: held to
    // the strict form.
    assert.deepEqual(sniff(Buffer.from('EHLO relay.exa'), 16384), { kind: 'need-more' });
    for (const line of ['GET  /  HTTP/1.1\r\nHost: evil.test\r\n\r\n', 'GET / http/1.1\r\n', 'GET / HTTP/1.1 \r\n', 'GET / HTTP/2.0\r\n']) {
      assert.deepEqual(sniff(Buffer.from(line), 16384), { kind: 'invalid', protocol: 'http', reason: 'malformed request line' }, line);
    }
    // Bare LF line ends (nginx and Node accept them): the Host header is read, not waited past.
    assert.deepEqual(sniff(Buffer.from('GET / HTTP/1.1\nHost: evil.test\n\n'), 16384), { kind: 'http', host: 'evil.test' });
    assert.deepEqual(sniff(Buffer.from('GET / HTTP/1.1\r\nHost: a.test\nHost: b.test\n\n'), 16384), {
      kind: 'invalid',
      protocol: 'http',
      reason: 'more than one Host header',
    });
    assert.deepEqual(sniff(Buffer.from('GET / HTTP/1.1\nHost: good.test\r\n\r\n'), 16384), { kind: 'http', host: 'good.test' });
  });
});

describe('SOCKS5 parser', () => {
  it('parses greetings, SOCKS4 and bad versions', () => {
    assert.deepEqual(parseGreeting(Buffer.from([5, 1, 0])), { kind: 'greeting', noAuth: true, length: 3 });
    assert.deepEqual(parseGreeting(Buffer.from([5, 2, 1, 2])), { kind: 'greeting', noAuth: false, length: 4 });
    assert.deepEqual(parseGreeting(Buffer.from([5, 2, 0])), { kind: 'need-more' });
    assert.deepEqual(parseGreeting(Buffer.from([4, 1, 0, 80])), { kind: 'socks4' });
    assert.deepEqual(parseGreeting(Buffer.from('GET')), { kind: 'invalid', reason: 'not SOCKS5 (first byte 0x47)' });
  });

  it('parses CONNECT for domain, IPv4 and IPv6, and refuses other commands and types', () => {
    const domain = Buffer.concat([Buffer.from([5, 1, 0, 3, 9]), Buffer.from('good.test'), Buffer.from([0x01, 0xbb])]);
    assert.deepEqual(parseRequest(domain), { kind: 'connect', host: 'good.test', port: 443, length: domain.length });
    for (let i = 0; i < domain.length; i++) assert.deepEqual(parseRequest(domain.subarray(0, i)), { kind: 'need-more' });
    assert.deepEqual(parseRequest(Buffer.from([5, 1, 0, 1, 127, 0, 0, 2, 0, 80])), {
      kind: 'connect',
      host: '127.0.0.2',
      port: 80,
      length: 10,
    });
    const v6 = Buffer.alloc(22);
    v6.set([5, 1, 0, 4]);
    v6[19] = 1;
    v6.writeUInt16BE(8080, 20);
    assert.deepEqual(parseRequest(v6), { kind: 'connect', host: '::1', port: 8080, length: 22 });
    assert.deepEqual(parseRequest(Buffer.from([5, 2, 0, 1, 127, 0, 0, 1, 0, 80])), {
      kind: 'error',
      reply: SOCKS_REPLY.COMMAND_NOT_SUPPORTED,
      reason: 'command BIND not supported',
    });
    assert.deepEqual(parseRequest(Buffer.from([5, 3, 0, 1, 127, 0, 0, 1, 0, 80])), {
      kind: 'error',
      reply: SOCKS_REPLY.COMMAND_NOT_SUPPORTED,
      reason: 'command UDP ASSOCIATE not supported',
    });
    assert.deepEqual(parseRequest(Buffer.from([5, 1, 0, 9, 0, 0])), {
      kind: 'error',
      reply: SOCKS_REPLY.ADDRESS_TYPE_NOT_SUPPORTED,
      reason: 'address type 0x9 not supported',
    });
  });
});

describe('DNS responder logic', () => {
  const responder = () => new DnsResponder(new Allowlist(['good.test', '*.apps.test:5432']), new DnsPool());

  it('answers allowlisted names from the pool, stably, and maps addresses back', () => {
    const r = responder();
    const a = r.handleQuery(dnsQuery('Good.Test')) as Buffer;
    assert.equal(a.readUInt16BE(0), 0x1234);
    assert.equal(a.readUInt16BE(2) & 0xf, RCODE.NOERROR);
    assert.equal(a.readUInt16BE(6), 1);
    assert.equal([...a.subarray(a.length - 4)].join('.'), '198.18.0.1');
    const b = r.handleQuery(dnsQuery('db.apps.test')) as Buffer;
    assert.equal([...b.subarray(b.length - 4)].join('.'), '198.18.0.2');
    const again = r.handleQuery(dnsQuery('good.test.')) as Buffer;
    assert.equal([...again.subarray(again.length - 4)].join('.'), '198.18.0.1');
    assert.equal(r.pool.nameFor('198.18.0.2'), 'db.apps.test');
  });

  it('NXDOMAIN for other names (apex of a wildcard too), NODATA for AAAA, FORMERR / drop for garbage', () => {
    const r = responder();
    const rcode = (m: Buffer | null) => (m ? m.readUInt16BE(2) & 0xf : null);
    assert.equal(rcode(r.handleQuery(dnsQuery('evil.test'))), RCODE.NXDOMAIN);
    assert.equal(rcode(r.handleQuery(dnsQuery('apps.test'))), RCODE.NXDOMAIN);
    const aaaa = r.handleQuery(dnsQuery('good.test', 28)) as Buffer;
    assert.equal(rcode(aaaa), RCODE.NOERROR);
    assert.equal(aaaa.readUInt16BE(6), 0);
    const withNul = dnsQuery('good.test');
    withNul[13] = 0; // 'g' -> NUL inside the first label
    assert.equal(rcode(r.handleQuery(withNul)), RCODE.NXDOMAIN);
    const pointer = dnsQuery('good.test');
    pointer[12] = 0xc0;
    assert.equal(rcode(r.handleQuery(pointer)), RCODE.FORMERR);
    assert.equal(r.handleQuery(Buffer.alloc(5)), null);
    const response = dnsQuery('good.test');
    response[2] |= 0x80;
    assert.equal(r.handleQuery(response), null);
    assert.deepEqual(parseQuery(dnsQuery('good.test').subarray(0, 20)), {
      ok: false,
      id: 0x1234,
      rcode: RCODE.FORMERR,
      reason: 'truncated label',
    });
  });
});

describe('fuzz', () => {
  it('2,500 random and mutated inputs per parser: no throw, only declared outcomes', async () => {
    const seeds = [
      await captureClientHello('good.test'),
      Buffer.from('GET http://good.test/ HTTP/1.1\r\nHost: good.test\r\n\r\n'),
      Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 3, 9]), Buffer.from('good.test'), Buffer.from([0, 80])]),
      dnsQuery('good.test'),
    ];
    const responder = new DnsResponder(new Allowlist(['good.test', '*.good.test']), new DnsPool());
    let n = 0;
    for (let i = 0; i < 2500; i++) {
      let input: Buffer;
      if (i % 2 === 0) {
        input = randomBytes(Math.floor(Math.random() * 300));
      } else {
        input = Buffer.from(seeds[i % seeds.length]);
        const flips = 1 + Math.floor(Math.random() * 8);
        for (let f = 0; f < flips; f++) input[Math.floor(Math.random() * input.length)] = Math.floor(Math.random() * 256);
        if (Math.random() < 0.3) input = input.subarray(0, Math.floor(Math.random() * input.length));
      }
      assert.ok(['need-more', 'not-tls', 'invalid', 'tls'].includes(parseClientHello(input).kind));
      assert.ok(['need-more', 'other', 'invalid', 'tls', 'http'].includes(sniff(input, 16384).kind));
      assert.ok(['need-more', 'socks4', 'invalid', 'greeting'].includes(parseGreeting(input).kind));
      assert.ok(['need-more', 'error', 'connect'].includes(parseRequest(input).kind));
      const reply = responder.handleQuery(input);
      assert.ok(reply === null || (reply.length >= 12 && (reply.readUInt16BE(2) & 0x8000) !== 0));
      const text = input.toString('latin1');
      for (const f of [() => normalizeHost(text), () => parseAllowEntry(text)]) {
        try {
          f();
        } catch (err) {
          assert.ok(err instanceof TypeError, `non-TypeError from ${JSON.stringify(text)}: ${err}`);
        }
      }
      n++;
    }
    assert.equal(n, 2500);
  });
});
