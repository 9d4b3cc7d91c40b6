// Cost of credential injection: HTTPS requests per second and p50/p95 latency on loopback for
//   direct     client -> upstream (TLS)
//   tunnel     client -> CONNECT stand-in -> TCP pass-through -> upstream (the path of hosts without secrets)
//   intercept  client -> CONNECT stand-in -> SecretInterceptor (TLS termination, injection, re-encryption) -> upstream
// sequentially (one keep-alive connection) and concurrently (16 keep-alive connections), all in one
// run so the ratios compare like with like. Prints numbers; asserts nothing about time.
//
//   npx tsc -p tsconfig.json && node dist/bench/secrets.js [requests-per-mode]
import * as https from 'node:https';
import type * as net from 'node:net';
import * as tls from 'node:tls';
import { RunCa } from '../lib/secrets/ca';
import { SecretInterceptor } from '../lib/secrets/intercept';
import { resolveSecrets } from '../lib/secrets/spec';
import { startConnectProxy, startUpstream, tlsThroughProxy } from '../test/helpers/secrets-harness';

const HOST = 'api.bench.local';

type Mode = 'direct' | 'tunnel' | 'intercept';

interface Result {
  rps: number;
  p50: number;
  p95: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 4000);
  const up = await startUpstream([HOST], { h1Only: true });
  const runCa = await RunCa.create();
  const secrets = resolveSecrets([{ name: 'TOKEN', hosts: [`${HOST}:${up.port}`] }], { TOKEN: 'bench-real-token-value' });
  const ic = new SecretInterceptor({ secrets, ca: runCa, upstreamCaPem: [up.caPem] });
  const intercepting = await startConnectProxy(ic);
  const passThrough = await startConnectProxy(null);
  const auth = `Bearer ${ic.placeholders.TOKEN}`;

  // One keep-alive agent per client, whose single connection is made the way the mode says.
  const agentFor = (mode: Mode): https.Agent => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const make = (): Promise<tls.TLSSocket> => {
      if (mode === 'direct') {
        return new Promise((resolve, reject) => {
          const s = tls.connect({ host: '127.0.0.1', port: up.port, servername: HOST, ca: up.caPem, ALPNProtocols: ['http/1.1'] }, () =>
            resolve(s),
          );
          s.on('error', reject);
        });
      }
      const proxyPort = mode === 'tunnel' ? passThrough.port : intercepting.port;
      return tlsThroughProxy(proxyPort, HOST, up.port, mode === 'tunnel' ? up.caPem : runCa.certPem);
    };
    (agent as unknown as { createConnection: unknown }).createConnection = (
      _opts: unknown,
      cb: (err: Error | null, s?: net.Socket) => void,
    ) => {
      make().then(
        (s) => cb(null, s),
        (err) => cb(err),
      );
      return undefined;
    };
    return agent;
  };

  const request = (agent: https.Agent): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = https.request({ host: HOST, port: up.port, path: '/', agent, headers: { authorization: auth } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });

  const measure = async (mode: Mode, clients: number, n: number): Promise<Result> => {
    const agents = Array.from({ length: clients }, () => agentFor(mode));
    // Warm-up: connections, leaf certificate, upstream pool; not counted.
    await Promise.all(agents.map((a) => request(a)));
    const latencies: number[] = [];
    const perClient = Math.ceil(n / clients);
    const start = process.hrtime.bigint();
    await Promise.all(
      agents.map(async (a) => {
        for (let i = 0; i < perClient; i++) {
          const t = process.hrtime.bigint();
          await request(a);
          latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
        }
      }),
    );
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    for (const a of agents) a.destroy();
    up.seen.length = 0;
    up.wire.length = 0;
    latencies.sort((a, b) => a - b);
    return { rps: latencies.length / seconds, p50: percentile(latencies, 50), p95: percentile(latencies, 95) };
  };

  const fmt = (r: Result) =>
    `${r.rps.toFixed(0).padStart(7)} req/s   p50 ${r.p50.toFixed(3).padStart(7)} ms   p95 ${r.p95.toFixed(3).padStart(7)} ms`;
  console.log(`node ${process.version}, ${total} HTTPS/1.1 keep-alive requests per mode, loopback only`);
  for (const [label, clients] of [
    ['sequential (1 client)', 1],
    ['concurrent (16 clients)', 16],
  ] as const) {
    const n = clients === 1 ? Math.ceil(total / 2) : total;
    const results = {} as Record<Mode, Result>;
    for (const mode of ['direct', 'tunnel', 'intercept'] as Mode[]) results[mode] = await measure(mode, clients, n);
    console.log(`\n${label}`);
    for (const mode of ['direct', 'tunnel', 'intercept'] as Mode[]) console.log(`  ${mode.padEnd(10)} ${fmt(results[mode])}`);
    const d = results.direct;
    const t = results.tunnel;
    const x = results.intercept;
    console.log(
      `  ratios     intercept/direct rps ${(x.rps / d.rps).toFixed(2)}, intercept/tunnel rps ${(x.rps / t.rps).toFixed(2)}, tunnel/direct rps ${(t.rps / d.rps).toFixed(2)}`,
    );
    console.log(`             intercept/direct p50 ${(x.p50 / d.p50).toFixed(2)}x, p95 ${(x.p95 / d.p95).toFixed(2)}x`);
  }
  await ic.close();
  await intercepting.close();
  await passThrough.close();
  await up.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
