// The measuring discipline every benchmark here follows, in one place, so that no comparison can
// be decided by order, warm-up or a noisy minute:
// - modes are interleaved: each round runs every mode once, in an order rotated per round
//   (ABC, BCA, CAB, ...), so drift in the machine's load hits each mode alike;
// - each mode is warmed up (JIT, page cache, the kernel's slab caches) before anything counts;
// - every figure is reported as median and p95 of all samples plus the spread across rounds
//   (the lowest and highest per-round median), and every ratio as the median of the per-round
//   ratios with their range — a difference smaller than that range is noise, and is said so;
// - the machine's load average is printed before and after, since other work on a 2-core machine
//   moves every number.
// Benchmarks report figures; they never assert on time (speed goals are compared, not tested).
import * as fs from 'node:fs';
import * as os from 'node:os';

/** One timed run of a mode: returns the sample in the mode's unit (default: ms, timed here). */
export type Sampler = () => Promise<number | undefined>;

export interface ModeStats {
  unit: string;
  n: number;
  median: number;
  p95: number;
  /** Lowest and highest per-round median. */
  spread: [number, number];
  roundMedians: number[];
}

export interface Ratio {
  of: string;
  to: string;
  /** Median of the per-round ratios of medians, and their range. */
  median: number;
  range: [number, number];
}

export interface Section {
  name: string;
  title: string;
  modes: Record<string, ModeStats>;
  ratios: Ratio[];
  /** Single figures that are not a comparison (memory per sandbox, fds, ...). */
  figures: Record<string, number | string>;
  notes: string[];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export function statsOf(rounds: number[][], unit: string): ModeStats {
  const all = rounds.flat();
  const roundMedians = rounds.map(median);
  return {
    unit,
    n: all.length,
    median: median(all),
    p95: percentile(all, 95),
    spread: [Math.min(...roundMedians), Math.max(...roundMedians)],
    roundMedians,
  };
}

export interface InterleaveOptions {
  rounds: number;
  /** Samples per mode per round. */
  perRound: number;
  /** Samples per mode before the first round, not counted. */
  warmup: number;
  unit?: string;
  /**
   * Within a round, one sample per mode in turn (ABCABC...) instead of each mode's samples in a
   * row: for short samples (process starts) whose difference is the figure, so that every sample
   * of one mode has neighbours of the others from the same seconds of the machine.
   */
  alternate?: boolean;
}

/**
 * Runs every mode `rounds` times, interleaved with the order rotated each round; a sampler that
 * returns undefined is timed here (ms).
 */
export async function interleave(modes: Record<string, Sampler>, opts: InterleaveOptions): Promise<Record<string, ModeStats>> {
  const names = Object.keys(modes);
  const once = async (name: string): Promise<number> => {
    const t = performance.now();
    const v = await modes[name]();
    return v ?? performance.now() - t;
  };
  for (let i = 0; i < opts.warmup; i++) for (const name of names) await once(name);
  const samples: Record<string, number[][]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < opts.rounds; r++) {
    const order = names.map((_, i) => names[(i + r) % names.length]);
    const round: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
    if (opts.alternate) {
      for (let i = 0; i < opts.perRound; i++) for (const name of order) round[name].push(await once(name));
    } else {
      for (const name of order) for (let i = 0; i < opts.perRound; i++) round[name].push(await once(name));
    }
    for (const name of names) samples[name].push(round[name]);
  }
  return Object.fromEntries(names.map((n) => [n, statsOf(samples[n], opts.unit ?? 'ms')]));
}

/** `of`/`to` per round (medians), summarized; for throughput modes the caller swaps the pair. */
export function ratio(modes: Record<string, ModeStats>, of: string, to: string): Ratio {
  const a = modes[of].roundMedians;
  const b = modes[to].roundMedians;
  const per = a.map((x, i) => x / b[i]);
  return { of, to, median: median(per), range: [Math.min(...per), Math.max(...per)] };
}

/** `of` - `to` per round (medians): the median difference and its range over rounds, as text. */
export function difference(modes: Record<string, ModeStats>, of: string, to: string): string {
  const per = modes[of].roundMedians.map((x, i) => x - modes[to].roundMedians[i]);
  return `${fmt(median(per))} ${modes[of].unit}, rounds ${fmt(Math.min(...per))} to ${fmt(Math.max(...per))}`;
}

export function machine(): Record<string, string | number> {
  return {
    node: process.version,
    kernel: os.release(),
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    uid: process.getuid?.() ?? -1,
  };
}

export function load(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

const fmt = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(3));

/** Prints a section as a table and, under `npm run bench -- --json`, hands it to run.ts. */
export function report(section: Section): void {
  console.log(`\n${section.title}`);
  const names = Object.keys(section.modes);
  if (names.length > 0) {
    const w = Math.max(8, ...names.map((n) => n.length)) + 2;
    console.log(`  ${'mode'.padEnd(w)}${'median'.padStart(10)}${'p95'.padStart(10)}   spread over rounds`);
    for (const n of names) {
      const m = section.modes[n];
      console.log(
        `  ${n.padEnd(w)}${fmt(m.median).padStart(10)}${fmt(m.p95).padStart(10)}   ${fmt(m.spread[0])}–${fmt(m.spread[1])} ${m.unit} (n=${m.n}, ${m.roundMedians.length} rounds)`,
      );
    }
  }
  for (const r of section.ratios) {
    const inside = r.range[0] <= 1 && r.range[1] >= 1 ? '  (1.00 within the range: no difference shown)' : '';
    console.log(`  ${r.of} / ${r.to}: ${r.median.toFixed(2)}x, rounds ${r.range[0].toFixed(2)}–${r.range[1].toFixed(2)}${inside}`);
  }
  for (const [k, v] of Object.entries(section.figures)) console.log(`  ${k}: ${typeof v === 'number' ? fmt(v) : v}`);
  for (const note of section.notes) console.log(`  note: ${note}`);
  const out = process.env.STOCKADE_BENCH_JSON;
  if (out) fs.appendFileSync(out, `${JSON.stringify(section)}\n`);
}

export function section(name: string, title: string): Section {
  return { name, title, modes: {}, ratios: [], figures: {}, notes: [] };
}

/** Command-line knobs as NAME=value environment variables, with defaults (bounded by the caller). */
export function knob(name: string, def: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, found ${v}`);
  return n;
}
