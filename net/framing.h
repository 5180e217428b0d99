// Framing: cuts a connection's input byte stream into the frames a protocol
// speaks, with a size limit every protocol needs, and writes frame headers
// for Send.
//
//   LineFramer          lines ended by LF, CRLF, or either (kLfOrCrlf)
//   LengthPrefixFramer  a 1, 2, 4 or 8-byte big-endian length, then payload
//
// Both read from a ByteBuffer (a Connection's input, net/byte_buffer.h):
// Next() returns the next complete frame as a view into that buffer and
// consumes its bytes, or nullopt while the frame is incomplete (its bytes
// stay buffered for the next on_data). No frame is copied:
//
//   void OnData(const mill::ConnectionPtr& conn, mill::ByteBuffer& input) {
//     while (true) {
//       absl::StatusOr<std::optional<absl::string_view>> frame =
//           framer.Next(input);
//       if (!frame.ok()) {  // above the limit: close, saying why
//         Log(mill::AbortOnFramingError(*conn, frame.status()));
//         return;
//       }
//       if (!frame->has_value()) return;  // wait for more bytes
//       Handle(**frame);
//     }
//   }
//
// (AbortOnFramingError is in net/framing_close.h, //net:framing_close.)
// The view stays valid until `input` is next appended to or shrunk (a
// Consume only moves an offset), so it may be used up to the return from
// on_data, and across later Next() calls on the same buffer.
//
// Limits: a frame above the limit is refused with ResourceExhausted naming
// its size and the limit, before it is buffered in full: a line as soon as
// more than the limit arrived without its end, a length-prefixed frame at
// its header (a peer announcing 4 GiB is refused after 4 bytes). So memory
// per connection stays bounded by the limit whatever the peer sends.
//
// Thread-safety: thread-compatible; one framer per connection, used from its
// callbacks. Ownership: a framer holds no bytes and no pointer to the
// buffer, only its parsing state; frames are views into the caller's buffer.
#ifndef MILL_IO_NET_FRAMING_H_
#define MILL_IO_NET_FRAMING_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "net/byte_buffer.h"

namespace mill {

// What ends a line.
enum class LineDelimiter : uint8_t {
  // "\n" only; a '\r' before it is part of the line.
  kLf,
  // "\r\n" only. A bare '\n' is part of the line, as a '\r' not followed by
  // '\n' is: the protocols that mandate CRLF (SMTP, RESP, HTTP headers)
  // treat anything else as data, and accepting bare LF there is how request
  // smuggling between two parsers that disagree starts.
  kCrlf,
  // "\n", with one '\r' right before it taken as part of the delimiter:
  // for text protocols typed by hand (telnet, netcat on Windows).
  kLfOrCrlf,
};

struct LineFramerOptions {
  LineDelimiter delimiter = LineDelimiter::kLf;
  // The longest line accepted, counted with its delimiter (the bytes that
  // must be buffered to see it whole). At least the delimiter's length.
  size_t max_line_bytes = size_t{64} << 10;
  // Whether frames keep their delimiter ("abc\r\n" instead of "abc").
  bool keep_delimiter = false;
};

// Splits a byte stream into lines. After a ResourceExhausted, a line framer
// can go on: the next Next() skips the rest of the oversized line (as its
// bytes arrive, buffering none of them) and returns the following lines.
// A caller that would rather close just does.
class LineFramer {
 public:
  // InvalidArgument when max_line_bytes cannot hold the delimiter.
  static absl::StatusOr<LineFramer> Create(LineFramerOptions options = {});

  // The next complete line in `input`, consumed from it, or nullopt when no
  // line is complete yet. ResourceExhausted when the current line is (or
  // already must be) longer than max_line_bytes; its buffered bytes are then
  // consumed. `input` may only have been appended to since the last call
  // (other than by this framer), as a Connection's input buffer is.
  absl::StatusOr<std::optional<absl::string_view>> Next(ByteBuffer& input);

  const LineFramerOptions& options() const { return options_; }
  // True while the rest of an oversized line is being skipped.
  bool discarding() const { return discarding_; }

 private:
  explicit LineFramer(LineFramerOptions options) : options_(options) {}

  // Position of the next delimiter's first byte in `bytes` at or after
  // `from`, and its length; npos when there is none.
  size_t FindDelimiter(absl::string_view bytes, size_t from,
                       size_t* delimiter_size) const;
  // Drops bytes of an oversized line; false while its end has not arrived.
  bool SkipOversized(ByteBuffer& input);

  LineFramerOptions options_;
  size_t scanned_ = 0;  // leading bytes of input known to hold no end
  bool discarding_ = false;
  bool pending_cr_ = false;  // discarding: the last byte dropped was '\r'
};

struct LengthPrefixOptions {
  // Bytes of the big-endian length header: 1, 2, 4 or 8.
  int header_bytes = 4;
  // Whether the length counts the header too (then it is at least
  // header_bytes) or the payload only.
  bool length_includes_header = false;
  // The largest payload accepted (and encoded).
  size_t max_payload_bytes = size_t{1} << 20;
};

// Splits a byte stream into length-prefixed payloads, and writes the
// header for one. A stream cannot be resynchronized after a bad length, so
// an error is final: every later Next() returns it again.
class LengthPrefixFramer {
 public:
  // InvalidArgument for a header width other than 1, 2, 4 or 8.
  static absl::StatusOr<LengthPrefixFramer> Create(
      LengthPrefixOptions options = {});

  // The next complete payload in `input`, its header and payload consumed,
  // or nullopt while incomplete. ResourceExhausted when the header announces
  // more than max_payload_bytes (or more than fits in memory); DataLoss for
  // a length that includes the header yet is smaller than it. Nothing is
  // consumed on an error.
  absl::StatusOr<std::optional<absl::string_view>> Next(ByteBuffer& input);

  // Appends the header for a payload of `payload_bytes` to `*out`.
  // InvalidArgument when it exceeds max_payload_bytes or the header width.
  absl::Status AppendHeader(size_t payload_bytes, std::string* out) const;
  // The header followed by `payload`, ready to Send.
  absl::StatusOr<std::string> Encode(absl::string_view payload) const;

  const LengthPrefixOptions& options() const { return options_; }

 private:
  explicit LengthPrefixFramer(LengthPrefixOptions options)
      : options_(options) {}

  LengthPrefixOptions options_;
  absl::Status error_;  // sticky, once a header was refused
};

}  // namespace mill

#endif  // MILL_IO_NET_FRAMING_H_
