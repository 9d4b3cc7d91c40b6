// Public options of spawnSandboxed(): what a caller may ask for. lib/plan.ts turns them into the
// flat, fully resolved NativePlan the addon executes; nothing here reaches C++ unvalidated.
import type { Logger } from 'pino';
import type { EgressLimits, GrantScope } from './net/connector';

/** One stdio slot, as in child_process: a pipe to the parent, the parent's own fd, or /dev/null. */
export type StdioSlot = 'pipe' | 'inherit' | 'ignore' | number;

/**
 * Resource limits. Where the host gives stockade a cgroup (root, or a delegated subtree), memory,
 * pids and cpus hold for the whole sandbox; elsewhere the fallback is per process or per user
 * namespace, and `stockade doctor` and the sandbox-start event say which (lib/limits).
 */
export interface SandboxLimits {
  /**
   * Memory, in bytes or as a size string ('512m', '1g'): the cgroup memory limit of the whole sandbox (anonymous memory, page cache,
   * tmpfs, memfd, pipe buffers; no swap; an OOM kill ends the whole sandbox). Default 2 GiB or
   * half the RAM, whichever is less. Without a memory cgroup: RLIMIT_AS per process, no default.
   */
  memory?: number | string;
  /** Processes and threads of the whole sandbox: cgroup pids.max, or RLIMIT_NPROC in its own user namespace. Default 1024. */
  pids?: number;
  /**
   * CPU seconds of the whole sandbox, all its processes together: counted by its cgroup (v2
   * cpu.stat, v1 cpuacct.usage) and the sandbox is SIGKILLed at the limit. Without a cgroup:
   * RLIMIT_CPU per process.
   */
  cpu?: number;
  /** CPU time of the whole sandbox, in CPUs (0.5 = half of one CPU): cgroup cpu.max / cfs quota. */
  cpus?: number;
  /** Open files (RLIMIT_NOFILE). */
  openFiles?: number;
  /** Largest file the sandbox may write, in bytes or as a size string ('10m') (RLIMIT_FSIZE). */
  fileSize?: number | string;
  /**
   * Wall-clock limit in milliseconds: the sandbox is SIGKILLed after this long, with a
   * 'wall-time' audit event (a policy's limits.timeout). For spawn()'s own semantics (a chosen
   * killSignal), use the `timeout` option.
   */
  wallTime?: number;
  /** The sandbox's own budgets of kernel objects (its user namespace's /proc/sys/user). */
  kernel?: KernelBudgets;
}

/**
 * Budgets of kernel objects counted per user namespace, as the sandbox's own limits: each
 * defaults to a quarter of the caller's (/proc/sys/user/max_*), so that the host keeps the rest.
 * Integers from 0 (none at all) to 2147483647.
 */
export interface KernelBudgets {
  /** inotify instances (inotify_init): max_inotify_instances. */
  inotifyInstances?: number;
  /** inotify watches over all instances: max_inotify_watches. */
  inotifyWatches?: number;
  /** fanotify groups (fanotify_init, Linux 5.13): max_fanotify_groups. */
  fanotifyGroups?: number;
  /** fanotify marks: max_fanotify_marks. */
  fanotifyMarks?: number;
}

export interface SandboxFilesystem {
  /** Extra host paths bound read-only at the same path inside. */
  readOnly?: string[];
  /** Host paths bound read-write at the same path inside. */
  readWrite?: string[];
  /**
   * HOME inside is /home/nobody: a private tmpfs ('tmpfs', the default) or a host directory
   * bound read-write there, so that data survives restarts.
   */
  home?: 'tmpfs' | string;
  /** Size of the private /tmp (bytes, or a tmpfs size string such as '64m'). Default 64m. */
  tmpSize?: number | string;
  /**
   * Paths under a granted directory that stay invisible: an empty read-only directory or an empty
   * file is bound over each one that exists. Added to the default denials (lib/deny.ts).
   */
  deny?: string[];
  /** false turns the default denials off. Default true. */
  denyDefaults?: boolean;
  /**
   * Grants holding a unix socket or a FIFO are refused unless this is true: a read-only bind
   * does not stop connect() to a socket or writes to a FIFO (docker.sock, $XDG_RUNTIME_DIR, /run).
   */
  allowSockets?: boolean;
}

/**
 * Network policy. 'none': own network namespace with only loopback. 'host': the host's network
 * (an explicit escape hatch, logged). An object: own namespace, egress only through the
 * allowlisting proxy (issue #3).
 */
export type SandboxNetwork = 'none' | 'host' | EgressOptions;

export interface EgressOptions {
  /** Allowlist entries: 'example.com', '*.example.com', 'example.com:8443', '10.0.0.0/8'. */
  allow: string[];
  /** Resolver override, curl's --resolve form: 'name:port:address' or { 'name:port': 'address' }. */
  resolve?: string[] | Record<string, string>;
  /** Per-sandbox proxy limits (concurrent connections, header size, timeouts); see lib/net/connector.ts. */
  limits?: EgressLimits;
}

/**
 * Where a secret's real value comes from, read by the launcher on the host (lib/secrets/sources.ts),
 * never by the sandbox: an environment variable, a file only the caller can read, the first line
 * of a command's output (`pass show github`), the desktop keyring through `secret-tool`, or a value.
 */
export type SecretSource =
  | { env: string }
  | { file: string }
  | { command: string[] }
  | { keyring: Record<string, string> }
  | { value: string };

/** A credential the proxy injects on the wire; the sandbox only ever sees a placeholder (issue #4). */
export interface SecretOptions {
  /** Env var name the server expects (it receives the placeholder there). */
  name: string;
  /** Where the real value comes from on the host. Default: the launcher's env var `name`. */
  source?: SecretSource;
  /** Hosts it is for, allowlist syntax ('api.github.com', '*.example.com'). */
  hosts: string[];
  /** Also write the placeholder to this file inside the sandbox (a server that reads its token from a file). */
  file?: string;
  /** Where it goes. Default: header 'Authorization' with format 'Bearer {secret}'. */
  inject?: { header: string; format: string } | { query: string } | { basic: { username: string } };
}

export interface SandboxOptions {
  /** Working directory inside the sandbox. Default '/'. Must exist inside (e.g. a bound path). */
  cwd?: string;
  /**
   * Environment for the payload. Nothing of the host's environment is inherited unless named.
   * A string value sets the variable; `true` passes the host's value through (absent stays absent).
   */
  env?: Record<string, string | true>;
  stdio?: StdioSlot | [StdioSlot, StdioSlot, StdioSlot];
  filesystem?: SandboxFilesystem;
  network?: SandboxNetwork;
  limits?: SandboxLimits;
  /** Hostname inside the UTS namespace. Default 'stockade'. */
  hostname?: string;
  /** Credentials injected by the egress proxy (requires network with an allow list). */
  secrets?: SecretOptions[];
  /** Extra CA certificates (PEM file paths) the proxy trusts for upstream servers. */
  upstreamCa?: string[];
  /**
   * System-call filter: 'default' (a deny list of what no sandboxed program needs) or 'strict'
   * (an allow list of what Node, Python and common MCP servers use; the rest is killed).
   */
  seccomp?: 'default' | 'strict';
  /**
   * TCP ports (1-65535) the payload serves on its own loopback and connects to itself. Where
   * Landlock has ABI 4 (Linux 6.7+), bind() and connect() are refused (EACCES) on every other
   * port: always with an allow list (the proxy's listeners stay reachable), and with network
   * 'none' once this is given. Not with network 'host'.
   */
  localPorts?: number[];
  /** pino logger for audit events. Default: silent. */
  logger?: Logger;
  /**
   * A grant that changes while the sandbox runs: `network.allow` and `secrets` are everything it
   * may ever use, and the scope decides per connection (and per injected request) what it may use
   * now. The launcher's per-tool grants (lib/mcp/tool-grants.ts) are one.
   */
  grantScope?: GrantScope;
  /**
   * As spawn()'s: aborting it sends `killSignal` to the sandbox and emits an AbortError
   * (code 'ABORT_ERR', the signal's reason as `cause`) as 'error'.
   */
  signal?: AbortSignal;
  /** As spawn()'s: milliseconds after which `killSignal` is sent (0 or absent: never). At most 2^31-1. */
  timeout?: number;
  /** As spawn()'s: the signal `timeout` and `signal` send. Default 'SIGTERM'. */
  killSignal?: NodeJS.Signals | number;
  /**
   * The warm pool (README, "The warm pool"). Default true: this spawn may take the namespaces the
   * spawner made ahead of time for a sandbox like it, and the spawner then makes the next ones
   * while it is idle (one set, let go after 2 s unused). false: neither. `STOCKADE_WARM_POOL=0`
   * in the environment turns it off for the whole process.
   */
  warm?: boolean;
}
