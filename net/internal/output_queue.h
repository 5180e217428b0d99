// OutputQueue: a connection's pending output, in order: byte runs and file
// ranges (sent with sendfile(2)), with the total the water marks look at.
// Internal: not part of the API.
//
// Pure bookkeeping, no I/O: the connection gathers the leading bytes
// (Gather), hands them to its transport, and reports what was written
// (Consume). Consecutive small byte runs are coalesced, so a burst of small
// Send()s becomes one write; large strings and buffers handed over by move
// are kept as they are (no copy) and gathered with their neighbours.
//
// Thread-safety: thread-compatible (the connection's lock guards it).
// Ownership: owns the bytes; a file range borrows its descriptor until its
// release callback is handed back (sent, or dropped by Clear).
#ifndef MILL_IO_NET_INTERNAL_OUTPUT_QUEUE_H_
#define MILL_IO_NET_INTERNAL_OUTPUT_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "net/byte_buffer.h"
#include "net/internal/small_queue.h"

namespace mill {
namespace net_internal {

class OutputQueue {
 public:
  using Releases = std::vector<absl::AnyInvocable<void()>>;

  // The front of the queue: bytes to write, or a file range.
  struct Front {
    absl::string_view bytes;  // empty for a file range
    int fd = -1;              // >= 0: a file range
    uint64_t offset = 0;
    uint64_t length = 0;
  };

  bool empty() const { return pieces_.empty(); }
  // Bytes queued, file ranges included.
  size_t pending_bytes() const { return pending_bytes_; }

  // A string or buffer smaller than this is copied into the tail piece.
  static constexpr size_t kAdoptMin = 512;

  void AppendBytes(absl::string_view data);
  // Takes `data` over without copying its bytes (a small one is copied into
  // the tail instead: cheaper than a separate gathered piece).
  void AppendString(std::string&& data);
  void AppendBuffer(ByteBuffer&& data);
  // `release` (may be null) is handed back once the range is sent or
  // dropped. `length` > 0.
  void AppendFile(int fd, uint64_t offset, uint64_t length,
                  absl::AnyInvocable<void()> release);

  // The first piece. Requires !empty().
  Front PeekFront();
  // The leading byte runs (up to `max`, stopping at a file range) as views
  // into the queue, valid until the next non-const call; returns the count.
  size_t Gather(absl::string_view* views, size_t max);
  // Marks `n` bytes written from the front (byte runs and file ranges
  // alike); completed file ranges' release callbacks go to *released.
  void Consume(size_t n, Releases* released);
  // Drops everything; every file range's release goes to *released.
  void Clear(Releases* released);

 private:
  struct Piece {
    // Bytes: `bytes`, or `owned` from `owned_pos` when `adopted`.
    ByteBuffer bytes;
    std::string owned;
    size_t owned_pos = 0;
    bool adopted = false;
    // A handed-over buffer: later bytes are not appended to it (its growth
    // would copy it).
    bool sealed = false;
    bool appendable() const { return fd < 0 && !adopted && !sealed; }
    absl::string_view view() const {
      return adopted ? absl::string_view(owned).substr(owned_pos)
                     : bytes.view();
    }
    size_t byte_size() const {
      return adopted ? owned.size() - owned_pos : bytes.size();
    }

    int fd = -1;  // >= 0: a file range
    uint64_t offset = 0;
    uint64_t remaining = 0;
    absl::AnyInvocable<void()> release;
  };

  SmallQueue<Piece> pieces_;
  size_t pending_bytes_ = 0;
};

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_OUTPUT_QUEUE_H_
