//! A whole received datagram, validated once, then read without further checks
//! (PROTOCOL.md section 1).

use std::iter::FusedIterator;

use bytes::Bytes;

use super::header::u32_at;
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
    /// Segment starts [`check_recording`](Self::check_recording) can note: every segment
    /// of a datagram of the default MTU (58 bare headers fit in 1400 bytes).
    pub(crate) const RECORDED_SEGMENTS: usize = 64;

    /// Validates `bytes`: not empty; every header decodes to a known command; all
    /// segments share the first one's conv; a NEW has its 28 extra bytes and a
    /// well-formed path block; FIN, PING and PONG have `len` 0 and KICK `len` 4; every
    /// `len` fits in what is left. A NEW need not be first; the server decides.
    pub fn parse(bytes: Bytes) -> Result<Datagram, WireError> {
        let (first, count) = validate(&bytes, &mut [])?;
        Ok(Datagram {
            bytes,
            first,
            count,
        })
    }

    /// Checks `bytes` like [`parse`](Self::parse), without taking it, and notes where
    /// each segment starts, so that a reader can decode the segments without walking
    /// the datagram again. Returns the first header, the number of segments and whether
    /// `offsets` holds every segment's start (in its first entries): that is when there
    /// are at most [`RECORDED_SEGMENTS`](Self::RECORDED_SEGMENTS).
    #[inline]
    pub(crate) fn check_recording(
        bytes: &[u8],
        offsets: &mut [u32; RECORDED_SEGMENTS],
    ) -> Result<(Header, usize, bool), WireError> {
        let small = u32::try_from(bytes.len()).is_ok();
        let record: &mut [u32] = if small { offsets } else { &mut [] };
        let (first, count) = validate(bytes, record)?;
        Ok((first, count, small && count <= RECORDED_SEGMENTS))
    }

    /// Checks `bytes` like [`parse`](Self::parse) when it is made of plain KCP segments
    /// (PUSH, ACK, WASK, WINS) of one conv that all have the first one's `len`, which is
    /// what a datagram of ACKs and a bulk sender's datagram of same-size messages are.
    /// Returns the first header, the stride (header plus payload) and the segment
    /// count; `None` if `bytes` is not of that shape (valid or not: call
    /// [`check_recording`](Self::check_recording) then).
    ///
    /// Segment `i` starts at `i * stride`, so the checks do not wait for each other
    /// (the general walk reads each `len` to find the next header); one pass of
    /// independent loads, no offsets written.
    #[inline]
    pub(crate) fn check_uniform(bytes: &[u8]) -> Option<(Header, usize, usize)> {
        let raw = bytes.first_chunk::<HEADER_LEN>()?;
        if !is_plain(raw[4]) {
            return None;
        }
        let first = Header::from_array(raw).ok()?;
        let stride = HEADER_LEN.checked_add(usize::try_from(first.len).ok()?)?;
        if stride == bytes.len() {
            // One segment (a large message's datagram): no division.
            return Some((first, stride, 1));
        }
        let count = bytes.len() / stride;
        if count * stride != bytes.len() {
            return None;
        }
        let mut same = true;
        for segment in bytes.chunks_exact(stride).skip(1) {
            let raw = segment.first_chunk::<HEADER_LEN>()?;
            same &=
                (u32_at(raw, 0) == first.conv) & is_plain(raw[4]) & (u32_at(raw, 20) == first.len);
        }
        same.then_some((first, stride, count))
    }

    /// Checks `bytes` like [`parse`](Self::parse) when it is made only of ACK
    /// segments of one conv (what a receiver's flush sends): returns that conv, `None`
    /// if `bytes` is not of that shape (valid or not). The segments start every 24
    /// bytes; read them with [`ack_fields`]. One pass of independent loads.
    #[inline]
    pub(crate) fn check_acks(bytes: &[u8]) -> Option<u32> {
        // Only the first command byte is tested inline: a data datagram leaves at once.
        if bytes.get(4) != Some(&(Cmd::Ack as u8)) {
            return None;
        }
        acks_conv(bytes)
    }

    /// The datagram of `bytes`, which [`check_recording`](Self::check_recording)
    /// accepted with this first header and count.
    #[inline]
    pub(crate) fn checked(bytes: Bytes, first: Header, count: usize) -> Datagram {
        Datagram {
            bytes,
            first,
            count,
        }
    }

    /// The header of the segment at `offset` of a checked datagram's `bytes`, and where
    /// its payload starts; `offset` must be a segment's start as
    /// [`check_recording`](Self::check_recording) noted it.
    #[inline]
    pub(crate) fn header_in(bytes: &[u8], offset: usize) -> Option<(Header, usize)> {
        header_at(bytes, offset)
    }

    /// The conv all segments share.
    #[inline]
    pub fn conv(&self) -> u32 {
        self.first.conv
    }

    /// The number of segments (at least 1).
    #[inline]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Always `false`: a parsed datagram holds at least one segment.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first segment's header.
    #[inline]
    pub fn first(&self) -> &Header {
        &self.first
    }

    /// The segments, in order. Re-decodes each header (24 byte reads); allocates nothing,
    /// payloads share the datagram's buffer.
    #[inline]
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            bytes: &self.bytes,
            headers: self.headers(),
        }
    }

    /// The segments' headers, each with where its payload starts (after a NEW's extra
    /// bytes; the payload is `header.len` bytes). Lighter than
    /// [`segments`](Self::segments): no payload handle, no announcement.
    #[inline]
    pub(crate) fn headers(&self) -> Headers<'_> {
        Headers {
            bytes: &self.bytes,
            offset: 0,
            left: self.count,
        }
    }

    /// The datagram's bytes.
    #[inline]
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
    headers: Headers<'a>,
}

impl Iterator for Segments<'_> {
    type Item = Segment;

    #[inline]
    fn next(&mut self) -> Option<Segment> {
        let (header, start) = self.headers.next()?;
        let announce = if header.cmd == Cmd::New {
            let extra = self.bytes.get(start - NEW_EXTRA_LEN..start);
            match extra.map(Announce::decode) {
                Some(Ok(announce)) => Some(announce),
                // `parse` checked every path block: cannot happen, but ending the
                // iteration is the safe answer.
                _ => {
                    self.headers.left = 0;
                    return None;
                }
            }
        } else {
            None
        };
        Some(Segment {
            header,
            announce,
            payload: self.bytes.slice(start..start + header.len as usize),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.headers.size_hint()
    }
}

impl ExactSizeIterator for Segments<'_> {}
impl FusedIterator for Segments<'_> {}

/// The headers of a validated datagram's segments, each with its payload's start, from
/// [`Datagram::headers`]. Decodes without the validation `parse` already did.
#[derive(Clone, Debug)]
pub(crate) struct Headers<'a> {
    bytes: &'a [u8],
    offset: usize,
    left: usize,
}

impl Iterator for Headers<'_> {
    type Item = (Header, usize);

    #[inline]
    fn next(&mut self) -> Option<(Header, usize)> {
        if self.left == 0 {
            return None;
        }
        // `parse` validated every segment, so this cannot fail; if it did, ending the
        // iteration is the safe answer.
        let Some((header, start)) = header_at(self.bytes, self.offset) else {
            self.left = 0;
            return None;
        };
        self.offset = start + header.len as usize;
        self.left -= 1;
        Some((header, start))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// Segment starts [`Datagram::check_recording`] can note.
const RECORDED_SEGMENTS: usize = Datagram::RECORDED_SEGMENTS;

/// Decodes the header of a validated segment at `offset`, and where its payload starts
/// (after a NEW's extra bytes). `None` (which validation rules out) if it does not parse
/// or its payload passes the end.
#[inline]
fn header_at(bytes: &[u8], offset: usize) -> Option<(Header, usize)> {
    let raw = bytes.get(offset..)?.first_chunk::<HEADER_LEN>()?;
    let header = Header::from_array(raw).ok()?;
    let extra = if header.cmd == Cmd::New {
        NEW_EXTRA_LEN
    } else {
        0
    };
    let start = offset + HEADER_LEN + extra;
    let end = start.checked_add(usize::try_from(header.len).ok()?)?;
    if end > bytes.len() {
        return None;
    }
    Some((header, start))
}

/// Checks a whole datagram (everything [`Datagram::parse`] promises) in one pass and
/// returns its first header and segment count. Writes the start of segment `i` to
/// `record[i]` while there is room (the caller makes sure offsets fit in a `u32`).
/// Segments of the four plain KCP commands are checked inline; anything else (and
/// every error) goes through [`measure`].
#[inline(always)]
fn validate(bytes: &[u8], record: &mut [u32]) -> Result<(Header, usize), WireError> {
    let Some(raw) = bytes.first_chunk::<HEADER_LEN>() else {
        return Err(if bytes.is_empty() {
            WireError::Empty
        } else {
            short_segment(bytes, 0)
        });
    };
    let first = match Header::from_array(raw) {
        Ok(header) => header,
        Err(_) => return Err(slow_error(bytes, 0)),
    };
    let mut offset = next_segment(bytes, 0)?;
    if let Some(slot) = record.first_mut() {
        *slot = 0;
    }
    let mut count = 1;
    while offset < bytes.len() {
        let next = next_segment(bytes, offset)?;
        if let Some(slot) = record.get_mut(count) {
            *slot = offset as u32;
        }
        // `next_segment` checked that a whole header lies at `offset`.
        let conv = bytes
            .get(offset..)
            .and_then(super::peek_conv)
            .unwrap_or(first.conv);
        if conv != first.conv {
            return Err(WireError::ConvMismatch {
                expected: first.conv,
                found: conv,
                offset,
            });
        }
        offset = next;
        count += 1;
    }
    Ok((first, count))
}

/// The rest of [`Datagram::check_acks`], out of line (once per datagram of ACKs).
#[inline(never)]
fn acks_conv(bytes: &[u8]) -> Option<u32> {
    let segments = bytes.chunks_exact(HEADER_LEN);
    if !segments.remainder().is_empty() {
        return None;
    }
    let conv = u32_at(bytes.first_chunk()?, 0);
    let mut same = true;
    for raw in segments {
        let raw = raw.first_chunk::<HEADER_LEN>()?;
        same &= (u32_at(raw, 0) == conv) & (raw[4] == Cmd::Ack as u8) & (u32_at(raw, 20) == 0);
    }
    same.then_some(conv)
}

/// What an ACK segment says besides its conv, command and (zero) length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AckFields {
    pub wnd: u16,
    pub ts: u32,
    pub sn: u32,
    pub una: u32,
}

/// The fields of the ACK segment `raw` (of a datagram [`Datagram::check_acks`]
/// accepted).
#[inline(always)]
pub(crate) fn ack_fields(raw: &[u8; HEADER_LEN]) -> AckFields {
    AckFields {
        wnd: u16::from_le_bytes([raw[6], raw[7]]),
        ts: u32_at(raw, 8),
        sn: u32_at(raw, 12),
        una: u32_at(raw, 16),
    }
}

/// Whether `cmd` is one of the plain KCP commands (PUSH, ACK, WASK, WINS).
#[inline(always)]
fn is_plain(cmd: u8) -> bool {
    (Cmd::Push as u8..=Cmd::Wins as u8).contains(&cmd)
}

/// Checks the segment at `offset` (all but the conv rule) and returns where the next one
/// starts: inline for PUSH, ACK, WASK and WINS, through [`measure`] otherwise.
#[inline(always)]
fn next_segment(bytes: &[u8], offset: usize) -> Result<usize, WireError> {
    if let Some(raw) = bytes
        .get(offset..)
        .and_then(<[u8]>::first_chunk::<HEADER_LEN>)
    {
        let available = bytes.len() - offset - HEADER_LEN;
        let len = u32_at(raw, 20);
        if is_plain(raw[4]) && u64::from(len) <= available as u64 {
            return Ok(offset + HEADER_LEN + len as usize);
        }
    }
    measure(bytes, offset)
}

/// The error [`measure`] gives for the segment at `offset`, known to be bad.
#[cold]
#[inline(never)]
fn slow_error(bytes: &[u8], offset: usize) -> WireError {
    match measure(bytes, offset) {
        Err(error) => error,
        Ok(_) => short_segment(bytes, offset),
    }
}

#[cold]
fn short_segment(bytes: &[u8], offset: usize) -> WireError {
    WireError::ShortSegment {
        offset,
        available: bytes.len().saturating_sub(offset),
    }
}

/// Checks the segment starting at `offset` (all but the conv rule), whatever its command,
/// and returns where the next segment starts (at most `datagram.len()`). The slow path
/// of [`next_segment`]: rare commands and errors.
#[cold]
#[inline(never)]
fn measure(datagram: &[u8], offset: usize) -> Result<usize, WireError> {
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
    if extra_len > 0 {
        let extra = offset + HEADER_LEN..payload_start;
        Announce::decode(datagram.get(extra).unwrap_or_default())?;
    }
    Ok(payload_start + payload_len)
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

    fn segment(conv: u32, cmd: Cmd, sn: u32, payload: &[u8]) -> Vec<u8> {
        let header = Header {
            conv,
            cmd,
            frg: 0,
            wnd: 32,
            ts: 5,
            sn,
            una: 0,
            len: payload.len() as u32,
        };
        let mut raw = header.to_bytes().to_vec();
        raw.extend_from_slice(payload);
        raw
    }

    #[test]
    fn uniform_datagrams_are_checked_by_stride() {
        let acks: Vec<u8> = (0..5)
            .flat_map(|sn| segment(7, Cmd::Ack, sn, &[]))
            .collect();
        let (first, stride, count) =
            Datagram::check_uniform(&acks).unwrap_or_else(|| panic!("uniform ACKs"));
        assert_eq!((first.sn, stride, count), (0, HEADER_LEN, 5));
        let data: Vec<u8> = (0..3)
            .flat_map(|sn| segment(7, Cmd::Push, sn, b"abc"))
            .collect();
        assert_eq!(
            Datagram::check_uniform(&data).map(|(_, stride, count)| (stride, count)),
            Some((HEADER_LEN + 3, 3))
        );
        // Not of that shape, valid or not: the general walk decides.
        let mut mixed = acks.clone();
        mixed.extend_from_slice(&segment(7, Cmd::Push, 9, b"abc"));
        assert_eq!(Datagram::check_uniform(&mixed), None);
        assert!(Datagram::parse(Bytes::from(mixed)).is_ok());
        let mut other_conv = acks.clone();
        other_conv.extend_from_slice(&segment(8, Cmd::Ack, 9, &[]));
        assert_eq!(Datagram::check_uniform(&other_conv), None);
        assert!(Datagram::parse(Bytes::from(other_conv)).is_err());
        let mut control = acks.clone();
        control.extend_from_slice(&crate::wire::ping(7, 1, 1));
        assert_eq!(Datagram::check_uniform(&control), None);
        let mut short = acks;
        short.pop();
        assert_eq!(Datagram::check_uniform(&short), None);
        assert!(Datagram::parse(Bytes::from(short)).is_err());
    }

    #[test]
    fn ack_only_datagrams_are_recognised_in_one_pass() {
        let acks: Vec<u8> = (0..5)
            .flat_map(|sn| segment(7, Cmd::Ack, sn, &[]))
            .collect();
        assert_eq!(Datagram::check_acks(&acks), Some(7));
        assert_eq!(Datagram::check_acks(&acks[..HEADER_LEN]), Some(7));
        let fields = acks
            .first_chunk::<HEADER_LEN>()
            .map(ack_fields)
            .unwrap_or_else(|| panic!("one ACK"));
        assert_eq!(
            fields,
            AckFields {
                wnd: 32,
                ts: 5,
                sn: 0,
                una: 0
            }
        );
        // Anything else is left to the other checks.
        assert_eq!(Datagram::check_acks(&[]), None);
        let mut with_data = acks.clone();
        with_data.extend_from_slice(&segment(7, Cmd::Push, 9, &[]));
        assert_eq!(Datagram::check_acks(&with_data), None);
        let mut other_conv = acks.clone();
        other_conv.extend_from_slice(&segment(8, Cmd::Ack, 9, &[]));
        assert_eq!(Datagram::check_acks(&other_conv), None);
        // An ACK with a payload that looks like one more ACK.
        let mut padded = segment(7, Cmd::Ack, 1, &segment(7, Cmd::Ack, 2, &[]));
        assert_eq!(Datagram::check_acks(&padded), None);
        assert!(Datagram::parse(Bytes::from(padded.clone())).is_ok());
        padded.truncate(HEADER_LEN + 5);
        assert_eq!(Datagram::check_acks(&padded), None);
        let mut short = acks;
        short.pop();
        assert_eq!(Datagram::check_acks(&short), None);
    }

    #[test]
    fn kick_reason_is_read_from_the_payload() {
        let datagram = Datagram::parse(kick(9, 0xdead_beef)).unwrap_or_else(|e| panic!("{e}"));
        let segment = datagram.segments().next();
        assert_eq!(segment.and_then(|s| s.kick_reason()), Some(0xdead_beef));
    }
}
