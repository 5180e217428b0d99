// redis_load: a closed-loop Redis load client, written three ways so they
// can be compared on one redis-server (bench/redis_bench.py drives it):
//
//   --client=mill_per_send  Mill-IO's TcpClient; in on_data, one
//                           Connection::Send per reply parsed (the obvious
//                           code, no batching by hand).
//   --client=mill_batched   the same, but the requests answering the replies
//                           of one on_data call are built into one string
//                           and sent with one Send (batched by hand).
//   --client=hiredis        hiredis's async API on libevent
//                           (redisLibeventAttach): one redisAsyncCommand per
//                           reply; hiredis buffers the commands and writes
//                           them once per loop iteration.
//
//   redis_load --client=C --port=P [--pipeline=16] [--connections=1]
//              [--seconds=5 --warmup=1 | --requests=N]
//
// The command is GET of one key holding a 16-byte value, which redis_load
// SETs itself before the run (--key, --value_size). Each connection keeps
// --pipeline requests in flight: it sends that many at the start and one
// more for every reply. Every reply must be the bulk string set (any other
// reply, an error reply included, fails the run). Replies are parsed as
// RESP (bench/resp.h) by the Mill-IO clients and by hiredis's own parser.
//
// Prints one JSON line on stdout:
//   {"client":..,"pipeline":..,"connections":..,"command":"GET",
//    "value_bytes":16,"seconds":..,"requests":N,"requests_per_s":..,
//    "cpu_s":..,"cpu_us_per_request":..,"client_cpu":..,"all_requests":..,
//    "errors":0}
// requests counts replies received in the measured window; cpu_s is this
// process's user + system CPU time (getrusage RUSAGE_SELF) in the window;
// client_cpu is cpu_s per second (near 1.0: the client is the bottleneck);
// all_requests counts every reply, warmup included (for per-request counts
// taken over the whole process, e.g. perf stat's system calls).
// With --requests=N the window runs from the moment every connection is
// open until the N-th reply (no warmup). Exits 1 (with "error" in the JSON
// line) on any failure, 2 on bad flags.
//
// Both Mill-IO clients run a direct-mode EventLoop (one thread, like
// libevent's loop), so only the event loop and the sending code differ.
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "bench/load_clock.h"
#include "bench/resp.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_client.h"
#include "reactor/event_loop.h"

ABSL_FLAG(std::string, client, "mill_per_send",
          "mill_per_send, mill_batched or hiredis.");
ABSL_FLAG(int, port, 0, "redis-server port on 127.0.0.1 (required).");
ABSL_FLAG(int, pipeline, 16, "Requests in flight per connection.");
ABSL_FLAG(int, connections, 1, "Concurrent connections.");
ABSL_FLAG(double, seconds, 5.0, "Measured seconds (after the warmup).");
ABSL_FLAG(double, warmup, 1.0, "Unmeasured seconds before the measurement.");
ABSL_FLAG(int64_t, requests, 0,
          "When > 0: measure until this many replies instead (no warmup; "
          "--seconds is ignored).");
ABSL_FLAG(std::string, key, "mill:bench:key", "The key to GET.");
ABSL_FLAG(int, value_size, 16, "Bytes of the value SET before the run.");

namespace mill {
namespace bench {
namespace {

struct Config {
  std::string client;
  int port = 0;
  int pipeline = 0;
  int connections = 0;
  double seconds = 0;
  double warmup = 0;
  int64_t requests = 0;  // > 0: a request-count run
  std::string key;
  std::string value;
};

// Counts replies and keeps the measured window. Used by one thread at a
// time (the event loop's; the main thread reads it after the loop ended).
// The first failure wins and ends the run.
class Meter {
 public:
  explicit Meter(const Config& config) : config_(config) {}

  // Every connection is open: a --requests run starts measuring now.
  void AllConnected() {
    if (config_.requests > 0) Begin();
  }
  void Begin() {
    replies_ = 0;
    begin_ns_ = NowNs();
    begin_cpu_ns_ = CpuNs();
    measuring_ = true;
  }
  void End() {
    if (end_ns_ != 0) return;
    end_ns_ = NowNs();
    end_cpu_ns_ = CpuNs();
  }
  // Counts one reply; false when the run is over (stop sending).
  bool OnReply() {
    ++replies_;
    ++all_replies_;
    if (config_.requests > 0 && measuring_ && replies_ >= config_.requests) {
      End();
    }
    return !over();
  }
  // Whether another request may be sent: in a --requests run, no more than
  // the replies still wanted (counting those in flight).
  bool MaySend() {
    if (over()) return false;
    if (config_.requests <= 0) return true;
    if (sent_ >= config_.requests) return false;
    ++sent_;
    return true;
  }
  void Fail(std::string error) {
    if (error_.empty()) error_ = std::move(error);
    End();
  }
  bool over() const { return end_ns_ != 0; }
  bool failed() const { return !error_.empty(); }

  std::string Json() const {
    const bool measured = measuring_ && end_ns_ > begin_ns_;
    const double seconds = measured ? (end_ns_ - begin_ns_) / 1e9 : 0;
    const double cpu_s = measured ? (end_cpu_ns_ - begin_cpu_ns_) / 1e9 : 0;
    const double replies = static_cast<double>(replies_);
    std::string json = absl::StrFormat(
        "{\"client\":\"%s\",\"pipeline\":%d,\"connections\":%d,"
        "\"command\":\"GET\",\"value_bytes\":%d,\"seconds\":%.3f,"
        "\"requests\":%d,\"requests_per_s\":%.1f,\"cpu_s\":%.4f,"
        "\"cpu_us_per_request\":%.4f,\"client_cpu\":%.3f,"
        "\"all_requests\":%d,\"errors\":%d",
        config_.client, config_.pipeline, config_.connections,
        config_.value.size(), seconds, replies_,
        seconds > 0 ? replies / seconds : 0, cpu_s,
        replies_ > 0 ? cpu_s * 1e6 / replies : 0,
        seconds > 0 ? cpu_s / seconds : 0, all_replies_, failed() ? 1 : 0);
    if (failed()) {
      absl::StrAppend(&json, ",\"error\":\"", JsonEscape(error_), "\"");
    }
    return json + "}";
  }

 private:
  static std::string JsonEscape(absl::string_view text) {
    std::string out;
    for (char c : text) {
      if (c == '"' || c == '\\') {
        out.push_back('\\');
        out.push_back(c);
      } else if (static_cast<unsigned char>(c) < 0x20) {
        absl::StrAppend(&out, absl::StrFormat("\\u%04x", c));
      } else {
        out.push_back(c);
      }
    }
    return out;
  }

  const Config& config_;
  int64_t replies_ = 0;      // in the window
  int64_t all_replies_ = 0;  // warmup included
  int64_t sent_ = 0;
  bool measuring_ = false;
  int64_t begin_ns_ = 0;
  int64_t begin_cpu_ns_ = 0;
  int64_t end_ns_ = 0;
  int64_t end_cpu_ns_ = 0;
  std::string error_;
};

// SETs the key with a blocking socket before the run, so that every GET
// returns the value.
absl::Status SetValue(const Config& config) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(config.port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  absl::Status status;
  std::string request;
  AppendRespCommand({"SET", config.key, config.value}, &request);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    status = absl::ErrnoToStatus(
        errno, absl::StrCat("connect to 127.0.0.1:", config.port));
  } else if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
             static_cast<ssize_t>(request.size())) {
    status = absl::ErrnoToStatus(errno, "send SET");
  } else {
    std::string in;
    char buf[512];
    for (;;) {
      RespReply reply;
      absl::StatusOr<bool> done = ParseRespReply(in, &reply);
      if (!done.ok()) {
        status = done.status();
        break;
      }
      if (*done) {
        if (reply.type != RespType::kSimpleString || reply.text != "OK") {
          status = absl::FailedPreconditionError(
              absl::StrCat("SET answered: ", in.substr(0, reply.length)));
        }
        break;
      }
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        status = n == 0 ? absl::UnavailableError("SET: server closed")
                        : absl::ErrnoToStatus(errno, "recv SET reply");
        break;
      }
      in.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return status;
}

// Checks one GET reply; false (and the meter failed) if it is not the
// value.
bool CheckReply(const RespReply& reply, const Config& config, Meter* meter) {
  if (reply.type == RespType::kBulkString && !reply.null &&
      reply.text == config.value) {
    return true;
  }
  meter->Fail(absl::StrCat("unexpected reply (type ",
                           static_cast<int>(reply.type),
                           "): ", reply.text.substr(0, 200)));
  return false;
}

// ------------------------------------------------------------ Mill-IO

int RunMill(const Config& config, Meter* meter) {
  const bool batched = config.client == "mill_batched";
  std::string request;
  AppendRespCommand({"GET", config.key}, &request);

  EventLoopOptions loop_options;
  loop_options.dispatch_mode = DispatchMode::kDirect;
  absl::StatusOr<std::unique_ptr<EventLoop>> loop =
      EventLoop::Create(loop_options);
  if (!loop.ok()) {
    meter->Fail(absl::StrCat("EventLoop: ", loop.status().ToString()));
    return 1;
  }
  EventLoop* const event_loop = loop->get();
  // Everything below runs on the loop thread (direct mode), so the meter,
  // `open`, `stopping` and `round` need no lock.
  int open = 0;
  bool stopping = false;
  std::string round;            // mill_batched: one on_data call's requests
  std::promise<void> finished;  // set once, by finish()
  auto finish = [&] {
    if (stopping) return;
    stopping = true;
    finished.set_value();
  };

  ConnectionCallbacks callbacks;
  callbacks.on_connect = [&](const ConnectionPtr& conn) {
    // The first `pipeline` requests: one Send each, or one Send for all.
    std::string first;
    for (int i = 0; i < config.pipeline && meter->MaySend(); ++i) {
      if (batched) {
        first += request;
        continue;
      }
      absl::Status sent = conn->Send(request);
      if (!sent.ok()) {
        meter->Fail(sent.ToString());
        return finish();
      }
    }
    if (!first.empty()) {
      absl::Status sent = conn->Send(first);
      if (!sent.ok()) {
        meter->Fail(sent.ToString());
        return finish();
      }
    }
    if (++open == config.connections) meter->AllConnected();
  };
  callbacks.on_data = [&](const ConnectionPtr& conn, ByteBuffer& in) {
    if (stopping) {  // the run is over: drop late replies
      in.Consume(in.size());
      return;
    }
    const absl::string_view view = in.view();
    size_t pos = 0;
    round.clear();
    while (!meter->over()) {
      RespReply reply;
      absl::StatusOr<bool> done = ParseRespReply(view.substr(pos), &reply);
      if (!done.ok()) {
        meter->Fail(done.status().ToString());
        break;
      }
      if (!*done) break;
      pos += reply.length;
      if (!CheckReply(reply, config, meter)) break;
      if (!meter->OnReply() || !meter->MaySend()) continue;
      if (batched) {
        round += request;
      } else if (absl::Status sent = conn->Send(request); !sent.ok()) {
        meter->Fail(sent.ToString());
      }
    }
    in.Consume(pos);
    if (!round.empty() && !meter->over()) {
      if (absl::Status sent = conn->Send(round); !sent.ok()) {
        meter->Fail(sent.ToString());
      }
    }
    if (meter->over()) finish();
  };
  callbacks.on_close = [&](const ConnectionPtr&, CloseReason reason,
                           const absl::Status& status) {
    if (stopping) return;
    meter->Fail(absl::StrCat("connection closed (reason ",
                             static_cast<int>(reason),
                             "): ", status.ToString()));
    finish();
  };

  TcpClientOptions options;
  // As hiredis does: without it every small write waits for an ACK.
  options.connection.socket.no_delay = true;
  absl::StatusOr<std::unique_ptr<TcpClient>> client =
      TcpClient::Create(event_loop, callbacks, options);
  if (!client.ok()) {
    meter->Fail(absl::StrCat("TcpClient: ", client.status().ToString()));
    return 1;
  }
  const SocketAddress address =
      SocketAddress::LoopbackIPv4(static_cast<uint16_t>(config.port));
  for (int i = 0; i < config.connections; ++i) {
    (*client)->Connect(address, [&](absl::StatusOr<ConnectionPtr> conn) {
      // Cancelled: the client stopped at the end of the run (on the main
      // thread); nothing to report.
      if (!conn.ok() && !absl::IsCancelled(conn.status())) {
        meter->Fail(absl::StrCat("connect: ", conn.status().ToString()));
        finish();
      }
    });
  }
  if (config.requests <= 0) {
    // The window is timed from its start (a late warmup timer does not
    // shorten it).
    event_loop->RunAfter(absl::Seconds(config.warmup), [&] {
      meter->Begin();
      event_loop->RunAfter(absl::Seconds(config.seconds), [&] {
        meter->End();
        finish();
      });
    });
  }
  // The loop runs on its own thread until the client is stopped: Stop()
  // needs it running to close the connections.
  std::thread runner([&] {
    absl::Status run = event_loop->Run();
    if (!run.ok()) {
      meter->Fail(run.ToString());
      finish();
    }
  });
  finished.get_future().wait();
  (*client)->Stop();
  event_loop->Stop();
  runner.join();
  client->reset();
  return meter->failed() ? 1 : 0;
}

// ------------------------------------------------------------ hiredis

// One hiredis connection's state; hiredis hands it back in its callbacks.
struct HiredisRun {
  const Config* config = nullptr;
  Meter* meter = nullptr;
  event_base* base = nullptr;
  event* end = nullptr;  // the end of a --seconds window
  int open = 0;
  bool stopping = false;
  std::vector<redisAsyncContext*> contexts;  // freed by hiredis on close

  void Finish() {
    if (stopping) return;
    stopping = true;
    event_base_loopbreak(base);
  }
  // One GET, as an application would issue it.
  bool Send(redisAsyncContext* ac);
};

void OnHiredisReply(redisAsyncContext* ac, void* reply_ptr, void* privdata) {
  auto* run = static_cast<HiredisRun*>(privdata);
  // Null: the context is being freed (the end of the run) or failed.
  if (run->stopping) return;
  auto* reply = static_cast<redisReply*>(reply_ptr);
  if (reply == nullptr) {
    run->meter->Fail(absl::StrCat("hiredis: ", ac->errstr));
    return run->Finish();
  }
  if (reply->type != REDIS_REPLY_STRING ||
      absl::string_view(reply->str, reply->len) != run->config->value) {
    run->meter->Fail(absl::StrCat(
        "unexpected reply (hiredis type ", reply->type, "): ",
        reply->str != nullptr ? absl::string_view(reply->str, reply->len)
                              : absl::string_view()));
    return run->Finish();
  }
  if (!run->meter->OnReply()) return run->Finish();
  if (run->meter->MaySend()) run->Send(ac);
}

bool HiredisRun::Send(redisAsyncContext* ac) {
  if (redisAsyncCommand(ac, OnHiredisReply, this, "GET %b", config->key.data(),
                        config->key.size()) != REDIS_OK) {
    meter->Fail(absl::StrCat("redisAsyncCommand: ", ac->errstr));
    Finish();
    return false;
  }
  return true;
}

void OnHiredisConnect(const redisAsyncContext* ac, int status) {
  auto* run = static_cast<HiredisRun*>(ac->data);
  if (status != REDIS_OK) {
    run->meter->Fail(absl::StrCat("hiredis connect: ", ac->errstr));
    return run->Finish();
  }
  if (++run->open == run->config->connections) run->meter->AllConnected();
}

void OnHiredisDisconnect(const redisAsyncContext* ac, int status) {
  auto* run = static_cast<HiredisRun*>(ac->data);
  if (run->stopping) return;
  run->meter->Fail(
      absl::StrCat("hiredis: connection closed: ",
                   status == REDIS_OK ? "by the client" : ac->errstr));
  run->Finish();
}

timeval ToTimeval(double seconds) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>((seconds - tv.tv_sec) * 1e6);
  return tv;
}

int RunHiredis(const Config& config, Meter* meter) {
  HiredisRun run;
  run.config = &config;
  run.meter = meter;
  run.base = event_base_new();
  if (run.base == nullptr) {
    meter->Fail("event_base_new failed");
    return 1;
  }
  for (int i = 0; i < config.connections && !meter->over(); ++i) {
    redisAsyncContext* ac = redisAsyncConnect("127.0.0.1", config.port);
    if (ac == nullptr || ac->err != 0) {
      meter->Fail(absl::StrCat("redisAsyncConnect: ",
                               ac != nullptr ? ac->errstr : "out of memory"));
      if (ac != nullptr) redisAsyncFree(ac);
      break;
    }
    ac->data = &run;
    redisLibeventAttach(ac, run.base);
    redisAsyncSetConnectCallback(ac, OnHiredisConnect);
    redisAsyncSetDisconnectCallback(ac, OnHiredisDisconnect);
    run.contexts.push_back(ac);
    // Queued until the connect completes, then written together (hiredis
    // writes its whole output buffer per loop iteration).
    for (int j = 0; j < config.pipeline && meter->MaySend(); ++j) {
      if (!run.Send(ac)) break;
    }
  }
  // The window is timed from its start (a late warmup timer does not
  // shorten it): the begin timer adds the end timer.
  event* begin = nullptr;
  if (!meter->over() && config.requests <= 0) {
    run.end = evtimer_new(
        run.base,
        [](evutil_socket_t, short, void* arg) {
          auto* r = static_cast<HiredisRun*>(arg);
          r->meter->End();
          r->Finish();
        },
        &run);
    begin = evtimer_new(
        run.base,
        [](evutil_socket_t, short, void* arg) {
          auto* r = static_cast<HiredisRun*>(arg);
          r->meter->Begin();
          const timeval window = ToTimeval(r->config->seconds);
          evtimer_add(r->end, &window);
        },
        &run);
    const timeval warmup = ToTimeval(config.warmup);
    evtimer_add(begin, &warmup);
  }
  if (!meter->over()) event_base_dispatch(run.base);
  run.stopping = true;
  // Frees each context (its pending callbacks get a null reply, ignored).
  for (redisAsyncContext* ac : run.contexts) redisAsyncFree(ac);
  if (begin != nullptr) event_free(begin);
  if (run.end != nullptr) event_free(run.end);
  event_base_free(run.base);
  return meter->failed() ? 1 : 0;
}

}  // namespace
}  // namespace bench
}  // namespace mill

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  mill::bench::Config config;
  config.client = absl::GetFlag(FLAGS_client);
  config.port = absl::GetFlag(FLAGS_port);
  config.pipeline = absl::GetFlag(FLAGS_pipeline);
  config.connections = absl::GetFlag(FLAGS_connections);
  config.seconds = absl::GetFlag(FLAGS_seconds);
  config.warmup = absl::GetFlag(FLAGS_warmup);
  config.requests = absl::GetFlag(FLAGS_requests);
  config.key = absl::GetFlag(FLAGS_key);
  const int value_size = absl::GetFlag(FLAGS_value_size);
  std::string bad;
  if (config.client != "mill_per_send" && config.client != "mill_batched" &&
      config.client != "hiredis") {
    bad = absl::StrCat("unknown --client=", config.client,
                       " (mill_per_send, mill_batched or hiredis)");
  } else if (config.port <= 0 || config.port > 65535) {
    bad = "--port must be in 1..65535";
  } else if (config.pipeline < 1 || config.pipeline > 100000) {
    bad = "--pipeline must be in 1..100000";
  } else if (config.connections < 1 || config.connections > 10000) {
    bad = "--connections must be in 1..10000";
  } else if (config.requests <= 0 &&
             !(config.seconds > 0 && config.warmup >= 0)) {
    bad = "--seconds must be > 0 and --warmup >= 0 (or give --requests)";
  } else if (value_size < 0 || value_size > (256 << 10)) {
    bad = "--value_size must be in 0..262144";
  } else if (config.key.empty()) {
    bad = "--key must not be empty";
  }
  if (!bad.empty()) {
    std::fprintf(stderr, "redis_load: %s\n", bad.c_str());
    return 2;
  }
  for (int i = 0; i < value_size; ++i) {
    config.value.push_back("0123456789abcdef"[i % 16]);
  }
  mill::bench::Meter meter(config);
  int rc = 1;
  if (absl::Status set = mill::bench::SetValue(config); !set.ok()) {
    meter.Fail(set.ToString());
  } else if (config.client == "hiredis") {
    rc = mill::bench::RunHiredis(config, &meter);
  } else {
    rc = mill::bench::RunMill(config, &meter);
  }
  if (meter.failed()) rc = 1;
  std::printf("%s\n", meter.Json().c_str());
  std::fflush(stdout);
  return rc;
}
