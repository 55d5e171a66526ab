//! The server's record of one session: the shared session state plus what only the
//! server knows (remote, real IP, token, freshness of the remote).

use std::net::SocketAddr;
use std::time::Instant;

use super::buffer_pool::BufferPool;
use crate::session::Session;
use crate::wire::Token;

/// One session on the server, stored inline in the endpoint's slab (about 820 bytes).
///
/// `repr(C)` keeps the declaration order: what a PING or the first checks of a datagram
/// read (remote, confirmation, the counters, then the session's last receive time at
/// the start of [`Session`]) share the record's first two cache lines; what a data
/// datagram touches ends at [`HOT_BYTES`](Self::HOT_BYTES), in the slot's first 10
/// lines of 13; what follows the session is rarely read.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Entry {
    /// Where answers go: the address the session's datagrams come from.
    pub remote: SocketAddr,
    pub conv: u32,
    /// The newest `ts` of a data segment from the current remote: a switch needs a
    /// newer one (PROTOCOL.md section 3).
    pub fresh_ts: u32,
    /// A second datagram arrived (PROTOCOL.md section 8).
    pub confirmed: bool,
    /// In the endpoint's transmit queue.
    pub transmit_queued: bool,
    /// In the endpoint's readable queue.
    pub readable_queued: bool,
    /// The engine gave its buffers to the endpoint's pool when it went quiet, and has
    /// not taken a set since.
    pub buffers_returned: bool,
    pub stats: EntryStats,
    pub session: Session,
    /// The client's real address (path block from a trusted gateway, else `remote`).
    pub real_ip: SocketAddr,
    /// The session token; `None` for a plain KCP client (it cannot switch lines).
    pub token: Option<Token>,
    pub created: Instant,
}

impl Entry {
    /// Bytes at the start of a record that one data datagram and the flush after it
    /// touch (the rest: the engine's rare counters, real IP, token, creation time).
    pub(crate) const HOT_BYTES: usize = std::mem::offset_of!(Entry, session) + Session::HOT_BYTES;

    /// Before the session gets data to receive or send: if its engine gave its buffers
    /// back, it takes the pool's last set (if any), so it does not allocate its own.
    /// O(1).
    #[inline]
    pub(crate) fn adopt_pooled_buffers(&mut self, pool: &mut BufferPool) {
        if self.buffers_returned {
            self.buffers_returned = false;
            if let Some(buffers) = pool.take() {
                self.session.arq_mut().adopt_buffers(buffers);
            }
        }
    }
}

/// The endpoint's own counters of one session (the engine keeps the rest): what
/// [`SessionStats`](super::SessionStats) reports besides the engine's figures.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct EntryStats {
    /// Datagrams from the client accepted for this session.
    pub datagrams_in: u64,
    /// Datagrams sent to the client.
    pub datagrams_out: u64,
    /// Times the remote moved (switch or rebinding).
    pub remote_changes: u64,
    /// Datagrams for this session dropped (wrong remote, refused by the engine).
    pub drops: u64,
}
