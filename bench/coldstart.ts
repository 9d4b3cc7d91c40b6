// Cold start of the launcher: `node bin/stockade.js run -- /bin/true` (the bundled CLI, lazy
// loading, the compile cache where Node has it) against `node -e 0` — what any node-based
// launcher costs — and against the unbundled CLI (dist/lib/cli/main.js, what the launcher ran
// before scripts/bundle.js), interleaved, each start to exit.
//
//   COLD_ROUNDS (default 5), COLD_PER_ROUND (default 10)
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { interleave, knob, ratio, report, type Sampler, section } from './harness';

const ROUNDS = knob('COLD_ROUNDS', 5);
const PER_ROUND = knob('COLD_PER_ROUND', 10);
const root = path.join(__dirname, '..', '..');
const launcher = path.join(root, 'bin', 'stockade.js');
const unbundled = path.join(root, 'dist', 'lib', 'cli', 'main.js');
const nativeCache = typeof (require('node:module') as { enableCompileCache?: unknown }).enableCompileCache === 'function';

function run(args: string[], env: Record<string, string> = {}): Sampler {
  return async () => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
    const [code] = await once(child, 'exit');
    if (code !== 0) throw new Error(`${args.join(' ')} exited with ${code}`);
    return undefined;
  };
}

async function main(): Promise<void> {
  if (!fs.existsSync(path.join(root, 'dist', 'lib', 'cli.js'))) throw new Error('dist/lib/cli.js missing: npm run build:ts');
  const modes: Record<string, Sampler> = {
    'node -e 0': run(['-e', '0']),
    'stockade run -- /bin/true': run([launcher, 'run', '--', '/bin/true']),
    // bin/stockade.js's hand-made code cache (Node < 22.1) turned off: what it saves.
    ...(nativeCache
      ? {}
      : { 'stockade run, no code cache': run([launcher, 'run', '--', '/bin/true'], { STOCKADE_NO_COMPILE_CACHE: '1' }) }),
    'unbundled CLI run -- /bin/true': run([
      '-e',
      `require(${JSON.stringify(unbundled)}).main(['run','--','/bin/true']).then((c) => process.exit(c))`,
    ]),
  };
  const s = section('coldstart', `cold start to exit: ${ROUNDS} rounds x ${PER_ROUND} per mode, interleaved (ms)`);
  s.modes = await interleave(modes, { rounds: ROUNDS, perRound: PER_ROUND, warmup: 3 });
  s.ratios.push(ratio(s.modes, 'stockade run -- /bin/true', 'node -e 0'));
  s.ratios.push(ratio(s.modes, 'stockade run -- /bin/true', 'unbundled CLI run -- /bin/true'));
  if (!nativeCache) s.ratios.push(ratio(s.modes, 'stockade run -- /bin/true', 'stockade run, no code cache'));
  const added = s.modes['stockade run -- /bin/true'].roundMedians.map((x, i) => x - s.modes['node -e 0'].roundMedians[i]);
  s.figures['launcher + sandbox over `node -e 0`, per-round medians (ms)'] = added.map((x) => x.toFixed(1)).join(', ');
  s.notes.push(
    nativeCache
      ? "V8 compile cache on (Node's module.enableCompileCache, dist/.compile-cache beside the bundle)"
      : `node ${process.version} has no module.enableCompileCache (Node >= 22.1): bin/stockade.js keeps V8's code cache itself (vm.Script cachedData, dist/.compile-cache beside the bundle)`,
  );
  report(s);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
