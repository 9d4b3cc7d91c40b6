// Pinned tool definitions (rug-pull protection). A server the user approved can later change
// what its tools say — a description that now tells the model to read ~/.ssh, a schema with a new
// `notes` argument for exfiltration — without changing its name or version. The first complete
// tools/list the user accepted is recorded as one canonical digest per tool; afterwards a tool
// whose definition differs, or a tool that was not there, is withheld from the client (and a call
// of it refused) until the user approves it (`stockade approve`).
//
// Pure decisions only: this file computes digests and decides per tools/list page and per call.
// Where the pins live on disk is lib/mcp/trust-files.ts; how the decisions reach the wire is the
// ToolGate hook of lib/mcp/filter.ts.
import { createHash } from 'node:crypto';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

/** What a pin covers: everything a client shows the model or uses to judge a tool. `_meta` and icons are not. */
const PINNED_FIELDS = ['name', 'title', 'description', 'inputSchema', 'outputSchema', 'annotations'] as const;

/** Deeper than any real schema; a hostile server's 100k-deep schema must not cost a stack overflow. */
const MAX_DEPTH = 64;

/** Longest description kept beside a pin, only to show the user what changed. */
export const MAX_SHOWN_DESCRIPTION = 4096;

/**
 * Canonical JSON: object keys sorted by UTF-16 code units, no whitespace, numbers and strings as
 * JSON.stringify writes them (RFC 8785's rules for the values MCP uses). The same definition
 * always gives the same text, whatever key order or spacing the server chose.
 */
export function canonicalJson(value: unknown, depth = 0): string {
  if (depth > MAX_DEPTH) throw new RangeError(`nested deeper than ${MAX_DEPTH} levels`);
  if (value === null || typeof value !== 'object') {
    const s = JSON.stringify(value);
    return s === undefined ? 'null' : s;
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v, depth + 1)).join(',')}]`;
  const keys = Object.keys(value).sort();
  const parts: string[] = [];
  for (const k of keys) {
    const v = (value as Record<string, unknown>)[k];
    if (v !== undefined) parts.push(`${JSON.stringify(k)}:${canonicalJson(v, depth + 1)}`);
  }
  return `{${parts.join(',')}}`;
}

/** `sha256:<hex>` of the canonical JSON of the tool's pinned fields. Throws RangeError if absurdly deep. */
export function toolDigest(tool: Record<string, unknown>): string {
  const pinned: Record<string, unknown> = {};
  for (const f of PINNED_FIELDS) if (tool[f] !== undefined) pinned[f] = tool[f];
  return `sha256:${createHash('sha256').update(canonicalJson(pinned)).digest('hex')}`;
}

/** Digest of the input schema alone: lets `stockade approve` say which part changed. */
function schemaDigest(tool: Record<string, unknown>): string {
  return `sha256:${createHash('sha256')
    .update(canonicalJson(tool.inputSchema ?? null))
    .digest('hex')}`;
}

/** One approved tool, as kept in the approval file. */
export interface ToolPin {
  digest: string;
  schema: string;
  /** The description as approved (cut to MAX_SHOWN_DESCRIPTION), to show a change. */
  description?: string;
}

export type ToolPins = Record<string, ToolPin>;

/** A tool the gate kept from the client. */
export interface WithheldTool {
  tool: string;
  /** 'new': not among the pins; 'changed': its definition differs; 'invalid': it could not be read. */
  reason: 'new' | 'changed' | 'invalid';
  /** Which parts differ, for 'changed': 'description', 'input schema', 'definition'. */
  changed?: string[];
  /** The pin this tool would get if approved (absent for 'invalid'). */
  pin?: ToolPin;
}

export function pinOf(tool: Record<string, unknown>): ToolPin {
  const description = typeof tool.description === 'string' ? tool.description.slice(0, MAX_SHOWN_DESCRIPTION) : undefined;
  return { digest: toolDigest(tool), schema: schemaDigest(tool), ...(description !== undefined ? { description } : {}) };
}

function whatChanged(pinned: ToolPin, now: ToolPin): string[] {
  const parts: string[] = [];
  if ((pinned.description ?? '') !== (now.description ?? '')) parts.push('description');
  if (pinned.schema !== now.schema) parts.push('input schema');
  // Same description and schema but another digest: a title, output schema or annotation.
  if (parts.length === 0) parts.push('definition');
  return parts;
}

export interface PinGateHooks {
  /** A tool was withheld (once per tool and reason per run). */
  onWithheld?(w: WithheldTool): void;
  /** Record mode: the first complete listing, to be saved as the pins. */
  onRecorded?(pins: ToolPins): void;
}

/**
 * Decides tools/list pages and tools/call requests against the pins.
 *
 * With pins: a listed tool whose digest matches passes; any other is withheld and remembered,
 * and a call of a withheld or never-approved tool is refused. An unchanged server costs one
 * digest per listed tool and one map lookup per call.
 *
 * Without pins (record mode, the first run after the user approved the policy): every page of
 * the first listing — up to the page without `nextCursor` — is recorded and passes; from then on
 * the recorded pins are enforced, so a server cannot change its tools later in the same session.
 */
export class PinGate {
  private pins: ToolPins | undefined;
  // A Map, not an object: a tool named `__proto__` must be a tool, not a prototype.
  private readonly recording = new Map<string, ToolPin>();
  private readonly withheld = new Map<string, WithheldTool>();
  private readonly reported = new Set<string>();

  constructor(
    pins: ToolPins | undefined,
    private readonly hooks: PinGateHooks = {},
  ) {
    this.pins = pins === undefined ? undefined : { ...pins };
  }

  /** Filters one page of a tools/list result. Returns the same array when nothing is withheld. */
  filterList(tools: Json[], hasNextCursor: boolean): Json[] {
    if (this.pins === undefined) {
      for (const t of tools) {
        if (!isToolObject(t)) continue;
        try {
          this.recording.set(t.name, pinOf(t));
        } catch {
          // An unreadable definition is not recorded; it will be withheld once pins exist.
        }
      }
      if (!hasNextCursor) {
        this.pins = Object.fromEntries(this.recording);
        this.hooks.onRecorded?.(Object.fromEntries(this.recording));
      }
      return tools;
    }
    const pins = this.pins;
    let kept: Json[] | undefined;
    tools.forEach((t, i) => {
      const verdict = isToolObject(t) ? this.judge(t, pins) : undefined;
      if (verdict === undefined) {
        kept?.push(t);
        return;
      }
      kept ??= tools.slice(0, i);
      this.withhold(verdict);
    });
    return kept ?? tools;
  }

  /** Why a call of `name` is refused, or undefined to let it through. */
  refuseCall(name: string): string | undefined {
    const w = this.withheld.get(name);
    if (w !== undefined) return `${describe(w)}; stockade withheld it until you approve it`;
    if (this.pins !== undefined && !Object.hasOwn(this.pins, name)) return `tool "${name}" is not among the approved tools`;
    return undefined;
  }

  /** Tools withheld so far in this run. */
  withheldTools(): WithheldTool[] {
    return [...this.withheld.values()];
  }

  private judge(tool: JsonObject & { name: string }, pins: ToolPins): WithheldTool | undefined {
    let now: ToolPin;
    try {
      now = pinOf(tool);
    } catch {
      return { tool: tool.name, reason: 'invalid' };
    }
    const pinned = Object.hasOwn(pins, tool.name) ? pins[tool.name] : undefined;
    if (pinned?.digest === now.digest) {
      // Back to the approved definition (a list_changed round trip): no longer withheld.
      this.withheld.delete(tool.name);
      return undefined;
    }
    if (pinned === undefined) return { tool: tool.name, reason: 'new', pin: now };
    return { tool: tool.name, reason: 'changed', changed: whatChanged(pinned, now), pin: now };
  }

  private withhold(w: WithheldTool): void {
    this.withheld.set(w.tool, w);
    const key = `${w.tool}\0${w.reason}\0${w.pin?.digest ?? ''}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.hooks.onWithheld?.(w);
  }
}

function isToolObject(t: Json): t is JsonObject & { name: string } {
  return typeof t === 'object' && t !== null && !Array.isArray(t) && typeof t.name === 'string';
}

/** One line for a person: `tool "x" changed its description since it was approved`. */
export function describe(w: WithheldTool): string {
  if (w.reason === 'new') return `tool "${w.tool}" is new since the tools were approved`;
  if (w.reason === 'invalid') return `tool "${w.tool}" has a definition stockade cannot read (nested too deeply)`;
  return `tool "${w.tool}" changed its ${orList(w.changed ?? ['definition'])} since it was approved`;
}

function orList(items: string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}
