// The shared field parsers (lib/fields.ts and the allowlist grammar) and the options that used to
// be checked too late (issue #12): each must now throw a SandboxOptionsError synchronously, from
// spawnSandboxed() itself, naming the field, before anything is spawned.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { flagsToPolicy } from '../lib/cli/flags';
import { SandboxOptionsError } from '../lib/errors';
import { MAX_WALL_TIME_MS, parseSize, sizeReason, timeoutSecondsReason } from '../lib/fields';
import { lintAllowEntry, parseAllowEntry } from '../lib/net/allowlist';
import { MAX_TRANSPARENT_PORTS } from '../lib/net/egress-plan';
import { splitAuthority } from '../lib/net/hostname';
import type { SandboxOptions } from '../lib/options';
import * as policy from '../lib/policy';
import { lintPolicy, validatePolicy } from '../lib/policy';
import { spawnSandboxed } from '../lib/process';
import { sharedTempDir } from './helpers';

const tmp = sharedTempDir('fields');
after(() => rmSync(tmp, { recursive: true, force: true }));

/** spawnSandboxed() must throw this, synchronously; nothing may have been started. */
function refused(options: SandboxOptions, field: string, message: RegExp): void {
  let thrown: unknown;
  try {
    const child = spawnSandboxed('true', [], { stdio: 'ignore', ...options });
    child.kill('SIGKILL');
  } catch (err) {
    thrown = err;
  }
  assert.ok(thrown instanceof SandboxOptionsError, `expected a SandboxOptionsError for ${field}, got ${thrown}`);
  assert.equal(thrown.code, 'ERR_SANDBOX_OPTIONS');
  assert.equal(thrown.field, field);
  assert.match(thrown.message, message);
  assert.ok(thrown.message.startsWith(`options.${field}: `), thrown.message);
}

describe('sizes', () => {
  it('one grammar: bytes, binary units with or without B/iB, fractions with a unit', () => {
    assert.equal(parseSize('64MiB'), 64 * 1024 ** 2);
    assert.equal(parseSize('64mb'), 64 * 1024 ** 2);
    assert.equal(parseSize('1.5g'), 1.5 * 1024 ** 3);
    assert.equal(parseSize('4096'), 4096);
    assert.equal(parseSize('4096b'), 4096);
    assert.equal(parseSize(' 8 m '), 8 * 1024 ** 2);
    assert.equal(parseSize(100), 100);
  });

  it('zero is refused, not "unlimited" (tmpfs reads size=0 as no limit)', () => {
    for (const v of ['0', 0, '0k', '0.0001k']) assert.equal(sizeReason(v), 'the size must be at least one byte', String(v));
    assert.match(sizeReason('1.5') ?? '', /a number of bytes is whole/);
    assert.match(sizeReason(1.5) ?? '', /whole number/);
    assert.match(sizeReason('12q') ?? '', /expected bytes or a number with a unit/);
  });

  it("the API refuses tmpSize '0' and 0 synchronously", () => {
    refused({ filesystem: { tmpSize: '0' } }, 'filesystem.tmpSize', /at least one byte/);
    refused({ filesystem: { tmpSize: 0 } }, 'filesystem.tmpSize', /at least one byte/);
  });
});

describe('the wall-clock limit', () => {
  it('is refused above what a timer holds (2^31-1 ms), with the range', () => {
    assert.equal(MAX_WALL_TIME_MS, 2147483647);
    refused({ limits: { wallTime: 3_000_000_000 } }, 'limits.wallTime', /at most 2147483647 ms \(24\.8 days\); leave it out for no limit/);
    refused({ limits: { wallTime: 0 } }, 'limits.wallTime', /positive number of milliseconds/);
    assert.match(timeoutSecondsReason(3_000_000) ?? '', /at most 2147483\.647 seconds/);
    assert.equal(timeoutSecondsReason(2147483), null);
  });

  it('policies and --timeout say the same (the schema format calls the same function)', () => {
    const [issue] = validatePolicy({ command: ['true'], limits: { timeout: 3000000 } });
    assert.equal(
      issue.message,
      '/limits/timeout: expected a positive number of seconds, found 3000000: at most 2147483.647 seconds (24.8 days); leave it out for no limit',
    );
    assert.throws(() => flagsToPolicy({ timeout: '3000000', command: ['true'] }), /--timeout: expected a positive number of seconds/);
  });
});

describe('egress options are checked before the spawn', () => {
  it('an invalid network.resolve', () => {
    refused(
      { network: { allow: ['example.com'], resolve: ['bogus'] } },
      'network.resolve',
      /invalid resolve entry 'bogus': expected NAME:PORT:ADDRESS/,
    );
    refused(
      { network: { allow: ['example.com'], resolve: { 'a.example:0': '127.0.0.1' } } },
      'network.resolve',
      /invalid resolve entry 'a\.example:0=127\.0\.0\.1': invalid port '0'/,
    );
  });

  it('invalid or unknown network.limits', () => {
    refused(
      { network: { allow: ['example.com'], limits: { maxConnections: -1 } } },
      'network.limits',
      /invalid limits\.maxConnections: -1/,
    );
    refused(
      { network: { allow: ['example.com'], limits: { maxConection: 5 } as never } },
      'network.limits.maxConection',
      /unknown option \(known: maxConnections, /,
    );
  });

  it(`at most ${MAX_TRANSPARENT_PORTS} ports (80 and 443 included): the limit is where the message says`, async () => {
    assert.equal(MAX_TRANSPARENT_PORTS, 30);
    const ports = (n: number) => Array.from({ length: n }, (_, i) => `a.example:${1000 + i}`);
    // 28 named ports + 80 + 443 = 30: accepted (planned, then killed before it matters).
    const child = spawnSandboxed('true', [], { stdio: 'ignore', network: { allow: ports(28) } });
    refused({ network: { allow: ports(29) } }, 'network.allow', /names 31 ports \(80 and 443 included\); at most 30 distinct ports/);
    assert.deepEqual(await child.exited, { exitCode: 0, signalCode: null });
  });

  it('an invalid allow entry names its index', () => {
    refused({ network: { allow: ['example.com', '*example.com'] } }, 'network.allow[1]', /a wildcard must be the whole first label/);
  });
});

describe('credentials are checked before the spawn', () => {
  const allow: SandboxOptions = { network: { allow: ['example.com'] } };
  it('a relative secrets[].file', () => {
    refused(
      { ...allow, secrets: [{ name: 'X', hosts: ['example.com'], source: { value: 'v' }, file: 'rel/token' }] },
      'secrets[0].file',
      /the path is relative; absolute paths only \(a file inside the sandbox\), found "rel\/token"/,
    );
  });

  it('an unreadable or non-PEM upstreamCa', () => {
    const secrets = [{ name: 'X', hosts: ['example.com'], source: { value: 'v' } }];
    refused(
      { ...allow, secrets, upstreamCa: ['/nonexistent/ca.pem'] },
      'upstreamCa[0]',
      /upstream CA \/nonexistent\/ca\.pem: cannot read: ENOENT/,
    );
    const notPem = path.join(tmp, 'not.pem');
    writeFileSync(notPem, 'hello\n');
    refused({ ...allow, secrets, upstreamCa: [notPem] }, 'upstreamCa[0]', /no PEM certificate found/);
    refused({ ...allow, secrets, upstreamCa: ['ca.pem'] }, 'upstreamCa[0]', /the path is relative/);
  });
});

describe('allow entries: one grammar, policy lint on top', () => {
  it('splits host and port in one place', () => {
    assert.deepEqual(splitAuthority('[fd00::/8]:443'), { host: '[fd00::/8]', portText: '443' });
    assert.deepEqual(splitAuthority('example.com:*'), { host: 'example.com', portText: '*' });
    assert.deepEqual(splitAuthority('::1:80'), { host: '::1:80', portText: undefined });
  });

  it('normalizes as the proxy does: IDN to punycode, trailing dot, case', () => {
    assert.equal(parseAllowEntry('Bücher.Example.').name, 'xn--bcher-kva.example');
    assert.equal(parseAllowEntry('*.bücher.example').name, '.xn--bcher-kva.example');
    assert.equal(parseAllowEntry('example.com:*').ports, 'any');
    assert.equal(parseAllowEntry('[fd00::/8]:443').kind, 'cidr');
  });

  it('*.com and 127.1 are valid, and a warning from the policy lint only', () => {
    assert.equal(parseAllowEntry('*.com').name, '.com');
    assert.match(lintAllowEntry('*.com') ?? '', /covers a whole top-level domain/);
    assert.match(lintAllowEntry('127.1') ?? '', /`127\.1` is read as the address 127\.0\.0\.1; write it in full/);
    assert.equal(lintAllowEntry('*.example.com'), null);
    assert.equal(lintAllowEntry('10.0.0.0/8'), null);
    const doc = { command: ['true'], network: { allow: ['*.com'] }, secrets: [{ name: 'T', hosts: ['*.org:443'] }] };
    assert.deepEqual(validatePolicy(doc), []);
    assert.deepEqual(
      lintPolicy(doc).map((w) => w.path),
      ['/network/allow/0', '/secrets/0/hosts/0'],
    );
  });
});

describe('policy validation has no process-global switch', () => {
  it('the backstop is an option of each call', () => {
    assert.equal((policy as Record<string, unknown>).policyValidation, undefined);
    const doc = { command: ['true'], hostname: 'box.local' };
    assert.deepEqual(validatePolicy(doc, { backstop: false }), []);
    assert.deepEqual(validatePolicy(doc, { backstop: true }), []);
    assert.equal(validatePolicy({ command: ['true'], limits: { cpus: 2000 } }, { backstop: false }).length, 1, 'the walker knows maximum');
  });
});
