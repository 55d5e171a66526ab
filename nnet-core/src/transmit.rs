//! What the core asks its adapter to send.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::line::Line;

/// One datagram to send: the adapter writes `payload` to `to` from the endpoint's (or
/// the connection's) socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination address.
    pub to: SocketAddr,
    /// The datagram, at most the configured MTU.
    pub payload: Bytes,
}

/// One datagram a client sends, and the line it goes out on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTransmit {
    /// The line: its transport says UDP or TCP (one 2-byte length frame per datagram),
    /// its address where to.
    pub line: Line,
    /// Replace the line's socket before sending this (a new local port for UDP, a new
    /// stream for TCP): PROTOCOL.md section 6, rebinding. Datagrams still arriving on
    /// the old socket may be dropped.
    pub fresh_socket: bool,
    /// The datagram, at most the configured MTU.
    pub payload: Bytes,
}
