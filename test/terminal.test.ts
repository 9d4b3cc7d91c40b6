// The sandbox and the launcher's terminal: run from a real terminal (a pty that script(1) makes
// the controlling terminal of its session), the sandbox has no controlling terminal — /dev/tty
// inside does not open, /proc/self/stat shows no tty — although its stdio is that terminal, and
// it is in a process group of its own, so the terminal's ^C and job control reach the launcher
// only. It stays in the launcher's session (no setsid: no scheduler autogroup, native/child.cc).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './helpers';

const launcher = path.join(repoRoot, 'bin', 'stockade.js');
const script = ['/usr/bin/script', '/bin/script'].find((p) => fs.existsSync(p));

// Inside: whether /dev/tty opens, then fields 5-8 of /proc/self/stat (pgrp, session, tty_nr,
// tpgid) of the shell, and whether stdin is a terminal at all (it is: the pty).
const probe = [
  'if (exec 3</dev/tty) 2>/dev/null; then echo tty=opened; else echo tty=refused; fi',
  'set -- $(cut -d" " -f5-8 /proc/self/stat); echo "pgrp=$1 session=$2 tty_nr=$3 tpgid=$4"',
  'if [ -t 0 ]; then echo stdin=terminal; else echo stdin=other; fi',
].join('; ');

test('from a terminal, the sandbox has no controlling terminal and a process group of its own', {
  skip: script ? false : 'script(1) (util-linux) is not installed',
}, () => {
  const command = [process.execPath, launcher, 'run', '--', '/bin/sh', '-c', probe].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  // script -e: its exit status is the command's; -q: no banner; the typescript goes to /dev/null.
  const r = spawnSync(script as string, ['-qec', command, '/dev/null'], { encoding: 'utf8', input: '', timeout: 60_000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  const out = r.stdout.replace(/\r/g, '');
  assert.match(out, /^stdin=terminal$/m, "the payload's stdin is the terminal (the test means something)");
  assert.match(out, /^tty=refused$/m, '/dev/tty must not open: no controlling terminal');
  const m = /^pgrp=(\d+) session=(\d+) tty_nr=(\d+) tpgid=(-?\d+)$/m.exec(out);
  assert.ok(m, out);
  assert.equal(m[3], '0', 'tty_nr 0: no controlling terminal');
  assert.equal(m[4], '-1', 'no terminal foreground group');
  // stockade-init is PID 1 and leads the group; the session is the launcher's, outside the pid
  // namespace, so it reads 0 there.
  assert.equal(m[1], '1', "the sandbox's own process group, led by its PID 1");
  assert.equal(m[2], '0', "the launcher's session, not one of the sandbox's own");
});
