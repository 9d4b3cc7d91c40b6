// How the CLI reports an error: one line on stderr, naming what failed and how to fix it, never
// a stack trace (STOCKADE_DEBUG=1 adds the stack for a bug report). Exit status: 2 for what the
// user gave (flags, files, policies, a secret's source), 1 for an operation that failed on a
// valid request (wrap, check), 70 for a bug in stockade (EX_SOFTWARE).

/** A usage error: a bad flag, a missing argument. Printed as is; exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Fixes for the system errors a user's own paths produce, by code. */
const SYSTEM_FIXES: Record<string, string> = {
  ENOENT: 'check the path',
  ENOTDIR: 'a component of the path is not a directory',
  EISDIR: 'give a file, not a directory',
  EACCES: 'the file or its directory is not accessible to this user',
  EPERM: 'the file or its directory is not accessible to this user',
  EROFS: 'the file system is read-only',
  ELOOP: 'the path has a symlink loop',
  ENAMETOOLONG: 'the path is too long',
};

const SECRET_FIXES: Record<string, string> = {
  ESECRETENV:
    'set it in the launcher\'s environment (in an MCP client config: the server\'s "env"), or name another source (NAME=env:VAR@HOST, NAME=file:PATH@HOST)',
  ESECRETFILE: 'check the path of the secret file and that this user can read it',
  ESECRETVALUE: "check the secret's value",
  ESECRETSPEC: 'see `stockade run --help` for the --secret forms',
};

export interface CliErrorReport {
  line: string;
  exitCode: number;
}

/**
 * The one line (without the trailing newline) and the exit status for an error thrown by
 * subcommand `command`. `operationCode` is the status for failures of a valid request.
 */
export function describeCliError(command: string, err: unknown, operationCode = 1): CliErrorReport {
  const prefix = command ? `stockade ${command}: ` : 'stockade: ';
  const e = err as (Error & { code?: string; syscall?: string; path?: string }) | undefined;
  // A policy's problems are a list, one per line; any other message is folded into one line.
  const raw = e?.message ?? String(err);
  const message = e?.code === 'ERR_STOCKADE_POLICY' ? raw : raw.replace(/\s*\n\s*/g, ' ');
  if (err instanceof UsageError || e?.code === 'ERR_SANDBOX_OPTIONS') {
    return { line: `${prefix}${message}`, exitCode: 2 };
  }
  if (e?.code === 'ERR_STOCKADE_POLICY') return { line: `${prefix}${message}`, exitCode: 2 };
  if (e?.code !== undefined && SECRET_FIXES[e.code]) return { line: `${prefix}${message}: ${SECRET_FIXES[e.code]}`, exitCode: 2 };
  if (e?.code !== undefined && SYSTEM_FIXES[e.code] && (e.path !== undefined || e.syscall !== undefined)) {
    const what = e.path !== undefined ? `cannot ${e.syscall ?? 'use'} '${e.path}'` : `${e.syscall} failed`;
    return { line: `${prefix}${e.code}: ${what}: ${SYSTEM_FIXES[e.code]}`, exitCode: operationCode };
  }
  const stack = process.env.STOCKADE_DEBUG === '1' && e?.stack ? `\n${e.stack}` : '';
  return {
    line: `${prefix}internal error: ${message} (a bug in stockade: please report it with the command line; STOCKADE_DEBUG=1 prints the stack)${stack}`,
    exitCode: 70,
  };
}

/**
 * Makes a closed stdout (`stockade wrap --dry-run | head`) end the output quietly instead of
 * with an EPIPE stack trace: further writes are dropped, and the command finishes with its own
 * exit status.
 */
export function quietOnClosedStdout(stream: NodeJS.WriteStream = process.stdout): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    stream.write = () => true;
  });
}
