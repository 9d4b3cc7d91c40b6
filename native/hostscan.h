// hostscan.h — looks for unix sockets and FIFOs in a host directory about to be granted.
#pragma once

#include <stddef.h>

#include <string>

namespace stockade {

enum class SpecialKind { none, socket, fifo };

// What became of the scan's witness (scanwitness.cc): none used nor written, one that held (no
// walk), or one written by this clean walk.
enum class WitnessUse { none, held, written };

struct SpecialScan {
  SpecialKind kind = SpecialKind::none;
  // The socket or FIFO found; or, with err, the directory that could not be checked.
  std::string path;
  // 0, or why the scan gave up: E2BIG past `limit` entries, ELOOP past the depth bound, or
  // the errno of an open or read that failed for another reason than permissions.
  int err = 0;
  WitnessUse witness = WitnessUse::none;
};

// A scan running on threads of its own (hostscan.cc), from the host's view, started before the
// rest of a plan is resolved and finished before anything is spawned.
struct SpecialFileScan;
// `witness`: the file of the witness of this root ("" for none; lib/hostpath.ts names it), read
// before the walk and written after a clean one that saw no directory changed within `racyMs`.
SpecialFileScan* startSpecialFileScan(const std::string& root, size_t limit,
                                      const std::string& witness, int64_t racyMs);
// Waits for the scan and frees it.
SpecialScan finishSpecialFileScan(SpecialFileScan* scan);
// Stops the scan where it is, waits for its threads and frees it: nobody wants its result.
void abandonSpecialFileScan(SpecialFileScan* scan);

}  // namespace stockade
