// Value behaviour of Interest, Event, Events and PollerBackend, and the
// backend helpers shared by every platform (timeout rounding, errno mapping).
#include <algorithm>
#include <cerrno>
#include <climits>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "poll/event.h"
#include "poll/interest.h"
#include "poll/internal/backend.h"
#include "poll/poller.h"
#include "poll/token.h"

namespace mill {
namespace {

TEST(InterestTest, NamedConstructorsAndUnion) {
  constexpr Interest r = Interest::Readable();
  constexpr Interest w = Interest::Writable();
  constexpr Interest p = Interest::Priority();
  static_assert(r.is_readable() && !r.is_writable() && !r.is_priority(), "");
  static_assert(!w.is_readable() && w.is_writable() && !w.is_priority(), "");
  static_assert(!p.is_readable() && !p.is_writable() && p.is_priority(), "");
  constexpr Interest rw = r | w;
  static_assert(rw.is_readable() && rw.is_writable() && !rw.is_priority(), "");
  EXPECT_EQ(rw, w | r);
  EXPECT_EQ(r | r, r);
  EXPECT_NE(r, w);
  EXPECT_NE(rw, r);
  Interest all = r;
  all |= w;
  all |= p;
  EXPECT_TRUE(all.is_readable() && all.is_writable() && all.is_priority());
}

TEST(InterestTest, Prints) {
  std::ostringstream os;
  os << (Interest::Readable() | Interest::Priority()) << " "
     << Trigger::kOneShot;
  EXPECT_EQ(os.str(), "Interest(READABLE|PRIORITY) kOneShot");
}

TEST(InterestTest, NoneIsTheEmptySet) {
  const Interest none = Interest::None();
  EXPECT_TRUE(none.is_none());
  EXPECT_FALSE(none.is_readable() || none.is_writable() || none.is_priority());
  EXPECT_FALSE(Interest::Readable().is_none());
  EXPECT_EQ(none | Interest::Writable(), Interest::Writable());
  EXPECT_NE(none, Interest::Priority());
  std::ostringstream os;
  os << none;
  EXPECT_EQ(os.str(), "Interest(NONE)");
}

TEST(EventTest, DefaultIsEmpty) {
  Event e;
  EXPECT_EQ(e.token(), Token(0));
  EXPECT_EQ(e.flags(), 0u);
  EXPECT_FALSE(e.is_readable() || e.is_writable() || e.is_error() ||
               e.is_read_closed() || e.is_write_closed() || e.is_priority());
}

TEST(EventTest, EachFlagMapsToOneAccessor) {
  struct Case {
    uint32_t flag;
    bool (Event::*accessor)() const;
  };
  const Case cases[] = {
      {Event::kReadable, &Event::is_readable},
      {Event::kWritable, &Event::is_writable},
      {Event::kError, &Event::is_error},
      {Event::kReadClosed, &Event::is_read_closed},
      {Event::kWriteClosed, &Event::is_write_closed},
      {Event::kPriority, &Event::is_priority},
  };
  for (const Case& c : cases) {
    const Event e(Token(42), c.flag);
    EXPECT_EQ(e.token(), Token(42));
    for (const Case& other : cases) {
      EXPECT_EQ((e.*other.accessor)(), other.flag == c.flag)
          << "flag " << c.flag << " accessor for " << other.flag;
    }
  }
}

TEST(EventTest, EqualityAndPrinting) {
  const Event a(Token(3), Event::kReadable | Event::kReadClosed);
  EXPECT_EQ(a, Event(Token(3), Event::kReadable | Event::kReadClosed));
  EXPECT_NE(a, Event(Token(4), Event::kReadable | Event::kReadClosed));
  EXPECT_NE(a, Event(Token(3), Event::kReadable));
  std::ostringstream os;
  os << a << " " << Event();
  EXPECT_EQ(os.str(),
            "Event(Token(3), READABLE|READ_CLOSED) Event(Token(0), NONE)");
}

TEST(EventsTest, FixedCapacityBuffer) {
  Events events(3);
  EXPECT_EQ(events.capacity(), 3u);
  EXPECT_EQ(events.size(), 0u);
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(events.begin(), events.end());
  EXPECT_TRUE(events.push_back(Event(Token(1), Event::kReadable)));
  EXPECT_TRUE(events.push_back(Event(Token(2), Event::kWritable)));
  EXPECT_TRUE(events.push_back(Event(Token(3), Event::kError)));
  EXPECT_FALSE(events.push_back(Event(Token(4), Event::kError)));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_FALSE(events.empty());
  std::vector<uint64_t> tokens;
  for (const Event& e : events) tokens.push_back(e.token().value());
  EXPECT_EQ(tokens, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_TRUE(events[1].is_writable());
  events.clear();
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(events.capacity(), 3u);
}

TEST(EventsTest, MoveKeepsContents) {
  Events a(2);
  a.push_back(Event(Token(9), Event::kReadable));
  Events b(std::move(a));
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].token(), Token(9));
  EXPECT_EQ(b.capacity(), 2u);
}

TEST(PollerBackendTest, Names) {
  EXPECT_EQ(PollerBackendName(PollerBackend::kEpoll), "epoll");
  EXPECT_EQ(PollerBackendName(PollerBackend::kKqueue), "kqueue");
  EXPECT_EQ(PollerBackendName(PollerBackend::kPoll), "poll");
  EXPECT_EQ(PollerBackendName(PollerBackend::kIocp), "iocp");
}

// poll(2) is built on every POSIX platform, IOCP alone on Windows.
TEST(PollerBackendTest, DefaultIsFirstAvailableAndPollOrIocpAlwaysBuilt) {
  const std::vector<PollerBackend> backends = Poller::AvailableBackends();
  ASSERT_FALSE(backends.empty());
#if defined(_WIN32)
  EXPECT_EQ(backends, (std::vector<PollerBackend>{PollerBackend::kIocp}));
#else
  EXPECT_EQ(backends.back(), PollerBackend::kPoll);
#endif
#ifdef __linux__
  // io_uring is listed where this process may set up a ring.
  if (poll_internal::ProbeIoUring().ok()) {
    EXPECT_EQ(backends, (std::vector<PollerBackend>{PollerBackend::kEpoll,
                                                    PollerBackend::kIoUring,
                                                    PollerBackend::kPoll}));
  } else {
    EXPECT_EQ(backends, (std::vector<PollerBackend>{PollerBackend::kEpoll,
                                                    PollerBackend::kPoll}));
  }
#endif
  auto poller = Poller::Create();
  ASSERT_TRUE(poller.ok()) << poller.status();
  EXPECT_EQ((*poller)->backend(), backends.front());
}

TEST(PollerBackendTest, UnbuiltBackendIsUnimplemented) {
  const std::vector<PollerBackend> built = Poller::AvailableBackends();
  for (PollerBackend b : {PollerBackend::kEpoll, PollerBackend::kKqueue,
                          PollerBackend::kPoll, PollerBackend::kIocp}) {
    auto poller = Poller::Create(b);
    if (std::find(built.begin(), built.end(), b) != built.end()) {
      ASSERT_TRUE(poller.ok()) << poller.status();
      EXPECT_EQ((*poller)->backend(), b);
    } else {
      EXPECT_EQ(poller.status().code(), absl::StatusCode::kUnimplemented)
          << PollerBackendName(b);
    }
  }
}

TEST(TimeoutToMillisTest, RoundsUpNeverDown) {
  using poll_internal::TimeoutToMillis;
  EXPECT_EQ(TimeoutToMillis(absl::InfiniteDuration()), -1);
  EXPECT_EQ(TimeoutToMillis(absl::ZeroDuration()), 0);
  EXPECT_EQ(TimeoutToMillis(absl::Milliseconds(-5)), 0);
  EXPECT_EQ(TimeoutToMillis(absl::Nanoseconds(1)), 1);
  EXPECT_EQ(TimeoutToMillis(absl::Microseconds(999)), 1);
  EXPECT_EQ(TimeoutToMillis(absl::Milliseconds(1)), 1);
  EXPECT_EQ(TimeoutToMillis(absl::Microseconds(1001)), 2);
  EXPECT_EQ(TimeoutToMillis(absl::Milliseconds(250)), 250);
  EXPECT_EQ(TimeoutToMillis(absl::Hours(24 * 365 * 100)), INT_MAX);
}

}  // namespace
}  // namespace mill
