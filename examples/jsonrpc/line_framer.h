// LineFramer: splits a byte stream into '\n'-terminated lines, with a bound.
//
// The JSON-RPC example speaks one JSON message per line in both directions.
// A connection's reader feeds whatever bytes arrive (any split) and gets back
// every completed line, in order. Framing rules:
//   * A line ends at '\n'. One trailing '\r' is removed, so CRLF clients
//     (telnet, netcat on Windows) work; JSON treats '\r' as whitespace anyway.
//   * Lines made only of JSON whitespace (space, tab, '\r') are skipped: they
//     are no message, and answering each with a parse error would only make
//     interactive use noisy.
//   * A line longer than max_line_bytes (counted before the '\n', including a
//     '\r') yields one kOversized frame as soon as the limit is crossed, even
//     before its '\n' arrives, so the peer is answered without waiting; the
//     rest of that line is then dropped up to and including the next '\n'.
//     At most max_line_bytes bytes are ever buffered, and the buffer's
//     memory is given back once a long line is out (a few KiB at most are
//     kept between lines).
// Bytes after the last '\n' stay buffered until more arrive; there is no
// end-of-stream flush, since a partial line is not a complete message.
//
// Thread-safety: thread-compatible (one instance per connection, used by one
// thread at a time). Ownership: frames are returned by value; the framer
// keeps no reference to the fed bytes.
#ifndef MILL_IO_EXAMPLES_JSONRPC_LINE_FRAMER_H_
#define MILL_IO_EXAMPLES_JSONRPC_LINE_FRAMER_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mill::jsonrpc {

// Incremental '\n' framer with a per-line size limit. Use one per connection:
//
//   LineFramer framer;
//   std::vector<LineFramer::Frame> frames;
//   framer.Feed(received_bytes, &frames);
//   for (const auto& f : frames) { ... f.kind, f.line ... }
class LineFramer {
 public:
  static constexpr size_t kDefaultMaxLineBytes = size_t{1} << 20;  // 1 MiB

  struct Frame {
    enum class Kind {
      kLine,       // `line` holds a complete line without "\n" / "\r\n".
      kOversized,  // A line exceeded the limit; `line` is empty.
    };
    Kind kind = Kind::kLine;
    std::string line;
  };

  // A max_line_bytes of 0 is treated as 1.
  explicit LineFramer(size_t max_line_bytes = kDefaultMaxLineBytes);

  LineFramer(const LineFramer&) = delete;
  LineFramer& operator=(const LineFramer&) = delete;

  // Consumes `bytes` and appends every frame it completes to `*frames` (which
  // is not cleared), in stream order.
  void Feed(std::string_view bytes, std::vector<Frame>* frames);

  size_t max_line_bytes() const { return max_line_bytes_; }
  // Bytes of the current partial line held in memory (<= max_line_bytes()).
  size_t buffered_bytes() const { return buffer_.size(); }
  // True while the tail of an oversized line is being dropped.
  bool discarding() const { return discarding_; }

 private:
  void EmitLine(std::string_view line, std::vector<Frame>* frames);

  const size_t max_line_bytes_;
  std::string buffer_;
  bool discarding_ = false;
};

}  // namespace mill::jsonrpc

#endif  // MILL_IO_EXAMPLES_JSONRPC_LINE_FRAMER_H_
