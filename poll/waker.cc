#include "poll/waker.h"

#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "poll/internal/backend.h"

namespace mill {

absl::StatusOr<std::unique_ptr<Waker>> Waker::Create(Poller& poller,
                                                     Token token) {
  absl::StatusOr<std::unique_ptr<poll_internal::WakeChannel>> channel =
      poller.backend_->NewWakeChannel(token);
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<Waker>(new Waker(token, *std::move(channel)));
}

Waker::Waker(Token token, std::unique_ptr<poll_internal::WakeChannel> channel)
    : token_(token), channel_(std::move(channel)) {}

// The channel's destructor deregisters it from the poller.
Waker::~Waker() = default;

absl::Status Waker::Wake() { return channel_->Wake(); }

void Waker::Drain() { channel_->Drain(); }

}  // namespace mill
