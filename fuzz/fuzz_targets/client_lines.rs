//! Arbitrary datagrams on arbitrary lines, time steps and application commands into a
//! client `Connection` with three lines (PROTOCOL.md sections 3 to 6).
//!
//! Datagrams are raw bytes, empty, or built from the input: PONGs (for the probes the
//! client actually sent, or made up), ACKs, PUSHes, FINs and KICKs of the client's conv,
//! conv 0 or another conv. Checks, beyond "never panics":
//! - every datagram sent parses, fits in the MTU and goes out on a line of the list in
//!   force when it was polled;
//! - `Switched` names a line of the list; `ProbeFailed` counts 1, 2, 3... and never
//!   passes `max_retries`;
//! - exactly one `Closed` at most, and nothing but messages before it after it (no
//!   event once the `Closed` event is taken); no timer once closed;

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use nnet_core::client::Connection;
use nnet_core::config::{ClientConfig, FasterLine, SessionConfig};
use nnet_core::event::ClientEvent;
use nnet_core::line::Line;
use nnet_core::wire::{self, Cmd, Datagram, FinReason, Header};

const ADDRS: [&str; 4] = [
    "10.0.1.1:7000",
    "10.0.1.2:7000",
    "[2001:db8::3]:7000",
    "10.0.1.4:7000",
];

struct Input<'a>(std::slice::Iter<'a, u8>);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        self.0.next().copied().unwrap_or(0)
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
}

fn line(i: u8) -> Line {
    let addr: SocketAddr = ADDRS[usize::from(i % 4)].parse().expect("addr");
    if i & 4 == 0 {
        Line::udp(addr)
    } else {
        Line::tcp(addr)
    }
}

/// A datagram built from the input, around the client's conv and the last PING seen.
fn build(input: &mut Input, conv: u32, last_ping: Option<Header>) -> Bytes {
    let shape = input.byte();
    let conv = match shape & 3 {
        0 => 0,
        1 => conv ^ 1,
        _ => conv,
    };
    match (shape >> 2) % 6 {
        0 => match last_ping {
            Some(ping) if shape & 0x80 == 0 => {
                wire::pong(&Header { conv, ..ping }, input.byte() & 1 == 1)
            }
            _ => {
                let ping = Header {
                    conv,
                    cmd: Cmd::Ping,
                    frg: 0,
                    wnd: 0,
                    ts: input.u32(),
                    sn: u32::from(input.byte()),
                    una: 0,
                    len: 0,
                };
                wire::pong(&ping, input.byte() & 1 == 1)
            }
        },
        1 => wire::fin(conv, FinReason::from_u8(input.byte() % 6)),
        2 => wire::kick(conv, input.u32()),
        cmd => {
            let mut out = BytesMut::new();
            let cmd =
                [Cmd::Ack, Cmd::Push, Cmd::Wins, Cmd::Wask][usize::from(cmd - 3 + (shape >> 7))];
            let len = if cmd == Cmd::Push {
                usize::from(input.byte() % 40)
            } else {
                0
            };
            Header {
                conv,
                cmd,
                frg: 0,
                wnd: u16::from(input.byte()),
                ts: input.u32() % 100_000,
                sn: u32::from(input.byte() % 8),
                una: u32::from(input.byte() % 8),
                len: len as u32,
            }
            .encode(&mut out);
            out.put_bytes(input.byte(), len);
            out.freeze()
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data.iter());
    let flags = input.byte();
    let config = ClientConfig {
        session: if flags & 1 == 0 {
            SessionConfig::default()
        } else {
            SessionConfig::fast()
        },
        max_retries: u32::from(flags >> 5) + 1,
        probe_timeout: Duration::from_millis(500 + 250 * u64::from((flags >> 1) & 3)),
        faster_line: (flags & 8 != 0).then(|| FasterLine {
            check_interval: Duration::from_secs(1),
            ..FasterLine::default()
        }),
        seed: u64::from(flags),
        ..ClientConfig::default()
    };
    let mtu = config.session.arq.mtu;
    let max_retries = config.max_retries;
    let start = Instant::now();
    let mut now = start;
    let mut lines: Vec<Line> = vec![line(0), line(1), line(2)];
    let Ok(mut client) = Connection::connect(config, &lines, now) else {
        return;
    };
    let mut last_ping: Option<Header> = None;
    let mut closed = false;
    let mut closed_taken = false;
    let mut last_attempt = 0;
    let mut ops = 0;
    while !input.0.as_slice().is_empty() && ops < 3000 {
        ops += 1;
        let op = input.byte();
        match op % 6 {
            0 | 1 => {
                let on = line(input.byte());
                let payload = match op >> 6 {
                    0 => Bytes::new(),
                    1 => {
                        let n = usize::from(input.byte() % 64);
                        Bytes::from((0..n).map(|_| input.byte()).collect::<Vec<u8>>())
                    }
                    _ => build(&mut input, client.conv(), last_ping),
                };
                client.handle_datagram(now, on, payload);
            }
            2 => {
                now += Duration::from_millis(u64::from(input.byte()) * 4);
                client.handle_timeout(now);
            }
            3 => {
                if let Some(at) = client.poll_timeout() {
                    if at <= now + Duration::from_secs(10) {
                        now = now.max(at);
                    }
                }
                client.handle_timeout(now);
            }
            4 => {
                let n = usize::from(input.byte() % 5);
                let fresh: Vec<Line> = (0..n).map(|_| line(input.byte())).collect();
                match client.set_lines(&fresh, now) {
                    Ok(()) => lines = fresh,
                    Err(_) => assert!(fresh.is_empty()),
                }
            }
            _ => {
                let arg = input.byte();
                match arg % 4 {
                    0 => client.close(now),
                    _ => {
                        // Refusals (closing, queue full, empty) are fine; panics are not.
                        let _ = client.send(Bytes::from(vec![arg; usize::from(arg) * 5]));
                    }
                }
            }
        }
        while let Some(transmit) = client.poll_transmit() {
            assert!(transmit.payload.len() <= mtu, "datagram over the MTU");
            let datagram = Datagram::parse(transmit.payload.clone()).expect("valid datagram");
            assert!(
                lines.contains(&transmit.line) || client.is_closed(),
                "sent on {} not in {lines:?}: current {:?} probing {} {:?}",
                transmit.line,
                client.current_line(),
                client.is_probing(),
                datagram.first()
            );
            if datagram.first().cmd == Cmd::Ping {
                last_ping = Some(*datagram.first());
            }
        }
        while let Some(event) = client.poll_event() {
            assert!(!closed_taken, "an event after Closed: {event:?}");
            match event {
                ClientEvent::Closed(_) => {
                    assert!(!closed, "closed twice");
                    closed = true;
                    closed_taken = true;
                }
                ClientEvent::Switched { to, .. } => assert!(lines.contains(&to)),
                ClientEvent::ProbeFailed { attempt, .. } => {
                    assert!(
                        attempt == last_attempt + 1 || attempt == 1,
                        "attempt {attempt} after {last_attempt}"
                    );
                    assert!(attempt <= max_retries);
                    last_attempt = attempt;
                }
                ClientEvent::Message(m) => assert!(!m.is_empty()),
                _ => {}
            }
        }
        assert_eq!(closed, client.is_closed());
        if closed {
            assert!(client.poll_timeout().is_none(), "a timer after the close");
        }
    }
});
