//! A whole received datagram, validated once, then read without further checks
//! (PROTOCOL.md section 1).

use std::iter::FusedIterator;
use std::ops::Range;

use bytes::Bytes;

use super::{
    Announce, Cmd, Header, Segment, WireError, HEADER_LEN, KICK_PAYLOAD_LEN, NEW_EXTRA_LEN,
};

/// A datagram whose every segment parses exactly.
///
/// [`Datagram::parse`] checks everything PROTOCOL.md section 1 asks for, so a datagram
/// that does not follow it is dropped whole before any of it reaches a session;
/// afterwards [`Datagram::segments`] cannot fail.
///
/// ```
/// use bytes::Bytes;
/// use nnet_core::wire::{self, Cmd, Datagram, FinReason};
///
/// let mut raw = wire::ping(7, 1000, 1).to_vec();
/// raw.extend_from_slice(&wire::fin(7, FinReason::Normal));
/// let datagram = Datagram::parse(Bytes::from(raw))?;
/// assert_eq!((datagram.conv(), datagram.len()), (7, 2));
/// let cmds: Vec<Cmd> = datagram.segments().map(|s| s.header.cmd).collect();
/// assert_eq!(cmds, [Cmd::Ping, Cmd::Fin]);
/// # Ok::<(), wire::WireError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    bytes: Bytes,
    first: Header,
    count: usize,
}

impl Datagram {
    /// Validates `bytes`: not empty; every header decodes to a known command; all
    /// segments share the first one's conv; a NEW has its 28 extra bytes and a
    /// well-formed path block; FIN, PING and PONG have `len` 0 and KICK `len` 4; every
    /// `len` fits in what is left. A NEW need not be first; the server decides.
    pub fn parse(bytes: Bytes) -> Result<Datagram, WireError> {
        if bytes.is_empty() {
            return Err(WireError::Empty);
        }
        let (first, mut offset) = measure(&bytes, 0)?;
        let mut count = 1;
        while offset < bytes.len() {
            let (parts, next) = measure(&bytes, offset)?;
            if parts.header.conv != first.header.conv {
                return Err(WireError::ConvMismatch {
                    expected: first.header.conv,
                    found: parts.header.conv,
                    offset,
                });
            }
            offset = next;
            count += 1;
        }
        Ok(Datagram {
            bytes,
            first: first.header,
            count,
        })
    }

    /// The conv all segments share.
    pub fn conv(&self) -> u32 {
        self.first.conv
    }

    /// The number of segments (at least 1).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Always `false`: a parsed datagram holds at least one segment.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first segment's header.
    pub fn first(&self) -> &Header {
        &self.first
    }

    /// The segments, in order. Re-decodes each header (24 byte reads); allocates nothing,
    /// payloads share the datagram's buffer.
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            bytes: &self.bytes,
            offset: 0,
            left: self.count,
        }
    }

    /// The datagram's bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Gives the datagram's bytes back.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

impl<'a> IntoIterator for &'a Datagram {
    type Item = Segment;
    type IntoIter = Segments<'a>;

    fn into_iter(self) -> Segments<'a> {
        self.segments()
    }
}

/// The segments of a [`Datagram`], from [`Datagram::segments`].
#[derive(Clone, Debug)]
pub struct Segments<'a> {
    bytes: &'a Bytes,
    offset: usize,
    left: usize,
}

impl Iterator for Segments<'_> {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        if self.left == 0 {
            return None;
        }
        // `parse` validated every segment, so `measure` cannot fail here; if it did,
        // ending the iteration is the safe answer.
        let Ok((parts, next)) = measure(self.bytes, self.offset) else {
            self.left = 0;
            return None;
        };
        let announce = match parts.extra {
            Some(range) => Some(Announce::decode(self.bytes.get(range)?).ok()?),
            None => None,
        };
        self.offset = next;
        self.left -= 1;
        Some(Segment {
            header: parts.header,
            announce,
            payload: self.bytes.slice(parts.payload),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Segments<'_> {}
impl FusedIterator for Segments<'_> {}

/// Where one validated segment's parts lie in the datagram.
struct Parts {
    header: Header,
    /// NEW's path block and token.
    extra: Option<Range<usize>>,
    payload: Range<usize>,
}

/// Checks the segment starting at `offset` (all but the conv rule) and returns its parts
/// and where the next segment starts. Every returned range lies inside `datagram`.
fn measure(datagram: &[u8], offset: usize) -> Result<(Parts, usize), WireError> {
    let rest = datagram.get(offset..).unwrap_or_default();
    let header = Header::decode(rest).map_err(|err| match err {
        WireError::Truncated { available, .. } => WireError::ShortSegment { offset, available },
        other => other,
    })?;
    let after_header = rest.len() - HEADER_LEN;
    let expected_len = match header.cmd {
        Cmd::Fin | Cmd::Ping | Cmd::Pong => Some(0),
        Cmd::Kick => Some(KICK_PAYLOAD_LEN as u32),
        _ => None,
    };
    if expected_len.is_some_and(|len| len != header.len) {
        return Err(WireError::BadControlLength {
            cmd: header.cmd,
            len: header.len,
        });
    }
    let extra_len = if header.cmd == Cmd::New {
        if after_header < NEW_EXTRA_LEN {
            return Err(WireError::NewTooShort {
                offset,
                available: after_header,
            });
        }
        NEW_EXTRA_LEN
    } else {
        0
    };
    let payload_start = offset + HEADER_LEN + extra_len;
    let available = after_header - extra_len;
    let payload_len = usize::try_from(header.len)
        .ok()
        .filter(|&len| len <= available)
        .ok_or(WireError::PayloadOverrun {
            offset,
            len: header.len,
            available,
        })?;
    let extra = (extra_len > 0).then_some(offset + HEADER_LEN..payload_start);
    if let Some(range) = &extra {
        Announce::decode(datagram.get(range.clone()).unwrap_or_default())?;
    }
    let end = payload_start + payload_len;
    Ok((
        Parts {
            header,
            extra,
            payload: payload_start..end,
        },
        end,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{fin, kick, FinReason};

    #[test]
    fn errors_name_the_segment() {
        assert_eq!(Datagram::parse(Bytes::new()), Err(WireError::Empty));
        let mut raw = fin(5, FinReason::Normal).to_vec();
        raw.extend_from_slice(&fin(6, FinReason::Normal));
        assert_eq!(
            Datagram::parse(Bytes::from(raw.clone())),
            Err(WireError::ConvMismatch {
                expected: 5,
                found: 6,
                offset: 24
            })
        );
        raw.truncate(30);
        assert_eq!(
            Datagram::parse(Bytes::from(raw)),
            Err(WireError::ShortSegment {
                offset: 24,
                available: 6
            })
        );
        let mut short_kick = kick(5, 1).to_vec();
        short_kick.pop();
        assert_eq!(
            Datagram::parse(Bytes::from(short_kick)),
            Err(WireError::PayloadOverrun {
                offset: 0,
                len: 4,
                available: 3
            })
        );
    }

    #[test]
    fn kick_reason_is_read_from_the_payload() {
        let datagram = Datagram::parse(kick(9, 0xdead_beef)).unwrap_or_else(|e| panic!("{e}"));
        let segment = datagram.segments().next();
        assert_eq!(segment.and_then(|s| s.kick_reason()), Some(0xdead_beef));
    }
}
