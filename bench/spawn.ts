// Spawn latency: spawnSandboxed('/bin/true') with full isolation vs child_process.spawn in the
// same process and run (and vs bwrap when installed). Prints median and p95 and the ratios;
// asserts nothing. spawnSandboxed runs with its default limits (a cgroup per sandbox where the
// host gives one: memory, pids), with cpus as well (a cpu cgroup too), and with cgroups off
// (STOCKADE_CGROUP_PARENT=none: rlimits and user-namespace budgets only), to show what the
// cgroups cost.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import { spawnSandboxed } from '../lib';

type Runner = () => Promise<void>;

function stats(samples: number[]): { median: number; p95: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)], p95: sorted[Math.floor(sorted.length * 0.95)] };
}

async function measure(run: Runner, iterations: number): Promise<number[]> {
  for (let i = 0; i < 10; i++) await run(); // warm up
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const start = process.hrtime.bigint();
    await run();
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return samples;
}

const nodeSpawn: Runner = async () => {
  const child = spawn('/bin/true', [], { stdio: 'ignore' });
  await once(child, 'exit');
};

let blocked: number[] = [];
const sandboxSpawn: Runner = async () => {
  const start = process.hrtime.bigint();
  const child = spawnSandboxed('/bin/true', [], { stdio: 'ignore' });
  blocked.push(Number(process.hrtime.bigint() - start) / 1e6);
  await child.exited;
};

/** The default spawn with cgroups off, or with a cpus limit on top. */
function sandboxWith(mode: 'no-cgroups' | 'cpus'): Runner {
  return async () => {
    const before = process.env.STOCKADE_CGROUP_PARENT;
    if (mode === 'no-cgroups') process.env.STOCKADE_CGROUP_PARENT = 'none';
    try {
      const child = spawnSandboxed('/bin/true', [], { stdio: 'ignore', limits: mode === 'cpus' ? { cpus: 1 } : undefined });
      await child.exited;
    } finally {
      if (before === undefined) delete process.env.STOCKADE_CGROUP_PARENT;
      else process.env.STOCKADE_CGROUP_PARENT = before;
    }
  };
}

function bwrapPath(): string | undefined {
  for (const p of ['/usr/bin/bwrap', '/usr/local/bin/bwrap']) if (fs.existsSync(p)) return p;
  return undefined;
}

export async function benchSpawn(iterations = Number(process.env.SPAWN_ITERATIONS ?? 300)): Promise<void> {
  const rows: [string, number[]][] = [];
  // Interleave the rounds so that machine noise hits every contender alike.
  const node: number[] = [];
  const sandbox: number[] = [];
  const noCgroups: number[] = [];
  const cpus: number[] = [];
  const { probeLimits } = await import('../lib/probe');
  const cpuHeld = probeLimits().held.includes('cpu');
  blocked = [];
  for (let round = 0; round < 3; round++) {
    node.push(...(await measure(nodeSpawn, iterations / 3)));
    sandbox.push(...(await measure(sandboxSpawn, iterations / 3)));
    noCgroups.push(...(await measure(sandboxWith('no-cgroups'), iterations / 3)));
    if (cpuHeld) cpus.push(...(await measure(sandboxWith('cpus'), iterations / 3)));
  }
  console.log(`\nlimits: ${probeLimits().detail}`);
  rows.push(['child_process.spawn', node], ['spawnSandboxed', sandbox], ['  cgroups off', noCgroups]);
  if (cpuHeld) rows.push(['  + cpus (cpu cgroup)', cpus]);
  const bwrap = bwrapPath();
  if (bwrap) {
    const args = [
      '--unshare-all',
      '--die-with-parent',
      '--ro-bind',
      '/usr',
      '/usr',
      '--symlink',
      'usr/bin',
      '/bin',
      '--symlink',
      'usr/lib',
      '/lib',
      '--symlink',
      'usr/lib64',
      '/lib64',
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      '--tmpfs',
      '/tmp',
      '/bin/true',
    ];
    rows.push([
      'bwrap (from node)',
      await measure(async () => void (await once(spawn(bwrap, args, { stdio: 'ignore' }), 'exit')), iterations),
    ]);
  }
  const base = stats(node);
  console.log(`\nspawn: /bin/true to exit, ${iterations} runs each (ms)`);
  console.log(`${'contender'.padEnd(22)}${'median'.padStart(9)}${'p95'.padStart(9)}${'x node (median)'.padStart(18)}`);
  for (const [name, samples] of rows) {
    const s = stats(samples);
    console.log(
      `${name.padEnd(22)}${s.median.toFixed(2).padStart(9)}${s.p95.toFixed(2).padStart(9)}${(s.median / base.median).toFixed(2).padStart(18)}`,
    );
  }
  const b = stats(blocked);
  console.log(`spawnSandboxed() blocks the event loop for median ${b.median.toFixed(2)} ms, p95 ${b.p95.toFixed(2)} ms (clone to execve)`);
}

if (require.main === module)
  benchSpawn().catch((err) => {
    console.error(err);
    process.exit(1);
  });
