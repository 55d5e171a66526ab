//! Settings of the ARQ engine, with the reference `ikcp.c` defaults.

use crate::wire::{HEADER_LEN, NEW_EXTRA_LEN};

/// Smallest MTU the engine accepts (the reference refuses below 50 bytes).
pub const MIN_MTU: usize = 50;
/// Largest MTU: a UDP payload.
pub const MAX_MTU: usize = 65_507;
/// Smallest receive window: a peer may send messages of up to 127 fragments, so a
/// window below 128 segments could never hold one whole (the reference enforces the same).
pub const MIN_RECV_WINDOW: u16 = 128;
/// Most fragments one message can have: `frg` is one byte.
pub const MAX_FRAGMENTS: usize = 255;

/// Settings of one [`Arq`](super::Arq) engine.
///
/// `Default` gives the reference `ikcp.c` settings (normal mode: interval 100 ms,
/// no fast resend, congestion window on); [`ArqConfig::fast`] gives the usual "fast mode"
/// (`ikcp_nodelay(kcp, 1, 10, 2, 1)`). Check a hand-built config with
/// [`ArqConfig::validate`]; [`Arq::new`](super::Arq::new) does it too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArqConfig {
    /// Largest datagram the engine emits, header included (default 1400).
    pub mtu: usize,
    /// Send window in segments (default 32).
    pub send_window: u16,
    /// Receive window in segments, at least [`MIN_RECV_WINDOW`] (default 128).
    pub recv_window: u16,
    /// Flush interval in ms, 10..=5000 (default 100).
    pub interval_ms: u32,
    /// RTO mode: 0 normal (min RTO 100 ms, RTO doubles on loss), 1 nodelay (min RTO
    /// 30 ms, RTO grows by half), 2 nodelay with growth by half the current RTO estimate.
    pub nodelay: u8,
    /// Fast retransmit after this many later segments were acknowledged; 0 turns fast
    /// retransmit off (default 0).
    pub fast_resend: u32,
    /// A segment is fast-retransmitted at most while it was sent this many times; 0
    /// means no limit (default 5).
    pub fast_limit: u32,
    /// Congestion window on (default `true`; the reference's `nc = 0`).
    pub congestion_control: bool,
    /// Stream mode: messages are a byte stream, small writes are coalesced and `recv`
    /// returns whatever one segment holds (default `false`).
    pub stream: bool,
    /// A segment sent this many times marks the link dead (default 20).
    pub dead_link: u32,
    /// Count a fast-retransmit hint only from an ACK whose echoed `ts` is not older than
    /// the segment's last transmission (`IKCP_FASTACK_CONSERVE`; default `false` like
    /// the reference build; the `kcp-io` build of `ikcp.c` turns it on).
    pub fastack_conserve: bool,
    /// Time-based loss detection (RACK, RFC 8985; not in the reference): a segment is
    /// also retransmitted, like a fast retransmit, once a segment sent after it was
    /// acknowledged and a round trip plus a quarter of the smoothed RTT have passed
    /// since it was sent, however many ACKs came. Catches lost retransmissions and
    /// losses among sparse sends long before the backed-off RTO. Sender-side only: the
    /// wire is unchanged, the peer can be any KCP (default `false`, like `ikcp.c`).
    pub recent_ack: bool,
    /// Receiver side (not in the reference): the ACK of a segment that arrived above a
    /// gap goes out once more at the next flush, unless the gap closed by then. No
    /// later `una` covers such a segment, so with its one ACK lost the sender would
    /// send it again for nothing. A repeat costs a 24-byte ACK, so it is sent only
    /// while the recent share of duplicate arrivals (the sign of lost ACKs) times the
    /// segment's size is more than that. The wire is unchanged, the peer can be any KCP
    /// (default `false`, like `ikcp.c`).
    pub ack_repeat: bool,
    /// Largest message [`Arq::send`](super::Arq::send) accepts, bytes (default 64 KiB;
    /// at most what [`MAX_FRAGMENTS`] fragments and the receive window hold).
    pub max_message_size: usize,
    /// Most segments waiting to be sent or acknowledged before `send` refuses more with
    /// [`SendError::QueueFull`](super::SendError::QueueFull) (default 8192).
    pub max_send_queue: usize,
    /// Keep room in every segment for the 28 extra bytes of a NEW segment, so data can
    /// go out as NEW (PROTOCOL.md section 3) without passing the MTU. Clients set it;
    /// servers and plain KCP do not (default `false`).
    pub announce_room: bool,
    /// The empty-message rule of PROTOCOL.md section 3: `send` refuses an empty
    /// message and `recv` swallows received empty ones, which are session hellos
    /// (default `false`, where empty messages pass through like in the reference).
    pub reserve_empty_messages: bool,
}

impl Default for ArqConfig {
    fn default() -> Self {
        ArqConfig {
            mtu: 1400,
            send_window: 32,
            recv_window: MIN_RECV_WINDOW,
            interval_ms: 100,
            nodelay: 0,
            fast_resend: 0,
            fast_limit: 5,
            congestion_control: true,
            stream: false,
            dead_link: 20,
            fastack_conserve: false,
            recent_ack: false,
            ack_repeat: false,
            max_message_size: 64 * 1024,
            max_send_queue: 8192,
            announce_room: false,
            reserve_empty_messages: false,
        }
    }
}

impl ArqConfig {
    /// Fast mode, as `ikcp_nodelay(kcp, 1, 10, 2, 1)`: nodelay RTO, 10 ms interval, fast
    /// retransmit after 2 later acks, congestion window off. Other settings default.
    pub fn fast() -> Self {
        ArqConfig {
            nodelay: 1,
            interval_ms: 10,
            fast_resend: 2,
            congestion_control: false,
            ..ArqConfig::default()
        }
    }

    /// Payload bytes per segment: the MTU less the header (and less the NEW extra bytes
    /// when [`announce_room`](Self::announce_room) is set).
    pub fn mss(&self) -> usize {
        let room = if self.announce_room { NEW_EXTRA_LEN } else { 0 };
        self.mtu.saturating_sub(HEADER_LEN + room)
    }

    /// Fragments a message of `len` bytes takes (an empty message takes one).
    pub fn fragments(&self, len: usize) -> usize {
        len.div_ceil(self.mss().max(1)).max(1)
    }

    /// Checks every setting and names the first one out of range.
    pub fn validate(&self) -> Result<(), ArqConfigError> {
        if !(MIN_MTU..=MAX_MTU).contains(&self.mtu) || self.mss() == 0 {
            return Err(ArqConfigError::Mtu(self.mtu));
        }
        if self.send_window == 0 {
            return Err(ArqConfigError::SendWindow);
        }
        if self.recv_window < MIN_RECV_WINDOW {
            return Err(ArqConfigError::RecvWindow(self.recv_window));
        }
        if !(10..=5000).contains(&self.interval_ms) {
            return Err(ArqConfigError::Interval(self.interval_ms));
        }
        if self.nodelay > 2 {
            return Err(ArqConfigError::NoDelay(self.nodelay));
        }
        if self.dead_link == 0 {
            return Err(ArqConfigError::DeadLink);
        }
        let max_fragments = MAX_FRAGMENTS.min(usize::from(self.recv_window));
        if self.max_message_size == 0 || self.fragments(self.max_message_size) > max_fragments {
            return Err(ArqConfigError::MaxMessageSize {
                size: self.max_message_size,
                limit: max_fragments * self.mss(),
            });
        }
        if self.max_send_queue == 0 {
            return Err(ArqConfigError::MaxSendQueue);
        }
        Ok(())
    }
}

/// A setting of [`ArqConfig`] that is out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArqConfigError {
    /// The MTU is outside 50..=65507 or leaves no room for payload.
    #[error("mtu {0} is outside {MIN_MTU}..={MAX_MTU} or leaves no room for payload")]
    Mtu(usize),
    /// The send window is zero.
    #[error("send_window must be at least 1 segment")]
    SendWindow,
    /// The receive window is below [`MIN_RECV_WINDOW`].
    #[error("recv_window {0} is below {MIN_RECV_WINDOW} segments, too small for a peer's largest message")]
    RecvWindow(u16),
    /// The interval is outside 10..=5000 ms.
    #[error("interval_ms {0} is outside 10..=5000")]
    Interval(u32),
    /// `nodelay` is not 0, 1 or 2.
    #[error("nodelay {0} is not 0, 1 or 2")]
    NoDelay(u8),
    /// The dead-link count is zero.
    #[error("dead_link must be at least 1")]
    DeadLink,
    /// The message size limit is zero or needs more fragments than a message can have.
    #[error("max_message_size {size} is zero or above {limit} bytes (255 fragments and the receive window)")]
    MaxMessageSize {
        /// The configured size.
        size: usize,
        /// The largest size the other settings allow.
        limit: usize,
    },
    /// The send queue limit is zero.
    #[error("max_send_queue must be at least 1 segment")]
    MaxSendQueue,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_fast_mode_are_valid() {
        assert_eq!(ArqConfig::default().validate(), Ok(()));
        assert_eq!(ArqConfig::fast().validate(), Ok(()));
        assert_eq!(ArqConfig::default().mss(), 1376);
    }

    #[test]
    fn names_the_bad_setting() {
        let bad = ArqConfig {
            recv_window: 64,
            ..ArqConfig::default()
        };
        assert_eq!(bad.validate(), Err(ArqConfigError::RecvWindow(64)));
        let too_big = ArqConfig {
            max_message_size: 200 * 1376,
            ..ArqConfig::default()
        };
        assert!(matches!(
            too_big.validate(),
            Err(ArqConfigError::MaxMessageSize { .. })
        ));
        let room = ArqConfig {
            announce_room: true,
            ..ArqConfig::default()
        };
        assert_eq!(room.mss(), 1348);
    }
}
