//! Parsing and writing of everything on the wire (PROTOCOL.md sections 1-3, 5, 6).
//!
//! Pure functions over byte slices and [`bytes`] buffers: no state, no allocation when
//! parsing (payloads are sub-slices of the received datagram).
//!
//! - [`Header`]: the 24-byte KCP segment header;
//! - [`PathBlock`], [`Announce`]: what a NEW carries after its header;
//! - [`fin`], [`kick`], [`ping`], [`pong`]: builders of the control segments;
//! - [`Datagram`]: a received datagram, validated whole, then iterated as [`Segment`]s.

mod control;
mod datagram;
mod error;
mod header;
mod path;
mod segment;

pub use control::{fin, kick, ping, pong, FinReason, KICK_PAYLOAD_LEN};
pub(crate) use datagram::ack_fields;
pub use datagram::{Datagram, Segments};
pub use error::WireError;
pub use header::{peek_conv, Cmd, Header, HEADER_LEN};
pub use path::{PathBlock, Token, NEW_EXTRA_LEN, PATH_BLOCK_LEN, TOKEN_LEN};
pub use segment::{Announce, Segment};
