#include "net/internal/output_queue.h"

#include <algorithm>
#include <utility>

namespace mill {
namespace net_internal {

void OutputQueue::AppendBytes(absl::string_view data) {
  if (data.empty()) return;
  pending_bytes_ += data.size();
  if (!pieces_.empty() && pieces_.back().appendable()) {
    pieces_.back().bytes.Append(data);
    return;
  }
  Piece piece;
  piece.bytes.Append(data);
  pieces_.push_back(std::move(piece));
}

void OutputQueue::AppendString(std::string&& data) {
  if (data.size() < kAdoptMin) {
    AppendBytes(data);
    return;
  }
  pending_bytes_ += data.size();
  Piece piece;
  piece.owned = std::move(data);
  piece.adopted = true;
  pieces_.push_back(std::move(piece));
}

void OutputQueue::AppendBuffer(ByteBuffer&& data) {
  if (data.empty()) return;
  if (data.size() < kAdoptMin) {
    AppendBytes(data.view());
    return;
  }
  pending_bytes_ += data.size();
  Piece piece;
  piece.bytes = std::move(data);
  piece.sealed = true;
  pieces_.push_back(std::move(piece));
}

void OutputQueue::AppendFile(int fd, uint64_t offset, uint64_t length,
                             absl::AnyInvocable<void()> release) {
  pending_bytes_ += static_cast<size_t>(length);
  Piece piece;
  piece.fd = fd;
  piece.offset = offset;
  piece.remaining = length;
  piece.release = std::move(release);
  pieces_.push_back(std::move(piece));
}

OutputQueue::Front OutputQueue::PeekFront() {
  Piece& piece = pieces_.front();
  Front front;
  if (piece.fd < 0) {
    front.bytes = piece.view();
  } else {
    front.fd = piece.fd;
    front.offset = piece.offset;
    front.length = piece.remaining;
  }
  return front;
}

size_t OutputQueue::Gather(absl::string_view* views, size_t max) {
  size_t count = 0;
  for (Piece* p = pieces_.begin(); p != pieces_.end() && count < max; ++p) {
    if (p->fd >= 0) break;
    views[count++] = p->view();
  }
  return count;
}

void OutputQueue::Consume(size_t n, Releases* released) {
  pending_bytes_ -= std::min(pending_bytes_, n);
  while (n > 0 && !pieces_.empty()) {
    Piece& piece = pieces_.front();
    if (piece.adopted) {
      const size_t taken = std::min(n, piece.byte_size());
      piece.owned_pos += taken;
      n -= taken;
      if (piece.byte_size() > 0) return;
    } else if (piece.fd < 0) {
      const size_t taken = std::min(n, piece.bytes.size());
      piece.bytes.Consume(taken);
      n -= taken;
      if (!piece.bytes.empty()) return;
    } else {
      const uint64_t taken = std::min<uint64_t>(n, piece.remaining);
      piece.offset += taken;
      piece.remaining -= taken;
      n -= static_cast<size_t>(taken);
      if (piece.remaining > 0) return;
      if (piece.release) released->push_back(std::move(piece.release));
    }
    pieces_.pop_front();
  }
}

void OutputQueue::Clear(Releases* released) {
  for (Piece& piece : pieces_) {
    if (piece.release) released->push_back(std::move(piece.release));
  }
  pieces_.clear();
  pending_bytes_ = 0;
}

}  // namespace net_internal
}  // namespace mill
