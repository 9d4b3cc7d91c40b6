// Spawn: spawnSandboxed('/bin/true') with full isolation against child_process.spawn('/bin/true')
// (and bwrap, where installed), interleaved, from call to exit. And what each costs the event
// loop: the time the call itself holds the JS thread and, for spawnSandboxed, the JS thread's
// whole share of a spawn (the call,
// the addon's spawn and exit callbacks (timed by wrapping them) — as against waiting on the
// spawner thread and the kernel).
//
//   SPAWN_ROUNDS (default 6), SPAWN_PER_ROUND (default 50)
//
// Where the host gives a cgroup, spawnSandboxed makes one per sandbox (lib/limits) and watches
// it for refused forks (lib/limits/watch.ts); the modes 'cgroups off'
// (STOCKADE_CGROUP_PARENT=none), '+ cpus' (a cpu cgroup too) and '+ cpu seconds' (limits.cpu:
// the launcher reading the sandbox's CPU count) show what that costs; 'warm: false' the spawn
// without the warm pool (namespaces made by clone() on demand).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { spawnSandboxed } from '../lib';
import { type NativePlan, type NativePlanTemplate, native } from '../lib/native';
import { interleave, knob, median, percentile, ratio, report, type Sampler, section } from './harness';

const ROUNDS = knob('SPAWN_ROUNDS', 6);
const PER_ROUND = knob('SPAWN_PER_ROUND', 50);
const WARMUP = 20;

// Wall time (what the event loop waited, including any time other tasks of a loaded host held
// the CPU) and the JS thread's own CPU time (the work it did: CLOCK_THREAD_CPUTIME_ID).
type Costs = { call: number[]; held: number[]; callCpu: number[]; heldCpu: number[] };
const costs: Record<string, Costs> = {};
let callbacks = 0; // ms the JS thread spent in the addon's callbacks during the current sample
let callbacksCpu = 0;
const cpuNow = (): number => native().threadCpuTime();

/** Times a spawn to exit, and records the JS thread's share of it. */
function timed(name: string, start: () => Promise<unknown>): Sampler {
  costs[name] = { call: [], held: [], callCpu: [], heldCpu: [] };
  return async () => {
    callbacks = 0;
    callbacksCpu = 0;
    const c0 = cpuNow();
    const t0 = performance.now();
    const done = start();
    const call = performance.now() - t0;
    const callCpu = cpuNow() - c0;
    await done;
    const took = performance.now() - t0;
    costs[name].call.push(call);
    costs[name].held.push(call + callbacks);
    costs[name].callCpu.push(callCpu);
    costs[name].heldCpu.push(callCpu + callbacksCpu);
    return took;
  };
}

/** Wraps the addon's spawn so that its onSpawn and onExit callbacks are timed. */
function timeAddonCallbacks(): void {
  const addon = native();
  const spawnNative = addon.spawn.bind(addon);
  const timedCb =
    <A extends unknown[]>(f: (...a: A) => void) =>
    (...a: A): void => {
      const c = cpuNow();
      const t = performance.now();
      try {
        f(...a);
      } finally {
        callbacks += performance.now() - t;
        callbacksCpu += cpuNow() - c;
      }
    };
  const wrapped = (
    plan: Parameters<typeof spawnNative>[0],
    onExit: Parameters<typeof spawnNative>[1],
    onSpawn: Parameters<typeof spawnNative>[2],
    onViolation?: Parameters<typeof spawnNative>[3],
    template?: NativePlanTemplate,
  ): void =>
    template === undefined
      ? spawnNative(plan as NativePlan, timedCb(onExit), timedCb(onSpawn), onViolation)
      : spawnNative(plan, timedCb(onExit), timedCb(onSpawn), onViolation, template);
  addon.spawn = wrapped as typeof addon.spawn;
}

function bwrapPath(): string | undefined {
  for (const p of ['/usr/bin/bwrap', '/usr/local/bin/bwrap']) if (fs.existsSync(p)) return p;
  return undefined;
}

const bwrapArgs = ['--unshare-all', '--die-with-parent', '--ro-bind', '/usr', '/usr', '--symlink', 'usr/bin', '/bin']
  .concat(['--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64', '--proc', '/proc', '--dev', '/dev'])
  .concat(['--tmpfs', '/tmp', '/bin/true']);

/** spawnSandboxed with an environment setting for this one spawn (STOCKADE_CGROUP_PARENT=none: no cgroups). */
function sandboxWith(parent: string | undefined, limits?: { cpus?: number; cpu?: number }): () => Promise<unknown> {
  return () => {
    const before = process.env.STOCKADE_CGROUP_PARENT;
    if (parent !== undefined) process.env.STOCKADE_CGROUP_PARENT = parent;
    try {
      return spawnSandboxed('/bin/true', [], { stdio: 'ignore', limits }).exited;
    } finally {
      if (before === undefined) delete process.env.STOCKADE_CGROUP_PARENT;
      else process.env.STOCKADE_CGROUP_PARENT = before;
    }
  };
}

async function main(): Promise<void> {
  timeAddonCallbacks();
  const modes: Record<string, Sampler> = {
    'child_process.spawn': timed('child_process.spawn', () => once(spawn('/bin/true', [], { stdio: 'ignore' }), 'exit')),
    spawnSandboxed: timed('spawnSandboxed', () => spawnSandboxed('/bin/true', [], { stdio: 'ignore' }).exited),
    // Without the warm pool: every spawn clones its namespaces itself.
    'spawnSandboxed, warm: false': timed(
      'spawnSandboxed, warm: false',
      () => spawnSandboxed('/bin/true', [], { stdio: 'ignore', warm: false }).exited,
    ),
  };
  // What the default limits' cgroups cost (lib/limits): the same spawn without cgroups, and with a cpu cgroup too.
  const { probeLimits } = require('../lib/probe') as typeof import('../lib/probe');
  const limits = probeLimits();
  if (limits.held.length > 0) modes['spawnSandboxed, cgroups off'] = timed('spawnSandboxed, cgroups off', sandboxWith('none'));
  if (limits.held.includes('cpu')) modes['spawnSandboxed + cpus'] = timed('spawnSandboxed + cpus', sandboxWith(undefined, { cpus: 1 }));
  if (!limits.cpuSeconds.startsWith('RLIMIT'))
    modes['spawnSandboxed + cpu seconds'] = timed('spawnSandboxed + cpu seconds', sandboxWith(undefined, { cpu: 60 }));
  const bwrap = bwrapPath();
  if (bwrap) modes['bwrap (from node)'] = timed('bwrap (from node)', () => once(spawn(bwrap, bwrapArgs, { stdio: 'ignore' }), 'exit'));

  const s = section('spawn', `spawn /bin/true to exit: ${ROUNDS} rounds x ${PER_ROUND} per mode, interleaved (ms)`);
  s.modes = await interleave(modes, { rounds: ROUNDS, perRound: PER_ROUND, warmup: WARMUP });
  s.ratios.push(ratio(s.modes, 'spawnSandboxed', 'child_process.spawn'));
  s.ratios.push(ratio(s.modes, 'spawnSandboxed, warm: false', 'child_process.spawn'));
  s.ratios.push(ratio(s.modes, 'spawnSandboxed', 'spawnSandboxed, warm: false'));
  if (bwrap) s.ratios.push(ratio(s.modes, 'bwrap (from node)', 'child_process.spawn'));
  if (modes['spawnSandboxed, cgroups off']) s.ratios.push(ratio(s.modes, 'spawnSandboxed', 'spawnSandboxed, cgroups off'));
  s.notes.push(`limits: ${limits.detail}`);
  const mp = (xs: number[]) => `${median(xs).toFixed(3)} / ${percentile(xs, 95).toFixed(3)}`;
  for (const [name, all] of Object.entries(costs)) {
    const c = Object.fromEntries(Object.entries(all).map(([k, v]) => [k, v.slice(WARMUP)])) as Costs;
    s.figures[`${name}: JS thread in the call, wall median / p95 (ms)`] = mp(c.call);
    s.figures[`${name}: JS thread in the call, CPU median / p95 (ms)`] = mp(c.callCpu);
    if (name.startsWith('spawnSandboxed')) {
      s.figures[`${name}: JS thread per spawn (call + spawn and exit callbacks), wall median / p95 (ms)`] = mp(c.held);
      s.figures[`${name}: JS thread per spawn (call + spawn and exit callbacks), CPU median / p95 (ms)`] = mp(c.heldCpu);
    }
  }
  s.notes.push(
    'spawnSandboxed runs clone() and the wait for exec on a spawner thread (native/spawner.cc); child_process.spawn holds the JS thread until exec',
    "the warm pool is on (README, 'warm'): the spawner makes the next sandbox's namespaces while it is idle, here while the payload runs and exits; a mode whose plan differs from the one before it (cgroups off) finds none at the start of its batch",
    "wall time counts what the event loop waited, CPU the JS thread's own work: on a loaded host the difference is other tasks holding the CPU",
  );
  report(s);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
