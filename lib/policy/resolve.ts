// From a validated policy to what spawnSandboxed() takes. Two steps, kept apart so `stockade
// check` can show the first without side effects:
//   effectivePolicy: the profile merged under the policy (pure; reports dirs to create)
//   policyToOptions: the effective policy as { command, args, options }, creating those dirs
import { chownSync, mkdirSync } from 'node:fs';
import { parseSize, timeoutToWallTime } from '../fields';
import type { ToolGrantsSpec } from '../mcp/tool-grants';
import type { SandboxOptions } from '../options';
import { SANDBOX_UID } from '../plan';
import { mergePolicies } from './merge';
import { profileFor } from './profiles';
import { type Policy, toolPatterns } from './types';
import { PolicyError } from './validate';

export interface ResolveContext {
  /** Root of per-command package caches (profiles). Default ~/.cache/stockade. */
  cacheRoot?: string;
  /** Host environment for finding interpreters. Default process.env. */
  hostEnv?: NodeJS.ProcessEnv;
}

export interface EffectivePolicy {
  policy: Policy;
  /** Host directories the policy binds that the profile expects to create. */
  mkdirs: string[];
}

/** The policy with its profile (if any) merged under it. Does not touch the filesystem. */
export function effectivePolicy(policy: Policy, ctx: ResolveContext = {}): EffectivePolicy {
  if (!policy.profile) return { policy, mkdirs: [] };
  const command = [...(policy.command ?? []), ...(policy.args ?? [])];
  const { fragment, mkdirs } = profileFor(policy.profile, { command, ...ctx });
  return { policy: mergePolicies(fragment, policy), mkdirs };
}

export interface PolicyLaunch {
  command: string;
  args: string[];
  options: SandboxOptions;
  /** The MCP tool allowlist; undefined means the tool layer is off (stdio untouched). */
  tools?: string[];
  /**
   * Per-tool grants (mcp.tools as an object with network or secrets): `options.network.allow`
   * is then the union of everything, and this says what holds when (lib/mcp/tool-grants.ts).
   */
  toolGrants?: ToolGrantsSpec;
  /** HOME as the policy wants it: 'tmpfs' or a host dir (bound read-write at /home/nobody). */
  home: 'tmpfs' | string;
  seccomp: 'default' | 'strict';
  audit?: string;
  verbose: boolean;
}

/**
 * Turns a validated policy into spawnSandboxed() arguments. Applies the profile, creates the
 * profile's cache dirs (0700), converts units (sizes to bytes, timeout seconds to ms).
 *
 * HOME: /home/nobody inside, a private tmpfs or the policy's directory bound read-write there.
 * Secrets: their hosts are added to the allow list; a secret is useless if its host is blocked.
 */
export function policyToOptions(policy: Policy, ctx: ResolveContext = {}): PolicyLaunch {
  const { policy: p, mkdirs } = effectivePolicy(policy, ctx);
  if (!p.command?.length) {
    throw new PolicyError([{ path: '/command', message: '/command: no command to run; give one in the policy or after `--`' }]);
  }
  for (const dir of mkdirs) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // As host root the sandbox runs as host uid 65534, which must own its caches to use them.
    if (process.getuid?.() === 0) chownSync(dir, SANDBOX_UID, SANDBOX_UID);
  }
  const options: SandboxOptions = {};
  const env: Record<string, string | true> = { ...(p.env ?? {}) };
  const fs = p.filesystem ?? {};
  const readWrite = [...(fs.readWrite ?? [])];
  const home = fs.home ?? 'tmpfs';
  options.filesystem = { home };
  if (fs.readOnly?.length) options.filesystem.readOnly = [...fs.readOnly];
  if (readWrite.length) options.filesystem.readWrite = readWrite;
  if (fs.tmpSize !== undefined) options.filesystem.tmpSize = fs.tmpSize;
  if (fs.deny?.length) options.filesystem.deny = [...fs.deny];
  if (fs.denyDefaults === false) options.filesystem.denyDefaults = false;
  if (fs.allowSockets !== undefined) options.filesystem.allowSockets = fs.allowSockets;
  options.env = env;
  if (p.cwd !== undefined) options.cwd = p.cwd;
  if (p.hostname !== undefined) options.hostname = p.hostname;
  if (p.seccomp !== undefined && p.seccomp !== 'default') options.seccomp = p.seccomp;
  if (p.localPorts !== undefined) options.localPorts = [...p.localPorts];
  if (p.upstreamCa?.length) options.upstreamCa = [...p.upstreamCa];
  let network = p.network;
  const toolGrants = resolveToolGrants(p);
  if (p.secrets?.length) {
    options.secrets = p.secrets.map((s) => ({ ...s, hosts: [...s.hosts] }));
  }
  // A secret is useless if its host is blocked: secret hosts (and per-tool hosts) join the allow
  // list, which with per-tool grants is the union of all of them (the scope narrows it).
  const extra = toolGrants
    ? [...toolGrants.base, ...Object.values(toolGrants.tools).flatMap((g) => g.network)]
    : (p.secrets ?? []).flatMap((s) => s.hosts);
  if (extra.length > 0 && (network === undefined || typeof network === 'object')) {
    const allow = [...(network?.allow ?? [])];
    for (const h of extra) if (!allow.includes(h)) allow.push(h);
    network = { ...(network ?? {}), allow };
  }
  if (network !== undefined) {
    options.network =
      typeof network === 'string' ? network : { allow: [...network.allow], ...(network.resolve ? { resolve: network.resolve } : {}) };
  }
  if (p.limits) {
    const l = p.limits;
    options.limits = {};
    if (l.memory !== undefined) options.limits.memory = parseSize(l.memory);
    if (l.pids !== undefined) options.limits.pids = l.pids;
    if (l.cpu !== undefined) options.limits.cpu = l.cpu;
    if (l.cpus !== undefined) options.limits.cpus = l.cpus;
    if (l.openFiles !== undefined) options.limits.openFiles = l.openFiles;
    if (l.fileSize !== undefined) options.limits.fileSize = parseSize(l.fileSize);
    if (l.timeout !== undefined) options.limits.wallTime = timeoutToWallTime(l.timeout);
    if (l.kernel !== undefined) options.limits.kernel = { ...l.kernel };
  }
  const [command, ...first] = p.command;
  return {
    command,
    args: [...first, ...(p.args ?? [])],
    options,
    ...(p.mcp?.tools ? { tools: toolPatterns(p.mcp.tools) } : {}),
    ...(toolGrants ? { toolGrants } : {}),
    home,
    seccomp: p.seccomp ?? 'default',
    ...(p.audit ? { audit: p.audit } : {}),
    verbose: p.verbose ?? false,
  };
}

/**
 * The per-tool grants of a policy whose mcp.tools is an object naming network or secrets; else
 * undefined (no scoping). Base: network.allow and the hosts of the secrets no tool names; each
 * tool: its network plus the hosts of its secrets.
 */
export function resolveToolGrants(p: Policy): ToolGrantsSpec | undefined {
  const tools = p.mcp?.tools;
  if (tools === undefined || Array.isArray(tools)) return undefined;
  const entries = Object.entries(tools);
  if (!entries.some(([, g]) => g.network?.length || g.secrets?.length)) return undefined;
  const scoped = new Set(entries.flatMap(([, g]) => g.secrets ?? []));
  const hostsOf = (name: string) => p.secrets?.find((s) => s.name === name)?.hosts ?? [];
  const unique = (xs: string[]) => [...new Set(xs)];
  const base = unique([
    ...(typeof p.network === 'object' ? p.network.allow : []),
    ...(p.secrets ?? []).filter((s) => !scoped.has(s.name)).flatMap((s) => s.hosts),
  ]);
  return {
    base,
    tools: Object.fromEntries(
      entries.map(([t, g]) => [
        t,
        { network: unique([...(g.network ?? []), ...(g.secrets ?? []).flatMap(hostsOf)]), secrets: [...(g.secrets ?? [])] },
      ]),
    ),
  };
}
