// Cold start of the launcher: `node bin/stockade.js run -- /bin/true` (the bundled CLI, lazy
// loading, the compile cache where Node has it) against `node -e 0` — what any node-based
// launcher costs — and against the unbundled CLI (dist/lib/cli/main.js, what the launcher ran
// before scripts/bundle.js), each start to exit. `--ro node_modules` adds what granting a large
// tree costs (the socket/FIFO check walks it, lib/hostpath.ts). The modes alternate sample by
// sample within each round, so that the per-round difference to `node -e 0` is taken over the
// same seconds of the machine; it is the figure to read.
//
// Wall time on a loaded 2-core machine is mostly waiting for a CPU (a start is five processes
// and threads handing over to each other), so each start's CPU time is counted too: that of all
// its processes, reaped (the bench's cutime + cstime, /proc/self/stat, in USER_HZ ticks summed
// over a round), the figure that load moves least.
//
// Every start gets the environment an MCP client gives a stdio server (the SDK's default:
// HOME, LOGNAME, PATH, SHELL, TERM, USER), not this shell's: a NODE_EXTRA_CA_CERTS naming the
// system bundle, for one, costs every node start ~35 ms on this machine, to both sides alike.
//
// A node payload behind the proxy, with and without a credential (`--secret`), shows what a
// credential adds to a start: the per-run CA and the trust the sandbox's node gets (lib/net/env.ts,
// ProxyEnvOptions.trustStore).
//
// A second section times the payload's exec, not the exit: the payload is `date +%s%N`, whose
// clock (CLOCK_REALTIME: the sandbox has no time namespace) says when it started, so the time
// from the spawn to it is what the launcher adds before an MCP server even begins (the server
// itself starts as fast inside as outside: README, row `coldstart (session 12)`), without the
// teardown after the exit and with little of a payload's own noise. Direct, the same `date`.
//
// COLD_BASELINE names another build's bin/stockade.js (a checkout of the code before a change,
// built): its plain and granted starts join the same rounds, and the figures compare this
// launcher with it start by start, on the same seconds of the machine.
//
//   COLD_ROUNDS (default 8), COLD_PER_ROUND (default 15), COLD_BASELINE (unset)
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { difference, interleave, knob, median, ratio, report, type Sampler, section } from './harness';

const ROUNDS = knob('COLD_ROUNDS', 8);
const PER_ROUND = knob('COLD_PER_ROUND', 15);
const root = path.join(__dirname, '..', '..');
const launcher = path.join(root, 'bin', 'stockade.js');
const baseline = process.env.COLD_BASELINE ? path.resolve(process.env.COLD_BASELINE) : undefined;
const unbundled = path.join(root, 'dist', 'lib', 'cli', 'main.js');
const nativeCache = typeof (require('node:module') as { enableCompileCache?: unknown }).enableCompileCache === 'function';
const clientEnv = Object.fromEntries(
  ['HOME', 'LOGNAME', 'PATH', 'SHELL', 'TERM', 'USER'].flatMap((k) =>
    process.env[k] === undefined ? [] : [[k, process.env[k] as string]],
  ),
);

/** CPU ms of every reaped descendant so far; USER_HZ is 100 on every Linux ABI. */
function childrenCpuMs(): number {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) * 10; // cutime, cstime
}

/** Per mode, the CPU ms of each start in order (warm-up first), filled by run(). */
const cpu: Record<string, number[]> = {};

function run(name: string, args: string[], env: Record<string, string> = {}): [string, Sampler] {
  cpu[name] = [];
  return [
    name,
    async () => {
      const before = childrenCpuMs();
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...clientEnv, ...env } });
      const [code] = await once(child, 'exit');
      if (code !== 0) throw new Error(`${args.join(' ')} exited with ${code}`);
      cpu[name].push(childrenCpuMs() - before);
      return undefined;
    },
  ];
}

/** The wall clock in ms, as finely as `date +%s%N` prints it. */
function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Ms from the spawn to the payload's exec: the payload is `date +%s%N` (its own start, in ns). */
function toExec(prefix: string[], env: Record<string, string> = {}): Sampler {
  return async () => {
    const [command, ...args] = [...prefix, 'date', '+%s%N'];
    const t = wallMs();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...clientEnv, ...env } });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    const [code] = await once(child, 'exit');
    if (code !== 0 || !/^\d+\n$/.test(out)) throw new Error(`${[command, ...args].join(' ')} exited with ${code}: ${JSON.stringify(out)}`);
    return Number(BigInt(out.trim()) / 1000n) / 1000 - t;
  };
}

/** `of` - `to` in CPU ms per start, per round: the median and range over rounds, as text. */
function cpuDifference(of: string, to: string, warmup: number): string {
  const perRound = (name: string) =>
    Array.from(
      { length: ROUNDS },
      (_, r) => cpu[name].slice(warmup + r * PER_ROUND, warmup + (r + 1) * PER_ROUND).reduce((a, b) => a + b, 0) / PER_ROUND,
    );
  const a = perRound(of);
  const b = perRound(to);
  const d = a.map((x, i) => x - b[i]);
  const signed = (x: number) => `${x > 0 ? '+' : ''}${x.toFixed(1)}`;
  return `${median(a).toFixed(1)} vs ${median(b).toFixed(1)} ms: ${signed(median(d))} ms, rounds ${signed(Math.min(...d))} to ${signed(Math.max(...d))}`;
}

async function main(): Promise<void> {
  if (!fs.existsSync(path.join(root, 'dist', 'lib', 'cli.js'))) throw new Error('dist/lib/cli.js missing: npm run build:ts');
  const plain = 'stockade run -- /bin/true';
  const granted = 'stockade run --ro node_modules -- /bin/true';
  const proxied = 'stockade run --allow-net api.example.com -- node -e 0';
  const credential = 'stockade run --secret T@api.example.com -- node -e 0';
  const nodePayload = ['--', process.execPath, '-e', '0'];
  const secretEnv = { T: 'cold-start-token' };
  const modes: Record<string, Sampler> = Object.fromEntries([
    run('node -e 0', ['-e', '0']),
    run(plain, [launcher, 'run', '--', '/bin/true']),
    run(granted, [launcher, 'run', '--ro', path.join(root, 'node_modules'), '--', '/bin/true']),
    run(proxied, [launcher, 'run', '--allow-net', 'api.example.com', ...nodePayload]),
    run(credential, [launcher, 'run', '--secret', 'T@api.example.com', ...nodePayload], secretEnv),
    // bin/stockade.js's hand-made code cache (Node < 22.1) turned off: what it saves.
    ...(nativeCache ? [] : [run('stockade run, no code cache', [launcher, 'run', '--', '/bin/true'], { STOCKADE_NO_COMPILE_CACHE: '1' })]),
    ...(baseline
      ? [
          run(`baseline: ${plain}`, [baseline, 'run', '--', '/bin/true']),
          run(`baseline: ${granted}`, [baseline, 'run', '--ro', path.join(root, 'node_modules'), '--', '/bin/true']),
          run(`baseline: ${proxied}`, [baseline, 'run', '--allow-net', 'api.example.com', ...nodePayload]),
          run(`baseline: ${credential}`, [baseline, 'run', '--secret', 'T@api.example.com', ...nodePayload], secretEnv),
        ]
      : []),
    run('unbundled CLI run -- /bin/true', [
      '-e',
      `require(${JSON.stringify(unbundled)}).main(['run','--','/bin/true']).then((c) => process.exit(c))`,
    ]),
  ]);
  const s = section('coldstart', `cold start to exit: ${ROUNDS} rounds x ${PER_ROUND} per mode, modes alternating (ms)`);
  const warmup = 3;
  s.modes = await interleave(modes, { rounds: ROUNDS, perRound: PER_ROUND, warmup, alternate: true });
  s.ratios.push(ratio(s.modes, plain, 'node -e 0'));
  s.ratios.push(ratio(s.modes, plain, 'unbundled CLI run -- /bin/true'));
  if (!nativeCache) s.ratios.push(ratio(s.modes, plain, 'stockade run, no code cache'));
  s.figures['launcher + sandbox over `node -e 0` (median of per-round differences)'] = difference(s.modes, plain, 'node -e 0');
  s.figures['granting node_modules adds'] = difference(s.modes, granted, plain);
  s.figures['a credential adds to a node payload behind the proxy'] = difference(s.modes, credential, proxied);
  s.figures['CPU per start, all processes: stockade run -- /bin/true vs node -e 0'] = cpuDifference(plain, 'node -e 0', warmup);
  s.figures['CPU per start: --ro node_modules vs plain run'] = cpuDifference(granted, plain, warmup);
  if (baseline) {
    s.notes.push(`baseline: ${baseline}`);
    for (const name of [plain, granted, proxied, credential]) {
      s.ratios.push(ratio(s.modes, name, `baseline: ${name}`));
      s.figures[`${name}: this launcher − the baseline`] = difference(s.modes, name, `baseline: ${name}`);
      s.figures[`CPU per start: ${name}, this launcher vs the baseline`] = cpuDifference(name, `baseline: ${name}`, warmup);
    }
  }
  s.notes.push(
    nativeCache
      ? "V8 compile cache on (Node's module.enableCompileCache, dist/.compile-cache beside the bundle)"
      : `node ${process.version} has no module.enableCompileCache (Node >= 22.1): bin/stockade.js keeps V8's code cache itself (vm.Script cachedData, dist/.compile-cache beside the bundle)`,
  );
  report(s);

  const direct = 'direct: date';
  const execPlain = 'stockade run -- date';
  const execGranted = 'stockade run --ro node_modules -- date';
  const grant = ['--ro', path.join(root, 'node_modules')];
  // What any launcher that is a Node process costs before its payload: Node's start and a spawn.
  const bareNode = 'node spawning it (a bare Node launcher)';
  const spawnIt = "const [c, ...a] = process.argv.slice(1); require('node:child_process').spawn(c, a, { stdio: 'inherit' })";
  const execModes: Record<string, Sampler> = {
    [direct]: toExec([]),
    [bareNode]: toExec([process.execPath, '-e', spawnIt]),
    [execPlain]: toExec([process.execPath, launcher, 'run', '--']),
    [execGranted]: toExec([process.execPath, launcher, 'run', ...grant, '--']),
    ...(baseline
      ? {
          [`baseline: ${execPlain}`]: toExec([process.execPath, baseline, 'run', '--']),
          [`baseline: ${execGranted}`]: toExec([process.execPath, baseline, 'run', ...grant, '--']),
        }
      : {}),
  };
  const e = section(
    'coldstart-exec',
    `the payload's exec after the spawn: ${ROUNDS} rounds x ${PER_ROUND} per mode, modes alternating (ms)`,
  );
  e.modes = await interleave(execModes, { rounds: ROUNDS, perRound: PER_ROUND, warmup, alternate: true });
  e.figures['what the launcher adds before the payload starts (median of per-round differences)'] = difference(e.modes, execPlain, direct);
  e.figures['with --ro node_modules'] = difference(e.modes, execGranted, direct);
  e.figures['a bare Node launcher adds'] = difference(e.modes, bareNode, direct);
  e.figures["stockade's own part: stockade run over the bare Node launcher"] = difference(e.modes, execPlain, bareNode);
  if (baseline) {
    e.notes.push(`baseline: ${baseline}`);
    for (const name of [execPlain, execGranted])
      e.figures[`${name}: this launcher − the baseline`] = difference(e.modes, name, `baseline: ${name}`);
  }
  report(e);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
