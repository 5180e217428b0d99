#include <cstdio>

#include "gtest/gtest.h"
#include "net/connection.h"
#include "net/internal/connection_config.h"
#include "net/internal/socket_transport.h"
#include "reactor/internal/source.h"
namespace mill {
TEST(Size, Print) {
  printf("Connection %zu\n", sizeof(Connection));
  printf("ConnWithT %zu\n", sizeof(net_internal::ConnectionWithTransport<
                                   net_internal::SocketTransport>));
  printf("SocketTransport %zu\n", sizeof(net_internal::SocketTransport));
  printf("ByteBuffer %zu\n", sizeof(ByteBuffer));
  printf("OutputQueue %zu\n", sizeof(net_internal::OutputQueue));
  printf("CompactMutex %zu\n", sizeof(CompactMutex));
  printf("Source %zu\n", sizeof(reactor_internal::Source));
  printf("IdleNode %zu\n", sizeof(net_internal::IdleTracker::Node));
  printf("SocketAddress %zu\n", sizeof(SocketAddress));
  printf("Interest %zu Registration %zu\n", sizeof(Interest),
         sizeof(Registration));
}
}  // namespace mill
