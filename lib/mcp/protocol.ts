// What the tool layer needs to know about MCP's protocol revisions. The initialize-based
// revisions (2024-11-05 to 2025-11-25) and the stateless 2026-07-28 revision share the messages
// the tool layer acts on — tools/list and tools/call, answered by id — so the filter treats both
// alike: each request is decided on its own, which is what a stateless protocol asks for anyway.
// The differences that matter here:
//   - 2026-07-28 requests carry the revision in params._meta (there is no initialize);
//   - server/discover replaces initialize for capabilities: it passes untouched;
//   - a tools/call may be answered with an InputRequiredResult (`resultType: "input_required"`):
//     the call is not finished; the client gathers input and sends a new tools/call (new id,
//     same tool, `inputResponses`), which the filter checks again like any call.

export const PROTOCOL_VERSION_META_KEY = 'io.modelcontextprotocol/protocolVersion';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: Json | undefined): v is { [k: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The revision a 2026-07-28-style request names in its _meta, if any. */
export function requestProtocolVersion(params: Json | undefined): string | undefined {
  if (!isObject(params) || !isObject(params._meta)) return undefined;
  const v = params._meta[PROTOCOL_VERSION_META_KEY];
  return typeof v === 'string' ? v.slice(0, 32) : undefined;
}

/** A multi round-trip answer: the server needs input before the call can complete. */
export function isInputRequired(result: Json | undefined): boolean {
  return isObject(result) && result.resultType === 'input_required';
}
