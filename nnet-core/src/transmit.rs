//! What the core asks its adapter to send.

use std::net::SocketAddr;

use bytes::Bytes;

/// One datagram to send: the adapter writes `payload` to `to` from the endpoint's (or
/// the connection's) socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination address.
    pub to: SocketAddr,
    /// The datagram, at most the configured MTU.
    pub payload: Bytes,
}
