//! The server's record of one session: the [`Entry`] (the shared session state plus
//! what only the server knows: remote, real IP, token, freshness of the remote) and
//! its [`Head`], the little a PING needs, kept apart in a dense table.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Instant;

use super::buffer_pool::BufferPool;
use crate::session::Session;
use crate::wire::Token;

/// What a PING reads and writes of its session: one cache line, kept apart from the
/// [`Entry`] in a dense table (the slab's heads).
///
/// Why apart: with 100k sessions the records span about 80 MB, so a line of one is a
/// DRAM miss and, on top, a page-table walk (the TLB covers a few MB). A PING needs
/// only these fields; in their own table (64 bytes a session, 6.4 MB for 100k) its
/// walk is usually cached, which took a batch of PINGs at 100k sessions from about
/// 100 to 75 ns each, as with 1k sessions (BENCHMARKS.md). Data datagrams do not read
/// the head: `remote` and `confirmed` are copies of the entry's, written where those
/// change (a remote change, a confirmation), so the data path keeps its record lines
/// only.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Head {
    /// A copy of [`Entry::remote`]: only a PING from there is a keepalive.
    pub remote: SocketAddr,
    /// The latest keepalive PING since the session last looked: the endpoint moves it
    /// into the session's last receive time ([`fold_keepalive`](Self::fold_keepalive))
    /// when that time says the session is idle.
    pub keepalive: Option<Instant>,
    /// Keepalive PINGs from the remote (counted in the session's `datagrams_in`).
    pub pings: u64,
    /// A copy of [`Entry::confirmed`].
    pub confirmed: bool,
    /// The slot holds a session (a head of a free slot is left as it was).
    pub live: bool,
}

impl Head {
    /// The head of a free slot.
    pub(crate) const FREE: Head = Head {
        remote: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        keepalive: None,
        pings: 0,
        confirmed: false,
        live: false,
    };

    /// The head of a session just started by a datagram from `remote`.
    pub(crate) fn new(remote: SocketAddr) -> Head {
        Head {
            remote,
            live: true,
            ..Head::FREE
        }
    }

    /// Moves the keepalive noted since the last call, if any, into the session's last
    /// receive time, so a PING keeps the session alive as if it had written the
    /// session itself.
    #[inline]
    pub(crate) fn fold_keepalive(&mut self, session: &mut Session) {
        if let Some(at) = self.keepalive.take() {
            session.touch(at);
        }
    }
}

/// Confirms the session if, with the datagram just counted, it has received two
/// (PROTOCOL.md section 8); whether it did. Writes both copies of `confirmed`. Reads
/// and writes nothing of the head once the session is confirmed (the data path's
/// case).
pub(crate) fn confirm_if_second(head: &mut Head, entry: &mut Entry) -> bool {
    if entry.confirmed || entry.datagrams_in() + head.pings < 2 {
        return false;
    }
    entry.confirmed = true;
    head.confirmed = true;
    true
}

/// One session on the server, stored inline in the endpoint's slab (about 600 bytes).
///
/// `repr(C)` keeps the declaration order: what a data datagram touches ends at
/// [`HOT_BYTES`](Self::HOT_BYTES), in the slot's first 5 lines of 10; what follows the
/// session is rarely read.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Entry {
    /// Where answers go: the address the session's datagrams come from.
    pub remote: SocketAddr,
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
    pub session: Session,
    pub conv: u32,
    pub stats: EntryStats,
    /// The client's real address (path block from a trusted gateway, else `remote`).
    pub real_ip: SocketAddr,
    /// The session token; `None` for a plain KCP client (it cannot switch lines).
    pub token: Option<Token>,
    pub created: Instant,
}

impl Entry {
    /// The record of a session started at `now` by a first segment with `fresh_ts`
    /// from `remote`. Its engine starts without buffers (it takes a pooled set when
    /// data comes).
    pub(crate) fn new(
        session: Session,
        conv: u32,
        fresh_ts: u32,
        remote: SocketAddr,
        real_ip: SocketAddr,
        token: Option<Token>,
        now: Instant,
    ) -> Entry {
        Entry {
            session,
            remote,
            confirmed: false,
            conv,
            real_ip,
            token,
            fresh_ts,
            created: now,
            transmit_queued: false,
            readable_queued: false,
            buffers_returned: true,
            stats: EntryStats::default(),
        }
    }

    /// Data datagrams from the client accepted for this session: those its engine took
    /// in (PINGs are counted in [`Head::pings`]).
    pub(crate) fn datagrams_in(&self) -> u64 {
        self.session.arq().stats().datagrams_in
    }

    /// Datagrams sent to the client: the engine's and the session's FINs and KICKs.
    pub(crate) fn datagrams_out(&self) -> u64 {
        self.session.arq().stats().datagrams_out + self.session.controls_sent()
    }

    /// Bytes at the start of a record that one data datagram and the flush after it
    /// touch (the rest: the engine's rare counters, conv, the rare counters, real IP,
    /// token, creation time).
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

/// The endpoint's rare counters of one session: what
/// [`SessionStats`](super::SessionStats) reports besides the engine's figures and the
/// datagram counts ([`Entry::datagrams_in`], [`Entry::datagrams_out`], [`Head::pings`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct EntryStats {
    /// Times the remote moved (switch or rebinding).
    pub remote_changes: u64,
    /// Datagrams for this session dropped (wrong remote, refused by the engine).
    pub drops: u64,
}
