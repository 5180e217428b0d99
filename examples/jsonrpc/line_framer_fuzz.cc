// Fuzz target: LineFramer fed arbitrary bytes in arbitrary splits.
//
// Input: byte 0 picks max_line_bytes (1..64, or the 1 MiB default for 255),
// bytes 1-4 seed the split, the rest is the stream. The stream is fed three
// ways (whole, in the seeded random chunks, byte by byte), each into a fresh
// framer, and after every Feed the frames so far and the buffered state must
// equal the reference model's for that prefix (line_framer_model.h): the
// right lines, no frame late or early, an oversized line reported as soon as
// it crosses the limit, and never more than max_line_bytes buffered.
//
// Only this file touches the LineFramer API; the rules live in the model.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "examples/jsonrpc/line_framer.h"
#include "examples/jsonrpc/line_framer_model.h"
#include "tools/fuzz/chunks.h"
#include "tools/fuzz/fuzz_check.h"

namespace {

using mill::jsonrpc::FramerProgressChecker;
using mill::jsonrpc::LineFramer;
using mill::jsonrpc::LineFramerModel;
using mill::jsonrpc::ModelFrame;

// Feeds `chunks` (which concatenate to the model's stream) into a fresh
// framer, checking after each.
void FeedAndCheck(const LineFramerModel& model, size_t max_line_bytes,
                  const std::vector<std::string_view>& chunks) {
  LineFramer framer(max_line_bytes);
  FramerProgressChecker checker(&model);
  std::vector<LineFramer::Frame> frames;
  std::vector<ModelFrame> seen;
  size_t fed = 0;
  for (const std::string_view chunk : chunks) {
    frames.clear();
    framer.Feed(chunk, &frames);
    fed += chunk.size();
    for (LineFramer::Frame& frame : frames) {
      seen.push_back(
          {frame.kind == LineFramer::Frame::Kind::kOversized, frame.line});
    }
    mill::fuzz::Require(
        checker.Check(fed, seen, framer.buffered_bytes(), framer.discarding()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const uint8_t limit_byte = mill::fuzz::TakeByte(&input);
  const size_t max_line_bytes = limit_byte == 255
                                    ? LineFramer::kDefaultMaxLineBytes
                                    : 1 + limit_byte % 64;
  const uint32_t seed = mill::fuzz::TakeU32(&input);
  const LineFramerModel model(input, max_line_bytes);

  FeedAndCheck(model, max_line_bytes, {input});
  FeedAndCheck(model, max_line_bytes,
               mill::fuzz::SplitIntoChunks(input, seed, 32));
  std::vector<std::string_view> bytes;
  bytes.reserve(input.size());
  for (size_t i = 0; i < input.size(); ++i) bytes.push_back(input.substr(i, 1));
  FeedAndCheck(model, max_line_bytes, bytes);
  return 0;
}
