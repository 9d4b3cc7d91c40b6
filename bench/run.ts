// npm run bench: every benchmark, each printing ratios against a baseline measured in the same
// run. Pass names to run a subset: npm run bench -- spawn
import { benchSpawn } from './spawn';

const benches: Record<string, () => Promise<void>> = {
  spawn: () => benchSpawn(),
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  for (const [name, bench] of Object.entries(benches)) {
    if (wanted.length === 0 || wanted.includes(name)) await bench();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
