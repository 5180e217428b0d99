// JsonRpcConnection: the per-connection glue of the line-delimited JSON-RPC
// server: bytes in, response bytes out.
//
// It frames the received bytes into lines (LineFramer), hands each line to a
// shared JsonRpcService, and appends every response followed by '\n' to the
// output, in the order the messages arrived. An oversized line is answered
// with JsonRpcService::OversizedMessageResponse(). The connection never asks
// to be closed: every input has a well-defined answer (or none).
//
// Thread-safety: thread-compatible; one instance per TCP connection, fed by
// one thread at a time (the connection's bytes in order). Many connections may
// share one service concurrently. Ownership: `service` is referenced, not
// owned, and must outlive the connection.
#ifndef MILL_IO_EXAMPLES_JSONRPC_JSON_RPC_CONNECTION_H_
#define MILL_IO_EXAMPLES_JSONRPC_JSON_RPC_CONNECTION_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "examples/jsonrpc/json_rpc_service.h"
#include "examples/jsonrpc/line_framer.h"
#include "net/byte_buffer.h"

namespace mill::jsonrpc {

// One per accepted connection:
//
//   JsonRpcConnection conn(&service);
//   std::string out;
//   conn.Feed(received, &out);
//   Write(out);  // zero or more complete "\n"-terminated responses
class JsonRpcConnection {
 public:
  explicit JsonRpcConnection(
      const JsonRpcService* service,
      size_t max_line_bytes = LineFramer::kDefaultMaxLineBytes);

  JsonRpcConnection(const JsonRpcConnection&) = delete;
  JsonRpcConnection& operator=(const JsonRpcConnection&) = delete;

  // Answers the complete messages in `input` (the connection's input
  // buffer), consuming them and appending each response with its '\n' to
  // `*output`; a partial line stays in `input`. Stops once `*output` holds
  // `output_limit` bytes or more (so a server can check its output queue
  // between batches), leaving the remaining messages in `input`.
  void Serve(ByteBuffer& input, std::string* output,
             size_t output_limit = std::numeric_limits<size_t>::max());

  // The same for bytes held by the caller (tests): consumes all of them; a
  // partial line is kept here.
  void Feed(std::string_view bytes, std::string* output);

  // Complete messages (lines, oversized ones included) handled so far.
  uint64_t messages_handled() const { return messages_handled_; }

 private:
  void Answer(LineFramer::Kind kind, std::string_view line,
              std::string* output);

  const JsonRpcService* const service_;
  LineFramer framer_;
  std::vector<LineFramer::Frame> frames_;  // Reused across Feed calls.
  uint64_t messages_handled_ = 0;
};

}  // namespace mill::jsonrpc

#endif  // MILL_IO_EXAMPLES_JSONRPC_JSON_RPC_CONNECTION_H_
