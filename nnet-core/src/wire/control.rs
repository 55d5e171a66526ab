//! The unreliable control segments: FIN, KICK, PING, PONG (PROTOCOL.md sections 5, 6).
//!
//! Each builder returns exactly the bytes of one datagram holding that one segment.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::{Cmd, Header, HEADER_LEN};

/// Size of a KICK's payload: the 4-byte little-endian reason.
pub const KICK_PAYLOAD_LEN: usize = 4;

/// Why a conversation ended; FIN carries it in its `frg` byte (PROTOCOL.md section 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FinReason {
    /// 0: an orderly close.
    Normal,
    /// 1: the sender does not know this session (it restarted, or the session is gone).
    Reset,
    /// 2: the client was kicked by the server and acknowledges it.
    Kicked,
    /// 3: the client's NEW collided with another session's conv; retry with a fresh one.
    Collision,
    /// 4: the sender gave up on the session (idle or dead link).
    Timeout,
    /// Any other byte, kept so that a newer peer's reason is not lost.
    ///
    /// [`FinReason::from_u8`] only produces it for bytes above 4.
    Other(u8),
}

impl FinReason {
    /// The reason carried by a FIN's `frg` byte.
    pub fn from_u8(byte: u8) -> FinReason {
        match byte {
            0 => FinReason::Normal,
            1 => FinReason::Reset,
            2 => FinReason::Kicked,
            3 => FinReason::Collision,
            4 => FinReason::Timeout,
            other => FinReason::Other(other),
        }
    }

    /// The byte that goes into a FIN's `frg`.
    pub fn as_u8(self) -> u8 {
        match self {
            FinReason::Normal => 0,
            FinReason::Reset => 1,
            FinReason::Kicked => 2,
            FinReason::Collision => 3,
            FinReason::Timeout => 4,
            FinReason::Other(byte) => byte,
        }
    }
}

impl fmt::Display for FinReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FinReason::Normal => f.write_str("normal"),
            FinReason::Reset => f.write_str("reset"),
            FinReason::Kicked => f.write_str("kicked"),
            FinReason::Collision => f.write_str("collision"),
            FinReason::Timeout => f.write_str("timeout"),
            FinReason::Other(byte) => write!(f, "reason {byte}"),
        }
    }
}

/// A header of `cmd` with every field but `conv` zero.
fn bare(conv: u32, cmd: Cmd) -> Header {
    Header {
        conv,
        cmd,
        frg: 0,
        wnd: 0,
        ts: 0,
        sn: 0,
        una: 0,
        len: 0,
    }
}

/// A FIN for `conv`: 24 bytes, reason in `frg`, every other field 0.
pub fn fin(conv: u32, reason: FinReason) -> Bytes {
    let header = Header {
        frg: reason.as_u8(),
        ..bare(conv, Cmd::Fin)
    };
    Bytes::copy_from_slice(&header.to_bytes())
}

/// A KICK for `conv`: 28 bytes, `len` 4, payload `reason` little-endian.
pub fn kick(conv: u32, reason: u32) -> Bytes {
    let header = Header {
        len: KICK_PAYLOAD_LEN as u32,
        ..bare(conv, Cmd::Kick)
    };
    let mut out = BytesMut::with_capacity(HEADER_LEN + KICK_PAYLOAD_LEN);
    header.encode(&mut out);
    out.put_u32_le(reason);
    out.freeze()
}

/// A PING: 24 bytes, `ts` the sender's clock, `sn` the probe id, `len` 0.
/// `conv` is 0 before a session exists.
pub fn ping(conv: u32, ts: u32, probe_id: u32) -> Bytes {
    let header = Header {
        ts,
        sn: probe_id,
        ..bare(conv, Cmd::Ping)
    };
    Bytes::copy_from_slice(&header.to_bytes())
}

/// The PONG answering `ping`: 24 bytes echoing its conv, `ts` and `sn`, with `wnd` 1 if
/// the server holds a live session for that conv (`known`) and 0 if not.
pub fn pong(ping: &Header, known: bool) -> Bytes {
    let header = Header {
        ts: ping.ts,
        sn: ping.sn,
        wnd: u16::from(known),
        ..bare(ping.conv, Cmd::Pong)
    };
    Bytes::copy_from_slice(&header.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fin_reasons_round_trip_through_their_byte() {
        for byte in 0..=u8::MAX {
            assert_eq!(FinReason::from_u8(byte).as_u8(), byte);
        }
        assert_eq!(FinReason::from_u8(3), FinReason::Collision);
        assert_eq!(FinReason::Other(9).to_string(), "reason 9");
    }

    #[test]
    fn control_sizes_follow_the_protocol() {
        assert_eq!(fin(1, FinReason::Reset).len(), 24);
        assert_eq!(kick(1, 7).len(), 28);
        assert_eq!(&kick(1, 7)[24..], &[7, 0, 0, 0]);
        let probe = ping(0, 5, 6);
        assert_eq!(probe.len(), 24);
        let header = Header::decode(&probe).expect("ping parses");
        let answer = pong(&header, true);
        assert_eq!(answer.len(), probe.len());
        assert_eq!(answer[4], Cmd::Pong as u8);
        assert_eq!(&answer[6..8], &[1, 0]);
        assert_eq!(&answer[8..16], &probe[8..16]);
    }
}
