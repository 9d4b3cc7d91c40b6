// Errors shaped like Node's own: `EACCES: permission denied, mount '/proc'` with .code, .errno,
// .syscall and .path, plus stockade's .step. Built here and nowhere else.
import util = require('node:util');

import type { NativeError } from './native';
import { stepNames } from './native';

/** libuv's errno table, made on the first error (not at every launcher's start, ~0.3 ms). */
let errorMap: Map<number, [string, string]> | undefined;
const systemErrors = () => (errorMap ??= util.getSystemErrorMap());

/** A failure of the kernel side of a spawn, or of a system call made for it. */
export class SandboxError extends Error {
  /** 'ENOENT', 'EPERM', ... */
  code: string;
  /** Negative errno, as in Node's system errors. */
  errno: number;
  syscall: string;
  path?: string;
  /** The step of the sandbox setup that failed ('mount', 'exec', 'id-map', ...). */
  step: string;
  hint?: string;

  constructor(fields: { errno: number; syscall: string; step: string; path?: string; hint?: string }) {
    const [code, description] = systemErrors().get(-Math.abs(fields.errno)) ?? ['EUNKNOWN', 'unknown error'];
    const where = fields.path === undefined ? '' : ` '${fields.path}'`;
    const hint = fields.hint === undefined ? '' : ` (${fields.hint})`;
    super(`${code}: ${description}, ${fields.syscall}${where} [step: ${fields.step}]${hint}`);
    this.name = 'SandboxError';
    this.code = code;
    this.errno = -Math.abs(fields.errno);
    this.syscall = fields.syscall;
    this.path = fields.path;
    this.step = fields.step;
    this.hint = fields.hint;
  }
}

/** Invalid options: thrown synchronously, naming the field, what was expected and what was found. */
export class SandboxOptionsError extends TypeError {
  code = 'ERR_SANDBOX_OPTIONS';
  field: string;
  constructor(field: string, message: string) {
    super(`options.${field}: ${message}`);
    this.name = 'SandboxOptionsError';
    this.field = field;
  }
}

/** A hint for the failures people actually meet. */
function hintFor(step: string, errno: number): string | undefined {
  const code = systemErrors().get(-errno)?.[0];
  if (step === 'clone' && (code === 'EPERM' || code === 'EACCES')) {
    return 'unprivileged user namespaces are disabled or restricted on this host; run `stockade doctor`';
  }
  if (step === 'clone' && code === 'ENOSPC') {
    return 'user.max_user_namespaces is exhausted or 0; run `stockade doctor`';
  }
  if (step === 'id-map' && code === 'EPERM') {
    return 'the kernel refused the uid/gid map; on Ubuntu 23.10+ AppArmor restricts unprivileged user namespaces, see `stockade doctor`';
  }
  if (step === 'seccomp' && code === 'EINVAL') return 'the kernel lacks seccomp filter support (CONFIG_SECCOMP_FILTER)';
  if (step === 'mount' && code === 'EACCES') return 'the sandbox user cannot reach this host path';
  if (step === 'mount' && code === 'ELOOP') {
    return 'a symlink appeared on the way since the path was checked (a sandbox may have planted it); it is not followed';
  }
  if (step === 'mount' && code === 'ENOENT') return 'the path changed since it was checked; nothing is created in a host directory';
  if (step === 'idmap-mount' && (code === 'EINVAL' || code === 'EOPNOTSUPP' || code === 'ENOSYS' || code === 'EPERM')) {
    return "this filesystem cannot be idmapped (needs Linux 5.12+ and a filesystem with idmapped-mount support), which a read-write grant of host root's own directory needs; chown it to 65534:65534, or run stockade as an unprivileged user";
  }
  return undefined;
}

/** Turns the addon's {step, errno, index} into a SandboxError, using the plan for the path. */
export function fromNative(error: NativeError, pathOf: (step: string, index: number) => string | undefined): SandboxError {
  const names = stepNames()[error.step] ?? { step: `step-${error.step}`, syscall: 'unknown' };
  const path = error.path ?? pathOf(names.step, error.index);
  return new SandboxError({
    errno: error.errno,
    syscall: error.syscall ?? names.syscall,
    step: names.step,
    path,
    hint: hintFor(names.step, error.errno),
  });
}

// Errors for the arguments child_process itself validates (the type of args, options.signal,
// options.timeout, options.killSignal, maxBuffer): the same classes, codes and wording as
// Node's internal ERR_* errors, so that code written against spawn()/execFile() handles ours.
// Node does not export them, so they are built here.

/** Node's " Received ..." suffix, as its ERR_INVALID_ARG_TYPE words it. */
function received(value: unknown): string {
  if (value === null || value === undefined) return ` Received ${value}`;
  if (typeof value === 'function') return ` Received function ${value.name}`;
  if (typeof value === 'object') {
    const name = (value as object).constructor?.name;
    return name ? ` Received an instance of ${name}` : ` Received ${util.inspect(value, { depth: -1 })}`;
  }
  let shown = util.inspect(value, { colors: false });
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return ` Received type ${typeof value} (${shown})`;
}

type NodeCodedError<E extends Error> = E & { code: string };

function coded<E extends Error>(err: E, code: string): NodeCodedError<E> {
  return Object.assign(err, { code });
}

/** `The "args" argument must be of type object. Received type string ('hello')` (ERR_INVALID_ARG_TYPE). */
export function invalidArgType(name: string, expected: string, value: unknown): NodeCodedError<TypeError> {
  const what = name.includes('.') ? 'property' : 'argument';
  const must = /^[A-Z]/.test(expected) ? `be an instance of ${expected}` : `be of type ${expected}`;
  return coded(new TypeError(`The "${name}" ${what} must ${must}.${received(value)}`), 'ERR_INVALID_ARG_TYPE');
}

/** `The value of "timeout" is out of range. It must be >= 0. Received -1` (ERR_OUT_OF_RANGE). */
export function outOfRange(name: string, range: string, value: unknown): NodeCodedError<RangeError> {
  return coded(
    new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${util.inspect(value)}`),
    'ERR_OUT_OF_RANGE',
  );
}

/** `Unknown signal: SIGFOO` (ERR_UNKNOWN_SIGNAL). */
export function unknownSignal(signal: unknown): NodeCodedError<TypeError> {
  return coded(new TypeError(`Unknown signal: ${String(signal)}`), 'ERR_UNKNOWN_SIGNAL');
}

/**
 * What an AbortSignal's abort makes a sandbox emit, as spawn() does: name 'AbortError', code
 * 'ABORT_ERR', the signal's reason as `cause`.
 */
export class AbortError extends Error {
  code = 'ABORT_ERR';
  constructor(reason: unknown) {
    super('The operation was aborted', { cause: reason });
    this.name = 'AbortError';
  }
}

/** runSandboxed()'s output bound (ERR_CHILD_PROCESS_STDIO_MAXBUFFER, as execFile's). */
export class MaxBufferError extends RangeError {
  code = 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER';
  /** What was kept of each stream: at most maxBuffer bytes. */
  stdout: string | Buffer = '';
  stderr: string | Buffer = '';
  constructor(stream: 'stdout' | 'stderr', maxBuffer: number) {
    super(
      `${stream} maxBuffer length exceeded: the sandbox wrote more than ${maxBuffer} bytes to ${stream}, so it was killed (raise options.maxBuffer, or read the stream from spawnSandboxed())`,
    );
    this.name = 'RangeError';
  }
}
