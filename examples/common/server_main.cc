#include "examples/common/server_main.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "examples/common/stop_requests.h"

ABSL_FLAG(std::string, address, "127.0.0.1",
          "numeric IPv4 or IPv6 address to listen on");
ABSL_FLAG(int, workers, 4, "handler threads in --mode=pool");
ABSL_FLAG(std::string, mode, "pool",
          "dispatch mode: pool (handlers on workers) or direct (on the loop "
          "thread)");
ABSL_FLAG(std::string, io, "default",
          "I/O engine: auto (io_uring where the kernel allows it, else epoll, "
          "saying so once), epoll, or uring (fails if io_uring is refused); "
          "default: the MILL_IO environment variable, else epoll");
ABSL_FLAG(int, max_connections, 0, "open connections at most (0: no limit)");
ABSL_FLAG(std::string, unix, "",
          "listen on this Unix-domain socket path (@NAME: Linux's abstract "
          "namespace) instead of --address and --port; a stale socket file "
          "there is replaced, a live server's is not");

namespace mill {
namespace examples {

namespace {

// Abseil flag names cannot contain '-', but the documented spellings of
// some flags do (--tls-cert): every "--name[=value]" argument before a
// bare "--" gets its name's dashes turned into underscores, so both
// spellings work for every flag. Values are left alone.
std::vector<std::string> NormalizeFlagNames(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  for (size_t i = 1; i < args.size(); ++i) {
    std::string& arg = args[i];
    if (arg == "--") break;
    if (arg.size() < 3 || arg[0] != '-') continue;
    const size_t start = arg[1] == '-' ? 2 : 1;
    const size_t end = std::min(arg.find('='), arg.size());
    std::replace(arg.begin() + start, arg.begin() + end, '-', '_');
  }
  return args;
}

}  // namespace

CommonServerFlags ReadCommonServerFlags(int port, absl::Duration idle_timeout) {
  CommonServerFlags flags;
  flags.address = absl::GetFlag(FLAGS_address);
  flags.port = port;
  flags.workers = absl::GetFlag(FLAGS_workers);
  flags.mode = absl::GetFlag(FLAGS_mode);
  flags.io = absl::GetFlag(FLAGS_io);
  flags.max_connections = absl::GetFlag(FLAGS_max_connections);
  flags.unix_path = absl::GetFlag(FLAGS_unix);
  flags.idle_timeout = idle_timeout;
  return flags;
}

absl::StatusOr<ServerSetup> ValidateCommonServerFlags(
    const CommonServerFlags& flags) {
  if (flags.port < 0 || flags.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--port must be in [0, 65535], got ", flags.port));
  }
  if (flags.workers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--workers must be at least 1, got ", flags.workers));
  }
  ServerSetup setup;
  setup.loop.workers = flags.workers;
  if (flags.mode == "pool") {
    setup.loop.dispatch_mode = DispatchMode::kPool;
  } else if (flags.mode == "direct") {
    setup.loop.dispatch_mode = DispatchMode::kDirect;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--mode must be 'pool' or 'direct', got '", flags.mode, "'"));
  }
  absl::StatusOr<IoEngine> io = ParseIoEngine(flags.io);
  if (!io.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--io must be 'auto', 'epoll' or 'uring', got '", flags.io, "'"));
  }
  setup.loop.io = *io;
  if (flags.max_connections < 0) {
    return absl::InvalidArgumentError("--max_connections must not be negative");
  }
  setup.max_connections = static_cast<size_t>(flags.max_connections);
  if (flags.idle_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--idle_timeout must not be negative");
  }
  setup.idle_timeout = flags.idle_timeout;
  if (!flags.unix_path.empty()) {
    absl::StatusOr<SocketAddress> address =
        SocketAddress::Parse(absl::StrCat("unix:", flags.unix_path));
    if (!address.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--unix: ", address.status().message()));
    }
    setup.address = *address;
    return setup;
  }
  absl::StatusOr<SocketAddress> address = SocketAddress::Parse(
      flags.address.find(':') != std::string::npos
          ? absl::StrCat("[", flags.address, "]:", flags.port)
          : absl::StrCat(flags.address, ":", flags.port));
  if (!address.ok()) return address.status();
  setup.address = *address;
  return setup;
}

ServerProgram::ServerProgram(absl::string_view name, absl::string_view usage,
                             const absl::Flag<int>& port,
                             const absl::Flag<absl::Duration>& idle_timeout)
    : name_(name), usage_(usage), port_(port), idle_timeout_(idle_timeout) {}

bool ServerProgram::ParseCommandLine(int argc, char** argv) {
  absl::SetProgramUsageMessage(usage_);
  std::vector<std::string> args = NormalizeFlagNames(argc, argv);
  std::vector<char*> arg_pointers;
  for (std::string& arg : args) arg_pointers.push_back(arg.data());
  std::vector<char*> rest = absl::ParseCommandLine(
      static_cast<int>(arg_pointers.size()), arg_pointers.data());
  if (rest.size() > 1) {
    Fail(absl::StrCat("unexpected argument '", rest[1], "'"));
    return false;
  }
  absl::StatusOr<ServerSetup> setup =
      ValidateCommonServerFlags(ReadCommonServerFlags(
          absl::GetFlag(port_), absl::GetFlag(idle_timeout_)));
  if (!setup.ok()) {
    Fail(setup.status().message());
    return false;
  }
  setup_ = *std::move(setup);
  return true;
}

int ServerProgram::Fail(absl::string_view message) {
  std::fprintf(stderr, "%s: %.*s\n", name_.c_str(),
               static_cast<int>(message.size()), message.data());
  exit_code_ = 2;
  return exit_code_;
}

ServerProgram::~ServerProgram() {
  server_.reset();  // its connections use the loop
  loop_.reset();
}

EventLoop* ServerProgram::CreateLoop() {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop =
      EventLoop::Create(setup_.loop);
  if (!loop.ok()) {
    Fail(loop.status().ToString());
    return nullptr;
  }
  loop_ = *std::move(loop);
  return loop_.get();
}

TcpServerOptions ServerProgram::server_options() const {
  TcpServerOptions options;
  options.connection.socket.no_delay = true;
  options.max_connections = setup_.max_connections;
  options.connection.idle_timeout = setup_.idle_timeout;
  return options;
}

bool ServerProgram::Listen(TcpServerCallbacks callbacks,
                           const TcpServerOptions& options) {
  absl::StatusOr<std::unique_ptr<TcpServer>> server = TcpServer::Create(
      loop_.get(), setup_.address, std::move(callbacks), options);
  if (!server.ok()) {
    Fail(server.status().ToString());
    return false;
  }
  server_ = *std::move(server);
  tls_ = options.layer != nullptr;
  return true;
}

int ServerProgram::Serve() {
  // Before announcing readiness, so that a signal (or stop request) sent as
  // soon as the line is read already stops the loop gracefully.
  absl::StatusOr<std::unique_ptr<StopRequests>> stop_requests =
      StopRequests::Start(loop_.get());
  if (!stop_requests.ok()) return Fail(stop_requests.status().ToString());
  const EventLoop::Stats loop_stats = loop_->stats();
  std::fprintf(stderr, "%s: polling with %s%s\n", name_.c_str(),
               std::string(PollerBackendName(loop_stats.backend)).c_str(),
               loop_stats.io_uring_fallback ? " (io_uring was refused)" : "");
  std::printf("listening on %s\n", server_->local_address().ToString().c_str());
  std::fflush(stdout);

  absl::Status status = loop_->Run();
  // Graceful shutdown: close every connection and the listener.
  stop_requests->reset();
  server_->Stop();
  const TcpServerStats stats = server_->stats();
  server_.reset();
  if (!status.ok()) {
    Fail(status.ToString());
    exit_code_ = 1;
  }
  // Failed TLS handshakes (plaintext on the port, clients that distrust
  // the certificate) never reach the program's callbacks: counted here.
  const std::string handshakes =
      tls_ ? absl::StrCat(", ", stats.handshakes_failed,
                          " TLS handshakes failed")
           : "";
  // Bytes copied after reading: 0 while every read lands in place in the
  // connections' input buffers (bench/copies.py reads this line).
  std::fprintf(stderr,
               "%s: stopped; %llu connections, %llu bytes sent, %llu bytes "
               "received, %llu copied after reading%s\n",
               name_.c_str(), static_cast<unsigned long long>(stats.accepted),
               static_cast<unsigned long long>(stats.bytes_written),
               static_cast<unsigned long long>(stats.bytes_read),
               static_cast<unsigned long long>(stats.input_bytes_copied),
               handshakes.c_str());
  return exit_code_;
}

}  // namespace examples
}  // namespace mill
