// hostscan.h — looks for unix sockets and FIFOs in a host directory about to be granted.
#pragma once

#include <stddef.h>

#include <string>

namespace stockade {

enum class SpecialKind { none, socket, fifo };

struct SpecialScan {
  SpecialKind kind = SpecialKind::none;
  // The socket or FIFO found; or, with err, the directory that could not be checked.
  std::string path;
  // 0, or why the scan gave up: E2BIG past `limit` entries, ELOOP past the depth bound, or
  // the errno of an open or read that failed for another reason than permissions.
  int err = 0;
};

// A scan running on threads of its own (hostscan.cc), from the host's view, started before the
// rest of a plan is resolved and finished before anything is spawned.
struct SpecialFileScan;
SpecialFileScan* startSpecialFileScan(const std::string& root, size_t limit);
// Waits for the scan and frees it.
SpecialScan finishSpecialFileScan(SpecialFileScan* scan);
// Stops the scan where it is, waits for its threads and frees it: nobody wants its result.
void abandonSpecialFileScan(SpecialFileScan* scan);

}  // namespace stockade
