//! One parsed segment, and NEW's announcement (PROTOCOL.md sections 1-3).

use bytes::{BufMut, Bytes};

use super::{Cmd, FinReason, Header, PathBlock, Token, WireError, NEW_EXTRA_LEN, PATH_BLOCK_LEN};

/// What a NEW carries between its header and its payload: the path block and the
/// session token (PROTOCOL.md section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Announce {
    /// The client's address as a gateway saw it, if a gateway filled it in.
    pub path: PathBlock,
    /// The client's session token.
    pub token: Token,
}

impl Announce {
    /// Decodes the 28 bytes at the start of `b`.
    pub fn decode(b: &[u8]) -> Result<Announce, WireError> {
        let Some(raw) = b.first_chunk::<NEW_EXTRA_LEN>() else {
            return Err(WireError::Truncated {
                needed: NEW_EXTRA_LEN,
                available: b.len(),
            });
        };
        let (path, token) = raw.split_at(PATH_BLOCK_LEN);
        let mut out = Token::default();
        out.copy_from_slice(token);
        Ok(Announce {
            path: PathBlock::decode(path)?,
            token: out,
        })
    }

    /// Appends the 28 bytes (path block, then token) to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        self.path.encode(out);
        out.put_slice(&self.token);
    }

    /// The 28 bytes, as an array (no allocation).
    pub fn to_bytes(&self) -> [u8; NEW_EXTRA_LEN] {
        let mut raw = [0u8; NEW_EXTRA_LEN];
        raw[..PATH_BLOCK_LEN].copy_from_slice(&self.path.to_bytes());
        raw[PATH_BLOCK_LEN..].copy_from_slice(&self.token);
        raw
    }
}

/// One segment of a parsed [`Datagram`](super::Datagram). Zero-copy: `payload` shares
/// the datagram's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The segment's header; `header.len == payload.len()` for a parsed segment.
    pub header: Header,
    /// The path block and token; `Some` exactly when `header.cmd` is [`Cmd::New`].
    pub announce: Option<Announce>,
    /// The payload: data for PUSH and NEW, the 4 reason bytes for KICK, else empty.
    pub payload: Bytes,
}

impl Segment {
    /// A KICK's reason (its little-endian payload); `None` for any other segment.
    pub fn kick_reason(&self) -> Option<u32> {
        if self.header.cmd != Cmd::Kick {
            return None;
        }
        self.payload
            .first_chunk::<4>()
            .map(|b| u32::from_le_bytes(*b))
    }

    /// A FIN's reason (its `frg` byte); `None` for any other segment.
    pub fn fin_reason(&self) -> Option<FinReason> {
        (self.header.cmd == Cmd::Fin).then(|| FinReason::from_u8(self.header.frg))
    }

    /// Bytes [`Segment::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let extra = if self.announce.is_some() {
            NEW_EXTRA_LEN
        } else {
            0
        };
        super::HEADER_LEN + extra + self.payload.len()
    }

    /// Appends the segment to `out`: the header (with `len` set to the payload's length,
    /// whatever `header.len` says), the announcement if there is one, then the payload.
    ///
    /// A segment writes a parseable NEW only with an announcement, and anything else
    /// only without one.
    pub fn encode(&self, out: &mut impl BufMut) {
        let header = Header {
            len: u32::try_from(self.payload.len()).unwrap_or(u32::MAX),
            ..self.header
        };
        header.encode(out);
        if let Some(announce) = &self.announce {
            announce.encode(out);
        }
        out.put_slice(&self.payload);
    }
}
