// Egress proxy benchmark: bulk throughput through the CONNECT tunnel and through transparent
// interception vs direct on loopback, added connection latency, and host memory per idle
// tunnelled connection. Three processes (sink server, proxy, client) so the proxy's cost is not
// hidden in, or inflated by, a shared event loop. Reports numbers only; asserts nothing.
//
//   EGRESS_BENCH_BYTES  bytes per transfer (default 256 MiB), EGRESS_ROUNDS (default 4)
//   EGRESS_BENCH_CONNS  connections for the latency sample (default 500)
//   EGRESS_BENCH_IDLE   idle tunnels for the memory sample (default 1000)
//   EGRESS_BENCH_KERNEL_RELAY=0  keep tunnel bytes in JavaScript (the proxy's kernelRelay: false)
import { fork } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { EgressProxy } from '../lib/net/proxy';
import { interleave, knob, median, ratio, report, section } from './harness';

const BYTES = Number(process.env.EGRESS_BENCH_BYTES ?? 2 ** 28);
const ROUNDS = knob('EGRESS_ROUNDS', 4);
const CONNS = Number(process.env.EGRESS_BENCH_CONNS ?? 500);
const IDLE = Number(process.env.EGRESS_BENCH_IDLE ?? 1000);
const KERNEL_RELAY = process.env.EGRESS_BENCH_KERNEL_RELAY !== '0';
const SINK_HOST = '127.0.0.2';
const POOL_ADDR = '127.77.0.1';

type Msg = { port?: number; proxyPort?: number; mem?: NodeJS.MemoryUsage; cpu?: NodeJS.CpuUsage; cmd?: string };

/** Sink: reads an 8-byte big-endian length, then sends that many bytes and closes. */
function runSink(): void {
  const block = Buffer.alloc(256 * 1024, 0x61);
  const server = createServer((s) => {
    s.on('error', () => {});
    s.once('readable', function read() {
      const head = s.read(8) as Buffer | null;
      if (!head) return s.once('readable', read);
      let left = Number(head.readBigUInt64BE());
      const pump = (): void => {
        while (left > 0) {
          const n = Math.min(left, block.length);
          left -= n;
          if (!s.write(n === block.length ? block : block.subarray(0, n))) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    });
  });
  server.listen({ host: SINK_HOST, port: 0, backlog: 4096 }, () => process.send?.({ port: (server.address() as { port: number }).port }));
}

function runProxy(sinkPort: number): void {
  const proxy = new EgressProxy(
    { allow: [`sink.test:${sinkPort}`], resolve: [`sink.test:${sinkPort}:${SINK_HOST}`], limits: { maxConnections: IDLE + 100 } },
    'bench',
    undefined,
    { dnsPool: '127.77.0.0/16', kernelRelay: KERNEL_RELAY },
  );
  proxy.dnsPool.addressFor('sink.test'); // -> 127.77.0.1, as the DNS responder would hand out
  const http = createServer();
  const transparent = createServer();
  http.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
    transparent.listen({ host: POOL_ADDR, port: sinkPort, backlog: 4096 }, () => {
      proxy.serveHttpProxy(http);
      proxy.serveTransparent(transparent);
      process.send?.({ proxyPort: (http.address() as { port: number }).port });
    });
  });
  process.on('message', (m: Msg) => {
    if (m.cmd === 'mem') process.send?.({ mem: process.memoryUsage() });
    if (m.cmd === 'cpu') process.send?.({ cpu: process.cpuUsage() });
  });
}

function child(role: string, arg = ''): Promise<{ proc: ReturnType<typeof fork>; msg: Msg }> {
  const proc = fork(__filename, [role, arg], { stdio: 'inherit' });
  return new Promise((resolve) => proc.once('message', (msg: Msg) => resolve({ proc, msg })));
}

function ask(proc: ReturnType<typeof fork>, cmd: string): Promise<Msg> {
  return new Promise((resolve) => {
    proc.once('message', resolve);
    proc.send({ cmd });
  });
}

type Path = 'direct' | 'connect' | 'transparent';

/** Opens a connection to the sink along `path`; resolves once it may send its request. */
function open(path: Path, sinkPort: number, proxyPort: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const host = path === 'direct' ? SINK_HOST : path === 'connect' ? '127.0.0.1' : POOL_ADDR;
    const port = path === 'connect' ? proxyPort : sinkPort;
    const s = connect({ host, port });
    s.setNoDelay(true);
    s.once('error', reject);
    s.once('connect', () => {
      if (path !== 'connect') return resolve(s);
      s.write(`CONNECT sink.test:${sinkPort} HTTP/1.1\r\nHost: sink.test:${sinkPort}\r\n\r\n`);
      let head = '';
      const onData = (c: Buffer): void => {
        head += c.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        s.removeListener('data', onData);
        if (!head.startsWith('HTTP/1.1 200')) {
          reject(new Error(head));
          return;
        }
        resolve(s);
      };
      s.on('data', onData);
    });
  });
}

function request(s: Socket, bytes: number): void {
  const h = Buffer.alloc(8);
  h.writeBigUInt64BE(BigInt(bytes));
  s.write(h);
}

async function transfer(path: Path, sinkPort: number, proxyPort: number): Promise<number> {
  const s = await open(path, sinkPort, proxyPort);
  const start = process.hrtime.bigint();
  let got = 0;
  request(s, BYTES);
  await new Promise<void>((resolve, reject) => {
    s.on('data', (c: Buffer) => {
      got += c.length;
    });
    s.once('end', resolve);
    s.once('error', reject);
  });
  if (got !== BYTES) throw new Error(`${path}: got ${got} of ${BYTES} bytes`);
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  s.destroy();
  return BYTES / secs;
}

/** Time from connect() to the first byte of a 1-byte response. */
async function latency(path: Path, sinkPort: number, proxyPort: number): Promise<number> {
  const start = process.hrtime.bigint();
  const s = await open(path, sinkPort, proxyPort);
  request(s, 1);
  await new Promise((r) => s.once('data', r));
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  s.destroy();
  return ms;
}

async function main(): Promise<void> {
  const sink = await child('sink');
  const sinkPort = sink.msg.port as number;
  const proxy = await child('proxy', String(sinkPort));
  const proxyPort = proxy.msg.proxyPort as number;
  // Throughput (MiB/s) and the proxy's CPU per GiB, the three paths interleaved over rounds.
  const cpu: Record<Path, number[]> = { direct: [], connect: [], transparent: [] };
  const throughput = (path: Path) => async (): Promise<number> => {
    const before = (await ask(proxy.proc, 'cpu')).cpu as NodeJS.CpuUsage;
    const bps = await transfer(path, sinkPort, proxyPort);
    const used = (await ask(proxy.proc, 'cpu')).cpu as NodeJS.CpuUsage;
    cpu[path].push((used.user - before.user + used.system - before.system) / 1000 / (BYTES / 2 ** 30));
    return bps / 2 ** 20;
  };
  const bulk = section(
    'egress',
    `egress throughput, ${(BYTES / 2 ** 20).toFixed(0)} MiB per transfer, ${ROUNDS} rounds interleaved (MiB/s)`,
  );
  bulk.modes = await interleave(
    { direct: throughput('direct'), 'CONNECT tunnel': throughput('connect'), transparent: throughput('transparent') },
    { rounds: ROUNDS, perRound: 1, warmup: 1, unit: 'MiB/s' },
  );
  bulk.ratios.push(ratio(bulk.modes, 'CONNECT tunnel', 'direct'), ratio(bulk.modes, 'transparent', 'direct'));
  bulk.figures.relay = KERNEL_RELAY ? 'kernel (splice) where possible' : 'JavaScript (EGRESS_BENCH_KERNEL_RELAY=0)';
  for (const p of ['connect', 'transparent'] as Path[])
    bulk.figures[`proxy CPU per GiB, ${p} (ms, median)`] = median(cpu[p].slice(1)).toFixed(0);
  bulk.notes.push(
    'throughput: a ratio below 1 is slower than direct; client, proxy and sink are separate node processes on the same cores',
  );
  report(bulk);

  const lat = section(
    'egress-latency',
    `egress connect + first byte, ${ROUNDS} rounds x ${Math.ceil(CONNS / ROUNDS)} connections, interleaved (ms)`,
  );
  lat.modes = await interleave(
    {
      direct: () => latency('direct', sinkPort, proxyPort),
      'CONNECT tunnel': () => latency('connect', sinkPort, proxyPort),
      transparent: () => latency('transparent', sinkPort, proxyPort),
    },
    { rounds: ROUNDS, perRound: Math.ceil(CONNS / ROUNDS), warmup: 20 },
  );
  report(lat);
  const rows: [string, string][] = [];

  const before = (await ask(proxy.proc, 'mem')).mem as NodeJS.MemoryUsage;
  const idle: Socket[] = [];
  for (let i = 0; i < IDLE; i += 100) {
    idle.push(...(await Promise.all(Array.from({ length: Math.min(100, IDLE - i) }, () => open('connect', sinkPort, proxyPort)))));
  }
  await new Promise((r) => setTimeout(r, 500));
  const afterMem = (await ask(proxy.proc, 'mem')).mem as NodeJS.MemoryUsage;
  const per = (k: 'rss' | 'heapUsed'): string => `${((afterMem[k] - before[k]) / IDLE / 1024).toFixed(1)} KiB`;
  rows.push([`proxy memory per idle tunnel (n=${IDLE})`, `rss ${per('rss')}, heap ${per('heapUsed')}`]);
  for (const s of idle) s.destroy();

  const mem = section('egress-memory', 'egress proxy memory');
  for (const [k, v] of rows) mem.figures[k] = v;
  report(mem);
  sink.proc.kill();
  proxy.proc.kill();
}

const [role, arg] = process.argv.slice(2);
if (role === 'sink') runSink();
else if (role === 'proxy') runProxy(Number(arg));
else
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
