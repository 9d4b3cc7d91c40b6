// JSON.parse keeps the last of duplicate keys; other parsers keep the first. A message like
// {"method":"tools/list","method":"tools/call",...} could then mean one thing to the filter and
// another to the server, so messages with duplicate keys are refused outright. This scanner is
// only ever run on text JSON.parse has accepted, so it can assume valid JSON.

/** Deepest nesting a message may have, by default: MCP's deepest real schemas nest a few dozen. */
export const MAX_JSON_DEPTH = 128;

/** True if any object in the (valid) JSON text has the same key twice, after unescaping. */
export function hasDuplicateKeys(text: string): boolean {
  return inspectJson(text, JSON.parse(text), Number.POSITIVE_INFINITY) === 'duplicate-keys';
}

/**
 * One pass over (valid) JSON text and the value JSON.parse made of it: 'too-deep' when containers
 * nest deeper than `maxDepth` (JSON.parse is iterative but JSON.stringify and every walk over the
 * value recurse: 200,000 levels overflow the stack), 'duplicate-keys' when an object has a key
 * twice, else null.
 *
 * Duplicates are found by counting rather than by remembering keys: in valid JSON every key is
 * followed by the only ':' outside strings, and JSON.parse makes one own property per distinct
 * key of an object (the last duplicate wins, "__proto__" included), so the value has fewer keys
 * than the text exactly when some object repeats one. Strings are skipped with indexOf, not
 * character by character: on the tool layer's hot path, most of a message's bytes are strings.
 */
export function inspectJson(text: string, value: unknown, maxDepth: number = MAX_JSON_DEPTH): 'too-deep' | 'duplicate-keys' | null {
  let depth = 0;
  let keys = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      i = stringEnd(text, i);
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > maxDepth) return 'too-deep';
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    } else if (c === 0x3a /* : */) {
      keys++;
    }
  }
  return keys === countKeys(value) ? null : 'duplicate-keys';
}

/** Index of the quote closing the string opened at `open`: the next one not escaped by an odd run of backslashes. */
function stringEnd(text: string, open: number): number {
  let i = open;
  for (;;) {
    i = text.indexOf('"', i + 1);
    if (i < 0) return text.length; // unterminated: not valid JSON, and the scan ends
    let b = i - 1;
    while (text.charCodeAt(b) === 0x5c /* \ */) b--;
    if ((i - 1 - b) % 2 === 0) return i;
  }
}

/**
 * Own keys of every object in a parsed value; iterative, as the value may nest deeper than the
 * stack. Only containers are queued, so an array of a million numbers queues nothing.
 */
function countKeys(value: unknown): number {
  let n = 0;
  const todo: object[] = typeof value === 'object' && value !== null ? [value] : [];
  const queue = (v: unknown) => {
    if (typeof v === 'object' && v !== null) todo.push(v);
  };
  while (todo.length > 0) {
    const v = todo.pop() as object;
    if (Array.isArray(v)) {
      for (const x of v) queue(x);
      continue;
    }
    for (const k of Object.keys(v)) {
      n++;
      queue((v as Record<string, unknown>)[k]);
    }
  }
  return n;
}
