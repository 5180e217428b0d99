// ConnectionList: the open connections of a TcpServer or TcpClient, linked
// through two pointers inside each Connection: no allocation and no hash
// node per connection (every idle connection pays for what its owner keeps
// about it). Internal: not part of the API.
//
// A connection is listed from just before it starts until its FinishClose
// (ConnectionOwner::OnClosed); it is alive all that time (its creator, its
// registration, or the close in progress holds it), so the list holds plain
// pointers.
//
// Thread-safety: thread-compatible; the owner's lock guards the list and
// the hooks of the connections in it.
#ifndef MILL_IO_NET_INTERNAL_CONNECTION_LIST_H_
#define MILL_IO_NET_INTERNAL_CONNECTION_LIST_H_

#include <cstddef>
#include <vector>

#include "net/connection.h"
#include "net/internal/connection_config.h"

namespace mill {
namespace net_internal {

class ConnectionList {
 public:
  ConnectionList() = default;
  ConnectionList(const ConnectionList&) = delete;
  ConnectionList& operator=(const ConnectionList&) = delete;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Adds `conn` (not listed yet) at the back.
  void PushBack(Connection* conn) {
    ConnectionAccess::Prev(*conn) = tail_;
    ConnectionAccess::Next(*conn) = nullptr;
    if (tail_ != nullptr) {
      ConnectionAccess::Next(*tail_) = conn;
    } else {
      head_ = conn;
    }
    tail_ = conn;
    ++size_;
  }

  // Removes `conn`; false (and nothing done) if it is not listed.
  bool Remove(Connection* conn) {
    Connection*& prev = ConnectionAccess::Prev(*conn);
    Connection*& next = ConnectionAccess::Next(*conn);
    if (prev == nullptr && head_ != conn) return false;
    (prev != nullptr ? ConnectionAccess::Next(*prev) : head_) = next;
    (next != nullptr ? ConnectionAccess::Prev(*next) : tail_) = prev;
    prev = next = nullptr;
    --size_;
    return true;
  }

  // Shared pointers to every listed connection, in order.
  std::vector<ConnectionPtr> Snapshot() const {
    std::vector<ConnectionPtr> result;
    result.reserve(size_);
    for (Connection* c = head_; c != nullptr; c = ConnectionAccess::Next(*c)) {
      result.push_back(ConnectionAccess::SharedOf(*c));
    }
    return result;
  }

 private:
  Connection* head_ = nullptr;
  Connection* tail_ = nullptr;
  size_t size_ = 0;
};

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_CONNECTION_LIST_H_
