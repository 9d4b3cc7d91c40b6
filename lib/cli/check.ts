// `stockade check FILE`: validate a policy and print the effective policy (profile applied) as
// JSON, so a user sees exactly what a server will get before running it.
// Exit status: 0 valid, 1 invalid (errors on stderr), 2 usage error.
import { effectivePolicy, lintPolicy, loadPolicy, PolicyError } from '../policy';
import { parseCommandArgs } from './args';

export interface CliIO {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

const USAGE = `usage: stockade check FILE

Validates a policy file (JSON or YAML) and prints the effective policy: the file with its
profile's mounts, environment and network merged in, as \`stockade run --policy FILE\` uses it.
Warnings (valid, but rarely meant: \`*.com\`) go to stderr and do not change the status.
Exit status: 0 valid, 1 invalid, 2 usage error.
`;

/** `argv` is what follows `check` on the command line. Resolves to the exit status; a usage error is thrown (lib/cli/args.ts). */
export async function main(argv: string[], io: CliIO = process): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { command: 'check', positional: 'FILE', options: {} });
  if (values.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  const [file] = positionals;
  try {
    const { policy } = effectivePolicy(loadPolicy(file === '-' ? '/dev/stdin' : file, { backstop: true }));
    // Lint is a warning: the policy is valid, and `run` accepts it too (lib/policy/lint.ts).
    for (const w of lintPolicy(policy)) io.stderr.write(`stockade check: warning: ${w.message}\n`);
    io.stdout.write(`${JSON.stringify(policy, null, 2)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof PolicyError) {
      io.stderr.write(`stockade check: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
