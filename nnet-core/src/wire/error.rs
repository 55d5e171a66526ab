//! Why a datagram did not parse.

use super::Cmd;

/// A datagram or segment that does not follow PROTOCOL.md. The endpoint counts these by
/// kind and drops the datagram whole; none of them ever changes session state.
///
/// Offsets are byte offsets into the datagram of the segment at fault (where its header
/// starts), so a log line says where the datagram went wrong.
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
    /// A datagram of zero bytes (what nginx sends when its upstream refused a datagram).
    #[error("empty datagram")]
    Empty,
    /// Bytes left at the end of a datagram, after its last whole segment, that are too
    /// few for a 24-byte header.
    #[error("short segment at offset {offset}: {available} bytes, a header needs 24")]
    ShortSegment {
        /// Where the partial segment starts.
        offset: usize,
        /// Bytes from `offset` to the end of the datagram.
        available: usize,
    },
    /// A segment's `len` reaches past the end of the datagram.
    #[error("segment at offset {offset} announces {len} payload bytes, {available} available")]
    PayloadOverrun {
        /// Where the segment starts.
        offset: usize,
        /// The segment's `len` field.
        len: u32,
        /// Payload bytes actually left after the header (and NEW's extra bytes).
        available: usize,
    },
    /// A segment whose conv differs from the first segment's.
    #[error("segment at offset {offset} has conv {found}, the datagram's is {expected}")]
    ConvMismatch {
        /// The first segment's conv.
        expected: u32,
        /// The offending segment's conv.
        found: u32,
        /// Where the offending segment starts.
        offset: usize,
    },
    /// A NEW segment without room for its 20-byte path block and 8-byte token.
    #[error("NEW at offset {offset} needs 28 bytes of path block and token, {available} left")]
    NewTooShort {
        /// Where the NEW segment starts.
        offset: usize,
        /// Bytes left after its header.
        available: usize,
    },
    /// A path block that is neither empty (`ver` 0) nor filled (`ver` 1, `len` 18).
    #[error("bad path block: ver {ver}, len {len}")]
    BadPathBlock {
        /// The block's `ver` byte.
        ver: u8,
        /// The block's `len` byte.
        len: u8,
    },
    /// A control segment whose `len` is not the one PROTOCOL.md fixes for it
    /// (0 for FIN, PING and PONG; 4 for KICK).
    #[error("{cmd:?} segment with len {len}")]
    BadControlLength {
        /// The segment's command.
        cmd: Cmd,
        /// The segment's `len` field.
        len: u32,
    },
}
