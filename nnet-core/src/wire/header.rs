//! The 24-byte KCP segment header (PROTOCOL.md section 1) and the command byte.

use bytes::BufMut;

use super::WireError;

/// Size of every segment header, in bytes.
pub const HEADER_LEN: usize = 24;

/// The command byte of a segment (PROTOCOL.md section 2).
///
/// The first four are plain KCP; the others are nnet's additions, which a plain KCP
/// peer never sends and ignores when it receives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Cmd {
    /// A PUSH that also carries the path block and session token (client to server).
    New = 80,
    /// A data fragment (KCP).
    Push = 81,
    /// Acknowledges `sn`; `ts` echoes the acknowledged segment's `ts` (KCP).
    Ack = 82,
    /// Window probe: "tell me your window" (KCP).
    Wask = 83,
    /// Window tell (KCP).
    Wins = 84,
    /// The server removes this session; the payload is a 4-byte little-endian reason.
    Kick = 85,
    /// The conversation is over; the reason travels in `frg`.
    Fin = 86,
    /// Line probe and keepalive (client to server).
    Ping = 87,
    /// The answer to one PING (server to client).
    Pong = 88,
}

impl Cmd {
    /// Whether this is one of the four commands a plain KCP peer understands.
    #[inline]
    pub fn is_plain_kcp(self) -> bool {
        matches!(self, Cmd::Push | Cmd::Ack | Cmd::Wask | Cmd::Wins)
    }

    /// Whether segments of this command carry data and a sequence number (PUSH and NEW).
    #[inline]
    pub fn carries_data(self) -> bool {
        matches!(self, Cmd::Push | Cmd::New)
    }
}

impl TryFrom<u8> for Cmd {
    type Error = WireError;

    #[inline]
    fn try_from(byte: u8) -> Result<Self, WireError> {
        Ok(match byte {
            80 => Cmd::New,
            81 => Cmd::Push,
            82 => Cmd::Ack,
            83 => Cmd::Wask,
            84 => Cmd::Wins,
            85 => Cmd::Kick,
            86 => Cmd::Fin,
            87 => Cmd::Ping,
            88 => Cmd::Pong,
            other => return Err(WireError::UnknownCmd(other)),
        })
    }
}

/// One decoded segment header. All integers are little-endian on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Conversation id; never 0 for a session (PING may carry 0 before one exists).
    pub conv: u32,
    /// What kind of segment this is.
    pub cmd: Cmd,
    /// Fragments that still follow in this message (0 = last); FIN's reason.
    pub frg: u8,
    /// The sender's free receive window, in segments; PONG's "session known" flag.
    pub wnd: u16,
    /// The sender's clock in milliseconds (wrapping), or an echo of one.
    pub ts: u32,
    /// Sequence number (wrapping); a probe id for PING/PONG.
    pub sn: u32,
    /// Every `sn` below this has been received by the sender.
    pub una: u32,
    /// Payload bytes that follow (for NEW: after the 28 extra bytes).
    pub len: u32,
}

impl Header {
    /// Decodes the header at the start of `buf`. Costs 24 byte reads, no allocation.
    ///
    /// Fails when `buf` is shorter than [`HEADER_LEN`] or the command byte is unknown.
    /// It does not check `len` against the rest of `buf`; segment parsing does that.
    #[inline]
    pub fn decode(buf: &[u8]) -> Result<Header, WireError> {
        let Some(raw) = buf.first_chunk::<HEADER_LEN>() else {
            return Err(WireError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        };
        Header::from_array(raw)
    }

    /// Decodes the 24 header bytes `raw`; fails only on an unknown command byte.
    #[inline]
    pub(crate) fn from_array(raw: &[u8; HEADER_LEN]) -> Result<Header, WireError> {
        Ok(Header {
            conv: u32_at(raw, 0),
            cmd: Cmd::try_from(raw[4])?,
            frg: raw[5],
            wnd: u16::from_le_bytes([raw[6], raw[7]]),
            ts: u32_at(raw, 8),
            sn: u32_at(raw, 12),
            una: u32_at(raw, 16),
            len: u32_at(raw, 20),
        })
    }

    /// Appends the 24 header bytes to `out`.
    #[inline]
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_slice(&self.to_bytes());
    }

    /// The 24 header bytes, as an array (no allocation).
    #[inline]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        // Three 8-byte words rather than eight fields: written into a buffer, that is
        // three stores instead of eight.
        let words = [
            u64::from(self.conv)
                | u64::from(self.cmd as u8) << 32
                | u64::from(self.frg) << 40
                | u64::from(self.wnd) << 48,
            u64::from(self.ts) | u64::from(self.sn) << 32,
            u64::from(self.una) | u64::from(self.len) << 32,
        ];
        let mut raw = [0u8; HEADER_LEN];
        for (chunk, word) in raw.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        raw
    }
}

/// The little-endian `u32` at byte `at` of the header bytes `raw` (`at` at most 20).
#[inline(always)]
pub(super) fn u32_at(raw: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]])
}

/// Reads the conv of a datagram (its first four bytes), without parsing the rest.
///
/// This is what a conv-routing balancer and the endpoint's demultiplexer look at.
#[inline]
pub fn peek_conv(datagram: &[u8]) -> Option<u32> {
    datagram.first_chunk::<4>().map(|b| u32::from_le_bytes(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_protocol_table() {
        let header = Header {
            conv: 0x0403_0201,
            cmd: Cmd::Push,
            frg: 7,
            wnd: 0x0908,
            ts: 0x0d0c_0b0a,
            sn: 0x1110_0f0e,
            una: 0x1514_1312,
            len: 0x1918_1716,
        };
        let raw = header.to_bytes();
        assert_eq!(&raw[0..4], &[1, 2, 3, 4]);
        assert_eq!(raw[4], 81);
        assert_eq!(raw[5], 7);
        assert_eq!(&raw[6..8], &[8, 9]);
        assert_eq!(&raw[8..12], &[0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(&raw[20..24], &[0x16, 0x17, 0x18, 0x19]);
        assert_eq!(Header::decode(&raw), Ok(header));
    }

    #[test]
    fn short_or_unknown_headers_are_errors() {
        assert_eq!(
            Header::decode(&[0; 23]),
            Err(WireError::Truncated {
                needed: 24,
                available: 23
            })
        );
        let mut raw = [0u8; 24];
        raw[4] = 89;
        assert_eq!(Header::decode(&raw), Err(WireError::UnknownCmd(89)));
        assert_eq!(peek_conv(&[1, 0, 0]), None);
        assert_eq!(peek_conv(&[1, 0, 0, 0, 9]), Some(1));
    }
}
