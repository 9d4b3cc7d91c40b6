// What `stockade run` tells a person on stderr (an MCP client shows a server's stderr as its
// log). By default: one line per denial — a blocked connection and why (not on the allow list,
// or the SSRF guard and the address class), a refused tool call, a limit hit, a timeout — each
// distinct denial once, and a short summary at exit when anything was denied. --verbose: every
// audit event as one readable line (the same records --audit FILE writes as JSON lines).
//
// Written here rather than with pino-pretty: the denial lines and the verbose lines share one
// wording, the launcher starts in front of every server (no extra modules to load), and a
// dozen transitive dependencies less sit in a security tool's install.
import type { ToolCallEvent } from '../mcp';
import type { EgressRecord } from '../net/connector';

type Write = (line: string) => void;

/** Why a connection was refused, in words, from the proxy's rule text. */
function egressReason(r: EgressRecord): string {
  const rule = r.rule;
  if (rule.startsWith('ssrf: ')) return `SSRF guard: ${rule.slice(6)}`;
  if (rule.startsWith('no allowlist entry'))
    return `not allowed (${rule}; to allow it: --allow-net ${r.host}, or network.allow in the policy)`;
  if (rule.startsWith('port ')) return `not allowed: ${rule}`;
  if (rule.startsWith('limit: ')) return `limit hit: ${rule.slice(7)}`;
  return rule;
}

/** The human line for one egress denial (undefined for allowed connections). */
export function describeEgressDenial(r: EgressRecord): string | undefined {
  if (r.decision !== 'deny') return undefined;
  if (r.via === 'dns') return `blocked DNS lookup of ${r.host}: ${r.rule.replace(/^dns: /, '')}`;
  return `blocked ${r.host}:${r.port} (${r.via}): ${egressReason(r)}`;
}

const SIGNAL_DENIALS: Partial<Record<NodeJS.Signals, string>> = {
  SIGSYS: 'the server was killed by the seccomp filter (SIGSYS): it made a system call the sandbox forbids',
  SIGXCPU:
    'limit hit: a process reached the CPU time limit (--cpu, limits.cpu: per process, RLIMIT_CPU, where no cgroup counts the whole sandbox); it was killed (SIGXCPU)',
  SIGXFSZ: 'limit hit: the file size limit (limits.fileSize) was reached (SIGXFSZ)',
};

/** Collects the denials of one run: prints each distinct one once, then a summary. */
export class DenialReport {
  private readonly seen = new Map<string, { label: string; count: number }>();
  private timedOut = false;
  /** A violation that ended or answered the sandbox was named already (seccomp, OOM, pids, CPU seconds). */
  private named = new Set<string>();

  /** `perEvent`: print a line per distinct denial as it happens (off with --verbose). */
  constructor(
    private readonly write: Write,
    private readonly perEvent = true,
  ) {}

  private note(key: string, label: string, line: string): void {
    const entry = this.seen.get(key);
    if (entry) {
      entry.count++;
      return;
    }
    this.seen.set(key, { label, count: 1 });
    if (this.perEvent) this.write(`stockade: ${line}`);
  }

  egress(r: EgressRecord): void {
    const line = describeEgressDenial(r);
    if (line === undefined) return;
    if (r.via === 'dns') this.note(`dns:${r.host}`, `DNS ${r.host}`, line);
    else this.note(`egress:${r.host}:${r.port}`, `${r.host}:${r.port}`, line);
  }

  /** An audit event of the sandbox (lib/process.ts). */
  audit(e: { event?: string; [k: string]: unknown }): void {
    if (e.event === 'violation' && (e.kind === 'seccomp' || e.kind === 'oom' || e.kind === 'pids-limit' || e.kind === 'cpu-limit')) {
      // Said in the record's own words, once, and always (it is why the sandbox ended): the exit
      // signal's generic line and the summary would only repeat it.
      const line = `stockade: ${String(e.message)}`;
      if (!this.named.has(line)) this.write(line);
      this.named.add(line);
    } else if (e.event === 'violation') {
      const message = typeof e.message === 'string' ? e.message : String(e.rule);
      this.note(`violation:${String(e.rule)}:${String(e.host)}`, `${String(e.rule)} (${String(e.host)})`, `blocked: ${message}`);
    } else if (e.event === 'wall-time') {
      this.timedOut = true;
      const s = Number(e.limitMs) / 1000;
      this.note('timeout', 'timeout', `timeout: the sandbox ran for ${s} s (--timeout, limits.timeout) and was killed`);
    } else if (e.event === 'network-host') {
      // Not a denial, but the one setting that removes a boundary: always said out loud.
      if (this.perEvent) this.write('stockade: warning: --net host: the sandbox shares this host network; no egress is filtered or logged');
    }
  }

  tool(e: ToolCallEvent): void {
    if (e.outcome !== 'refused') return;
    this.note(`tool:${e.tool}`, `tool ${e.tool}`, `refused tool call "${e.tool}": ${e.reason ?? 'not allowed by --tools'}`);
  }

  exit(signal: NodeJS.Signals | null): void {
    if (signal === null) return;
    if (signal === 'SIGKILL' && this.timedOut) return;
    if ((signal === 'SIGSYS' || signal === 'SIGKILL') && this.named.size > 0) return;
    const line = SIGNAL_DENIALS[signal];
    if (line) this.note(`signal:${signal}`, signal, line);
  }

  /** One line, or undefined when nothing was denied. */
  summary(): string | undefined {
    const total = [...this.seen.values()].reduce((n, e) => n + e.count, 0);
    if (total === 0) return undefined;
    const items = [...this.seen.values()].map((e) => (e.count > 1 ? `${e.label} ×${e.count}` : e.label));
    const shown = items.length > 6 ? [...items.slice(0, 6), `${items.length - 6} more`] : items;
    return `stockade: ${total} denial${total > 1 ? 's' : ''} in this run: ${shown.join(', ')} (--verbose or --audit FILE for every event)`;
  }
}

// The launcher's logger has no pid/hostname base fields, so a `pid` is the sandbox's: shown.
const HIDDEN = new Set(['level', 'time', 'component', 'event', 'msg']);
const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** One pino JSON record as a readable line (--verbose). */
export function formatVerbose(record: Record<string, unknown>): string {
  const time = typeof record.time === 'number' ? new Date(record.time).toISOString().slice(11, 23) : '';
  const level = LEVELS[Number(record.level)] ?? String(record.level);
  const event = typeof record.event === 'string' ? record.event : 'log';
  let text: string;
  if (event === 'egress') {
    const r = record as unknown as EgressRecord;
    text =
      r.decision === 'deny'
        ? (describeEgressDenial(r) as string)
        : `allowed ${r.host}:${r.port} (${r.via}) by "${r.rule}"${r.address ? ` -> ${r.address}` : ''}, ${r.bytesUp} B up, ${r.bytesDown} B down, ${r.durationMs} ms${r.error ? `, then failed: ${r.error}` : ''}${r.intercepted ? ', credentials injected' : ''}`;
  } else {
    const fields = Object.entries(record)
      .filter(([k, v]) => !HIDDEN.has(k) && v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? (/[\s"=]/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`);
    text = [typeof record.msg === 'string' ? record.msg : '', ...fields].filter(Boolean).join(' ');
  }
  return `stockade ${time} ${level.padEnd(5)} ${event}: ${text}`;
}

/** A pino destination that prints each record with formatVerbose. */
export function verboseStream(write: Write): { write(chunk: string): void } {
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) {
        if (!line) continue;
        try {
          write(formatVerbose(JSON.parse(line) as Record<string, unknown>));
        } catch {
          write(line);
        }
      }
    },
  };
}
