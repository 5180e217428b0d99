#include "net/connection.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <utility>

#include "net/internal/server_core.h"
#include "net/internal/socket_util.h"

namespace mill {
namespace {

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

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

// Drop the front of the output buffer once it is this large and more than
// half of the buffer (keeps compaction amortized O(1) per byte).
constexpr size_t kCompactThreshold = 64 * 1024;

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
    case CloseReason::kServerStopped:
      return "server_stopped";
    case CloseReason::kRefused:
      return "refused";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, CloseReason reason) {
  return os << CloseReasonName(reason);
}

Connection::Connection(std::shared_ptr<net_internal::ServerCore> core,
                       uint64_t id, Token token, TcpStream stream,
                       SocketAddress peer, RateLimiter limiter)
    : core_(std::move(core)),
      loop_(core_->loop),
      id_(id),
      token_(token),
      peer_(peer),
      limiter_(std::move(limiter)),
      stream_(std::move(stream)) {
  for (const auto& bucket : limiter_.buckets()) {
    min_grant_ = std::min<uint64_t>(min_grant_, bucket->burst());
  }
  min_grant_ = std::max<size_t>(min_grant_, 1);
  last_activity_ns_.store(NowNanos(), std::memory_order_relaxed);
}

Connection::~Connection() = default;  // stream_ closes the fd if still open

void Connection::Touch() {
  last_activity_ns_.store(NowNanos(), std::memory_order_relaxed);
}

// --- User API ----------------------------------------------------------------

absl::Status Connection::Send(absl::string_view data) {
  bool crossed_high = false;
  size_t pending = 0;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (closed_.load(std::memory_order_relaxed) || close_requested_ ||
        shutdown_requested_ || teardown_pending_) {
      return absl::FailedPreconditionError(
          "Connection::Send: the connection is closing or closed");
    }
    if (data.empty()) return absl::OkStatus();
    if (out_pos_ == out_.size()) {
      // Nothing queued: write directly, keep what the socket refuses.
      while (!data.empty()) {
        const ssize_t n = stream_.Write(data.data(), data.size());
        if (n > 0) {
          data.remove_prefix(static_cast<size_t>(n));
          bytes_out_.fetch_add(n, std::memory_order_relaxed);
          core_->bytes_written.fetch_add(n, std::memory_order_relaxed);
          continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        const int err = n < 0 ? errno : EIO;
        absl::Status status = net_internal::ErrnoStatus(err, "send");
        const bool fresh = MarkTeardownLocked(ReasonForErrno(err), status);
        lock.unlock();
        if (fresh) ScheduleTeardown();
        return status;
      }
      Touch();
      if (data.empty()) return absl::OkStatus();
      out_.clear();
      out_pos_ = 0;
    }
    out_.append(data.data(), data.size());
    pending = out_.size() - out_pos_;
    const size_t high = core_->options.high_water_mark;
    if (high > 0 && !above_high_water_ && pending >= high) {
      above_high_water_ = true;
      crossed_high = true;
      if (core_->options.pause_reading_above_high_water) hw_paused_ = true;
    }
    UpdateInterestLocked();
  }
  if (crossed_high) {
    core_->high_water_events.fetch_add(1, std::memory_order_relaxed);
    if (core_->callbacks.on_high_water) {
      core_->callbacks.on_high_water(shared_from_this(), pending);
    }
  }
  return absl::OkStatus();
}

void Connection::Close() {
  bool schedule = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_.load(std::memory_order_relaxed) || close_requested_) return;
    close_requested_ = true;
    close_reason_ = CloseReason::kClosedLocally;
    if (out_pos_ == out_.size()) {
      schedule =
          MarkTeardownLocked(CloseReason::kClosedLocally, absl::OkStatus());
    } else {
      UpdateInterestLocked();  // stop reading
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
    if (closed_.load(std::memory_order_relaxed) || shutdown_requested_ ||
        close_requested_) {
      return;
    }
    shutdown_requested_ = true;
    if (out_pos_ == out_.size()) {
      (void)stream_.Shutdown(SHUT_WR);
      write_shut_ = true;
      if (read_eof_) {
        schedule =
            MarkTeardownLocked(CloseReason::kPeerClosed, absl::OkStatus());
      }
    }
  }
  if (schedule) ScheduleTeardown();
}

size_t Connection::pending_output_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return out_.size() - out_pos_;
}

bool Connection::can_send() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !closed_.load(std::memory_order_relaxed) && !close_requested_ &&
         !shutdown_requested_ && !teardown_pending_;
}

bool Connection::reading_paused() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hw_paused_ || rate_paused_;
}

Interest Connection::interest() const {
  std::lock_guard<std::mutex> lock(mu_);
  return interest_;
}

void Connection::SetContext(std::shared_ptr<void> context) {
  std::lock_guard<std::mutex> lock(mu_);
  context_ = std::move(context);
}

std::shared_ptr<void> Connection::GetContextVoid() const {
  std::lock_guard<std::mutex> lock(mu_);
  return context_;
}

// --- Interest and teardown ---------------------------------------------------

bool Connection::ReadingEnabledLocked() const {
  return !read_eof_ && !hw_paused_ && !rate_paused_ && !close_requested_ &&
         !teardown_pending_ && !closed_.load(std::memory_order_relaxed);
}

Interest Connection::ComputeInterestLocked() const {
  const bool want_read = ReadingEnabledLocked();
  const bool want_write = out_pos_ < out_.size();
  if (want_read && want_write) {
    return Interest::Readable() | Interest::Writable();
  }
  if (want_read) return Interest::Readable();
  if (want_write) return Interest::Writable();
  return Interest::Priority();  // "nothing": never fires for TCP
}

void Connection::UpdateInterestLocked() {
  const Interest next = ComputeInterestLocked();
  if (next == interest_) return;
  interest_ = next;
  if (registered_ && !closed_.load(std::memory_order_relaxed)) {
    // NotFound only races with our own teardown; nothing to do then.
    (void)loop_->Reregister(token_, next);
  }
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
  // On the connection's own handler thread (or in on_connect) the handler
  // finishes the teardown when it returns, so it never closes the socket
  // under its own feet.
  if (handler_thread_.load(std::memory_order_acquire) ==
      std::this_thread::get_id()) {
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Not registered yet: on_connect is running; FinishAccept handles it.
    if (!registered_ || closed_.load(std::memory_order_relaxed)) return;
  }
  // Elsewhere, the loop thread does it: Deregister from there cannot
  // deadlock with another handler doing the same to us. In kDirect mode on
  // the loop thread this runs inline. If the loop is stopped, the request
  // stays pending and TcpServer::Stop() closes the connection.
  std::shared_ptr<Connection> self = shared_from_this();
  (void)loop_->RunInLoop([self] { self->RunPendingTeardown(); });
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
  EventLoop::TimerId idle, resume;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_.load(std::memory_order_relaxed)) return;
    closed_.store(true, std::memory_order_release);
    registered = registered_;
    registered_ = false;
    idle = std::exchange(idle_timer_, EventLoop::TimerId());
    resume = std::exchange(resume_timer_, EventLoop::TimerId());
    std::string().swap(out_);
    out_pos_ = 0;
  }
  if (idle.valid()) loop_->Cancel(idle);
  if (resume.valid()) loop_->Cancel(resume);
  // Deregister BEFORE close: once Deregister returns the handler is not
  // running (or this is the handler itself, which returns right after), so
  // the descriptor number cannot be reused under it.
  if (registered) (void)loop_->Deregister(token_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stream_.Close();
  }
  core_->OnClosed(shared_from_this(), reason, status);
}

// --- Idle timeout
// -------------------------------------------------------------

void Connection::ArmIdleTimerLocked(absl::Duration delay) {
  std::weak_ptr<Connection> weak = weak_from_this();
  idle_timer_ = loop_->RunAfter(delay, [weak] {
    if (std::shared_ptr<Connection> self = weak.lock()) self->OnIdleTimer();
  });
}

void Connection::OnIdleTimer() {
  const absl::Duration timeout = core_->options.idle_timeout;
  bool schedule = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_.load(std::memory_order_relaxed) || teardown_pending_) return;
    idle_timer_ = EventLoop::TimerId();
    const absl::Duration idle = absl::Nanoseconds(
        NowNanos() - last_activity_ns_.load(std::memory_order_relaxed));
    if (idle < timeout) {
      // Activity since the timer was set: sleep for the remainder instead
      // of rescheduling on every read.
      ArmIdleTimerLocked(timeout - idle);
      return;
    }
    schedule = MarkTeardownLocked(CloseReason::kIdleTimeout, absl::OkStatus());
  }
  if (schedule) ScheduleTeardown();
}

// --- Handler side
// --------------------------------------------------------------

void Connection::FinishAccept() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_.load(std::memory_order_relaxed)) return;
    if (!teardown_pending_) {
      // Register under mu_: an event may be handled at once on a worker;
      // it waits for mu_, by when registered_ is set.
      interest_ = ComputeInterestLocked();
      absl::Status status =
          loop_->Register(stream_.fd(), token_, interest_,
                          std::make_shared<net_internal::ConnectionHandler>(
                              shared_from_this()));
      if (status.ok()) {
        registered_ = true;
        if (core_->options.idle_timeout > absl::ZeroDuration()) {
          ArmIdleTimerLocked(core_->options.idle_timeout);
        }
        return;
      }
      MarkTeardownLocked(CloseReason::kError, std::move(status));
    }
  }
  RunPendingTeardown();
}

void Connection::HandleEvent(const Event& event) {
  if (closed_.load(std::memory_order_acquire)) return;
  net_internal::HandlerScope scope(this);
  if (event.is_error()) {
    int err = 0;
    (void)net_internal::GetIntOption(stream_.fd(), SOL_SOCKET, SO_ERROR, &err);
    if (err != 0) {
      Teardown(ReasonForErrno(err),
               net_internal::ErrnoStatus(err, "socket error"));
      return;
    }
  }
  bool below_low_water = false;
  if (event.is_writable() || event.is_write_closed()) {
    int err;
    {
      std::lock_guard<std::mutex> lock(mu_);
      err = FlushLocked(&below_low_water);
    }
    if (err != 0) {
      Teardown(ReasonForErrno(err), net_internal::ErrnoStatus(err, "send"));
      return;
    }
  }
  if (below_low_water && core_->callbacks.on_low_water) {
    core_->callbacks.on_low_water(shared_from_this());
  }
  // A hang-up while reading is paused: read anyway (to EOF), otherwise a
  // level-triggered registration would report the hang-up forever.
  const bool hangup = event.is_read_closed() && event.is_write_closed();
  if (event.is_readable() || event.is_read_closed()) {
    if (!ReadSome(hangup)) return;
  }
  RunPendingTeardown();
}

int Connection::FlushLocked(bool* below_low_water) {
  if (closed_.load(std::memory_order_relaxed)) return 0;
  size_t written = 0;
  while (out_pos_ < out_.size()) {
    const ssize_t n =
        stream_.Write(out_.data() + out_pos_, out_.size() - out_pos_);
    if (n > 0) {
      out_pos_ += static_cast<size_t>(n);
      written += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return n < 0 ? errno : EIO;
  }
  if (written > 0) {
    bytes_out_.fetch_add(written, std::memory_order_relaxed);
    core_->bytes_written.fetch_add(written, std::memory_order_relaxed);
    Touch();
  }
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  } else if (out_pos_ >= kCompactThreshold && out_pos_ * 2 >= out_.size()) {
    out_.erase(0, out_pos_);
    out_pos_ = 0;
  }
  const size_t pending = out_.size() - out_pos_;
  if (above_high_water_ && pending <= core_->low_water) {
    above_high_water_ = false;
    hw_paused_ = false;
    *below_low_water = true;
  }
  if (pending == 0) {
    if (shutdown_requested_ && !write_shut_) {
      (void)stream_.Shutdown(SHUT_WR);
      write_shut_ = true;
      if (read_eof_) {
        MarkTeardownLocked(CloseReason::kPeerClosed, absl::OkStatus());
      }
    }
    if (close_requested_) MarkTeardownLocked(close_reason_, absl::OkStatus());
  }
  UpdateInterestLocked();
  return 0;
}

bool Connection::ReadSome(bool ignore_pause) {
  size_t budget = std::max<size_t>(1, loop_->options().read_budget);
  BufferPool& pool = loop_->buffer_pool();
  while (budget > 0) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_.load(std::memory_order_relaxed) || teardown_pending_ ||
          read_eof_ || close_requested_) {
        return true;
      }
      if (!ignore_pause && !ReadingEnabledLocked()) return true;
    }
    BufferPool::Handle buffer = pool.Acquire();
    const size_t want = std::min(buffer->capacity(), budget);
    size_t grant = want;
    if (!limiter_.unlimited()) {
      // Refuse crumbs: at a high rate a few bytes are always available, and
      // reading them one syscall at a time would burn the CPU. Wait for a
      // useful chunk instead.
      const size_t useful = std::min(want, min_grant_);
      grant = static_cast<size_t>(limiter_.AcquireUpTo(want));
      if (grant < useful) {
        if (grant > 0) limiter_.Refund(grant);
        if (ignore_pause) {
          grant = want;  // hang-up: drain regardless of the limit
        } else {
          PauseForRate(useful);
          return true;
        }
      }
    }
    const ssize_t n = stream_.Read(buffer->data(), grant);
    if (n > 0) {
      const size_t got = static_cast<size_t>(n);
      if (got < grant && !limiter_.unlimited()) limiter_.Refund(grant - got);
      bytes_in_.fetch_add(got, std::memory_order_relaxed);
      core_->bytes_read.fetch_add(got, std::memory_order_relaxed);
      Touch();
      if (core_->callbacks.on_data) {
        core_->callbacks.on_data(shared_from_this(),
                                 absl::string_view(buffer->data(), got));
      }
      if (closed_.load(std::memory_order_acquire)) return false;
      budget -= std::min(budget, got);
      // A short read means the socket is drained; the level-checked
      // registration reports anything that arrives later.
      if (got < grant) return true;
      continue;
    }
    if (!limiter_.unlimited()) limiter_.Refund(grant);
    if (n == 0) {
      OnPeerEof();
      return !closed_.load(std::memory_order_acquire);
    }
    const int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return true;
    Teardown(ReasonForErrno(err), net_internal::ErrnoStatus(err, "recv"));
    return false;
  }
  return true;
}

void Connection::OnPeerEof() {
  bool notify = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (read_eof_) return;
    read_eof_ = true;
    if (write_shut_) {
      MarkTeardownLocked(CloseReason::kPeerClosed, absl::OkStatus());
    } else if (core_->callbacks.on_peer_shutdown) {
      notify = true;
    } else if (!close_requested_) {
      close_requested_ = true;
      close_reason_ = CloseReason::kPeerClosed;
      if (out_pos_ == out_.size()) {
        MarkTeardownLocked(CloseReason::kPeerClosed, absl::OkStatus());
      }
    }
    UpdateInterestLocked();
  }
  if (notify) core_->callbacks.on_peer_shutdown(shared_from_this());
}

void Connection::PauseForRate(size_t wanted) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_.load(std::memory_order_relaxed) || rate_paused_) return;
  rate_paused_ = true;
  core_->rate_limit_pauses.fetch_add(1, std::memory_order_relaxed);
  UpdateInterestLocked();
  // Wake up when a useful chunk (not a single byte) can be read.
  absl::Duration delay =
      limiter_.TimeUntilAvailable(std::max<uint64_t>(wanted, 1));
  if (delay == absl::InfiniteDuration()) delay = absl::Milliseconds(100);
  delay = std::max(delay, absl::Milliseconds(1));
  std::weak_ptr<Connection> weak = weak_from_this();
  resume_timer_ = loop_->RunAfter(delay, [weak] {
    std::shared_ptr<Connection> self = weak.lock();
    if (self == nullptr) return;
    std::lock_guard<std::mutex> lock(self->mu_);
    self->resume_timer_ = EventLoop::TimerId();
    self->rate_paused_ = false;
    self->UpdateInterestLocked();  // re-arms READABLE: level-checked
  });
}

}  // namespace mill
