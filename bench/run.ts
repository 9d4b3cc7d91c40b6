// npm run bench: every benchmark, each printing ratios against a baseline measured in the same
// run. Pass names to run a subset: npm run bench -- spawn egress
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { benchSpawn } from './spawn';

/** Benchmarks that run their own processes (client, proxy, server) are started as scripts. */
const script =
  (name: string, ...args: string[]) =>
  async () => {
    const r = spawnSync(process.execPath, [path.join(__dirname, `${name}.js`), ...args], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`bench ${name} failed with ${r.status ?? r.signal}`);
  };

const benches: Record<string, () => Promise<void>> = {
  spawn: () => benchSpawn(),
  egress: script('egress'),
  secrets: script('secrets'),
  mcp: script('mcp'),
  seccomp: script('seccomp'),
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  for (const [name, bench] of Object.entries(benches)) {
    if (wanted.length === 0 || wanted.includes(name)) {
      console.log(`\n=== ${name}`);
      await bench();
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
