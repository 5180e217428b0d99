#include "net/connection.h"

#include <sys/socket.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/sendfile.h>
#endif

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "base/monotonic_clock.h"
#include "net/internal/connection_config.h"
#include "net/internal/server_core.h"
#include "net/internal/socket_util.h"

namespace mill {
namespace net_internal {

int& CallbackDepth() {
  static thread_local int depth = 0;
  return depth;
}

}  // namespace net_internal

namespace {

// ECONNRESET and friends mean the peer went away abruptly.
CloseReason ReasonForErrno(int err) {
  switch (err) {
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return CloseReason::kReset;
    default:
      return CloseReason::kError;
  }
}

// Largest single read; also the size of each thread's scratch buffer.
constexpr size_t kReadChunk = size_t{64} * 1024;
// Largest single sendfile(2) call (keeps one flush from hogging the socket
// lock for a huge file; the loop calls again when writable).
constexpr uint64_t kSendFileChunk = 1 << 20;

// Reads land in a per-thread scratch buffer while a connection's input is
// empty, so an idle connection holds no input memory: only bytes the user
// leaves unconsumed are copied into storage of the connection's own.
ByteBuffer& ThreadScratch() {
  static thread_local ByteBuffer scratch;
  return scratch;
}

// Lends the thread's scratch storage to an empty input buffer for one read;
// GiveBack (or the destructor, if a callback threw) returns it, moving any
// unconsumed bytes into storage of the buffer's own.
class ScratchLoan {
 public:
  ScratchLoan(ByteBuffer* input, bool lend) : input_(input), lent_(lend) {
    if (lent_) swap(*input_, ThreadScratch());
  }
  ~ScratchLoan() { GiveBack(); }
  ScratchLoan(const ScratchLoan&) = delete;
  ScratchLoan& operator=(const ScratchLoan&) = delete;

  void GiveBack() {
    if (!lent_) return;
    lent_ = false;
    ByteBuffer& scratch = ThreadScratch();
    if (input_->empty()) {
      swap(*input_, scratch);
      input_->Clear();
      return;
    }
    ByteBuffer own;
    own.Append(input_->view());
    swap(*input_, own);  // `own` now holds the scratch storage
    own.Clear();
    swap(own, scratch);
  }

 private:
  ByteBuffer* const input_;
  bool lent_;
};

// Marks the current thread as running `conn`'s callbacks, so a Close() from
// inside one is carried out when the callback returns.
class CallbackScope {
 public:
  explicit CallbackScope(std::atomic<std::thread::id>* slot)
      : slot_(slot),
        previous_(slot->exchange(std::this_thread::get_id(),
                                 std::memory_order_acq_rel)) {
    ++net_internal::CallbackDepth();
  }
  ~CallbackScope() {
    --net_internal::CallbackDepth();
    slot_->store(previous_, std::memory_order_release);
  }
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;

 private:
  std::atomic<std::thread::id>* const slot_;
  const std::thread::id previous_;
};

void RunAll(std::vector<absl::AnyInvocable<void()>>& releases) {
  for (auto& release : releases) {
    if (release) release();
  }
  releases.clear();
}

}  // namespace

absl::string_view CloseReasonName(CloseReason reason) {
  switch (reason) {
    case CloseReason::kPeerClosed:
      return "peer_closed";
    case CloseReason::kReset:
      return "reset";
    case CloseReason::kError:
      return "error";
    case CloseReason::kIdleTimeout:
      return "idle_timeout";
    case CloseReason::kClosedLocally:
      return "closed_locally";
    case CloseReason::kStopped:
      return "stopped";
    case CloseReason::kRefused:
      return "refused";
    case CloseReason::kInputOverflow:
      return "input_overflow";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, CloseReason reason) {
  return os << CloseReasonName(reason);
}

absl::string_view ConnectionStateName(ConnectionState state) {
  switch (state) {
    case ConnectionState::kConnecting:
      return "connecting";
    case ConnectionState::kOpen:
      return "open";
    case ConnectionState::kClosing:
      return "closing";
    case ConnectionState::kClosed:
      return "closed";
  }
  return "unknown";
}

// --- Internal plumbing
// --------------------------------------------------------

namespace net_internal {

ConnectionConfig::ConnectionConfig(EventLoop* loop,
                                   ConnectionCallbacks callbacks,
                                   ConnectionOptions options)
    : loop(loop),
      callbacks(std::move(callbacks)),
      options(std::move(options)),
      low_water(std::min(this->options.low_water_mark,
                         this->options.high_water_mark)),
      idle(this->options.idle_timeout > absl::ZeroDuration()
               ? std::make_shared<IdleTracker>(loop, this->options.idle_timeout)
               : nullptr) {}

absl::Status ValidateConnectionOptions(const ConnectionOptions& options) {
  if (options.idle_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "ConnectionOptions::idle_timeout must not be negative");
  }
  if (options.read_rate < 0) {
    return absl::InvalidArgumentError(
        "ConnectionOptions::read_rate must not be negative");
  }
  if (options.max_input_bytes < 1) {
    return absl::InvalidArgumentError(
        "ConnectionOptions::max_input_bytes must be at least 1");
  }
  return absl::OkStatus();
}

ConnectionPtr ConnectionAccess::Create(std::shared_ptr<ConnectionOwner> owner,
                                       uint64_t id, bool outbound,
                                       TcpStream stream, SocketAddress peer) {
  return std::make_shared<Connection>(Connection::PassKey(), std::move(owner),
                                      id, outbound, std::move(stream), peer);
}

int64_t ConnectionAccess::LastActivityNanos(const Connection& conn) {
  return conn.last_activity_ns_.load(std::memory_order_relaxed);
}

std::weak_ptr<Connection> ConnectionAccess::WeakOf(Connection& conn) {
  return conn.weak_from_this();
}

void ConnectionAccess::IdleExpired(const ConnectionPtr& conn) {
  conn->OnIdleExpired();
}

void ConnectionAccess::Start(const ConnectionPtr& conn) { conn->Start(); }

void ConnectionAccess::FailConnect(const ConnectionPtr& conn,
                                   absl::Status status) {
  conn->Dispatch([status = std::move(status)](const ConnectionPtr& c) {
    bool connecting;
    {
      std::lock_guard<std::mutex> lock(c->mu_);
      connecting = c->state_ == ConnectionState::kConnecting &&
                   !c->teardown_pending_ && !c->closed_.load();
    }
    if (!connecting) return;
    c->Teardown(CloseReason::kError, status);
    c->owner_->OnConnectDone(c, status);
  });
}

void ConnectionAccess::Close(const ConnectionPtr& conn, CloseReason reason,
                             absl::Status status) {
  conn->Teardown(reason, std::move(status));
}

}  // namespace net_internal

// --- Construction
// -------------------------------------------------------------

Connection::Connection(PassKey,
                       std::shared_ptr<net_internal::ConnectionOwner> owner,
                       uint64_t id, bool outbound, TcpStream stream,
                       SocketAddress peer)
    : owner_(std::move(owner)),
      config_(&owner_->config()),
      loop_(config_->loop),
      id_(id),
      peer_(peer),
      stream_(std::move(stream)),
      // Outbound sockets start connecting (even one whose connect already
      // completed: the first writable event confirms it either way).
      state_(outbound ? ConnectionState::kConnecting : ConnectionState::kOpen),
      outbound_(outbound) {
  const ConnectionOptions& options = config_->options;
  std::vector<std::shared_ptr<TokenBucket>> buckets;
  if (options.read_rate > 0) {
    const uint64_t burst =
        options.read_burst > 0
            ? options.read_burst
            : std::max<uint64_t>(1, loop_->options().read_budget);
    buckets.push_back(std::make_shared<TokenBucket>(options.read_rate, burst,
                                                    options.rate_limit_clock));
  }
  if (options.shared_read_limit != nullptr) {
    buckets.push_back(options.shared_read_limit);
  }
  if (!buckets.empty()) {
    limiter_ = std::make_unique<RateLimiter>(std::move(buckets));
    uint64_t smallest = min_grant_;
    for (const auto& bucket : limiter_->buckets()) {
      smallest = std::min<uint64_t>(smallest, bucket->burst());
    }
    min_grant_ = static_cast<uint32_t>(std::max<uint64_t>(smallest, 1));
  }
  last_activity_ns_.store(MonotonicNanos(), std::memory_order_relaxed);
}

Connection::~Connection() {
  if (config_->idle != nullptr) config_->idle->Remove(&idle_node_);
  // Normally empty: Teardown released every queued file. A connection that
  // was never started (refused) still owes its files' releases.
  for (OutputPiece& piece : out_) {
    if (piece.release) piece.release();
  }
}  // stream_ closes the fd if still open

std::shared_ptr<EventHandler> Connection::AsHandler() {
  // Aliases our own control block: registering costs no allocation.
  return std::shared_ptr<EventHandler>(shared_from_this(),
                                       static_cast<EventHandler*>(this));
}

SocketAddress Connection::local_address() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!stream_.valid()) return SocketAddress();
  absl::StatusOr<SocketAddress> local = stream_.local_address();
  return local.ok() ? *local : SocketAddress();
}

void Connection::Touch() {
  last_activity_ns_.store(MonotonicNanos(), std::memory_order_relaxed);
}

void Connection::Start() {
  if (state() == ConnectionState::kConnecting) {
    std::lock_guard<std::mutex> lock(mu_);
    interest_ = ComputeInterestLocked();
    absl::StatusOr<Registration> reg =
        loop_->Register(stream_.fd(), interest_, AsHandler());
    if (reg.ok()) {
      registration_ = *reg;
      registered_ = true;
      return;
    }
    MarkTeardownLocked(CloseReason::kError, reg.status());
  } else {
    StartOpen();
    return;
  }
  // Registering the connecting socket failed: report it, close quietly.
  absl::Status status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    status = pending_status_;
  }
  ConnectionPtr self = shared_from_this();
  Teardown(CloseReason::kError, status);
  owner_->OnConnectDone(self, status);
}

void Connection::StartOpen() {
  ConnectionPtr self = shared_from_this();
  // Nothing else can run callbacks yet: the socket is not registered.
  (void)EnterCallbacks();
  {
    CallbackScope scope(&handler_thread_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      opened_ = true;
    }
    if (config_->callbacks.on_connect) {
      try {
        config_->callbacks.on_connect(self);
      } catch (...) {
        Teardown(CloseReason::kError, absl::InternalError("on_connect threw"));
        LeaveCallbacks();
        throw;  // the loop counts and reports it
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!closed_.load(std::memory_order_relaxed) && !teardown_pending_) {
      // Register under mu_: an event may be handled at once on a worker; it
      // waits for mu_, by when registration_ is set.
      interest_ = ComputeInterestLocked();
      absl::StatusOr<Registration> reg =
          loop_->Register(stream_.fd(), interest_, AsHandler());
      if (reg.ok()) {
        registration_ = *reg;
        registered_ = true;
        if (config_->options.idle_timeout > absl::ZeroDuration()) {
          ArmIdleTimerLocked();
        }
      } else {
        MarkTeardownLocked(CloseReason::kError, reg.status());
      }
    }
  }
  LeaveCallbacks();
  RunPendingTeardown();
}

// --- State queries
// --------------------------------------------------------------

ConnectionState Connection::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

bool Connection::can_send() const {
  std::lock_guard<std::mutex> lock(mu_);
  return (state_ == ConnectionState::kOpen ||
          state_ == ConnectionState::kConnecting) &&
         !shutdown_requested_ && !teardown_pending_;
}

bool Connection::input_ended() const {
  std::lock_guard<std::mutex> lock(mu_);
  return input_ended_;
}

uint32_t Connection::pause_reasons() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pause_;
}

Interest Connection::interest() const {
  std::lock_guard<std::mutex> lock(mu_);
  return interest_;
}

size_t Connection::pending_output_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_bytes_;
}

absl::Status Connection::Probe() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ != ConnectionState::kOpen || teardown_pending_ ||
      closed_.load(std::memory_order_relaxed)) {
    return absl::UnavailableError(
        absl::StrCat("connection is ", ConnectionStateName(state_)));
  }
  if (input_ended_) {
    return absl::UnavailableError("the peer closed the connection (EOF)");
  }
  char byte;
  ssize_t n;
  do {
    n = ::recv(stream_.fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n == 0) {
    return absl::UnavailableError("the peer closed the connection (EOF)");
  }
  if (n > 0) {
    return absl::FailedPreconditionError("unexpected input is waiting");
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) return absl::OkStatus();
  return ErrnoStatus(errno, "recv(MSG_PEEK)");
}

void Connection::SetContext(std::shared_ptr<void> context) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    context_.swap(context);
  }
  // `context` now holds the previous one: released here, unlocked.
}

std::shared_ptr<void> Connection::GetContextVoid() const {
  std::lock_guard<std::mutex> lock(mu_);
  return context_;
}

// --- Output
// -----------------------------------------------------------------------

bool Connection::QueueLocked(OutputPiece piece) {
  const size_t added =
      piece.fd >= 0 ? static_cast<size_t>(piece.remaining) : piece.bytes.size();
  if (piece.fd < 0 && !out_.empty() && out_.back().fd < 0) {
    out_.back().bytes.Append(piece.bytes.view());
  } else {
    out_.push_back(std::move(piece));
  }
  pending_bytes_ += added;
  const size_t high = config_->options.high_water_mark;
  if (high > 0 && !above_high_water_ && pending_bytes_ >= high) {
    above_high_water_ = true;
    if (config_->options.pause_reading_above_high_water) {
      pause_ |= kPausedOutputFull;
    }
    return true;
  }
  return false;
}

absl::Status Connection::Send(absl::string_view data) {
  bool crossed_high = false;
  size_t pending = 0;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if ((state_ != ConnectionState::kOpen &&
         state_ != ConnectionState::kConnecting) ||
        shutdown_requested_ || teardown_pending_) {
      return absl::FailedPreconditionError(
          "Connection::Send: the connection is closing or closed");
    }
    if (data.empty()) return absl::OkStatus();
    if (out_.empty() && state_ == ConnectionState::kOpen) {
      // Nothing queued: write directly, keep what the socket refuses.
      int err = 0;
      const size_t written = WriteBytesLocked(data, &err);
      CountWrittenLocked(written);
      if (err != 0) {
        absl::Status status = ErrnoStatus(err, "send");
        const bool fresh = MarkTeardownLocked(ReasonForErrno(err), status);
        lock.unlock();
        if (fresh) ScheduleTeardown();
        return status;
      }
      data.remove_prefix(written);
      if (data.empty()) return absl::OkStatus();
    }
    OutputPiece piece;
    piece.bytes.Append(data);
    crossed_high = QueueLocked(std::move(piece));
    pending = pending_bytes_;
    UpdateInterestLocked();
  }
  if (crossed_high) {
    config_->counters.high_water_events.fetch_add(1, std::memory_order_relaxed);
    if (config_->callbacks.on_high_water) {
      config_->callbacks.on_high_water(shared_from_this(), pending);
    }
  }
  return absl::OkStatus();
}

absl::Status Connection::SendFile(int fd, uint64_t offset, uint64_t length,
                                  absl::AnyInvocable<void()> release) {
  bool crossed_high = false;
  size_t pending = 0;
  std::vector<absl::AnyInvocable<void()>> released;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if ((state_ != ConnectionState::kOpen &&
         state_ != ConnectionState::kConnecting) ||
        shutdown_requested_ || teardown_pending_) {
      // `release` is destroyed unrun: the caller still owns the file.
      return absl::FailedPreconditionError(
          "Connection::SendFile: the connection is closing or closed");
    }
    if (fd < 0) {
      return absl::InvalidArgumentError("Connection::SendFile: negative fd");
    }
    if (length == 0) {
      // Nothing to send; the range is "sent" at once.
      if (release) release();
      return absl::OkStatus();
    }
    const bool was_idle = out_.empty();
    OutputPiece piece;
    piece.fd = fd;
    piece.offset = offset;
    piece.remaining = length;
    piece.release = std::move(release);
    crossed_high = QueueLocked(std::move(piece));
    pending = pending_bytes_;
    if (was_idle && !crossed_high && state_ == ConnectionState::kOpen) {
      // Start at once, like Send: the socket is probably writable. (Below
      // the high-water mark, so no low-water crossing can come of it.)
      bool below_low_water = false;
      const int err = FlushLocked(&below_low_water, &released);
      if (err != 0) {
        MarkTeardownLocked(ReasonForErrno(err), ErrnoStatus(err, "sendfile"));
      }
    }
    UpdateInterestLocked();
  }
  RunAll(released);
  ScheduleTeardown();  // no-op unless the flush failed
  if (crossed_high) {
    config_->counters.high_water_events.fetch_add(1, std::memory_order_relaxed);
    if (config_->callbacks.on_high_water) {
      config_->callbacks.on_high_water(shared_from_this(), pending);
    }
  }
  return absl::OkStatus();
}

size_t Connection::WriteBytesLocked(absl::string_view data, int* error) {
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n =
        stream_.Write(data.data() + written, data.size() - written);
    if (n > 0) {
      written += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    *error = n < 0 ? errno : EIO;
    break;
  }
  return written;
}

void Connection::CountWrittenLocked(size_t written) {
  if (written == 0) return;
  bytes_out_.fetch_add(written, std::memory_order_relaxed);
  config_->counters.bytes_written.fetch_add(written, std::memory_order_relaxed);
  Touch();
}

int Connection::FlushLocked(bool* below_low_water,
                            std::vector<absl::AnyInvocable<void()>>* released) {
  if (closed_.load(std::memory_order_relaxed) ||
      state_ == ConnectionState::kConnecting) {
    return 0;
  }
  size_t written = 0;
  int error = 0;
  while (!out_.empty()) {
    OutputPiece& piece = out_.front();
    if (piece.fd < 0) {
      const size_t n = WriteBytesLocked(piece.bytes.view(), &error);
      piece.bytes.Consume(n);
      written += n;
      if (error != 0 || !piece.bytes.empty()) break;  // failed, or EAGAIN
      out_.pop_front();
      continue;
    }
    const size_t chunk = static_cast<size_t>(
        std::min<uint64_t>(piece.remaining, kSendFileChunk));
#ifdef __linux__
    off_t offset = static_cast<off_t>(piece.offset);
    const ssize_t n = ::sendfile(stream_.fd(), piece.fd, &offset, chunk);
#else
    // No sendfile: a bounded read-and-write step (re-reads what the socket
    // refused next time, so nothing is kept in memory between calls).
    char buffer[16 * 1024];
    ssize_t n = ::pread(piece.fd, buffer, std::min(chunk, sizeof(buffer)),
                        static_cast<off_t>(piece.offset));
    if (n > 0) n = stream_.Write(buffer, static_cast<size_t>(n));
#endif
    if (n > 0) {
      piece.offset += static_cast<uint64_t>(n);
      piece.remaining -= static_cast<uint64_t>(n);
      written += static_cast<size_t>(n);
      if (piece.remaining == 0) {
        released->push_back(std::move(piece.release));
        out_.pop_front();
      }
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    // n == 0: the file ended before offset + length.
    error = n < 0 ? errno : EIO;
    break;
  }
  pending_bytes_ -= std::min(pending_bytes_, written);
  CountWrittenLocked(written);
  if (error != 0) return error;
  if (above_high_water_ && pending_bytes_ <= config_->low_water) {
    above_high_water_ = false;
    if ((pause_ & kPausedOutputFull) != 0) {
      pause_ &= ~kPausedOutputFull;
      redeliver_ = true;  // a parser stopped at the mark continues
    }
    *below_low_water = true;
  }
  if (out_.empty()) {
    if (shutdown_requested_ && !write_shut_) {
      (void)stream_.Shutdown(SHUT_WR);
      write_shut_ = true;
      if (input_ended_) {
        MarkTeardownLocked(CloseReason::kPeerClosed, absl::OkStatus());
      }
    }
    if (state_ == ConnectionState::kClosing) {
      MarkTeardownLocked(close_reason_, absl::OkStatus());
    }
  }
  UpdateInterestLocked();
  return 0;
}

// --- Closing
// ------------------------------------------------------------------------

void Connection::Close() {
  bool schedule = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == ConnectionState::kClosed ||
        state_ == ConnectionState::kClosing) {
      return;
    }
    if (state_ == ConnectionState::kConnecting) {
      schedule =
          MarkTeardownLocked(CloseReason::kClosedLocally, absl::OkStatus());
    } else {
      state_ = ConnectionState::kClosing;
      close_reason_ = CloseReason::kClosedLocally;
      if (out_.empty()) {
        schedule =
            MarkTeardownLocked(CloseReason::kClosedLocally, absl::OkStatus());
      } else {
        UpdateInterestLocked();  // stop reading
      }
    }
  }
  if (schedule) ScheduleTeardown();
}

void Connection::Abort() {
  bool schedule;
  {
    std::lock_guard<std::mutex> lock(mu_);
    schedule =
        MarkTeardownLocked(CloseReason::kClosedLocally, absl::OkStatus());
  }
  if (schedule) ScheduleTeardown();
}

void Connection::Shutdown() {
  bool schedule = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ != ConnectionState::kOpen || shutdown_requested_) return;
    shutdown_requested_ = true;
    if (out_.empty()) {
      (void)stream_.Shutdown(SHUT_WR);
      write_shut_ = true;
      if (input_ended_) {
        schedule =
            MarkTeardownLocked(CloseReason::kPeerClosed, absl::OkStatus());
      }
    }
  }
  if (schedule) ScheduleTeardown();
}

bool Connection::MarkTeardownLocked(CloseReason reason, absl::Status status) {
  if (closed_.load(std::memory_order_relaxed) || teardown_pending_) {
    return false;
  }
  teardown_pending_ = true;
  pending_reason_ = reason;
  pending_status_ = std::move(status);
  return true;
}

void Connection::ScheduleTeardown() {
  // Inside one of this connection's callbacks the callback's epilogue
  // carries it out, so the socket is never closed under the handler.
  if (handler_thread_.load(std::memory_order_acquire) ==
      std::this_thread::get_id()) {
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!teardown_pending_ || closed_.load(std::memory_order_relaxed)) return;
  }
  // Elsewhere, the loop carries it out, so that on_close never runs inside
  // the caller's Close(). Teardown never waits (Deregister with
  // on_released), so this cannot deadlock; once the loop is stopped it runs
  // here instead.
  std::shared_ptr<Connection> self = shared_from_this();
  auto teardown = [self] { self->RunPendingTeardown(); };
  if (loop_->IsInLoopThread()) {
    // RunInLoop would run it inline here, inside the caller's Send() or
    // Close() (say, another connection's callback holding its own lock):
    // a zero-delay timer runs it after the current handler instead.
    if (loop_->RunAfter(absl::ZeroDuration(), std::move(teardown)).valid()) {
      return;
    }
  } else if (loop_->RunInLoop(std::move(teardown)).ok()) {
    return;
  }
  RunPendingTeardown();  // the loop is stopped
}

void Connection::RunPendingTeardown() {
  CloseReason reason;
  absl::Status status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!teardown_pending_ || closed_.load(std::memory_order_relaxed)) return;
    reason = pending_reason_;
    status = pending_status_;
  }
  Teardown(reason, std::move(status));
}

void Connection::Teardown(CloseReason reason, absl::Status status) {
  bool registered;
  Registration registration;
  EventLoop::TimerId resume;
  net_internal::SmallQueue<OutputPiece> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_.load(std::memory_order_relaxed)) return;
    closed_.store(true, std::memory_order_release);
    state_ = ConnectionState::kClosed;
    teardown_pending_ = true;
    registered = std::exchange(registered_, false);
    registration = registration_;
    resume = std::exchange(resume_timer_, EventLoop::TimerId());
    dropped.swap(out_);
    pending_bytes_ = 0;
    interest_ = Interest::None();
  }
  if (config_->idle != nullptr) config_->idle->Remove(&idle_node_);
  if (resume.valid()) loop_->Cancel(resume);
  for (OutputPiece& piece : dropped) {
    if (piece.release) piece.release();
  }
  dropped.clear();
  std::shared_ptr<Connection> self = shared_from_this();
  auto finish = [self, reason, status]() mutable {
    // Excluded from the callbacks, so on_close comes after the last one.
    self->Dispatch(
        [reason, status = std::move(status)](const ConnectionPtr& c) mutable {
          c->FinishClose(reason, std::move(status));
        });
  };
  // The socket is closed only once the loop has released the registration
  // (no handler invocation running or to come): the descriptor number
  // cannot be reused under a running handler.
  if (registered) {
    if (!loop_->Deregister(registration, std::move(finish)).ok()) {
      // Not found: cannot happen (we registered it); close anyway.
      FinishClose(reason, std::move(status));
    }
  } else {
    finish();
  }
}

void Connection::FinishClose(CloseReason reason, absl::Status status) {
  bool opened;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stream_.Close();
    opened = std::exchange(opened_, false);
  }
  input_.Shrink();
  ConnectionPtr self = shared_from_this();
  if (opened) config_->counters.CountClose(reason);
  status = net_internal::DeepCopy(status);  // made on another thread
  // The owner forgets the connection before on_close (so on_close sees it
  // gone from the owner's list) and hears again after it: Stop() waits for
  // that, so once Stop returns no on_close is still running.
  owner_->OnClosed(self, reason, status);
  std::exception_ptr error;
  if (opened && config_->callbacks.on_close) {
    try {
      config_->callbacks.on_close(self, reason, status);
    } catch (...) {
      error = std::current_exception();  // reported by the loop
    }
  }
  owner_->OnCloseCallbackDone();
  if (error) std::rethrow_exception(error);
}

// --- Idle timeout
// -----------------------------------------------------------------

void Connection::ArmIdleTimerLocked() {
  if (config_->idle != nullptr) {
    config_->idle->Add(&idle_node_, this,
                       last_activity_ns_.load(std::memory_order_relaxed));
  }
}

void Connection::OnIdleExpired() {
  bool schedule;
  {
    std::lock_guard<std::mutex> lock(mu_);
    schedule = MarkTeardownLocked(CloseReason::kIdleTimeout, absl::OkStatus());
  }
  if (schedule) ScheduleTeardown();
}

// --- Interest
// ---------------------------------------------------------------------

bool Connection::WantsReadLocked() const {
  return state_ == ConnectionState::kOpen && !input_ended_ && pause_ == 0 &&
         !teardown_pending_;
}

Interest Connection::ComputeInterestLocked() const {
  if (closed_.load(std::memory_order_relaxed)) return Interest::None();
  if (state_ == ConnectionState::kConnecting) return Interest::Writable();
  Interest interest = Interest::None();
  if (WantsReadLocked()) interest |= Interest::Readable();
  if (!out_.empty()) interest |= Interest::Writable();
  return interest;
}

void Connection::UpdateInterestLocked() {
  const Interest next = ComputeInterestLocked();
  if (next == interest_) return;
  interest_ = next;
  if (registered_ && !closed_.load(std::memory_order_relaxed)) {
    // NotFound only races with our own teardown; nothing to do then.
    (void)loop_->Reregister(registration_, next);
  }
}

void Connection::SetPauseLocked(uint32_t reason, bool on) {
  if (on) {
    pause_ |= reason;
  } else {
    pause_ &= ~reason;
  }
  UpdateInterestLocked();
}

void Connection::PauseReading() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_.load(std::memory_order_relaxed)) return;
  SetPauseLocked(kPausedByUser, true);
}

void Connection::ResumeReading() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_.load(std::memory_order_relaxed) ||
        (pause_ & kPausedByUser) == 0) {
      return;
    }
    SetPauseLocked(kPausedByUser, false);
  }
  // Bytes already buffered get another on_data: no readiness event would
  // report them (they are no longer in the socket).
  Dispatch([](const ConnectionPtr& c) {
    if (!c->input_.empty() && !c->is_closed()) c->DeliverInput();
  });
}

void Connection::CheckInputLocked() {
  const size_t max_input = config_->options.max_input_bytes;
  const bool full = input_.size() >= max_input;
  if (full == ((pause_ & kPausedInputFull) != 0)) return;
  SetPauseLocked(kPausedInputFull, full);
}

// --- Callback exclusion
// -------------------------------------------------------------

bool Connection::EnterCallbacks() {
  std::lock_guard<std::mutex> lock(mu_);
  if (exec_busy_) return false;
  exec_busy_ = true;
  return true;
}

void Connection::LeaveCallbacks() {
  std::exception_ptr first_error;
  for (;;) {
    absl::AnyInvocable<void(const ConnectionPtr&)> task;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (exec_queue_.empty()) {
        exec_busy_ = false;
        break;
      }
      task = std::move(exec_queue_.front());
      exec_queue_.pop_front();
    }
    try {
      RunExcluded(std::move(task));
    } catch (...) {
      if (!first_error) first_error = std::current_exception();
    }
  }
  // Every queued task ran; now let the caller (or the loop) see the error.
  if (first_error) std::rethrow_exception(first_error);
}

void Connection::RunExcluded(
    absl::AnyInvocable<void(const ConnectionPtr&)> fn) {
  ConnectionPtr self = shared_from_this();
  std::exception_ptr error;
  {
    CallbackScope scope(&handler_thread_);
    try {
      fn(self);
    } catch (...) {
      error = std::current_exception();
    }
    fn = nullptr;  // captured state dies inside the scope
  }
  {
    // The task may have consumed input: reading may resume.
    std::lock_guard<std::mutex> lock(mu_);
    if (!closed_.load(std::memory_order_relaxed)) CheckInputLocked();
  }
  RunPendingTeardown();
  if (error) std::rethrow_exception(error);
}

void Connection::Dispatch(absl::AnyInvocable<void(const ConnectionPtr&)> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (exec_busy_) {
      exec_queue_.push_back(std::move(fn));
      return;
    }
    exec_busy_ = true;
  }
  std::exception_ptr error;
  try {
    RunExcluded(std::move(fn));
  } catch (...) {
    error = std::current_exception();
  }
  LeaveCallbacks();
  if (error) std::rethrow_exception(error);
}

// --- Handler side
// -------------------------------------------------------------------

void Connection::HandleEvent(const Event& event) {
  if (closed_.load(std::memory_order_acquire)) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (exec_busy_) {
      // A Dispatch task is running on another thread: handle the event
      // right after it (events are hints; a late one is harmless).
      exec_queue_.push_back([event](const ConnectionPtr& c) {
        if (!c->is_closed()) c->HandleEventExcluded(event);
      });
      return;
    }
    exec_busy_ = true;
  }
  std::exception_ptr error;
  {
    CallbackScope scope(&handler_thread_);
    try {
      HandleEventExcluded(event);
    } catch (...) {
      error = std::current_exception();  // the loop reports it (guarantee 4)
    }
  }
  RunPendingTeardown();
  try {
    LeaveCallbacks();
  } catch (...) {
    if (!error) error = std::current_exception();
  }
  if (error) std::rethrow_exception(error);
}

void Connection::HandleEventExcluded(const Event& event) {
  if (state() == ConnectionState::kConnecting) {
    FinishConnect(event);
    return;
  }
  if (event.is_error()) {
    int err = 0;
    (void)net_internal::GetIntOption(stream_.fd(), SOL_SOCKET, SO_ERROR, &err);
    if (err != 0) {
      Teardown(ReasonForErrno(err), ErrnoStatus(err, "socket error"));
      return;
    }
  }
  if (event.is_writable() || event.is_write_closed()) {
    std::vector<absl::AnyInvocable<void()>> released;
    bool below_low_water = false;
    bool redeliver;
    int err;
    {
      std::lock_guard<std::mutex> lock(mu_);
      err = FlushLocked(&below_low_water, &released);
      redeliver = std::exchange(redeliver_, false);
    }
    RunAll(released);
    if (err != 0) {
      Teardown(ReasonForErrno(err), ErrnoStatus(err, "send"));
      return;
    }
    if (below_low_water && config_->callbacks.on_low_water) {
      config_->callbacks.on_low_water(shared_from_this());
    }
    if (redeliver && !input_.empty() && !is_closed()) DeliverInput();
  }
  if (event.is_readable() || event.is_read_closed()) (void)ReadSome();
  if (input_.empty() && input_.capacity() > 0) input_.Shrink();
}

void Connection::FinishConnect(const Event& event) {
  absl::Status status = stream_.FinishConnect();
  if (!status.ok() && stream_.connect_pending()) return;  // spurious event
  if (status.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (teardown_pending_ || closed_.load(std::memory_order_relaxed)) return;
    state_ = ConnectionState::kOpen;
    opened_ = true;
    if (config_->options.idle_timeout > absl::ZeroDuration()) {
      ArmIdleTimerLocked();
    }
    UpdateInterestLocked();
  } else {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (teardown_pending_ || closed_.load(std::memory_order_relaxed)) {
        return;
      }
    }
    ConnectionPtr self = shared_from_this();
    Teardown(CloseReason::kError, status);
    owner_->OnConnectDone(self, status);
    return;
  }
  ConnectionPtr self = shared_from_this();
  if (config_->callbacks.on_connect) config_->callbacks.on_connect(self);
  owner_->OnConnectDone(self, absl::OkStatus());
  // Output queued while connecting goes out now.
  std::vector<absl::AnyInvocable<void()>> released;
  bool below_low_water = false;
  int err;
  {
    std::lock_guard<std::mutex> lock(mu_);
    err = FlushLocked(&below_low_water, &released);
  }
  RunAll(released);
  if (err != 0) {
    Teardown(ReasonForErrno(err), ErrnoStatus(err, "send"));
  }
}

void Connection::DeliverInput() {
  if (config_->callbacks.on_data) {
    config_->callbacks.on_data(shared_from_this(), input_);
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_.load(std::memory_order_relaxed)) return;
  if (input_.size() >= config_->options.max_input_bytes &&
      config_->options.close_on_input_overflow) {
    MarkTeardownLocked(CloseReason::kInputOverflow,
                       absl::ResourceExhaustedError(absl::StrCat(
                           "unconsumed input reached max_input_bytes (",
                           config_->options.max_input_bytes, ")")));
    return;
  }
  CheckInputLocked();
}

bool Connection::ReadSome() {
  const ConnectionOptions& options = config_->options;
  size_t budget = std::max<size_t>(1, loop_->options().read_budget);
  while (budget > 0) {
    size_t room;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!WantsReadLocked()) return true;
      room = options.max_input_bytes > input_.size()
                 ? options.max_input_bytes - input_.size()
                 : 0;
      if (room == 0) {
        SetPauseLocked(kPausedInputFull, true);
        return true;
      }
    }
    const size_t want = std::min({budget, room, kReadChunk});
    size_t grant = want;
    if (limiter_ != nullptr) {
      // Refuse crumbs: at a high rate a few bytes are always available, and
      // reading them one syscall at a time would burn the CPU. Wait for a
      // useful chunk instead.
      const size_t useful = std::min<size_t>(want, min_grant_);
      grant = static_cast<size_t>(limiter_->AcquireUpTo(want));
      if (grant < useful) {
        if (grant > 0) limiter_->Refund(grant);
        PauseForRate(useful);
        return true;
      }
    }
    // Borrow this thread's scratch while the input is empty (see
    // ThreadScratch); bytes left unconsumed move into our own storage.
    ScratchLoan loan(&input_, input_.empty() && input_.capacity() < want);
    absl::Span<char> room_span = input_.PrepareAppend(grant);
    const ssize_t n = stream_.Read(room_span.data(), grant);
    const int read_errno = errno;
    if (n > 0) {
      const size_t got = static_cast<size_t>(n);
      input_.Commit(got);
      if (got < grant && limiter_ != nullptr) limiter_->Refund(grant - got);
      bytes_in_.fetch_add(got, std::memory_order_relaxed);
      config_->counters.bytes_read.fetch_add(got, std::memory_order_relaxed);
      Touch();
      DeliverInput();
      loan.GiveBack();
      if (closed_.load(std::memory_order_acquire)) return false;
      budget -= std::min(budget, got);
      // A short read means the socket is drained; the level-checked
      // registration reports anything that arrives later.
      if (got < grant) return true;
      continue;
    }
    loan.GiveBack();
    if (limiter_ != nullptr) limiter_->Refund(grant);
    if (n == 0) {
      OnPeerEof();
      return !closed_.load(std::memory_order_acquire);
    }
    if (read_errno == EAGAIN || read_errno == EWOULDBLOCK) return true;
    Teardown(ReasonForErrno(read_errno), ErrnoStatus(read_errno, "recv"));
    return false;
  }
  return true;
}

void Connection::OnPeerEof() {
  bool notify = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (input_ended_) return;
    input_ended_ = true;
    if (write_shut_) {
      MarkTeardownLocked(CloseReason::kPeerClosed, absl::OkStatus());
    } else if (config_->callbacks.on_peer_shutdown) {
      notify = true;
    } else if (state_ == ConnectionState::kOpen) {
      state_ = ConnectionState::kClosing;
      close_reason_ = CloseReason::kPeerClosed;
      if (out_.empty()) {
        MarkTeardownLocked(CloseReason::kPeerClosed, absl::OkStatus());
      }
    }
    UpdateInterestLocked();
  }
  if (notify) config_->callbacks.on_peer_shutdown(shared_from_this());
}

void Connection::PauseForRate(size_t wanted) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_.load(std::memory_order_relaxed) ||
      (pause_ & kPausedRateLimit) != 0) {
    return;
  }
  config_->counters.rate_limit_pauses.fetch_add(1, std::memory_order_relaxed);
  SetPauseLocked(kPausedRateLimit, true);
  // Wake up when a useful chunk (not a single byte) can be read.
  absl::Duration delay =
      limiter_->TimeUntilAvailable(std::max<uint64_t>(wanted, 1));
  if (delay == absl::InfiniteDuration()) delay = absl::Milliseconds(100);
  delay = std::max(delay, absl::Milliseconds(1));
  std::weak_ptr<Connection> weak = weak_from_this();
  resume_timer_ = loop_->RunAfter(delay, [weak] {
    std::shared_ptr<Connection> self = weak.lock();
    if (self == nullptr) return;
    std::lock_guard<std::mutex> lock(self->mu_);
    self->resume_timer_ = EventLoop::TimerId();
    // Re-arms READABLE: level-checked.
    self->SetPauseLocked(kPausedRateLimit, false);
  });
}

}  // namespace mill
