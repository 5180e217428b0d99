// RESP (REdis Serialization Protocol, version 2) reply parsing and request
// encoding for the Redis load client (bench/redis_load.cc).
//
// ParseRespReply() reads one complete reply from the start of a buffer
// without copying: simple strings, errors, integers, bulk strings (null
// included) and arrays (nested, null included). It tells "complete",
// "incomplete: read more" and "malformed" apart, so a client can parse
// straight from a connection's input buffer and leave a partial reply there.
// Every length is checked against RespLimits before it is trusted, so a
// peer cannot make the caller wait for (or buffer) more than the limits
// allow: a bulk string or array announced larger fails at once, a line
// longer than the line limit without its CRLF fails as soon as it is seen.
// RESP3 types (sent only after HELLO 3) are malformed here.
//
// Thread-safety: free functions on caller-owned data; no shared state.
// Ownership: RespReply::text points into the parsed buffer and is valid
// while that buffer is unchanged.
#ifndef MILL_IO_BENCH_RESP_H_
#define MILL_IO_BENCH_RESP_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace mill {
namespace bench {

enum class RespType : uint8_t {
  kSimpleString,  // +OK
  kError,         // -ERR ...
  kInteger,       // :42
  kBulkString,    // $3 foo (or $-1, null)
  kArray,         // *2 ... (or *-1, null)
};

// Bounds on what one reply may announce. A reply beyond them is malformed
// (InvalidArgument), never waited for.
struct RespLimits {
  size_t max_line_bytes = 64 << 10;     // simple string / error line
  size_t max_bulk_bytes = 512 << 10;    // one bulk string's payload
  size_t max_array_elements = 1 << 16;  // one array's element count
  int max_depth = 8;                    // arrays nested in arrays
};

// One complete top-level reply.
struct RespReply {
  RespType type = RespType::kSimpleString;
  size_t length = 0;       // bytes of the buffer the reply spans
  absl::string_view text;  // simple string, error text, bulk payload
  int64_t integer = 0;     // kInteger's value; element count of an array
  bool null = false;       // $-1 or *-1
  int errors = 0;          // error replies in it (itself and nested ones)
};

// Parses the reply at the start of `in`. True (and *reply filled) when
// `in` starts with a complete reply, false when it holds only the start of
// one (read more and call again with the longer buffer), InvalidArgument
// (saying what and at which byte) when it is not RESP or breaks `limits`.
absl::StatusOr<bool> ParseRespReply(absl::string_view in, RespReply* reply,
                                    const RespLimits& limits = {});

// Appends the RESP encoding of a command (an array of bulk strings), e.g.
// {"GET", "key"} -> "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n".
void AppendRespCommand(absl::Span<const absl::string_view> args,
                       std::string* out);

}  // namespace bench
}  // namespace mill

#endif  // MILL_IO_BENCH_RESP_H_
