// LoopImpl: construction and destruction, Stop, stats, exception reports and
// the pools.
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "objectpool/buffer_pool.h"
#include "reactor/internal/io_choice.h"
#include "reactor/internal/loop_impl.h"
#include "reactor/internal/source.h"
#include "threadpool/thread_pool.h"

namespace mill {
namespace reactor_internal {
namespace {

BufferPoolOptions BufferOptions(const EventLoopOptions& options) {
  BufferPoolOptions buffer_options;
  buffer_options.buffer_size = options.buffer_size;
  buffer_options.max_idle = options.max_idle_buffers;
  return buffer_options;
}

}  // namespace

LoopImpl::LoopImpl(EventLoopOptions options, int workers, int polling_threads)
    : options_(std::move(options)),
      workers_(workers),
      polling_threads_(polling_threads),
      standby_enabled_(workers > polling_threads),
      buffers_(BufferOptions(options_)),
      wheel_(std::chrono::steady_clock::now()) {
  MutexLock lock(&roles_mu_);
  set_owner_.assign(polling_threads_, -1);
  thread_set_.assign(workers_, -1);
}

absl::Status LoopImpl::CreatePollSets(PollerBackend backend) {
  sets_.clear();
  for (int i = 0; i < polling_threads_; ++i) {
    auto set = std::make_unique<PollSet>();
    absl::StatusOr<std::unique_ptr<Poller>> poller = Poller::Create(backend);
    if (!poller.ok()) return poller.status();
    set->poller = std::move(*poller);
    absl::StatusOr<std::unique_ptr<Waker>> waker =
        Waker::Create(*set->poller, kWakerToken);
    if (!waker.ok()) return waker.status();
    set->waker = std::move(*waker);
    sets_.push_back(std::move(set));
  }
  backend_ = backend;
  receive_ahead_ = ReceiveAheadWanted();
  for (const std::unique_ptr<PollSet>& set : sets_) {
    if (!receive_ahead_) break;
    // Unimplemented where the backend or the kernel cannot: plain reads.
    receive_ahead_ = poll_internal::PollerAccess::BackendOf(*set->poller)
                         .PrepareReceiveAhead()
                         .ok();
  }
  return absl::OkStatus();
}

absl::Status LoopImpl::Init() {
  absl::StatusOr<IoChoice> choice = ChooseIo(options_);
  if (!choice.ok()) return choice.status();
  absl::Status status = CreatePollSets(choice->backend);
  if (!status.ok() && choice->fallback.has_value()) {
    // kAuto: io_uring refused (by the first ring or a later one).
    ReportIoUringFallback(status);
    io_uring_fallback_ = true;
    status = CreatePollSets(*choice->fallback);
  } else if (!status.ok() && choice->backend == PollerBackend::kIoUring) {
    return absl::Status(
        status.code(),
        absl::StrCat("EventLoop: io_uring cannot be used here (ask for "
                     "IoEngine::kAuto to fall back to epoll): ",
                     status.message()));
  }
  if (!status.ok()) return status;
  for (int i = 0; i < workers_; ++i) {
    threads_.push_back(
        std::make_unique<LoopThread>(i, options_.events_capacity));
  }
  // Helpers start now, so that a failure is reported here, and wait for
  // Run(); thread 0 is the one that will call Run().
  for (int i = 1; i < workers_; ++i) {
    try {
      threads_[i]->thread = std::thread(&LoopImpl::HelperMain, this, i);
    } catch (const std::system_error& e) {
      return absl::ResourceExhaustedError(
          absl::StrCat("EventLoop: cannot start worker thread: ", e.what()));
    }
  }
  return absl::OkStatus();
}

LoopImpl::~LoopImpl() {
  Stop();
  { MutexLock lock(&roles_mu_); }
  roles_cv_.NotifyAll();
  for (auto& thread : threads_) {
    if (thread->thread.joinable()) thread->thread.join();
  }
  if (compute_ != nullptr) compute_->Shutdown();
}

void LoopImpl::Stop() {
  // Async-signal-safe: an atomic store and a write(2) per poller. A loop
  // whose Init() failed may lack some pollers or wakers.
  stop_.store(true, std::memory_order_seq_cst);
  for (const std::unique_ptr<PollSet>& set : sets_) {
    if (set->waker != nullptr) (void)set->waker->Wake();
  }
}

ReleaseStripe& ReleaseStripeFor(const Source* source) {
  static ReleaseStripe stripes[64];
  const auto bits = reinterpret_cast<uintptr_t>(source);
  return stripes[(bits >> 6) % 64];
}

void LoopImpl::ReportException(Token token, const std::exception_ptr& error) {
  handler_exceptions_.fetch_add(1, std::memory_order_relaxed);
  if (options_.on_handler_exception) {
    try {
      options_.on_handler_exception(token, error);
    } catch (...) {
      // A throwing reporter must not take the thread down either.
    }
    return;
  }
  std::string what;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "non-standard exception";
  }
  std::fprintf(stderr, "mill-io: handler for token %llu threw: %s\n",
               static_cast<unsigned long long>(token.value()), what.c_str());
}

ThreadPool& LoopImpl::compute_pool() {
  std::call_once(compute_once_, [this] {
    ThreadPoolOptions pool_options;
    pool_options.workers = options_.compute_workers;
    pool_options.name_prefix = "mill-compute-";
    compute_ = std::make_unique<ThreadPool>(pool_options);
  });
  return *compute_;
}

EventLoop::Stats LoopImpl::stats() const {
  EventLoop::Stats stats;
  for (const std::unique_ptr<LoopThread>& thread : threads_) {
    stats.events_dispatched +=
        thread->events_dispatched.load(std::memory_order_relaxed);
    stats.stale_events += thread->stale_events.load(std::memory_order_relaxed);
    stats.polls += thread->polls.load(std::memory_order_relaxed);
  }
  stats.handler_exceptions =
      handler_exceptions_.load(std::memory_order_relaxed);
  stats.rearm_failures = rearm_failures_.load(std::memory_order_relaxed);
  stats.registered = sources_.size();
  stats.takeovers = takeovers_.load(std::memory_order_relaxed);
  stats.backend = backend_;
  stats.io_uring_fallback = io_uring_fallback_;
  return stats;
}

}  // namespace reactor_internal
}  // namespace mill
