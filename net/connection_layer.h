// ConnectionLayer: a protocol that a TcpServer's or TcpClient's connections
// run their bytes through, such as TLS (//tls: TlsServerContext and
// TlsClientContext are layers). The connection stays the same Connection:
// on_data sees the layer's plaintext and Send() takes plaintext; the layer
// adds a handshake (on_connect runs once it completed; a failure is a
// connect error for a client and counted in TcpServerStats for a server)
// and its own end-of-stream (see CloseReason::kTruncated).
//
// //net knows only this interface, so a program that uses no layer never
// links one (OpenSSL, say).
//
// Thread-safety: a layer is immutable once created, or synchronises itself;
// servers and clients on any number of loops may share one.
// Ownership: servers and clients hold it by shared_ptr (TcpClientOptions'
// for the client's life; a layer given to one Connect until that connect
// finishes). A layer's connections must hold whatever of it they still use
// (TLS connections hold their context), as they may outlive it.
#ifndef MILL_IO_NET_CONNECTION_LAYER_H_
#define MILL_IO_NET_CONNECTION_LAYER_H_

#include "net/connection.h"

namespace mill {

namespace net_internal {
struct NewConnectionArgs;
}  // namespace net_internal

class ConnectionLayer {
 public:
  virtual ~ConnectionLayer() = default;

  // True for a layer that accepts (TcpServerOptions::layer), false for one
  // that connects (TcpClientOptions::layer).
  virtual bool is_server() const = 0;

  // For //net: makes the connection described by `args`, with the layer's
  // transport over its socket.
  virtual ConnectionPtr NewConnection(
      net_internal::NewConnectionArgs args) const = 0;
};

}  // namespace mill

#endif  // MILL_IO_NET_CONNECTION_LAYER_H_
