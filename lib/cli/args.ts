// A small table-driven parser for `stockade run`: options up to `--` (or the first word that is
// not an option), the command and its arguments after. The command's own flags are never
// parsed (`npx -y server` stays intact).

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface FlagSpec<T> {
  /** '--name'; also accepted as '--name=value'. */
  name: string;
  /** Placeholder for help output; absent for boolean flags. */
  value?: string;
  help: string;
  apply(target: T, value: string): void;
}

export interface Parsed {
  command: string | undefined;
  args: string[];
}

export function parseFlags<T>(argv: string[], specs: FlagSpec<T>[], target: T): Parsed {
  const byName = new Map(specs.map((s) => [s.name, s]));
  let i = 0;
  while (i < argv.length) {
    const token = argv[i];
    if (token === '--') {
      i++;
      break;
    }
    if (!token.startsWith('-') || token === '-') break;
    const eq = token.indexOf('=');
    const name = eq === -1 ? token : token.slice(0, eq);
    const spec = byName.get(name);
    if (spec === undefined) throw new UsageError(`unknown option '${name}' (see --help)`);
    let value = '';
    if (spec.value !== undefined) {
      if (eq !== -1) value = token.slice(eq + 1);
      else if (i + 1 < argv.length) value = argv[++i];
      else throw new UsageError(`option '${name}' needs a value ${spec.value}`);
    } else if (eq !== -1) {
      throw new UsageError(`option '${name}' takes no value`);
    }
    spec.apply(target, value);
    i++;
  }
  return { command: argv[i], args: argv.slice(i + 1) };
}

export function formatFlags<T>(specs: FlagSpec<T>[]): string {
  const left = specs.map((s) => (s.value ? `${s.name} ${s.value}` : s.name));
  const width = Math.max(...left.map((l) => l.length)) + 2;
  return specs.map((s, i) => `  ${left[i].padEnd(width)}${s.help}`).join('\n');
}

export function positiveInt(flag: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n <= 0)
    throw new UsageError(`${flag} expects a positive integer, got '${value}'`);
  return n;
}

export function byteSize(flag: string, value: string): number {
  const m = /^(\d+)([kmgKMG]?)$/.exec(value);
  if (!m) throw new UsageError(`${flag} expects a size like 512m or 2g, got '${value}'`);
  return Number(m[1]) * { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
}
