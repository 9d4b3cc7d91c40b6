// What the user approved, kept beside the policy: `github.policy.json` has
// `github.approved.json` (the grants of the policy as last approved, and the pinned tool
// definitions) and, when the launcher withheld tools, `github.pending.json` (what it saw, for
// `stockade approve` to show and accept).
//
// The files exist only once the user opted in (`stockade wrap` writes the first approval,
// `stockade approve` any later one): a policy without an approval file runs as before.
//
// These files decide what a server may do, so a sandbox must never be able to write them: the
// launcher refuses to use approval files in a directory the sandbox can write (a read-write grant
// or its home), opens them without following symlinks and replaces them by rename.
import fs = require('node:fs');
import path = require('node:path');

import { createHash, randomBytes } from 'node:crypto';
import { canonicalJson, describe, type PinGateHooks, type ToolPins, type WithheldTool } from './mcp/pins';
import { grownGrants, type PolicyGrants, policyGrants } from './policy/grants';
import type { Policy } from './policy/types';

const FORMAT = 1;
/** Approval files are small; a huge one is not ours. */
const MAX_FILE_BYTES = 8 * 1024 * 1024;
/** Withheld tools remembered for `stockade approve`; a server listing a million new tools gets no more. */
const MAX_PENDING_TOOLS = 1000;

export interface Approval {
  stockade: typeof FORMAT;
  /** sha256 of the canonical policy document that was approved. */
  policyDigest: string;
  grants: PolicyGrants;
  /** Pinned tool definitions; absent until the first complete tools/list is recorded. */
  tools?: ToolPins;
  approvedAt: string;
}

export interface Pending {
  stockade: typeof FORMAT;
  tools: Record<string, WithheldTool & { seenAt: string }>;
}

/** The policy is not approved as it stands. One line, made for an MCP client's stderr view. */
export class ApprovalError extends Error {
  readonly code: 'ERR_STOCKADE_NOT_APPROVED' | 'ERR_STOCKADE_APPROVAL_FILE';
  readonly path: string;
  /** What grew, one phrase per grant. */
  readonly grown: string[];
  constructor(code: ApprovalError['code'], message: string, file: string, grown: string[] = []) {
    super(message);
    this.name = 'ApprovalError';
    this.code = code;
    this.path = file;
    this.grown = grown;
  }
}

export interface ApprovalFiles {
  policy: string;
  approved: string;
  pending: string;
}

/** `dir/github.policy.json` -> `dir/github.approved.json`, `dir/github.pending.json`. */
export function approvalFiles(policyFile: string): ApprovalFiles {
  const policy = path.resolve(policyFile);
  const base = path
    .basename(policy)
    .replace(/\.(json|ya?ml)$/i, '')
    .replace(/\.policy$/, '');
  const dir = path.dirname(policy);
  return { policy, approved: path.join(dir, `${base}.approved.json`), pending: path.join(dir, `${base}.pending.json`) };
}

export function policyDigest(policy: Policy): string {
  return `sha256:${createHash('sha256').update(canonicalJson(policy)).digest('hex')}`;
}

/** Reads a JSON file without following a symlink at its last component; undefined when absent. */
function readJson(file: string): unknown {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new ApprovalError('ERR_STOCKADE_APPROVAL_FILE', `stockade: cannot read ${file} (${code === 'ELOOP' ? 'a symlink' : code})`, file);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size > MAX_FILE_BYTES) {
      throw new ApprovalError('ERR_STOCKADE_APPROVAL_FILE', `stockade: ${file} is not a regular file of at most 8 MiB`, file);
    }
    try {
      return JSON.parse(fs.readFileSync(fd, 'utf8'));
    } catch {
      throw new ApprovalError('ERR_STOCKADE_APPROVAL_FILE', `stockade: ${file} is not valid JSON; run \`stockade approve\` again`, file);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes a file by creating a fresh one beside it (O_EXCL, 0600) and renaming it over the old. */
function writeJson(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  try {
    fs.writeFileSync(fd, `${JSON.stringify(value, null, 2)}\n`);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function readApproval(files: ApprovalFiles): Approval | undefined {
  const doc = readJson(files.approved);
  if (doc === undefined) return undefined;
  const ok =
    isObject(doc) &&
    doc.stockade === FORMAT &&
    typeof doc.policyDigest === 'string' &&
    isObject(doc.grants) &&
    Array.isArray(doc.grants.entries) &&
    isObject(doc.grants.limits) &&
    Array.isArray(doc.grants.denied) &&
    (doc.grants.restrictions === undefined || Array.isArray(doc.grants.restrictions)) &&
    (doc.tools === undefined || isObject(doc.tools));
  if (!ok) {
    throw new ApprovalError(
      'ERR_STOCKADE_APPROVAL_FILE',
      `stockade: ${files.approved} is not an approval file; run \`stockade approve\` again`,
      files.approved,
    );
  }
  return doc as unknown as Approval;
}

export function readPending(files: ApprovalFiles): Pending | undefined {
  const doc = readJson(files.pending);
  if (doc === undefined) return undefined;
  if (!isObject(doc) || doc.stockade !== FORMAT || !isObject(doc.tools)) return undefined;
  return doc as unknown as Pending;
}

/** Records `policy` as approved (keeping the tool pins, plus any pending tools when asked to). */
export function writeApproval(files: ApprovalFiles, policy: Policy, tools: ToolPins | undefined): Approval {
  const approval: Approval = {
    stockade: FORMAT,
    policyDigest: policyDigest(policy),
    grants: policyGrants(policy),
    ...(tools !== undefined ? { tools } : {}),
    approvedAt: new Date().toISOString(),
  };
  writeJson(files.approved, approval);
  return approval;
}

/** `stockade wrap`: the policies it writes are approved as written (the user ran wrap). */
export function approveWrittenPolicy(policyFile: string, policy: Policy): void {
  writeApproval(approvalFiles(policyFile), policy, undefined);
}

export function removePending(files: ApprovalFiles): void {
  fs.rmSync(files.pending, { force: true });
}

/**
 * The launcher's consent check. Returns the approval (undefined when the user never opted in).
 * Throws ApprovalError when the policy grew: one line naming what grew and the command to run.
 */
export function checkConsent(files: ApprovalFiles, policy: Policy): Approval | undefined {
  const approval = readApproval(files);
  if (approval === undefined || approval.policyDigest === policyDigest(policy)) return approval;
  const grown = grownGrants(approval.grants, policyGrants(policy));
  if (grown.length === 0) return approval;
  throw new ApprovalError(
    'ERR_STOCKADE_NOT_APPROVED',
    `stockade: ${path.basename(files.policy)} grew since it was approved (${grown.join('; ')}); not starting it. To allow this, run: stockade approve ${files.policy}`,
    files.policy,
    grown,
  );
}

/**
 * Approval files a sandbox could write are worthless (a server would approve itself): refuses
 * when their directory is inside a read-write grant or the sandbox's home directory.
 */
export function assertOutOfReach(files: ApprovalFiles, writable: readonly string[]): void {
  let dir: string;
  try {
    dir = fs.realpathSync(path.dirname(files.approved));
  } catch {
    return;
  }
  for (const w of writable) {
    let real: string;
    try {
      real = fs.realpathSync(w);
    } catch {
      continue;
    }
    if (dir === real || dir.startsWith(real === '/' ? '/' : `${real}/`)) {
      throw new ApprovalError(
        'ERR_STOCKADE_APPROVAL_FILE',
        `stockade: the policy's directory ${dir} is writable from inside the sandbox (granted ${w}), so its approval cannot be trusted; move the policy out of it`,
        files.approved,
      );
    }
  }
}

/** Hooks for the launcher's PinGate: record the first listing, remember what was withheld. */
export function pinRecorder(files: ApprovalFiles, report: (line: string) => void): PinGateHooks {
  return {
    onRecorded(pins) {
      try {
        // Re-read: another launch of the same server may have recorded (or the user approved) meanwhile.
        const current = readApproval(files);
        if (current === undefined || current.tools !== undefined) return;
        writeJson(files.approved, { ...current, tools: pins });
        report(`stockade: pinned ${Object.keys(pins).length} tool definitions in ${files.approved}`);
      } catch (err) {
        report(`stockade: could not record the tool pins in ${files.approved}: ${(err as Error).message}`);
      }
    },
    onWithheld(w) {
      report(`stockade: ${printable(describe(w))}; withheld until you run: stockade approve ${files.policy}`);
      if (w.pin === undefined) return;
      try {
        const pending = readPending(files) ?? { stockade: FORMAT, tools: {} };
        if (!Object.hasOwn(pending.tools, w.tool) && Object.keys(pending.tools).length >= MAX_PENDING_TOOLS) return;
        const entry = { ...w, seenAt: new Date().toISOString() };
        writeJson(files.pending, { ...pending, tools: Object.fromEntries([...Object.entries(pending.tools), [w.tool, entry]]) });
      } catch (err) {
        report(`stockade: could not record the withheld tool in ${files.pending}: ${(err as Error).message}`);
      }
    },
  };
}

/** Text from a server, made safe for a terminal: control characters shown as \uXXXX, capped. */
export function printable(text: string, max = 300): string {
  const safe = text.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: neutralising control characters is the point
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return safe.length > max ? `${safe.slice(0, max)}...` : safe;
}
