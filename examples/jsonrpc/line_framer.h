// LineFramer: splits a byte stream into '\n'-terminated lines, with a bound.
//
// The JSON-RPC example speaks one JSON message per line in both directions.
// The framing itself is //net's mill::LineFramer (net/framing.h) in its
// LF-or-CRLF mode; this class adds the protocol's rules on top: blank lines
// are no message, and an oversized line is a frame to answer (the
// connection stays open), not an error to close on.
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
// Bytes after the last '\n' wait for more; there is no end-of-stream flush,
// since a partial line is not a complete message.
//
// The framer works on a byte buffer the caller owns: a server passes its
// connection's input buffer to Take(), which hands out each complete line
// as a view into that buffer and consumes it, leaving a partial line in
// place. No line is copied. Feed() is the same rule for callers that hold
// bytes, not a buffer (tests, the fuzzer): it keeps a buffer of its own.
//
// Thread-safety: thread-compatible (one instance per connection, used by one
// thread at a time). Ownership: Take's frames are views valid during the
// callback; Feed's frames are owned strings.
#ifndef MILL_IO_EXAMPLES_JSONRPC_LINE_FRAMER_H_
#define MILL_IO_EXAMPLES_JSONRPC_LINE_FRAMER_H_

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "net/byte_buffer.h"
#include "net/framing.h"

namespace mill::jsonrpc {

// Incremental '\n' framer with a per-line size limit. Use one per connection:
//
//   LineFramer framer;
//   framer.Take(conn->input(), [&](const LineFramer::FrameView& f) {
//     Handle(f.kind, f.line);  // f.line points into the input buffer
//     return true;             // false: stop here, leave the rest
//   });
class LineFramer {
 public:
  static constexpr size_t kDefaultMaxLineBytes = size_t{1} << 20;  // 1 MiB

  enum class Kind {
    kLine,       // `line` holds a complete line without "\n" / "\r\n".
    kOversized,  // A line exceeded the limit; `line` is empty.
  };
  struct FrameView {
    Kind kind = Kind::kLine;
    std::string_view line;
  };
  struct Frame {
    using Kind = LineFramer::Kind;
    Kind kind = Kind::kLine;
    std::string line;
  };

  // A max_line_bytes of 0 is treated as 1.
  explicit LineFramer(size_t max_line_bytes = kDefaultMaxLineBytes);

  LineFramer(const LineFramer&) = delete;
  LineFramer& operator=(const LineFramer&) = delete;

  // Takes every complete frame from `input`, in stream order: calls
  // `on_frame` with it (its line is a view into `input`, valid during the
  // call), then consumes its bytes. Stops early, with the rest left in
  // `input`, when `on_frame` returns false (that frame is consumed). Bytes
  // of an oversized line are consumed (dropped) as they arrive, so `input`
  // is left holding at most max_line_bytes() of a partial line.
  void Take(ByteBuffer& input,
            const std::function<bool(const FrameView&)>& on_frame);

  // Consumes `bytes` and appends every frame it completes to `*frames` (which
  // is not cleared), in stream order; a partial line is kept here.
  void Feed(std::string_view bytes, std::vector<Frame>* frames);

  size_t max_line_bytes() const { return max_line_bytes_; }
  // Bytes of the current partial line held by Feed (<= max_line_bytes()).
  size_t buffered_bytes() const { return buffer_.size(); }
  // True while the tail of an oversized line is being dropped.
  bool discarding() const { return lines_.discarding(); }

 private:
  const size_t max_line_bytes_;
  // max_line_bytes counts the line before its '\n'; //net's limit counts
  // the '\n' too, hence max_line_bytes + 1.
  ::mill::LineFramer lines_;
  ByteBuffer buffer_;  // Feed's partial line
};

}  // namespace mill::jsonrpc

#endif  // MILL_IO_EXAMPLES_JSONRPC_LINE_FRAMER_H_
