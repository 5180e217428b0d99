// Decoding of the raw inotify event stream: the bytes one read(2) from an
// inotify descriptor returns, as a sequence of records.
//
// A read returns whole records, each a `struct inotify_event` header (wd,
// mask, cookie, len) followed by `len` bytes holding the NUL-padded name of
// the entry (len is 0 when the event concerns the watched directory
// itself). The decoder is a pure function of the bytes, separate from the
// watcher, so it can be unit-tested and fuzzed without a kernel: it never
// reads past the buffer whatever the header fields say, and it refuses
// names the kernel never produces (containing '/', or "." / ".."), which
// would otherwise let a bad record make the watcher print a path outside
// the watched tree.
//
// Thread-safety: pure functions. Ownership: records own their names.
#ifndef MILL_IO_EXAMPLES_FILE_WATCHER_INOTIFY_DECODER_H_
#define MILL_IO_EXAMPLES_FILE_WATCHER_INOTIFY_DECODER_H_

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace mill {

// One decoded inotify record.
struct InotifyRecord {
  int wd = -1;          // Watch descriptor (-1 for IN_Q_OVERFLOW).
  uint32_t mask = 0;    // IN_* bits.
  uint32_t cookie = 0;  // Pairs IN_MOVED_FROM with IN_MOVED_TO.
  std::string name;     // Entry name without padding; empty for none.

  friend bool operator==(const InotifyRecord& a, const InotifyRecord& b) {
    return a.wd == b.wd && a.mask == b.mask && a.cookie == b.cookie &&
           a.name == b.name;
  }
  friend std::ostream& operator<<(std::ostream& os, const InotifyRecord& r) {
    return os << "{wd=" << r.wd << " mask=0x" << std::hex << r.mask << std::dec
              << " cookie=" << r.cookie << " name=\"" << r.name << "\"}";
  }
};

// Size of the fixed part of a record (struct inotify_event without name).
inline constexpr size_t kInotifyHeaderBytes = 16;

// Appends the records of `bytes` to `*out`, in order, and returns OK when
// `bytes` is exactly a sequence of whole, well-formed records. Otherwise
// returns DataLoss naming the offset of the first bad record (a header or
// name running past the end, or a name with '/' or equal to "." or ".."),
// with the records before it appended; the rest of `bytes` is skipped.
absl::Status DecodeInotifyRecords(std::string_view bytes,
                                  std::vector<InotifyRecord>* out);

// The bytes the kernel would return for `record`: the header, then the
// name NUL-padded to `name_field_bytes` (0: the kernel's choice, the name
// plus at least one NUL rounded up to a multiple of the header size; no name
// field at all for an empty name). A `name_field_bytes` shorter than the
// name plus its NUL is raised to that. For tests and fuzzing.
std::string EncodeInotifyRecord(const InotifyRecord& record,
                                size_t name_field_bytes = 0);

}  // namespace mill

#endif  // MILL_IO_EXAMPLES_FILE_WATCHER_INOTIFY_DECODER_H_
