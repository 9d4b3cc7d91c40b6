// The policy document, as written by a user in JSON or YAML. stockade.schema.json at the package
// root is the published contract; these types mirror it and must change together with it.
import type { KernelBudgets, SecretOptions } from '../options';

export type ProfileName = 'node' | 'python';

export interface PolicyFilesystem {
  readOnly?: string[];
  readWrite?: string[];
  /** 'tmpfs' (default) or an absolute host directory bound read-write, so data persists. */
  home?: 'tmpfs' | string;
  tmpSize?: number | string;
  /** Paths under a grant that stay invisible (an empty file or directory bound over them). */
  deny?: string[];
  /** false turns off the built-in denials (.env*, .git/config, .ssh, .aws, .npmrc, ...). Default true. */
  denyDefaults?: boolean;
  /** Grants holding a unix socket or FIFO are refused unless this is true. */
  allowSockets?: boolean;
}

export interface PolicyNetworkProxy {
  allow: string[];
  resolve?: string[] | Record<string, string>;
}

export type PolicyNetwork = 'none' | 'host' | PolicyNetworkProxy;

export interface PolicyLimits {
  memory?: number | string;
  pids?: number;
  cpu?: number;
  cpus?: number;
  openFiles?: number;
  fileSize?: number | string;
  /** Wall-clock seconds (SandboxLimits.wallTime is milliseconds). */
  timeout?: number;
  /** The sandbox's own kernel budgets (SandboxLimits.kernel). */
  kernel?: KernelBudgets;
}

/** An exact registry package an `npx -y NAME` or `uvx NAME` server must be (lib/cli/package-pin.ts). */
export interface PackagePin {
  name: string;
  version: string;
  /** npm's dist.integrity of the tarball, 'sha512-<base64>'; PyPI: the wheel's 'sha256:<hex>'. */
  integrity: string;
  /** PyPI: the pinned wheel's file name. */
  file?: string;
}

/** What one tool (or pattern) is granted beyond the base grant while its calls are in flight. */
export interface PolicyToolGrant {
  /** Allowlist entries reachable only during the tool's calls. */
  network?: string[];
  /** Names of `secrets` injected only during the tool's calls. */
  secrets?: string[];
}

export interface PolicyMcp {
  /**
   * The tools the client may see and call: a list of names or patterns, or an object whose keys
   * are the names or patterns and whose values are their per-tool grants (lib/mcp/tool-grants.ts).
   */
  tools?: string[] | Record<string, PolicyToolGrant>;
}

/** The tool names or patterns of `mcp.tools`, in either form. */
export function toolPatterns(tools: PolicyMcp['tools']): string[] | undefined {
  if (tools === undefined) return undefined;
  return Array.isArray(tools) ? [...tools] : Object.keys(tools);
}

export interface Policy {
  $schema?: string;
  command?: string[];
  args?: string[];
  cwd?: string;
  profile?: ProfileName;
  package?: PackagePin;
  filesystem?: PolicyFilesystem;
  network?: PolicyNetwork;
  env?: Record<string, string | true>;
  secrets?: SecretOptions[];
  upstreamCa?: string[];
  limits?: PolicyLimits;
  seccomp?: 'default' | 'strict';
  /** TCP ports the server serves on its own loopback and connects to itself (Landlock ABI 4). */
  localPorts?: number[];
  hostname?: string;
  mcp?: PolicyMcp;
  audit?: string;
  verbose?: boolean;
}
