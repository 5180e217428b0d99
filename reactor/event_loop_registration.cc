// LoopImpl: Register, Reregister, Deregister, and the release of a source
// (the end of a registration, after which an embedded source may serve the
// next one).
//
// The invocation gate (Source::gate) decides who releases: Deregister sets
// kDeregistered, the invoker clears kInvoking (and kSilenced, after
// re-arming); whoever comes second sees the other's bit. If Deregister comes
// second, no invocation runs or can start: it releases at once. Otherwise
// both meet in the source's ReleaseStripe: the invoker sets kFinished, and
// whoever comes second of "invoker finished" and "Deregister parked its
// on_released (or waits)" releases and runs on_released. (The invoker's
// side is FinishInvocation, in event_loop_dispatch.cc.)
#include <cstddef>
#include <memory>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/call_scope.h"
#include "base/mutex.h"
#include "reactor/internal/loop_impl.h"
#include "reactor/internal/source.h"

namespace mill {
namespace reactor_internal {

Source* LoopImpl::FdOwnerLocked(int fd) const {
  if (fd < 0 || static_cast<size_t>(fd) >= fd_owners_.size()) return nullptr;
  return fd_owners_[static_cast<size_t>(fd)];
}

absl::Status LoopImpl::Register(int fd, std::optional<Token> user_token,
                                Interest interest, SourcePtr source,
                                Token* key_out) {
  // `source` is released after the lock on every path: a handler's
  // destructor may call back into the loop.
  MutexLock lock(&tokens_mu_);
  if (user_token.has_value() && user_tokens_.contains(*user_token)) {
    return absl::AlreadyExistsError(absl::StrCat("EventLoop::Register: token ",
                                                 user_token->value(),
                                                 " is already registered"));
  }
  if ((source->gate.load(std::memory_order_acquire) & Source::kReleased) == 0) {
    return absl::FailedPreconditionError(
        "EventLoop::Register: this RegisteredHandler is registered already "
        "(one registration at a time)");
  }
  Source* const owner = FdOwnerLocked(fd);
  // A number already registered goes to the same poller, so that the poller
  // itself refuses a second registration of one open descriptor.
  const uint16_t set =
      owner != nullptr
          ? owner->set
          : static_cast<uint16_t>(next_set_++ %
                                  static_cast<uint32_t>(polling_threads_));
  const Token key(next_generation_++);
  {
    // Released: nothing reads these but a party that will see the new
    // generation in the gate (see Source).
    CompactMutexLock state(&source->state_mu);
    source->key = key;
    source->user_token = user_token.value_or(key);
    source->fd = fd;
    source->set = set;
    source->interest = interest;
    source->fd_lost = false;
    source->gate.store(
        Source::IdleGate(key) |
            (user_token.has_value() ? Source::kNamed : uint64_t{0}),
        std::memory_order_release);
  }
  // Visible to the dispatcher before the poller can report the fd.
  absl::Status status = sources_.Insert(key, source);
  if (!status.ok()) {
    Release(*source);
    return status;
  }
  if (owner != nullptr) {
    // Either the same open descriptor twice (the poller refuses it below)
    // or the earlier registration's fd was closed and the number reused:
    // from now on the earlier one must not touch the descriptor.
    CompactMutexLock state(&owner->state_mu);
    owner->fd_lost = true;
  }
  status = sets_[set]->poller->Register(fd, key, interest, Trigger::kLevel);
  if (!status.ok()) {
    if (owner != nullptr) {
      CompactMutexLock state(&owner->state_mu);
      owner->fd_lost = false;  // it still owns its (open) descriptor
    }
    sources_.Remove(key);  // `source` still holds it
    Release(*source);
    return status;
  }
  if (static_cast<size_t>(fd) >= fd_owners_.size()) {
    fd_owners_.resize(static_cast<size_t>(fd) + 1, nullptr);
  }
  fd_owners_[static_cast<size_t>(fd)] = source.get();
  if (user_token.has_value()) user_tokens_.emplace(*user_token, source);
  *key_out = key;
  return absl::OkStatus();
}

absl::Status LoopImpl::ReregisterNamed(Token token, Interest interest) {
  SourcePtr source;
  Token key;
  {
    MutexLock lock(&tokens_mu_);
    auto it = user_tokens_.find(token);
    if (it == user_tokens_.end()) {
      return absl::NotFoundError(absl::StrCat("EventLoop::Reregister: token ",
                                              token.value(),
                                              " is not registered"));
    }
    source = it->second;
    key = source->key;  // stable while listed
  }
  return ReregisterSource(*source, key, interest);
}

absl::Status LoopImpl::ReregisterUnnamed(Token key, Interest interest) {
  SourcePtr source = sources_.Find(key);
  if (source == nullptr ||
      (source->gate.load(std::memory_order_acquire) & Source::kNamed) != 0) {
    return absl::NotFoundError(
        absl::StrCat("EventLoop::Reregister: registration ", key.value(),
                     " is not registered"));
  }
  return ReregisterSource(*source, key, interest);
}

absl::Status LoopImpl::ReregisterSource(Source& source, Token key,
                                        Interest interest) {
  CompactMutexLock lock(&source.state_mu);
  const uint64_t gate = source.gate.load(std::memory_order_acquire);
  // Another generation: released (and maybe registered again) meanwhile.
  if (!Source::SameGeneration(gate, key) || (gate & Source::kRemoved) != 0) {
    return absl::NotFoundError(
        absl::StrCat("EventLoop::Reregister: registration ", key.value(),
                     " was deregistered"));
  }
  if (source.fd_lost) {
    return absl::FailedPreconditionError(
        absl::StrCat("EventLoop::Reregister: descriptor ", source.fd,
                     " was closed before Deregister and now belongs to a newer "
                     "registration"));
  }
  source.interest = interest;
  // A silenced source (another thread polled it while its handler runs)
  // stays disarmed: the invocation re-arms it with this interest when it
  // returns (kSilenced changes only under state_mu).
  if ((gate & Source::kSilenced) != 0) return absl::OkStatus();
  return sets_[source.set]->poller->Reregister(source.fd, source.key, interest,
                                               Trigger::kLevel);
}

absl::Status LoopImpl::DeregisterNamed(Token token, Task on_released) {
  const bool wait = on_released == nullptr;
  SourcePtr source;
  bool owned_fd = false;
  {
    MutexLock lock(&tokens_mu_);
    auto it = user_tokens_.find(token);
    if (it == user_tokens_.end()) {
      return absl::NotFoundError(absl::StrCat("EventLoop::Deregister: token ",
                                              token.value(),
                                              " is not registered"));
    }
    source = std::move(it->second);
    user_tokens_.erase(it);
    if (FdOwnerLocked(source->fd) == source.get()) {
      fd_owners_[static_cast<size_t>(source->fd)] = nullptr;
      owned_fd = true;
    }
  }
  return DeregisterSource(source, owned_fd, std::move(on_released), wait);
}

absl::Status LoopImpl::DeregisterUnnamed(Token key, Task on_released) {
  const bool wait = on_released == nullptr;
  SourcePtr source;
  bool owned_fd = false;
  {
    MutexLock lock(&tokens_mu_);
    // Listed under `key`, so of that generation: it is released only after
    // being unlisted, and registered again only under tokens_mu_.
    source = sources_.Find(key);
    // Named sources are removed through their token, and a source already
    // being deregistered is not found twice.
    const uint64_t gate =
        source == nullptr ? 0 : source->gate.load(std::memory_order_acquire);
    if (source == nullptr || !Source::SameGeneration(gate, key) ||
        (gate & (Source::kNamed | Source::kRemoved)) != 0) {
      return absl::NotFoundError(
          absl::StrCat("EventLoop::Deregister: registration ", key.value(),
                       " is not registered"));
    }
    // Marked under tokens_mu_, so a concurrent Deregister of the same
    // registration sees it above.
    source->gate.fetch_or(Source::kRemoved, std::memory_order_acq_rel);
    if (FdOwnerLocked(source->fd) == source.get()) {
      fd_owners_[static_cast<size_t>(source->fd)] = nullptr;
      owned_fd = true;
    }
  }
  return DeregisterSource(source, owned_fd, std::move(on_released), wait);
}

absl::Status LoopImpl::DeregisterSource(const SourcePtr& source, bool owned_fd,
                                        Task on_released, bool wait) {
  // Copied: once the release is handed to the invoker, the source may serve
  // a new registration.
  const int fd = source->fd;
  const Token key = source->key;
  absl::Status status;
  bool fd_lost;
  {
    CompactMutexLock lock(&source->state_mu);
    source->gate.fetch_or(Source::kRemoved, std::memory_order_acq_rel);
    fd_lost = source->fd_lost || !owned_fd;
    if (!fd_lost) status = sets_[source->set]->poller->Deregister(fd);
  }
  sources_.Remove(key);

  // The gate: no invocation starts from now on (kRemoved already made sure
  // of it); is one still finishing?
  const uint64_t before =
      source->gate.fetch_or(Source::kDeregistered, std::memory_order_acq_rel);
  if ((before & Source::kBusy) == 0) {
    Release(*source);
    if (on_released) on_released();
  } else {
    // From inside its own handler there is nothing to wait for: the gate
    // stops every later call, and the invocation releases when it returns.
    const bool self = CallScope::Active(kHandlerScope, source.get());
    ReleaseStripe& stripe = ReleaseStripeFor(source.get());
    MutexLock lock(&stripe.mu);
    if ((source->gate.load(std::memory_order_acquire) & Source::kFinished) !=
        0) {
      lock.Unlock();
      Release(*source);
      if (on_released) on_released();
    } else if (self || !wait) {
      stripe.waiting.emplace(source.get(), std::move(on_released));
    } else {
      while ((source->gate.load(std::memory_order_acquire) &
              Source::kFinished) == 0) {
        stripe.cv.Wait(&stripe.mu);
      }
      lock.Unlock();
      Release(*source);
    }
  }
  if (fd_lost) {
    return absl::FailedPreconditionError(absl::StrCat(
        "EventLoop::Deregister: registration removed, but descriptor ", fd,
        " was closed before Deregister and now belongs to a newer "
        "registration, which was left alone"));
  }
  if (!status.ok()) {
    return absl::Status(
        status.code(),
        absl::StrCat("registration removed, but the poller refused (was the "
                     "fd closed before Deregister?): ",
                     status.message()));
  }
  return absl::OkStatus();
}

}  // namespace reactor_internal
}  // namespace mill
