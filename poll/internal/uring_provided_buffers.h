// Internal, Linux: a ring of provided buffers for io_uring receives
// (IORING_REGISTER_PBUF_RING, Linux 5.19). The kernel picks a free buffer
// for each completion of a receive that names the group, so a thousand
// idle connections with a receive pending hold no buffer at all; a buffer
// comes back to the ring when its bytes have been copied out (Recycle).
// The ring starts with a few buffers and grows (Grow) when receives find it
// empty: the kernel takes buffers in ring order, so every buffer handed to
// it is soon touched, and a loop with a few busy connections should not
// pay for a thousand.
//
// liburing 2.3 has no io_uring_setup_buf_ring (2.4), so the ring's memory
// is mapped and registered here.
//
// Thread-safety: none; the io_uring backend calls it under its mutex (the
// ring's tail has one producer). Ownership: owns the buffers and the ring
// memory; unregisters the group when destroyed, which must happen before
// the io_uring is closed.
#ifndef MILL_IO_POLL_INTERNAL_URING_PROVIDED_BUFFERS_H_
#define MILL_IO_POLL_INTERNAL_URING_PROVIDED_BUFFERS_H_

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace mill {
namespace poll_internal {

class ProvidedBuffers {
 public:
  // Room for `count` (a power of two, <= 32768) buffers of `size` bytes
  // as group `group` of `ring`, `initial` of them handed to the kernel.
  // Unimplemented on a kernel without buffer rings.
  static absl::StatusOr<std::unique_ptr<ProvidedBuffers>> Create(
      io_uring* ring, uint16_t group, unsigned count, unsigned initial,
      size_t size);
  ~ProvidedBuffers();
  ProvidedBuffers(const ProvidedBuffers&) = delete;
  ProvidedBuffers& operator=(const ProvidedBuffers&) = delete;

  uint16_t group() const { return group_; }
  size_t buffer_size() const { return size_; }
  unsigned count() const { return count_; }
  // Buffers handed to the kernel so far (in the ring or taken).
  unsigned provided() const { return provided_; }
  // Buffers the kernel may still fill.
  unsigned available() const { return available_; }

  // The bytes of buffer `id`, which a completion handed over.
  const char* data(uint16_t id) const { return base_ + size_t{id} * size_; }
  // A completion took buffer `id` out of the ring.
  void Taken() { --available_; }
  // Gives buffer `id` back to the kernel.
  void Recycle(uint16_t id);
  // Hands as many new buffers to the kernel as it has now (doubling), up
  // to count(). False when all are handed out already.
  bool Grow();

 private:
  ProvidedBuffers(io_uring* ring, uint16_t group, unsigned count, size_t size,
                  io_uring_buf_ring* entries, size_t entries_bytes, char* base);

  io_uring* const ring_;
  const uint16_t group_;
  const unsigned count_;
  const size_t size_;
  io_uring_buf_ring* const entries_;
  const size_t entries_bytes_;
  char* const base_;  // count_ * size_ bytes
  unsigned available_;
  unsigned provided_ = 0;
};

}  // namespace poll_internal
}  // namespace mill

#endif  // MILL_IO_POLL_INTERNAL_URING_PROVIDED_BUFFERS_H_
