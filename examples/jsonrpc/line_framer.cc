#include "examples/jsonrpc/line_framer.h"

#include <algorithm>

namespace mill::jsonrpc {
namespace {

// Capacity the line buffer may keep between lines. Beyond it the buffer is
// freed once its line is out, so one long line does not pin up to
// max_line_bytes for the rest of the connection.
constexpr size_t kMaxRetainedCapacity = 4096;

bool IsBlank(std::string_view line) {
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

}  // namespace

LineFramer::LineFramer(size_t max_line_bytes)
    : max_line_bytes_(std::max<size_t>(max_line_bytes, 1)) {}

void LineFramer::EmitLine(std::string_view line, std::vector<Frame>* frames) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (IsBlank(line)) return;
  frames->push_back(Frame{Frame::Kind::kLine, std::string(line)});
}

void LineFramer::Feed(std::string_view bytes, std::vector<Frame>* frames) {
  while (!bytes.empty()) {
    const size_t newline = bytes.find('\n');
    if (discarding_) {
      if (newline == std::string_view::npos) return;  // Drop it all.
      bytes.remove_prefix(newline + 1);
      discarding_ = false;
      continue;
    }
    if (newline == std::string_view::npos) {
      if (buffer_.size() + bytes.size() > max_line_bytes_) {
        // Answer now rather than when (if ever) the '\n' arrives.
        frames->push_back(Frame{Frame::Kind::kOversized, {}});
        std::string().swap(buffer_);  // Do not pin up to 1 MiB per idle peer.
        discarding_ = true;
        return;
      }
      buffer_.append(bytes.data(), bytes.size());
      return;
    }
    if (buffer_.size() + newline > max_line_bytes_) {
      frames->push_back(Frame{Frame::Kind::kOversized, {}});
    } else if (buffer_.empty()) {
      EmitLine(bytes.substr(0, newline), frames);  // Common case: one copy.
    } else {
      buffer_.append(bytes.data(), newline);
      EmitLine(buffer_, frames);
    }
    buffer_.clear();
    if (buffer_.capacity() > kMaxRetainedCapacity) std::string().swap(buffer_);
    bytes.remove_prefix(newline + 1);
  }
}

}  // namespace mill::jsonrpc
