// What each seccomp profile costs per syscall (bench/seccomp.ts measures the filter against none
// and the speculation mitigations): the same syscall-heavy loop (bench/fixtures/
// syscall-loop.c) in a sandbox without a filter, with the default profile and with the strict
// profile, interleaved over several rounds, printed as ns per call and the spread. The numbers
// decide whether the profiles need a balanced decision tree (native/seccomp.cc, "Order and cost").
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { native } from '../lib/native';
import { resolveSandbox } from '../lib/plan';

const CALLS = 1_000_000;
const ROUNDS = 5;

function compile(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stockade-bench-seccomp-'));
  fs.chmodSync(dir, 0o755);
  const binary = path.join(dir, 'syscall-loop');
  execFileSync('cc', ['-O2', '-static', '-o', binary, path.join(__dirname, '..', '..', 'bench', 'fixtures', 'syscall-loop.c')]);
  return binary;
}

/** One run in a sandbox; `profile` undefined means no filter at all (the addon's own switch). */
function once(binary: string, profile: 'default' | 'strict' | undefined): Promise<number[]> {
  const resolved = resolveSandbox(binary, [String(CALLS)], {
    filesystem: { readOnly: [path.dirname(binary)] },
    seccomp: profile ?? 'default',
  });
  const [r, w] = native().pipe();
  const plan = { ...resolved.plan, seccomp: profile !== undefined, fds: [-1, w, 2] };
  return new Promise((resolve, reject) => {
    native().spawn(
      plan,
      () => {
        const out = fs.readFileSync(r, 'utf8');
        fs.closeSync(r);
        resolve(out.trim().split(' ').map(Number));
      },
      (result) => {
        if ('error' in result) reject(new Error(`spawn failed: ${JSON.stringify(result.error)}`));
      },
    );
    fs.closeSync(w);
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const binary = compile();
  const modes = [undefined, 'default', 'strict'] as const;
  const results = new Map<string, number[][]>(modes.map((m) => [m ?? 'none', []]));
  for (let round = 0; round < ROUNDS; ++round) {
    for (const mode of modes) results.get(mode ?? 'none')?.push(await once(binary, mode));
  }
  const kinds = ['getppid (cached verdict)', 'ioctl FIONREAD (argument check)', 'socketpair AF_UNIX (argument check)'];
  console.log(`ns per call, median of ${ROUNDS} interleaved rounds (min–max), ${CALLS} calls each`);
  kinds.forEach((kind, k) => {
    const cells = [...results].map(([mode, runs]) => {
      const xs = runs.map((r) => r[k]);
      return `${mode} ${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`;
    });
    console.log(`  ${kind}: ${cells.join(', ')}`);
  });
  fs.rmSync(path.dirname(binary), { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
