// Grants whose host source is a mount with ro, nosuid, nodev and noexec set. In the sandbox's
// user namespace those flags are locked (MNT_LOCK_READONLY, _NOSUID, _NODEV, _NOEXEC: a mount
// copied into a less privileged mount namespace keeps them, man 7 mount_namespaces), and a
// remount that omits any of them fails with EPERM. The old remount fallback had a `lockedFlags`
// field in the plan for that (the source's statvfs flags, to repeat them); it went with the
// fallback: native/mounts.cc only ever *sets* attributes with mount_setattr (attr_clr is 0), so a
// locked flag is never cleared, and nothing needs to know them. This test holds it to that:
// a source mounted ro,nosuid,nodev,noexec in the test's own mount namespace, granted read-write
// and read-only, spawns (no EPERM at the mount step), reads, refuses writes with EROFS, and
// shows the four flags inside. As root the read-write grant goes through an idmapped mount;
// unprivileged, the source is mounted in a user namespace of the test's own.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { isRoot, sharedTempDir } from './helpers';

const lib = path.join(__dirname, '..', 'lib', 'index.js');

const script = `
const { spawnSandboxed } = require(${JSON.stringify(lib)});
const [dir, mode] = process.argv.slice(2);
// $0 is the granted directory (sh names its messages after it).
const c = spawnSandboxed('/bin/sh', ['-c', 'cat "$0"/f; (echo x > "$0"/new) 2>&1; echo "write=$?"; grep " $0 " /proc/self/mountinfo | cut -d" " -f6', dir], {
  filesystem: mode === 'rw' ? { readWrite: [dir] } : { readOnly: [dir] },
});
let out = '';
c.stdout.on('data', (d) => { out += d; });
c.stderr.on('data', (d) => { out += d; });
c.on('error', (e) => { process.stdout.write('error ' + e.code + ' ' + e.step + ' ' + e.message + '\\n'); process.exitCode = 5; });
c.on('close', (code) => process.stdout.write(out + 'exit ' + code + '\\n'));
`;

/** Mounts a tmpfs holding f = "locked" at `dir`, ro,nosuid,nodev,noexec, and runs the script there. */
function runOnLockedSource(dir: string, scriptFile: string, mode: 'rw' | 'ro'): string {
  const setup = `mount -t tmpfs -o size=1m,mode=0755 none "$1" && echo locked > "$1/f" && mount -o remount,bind,ro,nosuid,nodev,noexec "$1"`;
  const args = isRoot
    ? ['--mount', '--propagation', 'private', '--', 'sh', '-c', `${setup} && exec "$2" "$3" "$1" "$4"`]
    : // A user namespace of our own to mount in, then one that maps us back to uid 65534 for the
      // launcher (which, as uid 0 of a namespace, would take the host-root path).
      [
        '--user',
        '--map-root-user',
        '--mount',
        '--propagation',
        'private',
        '--',
        'sh',
        '-c',
        `${setup} && exec unshare --user --map-user=${process.getuid?.()} --map-group=${process.getgid?.()} "$2" "$3" "$1" "$4"`,
      ];
  // sh -c SCRIPT $0 $1 $2 $3 $4: the mount point, node, the script, the grant's mode.
  return execFileSync('unshare', [...args, 'sh', dir, process.execPath, scriptFile, mode], { encoding: 'utf8' });
}

describe('grants of a source mount with locked flags', () => {
  const base = sharedTempDir('locked');
  const dir = path.join(base, 'src');
  const scriptFile = path.join(base, 'run.js');
  after(() => fs.rmSync(base, { recursive: true, force: true }));

  for (const mode of ['rw', 'ro'] as const) {
    test(`${mode === 'rw' ? 'readWrite' : 'readOnly'} grant of a ro,nosuid,nodev,noexec tmpfs: spawns, reads, writes fail with EROFS, flags kept`, () => {
      fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
      fs.writeFileSync(scriptFile, script, { mode: 0o644 });
      const out = runOnLockedSource(dir, scriptFile, mode);
      const lines = out.trim().split('\n');
      assert.equal(lines[0], 'locked', out);
      assert.equal(lines[1], `${dir}: 1: cannot create ${dir}/new: Read-only file system`, out);
      assert.equal(lines[2], 'write=2', out);
      const flags = lines[3].split(',');
      for (const f of ['ro', 'nosuid', 'nodev', 'noexec']) assert.ok(flags.includes(f), `${f} in ${lines[3]}`);
      assert.equal(lines[4], 'exit 0', out);
      // The host's directory is untouched: the tmpfs lived only in the test's mount namespace.
      assert.deepEqual(fs.readdirSync(dir), []);
    });
  }
});
