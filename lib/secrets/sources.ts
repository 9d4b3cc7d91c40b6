// Where a secret's real value comes from. All of it runs in the launcher, on the host, before the
// sandbox exists; nothing here is reachable from inside. The sources, chosen per secret:
//
//   { env: NAME }              the launcher's environment (what an MCP client config's `env` sets)
//   { file: PATH }             a file only the caller can read, outside everything granted
//   { command: [ARGV...] }     the first line a command prints (`pass show github`, `op read ...`)
//   { keyring: { ATTR: V } }   the desktop keyring, through `secret-tool lookup ATTR V ...`
//   { value: TEXT }            the value itself (stored in the policy file: avoid)
//
// So the token no longer has to sit in plain text in the client config.
import fs = require('node:fs');
import path = require('node:path');

import { execFileSync } from 'node:child_process';
import type { SecretSource } from '../options';
import { SecretError } from './spec';

export interface SourceContext {
  /** The launcher's environment (env sources, and the environment of commands). */
  env: NodeJS.ProcessEnv;
  /** Host paths visible inside the sandbox: a secret file must be in none of them. */
  grants?: readonly string[];
}

/** A token is a line; a megabyte of output is a wrong command. */
const MAX_OUTPUT = 1024 * 1024;
/** A command may ask for a passphrase (pinentry, a keyring unlock dialog): give the user time. */
const COMMAND_TIMEOUT_MS = 120_000;

function within(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/**
 * A secret file must be the caller's own, readable by no one else (like ssh's key checks: a
 * world-readable token is already leaked), a regular file reached without a final symlink, with
 * a single link, and not inside anything the sandbox can see.
 */
function readSecretFile(name: string, file: string, ctx: SourceContext): string {
  const fail = (why: string) => new SecretError('ESECRETFILE', `secret ${name}: ${file} ${why}`, name, file);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SecretError('ESECRETFILE', `secret ${name}: cannot read ${file}: ${code === 'ELOOP' ? 'it is a symlink' : code}`, name, file);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw fail('is not a regular file');
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) throw fail(`belongs to uid ${st.uid}, not to the launcher's user (uid ${uid})`);
    if ((st.mode & 0o077) !== 0) {
      throw fail(`can be read by other users (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); chmod 600 it`);
    }
    if (st.nlink !== 1) throw fail('has other hard links, which may be inside a grant');
    if (st.size > MAX_OUTPUT) throw fail('is larger than 1 MiB');
    const real = fs.realpathSync(file);
    for (const g of ctx.grants ?? []) {
      let grant: string;
      try {
        grant = fs.realpathSync(g);
      } catch {
        continue;
      }
      if (within(real, grant)) throw fail(`is inside ${g}, which the sandbox can see`);
    }
    // Token files almost always end in a newline that is not part of the token.
    return fs.readFileSync(fd, 'utf8').replace(/\r?\n$/, '');
  } finally {
    fs.closeSync(fd);
  }
}

/** Runs argv without a shell; the value is the first line of its output. */
function runForSecret(name: string, argv: readonly string[], ctx: SourceContext, what: string): string {
  let out: string;
  try {
    out = execFileSync(argv[0], argv.slice(1), {
      env: ctx.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: COMMAND_TIMEOUT_MS,
      maxBuffer: MAX_OUTPUT,
      encoding: 'utf8',
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { status?: number | null; signal?: string | null; stderr?: string };
    let why: string;
    if (e.code === 'ENOENT') {
      why =
        argv[0] === 'secret-tool' ? 'secret-tool is not installed (Debian/Ubuntu: apt install libsecret-tools)' : `${argv[0]} not found`;
    } else if (e.code === 'ETIMEDOUT' || e.signal === 'SIGTERM') why = `gave no answer within ${COMMAND_TIMEOUT_MS / 1000} s`;
    else if (e.code === 'ENOBUFS') why = 'printed more than 1 MiB';
    else if (argv[0] === 'secret-tool' && e.status === 1 && !e.stderr) why = 'found no matching item';
    else {
      // The command's own complaint helps ("gpg: decryption failed"); its stdout (maybe a value) is never shown.
      const said = (e.stderr ?? '').split('\n')[0].slice(0, 200);
      why = `exited with ${e.status ?? e.signal ?? e.code}${said ? `: ${said}` : ''}`;
    }
    throw new SecretError('ESECRETCOMMAND', `secret ${name}: ${what} ${why}`, name, argv[0]);
  }
  return out.split(/\r?\n/)[0];
}

/** Reads one source. Throws SecretError naming the secret and the source, never the value. */
export function readSecretSource(name: string, src: SecretSource, ctx: SourceContext): { value: string; source: string } {
  if ('env' in src) {
    const value = ctx.env[src.env];
    if (value === undefined || value === '') {
      throw new SecretError(
        'ESECRETENV',
        `secret ${name}: environment variable ${src.env} is not set in the launcher's environment`,
        name,
        src.env,
      );
    }
    return { value, source: `env ${src.env}` };
  }
  if ('file' in src && typeof src.file === 'string') {
    if (!path.isAbsolute(src.file)) throw new SecretError('ESECRETSPEC', `secret ${name}: file must be an absolute path`, name);
    return { value: readSecretFile(name, src.file, ctx), source: `file ${src.file}` };
  }
  if ('command' in src && Array.isArray(src.command)) {
    if (src.command.length === 0 || src.command.some((a) => typeof a !== 'string' || a === '' || a.includes('\0'))) {
      throw new SecretError('ESECRETSPEC', `secret ${name}: command must be a non-empty array of strings`, name);
    }
    return { value: runForSecret(name, src.command, ctx, `command ${src.command[0]}`), source: `command ${src.command[0]}` };
  }
  if ('keyring' in src && typeof src.keyring === 'object' && src.keyring !== null) {
    const pairs = Object.entries(src.keyring);
    // No '--' trick needed: neither an attribute nor a value may look like an option of secret-tool.
    if (
      pairs.length === 0 ||
      pairs.some(
        ([k, v]) => !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(k) || typeof v !== 'string' || v === '' || v.startsWith('-') || v.includes('\0'),
      )
    ) {
      throw new SecretError('ESECRETSPEC', `secret ${name}: keyring needs attribute names and values, none starting with '-'`, name);
    }
    const argv = ['secret-tool', 'lookup', ...pairs.flat()];
    const label = pairs.map(([k, v]) => `${k}=${v}`).join(' ');
    const value = runForSecret(name, argv, ctx, `keyring lookup ${label}:`);
    return { value, source: `keyring ${label}` };
  }
  if ('value' in src && typeof src.value === 'string') return { value: src.value, source: 'value' };
  throw new SecretError('ESECRETSPEC', `secret ${name}: source must be { env }, { file }, { command }, { keyring } or { value }`, name);
}
