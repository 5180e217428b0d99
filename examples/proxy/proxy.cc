#include "examples/proxy/proxy.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "base/call_scope.h"
#include "base/mutex.h"
#include "base/thread_scratch.h"
#include "examples/common/http_text.h"
#include "examples/proxy/forwarding.h"
#include "examples/proxy/http_stream_parser.h"

namespace mill::proxy {
namespace {

// Input is parsed in slices so that the proxy notices a full output queue
// within one slice; output collects per slice and goes out in one Send.
constexpr size_t kFeedSlice = 64 * 1024;
// Body pieces at least this large are sent as they are instead of being
// copied into the collected output first.
constexpr size_t kDirectSendBytes = 4096;
// Resends of a request whose reused upstream connection turned out stale.
constexpr int kMaxStaleRetries = 2;

using Action = absl::AnyInvocable<void()>;

// A thread inside one of a session's entry points (key: the session), i.e.
// holding its mutex.
ABSL_CONST_INIT const CallScopeKind kInsideSession{"proxy session"};

using ::mill::examples::EqualsIgnoreCase;

// RFC 9110 §9.2.2; safe to send twice when the first attempt may not have
// reached the server.
bool IsIdempotent(const std::string& method) {
  return method == "GET" || method == "HEAD" || method == "PUT" ||
         method == "DELETE" || method == "OPTIONS" || method == "TRACE";
}

// The IP of an IP address ("127.0.0.1", "::1"); empty for other kinds.
std::string IpOf(const SocketAddress& address) {
  // ToString() is "1.2.3.4:port" or "[v6]:port".
  const std::string text = address.ToString();
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    return close == std::string::npos ? "" : text.substr(1, close - 1);
  }
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || text.rfind("unix:", 0) == 0) return "";
  return text.substr(0, colon);
}

struct SessionConfig {
  EventLoop* loop;
  UpstreamSet* upstreams;
  UpstreamConnector* connector;
  const ProxyOptions* options;
  ReverseProxy::Counters* counters;
};

// One client connection's proxy state. Lives in the connection's context;
// the upstream link's callbacks reach it as an UpstreamHandler.
//
// Locking: mu_ guards everything. Under it the session only calls
// Connection members that never run callbacks synchronously (Send,
// PauseReading, pending_output_bytes); everything else (ResumeReading,
// Dispatch, Close, Shutdown, Abort, the connector, link releases) is
// collected in deferred_ and run after unlocking, so no callback can
// re-enter the session while it holds mu_.
class Session : public UpstreamHandler,
                public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<const SessionConfig> config,
          const ConnectionPtr& client)
      : config_(std::move(config)),
        client_(client),
        client_ip_(IpOf(client->peer_address())),
        request_listener_(this),
        response_listener_(this),
        request_parser_(HttpStreamParser::kRequest, &request_listener_,
                        {config_->options->max_header_bytes}) {}

  // --- Client connection callbacks -----------------------------------

  void OnClientData(const ConnectionPtr& conn, ByteBuffer& input) {
    {
      SessionLock lock(this);
      ServeClientLocked(conn, input);
      FlushLocked(conn);
    }
  }

  void OnClientPeerShutdown(const ConnectionPtr& conn) {
    {
      SessionLock lock(this);
      client_eof_ = true;
      if (closing_) {
        Defer([conn] { conn->Close(); });
      } else if (ex_ == nullptr) {
        // Between requests (or inside a head that can never complete).
        Defer([conn] { conn->Close(); });
        closing_ = true;
      } else if (!ex_->request_complete) {
        // The request body can never complete: give up on the exchange.
        AbandonExchangeLocked();
        closing_ = true;
        Defer([conn] { conn->Close(); });
      }
      // Otherwise the response finishes first (FinishExchangeLocked).
      FlushLocked(conn);
    }
  }

  void OnClientLowWater(const ConnectionPtr& conn) {
    {
      SessionLock lock(this);
      if (ex_ != nullptr && ex_->upstream_paused && ex_->upstream != nullptr) {
        ex_->upstream_paused = false;
        ex_->last_activity = absl::Now();
        ConnectionPtr upstream = ex_->upstream;
        Defer([upstream] { upstream->ResumeReading(); });
      }
      (void)conn;
    }
  }

  void OnClientClose() {
    if (HeldByThisThread()) {
      // Closed inline by a Send of ours that failed: finish what we were
      // doing first.
      mu_.AssertHeld();  // by this thread, further up its stack
      reentered_.push_back([this] {
        mu_.AssertHeld();  // run by ~SessionLock
        ClientClosedLocked();
      });
      return;
    }
    SessionLock lock(this);
    ClientClosedLocked();
  }

  // --- Upstream connection callbacks (UpstreamHandler) -------------------

  void OnUpstreamData(const ConnectionPtr& conn, ByteBuffer& input) override {
    {
      SessionLock lock(this);
      if (Owns(conn) && !ex_->upstream_paused) {
        ConnectionPtr client = client_.lock();
        if (client != nullptr) {
          ServeUpstreamLocked(client, conn, input,
                              /*ignore_backpressure=*/false);
          FlushLocked(client);
        }
      }
    }
  }

  void OnUpstreamPeerShutdown(const ConnectionPtr& conn) override {
    {
      SessionLock lock(this);
      if (Owns(conn)) {
        ex_->upstream_eof = true;
        ConnectionPtr client = client_.lock();
        if (client != nullptr && conn->input().empty()) {
          UpstreamEndedLocked(client);
          FlushLocked(client);
        }
        // Otherwise the buffered rest is parsed first (ServeUpstreamLocked).
      }
      // Not ours (any more): the pool handles EOF on what it holds.
    }
  }

  void OnUpstreamLowWater(const ConnectionPtr& conn) override {
    {
      SessionLock lock(this);
      if (Owns(conn) && client_paused_) {
        client_paused_ = false;
        if (ConnectionPtr client = client_.lock()) {
          Defer([client] { client->ResumeReading(); });
        }
      }
    }
  }

  void OnUpstreamClose(const ConnectionPtr& conn, CloseReason reason,
                       const absl::Status&) override {
    if (HeldByThisThread()) {
      // Closed inline by a Send of ours that failed (its input is gone
      // with it): finish what we were doing first.
      mu_.AssertHeld();  // by this thread, further up its stack
      reentered_.push_back([this, conn] {
        mu_.AssertHeld();  // run by ~SessionLock
        ConnectionPtr client = client_.lock();
        if (!Owns(conn) || client == nullptr) return;
        ex_->upstream_eof = true;
        ex_->upstream_closed = true;
        UpstreamEndedLocked(client);
        FlushLocked(client);
      });
      return;
    }
    {
      SessionLock lock(this);
      ConnectionPtr client = client_.lock();
      if (Owns(conn) && client != nullptr) {
        ex_->upstream_eof = true;
        ex_->upstream_closed = true;
        if (reason == CloseReason::kPeerClosed) {
          // Whatever the upstream sent before its FIN is a legitimate end
          // of a close-delimited body: parse it all (bounded by the
          // connection's input limit), then finish.
          ServeUpstreamLocked(client, conn, conn->input(),
                              /*ignore_backpressure=*/true);
        }
        if (ex_ != nullptr && Owns(conn)) UpstreamEndedLocked(client);
        FlushLocked(client);
      }
    }
  }

 private:
  void ClientClosedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    client_closed_ = true;
    CancelTimerLocked(&request_timer_);
    CancelTimerLocked(&linger_timer_);
    CancelTimerLocked(&upstream_timer_);
    if (ex_ != nullptr) AbandonExchangeLocked();
  }

  // One request and its response.
  struct Exchange {
    explicit Exchange(HttpStreamParser::Listener* listener,
                      size_t max_header_bytes)
        : response_parser(HttpStreamParser::kResponse, listener,
                          {max_header_bytes}) {}

    uint64_t id = 0;
    MessageHead request;
    bool request_complete = false;
    bool body_sent = false;  // a request body byte went upstream
    size_t upstream_index = 0;
    size_t connect_failures = 0;
    bool in_flight_counted = false;
    int retries = 0;
    bool acquiring = false;
    std::unique_ptr<UpstreamLink> link;
    ConnectionPtr upstream;
    std::string upstream_head;  // kept while a retry is possible
    HttpStreamParser response_parser;
    MessageHead response;           // the final response's head
    bool response_started = false;  // a response byte arrived
    bool head_sent = false;         // the final head went to the client
    bool bad_response = false;      // e.g. 101 to a request without Upgrade
    ClientResponsePlan plan;
    bool complete = false;
    bool upstream_paused = false;  // for the client's backpressure
    bool upstream_eof = false;
    bool upstream_closed = false;
    absl::Time last_activity;
  };

  // The parsers call these inside Feed(), which the session calls under
  // mu_.
  struct RequestListener : HttpStreamParser::Listener {
    explicit RequestListener(Session* s) : session(s) {}
    void OnHead(MessageHead& head) override {
      session->mu_.AssertHeld();
      session->OnRequestHead(head);
    }
    void OnBody(std::string_view piece) override {
      session->mu_.AssertHeld();
      session->OnRequestBody(piece);
    }
    void OnComplete() override {
      session->mu_.AssertHeld();
      session->OnRequestComplete();
    }
    Session* session;
  };

  struct ResponseListener : HttpStreamParser::Listener {
    explicit ResponseListener(Session* s) : session(s) {}
    void OnHead(MessageHead& head) override {
      session->mu_.AssertHeld();
      session->OnResponseHead(head);
    }
    void OnBody(std::string_view piece) override {
      session->mu_.AssertHeld();
      session->OnResponseBody(piece);
    }
    void OnComplete() override {
      session->mu_.AssertHeld();
      session->OnResponseComplete();
    }
    Session* session;
  };

  // Holds mu_ for one entry point. On leaving: runs the callbacks that
  // re-entered the session meanwhile (see OnClientClose), releases mu_,
  // then runs the deferred actions.
  class ABSL_SCOPED_LOCKABLE SessionLock {
   public:
    explicit SessionLock(Session* session)
        ABSL_EXCLUSIVE_LOCK_FUNCTION(session->mu_)
        : session_(session), lock_(&session->mu_) {
      scope_.emplace(kInsideSession, session);
    }
    ~SessionLock() ABSL_UNLOCK_FUNCTION() {
      session_->mu_.AssertHeld();
      while (!session_->reentered_.empty()) {
        Action action = std::move(session_->reentered_.front());
        session_->reentered_.erase(session_->reentered_.begin());
        action();
      }
      // Callbacks that the deferred actions run are entries of their own.
      scope_.reset();
      std::vector<Action> todo;
      todo.swap(session_->deferred_);
      lock_.Unlock();
      for (Action& action : todo) action();
    }
    SessionLock(const SessionLock&) = delete;
    SessionLock& operator=(const SessionLock&) = delete;

   private:
    Session* const session_;
    MutexLock lock_;
    std::optional<CallScope> scope_;
  };

  // True inside an entry point on this thread: a callback arriving now was
  // run synchronously by a call the session made under mu_ (a Send that
  // failed can close a connection inline on the loop thread).
  bool HeldByThisThread() const {
    return CallScope::Active(kInsideSession, this);
  }

  void Defer(Action action) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    deferred_.push_back(std::move(action));
  }

  bool Owns(const ConnectionPtr& conn) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return ex_ != nullptr && ex_->upstream != nullptr && ex_->upstream == conn;
  }

  const ProxyOptions& options() const { return *config_->options; }

  // Output collected during one locked section, per thread (a section
  // never spans an unlock, so the buffers never carry over).
  static std::string& ClientOut() {
    struct ProxyClientOut;
    return mill::ThreadScratch<std::string, ProxyClientOut>();
  }
  static std::string& UpstreamOut() {
    struct ProxyUpstreamOut;
    return mill::ThreadScratch<std::string, ProxyUpstreamOut>();
  }

  void FlushClientLocked(const ConnectionPtr& client)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string& out = ClientOut();
    if (out.empty()) return;
    if (!client_closed_) (void)client->Send(out);
    out.clear();
    if (out.capacity() > 2 * kFeedSlice) std::string().swap(out);
  }

  void FlushUpstreamLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string& out = UpstreamOut();
    if (out.empty()) return;
    if (ex_ != nullptr && ex_->upstream != nullptr) {
      (void)ex_->upstream->Send(out);
    }
    out.clear();
    if (out.capacity() > 2 * kFeedSlice) std::string().swap(out);
  }

  void FlushLocked(const ConnectionPtr& client)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    FlushUpstreamLocked();
    FlushClientLocked(client);
  }

  void CancelTimerLocked(EventLoop::TimerId* timer)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (timer->valid()) config_->loop->Cancel(*timer);
    *timer = EventLoop::TimerId();
  }

  // --- Client side ---------------------------------------------------------

  void ServeClientLocked(const ConnectionPtr& conn, ByteBuffer& input)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (client_closed_) return;
    if (closing_) {
      input.Consume(input.size());  // lingering: discard
      return;
    }
    const uint64_t started_before = request_parser_.messages_started();
    const HttpStreamParser::Phase phase_before = request_parser_.phase();
    while (!input.empty()) {
      // A body waits for the upstream connection; a bodiless request is
      // parsed to its end at once (its last byte may follow the head), so
      // that it is complete before its response can arrive.
      if (ex_ != nullptr && (ex_->request_complete || client_paused_ ||
                             (ex_->upstream == nullptr &&
                              ex_->request.framing != BodyFraming::kNone))) {
        break;  // the rest waits in the input buffer
      }
      const size_t slice = std::min(input.size(), kFeedSlice);
      const size_t used =
          request_parser_.Feed(std::string_view(input.data(), slice));
      input.Consume(used);
      if (request_parser_.failed()) {
        FailRequestLocked(conn, request_parser_.error_status());
        return;
      }
      if (reject_status_ != 0) {
        FailRequestLocked(conn, std::exchange(reject_status_, 0));
        return;
      }
      FlushUpstreamLocked();
      if (ex_ != nullptr && ex_->upstream != nullptr &&
          !ex_->request_complete &&
          ex_->upstream->pending_output_bytes() >= options().high_water_mark) {
        // The upstream reads slowly: stop reading the client until its
        // queue drains (OnUpstreamLowWater).
        client_paused_ = true;
        conn->PauseReading();
        break;
      }
      if (used == 0) break;
    }
    client_input_pending_ = !input.empty();
    if (request_parser_.messages_started() != started_before ||
        request_parser_.phase() != phase_before) {
      TimeRequestLocked(conn);
    }
    if (client_eof_ && ex_ == nullptr && !closing_) {
      closing_ = true;
      Defer([conn] { conn->Close(); });
    }
  }

  // The request parser's callbacks (inside Feed, under mu_).
  void OnRequestHead(MessageHead& head) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    config_->counters->requests.fetch_add(1, std::memory_order_relaxed);
    if (head.method == "CONNECT") {
      reject_status_ = 405;
      return;
    }
    int hosts = 0;
    for (const auto& field : head.headers) {
      if (EqualsIgnoreCase(field.first, "Host")) ++hosts;
    }
    if (hosts > 1 || (hosts == 0 && head.version_minor >= 1)) {
      reject_status_ = 400;
      return;
    }
    ex_ = std::make_unique<Exchange>(&response_listener_,
                                     options().max_response_header_bytes);
    ex_->id = ++exchange_ids_;
    ex_->request = std::move(head);
    ex_->response_parser.ExpectHeadResponse(ex_->request.method == "HEAD");
    ex_->upstream_index = config_->upstreams->Pick();
    AcquireLocked();
  }

  void OnRequestBody(std::string_view piece)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (ex_ == nullptr || piece.empty()) return;
    ex_->body_sent = true;
    ex_->upstream_head.clear();  // no retry once body bytes went out
    std::string& out = UpstreamOut();
    if (ex_->request.framing != BodyFraming::kChunked &&
        piece.size() >= kDirectSendBytes && ex_->upstream != nullptr) {
      FlushUpstreamLocked();
      (void)ex_->upstream->Send(absl::string_view(piece.data(), piece.size()));
    } else {
      AppendBodyPiece(ex_->request.framing, piece, &out);
    }
    ex_->last_activity = absl::Now();
  }

  void OnRequestComplete() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (ex_ == nullptr) return;
    UpstreamOut().append(BodyEnd(ex_->request.framing));
    ex_->request_complete = true;
    ex_->last_activity = absl::Now();
  }

  // 400/405/408/431/505: answer, then close (lingering). The exchange in
  // progress, if any, is given up (the client sees a cut response if its
  // head already went out).
  void FailRequestLocked(const ConnectionPtr& conn, int status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    config_->counters->client_errors.fetch_add(1, std::memory_order_relaxed);
    const bool head_sent = ex_ != nullptr && ex_->head_sent;
    if (ex_ != nullptr) AbandonExchangeLocked();
    UpstreamOut().clear();
    if (head_sent) {
      closing_ = true;
      Defer([conn] { conn->Abort(); });
      return;
    }
    ClientOut().append(ErrorResponse(status, /*close=*/true));
    StartClosingLocked(conn);
  }

  // After a closing error response: flush, send FIN, keep discarding the
  // client's bytes until it closes or the linger timeout passes.
  void StartClosingLocked(const ConnectionPtr& conn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    closing_ = true;
    CancelTimerLocked(&request_timer_);
    conn->input().Consume(conn->input().size());
    if (options().linger_timeout <= absl::ZeroDuration() || client_eof_) {
      Defer([conn] { conn->Close(); });
      return;
    }
    Defer([conn] { conn->Shutdown(); });
    std::weak_ptr<Connection> weak = conn;
    linger_timer_ = config_->loop->RunAfter(options().linger_timeout, [weak] {
      if (ConnectionPtr c = weak.lock()) c->Close();
    });
  }

  // Times the request in progress: its head must be complete within
  // header_timeout of its first byte, and its body within body_timeout of
  // the head (see ProxyOptions). Otherwise 408.
  void TimeRequestLocked(const ConnectionPtr& conn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    CancelTimerLocked(&request_timer_);
    const HttpStreamParser::Phase phase = request_parser_.phase();
    absl::Duration limit = absl::ZeroDuration();
    if (phase == HttpStreamParser::Phase::kHead) {
      limit = options().header_timeout;
    } else if (phase == HttpStreamParser::Phase::kBody && ex_ != nullptr &&
               ex_->request.framing != BodyFraming::kNone) {
      limit = options().body_timeout;
    }
    if (limit <= absl::ZeroDuration()) return;
    ArmRequestTimerLocked(conn, limit, request_parser_.messages_started(),
                          phase);
  }

  void ArmRequestTimerLocked(const ConnectionPtr& conn, absl::Duration limit,
                             uint64_t request, HttpStreamParser::Phase phase)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::weak_ptr<Connection> weak_conn = conn;
    std::weak_ptr<Session> weak_self = weak_from_this();
    request_timer_ = config_->loop->RunAfter(limit, [=] {
      ConnectionPtr c = weak_conn.lock();
      if (c == nullptr) return;
      // The failure consumes the client's input: run it excluded from the
      // connection's callbacks.
      c->Dispatch([=](const ConnectionPtr& c) {
        std::shared_ptr<Session> self = weak_self.lock();
        if (self != nullptr) self->OnRequestTimer(c, limit, request, phase);
      });
    });
  }

  void OnRequestTimer(const ConnectionPtr& conn, absl::Duration limit,
                      uint64_t request, HttpStreamParser::Phase phase) {
    {
      SessionLock lock(this);
      request_timer_ = EventLoop::TimerId();
      if (closing_ || client_closed_ ||
          request_parser_.messages_started() != request ||
          request_parser_.phase() != phase) {
        return;  // that request moved on meanwhile
      }
      if (ex_ != nullptr && (ex_->acquiring || client_paused_)) {
        // Waiting on the upstream is not the client's fault.
        ArmRequestTimerLocked(conn, limit, request, phase);
      } else {
        FailRequestLocked(conn, 408);
      }
      FlushLocked(conn);
    }
  }

  // --- Upstream side -------------------------------------------------------

  void AcquireLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Exchange& ex = *ex_;
    ex.acquiring = true;
    Upstream& upstream = config_->upstreams->at(ex.upstream_index);
    if (!ex.in_flight_counted) {
      upstream.in_flight.fetch_add(1, std::memory_order_relaxed);
      ex.in_flight_counted = true;
    }
    const uint64_t id = ex.id;
    std::weak_ptr<Session> weak_self = weak_from_this();
    std::shared_ptr<UpstreamHandler> handler = shared_from_this();
    UpstreamConnector* connector = config_->connector;
    const absl::Time deadline = absl::Now() + options().connect_timeout;
    Defer([=, &upstream]() mutable {
      connector->Acquire(
          upstream, deadline, std::move(handler),
          [weak_self, id](absl::StatusOr<std::unique_ptr<UpstreamLink>> link) {
            if (std::shared_ptr<Session> self = weak_self.lock()) {
              self->OnAcquired(id, std::move(link));
            } else if (link.ok()) {
              (*link)->Release(/*reusable=*/true);  // nothing was sent
            }
          });
    });
  }

  void OnAcquired(uint64_t id,
                  absl::StatusOr<std::unique_ptr<UpstreamLink>> result) {
    std::unique_ptr<UpstreamLink> stray;
    {
      SessionLock lock(this);
      ConnectionPtr client = client_.lock();
      if (ex_ == nullptr || ex_->id != id || client_closed_ ||
          client == nullptr) {
        if (result.ok()) stray = std::move(*result);
      } else if (!result.ok()) {
        ex_->acquiring = false;
        UpstreamUnreachableLocked(client, result.status());
        FlushLocked(client);
      } else {
        StartForwardingLocked(client, std::move(*result));
        FlushLocked(client);
      }
    }
    if (stray != nullptr) stray->Release(/*reusable=*/true);
  }

  void UpstreamUnreachableLocked(const ConnectionPtr& client,
                                 const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Exchange& ex = *ex_;
    if (options().on_upstream_error) {
      options().on_upstream_error(config_->upstreams->at(ex.upstream_index),
                                  status);
    }
    // Another upstream may be up: try each once before giving up.
    if (!absl::IsDeadlineExceeded(status) &&
        ++ex.connect_failures < config_->upstreams->size()) {
      config_->upstreams->at(ex.upstream_index)
          .in_flight.fetch_sub(1, std::memory_order_relaxed);
      ex.in_flight_counted = false;
      ex.upstream_index = (ex.upstream_index + 1) % config_->upstreams->size();
      AcquireLocked();
      return;
    }
    GatewayErrorLocked(client, absl::IsDeadlineExceeded(status)    ? 504
                               : absl::IsResourceExhausted(status) ? 503
                                                                   : 502);
  }

  void StartForwardingLocked(const ConnectionPtr& client,
                             std::unique_ptr<UpstreamLink> link)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Exchange& ex = *ex_;
    ex.acquiring = false;
    ex.link = std::move(link);
    ex.upstream = ex.link->connection();
    (ex.link->reused() ? config_->counters->upstream_reused
                       : config_->counters->upstream_fresh)
        .fetch_add(1, std::memory_order_relaxed);
    if (ex.upstream_head.empty()) {
      AppendUpstreamRequestHead(
          ex.request, client_ip_,
          config_->upstreams->at(ex.upstream_index).host_port,
          /*close=*/!options().upstream_keepalive, &ex.upstream_head);
    }
    if (!ex.upstream->Send(ex.upstream_head).ok()) {
      // Closed under us: its on_close decides (retry or 502).
    }
    if (ex.body_sent || !IsIdempotent(ex.request.method) ||
        ex.request.framing != BodyFraming::kNone) {
      // No retry will ever resend it.
      std::string().swap(ex.upstream_head);
    }
    ex.last_activity = absl::Now();
    ArmUpstreamTimerLocked(options().upstream_timeout);
    // Parse on: the rest of the head (its last byte), the body, or nothing.
    ContinueClientLocked(client);
  }

  // Has the client connection's on_data run again for input already
  // buffered (the next pipelined request, or the body of this one).
  void ContinueClientLocked(const ConnectionPtr& client)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // New bytes bring their own on_data.
    if (!client_input_pending_) return;
    std::weak_ptr<Session> weak_self = weak_from_this();
    Defer([client, weak_self] {
      client->Dispatch([weak_self](const ConnectionPtr& c) {
        if (std::shared_ptr<Session> self = weak_self.lock()) {
          self->OnClientData(c, c->input());
        }
      });
    });
  }

  void ServeUpstreamLocked(const ConnectionPtr& client,
                           const ConnectionPtr& conn, ByteBuffer& input,
                           bool ignore_backpressure)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Exchange* ex = ex_.get();
    if (!input.empty()) {
      ex->response_started = true;
      ex->last_activity = absl::Now();
      std::string().swap(ex->upstream_head);  // too late for a retry
    }
    while (!input.empty() && !ex->complete) {
      const size_t slice = std::min(input.size(), kFeedSlice);
      const size_t used =
          ex->response_parser.Feed(std::string_view(input.data(), slice));
      input.Consume(used);
      if (ex->response_parser.failed() || ex->bad_response) {
        FlushClientLocked(client);
        UpstreamFailedLocked(client);
        return;
      }
      // A small response (head and body) goes out in one Send, at the end;
      // a large one in slices, watching the client's queue after each.
      if (used > 0 && used < slice && ClientOut().size() < kFeedSlice) {
        continue;
      }
      FlushClientLocked(client);
      if (!ex->complete && !ignore_backpressure &&
          client->pending_output_bytes() >= options().high_water_mark) {
        // The client reads slowly: stop reading the upstream until the
        // client's queue drains (OnClientLowWater).
        ex->upstream_paused = true;
        conn->PauseReading();
        return;
      }
      if (used == 0) break;
    }
    if (ex->complete) {
      FinishExchangeLocked(client, /*reusable_input=*/input.empty());
    } else if (ex->upstream_eof && input.empty() && !ex->upstream_closed) {
      UpstreamEndedLocked(client);
    }
  }

  // The response parser's callbacks (inside Feed, under mu_).
  void OnResponseHead(MessageHead& head) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Exchange& ex = *ex_;
    if (head.status / 100 == 1) {
      if (head.status == 101) {
        ex.bad_response = true;  // we never forward Upgrade
        return;
      }
      // Interim responses reach HTTP/1.1 clients only (RFC 9110 §15.2).
      if (ex.request.version_minor >= 1) {
        AppendClientResponseHead(ex.request, head, ClientResponsePlan{},
                                 &ClientOut());
      }
      return;
    }
    ex.response = std::move(head);
    ex.plan = PlanClientResponse(ex.request, ex.response,
                                 ex.request.keep_alive && !client_eof_);
    if (ex.plan.bad_gateway) {
      ex.bad_response = true;  // the client gets 502 instead
      return;
    }
    AppendClientResponseHead(ex.request, ex.response, ex.plan, &ClientOut());
    ex.head_sent = true;
  }

  void OnResponseBody(std::string_view piece)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Exchange& ex = *ex_;
    if (!ex.head_sent) return;
    if (ex.plan.framing != BodyFraming::kChunked &&
        piece.size() >= kDirectSendBytes) {
      ConnectionPtr client = client_.lock();
      if (client == nullptr) return;
      FlushClientLocked(client);
      if (!client_closed_) {
        (void)client->Send(absl::string_view(piece.data(), piece.size()));
      }
      return;
    }
    AppendBodyPiece(ex.plan.framing, piece, &ClientOut());
  }

  void OnResponseComplete() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Exchange& ex = *ex_;
    if (!ex.head_sent) return;  // an interim response ended
    ClientOut().append(BodyEnd(ex.plan.framing));
    ex.complete = true;
  }

  // The response is complete: return the connection, go on with the client.
  void FinishExchangeLocked(const ConnectionPtr& client, bool reusable_input)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Exchange& ex = *ex_;
    config_->counters->responses.fetch_add(1, std::memory_order_relaxed);
    const bool reusable = options().upstream_keepalive &&
                          ex.response.keep_alive && ex.request_complete &&
                          reusable_input && !ex.upstream_eof &&
                          !ex.upstream_paused;
    const bool close_client =
        ex.plan.close || !ex.request_complete || client_eof_;
    // The client sees the end of the response only once the upstream
    // connection is back in the pool (the release is deferred below): a
    // client that sends its next request at once then reuses it.
    std::string tail;
    tail.swap(ClientOut());
    EndExchangeLocked(reusable);
    if (!tail.empty() && !client_closed_) {
      Defer([client, tail = std::move(tail)] { (void)client->Send(tail); });
    }
    if (close_client) {
      closing_ = true;
      Defer([client] { client->Close(); });
    } else {
      ContinueClientLocked(client);
    }
  }

  // Releases the link and forgets the exchange.
  void EndExchangeLocked(bool reusable) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Exchange& ex = *ex_;
    if (ex.in_flight_counted) {
      config_->upstreams->at(ex.upstream_index)
          .in_flight.fetch_sub(1, std::memory_order_relaxed);
    }
    if (ex.link != nullptr) {
      std::shared_ptr<UpstreamLink> link(std::move(ex.link));
      ConnectionPtr upstream = ex.upstream;
      const bool paused = ex.upstream_paused;
      Defer([link, upstream, reusable, paused] {
        if (paused) upstream->ResumeReading();
        link->Release(reusable);
      });
    }
    ex_.reset();
    client_paused_ = false;
  }

  // The client went away, or its request failed: the upstream connection
  // is in an unknown state and is not reused.
  void AbandonExchangeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    EndExchangeLocked(/*reusable=*/false);
  }

  // The upstream closed or sent EOF before the response was complete (a
  // close-delimited response ends here normally).
  void UpstreamEndedLocked(const ConnectionPtr& client)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Exchange& ex = *ex_;
    if (ex.complete) return;
    if (ex.head_sent && ex.response_parser.FinishAtEof()) {
      FlushClientLocked(client);
      if (ex.complete) {
        FinishExchangeLocked(client, /*reusable_input=*/false);
        return;
      }
    }
    UpstreamFailedLocked(client);
  }

  // The upstream connection failed before the response was complete.
  void UpstreamFailedLocked(const ConnectionPtr& client)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Exchange& ex = *ex_;
    const bool retry =
        !ex.response_started && ex.link != nullptr && ex.link->reused() &&
        ex.retries < kMaxStaleRetries && !ex.body_sent &&
        ex.request.framing == BodyFraming::kNone &&
        IsIdempotent(ex.request.method) && !ex.upstream_head.empty();
    if (retry) {
      // A stale pooled connection: send the request again on the
      // connection the pool gives next. The client never knows.
      config_->counters->retries.fetch_add(1, std::memory_order_relaxed);
      ++ex.retries;
      std::shared_ptr<UpstreamLink> link(std::move(ex.link));
      Defer([link] { link->Release(/*reusable=*/false); });
      ex.upstream = nullptr;
      ex.upstream_eof = false;
      ex.upstream_closed = false;
      AcquireLocked();
      return;
    }
    GatewayErrorLocked(client, 502);
  }

  // 502 or 504 from the proxy. Before the response head went out the client
  // gets the error (and keeps its connection if its request was complete);
  // after, the client connection is cut.
  void GatewayErrorLocked(const ConnectionPtr& client, int status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Exchange& ex = *ex_;
    (status == 504   ? config_->counters->gateway_timeout
     : status == 503 ? config_->counters->service_unavailable
                     : config_->counters->bad_gateway)
        .fetch_add(1, std::memory_order_relaxed);
    if (ex.head_sent) {
      EndExchangeLocked(/*reusable=*/false);
      closing_ = true;
      Defer([client] { client->Abort(); });
      return;
    }
    const bool close =
        !ex.request_complete || !ex.request.keep_alive || client_eof_;
    ClientOut().append(ErrorResponse(status, close));
    EndExchangeLocked(/*reusable=*/false);
    if (close) {
      closing_ = true;
      Defer([client] { client->Close(); });
    } else {
      ContinueClientLocked(client);
    }
  }

  // One timer per session, not per exchange: when it fires it checks the
  // exchange in progress (whichever it is) against its last activity and
  // re-arms for the rest; with no exchange it lapses until the next one.
  void ArmUpstreamTimerLocked(absl::Duration delay)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (options().upstream_timeout <= absl::ZeroDuration() ||
        upstream_timer_.valid()) {
      return;
    }
    std::weak_ptr<Session> weak_self = weak_from_this();
    upstream_timer_ = config_->loop->RunAfter(delay, [weak_self] {
      if (std::shared_ptr<Session> self = weak_self.lock()) {
        self->OnUpstreamTimer();
      }
    });
  }

  void OnUpstreamTimer() {
    {
      SessionLock lock(this);
      upstream_timer_ = EventLoop::TimerId();
      if (ex_ == nullptr || ex_->complete || client_closed_) return;
      ConnectionPtr client = client_.lock();
      if (client == nullptr) return;
      const absl::Time now = absl::Now();
      const absl::Duration timeout = options().upstream_timeout;
      // Waiting for the client (its body, or its reading) is not the
      // upstream's fault.
      const bool waiting_on_client =
          ex_->acquiring || ex_->upstream_paused ||
          (!ex_->request_complete && !client_paused_);
      if (waiting_on_client) ex_->last_activity = now;
      const absl::Duration idle = now - ex_->last_activity;
      if (idle < timeout) {
        ArmUpstreamTimerLocked(timeout - idle);
      } else {
        GatewayErrorLocked(client, 504);
        FlushLocked(client);
      }
    }
  }

  const std::shared_ptr<const SessionConfig> config_;
  const std::weak_ptr<Connection> client_;
  const std::string client_ip_;
  RequestListener request_listener_;
  ResponseListener response_listener_;

  Mutex mu_;
  // Run after mu_ is released.
  std::vector<Action> deferred_ ABSL_GUARDED_BY(mu_);
  // Run before; see HeldByThisThread.
  std::vector<Action> reentered_ ABSL_GUARDED_BY(mu_);
  HttpStreamParser request_parser_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Exchange> ex_ ABSL_GUARDED_BY(mu_);
  uint64_t exchange_ids_ ABSL_GUARDED_BY(mu_) = 0;
  int reject_status_ ABSL_GUARDED_BY(mu_) = 0;  // set by OnRequestHead
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool client_closed_ ABSL_GUARDED_BY(mu_) = false;
  bool client_eof_ ABSL_GUARDED_BY(mu_) = false;
  // For the upstream's backpressure.
  bool client_paused_ ABSL_GUARDED_BY(mu_) = false;
  EventLoop::TimerId request_timer_ ABSL_GUARDED_BY(mu_);
  EventLoop::TimerId linger_timer_ ABSL_GUARDED_BY(mu_);
  EventLoop::TimerId upstream_timer_ ABSL_GUARDED_BY(mu_);
  // The client's input buffer held unparsed bytes when last served: only
  // then does going on after an exchange need another on_data.
  bool client_input_pending_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

ReverseProxy::ReverseProxy(EventLoop* loop, UpstreamSet* upstreams,
                           UpstreamConnector* connector, ProxyOptions options)
    : loop_(loop),
      upstreams_(upstreams),
      connector_(connector),
      options_(std::move(options)) {}

ConnectionCallbacks ReverseProxy::ClientCallbacks() {
  // Lives as long as the proxy (every connection's session points to it).
  auto config = std::make_shared<const SessionConfig>(
      SessionConfig{loop_, upstreams_, connector_, &options_, &counters_});
  ConnectionCallbacks callbacks;
  callbacks.on_connect = [config](const ConnectionPtr& conn) {
    conn->SetContext(std::make_shared<Session>(config, conn));
  };
  callbacks.on_data = [](const ConnectionPtr& conn, ByteBuffer& input) {
    if (auto session = conn->GetContext<Session>()) {
      session->OnClientData(conn, input);
    } else {
      input.Consume(input.size());
    }
  };
  callbacks.on_peer_shutdown = [](const ConnectionPtr& conn) {
    if (auto session = conn->GetContext<Session>()) {
      session->OnClientPeerShutdown(conn);
    } else {
      conn->Close();
    }
  };
  callbacks.on_low_water = [](const ConnectionPtr& conn) {
    if (auto session = conn->GetContext<Session>()) {
      session->OnClientLowWater(conn);
    }
  };
  callbacks.on_close = [](const ConnectionPtr& conn, CloseReason,
                          const absl::Status&) {
    if (auto session = conn->GetContext<Session>()) session->OnClientClose();
    conn->SetContext(nullptr);
  };
  return callbacks;
}

ProxyStats ReverseProxy::stats() const {
  ProxyStats s;
  s.requests = counters_.requests.load(std::memory_order_relaxed);
  s.responses = counters_.responses.load(std::memory_order_relaxed);
  s.retries = counters_.retries.load(std::memory_order_relaxed);
  s.bad_gateway = counters_.bad_gateway.load(std::memory_order_relaxed);
  s.gateway_timeout = counters_.gateway_timeout.load(std::memory_order_relaxed);
  s.service_unavailable =
      counters_.service_unavailable.load(std::memory_order_relaxed);
  s.client_errors = counters_.client_errors.load(std::memory_order_relaxed);
  s.upstream_reused = counters_.upstream_reused.load(std::memory_order_relaxed);
  s.upstream_fresh = counters_.upstream_fresh.load(std::memory_order_relaxed);
  return s;
}

}  // namespace mill::proxy
