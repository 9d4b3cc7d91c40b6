// mcpcheck.h — which MCP messages the native tool relay (toolrelay.cc) may pass on by itself.
#pragma once

#include <stddef.h>

#include <string>
#include <vector>

namespace stockade {

// What the relay does with one line. The reference for every decision is lib/mcp/filter.ts: a
// line this file is not sure of, in any way, is kDefer and gets the JavaScript filter's answer.
enum class Verdict {
  kForward,  // passed on as it came; nothing to record
  kObserve,  // passed on as it came; lib/mcp/filter.ts reads a copy for its records (and checks)
  kDefer,    // lib/mcp/filter.ts decides, and the direction waits for its answer
};

struct ToolRules {
  std::vector<std::string> allow;  // lib/policy/formats.ts toolMatcher patterns: '*' any run
  bool deferCalls = false;         // a gate (pinned tools) decides calls: every call is deferred
  size_t maxDepth = 128;           // lib/mcp/json.ts MAX_JSON_DEPTH
};

// A line from the MCP client (without its '\n'), and one from the server.
Verdict checkClientLine(const char* line, size_t len, const ToolRules& rules);
Verdict checkServerLine(const char* line, size_t len, const ToolRules& rules);

}  // namespace stockade
