// Pure units: host normalization (odd encodings included), allowlist parsing and matching, the
// SSRF classifier, resolver-override parsing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Allowlist, parseAllowEntry } from '../lib/net/allowlist';
import { normalizeHost, splitHostPort } from '../lib/net/hostname';
import { canonicalIp, parseInetAton } from '../lib/net/ip';
import { Resolver } from '../lib/net/resolve';
import { checkAddress, classifyAddress } from '../lib/net/ssrf';

describe('normalizeHost', () => {
  it('lowercases, strips one trailing dot, converts IDN to punycode', () => {
    assert.deepEqual(normalizeHost('API.Example.COM.'), { kind: 'name', host: 'api.example.com' });
    assert.deepEqual(normalizeHost('bücher.de'), { kind: 'name', host: 'xn--bcher-kva.de' });
    assert.deepEqual(normalizeHost('xn--bcher-kva.de'), { kind: 'name', host: 'xn--bcher-kva.de' });
  });

  it('treats every numeric IPv4 encoding as the address it means', () => {
    for (const spelling of [
      '2130706433',
      '0x7f.1',
      '017700000001',
      '127.1',
      '0x7f000001',
      '127.0.0.1',
      '0177.0.0.01',
      '127.0.0.1.',
      '１２７.０.０.１',
    ]) {
      assert.deepEqual(normalizeHost(spelling), { kind: 'ip', host: '127.0.0.1', family: 4 }, spelling);
    }
    assert.deepEqual(normalizeHost('169.254.43518'), { kind: 'ip', host: '169.254.169.254', family: 4 });
    assert.equal(parseInetAton('0x7f.0x0.0x0.0x1'), '127.0.0.1');
    assert.equal(parseInetAton('4294967296'), null);
  });

  it('canonicalizes IPv6 literals, bracketed or not', () => {
    assert.deepEqual(normalizeHost('[::FFFF:127.0.0.1]'), { kind: 'ip', host: '::ffff:7f00:1', family: 6 });
    assert.deepEqual(normalizeHost('0:0:0:0:0:0:0:1'), { kind: 'ip', host: '::1', family: 6 });
    assert.equal(canonicalIp('2001:DB8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  });

  it('refuses NUL, control characters, whitespace, empty labels and overlong names, naming the input', () => {
    const cases: [string, RegExp][] = [
      ['good.test\0.evil.test', /invalid host "good\.test\\u0000\.evil\.test": contains a control character or whitespace$/],
      ['good.test\r\nX: y', /control character or whitespace/],
      ['good .test', /control character or whitespace/],
      ['good\u00a0test', /control character or whitespace/],
      ['good..test', /: empty label$/],
      ['good.test..', /: empty label$/],
      ['.good.test', /: empty label$/],
      ['', /: empty$/],
      [`${'a'.repeat(64)}.test`, /label longer than 63 characters/],
      [`${'abcdefghi.'.repeat(26)}test`, /longer than 253 characters/],
      ['a%2eb.test', /character not allowed in a host name/],
      ['user@good.test', /character not allowed in a host name/],
      ['good.test/path', /character not allowed in a host name/],
      ['-bad.test', /invalid label '-bad'/],
      ['foo.0x7f', /numeric host that is not a valid IPv4 address/],
      ['1.2.3.4.5', /numeric host that is not a valid IPv4 address/],
      ['256.1.1.1', /numeric host that is not a valid IPv4 address/],
      ['[good.test]', /bracketed but not an IPv6 address/],
      ['::g', /contains ":" but is not an IPv6 address/],
    ];
    for (const [input, re] of cases) assert.throws(() => normalizeHost(input), re, JSON.stringify(input));
  });

  it('splits authorities', () => {
    assert.deepEqual(splitHostPort('good.test:443'), { host: 'good.test', port: 443 });
    assert.deepEqual(splitHostPort('[::1]:8080'), { host: '[::1]', port: 8080 });
    assert.deepEqual(splitHostPort('::1'), { host: '::1', port: undefined });
    assert.throws(() => splitHostPort('good.test:0'), /invalid port '0'/);
    assert.throws(() => splitHostPort('good.test:65536'), /invalid port '65536'/);
    assert.throws(() => splitHostPort('good.test:+80'), /invalid port '\+80'/);
  });
});

describe('Allowlist', () => {
  const list = new Allowlist([
    'api.example.com',
    '*.cdn.example.com',
    'db.example.com:5432',
    'any.example.com:*',
    '10.1.0.0/16',
    '192.168.1.5:8080',
    '[fd00::/8]:443',
    '2001:db8::1',
  ]);

  it('matches exact names on 80 and 443 only when no port is given', () => {
    assert.deepEqual(list.match('API.example.com.', 443), {
      allowed: true,
      rule: 'api.example.com',
      host: { kind: 'name', host: 'api.example.com' },
    });
    assert.equal(list.match('api.example.com', 80).allowed, true);
    assert.equal(
      list.match('api.example.com', 22).rule,
      'port 22 not allowed for api.example.com ("api.example.com" allows ports 80, 443)',
    );
    assert.equal(list.match('x.api.example.com', 443).rule, 'no allowlist entry matches x.api.example.com');
  });

  it('wildcards cover subdomains at any depth but not the apex', () => {
    assert.equal(list.match('a.cdn.example.com', 443).rule, '*.cdn.example.com');
    assert.equal(list.match('a.b.cdn.example.com', 443).rule, '*.cdn.example.com');
    assert.equal(list.match('cdn.example.com', 443).rule, 'no allowlist entry matches cdn.example.com');
    assert.equal(list.match('evilcdn.example.com', 443).rule, 'no allowlist entry matches evilcdn.example.com');
  });

  it('honours explicit and wildcard ports', () => {
    assert.equal(list.match('db.example.com', 5432).rule, 'db.example.com:5432');
    assert.equal(
      list.match('db.example.com', 443).rule,
      'port 443 not allowed for db.example.com ("db.example.com:5432" allows port 5432)',
    );
    assert.equal(list.match('any.example.com', 6379).rule, 'any.example.com:*');
  });

  it('matches addresses only through address entries, in any spelling', () => {
    assert.equal(list.match('10.1.2.3', 443).rule, '10.1.0.0/16');
    assert.equal(list.match('0x0a.0x01.0x0203', 443).rule, '10.1.0.0/16');
    assert.equal(list.match('10.2.0.1', 443).rule, 'no allowlist entry matches 10.2.0.1');
    assert.equal(list.match('192.168.1.5', 8080).rule, '192.168.1.5:8080');
    assert.equal(list.match('[fd12::1]', 443).rule, '[fd00::/8]:443');
    assert.equal(list.match('2001:0db8::0001', 80).rule, '2001:db8::1');
    // A spelled-out loopback never matches a name entry.
    assert.equal(list.match('2130706433', 443).rule, 'no allowlist entry matches 127.0.0.1');
  });

  it('reports invalid hosts as the denial rule', () => {
    assert.deepEqual(list.match('api.example.com\0.evil', 443), {
      allowed: false,
      rule: 'invalid host "api.example.com\\u0000.evil": contains a control character or whitespace',
    });
  });

  it('rejects bad entries with a message naming the entry', () => {
    assert.throws(() => parseAllowEntry('*'), /^TypeError: invalid allowlist entry "\*": /);
    assert.throws(
      () => parseAllowEntry('a.*.example.com'),
      /invalid allowlist entry "a\.\*\.example\.com": a wildcard must be the whole first label/,
    );
    assert.throws(() => parseAllowEntry('example.com:99999'), /invalid allowlist entry "example\.com:99999": invalid port '99999'/);
    assert.throws(
      () => parseAllowEntry('10.0.0.0/33'),
      /invalid allowlist entry "10\.0\.0\.0\/33": invalid CIDR '10\.0\.0\.0\/33': prefix longer than 32/,
    );
    assert.throws(() => parseAllowEntry('exa mple.com'), /invalid allowlist entry "exa mple\.com": contains a control character/);
    assert.throws(() => parseAllowEntry(''), /invalid allowlist entry "": empty/);
    assert.throws(() => new Allowlist('x' as unknown as string[]), /allow must be an array of strings/);
  });
});

describe('SSRF classifier', () => {
  it('classifies the non-global ranges', () => {
    const cases: [string, string][] = [
      ['127.0.0.1', 'loopback'],
      ['10.0.0.1', 'private'],
      ['172.16.5.4', 'private'],
      ['192.168.0.1', 'private'],
      ['169.254.169.254', 'link-local'],
      ['100.64.0.1', 'cgnat'],
      ['224.0.0.1', 'multicast'],
      ['0.0.0.0', 'unspecified'],
      ['255.255.255.255', 'broadcast'],
      ['198.18.0.1', 'benchmarking'],
      ['::1', 'loopback'],
      ['::', 'unspecified'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:169.254.169.254', 'link-local'],
      ['64:ff9b::a00:1', 'private'],
      ['2002:7f00:1::', 'loopback'],
      ['fd00::1', 'unique-local'],
      ['fe80::1', 'link-local'],
      ['ff02::1', 'multicast'],
      ['8.8.8.8', 'public'],
      ['2606:4700::1111', 'public'],
    ];
    for (const [addr, kind] of cases) assert.equal(classifyAddress(addr), kind, addr);
  });

  it('refuses non-public addresses unless named', () => {
    assert.deepEqual(checkAddress('169.254.169.254', undefined), {
      allowed: false,
      class: 'link-local',
      rule: 'ssrf: 169.254.169.254 is a link-local address and no allowlist or resolve entry names it',
    });
    assert.deepEqual(checkAddress('127.0.0.1', 'local.test:80:127.0.0.1'), {
      allowed: true,
      class: 'loopback',
      rule: 'local.test:80:127.0.0.1',
    });
    assert.equal(checkAddress('93.184.216.34', undefined).allowed, true);
  });
});

describe('Resolver override', () => {
  it('parses curl-style and object forms, IPv6 and address lists', async () => {
    const r = new Resolver(['good.test:443:127.0.0.2', 'six.test:80:[::1]', 'many.test:*:127.0.0.3,127.0.0.4'], async () => {
      throw new Error('no real DNS in tests');
    });
    assert.deepEqual(await r.resolve('good.test', 443), [{ address: '127.0.0.2', family: 4, override: 'good.test:443:127.0.0.2' }]);
    assert.deepEqual(await r.resolve('six.test', 80), [{ address: '::1', family: 6, override: 'six.test:80:[::1]' }]);
    assert.equal((await r.resolve('many.test', 1234)).length, 2);
    await assert.rejects(r.resolve('good.test', 80), /no real DNS in tests/);
    const o = new Resolver({ 'GOOD.test:8080': '127.0.0.9', 'bare.test': '127.0.0.8' });
    assert.equal((await o.resolve('good.test', 8080))[0].address, '127.0.0.9');
    assert.equal((await o.resolve('bare.test', 1))[0].address, '127.0.0.8');
  });

  it('rejects bad entries naming them', () => {
    assert.throws(() => new Resolver(['good.test:443']), /invalid resolve entry 'good\.test:443': expected NAME:PORT:ADDRESS/);
    assert.throws(
      () => new Resolver(['good.test:443:example.com']),
      /invalid resolve entry 'good\.test:443:example\.com': 'example\.com' is not an IP address/,
    );
    assert.throws(() => new Resolver(['good.test:x:127.0.0.1']), /invalid port 'x'/);
    assert.throws(() => new Resolver(['127.0.0.1:80:127.0.0.2']), /an IP address cannot be overridden/);
  });
});
