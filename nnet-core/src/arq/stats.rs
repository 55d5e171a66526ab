//! Counters of one engine.

/// Counters of one [`Arq`](super::Arq) engine since it was created, as
/// [`Arq::stats`](super::Arq::stats) reports them (a copy of 128 bytes). They never
/// reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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

/// The counters one datagram in or out moves, 32 bits wide, so that they take half a
/// cache line among the engine's hot fields instead of a whole one. Each is the low part
/// of its 64-bit counter in [`ArqStats`], which the engine keeps with its rare fields:
/// [`count`] carries into the total when the low part wraps, so the total stays exact
/// and is touched once per 2^32.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HotCounts {
    pub(crate) datagrams_in: u32,
    pub(crate) datagrams_out: u32,
    pub(crate) bytes_out: u32,
    pub(crate) data_segments_in: u32,
    pub(crate) data_segments_out: u32,
    pub(crate) acks_in: u32,
    pub(crate) acks_out: u32,
    pub(crate) messages_out: u32,
}

impl HotCounts {
    /// `totals` (the carried parts and the rare counters) with these low parts added:
    /// the engine's counters as the application sees them.
    pub(crate) fn add_to(&self, mut totals: ArqStats) -> ArqStats {
        for (total, low) in [
            (&mut totals.datagrams_in, self.datagrams_in),
            (&mut totals.datagrams_out, self.datagrams_out),
            (&mut totals.bytes_out, self.bytes_out),
            (&mut totals.data_segments_in, self.data_segments_in),
            (&mut totals.data_segments_out, self.data_segments_out),
            (&mut totals.acks_in, self.acks_in),
            (&mut totals.acks_out, self.acks_out),
            (&mut totals.messages_out, self.messages_out),
        ] {
            *total += u64::from(low);
        }
        totals
    }
}

/// Adds `n` to a hot counter's `low` part, carrying 2^32 into its `total` when it
/// wraps.
#[inline(always)]
pub(crate) fn count(low: &mut u32, total: &mut u64, n: u32) {
    let (sum, wrapped) = low.overflowing_add(n);
    *low = sum;
    if wrapped {
        carry(total);
    }
}

/// Out of line, so that the compiler does not keep `total` in a register through a loop
/// of [`count`]s: that would read the total's cold cache line before every such loop.
#[cold]
#[inline(never)]
fn carry(total: &mut u64) {
    *total += 1 << 32;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_counts_carry_into_their_totals() {
        let (mut counts, mut totals) = (HotCounts::default(), ArqStats::default());
        count(&mut counts.bytes_out, &mut totals.bytes_out, u32::MAX - 1);
        count(&mut counts.datagrams_in, &mut totals.datagrams_in, 1);
        assert_eq!(counts.add_to(totals).bytes_out, u64::from(u32::MAX - 1));
        count(&mut counts.bytes_out, &mut totals.bytes_out, 1400);
        count(&mut counts.bytes_out, &mut totals.bytes_out, u32::MAX);
        let seen = counts.add_to(totals);
        assert_eq!(
            seen.bytes_out,
            u64::from(u32::MAX - 1) + 1400 + u64::from(u32::MAX)
        );
        assert_eq!(seen.datagrams_in, 1);
        assert_eq!(seen.datagrams_out, 0);
    }
}
