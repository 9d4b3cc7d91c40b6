// JSON.parse keeps the last of duplicate keys; other parsers keep the first. A message like
// {"method":"tools/list","method":"tools/call",...} could then mean one thing to the filter and
// another to the server, so messages with duplicate keys are refused outright. This scanner is
// only ever run on text JSON.parse has accepted, so it can assume valid JSON.

/** Deepest nesting a message may have, by default: MCP's deepest real schemas nest a few dozen. */
export const MAX_JSON_DEPTH = 128;

/** True if any object in the (valid) JSON text has the same key twice, after unescaping. */
export function hasDuplicateKeys(text: string): boolean {
  return inspectJson(text, Number.POSITIVE_INFINITY) === 'duplicate-keys';
}

/**
 * One pass over (valid) JSON text: 'too-deep' when containers nest deeper than `maxDepth` (JSON.parse
 * is iterative but JSON.stringify and every walk over the value recurse: 200,000 levels overflow
 * the stack), 'duplicate-keys' when an object has a key twice, else null.
 */
export function inspectJson(text: string, maxDepth: number = MAX_JSON_DEPTH): 'too-deep' | 'duplicate-keys' | null {
  // One entry per open container: a Set of keys for objects, null for arrays.
  const stack: (Set<string> | null)[] = [];
  // Whether the next string at object level is a key (after '{' or ',').
  let expectKey = false;
  let duplicate = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i++;
        else if (d === 0x22) break;
      }
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const raw = text.slice(start, i + 1);
        const key = raw.includes('\\') ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        if (top.has(key)) duplicate = true;
        top.add(key);
        expectKey = false;
      }
    } else if (c === 0x7b /* { */) {
      if (stack.length >= maxDepth) return 'too-deep';
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      if (stack.length >= maxDepth) return 'too-deep';
      stack.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] instanceof Set;
    }
  }
  return duplicate ? 'duplicate-keys' : null;
}
