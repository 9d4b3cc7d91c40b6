// The sandbox's own network namespace takes CUBIC (or Reno) as its TCP congestion control
// (native/net.cc, loopbackCongestionInChild): its connections all run over its loopback, and a
// host default of BBR paced each of them (a tunnel's download at a third of its speed). The
// payload cannot change it back; the host's network (network 'host') is left as it is.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, test } from 'node:test';
import { run } from './helpers';

const file = '/proc/sys/net/ipv4/tcp_congestion_control';

describe("the sandbox network namespace's congestion control", () => {
  test('CUBIC or Reno inside, whatever the host uses; unchangeable by the payload', async () => {
    const r = await run('/bin/sh', ['-c', `cat ${file}; echo bbr > ${file} || echo refused`]);
    const [inside, attempt] = r.stdout.trim().split('\n');
    assert.match(inside, /^(cubic|reno)$/);
    assert.equal(attempt, 'refused', r.stderr);
    assert.match(r.stderr, /Read-only file system|Permission denied/);
  });

  test("network 'host' keeps the host's", async () => {
    const r = await run('/bin/cat', [file], { network: 'host' });
    assert.equal(r.stdout, fs.readFileSync(file, 'utf8'));
  });
});
