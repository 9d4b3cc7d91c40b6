// The egress proxy end to end: real upstream servers on 127.0.0.2/127.0.0.3, a real proxy on
// 127.0.0.1, real clients (curl, node:http, python3 urllib, node fetch with the preload), names
// given through the resolver override. Each refusal is asserted by its exact answer and rule.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { Resolver as DnsClient } from 'node:dns/promises';
import { once } from 'node:events';
import { Agent, request as httpRequest } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import pino from 'pino';
import { proxyEnv } from '../lib/net/env';
import { EgressProxy } from '../lib/net/proxy';
import { SOCKS_REPLY, SOCKS4_REJECT } from '../lib/net/socks';
import {
  closeServer,
  dnsQuery,
  echoUpstream,
  exchange,
  httpsUpstream,
  httpUpstream,
  listen,
  type ProxyFixture,
  portOf,
  readUntil,
  run,
  startProxy,
  testCert,
  waitFor,
} from './helpers/net';
import { needs } from './helpers/tools';

let UP = 0; // plain HTTP upstream on 127.0.0.2
let TP = 0; // HTTPS upstream on 127.0.0.2
let IP3 = 0; // plain HTTP upstream on 127.0.0.3 (reachable by address entry)
const servers: Server[] = [];
// Listeners on 127.0.0.1 with the upstreams' port numbers, for the transparent tests.
let twinHttp: Server;
let twinTls: Server;
let fx: ProxyFixture;
let lookups: string[] = [];

/** The latest audit record matching `pred`, waiting for it: allowed tunnels are recorded at close. */
async function lastRecord(pred: (r: ProxyFixture['records'][number]) => boolean) {
  const find = () => [...fx.records].reverse().find(pred);
  await waitFor(() => find() !== undefined, `an audit record matching ${pred}; last: ${JSON.stringify(fx.records.at(-1))}`);
  return find() as ProxyFixture['records'][number];
}

function curl(args: string[]) {
  return run('curl', ['-sS', '--max-time', '10', ...args]);
}

/** Opens a CONNECT tunnel and returns the socket after the proxy's answer head. */
async function connectTunnel(port: number, target: string, extraHead = ''): Promise<{ socket: Socket; head: string }> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await new Promise((r) => socket.once('connect', r));
  socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${extraHead}\r\n`);
  const head = await readUntil(socket, '\r\n\r\n');
  return { socket, head };
}

/** A SOCKS5 client: greeting + request; resolves with the reply bytes and the socket. */
async function socks5(port: number, request: Buffer): Promise<{ socket: Socket; reply: Buffer }> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await new Promise((r) => socket.once('connect', r));
  socket.write(Buffer.from([5, 1, 0]));
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    let sent = false;
    const done = () => resolve({ socket, reply: Buffer.concat(chunks).subarray(2) });
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      const all = Buffer.concat(chunks);
      if (!sent && all.length >= 2) {
        sent = true;
        socket.write(request);
      }
      if (all.length >= 12) {
        socket.removeAllListeners('data');
        done();
      }
    });
    socket.once('close', done);
  });
}

function socksDomain(host: string | Buffer, port: number, cmd = 1): Buffer {
  const h = Buffer.isBuffer(host) ? host : Buffer.from(host, 'latin1');
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return Buffer.concat([Buffer.from([5, cmd, 0, 3, h.length]), h, p]);
}

/**
 * An upstream on 127.0.0.2 and a listener on 127.0.0.1 with the same port (the transparent
 * tests' "original destination"), both held from the start: the port is free on 127.0.0.2, but
 * another process may hold it on 127.0.0.1, then another port is taken.
 */
async function upstreamWithTwin(make: () => Promise<Server>): Promise<[Server, Server]> {
  for (let attempt = 1; ; attempt++) {
    const up = await make();
    try {
      return [up, await listen(createServer(), '127.0.0.1', portOf(up))];
    } catch (err) {
      await closeServer(up);
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt === 20) throw err;
    }
  }
}

before(async () => {
  const [up, httpTwin] = await upstreamWithTwin(httpUpstream);
  const [tls, tlsTwin] = await upstreamWithTwin(httpsUpstream);
  twinHttp = httpTwin;
  twinTls = tlsTwin;
  const up3 = await listen(
    createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nip3'));
    }),
    '127.0.0.3',
  );
  servers.push(up, tls, up3, httpTwin, tlsTwin);
  UP = portOf(up);
  TP = portOf(tls);
  IP3 = portOf(up3);
  fx = await startProxy(
    {
      allow: [
        `good.test:${UP}`,
        `good.test:${TP}`,
        '*.good.test:*',
        'other.test:*',
        'local.test:*',
        'meta.test:*',
        'named.test:*',
        '127.0.0.3/32:*',
      ],
      resolve: [`good.test:${UP}:127.0.0.2`, `good.test:${TP}:127.0.0.2`, 'api.good.test:*:127.0.0.2', 'other.test:*:127.0.0.2'],
    },
    {
      lookup: async (name) => {
        lookups.push(name);
        const fake: Record<string, string> = { 'local.test': '127.0.0.1', 'meta.test': '169.254.169.254', 'named.test': '127.0.0.3' };
        if (!fake[name]) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
        return [{ address: fake[name], family: 4 }];
      },
    },
  );
});

after(async () => {
  await fx.close();
  await Promise.all(servers.map(closeServer));
});

describe('HTTP proxy: absolute-form', () => {
  it('curl: GET and a chunked POST to an allowed name', { skip: needs('curl') }, async () => {
    const get = await curl(['-x', `http://127.0.0.1:${fx.httpPort}`, `http://good.test:${UP}/a?b=1`]);
    assert.equal(get.stdout, `GET /a?b=1 host=good.test:${UP} te=- body=`);
    const post = await curl([
      '-x',
      `http://127.0.0.1:${fx.httpPort}`,
      '-H',
      'Transfer-Encoding: chunked',
      '--data-binary',
      'x=1',
      `http://good.test:${UP}/p`,
    ]);
    assert.equal(post.stdout, `POST /p host=good.test:${UP} te=chunked body=x=1`);
    const chunked = await curl(['-x', `http://127.0.0.1:${fx.httpPort}`, `http://good.test:${UP}/chunked`]);
    assert.equal(chunked.stdout, 'part1,part2');
    const rec = await lastRecord((r) => r.via === 'http' && r.decision === 'allow');
    assert.equal(rec.rule, `good.test:${UP}`);
    assert.equal(rec.address, '127.0.0.2');
    assert.equal(rec.bytesDown, 11);
  });

  it('curl: a name not on the list gets 403 naming host and rule', { skip: needs('curl') }, async () => {
    const r = await curl(['-x', `http://127.0.0.1:${fx.httpPort}`, '-w', '\n%{http_code}', `http://evil.test:${UP}/`]);
    assert.equal(r.stdout, `stockade: egress to evil.test:${UP} denied: no allowlist entry matches evil.test\n\n403`);
    const rec = await lastRecord((r) => r.host === 'evil.test');
    assert.deepEqual(
      { decision: rec.decision, rule: rec.rule, via: rec.via, sandbox: rec.sandbox },
      { decision: 'deny', rule: 'no allowlist entry matches evil.test', via: 'http', sandbox: 'test-sandbox' },
    );
  });

  it('node:http keep-alive: several requests on one client connection, to different hosts', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const ports: number[] = [];
    const get = (url: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const u = new URL(url);
        const req = httpRequest({ host: '127.0.0.1', port: fx.httpPort, path: url, agent, headers: { host: u.host } }, (res) => {
          ports.push(res.socket.localPort as number);
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode as number, body }));
        });
        req.on('error', reject);
        req.end();
      });
    assert.deepEqual(await get(`http://good.test:${UP}/1`), { status: 200, body: `GET /1 host=good.test:${UP} te=- body=` });
    assert.deepEqual(await get(`http://api.good.test:${UP}/2`), { status: 200, body: `GET /2 host=api.good.test:${UP} te=- body=` });
    const denied = await get(`http://evil.test:${UP}/3`);
    assert.equal(denied.status, 403);
    assert.deepEqual(await get(`http://other.test:${UP}/4`), { status: 200, body: `GET /4 host=other.test:${UP} te=- body=` });
    assert.equal(new Set(ports).size, 1, 'all requests went over one client connection');
    agent.destroy();
  });

  it('python3 urllib with the proxy environment: allowed, and 403 for another name', { skip: needs('python3') }, async () => {
    const script = [
      'import sys, urllib.request, urllib.error',
      'for url in sys.argv[1:]:',
      '  try:',
      '    print(urllib.request.urlopen(url, timeout=10).read().decode())',
      '  except urllib.error.HTTPError as e:',
      '    print(e.code, e.read().decode().strip())',
    ].join('\n');
    const env = proxyEnv(fx.httpPort);
    const r = await run('python3', ['-c', script, `http://good.test:${UP}/py`, `http://evil.test:${UP}/py`], {
      HTTP_PROXY: env.HTTP_PROXY,
      http_proxy: env.http_proxy,
      NO_PROXY: env.NO_PROXY,
    });
    assert.equal(
      r.stdout,
      `GET /py host=good.test:${UP} te=- body=\n403 stockade: egress to evil.test:${UP} denied: no allowlist entry matches evil.test\n`,
      r.stderr,
    );
  });

  it('WebSocket upgrade is passed through', async () => {
    const s = connect({ host: '127.0.0.1', port: fx.httpPort });
    await new Promise((r) => s.once('connect', r));
    s.write(`GET http://good.test:${UP}/ws HTTP/1.1\r\nHost: good.test:${UP}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`);
    const head = await readUntil(s, '\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    s.write('ping-frame');
    assert.equal(await readUntil(s, 'ping-frame'), 'ping-frame');
    s.destroy();
  });
});

describe('HTTP proxy: CONNECT', () => {
  it('curl https through the tunnel to an allowed name; 403 for another', { skip: needs('curl') }, async () => {
    const { certPath } = testCert();
    const ok = await curl(['--cacert', certPath, '-x', `http://127.0.0.1:${fx.httpPort}`, `https://good.test:${TP}/s`]);
    assert.equal(ok.stdout, `TLS GET /s host=good.test:${TP}`, ok.stderr);
    await waitFor(() => fx.records.some((r) => r.via === 'connect' && r.port === TP && r.decision === 'allow'), 'the tunnel record');
    const rec = await lastRecord((r) => r.via === 'connect' && r.port === TP && r.decision === 'allow');
    assert.equal(rec.rule, `good.test:${TP}`);
    assert.ok(rec.bytesUp > 0 && rec.bytesDown > 0);
    const denied = await curl(['--cacert', certPath, '-x', `http://127.0.0.1:${fx.httpPort}`, `https://evil.test:${TP}/s`]);
    assert.equal(denied.code, 56);
    assert.match(denied.stderr, /CONNECT tunnel failed, response 403/);
  });

  it('curl -p (CONNECT for plain http) and python3 urllib https', { skip: needs('curl', 'python3') }, async () => {
    const tunnel = await curl(['-p', '-x', `http://127.0.0.1:${fx.httpPort}`, `http://good.test:${UP}/t`]);
    assert.equal(tunnel.stdout, `GET /t host=good.test:${UP} te=- body=`);
    const script = [
      'import sys, ssl, urllib.request',
      'ctx = ssl.create_default_context(cafile=sys.argv[1])',
      'print(urllib.request.urlopen(sys.argv[2], timeout=10, context=ctx).read().decode())',
      'try:',
      '  urllib.request.urlopen(sys.argv[3], timeout=10, context=ctx)',
      'except Exception as e:',
      '  print(type(e).__name__, e)',
    ].join('\n');
    const env = proxyEnv(fx.httpPort);
    const r = await run('python3', ['-c', script, testCert().certPath, `https://good.test:${TP}/py`, `https://evil.test:${TP}/py`], {
      HTTPS_PROXY: env.HTTPS_PROXY,
    });
    assert.equal(
      r.stdout,
      `TLS GET /py host=good.test:${TP}\nURLError <urlopen error Tunnel connection failed: 403 Forbidden>\n`,
      r.stderr,
    );
  });

  it('node fetch with the preload (Node 20 ignores NODE_USE_ENV_PROXY): allowed, https, and denied', async () => {
    const env = proxyEnv(fx.httpPort);
    const code = `
      const show = (p) => p.then((r) => r.text()).then((t) => console.log(t), (e) => console.log('ERR', e.cause ? e.cause.message : e.message));
      (async () => {
        await show(fetch('http://good.test:${UP}/f'));
        await show(fetch('https://good.test:${TP}/f'));
        await show(fetch('http://evil.test:${UP}/f'));
      })();`;
    const r = await run(process.execPath, ['-e', code], { ...env, NODE_EXTRA_CA_CERTS: testCert().certPath });
    assert.equal(
      r.stdout,
      `GET /f host=good.test:${UP} te=- body=\nTLS GET /f host=good.test:${TP}\nERR proxy refused CONNECT evil.test:${UP}: HTTP/1.1 403 Forbidden stockade: egress to evil.test:${UP} denied: no allowlist entry matches evil.test\n`,
      r.stderr,
    );
  });

  it('hands connections the interceptor wants to it, with the bytes already read', async () => {
    const got: { host: string; port: number; address: string; head: string }[] = [];
    const p = await startProxy(
      { allow: ['api.good.test:*', 'good.test:*'], resolve: ['api.good.test:*:127.0.0.2', 'good.test:*:127.0.0.2'] },
      {
        interceptor: {
          wants: (host) => host === 'api.good.test',
          handle: (client, target, head) => {
            got.push({ ...target, head: head.toString() });
            client.end('INTERCEPTED');
          },
        },
      },
    );
    const s = connect({ host: '127.0.0.1', port: p.httpPort });
    await new Promise((r) => s.once('connect', r));
    s.write('CONNECT api.good.test:443 HTTP/1.1\r\nHost: api.good.test:443\r\n\r\nearly-bytes');
    assert.equal(await readUntil(s, 'INTERCEPTED'), 'HTTP/1.1 200 Connection Established\r\n\r\nINTERCEPTED');
    assert.deepEqual(got, [{ host: 'api.good.test', port: 443, address: '127.0.0.2', head: 'early-bytes' }]);
    assert.equal(p.records.at(-1)?.intercepted, true);
    const other = await connectTunnel(p.httpPort, `good.test:${UP}`);
    assert.match(other.head, /^HTTP\/1\.1 200 /);
    other.socket.destroy();
    await p.close();
  });
});

describe('SOCKS5', () => {
  it('curl --socks5-hostname reaches an allowed name; another name gets reply 0x02', { skip: needs('curl') }, async () => {
    const ok = await curl(['--socks5-hostname', `127.0.0.1:${fx.socksPort}`, `http://good.test:${UP}/s5`]);
    assert.equal(ok.stdout, `GET /s5 host=good.test:${UP} te=- body=`);
    const denied = await curl(['--socks5-hostname', `127.0.0.1:${fx.socksPort}`, `http://evil.test:${UP}/s5`]);
    assert.equal(denied.code, 97);
    assert.match(denied.stderr, /Can't complete SOCKS5 connection to evil\.test\. \(2\)/);
    assert.equal((await lastRecord((r) => r.via === 'socks' && r.host === 'evil.test')).rule, 'no allowlist entry matches evil.test');
  });

  it('curl --socks5 (client-side resolution) sends the IP: allowed by an address entry, refused without one', {
    skip: needs('curl'),
  }, async () => {
    const ok = await curl(['--socks5', `127.0.0.1:${fx.socksPort}`, '--resolve', `ip3.test:${IP3}:127.0.0.3`, `http://ip3.test:${IP3}/`]);
    assert.equal(ok.stdout, 'ip3');
    const denied = await curl([
      '--socks5',
      `127.0.0.1:${fx.socksPort}`,
      '--resolve',
      `good.test:${UP}:127.0.0.2`,
      `http://good.test:${UP}/`,
    ]);
    assert.equal(denied.code, 97);
    assert.match(denied.stderr, /\(2\)/);
    assert.equal((await lastRecord((r) => r.via === 'socks' && r.host === '127.0.0.2')).rule, 'no allowlist entry matches 127.0.0.2');
  });

  it('IPv6 address type is parsed and judged (::1 is on no list)', async () => {
    const req = Buffer.alloc(22);
    req.set([5, 1, 0, 4]);
    req[19] = 1;
    req.writeUInt16BE(UP, 20);
    const { reply, socket } = await socks5(fx.socksPort, req);
    assert.equal(reply[1], SOCKS_REPLY.NOT_ALLOWED);
    assert.equal((await lastRecord((r) => r.via === 'socks' && r.host === '::1')).rule, 'no allowlist entry matches ::1');
    socket.destroy();
  });

  it('IPv6 CONNECT to an address the list names reaches it (::1 upstream)', async () => {
    const six = await echoUpstream('::1');
    const port = portOf(six);
    const p = await startProxy({ allow: [`[::1]:${port}`] });
    const req = Buffer.alloc(22);
    req.set([5, 1, 0, 4]);
    req[19] = 1;
    req.writeUInt16BE(port, 20);
    const { reply, socket } = await socks5(p.socksPort, req);
    assert.equal(reply[1], SOCKS_REPLY.SUCCEEDED);
    socket.write('over-v6');
    assert.equal(await readUntil(socket, 'over-v6'), 'over-v6');
    socket.destroy();
    await waitFor(() => p.records.length === 1, 'the IPv6 tunnel record');
    assert.deepEqual([p.records[0].host, p.records[0].address, p.records[0].rule], ['::1', '::1', `[::1]:${port}`]);
    await p.close();
    await closeServer(six);
  });

  it('SOCKS4 gets the SOCKS4 rejection (curl and raw), BIND gets 0x07', { skip: needs('curl') }, async () => {
    const c = await curl(['--socks4', `127.0.0.1:${fx.socksPort}`, `http://127.0.0.3:${IP3}/`]);
    assert.equal(c.code, 97);
    assert.match(c.stderr, /request rejected or failed/);
    const raw = await exchange(fx.socksPort, Buffer.from([4, 1, 0, 80, 127, 0, 0, 3, 0]));
    assert.deepEqual(raw.data, SOCKS4_REJECT);
    assert.equal((await lastRecord((r) => r.via === 'socks')).rule, 'socks: SOCKS4 is not supported (use SOCKS5)');
    const bind = await socks5(fx.socksPort, socksDomain('good.test', UP, 2));
    assert.equal(bind.reply[1], SOCKS_REPLY.COMMAND_NOT_SUPPORTED);
    bind.socket.destroy();
  });
});

describe('transparent interception', () => {
  before(() => {
    // Same port numbers as the upstreams, on 127.0.0.1: the accepted socket's local port is the
    // "original destination" port, as with `ip route add local 0.0.0.0/0 dev lo` in the netns.
    fx.proxy.serveTransparent(twinHttp);
    fx.proxy.serveTransparent(twinTls);
  });

  it('takes the name from the Host header', async () => {
    const r = await exchange(UP, `GET /tr HTTP/1.1\r\nHost: good.test:${UP}\r\nConnection: close\r\n\r\n`);
    assert.match(r.data.toString(), new RegExp(`GET /tr host=good.test:${UP} te=- body=$`));
    const rec = await lastRecord((x) => x.via === 'transparent');
    assert.deepEqual([rec.host, rec.port, rec.decision], ['good.test', UP, 'allow']);
  });

  it('takes the name from TLS SNI', async () => {
    const s = tlsConnect({ host: '127.0.0.1', port: TP, servername: 'good.test', ca: testCert().cert });
    await new Promise((r, j) => s.once('secureConnect', r).once('error', j));
    s.write(`GET /sni HTTP/1.1\r\nHost: good.test\r\nConnection: close\r\n\r\n`);
    assert.match(await readUntil(s, 'host=good.test'), /TLS GET \/sni host=good\.test/);
    s.destroy();
  });

  it('refuses (RST) a name off the list and a connection with no name', async () => {
    const evil = await exchange(UP, `GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n`);
    assert.deepEqual([evil.error, evil.data.length], ['ECONNRESET', 0]);
    assert.equal((await lastRecord((x) => x.via === 'transparent')).rule, 'no allowlist entry matches evil.test');
    const opaque = await exchange(UP, 'SSH-2.0-x\r\n');
    assert.equal(opaque.error, 'ECONNRESET');
    assert.equal(
      (await lastRecord((x) => x.via === 'transparent')).rule,
      `transparent: no name for 127.0.0.1:${UP} (not from the DNS pool, no SNI or Host)`,
    );
  });

  it('maps a DNS pool address back to its name for raw TCP (UDP and TCP DNS, nothing forwarded)', async () => {
    const db = await echoUpstream();
    const DBP = portOf(db);
    const p = await startProxy(
      { allow: [`db.test:${DBP}`], resolve: [`db.test:${DBP}:127.0.0.2`] },
      {
        dnsPool: '127.77.0.0/16',
        lookup: async (n) => {
          throw new Error(`unexpected host lookup of ${n}`);
        },
      },
    );
    // UDP: a dgram socket stands in for the spawner's native :53 socket.
    const udp = createSocket('udp4');
    udp.on('message', (msg, rinfo) => {
      const reply = p.proxy.handleDnsQuery(msg);
      if (reply) udp.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
    const resolver = new DnsClient({ timeout: 2000, tries: 1 });
    resolver.setServers([`127.0.0.1:${udp.address().port}`]);
    assert.deepEqual(await resolver.resolve4('db.test'), ['127.77.0.1']);
    await assert.rejects(resolver.resolve4('evil.test'), { code: 'ENOTFOUND' });
    await assert.rejects(resolver.resolve6('db.test'), { code: 'ENODATA' });
    assert.deepEqual(
      p.records.filter((r) => r.via === 'dns').map((r) => [r.host, r.decision, r.rule]),
      [
        ['db.test', 'allow', `db.test:${DBP}`],
        ['evil.test', 'deny', 'no allowlist entry matches evil.test'],
        ['db.test', 'allow', `db.test:${DBP}`],
      ],
    );
    // TCP DNS, two queries in one write, the second split.
    const dnsTcp = await listen(createServer());
    p.proxy.serveDnsTcp(dnsTcp);
    // Bytes the proxy's side has read (a second listener beside the proxy's own).
    let arrived = 0;
    dnsTcp.on('connection', (c) => c.on('data', (d: Buffer) => (arrived += d.length)));
    const frame = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m]);
    const both = Buffer.concat([frame(dnsQuery('db.test', 1, 7)), frame(dnsQuery('nope.test', 1, 8))]);
    const s = connect({ host: '127.0.0.1', port: portOf(dnsTcp) });
    await new Promise((r) => s.once('connect', r));
    const answers: Buffer[] = [];
    s.on('data', (c: Buffer) => answers.push(c));
    s.write(both.subarray(0, 30));
    // The second write only once the first has been read: the proxy gets the query split.
    await waitFor(() => arrived >= 30, 'the first 30 bytes at the proxy');
    s.write(both.subarray(30));
    const complete = (): boolean => {
      const a = Buffer.concat(answers);
      if (a.length < 2 || a.length < 4 + a.readUInt16BE(0)) return false;
      return a.length >= 4 + a.readUInt16BE(0) + a.readUInt16BE(2 + a.readUInt16BE(0));
    };
    await waitFor(complete, 'two TCP DNS answers');
    const all = Buffer.concat(answers);
    const first = all.subarray(2, 2 + all.readUInt16BE(0));
    const second = all.subarray(4 + first.length);
    assert.deepEqual([first.readUInt16BE(0), first.readUInt16BE(2) & 0xf, [...first.subarray(-4)].join('.')], [7, 0, '127.77.0.1']);
    assert.deepEqual([second.readUInt16BE(0), second.readUInt16BE(2) & 0xf], [8, 3]);
    s.destroy();
    // Raw TCP to the pool address: the transparent listener stands at 127.77.0.1:DBP.
    const t = await listen(createServer(), '127.77.0.1', DBP);
    p.proxy.serveTransparent(t);
    const echo = await exchange(DBP, 'ping-db', 500, '127.77.0.1');
    assert.equal(echo.data.toString(), 'ping-db');
    await waitFor(
      () => p.records.some((r) => r.via === 'transparent' && r.host === 'db.test' && r.bytesDown === 7),
      'the transparent record',
    );
    udp.close();
    await p.close();
    await closeServer(db);
  });
});

describe('SSRF guard', () => {
  it('refuses a name that resolves to loopback or the metadata address', { skip: needs('curl') }, async () => {
    const loop = await connectTunnel(fx.httpPort, `local.test:${UP}`);
    assert.match(loop.head, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.ok(
      loop.head.includes(
        `X-Stockade-Rule: ssrf: 127.0.0.1 is a loopback address and no allowlist or resolve entry names it (local.test resolved to it)`,
      ),
    );
    loop.socket.destroy();
    const meta = await curl(['-x', `http://127.0.0.1:${fx.httpPort}`, 'http://meta.test/latest/meta-data/']);
    assert.equal(
      meta.stdout,
      'stockade: egress to meta.test:80 denied: ssrf: 169.254.169.254 is a link-local address and no allowlist or resolve entry names it (meta.test resolved to it)\n',
    );
  });

  it('allows a private address the policy names (override or address entry)', { skip: needs('curl') }, async () => {
    // good.test -> 127.0.0.2 comes from the override; named.test -> 127.0.0.3 from DNS, named by 127.0.0.3/32.
    const named = await curl(['-x', `http://127.0.0.1:${fx.httpPort}`, `http://named.test:${IP3}/`]);
    assert.equal(named.stdout, 'ip3');
    assert.equal((await lastRecord((r) => r.host === 'named.test')).address, '127.0.0.3');
  });

  it('does not consult the host resolver for names off the list', { skip: needs('curl') }, async () => {
    lookups = [];
    await curl(['-x', `http://127.0.0.1:${fx.httpPort}`, `http://secret-data.exfil.test/`]);
    assert.deepEqual(lookups, []);
  });
});

describe('bypass attempts', () => {
  it('NUL byte in a SOCKS domain name', async () => {
    const { reply, socket } = await socks5(fx.socksPort, socksDomain(Buffer.from(`good.test\0.evil.test`, 'latin1'), UP));
    assert.equal(reply[1], SOCKS_REPLY.NOT_ALLOWED);
    assert.equal(
      (await lastRecord((r) => r.via === 'socks')).rule,
      'invalid host "good.test\\u0000.evil.test": contains a control character or whitespace',
    );
    socket.destroy();
  });

  it('trailing dots: one is the same host, two are an empty label, a wildcard still excludes the apex', {
    skip: needs('curl'),
  }, async () => {
    const one = await curl(['-x', `http://127.0.0.1:${fx.httpPort}`, `http://good.test.:${UP}/dot`]);
    assert.equal(one.stdout, `GET /dot host=good.test.:${UP} te=- body=`);
    const two = await connectTunnel(fx.httpPort, `good.test..:${UP}`);
    assert.ok(two.head.includes('X-Stockade-Rule: invalid host "good.test..": empty label'), two.head);
    two.socket.destroy();
  });

  it('numeric IP encodings are judged as the address (and the proxy itself is refused)', async () => {
    const dec = await connectTunnel(fx.httpPort, `2130706433:${fx.httpPort}`);
    assert.ok(dec.head.includes(`X-Stockade-Rule: refused: 127.0.0.1:${fx.httpPort} is the proxy itself`), dec.head);
    dec.socket.destroy();
    const hex = await connectTunnel(fx.httpPort, `0x7f.1:${UP}`);
    assert.ok(hex.head.includes('X-Stockade-Rule: no allowlist entry matches 127.0.0.1'), hex.head);
    hex.socket.destroy();
    const oct = await connectTunnel(fx.httpPort, `017700000003:${IP3}`);
    assert.match(oct.head, /^HTTP\/1\.1 200 /, 'octal 127.0.0.3 is the address the /32 entry names');
    oct.socket.destroy();
  });

  it('CONNECT to the proxy itself, by address, even when loopback is allowlisted', async () => {
    const p = await startProxy({ allow: ['127.0.0.0/8:*'] });
    const self = await connectTunnel(p.httpPort, `127.0.0.1:${p.httpPort}`);
    assert.match(self.head, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.ok(self.head.includes(`X-Stockade-Rule: refused: 127.0.0.1:${p.httpPort} is the proxy itself`));
    self.socket.destroy();
    const socksSelf = await socks5(p.socksPort, Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, p.socksPort >> 8, p.socksPort & 0xff]));
    assert.equal(socksSelf.reply[1], SOCKS_REPLY.NOT_ALLOWED);
    assert.equal(p.records.at(-1)?.rule, `refused: 127.0.0.1:${p.socksPort} is the proxy itself`);
    socksSelf.socket.destroy();
    await p.close();
  });

  it("another server at the proxy's port on 127.0.0.2 is served: it is not the proxy (net-load's collision)", async () => {
    const p = await startProxy({ allow: ['127.0.0.0/8:*', 'echo.test:*'], resolve: ['echo.test:*:127.0.0.2'] });
    // The ports test/net-load's upstream drew now and then; bound on purpose here.
    const onHttp = await echoUpstream('127.0.0.2', p.httpPort);
    const onSocks = await echoUpstream('127.0.0.2', p.socksPort);
    for (const target of [`127.0.0.2:${p.httpPort}`, `echo.test:${p.httpPort}`]) {
      const t = await connectTunnel(p.httpPort, target);
      assert.match(t.head, /^HTTP\/1\.1 200 /, `${target}: ${t.head}`);
      t.socket.write(`to ${target}`);
      assert.equal(await readUntil(t.socket, `to ${target}`), `to ${target}`);
      t.socket.destroy();
    }
    const port = [p.socksPort >> 8, p.socksPort & 0xff];
    for (const request of [Buffer.from([5, 1, 0, 1, 127, 0, 0, 2, ...port]), socksDomain('echo.test', p.socksPort)]) {
      const t = await socks5(p.socksPort, request);
      assert.equal(t.reply[1], SOCKS_REPLY.SUCCEEDED);
      t.socket.write('over socks');
      assert.equal(await readUntil(t.socket, 'over socks'), 'over socks');
      t.socket.destroy();
    }
    await waitFor(() => p.records.length === 4, 'four tunnel records');
    assert.deepEqual(p.records.map((r) => `${r.via} ${r.host}:${r.port} ${r.decision} ${r.address}`).sort(), [
      `connect 127.0.0.2:${p.httpPort} allow 127.0.0.2`,
      `connect echo.test:${p.httpPort} allow 127.0.0.2`,
      `socks 127.0.0.2:${p.socksPort} allow 127.0.0.2`,
      `socks echo.test:${p.socksPort} allow 127.0.0.2`,
    ]);
    await p.close();
    await Promise.all([closeServer(onHttp), closeServer(onSocks)]);
  });

  it("every spelling of the proxy's own address and port is refused, by address, by name and moved by an override", async () => {
    // Listening first: the override names the port.
    const http = await listen(createServer());
    const socks = await listen(createServer());
    const [H, S] = [portOf(http), portOf(socks)];
    const proxy = new EgressProxy(
      {
        allow: ['127.0.0.0/8:*', '0.0.0.0/32:*', '[::/0]:*', 'self.test:*', 'mapped.test:*', 'moved.test:*'],
        resolve: [`moved.test:80:127.0.0.1:${H}`],
      },
      'test-sandbox',
      undefined,
      {
        lookup: async (name) => [
          { address: name === 'self.test' ? '127.0.0.1' : '::ffff:127.0.0.1', family: name === 'self.test' ? 4 : 6 },
        ],
      },
    );
    const records: ProxyFixture['records'] = [];
    proxy.on('egress', (r) => records.push(r));
    proxy.serveHttpProxy(http);
    proxy.serveSocks(socks);
    const refused = (address: string, port: number) => `refused: ${address}:${port} is the proxy itself`;
    const cases: [string, string][] = [
      [`127.0.0.1:${H}`, refused('127.0.0.1', H)],
      [`127.1:${H}`, refused('127.0.0.1', H)],
      [`[::ffff:127.0.0.1]:${H}`, refused('::ffff:7f00:1', H)],
      // Linux connects the unspecified address to loopback.
      [`0.0.0.0:${H}`, refused('0.0.0.0', H)],
      [`[::ffff:0.0.0.0]:${H}`, refused('::ffff:0:0', H)],
      [`[::]:${H}`, refused('::', H)],
      // Read as the IPv4 address it embeds, as the SSRF guard reads it.
      [`[64:ff9b::127.0.0.1]:${H}`, refused('64:ff9b::7f00:1', H)],
      [`self.test:${H}`, refused('127.0.0.1', H)],
      [`mapped.test:${H}`, refused('::ffff:7f00:1', H)],
      ['moved.test:80', refused('127.0.0.1', H)],
      [`127.0.0.1:${S}`, refused('127.0.0.1', S)],
    ];
    for (const [target, rule] of cases) {
      const t = await connectTunnel(H, target);
      assert.match(t.head, /^HTTP\/1\.1 403 Forbidden\r\n/, `${target}: ${t.head}`);
      assert.ok(t.head.includes(`X-Stockade-Rule: ${rule}\r\n`), `${target}: ${t.head}`);
      t.socket.destroy();
    }
    const v6 = Buffer.alloc(22);
    v6.set([5, 1, 0, 4]);
    v6.set([0xff, 0xff, 127, 0, 0, 1], 14);
    v6.writeUInt16BE(S, 20);
    const port = [S >> 8, S & 0xff];
    for (const [request, rule] of [
      [Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, ...port]), refused('127.0.0.1', S)],
      [v6, refused('::ffff:7f00:1', S)],
      [socksDomain('self.test', S), refused('127.0.0.1', S)],
    ] as const) {
      const t = await socks5(S, request);
      assert.equal(t.reply[1], SOCKS_REPLY.NOT_ALLOWED);
      assert.equal(records.at(-1)?.rule, rule);
      t.socket.destroy();
    }
    assert.equal(records.length, cases.length + 3);
    assert.ok(records.every((r) => r.decision === 'deny'));
    await proxy.close();
  });

  it('a proxy listening on 0.0.0.0 is every local IPv4 address on its port', async (t) => {
    // No allow entry: nothing is reached, whoever else can reach this listener meanwhile; the
    // refusals below come before the allowlist is asked.
    const proxy = new EgressProxy({ allow: [] }, 'test-sandbox');
    const any = await listen(createServer(), '0.0.0.0');
    proxy.serveHttpProxy(any);
    const P = portOf(any);
    // The kernel agrees: 127.0.0.2:P is this socket.
    await assert.rejects(echoUpstream('127.0.0.2', P), { code: 'EADDRINUSE' });
    const iface = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && !a.internal && a.family === 'IPv4')?.address;
    if (!iface) t.diagnostic('no non-loopback IPv4 address on this host: the interface address is not tried');
    for (const address of ['127.0.0.1', '127.0.0.2', '127.255.255.254', '0.0.0.0', ...(iface ? [iface] : [])]) {
      const c = await connectTunnel(P, `${address}:${P}`);
      assert.ok(c.head.includes(`X-Stockade-Rule: refused: ${address}:${P} is the proxy itself\r\n`), `${address}: ${c.head}`);
      c.socket.destroy();
    }
    const mapped = await connectTunnel(P, `[::ffff:127.0.0.2]:${P}`);
    assert.ok(mapped.head.includes(`X-Stockade-Rule: refused: ::ffff:7f00:2:${P} is the proxy itself\r\n`), mapped.head);
    mapped.socket.destroy();
    // Another port of the same addresses is not the proxy: the allowlist answers.
    const other = await connectTunnel(P, `127.0.0.2:${P === 65535 ? 1 : P + 1}`);
    assert.ok(other.head.includes('X-Stockade-Rule: no allowlist entry matches 127.0.0.2'), other.head);
    other.socket.destroy();
    await proxy.close();
  });

  it('TLS SNI that differs from the CONNECT target (domain fronting) closes the tunnel', async () => {
    const { socket, head } = await connectTunnel(fx.httpPort, `good.test:${TP}`);
    assert.match(head, /^HTTP\/1\.1 200 /);
    const t = tlsConnect({ socket, servername: 'other.test', rejectUnauthorized: false });
    const err = await new Promise<NodeJS.ErrnoException>((r) => t.once('error', r));
    assert.equal(err.code, 'ECONNRESET');
    const rec = await lastRecord((r) => r.via === 'connect' && r.decision === 'deny');
    assert.equal(rec.rule, 'sni-mismatch: TLS SNI "other.test" does not match target good.test');
  });

  it('Host header that differs from the target: absolute-form 403, inside a tunnel closed', async () => {
    const s = await exchange(fx.httpPort, `GET http://good.test:${UP}/ HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n`);
    assert.match(
      s.data.toString(),
      /^HTTP\/1\.1 403 Forbidden\r\n[\s\S]*stockade: egress to good\.test:\d+ denied: host-mismatch: Host header "evil\.test" does not match target good\.test\n$/,
    );
    const { socket } = await connectTunnel(fx.httpPort, `good.test:${UP}`);
    socket.write('GET / HTTP/1.1\r\nHost: other.test\r\n\r\n');
    await new Promise((r) => socket.once('close', r));
    assert.equal(
      (await lastRecord((r) => r.via === 'connect')).rule,
      'host-mismatch: Host header "other.test" does not match target good.test',
    );
  });
});

describe('hostile input', () => {
  it('malformed request, origin-form request, oversized head: exact error answers', async () => {
    const bad = await exchange(fx.httpPort, 'GARBAGE\x01 / HTTP/1.1\r\n\r\n');
    assert.match(
      bad.data.toString(),
      /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*\r\n\r\nstockade: malformed request \(HPE_INVALID_METHOD\)\n$/,
    );
    const origin = await exchange(fx.httpPort, 'GET /x HTTP/1.1\r\nHost: good.test\r\nConnection: close\r\n\r\n');
    assert.match(
      origin.data.toString(),
      /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*stockade: not a proxy request: expected an absolute http:\/\/ URL or CONNECT, got "\/x"\n$/,
    );
    const big = await exchange(fx.httpPort, `GET http://good.test:${UP}/ HTTP/1.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assert.match(
      big.data.toString(),
      /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n[\s\S]*stockade: request head larger than 16384 bytes\n$/,
    );
  });

  it('slowloris: a trickling head gets 408 after headersTimeout while others are served', { skip: needs('curl') }, async () => {
    const p = await startProxy({ allow: [`good.test:${UP}`], resolve: [`good.test:${UP}:127.0.0.2`], limits: { headersTimeout: 400 } });
    const slow = connect({ host: '127.0.0.1', port: p.httpPort });
    const slowSocks = connect({ host: '127.0.0.1', port: p.socksPort });
    slowSocks.on('error', () => {});
    await new Promise((r) => slow.once('connect', r));
    slow.write(`GET http://good.test:${UP}/ HTTP/1.1\r\n`);
    slowSocks.write(Buffer.from([5]));
    const trickle = setInterval(() => slow.writable && slow.write('X'), 50);
    const ok = await curl(['-x', `http://127.0.0.1:${p.httpPort}`, `http://good.test:${UP}/meanwhile`]);
    assert.equal(ok.stdout, `GET /meanwhile host=good.test:${UP} te=- body=`);
    const answer = await readUntil(slow, 'within 400 ms');
    clearInterval(trickle);
    assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*stockade: request head not received within 400 ms\n$/);
    await new Promise((r) => (slowSocks.destroyed ? r(null) : slowSocks.once('close', r)));
    slow.destroy();
    await p.close();
  });

  it('random and mutated bytes to the HTTP and SOCKS listeners: no crash, still serving', { skip: needs('curl') }, async () => {
    const seeds = [
      `GET http://good.test:${UP}/ HTTP/1.1\r\nHost: good.test:${UP}\r\n\r\n`,
      `CONNECT good.test:${UP} HTTP/1.1\r\n\r\n`,
      `POST http://good.test:${UP}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    ].map((s) => Buffer.from(s));
    const socksSeed = Buffer.concat([Buffer.from([5, 1, 0]), socksDomain('good.test', UP)]);
    const jobs: Promise<unknown>[] = [];
    for (let i = 0; i < 300; i++) {
      const seed = Buffer.from(i % 2 ? socksSeed : seeds[i % seeds.length]);
      for (let f = 0; f < 1 + (i % 5); f++) seed[Math.floor(Math.random() * seed.length)] = Math.floor(Math.random() * 256);
      jobs.push(exchange(i % 2 ? fx.socksPort : fx.httpPort, seed, 300));
      if (jobs.length >= 50) await Promise.all(jobs.splice(0));
    }
    await Promise.all(jobs);
    const ok = await curl(['-x', `http://127.0.0.1:${fx.httpPort}`, `http://good.test:${UP}/after-fuzz`]);
    assert.equal(ok.stdout, `GET /after-fuzz host=good.test:${UP} te=- body=`);
  });
});

describe('limits and lifecycle', () => {
  it('maxConnections: the connection over the limit is reset and recorded', async () => {
    const p = await startProxy({ allow: [], limits: { maxConnections: 2 } });
    const a = connect({ host: '127.0.0.1', port: p.httpPort });
    const b = connect({ host: '127.0.0.1', port: p.httpPort });
    await waitFor(() => p.proxy.connections === 2, 'two connections');
    const c = await exchange(p.httpPort, 'GET http://x.test/ HTTP/1.1\r\n\r\n');
    assert.equal(c.error, 'ECONNRESET');
    assert.equal(p.records.at(-1)?.rule, 'limit: more than 2 concurrent connections');
    a.destroy();
    b.destroy();
    await p.close();
  });

  it('idle tunnels are closed after idleTimeout; close() destroys every socket', async () => {
    const echo = await echoUpstream();
    const EP = portOf(echo);
    const p = await startProxy({ allow: [`echo.test:${EP}`], resolve: [`echo.test:${EP}:127.0.0.2`], limits: { idleTimeout: 300 } });
    const idle = await connectTunnel(p.httpPort, `echo.test:${EP}`);
    await new Promise((r) => idle.socket.once('close', r));
    await waitFor(() => p.records.length === 1, 'the idle tunnel record');
    const rec = p.records.at(-1);
    assert.deepEqual([rec?.decision, rec?.error], ['allow', 'idle timeout']);
    const live = await connectTunnel(p.httpPort, `echo.test:${EP}`);
    live.socket.write('x');
    await readUntil(live.socket, 'x');
    const closed = new Promise((r) => live.socket.once('close', r));
    await p.close();
    await closed;
    assert.equal(p.proxy.connections, 0);
    await closeServer(echo);
  });
});

describe('audit log and upstream failures', () => {
  it('writes one pino line per decision with the audit fields', { skip: needs('curl') }, async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ base: undefined, timestamp: false }, { write: (s: string) => lines.push(JSON.parse(s)) });
    const proxy = new EgressProxy({ allow: [`good.test:${UP}`], resolve: [`good.test:${UP}:127.0.0.2`] }, 'sb-pino', logger);
    const server = await listen(createServer());
    proxy.serveHttpProxy(server);
    await curl(['-x', `http://127.0.0.1:${portOf(server)}`, `http://good.test:${UP}/log`, `http://evil.test:${UP}/log`]);
    await waitFor(() => lines.length === 2, 'two audit lines');
    const shape = ({ level, event, sandbox, via, host, port, decision, rule, msg }: Record<string, unknown>) => ({
      level,
      event,
      sandbox,
      via,
      host,
      port,
      decision,
      rule,
      msg,
    });
    assert.deepEqual(lines.map(shape), [
      {
        level: 30,
        event: 'egress',
        sandbox: 'sb-pino',
        via: 'http',
        host: 'good.test',
        port: UP,
        decision: 'allow',
        rule: `good.test:${UP}`,
        msg: `egress allow good.test:${UP} (good.test:${UP})`,
      },
      {
        level: 40, // denials at warn
        event: 'egress',
        sandbox: 'sb-pino',
        via: 'http',
        host: 'evil.test',
        port: UP,
        decision: 'deny',
        rule: 'no allowlist entry matches evil.test',
        msg: `egress deny evil.test:${UP} (no allowlist entry matches evil.test)`,
      },
    ]);
    assert.equal(typeof lines[0].bytesDown, 'number');
    assert.equal(typeof lines[0].durationMs, 'number');
    await proxy.close();
  });

  it('an allowed name that does not resolve: 502 (HTTP) and 0x04 (SOCKS)', async () => {
    const r = await connectTunnel(fx.httpPort, 'nxdomain.good.test:443');
    assert.match(r.head, /^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*stockade: cannot resolve nxdomain\.good\.test: ENOTFOUND\n$/);
    r.socket.destroy();
    const s = await socks5(fx.socksPort, socksDomain('nxdomain.good.test', 443));
    assert.equal(s.reply[1], SOCKS_REPLY.HOST_UNREACHABLE);
    s.socket.destroy();
  });

  it('an allowed upstream that refuses: 502 naming the address (HTTP) and 0x05 (SOCKS)', { skip: needs('curl') }, async () => {
    // A port nothing listens on that no other test can take meanwhile: the local end of a
    // connection made from 127.0.0.2 holds it (a closed server's port could be reused).
    const peer = await listen(createServer(), '127.0.0.3');
    const holder = connect({ host: '127.0.0.3', port: portOf(peer), localAddress: '127.0.0.2' });
    await once(holder, 'connect');
    const port = holder.localPort as number;
    const p = await startProxy({ allow: ['down.test:*'], resolve: [`down.test:*:127.0.0.2`] });
    const r = await curl(['-x', `http://127.0.0.1:${p.httpPort}`, `http://down.test:${port}/`]);
    assert.equal(r.stdout, `stockade: upstream down.test:${port} (127.0.0.2) failed: ECONNREFUSED\n`);
    const s = await socks5(p.socksPort, socksDomain('down.test', port));
    assert.equal(s.reply[1], SOCKS_REPLY.CONNECTION_REFUSED);
    const rec = p.records.at(-1);
    assert.deepEqual([rec?.decision, rec?.error], ['allow', 'ECONNREFUSED']);
    s.socket.destroy();
    await p.close();
    holder.destroy();
    await closeServer(peer);
  });

  it('proxyEnv gives both cases of the proxy variables and the preload', () => {
    const env = proxyEnv(3128, { socksPort: 1080, nodeOptions: '--max-old-space-size=256' });
    assert.equal(env.HTTP_PROXY, 'http://127.0.0.1:3128');
    assert.equal(env.https_proxy, 'http://127.0.0.1:3128');
    assert.equal(env.ALL_PROXY, 'socks5h://127.0.0.1:1080');
    assert.equal(env.no_proxy, 'localhost,127.0.0.1,::1');
    assert.equal(env.NODE_USE_ENV_PROXY, '1');
    assert.match(env.NODE_OPTIONS, /^--max-old-space-size=256 --require=\/.*\/lib\/net\/preload\.js$/);
    assert.throws(() => proxyEnv(0), /invalid proxy port: 0/);
    assert.equal(env.NODE_EXTRA_CA_CERTS, undefined);
  });

  it('proxyEnv with a trust store: --use-openssl-ca, or NODE_EXTRA_CA_CERTS beside --use-bundled-ca', () => {
    const bundle = '/etc/ssl/certs/ca-certificates.crt';
    const plain = proxyEnv(3128, { nodeOptions: '--max-old-space-size=256', trustStore: bundle, preloadPath: '/p.js' });
    assert.equal(plain.NODE_OPTIONS, '--max-old-space-size=256 --require=/p.js --use-openssl-ca');
    assert.equal(plain.NODE_EXTRA_CA_CERTS, undefined);
    const once = proxyEnv(3128, { nodeOptions: '--use-openssl-ca', trustStore: bundle, preloadPath: '/p.js' });
    assert.equal(once.NODE_OPTIONS, '--use-openssl-ca --require=/p.js');
    const bundled = proxyEnv(3128, { nodeOptions: '--use-bundled-ca', trustStore: bundle, preloadPath: '/p.js' });
    assert.equal(bundled.NODE_OPTIONS, '--use-bundled-ca --require=/p.js');
    assert.equal(bundled.NODE_EXTRA_CA_CERTS, bundle);
  });
});
