// launchrecord.h — the launch record lib/launch/record.ts writes and stockade-launch (launch.cc)
// reads: what a `stockade run` resolved, under its key, with every host read of the resolution
// as a check to perform again (lib/launch/readset.ts).
//
// Layout (little-endian): "STKLREC1", then sections to the end, each a u8 tag, a u32 length and
// that many bytes: 1 the key, 2 a check (any number), 3 the encoded plan (planwire.h), 4 the
// recording launcher's pid (decimal). A check is a u8 op and its fields, a string being a u32
// length and its bytes:
//   1 lstat, 2 stat   path, i32 errno (0: it succeeded), then ten u64 (dev, ino, mode, nlink,
//                     uid, gid, rdev, size, mtime ns, ctime ns) if it did
//   3 access          path, i32 mode, i32 errno
//   4 read            path, i32 errno, the file's bytes if it succeeded
//   5 readdir         path, i32 errno, u32 count and (u8 d_type, name) each if it succeeded, in
//                     strcmp order (libuv's scandir)
//   6 realpath, 7 readlink   path, i32 errno, the result if it succeeded
//   8 totalmem        u64 (os.totalmem(): MemTotal of /proc/meminfo)
//   9 witness         root, witness file, u64 limit: a clean socket scan (scanwitness.h)
//   10 native         name (landlockAbi, seccompNotify, probeNamespaces), i64 value
#pragma once

#include <stdint.h>

#include <string>
#include <vector>

namespace stockade {

struct LaunchCheck {
  uint8_t op = 0;
  std::string path;  // the path, the witness's root, the native probe's name
  std::string file;  // witness: its file
  int32_t err = 0;
  int32_t mode = 0;
  uint64_t stat[10] = {};
  std::string bytes;  // read: the content; realpath, readlink: the result
  std::vector<std::pair<uint8_t, std::string>> entries;
  uint64_t value = 0;  // totalmem, witness limit, native value
};

struct LaunchRecord {
  std::string key;
  std::vector<LaunchCheck> checks;
  std::string plan;
  std::string pid;
};

// Parses `bytes`; false for anything that is not exactly a record.
bool parseLaunchRecord(const std::string& bytes, LaunchRecord* out);

// Performs every check again; true only if each sees what the record holds (else `differs` names
// the first that does not).
bool checksHold(const LaunchRecord& record, std::string* differs);

}  // namespace stockade
