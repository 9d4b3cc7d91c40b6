// Policies: the document a user writes per server, its schema, profiles and merging rules.
export { checkHostPattern, parseSize, toolMatches } from './formats';
export { lintPolicy } from './lint';
export { loadPolicy, MAX_POLICY_BYTES, parsePolicyText } from './load';
export { mergePolicies } from './merge';
export { guessProfile, nodeProfile, type ProfileContext, type ProfileResult, profileFor, pythonProfile } from './profiles';
export { type EffectivePolicy, effectivePolicy, type PolicyLaunch, policyToOptions, type ResolveContext } from './resolve';
export type { Policy, PolicyFilesystem, PolicyLimits, PolicyNetwork, ProfileName } from './types';
export {
  assertPolicy,
  closest,
  levenshtein,
  PolicyError,
  type PolicyIssue,
  policySchema,
  type ValidationOptions,
  validatePolicy,
} from './validate';
