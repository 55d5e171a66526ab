//! NEW's extra bytes: the path block and the session token (PROTOCOL.md section 3).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use bytes::BufMut;

use super::WireError;

/// Size of the path block that follows a NEW header.
pub const PATH_BLOCK_LEN: usize = 20;
/// Size of the session token that follows the path block.
pub const TOKEN_LEN: usize = 8;
/// Bytes between a NEW header and its payload: path block, then token.
pub const NEW_EXTRA_LEN: usize = PATH_BLOCK_LEN + TOKEN_LEN;

/// `ver` of a path block the client left empty.
const VER_EMPTY: u8 = 0;
/// `ver` of a path block a gateway filled in.
const VER_FILLED: u8 = 1;
/// `len` of a filled path block: 2 bytes of port and 16 of address.
const FILLED_LEN: u8 = 18;

/// The session token: 8 random bytes the client picks when it connects and repeats in
/// every NEW of the conversation.
pub type Token = [u8; TOKEN_LEN];

/// The client's address as a gateway saw it, or nothing (PROTOCOL.md section 3).
///
/// On the wire: `ver` (0 empty, 1 filled), `len` (18 when filled), port big-endian,
/// 16-byte IPv6 address; an IPv4 client appears as `::ffff:a.b.c.d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathBlock {
    /// No gateway filled the block (a client always sends this).
    Empty,
    /// A gateway saw the client at this address.
    ///
    /// Decoding always yields the canonical form: an IPv4-mapped address becomes a
    /// [`SocketAddr::V4`], and IPv6 flow info and scope id are 0 (the wire has no room
    /// for them).
    Filled(SocketAddr),
}

impl PathBlock {
    /// Decodes the path block at the start of `b` (which must hold at least 20 bytes).
    ///
    /// `ver` 0 is [`PathBlock::Empty`] whatever follows it; `ver` 1 with `len` 18 is
    /// [`PathBlock::Filled`]; anything else is [`WireError::BadPathBlock`].
    pub fn decode(b: &[u8]) -> Result<PathBlock, WireError> {
        let Some(raw) = b.first_chunk::<PATH_BLOCK_LEN>() else {
            return Err(WireError::Truncated {
                needed: PATH_BLOCK_LEN,
                available: b.len(),
            });
        };
        let [ver, len, port_hi, port_lo, addr @ ..] = *raw;
        match (ver, len) {
            (VER_EMPTY, _) => Ok(PathBlock::Empty),
            (VER_FILLED, FILLED_LEN) => {
                let port = u16::from_be_bytes([port_hi, port_lo]);
                let v6 = Ipv6Addr::from(addr);
                let ip = match v6.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => IpAddr::V6(v6),
                };
                Ok(PathBlock::Filled(SocketAddr::new(ip, port)))
            }
            (ver, len) => Err(WireError::BadPathBlock { ver, len }),
        }
    }

    /// Appends the 20 bytes of the block to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_slice(&self.to_bytes());
    }

    /// The 20 bytes of the block, as an array (no allocation). An empty block is all
    /// zeros.
    pub fn to_bytes(&self) -> [u8; PATH_BLOCK_LEN] {
        let mut raw = [0u8; PATH_BLOCK_LEN];
        if let PathBlock::Filled(addr) = self {
            let v6 = match addr.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            raw[0] = VER_FILLED;
            raw[1] = FILLED_LEN;
            raw[2..4].copy_from_slice(&addr.port().to_be_bytes());
            raw[4..].copy_from_slice(&v6.octets());
        }
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_client_is_mapped_on_the_wire() {
        let addr: SocketAddr = "192.0.2.7:4660".parse().expect("addr");
        let raw = PathBlock::Filled(addr).to_bytes();
        assert_eq!(&raw[..4], &[1, 18, 0x12, 0x34]);
        assert_eq!(&raw[4..16], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(&raw[16..], &[192, 0, 2, 7]);
        assert_eq!(PathBlock::decode(&raw), Ok(PathBlock::Filled(addr)));
    }

    #[test]
    fn empty_is_lenient_and_other_versions_are_errors() {
        assert_eq!(PathBlock::Empty.to_bytes(), [0; 20]);
        let mut raw = [7u8; 20];
        raw[0] = 0;
        assert_eq!(PathBlock::decode(&raw), Ok(PathBlock::Empty));
        raw[0] = 1;
        assert_eq!(
            PathBlock::decode(&raw),
            Err(WireError::BadPathBlock { ver: 1, len: 7 })
        );
        raw[0] = 2;
        raw[1] = 18;
        assert_eq!(
            PathBlock::decode(&raw),
            Err(WireError::BadPathBlock { ver: 2, len: 18 })
        );
        assert_eq!(
            PathBlock::decode(&raw[..19]),
            Err(WireError::Truncated {
                needed: 20,
                available: 19
            })
        );
    }
}
