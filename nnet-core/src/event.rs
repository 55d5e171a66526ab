//! What the core tells the application: events and close reasons.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::line::Line;
use crate::wire::FinReason;

/// Why a session ended. Every session ends with exactly one `Closed` event carrying one
/// of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// This side called `close()`; everything it sent was acknowledged before the FIN.
    Closed,
    /// This side called `close()`, but the linger timeout expired with data still
    /// unacknowledged; the FIN was sent anyway.
    LingerExpired,
    /// The peer ended the conversation normally (FIN with reason normal).
    PeerClosed,
    /// The session was kicked by the server with this application reason code. On the
    /// server this is the end of a `kick()`; on the client it follows `Kicked`.
    Kicked(u32),
    /// The server does not know this session (it restarted, or the balancer moved it):
    /// a FIN(reset), or every line answered that the conv is unknown.
    Reset,
    /// The client's conv collided with another session's and the retries ran out.
    Collision,
    /// Nothing was received for the idle timeout, or the peer said so (FIN timeout).
    Timeout,
    /// A segment was retransmitted `dead_link` times without an acknowledgement.
    DeadLink,
    /// No line answered for `max_retries` probe rounds in a row (client only).
    Unreachable,
    /// The server's endpoint expired a session that never sent a second datagram within
    /// the handshake timeout (server only).
    HandshakeTimeout,
}

impl CloseReason {
    /// The reason written in the FIN this side sends when it closes for this reason, or
    /// `None` when no FIN is sent (the peer is gone or already told us).
    pub(crate) fn fin_to_send(self) -> Option<FinReason> {
        match self {
            CloseReason::Closed | CloseReason::LingerExpired => Some(FinReason::Normal),
            CloseReason::Timeout => Some(FinReason::Timeout),
            CloseReason::Kicked(_) => Some(FinReason::Kicked),
            CloseReason::PeerClosed
            | CloseReason::Reset
            | CloseReason::Collision
            | CloseReason::DeadLink
            | CloseReason::Unreachable
            | CloseReason::HandshakeTimeout => None,
        }
    }

    /// The close reason a received FIN gives the receiving side.
    pub(crate) fn from_fin(reason: FinReason) -> CloseReason {
        match reason {
            FinReason::Normal | FinReason::Other(_) => CloseReason::PeerClosed,
            FinReason::Reset => CloseReason::Reset,
            FinReason::Kicked => CloseReason::Kicked(0),
            FinReason::Collision => CloseReason::Collision,
            FinReason::Timeout => CloseReason::Timeout,
        }
    }
}

/// An opaque handle to one server-side session. It stays unique for the life of the
/// endpoint: a handle of a freed session never names a later one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

/// How a session's remote address came to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RemoteChange {
    /// The client switched lines: a NEW with its token and a fresher `ts` from a new
    /// address.
    LineSwitch,
    /// Same IP, another port, a fresher PUSH: a NAT or proxy rebinding.
    Rebinding,
}

/// What a server [`Endpoint`](crate::endpoint::Endpoint) tells its application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// A new session started.
    Accepted {
        /// The session.
        conn: ConnId,
        /// Its conversation id.
        conv: u32,
        /// Where its datagrams come from (a gateway, proxy or the client itself).
        remote: SocketAddr,
        /// The client's real address: from a trusted gateway's path block, else `remote`.
        real_ip: SocketAddr,
        /// Whether this is a plain KCP client (no NEW, cannot switch lines).
        plain_kcp: bool,
    },
    /// One whole message from the client.
    Message {
        /// The session.
        conn: ConnId,
        /// The message (never empty).
        data: Bytes,
    },
    /// The session's datagrams now come from (and answers now go to) another address.
    RemoteChanged {
        /// The session.
        conn: ConnId,
        /// The previous remote.
        from: SocketAddr,
        /// The new remote.
        to: SocketAddr,
        /// Line switch or rebinding.
        cause: RemoteChange,
    },
    /// A trusted gateway reported a different real client address.
    RealIpChanged {
        /// The session.
        conn: ConnId,
        /// The new real address.
        real_ip: SocketAddr,
    },
    /// The session ended and its state is freed; the handle is now invalid.
    Closed {
        /// The session.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
}

/// What a client [`Connection`](crate::client::Connection) tells its application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server acknowledged the session's first segment; sends made before this were
    /// queued and are now on their way.
    Connected {
        /// The conversation id in use (it changes if a collision forced a retry).
        conv: u32,
    },
    /// One whole message from the server.
    Message(Bytes),
    /// The server kicked this client with an application reason code. Messages received
    /// before the kick have been delivered; `Closed(Kicked(reason))` follows.
    Kicked(u32),
    /// The session moved onto a line: the first choice after connecting (`from` is
    /// `None`), a failover, or a move to a faster line. `from == Some(to)` when the
    /// failing line itself answered best (from a fresh socket).
    Switched {
        /// The line the session left.
        from: Option<Line>,
        /// The line it runs on now.
        to: Line,
        /// Why it moved.
        reason: SwitchReason,
    },
    /// A probe round ended without any line answering: one failed attempt of
    /// `max_retries`. The next round starts at once; the application may supply fresh
    /// lines now ([`Connection::set_lines`](crate::client::Connection::set_lines)).
    ProbeFailed {
        /// Failed rounds in a row, this one included.
        attempt: u32,
        /// The limit: at `attempt == max_retries` the connection closes with
        /// [`Unreachable`](CloseReason::Unreachable).
        max_retries: u32,
    },
    /// The connection ended; nothing more will happen on it.
    Closed(CloseReason),
}

/// Why a client's session moved to another line ([`ClientEvent::Switched`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SwitchReason {
    /// The first line chosen after connecting (the fastest to answer).
    Connect,
    /// Nothing came back on the current line for `line_timeout` while something was
    /// unacknowledged or a keepalive PING unanswered.
    Silent,
    /// The current line delivered an empty datagram (a proxy whose upstream refused).
    EmptyDatagram,
    /// The server behind the current line answered that it does not know the session,
    /// and another line's server does.
    ServerLost,
    /// The application's new line list no longer holds the current line.
    LineRemoved,
    /// Another line stayed clearly faster ([`FasterLine`](crate::config::FasterLine)).
    Faster,
}
