//! Forged traffic: datagrams an attacker sends straight to a server (not through a
//! gateway) to steal or confuse a live client's session, or to make the server believe
//! a false client address (PROTOCOL.md sections 3 and 7).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::{Bytes, BytesMut};
use nnet_core::wire::{Announce, Cmd, Header, PathBlock, Segment};

/// Where forged datagrams come from: a host no server trusts.
pub const ATTACKER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 6666);

/// The token the attacker guesses (it cannot know the client's).
const FORGED_TOKEN: [u8; 8] = [0xee; 8];

/// What the attacker sends, aimed at a live client's session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forgery {
    /// A NEW sn = 0 for a fresh conv whose path block claims to come from the victim's
    /// address: the server may open a session, but must see the attacker's address as
    /// its real IP (the path block is believed only from a trusted gateway).
    NewClaimingVictimIp,
    /// A NEW sn = 0 on the victim's conv with another token: a conv collision, answered
    /// with FIN(collision) to the attacker; the victim's session is untouched.
    NewOnVictimConv,
    /// A NEW sn > 0 on the victim's conv with another token: forged, dropped and counted.
    LateNewOnVictimConv,
    /// A PUSH on the victim's conv with a fresh `ts`, from the attacker's address: not
    /// the session's remote and not a rebinding (another IP), dropped and counted.
    PushOnVictimConv,
}

/// The conv a [`Forgery::NewClaimingVictimIp`] opens for a victim on `conv`.
pub fn forged_conv(conv: u32) -> u32 {
    match conv ^ 0x8000_0000 {
        0 => 1,
        c => c,
    }
}

/// The datagram of `forgery` against a session on `conv` of a client at `victim`, with
/// the attacker's clock `ts` (in the future of the client's, so freshness rules would
/// let it through if nothing else stopped it).
pub fn forged_datagram(forgery: Forgery, conv: u32, victim: IpAddr, ts: u32) -> Bytes {
    let header = |conv, cmd, sn| Header {
        conv,
        cmd,
        frg: 0,
        wnd: 128,
        ts,
        sn,
        una: 0,
        len: 0,
    };
    let announce = |path| {
        Some(Announce {
            path,
            token: FORGED_TOKEN,
        })
    };
    let segment = match forgery {
        Forgery::NewClaimingVictimIp => Segment {
            header: header(forged_conv(conv), Cmd::New, 0),
            announce: announce(PathBlock::Filled(SocketAddr::new(victim, 4242))),
            payload: Bytes::from_static(b"forged hello"),
        },
        Forgery::NewOnVictimConv => Segment {
            header: header(conv, Cmd::New, 0),
            announce: announce(PathBlock::Empty),
            payload: Bytes::from_static(b"forged"),
        },
        Forgery::LateNewOnVictimConv => Segment {
            header: header(conv, Cmd::New, 5),
            announce: announce(PathBlock::Empty),
            payload: Bytes::from_static(b"forged"),
        },
        Forgery::PushOnVictimConv => Segment {
            header: header(conv, Cmd::Push, 0),
            announce: None,
            payload: Bytes::from_static(b"forged"),
        },
    };
    let mut out = BytesMut::with_capacity(segment.encoded_len());
    segment.encode(&mut out);
    out.freeze()
}
