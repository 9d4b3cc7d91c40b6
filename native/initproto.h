/* initproto.h — what stockade-init (init.c) tells the addon (addon.cc) on its status pipe.
 * Fixed-size records (below PIPE_BUF, so each write is atomic): zero or more violations while
 * the sandbox runs, then one exit record with the payload's raw wait status. */
#pragma once

#include <stdint.h>

enum { kInitRecordExit = 1, kInitRecordViolation = 2 };

struct StockadeInitRecord {
  uint32_t kind;  /* kInitRecordExit or kInitRecordViolation */
  int32_t status; /* exit: the raw wait status */
  /* violation: the refused call as seccomp saw it */
  int32_t nr;
  uint32_t arch; /* AUDIT_ARCH_* */
  uint64_t args[6];
  int32_t error; /* 0: the sandbox was killed; else the errno answered */
  uint32_t pid;  /* the caller, numbered in the sandbox's pid namespace */
  /* violation: CLOCK_MONOTONIC (ns) as the supervisor received it, before the caller could go on:
   * the launcher tells which MCP tool calls were in flight then (the sandbox has no time
   * namespace, so the clock is the host's) */
  uint64_t seenNs;
};
