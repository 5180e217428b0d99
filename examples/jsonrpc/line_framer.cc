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

void LineFramer::Take(ByteBuffer& input,
                      const std::function<bool(const FrameView&)>& on_frame) {
  while (!input.empty()) {
    const size_t newline = input.find('\n');
    if (discarding_) {
      if (newline == ByteBuffer::npos) {
        input.Consume(input.size());  // Drop it all.
        return;
      }
      input.Consume(newline + 1);
      discarding_ = false;
      continue;
    }
    if (newline == ByteBuffer::npos) {
      if (input.size() > max_line_bytes_) {
        // Answer now rather than when (if ever) the '\n' arrives.
        input.Consume(input.size());
        discarding_ = true;
        if (!on_frame(FrameView{Kind::kOversized, {}})) return;
      }
      return;
    }
    bool more = true;
    if (newline > max_line_bytes_) {
      more = on_frame(FrameView{Kind::kOversized, {}});
    } else {
      std::string_view line(input.data(), newline);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!IsBlank(line)) more = on_frame(FrameView{Kind::kLine, line});
    }
    input.Consume(newline + 1);
    if (!more) return;
  }
}

void LineFramer::Feed(std::string_view bytes, std::vector<Frame>* frames) {
  buffer_.Append(absl::string_view(bytes.data(), bytes.size()));
  Take(buffer_, [frames](const FrameView& frame) {
    frames->push_back(Frame{frame.kind, std::string(frame.line)});
    return true;
  });
  // Do not pin the memory of one long line for the rest of the connection.
  if (buffer_.empty() || buffer_.capacity() > kMaxRetainedCapacity) {
    buffer_.Shrink(kMaxRetainedCapacity);
  }
}

}  // namespace mill::jsonrpc
