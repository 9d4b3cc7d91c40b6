// Many sandboxes at once, each with network: SCALE_SANDBOXES (default 200; the figure is
// 1000) sandboxes with an allow list are started one after another and kept alive; each fetches
// one URL through its own egress proxy from an upstream on 127.0.0.1 (curl, through the proxy
// variables) and then waits on stdin. Reports the spawn latency (call to 'spawn') against the
// number of sandboxes already live, how long until every one was served, and the host memory
// (MemAvailable) and this process's fds and RSS per live sandbox. Bounded and cleaned up: every
// sandbox has a wall-time limit, dies with this process (PR_SET_PDEATHSIG), and is ended by
// closing its stdin, then awaited.
//
//   SCALE_SANDBOXES (default 200, at most 2000)
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type SandboxedProcess, spawnSandboxed } from '../lib';
import { knob, median, percentile, report, section } from './harness';

const N = Math.min(2000, knob('SCALE_SANDBOXES', 200));
const BUCKET = Math.max(10, Math.floor(N / 10));

function memAvailable(): number {
  const m = /MemAvailable:\s+(\d+) kB/.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;

async function main(): Promise<void> {
  const upstream = http.createServer((_req, res) => res.end('served\n'));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const port = (upstream.address() as AddressInfo).port;
  const options = {
    stdio: ['pipe', 'pipe', 'ignore'] as ['pipe', 'pipe', 'ignore'],
    network: { allow: [`up.test:${port}`], resolve: [`up.test:${port}:127.0.0.1`] },
    limits: { wallTime: 10 * 60_000 },
  };
  const script = `curl -s --max-time 60 http://up.test:${port}/ && exec cat`;

  const memBefore = memAvailable();
  const fdsBefore = fdCount();
  const rssBefore = process.memoryUsage().rss;
  const children: SandboxedProcess[] = [];
  const latency: number[] = [];
  const served: Promise<void>[] = [];
  const t0 = performance.now();
  try {
    for (let i = 0; i < N; i++) {
      const t = performance.now();
      const child = spawnSandboxed('/bin/sh', ['-c', script], options);
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
      latency.push(performance.now() - t);
      served.push(
        new Promise<void>((resolve, reject) => {
          let out = '';
          child.stdout?.on('data', (d: Buffer) => {
            out += d.toString();
            if (out.includes('served')) resolve();
          });
          child.once('exit', (code) => reject(new Error(`sandbox ${i} exited (${code}) before it was served: ${out}`)));
        }),
      );
    }
    await Promise.all(served);
    const allServed = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 500)); // let proxy sockets of the fetches close
    const memAfter = memAvailable();
    const fdsAfter = fdCount();
    const rssAfter = process.memoryUsage().rss;

    const s = section('scale', `${N} concurrent sandboxes with network (an allow list, one egress fetch each)`);
    for (let b = 0; b < N; b += BUCKET) {
      const xs = latency.slice(b, b + BUCKET);
      s.figures[`spawn latency with ${b}–${b + xs.length - 1} live, median / p95 (ms)`] =
        `${median(xs).toFixed(2)} / ${percentile(xs, 95).toFixed(2)}`;
    }
    s.figures['all started and served (s)'] = (allServed / 1000).toFixed(1);
    s.figures['host memory per live sandbox (MemAvailable, KiB)'] = ((memBefore - memAfter) / N / 1024).toFixed(0);
    s.figures['this process: fds per live sandbox'] = ((fdsAfter - fdsBefore) / N).toFixed(1);
    s.figures['this process: RSS per live sandbox (KiB)'] = ((rssAfter - rssBefore) / N / 1024).toFixed(0);
    report(s);
  } finally {
    for (const c of children) c.stdin?.end();
    const deadline = setTimeout(() => {
      for (const c of children) c.kill('SIGKILL');
    }, 30_000);
    await Promise.allSettled(children.map((c) => c.exited));
    clearTimeout(deadline);
    upstream.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
