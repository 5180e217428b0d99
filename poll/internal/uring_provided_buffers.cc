#include "poll/internal/uring_provided_buffers.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "base/errno_status.h"

namespace mill {
namespace poll_internal {

absl::StatusOr<std::unique_ptr<ProvidedBuffers>> ProvidedBuffers::Create(
    io_uring* ring, uint16_t group, unsigned count, unsigned initial,
    size_t size) {
  if (count == 0 || count > 32768 || (count & (count - 1)) != 0 || size == 0 ||
      initial == 0 || initial > count) {
    return absl::InvalidArgumentError(
        "provided buffers: count must be a power of two up to 32768");
  }
  // The entries must be page-aligned; mmap gives that. The buffers are
  // mapped too, so pages the kernel never fills cost no memory.
  const size_t entries_bytes = count * sizeof(io_uring_buf);
  void* entries = mmap(nullptr, entries_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (entries == MAP_FAILED) return ErrnoStatus(errno, "mmap (buffer ring)");
  void* base = mmap(nullptr, count * size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    const int err = errno;
    munmap(entries, entries_bytes);
    return ErrnoStatus(err, "mmap (provided buffers)");
  }
  io_uring_buf_reg reg;
  std::memset(&reg, 0, sizeof(reg));
  reg.ring_addr = reinterpret_cast<uint64_t>(entries);
  reg.ring_entries = count;
  reg.bgid = group;
  const int r = io_uring_register_buf_ring(ring, &reg, 0);
  if (r < 0) {
    munmap(base, count * size);
    munmap(entries, entries_bytes);
    if (r == -EINVAL) {
      return absl::UnimplementedError(
          "io_uring: this kernel lacks provided buffer rings (Linux 5.19)");
    }
    return ErrnoStatus(-r, "io_uring_register_buf_ring");
  }
  auto* br = static_cast<io_uring_buf_ring*>(entries);
  io_uring_buf_ring_init(br);
  std::unique_ptr<ProvidedBuffers> buffers(new ProvidedBuffers(
      ring, group, count, size, br, entries_bytes, static_cast<char*>(base)));
  for (unsigned id = 0; id < initial; ++id) {
    buffers->Recycle(static_cast<uint16_t>(id));
  }
  buffers->provided_ = initial;
  return buffers;
}

ProvidedBuffers::ProvidedBuffers(io_uring* ring, uint16_t group, unsigned count,
                                 size_t size, io_uring_buf_ring* entries,
                                 size_t entries_bytes, char* base)
    : ring_(ring),
      group_(group),
      count_(count),
      size_(size),
      entries_(entries),
      entries_bytes_(entries_bytes),
      base_(base),
      available_(0) {}

ProvidedBuffers::~ProvidedBuffers() {
  (void)io_uring_unregister_buf_ring(ring_, group_);
  munmap(base_, count_ * size_);
  munmap(entries_, entries_bytes_);
}

bool ProvidedBuffers::Grow() {
  if (provided_ == count_) return false;
  const unsigned more = std::min(provided_, count_ - provided_);
  for (unsigned i = 0; i < more; ++i) {
    Recycle(static_cast<uint16_t>(provided_ + i));
  }
  provided_ += more;
  return true;
}

void ProvidedBuffers::Recycle(uint16_t id) {
  io_uring_buf_ring_add(entries_, base_ + size_t{id} * size_,
                        static_cast<unsigned>(size_), id,
                        io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(entries_, 1);  // publishes the tail (release)
  ++available_;
}

}  // namespace poll_internal
}  // namespace mill
