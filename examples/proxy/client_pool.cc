#include "examples/proxy/client_pool.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/clock.h"

namespace mill::proxy {
namespace {

// A pooled connection's context: who holds it.
struct LinkState {
  std::mutex mu;
  std::shared_ptr<UpstreamHandler> handler;  // set while lent
};

std::shared_ptr<UpstreamHandler> HandlerOf(const ConnectionPtr& conn) {
  std::shared_ptr<LinkState> state = conn->GetContext<LinkState>();
  if (state == nullptr) return nullptr;
  std::lock_guard<std::mutex> lock(state->mu);
  return state->handler;
}

}  // namespace

struct ClientPoolConnector::Core
    : std::enable_shared_from_this<ClientPoolConnector::Core> {
  EventLoop* loop = nullptr;
  ClientPoolOptions options;
  std::unique_ptr<TcpClient> client;

  mutable std::mutex mu;
  std::unordered_map<const Upstream*, std::vector<ConnectionPtr>> idle;
  bool stopped = false;
  std::atomic<uint64_t> created{0}, reused{0}, dead_on_reuse{0};

  void RemoveIdle(const ConnectionPtr& conn) {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [upstream, list] : idle) {
      auto it = std::find(list.begin(), list.end(), conn);
      if (it != list.end()) {
        list.erase(it);
        return;
      }
    }
  }

  void Release(const Upstream* upstream, const ConnectionPtr& conn,
               bool reusable) {
    if (std::shared_ptr<LinkState> state = conn->GetContext<LinkState>()) {
      std::lock_guard<std::mutex> lock(state->mu);
      state->handler = nullptr;
    }
    if (!reusable || !conn->can_send() || conn->input_ended() ||
        conn->pending_output_bytes() > 0) {
      conn->Close();
      return;
    }
    ConnectionPtr evicted;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stopped) {
        evicted = conn;
      } else {
        std::vector<ConnectionPtr>& list = idle[upstream];
        if (list.size() >= options.max_idle_per_upstream) {
          evicted = list.front();  // the least recently used
          list.erase(list.begin());
        }
        list.push_back(conn);
      }
    }
    if (evicted != nullptr) evicted->Close();
  }
};

namespace {

class PoolLink : public UpstreamLink {
 public:
  PoolLink(std::shared_ptr<ClientPoolConnector::Core> core,
           const Upstream* upstream, ConnectionPtr conn, bool reused)
      : core_(std::move(core)),
        upstream_(upstream),
        conn_(std::move(conn)),
        reused_(reused) {}
  ~PoolLink() override { Release(false); }

  const ConnectionPtr& connection() const override { return conn_; }
  bool reused() const override { return reused_; }
  void Release(bool reusable) override {
    if (released_) return;
    released_ = true;
    core_->Release(upstream_, conn_, reusable);
  }

 private:
  const std::shared_ptr<ClientPoolConnector::Core> core_;
  const Upstream* const upstream_;
  const ConnectionPtr conn_;
  const bool reused_;
  bool released_ = false;
};

void Lend(const ConnectionPtr& conn, std::shared_ptr<UpstreamHandler> handler) {
  std::shared_ptr<LinkState> state = conn->GetContext<LinkState>();
  if (state == nullptr) {
    state = std::make_shared<LinkState>();
    conn->SetContext(state);
  }
  std::lock_guard<std::mutex> lock(state->mu);
  state->handler = std::move(handler);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ClientPoolConnector>>
ClientPoolConnector::Create(EventLoop* loop, ClientPoolOptions options) {
  auto core = std::make_shared<Core>();
  core->loop = loop;
  if (options.idle_timeout > absl::ZeroDuration() &&
      options.connection.idle_timeout == absl::ZeroDuration()) {
    // A connection without traffic for this long closes, idle or lent
    // (the proxy's upstream_timeout is shorter for a lent one).
    options.connection.idle_timeout = options.idle_timeout;
  }
  core->options = options;
  std::weak_ptr<Core> weak = core;
  ConnectionCallbacks callbacks;
  callbacks.on_connect = [](const ConnectionPtr& conn) {
    if (conn->GetContext<LinkState>() == nullptr) {
      conn->SetContext(std::make_shared<LinkState>());
    }
  };
  callbacks.on_data = [](const ConnectionPtr& conn, ByteBuffer& input) {
    if (auto handler = HandlerOf(conn)) {
      handler->OnUpstreamData(conn, input);
      return;
    }
    // Idle: an upstream has nothing to say between responses.
    input.Consume(input.size());
    conn->Abort();
  };
  callbacks.on_peer_shutdown = [](const ConnectionPtr& conn) {
    if (auto handler = HandlerOf(conn)) {
      handler->OnUpstreamPeerShutdown(conn);
    } else {
      conn->Close();
    }
  };
  callbacks.on_low_water = [](const ConnectionPtr& conn) {
    if (auto handler = HandlerOf(conn)) handler->OnUpstreamLowWater(conn);
  };
  callbacks.on_close = [weak](const ConnectionPtr& conn, CloseReason reason,
                              const absl::Status& status) {
    if (auto handler = HandlerOf(conn)) {
      handler->OnUpstreamClose(conn, reason, status);
    }
    if (std::shared_ptr<Core> core = weak.lock()) core->RemoveIdle(conn);
    conn->SetContext(nullptr);
  };
  TcpClientOptions client_options;
  client_options.connection = options.connection;
  absl::StatusOr<std::unique_ptr<TcpClient>> client =
      TcpClient::Create(loop, std::move(callbacks), client_options);
  if (!client.ok()) return client.status();
  core->client = std::move(*client);
  return std::unique_ptr<ClientPoolConnector>(
      new ClientPoolConnector(std::move(core)));
}

ClientPoolConnector::~ClientPoolConnector() { Stop(); }

void ClientPoolConnector::Acquire(Upstream& upstream, absl::Time deadline,
                                  bool fresh,
                                  std::shared_ptr<UpstreamHandler> handler,
                                  AcquireCallback done) {
  Core& core = *core_;
  while (!fresh) {
    ConnectionPtr conn;
    {
      std::lock_guard<std::mutex> lock(core.mu);
      auto it = core.idle.find(&upstream);
      if (it == core.idle.end() || it->second.empty()) break;
      conn = std::move(it->second.back());  // most recently used first
      it->second.pop_back();
    }
    if (!conn->Probe().ok()) {
      // Closed by the upstream (or it sent something unasked): never lent.
      core.dead_on_reuse.fetch_add(1, std::memory_order_relaxed);
      conn->Abort();
      continue;
    }
    core.reused.fetch_add(1, std::memory_order_relaxed);
    Lend(conn, std::move(handler));
    done(std::make_unique<PoolLink>(core_, &upstream, std::move(conn),
                                    /*reused=*/true));
    return;
  }
  const absl::Duration timeout =
      std::max(deadline - absl::Now(), absl::Milliseconds(1));
  std::shared_ptr<Core> core_ref = core_;
  const Upstream* up = &upstream;
  core.client->Connect(
      upstream.address,
      [core_ref, up, handler = std::move(handler),
       done = std::move(done)](absl::StatusOr<ConnectionPtr> conn) mutable {
        if (!conn.ok()) {
          done(conn.status());
          return;
        }
        core_ref->created.fetch_add(1, std::memory_order_relaxed);
        Lend(*conn, std::move(handler));
        done(std::make_unique<PoolLink>(core_ref, up, std::move(*conn),
                                        /*reused=*/false));
      },
      timeout);
}

void ClientPoolConnector::Stop() {
  std::unordered_map<const Upstream*, std::vector<ConnectionPtr>> idle;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    core_->stopped = true;
    idle.swap(core_->idle);
  }
  for (auto& [upstream, list] : idle) {
    for (ConnectionPtr& conn : list) conn->Close();
  }
  core_->client->Stop();
}

ClientPoolStats ClientPoolConnector::stats() const {
  ClientPoolStats s;
  s.created = core_->created.load(std::memory_order_relaxed);
  s.reused = core_->reused.load(std::memory_order_relaxed);
  s.dead_on_reuse = core_->dead_on_reuse.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(core_->mu);
  for (const auto& [upstream, list] : core_->idle) s.idle += list.size();
  return s;
}

}  // namespace mill::proxy
