// Policy validation with errors a person can act on. The shipped JSON Schema is the contract;
// this file walks it (the subset of JSON Schema it uses) to say, for each problem, the JSON
// path, what was expected and what was found, with a "did you mean" for misspelt keys. ajv then
// checks the same document against the same schema as a safety net, so a keyword the walker
// does not know can never let an invalid policy through.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type Ajv2020 from 'ajv/dist/2020';
import { packageRoot } from '../location';
import { FORMATS, NUMBER_FORMATS } from './formats';
import type { Policy } from './types';

export interface PolicyIssue {
  /** JSON Pointer of the offending value ('' for the document itself). */
  path: string;
  /** One line, starting with the path: what was expected and what was found. */
  message: string;
}

export class PolicyError extends Error {
  readonly code = 'ERR_STOCKADE_POLICY';
  constructor(
    readonly issues: PolicyIssue[],
    readonly file?: string,
  ) {
    super(`${file ? `invalid policy ${file}` : 'invalid policy'}:\n${issues.map((i) => `  ${i.message}`).join('\n')}`);
    this.name = 'PolicyError';
  }
}

// biome-ignore lint/suspicious/noExplicitAny: JSON Schema nodes are untyped JSON
type Schema = any;

let cachedSchema: Schema | undefined;

/**
 * The published schema, read from the package root (lib/location.ts). Only there: the search of
 * two places it replaced read ../../../stockade.schema.json first, which from the bundle
 * (dist/lib/cli.js) is the node_modules directory holding the package, where any other package
 * could have put a schema of its own that lets every policy through.
 */
export function policySchema(): Schema {
  cachedSchema ??= JSON.parse(readFileSync(join(packageRoot, 'stockade.schema.json'), 'utf8'));
  return cachedSchema;
}

// ---- describing values -------------------------------------------------------------------------

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function found(v: unknown): string {
  switch (typeOf(v)) {
    case 'null':
      return 'null';
    case 'array':
      return `an array (${show(v)})`;
    case 'object':
      return `an object (${show(v)})`;
    case 'boolean':
      return `${v}`;
    case 'undefined':
      return 'nothing';
    default:
      return `${typeOf(v) === 'integer' ? 'the number' : typeOf(v) === 'number' ? 'the number' : 'the string'} ${show(v)}`;
  }
}

const ARTICLE: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  array: 'an array',
  object: 'an object',
  null: 'null',
};

function orList(items: string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

/** What a schema node wants, in words: "an absolute path", "'none' or 'host'", "an object with `env`". */
function expected(s: Schema): string {
  if (s.const !== undefined) return show(s.const);
  if (s.enum) return orList(s.enum.map(show));
  if (s.anyOf) return orList(s.anyOf.map(expected));
  if (s.format && FORMATS[s.format]) return FORMATS[s.format][1];
  if (s.type === 'object' && s.required?.length === 1) return `an object with \`${s.required[0]}\``;
  if (s.type === 'integer' && s.minimum !== undefined && s.maximum !== undefined) return `an integer from ${s.minimum} to ${s.maximum}`;
  if (s.type === 'integer' && s.minimum === 1) return 'a positive integer';
  if (s.type === 'number' && s.exclusiveMinimum === 0 && s.maximum !== undefined) return `a positive number up to ${s.maximum}`;
  if (s.type === 'number' && s.exclusiveMinimum === 0) return 'a positive number';
  if (s.type === 'array' && s.items?.type) return `an array of ${plural(s.items)}`;
  return ARTICLE[s.type] ?? 'a valid value';
}

function plural(s: Schema): string {
  if (s.format && FORMATS[s.format]) return FORMATS[s.format][2];
  return PLURAL[s.type] ?? 'values';
}

const PLURAL: Record<string, string> = { string: 'strings', integer: 'integers', number: 'numbers', object: 'objects', array: 'arrays' };

// ---- closest key ---------------------------------------------------------------------------------

export function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/** The candidate nearest to `key` (case-insensitive), if it is near enough to be a typo. */
export function closest(key: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = levenshtein(key.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

// ---- the walker ----------------------------------------------------------------------------------

function escapePointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

function typeMatches(type: string | undefined, v: unknown): boolean {
  if (type === undefined) return true;
  const t = typeOf(v);
  return t === type || (type === 'number' && t === 'integer');
}

/** Could `v` be meant for this branch of an anyOf? (Right type, and its required keys present.) */
function plausible(s: Schema, v: unknown): boolean {
  if (s.const !== undefined) return typeOf(s.const) === typeOf(v) || (s.const === true && typeof v === 'boolean');
  if (s.enum) return s.enum.some((e: unknown) => typeOf(e) === typeOf(v));
  if (!typeMatches(s.type, v)) return false;
  if (s.type === 'object' && s.required && v && typeof v === 'object') {
    return s.required.every((k: string) => k in (v as object));
  }
  return true;
}

function walk(s: Schema, v: unknown, path: string, out: PolicyIssue[]): void {
  const where = path || '/';
  if (s.anyOf) {
    const branches: Schema[] = s.anyOf;
    const plausibleBranches = branches.filter((b) => plausible(b, v));
    for (const b of plausibleBranches) {
      const sub: PolicyIssue[] = [];
      walk(b, v, path, sub);
      if (sub.length === 0) return;
    }
    // Nothing matched. Report against the branch the value was evidently meant for, so the user
    // reads the precise error ("unknown key ...; did you mean `env`?") rather than "matches no
    // alternative".
    if (typeOf(v) === 'object') {
      const objectBranches = branches.filter((b) => b.type === 'object');
      const keys = Object.keys(v as object);
      const pick =
        plausibleBranches.find((b) => b.type === 'object') ??
        (objectBranches.length === 1 ? objectBranches[0] : undefined) ??
        objectBranches.find((b) => keys.some((k) => closest(k, Object.keys(b.properties ?? {}))));
      if (pick) {
        walk(pick, v, path, out);
        return;
      }
      if (objectBranches.length > 0) {
        const wanted = objectBranches.flatMap((b) => b.required ?? []);
        out.push({
          path,
          message: `${where}: expected an object with ${orList(wanted.map((k: string) => `\`${k}\``))}, found ${found(v)}`,
        });
        return;
      }
    }
    if (typeof v === 'string') {
      const words = branches
        .flatMap((b) => (b.const !== undefined ? [b.const] : (b.enum ?? [])))
        .filter((w: unknown) => typeof w === 'string');
      const hint = closest(v, words);
      if (hint) {
        out.push({ path, message: `${where}: expected ${expected(s)}, found ${found(v)}; did you mean ${show(hint)}?` });
        return;
      }
    }
    const specific = plausibleBranches.filter((b) => b.const === undefined && !b.enum);
    if (specific.length > 0) {
      walk(specific[specific.length - 1], v, path, out);
      return;
    }
    out.push({ path, message: `${where}: expected ${expected(s)}, found ${found(v)}` });
    return;
  }
  if (s.const !== undefined && v !== s.const) {
    out.push({ path, message: `${where}: expected ${show(s.const)}, found ${found(v)}` });
    return;
  }
  if (s.enum && !s.enum.includes(v)) {
    const hint =
      typeof v === 'string'
        ? closest(
            v,
            s.enum.filter((e: unknown) => typeof e === 'string'),
          )
        : undefined;
    out.push({
      path,
      message: `${where}: expected ${orList(s.enum.map(show))}, found ${found(v)}${hint ? `; did you mean ${show(hint)}?` : ''}`,
    });
    return;
  }
  if (s.type && !typeMatches(s.type, v)) {
    out.push({ path, message: `${where}: expected ${expected(s)}, found ${found(v)}` });
    return;
  }
  if (typeof v === 'string') {
    if (s.minLength !== undefined && v.length < s.minLength) {
      out.push({ path, message: `${where}: expected a non-empty string, found ""` });
      return;
    }
    if (s.format && FORMATS[s.format]) {
      const [check, what] = FORMATS[s.format];
      const reason = check(v);
      if (reason) out.push({ path, message: `${where}: expected ${what}, found ${show(v)}: ${reason}` });
    }
    return;
  }
  if (typeof v === 'number') {
    const below = (s.minimum !== undefined && v < s.minimum) || (s.exclusiveMinimum !== undefined && v <= s.exclusiveMinimum);
    if (below || (s.maximum !== undefined && v > s.maximum)) {
      out.push({ path, message: `${where}: expected ${expected(s)}, found ${found(v)}` });
      return;
    }
    if (s.format && FORMATS[s.format]) {
      const [check, what] = FORMATS[s.format];
      const reason = check(v);
      if (reason) out.push({ path, message: `${where}: expected ${what}, found ${show(v)}: ${reason}` });
    }
    return;
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) {
      out.push({ path, message: `${where}: expected at least ${s.minItems} item${s.minItems === 1 ? '' : 's'}, found an empty array` });
    }
    if (s.items) {
      for (let i = 0; i < v.length; i++) walk(s.items, v[i], `${path}/${i}`, out);
    }
    return;
  }
  if (v && typeof v === 'object') {
    const obj = v as Record<string, unknown>;
    const props: Record<string, Schema> = s.properties ?? {};
    for (const req of s.required ?? []) {
      if (!(req in obj)) out.push({ path, message: `${where}: missing required key \`${req}\`` });
    }
    for (const [key, value] of Object.entries(obj)) {
      const child = `${path}/${escapePointer(key)}`;
      if (s.propertyNames?.format && FORMATS[s.propertyNames.format]) {
        const [check, what] = FORMATS[s.propertyNames.format];
        const reason = check(key);
        if (reason) {
          out.push({ path: child, message: `${child}: expected the key to be ${what}, found ${show(key)}: ${reason}` });
          continue;
        }
      }
      if (key in props) {
        walk(props[key], value, child, out);
      } else if (s.additionalProperties === false) {
        const hint = closest(key, Object.keys(props));
        out.push({
          path: child,
          message: hint
            ? `unknown key \`${child}\`; did you mean \`${hint}\`?`
            : `unknown key \`${child}\`; expected one of ${Object.keys(props)
                .map((k) => `\`${k}\``)
                .join(', ')}`,
        });
      } else if (s.additionalProperties && typeof s.additionalProperties === 'object') {
        walk(s.additionalProperties, value, child, out);
      }
    }
  }
}

// ---- ajv safety net ------------------------------------------------------------------------------

let ajvValidate: (((doc: unknown) => boolean) & { errors?: unknown }) | undefined;

function ajvCheck(doc: unknown): PolicyIssue[] {
  if (!ajvValidate) {
    // Loaded here, not at the top: the launcher never needs it (ValidationOptions.backstop).
    const Ajv = (require('ajv/dist/2020') as { default: typeof Ajv2020 }).default;
    const ajv = new Ajv({ allErrors: true, strict: true });
    for (const [name, [check]] of Object.entries(FORMATS)) {
      if (NUMBER_FORMATS.has(name)) ajv.addFormat(name, { type: 'number', validate: (v: number) => check(v) === null });
      else ajv.addFormat(name, { type: 'string', validate: (v: string) => check(v) === null });
    }
    ajvValidate = ajv.compile(policySchema());
  }
  if (ajvValidate(doc)) return [];
  const errors = (ajvValidate.errors ?? []) as { instancePath: string; message?: string }[];
  return errors.map((e) => ({ path: e.instancePath, message: `${e.instancePath || '/'}: ${e.message}` }));
}

export interface ValidationOptions {
  /**
   * Also check with ajv over the same schema (default true). The schema walker is authoritative;
   * ajv is a safety net that must agree (the tests check it does, over the whole corpus).
   * Compiling the schema costs ~60 ms, so the launcher, which starts once per MCP server, turns
   * it off; `stockade check` and the tests keep it. An option of each call, not a switch of the
   * process: a library user validating policies is not affected by what `run` chose.
   */
  backstop?: boolean;
}

/**
 * Checks a parsed policy document. Returns every problem found (empty when valid); never throws
 * for bad input. Order follows the document, so the first issue is the first thing to fix.
 */
export function validatePolicy(doc: unknown, options: ValidationOptions = {}): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  walk(policySchema(), doc, '', issues);
  if (issues.length === 0 && options.backstop !== false) issues.push(...ajvCheck(doc));
  if (issues.length === 0) issues.push(...semanticChecks(doc as Policy));
  return issues;
}

/** validatePolicy, throwing a PolicyError listing every issue; returns the document typed. */
export function assertPolicy(doc: unknown, file?: string, options: ValidationOptions = {}): Policy {
  const issues = validatePolicy(doc, options);
  if (issues.length > 0) throw new PolicyError(issues, file);
  return doc as Policy;
}

/** Rules that span fields, which JSON Schema cannot say clearly. */
function semanticChecks(p: Policy): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  if (p.secrets?.length && (p.network === 'none' || p.network === 'host')) {
    issues.push({
      path: '/secrets',
      message: `/secrets: secrets are injected by the egress proxy, which needs network { allow: [...] }; found network ${show(p.network)}`,
    });
  }
  if (p.localPorts !== undefined && p.network === 'host') {
    issues.push({
      path: '/localPorts',
      message: "/localPorts: local ports restrict the sandbox's own network namespace, which network 'host' does not have",
    });
  }
  const names = new Set<string>();
  p.secrets?.forEach((s, i) => {
    if (names.has(s.name))
      issues.push({ path: `/secrets/${i}/name`, message: `/secrets/${i}/name: secret \`${s.name}\` is defined twice` });
    names.add(s.name);
    if (p.env && s.name in p.env) {
      issues.push({
        path: `/env/${escapePointer(s.name)}`,
        message: `/env/${escapePointer(s.name)}: \`${s.name}\` is also a secret; the sandbox gets a placeholder there, so remove it from env`,
      });
    }
  });
  // Per-tool grants: secrets they name must be defined; hosts need the egress proxy.
  const tools = p.mcp?.tools;
  if (tools !== undefined && !Array.isArray(tools)) {
    for (const [tool, grant] of Object.entries(tools)) {
      const at = `/mcp/tools/${escapePointer(tool)}`;
      grant.secrets?.forEach((name, i) => {
        if (!names.has(name)) {
          issues.push({
            path: `${at}/secrets/${i}`,
            message: `${at}/secrets/${i}: secret \`${name}\` is not defined in /secrets (a tool grant names secrets defined there)`,
          });
        }
      });
      if (grant.network?.length && (p.network === 'none' || p.network === 'host')) {
        issues.push({
          path: `${at}/network`,
          message: `${at}/network: per-tool hosts are allowed by the egress proxy, which needs network { allow: [...] }; found network ${show(p.network)}`,
        });
      }
    }
  }
  return issues;
}
