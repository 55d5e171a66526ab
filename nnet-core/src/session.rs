//! One conversation, the part both sides share (PROTOCOL.md section 5): the KCP engine
//! plus the ending of a session — `close()` with flush, linger and repeated FIN, the
//! server's repeated KICK, FIN reception, idle timeout and dead link.
//!
//! What differs between the sides (the client's NEW phase and keepalive, the server's
//! remote address and real IP) lives with the owner: [`crate::client`] and
//! [`crate::endpoint`]. The owner routes datagrams here, polls transmits and asks
//! [`Session::deadline`] when to call [`Session::handle_timeout`] next.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::arq::{Arq, InputError, InputReport, SendError};
use crate::clock::Clock;
use crate::config::SessionConfig;
use crate::event::CloseReason;
use crate::wire::{self, Datagram, FinReason};

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Sending and receiving.
    Open,
    /// `close()` was called: waiting until everything sent is acknowledged.
    Flushing { linger_until: Instant },
    /// Our FIN is out; it is repeated every RTO until the peer answers or the sends run
    /// out. `close` is what the session reports when this ends.
    Finishing {
        close: CloseReason,
        sends_left: u8,
        next_at: Instant,
    },
    /// The server kicked the session: KICK is repeated until the client's FIN.
    Kicking {
        reason: u32,
        sends_left: u8,
        next_at: Instant,
    },
    /// Over. The owner reports the reason once and frees the session.
    Closed(CloseReason),
}

/// A session refused an application command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The session is closing or closed; it accepts no new messages.
    #[error("the session is closing; no new messages are accepted")]
    Closing,
    /// The KCP engine refused the message.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// One conversation's shared state. The size of the engine plus 24 bytes; it holds heap
/// memory only while the engine does (queued or unacknowledged data) and, once it is
/// ending, for its closing state (about 64 bytes).
///
/// `repr(C)` keeps the declaration order: what every datagram and timer reads (last
/// receive time, the closing state's box) first, then the engine with its hot
/// part first: the first [`HOT_BYTES`](Self::HOT_BYTES) are what one datagram touches.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Session {
    last_recv: Instant,
    /// How the session is ending, once it is: `None` while it is open. In a box of its
    /// own, allocated when the ending starts, so an open session carries 8 bytes for it
    /// among the fields every datagram touches instead of 64.
    ending: Option<Box<Ending>>,
    arq: Arq,
}

/// The state of a session that is ending (everything but [`Phase::Open`]).
#[derive(Debug)]
struct Ending {
    phase: Phase,
    /// A FIN or KICK waiting to be sent (at most one at a time).
    pending_control: Option<Bytes>,
    /// FINs and KICKs sent (they are not the engine's datagrams, so its counters miss
    /// them).
    controls_sent: u64,
}

impl Session {
    /// Bytes at the start of a session that one datagram's input and the flush after
    /// it touch.
    pub(crate) const HOT_BYTES: usize = std::mem::offset_of!(Session, arq) + Arq::HOT_BYTES;

    /// A new open session around `arq`, counting `now` as its last receive.
    pub(crate) fn new(arq: Arq, now: Instant) -> Session {
        Session {
            arq,
            last_recv: now,
            ending: None,
        }
    }

    /// Where the session is in its life.
    #[inline]
    fn phase(&self) -> Phase {
        self.ending
            .as_ref()
            .map_or(Phase::Open, |ending| ending.phase)
    }

    /// Moves the session to `phase` (a closing one: a session never reopens).
    fn set_phase(&mut self, phase: Phase) {
        debug_assert_ne!(phase, Phase::Open, "a session never reopens");
        self.ending_mut().phase = phase;
    }

    /// Queues a FIN or KICK, replacing one not sent yet. Only an ending session sends
    /// them.
    fn queue_control(&mut self, datagram: Bytes) {
        self.ending_mut().pending_control = Some(datagram);
    }

    /// The ending state, made (still `Open`) if the session has none yet.
    fn ending_mut(&mut self) -> &mut Ending {
        self.ending.get_or_insert_with(|| {
            Box::new(Ending {
                phase: Phase::Open,
                pending_control: None,
                controls_sent: 0,
            })
        })
    }

    /// FINs and KICKs this session has handed out with
    /// [`poll_transmit`](Self::poll_transmit).
    pub(crate) fn controls_sent(&self) -> u64 {
        self.ending
            .as_ref()
            .map_or(0, |ending| ending.controls_sent)
    }

    /// The KCP engine (read-only: stats, RTT).
    pub(crate) fn arq(&self) -> &Arq {
        &self.arq
    }

    /// The KCP engine, for the owner's phase-specific commands (NEW phase, conv change).
    pub(crate) fn arq_mut(&mut self) -> &mut Arq {
        &mut self.arq
    }

    /// Queues a message. Refused once the session is closing.
    pub(crate) fn send(&mut self, message: Bytes) -> Result<(), SessionError> {
        if self.phase() != Phase::Open {
            return Err(SessionError::Closing);
        }
        self.arq.send(message)?;
        Ok(())
    }

    /// The next whole message received, if any.
    pub(crate) fn recv(&mut self) -> Option<Bytes> {
        self.arq.recv()
    }

    /// Feeds a datagram of KCP data segments (PUSH, NEW, ACK, WASK, WINS). Atomic: a
    /// datagram the engine refuses changes nothing, not even the idle timer.
    pub(crate) fn input(
        &mut self,
        now: Instant,
        now_ms: u32,
        datagram: &Datagram,
    ) -> Result<InputReport, InputError> {
        let report = self.arq.input(now_ms, datagram)?;
        self.last_recv = now;
        Ok(report)
    }

    /// Notes that something from the peer arrived that the engine does not see (a
    /// keepalive PING on the server, a PONG on the client): it keeps the session alive.
    /// A time before the last receive changes nothing.
    pub(crate) fn touch(&mut self, now: Instant) {
        self.last_recv = self.last_recv.max(now);
    }

    /// When something was last received.
    pub(crate) fn last_recv(&self) -> Instant {
        self.last_recv
    }

    /// Starts a graceful close: no new sends; FIN once everything sent is acknowledged
    /// or `linger` has passed. Does nothing if the session is already ending.
    pub(crate) fn close(&mut self, now: Instant, now_ms: u32, config: &SessionConfig) {
        self.begin_close(now, config);
        self.advance(now, now_ms, config);
    }

    /// Like [`close`](Self::close), but the flush is only checked at the next
    /// `handle_timeout`: for a client that is choosing a line, whose FIN must not go out
    /// before the server learned the new line (the hello that follows a switch is
    /// part of what the flush waits for).
    pub(crate) fn begin_close(&mut self, now: Instant, config: &SessionConfig) {
        if self.phase() == Phase::Open {
            self.set_phase(Phase::Flushing {
                linger_until: now + config.linger,
            });
        }
    }

    /// Server: starts kicking the session with `reason`. The KICK goes out at once and
    /// every RTO after, up to `kick_sends` times. Does nothing once the session is
    /// closed or already kicked.
    pub(crate) fn kick(&mut self, now: Instant, reason: u32, config: &SessionConfig) {
        if matches!(self.phase(), Phase::Closed(_) | Phase::Kicking { .. }) {
            return;
        }
        self.set_phase(Phase::Kicking {
            reason,
            sends_left: config.kick_sends,
            next_at: now,
        });
        self.repeat_control(now);
    }

    /// The peer sent FIN(`reason`). Ends the session: if it is our own FIN being
    /// answered (or the client's answer to our KICK) the close we started completes;
    /// otherwise we answer with one FIN, unless the peer's FIN says it has no session.
    pub(crate) fn on_fin(&mut self, reason: FinReason) {
        let close = match self.phase() {
            Phase::Closed(_) => return,
            Phase::Finishing { close, .. } => close,
            Phase::Kicking { reason: kick, .. } => CloseReason::Kicked(kick),
            Phase::Open | Phase::Flushing { .. } => {
                let close = CloseReason::from_fin(reason);
                if !matches!(reason, FinReason::Reset | FinReason::Collision) {
                    self.queue_control(self.fin(reason));
                }
                close
            }
        };
        self.set_phase(Phase::Closed(close));
    }

    /// Ends the session now for `reason`, sending one FIN if the reason calls for one.
    /// Does nothing if it is already closed.
    pub(crate) fn close_now(&mut self, reason: CloseReason) {
        if matches!(self.phase(), Phase::Closed(_)) {
            return;
        }
        if let Some(fin) = reason.fin_to_send() {
            self.queue_control(self.fin(fin));
        }
        self.set_phase(Phase::Closed(reason));
    }

    /// Runs every timer that is due at `now`: the engine's flush, dead link, idle
    /// timeout, linger, FIN and KICK repeats.
    pub(crate) fn handle_timeout(&mut self, now: Instant, now_ms: u32, config: &SessionConfig) {
        if matches!(self.phase(), Phase::Closed(_)) {
            return;
        }
        self.arq.update(now_ms);
        if self.arq.is_dead() {
            self.close_now(CloseReason::DeadLink);
        } else if self.idle_expired(now, config) {
            self.close_now(CloseReason::Timeout);
        } else {
            self.advance(now, now_ms, config);
        }
    }

    /// Nothing was received for the idle timeout: the session ends at its next
    /// [`handle_timeout`](Self::handle_timeout).
    pub(crate) fn idle_expired(&self, now: Instant, config: &SessionConfig) -> bool {
        now.saturating_duration_since(self.last_recv) >= config.idle_timeout
    }

    /// Moves the closing phases on: from flushing to FIN, and FIN/KICK repeats.
    fn advance(&mut self, now: Instant, now_ms: u32, config: &SessionConfig) {
        if let Phase::Flushing { linger_until } = self.phase() {
            let flushed = self.arq.waiting_to_send() == 0;
            if flushed || now >= linger_until {
                let close = if flushed {
                    CloseReason::Closed
                } else {
                    CloseReason::LingerExpired
                };
                // Send what is still unsent acknowledgement-wise before the FIN.
                self.arq.flush(now_ms);
                self.set_phase(Phase::Finishing {
                    close,
                    sends_left: config.fin_sends,
                    next_at: now,
                });
            }
        }
        self.repeat_control(now);
    }

    /// Sends the FIN or KICK of a finishing or kicking session when its repeat is due,
    /// and closes the session when the last repeat has had its RTO to be answered.
    fn repeat_control(&mut self, now: Instant) {
        let rto = Duration::from_millis(u64::from(self.arq.rto_ms()));
        match self.phase() {
            Phase::Finishing {
                close,
                sends_left,
                next_at,
            } if now >= next_at => {
                if sends_left == 0 {
                    self.set_phase(Phase::Closed(close));
                } else {
                    self.queue_control(self.fin(FinReason::Normal));
                    self.set_phase(Phase::Finishing {
                        close,
                        sends_left: sends_left - 1,
                        next_at: now + rto,
                    });
                }
            }
            Phase::Kicking {
                reason,
                sends_left,
                next_at,
            } if now >= next_at => {
                if sends_left == 0 {
                    self.set_phase(Phase::Closed(CloseReason::Kicked(reason)));
                } else {
                    self.queue_control(wire::kick(self.arq.conv(), reason));
                    self.set_phase(Phase::Kicking {
                        reason,
                        sends_left: sends_left - 1,
                        next_at: now + rto,
                    });
                }
            }
            _ => {}
        }
    }

    fn fin(&self, reason: FinReason) -> Bytes {
        wire::fin(self.arq.conv(), reason)
    }

    /// When `handle_timeout` should next run, or `None` if nothing is scheduled (never
    /// for an open session: the idle timeout always is).
    pub(crate) fn deadline(
        &self,
        now: Instant,
        now_ms: u32,
        config: &SessionConfig,
    ) -> Option<Instant> {
        let phase_deadline = match self.phase() {
            Phase::Closed(_) => return None,
            Phase::Open => None,
            // Everything acknowledged: the FIN is due now.
            Phase::Flushing { .. } if self.arq.waiting_to_send() == 0 => Some(now),
            Phase::Flushing { linger_until } => Some(linger_until),
            Phase::Finishing { next_at, .. } | Phase::Kicking { next_at, .. } => Some(next_at),
        };
        let idle = self.last_recv + config.idle_timeout;
        let engine =
            (!self.arq.is_idle()).then(|| Clock::instant_at(now, now_ms, self.arq.check(now_ms)));
        [phase_deadline, engine]
            .into_iter()
            .flatten()
            .fold(idle, Instant::min)
            .into()
    }

    /// The next datagram to send: a pending FIN or KICK first, then the engine's output.
    pub(crate) fn poll_transmit(&mut self) -> Option<Bytes> {
        if let Some(ending) = self.ending.as_deref_mut() {
            if let Some(control) = ending.pending_control.take() {
                ending.controls_sent += 1;
                return Some(control);
            }
        }
        self.arq.poll_output()
    }

    /// Whether `poll_transmit` has something.
    pub(crate) fn has_transmit(&self) -> bool {
        self.ending
            .as_ref()
            .is_some_and(|ending| ending.pending_control.is_some())
            || self.arq.has_output()
    }

    /// The reason the session ended, once it has.
    pub(crate) fn closed(&self) -> Option<CloseReason> {
        match self.phase() {
            Phase::Closed(reason) => Some(reason),
            _ => None,
        }
    }

    /// Whether the session still has data to deliver: open, or flushing before its FIN.
    /// (Once the FIN is out, a failing path only shortens the wait for its answer.)
    pub(crate) fn delivering(&self) -> bool {
        matches!(self.phase(), Phase::Open | Phase::Flushing { .. })
    }

    /// Whether the application may still send (the session is open).
    pub(crate) fn is_open(&self) -> bool {
        self.phase() == Phase::Open
    }
}
