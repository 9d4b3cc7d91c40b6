// runSandboxed(): the promise helper, for a sandbox run to completion whose output is wanted
// whole (execFile's use). It resolves with the output and the exit status whatever the status:
// for untrusted code a non-zero exit or a signal is a result, not a failure of the call. It
// rejects only when there is no result: the spawn failed (SandboxError), the caller aborted
// (AbortError), or the output outgrew maxBuffer (RangeError, ERR_CHILD_PROCESS_STDIO_MAXBUFFER).
// The buffer is bounded as execFile's is: a sandbox writing more than maxBuffer bytes to a stream
// is killed, and what was kept of each stream rides on the error.
import { MaxBufferError, outOfRange } from './errors';
import type { SandboxOptions } from './options';
import { spawnArguments, spawnSandboxed } from './process';

/** execFile's default bound of each stream. */
const DEFAULT_MAX_BUFFER = 1024 * 1024;

export interface RunSandboxedOptions extends SandboxOptions {
  /** Bytes kept of stdout and of stderr each; more kills the sandbox (killSignal). Default 1 MiB, as execFile's. */
  maxBuffer?: number;
  /** How the output is decoded: a Buffer encoding, or 'buffer' for Buffers. Default 'utf8'. */
  encoding?: BufferEncoding | 'buffer';
  /** Written to the sandbox's stdin, which is then ended. Without it stdin is ended at once. */
  input?: string | Uint8Array;
}

export interface SandboxResult<T extends string | Buffer = string> {
  stdout: T;
  stderr: T;
  exitCode: number | null;
  signalCode: NodeJS.Signals | null;
}

const ownOptions = ['maxBuffer', 'encoding', 'input'] as const;

/**
 * Runs `command` in a sandbox to completion, like a promisified execFile() that resolves for
 * every exit status: `{ stdout, stderr, exitCode, signalCode }`. `timeout`, `signal` and
 * `killSignal` work as for spawnSandboxed(); a timeout resolves with signalCode = killSignal.
 */
export function runSandboxed(
  command: string,
  args?: readonly string[],
  options?: RunSandboxedOptions & { encoding: 'buffer' },
): Promise<SandboxResult<Buffer>>;
export function runSandboxed(command: string, args?: readonly string[], options?: RunSandboxedOptions): Promise<SandboxResult<string>>;
export function runSandboxed(command: string, options?: RunSandboxedOptions): Promise<SandboxResult<string>>;
export function runSandboxed(
  command: string,
  args?: readonly string[] | RunSandboxedOptions,
  options?: RunSandboxedOptions,
): Promise<SandboxResult<string | Buffer>> {
  // Bad arguments throw here, synchronously, as spawnSandboxed's do (not as a rejection).
  const [argv, given] = spawnArguments(args, options) as [string[], RunSandboxedOptions];
  const maxBuffer = given.maxBuffer ?? DEFAULT_MAX_BUFFER;
  if (typeof maxBuffer !== 'number' || Number.isNaN(maxBuffer) || maxBuffer < 0) {
    throw outOfRange('options.maxBuffer', 'a positive number', maxBuffer);
  }
  const encoding = given.encoding ?? 'utf8';
  if (encoding !== 'buffer' && !Buffer.isEncoding(encoding)) {
    throw Object.assign(new TypeError(`The argument 'encoding' is invalid encoding. Received '${encoding}'`), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
  }
  const { input } = given;
  if (input !== undefined && typeof input !== 'string' && !(input instanceof Uint8Array)) {
    throw Object.assign(new TypeError(`The "options.input" property must be of type string or an instance of Uint8Array`), {
      code: 'ERR_INVALID_ARG_TYPE',
    });
  }
  const sandboxOptions: SandboxOptions = { ...given };
  for (const key of ownOptions) delete (sandboxOptions as Record<string, unknown>)[key];
  const child = spawnSandboxed(command, argv, { stdio: 'pipe', ...sandboxOptions });

  const decode = (chunks: Buffer[]) => (encoding === 'buffer' ? Buffer.concat(chunks) : Buffer.concat(chunks).toString(encoding));
  const kept = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  const sizes = { stdout: 0, stderr: 0 };
  let failure: Error | undefined;
  for (const name of ['stdout', 'stderr'] as const) {
    child[name]?.on('data', (chunk: Buffer) => {
      // Each stream is kept up to maxBuffer, also once the other one went past it: what the
      // payload wrote to stderr before it flooded stdout is still in the pipe then, read after.
      const room = maxBuffer - sizes[name];
      if (chunk.length <= room) {
        kept[name].push(chunk);
        sizes[name] += chunk.length;
        return;
      }
      if (room > 0) kept[name].push(chunk.subarray(0, room));
      sizes[name] = maxBuffer;
      if (failure !== undefined) return;
      failure = new MaxBufferError(name, maxBuffer);
      // SIGKILL, not killSignal: the output is dropped from here on, and a payload that ignored
      // SIGTERM would leave the promise pending forever.
      child.kill('SIGKILL');
    });
  }
  if (child.stdin !== null) {
    if (input === undefined) child.stdin.end();
    else child.stdin.end(input);
  }
  return new Promise((resolve, reject) => {
    child.on('error', (err) => {
      // The first error wins (an abort, then the spawn failing as it is torn down, is an abort).
      failure ??= err;
    });
    // Settled on 'close', so that the sandbox, its streams and its proxy are gone by then.
    child.on('close', () => {
      const stdout = decode(kept.stdout);
      const stderr = decode(kept.stderr);
      if (failure !== undefined) {
        if (failure instanceof MaxBufferError) Object.assign(failure, { stdout, stderr });
        reject(failure);
        return;
      }
      resolve({ stdout, stderr, exitCode: child.exitCode, signalCode: child.signalCode });
    });
  });
}
