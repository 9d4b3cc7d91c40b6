// Relay pipes and the caller's uid (issue #9): pipe-user-pages-soft counts every pipe of a uid,
// in every process, and once the uid is over it each new pipe of its unprivileged processes gets
// 2 pages instead of 16. The launcher's kernel relays must never be what pushes the caller's
// other programs there. Measured the way those programs see it: F_GETPIPE_SZ of a fresh pipe,
// created in a separate process of the same uid, before and during a flood of tunnels, while
// a third process holds the uid's pipes up to a little under the limit.
//
// Root is exempt from the limit (CAP_SYS_RESOURCE, fs/pipe.c pipe_is_unprivileged_user), so this
// runs in the unprivileged pass of scripts/test.sh (uid 65534).
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { uidPipeRoom } from '../lib/net/budget';
import { closeServer, collectUncaught, echoUpstream, portOf, readUntil, startProxy, UPSTREAM_HOST, waitFor } from './helpers/net';

const uncaught = collectUncaught();
const nativeJs = path.join(__dirname, '..', 'lib', 'native.js');
const soft = Number(readFileSync('/proc/sys/fs/pipe-user-pages-soft', 'utf8').trim());
const root = process.getuid?.() === 0;
const skip = root
  ? 'root is exempt from pipe-user-pages-soft (CAP_SYS_RESOURCE): this runs in the uid 65534 pass'
  : soft === 0
    ? 'pipe-user-pages-soft is 0 (no limit) on this host'
    : false;
if (skip) console.log(`# hostside-pipes: skipped: ${skip}`);

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

describe('relay pipes and the caller uid', { skip }, () => {
  it("a flood of tunnels never shrinks a fresh pipe of the uid's other processes; tunnels past the room stay in JavaScript, audited", async () => {
    assert.equal(freshPipeSize(), 65536, 'the uid is over pipe-user-pages-soft before the test');
    assert.equal(uidPipeRoom(), Math.min(1 << 20, Number(readFileSync('/proc/sys/fs/pipe-max-size', 'utf8'))));
    // 2048 free pages (8 MiB): room for 64 relays of 2 x 64 KiB if nothing held any back.
    const holder = await holdPipesBelowLimit(2048);
    const up = await echoUpstream();
    const hp = `echo.test:${portOf(up)}`;
    const p = await startProxy({ allow: [hp], resolve: [`${hp}:${UPSTREAM_HOST}`] });
    const tunnels: Socket[] = [];
    try {
      assert.equal(freshPipeSize(), 65536, 'the holder left no room');
      // 100 tunnels at 32 pages each would take 3200 pages: far past the 2048 left.
      for (let i = 0; i < 100; i++) {
        const s = connect({ host: '127.0.0.1', port: p.httpPort });
        s.on('error', () => {});
        tunnels.push(s);
        s.write(`CONNECT ${hp} HTTP/1.1\r\nHost: ${hp}\r\n\r\n`);
        await readUntil(s, '\r\n\r\n');
        s.write(`ping ${i}\n`);
        await readUntil(s, `ping ${i}\n`);
      }
      // What the caller's other programs get now: a full-size pipe.
      const relayed = p.proxy.kernelRelays;
      const during = freshPipeSize();
      console.log(`# measured: ${relayed} of 100 tunnels in the kernel relay; a fresh pipe of another process: ${during} bytes`);
      assert.equal(during, 65536);
      assert.ok(relayed > 0, 'no tunnel went to the kernel relay');
      assert.ok(relayed < 100, `all ${relayed} tunnels took kernel pipes`);
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
      await waitFor(() => p.records.length >= 100, 'a record per tunnel', 10_000);
      const noted = p.records.filter((r) => /^budget: uid \d+ has less than \d+ KiB of pipe-user-pages-soft/.test(r.budget ?? ''));
      assert.equal(noted.length, 100 - relayed, JSON.stringify(p.records.slice(-2)));
      assert.ok(noted.every((r) => r.decision === 'allow' && !r.error));
    } finally {
      for (const s of tunnels) s.destroy();
      holder.stdin?.end();
      await once(holder, 'exit');
      await p.close();
      await closeServer(up);
    }
    assert.equal(freshPipeSize(), 65536);
    assert.deepEqual(uncaught, []);
  });
});
