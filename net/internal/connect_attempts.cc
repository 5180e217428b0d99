#include "net/internal/connect_attempts.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "net/internal/client_core.h"
#include "net/internal/connection_config.h"
#include "net/internal/socket_util.h"
#include "net/tcp_stream.h"

namespace mill {
namespace net_internal {
namespace {

// A hash map emptied after a burst keeps its capacity; give it back.
template <typename Map>
void ShrinkIfEmpty(Map& map) {
  if (map.empty() && map.capacity() > 64) Map().swap(map);
}

}  // namespace

ConnectAttempts::ConnectAttempts(ClientCore* core) : core_(core) {}

void ConnectAttempts::Post(absl::AnyInvocable<void()> fn) {
  // RunInLoop runs inline on the loop thread; refused once stopped.
  auto shared = std::make_shared<absl::AnyInvocable<void()>>(std::move(fn));
  if (!core_->loop()->RunInLoop([shared] { (*shared)(); }).ok()) (*shared)();
}

void ConnectAttempts::Connect(uint64_t id, std::vector<SocketAddress> addresses,
                              absl::string_view host, uint16_t port,
                              std::string target, ConnectCallback done,
                              absl::Duration timeout, LayerOverride layer) {
  auto request = std::make_shared<Request>();
  request->id = id;
  request->target = std::move(target);
  request->layer =
      layer.has_value() ? *std::move(layer) : core_->options().layer;
  if (!host.empty()) {
    request->server_name = std::string(host);
  } else {
    uint16_t unused_port = 0;
    if (!SplitHostPort(request->target, &request->server_name, &unused_port)) {
      request->server_name.clear();
    }
  }
  request->done = std::move(done);
  request->timeout = timeout > absl::ZeroDuration()
                         ? timeout
                         : core_->options().connect_timeout;
  request->addresses = std::move(addresses);
  request->resolving = !host.empty();
  std::weak_ptr<ClientCore> weak = core_->weak_from_this();
  {
    MutexLock lock(&mu_);
    ++started_;
    if (stopped_) {
      ++failed_;
      lock.Unlock();
      // Posted (not run inside Connect), as any other answer.
      Post([done = std::move(request->done),
            target = request->target]() mutable {
        if (done) {
          done(absl::CancelledError(
              absl::StrCat("connect to ", target, ": the client is stopped")));
        }
      });
      return;
    }
    pending_.emplace(id, request);
    request->deadline_timer = core_->loop()->RunAfter(
        request->timeout,
        [weak, id, timeout = request->timeout, target = request->target] {
          if (std::shared_ptr<ClientCore> self = weak.lock()) {
            self->attempts().Cancel(
                id, absl::DeadlineExceededError(absl::StrCat(
                        "connect to ", target, ": timed out after ",
                        absl::FormatDuration(timeout))));
          }
        });
    if (request->resolving) ++resolutions_;
  }
  if (!request->resolving) {
    StartAttempt(request);
    return;
  }
  const Resolver::Ticket ticket = core_->resolver().Resolve(
      host, port, [weak, id](Resolver::Result addresses) {
        if (std::shared_ptr<ClientCore> self = weak.lock()) {
          self->attempts().OnResolved(id, std::move(addresses));
        }
      });
  bool finished;
  {
    MutexLock lock(&mu_);
    finished = request->finished;
    if (!finished && request->resolving) request->resolve_ticket = ticket;
  }
  // Finished (cancelled) before the ticket was known: withdraw it here.
  if (finished) core_->resolver().Cancel(ticket);
}

void ConnectAttempts::OnResolved(uint64_t id, Resolver::Result addresses) {
  RequestPtr request;
  absl::Status error;
  {
    MutexLock lock(&mu_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return;  // cancelled or timed out meanwhile
    request = it->second;
    request->resolving = false;
    if (!addresses.ok()) {
      error = addresses.status();
    } else if (addresses->empty()) {
      error = absl::NotFoundError(
          absl::StrCat("connect to ", request->target, ": no address"));
    } else {
      request->addresses = *std::move(addresses);
    }
  }
  if (!error.ok()) {
    Cancel(id, std::move(error));
    return;
  }
  StartAttempt(request);
}

void ConnectAttempts::StartAttempt(const RequestPtr& request,
                                   size_t expected_next) {
  SocketAddress address;
  uint64_t conn_id;
  {
    MutexLock lock(&mu_);
    if (request->finished || request->next >= request->addresses.size() ||
        (expected_next != kAnyNext && request->next != expected_next)) {
      return;
    }
    address = request->addresses[request->next++];
    conn_id = next_connection_id_++;
    ++attempts_;
    // Counted live from here: Stop waits for this attempt to be started and
    // abandoned, not only for connections already started.
    core_->AddLive();
  }
  absl::StatusOr<TcpStream> stream =
      TcpStream::Connect(address, core_->options().connection.socket);
  if (!stream.ok()) {
    // Failed at once (ENETUNREACH, EMFILE...): as if the attempt failed.
    core_->DropLive();
    absl::Status status = stream.status();
    bool start_next = false;
    bool finished = false;
    Finish finish;
    {
      MutexLock lock(&mu_);
      if (request->finished) return;
      request->last_error = status;
      if (request->next < request->addresses.size()) {
        start_next = true;
      } else if (request->attempts.empty() && !request->resolving) {
        finish = FinishLocked(*request);
        finished = true;
        ++failed_;
      }
    }
    if (start_next) StartAttempt(request);
    if (finished) RunFinish(std::move(finish), status);
    return;
  }
  ConnectionPtr conn =
      ConnectionAccess::Create(core_->shared_from_this(), conn_id,
                               /*outbound=*/true, *std::move(stream), address,
                               request->layer.get(), request->server_name);
  EventLoop::TimerId replaced;
  {
    MutexLock lock(&mu_);
    if (request->finished) {
      lock.Unlock();
      conn.reset();  // never started: its destructor closes the socket
      core_->DropLive();
      return;
    }
    request->attempts.push_back(Request::Attempt{conn, /*starting=*/true});
    attempt_owner_.emplace(conn_id, request);
    if (request->next < request->addresses.size()) {
      replaced = ArmStaggerLocked(request);
    }
  }
  // Not under mu_: Cancel may wait for the callback, which takes mu_.
  if (replaced.valid()) core_->loop()->Cancel(replaced);
  if (core_->hooks().before_start) {
    core_->hooks().before_start(request->id, conn);
  }
  ConnectionAccess::Start(conn);
  // A request that finished meanwhile left this attempt to us (see the
  // file comment): abandon it now that Start returned.
  bool abandon = false;
  {
    MutexLock lock(&mu_);
    auto& attempts = request->attempts;
    auto it =
        std::find_if(attempts.begin(), attempts.end(),
                     [&](const Request::Attempt& a) { return a.conn == conn; });
    if (it != attempts.end()) {  // else its connect already completed
      it->starting = false;
      if (request->finished) {
        attempts.erase(it);
        attempt_owner_.erase(conn_id);
        ShrinkIfEmpty(attempt_owner_);
        abandon = true;
      }
    }
  }
  if (abandon) {
    ConnectionAccess::FailConnect(
        conn, absl::CancelledError("the connect finished while starting"));
  }
}

EventLoop::TimerId ConnectAttempts::ArmStaggerLocked(
    const RequestPtr& request) {
  // RFC 8305: the next address gets its turn after attempt_delay unless
  // this attempt answers (or fails) first. The timer names the address it
  // is for: one replaced but already firing starts nothing.
  std::weak_ptr<ClientCore> weak = core_->weak_from_this();
  std::weak_ptr<Request> weak_request = request;
  const size_t next = request->next;
  return std::exchange(
      request->stagger_timer,
      core_->loop()->RunAfter(core_->options().attempt_delay,
                              [weak, weak_request, next] {
                                std::shared_ptr<ClientCore> self = weak.lock();
                                RequestPtr request = weak_request.lock();
                                if (self != nullptr && request != nullptr) {
                                  self->attempts().StartAttempt(request, next);
                                }
                              }));
}

ConnectAttempts::Finish ConnectAttempts::FinishLocked(Request& request) {
  Finish finish;
  request.finished = true;
  pending_.erase(request.id);
  ShrinkIfEmpty(pending_);
  finish.done = std::move(request.done);
  // Attempts still starting stay: StartAttempt abandons them after Start.
  auto& attempts = request.attempts;
  for (const Request::Attempt& attempt : attempts) {
    if (attempt.starting) continue;
    finish.abandoned.push_back(attempt.conn);
    attempt_owner_.erase(attempt.conn->id());
  }
  attempts.erase(
      std::remove_if(attempts.begin(), attempts.end(),
                     [](const Request::Attempt& a) { return !a.starting; }),
      attempts.end());
  ShrinkIfEmpty(attempt_owner_);
  finish.timers[0] = std::exchange(request.deadline_timer, {});
  finish.timers[1] = std::exchange(request.stagger_timer, {});
  finish.resolve_ticket = std::exchange(request.resolve_ticket, 0);
  return finish;
}

void ConnectAttempts::RunFinish(Finish finish,
                                absl::StatusOr<ConnectionPtr> result) {
  for (EventLoop::TimerId timer : finish.timers) {
    if (timer.valid()) core_->loop()->Cancel(timer);
  }
  // Waits for a lookup answer being delivered to us on another thread, so
  // that nothing of this request runs once it finished.
  if (finish.resolve_ticket != 0) {
    core_->resolver().Cancel(finish.resolve_ticket);
  }
  for (const ConnectionPtr& conn : finish.abandoned) {
    ConnectionAccess::FailConnect(
        conn, absl::CancelledError("another address connected first"));
  }
  finish.abandoned.clear();
  if (!finish.done) return;
  if (result.ok()) {
    finish.done(std::move(result));
  } else {
    finish.done(DeepCopy(result.status()));
  }
}

bool ConnectAttempts::Cancel(uint64_t id, absl::Status why) {
  Finish finish;
  {
    MutexLock lock(&mu_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return false;
    RequestPtr request = it->second;
    finish = FinishLocked(*request);
    ++failed_;
  }
  RunFinish(std::move(finish), std::move(why));
  return true;
}

void ConnectAttempts::StopAll() {
  std::vector<Finish> finishes;
  {
    MutexLock lock(&mu_);
    stopped_ = true;
    std::vector<RequestPtr> requests;
    requests.reserve(pending_.size());
    for (const auto& entry : pending_) requests.push_back(entry.second);
    for (const RequestPtr& request : requests) {
      finishes.push_back(FinishLocked(*request));
      ++failed_;
    }
  }
  for (Finish& finish : finishes) {
    RunFinish(std::move(finish),
              absl::CancelledError("connect cancelled: the client stopped"));
  }
}

void ConnectAttempts::OnConnectDone(const ConnectionPtr& conn,
                                    const absl::Status& status) {
  RequestPtr request;
  Finish finish;
  bool finished = false;
  bool start_next = false;
  bool orphan = false;
  bool refused = false;
  absl::Status error;
  {
    MutexLock lock(&mu_);
    auto owner = attempt_owner_.find(conn->id());
    if (owner != attempt_owner_.end()) {
      request = owner->second;
      attempt_owner_.erase(owner);
      ShrinkIfEmpty(attempt_owner_);
      auto& attempts = request->attempts;
      attempts.erase(std::remove_if(attempts.begin(), attempts.end(),
                                    [&](const Request::Attempt& a) {
                                      return a.conn == conn;
                                    }),
                     attempts.end());
    }
    if (request == nullptr || request->finished) {
      // Its request finished (Cancel, timeout, another address won, Stop)
      // while this attempt was completing.
      orphan = status.ok();
    } else if (status.ok()) {
      finish = FinishLocked(*request);
      finished = true;
      if (core_->Adopt(conn)) {
        ++succeeded_;
      } else {
        refused = true;  // Stop began: nobody may get a new connection
        ++failed_;
      }
    } else {
      request->last_error = absl::Status(
          status.code(), absl::StrCat("connect to ", request->target, " (",
                                      conn->peer_address().ToString(),
                                      "): ", status.message()));
      if (request->next < request->addresses.size()) {
        start_next = true;  // at once: no need to wait for the stagger
      } else if (request->attempts.empty() && !request->resolving) {
        error = request->last_error;
        finish = FinishLocked(*request);
        finished = true;
        ++failed_;
      }
    }
  }
  if (orphan) {
    // It opened (on_connect ran) for nobody: close it (on_close follows),
    // or it would stay open unowned and Stop() would wait for it forever.
    core_->CloseUnowned(conn);
    return;
  }
  if (start_next) StartAttempt(request);
  if (!finished) return;
  if (refused) {
    ConnectionAccess::Close(conn, CloseReason::kStopped, absl::OkStatus());
    RunFinish(std::move(finish),
              absl::CancelledError(absl::StrCat("connect to ", request->target,
                                                ": the client stopped")));
  } else if (status.ok()) {
    RunFinish(std::move(finish), conn);
  } else {
    RunFinish(std::move(finish), std::move(error));
  }
}

void ConnectAttempts::AddStats(TcpClientStats* stats) const {
  MutexLock lock(&mu_);
  stats->connects_started = started_;
  stats->connects_succeeded = succeeded_;
  stats->connects_failed = failed_;
  stats->attempts = attempts_;
  stats->resolutions = resolutions_;
  stats->pending = pending_.size();
}

}  // namespace net_internal
}  // namespace mill
