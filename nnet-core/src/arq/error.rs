//! Errors of the ARQ engine.

use crate::wire::WireError;

/// Why [`Arq::send`](super::Arq::send) refused a message. The engine is unchanged and
/// stays usable: nothing of the refused message was queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Empty messages are reserved for the session hello (PROTOCOL.md section 3).
    #[error("empty messages are reserved for the session layer")]
    Empty,
    /// The message is larger than `max_message_size`.
    #[error("message of {size} bytes is larger than the {max} byte limit")]
    TooLarge {
        /// Size of the refused message.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// Queuing the message would pass `max_send_queue` segments waiting to be sent or
    /// acknowledged; try again once the peer has acknowledged some.
    #[error("send queue full: {queued} segments waiting, {needed} more needed, limit {max}")]
    QueueFull {
        /// Segments already waiting.
        queued: usize,
        /// Segments the message needs.
        needed: usize,
        /// The configured limit.
        max: usize,
    },
}

/// Why [`Arq::input`](super::Arq::input) dropped a datagram. Nothing in the engine
/// changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The datagram does not parse (PROTOCOL.md section 1).
    #[error("malformed datagram: {0}")]
    Malformed(#[from] WireError),
    /// The datagram belongs to another conversation.
    #[error("datagram for conv {found:#010x}, this engine is conv {expected:#010x}")]
    WrongConv {
        /// This engine's conv.
        expected: u32,
        /// The datagram's conv.
        found: u32,
    },
}

/// [`Arq::set_announce`](super::Arq::set_announce) was called on an engine without
/// [`ArqConfig::announce_room`](super::ArqConfig::announce_room): its NEW segments would
/// not fit in the MTU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("NEW segments need ArqConfig::announce_room, or they would pass the MTU")]
pub struct NoAnnounceRoom;
