#include "examples/jsonrpc/line_framer.h"

#include <algorithm>
#include <limits>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

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

::mill::LineFramer MakeNetFramer(size_t max_line_bytes) {
  LineFramerOptions options;
  options.delimiter = LineDelimiter::kLfOrCrlf;
  // Our limit excludes the '\n', //net's includes it; SIZE_MAX stays SIZE_MAX.
  options.max_line_bytes =
      std::min(max_line_bytes, std::numeric_limits<size_t>::max() - 1) + 1;
  // Valid: the limit is at least 2, room for any delimiter.
  return *::mill::LineFramer::Create(options);
}

}  // namespace

LineFramer::LineFramer(size_t max_line_bytes)
    : max_line_bytes_(std::max<size_t>(max_line_bytes, 1)),
      lines_(MakeNetFramer(max_line_bytes_)) {}

void LineFramer::Take(ByteBuffer& input,
                      const std::function<bool(const FrameView&)>& on_frame) {
  while (true) {
    absl::StatusOr<std::optional<absl::string_view>> line = lines_.Next(input);
    bool more = true;
    if (!line.ok()) {
      // Oversized (the only error): answered, and the framer skips the rest
      // of the line as it arrives.
      more = on_frame(FrameView{Kind::kOversized, {}});
    } else if (!line->has_value()) {
      return;  // a partial line waits in `input`
    } else {
      const std::string_view text((*line)->data(), (*line)->size());
      if (!IsBlank(text)) more = on_frame(FrameView{Kind::kLine, text});
    }
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
