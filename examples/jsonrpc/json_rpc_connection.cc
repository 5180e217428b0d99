#include "examples/jsonrpc/json_rpc_connection.h"

#include <optional>

namespace mill::jsonrpc {
namespace {

constexpr size_t kMaxRetainedFrames = 64;

}  // namespace

JsonRpcConnection::JsonRpcConnection(const JsonRpcService* service,
                                     size_t max_line_bytes)
    : service_(service), framer_(max_line_bytes) {}

void JsonRpcConnection::Serve(ByteBuffer& input, std::string* output,
                              size_t output_limit) {
  framer_.Take(input, [&](const LineFramer::FrameView& frame) {
    Answer(frame.kind, frame.line, output);
    return output->size() < output_limit;
  });
}

void JsonRpcConnection::Answer(LineFramer::Kind kind, std::string_view line,
                               std::string* output) {
  ++messages_handled_;
  std::optional<std::string> response =
      kind == LineFramer::Kind::kOversized
          ? JsonRpcService::OversizedMessageResponse(framer_.max_line_bytes())
          : service_->HandleMessage(line);
  if (!response.has_value()) return;
  output->append(*response);
  output->push_back('\n');
}

void JsonRpcConnection::Feed(std::string_view bytes, std::string* output) {
  frames_.clear();
  framer_.Feed(bytes, &frames_);
  for (const LineFramer::Frame& frame : frames_) {
    Answer(frame.kind, frame.line, output);
  }
  frames_.clear();
  // A feed of many short lines must not pin a large frame array.
  if (frames_.capacity() > kMaxRetainedFrames) {
    std::vector<LineFramer::Frame>().swap(frames_);
  }
}

}  // namespace mill::jsonrpc
