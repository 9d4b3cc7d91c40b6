// Cost of credential injection: HTTPS/1.1 keep-alive requests per second on loopback through
//   direct     curl -> upstream
//   tunnel     curl -> EgressProxy (CONNECT, no secret for the host: bytes pass untouched) -> upstream
//   intercept  curl -> EgressProxy + SecretInterceptor (TLS terminated, header injected,
//              re-encrypted) -> upstream
// The client is curl (native, 1 or 16 parallel keep-alive connections: --parallel), the
// upstream and the proxy run in processes of their own, so neither a JS client nor a shared
// event loop is what is measured. Modes interleaved over rounds.
//
//   SECRETS_REQUESTS (per mode per round, default 2000), SECRETS_ROUNDS (default 5)
import { type ChildProcess, execFile, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { EgressProxy } from '../lib/net/proxy';
import { RunCa } from '../lib/secrets/ca';
import { SecretInterceptor } from '../lib/secrets/intercept';
import { resolveSecrets } from '../lib/secrets/spec';
import { interleave, knob, ratio, report, type Sampler, section } from './harness';

const HOST = 'api.bench.local';
const REQUESTS = knob('SECRETS_REQUESTS', 2000);
const ROUNDS = knob('SECRETS_ROUNDS', 5);

type Msg = { port?: number; caPem?: string; tunnel?: number; intercept?: number; runCaPem?: string; placeholder?: string };

async function runUpstream(): Promise<void> {
  const ca = await RunCa.create({ commonName: 'stockade bench upstream CA' });
  const leaf = await ca.leaf(HOST);
  const server = https.createServer({ key: leaf.keyPem, cert: `${leaf.certPem}\n${ca.certPem}` }, (req, res) => {
    req.resume();
    req.on('end', () => res.end('{"ok":true}'));
  });
  server.keepAliveTimeout = 60_000;
  server.listen({ host: '127.0.0.1', port: 0, backlog: 1024 }, () =>
    process.send?.({ port: (server.address() as AddressInfo).port, caPem: ca.certPem }),
  );
}

async function runProxy(upPort: number, upCaPem: string): Promise<void> {
  const runCa = await RunCa.create();
  const secrets = resolveSecrets([{ name: 'TOKEN', hosts: [`${HOST}:${upPort}`] }], { TOKEN: 'bench-real-token-value' });
  const interceptor = new SecretInterceptor({ secrets, ca: runCa, upstreamCaPem: [upCaPem] });
  const options = { allow: [`${HOST}:${upPort}`], resolve: [`${HOST}:${upPort}:127.0.0.1`] };
  const listen = (proxy: EgressProxy): Promise<number> =>
    new Promise((resolve) => {
      const server = net.createServer();
      server.listen({ host: '127.0.0.1', port: 0, backlog: 1024 }, () => {
        proxy.serveHttpProxy(server);
        resolve((server.address() as AddressInfo).port);
      });
    });
  const tunnel = await listen(new EgressProxy(options, 'bench-tunnel'));
  const intercept = await listen(new EgressProxy(options, 'bench-intercept', undefined, { interceptor }));
  process.send?.({ tunnel, intercept, runCaPem: runCa.certPem, placeholder: interceptor.placeholders.TOKEN });
}

function child(role: string, ...args: string[]): Promise<{ proc: ChildProcess; msg: Msg }> {
  const proc = fork(__filename, [role, ...args], { stdio: 'inherit' });
  return new Promise((resolve, reject) => {
    proc.once('message', (msg: Msg) => resolve({ proc, msg }));
    proc.once('exit', (code) => reject(new Error(`${role} exited with ${code}`)));
  });
}

async function main(): Promise<void> {
  const up = await child('upstream');
  const upPort = up.msg.port as number;
  const proxy = await child('proxy', String(upPort), up.msg.caPem as string);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stockade-bench-secrets-'));
  try {
    const upCa = path.join(dir, 'upstream-ca.pem');
    const runCa = path.join(dir, 'run-ca.pem');
    fs.writeFileSync(upCa, up.msg.caPem as string);
    fs.writeFileSync(runCa, proxy.msg.runCaPem as string);
    const urls = path.join(dir, 'urls');
    fs.writeFileSync(urls, `url = "https://${HOST}:${upPort}/"\noutput = "/dev/null"\n`.repeat(REQUESTS));

    /** One curl run of REQUESTS requests over `parallel` keep-alive connections: req/s. */
    const curl = (parallel: number, via: 'direct' | 'tunnel' | 'intercept'): Sampler => {
      const args = ['-s', '--fail', '--http1.1', '--resolve', `${HOST}:${upPort}:127.0.0.1`, '-K', urls];
      args.push('-H', `authorization: Bearer ${proxy.msg.placeholder}`);
      if (parallel > 1) args.push('--parallel', '--parallel-immediate', '--parallel-max', String(parallel));
      if (via === 'direct') args.push('--cacert', upCa);
      if (via === 'tunnel') args.push('--cacert', upCa, '--proxytunnel', '-x', `http://127.0.0.1:${proxy.msg.tunnel}`);
      if (via === 'intercept') args.push('--cacert', runCa, '--proxytunnel', '-x', `http://127.0.0.1:${proxy.msg.intercept}`);
      return () =>
        new Promise((resolve, reject) => {
          const t = performance.now();
          execFile('curl', args, { maxBuffer: 1 << 20 }, (err, _out, stderr) => {
            if (err) reject(new Error(`curl (${via}): ${err.message} ${stderr}`));
            else resolve((REQUESTS / (performance.now() - t)) * 1000);
          });
        });
    };
    for (const parallel of [1, 16]) {
      const s = section(
        `secrets-${parallel}`,
        `credential injection, HTTPS/1.1 keep-alive, curl with ${parallel} connection(s), ${REQUESTS} requests per run, ${ROUNDS} rounds interleaved (req/s)`,
      );
      s.modes = await interleave(
        { direct: curl(parallel, 'direct'), tunnel: curl(parallel, 'tunnel'), intercept: curl(parallel, 'intercept') },
        { rounds: ROUNDS, perRound: 1, warmup: 1, unit: 'req/s' },
      );
      s.ratios.push(ratio(s.modes, 'intercept', 'direct'), ratio(s.modes, 'tunnel', 'direct'), ratio(s.modes, 'intercept', 'tunnel'));
      s.notes.push('throughput: a ratio below 1 is slower than the baseline');
      report(s);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    up.proc.kill();
    proxy.proc.kill();
  }
}

const [role, ...rest] = process.argv.slice(2);
const run = role === 'upstream' ? runUpstream() : role === 'proxy' ? runProxy(Number(rest[0]), rest[1]) : main();
run.catch((err) => {
  console.error(err);
  process.exit(1);
});
