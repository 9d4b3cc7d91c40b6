export { SandboxError, SandboxOptionsError } from './errors';
export type {
  EgressOptions,
  SandboxFilesystem,
  SandboxLimits,
  SandboxNetwork,
  SandboxOptions,
  SecretOptions,
  StdioSlot,
} from './options';
export { type HostCheck, type HostReport, probeHost } from './probe';
export { type SandboxExit, SandboxedProcess, spawnSandboxed } from './process';
export { type ToolFilter, wireToolFilter } from './mcp';
export { loadPolicy, mergeFlags, type Policy, PolicyError, policyToOptions, validatePolicy } from './policy';
