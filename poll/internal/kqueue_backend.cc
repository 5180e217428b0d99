// BSD / macOS backend: kqueue.
//
// UNTESTED IN CI: written against the FreeBSD and macOS kqueue(2) man pages;
// there is no BSD or macOS machine in CI. poll/BUILD.bazel compiles this
// file only on darwin / freebsd / openbsd, and the __has_include guard below
// compiles it to an Unimplemented stub anywhere <sys/event.h> is missing.
//
// Mapping:
//  - Readable -> EVFILT_READ, Writable -> EVFILT_WRITE, Priority ->
//    EVFILT_EXCEPT with NOTE_OOB where the platform has it (macOS; elsewhere
//    Register with Priority fails with Unimplemented). One knote per filter,
//    each carrying the token in udata.
//  - kLevel: plain EV_ADD (EV_CLEAR is never used, so knotes are level
//    triggered: re-reported while the condition holds).
//  - kOneShot: EV_ADD|EV_DISPATCH; the kernel disables a knote after
//    delivering it, and Reregister re-arms it with EV_ENABLE, which
//    re-evaluates the filter and reports at once if it is still true. With
//    several filters, epoll's EPOLLONESHOT disarms the whole descriptor after
//    one event; to match, Poll merges same-descriptor events of one batch and
//    EV_DISABLEs the registration's other filters before returning.
//  - EV_EOF on EVFILT_READ -> read-closed, on EVFILT_WRITE -> write-closed;
//    EV_EOF with a non-zero fflags (the socket error) or EV_ERROR -> error.
//  - kqueue accepts regular files (always readable) and EV_ADD on an existing
//    knote just modifies it, so this backend keeps its own fd table to return
//    the same AlreadyExists / NotFound / PermissionDenied codes as epoll.
//  - kqueue cannot report read and write in one kevent, so one descriptor may
//    give two Events in one Poll (documented in poller.h).
#include "base/errno_status.h"
#include "poll/internal/backend.h"

#if defined(__has_include)
#if __has_include(<sys/event.h>)
#define MILL_POLL_KQUEUE_AVAILABLE 1
#endif
#endif

#ifndef MILL_POLL_KQUEUE_AVAILABLE

namespace mill {
namespace poll_internal {

bool KqueueBackendCompiled() { return false; }

absl::StatusOr<std::unique_ptr<Backend>> NewKqueueBackend() {
  return absl::UnimplementedError("kqueue: <sys/event.h> is not available");
}

}  // namespace poll_internal
}  // namespace mill

#else  // MILL_POLL_KQUEUE_AVAILABLE

// clang-format off
#include <sys/types.h>  // before <sys/event.h> on older BSDs
#include <sys/event.h>
#include <sys/time.h>
// clang-format on
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace mill {
namespace poll_internal {
namespace {

// Field types differ between BSDs (NetBSD: uint32_t filter/flags and an
// intptr_t udata; FreeBSD/macOS: int16_t/uint16_t and void*).
using KeventType = struct kevent;
using Udata = decltype(std::declval<KeventType>().udata);
using FilterType = decltype(std::declval<KeventType>().filter);
using FlagsType = decltype(std::declval<KeventType>().flags);

// Templates so that the discarded `if constexpr` branch is not compiled.
template <typename U>
U UintToUdata(uintptr_t v) {
  if constexpr (std::is_pointer_v<U>) {
    return reinterpret_cast<U>(v);
  } else {
    return static_cast<U>(v);
  }
}

template <typename U>
uintptr_t UdataToUint(U udata) {
  if constexpr (std::is_pointer_v<U>) {
    return reinterpret_cast<uintptr_t>(udata);
  } else {
    return static_cast<uintptr_t>(udata);
  }
}

Udata TokenToUdata(Token token) {
  return UintToUdata<Udata>(static_cast<uintptr_t>(token.value()));
}

Token UdataToToken(Udata udata) {
  return Token(static_cast<uint64_t>(UdataToUint<Udata>(udata)));
}

// EVFILT_* as the kevent field's type (signed on FreeBSD/macOS, unsigned on
// NetBSD).
constexpr FilterType kRead = static_cast<FilterType>(EVFILT_READ);
constexpr FilterType kWrite = static_cast<FilterType>(EVFILT_WRITE);

#if defined(EVFILT_EXCEPT) && defined(NOTE_OOB)
#define MILL_POLL_KQUEUE_HAS_OOB 1
#endif

// Filter bits of a registration.
enum : uint8_t { kReadBit = 1, kWriteBit = 2, kExceptBit = 4 };

struct Filter {
  uint8_t bit;
  FilterType filter;
  uint32_t fflags;
};

constexpr int kNumFilters =
#ifdef MILL_POLL_KQUEUE_HAS_OOB
    3;
#else
    2;
#endif

const Filter kFilters[kNumFilters] = {
    {kReadBit, kRead, 0},
    {kWriteBit, kWrite, 0},
#ifdef MILL_POLL_KQUEUE_HAS_OOB
    {kExceptBit, static_cast<FilterType>(EVFILT_EXCEPT), NOTE_OOB},
#endif
};

struct Registration {
  Token token;
  uint8_t filters = 0;  // kReadBit | kWriteBit | kExceptBit
  Trigger trigger = Trigger::kLevel;
};

bool IsMultiFilterOneShot(const Registration& r) {
  return r.trigger == Trigger::kOneShot && (r.filters & (r.filters - 1)) != 0;
}

KeventType MakeKevent(int fd, const Filter& f, unsigned flags, Token token) {
  KeventType kev{};
  kev.ident = static_cast<decltype(kev.ident)>(fd);
  kev.filter = f.filter;
  kev.flags = static_cast<FlagsType>(flags);
  kev.fflags = f.fflags;
  kev.data = 0;
  kev.udata = TokenToUdata(token);
  return kev;
}

class KqueueBackend final : public Backend {
 public:
  explicit KqueueBackend(int kq) : kq_(kq) {}
  ~KqueueBackend() override { close(kq_); }

  absl::Status Register(int fd, Token token, Interest interest,
                        Trigger trigger) override {
    static constexpr char kWhat[] = "kevent(EV_ADD)";
    absl::StatusOr<uint8_t> filters = ToFilters(token, interest, kWhat);
    if (!filters.ok()) return filters.status();
    if (absl::Status s = CheckPollableFd(fd, kWhat); !s.ok()) return s;
    std::lock_guard<std::mutex> lock(mu_);
    if (regs_.contains(fd)) return ErrnoStatus(EEXIST, kWhat);

    const unsigned mode = trigger == Trigger::kOneShot ? EV_DISPATCH : 0;
    KeventType changes[kNumFilters];
    int n = 0;
    for (const Filter& f : kFilters) {
      if (*filters & f.bit)
        changes[n++] = MakeKevent(fd, f, EV_ADD | mode, token);
    }
    int errors[kNumFilters];
    Apply(changes, n, errors);
    for (int i = 0; i < n; ++i) {
      if (errors[i] == 0) continue;
      // Roll back the filters that were added.
      for (int j = 0; j < n; ++j) {
        if (errors[j] == 0) {
          changes[j].flags = static_cast<FlagsType>(EV_DELETE);
          int ignored;
          Apply(&changes[j], 1, &ignored);
        }
      }
      return ErrnoStatus(errors[i], kWhat);
    }
    Registration reg;
    reg.token = token;
    reg.filters = *filters;
    reg.trigger = trigger;
    if (IsMultiFilterOneShot(reg)) ++multi_oneshot_;
    regs_.emplace(fd, reg);
    return absl::OkStatus();
  }

  absl::Status Reregister(int fd, Token token, Interest interest,
                          Trigger trigger) override {
    static constexpr char kWhat[] = "kevent(reregister)";
    absl::StatusOr<uint8_t> filters = ToFilters(token, interest, kWhat);
    if (!filters.ok()) return filters.status();
    if (absl::Status s = CheckPollableFd(fd, kWhat); !s.ok()) return s;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = regs_.find(fd);
    if (it == regs_.end()) return ErrnoStatus(ENOENT, kWhat);
    Registration& reg = it->second;

    const unsigned mode = trigger == Trigger::kOneShot ? EV_DISPATCH : 0;
    // Deletes first, then adds: kevent applies a changelist in order.
    KeventType changes[2 * kNumFilters];
    int n = 0;
    for (const Filter& f : kFilters) {
      const bool had = (reg.filters & f.bit) != 0;
      const bool wants = (*filters & f.bit) != 0;
      // EV_ADD on an existing knote updates udata but not EV_DISPATCH, so a
      // trigger change needs a fresh knote.
      if (had && (!wants || reg.trigger != trigger)) {
        changes[n++] = MakeKevent(fd, f, EV_DELETE, reg.token);
      }
    }
    for (const Filter& f : kFilters) {
      if ((*filters & f.bit) == 0) continue;
      // EV_ENABLE re-arms a knote that EV_DISPATCH (or Poll) disabled; the
      // kernel re-evaluates it and queues an event if it is still ready.
      changes[n++] = MakeKevent(fd, f, EV_ADD | EV_ENABLE | mode, token);
    }
    int errors[2 * kNumFilters];
    Apply(changes, n, errors);
    for (int i = 0; i < n; ++i) {
      // ENOENT on a delete: the knote was already gone.
      if (errors[i] != 0 &&
          !(errors[i] == ENOENT && (changes[i].flags & EV_DELETE) != 0)) {
        // The change list may be partly applied; the table keeps the old
        // registration, which Deregister still removes completely.
        return ErrnoStatus(errors[i], kWhat);
      }
    }
    if (IsMultiFilterOneShot(reg)) --multi_oneshot_;
    reg.token = token;
    reg.filters = *filters;
    reg.trigger = trigger;
    if (IsMultiFilterOneShot(reg)) ++multi_oneshot_;
    return absl::OkStatus();
  }

  absl::Status Deregister(int fd) override {
    static constexpr char kWhat[] = "kevent(EV_DELETE)";
    const bool closed = fd < 0 || (fcntl(fd, F_GETFD) < 0 && errno == EBADF);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = regs_.find(fd);
    if (it == regs_.end()) return ErrnoStatus(closed ? EBADF : ENOENT, kWhat);
    const Registration reg = it->second;
    if (IsMultiFilterOneShot(reg)) --multi_oneshot_;
    regs_.erase(it);
    // Closing a descriptor removes its knotes, so a closed fd needs no
    // EV_DELETE (and would fail with EBADF).
    if (closed) return ErrnoStatus(EBADF, kWhat);
    KeventType changes[kNumFilters];
    int n = 0;
    // Every filter, not just reg.filters: a failed Reregister may have left an
    // extra knote behind. Missing ones fail with ENOENT, ignored below.
    for (const Filter& f : kFilters) {
      changes[n++] = MakeKevent(fd, f, EV_DELETE, reg.token);
    }
    int errors[kNumFilters];
    Apply(changes, n, errors);
    for (int i = 0; i < n; ++i) {
      if (errors[i] != 0 && errors[i] != ENOENT) {
        return ErrnoStatus(errors[i], kWhat);
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<WakeChannel>> NewWakeChannel(
      Token token) override {
    return NewWakeupFdChannel(*this, token);
  }

  absl::StatusOr<size_t> Poll(Event* out, size_t capacity,
                              absl::Duration timeout) override {
    if (native_.size() < capacity) {
      native_.resize(capacity);
      out_fds_.resize(capacity);
      disables_.reserve(capacity * kNumFilters);
    }
    timespec ts;
    const timespec* tsp = nullptr;
    if (timeout != absl::InfiniteDuration()) {
      ts = absl::ToTimespec(
          timeout < absl::ZeroDuration() ? absl::ZeroDuration() : timeout);
      tsp = &ts;
    }
    const int max_events = capacity > static_cast<size_t>(INT32_MAX)
                               ? INT32_MAX
                               : static_cast<int>(capacity);
    const int n = kevent(kq_, nullptr, 0, native_.data(), max_events, tsp);
    if (n < 0) {
      if (errno == EINTR) return 0;
      return ErrnoStatus(errno, "kevent(wait)");
    }
    if (multi_oneshot_.load(std::memory_order_relaxed) == 0) {
      for (int i = 0; i < n; ++i) {
        out[i] = Event(UdataToToken(native_[i].udata), ToFlags(native_[i]));
      }
      return static_cast<size_t>(n);
    }
    return ConvertWithOneShotGroups(out, n);
  }

 private:
  static absl::StatusOr<uint8_t> ToFilters(Token token, Interest interest,
                                           const char* what) {
    if (sizeof(Udata) < sizeof(uint64_t) &&
        token.value() > static_cast<uint64_t>(UINTPTR_MAX)) {
      return absl::InvalidArgumentError(std::string(what) +
                                        ": token does not fit in kevent udata");
    }
    uint8_t filters = 0;
    if (interest.is_readable()) filters |= kReadBit;
    if (interest.is_writable()) filters |= kWriteBit;
    if (interest.is_priority()) {
#ifdef MILL_POLL_KQUEUE_HAS_OOB
      filters |= kExceptBit;
#else
      return absl::UnimplementedError(
          std::string(what) +
          ": Interest::Priority() needs EVFILT_EXCEPT/NOTE_OOB");
#endif
    }
    return filters;
  }

  static uint32_t ToFlags(const KeventType& kev) {
    uint32_t flags = 0;
    if (kev.flags & EV_ERROR) flags |= Event::kError;
    const bool eof = (kev.flags & EV_EOF) != 0;
    if (kev.filter == kRead) {
      flags |= Event::kReadable;
      if (eof) flags |= Event::kReadClosed;
      // With EV_EOF, fflags holds the socket error (e.g. ECONNRESET).
      if (eof && kev.fflags != 0) flags |= Event::kError;
    } else if (kev.filter == kWrite) {
      flags |= Event::kWritable;
      if (eof) flags |= Event::kWriteClosed;
      if (eof && kev.fflags != 0) flags |= Event::kError;  // ECONNREFUSED...
    }
#ifdef MILL_POLL_KQUEUE_HAS_OOB
    else if (kev.filter == static_cast<FilterType>(EVFILT_EXCEPT)) {
      if (kev.fflags & NOTE_OOB) flags |= Event::kPriority;
    }
#endif
    return flags;
  }

  // Slow path when some registration is kOneShot with several filters: give
  // one Event per descriptor per batch and disable its other filters, so it
  // stays silent until Reregister, as with EPOLLONESHOT.
  size_t ConvertWithOneShotGroups(Event* out, int n) {
    size_t count = 0;
    disables_.clear();
    std::lock_guard<std::mutex> lock(mu_);
    for (int i = 0; i < n; ++i) {
      const KeventType& kev = native_[i];
      const int fd = static_cast<int>(kev.ident);
      const Token token = UdataToToken(kev.udata);
      const uint32_t flags = ToFlags(kev);
      auto it = regs_.find(fd);
      if (it == regs_.end() || !IsMultiFilterOneShot(it->second)) {
        out_fds_[count] = fd;
        out[count++] = Event(token, flags);
        continue;
      }
      size_t j = 0;
      while (j < count && !(out_fds_[j] == fd && out[j].token() == token)) ++j;
      if (j < count) {  // second filter of the same descriptor: merge
        out[j] = Event(token, out[j].flags() | flags);
        continue;
      }
      out_fds_[count] = fd;
      out[count++] = Event(token, flags);
      for (const Filter& f : kFilters) {
        if ((it->second.filters & f.bit) != 0 && f.filter != kev.filter) {
          disables_.push_back(MakeKevent(fd, f, EV_DISABLE, token));
        }
      }
    }
    if (!disables_.empty()) {
      // Errors are irrelevant here (e.g. the knote was just deleted).
      for (KeventType& kev : disables_) {
        int ignored;
        Apply(&kev, 1, &ignored);
      }
    }
    return count;
  }

  // Applies `n` changes; errors[i] receives change i's errno (0 = applied).
  void Apply(KeventType* changes, int n, int* errors) {
#ifdef EV_RECEIPT
    // EV_RECEIPT: every change comes back with EV_ERROR set and its errno
    // (0 on success) in data, and no pending events are drained because the
    // output has exactly n slots.
    KeventType results[2 * kNumFilters];
    bool done = n <= 2 * kNumFilters;
    if (done) {
      for (int i = 0; i < n; ++i) {
        changes[i].flags =
            static_cast<FlagsType>(changes[i].flags | EV_RECEIPT);
        errors[i] = 0;
      }
      const timespec zero = {0, 0};
      const int r = kevent(kq_, changes, n, results, n, &zero);
      if (r < 0) {
        done = false;  // e.g. EINTR: fall back to one change at a time
      } else {
        for (int k = 0; k < r; ++k) {
          if ((results[k].flags & EV_ERROR) == 0 || results[k].data == 0) {
            continue;
          }
          for (int i = 0; i < n; ++i) {
            if (changes[i].filter == results[k].filter &&
                changes[i].ident == results[k].ident) {
              errors[i] = static_cast<int>(results[k].data);
            }
          }
        }
      }
      for (int i = 0; i < n; ++i) {
        changes[i].flags =
            static_cast<FlagsType>(changes[i].flags & ~EV_RECEIPT);
      }
      if (done) return;
    }
#endif
    // One change per call: with no room for receipts, a failing change makes
    // kevent return -1 with its errno.
    const timespec zero = {0, 0};
    for (int i = 0; i < n; ++i) {
      int r;
      do {
        r = kevent(kq_, &changes[i], 1, nullptr, 0, &zero);
      } while (r < 0 && errno == EINTR);
      errors[i] = r < 0 ? errno : 0;
    }
  }

  const int kq_;

  std::mutex mu_;
  absl::flat_hash_map<int, Registration> regs_;  // guarded by mu_
  // Registrations for which IsMultiFilterOneShot(); read without mu_ to skip
  // the slow path (a stale read only delays disabling to the next batch).
  std::atomic<int> multi_oneshot_{0};

  // Owned by the polling thread; reused across Poll calls.
  std::vector<KeventType> native_;
  std::vector<int> out_fds_;
  std::vector<KeventType> disables_;
};

}  // namespace

bool KqueueBackendCompiled() { return true; }

absl::StatusOr<std::unique_ptr<Backend>> NewKqueueBackend() {
  const int kq = kqueue();
  if (kq < 0) return ErrnoStatus(errno, "kqueue");
  const int fdfl = fcntl(kq, F_GETFD);
  if (fdfl < 0 || fcntl(kq, F_SETFD, fdfl | FD_CLOEXEC) < 0) {
    const int err = errno;
    close(kq);
    return ErrnoStatus(err, "fcntl(kqueue, FD_CLOEXEC)");
  }
  return std::unique_ptr<Backend>(new KqueueBackend(kq));
}

}  // namespace poll_internal
}  // namespace mill

#endif  // MILL_POLL_KQUEUE_AVAILABLE
