// The one argv parser of every subcommand: util.parseArgs, strict, with --help/-h added, the
// number of positionals checked, and every mistake turned into one UsageError line naming the
// subcommand's help (main.ts prints it as `stockade CMD: ...` and exits 2). One parser, so that
// `stockade doctor --jsno` is refused as `stockade run --jsno` is, in the same words.
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { UsageError } from './errors';

type Options = NonNullable<ParseArgsConfig['options']>;

export interface ArgSpec<O extends Options> {
  /** The subcommand, for the error's pointer to its help. */
  command: string;
  options: O;
  /** What the positionals are called in errors ('FILE', 'CONFIG'); none allowed when absent. */
  positional?: string;
  /** How many positionals: exactly `min` unless `max` says otherwise. Default 1 when `positional` is set. */
  min?: number;
  max?: number;
  /**
   * Everything after the first `--` is not parsed but returned as `rest` (stockade run's
   * command); without this, `--` ends the options as parseArgs has it.
   */
  rest?: boolean;
}

type Values<O extends Options> = {
  [K in keyof O]?: O[K] extends { type: 'boolean' }
    ? O[K] extends { multiple: true }
      ? boolean[]
      : boolean
    : O[K] extends { multiple: true }
      ? string[]
      : string;
};

export interface ParsedArgs<O extends Options> {
  values: Values<O> & { help?: boolean };
  positionals: string[];
  /** After `--`, with `rest: true` (empty without one). */
  rest: string[];
}

/** parseArgs's messages, in the CLI's words: short, one line, the option as the user typed it. */
function usageMessage(err: Error & { code?: string }): string {
  const m = err.message;
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${/'([^']+)'/.exec(m)?.[1] ?? m}`;
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const name = /'(-[^' ]+)/.exec(m)?.[1];
    if (/argument missing/.test(m)) return `${name ?? 'an option'} needs a value`;
    if (/does not take an argument/.test(m)) return `${name ?? 'an option'} takes no value`;
  }
  if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `unexpected argument ${/'([^']*)'/.exec(m)?.[1] ?? m}`;
  return m.replace(/\s*\n\s*/g, ' ');
}

/**
 * Parses `argv` (what follows the subcommand) by `spec`. `--help` is never an error: it is
 * returned as values.help before the positionals are counted, so `stockade check --help` works
 * without a FILE.
 */
export function parseCommandArgs<O extends Options>(argv: string[], spec: ArgSpec<O>): ParsedArgs<O> {
  const dd = spec.rest ? argv.indexOf('--') : -1;
  const own = dd < 0 ? argv : argv.slice(0, dd);
  const rest = dd < 0 ? [] : argv.slice(dd + 1);
  const help = ` (see stockade ${spec.command} --help)`;
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: own,
      options: { ...spec.options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    // --help wins over a mistake next to it (`stockade run --bogus --help`).
    if (own.includes('--help') || own.includes('-h')) return { values: { help: true } as ParsedArgs<O>['values'], positionals: [], rest };
    throw new UsageError(`${usageMessage(err as Error)}${help}`);
  }
  const values = parsed.values as ParsedArgs<O>['values'];
  if (values.help) return { values, positionals: parsed.positionals, rest };
  const min = spec.min ?? (spec.positional === undefined ? 0 : 1);
  const max = spec.max ?? min;
  const n = parsed.positionals.length;
  if (n < min || n > max) {
    if (spec.positional === undefined || max === 0) throw new UsageError(`unexpected argument ${parsed.positionals[0]}${help}`);
    const want = min === max ? `exactly ${min === 1 ? 'one' : min} ${spec.positional}` : `${min} to ${max} ${spec.positional}`;
    throw new UsageError(`expected ${want}${n > max ? `, found ${n}` : ''}${help}`);
  }
  return { values, positionals: parsed.positionals, rest };
}
