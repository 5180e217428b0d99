// jsonrpc_server: a JSON-RPC 2.0 server over TCP on Mill-IO's TcpServer, one
// JSON message per line in both directions.
//
//   bazel run //examples/jsonrpc:jsonrpc_server -- --port=4000
//   $ echo '{"jsonrpc":"2.0","method":"add","params":[2,3],"id":1}' |
//       nc -q1 127.0.0.1 4000
//   {"jsonrpc":"2.0","result":5,"id":1}
//
// Each TCP connection gets one JsonRpcConnection (framing and ordering, kept
// in the connection's user context); all of them share one JsonRpcService
// with the methods of standard_methods.h and one KeyValueStore, so "set" on
// one connection is seen by "get" on any other. Lines longer than
// --max_line_bytes are answered with an Invalid Request error and dropped;
// the connection keeps working. Responses come back in request order, each
// on its own line; notifications get none. A client that pipelines requests
// without reading is served only until its output queue reaches the
// high-water mark (1 MiB); the rest wait until it reads, so memory stays
// bounded. After the client's half-close every request is still answered,
// then the connection closes.
//
// Prints "listening on ADDRESS:PORT" on stdout once it accepts connections
// (with --port=0 the port is the kernel's pick). On SIGINT or SIGTERM it
// stops the loop, closes every connection and exits with status 0. Bad flags
// print a message on stderr and exit with status 2.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/thread_scratch.h"
#include "examples/common/server_main.h"
#include "examples/jsonrpc/json_rpc_connection.h"
#include "examples/jsonrpc/json_rpc_service.h"
#include "examples/jsonrpc/key_value_store.h"
#include "examples/jsonrpc/line_framer.h"
#include "examples/jsonrpc/standard_methods.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"

ABSL_FLAG(int, port, 4000, "TCP port (0: let the kernel pick a free one)");
ABSL_FLAG(int64_t, max_line_bytes,
          static_cast<int64_t>(mill::jsonrpc::LineFramer::kDefaultMaxLineBytes),
          "longest message line accepted (bytes, without the newline); "
          "longer lines get an Invalid Request error");
ABSL_FLAG(absl::Duration, idle_timeout, absl::ZeroDuration(),
          "close connections without traffic for this long (0: never)");
ABSL_FLAG(int64_t, max_batch_elements,
          static_cast<int64_t>(
              mill::jsonrpc::JsonRpcService::Options().max_batch_elements),
          "most elements in a batch; a larger batch gets one Invalid "
          "Request error");
ABSL_FLAG(int64_t, max_batch_response_bytes,
          static_cast<int64_t>(mill::jsonrpc::JsonRpcService::Options()
                                   .max_batch_response_bytes),
          "longest batch response (bytes); a batch whose response would be "
          "longer gets one Invalid Request error instead");
ABSL_FLAG(
    int64_t, max_keys,
    static_cast<int64_t>(mill::jsonrpc::KeyValueStore::Options().max_keys),
    "most keys in the key-value store; \"set\" of a new key beyond "
    "it fails with error 507 (Store full)");
ABSL_FLAG(
    int64_t, max_store_bytes,
    static_cast<int64_t>(mill::jsonrpc::KeyValueStore::Options().max_bytes),
    "most bytes in the key-value store (its estimate of the heap its "
    "keys and values take); "
    "\"set\" beyond it fails with error 507 (Store full)");

namespace {

using mill::jsonrpc::JsonRpcConnection;

// Messages are answered straight from the connection's input buffer (the
// framer hands out each line as a view into it: no copy), and the output is
// handed to the connection whenever kSendChunk bytes have collected,
// checking the output queue each time. Once the queue reaches the
// high-water mark the rest of the input stays in the connection's buffer
// (which stops reading) and on_data comes again when the queue drained, so
// a client that pipelines "get" calls for a large value and never reads
// cannot make the server buffer without bound.
constexpr size_t kSendChunk = 64 * 1024;

// Per-connection state, stored in the Connection's user context, touched
// only by the connection's callbacks (which never overlap): no lock.
class Session {
 public:
  Session(const mill::jsonrpc::JsonRpcService* service, size_t max_line_bytes,
          size_t high_water_mark)
      : rpc_(service, max_line_bytes), high_water_mark_(high_water_mark) {}

  // on_data (also called again when the output queue drained).
  void OnData(const mill::ConnectionPtr& conn, mill::ByteBuffer& input) {
    Serve(conn, input);
    if (peer_eof_ && !HasCompleteLine(input)) conn->Close();
  }

  // on_peer_shutdown: the client sent everything. Answer what is still
  // buffered (OnData finishes it once the output drains), then close; a
  // partial last line is no message.
  void OnPeerShutdown(const mill::ConnectionPtr& conn) {
    peer_eof_ = true;
    if (!HasCompleteLine(conn->input())) conn->Close();
  }

 private:
  static bool HasCompleteLine(const mill::ByteBuffer& input) {
    return input.find('\n') != mill::ByteBuffer::npos;
  }

  void Serve(const mill::ConnectionPtr& conn, mill::ByteBuffer& input) {
    // Reused per thread: serving small messages allocates no output buffer.
    struct JsonRpcServeOut;
    std::string& out = mill::ThreadScratch<std::string, JsonRpcServeOut>();
    out.clear();
    for (;;) {
      rpc_.Serve(input, &out, kSendChunk);
      // Below the chunk size it stopped for want of a complete message.
      const bool stopped_at_chunk = out.size() >= kSendChunk;
      // Fails only if the connection is closing; then nobody reads it.
      if (!out.empty()) (void)conn->Send(out);
      out.clear();
      if (!stopped_at_chunk) break;
      if (high_water_mark_ > 0 &&
          conn->pending_output_bytes() >= high_water_mark_) {
        break;  // the rest waits in the input buffer
      }
    }
    if (out.capacity() > 2 * kSendChunk) std::string().swap(out);
  }

  JsonRpcConnection rpc_;
  const size_t high_water_mark_;  // 0: no throttling
  bool peer_eof_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  mill::examples::ServerProgram program(
      "jsonrpc_server",
      "JSON-RPC 2.0 server (one message per line) on Mill-IO.\n"
      "  jsonrpc_server --port=4000 --mode=pool|direct --workers=4",
      FLAGS_port, FLAGS_idle_timeout);
  if (!program.ParseCommandLine(argc, argv)) return program.exit_code();
  const int64_t max_line_bytes = absl::GetFlag(FLAGS_max_line_bytes);
  if (max_line_bytes < 1) {
    return program.Fail(absl::StrCat(
        "--max_line_bytes must be at least 1, got ", max_line_bytes));
  }

  const std::pair<const char*, int64_t> bounds[] = {
      {"max_batch_elements", absl::GetFlag(FLAGS_max_batch_elements)},
      {"max_batch_response_bytes",
       absl::GetFlag(FLAGS_max_batch_response_bytes)},
      {"max_keys", absl::GetFlag(FLAGS_max_keys)},
      {"max_store_bytes", absl::GetFlag(FLAGS_max_store_bytes)},
  };
  for (const auto& [name, value] : bounds) {
    if (value < 1) {
      return program.Fail(
          absl::StrCat("--", name, " must be at least 1, got ", value));
    }
  }
  mill::jsonrpc::KeyValueStore::Options store_options;
  store_options.max_keys = static_cast<size_t>(absl::GetFlag(FLAGS_max_keys));
  store_options.max_bytes =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_store_bytes));
  mill::jsonrpc::JsonRpcService::Options service_options;
  service_options.max_batch_elements =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_batch_elements));
  service_options.max_batch_response_bytes =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_batch_response_bytes));

  // Shared by every connection; both outlive the server (which Serve
  // destroys).
  mill::jsonrpc::KeyValueStore store(store_options);
  mill::jsonrpc::JsonRpcService service(service_options);
  absl::Status status =
      mill::jsonrpc::RegisterStandardMethods(&service, &store);
  if (!status.ok()) return program.Fail(status.ToString());

  if (program.CreateLoop() == nullptr) return program.exit_code();

  mill::TcpServerOptions options = program.server_options();
  // Lines are framed in the input buffer itself: it must hold a line of the
  // longest size accepted plus one read, so an oversized one is seen.
  options.connection.max_input_bytes =
      static_cast<size_t>(max_line_bytes) + 64 * 1024;

  mill::TcpServerCallbacks callbacks;
  const size_t line_limit = static_cast<size_t>(max_line_bytes);
  const size_t high_water_mark = options.connection.high_water_mark;
  callbacks.on_connect = [&service, line_limit,
                          high_water_mark](const mill::ConnectionPtr& conn) {
    conn->SetContext(
        std::make_shared<Session>(&service, line_limit, high_water_mark));
  };
  callbacks.on_data = [](const mill::ConnectionPtr& conn,
                         mill::ByteBuffer& input) {
    if (auto session = conn->GetContext<Session>()) {
      session->OnData(conn, input);
    } else {
      input.Consume(input.size());
    }
  };
  callbacks.on_peer_shutdown = [](const mill::ConnectionPtr& conn) {
    if (auto session = conn->GetContext<Session>()) {
      session->OnPeerShutdown(conn);
    } else {
      conn->Close();
    }
  };
  callbacks.on_close = [](const mill::ConnectionPtr& conn, mill::CloseReason,
                          const absl::Status&) {
    conn->SetContext(nullptr);  // free the framing buffer now
  };

  if (!program.Listen(std::move(callbacks), options)) {
    return program.exit_code();
  }
  const int exit_code = program.Serve();
  std::fprintf(stderr, "jsonrpc_server: %zu keys stored\n", store.size());
  return exit_code;
}
