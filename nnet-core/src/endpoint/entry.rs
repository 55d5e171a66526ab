//! The server's record of one session: the shared session state plus what only the
//! server knows (remote, real IP, token, freshness of the remote).

use std::net::SocketAddr;
use std::time::Instant;

use super::stats::SessionStats;
use crate::session::Session;
use crate::wire::Token;

/// One session on the server. Boxed in the endpoint's slab; about 600 bytes while idle.
#[derive(Debug)]
pub(crate) struct Entry {
    pub session: Session,
    pub conv: u32,
    /// Where answers go: the address the session's datagrams come from.
    pub remote: SocketAddr,
    /// The client's real address (path block from a trusted gateway, else `remote`).
    pub real_ip: SocketAddr,
    /// The session token; `None` for a plain KCP client (it cannot switch lines).
    pub token: Option<Token>,
    /// The newest `ts` of a data segment from the current remote: a switch needs a
    /// newer one (PROTOCOL.md section 3).
    pub fresh_ts: u32,
    /// A second datagram arrived (PROTOCOL.md section 8).
    pub confirmed: bool,
    pub created: Instant,
    /// In the endpoint's transmit queue.
    pub transmit_queued: bool,
    /// In the endpoint's readable queue.
    pub readable_queued: bool,
    pub stats: SessionStats,
}
