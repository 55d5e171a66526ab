//! Counters of one engine.

/// Counters of one [`Arq`](super::Arq) engine since it was created. Reading them is
/// free; they never reset.
///
/// `repr(C)`: the counters one datagram in or out moves come first, in one cache line
/// (`HOT_BYTES`); the rarer ones follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ArqStats {
    /// Datagrams accepted by [`Arq::input`](super::Arq::input).
    pub datagrams_in: u64,
    /// Datagrams handed to [`Arq::poll_output`](super::Arq::poll_output).
    pub datagrams_out: u64,
    /// Bytes in those datagrams.
    pub bytes_out: u64,
    /// Data segments received (new and duplicate).
    pub data_segments_in: u64,
    /// Data segments sent, first transmissions and retransmissions.
    pub data_segments_out: u64,
    /// ACK segments received.
    pub acks_in: u64,
    /// ACK segments sent.
    pub acks_out: u64,
    /// Whole messages handed to the application.
    pub messages_out: u64,
    /// Messages accepted by `send`.
    pub messages_in: u64,
    /// Retransmissions on RTO expiry.
    pub timeout_retransmits: u64,
    /// Fast retransmissions (after `fast_resend` later ACKs).
    pub fast_retransmits: u64,
    /// Retransmissions of segments found lost by the time-based rule
    /// ([`ArqConfig::recent_ack`](super::ArqConfig::recent_ack)).
    pub recent_ack_retransmits: u64,
    /// Segments sent again because the path changed ([`Arq::on_path_change`](super::Arq::on_path_change)).
    pub path_resends: u64,
    /// Datagrams refused by `input` (malformed or for another conv).
    pub datagrams_refused: u64,
    /// Data segments received again or already delivered.
    pub duplicate_segments_in: u64,
    /// Data segments beyond the receive window, dropped.
    pub out_of_window_segments_in: u64,
}

impl ArqStats {
    /// Bytes at the start that receiving or sending a datagram moves (up to
    /// `messages_out`): one cache line.
    pub(crate) const HOT_BYTES: usize = std::mem::offset_of!(ArqStats, messages_in);
}
