// Reading a policy file: JSON or YAML, size-capped, parsed without surprises (no custom YAML
// tags, duplicate keys rejected), then validated. Nothing is spawned from an unvalidated file.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { extname } from 'node:path';
import type { parseDocument as ParseDocument } from 'yaml';
import type { Policy } from './types';
import { PolicyError, type ValidationOptions, validatePolicy } from './validate';

/** A policy is a few dozen lines; a megabyte means the wrong file (or an attack on the parser). */
export const MAX_POLICY_BYTES = 1024 * 1024;

function readCapped(file: string): string {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size > MAX_POLICY_BYTES) {
      throw new PolicyError(
        [
          {
            path: '',
            message: `the file is ${(size / 1024 / 1024).toFixed(1)} MiB; a policy may be at most 1 MiB (is this the right file?)`,
          },
        ],
        file,
      );
    }
    // Read at most one byte past the cap: the file may grow between fstat and read (or be a FIFO).
    const buf = Buffer.alloc(MAX_POLICY_BYTES + 1);
    let length = 0;
    for (;;) {
      const n = readSync(fd, buf, length, buf.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > MAX_POLICY_BYTES) {
        throw new PolicyError([{ path: '', message: 'the file is larger than 1 MiB; a policy may be at most 1 MiB' }], file);
      }
    }
    return buf.toString('utf8', 0, length);
  } finally {
    closeSync(fd);
  }
}

/** Parses policy text. `format` comes from the extension; without one, the content decides. */
export function parsePolicyText(text: string, format: 'json' | 'yaml' | 'auto', file?: string): unknown {
  const body = text.replace(/^\uFEFF/, '');
  const asJson = format === 'json' || (format === 'auto' && /^\s*[{[]/.test(body));
  if (asJson) {
    try {
      return JSON.parse(body);
    } catch (err) {
      // V8 reports "at position N"; turn that into line:column, which is what editors show.
      const msg = (err as Error).message;
      const pos = /position (\d+)/.exec(msg);
      let where = '';
      if (pos) {
        const before = body.slice(0, Number(pos[1])).split('\n');
        where = ` at line ${before.length}, column ${before[before.length - 1].length + 1}`;
      }
      throw new PolicyError([{ path: '', message: `not valid JSON${where}: ${msg}` }], file);
    }
  }
  // yaml is loaded for YAML policies only.
  const { parseDocument } = require('yaml') as { parseDocument: typeof ParseDocument };
  const doc = parseDocument(body, { schema: 'core', uniqueKeys: true, prettyErrors: true, customTags: [] });
  // An unknown tag (!!js/function, !!python/object) is only a warning to the yaml package; in a
  // security policy it means the author expected something we will not do, so it is an error.
  const problems = [...doc.errors, ...doc.warnings.filter((w) => w.code === 'TAG_RESOLVE_FAILED')];
  if (problems.length > 0) {
    const e = problems[0];
    const where = e.linePos ? ` at line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '';
    throw new PolicyError(
      [{ path: '', message: `not valid YAML${where}: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}` }],
      file,
    );
  }
  return doc.toJS({ maxAliasCount: 100 });
}

/** Reads, parses and validates a policy file; throws PolicyError naming the file on any problem. */
export function loadPolicy(file: string, options: ValidationOptions = {}): Policy {
  const ext = extname(file).toLowerCase();
  const format = ext === '.json' ? 'json' : ext === '.yaml' || ext === '.yml' ? 'yaml' : 'auto';
  let text: string;
  try {
    text = readCapped(file);
  } catch (err) {
    if (err instanceof PolicyError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new PolicyError([{ path: '', message: `cannot read the policy file: ${e.message}` }], file);
  }
  const doc = parsePolicyText(text, format, file);
  const issues = validatePolicy(doc, options);
  if (issues.length > 0) throw new PolicyError(issues, file);
  return doc as Policy;
}
