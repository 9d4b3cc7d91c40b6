export { AbortError, MaxBufferError, SandboxError, SandboxOptionsError } from './errors';
export type { LimitViolation } from './limits/watch';
export { type ToolFilter, ToolGrants, type ToolGrantsSpec, wireToolFilter } from './mcp';
export type { CallRef, GrantScope, ScopeVerdict } from './net/decision';
export type {
  EgressOptions,
  KernelBudgets,
  SandboxFilesystem,
  SandboxLimits,
  SandboxNetwork,
  SandboxOptions,
  SecretOptions,
  StdioSlot,
} from './options';
export { loadPolicy, type Policy, PolicyError, policyToOptions, validatePolicy } from './policy';
export { type HostCheck, type HostReport, probeHost } from './probe';
export { type SandboxExit, SandboxedProcess, spawnSandboxed } from './process';
export { type RunSandboxedOptions, runSandboxed, type SandboxResult } from './run-sandboxed';
export type { SeccompViolation } from './violations';
