// scanwitness.h — the record of a clean socket scan (hostscan.cc), so that the next scan of an
// unchanged tree checks each directory's identity instead of reading every directory again.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <string>
#include <vector>

namespace stockade {

// One directory the scan read: its path below the root ("" for the root), its identity, and its
// change time, taken before its entries were read.
struct DirStamp {
  std::string rel;
  uint64_t dev = 0;  // major << 32 | minor
  uint64_t ino = 0;
  int64_t sec = 0;
  uint32_t nsec = 0;
};

// The directory at `rel` below `rootFd`, not following a final symlink, stamped; false where it
// is not a directory or cannot be looked at.
bool stampDir(int rootFd, const std::string& rel, DirStamp* out);

// The mounts at or below `root` in this process's mount namespace (/proc/self/mountinfo): a
// digest of their id, device, root and mount point (never 0), and their mount points; false
// where it cannot be read.
bool mountsBelow(const std::string& root, uint64_t* digest, std::vector<std::string>* points);

// What a witness holds besides the stamps.
struct WitnessHead {
  std::string root;
  uint64_t mounts = 0;
  uint64_t entries = 0;  // entries the scan counted (against its limit)
};

// The witness at `file` holds `head.root` and every stamp in it still matches the tree: the
// scan's answer (clean) still holds. `limit` and `mounts` are the current scan's.
bool witnessHolds(const std::string& file, const std::string& root, size_t limit, uint64_t mounts);

// Writes the witness of a clean scan to `file`, atomically; false where it could not (a
// directory not this user's, a read-only install): no witness is then only slower.
bool writeWitness(const std::string& file, const WitnessHead& head,
                  const std::vector<DirStamp>& dirs);

// The scan's answer for `root` without a walk (what hostscan.cc's begin() settles on before it
// walks): no unix socket or FIFO is mounted at or below it, and its witness holds.
bool witnessedClean(const std::string& root, const std::string& witness, size_t limit);

// The bytes of `file` (at most `max`), a regular file of this user's in a directory of this
// user's, neither writable by anyone else, opened without following a symlink: the rule for
// every cache beside the code (witnesses, launch records). False otherwise.
bool readOwnFile(const std::string& file, size_t max, std::string* out);

// FNV-1a, 64 bits: a digest against torn files and a name for records, not against attackers.
uint64_t fnv1a(const char* data, size_t n, uint64_t h = 14695981039346656037ull);

}  // namespace stockade
