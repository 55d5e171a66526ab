//! Engine tests through a pair of engines in memory: application errors, the session
//! layer's settings, and quickcheck properties of delivery under arbitrary loss and
//! reordering, across the sequence-number and clock wrap.

use std::collections::VecDeque;

use bytes::Bytes;
use quickcheck::{QuickCheck, TestResult};

use super::{
    Arq, ArqConfig, InputReport, NoAnnounceRoom, SendError, Transmit, MAX_TRANSMIT_BYTES,
    MAX_TRANSMIT_DATAGRAMS,
};
use crate::wire::{Cmd, Datagram};

const CONV: u32 = 7;

/// What the network does to one datagram.
#[derive(Clone, Copy, Debug)]
enum Fate {
    Deliver,
    Drop,
    Duplicate,
    /// Held back behind this many later datagrams.
    Delay(u8),
}

impl quickcheck::Arbitrary for Fate {
    fn arbitrary(g: &mut quickcheck::Gen) -> Self {
        match u8::arbitrary(g) % 10 {
            0..=4 => Fate::Deliver,
            5 | 6 => Fate::Drop,
            7 => Fate::Duplicate,
            _ => Fate::Delay(u8::arbitrary(g) % 8 + 1),
        }
    }
}

/// One direction of the network, applying fates in turn (cycling through them).
struct Wire {
    fates: Vec<Fate>,
    next_fate: usize,
    delivered: VecDeque<Bytes>,
    held: Vec<(u8, Bytes)>,
}

impl Wire {
    fn new(fates: Vec<Fate>) -> Self {
        Wire {
            fates,
            next_fate: 0,
            delivered: VecDeque::new(),
            held: Vec::new(),
        }
    }

    fn carry(&mut self, datagram: Bytes) {
        let fate = match self.fates.is_empty() {
            true => Fate::Deliver,
            false => self.fates[self.next_fate % self.fates.len()],
        };
        self.next_fate += 1;
        // Held datagrams come out after the given number of later ones.
        for (wait, _) in &mut self.held {
            *wait = wait.saturating_sub(1);
        }
        let (due, held): (Vec<_>, Vec<_>) = self.held.drain(..).partition(|(w, _)| *w == 0);
        self.held = held;
        match fate {
            Fate::Deliver => self.delivered.push_back(datagram),
            Fate::Drop => {}
            Fate::Duplicate => {
                self.delivered.push_back(datagram.clone());
                self.delivered.push_back(datagram);
            }
            Fate::Delay(n) => self.held.push((n, datagram)),
        }
        self.delivered.extend(due.into_iter().map(|(_, d)| d));
    }

    /// Every few rounds, held datagrams leak out so nothing waits forever.
    fn release_held(&mut self) {
        self.delivered.extend(self.held.drain(..).map(|(_, d)| d));
    }
}

fn message(index: usize, size: usize) -> Bytes {
    (0..size)
        .map(|i| (i.wrapping_mul(31) ^ index) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Sends `sizes` from `a` to `b` over `wire` (after whatever `a` already queued), acks
/// back over `back`; returns the messages `b` received once it has `expected` of them
/// and `a` has nothing left unacknowledged, or `None` if that takes over `limit_ms`.
/// Every way in and out is used in turn: `send` and `send_slice`, `update` with
/// `poll_output` or `poll_transmit` and `update_with`, `input_bytes`, `input_slice` and
/// `input_batch` (of what arrived coalesced as `UDP_GRO` would), `recv`, `recv_with`
/// and `recv_parts`.
#[allow(clippy::too_many_arguments)]
fn transfer(
    a: &mut Arq,
    b: &mut Arq,
    sizes: &[usize],
    expected: usize,
    mut wire: Wire,
    mut back: Wire,
    start_ms: u32,
    limit_ms: u32,
) -> Option<Vec<Bytes>> {
    let mut queued = 0;
    let mut got = Vec::new();
    for step in 0..limit_ms / 10 {
        let now = start_ms.wrapping_add(step * 10);
        while queued < sizes.len() && a.waiting_to_send() < 64 {
            let next = message(queued, sizes[queued]);
            match queued % 2 {
                0 => a.send(next),
                _ => a.send_slice(&next),
            }
            .expect("accepted");
            queued += 1;
        }
        match step % 3 {
            0 => {
                a.update(now);
                b.update(now);
                while let Some(d) = a.poll_output() {
                    wire.carry(d);
                }
                while let Some(d) = b.poll_output() {
                    back.carry(d);
                }
            }
            1 => {
                a.update_with(now, |d| wire.carry(Bytes::copy_from_slice(d)));
                b.update_with(now, |d| back.carry(Bytes::copy_from_slice(d)));
            }
            _ => {
                a.update(now);
                b.update(now);
                while let Some(t) = a.poll_transmit() {
                    datagrams_of(&t).for_each(|d| wire.carry(d));
                }
                while let Some(t) = b.poll_transmit() {
                    datagrams_of(&t).for_each(|d| back.carry(d));
                }
            }
        }
        if step % 50 == 49 {
            wire.release_held();
            back.release_held();
        }
        for (to, wire) in [(&mut *b, &mut wire), (&mut *a, &mut back)] {
            let delivered: Vec<Bytes> = wire.delivered.drain(..).collect();
            if step % 4 == 3 {
                for (batch, size) in coalesce(&delivered) {
                    let report = to.input_batch(now, batch, size);
                    assert_eq!(report.refused, 0, "valid datagrams: {report:?}");
                }
                continue;
            }
            for (i, d) in delivered.into_iter().enumerate() {
                match i % 2 {
                    0 => to.input_bytes(now, d),
                    _ => to.input_slice(now, &d),
                }
                .expect("valid datagram");
            }
        }
        loop {
            let next = match got.len() % 3 {
                0 => b.recv(),
                1 => b.recv_with(Bytes::copy_from_slice),
                _ => b.recv_parts(|parts| parts.flatten().copied().collect::<Bytes>()),
            };
            let Some(m) = next else { break };
            got.push(m);
        }
        if got.len() >= expected && a.waiting_to_send() == 0 {
            return Some(got);
        }
    }
    None
}

/// The datagrams of a transmit, each its own handle, after checking the transmit's
/// shape: every datagram but the last `segment_size` long, within the GSO limits.
fn datagrams_of(transmit: &Transmit) -> impl Iterator<Item = Bytes> + '_ {
    let (count, size) = (transmit.datagram_count(), transmit.segment_size);
    assert!(
        (1..=MAX_TRANSMIT_DATAGRAMS).contains(&count),
        "{count} datagrams"
    );
    assert!(transmit.contents.len() <= MAX_TRANSMIT_BYTES);
    assert!(size > 0 && transmit.contents.len() > (count - 1) * size);
    (0..count).map(move |i| {
        let end = ((i + 1) * size).min(transmit.contents.len());
        transmit.contents.slice(i * size..end)
    })
}

/// Arrived datagrams coalesced as `UDP_GRO` does: runs of one length, the last one of
/// a run possibly shorter, each copied into one buffer with its segment size.
fn coalesce(datagrams: &[Bytes]) -> Vec<(Bytes, usize)> {
    let mut batches: Vec<(Vec<u8>, usize, bool)> = Vec::new();
    for d in datagrams {
        match batches.last_mut() {
            Some((bytes, size, open)) if *open && d.len() <= *size => {
                bytes.extend_from_slice(d);
                *open = d.len() == *size;
            }
            _ => batches.push((d.to_vec(), d.len(), true)),
        }
    }
    let batches: Vec<(Bytes, usize)> = batches
        .into_iter()
        .map(|(bytes, size, _)| (bytes.into(), size))
        .collect();
    batches
}

/// [`transfer`] of what `a` already queued, over lossless links from 0 ms, within 10 s.
fn lossless(a: &mut Arq, b: &mut Arq, expected: usize) -> Option<Vec<Bytes>> {
    let clean = || Wire::new(vec![]);
    transfer(a, b, &[], expected, clean(), clean(), 0, 10_000)
}

/// `from` flushes at `now`; every datagram it sends arrives at `to` at once.
fn pass(from: &mut Arq, to: &mut Arq, now: u32) {
    for datagram in flush_at(from, now) {
        to.input_bytes(now, datagram).expect("valid datagram");
    }
}

fn fast() -> ArqConfig {
    ArqConfig {
        dead_link: u32::MAX,
        ..ArqConfig::fast()
    }
}

/// Fast mode with nnet's loss settings on.
fn improved() -> ArqConfig {
    ArqConfig {
        recent_ack: true,
        ack_repeat: true,
        ..fast()
    }
}

fn exactly_once_in_order(
    sizes: Vec<u16>,
    fates: Vec<Fate>,
    back_fates: Vec<Fate>,
    first_sn: u32,
    start_ms: u32,
) -> TestResult {
    exactly_once_in_order_with(&fast(), sizes, fates, back_fates, first_sn, start_ms)
}

fn exactly_once_in_order_with(
    config: &ArqConfig,
    sizes: Vec<u16>,
    fates: Vec<Fate>,
    back_fates: Vec<Fate>,
    first_sn: u32,
    start_ms: u32,
) -> TestResult {
    // Every fate list must let something through, or nothing can ever arrive.
    let passes = |f: &Vec<Fate>| f.is_empty() || f.iter().any(|x| !matches!(x, Fate::Drop));
    if !passes(&fates) || !passes(&back_fates) {
        return TestResult::discard();
    }
    // A third small (inline payloads, several segments to a datagram), the rest up to
    // four fragments.
    let sizes: Vec<usize> = sizes
        .iter()
        .map(|&s| match s % 3 {
            0 => usize::from(s) % 100 + 1,
            _ => usize::from(s) % 5000 + 1,
        })
        .collect();
    let mut a = Arq::new(CONV, config).expect("config");
    let mut b = Arq::new(CONV, config).expect("config");
    a.start_sequences_at(first_sn);
    b.start_sequences_at(first_sn);
    let got = transfer(
        &mut a,
        &mut b,
        &sizes,
        sizes.len(),
        Wire::new(fates),
        Wire::new(back_fates),
        start_ms,
        3_600_000,
    );
    let Some(got) = got else {
        return TestResult::error("transfer did not finish");
    };
    let expected: Vec<Bytes> = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| message(i, *s))
        .collect();
    TestResult::from_bool(got == expected)
}

#[test]
fn delivery_is_exactly_once_in_order_under_any_loss_and_reordering() {
    QuickCheck::new().tests(200).quickcheck(
        exactly_once_in_order as fn(Vec<u16>, Vec<Fate>, Vec<Fate>, u32, u32) -> TestResult,
    );
}

#[test]
fn delivery_is_exactly_once_in_order_with_the_loss_settings() {
    fn with_loss_settings(
        sizes: Vec<u16>,
        fates: Vec<Fate>,
        back_fates: Vec<Fate>,
        first_sn: u32,
        start_ms: u32,
    ) -> TestResult {
        exactly_once_in_order_with(&improved(), sizes, fates, back_fates, first_sn, start_ms)
    }
    QuickCheck::new().tests(200).quickcheck(
        with_loss_settings as fn(Vec<u16>, Vec<Fate>, Vec<Fate>, u32, u32) -> TestResult,
    );
}

#[test]
fn delivery_survives_the_sequence_and_clock_wrap() {
    fn near_wrap(sizes: Vec<u16>, fates: Vec<Fate>, before: u16, clock_before: u16) -> TestResult {
        exactly_once_in_order(
            sizes,
            fates,
            vec![Fate::Deliver, Fate::Drop],
            u32::MAX - u32::from(before % 200),
            u32::MAX - u32::from(clock_before),
        )
    }
    QuickCheck::new()
        .tests(200)
        .quickcheck(near_wrap as fn(Vec<u16>, Vec<Fate>, u16, u16) -> TestResult);
}

#[test]
fn refused_messages_leave_the_engine_usable() {
    let config = ArqConfig {
        max_message_size: 3000,
        max_send_queue: 4,
        reserve_empty_messages: true,
        ..fast()
    };
    let mut a = Arq::new(CONV, &config).expect("config");
    let mut b = Arq::new(CONV, &config).expect("config");
    assert_eq!(a.send(Bytes::new()), Err(SendError::Empty));
    assert_eq!(
        a.send(message(0, 3001)),
        Err(SendError::TooLarge {
            size: 3001,
            max: 3000
        })
    );
    a.send(message(0, 3000)).expect("3 fragments fit");
    assert_eq!(
        a.send(message(1, 2000)),
        Err(SendError::QueueFull {
            queued: 3,
            needed: 2,
            max: 4
        })
    );
    a.send(message(1, 10)).expect("one more fragment fits");
    let got = lossless(&mut a, &mut b, 2);
    assert_eq!(got, Some(vec![message(0, 3000), message(1, 10)]));
    a.send(message(2, 2000))
        .expect("room again once acknowledged");
}

#[test]
fn copied_messages_are_refused_like_shared_ones() {
    let config = ArqConfig {
        max_message_size: 3000,
        max_send_queue: 2,
        reserve_empty_messages: true,
        ..fast()
    };
    let mut a = Arq::new(CONV, &config).expect("config");
    let mut b = Arq::new(CONV, &config).expect("config");
    assert_eq!(a.send_slice(&[]), Err(SendError::Empty));
    let too_large = SendError::TooLarge {
        size: 3001,
        max: 3000,
    };
    assert_eq!(a.send_slice(&message(0, 3001)), Err(too_large));
    a.send_slice(&message(0, 64)).expect("inline");
    a.send_slice(&message(1, 65)).expect("shared");
    let full = SendError::QueueFull {
        queued: 2,
        needed: 1,
        max: 2,
    };
    assert_eq!(a.send_slice(&message(2, 1)), Err(full.clone()));
    assert_eq!(a.send_slice(&message(2, 100)), Err(full));
    let got = lossless(&mut a, &mut b, 2);
    assert_eq!(got, Some(vec![message(0, 64), message(1, 65)]));
    assert_eq!(a.stats().messages_in, 2, "refused messages are not counted");
}

#[test]
fn recv_parts_lends_every_kind_of_message_once_in_its_fragments() {
    let mut a = Arq::new(CONV, &fast()).expect("config");
    let mut b = Arq::new(CONV, &fast()).expect("config");
    let mss = fast().mss();
    let sizes = [1, 65, mss, mss + 1, 4000, 2];
    for (i, &size) in sizes.iter().enumerate() {
        a.send(message(i, size)).expect("accepted");
    }
    pass(&mut a, &mut b, 0);
    for (i, &size) in sizes.iter().enumerate() {
        let (parts, total, joined) = b
            .recv_parts(|parts| {
                (
                    parts.len(),
                    parts.size(),
                    parts.flatten().copied().collect::<Bytes>(),
                )
            })
            .expect("arrived");
        assert_eq!(joined, message(i, size), "message {i}");
        assert_eq!(total, size);
        assert_eq!(parts, size.div_ceil(mss), "one part per fragment");
    }
    assert_eq!(
        b.recv_parts(|parts| parts.size()),
        None,
        "each message is lent once"
    );
    assert_eq!(b.stats().messages_out, sizes.len() as u64);
}

#[test]
fn recv_with_lends_every_kind_of_message_once() {
    let mut a = Arq::new(CONV, &fast()).expect("config");
    let mut b = Arq::new(CONV, &fast()).expect("config");
    // Inline, shared and fragmented messages, several to a datagram.
    let sizes = [1, 63, 64, 65, 700, 1376, 1377, 4000, 2, 64];
    for (i, &size) in sizes.iter().enumerate() {
        a.send_slice(&message(i, size)).expect("accepted");
    }
    pass(&mut a, &mut b, 0);
    for (i, &size) in sizes.iter().enumerate() {
        let lent = b.recv_with(|m| m.to_vec()).expect("arrived");
        assert_eq!(lent, message(i, size), "message {i}");
    }
    assert_eq!(b.recv_with(|m| m.len()), None, "each message is lent once");
    assert_eq!(b.recv(), None);
    assert_eq!(b.stats().messages_out, sizes.len() as u64);
}

#[test]
fn stream_mode_joins_copied_and_shared_writes_into_one_byte_stream() {
    let config = ArqConfig {
        stream: true,
        ..fast()
    };
    let mut a = Arq::new(CONV, &config).expect("config");
    let mut b = Arq::new(CONV, &config).expect("config");
    let writes: Vec<Bytes> = [3, 64, 1, 700, 2000, 5, 64]
        .iter()
        .enumerate()
        .map(|(i, &size)| message(i, size))
        .collect();
    for (i, write) in writes.iter().enumerate() {
        match i % 2 {
            0 => a.send_slice(write),
            _ => a.send(write.clone()),
        }
        .expect("accepted");
    }
    let mut got = Vec::new();
    for step in 0..100u32 {
        pass(&mut a, &mut b, step * 10);
        pass(&mut b, &mut a, step * 10);
        while b.recv_with(|m| got.extend_from_slice(m)).is_some() {}
    }
    assert_eq!(
        got,
        writes.concat(),
        "the bytes in order, whatever the segments"
    );
}

#[test]
fn hello_is_sent_but_swallowed_under_the_empty_message_rule() {
    let config = ArqConfig {
        reserve_empty_messages: true,
        ..fast()
    };
    let mut a = Arq::new(CONV, &config).expect("config");
    let mut b = Arq::new(CONV, &config).expect("config");
    a.send_hello();
    a.send(message(0, 5)).expect("send");
    let got = lossless(&mut a, &mut b, 1);
    assert_eq!(got, Some(vec![message(0, 5)]));
    assert_eq!(b.stats().data_segments_in, 2, "the hello did travel");

    // Lent messages skip it the same way.
    let mut e = Arq::new(CONV, &config).expect("config");
    let mut f = Arq::new(CONV, &config).expect("config");
    e.send_hello();
    e.send_slice(b"hi").expect("send");
    pass(&mut e, &mut f, 0);
    assert_eq!(f.recv_with(|m| m.to_vec()), Some(b"hi".to_vec()));
    assert_eq!(f.recv_with(|m| m.to_vec()), None);

    // Without the rule, empty messages pass through like in ikcp.
    let mut c = Arq::new(CONV, &fast()).expect("config");
    let mut d = Arq::new(CONV, &fast()).expect("config");
    c.send(Bytes::new()).expect("empty allowed by default");
    let got = lossless(&mut c, &mut d, 1);
    assert_eq!(got, Some(vec![Bytes::new()]));
}

#[test]
fn announce_sends_data_as_new_first_in_each_datagram() {
    let config = ArqConfig {
        announce_room: true,
        ..fast()
    };
    let token = [9u8; 8];
    let mut client = Arq::new(CONV, &config).expect("config");
    let mut server = Arq::new(CONV, &fast()).expect("config");
    // Give the client something to acknowledge so its datagrams also carry ACKs.
    server.send(message(0, 100)).expect("send");
    pass(&mut server, &mut client, 0);
    assert_eq!(server.set_announce(Some(token)), Err(NoAnnounceRoom));
    client.set_announce(Some(token)).expect("room kept");
    client.send(message(1, 4000)).expect("send");
    client.update(0);
    client.update(10);
    let mut news = 0;
    while let Some(d) = client.poll_output() {
        assert!(d.len() <= config.mtu, "NEW room was kept within the MTU");
        let datagram = Datagram::parse(d).expect("valid");
        let first = datagram.segments().next().expect("one segment");
        assert_eq!(first.header.cmd, Cmd::New, "NEW goes first");
        for segment in datagram.segments() {
            if segment.header.cmd == Cmd::New {
                news += 1;
                assert_eq!(segment.announce.expect("announce").token, token);
            }
            assert_ne!(segment.header.cmd, Cmd::Push);
        }
        let report = server
            .input(10, &datagram)
            .expect("server takes NEW as data");
        assert!(report.data_segments > 0);
    }
    assert_eq!(news, 3, "4000 bytes in 1348-byte fragments");
    assert_eq!(server.recv(), Some(message(1, 4000)));
    client.set_announce(None).expect("always allowed");
    client.send(message(2, 10)).expect("send");
    client.update(20);
    let d = client.poll_output().expect("output");
    let datagram = Datagram::parse(d).expect("valid");
    assert!(datagram.segments().all(|s| s.header.cmd != Cmd::New));
}

#[test]
fn restart_requeues_everything_under_the_new_conv() {
    let mut a = Arq::new(CONV, &fast()).expect("config");
    a.send(message(0, 2000)).expect("send");
    a.update(0);
    a.update(10);
    assert!(a.poll_output().is_some());
    assert!(a.restart_as(CONV + 1));
    let mut b = Arq::new(CONV + 1, &fast()).expect("config");
    let got = transfer(
        &mut a,
        &mut b,
        &[],
        1,
        Wire::new(vec![]),
        Wire::new(vec![]),
        20,
        10_000,
    );
    assert_eq!(got, Some(vec![message(0, 2000)]));
    assert!(
        !a.restart_as(CONV + 2),
        "refused once the peer acknowledged"
    );
}

#[test]
fn a_datagram_of_another_conv_changes_nothing() {
    let mut a = Arq::new(CONV, &fast()).expect("config");
    let mut other = Arq::new(CONV + 1, &fast()).expect("config");
    other.send(message(0, 10)).expect("send");
    other.update(0);
    let d = other.poll_output().expect("output");
    assert!(a.input_bytes(0, d).is_err());
    assert!(a.is_idle());
    assert!(a.input_bytes(0, Bytes::from_static(&[1, 2, 3])).is_err());
    assert_eq!(a.stats().datagrams_refused, 2);
}

#[test]
fn in_flight_bytes_count_payload_sent_and_not_acknowledged() {
    let mut a = Arq::new(CONV, &fast()).expect("config");
    let mut b = Arq::new(CONV, &fast()).expect("config");
    a.send(message(0, 100)).expect("send");
    a.send(message(1, 3000)).expect("send");
    assert_eq!(a.in_flight_bytes(), 0, "queued is not in flight");
    pass(&mut a, &mut b, 0);
    assert_eq!(a.in_flight_bytes(), 3100);
    assert_eq!(a.in_flight(), 4, "one segment, then three fragments");
    b.update(0);
    while let Some(d) = b.poll_output() {
        a.input_bytes(5, d).expect("input");
    }
    assert_eq!(a.in_flight_bytes(), 0);
}

/// Sequence numbers of the segments of `cmd` in `datagrams`.
fn sns(datagrams: &[Bytes], cmd: Cmd) -> Vec<u32> {
    datagrams
        .iter()
        .flat_map(|d| {
            let datagram = Datagram::parse(d.clone()).expect("valid");
            datagram
                .segments()
                .filter(|s| s.header.cmd == cmd)
                .map(|s| s.header.sn)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn flush_at(engine: &mut Arq, now: u32) -> Vec<Bytes> {
    engine.update(now);
    std::iter::from_fn(|| engine.poll_output()).collect()
}

/// A sender sends segments 0 and 1 (one datagram each) at 0 ms; 0 is lost, 1 arrives
/// and its ACK comes back at 50 ms. Returns the sender, after the ACK.
fn sender_with_a_hole(config: &ArqConfig) -> Arq {
    let mut a = Arq::new(CONV, config).expect("config");
    let mut b = Arq::new(CONV, config).expect("config");
    let full = config.mss();
    a.send(message(0, full)).expect("send");
    a.send(message(1, full)).expect("send");
    let sent = flush_at(&mut a, 0);
    assert_eq!(sns(&sent, Cmd::Push), vec![0, 1]);
    assert_eq!(sent.len(), 2, "one segment per datagram");
    b.input_bytes(25, sent[1].clone()).expect("input");
    for ack in flush_at(&mut b, 25) {
        a.input_bytes(50, ack).expect("input");
    }
    assert_eq!(a.srtt_ms(), 50);
    a
}

#[test]
fn recent_ack_resends_after_a_round_trip_and_a_quarter_not_before() {
    // No ACK counting, and an RTO far away: only the time rule can resend segment 0.
    let config = ArqConfig {
        fast_resend: 0,
        recent_ack: true,
        ..fast()
    };
    let mut a = sender_with_a_hole(&config);
    assert!(a.rto_ms() > 100);
    // Segment 1, sent with 0, was acknowledged after 50 ms: segment 0 is lost once
    // 50 ms and a quarter of the smoothed RTT (12 ms) have passed since it was sent.
    assert!(sns(&flush_at(&mut a, 60), Cmd::Push).is_empty(), "at 60 ms");
    assert_eq!(sns(&flush_at(&mut a, 70), Cmd::Push), vec![0], "at 70 ms");
    assert_eq!(a.stats().recent_ack_retransmits, 1);
    assert_eq!(a.stats().timeout_retransmits, 0);
    // The retransmission is not lost again until something sent after it is
    // acknowledged.
    assert!(sns(&flush_at(&mut a, 150), Cmd::Push).is_empty());

    // Without the setting, segment 0 waits for its RTO.
    let config = ArqConfig {
        recent_ack: false,
        ..config
    };
    let mut a = sender_with_a_hole(&config);
    assert!(sns(&flush_at(&mut a, 70), Cmd::Push).is_empty());
    assert_eq!(a.stats().recent_ack_retransmits, 0);
}

#[test]
fn recent_ack_finds_a_lost_retransmission() {
    let config = ArqConfig {
        fast_resend: 0,
        recent_ack: true,
        ..fast()
    };
    let mut a = sender_with_a_hole(&config);
    let mut b = Arq::new(CONV, &config).expect("config");
    // Segment 0 goes again at 70 ms and is lost again; segment 2, sent at 80 ms,
    // arrives and is acknowledged at 130 ms.
    assert_eq!(sns(&flush_at(&mut a, 70), Cmd::Push), vec![0]);
    a.send(message(2, 10)).expect("send");
    let sent = flush_at(&mut a, 80);
    assert_eq!(sns(&sent, Cmd::Push), vec![2]);
    for datagram in sent {
        b.input_bytes(105, datagram).expect("input");
    }
    for ack in flush_at(&mut b, 105) {
        a.input_bytes(130, ack).expect("input");
    }
    // Lost 50 ms (the last round trip) and a quarter of the smoothed RTT after 70 ms.
    assert!(sns(&flush_at(&mut a, 130), Cmd::Push).is_empty());
    assert_eq!(sns(&flush_at(&mut a, 140), Cmd::Push), vec![0]);
    assert_eq!(a.stats().recent_ack_retransmits, 2);
    assert_eq!(a.stats().timeout_retransmits, 0);
}

#[test]
fn ack_repeat_sends_the_ack_of_a_held_segment_once_more() {
    let config = ArqConfig {
        ack_repeat: true,
        ..fast()
    };
    let mut a = Arq::new(CONV, &config).expect("config");
    let full = config.mss();
    for i in 0..3 {
        a.send(message(i, full)).expect("send");
    }
    let sent = flush_at(&mut a, 0);
    assert_eq!(sent.len(), 3);
    let (first, second, third) = (&sent[0], &sent[1], &sent[2]);
    let receive = |config: &ArqConfig| {
        let mut b = Arq::new(CONV, config).expect("config");
        // Segment 1 arrives over a gap, and again and again: its ACKs are being lost.
        for _ in 0..6 {
            b.input_bytes(5, second.clone()).expect("input");
        }
        assert_eq!(sns(&flush_at(&mut b, 10), Cmd::Ack), vec![1; 6]);
        b
    };
    let mut b = receive(&config);
    assert_eq!(
        sns(&flush_at(&mut b, 20), Cmd::Ack),
        vec![1],
        "segment 1 is still held above the gap: its ACK once more"
    );
    assert!(sns(&flush_at(&mut b, 30), Cmd::Ack).is_empty(), "only once");

    // Once the gap closes, the `una` of any datagram covers the held segment.
    let mut b = receive(&config);
    b.input_bytes(15, first.clone()).expect("input");
    assert_eq!(sns(&flush_at(&mut b, 20), Cmd::Ack), vec![0]);

    // A segment arriving in order is not repeated either.
    b.input_bytes(25, third.clone()).expect("input");
    assert_eq!(sns(&flush_at(&mut b, 30), Cmd::Ack), vec![2]);
    assert!(sns(&flush_at(&mut b, 40), Cmd::Ack).is_empty());

    // Off (the reference's behaviour): never repeated.
    let mut b = receive(&fast());
    assert!(sns(&flush_at(&mut b, 20), Cmd::Ack).is_empty());
}

#[test]
fn ack_repeat_waits_for_duplicates_to_show_lost_acks() {
    let config = ArqConfig {
        ack_repeat: true,
        ..fast()
    };
    let mut a = Arq::new(CONV, &config).expect("config");
    a.send(message(0, config.mss())).expect("send");
    a.send(message(1, config.mss())).expect("send");
    let sent = flush_at(&mut a, 0);
    let mut b = Arq::new(CONV, &config).expect("config");
    b.input_bytes(5, sent[1].clone()).expect("input");
    assert_eq!(sns(&flush_at(&mut b, 10), Cmd::Ack), vec![1]);
    assert!(
        sns(&flush_at(&mut b, 20), Cmd::Ack).is_empty(),
        "no duplicate seen yet: no sign that ACKs get lost"
    );
}

#[test]
fn a_periodic_loss_pattern_does_not_starve_a_segment_for_hours() {
    // Found by the quickcheck property above: three datagrams of four lost in a fixed
    // pattern drove one segment through 30 timeouts; ikcp.c's unbounded back-off then
    // put its next retransmission hours away. The RTO cap keeps it within a minute.
    let r = exactly_once_in_order(
        vec![22752, 22752, 12752, 12752, 52752, 6376, 51376],
        vec![Fate::Drop, Fate::Drop, Fate::Deliver, Fate::Drop],
        vec![Fate::Deliver, Fate::Drop],
        0,
        0,
    );
    assert!(!r.is_failure() && !r.is_error(), "{r:?}");
}

#[test]
fn a_segment_backs_off_to_the_rto_cap_and_no_further() {
    let mut a = Arq::new(CONV, &fast()).expect("config");
    a.send(message(0, 10)).expect("send");
    let mut sends = Vec::new();
    for step in 0..2 * 3600 * 100 {
        let now = step * 10;
        a.update(now);
        while a.poll_output().is_some() {
            sends.push(now);
        }
    }
    let gaps: Vec<u32> = sends.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.windows(2).all(|w| w[1] >= w[0]), "back-off only grows");
    let max = super::RTO_MAX_MS + 10;
    assert!(gaps.iter().all(|&g| g <= max), "{gaps:?}");
    assert!(gaps.len() > 100, "still retransmitting after two hours");
}

/// Sends `messages` from `from` to `to` at `now` and lets `to` acknowledge them;
/// returns what `to` sent.
fn deliver_and_ack(from: &mut Arq, to: &mut Arq, messages: &[Bytes], now: u32) -> Vec<Bytes> {
    for m in messages {
        from.send(m.clone()).expect("send");
    }
    from.flush(now);
    while let Some(datagram) = from.poll_output() {
        to.input_bytes(now, datagram).expect("input");
    }
    to.flush(now + 10);
    std::iter::from_fn(|| to.poll_output()).collect()
}

#[test]
fn released_buffers_are_empty_and_adopting_them_changes_nothing() {
    let secret = Bytes::from_static(b"secret of the first conversation");
    let mut a = Arq::new(CONV, &fast()).expect("config");
    let mut b = Arq::new(CONV, &fast()).expect("config");
    deliver_and_ack(&mut a, &mut b, &[secret.clone(), secret.clone()], 0);
    // A message the application has not read yet stays; the rest is handed over.
    let kept = b.release_idle_buffers();
    assert!(kept.is_empty() && kept.bytes() > 0);
    assert_eq!(b.recv(), Some(secret.clone()));
    assert_eq!(b.recv(), Some(secret.clone()));
    let buffers = b.release_idle_buffers();
    assert!(buffers.is_empty() && buffers.bytes() > 0);

    // An engine on those buffers does exactly what one on fresh buffers does.
    let messages = [message(1, 10), message(2, 1000)];
    let (mut c, mut d) = (
        Arq::new(CONV, &fast()).expect("config"),
        Arq::new(CONV, &fast()).expect("config"),
    );
    d.adopt_buffers(buffers);
    d.adopt_buffers(kept);
    let (mut e, mut f) = (
        Arq::new(CONV, &fast()).expect("config"),
        Arq::new(CONV, &fast()).expect("config"),
    );
    let on_adopted = deliver_and_ack(&mut c, &mut d, &messages, 100);
    let on_fresh = deliver_and_ack(&mut e, &mut f, &messages, 100);
    assert_eq!(on_adopted, on_fresh);
    let received: Vec<Bytes> = std::iter::from_fn(|| d.recv()).collect();
    assert_eq!(received, messages);
    assert!(std::iter::from_fn(|| f.recv()).eq(messages));
    assert!(on_adopted
        .iter()
        .all(|d| !d.windows(secret.len()).any(|w| w == &secret[..])));
}

#[test]
fn joined_messages_survive_the_release_of_the_join_buffer() {
    let mut a = Arq::new(CONV, &fast()).expect("config");
    let mut b = Arq::new(CONV, &fast()).expect("config");
    let (first, second, third) = (message(1, 3000), message(2, 4000), message(3, 2500));
    deliver_and_ack(&mut a, &mut b, &[first.clone(), second.clone()], 0);
    let taken = b.recv().expect("first joined message");
    let lent = b.recv_with(|m| m.to_vec()).expect("second joined message");
    let _ = b.release_idle_buffers();
    assert_eq!(taken, first, "a joined message given out keeps its bytes");
    assert_eq!(lent, second);
    // The join buffer comes back for the next fragmented message.
    deliver_and_ack(&mut a, &mut b, std::slice::from_ref(&third), 100);
    assert_eq!(b.recv_with(|m| m.to_vec()), Some(third.to_vec()));
    let _ = b.release_idle_buffers();
    assert_eq!(taken, first);
}

#[test]
fn an_idle_engine_flushes_without_taking_memory() {
    let mut a = Arq::new(CONV, &fast()).expect("config");
    let mut b = Arq::new(CONV, &fast()).expect("config");
    for ack in deliver_and_ack(&mut a, &mut b, &[message(1, 100)], 0) {
        a.input_bytes(10, ack).expect("ACK");
    }
    assert!(b.recv().is_some());
    for engine in [&mut a, &mut b] {
        assert!(engine.is_idle());
        assert!(engine.release_idle_buffers().bytes() > 0, "it had buffers");
        for now in (30..200).step_by(10) {
            engine.update(now);
            assert!(engine.poll_output().is_none());
        }
        let after = engine.release_idle_buffers();
        assert_eq!(after.bytes(), 0, "idle flushes allocated {after:?}");
    }
    // Woken up, they work as before.
    deliver_and_ack(&mut a, &mut b, &[message(2, 10)], 300);
    assert_eq!(b.recv(), Some(message(2, 10)));
}

#[test]
fn update_with_lends_the_datagrams_poll_output_gives() {
    let engines = || {
        let mut engine = Arq::new(CONV, &fast()).expect("config");
        for (i, size) in [10, 3000, 64, 65, 1376, 20_000].into_iter().enumerate() {
            engine.send(message(i, size)).expect("send");
        }
        engine
    };
    let (mut polled, mut lent) = (engines(), engines());
    // One flush outside the interval first: its datagrams wait to be polled, and
    // `update_with` lends them before the ones it makes.
    polled.flush(0);
    lent.flush(0);
    polled.update(10);
    let expected: Vec<Bytes> = std::iter::from_fn(|| polled.poll_output()).collect();
    let mut got = Vec::new();
    lent.update_with(10, |d| got.push(Bytes::copy_from_slice(d)));
    assert!(expected.len() > 10, "several datagrams: {}", expected.len());
    assert_eq!(got, expected);
    assert!(!lent.has_output());
    let (polled, lent) = (polled.stats(), lent.stats());
    assert_eq!(lent.datagrams_out, polled.datagrams_out);
    assert_eq!(lent.bytes_out, polled.bytes_out);
}

#[test]
fn input_slice_takes_in_what_input_bytes_does() {
    let mut a = Arq::new(CONV, &fast()).expect("config");
    let sizes = [1, 64, 65, 700, 1376, 1377, 5000];
    for (i, size) in sizes.into_iter().enumerate() {
        a.send(message(i, size)).expect("send");
    }
    let datagrams = flush_at(&mut a, 0);
    let mut by_bytes = Arq::new(CONV, &fast()).expect("config");
    let mut by_slice = Arq::new(CONV, &fast()).expect("config");
    for datagram in &datagrams {
        let one = by_bytes.input_bytes(0, datagram.clone()).expect("valid");
        let other = by_slice.input_slice(0, datagram).expect("valid");
        assert_eq!(one, other);
    }
    for (i, size) in sizes.into_iter().enumerate() {
        assert_eq!(by_bytes.recv(), Some(message(i, size)));
        assert_eq!(by_slice.recv(), Some(message(i, size)), "message {i}");
    }
    assert_eq!(
        flush_at(&mut by_bytes, 10),
        flush_at(&mut by_slice, 10),
        "same ACKs"
    );
    let refused = by_slice.input_slice(10, &datagrams[0][..5]);
    assert!(refused.is_err(), "a cut datagram is refused");
    assert_eq!(by_slice.stats().datagrams_refused, 1);
}

/// Datagrams of ACKs only take a loop of their own in `input_bytes` and `input_slice`;
/// it must leave the sender as the general per-segment path (`input`) does: the same
/// RTT estimate, the same segments acknowledged, the same fast-retransmit hints (some
/// ACKs arrive out of order over a hole) and the same report.
#[test]
fn ack_datagrams_are_taken_in_like_any_other() {
    let config = ArqConfig {
        recent_ack: true,
        send_window: 128,
        recv_window: 128,
        ..fast()
    };
    let mut senders: Vec<Arq> = (0..3)
        .map(|_| Arq::new(CONV, &config).expect("config"))
        .collect();
    let mut receiver = Arq::new(CONV, &config).expect("config");
    let mut ack_only = 0;
    for round in 0..6u32 {
        let start = 40 * round;
        let mut sent = Vec::new();
        for sender in &mut senders {
            for i in 0..80 {
                sender.send(message(i, 1 + i * 13 % 900)).expect("send");
            }
            sent = flush_at(sender, start);
        }
        // In the first round every fifth datagram is lost: the ACKs of the later ones
        // jump the holes.
        for (i, datagram) in sent.into_iter().enumerate() {
            if round > 0 || i % 5 != 2 {
                receiver.input_bytes(start + 7, datagram).expect("valid");
            }
        }
        while receiver.recv().is_some() {}
        let acks = flush_at(&mut receiver, start + 9);
        ack_only += acks
            .iter()
            .filter(|d| Datagram::check_acks(d) == Some(CONV))
            .count();
        for ack in acks {
            let [general, by_bytes, by_slice] = &mut senders[..] else {
                unreachable!("three senders");
            };
            let parsed = Datagram::parse(ack.clone()).expect("valid");
            let one = general.input(start + 20, &parsed).expect("valid");
            assert_eq!(by_bytes.input_bytes(start + 20, ack.clone()), Ok(one));
            assert_eq!(by_slice.input_slice(start + 20, &ack), Ok(one));
        }
        let after: Vec<_> = senders
            .iter_mut()
            .map(|s| {
                let state = (s.srtt_ms(), s.rttvar_ms(), s.rto_ms(), s.in_flight());
                (state, s.stats(), flush_at(s, start + 30))
            })
            .collect();
        assert_eq!(after[0], after[1], "input_bytes, round {round}");
        assert_eq!(after[0], after[2], "input_slice, round {round}");
    }
    assert!(ack_only > 3, "{ack_only} datagrams of ACKs only");
    let stats = senders[0].stats();
    assert!(stats.fast_retransmits > 0, "out-of-order ACKs: {stats:?}");
}

#[test]
fn poll_transmit_gathers_the_datagrams_poll_output_gives() {
    let engines = || {
        let config = ArqConfig {
            send_window: 512,
            recv_window: 512,
            ..fast()
        };
        let mut engine = Arq::new(CONV, &config).expect("config");
        let sizes = (0..150).map(|i| if i % 50 == 7 { 10 } else { 1024 });
        for (i, size) in sizes.chain([3000, 64, 20_000]).enumerate() {
            engine.send(message(i, size)).expect("send");
        }
        engine
    };
    let (mut polled, mut gathered) = (engines(), engines());
    polled.update(0);
    gathered.update(0);
    let expected: Vec<Bytes> = std::iter::from_fn(|| polled.poll_output()).collect();
    let transmits: Vec<Transmit> = std::iter::from_fn(|| gathered.poll_transmit()).collect();
    let got: Vec<Bytes> = transmits.iter().flat_map(datagrams_of).collect();
    assert_eq!(got, expected);
    // 1 KiB messages go one to a datagram: long runs, cut where a short message packs
    // with the next one, where the buffer grows (into a new allocation) and at the
    // fragments of the large ones.
    assert!(expected.len() > 100, "{} datagrams", expected.len());
    assert!(transmits.len() < 16, "{} transmits", transmits.len());
    assert!(transmits.iter().any(|t| t.datagram_count() > 16));
    assert!(!gathered.has_output());
    assert_eq!(gathered.stats().datagrams_out, polled.stats().datagrams_out);
    assert_eq!(gathered.stats().bytes_out, polled.stats().bytes_out);
    // Both ways take from the same queue.
    let mut mixed = engines();
    mixed.update(0);
    let first = mixed.poll_output().expect("a datagram");
    let rest = mixed.poll_transmit().expect("the rest of the first run");
    assert_eq!(first, expected[0]);
    assert_eq!(datagrams_of(&rest).next(), Some(expected[1].clone()));
}

#[test]
fn input_batch_takes_in_what_input_bytes_does() {
    let mut a = Arq::new(CONV, &fast()).expect("config");
    let sizes = [1, 64, 65, 700, 1376, 1377, 5000, 1024, 1024, 1024];
    for (i, size) in sizes.into_iter().enumerate() {
        a.send(message(i, size)).expect("send");
    }
    a.update(0);
    let transmits: Vec<Transmit> = std::iter::from_fn(|| a.poll_transmit()).collect();
    let mut by_bytes = Arq::new(CONV, &fast()).expect("config");
    let mut by_batch = Arq::new(CONV, &fast()).expect("config");
    let mut held = Vec::new();
    for transmit in &transmits {
        let mut report = InputReport::default();
        for datagram in datagrams_of(transmit) {
            let one = by_bytes.input_bytes(0, datagram).expect("valid");
            report.data_segments += one.data_segments;
            report.una_advanced |= one.una_advanced;
        }
        // A copy of its own, so that the test can tell when the engine lets go of it.
        let own = Bytes::from(transmit.contents.to_vec());
        held.push(own.clone());
        let batch = by_batch.input_batch(0, own, transmit.segment_size);
        let summed = (batch.data_segments, batch.ack_segments, batch.una_advanced);
        assert_eq!(summed, (report.data_segments, 0, report.una_advanced));
        assert_eq!(
            (batch.accepted as usize, batch.refused),
            (transmit.datagram_count(), 0)
        );
    }
    let mut parts = Vec::new();
    for (i, size) in sizes.into_iter().enumerate() {
        assert_eq!(by_bytes.recv(), Some(message(i, size)));
        let got = match i % 3 {
            0 => by_batch.recv(),
            1 => by_batch.recv_with(Bytes::copy_from_slice),
            _ => by_batch.recv_parts(|p| {
                parts.push(p.len());
                p.flatten().copied().collect::<Bytes>()
            }),
        };
        assert_eq!(got, Some(message(i, size)), "message {i}");
    }
    assert!(
        parts.iter().any(|&n| n > 1),
        "a fragmented message lent in parts"
    );
    assert_eq!(
        flush_at(&mut by_bytes, 10),
        flush_at(&mut by_batch, 10),
        "same ACKs"
    );
    // Every payload taken: the engine keeps no batch.
    assert_eq!(by_batch.kept_batches(), 0);
    for mut batch in held {
        assert!(batch.is_unique(), "the engine let go of its batch");
        batch.clear();
    }
}

#[test]
fn a_bad_datagram_in_a_batch_is_refused_alone() {
    let mut a = Arq::new(CONV, &fast()).expect("config");
    for i in 0..3 {
        a.send(message(i, 1000)).expect("send");
    }
    let datagrams = flush_at(&mut a, 0);
    assert_eq!(datagrams.len(), 3);
    let size = datagrams[0].len();
    let mut batch = Vec::new();
    batch.extend_from_slice(&datagrams[0]);
    let mut other_conv = datagrams[1].to_vec();
    other_conv[0] ^= 1;
    batch.extend_from_slice(&other_conv);
    batch.extend_from_slice(&datagrams[2][..30]);
    let mut b = Arq::new(CONV, &fast()).expect("config");
    let report = b.input_batch(0, batch.into(), size);
    assert_eq!((report.accepted, report.refused), (1, 2));
    assert!(report.last_error.is_some());
    assert_eq!(b.stats().datagrams_refused, 2);
    assert_eq!(b.recv(), Some(message(0, 1000)));
    assert_eq!(b.recv(), None, "the others changed nothing");
    // The rest arrives later, whole: delivered in order.
    for datagram in &datagrams[1..] {
        let report = b.input_batch(5, datagram.clone(), 0);
        assert_eq!(report.accepted, 1);
    }
    assert_eq!(b.recv(), Some(message(1, 1000)));
    assert_eq!(b.recv(), Some(message(2, 1000)));
}
