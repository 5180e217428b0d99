// What an idle connection costs in its own allocation (issue 16 §6): the
// Connection, its SocketTransport and the loop's registration state, which
// one make_shared block holds. A field added without care shows here before
// it shows in bench/idle_memory.py.
#include <cstddef>

#include "gtest/gtest.h"
#include "net/connection.h"
#include "net/internal/connection_config.h"
#include "net/internal/socket_transport.h"

namespace mill {
namespace {

TEST(ConnectionSizeTest, AConnectionWithItsTransportFitsItsBudget) {
  using Whole =
      net_internal::ConnectionWithTransport<net_internal::SocketTransport>;
  // 344 bytes + make_shared's 16-byte control block = a 368-byte chunk.
  EXPECT_LE(sizeof(Whole), 344u);
  // The loop's state for the registration is inside (RegisteredHandler),
  // not a block of its own.
  EXPECT_LE(RegisteredHandler::kSourceSize, 48u);
  EXPECT_GE(sizeof(net_internal::SocketTransport), sizeof(RegisteredHandler));
}

}  // namespace
}  // namespace mill
