// npm run bench: every benchmark, each in a process of its own (so none inherits another's heap,
// JIT state or open sockets), each comparing its modes interleaved over several rounds
// (bench/harness.ts). Pass names to run a subset, `--json [FILE]` to also write every figure as
// JSON (default bench-results.json):
//
//   npm run bench -- spawn mcp --json
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { load, machine, type Section } from './harness';

const benches = ['spawn', 'coldstart', 'mcp', 'seccomp', 'egress', 'secrets', 'scale'];

function main(): number {
  const argv = process.argv.slice(2);
  let json: string | undefined;
  const wanted: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--json') {
      json = argv[i + 1] !== undefined && !argv[i + 1].startsWith('-') && !benches.includes(argv[i + 1]) ? argv[++i] : 'bench-results.json';
    } else if (benches.includes(argv[i])) {
      wanted.push(argv[i]);
    } else {
      process.stderr.write(`bench: unknown benchmark '${argv[i]}' (one of ${benches.join(', ')}, or --json [FILE])\n`);
      return 2;
    }
  }
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'stockade-bench-'));
  const collected = path.join(scratch, 'sections.jsonl');
  const info = machine();
  console.log(`node ${info.node}, Linux ${info.kernel}, ${info.cpus} x ${info.cpu}, uid ${info.uid}; load ${load()}`);
  let failed = 0;
  for (const name of benches) {
    if (wanted.length > 0 && !wanted.includes(name)) continue;
    console.log(`\n=== ${name} (load ${load()})`);
    const r = spawnSync(process.execPath, [path.join(__dirname, `${name}.js`)], {
      stdio: 'inherit',
      env: { ...process.env, STOCKADE_BENCH_JSON: collected },
    });
    if (r.status !== 0) {
      console.log(`bench ${name} failed: ${r.status ?? r.signal}`);
      failed++;
    }
  }
  console.log(`\nload at the end ${load()}`);
  if (json !== undefined) {
    const sections: Section[] = fs.existsSync(collected)
      ? fs
          .readFileSync(collected, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l))
      : [];
    fs.writeFileSync(json, `${JSON.stringify({ date: new Date().toISOString(), machine: info, load: os.loadavg(), sections }, null, 2)}\n`);
    console.log(`figures written to ${json}`);
  }
  fs.rmSync(scratch, { recursive: true, force: true });
  return failed > 0 ? 1 : 0;
}

process.exitCode = main();
