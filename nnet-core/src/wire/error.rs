//! Why a datagram did not parse.

/// A datagram or segment that does not follow PROTOCOL.md. The endpoint counts these by
/// kind and drops the datagram whole; none of them ever changes session state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the next field needs.
    #[error("truncated: needed {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A command byte that PROTOCOL.md does not define.
    #[error("unknown command byte {0}")]
    UnknownCmd(u8),
}
