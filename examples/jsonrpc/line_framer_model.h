// A reference model of LineFramer's framing rules (line_framer.h), and a
// checker comparing a framer's observed behaviour with it. Used by the line
// framer fuzz target; kept apart from the code that drives the framer so
// that the rules are stated once, independently of the implementation, and
// survive changes to the framer's API.
//
// Thread-safety: the model is immutable after construction. Ownership: the
// model copies nothing from the stream but lengths and the expected lines.
#ifndef MILL_IO_EXAMPLES_JSONRPC_LINE_FRAMER_MODEL_H_
#define MILL_IO_EXAMPLES_JSONRPC_LINE_FRAMER_MODEL_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace mill::jsonrpc {

// A frame as a framer user sees it.
struct ModelFrame {
  bool oversized = false;
  std::string line;  // Empty when oversized.

  friend bool operator==(const ModelFrame& a, const ModelFrame& b) {
    return a.oversized == b.oversized && a.line == b.line;
  }
};

// What a framer must have produced after any prefix of `stream`, computed
// from the whole stream in one pass:
//   * each '\n'-terminated line longer than max_line_bytes (counting a '\r'
//     before the '\n') is one oversized frame, due as soon as its
//     (max_line_bytes + 1)-th byte was fed;
//   * any other line, minus one trailing '\r', is a line frame due when its
//     '\n' was fed, unless it is made only of ' ', '\t' and '\r';
//   * after a prefix, the unterminated tail is held (buffered) if at most
//     max_line_bytes long, and otherwise dropped (discarding).
class LineFramerModel {
 public:
  LineFramerModel(std::string_view stream, size_t max_line_bytes);

  // Every frame of the whole stream, in order.
  const std::vector<ModelFrame>& frames() const { return frames_; }
  // Frames due once the first `fed` bytes were fed.
  size_t FramesDueAfter(size_t fed) const;
  // Bytes the framer must hold after `fed` bytes, and whether it is
  // dropping the rest of an oversized line.
  size_t BufferedBytesAfter(size_t fed) const;
  bool DiscardingAfter(size_t fed) const;

 private:
  size_t max_line_bytes_;
  std::vector<ModelFrame> frames_;
  std::vector<size_t> due_;          // due_[i]: offset that completes frame i
  std::vector<size_t> line_length_;  // [fed]: bytes since the last '\n'
};

// Checks a framer's observable state against the model as the stream is
// fed. Remembers how many frames it verified, so checking after every byte
// costs time proportional to the new frames only. Use one per framer.
class FramerProgressChecker {
 public:
  explicit FramerProgressChecker(const LineFramerModel* model)
      : model_(model) {}

  // After `fed` bytes of the model's stream: `frames` is everything the
  // framer returned so far, `buffered_bytes` and `discarding` its reported
  // state. Returns an error describing the first difference.
  absl::Status Check(size_t fed, const std::vector<ModelFrame>& frames,
                     size_t buffered_bytes, bool discarding);

 private:
  const LineFramerModel* model_;
  size_t verified_ = 0;  // frames[0, verified_) matched the model.
};

}  // namespace mill::jsonrpc

#endif  // MILL_IO_EXAMPLES_JSONRPC_LINE_FRAMER_MODEL_H_
