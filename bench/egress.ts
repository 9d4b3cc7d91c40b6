// Egress proxy benchmark: bulk throughput through the CONNECT tunnel and through transparent
// interception vs direct on loopback, added connection latency, and host memory per idle
// tunnelled connection. Three processes (sink server, proxy, client) so the proxy's cost is not
// hidden in, or inflated by, a shared event loop. Reports numbers only; asserts nothing.
//
// Throughput is measured first with a native client and sink (bench/fixtures/egress-peer.c,
// built here with the system `cc`), so that a JavaScript event loop at either end is not what
// limits the tunnel, and the tunnels there are the product's own: the client runs in a sandbox
// (spawnSandboxed with an allow list), so it reaches the proxy through the sandbox's network
// namespace and the proxy is the launcher's (this process's EgressAttachment), as in use. Then
// with the JavaScript client and sink against a stand-alone proxy, labelled as such. Without a C
// compiler the native section says so and is skipped. CPU per GiB is counted for each process
// (the proxy's from process.cpuUsage(), the client's from its getrusage(), the sink's from
// /proc/PID/stat): unlike MiB/s it hardly moves with the machine's load.
//
//   EGRESS_BENCH_NATIVE_BYTES  bytes per native transfer (default 1 GiB)
//   EGRESS_BENCH_BYTES  bytes per JavaScript transfer (default 256 MiB), EGRESS_ROUNDS (default 4),
//   EGRESS_NATIVE_ROUNDS (default 8)
//   EGRESS_BENCH_CONNS  connections for the latency sample (default 500)
//   EGRESS_BENCH_IDLE   idle tunnels for the memory sample (default 1000)
//   EGRESS_BENCH_KERNEL_RELAY=0  keep tunnel bytes in JavaScript (the proxy's kernelRelay: false)
import { execFile, execFileSync, fork, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { runSandboxed } from '../lib';
import { EgressProxy } from '../lib/net/proxy';
import { interleave, knob, median, ratio, report, section } from './harness';

const BYTES = Number(process.env.EGRESS_BENCH_BYTES ?? 2 ** 28);
const NATIVE_BYTES = knob('EGRESS_BENCH_NATIVE_BYTES', 2 ** 30);
const ROUNDS = knob('EGRESS_ROUNDS', 4);
// The native section's rounds: two threads on two cores swing direct's figure by up to 1.5x
// (whether the scheduler puts sink and client on one core), so it takes more of them.
const NATIVE_ROUNDS = knob('EGRESS_NATIVE_ROUNDS', 8);
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

/** The proxy, allowing `sink.test` on each of `sinkPorts` (the JavaScript and the native sink). */
function runProxy(sinkPorts: number[]): void {
  const proxy = new EgressProxy(
    {
      allow: sinkPorts.map((p) => `sink.test:${p}`),
      resolve: sinkPorts.map((p) => `sink.test:${p}:${SINK_HOST}`),
      limits: { maxConnections: IDLE + 100 },
    },
    'bench',
    undefined,
    { dnsPool: '127.77.0.0/16', kernelRelay: KERNEL_RELAY },
  );
  proxy.dnsPool.addressFor('sink.test'); // -> 127.77.0.1, as the DNS responder would hand out
  const http = createServer();
  // A transparent listener per sink port: the accepted socket's local port is the destination's.
  const transparent = sinkPorts.map(() => createServer());
  const listening = transparent.map(
    (server, i) => new Promise<void>((resolve) => server.listen({ host: POOL_ADDR, port: sinkPorts[i], backlog: 4096 }, resolve)),
  );
  http.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, async () => {
    await Promise.all(listening);
    proxy.serveHttpProxy(http);
    for (const server of transparent) proxy.serveTransparent(server);
    process.send?.({ proxyPort: (http.address() as { port: number }).port });
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

/** Builds bench/fixtures/egress-peer.c with the system `cc`; the reason when it cannot. */
function buildPeer(): { binary: string } | { reason: string } {
  const source = path.join(__dirname, '..', '..', 'bench', 'fixtures', 'egress-peer.c');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stockade-bench-egress-'));
  fs.chmodSync(dir, 0o755); // the sandbox's user runs it from there
  const binary = path.join(dir, 'egress-peer');
  try {
    execFileSync('cc', ['-O2', '-pthread', '-o', binary, source], { stdio: ['ignore', 'ignore', 'pipe'] });
    return { binary };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    return {
      reason: e.code === 'ENOENT' ? 'no C compiler (cc) on this machine' : `cc failed: ${e.stderr?.toString().trim() ?? e.message}`,
    };
  }
}

/** The native sink: resolves with its port once it listens. */
function nativeSink(binary: string): Promise<{ proc: ReturnType<typeof spawn>; port: number }> {
  const proc = spawn(binary, ['sink', SINK_HOST], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    proc.once('error', reject);
    proc.stdout?.once('data', (c: Buffer) => resolve({ proc, port: Number(c.toString().trim()) }));
  });
}

/** CPU seconds a process has used so far (all threads), from /proc/PID/stat (clock ticks). */
function cpuOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime (fields 14, 15); USER_HZ is 100
}

/** The host's default TCP congestion control. */
function hostCongestion(): string {
  try {
    return fs.readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** Seconds the thread `pid` has spent runnable but waiting for a CPU (/proc/PID/schedstat). */
function waitOf(pid: number): number {
  return Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e9;
}

// Inside the sandbox: the proxy's address from HTTP_PROXY (CONNECT), or the address the
// sandbox's DNS gives sink.test (transparent: the connection to it is intercepted).
const inSandbox: Record<'connect' | 'transparent', string> = {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, run by sh
  connect: 'p=${HTTP_PROXY#http://}; p=${p%/}; exec "$0" get "${p%:*}" "${p##*:}" "$2" "sink.test:$1"',
  transparent: 'a=$(getent hosts sink.test | cut -d" " -f1); exec "$0" get "$a" "$1" "$2"',
};

/**
 * One native transfer along `p`: bytes per second, the client's CPU and runqueue seconds. Direct
 * from this host; the tunnels from a sandbox allowed sink.test (resolved to the sink), its
 * connections served by this process's proxy.
 */
async function nativeTransfer(binary: string, p: Path, sinkPort: number): Promise<{ bps: number; cpu: number; wait: number }> {
  const n = String(NATIVE_BYTES);
  const parse = (stdout: string) => {
    const [bps, cpu, wait] = stdout.trim().split(' ').map(Number);
    return { bps, cpu, wait };
  };
  if (p === 'direct') {
    return new Promise((resolve, reject) => {
      execFile(binary, ['get', SINK_HOST, String(sinkPort), n], (err, stdout, stderr) => {
        if (err) return reject(new Error(`egress-peer ${p}: ${stderr.trim() || err.message}`));
        resolve(parse(stdout));
      });
    });
  }
  const { stdout, stderr, exitCode } = await runSandboxed('/bin/sh', ['-c', inSandbox[p], binary, String(sinkPort), n], {
    filesystem: { readOnly: [path.dirname(binary)] },
    network: { allow: [`sink.test:${sinkPort}`], resolve: [`sink.test:${sinkPort}:${SINK_HOST}`] },
  });
  if (exitCode !== 0) throw new Error(`egress-peer ${p} in a sandbox: exit ${exitCode}: ${stderr.trim()}`);
  return parse(stdout);
}

/** Seconds this process's main thread (where the proxy's relay runs) has waited for a CPU. */
function ownWait(): number {
  return waitOf(process.pid);
}

/** Per process, per path: one figure per transfer (ms per GiB), warm-up included (dropped below). */
type PerGiB = Record<string, Record<Path, number[]>>;
const perGiB = (...who: string[]): PerGiB => Object.fromEntries(who.map((w) => [w, { direct: [], connect: [], transparent: [] }]));

/** One `figures` line per path: each process's median ms per GiB and, for several, their sum. */
function perGiBFigures(what: string, table: PerGiB, figures: Record<string, string | number>): void {
  for (const p of ['direct', 'connect', 'transparent'] as Path[]) {
    const who = Object.keys(table).filter((w) => table[w][p].length > 1);
    if (who.length === 0) continue;
    const runs = table[who[0]][p].slice(1);
    const total = median(runs.map((_, i) => who.reduce((t, w) => t + table[w][p][i + 1], 0)));
    const parts = who.map((w) => `${w} ${median(table[w][p].slice(1)).toFixed(0)}`).join(', ');
    figures[`${what}, ${p} (ms per GiB, median)`] = who.length > 1 ? `${parts}; all ${total.toFixed(0)}` : parts;
  }
}

const MODES = { direct: 'direct', 'CONNECT tunnel': 'connect', transparent: 'transparent' } as const;

async function main(): Promise<void> {
  const peer = buildPeer();
  const sink = await child('sink');
  const sinkPort = sink.msg.port as number;
  const native = 'binary' in peer ? await nativeSink(peer.binary) : undefined;
  const proxy = await child('proxy', [sinkPort, ...(native ? [native.port] : [])].join(','));
  const proxyPort = proxy.msg.proxyPort as number;
  const proxyCpu = async (): Promise<number> => {
    const u = (await ask(proxy.proc, 'cpu')).cpu as NodeJS.CpuUsage;
    return (u.user + u.system) / 1e6;
  };
  const relayNote = KERNEL_RELAY ? 'kernel (splice) where possible' : 'JavaScript (EGRESS_BENCH_KERNEL_RELAY=0)';

  // Throughput (MiB/s) and CPU per GiB, native client and sink, the three paths interleaved.
  const nativeBulk = section(
    'egress-native',
    `egress throughput, native client and sink, ${(NATIVE_BYTES / 2 ** 20).toFixed(0)} MiB per transfer, ${NATIVE_ROUNDS} rounds interleaved (MiB/s)`,
  );
  if (native && 'binary' in peer) {
    const cpu = perGiB('client', 'proxy', 'sink');
    const wait = perGiB('client', 'proxy');
    const sinkPid = native.proc.pid as number;
    const ownCpu = (): number => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    };
    const sampler = (p: Path) => async (): Promise<number> => {
      const before = { proxy: ownCpu(), sink: cpuOf(sinkPid), wait: ownWait() };
      const r = await nativeTransfer(peer.binary, p, native.port);
      const ms = (secs: number): number => (secs * 1000) / (NATIVE_BYTES / 2 ** 30);
      cpu.client[p].push(ms(r.cpu));
      cpu.sink[p].push(ms(cpuOf(sinkPid) - before.sink));
      wait.client[p].push(ms(r.wait));
      if (p !== 'direct') {
        // This process: the proxy, and the launcher's share of one spawn (~1 ms of the transfer's).
        cpu.proxy[p].push(ms(ownCpu() - before.proxy));
        wait.proxy[p].push(ms(ownWait() - before.wait));
      }
      return r.bps / 2 ** 20;
    };
    nativeBulk.modes = await interleave(Object.fromEntries(Object.entries(MODES).map(([name, p]) => [name, sampler(p)])), {
      rounds: NATIVE_ROUNDS,
      perRound: 1,
      warmup: 1,
      unit: 'MiB/s',
    });
    nativeBulk.ratios.push(ratio(nativeBulk.modes, 'CONNECT tunnel', 'direct'), ratio(nativeBulk.modes, 'transparent', 'direct'));
    nativeBulk.figures.relay = relayNote;
    perGiBFigures('CPU', cpu, nativeBulk.figures);
    perGiBFigures('runnable, waiting for a CPU', wait, nativeBulk.figures);
    nativeBulk.notes.push(
      "a ratio below 1 is slower than direct; the tunnels run from a sandbox (its network namespace, the launcher's proxy in this process); client (C), proxy (node) and sink (C) are separate processes on the same cores",
      "the sink's CPU is read from /proc in clock ticks (10 ms); the proxy's wait is its main thread's, where the relay runs",
      `the sink sends with CUBIC or Reno, not the host's default (${hostCongestion()}): BBR paces a loopback sender (bench/fixtures/egress-peer.c)`,
    );
  } else {
    nativeBulk.notes.push(`skipped: ${(peer as { reason: string }).reason}; the JavaScript client and sink below are all there is`);
  }
  report(nativeBulk);

  // The same with the JavaScript client and sink (node at all three ends).
  const cpu = perGiB('proxy');
  const throughput = (p: Path) => async (): Promise<number> => {
    const before = await proxyCpu();
    const bps = await transfer(p, sinkPort, proxyPort);
    if (p !== 'direct') cpu.proxy[p].push((((await proxyCpu()) - before) * 1000) / (BYTES / 2 ** 30));
    return bps / 2 ** 20;
  };
  const bulk = section(
    'egress',
    `egress throughput, JavaScript client and sink, ${(BYTES / 2 ** 20).toFixed(0)} MiB per transfer, ${ROUNDS} rounds interleaved (MiB/s)`,
  );
  bulk.modes = await interleave(Object.fromEntries(Object.entries(MODES).map(([name, p]) => [name, throughput(p)])), {
    rounds: ROUNDS,
    perRound: 1,
    warmup: 1,
    unit: 'MiB/s',
  });
  bulk.ratios.push(ratio(bulk.modes, 'CONNECT tunnel', 'direct'), ratio(bulk.modes, 'transparent', 'direct'));
  bulk.figures.relay = relayNote;
  perGiBFigures('CPU', cpu, bulk.figures);
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
  native?.proc.kill();
  proxy.proc.kill();
  if ('binary' in peer) fs.rmSync(path.dirname(peer.binary), { recursive: true, force: true });
}

const [role, arg] = process.argv.slice(2);
if (role === 'sink') runSink();
else if (role === 'proxy') runProxy(arg.split(',').map(Number));
else
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
