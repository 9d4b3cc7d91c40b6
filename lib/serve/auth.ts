// Who is calling the gateway. Two ways in, both as `Authorization: Bearer TOKEN`:
//
// - Static tokens, kept hashed at rest: one line per principal, `NAME sha256:HEX`, in a file or
//   an environment variable. The tokens are random and long (`stockade serve --new-token NAME`
//   makes one), so a plain SHA-256 is the right hash: a slow password hash protects guessable
//   secrets, and these are not guessable; a digest lookup also costs nothing per request.
// - OAuth 2.1 resource-server mode (MCP's authorization spec): a JWT access token whose
//   signature verifies against the authorization server's JWKS, whose `iss` is the configured
//   issuer, whose `aud` names this gateway (RFC 8707), and which has not expired. jose does the
//   verification: JOSE is easy to get subtly wrong (alg confusion, `none`, clock skew), and it
//   is the well-kept library made for exactly this. Symmetric algorithms are never accepted.
//
// The token itself never goes further than this file: the sandboxed server and its upstreams
// see neither the client's token nor anything derived from it.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { OAuthConfig, ServeConfig } from './config';

export interface Principal {
  /** Stable name of the caller: the token's name, or `ISSUER#SUB` for OAuth. */
  id: string;
  via: 'token' | 'oauth';
}

export class AuthError extends Error {
  constructor(
    message: string,
    /** RFC 6750 error code for WWW-Authenticate. */
    readonly oauthError: 'invalid_request' | 'invalid_token' = 'invalid_token',
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** A new random token and the line to put in the tokens file for it. */
export function newToken(name: string): { token: string; line: string } {
  if (!/^[A-Za-z0-9._@-]{1,128}$/.test(name))
    throw new Error(`a principal name is letters, digits and . _ @ - (found ${JSON.stringify(name)})`);
  const token = `stk_${randomBytes(32).toString('base64url')}`;
  return { token, line: `${name} sha256:${sha256(token).toString('hex')}` };
}

/** Parses the tokens file format: `NAME sha256:HEX` per line, `#` comments, blank lines. */
export function parseTokenLines(text: string, where: string): Map<string, string> {
  const byDigest = new Map<string, string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^([A-Za-z0-9._@-]{1,128})\s+sha256:([0-9a-f]{64})$/.exec(line);
    if (!m) throw new Error(`${where}:${i + 1}: expected "NAME sha256:HEX" (a hash, never the token itself)`);
    byDigest.set(m[2], m[1]);
  });
  return byDigest;
}

type JwtVerify = typeof import('jose').jwtVerify;
type KeySet = Parameters<JwtVerify>[1];

export class Authenticator {
  private readonly tokens?: Map<string, string>;
  private readonly oauth?: OAuthConfig;
  private keys?: KeySet;
  private jwtVerify?: JwtVerify;

  constructor(config: ServeConfig['auth']) {
    if (config.tokens) {
      const text = 'file' in config.tokens ? readFileSync(config.tokens.file, 'utf8') : (process.env[config.tokens.env] ?? '');
      const where = 'file' in config.tokens ? config.tokens.file : `$${config.tokens.env}`;
      this.tokens = parseTokenLines(text, where);
    }
    this.oauth = config.oauth;
  }

  get oauthEnabled(): boolean {
    return this.oauth !== undefined;
  }

  /** Authenticates an Authorization header value; throws AuthError. */
  async authenticate(header: string | undefined): Promise<Principal> {
    if (header === undefined) throw new AuthError('missing Authorization: Bearer token', 'invalid_request');
    const m = /^Bearer ([A-Za-z0-9._~+/=-]{1,8192})$/i.exec(header);
    if (!m) throw new AuthError('the Authorization header is not a Bearer token', 'invalid_request');
    const token = m[1];
    if (this.tokens) {
      // Looked up by digest: what the lookup's timing could reveal is about the digest, which
      // says nothing usable about a token (no timingSafeEqual needed, as for any hash lookup).
      const name = this.tokens.get(sha256(token).toString('hex'));
      if (name !== undefined) return { id: name, via: 'token' };
    }
    if (this.oauth && token.split('.').length === 3) return this.verifyJwt(token, this.oauth);
    throw new AuthError('unknown or invalid token');
  }

  private async verifyJwt(token: string, oauth: OAuthConfig): Promise<Principal> {
    if (!this.jwtVerify || !this.keys) {
      // Loaded on first use: token-only gateways never load jose.
      const jose = require('jose') as typeof import('jose');
      this.jwtVerify = jose.jwtVerify;
      this.keys = /^https?:\/\//.test(oauth.jwks)
        ? jose.createRemoteJWKSet(new URL(oauth.jwks))
        : jose.createLocalJWKSet(JSON.parse(readFileSync(oauth.jwks, 'utf8')));
    }
    try {
      const { payload } = await this.jwtVerify(token, this.keys, {
        issuer: oauth.issuer,
        audience: oauth.audience,
        algorithms: oauth.algorithms ?? ['RS256', 'ES256', 'EdDSA'],
        requiredClaims: ['exp', 'sub'],
        clockTolerance: 30,
      });
      return { id: `${oauth.issuer}#${payload.sub}`, via: 'oauth' };
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      const why = code === 'ERR_JWT_EXPIRED' ? 'the token has expired' : `the token was refused (${code || (err as Error).message})`;
      throw new AuthError(why);
    }
  }
}
