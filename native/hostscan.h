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

// Runs on the calling (JS) thread, from the host's view, before anything is spawned.
SpecialScan findSpecialFileOnHost(const std::string& root, size_t limit);

}  // namespace stockade
