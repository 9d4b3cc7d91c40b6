// Relay pipes and the caller's uid (issue #9): pipe-user-pages-soft counts every pipe of a uid,
// in every process, and once the uid is over it each new pipe of its unprivileged processes gets
// 2 pages instead of 16. The launcher's kernel relays must never be what pushes the caller's
// other programs there. Measured the way those programs see it: F_GETPIPE_SZ of a fresh pipe,
// created in a separate process of the same uid, before and during a flood of tunnels, while
// a third process holds the uid's pipes up to a little under the limit.
//
// Root is exempt from the limit (CAP_SYS_RESOURCE, fs/pipe.c pipe_is_unprivileged_user). The
// root pass of scripts/test.sh runs this file again as a uid of its own (nothing else uses it,
// so nothing else moves its pipe count); the unprivileged pass runs it as uid 65534, which the
// other test files running at the same time share: when a fresh pipe is small even after our
// tunnels are gone, someone else filled the uid, and the flood is tried again.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { uidPipeRoom } from '../lib/net/budget';
import { closeServer, collectUncaught, echoUpstream, portOf, readUntil, startProxy, UPSTREAM_HOST, waitFor } from './helpers/net';

const uncaught = collectUncaught();
const nativeJs = path.join(__dirname, '..', 'lib', 'native.js');
const soft = Number(readFileSync('/proc/sys/fs/pipe-user-pages-soft', 'utf8').trim());
const root = process.getuid?.() === 0;
const skip = soft === 0 ? 'pipe-user-pages-soft is 0 (no limit) on this host' : false;
if (skip) console.log(`# hostside-pipes: skipped: ${skip}`);
/** A uid no account and no other test uses, for the root pass. */
const OWN_UID = 47_011;

/** Whether uid OWN_UID can reach `file` (every directory above it searchable by others). */
function reachableByOthers(file: string): boolean {
  for (let d = path.dirname(file); d !== path.dirname(d); d = path.dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return false;
  }
  return true;
}

/** F_GETPIPE_SZ of a fresh pipe in a new process of this uid: what the caller's programs get. */
function freshPipeSize(): number {
  const script = `const a = require(${JSON.stringify(nativeJs)}).native(); const [r, w] = a.pipe(); console.log(a.pipeSize(r));`;
  return Number(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }).trim());
}

/**
 * A process of this uid holding pipes until the uid is within `room` pages of the soft limit:
 * pipes grown to 1 MiB while F_SETPIPE_SZ allows it (EPERM: the uid would be over), then
 * 64 KiB ones until a new one comes out smaller (over), then it lets go of enough for `room`.
 */
async function holdPipesBelowLimit(room: number): Promise<ChildProcess> {
  const script = `
    const a = require(${JSON.stringify(nativeJs)}).native();
    const fs = require('node:fs');
    const grown = [], small = [];
    for (let i = 0; i < 4096; i++) {
      const p = a.pipe();
      if (a.pipeSize(p[0], 1 << 20) < 0) { small.push(p); break; }
      grown.push(p);
    }
    for (let i = 0; i < 4096; i++) {
      const p = a.pipe();
      small.push(p);
      if (a.pipeSize(p[0]) < 65536) break;
    }
    // Free pages now: under 16. Each small pipe gives back 16 (the last one 2), a grown one 256.
    let free = 0;
    while (free < ${room} && small.length > 0) { const p = small.pop(); fs.closeSync(p[0]); fs.closeSync(p[1]); free += 16; }
    while (free < ${room} && grown.length > 0) { const p = grown.pop(); fs.closeSync(p[0]); fs.closeSync(p[1]); free += 256; }
    console.log('holding', grown.length, small.length);
    process.stdin.resume();
    process.stdin.on('end', () => process.exit(0));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
  assert.match(line.toString(), /^holding \d+ \d+/);
  return child;
}

interface FloodResult {
  relayed: number;
  /** A fresh pipe of another process while the tunnels are open. */
  during: number;
  /** The same once our tunnels are closed (the holder still holds its pipes). */
  after: number;
  noted: number;
}

/** One flood: 100 tunnels while the holder leaves `room` pages under the soft limit. */
async function flood(room: number): Promise<FloodResult> {
  const holder = await holdPipesBelowLimit(room);
  const up = await echoUpstream();
  const hp = `echo.test:${portOf(up)}`;
  const p = await startProxy({ allow: [hp], resolve: [`${hp}:${UPSTREAM_HOST}`] });
  const tunnels: Socket[] = [];
  try {
    assert.equal(freshPipeSize(), 65536, 'the holder left no room');
    // 100 tunnels at 32 pages each would take 3200 pages: far past what is left.
    for (let i = 0; i < 100; i++) {
      const s = connect({ host: '127.0.0.1', port: p.httpPort });
      s.on('error', () => {});
      tunnels.push(s);
      s.write(`CONNECT ${hp} HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
      await readUntil(s, '\r\n\r\n');
      s.write(`ping ${i}\n`);
      await readUntil(s, `ping ${i}\n`);
    }
    const relayed = p.proxy.kernelRelays;
    const during = freshPipeSize();
    // The tunnels left in JavaScript still carry bytes both ways, intact.
    const payload = Buffer.alloc(256 * 1024, 'y');
    const last = tunnels[tunnels.length - 1];
    const got: Buffer[] = [];
    let n = 0;
    last.on('data', (c: Buffer) => {
      got.push(c);
      n += c.length;
    });
    last.write(payload);
    await waitFor(() => n >= payload.length, 'the echo of 256 KiB', 10_000);
    assert.ok(Buffer.concat(got).equals(payload));
    for (const s of tunnels) s.destroy();
    await waitFor(() => p.records.length >= 100 && p.proxy.kernelRelays === 0, 'a record per tunnel', 10_000);
    const after = freshPipeSize();
    const noted = p.records.filter((r) => /^budget: uid \d+ has less than \d+ KiB of pipe-user-pages-soft/.test(r.budget ?? ''));
    assert.ok(noted.every((r) => r.decision === 'allow' && !r.error));
    return { relayed, during, after, noted: noted.length };
  } finally {
    for (const s of tunnels) s.destroy();
    holder.stdin?.end();
    await once(holder, 'exit');
    await p.close();
    await closeServer(up);
  }
}

describe('relay pipes and the caller uid', { skip }, () => {
  if (root) {
    it(`runs as uid ${OWN_UID}, a uid of its own (root is exempt from the limit)`, {
      skip: reachableByOthers(__filename) ? false : `the checkout is not reachable by uid ${OWN_UID}; the uid 65534 pass runs it`,
    }, () => {
      const r = spawnSync(
        'setpriv',
        [
          '--reuid',
          String(OWN_UID),
          '--regid',
          String(OWN_UID),
          '--clear-groups',
          '--inh-caps=-all',
          process.execPath,
          '--test',
          __filename,
        ],
        { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: '/tmp' }, timeout: 120_000 },
      );
      for (const line of r.stdout.split('\n')) if (line.includes('measured')) console.log(line.replace(/^# /, ''));
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    });
    return;
  }
  it("a flood of tunnels never shrinks a fresh pipe of the uid's other processes; tunnels past the room stay in JavaScript, audited", async () => {
    assert.equal(uidPipeRoom(), Math.min(1 << 20, Number(readFileSync('/proc/sys/fs/pipe-max-size', 'utf8'))));
    let r: FloodResult | undefined;
    for (let attempt = 1; attempt <= 3; attempt++) {
      if (freshPipeSize() < 65536) {
        console.log(`# attempt ${attempt}: the uid is over pipe-user-pages-soft before the flood (other processes); waiting`);
        await waitFor(() => freshPipeSize() === 65536, 'the uid to have room again', 30_000);
      }
      // 2048 free pages (8 MiB): room for 64 relays of 2 x 64 KiB if nothing held any back.
      r = await flood(2048);
      console.log(
        `# measured (attempt ${attempt}): ${r.relayed} of 100 tunnels in the kernel relay; a fresh pipe of another process: ${r.during} bytes during the flood, ${r.after} after it`,
      );
      // Small during the flood and after it too: another process of this uid took the room.
      if (r.during === 65536 || r.after === 65536) break;
    }
    const res = r as FloodResult;
    assert.equal(res.during, 65536, "the tunnels shrank a fresh pipe of the uid's other processes");
    assert.ok(res.relayed > 0, 'no tunnel went to the kernel relay');
    assert.ok(res.relayed < 100, `all ${res.relayed} tunnels took kernel pipes`);
    assert.equal(res.noted, 100 - res.relayed);
    assert.deepEqual(uncaught, []);
  });
});
