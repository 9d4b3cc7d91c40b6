// Pure units of lib/secrets: the CLI form, source resolution, placeholders, scanners, scrubbing.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tls from 'node:tls';
import { RunCa, sandboxTrustEnv } from '../lib/secrets/ca';
import { prepareSecrets } from '../lib/secrets/index';
import { makePlaceholder, makeScrubber, PlaceholderSet, StreamRedactor } from '../lib/secrets/placeholder';
import { hostMatches, parseHostPattern, parseSecretSpec, resolveSecrets, SecretError } from '../lib/secrets/spec';

test('parseSecretSpec: default Bearer form with several hosts', () => {
  assert.deepEqual(parseSecretSpec('GITHUB_TOKEN@api.github.com,uploads.github.com'), {
    name: 'GITHUB_TOKEN',
    hosts: ['api.github.com', 'uploads.github.com'],
  });
});

test('parseSecretSpec: HEADER=FORMAT, query, basic, ports and sources', () => {
  assert.deepEqual(parseSecretSpec('BRAVE_API_KEY@api.search.brave.com:X-Subscription-Token={secret}'), {
    name: 'BRAVE_API_KEY',
    hosts: ['api.search.brave.com'],
    inject: { header: 'X-Subscription-Token', format: '{secret}' },
  });
  assert.deepEqual(parseSecretSpec('K@api.example.com:8443,*.example.net?api_key'), {
    name: 'K',
    hosts: ['api.example.com:8443', '*.example.net'],
    inject: { query: 'api_key' },
  });
  assert.deepEqual(parseSecretSpec('PW@registry.example.com:basic:alice'), {
    name: 'PW',
    hosts: ['registry.example.com'],
    inject: { basic: { username: 'alice' } },
  });
  assert.deepEqual(parseSecretSpec('T=env:OTHER_VAR@h.example.com:8443:Authorization=token {secret}'), {
    name: 'T',
    source: { env: 'OTHER_VAR' },
    hosts: ['h.example.com:8443'],
    inject: { header: 'Authorization', format: 'token {secret}' },
  });
  assert.deepEqual(parseSecretSpec('T=file:/run/secrets/t@h.example.com').source, { file: '/run/secrets/t' });
});

test('parseSecretSpec: malformed specs are rejected with the reason', () => {
  assert.throws(() => parseSecretSpec('NOHOST'), { code: 'ESECRETSPEC', message: "--secret 'NOHOST': expected NAME@HOST[,HOST...]" });
  assert.throws(() => parseSecretSpec('1BAD@h.example.com'), /invalid name '1BAD'/);
  assert.throws(() => parseSecretSpec('T@h.example.com:X-Key=plain'), {
    message: 'secret T: header format must contain {secret} exactly once (found 0)',
  });
  assert.throws(() => parseSecretSpec('T@h.example.com:X-Key={secret}{secret}'), /exactly once \(found 2\)/);
  assert.throws(() => parseSecretSpec('T@h.example.com:Bad Header={secret}'), /invalid header name 'Bad Header'/);
  assert.throws(() => parseSecretSpec('T@h.example.com:Host={secret}'), /header 'Host' is managed by the proxy/);
  assert.throws(() => parseSecretSpec('T@h.example.com:X-Key={secret}\r\nX-Evil: 1'), /contains CR, LF or NUL/);
  assert.throws(
    () => parseSecretSpec('T@exa mple.com'),
    /invalid allowlist entry "exa mple.com": contains a control character or whitespace/,
  );
  assert.throws(() => parseSecretSpec('T=sh:foo@h.example.com'), /source must be env:VAR or file:PATH/);
});

test('host patterns: exact, wildcard (apex separate), ports', () => {
  const exact = parseHostPattern('API.GitHub.com');
  assert.ok(hostMatches(exact, 'api.github.com', 443));
  assert.ok(hostMatches(exact, 'api.github.com.', 443));
  assert.ok(!hostMatches(exact, 'api.github.com', 8443));
  const wild = parseHostPattern('*.example.com');
  assert.ok(hostMatches(wild, 'a.b.example.com', 443));
  assert.ok(!hostMatches(wild, 'example.com', 443));
  assert.ok(!hostMatches(wild, 'badexample.com', 443));
  assert.ok(hostMatches(parseHostPattern('example.com:8443'), 'example.com', 8443));
  assert.throws(() => parseHostPattern('*.10.0.0.1'), /a wildcard needs a name after "\*\.", not an address/);
});

test('host patterns are allowlist entries: every form, normalized as the proxy normalizes hosts (issue #12)', () => {
  // IDN and a trailing dot, in the pattern or in the host asked for.
  assert.ok(hostMatches(parseHostPattern('bücher.example'), 'xn--bcher-kva.example', 443));
  assert.ok(hostMatches(parseHostPattern('example.com.'), 'EXAMPLE.com', 443));
  // Every port; an address; a CIDR with a port; a bracketed IPv6 address.
  const anyPort = parseHostPattern('example.com:*');
  assert.ok(hostMatches(anyPort, 'example.com', 8443) && hostMatches(anyPort, 'example.com', 443));
  assert.ok(hostMatches(parseHostPattern('203.0.113.7'), '203.0.113.7', 443));
  const v6 = parseHostPattern('[fd00::/8]:443');
  assert.ok(hostMatches(v6, 'fd12::1', 443));
  assert.ok(!hostMatches(v6, 'fd12::1', 80), 'the port of the entry holds');
  assert.ok(!hostMatches(v6, 'fe80::1', 443), 'outside the CIDR');
  assert.ok(hostMatches(parseHostPattern('[2001:db8::1]:8443'), '[2001:db8::1]', 8443));
  // Without a port, a secret is for 443 only (never the allowlist's plaintext 80).
  assert.ok(!hostMatches(parseHostPattern('api.example.com'), 'api.example.com', 80));
  // A whole-TLD wildcard is valid here (policy lint warns about it, lib/policy/lint.ts).
  assert.ok(hostMatches(parseHostPattern('*.com'), 'a.com', 443));
  // The CLI form carries the same entries: brackets, ':*', and a header after them.
  assert.deepEqual(parseSecretSpec('T@[fd00::/8]:443,example.com:*,*.example.org:X-Key={secret}'), {
    name: 'T',
    hosts: ['[fd00::/8]:443', 'example.com:*', '*.example.org'],
    inject: { header: 'X-Key', format: '{secret}' },
  });
});

test('resolveSecrets: a missing env var is an error naming it, not the value', () => {
  assert.throws(
    () => resolveSecrets([{ name: 'GITHUB_TOKEN', hosts: ['api.github.com'] }], {}),
    (err: unknown) => {
      assert.ok(err instanceof SecretError);
      assert.equal(err.code, 'ESECRETENV');
      assert.equal(err.path, 'GITHUB_TOKEN');
      assert.equal(err.message, "secret GITHUB_TOKEN: environment variable GITHUB_TOKEN is not set in the launcher's environment");
      return true;
    },
  );
  assert.throws(
    () => resolveSecrets([{ name: 'T', source: { env: 'SOURCE_VAR' }, hosts: ['h.example.com'] }], { T: 'x' }),
    /environment variable SOURCE_VAR is not set/,
  );
});

test('resolveSecrets: file and value sources, unreadable file named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stockade-spec-'));
  const file = join(dir, 'token');
  writeFileSync(file, 'file-token-value\n', { mode: 0o600 });
  const [a, b] = resolveSecrets([
    { name: 'A', source: { file }, hosts: ['a.example.com'] },
    { name: 'B', source: { value: 'inline' }, hosts: ['b.example.com'], inject: { header: 'X-Api-Key', format: '{secret}' } },
  ]);
  assert.equal(a.value, 'file-token-value');
  assert.equal(a.source, `file ${file}`);
  assert.deepEqual(a.inject, { kind: 'header', header: 'authorization', format: 'Bearer {secret}' });
  assert.deepEqual(b.inject, { kind: 'header', header: 'x-api-key', format: '{secret}' });
  assert.match(a.placeholder, /^stockade-ph-a-[0-9a-f]{32}$/);
  assert.notEqual(a.placeholder, resolveSecrets([{ name: 'A', source: { file }, hosts: ['a.example.com'] }])[0].placeholder);
  const missing = join(dir, 'nope');
  assert.throws(() => resolveSecrets([{ name: 'C', source: { file: missing }, hosts: ['c.example.com'] }]), {
    code: 'ESECRETFILE',
    message: `secret C: cannot read ${missing}: ENOENT`,
  });
  assert.throws(
    () => resolveSecrets([{ name: 'D', source: { value: 'bad\r\nvalue' }, hosts: ['d.example.com'] }]),
    (err: Error) => err.message === 'secret D: the value from value contains a control character' && !err.message.includes('bad'),
  );
  assert.throws(() => resolveSecrets([{ name: 'E', source: { value: 'x' }, hosts: [] }]), /hosts must list at least one host/);
});

test('PlaceholderSet finds placeholders in strings and buffers, by name', () => {
  const a = makePlaceholder('GITHUB_TOKEN');
  const b = makePlaceholder('OTHER');
  const set = new PlaceholderSet([
    { name: 'GITHUB_TOKEN', placeholder: a },
    { name: 'OTHER', placeholder: b },
  ]);
  assert.ok(set.contains(`x=${b}&y`));
  assert.ok(!set.contains('stockade-ph-github_token-0000'));
  assert.deepEqual(set.names(Buffer.from(`${b} ... ${a} ${b}`)), ['OTHER', 'GITHUB_TOKEN']);
  assert.equal(set.find('nothing here'), null);
});

test('StreamScanner catches a placeholder split across chunks at every offset', () => {
  const ph = makePlaceholder('T');
  const set = new PlaceholderSet([{ name: 'T', placeholder: ph }]);
  const body = Buffer.from(`{"data":"${'x'.repeat(40)}${ph}${'y'.repeat(10)}"}`);
  for (let cut = 1; cut < body.length; cut++) {
    const scan = set.stream();
    const first = scan.push(body.subarray(0, cut));
    const second = first.match ? first : scan.push(body.subarray(cut));
    assert.equal(second.match?.name, 'T', `cut at ${cut}`);
    // Whatever was released before the match must not contain the whole placeholder.
    assert.ok(!first.forward.toString().includes(ph));
  }
  // Ordinary data is released at once; nothing is held back.
  const scan = set.stream();
  assert.equal(scan.push(Buffer.from('data: hello\n\n')).forward.toString(), 'data: hello\n\n');
  // A dangling prefix is held until the next chunk shows it is harmless.
  const held = scan.push(Buffer.from('abc stockade-p'));
  assert.equal(held.forward.toString(), 'abc ');
  assert.equal(scan.push(Buffer.from('ost.')).forward.toString(), 'stockade-post.');
});

test('StreamScanner.release lets go only the start of the public prefix, and still finds what it starts', () => {
  const ph = makePlaceholder('T');
  const set = new PlaceholderSet([{ name: 'T', placeholder: ph }]);
  for (let cut = 1; cut < ph.length; cut++) {
    const scan = set.stream();
    const first = scan.push(Buffer.from(`abc ${ph.slice(0, cut)}`));
    assert.equal(first.forward.toString(), 'abc ');
    // The start of `stockade-ph-` may go on after a pause; once the prefix is whole, nothing.
    const released = scan.release().toString();
    assert.equal(released, cut < 12 ? ph.slice(0, cut) : '', `cut at ${cut}`);
    assert.equal(scan.releasable, 0);
    const rest = scan.push(Buffer.from(`${ph.slice(cut)} def`));
    assert.equal(rest.match?.name, 'T', `cut at ${cut}: found across the release`);
    assert.equal(rest.forward.length, 0);
  }
  // Released bytes are not forwarded twice, whatever follows them.
  const scan = set.stream();
  scan.push(Buffer.from('x stock'));
  assert.equal(scan.release().toString(), 'stock');
  assert.equal(scan.push(Buffer.from('ade')).forward.toString(), '', 'still a start of the prefix');
  assert.equal(scan.release().toString(), 'ade');
  assert.equal(scan.push(Buffer.from('-pho')).forward.toString(), '-pho');
  assert.equal(scan.push(Buffer.from('ne stockade-ph-t')).forward.toString(), 'ne ');
  assert.equal(scan.releasable, 0, 'a placeholder in the making is never released');
  assert.equal(scan.release().length, 0);
  assert.equal(scan.end().toString(), 'stockade-ph-t');
  assert.equal(scan.end().length, 0);
});

test('StreamRedactor masks a real value split across chunks, keeping the length', () => {
  const secret = 'ghp_realvalue1234567890';
  const body = `error: token ${secret} is invalid`;
  for (let cut = 1; cut < body.length; cut++) {
    const r = new StreamRedactor([secret]);
    const out = Buffer.concat([r.push(Buffer.from(body.slice(0, cut))), r.push(Buffer.from(body.slice(cut))), r.end()]).toString();
    assert.equal(out, `error: token ${'*'.repeat(secret.length)} is invalid`);
  }
});

test('scrubber removes raw, URL-encoded and basic-auth forms of a value', () => {
  const scrub = makeScrubber([{ name: 'PW', value: 's3cr3t/+=', basicUser: 'alice' }]);
  const basic = Buffer.from('alice:s3cr3t/+=').toString('base64');
  assert.equal(
    scrub(`a s3cr3t/+= b ${encodeURIComponent('s3cr3t/+=')} c Basic ${basic}`),
    'a [redacted PW] b [redacted PW] c Basic [redacted PW]',
  );
});

test('RunCa: leaves are cached per host, trust env names the bundle', async () => {
  const ca = await RunCa.create();
  const [l1, l2] = await Promise.all([ca.leaf('api.example.com'), ca.leaf('API.example.com')]);
  assert.equal(l1, l2);
  assert.equal(ca.cachedLeaves, 1);
  const ip = await ca.leaf('127.0.0.1');
  assert.notEqual(ip.certPem, l1.certPem);
  assert.ok(ca.bundleText('HOST BUNDLE').startsWith('HOST BUNDLE\n-----BEGIN CERTIFICATE-----'));
  assert.ok(ca.bundleText('').startsWith(`${tls.rootCertificates[0]}\n`), "a host without a bundle: node's roots");
  assert.ok(ca.bundleText('').endsWith(`\n${ca.certPem}`));
  assert.deepEqual(sandboxTrustEnv('/etc/ssl/certs/ca-certificates.crt'), {
    SSL_CERT_FILE: '/etc/ssl/certs/ca-certificates.crt',
    REQUESTS_CA_BUNDLE: '/etc/ssl/certs/ca-certificates.crt',
    CURL_CA_BUNDLE: '/etc/ssl/certs/ca-certificates.crt',
  });
});

test('prepareSecrets: fails before anything starts, naming the variable or CA file', async () => {
  await assert.rejects(prepareSecrets({ secrets: [{ name: 'BRAVE_API_KEY', hosts: ['api.search.brave.com'] }], env: {} }), {
    code: 'ESECRETENV',
    message: "secret BRAVE_API_KEY: environment variable BRAVE_API_KEY is not set in the launcher's environment",
  });
  await assert.rejects(
    prepareSecrets({ secrets: [{ name: 'T', hosts: ['h.example.com'] }], env: { T: 'v' }, upstreamCa: ['/nonexistent/ca.pem'] }),
    { code: 'EUPSTREAMCA', message: 'upstream CA /nonexistent/ca.pem: cannot read: ENOENT' },
  );
});

test('prepareSecrets: the sandbox gets placeholders and trust variables, never the value', async () => {
  const p = await prepareSecrets({ secrets: [parseSecretSpec('GITHUB_TOKEN@api.github.com')], env: { GITHUB_TOKEN: 'ghp_real' } });
  try {
    assert.match(p.env.GITHUB_TOKEN, /^stockade-ph-github_token-[0-9a-f]{32}$/);
    assert.equal(p.env.SSL_CERT_FILE, '/etc/ssl/certs/ca-certificates.crt');
    assert.ok(!JSON.stringify(p.env).includes('ghp_real'));
    assert.ok(p.bundle.endsWith(p.ca.certPem));
    assert.ok(p.interceptor.wants('api.github.com', 443));
    assert.ok(!p.interceptor.wants('api.github.com', 8443));
    assert.ok(!p.interceptor.wants('github.com', 443));
  } finally {
    await p.interceptor.close();
  }
});
