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
// the launcher reading the sandbox's CPU count) show what that costs.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { spawnSandboxed } from '../lib';
import { native } from '../lib/native';
import { interleave, knob, median, percentile, ratio, report, type Sampler, section } from './harness';

const ROUNDS = knob('SPAWN_ROUNDS', 6);
const PER_ROUND = knob('SPAWN_PER_ROUND', 50);
const WARMUP = 20;

type Costs = { call: number[]; held: number[] };
const costs: Record<string, Costs> = {};
let callbacks = 0; // ms the JS thread spent in the addon's callbacks during the current sample

/** Times a spawn to exit, and records the JS thread's share of it. */
function timed(name: string, start: () => Promise<unknown>): Sampler {
  costs[name] = { call: [], held: [] };
  return async () => {
    callbacks = 0;
    const t0 = performance.now();
    const done = start();
    const call = performance.now() - t0;
    await done;
    const took = performance.now() - t0;
    costs[name].call.push(call);
    costs[name].held.push(call + callbacks);
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
      const t = performance.now();
      try {
        f(...a);
      } finally {
        callbacks += performance.now() - t;
      }
    };
  addon.spawn = (plan, onExit, onSpawn) => spawnNative(plan, timedCb(onExit), timedCb(onSpawn));
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
  if (bwrap) s.ratios.push(ratio(s.modes, 'bwrap (from node)', 'child_process.spawn'));
  if (modes['spawnSandboxed, cgroups off']) s.ratios.push(ratio(s.modes, 'spawnSandboxed', 'spawnSandboxed, cgroups off'));
  s.notes.push(`limits: ${limits.detail}`);
  for (const [name, all] of Object.entries(costs)) {
    const c = { call: all.call.slice(WARMUP), held: all.held.slice(WARMUP) };
    s.figures[`${name}: JS thread in the call, median / p95 (ms)`] = `${median(c.call).toFixed(3)} / ${percentile(c.call, 95).toFixed(3)}`;
    if (name === 'spawnSandboxed')
      s.figures[`${name}: JS thread per spawn (call + spawn and exit callbacks), median / p95 (ms)`] =
        `${median(c.held).toFixed(3)} / ${percentile(c.held, 95).toFixed(3)}`;
  }
  s.notes.push(
    'spawnSandboxed runs clone() and the wait for exec on a spawner thread (native/spawner.cc); child_process.spawn holds the JS thread until exec',
  );
  report(s);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
