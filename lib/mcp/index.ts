// The optional MCP layer on the stdio path (tool allowlist, audit of tool calls).
export {
  type ActiveToolCall,
  type ToolCallEvent,
  type ToolCallOutcome,
  type ToolFilter,
  type ToolFilterOptions,
  type ToolFilterStreams,
  wireToolFilter,
} from './filter';
export { LineSplitter, type LineSplitterOptions } from './framing';
export { hasDuplicateKeys } from './json';
