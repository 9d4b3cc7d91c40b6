// MCP: server-everything's echo tool called from the official SDK client, with the server run
// directly, through `stockade run` (stdio handed over: should be at par) and through
// `stockade run --tools` (one more process hop, every message parsed). Two references frame
// them: a second direct server (two identical servers differ by this much: the noise floor) and
// a bare Node relay (the extra hop alone, bytes passed on unread). `--tools` runs on the native
// relay's threads (lib/mcp/native-relay.ts); `--tools, Node streams` is the same filter on the
// launcher's event loop (STOCKADE_TOOL_RELAY=js), what the threads replaced.
//
// The round trip starts every mode's server afresh each round, one SDK client per mode, and
// interleaves the modes call by call: every iteration calls each mode once, in a fresh random order (seeded), so a burst of the
// machine's other load, the client's garbage collection, or the after-work of the server called
// just before (its GC threads run on after it answered) lands on every mode alike. A fixed
// rotation (ABC, BCA, ...) had each mode mostly follow the same other mode, which skewed one
// ratio by 3-5% on this 2-core machine. Each round's ratio is of the medians of its calls, and
// each call is also paired with the direct call of its iteration (the difference, in µs). CPU
// time per call of every process (the scheduler's own account, /proc/PID/task/TID/schedstat)
// is the figure the machine's load moves least. Then cold start to `initialized`, interleaved
// the same way, a batch per mode per round.
//
// MCP_BASELINE names another build's bin/stockade.js (the code before a change, built): its
// `stockade run` joins the cold starts, alternating with this one's.
//
//   MCP_ROUNDS (default 8), MCP_ITER (calls per mode per round, default 400), MCP_WARMUP (calls per
//   mode before, default 200), MCP_STARTS (default 4 per mode per round), MCP_BASELINE (unset)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { launchPath } from '../lib/native';
import { difference, interleave, knob, load, median, ratio, report, type Sampler, section, statsOf } from './harness';

const root = path.join(__dirname, '..', '..');
const server = path.join(root, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const launcher = path.join(root, 'bin', 'stockade.js');
const ROUNDS = knob('MCP_ROUNDS', 8);
const ITER = knob('MCP_ITER', 400);
const WARMUP = knob('MCP_WARMUP', 200);
const STARTS = knob('MCP_STARTS', 4);
const WARM_STARTS = 1;

// The extra hop of --tools without the tool layer: every chunk passed on as it came.
const relay = `const c = require('node:child_process').spawn(process.argv[1], process.argv.slice(2), { stdio: ['pipe', 'pipe', 'ignore'] });
process.stdin.on('data', (d) => c.stdin.write(d)).on('end', () => c.stdin.end());
c.stdout.on('data', (d) => process.stdout.write(d));
c.on('exit', (code) => process.exit(code ?? 1));`;

// Each mode: the command the SDK client starts, its arguments, and what it adds to the SDK's
// default environment.
type Mode = [string, string[], Record<string, string>?];
const modes: Record<string, Mode> = {
  direct: [process.execPath, [server, 'stdio']],
  'direct, second server': [process.execPath, [server, 'stdio']],
  'stockade run': [process.execPath, [launcher, 'run', '--ro', path.join(root, 'node_modules'), '--', process.execPath, server, 'stdio']],
  'stockade run --tools': [
    process.execPath,
    [launcher, 'run', '--ro', path.join(root, 'node_modules'), '--tools', 'echo', '--', process.execPath, server, 'stdio'],
  ],
  'stockade run --tools, Node streams': [
    process.execPath,
    [launcher, 'run', '--ro', path.join(root, 'node_modules'), '--tools', 'echo', '--', process.execPath, server, 'stdio'],
    { STOCKADE_TOOL_RELAY: 'js' },
  ],
  'node relay (no filter)': [process.execPath, ['-e', relay, process.execPath, server, 'stdio']],
};
const transport = ([command, args, env]: Mode, stderr: 'ignore' | 'pipe' = 'ignore') =>
  new StdioClientTransport({ command, args, stderr, ...(env ? { env: { ...getDefaultEnvironment(), ...env } } : {}) });
/** The mode with its server told to write its process's start time to stderr first. */
const origin = `data:text/javascript,${encodeURIComponent('process.stderr.write("STOCKADE_BENCH_ORIGIN " + performance.timeOrigin + "\\n")')}`;
const stamped = ([command, args, env]: Mode): Mode => [command, args.flatMap((a) => (a === server ? ['--import', origin, a] : [a])), env];
// A server in a session of its own (setsid): where the kernel groups the scheduler by session
// (sched_autogroup_enabled), that alone moves it to another autogroup, whose wakeups then
// compete with every other session's — 2-4x slower per round trip on a loaded host. The sandbox
// was such a session until it gave up the terminal with TIOCNOTTY and setpgid instead
// (native/child.cc); this mode stays to show what that was worth.
if (fs.existsSync('/usr/bin/setsid')) modes['direct, own session (setsid)'] = ['/usr/bin/setsid', [process.execPath, server, 'stdio']];
const baseline = process.env.MCP_BASELINE ? path.resolve(process.env.MCP_BASELINE) : undefined;
// Cold start compares what users start; the references above only frame the round trip. Most
// servers need the network, and many a credential: those start behind the proxy (every node
// process in the sandbox runs the fetch preload) and with the per-run CA, and join the cold
// starts only (the round trip is the same stdio).
const grant = ['--ro', path.join(root, 'node_modules')];
const payload = ['--', process.execPath, server, 'stdio'];
// A launcher written in Node that does nothing but start the server with its stdio handed over:
// what any Node launcher costs before its first line of its own (Node's boot, ~25 ms to the
// script on this 2-core machine, and a spawn). stockade run over it is the part stockade's code
// can act on; it over direct is the floor of a launcher written in Node.
const bareLauncher = `const c = require('node:child_process').spawn(process.argv[1], process.argv.slice(2), { stdio: 'inherit' });
c.on('exit', (code) => process.exit(code ?? 1));`;
const LAUNCH = 'stockade-launch run (what wrap writes)';
const startOnly: Record<string, Mode> = {
  'bare Node launcher (stdio handed over)': [process.execPath, ['-e', bareLauncher, process.execPath, server, 'stdio']],
  // What `stockade wrap` writes: stockade-launch in front (native/launch.cc). Its first start
  // (the warm-up) leaves the launch record every later one is spawned from.
  [LAUNCH]: [launchPath(), [process.execPath, launcher, 'run', ...grant, ...payload]],
  'stockade run --allow-net': [process.execPath, [launcher, 'run', ...grant, '--allow-net', 'api.example.com', ...payload]],
  'stockade run --secret': [
    process.execPath,
    [launcher, 'run', ...grant, '--secret', 'BENCH_TOKEN@api.example.com', ...payload],
    { BENCH_TOKEN: 'cold-start-token' },
  ],
};
// MCP_BASELINE: the same starts with the other build's launcher.
const baselines: Record<string, Mode> = Object.fromEntries(
  baseline === undefined
    ? []
    : ['stockade run', ...Object.keys(startOnly).filter((name) => name.startsWith('stockade run'))].map((name) => {
        const [command, args, env] = modes[name] ?? startOnly[name];
        return [`baseline: ${name}`, [command, args.map((a) => (a === launcher ? baseline : a)), env]];
      }),
);
const startMode = (name: string): Mode => modes[name] ?? startOnly[name] ?? baselines[name];
const starting = [
  ...['direct', 'stockade run', 'stockade run --tools', 'direct, own session (setsid)', ...Object.keys(startOnly)].filter((name) =>
    startMode(name),
  ),
  ...Object.keys(baselines),
];

/** Deterministic shuffles (mulberry32): the same orders in every run. */
function shuffler(seed: number): <T>(xs: T[]) => T[] {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return (xs) => {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  };
}

/** Every process of the tree rooted at `pid` (the launcher, the sandbox's init, the server). */
function tree(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // Exited meanwhile.
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) for (const [p, pp] of parent) if (pp === out[i]) out.push(p);
  return out;
}

/** CPU time (ns) of every thread of the processes, from the scheduler's own account. */
function cpuNs(pids: number[]): number {
  let ns = 0;
  for (const pid of pids) {
    try {
      for (const t of fs.readdirSync(`/proc/${pid}/task`))
        ns += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // Exited meanwhile.
    }
  }
  return ns;
}

/** Times a process moved to another CPU (every thread), where the kernel has /proc/PID/sched. */
function migrations(pids: number[]): number {
  let n = 0;
  for (const pid of pids) {
    try {
      for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
        const m = /se\.nr_migrations\s*:\s*(\d+)/.exec(fs.readFileSync(`/proc/${pid}/task/${t}/sched`, 'utf8'));
        if (m) n += Number(m[1]);
      }
    } catch {
      // Exited meanwhile, or no CONFIG_SCHED_DEBUG.
    }
  }
  return n;
}

const perCall = (ns: number, calls: number) => (ns / calls / 1000).toFixed(1);
const isHop = (name: string) => name.startsWith('stockade') || name.startsWith('node relay');

async function main(): Promise<void> {
  const names = Object.keys(modes);
  const shuffle = shuffler(14);
  let n = 0;
  const samples: Record<string, number[][]> = Object.fromEntries(names.map((name) => [name, []]));
  // Each call minus the direct call of the same iteration (µs).
  const paired: Record<string, number[][]> = Object.fromEntries(names.map((name) => [name, []]));
  // CPU time (ns) of each mode's processes and of its launcher or relay alone, CPU migrations.
  const used: Record<string, [number, number, number]> = Object.fromEntries(names.map((name) => [name, [0, 0, 0]]));
  let clientUs = 0;
  let gcMs = 0;
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMs += e.duration;
  });
  const load0 = load();
  for (let r = 0; r < ROUNDS; r++) {
    // Fresh servers every round: two instances of the same server differ (JIT, heap layout, where
    // the kernel put their memory), and one instance per mode would carry its luck into every
    // round. Started in a shuffled order too.
    const clients: Record<string, Client> = {};
    const transports: Record<string, StdioClientTransport> = {};
    for (const name of shuffle(names)) {
      clients[name] = new Client({ name: 'stockade-bench', version: '0' });
      transports[name] = transport(modes[name]);
      await clients[name].connect(transports[name]);
    }
    const call = async (name: string): Promise<number> => {
      const t = performance.now();
      await clients[name].callTool({ name: 'echo', arguments: { message: `m${n++}` } });
      return (performance.now() - t) * 1000; // µs
    };
    for (let i = 0; i < WARMUP; i++) for (const name of shuffle(names)) await call(name);
    // After the warm-up the sandboxes' servers are running: each mode's processes, and the
    // launcher's or the relay's own (the process the client started).
    const trees = Object.fromEntries(names.map((name) => [name, tree(transports[name].pid ?? -1)]));
    const hops = Object.fromEntries(names.map((name) => [name, isHop(name) ? [transports[name].pid ?? -1] : []]));
    const before = Object.fromEntries(names.map((name) => [name, [cpuNs(trees[name]), cpuNs(hops[name]), migrations(trees[name])]]));
    const client0 = process.cpuUsage();
    gc.observe({ entryTypes: ['gc'] });
    for (const name of names) {
      samples[name].push([]);
      paired[name].push([]);
    }
    for (let i = 0; i < ITER; i++) {
      const t: Record<string, number> = {};
      for (const name of shuffle(names)) t[name] = await call(name);
      for (const name of names) {
        samples[name][r].push(t[name]);
        paired[name][r].push(t[name] - t.direct);
      }
    }
    gc.disconnect();
    const c = process.cpuUsage(client0);
    clientUs += c.user + c.system;
    for (const name of names) {
      used[name][0] += cpuNs(trees[name]) - before[name][0];
      used[name][1] += cpuNs(hops[name]) - before[name][1];
      used[name][2] += migrations(trees[name]) - before[name][2];
    }
    await Promise.all(Object.values(clients).map((client) => client.close()));
  }
  const calls = ROUNDS * ITER;

  const rt = section('mcp', `MCP echo round trip: ${ROUNDS} rounds x ${ITER} calls per mode, interleaved call by call (µs per call)`);
  rt.modes = Object.fromEntries(names.map((name) => [name, statsOf(samples[name], 'µs/call')]));
  const others = names.filter((name) => name !== 'direct');
  rt.ratios.push(...others.map((name) => ratio(rt.modes, name, 'direct')));
  rt.ratios.push(ratio(rt.modes, 'stockade run --tools', 'node relay (no filter)'));
  rt.ratios.push(ratio(rt.modes, 'stockade run --tools', 'stockade run --tools, Node streams'));
  if (rt.modes['direct, own session (setsid)']) rt.ratios.push(ratio(rt.modes, 'stockade run', 'direct, own session (setsid)'));
  for (const name of others) {
    const per = paired[name].map(median);
    rt.figures[`${name} − direct, paired per call (µs)`] =
      `median ${median(paired[name].flat()).toFixed(1)}, rounds ${Math.min(...per).toFixed(1)} to ${Math.max(...per).toFixed(1)}`;
  }
  for (const name of names) {
    const [all, hop, moved] = used[name];
    const own = isHop(name) ? `, of which the launcher or relay ${perCall(hop, calls)}` : '';
    rt.figures[`${name}: CPU per call (µs)`] = `${perCall(all, calls)}${own}; CPU migrations per call ${(moved / calls).toFixed(2)}`;
  }
  rt.figures['the client: CPU per call (µs)'] = (clientUs / (calls * names.length)).toFixed(1);
  rt.figures['the client: GC pause per call (µs)'] = ((gcMs * 1000) / (calls * names.length)).toFixed(1);
  const auto = '/proc/sys/kernel/sched_autogroup_enabled';
  rt.figures.sched_autogroup_enabled = fs.existsSync(auto) ? fs.readFileSync(auto, 'utf8').trim() : 'absent';
  rt.figures.load = `${load0} before, ${load()} after`;
  report(rt);

  // Each start also tells when the server's own process began (its `performance.timeOrigin`,
  // written to stderr by an `--import` of a data: URL, in every mode alike), which splits the
  // start in two: the client's spawn to the server's process, where the launcher is, and the
  // server's own start to `initialized`, which is most of the total and most of its noise.
  const began: Record<string, number[]> = Object.fromEntries(starting.map((name) => [name, []]));
  const took: Record<string, number[]> = Object.fromEntries(starting.map((name) => [name, []]));
  const starts: Record<string, Sampler> = Object.fromEntries(
    starting.map((name) => [
      name,
      async () => {
        const t = transport(stamped(startMode(name)), 'pipe');
        let serverStart = Number.NaN;
        let text = '';
        t.stderr?.on('data', (d: Buffer) => {
          text += d.toString('latin1');
          const m = /STOCKADE_BENCH_ORIGIN (\d+(?:\.\d+)?)/.exec(text);
          if (m) serverStart = Number(m[1]);
        });
        const client = new Client({ name: 'stockade-bench', version: '0' });
        const t0 = performance.timeOrigin + performance.now();
        await client.connect(t);
        const ms = performance.timeOrigin + performance.now() - t0;
        began[name].push(serverStart - t0);
        took[name].push(ms);
        await client.close();
        return ms;
      },
    ]),
  );
  // Starts alternate mode by mode within a round: the difference per round is the figure.
  const cold = section('mcp-start', `MCP cold start to initialized: ${ROUNDS} rounds x ${STARTS} per mode, modes alternating (ms)`);
  cold.modes = await interleave(starts, { rounds: ROUNDS, perRound: STARTS, warmup: WARM_STARTS, alternate: true });
  cold.ratios.push(ratio(cold.modes, 'stockade run', 'direct'));
  cold.ratios.push(ratio(cold.modes, LAUNCH, 'direct'));
  cold.figures['stockade run over direct (median of per-round differences)'] = difference(cold.modes, 'stockade run', 'direct');
  for (const name of Object.keys(startOnly)) cold.figures[`${name} over direct`] = difference(cold.modes, name, 'direct');
  cold.figures['stockade run over the bare Node launcher (the part of stockade itself)'] = difference(
    cold.modes,
    'stockade run',
    'bare Node launcher (stdio handed over)',
  );
  if (baseline !== undefined) cold.notes.push(`baseline: ${baseline}`);
  for (const name of Object.keys(baselines)) {
    const own = name.slice('baseline: '.length);
    cold.figures[`${own} − the baseline (median of per-round differences)`] = difference(cold.modes, own, name);
  }
  report(cold);

  // `began` holds the warm-up's starts first, then each round's (interleave's order).
  const part = (of: (i: number) => number) =>
    statsOf(
      Array.from({ length: ROUNDS }, (_, r) =>
        Array.from({ length: STARTS }, (_, k) => of(WARM_STARTS + r * STARTS + k)).filter(Number.isFinite),
      ),
      'ms',
    );
  const split = section('mcp-start-split', "MCP cold start, split at the server's own start (its performance.timeOrigin; ms)");
  const to = (name: string) => `${name}: to the server's start`;
  const inside = (name: string) => `${name}: the server's start to initialized`;
  for (const name of starting) split.modes[to(name)] = part((i) => began[name][i]);
  for (const name of starting) split.modes[inside(name)] = part((i) => took[name][i] - began[name][i]);
  for (const name of starting.filter((n) => n !== 'direct')) {
    split.figures[`${name}: to the server's start, over direct`] = difference(split.modes, to(name), to('direct'));
  }
  split.figures["stockade run over the bare Node launcher, to the server's start"] = difference(
    split.modes,
    to('stockade run'),
    to('bare Node launcher (stdio handed over)'),
  );
  split.figures["stockade run: the server's start to initialized, over direct"] = difference(
    split.modes,
    inside('stockade run'),
    inside('direct'),
  );
  report(split);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
