// What one registration allocates: the memory an idle connection pays the
// loop for (issue 16, section 6). Counts the calling thread's allocations
// through a replaced global operator new, so the loop's own threads do not
// disturb the count.
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <memory>
#include <new>
#include <string>

#include "gtest/gtest.h"
#include "reactor/event_loop.h"
#include "reactor/testing/loop_fixture.h"

namespace {

thread_local size_t t_allocations = 0;
thread_local size_t t_bytes = 0;

void* Allocate(size_t size) {
  ++t_allocations;
  t_bytes += size;
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(size_t size) { return Allocate(size); }
void* operator new[](size_t size) { return Allocate(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace mill {
namespace {

// Allocations (and bytes requested) on this thread while the scope lives.
class AllocationCount {
 public:
  AllocationCount() : allocations_(t_allocations), bytes_(t_bytes) {}
  size_t allocations() const { return t_allocations - allocations_; }
  size_t bytes() const { return t_bytes - bytes_; }

 private:
  const size_t allocations_;
  const size_t bytes_;
};

class Noop final : public RegisteredHandler {
 public:
  void HandleEvent(const Event&) override {}
};

class PlainNoop final : public EventHandler {
 public:
  void HandleEvent(const Event&) override {}
};

class RegistrationMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    reactor_testing::MakeSocketPair(&fds_[0], &fds_[1]);
    EventLoopOptions options;
    options.dispatch_mode = DispatchMode::kDirect;
    absl::StatusOr<std::unique_ptr<EventLoop>> loop =
        EventLoop::Create(options);
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = std::move(*loop);
  }
  void TearDown() override {
    loop_.reset();
    reactor_testing::CloseFd(fds_[0]);
    reactor_testing::CloseFd(fds_[1]);
  }

  int fds_[2] = {-1, -1};
  std::unique_ptr<EventLoop> loop_;
};

// Per registration: what Register allocates besides the loop's table slots.
// Registers and deregisters `rounds` times (on the same descriptor), after a
// first rounds that size the tables.
struct PerRegistration {
  double allocations;
  double bytes;
};

template <typename Register>
PerRegistration Measure(EventLoop& loop, Register reg, int rounds) {
  auto once = [&] {
    absl::StatusOr<Registration> r = reg();
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(loop.Deregister(*r).ok());
  };
  // Sizes the tables: the registry's 16 shards each get theirs on first
  // use, and keys spread over them by a hash seeded per process.
  for (int i = 0; i < 512; ++i) once();
  AllocationCount count;
  for (int i = 0; i < rounds; ++i) once();
  return {static_cast<double>(count.allocations()) / rounds,
          static_cast<double>(count.bytes()) / rounds};
}

TEST_F(RegistrationMemoryTest, RegisteredHandlerAllocatesNothingOfItsOwn) {
  auto handler = std::make_shared<Noop>();
  const PerRegistration embedded = Measure(
      *loop_,
      [&] { return loop_->Register(fds_[0], Interest::Readable(), handler); },
      1000);
  RecordProperty("embedded_allocations", std::to_string(embedded.allocations));
  EXPECT_EQ(embedded.allocations, 0.0);
  EXPECT_EQ(embedded.bytes, 0.0);
  // The handler carries the state: the Source's 48 bytes in the object.
  EXPECT_GE(sizeof(Noop),
            sizeof(EventHandler) + RegisteredHandler::kSourceSize);
}

TEST_F(RegistrationMemoryTest, PlainHandlerAllocatesOneBlock) {
  auto handler = std::make_shared<PlainNoop>();
  const PerRegistration plain = Measure(
      *loop_,
      [&] { return loop_->Register(fds_[0], Interest::Readable(), handler); },
      1000);
  RecordProperty("plain_bytes", std::to_string(plain.bytes));
  // One block: the loop's state and the handler's shared_ptr (plus the
  // control block), nothing else.
  EXPECT_EQ(plain.allocations, 1.0);
  EXPECT_LE(plain.bytes, 128.0);
}

}  // namespace
}  // namespace mill
