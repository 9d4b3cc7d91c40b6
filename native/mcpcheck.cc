// mcpcheck.cc — the native tool relay's fast check of one MCP message (toolrelay.cc).
// RFC 8259 (JSON), RFC 3629 (UTF-8), JSON-RPC 2.0; the reference is lib/mcp/filter.ts.
//
// The tool layer reads every message whole before a byte of it goes on (lib/mcp/filter.ts), and
// in JavaScript that costs a wakeup of the launcher's event loop per message, a third more time
// per round trip than the hop itself. Here the relay's own thread answers the common case: a
// message that is strict JSON, valid UTF-8, without duplicate keys, no deeper than the limit,
// whose meaning for the tool layer is plain (an allowed tools/call, a response that holds no
// tools list, a notification). Anything else — a key or a method or tool name with an escape in
// it, a batch, a tools list, a refused call, a number of keys this check does not compare, any
// byte it does not expect — is kDefer, and lib/mcp/filter.ts decides it exactly as it decides
// every message when this relay is not in use. So this file may only be narrower than the
// reference, never wider: an error here costs speed, not a boundary. The lines passed on by
// themselves that matter to the records (calls, their responses) are kObserve: the JavaScript
// filter reads a copy afterwards, keeps its records from it and checks that it would have done
// the same (test/mcp-native-relay.test.ts compares the two on every message of its corpus).
//
// Why not a JSON library: the relay needs a validator that refuses what JSON.parse refuses and
// also reports duplicate keys and two levels of structure, in one pass without allocating per
// message; a general parser builds a tree and accepts extensions (NaN, comments) that must be
// refused here. This is ~250 lines and has no state beyond the message.
#include "mcpcheck.h"

#include <ctype.h>
#include <string.h>

#include <algorithm>
#include <string_view>

namespace stockade {
namespace {

using std::string_view;

// Strict UTF-8 (what Node's buffer.isUtf8 accepts): no overlong forms, no surrogates, nothing
// above U+10FFFF.
bool validUtf8(const unsigned char* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;  // bounds of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;  // U+D800..U+DFFF are not characters
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) return false;
    for (size_t k = 2; k < len; ++k)
      if (s[i + k] < 0x80 || s[i + k] > 0xbf) return false;
    i += len;
  }
  return true;
}

bool blank(const char* s, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
  return true;
}

// What the tool layer reads of a message: two levels of its top object.
struct Shape {
  enum Top { kNone, kObject, kArray, kScalar } top = kNone;
  enum Str { kAbsent, kPlain, kEscaped, kNotString };
  Str method = kAbsent;  // top.method
  string_view methodText;
  Str name = kAbsent;  // top.params.name, when params is an object
  string_view nameText;
  bool hasId = false;           // top.id, any value
  bool resultHasTools = false;  // top.result is an object with a "tools" member
};

// Which member values the scan looks into.
enum Role { kTopValue, kParams, kResult, kOther };

class Scanner {
 public:
  Scanner(const char* s, size_t n, size_t maxDepth) : p_(s), end_(s + n), maxDepth_(maxDepth) {}

  // False: not JSON as JSON.parse reads it, or not something this check is sure of.
  bool run(Shape* shape) {
    shape_ = shape;
    skipSpace();
    if (!value(0, kTopValue)) return false;
    skipSpace();
    return p_ == end_;
  }

 private:
  void skipSpace() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\r' || *p_ == '\n')) ++p_;
  }

  bool value(size_t depth, Role role) {
    if (p_ == end_) return false;
    switch (*p_) {
      case '{':
        if (role == kTopValue) shape_->top = Shape::kObject;
        return object(depth + 1, role);
      case '[':
        if (role == kTopValue) shape_->top = Shape::kArray;
        return array(depth + 1);
      default:
        if (role == kTopValue) shape_->top = Shape::kScalar;
        return scalar();
    }
  }

  bool scalar() {
    switch (*p_) {
      case '"': {
        bool escaped;
        string_view s;
        return string(&s, &escaped);
      }
      case 't':
        return word("true");
      case 'f':
        return word("false");
      case 'n':
        return word("null");
      default:
        return number();
    }
  }

  // A member value the tool layer reads as a string (method, params.name).
  bool named(Shape::Str* kind, string_view* text) {
    if (p_ < end_ && *p_ == '"') {
      bool escaped;
      if (!string(text, &escaped)) return false;
      *kind = escaped ? Shape::kEscaped : Shape::kPlain;
      return true;
    }
    *kind = Shape::kNotString;
    return value(depthNow_, kOther);
  }

  bool object(size_t depth, Role role) {
    if (depth > maxDepth_) return false;
    ++p_;  // '{'
    size_t first = keys_.size();
    skipSpace();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    for (;;) {
      skipSpace();
      if (p_ == end_ || *p_ != '"') return false;
      string_view key;
      bool escaped;
      if (!string(&key, &escaped) || escaped) return false;  // "\u006dethod": left to JavaScript
      keys_.push_back(key);
      skipSpace();
      if (p_ == end_ || *p_ != ':') return false;
      ++p_;
      skipSpace();
      depthNow_ = depth;
      bool ok;
      if (role == kTopValue && key == "method") {
        ok = named(&shape_->method, &shape_->methodText);
      } else if (role == kTopValue && key == "params" && p_ < end_ && *p_ == '{') {
        ok = object(depth + 1, kParams);
      } else if (role == kTopValue && key == "result" && p_ < end_ && *p_ == '{') {
        ok = object(depth + 1, kResult);
      } else if (role == kParams && key == "name") {
        ok = named(&shape_->name, &shape_->nameText);
      } else {
        if (role == kTopValue && key == "id") shape_->hasId = true;
        if (role == kResult && key == "tools") shape_->resultHasTools = true;
        ok = value(depth, kOther);
      }
      if (!ok) return false;
      skipSpace();
      if (p_ == end_) return false;
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ != '}') return false;
      ++p_;
      break;
    }
    bool unique = distinct(first);
    keys_.resize(first);  // this object's keys sit after its parent's: they go with it
    return unique;
  }

  bool array(size_t depth) {
    if (depth > maxDepth_) return false;
    ++p_;  // '['
    skipSpace();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    for (;;) {
      skipSpace();
      if (!value(depth, kOther)) return false;
      skipSpace();
      if (p_ == end_) return false;
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ != ']') return false;
      ++p_;
      return true;
    }
  }

  // Keys compared as bytes: none holds an escape, so equal bytes are exactly equal keys.
  bool distinct(size_t first) {
    size_t n = keys_.size() - first;
    if (n <= 8) {
      for (size_t i = first; i < keys_.size(); ++i)
        for (size_t j = i + 1; j < keys_.size(); ++j)
          if (keys_[i] == keys_[j]) return false;
      return true;
    }
    sorted_.assign(keys_.begin() + static_cast<ptrdiff_t>(first), keys_.end());
    std::sort(sorted_.begin(), sorted_.end());
    return std::adjacent_find(sorted_.begin(), sorted_.end()) == sorted_.end();
  }

  // A string, opening quote at p_; its text without the quotes, and whether it has escapes.
  bool string(string_view* text, bool* escaped) {
    const char* start = ++p_;
    *escaped = false;
    while (p_ < end_) {
      unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        *text = string_view(start, static_cast<size_t>(p_ - start));
        ++p_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        *escaped = true;
        if (++p_ == end_) return false;
        char e = *p_;
        if (e == 'u') {
          if (end_ - p_ < 5) return false;
          for (int k = 1; k <= 4; ++k)
            if (!isxdigit(static_cast<unsigned char>(p_[k]))) return false;
          p_ += 4;
        } else if (strchr("\"\\/bfnrt", e) == nullptr || e == '\0') {
          return false;
        }
      }
      ++p_;
    }
    return false;
  }

  bool digits() {
    const char* s = p_;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    return p_ > s;
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool number() {
    if (p_ < end_ && *p_ == '-') ++p_;
    if (p_ == end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (*p_ >= '1' && *p_ <= '9') {
      digits();
    } else {
      return false;
    }
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      if (!digits()) return false;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!digits()) return false;
    }
    return true;
  }

  bool word(const char* w) {
    size_t n = strlen(w);
    if (static_cast<size_t>(end_ - p_) < n || memcmp(p_, w, n) != 0) return false;
    p_ += n;
    return true;
  }

  const char* p_;
  const char* end_;
  size_t maxDepth_;
  size_t depthNow_ = 0;  // containers around the member value being read (for named())
  Shape* shape_ = nullptr;
  std::vector<string_view> keys_;  // keys of the objects open now, outermost first
  std::vector<string_view> sorted_;
};

// lib/policy/formats.ts toolMatcher: '*' matches any run of characters, everything else itself.
// (Its RegExp's '.' does not match U+2028 or U+2029: names holding those are deferred, below.)
bool globMatch(string_view pattern, string_view name) {
  size_t p = 0, n = 0, star = string_view::npos, from = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      from = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != string_view::npos) {
      p = star + 1;
      n = ++from;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool hasLineSeparator(string_view s) {
  return s.find("\xe2\x80\xa8") != string_view::npos || s.find("\xe2\x80\xa9") != string_view::npos;
}

bool scan(const char* line, size_t len, size_t maxDepth, Shape* shape) {
  if (!validUtf8(reinterpret_cast<const unsigned char*>(line), len)) return false;
  Scanner scanner(line, len, maxDepth);
  return scanner.run(shape);
}

}  // namespace

Verdict checkClientLine(const char* line, size_t len, const ToolRules& rules) {
  if (blank(line, len)) return Verdict::kForward;  // filter.ts: passed on as it came
  Shape s;
  if (!scan(line, len, rules.maxDepth, &s) || s.top == Shape::kArray) return Verdict::kDefer;
  if (s.top != Shape::kObject) return Verdict::kForward;
  if (s.method == Shape::kAbsent || s.method == Shape::kNotString) return Verdict::kForward;
  if (s.method == Shape::kEscaped) return Verdict::kDefer;
  if (s.methodText == "tools/call") {
    if (rules.deferCalls || s.name != Shape::kPlain || hasLineSeparator(s.nameText))
      return Verdict::kDefer;
    for (const std::string& pattern : rules.allow)
      if (globMatch(pattern, s.nameText)) return Verdict::kObserve;
    return Verdict::kDefer;  // refused: the answer is the JavaScript filter's
  }
  if (s.methodText == "tools/list" || s.methodText == "notifications/cancelled")
    return Verdict::kObserve;
  return Verdict::kForward;
}

Verdict checkServerLine(const char* line, size_t len, const ToolRules& rules) {
  if (blank(line, len)) return Verdict::kForward;
  Shape s;
  if (!scan(line, len, rules.maxDepth, &s) || s.top == Shape::kArray) return Verdict::kDefer;
  if (s.top != Shape::kObject || s.method != Shape::kAbsent) return Verdict::kForward;
  if (s.resultHasTools) return Verdict::kDefer;
  return s.hasId ? Verdict::kObserve : Verdict::kForward;
}

}  // namespace stockade
