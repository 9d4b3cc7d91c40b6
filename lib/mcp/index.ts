// The optional MCP layer on the stdio path (tool allowlist, audit of tool calls).
export {
  type ActiveToolCall,
  type ToolCallEvent,
  type ToolCallOutcome,
  type ToolFilter,
  type ToolFilterOptions,
  type ToolFilterStreams,
  type ToolGate,
  wireToolFilter,
} from './filter';
export { LineSplitter, type LineSplitterOptions } from './framing';
export { hasDuplicateKeys } from './json';
export { canonicalJson, PinGate, type ToolPin, type ToolPins, toolDigest, type WithheldTool } from './pins';
export { isInputRequired, requestProtocolVersion } from './protocol';
export { describeCalls, type ToolGrant, ToolGrants, type ToolGrantsSpec } from './tool-grants';
