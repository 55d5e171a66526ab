//! The gateway's job (PROTOCOL.md section 7) as a pure function.
//!
//! A gateway forwards datagrams between clients and servers. For each datagram from a
//! client whose first segment is a NEW, it writes the client's source address into the
//! NEW's path block, overwriting whatever the client put there (otherwise any client
//! could claim any address); everything else passes untouched. Servers trust the path
//! block only from the gateways they list.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};

use crate::wire::{Cmd, Header, PathBlock, HEADER_LEN, NEW_EXTRA_LEN, PATH_BLOCK_LEN};

/// Where the path block lies in a datagram that starts with a NEW.
const PATH_BLOCK: std::ops::Range<usize> = HEADER_LEN..HEADER_LEN + PATH_BLOCK_LEN;

/// Whether the gateway fills this datagram: its first header decodes, is a NEW, and the
/// 28 bytes of path block and token follow it. The rest is the server's business.
fn starts_with_new(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN + NEW_EXTRA_LEN
        && Header::decode(datagram).is_ok_and(|header| header.cmd == Cmd::New)
}

/// Fills the path block of `datagram`'s first segment with `client`, in place, if that
/// segment is a NEW; returns whether it did. Any other datagram is left as it was.
///
/// ```
/// use nnet_core::gateway::fill_path_block_in_place;
/// use nnet_core::wire::{self, FinReason, PathBlock};
///
/// let client = "198.51.100.4:40000".parse().unwrap();
/// // A NEW header (cmd 80) followed by an empty path block and a token.
/// let mut new = [0u8; 52];
/// new[4] = 80;
/// assert!(fill_path_block_in_place(&mut new, client));
/// assert_eq!(PathBlock::decode(&new[24..44]), Ok(PathBlock::Filled(client)));
///
/// let mut fin = wire::fin(1, FinReason::Normal).to_vec();
/// assert!(!fill_path_block_in_place(&mut fin, client));
/// ```
pub fn fill_path_block_in_place(datagram: &mut [u8], client: SocketAddr) -> bool {
    if !starts_with_new(datagram) {
        return false;
    }
    match datagram.get_mut(PATH_BLOCK) {
        Some(block) => {
            block.copy_from_slice(&PathBlock::Filled(client).to_bytes());
            true
        }
        None => false,
    }
}

/// Returns `datagram` with its first NEW's path block filled with `client`: a copy when
/// the first segment is a NEW, otherwise the same buffer, untouched and uncopied.
///
/// ```
/// use bytes::Bytes;
/// use nnet_core::gateway::fill_path_block;
/// use nnet_core::wire::{self, Datagram, PathBlock};
///
/// let client = "[2001:db8::1]:5000".parse().unwrap();
/// let mut raw = vec![0u8; 52];
/// raw[0] = 9; // conv 9
/// raw[4] = 80; // NEW, len 0
/// let filled = Datagram::parse(fill_path_block(Bytes::from(raw), client))?;
/// let announce = filled.segments().next().and_then(|s| s.announce);
/// assert_eq!(announce.map(|a| a.path), Some(PathBlock::Filled(client)));
///
/// let ping = wire::ping(9, 0, 1);
/// assert_eq!(fill_path_block(ping.clone(), client).as_ptr(), ping.as_ptr());
/// # Ok::<(), wire::WireError>(())
/// ```
pub fn fill_path_block(datagram: Bytes, client: SocketAddr) -> Bytes {
    if !starts_with_new(&datagram) {
        return datagram;
    }
    let mut copy = BytesMut::from(&datagram[..]);
    fill_path_block_in_place(&mut copy, client);
    copy.freeze()
}
