// Linux backend: io_uring (liburing 2.3), readiness through poll requests,
// and receive-ahead for stream sockets through multishot receives.
//
// Each registration that wants reports has one IORING_OP_POLL_ADD in the
// kernel. A completion is a report; level-triggered registrations get a new
// poll request at the next Poll, which the kernel checks at once (it
// completes inline while still ready), so kLevel behaves like epoll's level
// mode and kOneShot simply is not re-armed until Reregister. A completion
// with only conditions that were not asked for is replaced by a multishot
// request, which waits for the next wake-up (see Harvest). Interest
// changes cancel the request in flight (POLL_REMOVE) and add a new one; a
// per-descriptor sequence number in each request's user_data makes late
// completions of replaced requests recognisable, so they are dropped.
//
// One system call per Poll: every change made since the last one is written
// as submission entries and submitted together with the wait
// (io_uring_submit_and_wait_timeout with IORING_FEAT_EXT_ARG).
//
// Threads. Register, Reregister and Deregister (any thread) edit the table
// under mu_ and queue the descriptor; the next Poll turns the queue into
// submissions. A change made while a Poll is in progress writes an eventfd
// whose read is always pending on the ring, so a blocked wait returns and
// the next one applies it. Deregister removes the request itself and
// returns once the kernel has let go of the file (RemoveRequest). A thread
// that polled hands its requests back as it exits (HandBack). Only threads
// that poll ever submit, and rings are created on a short-lived thread: the
// kernel interrupts every live creator and submitter of a ring once when
// the ring is closed (EINTR for a blocking call with a timeout), which must
// not hit an application's threads.
//
// Why not IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN: with
// them a removal (a cancellation) completes only when the one submitter
// thread waits on the ring, and a removal must take effect even when that
// thread does not poll again (a stopped loop whose connections are closed
// afterwards: their peers must see the FIN). For the same reason no
// IORING_SETUP_COOP_TASKRUN: the removal completes in task work of the
// thread that added the poll, which must run even while that thread sleeps
// outside the ring.
//
// A poll request holds a reference to the descriptor's file: a descriptor
// closed without Deregister stays open in the kernel (a socket sends no FIN)
// until it is deregistered, which the Poller contract requires anyway.
//
// Receive-ahead (StartReceiveAhead, for //net's connections): a stream's
// readable condition comes from a multishot receive into the ring's
// provided buffers (uring_provided_buffers.h) instead of a poll request, so
// a message costs no recv(2) and no re-arm. Received buffers stay in place
// for the reader (Receive copies them out and gives them back) while the
// stream is reported; a stream that is not (disarmed, reading paused) has
// them copied to its own memory at the next Poll, so streams that do not
// read never hold the shared ring. At kStreamCap bytes held the receive is
// cancelled, and resumed once the reader took some: a peer can make a
// stream hold no more than that plus the socket's buffers (and, when a
// cancellation misses a receive, what an empty ring stops: parked_). A
// receive that finds the ring empty ends with ENOBUFS and waits (starved_)
// for a buffer to come back; the kernel keeps the bytes in the socket
// meanwhile, so nothing is dropped. Deregister cancels the receive like a
// poll request.
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/errno_status.h"
#include "base/mutex.h"
#include "poll/internal/backend.h"
#include "poll/internal/poll_mask.h"
#include "poll/internal/uring_provided_buffers.h"

namespace mill {
namespace poll_internal {
namespace {

// Set by the test hook (and MILL_IO_URING_SETUP_ERROR, read once): the errno
// that ring setup fails with instead of calling the kernel.
std::atomic<int> forced_setup_error{-1};

int ForcedSetupError() {
  int err = forced_setup_error.load(std::memory_order_acquire);
  if (err >= 0) return err;
  err = 0;
  // NOLINTNEXTLINE(concurrency-mt-unsafe): read once; nothing here sets it
  if (const char* env = std::getenv("MILL_IO_URING_SETUP_ERROR")) {
    err = std::atoi(env);
    if (err < 0) err = 0;
  }
  int expected = -1;
  forced_setup_error.compare_exchange_strong(expected, err,
                                             std::memory_order_acq_rel);
  return forced_setup_error.load(std::memory_order_acquire);
}

// Submission queue entries per ring; a Poll with more changes submits in
// chunks. The completion queue is larger: every registration may complete
// in one iteration, and IORING_FEAT_NODROP keeps what does not fit.
constexpr unsigned kSqEntries = 256;
constexpr unsigned kCqEntries = 4096;

// How long a Deregister waits for the kernel to let go of a descriptor's
// file (normally microseconds; a scheduler tick when the submitting thread
// has exited). Past it the removal completes on its own, later.
constexpr std::chrono::seconds kRemovalPatience{2};

// user_data: (sequence << 32) | fd for poll requests, with bit 63 set for
// receive requests and bits 63 and 62 for the cancellation of a receive
// (sequences have 30 bits); the two values below (fd 0xffffffff /
// 0xfffffffe, never a real descriptor) for the rest.
constexpr uint64_t kWakeTag = ~uint64_t{0};
constexpr uint64_t kIgnoreTag = ~uint64_t{0} - 1;
constexpr uint32_t kSeqMask = 0x3fffffff;
constexpr uint64_t kReceiveBit = uint64_t{1} << 63;
constexpr uint64_t kCancelBit = uint64_t{1} << 62;

uint64_t PollTag(int fd, uint32_t seq) {
  return (uint64_t{seq} << 32) | static_cast<uint32_t>(fd);
}
uint64_t ReceiveTag(int fd, uint32_t seq) {
  return kReceiveBit | PollTag(fd, seq);
}
uint32_t NextSeq(uint32_t seq) {
  seq = (seq + 1) & kSeqMask;
  return seq == 0 ? 1 : seq;
}

// Receive-ahead (StartReceiveAhead). The ring's provided buffers: one group
// per ring, filled by multishot receives; 4 KiB each (a 4 KiB message per
// buffer). 64 at first (256 KiB), doubled whenever a receive finds none
// free, up to 1024 (a thousand connections' messages in flight at once);
// beyond, receives wait for buffers to come back.
constexpr uint16_t kBufferGroup = 0;
constexpr unsigned kBufferCount = 1024;
constexpr unsigned kInitialBuffers = 64;
constexpr size_t kBufferSize = 4096;
// Received buffers a stream keeps in place for its reader; more, or any
// held while nobody is reporting the stream (reading paused, a handler
// busy), are copied to the stream's own memory and recycled at once, so
// streams that do not read cannot hold the shared ring.
constexpr int kPlacedChunks = 4;
// Bytes a stream may hold before its receive is cancelled (resumed when
// the reader took some): with the socket's own buffer, what a peer can
// make a stream hold that nobody reads.
constexpr size_t kStreamCap = size_t{64} * 1024;

// The operations this backend submits; a kernel without one of them is
// "missing a feature" and the caller falls back to epoll.
constexpr int kRequiredOps[] = {IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE,
                                IORING_OP_READ};
// And for receive-ahead (a kernel without them keeps plain reads).
constexpr int kReceiveOps[] = {IORING_OP_RECV, IORING_OP_ASYNC_CANCEL};

// Creates a ring with a large completion queue.
absl::Status SetupRing(io_uring* ring) {
  const int forced = ForcedSetupError();
  if (forced != 0) {
    return ErrnoStatus(forced, "io_uring_setup (forced by a test)");
  }
  io_uring_params params;
  std::memset(&params, 0, sizeof(params));
  // SUBMIT_ALL (5.18): an entry that fails (a poll of a descriptor closed
  // meanwhile) does not stop the ones after it; without it they would stay
  // queued (see Poll).
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
  params.cq_entries = kCqEntries;
  int r = io_uring_queue_init_params(kSqEntries, ring, &params);
  if (r == -EINVAL) {
    std::memset(&params, 0, sizeof(params));
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = kCqEntries;
    r = io_uring_queue_init_params(kSqEntries, ring, &params);
  }
  if (r < 0) return ErrnoStatus(-r, "io_uring_setup");
  // RSRC_TAGS stands for Linux 5.13, which has multishot poll requests.
  const uint32_t needed =
      IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG | IORING_FEAT_RSRC_TAGS;
  std::string missing;
  if ((params.features & needed) != needed) {
    missing = "multishot poll requests (Linux 5.13)";
  } else if (io_uring_probe* probe = io_uring_get_probe_ring(ring)) {
    for (int op : kRequiredOps) {
      if (!io_uring_opcode_supported(probe, op)) {
        missing = absl::StrCat("opcode ", op);
        break;
      }
    }
    io_uring_free_probe(probe);
  } else {
    missing = "IORING_REGISTER_PROBE (Linux 5.6)";
  }
  if (!missing.empty()) {
    io_uring_queue_exit(ring);
    return absl::UnimplementedError(
        absl::StrCat("io_uring: this kernel lacks ", missing));
  }
  return absl::OkStatus();
}

// A number for the calling thread, unique in the process: who submitted a
// request (see HandBack).
uint32_t CurrentThreadNumber() {
  static std::atomic<uint32_t> next{1};
  thread_local const uint32_t number =
      next.fetch_add(1, std::memory_order_relaxed);
  return number;
}

class UringBackend;

// How an exiting thread reaches a backend that may be gone by then.
struct BackendLink {
  Mutex mu;
  UringBackend* backend ABSL_GUARDED_BY(mu) = nullptr;
};

// The backends the calling thread has submitted requests to. When the
// thread exits, each gets its requests back (UringBackend::HandBack).
class ThreadSubmissions {
 public:
  ThreadSubmissions() = default;
  ThreadSubmissions(const ThreadSubmissions&) = delete;
  ThreadSubmissions& operator=(const ThreadSubmissions&) = delete;
  ~ThreadSubmissions();

  void Note(const std::shared_ptr<BackendLink>& link) {
    links_.erase(std::remove_if(links_.begin(), links_.end(),
                                [](const std::weak_ptr<BackendLink>& l) {
                                  return l.expired();
                                }),
                 links_.end());
    for (const std::weak_ptr<BackendLink>& l : links_) {
      if (!l.owner_before(link) && !link.owner_before(l)) return;
    }
    links_.push_back(link);
  }

 private:
  std::vector<std::weak_ptr<BackendLink>> links_;
};

thread_local ThreadSubmissions thread_submissions;

class UringBackend final : public Backend {
 public:
  UringBackend(io_uring ring, int wake_fd)
      : ring_(ring), wake_fd_(wake_fd), link_(std::make_shared<BackendLink>()) {
    MutexLock lock(&link_->mu);
    link_->backend = this;
  }

  ~UringBackend() override {
    {
      MutexLock lock(&link_->mu);  // waits for an exiting thread's HandBack
      link_->backend = nullptr;
    }
    {
      MutexLock lock(&mu_);
      buffers_.reset();  // unregistered before the ring goes
    }
    io_uring_queue_exit(&ring_);
    close(wake_fd_);
  }

  // Called as thread `thread`, which submitted to this ring, exits. Its
  // requests are cancelled (from the submitter itself, so they complete
  // before the call returns) and re-added by the next Poll, whichever
  // thread runs it. Otherwise they would complete, and let go of their
  // files, only through a kernel worker a scheduler tick later: every
  // Deregister after a pool-mode loop's threads are gone would wait that
  // long (200 of them took 1.7 s), and a wake-up of such a request would
  // be a tick late too.
  void HandBack(uint32_t thread) {
    MutexLock lock(&mu_);
    bool handed_back = false;
    for (size_t fd = 0; fd < regs_.size(); ++fd) {
      Reg& reg = regs_[fd];
      if (!reg.in_kernel || reg.submitter != thread) continue;
      // This thread's Polls are over, so the entry was submitted.
      (void)SyncCancel(PollTag(static_cast<int>(fd), reg.seq));
      reg.in_kernel = false;  // its completion is dropped
      if (reg.registered && reg.armed && !reg.queued) {
        reg.queued = true;
        changed_.push_back(static_cast<int>(fd));
      }
      handed_back = true;
    }
    for (size_t fd = 0; fd < regs_.size(); ++fd) {
      Stream* stream = regs_[fd].stream.get();
      if (stream == nullptr || !stream->receiving ||
          stream->submitter != thread) {
        continue;
      }
      // Bytes it delivered before are kept (they belong to the stream,
      // whichever of its requests brought them); the next Poll adds a new
      // receive.
      (void)SyncCancel(ReceiveTag(static_cast<int>(fd), regs_[fd].recv_seq));
      stream->receiving = false;
      stream->cancelling = false;
      Changed(static_cast<int>(fd), regs_[fd]);
      handed_back = true;
    }
    if (wake_armed_ && wake_submitter_ == thread) {
      // Its cancelled completion clears wake_armed_ when read.
      (void)SyncCancel(kWakeTag);
      handed_back = true;
    }
    if (!handed_back) return;
    if (waiting_) {
      WakeAPoll();  // that Poll reads the completions and re-adds
    } else if (!draining_) {
      Drain();
    }
  }

  absl::Status Register(int fd, Token token, Interest interest,
                        Trigger trigger) override {
    static constexpr char kWhat[] = "io_uring backend: register";
    if (absl::Status s = CheckPollableFd(fd, kWhat); !s.ok()) return s;
    MutexLock lock(&mu_);
    if (static_cast<size_t>(fd) >= regs_.size()) regs_.resize(fd + 1);
    Reg& reg = regs_[fd];
    if (reg.registered) return ErrnoStatus(EEXIST, kWhat);
    reg.registered = true;
    Set(fd, reg, token, interest, trigger);
    return absl::OkStatus();
  }

  absl::Status Reregister(int fd, Token token, Interest interest,
                          Trigger trigger) override {
    static constexpr char kWhat[] = "io_uring backend: reregister";
    if (absl::Status s = CheckPollableFd(fd, kWhat); !s.ok()) return s;
    MutexLock lock(&mu_);
    if (static_cast<size_t>(fd) >= regs_.size() || !regs_[fd].registered) {
      return ErrnoStatus(ENOENT, kWhat);
    }
    Set(fd, regs_[fd], token, interest, trigger);
    return absl::OkStatus();
  }

  absl::Status Deregister(int fd) override {
    static constexpr char kWhat[] = "io_uring backend: deregister";
    const bool closed = fcntl(fd, F_GETFD) < 0 && errno == EBADF;
    MutexLock lock(&mu_);
    const bool found =
        static_cast<size_t>(fd) < regs_.size() && regs_[fd].registered;
    if (found) {
      Reg& reg = regs_[fd];
      reg.registered = false;
      reg.armed = false;
      // Nothing for a Poll to do (a queued add finds it unwanted): no
      // Changed, so a blocked Poll is not woken for nothing.
      if (reg.in_kernel) {
        // It watches this file, not a later one with the same number
        // that may be registered before the next Poll: removed by tag.
        reg.in_kernel = false;
        RemoveRequest(PollTag(fd, reg.seq), reg.sqe_end);
      }
      // (RemoveRequest may have let go of mu_: regs_ may have grown.)
      if (regs_[fd].stream != nullptr) EndStream(fd);
    }
    // Like epoll: a closed descriptor is EBADF (its registration is gone
    // either way); an open one that was never registered is ENOENT.
    if (closed) return ErrnoStatus(EBADF, kWhat);
    if (!found) return ErrnoStatus(ENOENT, kWhat);
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<WakeChannel>> NewWakeChannel(
      Token token) override {
    return NewWakeupFdChannel(*this, token);
  }

  absl::StatusOr<size_t> Poll(Event* out, size_t capacity,
                              absl::Duration timeout) override {
    {
      MutexLock lock(&mu_);
      // A Deregister reading completions itself (see RemoveRequest) is
      // done within a scheduler tick; its reports are in stash_.
      while (draining_) removal_cv_.Wait(&mu_);
      const uint32_t thread = CurrentThreadNumber();
      if (thread != last_submitter_) {
        last_submitter_ = thread;
        thread_submissions.Note(link_);
      }
      if (absl::Status s = ApplyChanges(thread); !s.ok()) return s;
      waiting_ = true;
      if (!stash_.empty() || AnyStreamReportable()) {
        timeout = absl::ZeroDuration();
      }
    }
    int r;
    if (timeout <= absl::ZeroDuration()) {
      r = io_uring_submit_and_get_events(&ring_);
    } else if (timeout == absl::InfiniteDuration()) {
      r = io_uring_submit_and_wait(&ring_, 1);
    } else {
      const int64_t ns = absl::ToInt64Nanoseconds(timeout);
      __kernel_timespec ts;
      ts.tv_sec = ns / 1000000000;
      ts.tv_nsec = ns % 1000000000;
      io_uring_cqe* first = nullptr;
      r = io_uring_submit_and_wait_timeout(&ring_, &first, 1, &ts, nullptr);
    }
    // Whatever the kernel did not take (it stops at a failed entry without
    // SUBMIT_ALL) is submitted by this thread, before others may submit:
    // a request belongs to the thread that submits it, and its completion
    // work interrupts that thread's blocking calls.
    while (io_uring_sq_ready(&ring_) > 0) {
      const int more = io_uring_submit(&ring_);
      if (more <= 0 && more != -EINTR) break;
    }
    MutexLock lock(&mu_);
    waiting_ = false;
    if (removal_waiters_ > 0) removal_cv_.NotifyAll();
    // ETIME: timed out; EINTR: a signal (Poller waits again with the
    // remaining time); EAGAIN/EBUSY: completions are backed up (we read them
    // now, which makes room).
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
      return ErrnoStatus(-r, "io_uring_enter");
    }
    // Reports read by a Deregister come first; they are older.
    const size_t stashed = std::min(capacity, stash_.size());
    std::copy(stash_.begin(), stash_.begin() + stashed, out);
    stash_.erase(stash_.begin(), stash_.begin() + stashed);
    size_t count = stashed + Harvest(out + stashed, capacity - stashed);
    count += ReportStreams(out + count, capacity - count);
    return count;
  }

  absl::Status PrepareReceiveAhead() override {
    MutexLock lock(&mu_);
    return EnsureBuffers();
  }

  absl::Status StartReceiveAhead(int fd) override {
    static constexpr char kWhat[] = "io_uring backend: receive ahead";
    MutexLock lock(&mu_);
    if (static_cast<size_t>(fd) >= regs_.size() || !regs_[fd].registered) {
      return ErrnoStatus(ENOENT, kWhat);
    }
    if (absl::Status s = EnsureBuffers(); !s.ok()) return s;
    Reg& reg = regs_[fd];
    if (reg.stream != nullptr) return absl::OkStatus();
    reg.stream = std::make_unique<Stream>();
    reg.stream->first_seq = NextSeq(reg.recv_seq);
    // The poll request stops watching readable; the receive starts.
    Changed(fd, reg);
    return absl::OkStatus();
  }

  int64_t Receive(int fd, char* out, size_t max, int* error) override {
    MutexLock lock(&mu_);
    Stream* stream = StreamOf(fd);
    if (stream == nullptr) {
      *error = ENOTCONN;
      return -1;
    }
    const size_t taken = Take(*stream, out, max);
    if (taken > 0) {
      if (!stream->receiving && WantsReceive(regs_[fd])) {
        Changed(fd, regs_[fd]);  // it was paused at the cap
      }
      RearmStarved();
      return static_cast<int64_t>(taken);
    }
    if (stream->eof) return 0;
    *error = stream->error != 0 ? stream->error : EAGAIN;
    return -1;
  }

  int PeekReceived(int fd, int* error) override {
    MutexLock lock(&mu_);
    const Stream* stream = StreamOf(fd);
    if (stream == nullptr) {
      *error = ENOTCONN;
      return -1;
    }
    if (!Pending(*stream) && !draining_) {
      // The kernel may have received already while nobody polled (a busy
      // loop): the bytes are in a completion, no longer in the socket.
      // Read them; a Poll in progress is woken for what it now misses.
      Drain();
      if (waiting_ && (!stash_.empty() || AnyStreamReportable())) {
        WakeAPoll();
      }
    }
    if (stream->held > 0) return 1;
    if (stream->eof) return 0;
    *error = stream->error != 0 ? stream->error : EAGAIN;
    return -1;
  }

 private:
  // A received buffer a stream holds in place.
  struct Chunk {
    uint16_t id = 0;
    uint32_t offset = 0;  // bytes of it already taken
    uint32_t length = 0;
  };

  // Receive-ahead state of a descriptor (StartReceiveAhead).
  struct Stream {
    // Receives of this registration have sequences from first_seq on:
    // bytes of any of them belong to it (one handed back on a thread's
    // exit still delivered some before it ended).
    uint32_t first_seq = 0;
    bool receiving = false;   // receive Reg::recv_seq is in the kernel
    bool cancelling = false;  // at the cap: its cancellation is queued
    bool starved = false;     // in starved_: waits for a free buffer
    bool listed = false;      // in ready_
    bool eof = false;
    int error = 0;         // the receive's errno (sticky)
    unsigned sqe_end = 0;  // as Reg::sqe_end, for the receive
    uint32_t submitter = 0;
    size_t held = 0;  // bytes waiting: spilled + placed
    // Oldest first: spilled bytes, then the placed chunks.
    std::string spilled;
    size_t spilled_taken = 0;
    Chunk placed[kPlacedChunks];
    int placed_first = 0;
    int placed_count = 0;
  };

  struct Reg {
    Token token;
    uint32_t mask = 0;         // wanted poll events
    uint32_t kernel_mask = 0;  // events of the request in the kernel
    // Wait for the next wake-up instead of checking at once (see Harvest).
    bool edge = false;
    bool kernel_edge = false;  // the request in the kernel is multishot
    uint32_t seq = 0;          // sequence of the last request added
    Trigger trigger = Trigger::kLevel;
    bool registered = false;
    bool armed = false;      // wants a request in the kernel
    bool in_kernel = false;  // request `seq` is pending in the kernel
    // Submission queue tail just past request `seq`'s entry: the kernel
    // has taken the entry once its head reaches this.
    unsigned sqe_end = 0;
    bool queued = false;     // in changed_
    uint32_t submitter = 0;  // CurrentThreadNumber of the Poll that added it
    uint32_t recv_seq = 0;   // sequence of the last receive added
    std::unique_ptr<Stream> stream;  // receive-ahead, if started
  };

  // The poll bits the kernel request watches: a receive-ahead stream's
  // readable condition comes from its receive, not from a poll.
  static uint32_t PollMaskFor(const Reg& reg) {
    if (reg.stream == nullptr) return reg.mask;
    uint32_t mask = reg.mask & ~static_cast<uint32_t>(POLLIN);
#ifdef POLLRDHUP
    mask &= ~static_cast<uint32_t>(POLLRDHUP);
#endif
    return mask;
  }

  // Whether an armed registration needs a poll request: always (even with
  // no interest, errors and hang-ups are reported), except a stream that
  // only reads, whose receive reports all of them.
  static bool WantsPoll(const Reg& reg) {
    return reg.stream == nullptr || PollMaskFor(reg) != 0;
  }

  void Set(int fd, Reg& reg, Token token, Interest interest, Trigger trigger)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    reg.token = token;
    reg.mask = InterestToPollMask(interest);
    reg.trigger = trigger;
    reg.armed = true;
    reg.edge = false;  // a re-arm checks at once
    // A re-arm of a level registration whose request is pending needs no
    // new request: that one reports as soon as the condition holds.
    const uint32_t poll_mask = PollMaskFor(reg);
    if (!WantsPoll(reg) ? reg.in_kernel
                        : (!reg.in_kernel || reg.kernel_mask != poll_mask ||
                           reg.kernel_edge)) {
      Changed(fd, reg);
    }
    if (reg.stream != nullptr && Pending(*reg.stream) &&
        StreamReportable(reg)) {
      List(fd, *reg.stream);  // received while disarmed: reported at once
      WakeAPoll();
    }
  }

  // Queues `fd` for the next Poll and wakes a blocked one.
  void Changed(int fd, Reg& reg) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!reg.queued) {
      reg.queued = true;
      changed_.push_back(fd);
    }
    WakeAPoll();
  }

  // Makes a Poll in progress return, so that the next applies the queue.
  void WakeAPoll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!waiting_ || wake_signalled_) return;
    wake_signalled_ = true;
    const uint64_t one = 1;
    // EAGAIN only if the counter is saturated: a wakeup is pending anyway.
    (void)!write(wake_fd_, &one, sizeof(one));
  }

  // Removes poll request `tag` (its entry ends at `sqe_end` in the
  // submission queue) and returns once the kernel has let go of its file,
  // so that a close() after Deregister really closes: a stopped loop's
  // connections must still send their FIN, a stopped server's listener
  // must refuse. Three steps, each of which a caller on another thread
  // than the submitter can get wrong:
  //  1. A Poll in progress may not have submitted the entry yet (it
  //     writes entries under mu_ and submits after releasing it): a cancel
  //     now would find nothing and the request would arrive later. Wake
  //     that Poll and wait until the kernel has taken the entry.
  //  2. Cancel it with IORING_REGISTER_SYNC_CANCEL (Linux 6.0), which does
  //     not make this thread a submitter of the ring (submitters are
  //     interrupted when the ring is closed).
  //  3. The cancelled request completes, and drops the file, in task work
  //     of the thread that submitted it: at once if that is this thread,
  //     within microseconds if it lives, a scheduler tick later if it has
  //     exited. Wait for its completion: a Poll in progress reads it; with
  //     none, this thread reads completions itself (keeping the reports
  //     for the next Poll).
  // Where a step cannot be done (a kernel before 6.0, a stuck submission)
  // the next Poll removes the request, as before.
  void RemoveRequest(uint64_t tag, unsigned sqe_end)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const auto deadline = std::chrono::steady_clock::now() + kRemovalPatience;
    while (!EntryTaken(sqe_end)) {
      if (!waiting_ || !WaitForPollOrDrain(deadline)) {
        QueueRemoval(tag);  // the next Poll submits the entry, then this
        return;
      }
    }
    if (sync_cancel_missing_) {
      QueueRemoval(tag);
      return;
    }
    const int r = SyncCancel(tag);
    // ENOENT: it completed already; the completion is read or queued.
    if (r == -ENOENT) return;
    if (r < 0) {
      if (r == -EINVAL) sync_cancel_missing_ = true;
      QueueRemoval(tag);
      return;
    }
    awaited_.push_back(tag);
    while (Awaited(tag)) {
      if (waiting_ || draining_) {
        if (!WaitForPollOrDrain(deadline)) break;
        continue;
      }
      Drain();
      if (!Awaited(tag)) break;
      draining_ = true;
      mu_.Unlock();
      const bool in_time = WaitForACompletion(deadline);
      mu_.Lock();
      draining_ = false;
      removal_cv_.NotifyAll();
      if (!in_time) break;
    }
    // Past the deadline (a submitter stuck in the kernel): the completion
    // is dropped by tag whenever it comes.
    awaited_.erase(std::remove(awaited_.begin(), awaited_.end(), tag),
                   awaited_.end());
  }

  // IORING_REGISTER_SYNC_CANCEL of the request with user_data `tag`: 0,
  // -ENOENT (not in the kernel), or another negative errno.
  int SyncCancel(uint64_t tag) {
    io_uring_sync_cancel_reg cancel;
    std::memset(&cancel, 0, sizeof(cancel));
    cancel.addr = tag;
    cancel.fd = -1;
    cancel.timeout.tv_sec = -1;  // no limit: a poll is cancelled at once
    cancel.timeout.tv_nsec = -1;
    return io_uring_register_sync_cancel(&ring_, &cancel);
  }

  // A removal for the next Poll to submit.
  void QueueRemoval(uint64_t tag) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    removals_.push_back(tag);
    WakeAPoll();
  }

  // Whether the kernel has taken the submission entries before `sqe_end`.
  bool EntryTaken(unsigned sqe_end) const {
    const unsigned head = io_uring_smp_load_acquire(ring_.sq.khead);
    return static_cast<int>(head - sqe_end) >= 0;
  }

  bool Awaited(uint64_t tag) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::find(awaited_.begin(), awaited_.end(), tag) != awaited_.end();
  }

  // Waits until a Poll in progress returns (waking it) or a draining
  // Deregister is done. False at the deadline.
  bool WaitForPollOrDrain(std::chrono::steady_clock::time_point deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    WakeAPoll();
    ++removal_waiters_;
    removal_cv_.WaitUntil(&mu_, deadline);
    --removal_waiters_;
    return std::chrono::steady_clock::now() < deadline;
  }

  // Reads every completion into stash_ (the next Poll returns the reports).
  void Drain() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Event batch[64];
    for (;;) {
      const size_t n = Harvest(batch, 64);
      stash_.insert(stash_.end(), batch, batch + n);
      if (n < 64) return;
    }
  }

  // Blocks until a completion is queued, without submitting (so this
  // thread does not become a submitter). False at the deadline. No Poll
  // runs meanwhile (draining_ holds them off), so none can take the
  // completion away from this wait.
  bool WaitForACompletion(std::chrono::steady_clock::time_point deadline) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= decltype(left)::zero()) return false;
    const int64_t ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    __kernel_timespec ts;
    ts.tv_sec = ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    io_uring_getevents_arg arg;
    std::memset(&arg, 0, sizeof(arg));
    arg.sigmask_sz = _NSIG / 8;
    arg.ts = reinterpret_cast<uint64_t>(&ts);
    const int r = io_uring_enter2(
        ring_.ring_fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
        reinterpret_cast<sigset_t*>(&arg), sizeof(arg));
    return r >= 0 || r == -EINTR || r == -EAGAIN || r == -EBUSY;
  }

  // A free submission entry; submits the full queue first if needed.
  absl::StatusOr<io_uring_sqe*> Sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe != nullptr) return sqe;
    const int r = io_uring_submit(&ring_);
    if (r < 0 && r != -EAGAIN && r != -EBUSY) {
      return ErrnoStatus(-r, "io_uring_submit");
    }
    sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      return absl::ResourceExhaustedError(
          "io_uring backend: submission queue stays full");
    }
    return sqe;
  }

  // Turns the queued changes into submission entries (not yet submitted).
  // `thread` (CurrentThreadNumber) submits them.
  absl::Status ApplyChanges(uint32_t thread)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!wake_armed_) {
      absl::StatusOr<io_uring_sqe*> sqe = Sqe();
      if (!sqe.ok()) return sqe.status();
      io_uring_prep_read(*sqe, wake_fd_, &wake_value_, sizeof(wake_value_), 0);
      io_uring_sqe_set_data64(*sqe, kWakeTag);
      wake_armed_ = true;
      wake_submitter_ = thread;
    }
    while (!removals_.empty()) {
      absl::StatusOr<io_uring_sqe*> sqe = Sqe();
      if (!sqe.ok()) return sqe.status();
      const uint64_t tag = removals_.back();
      if ((tag & kReceiveBit) != 0) {
        io_uring_prep_cancel64(*sqe, tag, 0);
      } else {
        io_uring_prep_poll_remove(*sqe, tag);
      }
      io_uring_sqe_set_data64(*sqe, kIgnoreTag);
      removals_.pop_back();
    }
    size_t i = 0;
    for (; i < changed_.size(); ++i) {
      const int fd = changed_[i];
      Reg& reg = regs_[fd];
      const uint32_t poll_mask = PollMaskFor(reg);
      const bool want = reg.registered && reg.armed && WantsPoll(reg);
      if (reg.in_kernel && (!want || reg.kernel_mask != poll_mask ||
                            reg.kernel_edge != reg.edge)) {
        absl::StatusOr<io_uring_sqe*> sqe = Sqe();
        if (!sqe.ok()) break;
        io_uring_prep_poll_remove(*sqe, PollTag(fd, reg.seq));
        io_uring_sqe_set_data64(*sqe, kIgnoreTag);
        reg.in_kernel = false;
      }
      if (want && !reg.in_kernel) {
        absl::StatusOr<io_uring_sqe*> sqe = Sqe();
        if (!sqe.ok()) break;
        reg.seq = NextSeq(reg.seq);
        if (reg.edge) {
          io_uring_prep_poll_multishot(*sqe, fd, poll_mask);
        } else {
          io_uring_prep_poll_add(*sqe, fd, poll_mask);
        }
        io_uring_sqe_set_data64(*sqe, PollTag(fd, reg.seq));
        reg.sqe_end = ring_.sq.sqe_tail;
        reg.submitter = thread;
        reg.in_kernel = true;
        reg.kernel_mask = poll_mask;
        reg.kernel_edge = reg.edge;
      }
      if (reg.stream != nullptr && !ApplyStream(fd, reg, thread)) break;
      reg.queued = false;
    }
    if (i < changed_.size()) {
      // Out of submission entries (another error than a full queue): keep
      // the rest for the next Poll.
      changed_.erase(changed_.begin(), changed_.begin() + i);
      return absl::OkStatus();
    }
    changed_.clear();
    return absl::OkStatus();
  }

  size_t Harvest(Event* out, size_t capacity)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    size_t count = 0;
    unsigned seen = 0;
    unsigned head;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      if (count == capacity) break;
      ++seen;
      const uint64_t tag = io_uring_cqe_get_data64(cqe);
      if (tag == kWakeTag) {
        wake_armed_ = false;
        wake_signalled_ = false;
        continue;
      }
      if (tag == kIgnoreTag) continue;
      if ((cqe->flags & IORING_CQE_F_BUFFER) != 0) buffers_->Taken();
      if (!awaited_.empty() && Awaited(tag)) {
        // A Deregister waits for this cancelled request's end (a multishot
        // one may still deliver before it: dropped).
        if ((cqe->flags & IORING_CQE_F_BUFFER) != 0) {
          Recycle(static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
        }
        if ((cqe->flags & IORING_CQE_F_MORE) == 0) {
          awaited_.erase(std::find(awaited_.begin(), awaited_.end(), tag));
          removal_cv_.NotifyAll();
        }
        continue;
      }
      const int fd = static_cast<int>(static_cast<uint32_t>(tag));
      const uint32_t seq = static_cast<uint32_t>(tag >> 32) & kSeqMask;
      if ((tag & kCancelBit) != 0) {
        // A cap's cancellation that found nothing: a receive that keeps
        // finding data requeues itself, unseen by a cancel. Tried again.
        Stream* stream = StreamOf(fd);
        if (cqe->res == -ENOENT && stream != nullptr && stream->receiving &&
            stream->cancelling && seq == regs_[fd].recv_seq) {
          stream->cancelling = false;
          Changed(fd, regs_[fd]);
        }
        continue;
      }
      if ((tag & kReceiveBit) != 0) {
        HarvestReceive(fd, seq, cqe);
        continue;
      }
      if (static_cast<size_t>(fd) >= regs_.size()) continue;
      Reg& reg = regs_[fd];
      if (!reg.in_kernel || reg.seq != seq) continue;  // replaced
      // A multishot request stays armed while the kernel says "more".
      if ((cqe->flags & IORING_CQE_F_MORE) == 0) reg.in_kernel = false;
      if (!reg.registered || !reg.armed) continue;
      uint32_t revents;
      if (cqe->res >= 0) {
        revents = static_cast<uint32_t>(cqe->res) &
                  (PollMaskFor(reg) | POLLERR | POLLHUP | POLLNVAL);
      } else if (cqe->res == -ECANCELED) {
        revents = 0;  // cancelled by the kernel (not by us): ask again
      } else {
        revents = POLLNVAL;  // EBADF: closed without Deregister, like poll(2)
      }
      const uint32_t flags = PollMaskToEventFlags(revents);
      if (flags == 0) {
        // Only conditions not asked for (the kernel always adds RDHUP,
        // ERR, HUP to a poll request: a writable-only registration of a
        // half-closed socket completes with RDHUP alone). A new check would
        // complete at once again and spin: wait for the next wake-up with
        // a multishot request instead, which ignores such completions.
        reg.edge = true;
        if (!reg.in_kernel) Changed(fd, reg);
        continue;
      }
      out[count++] = Event(reg.token, flags);
      reg.edge = false;
      if (reg.trigger == Trigger::kOneShot) reg.armed = false;
      // Level: a new request re-checks at the next Poll (a multishot one in
      // the kernel is replaced); one-shot: the request is removed.
      Changed(fd, reg);
    }
    io_uring_cq_advance(&ring_, seen);
    return count;
  }

  // --- Receive-ahead. ---------------------------------------------------

  // Creates the ring's provided buffers on first use, after checking the
  // kernel has everything receive-ahead needs (multishot receives: Linux
  // 6.0, which also brought IORING_REGISTER_SYNC_CANCEL).
  absl::Status EnsureBuffers() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (buffers_ != nullptr) return absl::OkStatus();
    if (!receive_unusable_.ok()) return receive_unusable_;
    std::string missing;
    if (io_uring_probe* probe = io_uring_get_probe_ring(&ring_)) {
      for (int op : kReceiveOps) {
        if (!io_uring_opcode_supported(probe, op)) {
          missing = absl::StrCat("opcode ", op);
        }
      }
      io_uring_free_probe(probe);
    }
    if (missing.empty() && SyncCancel(kIgnoreTag - 1) == -EINVAL) {
      missing = "multishot receives (Linux 6.0)";
    }
    if (!missing.empty()) {
      receive_unusable_ = absl::UnimplementedError(
          absl::StrCat("io_uring: this kernel lacks ", missing));
      return receive_unusable_;
    }
    absl::StatusOr<std::unique_ptr<ProvidedBuffers>> buffers =
        ProvidedBuffers::Create(&ring_, kBufferGroup, kBufferCount,
                                kInitialBuffers, kBufferSize);
    if (!buffers.ok()) {
      if (absl::IsUnimplemented(buffers.status())) {
        receive_unusable_ = buffers.status();
      }
      return buffers.status();
    }
    buffers_ = *std::move(buffers);
    return absl::OkStatus();
  }

  Stream* StreamOf(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (fd < 0 || static_cast<size_t>(fd) >= regs_.size()) return nullptr;
    return regs_[fd].stream.get();
  }

  static bool Pending(const Stream& stream) {
    return stream.held > 0 || stream.eof || stream.error != 0;
  }

  static bool StreamReportable(const Reg& reg) {
    return reg.registered && reg.armed && (reg.mask & POLLIN) != 0;
  }

  // Whether `reg`'s stream should have a receive in the kernel (given a
  // free buffer).
  static bool WantsReceive(const Reg& reg) {
    const Stream& stream = *reg.stream;
    return reg.registered && !stream.eof && stream.error == 0 &&
           stream.held < kStreamCap;
  }

  void List(int fd, Stream& stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stream.listed) return;
    stream.listed = true;
    ready_.push_back(fd);
  }

  void Recycle(uint16_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    buffers_->Recycle(id);
  }

  // Streams that ran out of buffers get a new receive at the next Poll.
  void RearmStarved() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (starved_.empty() || buffers_->available() == 0) return;
    for (int fd : starved_) {
      Stream* stream = StreamOf(fd);
      if (stream == nullptr || !stream->starved) continue;
      stream->starved = false;
      Changed(fd, regs_[fd]);
    }
    starved_.clear();
  }

  // Copies the placed chunks into the stream's own memory and gives their
  // buffers back to the ring, unless the stream is past its cap with its
  // receive still running (see Park).
  void Spill(int fd, Stream& stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stream.placed_count == 0) return;
    if (stream.spilled_taken > 0) {
      stream.spilled.erase(0, stream.spilled_taken);
      stream.spilled_taken = 0;
    }
    for (; stream.placed_count > 0; --stream.placed_count) {
      Chunk& chunk = stream.placed[stream.placed_first];
      stream.spilled.append(buffers_->data(chunk.id) + chunk.offset,
                            chunk.length - chunk.offset);
      if (stream.receiving && stream.held >= kStreamCap) {
        parked_.push_back(Parked{fd, chunk.id});
      } else {
        Recycle(chunk.id);
      }
      stream.placed_first = (stream.placed_first + 1) % kPlacedChunks;
    }
    stream.placed_first = 0;
    RearmStarved();
  }

  // Takes up to `max` bytes, oldest first.
  size_t Take(Stream& stream, char* out, size_t max)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    size_t taken = 0;
    if (stream.spilled_taken < stream.spilled.size()) {
      const size_t n =
          std::min(max, stream.spilled.size() - stream.spilled_taken);
      stream.spilled.copy(out, n, stream.spilled_taken);
      stream.spilled_taken += n;
      taken += n;
      if (stream.spilled_taken == stream.spilled.size()) {
        stream.spilled.clear();
        stream.spilled_taken = 0;
        // What a burst left behind is not kept by an idle connection.
        if (stream.spilled.capacity() > kBufferSize) {
          std::string().swap(stream.spilled);
        }
      }
    }
    while (taken < max && stream.placed_count > 0) {
      Chunk& chunk = stream.placed[stream.placed_first];
      const size_t n =
          std::min<size_t>(max - taken, chunk.length - chunk.offset);
      std::memcpy(out + taken, buffers_->data(chunk.id) + chunk.offset, n);
      chunk.offset += static_cast<uint32_t>(n);
      taken += n;
      if (chunk.offset == chunk.length) {
        Recycle(chunk.id);
        stream.placed_first = (stream.placed_first + 1) % kPlacedChunks;
        --stream.placed_count;
      }
    }
    stream.held -= taken;
    return taken;
  }

  // Keeps buffer `id` (`length` bytes) for the stream's reader.
  void Place(int fd, Stream& stream, uint16_t id, uint32_t length)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stream.placed_count == kPlacedChunks) Spill(fd, stream);
    if (stream.placed_count == 0) stream.placed_first = 0;
    Chunk& chunk = stream.placed[(stream.placed_first + stream.placed_count) %
                                 kPlacedChunks];
    chunk.id = id;
    chunk.offset = 0;
    chunk.length = length;
    ++stream.placed_count;
    stream.held += length;
  }

  // ApplyChanges' part for a stream: adds its receive, or cancels it at
  // the cap. False when out of submission entries.
  bool ApplyStream(int fd, Reg& reg, uint32_t thread)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stream& stream = *reg.stream;
    if (stream.receiving) {
      if (stream.cancelling || stream.held < kStreamCap) return true;
      absl::StatusOr<io_uring_sqe*> sqe = Sqe();
      if (!sqe.ok()) return false;
      io_uring_prep_cancel64(*sqe, ReceiveTag(fd, reg.recv_seq), 0);
      io_uring_sqe_set_data64(*sqe, kCancelBit | ReceiveTag(fd, reg.recv_seq));
      stream.cancelling = true;
      return true;
    }
    if (!WantsReceive(reg)) return true;
    if (buffers_->available() == 0 && (!parked_.empty() || !buffers_->Grow())) {
      // Readers give buffers back; a stream nobody reads spills its own
      // (ReportStreams), so the ring does not stay empty.
      if (!stream.starved) {
        stream.starved = true;
        starved_.push_back(fd);
      }
      return true;
    }
    absl::StatusOr<io_uring_sqe*> sqe = Sqe();
    if (!sqe.ok()) return false;
    reg.recv_seq = NextSeq(reg.recv_seq);
    io_uring_prep_recv_multishot(*sqe, fd, nullptr, 0, 0);
    (*sqe)->flags |= IOSQE_BUFFER_SELECT;
    (*sqe)->buf_group = kBufferGroup;
    io_uring_sqe_set_data64(*sqe, ReceiveTag(fd, reg.recv_seq));
    stream.sqe_end = ring_.sq.sqe_tail;
    stream.submitter = thread;
    stream.receiving = true;
    stream.cancelling = false;
    return true;
  }

  // A receive's completion: bytes (in a buffer), the end, or an error.
  void HarvestReceive(int fd, uint32_t seq, const io_uring_cqe* cqe)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const bool has_buffer = (cqe->flags & IORING_CQE_F_BUFFER) != 0;
    const uint16_t id =
        static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    Stream* stream = StreamOf(fd);
    if (stream == nullptr ||
        ((seq - stream->first_seq) & kSeqMask) > (kSeqMask >> 1)) {
      if (has_buffer) Recycle(id);  // an ended registration's
      return;
    }
    Reg& reg = regs_[fd];
    if ((cqe->flags & IORING_CQE_F_MORE) == 0 && seq == reg.recv_seq) {
      stream->receiving = false;
      stream->cancelling = false;
      Unpark(fd);  // stopped: its parked buffers go back
    }
    if (cqe->res > 0 && has_buffer) {
      Place(fd, *stream, id, static_cast<uint32_t>(cqe->res));
      if (stream->held >= kStreamCap && stream->receiving &&
          !stream->cancelling) {
        Changed(fd, reg);  // cancels it (ApplyStream)
      }
    } else {
      if (has_buffer) Recycle(id);
      if (cqe->res == 0) {
        stream->eof = true;
      } else if (cqe->res == -ENOBUFS) {
        // A busy reader, not a stream past its cap (whose receive an empty
        // ring is meant to stop) and not held up by one: more buffers. At
        // the most already, it waits (ApplyStream: starved_).
        if (parked_.empty() && stream->held < kStreamCap) {
          (void)buffers_->Grow();
        }
      } else if (cqe->res != -ECANCELED && cqe->res < 0) {
        stream->error = -cqe->res;
      }
    }
    // Ended without the stream ending (out of buffers, cancelled at the
    // cap, replaced): a new one when it may.
    if (!stream->receiving && WantsReceive(reg)) Changed(fd, reg);
    if (Pending(*stream)) List(fd, *stream);
  }

  bool AnyStreamReportable() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (int fd : ready_) {
      const Reg& reg = regs_[fd];
      if (reg.stream != nullptr && Pending(*reg.stream) &&
          StreamReportable(reg)) {
        return true;
      }
    }
    return false;
  }

  // Reports the streams with something to take, like a level-triggered
  // readable condition (once for kOneShot). A stream that cannot be
  // reported now (disarmed, reading paused) leaves the list, re-entered by
  // the Reregister that arms it, and copies its placed chunks out of the
  // shared ring meanwhile.
  size_t ReportStreams(Event* out, size_t capacity)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    size_t count = 0;
    size_t kept = 0;
    for (size_t i = 0; i < ready_.size(); ++i) {
      const int fd = ready_[i];
      Reg& reg = regs_[fd];
      Stream* stream = reg.stream.get();
      if (stream == nullptr) continue;
      if (!Pending(*stream)) {
        stream->listed = false;
        continue;
      }
      if (!StreamReportable(reg)) {
        if (stream->error != 0 && reg.registered && reg.armed &&
            count < capacity) {
          // Errors are reported whatever the interest, as epoll's EPOLLERR
          // (the receive took the socket's error: the poll request will
          // not see it).
          out[count++] = Event(reg.token, Event::kError | Event::kWriteClosed);
          if (reg.trigger == Trigger::kOneShot) reg.armed = false;
        }
        Spill(fd, *stream);
        stream->listed = false;
        continue;
      }
      if (count == capacity) {
        ready_[kept++] = fd;
        continue;
      }
      uint32_t flags = Event::kReadable;
      if (stream->eof) flags |= Event::kReadClosed;
      out[count++] = Event(reg.token, flags);
      if (reg.trigger == Trigger::kOneShot) {
        reg.armed = false;
        stream->listed = false;
        if (reg.in_kernel) Changed(fd, reg);  // its poll request goes too
        continue;
      }
      ready_[kept++] = fd;
    }
    ready_.resize(kept);
    return count;
  }

  // Deregister's part: removes the receive (waiting for the kernel to let
  // go of the file, like a poll request) and drops what was not taken.
  void EndStream(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (Stream* stream = regs_[fd].stream.get(); stream->receiving) {
      stream->receiving = false;
      // RemoveRequest may let go of mu_ while it waits (regs_ may grow);
      // the stream stays until it is back (its completions are dropped as
      // awaited).
      RemoveRequest(ReceiveTag(fd, regs_[fd].recv_seq), stream->sqe_end);
    }
    Reg& reg = regs_[fd];
    Stream& stream = *reg.stream;
    for (; stream.placed_count > 0; --stream.placed_count) {
      Recycle(stream.placed[stream.placed_first].id);
      stream.placed_first = (stream.placed_first + 1) % kPlacedChunks;
    }
    if (stream.listed) {
      ready_.erase(std::remove(ready_.begin(), ready_.end(), fd), ready_.end());
    }
    if (stream.starved) {
      starved_.erase(std::remove(starved_.begin(), starved_.end(), fd),
                     starved_.end());
    }
    reg.stream.reset();
    Unpark(fd);
    RearmStarved();
  }

  // Gives the buffers parked for `fd` back to the ring.
  void Unpark(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (parked_.empty()) return;
    size_t kept = 0;
    for (const Parked& p : parked_) {
      if (p.fd == fd) {
        Recycle(p.id);
      } else {
        parked_[kept++] = p;
      }
    }
    parked_.resize(kept);
    RearmStarved();
  }

  // Submission entries are written under mu_; a Poll submits them (with
  // its wait) after releasing mu_ but with waiting_ set, which keeps every
  // other submitter away until it is back.
  io_uring ring_;
  const int wake_fd_;        // eventfd: a change for a Poll in progress
  uint64_t wake_value_ = 0;  // the pending read's buffer

  Mutex mu_;
  std::vector<Reg> regs_ ABSL_GUARDED_BY(mu_);  // by descriptor
  std::vector<int> changed_ ABSL_GUARDED_BY(mu_);
  // Tags of deregistered descriptors' requests, to remove at the next Poll.
  std::vector<uint64_t> removals_ ABSL_GUARDED_BY(mu_);
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;         // a Poll is in progress
  bool wake_signalled_ ABSL_GUARDED_BY(mu_) = false;  // wake_fd_ written
  bool wake_armed_ ABSL_GUARDED_BY(mu_) = false;      // its read is pending
  bool sync_cancel_missing_ ABSL_GUARDED_BY(mu_) = false;  // before Linux 6.0
  // Deregister's wait for a removal (RemoveRequest).
  CondVar removal_cv_;
  int removal_waiters_ ABSL_GUARDED_BY(mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;  // a Deregister reads the CQ
  std::vector<uint64_t> awaited_ ABSL_GUARDED_BY(mu_);  // cancelled, not done
  std::vector<Event> stash_ ABSL_GUARDED_BY(mu_);     // reports read by a Drain
  uint32_t wake_submitter_ ABSL_GUARDED_BY(mu_) = 0;  // of the pending read
  uint32_t last_submitter_ ABSL_GUARDED_BY(mu_) = 0;  // noted in its thread
  // Receive-ahead: the ring's provided buffers (created on first use), why
  // the kernel cannot do it (once known), the streams with something to
  // report, those waiting for a free buffer.
  std::unique_ptr<ProvidedBuffers> buffers_ ABSL_GUARDED_BY(mu_);
  absl::Status receive_unusable_ ABSL_GUARDED_BY(mu_);
  std::vector<int> ready_ ABSL_GUARDED_BY(mu_);
  std::vector<int> starved_ ABSL_GUARDED_BY(mu_);
  // Buffers a stream past its cap has spilled while its receive still
  // runs: kept from the ring until that receive stops (Unpark). A
  // cancellation does not always reach a multishot receive (one that keeps
  // finding data requeues itself and is not found: ENOENT); an empty ring
  // always stops it (ENOBUFS). So what all streams past their caps can take
  // beyond them is the ring's size at most, not whatever a peer sends.
  struct Parked {
    int fd;
    uint16_t id;
  };
  std::vector<Parked> parked_ ABSL_GUARDED_BY(mu_);
  const std::shared_ptr<BackendLink> link_;  // see HandBack
};

ThreadSubmissions::~ThreadSubmissions() {
  const uint32_t thread = CurrentThreadNumber();
  for (const std::weak_ptr<BackendLink>& weak : links_) {
    const std::shared_ptr<BackendLink> link = weak.lock();
    if (link == nullptr) continue;
    MutexLock lock(&link->mu);
    if (link->backend != nullptr) link->backend->HandBack(thread);
  }
}

}  // namespace

void SetIoUringSetupErrorForTesting(int error_number) {
  forced_setup_error.store(error_number < 0 ? 0 : error_number,
                           std::memory_order_release);
}

namespace {

// Runs ring setup on a thread of its own that exits right away. The kernel
// remembers every thread that created or submitted to a ring, and when the
// ring is closed it interrupts each of them still alive once (task work
// with TWA_SIGNAL), which fails a blocking call with a timeout (a socket
// with SO_RCVTIMEO, say) with EINTR. Creating here keeps the caller's
// thread, usually the application's, off that list; only the loop threads
// that poll are on it.
absl::Status SetupRingOffThread(io_uring* ring) {
  absl::Status status;
  try {
    std::thread setup([&] { status = SetupRing(ring); });
    setup.join();
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("io_uring: cannot start a setup thread: ", e.what()));
  }
  return status;
}

absl::Status ProbeOnce() {
  io_uring ring;
  if (absl::Status s = SetupRingOffThread(&ring); !s.ok()) return s;
  // Closing it from here is fine: only the exited setup thread used it.
  io_uring_queue_exit(&ring);
  return absl::OkStatus();
}

}  // namespace

absl::Status ProbeIoUring() {
  // A refusal forced by a test is answered without the kernel; the
  // kernel's own answer does not change while the process runs.
  if (const int forced = ForcedSetupError(); forced != 0) {
    return ErrnoStatus(forced, "io_uring_setup (forced by a test)");
  }
  static const absl::Status* const probed = new absl::Status(ProbeOnce());
  return *probed;
}

absl::StatusOr<std::unique_ptr<Backend>> NewIoUringBackend() {
  io_uring ring;
  if (absl::Status s = SetupRingOffThread(&ring); !s.ok()) return s;
  const int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    const int err = errno;
    io_uring_queue_exit(&ring);
    return ErrnoStatus(err, "eventfd");
  }
  return std::unique_ptr<Backend>(new UringBackend(ring, wake_fd));
}

}  // namespace poll_internal
}  // namespace mill
