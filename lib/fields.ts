// One parser and one validator per option field, whoever gives the value: the API (lib/plan.ts),
// a policy file (the JSON Schema's formats, lib/policy/formats.ts) and the command line (flags
// become a policy). Each checker returns null when the value is fine or the reason it is not, in
// words a user can act on; the caller adds where the value came from (`options.hostname`,
// `/hostname`, `--hostname`). Two grammars for one field drift apart, and a policy `stockade
// check` accepts but `stockade run` refuses is the result (issue #12).
//
// Fields with a grammar of their own live with their concept and are re-used from there: allow
// entries (lib/net/allowlist.ts parseAllowEntry), resolve entries (lib/net/resolve.ts), host
// names and `host:port` (lib/net/hostname.ts).

/** Control characters (NUL, newlines, escapes) have no place in a path, a name or a size. */
export function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

// ---- paths -------------------------------------------------------------------------------------

/** An absolute path, as policies and the API take them: no `~`, no `..`, no control characters. */
export function absolutePathReason(p: unknown): string | null {
  if (typeof p !== 'string') return 'expected an absolute path string';
  if (p.length === 0) return 'the path is empty';
  if (hasControl(p)) return 'the path contains a control character';
  if (p.startsWith('~')) return '`~` is not expanded; write the absolute path';
  if (!p.startsWith('/')) return 'the path is relative; absolute paths only';
  if (p.split('/').includes('..')) return 'the path contains `..`; write the normalized path';
  return null;
}

/** A file synthesized inside the sandbox (secrets[].file): absolute, normalized, not `/` itself. */
export function sandboxFileReason(p: unknown): string | null {
  const reason = absolutePathReason(p);
  if (reason !== null) return reason;
  const s = p as string;
  if (s === '/' || s.endsWith('/')) return 'expected a file path, not a directory';
  if (s.includes('//') || s.split('/').includes('.')) return 'write the normalized path (no `//` or `.`)';
  return null;
}

// ---- sizes -------------------------------------------------------------------------------------

// Bytes, or a number with a binary unit: 64m, 64M, 64MB, 64MiB, 1.5g, 4096, 4096b. Binary because
// tmpfs and ulimit read them so ('64m' is 64 MiB to mount(8)); 'MB' is taken as MiB too rather
// than refused, since nobody writing a memory limit means 64,000,000 bytes.
const SIZE = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|b)?$/i;
const UNITS: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/**
 * Why `value` is not a size, or null. Zero is refused: tmpfs reads `size=0` as "no limit", so a
 * zero /tmp would silently be an unlimited one (and a zero memory limit is never meant).
 */
export function sizeReason(value: unknown): string | null {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) return 'a size in bytes is a whole number';
    return value < 1 ? 'the size must be at least one byte' : null;
  }
  if (typeof value !== 'string') return 'expected bytes (a number) or a string like 64m';
  const m = SIZE.exec(value.trim());
  if (!m) return 'expected bytes or a number with a unit k, m, g or t (e.g. 512m, 1.5g, 64MiB)';
  if (!m[2] && m[1].includes('.')) return 'a number of bytes is whole; a fraction needs a unit (1.5g)';
  const bytes = Math.floor(Number(m[1]) * (m[2] ? UNITS[m[2].toLowerCase()] : 1));
  if (bytes < 1) return 'the size must be at least one byte';
  if (!Number.isSafeInteger(bytes)) return 'the size is too large';
  return null;
}

/** Parses '512m', '1.5G', '64KiB', '4096' to bytes; throws a TypeError with the reason otherwise. */
export function parseSize(value: number | string): number {
  const reason = sizeReason(value);
  if (reason !== null) throw new TypeError(`invalid size ${JSON.stringify(value)}: ${reason}`);
  if (typeof value === 'number') return value;
  const m = SIZE.exec(value.trim()) as RegExpExecArray;
  return Math.floor(Number(m[1]) * (m[2] ? UNITS[m[2].toLowerCase()] : 1));
}

// ---- the UTS hostname --------------------------------------------------------------------------

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** A hostname for sethostname(2): at most 64 bytes, dot-separated labels ('box', 'box.local'). */
export function hostnameReason(name: unknown): string | null {
  if (typeof name !== 'string') return 'expected a string';
  if (name.length === 0) return 'the hostname is empty';
  if (name.length > 64) return 'a hostname is at most 64 characters (sethostname)';
  if (name.endsWith('.')) return 'drop the trailing dot';
  for (const label of name.split('.')) {
    if (!LABEL.test(label)) return `\`${label}\` is not a valid hostname label (letters, digits, inner hyphens)`;
  }
  return null;
}

// ---- environment variable names ----------------------------------------------------------------

export function envNameReason(name: string): string | null {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name)
    ? null
    : 'an environment variable name is letters, digits and `_`, not starting with a digit';
}

// ---- counts and the wall-clock limit -----------------------------------------------------------

/** pids, cpu seconds, open files: a positive whole number. */
export function countReason(value: unknown): string | null {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? null : 'expected a positive integer';
}

/**
 * The longest wall-clock limit, in milliseconds: a Node timer holds at most 2^31-1 ms (24.8
 * days); a longer one fires after 1 ms, which killed a sandbox given `--timeout 3000000` at
 * once. Refused with the range rather than re-armed: a limit that long is a typo more often than
 * an intent, and "no limit" is one omission away.
 */
export const MAX_WALL_TIME_MS = 2 ** 31 - 1;

export function wallTimeReason(ms: unknown): string | null {
  if (typeof ms !== 'number' || !(ms > 0)) return 'expected a positive number of milliseconds';
  if (ms > MAX_WALL_TIME_MS) return `at most ${MAX_WALL_TIME_MS} ms (24.8 days); leave it out for no limit`;
  return null;
}

/** limits.timeout of a policy and --timeout: seconds, converted to limits.wallTime. */
export function timeoutSecondsReason(seconds: unknown): string | null {
  if (typeof seconds !== 'number' || !(seconds > 0)) return 'expected a positive number of seconds';
  if (Math.round(seconds * 1000) > MAX_WALL_TIME_MS) {
    return `at most ${MAX_WALL_TIME_MS / 1000} seconds (24.8 days); leave it out for no limit`;
  }
  return null;
}

/** Rounded to whole milliseconds, and never to 0 (which would mean "no limit" nowhere, and be refused). */
export function timeoutToWallTime(seconds: number): number {
  return Math.max(1, Math.round(seconds * 1000));
}
