//! Counters of a server endpoint and of its sessions.

use crate::arq::ArqStats;

/// Datagrams an endpoint dropped, by reason. Each is a count since the endpoint started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Did not parse (PROTOCOL.md section 1).
    pub malformed: u64,
    /// A NEW with sn > 0 and una = 0 for an unknown conv: a first segment overtaken.
    pub overtaken_first: u64,
    /// Stale traffic for an unknown conv (answered with FIN(reset) when the rate allows).
    pub stale: u64,
    /// A FIN, KICK or PONG for an unknown conv (never answered).
    pub unknown_control: u64,
    /// From an address other than the session's remote, and neither a switch nor a
    /// rebinding.
    pub wrong_remote: u64,
    /// A NEW with another token and sn > 0 for a known conv: forged or confused.
    pub forged_new: u64,
    /// A filled path block from a source that is not a trusted gateway (the datagram is
    /// still processed; only the block is ignored).
    pub untrusted_path_block: u64,
    /// A new session refused: `max_sessions` reached.
    pub max_sessions: u64,
    /// A new session refused: `max_unconfirmed` reached.
    pub max_unconfirmed: u64,
    /// A new session refused: the source opened too many this second.
    pub source_rate: u64,
    /// A FIN(reset) or FIN(collision) not sent: rate limit.
    pub answer_rate: u64,
    /// An answer not queued: the response queue was full.
    pub response_queue_full: u64,
    /// A datagram the session's engine refused.
    pub refused_by_session: u64,
    /// A command the server never receives (KICK, PONG).
    pub unexpected_command: u64,
}

/// Counters of a server endpoint since it started. Reading them is free.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Datagrams handed to `handle_datagram`.
    pub datagrams_in: u64,
    /// Datagrams returned by `poll_transmit`.
    pub datagrams_out: u64,
    /// Sessions started.
    pub sessions_accepted: u64,
    /// Sessions ended and freed.
    pub sessions_closed: u64,
    /// PONGs sent.
    pub pongs: u64,
    /// FIN(reset) answers sent to stale traffic.
    pub resets: u64,
    /// FIN(collision) answers sent.
    pub collisions: u64,
    /// Line switches and rebindings.
    pub remote_changes: u64,
    /// Dropped datagrams, by reason.
    pub drops: DropCounts,
}

/// Counters of one server-side session, with its engine's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Datagrams from the client accepted for this session.
    pub datagrams_in: u64,
    /// Datagrams sent to the client.
    pub datagrams_out: u64,
    /// Times the remote moved (switch or rebinding).
    pub remote_changes: u64,
    /// Datagrams for this session dropped (wrong remote, refused by the engine).
    pub drops: u64,
    /// Smoothed RTT, ms.
    pub srtt_ms: u32,
    /// Current RTO, ms.
    pub rto_ms: u32,
    /// The engine's counters.
    pub arq: ArqStats,
}
