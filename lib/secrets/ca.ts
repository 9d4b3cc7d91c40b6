// The per-run certificate authority that lets the proxy terminate TLS for hosts carrying a secret,
// and the trust material on both sides: the bundle the sandbox sees (host CAs + this CA) and the
// roots the proxy verifies upstream servers against (host CAs + the user's extra CAs).
//
// The CA key is generated in memory with WebCrypto, is not extractable, and is never written to
// disk by us; it dies with the process. ECDSA P-256 keeps generation and handshakes cheap.
//
// @peculiar/x509 resolves its algorithm providers through tsyringe, which needs a Reflect
// metadata polyfill loaded first (a global side effect, documented by the library): both come
// from lib/bundles.ts.
import tls = require('node:tls');

import { randomBytes, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type * as X509 from '@peculiar/x509';
import { x509 as loadX509 } from '../bundles';

type CryptoKeyPair = webcrypto.CryptoKeyPair;

import { readUpstreamCa } from './upstream-ca';

const x509 = loadX509();
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 24 * 60 * 60 * 1000;

/**
 * Where distributions keep the host's CA bundle (Debian/Ubuntu/Alpine, Fedora/RHEL, openSUSE,
 * Arch). Node's tls.rootCertificates is Mozilla's list compiled into node, which misses CAs an
 * administrator added to the system store, so we read the system file as well.
 */
export const HOST_CA_BUNDLE_PATHS = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/ca-certificates/extracted/tls-ca-bundle.pem',
  '/etc/ssl/cert.pem',
];

/** Text of the first readable host CA bundle, or '' if the host has none. */
export function readHostCaBundle(paths: readonly string[] = HOST_CA_BUNDLE_PATHS): string {
  for (const p of paths) {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      // Try the next distribution's location.
    }
  }
  return '';
}

/** Reads the user's extra upstream CAs (PEM files); a missing file is an error naming it. */
export function readCaFiles(paths: readonly string[]): string[] {
  return paths.map(readUpstreamCa);
}

/**
 * The roots the proxy verifies upstream servers against: node's bundled roots, the host's bundle
 * and the extra CAs. Built once, at the first intercepted connection (UpstreamPool): each root is
 * parsed, ~0.2 ms apiece on the development VM, and the host's bundle mostly repeats node's
 * roots, so only the certificates node lacks are added (59 ms → 29 for Debian's 144 over node's 144).
 */
export function upstreamSecureContext(extraCaPem: readonly string[] = [], hostBundle = readHostCaBundle()): tls.SecureContext {
  const body = (pem: string) => pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, '');
  const known = new Set(tls.rootCertificates.map(body));
  const host = (hostBundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).filter(
    (pem) => !known.has(body(pem)),
  );
  return tls.createSecureContext({ ca: [...tls.rootCertificates, ...host, ...extraCaPem] });
}

/**
 * The environment entries that make common TLS stacks inside the sandbox trust the bundle at
 * `bundlePath` (a file that holds the host CAs and the per-run CA): OpenSSL-based tools and Python
 * ssl (SSL_CERT_FILE), requests, curl. node is pointed at the same file through SSL_CERT_FILE and
 * --use-openssl-ca in NODE_OPTIONS, which the proxy's environment composes (lib/net/env.ts,
 * ProxyEnvOptions.trustStore: why not NODE_EXTRA_CA_CERTS).
 */
export function sandboxTrustEnv(bundlePath = '/etc/ssl/certs/ca-certificates.crt'): Record<string, string> {
  return {
    SSL_CERT_FILE: bundlePath,
    REQUESTS_CA_BUNDLE: bundlePath,
    CURL_CA_BUNDLE: bundlePath,
  };
}

/**
 * Everything the sandbox needs to trust the per-run CA: the bundle text to mount at `bundlePath`
 * (host CAs + the run's CA, so ordinary hosts still verify) and the env entries pointing at it.
 */
export function sandboxTrust(
  ca: RunCa,
  bundlePath = '/etc/ssl/certs/ca-certificates.crt',
  hostBundle = readHostCaBundle(),
): { env: Record<string, string>; bundle: string } {
  return { env: sandboxTrustEnv(bundlePath), bundle: ca.bundleText(hostBundle) };
}

function serial(): string {
  // Positive 127-bit serial, as RFC 5280 asks for unpredictable, non-negative serials.
  const b = randomBytes(16);
  b[0] &= 0x7f;
  return b.toString('hex');
}

function pemKey(pkcs8: ArrayBuffer): string {
  const b64 = Buffer.from(pkcs8).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN PRIVATE KEY-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END PRIVATE KEY-----\n`;
}

export interface RunCaOptions {
  /** Subject common name. Default 'stockade per-run CA'. */
  commonName?: string;
  /** Validity of the CA and its leaves in days. Default 7 (a run rarely lasts longer; short is safer). */
  validityDays?: number;
}

/** A leaf for one host: PEMs for inspection, and the SecureContext the TLS server uses. */
export interface LeafCertificate {
  host: string;
  certPem: string;
  keyPem: string;
  context: tls.SecureContext;
}

/**
 * The per-run CA. create() makes a fresh key pair and self-signed certificate; leaf() issues (once
 * per host, cached) a certificate for a host name or IP address, chained to it.
 */
export class RunCa {
  /** The CA certificate, PEM: what goes into the sandbox's trust bundle. */
  readonly certPem: string;
  private readonly cert: X509.X509Certificate;
  private readonly keys: CryptoKeyPair;
  private readonly validityDays: number;
  private readonly leaves = new Map<string, Promise<LeafCertificate>>();
  // One key pair shared by all leaves: P-256 generation is cheap, but sharing also keeps the first
  // handshake to a new host fast; each leaf still has its own certificate and serial.
  private leafKeys: Promise<{ keys: CryptoKeyPair; pem: string }> | undefined;

  private constructor(cert: X509.X509Certificate, keys: CryptoKeyPair, validityDays: number) {
    this.cert = cert;
    this.keys = keys;
    this.certPem = cert.toString('pem');
    this.validityDays = validityDays;
  }

  static async create(options: RunCaOptions = {}): Promise<RunCa> {
    const validityDays = options.validityDays ?? 7;
    const cn = (options.commonName ?? 'stockade per-run CA').replace(/[,=+<>#;"\\]/g, ' ');
    // extractable: false — the CA private key can sign but can never be exported, not even by us.
    const keys = await webcrypto.subtle.generateKey(EC_ALG, false, ['sign', 'verify']);
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=${cn}, O=stockade`,
      // Backdated an hour against clock skew between host and sandbox clients.
      notBefore: new Date(now - 60 * 60 * 1000),
      notAfter: new Date(now + validityDays * DAY),
      keys: keys as CryptoKeyPair,
      signingAlgorithm: EC_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return new RunCa(cert, keys as CryptoKeyPair, validityDays);
  }

  /** The sandbox's CA bundle: the host's CAs followed by this CA. */
  bundleText(hostBundle = readHostCaBundle()): string {
    // node inside trusts this file in place of its compiled-in roots (--use-openssl-ca): a host
    // without a bundle gets those roots here, so that hosts without a secret still verify.
    const roots = hostBundle || `${tls.rootCertificates.join('\n')}\n`;
    const sep = roots.endsWith('\n') ? '' : '\n';
    return `${roots}${sep}${this.certPem}`;
  }

  /** Issues (or returns the cached) leaf certificate for `host`, a DNS name or an IP literal. */
  leaf(host: string): Promise<LeafCertificate> {
    const key = host.toLowerCase().replace(/\.$/, '');
    let p = this.leaves.get(key);
    if (!p) {
      p = this.issue(key);
      // A failed issuance must not poison the cache.
      p.catch(() => this.leaves.delete(key));
      this.leaves.set(key, p);
    }
    return p;
  }

  /** Number of cached leaves (for tests and metrics). */
  get cachedLeaves(): number {
    return this.leaves.size;
  }

  private async issue(host: string): Promise<LeafCertificate> {
    if (!this.leafKeys) {
      this.leafKeys = (async () => {
        const keys = (await webcrypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
        return { keys, pem: pemKey(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
      })();
    }
    const { keys, pem } = await this.leafKeys;
    const now = Date.now();
    const san = isIP(host) ? { type: 'ip' as const, value: host } : { type: 'dns' as const, value: host };
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: isIP(host) ? 'CN=stockade' : `CN=${host}`,
      issuer: this.cert.subject,
      notBefore: new Date(now - 60 * 60 * 1000),
      notAfter: new Date(now + this.validityDays * DAY),
      publicKey: keys.publicKey,
      signingKey: this.keys.privateKey,
      signingAlgorithm: EC_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension([san], false),
        await x509.AuthorityKeyIdentifierExtension.create(this.cert, false),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const certPem = cert.toString('pem');
    // The chain includes the CA so clients that only trust it as an intermediate still build a path.
    const context = tls.createSecureContext({ key: pem, cert: `${certPem}\n${this.certPem}` });
    return { host, certPem, keyPem: pem, context };
  }
}
