// Credentials that never enter the sandbox (issue #4): the public surface of lib/secrets for the
// launcher and the egress proxy.
import type { Logger } from 'pino';
import type { SecretOptions } from '../options';
import { RunCa, sandboxTrust } from './ca';
import { SecretInterceptor } from './intercept';
import { resolveSecrets } from './spec';

export { HOST_CA_BUNDLE_PATHS, type LeafCertificate, RunCa, readCaFiles, readHostCaBundle, sandboxTrust, sandboxTrustEnv } from './ca';
export {
  type InterceptTarget,
  SecretInterceptor,
  type SecretInterceptorOptions,
  type SecretViolation,
  type ViolationRule,
} from './intercept';
export { makePlaceholder, makeScrubber, PLACEHOLDER_PREFIX, PlaceholderSet } from './placeholder';
export {
  hostMatches,
  parseHostPattern,
  parseSecretSpec,
  type ResolvedSecret,
  resolveSecrets,
  SecretError,
  type SecretInjection,
} from './spec';

export interface PreparedSecrets {
  interceptor: SecretInterceptor;
  ca: RunCa;
  /** For the sandbox's environment: each secret's placeholder, plus the CA trust variables. */
  env: Record<string, string>;
  /** Text for the sandbox's CA bundle file (host CAs + the per-run CA). */
  bundle: string;
}

/**
 * One call for the launcher: resolves every secret (throwing SecretError, naming the variable or
 * file, before anything is spawned), creates the per-run CA and the interceptor, and returns what
 * the sandbox must see.
 */
export async function prepareSecrets(options: {
  secrets: readonly SecretOptions[];
  upstreamCa?: readonly string[];
  logger?: Logger;
  /** The launcher's environment the default sources read from. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Where the bundle is mounted inside the sandbox. Default /etc/ssl/certs/ca-certificates.crt. */
  bundlePath?: string;
}): Promise<PreparedSecrets> {
  const resolved = resolveSecrets(options.secrets, options.env);
  const ca = await RunCa.create();
  const interceptor = new SecretInterceptor({ secrets: resolved, ca, upstreamCa: options.upstreamCa, logger: options.logger });
  const trust = sandboxTrust(ca, options.bundlePath);
  return { interceptor, ca, env: { ...interceptor.placeholders, ...trust.env }, bundle: trust.bundle };
}
