// Windows backend: readiness through IOCTL_AFD_POLL and one I/O completion
// port per Poller (the design of wepoll, mio's sys/windows and libuv's
// uv_poll; see afd_win.h for the driver interface).
//
// Each registered socket has a SockState holding the IO_STATUS_BLOCK and
// AFD_POLL_INFO of at most one poll request ("IRP") in flight, issued on a
// handle to \Device\Afd that is associated with the port. The request
// completes with one packet as soon as a requested condition holds (at once
// if it already does); Poll dequeues packets with GetQueuedCompletionStatusEx
// and turns them into Events. epoll's semantics are rebuilt on top:
//  - kLevel: a reported registration is re-submitted at the start of the
//    NEXT Poll (not at once: the handler may consume the data first, and a
//    request re-submitted too early would report stale readiness). A
//    request submitted while the condition holds completes at once, so the
//    next Poll reports it again.
//  - kOneShot: after the report no request is submitted until Reregister.
//  - Interest changes: a request in flight whose mask differs from the new
//    one is cancelled (CancelIoEx, from any thread); its completion packet
//    wakes a blocked Poll, which submits the new mask. Changes that need a
//    new request without a cancel (Register, re-arming an idle one) are
//    queued and a "poke" packet wakes a blocked Poll.
//  - Interest::None(): only ABORT / CONNECT_FAIL (and LOCAL_CLOSE) are asked
//    for, and Poller makes None one-shot: reported at most once.
//  - A socket closed without Deregister completes with AFD_POLL_LOCAL_CLOSE
//    and goes silent (epoll drops a closed descriptor by itself too).
// All requests are submitted by the polling thread; other threads only
// cancel, queue and poke. State is guarded by mu_, which Poll releases while
// it waits. Memory a request writes into (the SockState) is freed only after
// its completion packet was dequeued.
//
// Waker: PostQueuedCompletionStatus to the same port (IocpWakeChannel); at
// most one packet per Waker in flight, re-posted by the next Poll while the
// Waker is not drained (level-triggered, like the POSIX wakeup descriptor).
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/errno_status.h"
#include "base/win32_status.h"
#include "poll/internal/afd_win.h"
#include "poll/internal/backend.h"

namespace mill {
namespace poll_internal {
namespace {

// Completion keys: the AFD handle is associated with kAfdKey; the rest are
// packets posted by this file.
constexpr ULONG_PTR kAfdKey = 0;
constexpr ULONG_PTR kPokeKey = 1;  // a registration changed: re-submit
constexpr ULONG_PTR kWakeKey = 2;  // a Waker; dwNumberOfBytes = its id

// At most this many completion entries per GetQueuedCompletionStatusEx.
constexpr size_t kMaxEntriesPerWait = 1024;

// The public API stores a SOCKET in an int (kernel handles have 32
// significant bits; see the plan in docs/ARCHITECTURE.md).
SOCKET ToSocket(int fd) {
  return static_cast<SOCKET>(static_cast<intptr_t>(fd));
}

// Fails like epoll_ctl would: InvalidArgument for an invalid or closed
// handle, PermissionDenied for a valid handle that is not a socket (file,
// directory, pipe, console: AFD cannot poll them; epoll's EPERM).
absl::Status CheckSocket(int fd, absl::string_view what) {
  int type = 0;
  int len = sizeof(type);
  if (getsockopt(ToSocket(fd), SOL_SOCKET, SO_TYPE,
                 reinterpret_cast<char*>(&type), &len) == 0) {
    return absl::OkStatus();
  }
  const int err = WSAGetLastError();
  if (err != WSAENOTSOCK) return Win32ErrorStatus(err, what);
  const absl::Status status = Win32ErrorStatus(err, what);
  DWORD flags;
  if (GetHandleInformation(reinterpret_cast<HANDLE>(ToSocket(fd)), &flags)) {
    return absl::PermissionDeniedError(
        absl::StrCat(status.message(),
                     "; only sockets can be polled on Windows, not files, "
                     "pipes or other handles"));
  }
  return absl::InvalidArgumentError(status.message());
}

// The handle AFD knows the socket by: the base provider's, below any layered
// service provider. SIO_BASE_HANDLE first; LSPs that intercept it usually
// still answer the SIO_BSP_HANDLE_* ioctls (wepoll's observation).
absl::StatusOr<SOCKET> BaseSocket(SOCKET socket, absl::string_view what) {
  int first_error = 0;
  for (DWORD ioctl : {static_cast<DWORD>(SIO_BASE_HANDLE),
                      static_cast<DWORD>(SIO_BSP_HANDLE_POLL),
                      static_cast<DWORD>(SIO_BSP_HANDLE_SELECT)}) {
    SOCKET base = INVALID_SOCKET;
    DWORD bytes = 0;
    if (WSAIoctl(socket, ioctl, nullptr, 0, &base, sizeof(base), &bytes,
                 nullptr, nullptr) == 0 &&
        base != INVALID_SOCKET) {
      return base;
    }
    if (first_error == 0) first_error = WSAGetLastError();
  }
  return Win32ErrorStatus(first_error, absl::StrCat(what, ": SIO_BASE_HANDLE"));
}

uint32_t ToEventFlags(ULONG afd, Interest interest) {
  uint32_t flags = 0;
  if (interest.is_readable() && (afd & (afd::kPollReceive | afd::kPollAccept)))
    flags |= Event::kReadable;
  if (interest.is_writable() && (afd & afd::kPollSend))
    flags |= Event::kWritable;
  if (interest.is_priority() && (afd & afd::kPollReceiveExpedited))
    flags |= Event::kPriority;
  // The peer shut down its write side (FIN): epoll's EPOLLIN|EPOLLRDHUP.
  if (interest.is_readable() && (afd & afd::kPollDisconnect))
    flags |= Event::kReadable | Event::kReadClosed;
  // Reset, or a non-blocking connect that failed: epoll reports
  // EPOLLERR|EPOLLHUP, with EPOLLIN/EPOLLOUT where asked (the next read or
  // write fails at once).
  if (afd & (afd::kPollAbort | afd::kPollConnectFail)) {
    flags |= Event::kError | Event::kReadClosed | Event::kWriteClosed;
    if (interest.is_readable()) flags |= Event::kReadable;
    if (interest.is_writable()) flags |= Event::kWritable;
  }
  return flags;
}

enum class Irp { kIdle, kPending, kCancelling };

struct SockState {
  // Written by the kernel while a request is in flight; first member, so
  // the OVERLAPPED pointer of a completion entry is the SockState.
  IO_STATUS_BLOCK iosb;
  afd::PollInfo info;

  int fd = -1;
  SOCKET base = INVALID_SOCKET;
  Token token;
  Interest interest = Interest::None();
  Trigger trigger = Trigger::kLevel;
  bool armed = true;     // false: a fired kOneShot awaiting Reregister
  bool closed = false;   // AFD reported LOCAL_CLOSE (closed, not deregistered)
  bool deleted = false;  // deregistered; freed once idle and unqueued
  bool queued = false;   // in updates_ or rearm_
  Irp irp = Irp::kIdle;
  ULONG submitted = 0;  // mask of the request in flight
};

struct WakeState {
  uint32_t id = 0;
  Token token;
  std::atomic<bool> signaled{false};  // Wake() since the last Drain()
  std::atomic<bool> posted{false};    // a packet is in the port
  bool queued = false;                // in wake_rearm_ (guarded by mu_)
};

class IocpBackend;

class IocpWakeChannel final : public WakeChannel {
 public:
  IocpWakeChannel(IocpBackend& backend, HANDLE port,
                  std::unique_ptr<WakeState> state)
      : backend_(backend), port_(port), state_(std::move(state)) {}
  ~IocpWakeChannel() override;

  // Coalescing: only the caller that flips `posted` posts. A Wake racing
  // with the dequeue of the packet is never lost: Poll clears `posted`
  // before it reads `signaled` (both sequentially consistent), so either it
  // sees this Wake's `signaled` or this Wake sees `posted` false and posts.
  absl::Status Wake() override {
    state_->signaled.store(true);
    if (!state_->posted.exchange(true)) {
      if (!PostQueuedCompletionStatus(port_, state_->id, kWakeKey, nullptr)) {
        const DWORD err = GetLastError();
        state_->posted.store(false);
        return Win32ErrorStatus(err, "Waker::Wake: PostQueuedCompletionStatus");
      }
    }
    return absl::OkStatus();
  }

  void Drain() override { state_->signaled.store(false); }

 private:
  IocpBackend& backend_;
  const HANDLE port_;
  const std::unique_ptr<WakeState> state_;
};

class IocpBackend final : public Backend {
 public:
  IocpBackend(HANDLE port, HANDLE afd) : port_(port), afd_(afd) {}

  ~IocpBackend() override {
    std::unique_lock<std::mutex> lock(mu_);
    for (SockState* st : all_) {
      st->deleted = true;
      if (st->irp == Irp::kPending) Cancel(st);
    }
    // The kernel writes into a SockState until its request completes: wait
    // for every completion (cancelled requests complete promptly).
    OVERLAPPED_ENTRY entries[64];
    for (int idle = 0; in_flight_ > 0 && idle < 10;) {
      ULONG n = 0;
      if (!GetQueuedCompletionStatusEx(port_, entries, 64, &n, 1000, FALSE)) {
        ++idle;
        continue;
      }
      for (ULONG i = 0; i < n; ++i) {
        if (entries[i].lpCompletionKey != kAfdKey ||
            entries[i].lpOverlapped == nullptr) {
          continue;
        }
        reinterpret_cast<SockState*>(entries[i].lpOverlapped)->irp = Irp::kIdle;
        --in_flight_;
      }
    }
    // Should a request never complete, leak its state rather than let the
    // kernel write into freed memory.
    for (SockState* st : all_) {
      if (st->irp == Irp::kIdle) delete st;
    }
    CloseHandle(afd_);
    CloseHandle(port_);
    WSACleanup();
  }

  absl::Status Register(int fd, Token token, Interest interest,
                        Trigger trigger) override {
    static constexpr char kWhat[] = "iocp backend: register";
    if (absl::Status s = CheckSocket(fd, kWhat); !s.ok()) return s;
    absl::StatusOr<SOCKET> base = BaseSocket(ToSocket(fd), kWhat);
    if (!base.ok()) return base.status();
    std::lock_guard<std::mutex> lock(mu_);
    if (sockets_.contains(fd)) return ErrnoStatus(EEXIST, kWhat);
    auto* st = new SockState;
    st->fd = fd;
    st->base = *base;
    st->token = token;
    st->interest = interest;
    st->trigger = trigger;
    all_.insert(st);
    sockets_.emplace(fd, st);
    ChangedLocked(st);
    return absl::OkStatus();
  }

  absl::Status Reregister(int fd, Token token, Interest interest,
                          Trigger trigger) override {
    static constexpr char kWhat[] = "iocp backend: reregister";
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = sockets_.find(fd);
      if (it != sockets_.end() && !it->second->closed) {
        SockState* st = it->second;
        st->token = token;
        st->interest = interest;
        st->trigger = trigger;
        st->armed = true;
        ChangedLocked(st);
        return absl::OkStatus();
      }
    }
    // Not registered, or closed since: the same codes as epoll_ctl(MOD).
    if (absl::Status s = CheckSocket(fd, kWhat); !s.ok()) return s;
    return ErrnoStatus(ENOENT, kWhat);
  }

  absl::Status Deregister(int fd) override {
    static constexpr char kWhat[] = "iocp backend: deregister";
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = sockets_.find(fd);
      if (it != sockets_.end()) {
        SockState* st = it->second;
        // Like epoll: a socket closed before its Deregister is
        // InvalidArgument (known here once AFD reported LOCAL_CLOSE); the
        // registration is gone either way.
        const bool closed = st->closed;
        sockets_.erase(it);
        st->deleted = true;
        if (st->irp == Irp::kPending) Cancel(st);
        MaybeFreeLocked(st);
        if (closed) {
          return Win32ErrorStatus(WSAENOTSOCK, kWhat);
        }
        return absl::OkStatus();
      }
    }
    // Not registered: InvalidArgument for a closed or invalid socket,
    // PermissionDenied for another kind of handle, else NotFound.
    if (absl::Status s = CheckSocket(fd, kWhat); !s.ok()) return s;
    return ErrnoStatus(ENOENT, kWhat);
  }

  absl::StatusOr<size_t> Poll(Event* out, size_t capacity,
                              absl::Duration timeout) override {
    const size_t max_entries =
        capacity < kMaxEntriesPerWait ? capacity : kMaxEntriesPerWait;
    if (entries_.size() < max_entries) entries_.resize(max_entries);
    const int millis = TimeoutToMillis(timeout);
    DWORD wait = millis < 0 ? INFINITE : static_cast<DWORD>(millis);
    size_t count = 0;

    std::unique_lock<std::mutex> lock(mu_);
    // What the previous Poll reported (level registrations, undrained
    // Wakers) is checked again now: submitted requests that still hold
    // complete at once.
    RepostWakersLocked();
    ProcessLocked(rearm_, out, capacity, count);
    ProcessLocked(updates_, out, capacity, count);
    if (count == capacity) return count;
    if (count > 0) wait = 0;

    for (int round = 0;; ++round) {
      size_t want = capacity - count;
      if (want > max_entries) want = max_entries;
      ULONG n = 0;
      in_wait_ = true;
      lock.unlock();
      const BOOL ok = GetQueuedCompletionStatusEx(
          port_, entries_.data(), static_cast<ULONG>(want), &n, wait, FALSE);
      const DWORD err = ok ? 0 : GetLastError();
      lock.lock();
      in_wait_ = false;
      if (!ok) {
        if (err == WAIT_TIMEOUT) return count;
        return Win32ErrorStatus(err, "GetQueuedCompletionStatusEx");
      }
      for (ULONG i = 0; i < n; ++i) DispatchLocked(entries_[i], out, count);
      if (count == capacity || round >= 3) break;
      if (count == 0) {
        // Only internal packets (cancellations, pokes) or filtered ones:
        // submit what they queued and look again without waiting. Nothing
        // was reported by this call, so rearm_ holds no duplicate.
        RepostWakersLocked();
        ProcessLocked(rearm_, out, capacity, count);
        ProcessLocked(updates_, out, capacity, count);
      } else if (n < want) {
        break;  // the port is empty
      } else {
        // The port may hold more: take it, but do not re-submit anything
        // reported by this call (it would be reported twice).
        ProcessLocked(updates_, out, capacity, count);
      }
      wait = 0;
    }
    return count;
  }

  absl::StatusOr<std::unique_ptr<WakeChannel>> NewWakeChannel(
      Token token) override {
    auto state = std::make_unique<WakeState>();
    state->token = token;
    std::lock_guard<std::mutex> lock(mu_);
    state->id = next_wake_id_++;
    wakers_.emplace(state->id, state.get());
    return std::unique_ptr<WakeChannel>(
        new IocpWakeChannel(*this, port_, std::move(state)));
  }

  void RemoveWakeState(WakeState* ws) {
    std::lock_guard<std::mutex> lock(mu_);
    wakers_.erase(ws->id);
    if (ws->queued) {
      for (size_t i = 0; i < wake_rearm_.size(); ++i) {
        if (wake_rearm_[i] == ws) {
          wake_rearm_[i] = wake_rearm_.back();
          wake_rearm_.pop_back();
          break;
        }
      }
    }
    // A packet still in the port names an id no longer in wakers_: ignored.
  }

 private:
  static ULONG DesiredMask(const SockState* st) {
    if (st->deleted || st->closed || !st->armed) return 0;
    ULONG mask = afd::kPollLocalClose | afd::kPollAbort | afd::kPollConnectFail;
    if (st->interest.is_readable()) {
      mask |= afd::kPollReceive | afd::kPollAccept | afd::kPollDisconnect;
    }
    if (st->interest.is_writable()) mask |= afd::kPollSend;
    if (st->interest.is_priority()) mask |= afd::kPollReceiveExpedited;
    return mask;
  }

  // After any change to `st` (any thread, mu_ held): make the request in
  // flight match DesiredMask, now or through the polling thread.
  void ChangedLocked(SockState* st) {
    const ULONG desired = DesiredMask(st);
    switch (st->irp) {
      case Irp::kPending:
        // Its completion (STATUS_CANCELLED, or a result that raced the
        // cancel and is filtered) comes back through ChangedLocked.
        if (st->submitted != desired) Cancel(st);
        return;
      case Irp::kCancelling:
        return;
      case Irp::kIdle:
        if (desired != 0) {
          Enqueue(st, updates_);
          PokeLocked();
        }
        return;
    }
  }

  void Enqueue(SockState* st, std::vector<SockState*>& list) {
    if (st->queued) return;
    st->queued = true;
    list.push_back(st);
  }

  // Wakes a Poll blocked in GetQueuedCompletionStatusEx so that it submits
  // what was queued. One poke in flight at a time.
  void PokeLocked() {
    if (!in_wait_ || poke_posted_) return;
    if (PostQueuedCompletionStatus(port_, 0, kPokeKey, nullptr)) {
      poke_posted_ = true;
    }
  }

  void Cancel(SockState* st) {
    // Fails with ERROR_NOT_FOUND when the request just completed; its
    // packet is then on its way and handled the same.
    CancelIoEx(afd_, reinterpret_cast<OVERLAPPED*>(&st->iosb));
    st->irp = Irp::kCancelling;
  }

  void MaybeFreeLocked(SockState* st) {
    if (st->deleted && st->irp == Irp::kIdle && !st->queued) {
      all_.erase(st);
      delete st;
    }
  }

  // Submits a request for every state in `list` that needs one. A request
  // that fails synchronously is reported as an error event (if there is
  // room; otherwise it is retried by the next Poll).
  void ProcessLocked(std::vector<SockState*>& list, Event* out, size_t capacity,
                     size_t& count) {
    if (list.empty()) return;
    scratch_.swap(list);  // list may be appended to while we walk
    for (SockState* st : scratch_) {
      st->queued = false;
      if (st->deleted) {
        MaybeFreeLocked(st);
        continue;
      }
      const ULONG desired = DesiredMask(st);
      if (st->irp != Irp::kIdle) {
        if (st->irp == Irp::kPending && st->submitted != desired) Cancel(st);
        continue;
      }
      if (desired == 0) continue;
      const NTSTATUS status = Submit(st, desired);
      if (status == STATUS_PENDING || status == STATUS_SUCCESS) continue;
      if (status == STATUS_INVALID_HANDLE) {
        st->closed = true;  // closed without Deregister: silent, like epoll
        continue;
      }
      if (count < capacity) {
        out[count++] = Event(st->token, Event::kError | Event::kReadClosed |
                                            Event::kWriteClosed);
        if (st->trigger == Trigger::kOneShot) {
          st->armed = false;
        } else {
          Enqueue(st, rearm_);
        }
      } else {
        Enqueue(st, updates_);
      }
    }
    scratch_.clear();
  }

  NTSTATUS Submit(SockState* st, ULONG mask) {
    st->info.timeout.QuadPart = INT64_MAX;
    st->info.number_of_handles = 1;
    st->info.exclusive = FALSE;
    st->info.handles[0].handle = reinterpret_cast<HANDLE>(st->base);
    st->info.handles[0].events = mask;
    st->info.handles[0].status = 0;
    st->iosb.Status = STATUS_PENDING;
    st->iosb.Information = 0;
    const NTSTATUS status = NtDeviceIoControlFile(
        afd_, nullptr, nullptr, &st->iosb, &st->iosb, afd::kIoctlPoll,
        &st->info, sizeof(st->info), &st->info, sizeof(st->info));
    // STATUS_SUCCESS (already ready) still queues a completion packet: the
    // handle is not in FILE_SKIP_COMPLETION_PORT_ON_SUCCESS mode.
    if (status == STATUS_PENDING || status == STATUS_SUCCESS) {
      st->irp = Irp::kPending;
      st->submitted = mask;
      ++in_flight_;
    }
    return status;
  }

  void RepostWakersLocked() {
    for (WakeState* ws : wake_rearm_) {
      ws->queued = false;
      if (ws->signaled.load() && !ws->posted.exchange(true)) {
        if (!PostQueuedCompletionStatus(port_, ws->id, kWakeKey, nullptr)) {
          ws->posted.store(false);
        }
      }
    }
    wake_rearm_.clear();
  }

  void DispatchLocked(const OVERLAPPED_ENTRY& entry, Event* out,
                      size_t& count) {
    switch (entry.lpCompletionKey) {
      case kPokeKey:
        poke_posted_ = false;
        return;
      case kWakeKey: {
        auto it = wakers_.find(entry.dwNumberOfBytesTransferred);
        if (it == wakers_.end()) return;  // its Waker is gone
        WakeState* ws = it->second;
        ws->posted.store(false);
        if (!ws->signaled.load()) return;  // drained meanwhile
        out[count++] = Event(ws->token, Event::kReadable);
        if (!ws->queued) {
          ws->queued = true;
          wake_rearm_.push_back(ws);
        }
        return;
      }
      default:
        break;
    }
    if (entry.lpOverlapped == nullptr) return;
    auto* st = reinterpret_cast<SockState*>(entry.lpOverlapped);
    --in_flight_;
    st->irp = Irp::kIdle;
    st->submitted = 0;
    if (st->deleted) {
      MaybeFreeLocked(st);
      return;
    }
    const NTSTATUS status = st->iosb.Status;
    uint32_t flags = 0;
    if (status == STATUS_CANCELLED) {
      // Cancelled for an interest change: submit the new mask.
    } else if (!NT_SUCCESS(status)) {
      flags = Event::kError | Event::kReadClosed | Event::kWriteClosed;
    } else if (st->info.number_of_handles >= 1) {
      const ULONG afd_events = st->info.handles[0].events;
      if (afd_events & afd::kPollLocalClose) {
        st->closed = true;  // closed without Deregister: silent from now on
        return;
      }
      // Masked by the current interest: it may have changed meanwhile.
      flags = ToEventFlags(afd_events, st->interest);
    }
    if (flags == 0 || !st->armed) {
      ChangedLocked(st);
      return;
    }
    out[count++] = Event(st->token, flags);
    if (st->trigger == Trigger::kOneShot) {
      st->armed = false;
    } else {
      Enqueue(st, rearm_);  // checked again by the next Poll
    }
  }

  friend class IocpWakeChannel;

  const HANDLE port_;
  const HANDLE afd_;

  std::mutex mu_;
  // Guarded by mu_.
  absl::flat_hash_map<int, SockState*> sockets_;  // registered, by fd
  std::unordered_set<SockState*> all_;  // every SockState not yet freed
  std::vector<SockState*> updates_;     // need a request: submit soon
  std::vector<SockState*> rearm_;       // level, reported: submit next Poll
  std::vector<SockState*> scratch_;
  size_t in_flight_ = 0;      // requests whose completion is not dequeued
  bool in_wait_ = false;      // the polling thread is (about to be) waiting
  bool poke_posted_ = false;  // a kPokeKey packet is in the port
  absl::flat_hash_map<uint32_t, WakeState*> wakers_;
  std::vector<WakeState*> wake_rearm_;
  uint32_t next_wake_id_ = 1;

  // Owned by the polling thread.
  std::vector<OVERLAPPED_ENTRY> entries_;
};

IocpWakeChannel::~IocpWakeChannel() { backend_.RemoveWakeState(state_.get()); }

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> NewIocpBackend() {
  // The Poller may be the first Winsock user of the process (getsockopt and
  // WSAIoctl fail with WSANOTINITIALISED otherwise). Reference-counted; the
  // backend's destructor calls WSACleanup.
  WSADATA wsa;
  if (const int err = WSAStartup(MAKEWORD(2, 2), &wsa); err != 0) {
    return Win32ErrorStatus(static_cast<uint32_t>(err), "WSAStartup");
  }
  HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
  if (port == nullptr) {
    absl::Status s = LastWin32ErrorStatus("CreateIoCompletionPort");
    WSACleanup();
    return s;
  }
  // A handle to the AFD driver without an endpoint (not a socket): poll
  // requests for any socket are issued on it. The name after \Device\Afd is
  // free-form.
  UNICODE_STRING name;
  RtlInitUnicodeString(&name, L"\\Device\\Afd\\MillIo");
  OBJECT_ATTRIBUTES attributes;
  InitializeObjectAttributes(&attributes, &name, 0, nullptr, nullptr);
  IO_STATUS_BLOCK iosb;
  HANDLE afd = nullptr;
  const NTSTATUS status = NtCreateFile(
      &afd, SYNCHRONIZE, &attributes, &iosb, nullptr, 0,
      FILE_SHARE_READ | FILE_SHARE_WRITE, FILE_OPEN, 0, nullptr, 0);
  if (status != STATUS_SUCCESS) {
    CloseHandle(port);
    WSACleanup();
    return Win32ErrorStatus(RtlNtStatusToDosError(status),
                            "NtCreateFile(\\Device\\Afd)");
  }
  if (CreateIoCompletionPort(afd, port, kAfdKey, 0) == nullptr ||
      !SetFileCompletionNotificationModes(afd, FILE_SKIP_SET_EVENT_ON_HANDLE)) {
    absl::Status s = LastWin32ErrorStatus("CreateIoCompletionPort(afd)");
    CloseHandle(afd);
    CloseHandle(port);
    WSACleanup();
    return s;
  }
  return std::unique_ptr<Backend>(new IocpBackend(port, afd));
}

}  // namespace poll_internal
}  // namespace mill
