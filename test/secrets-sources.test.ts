// Secret sources other than the client config's env: a file only the caller can read (never
// inside a grant), a command's first line of output, the desktop keyring through secret-tool.
// Each is read by the launcher on the host; the end-to-end test checks that the real values go
// on the wire to a local HTTPS stand-in while the sandbox holds only placeholders.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spawnSandboxed } from '../lib';
import { resolveSecrets } from '../lib/secrets/spec';
import { isRoot, sharedTempDir } from './helpers';
import { startUpstream, type Upstream } from './helpers/secrets-harness';

const hosts = ['api.src.test'];
let dir: string;
let bin: string;
const keyringValue = `kr_${randomBytes(8).toString('hex')}`;

before(() => {
  dir = sharedTempDir('sources');
  // A stand-in for secret-tool (libsecret-tools): the real one needs a Secret Service on a D-Bus
  // session. It records its arguments and answers like secret-tool: the value without a newline,
  // or exit 1 and no output when no item matches.
  bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(
    path.join(bin, 'secret-tool'),
    `#!/bin/sh\nprintf '%s\\n' "$*" >> "${dir}/secret-tool.args"\n[ "$3" = github ] || exit 1\nprintf '%s' '${keyringValue}'\n`,
    { mode: 0o755 },
  );
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const resolveOne = (source: object, grants: string[] = [], env: NodeJS.ProcessEnv = process.env) =>
  resolveSecrets([{ name: 'T', source: source as never, hosts }], env, { grants })[0];

describe('file source: readable only by the caller, outside every grant', () => {
  const token = (name: string, mode: number, content = 'file-value\n') => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, content, { mode });
    fs.chmodSync(f, mode);
    return f;
  };

  test('a 0600 file of the caller is read, the trailing newline dropped', () => {
    assert.equal(resolveOne({ file: token('ok', 0o600) }).value, 'file-value');
  });

  test('readable by others, a symlink, a hard link, a FIFO, inside a grant: refused, naming why', () => {
    const open = token('open', 0o644);
    assert.throws(() => resolveOne({ file: open }), {
      code: 'ESECRETFILE',
      message: `secret T: ${open} can be read by other users (mode 0644); chmod 600 it`,
    });
    const target = token('target', 0o600);
    const link = path.join(dir, 'link');
    fs.symlinkSync(target, link);
    assert.throws(() => resolveOne({ file: link }), { message: `secret T: cannot read ${link}: it is a symlink` });
    const hard = path.join(dir, 'hard');
    fs.linkSync(target, hard);
    assert.throws(() => resolveOne({ file: hard }), { message: `secret T: ${hard} has other hard links, which may be inside a grant` });
    fs.rmSync(hard);
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', ['-m', '600', fifo]);
    assert.throws(() => resolveOne({ file: fifo }), { message: `secret T: ${fifo} is not a regular file` });
    const inside = token('inside', 0o600);
    assert.throws(() => resolveOne({ file: inside }, [dir]), {
      message: `secret T: ${inside} is inside ${dir}, which the sandbox can see`,
    });
  });

  test('a file of another user is refused', { skip: !isRoot && 'needs root to give a file away' }, () => {
    const theirs = token('theirs', 0o600);
    fs.chownSync(theirs, 65534, 65534);
    assert.throws(() => resolveOne({ file: theirs }), {
      message: `secret T: ${theirs} belongs to uid 65534, not to the launcher's user (uid 0)`,
    });
  });
});

describe('command and keyring sources', () => {
  test('a command: its first line is the value; no shell is involved', () => {
    const r = resolveOne({ command: [process.execPath, '-e', 'console.log("cmd-value"); console.log("notes: second line")'] });
    assert.equal(r.value, 'cmd-value');
    assert.equal(r.source, `command ${process.execPath}`);
    // Shell syntax is just an argument.
    assert.equal(resolveOne({ command: ['/bin/echo', '$(id)', ';', 'x'] }).value, '$(id) ; x');
  });

  test('a failing command is named with its exit status and complaint, never its output', () => {
    assert.throws(
      () => resolveOne({ command: ['/bin/sh', '-c', 'echo maybe-a-secret; echo "gpg: decryption failed" >&2; exit 2'] }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ESECRETCOMMAND');
        assert.equal(err.message, 'secret T: command /bin/sh exited with 2: gpg: decryption failed');
        return true;
      },
    );
    assert.throws(() => resolveOne({ command: [path.join(dir, 'no-such-pass')] }), {
      message: `secret T: command ${path.join(dir, 'no-such-pass')} ${path.join(dir, 'no-such-pass')} not found`,
    });
    assert.throws(() => resolveOne({ command: ['/bin/true'] }), {
      code: 'ESECRETVALUE',
      message: 'secret T: the value from command /bin/true is empty',
    });
  });

  test('the keyring: secret-tool lookup ATTR VALUE..., a missing item, a missing secret-tool', () => {
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    const r = resolveOne({ keyring: { service: 'github', account: 'me' } }, [], env);
    assert.equal(r.value, keyringValue);
    assert.equal(r.source, 'keyring service=github account=me');
    assert.equal(fs.readFileSync(path.join(dir, 'secret-tool.args'), 'utf8'), 'lookup service github account me\n');
    assert.throws(() => resolveOne({ keyring: { service: 'gitlab' } }, [], env), {
      message: 'secret T: keyring lookup service=gitlab: found no matching item',
    });
    assert.throws(() => resolveOne({ keyring: { service: '--help' } }, [], env), { code: 'ESECRETSPEC' });
    assert.throws(() => resolveOne({ keyring: {} }, [], env), { code: 'ESECRETSPEC' });
    assert.throws(() => resolveOne({ keyring: { service: 'github' } }, [], { PATH: dir }), {
      message: 'secret T: keyring lookup service=github: secret-tool is not installed (Debian/Ubuntu: apt install libsecret-tools)',
    });
  });
});

describe('end to end: three sources, one sandbox, the real values on the wire', () => {
  let upstream: Upstream;
  before(async () => {
    upstream = await startUpstream(hosts);
    fs.writeFileSync(path.join(dir, 'upstream-ca.pem'), upstream.caPem);
  });
  after(() => upstream.close());

  test('file, command and keyring secrets are injected; the sandbox sees placeholders', async () => {
    const fileValue = `f_${randomBytes(8).toString('hex')}`;
    const cmdValue = `c_${randomBytes(8).toString('hex')}`;
    const secretDir = fs.mkdtempSync(path.join(dir, 'private-'));
    const file = path.join(secretDir, 'token');
    fs.writeFileSync(file, `${fileValue}\n`, { mode: 0o600 });
    const savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${savedPath}`;
    const header = (name: string) => ({ header: name, format: '{secret}' });
    let stdout = '';
    let stderr = '';
    try {
      const child = spawnSandboxed(
        'sh',
        ['-c', 'curl -sS -H "X-A: $A" -H "X-B: $B" -H "X-C: $C" https://api.src.test/ok; echo; echo "$A $B $C"'],
        {
          network: { allow: hosts, resolve: [`api.src.test:443:127.0.0.1:${upstream.port}`] },
          secrets: [
            { name: 'A', source: { file }, hosts, inject: header('X-A') },
            { name: 'B', source: { command: ['/bin/echo', cmdValue] }, hosts, inject: header('X-B') },
            { name: 'C', source: { keyring: { service: 'github' } }, hosts, inject: header('X-C') },
          ],
          upstreamCa: [path.join(dir, 'upstream-ca.pem')],
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      child.stdout?.on('data', (d) => (stdout += d));
      child.stderr?.on('data', (d) => (stderr += d));
      await child.exited;
    } finally {
      process.env.PATH = savedPath;
    }
    const [body, seenInside] = stdout.split('\n');
    assert.equal(body, '{"ok":true}', stderr);
    assert.match(seenInside, /^stockade-ph-a-[0-9a-f]{32} stockade-ph-b-[0-9a-f]{32} stockade-ph-c-[0-9a-f]{32}$/);
    const seen = upstream.seen.at(-1);
    assert.deepEqual([seen?.headers['x-a'], seen?.headers['x-b'], seen?.headers['x-c']], [fileValue, cmdValue, keyringValue]);
  });
});
