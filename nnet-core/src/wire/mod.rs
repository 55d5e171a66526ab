//! Parsing and writing of everything on the wire (PROTOCOL.md sections 1-3, 5, 6).
//!
//! Pure functions over byte slices and [`bytes`] buffers: no state, no allocation when
//! parsing (payloads are sub-slices of the received datagram).

mod error;
mod header;

pub use error::WireError;
pub use header::{peek_conv, Cmd, Header, HEADER_LEN};
