//! The client side of a session: a [`Connection`] to one server address.
//!
//! It starts the session with NEW segments carrying its token (PROTOCOL.md section 3),
//! goes back to PUSH once the server acknowledged anything, keeps the session alive
//! with PING after `keepalive` of silence, answers KICK with FIN, retries with a fresh
//! conv on a collision, and closes with `Reset` as soon as the server says it does not
//! know the session (a FIN(reset), or a PONG with `wnd = 0`).
//!
//! Lines (several addresses, probing, failover) build on this in a later version; for
//! now the connection has one remote.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracing::debug;

use crate::arq::{Arq, ArqConfig};
use crate::clock::Clock;
use crate::config::{ClientConfig, ConfigError};
use crate::event::{ClientEvent, CloseReason};
use crate::session::{Session, SessionError};
use crate::transmit::Transmit;
use crate::wire::{self, Cmd, Datagram, FinReason, Token};

/// A client connection. See the [module docs](self).
#[derive(Debug)]
pub struct Connection {
    config: ClientConfig,
    clock: Clock,
    rng: SmallRng,
    remote: SocketAddr,
    session: Session,
    /// The server acknowledged something: the NEW phase is over.
    established: bool,
    collisions: u8,
    /// When the last keepalive PING went out.
    last_ping: Option<Instant>,
    next_probe_id: u32,
    /// PINGs waiting to be sent.
    control: VecDeque<Bytes>,
    events: VecDeque<ClientEvent>,
    closed_reported: bool,
    now: Instant,
}

impl Connection {
    /// Starts a connection to `remote`: the first NEW (an empty hello) goes out at the
    /// first [`poll_transmit`](Self::poll_transmit). Messages may be sent at once; they
    /// are delivered after the hello.
    pub fn connect(
        config: ClientConfig,
        remote: SocketAddr,
        now: Instant,
    ) -> Result<Connection, ConfigError> {
        config.validate()?;
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let conv = fresh_conv(&mut rng);
        let token: Token = rng.random();
        let arq_config = ArqConfig {
            announce_room: true,
            reserve_empty_messages: true,
            ..config.session.arq.clone()
        };
        let mut arq = Arq::new(conv, &arq_config).map_err(ConfigError::Arq)?;
        arq.set_announce(Some(token))
            .map_err(|_| ConfigError::Invalid("announce room"))?;
        arq.send_hello();
        let clock = Clock::new(now);
        arq.flush(clock.ms(now));
        debug!(conv, %remote, "connecting");
        Ok(Connection {
            config,
            clock,
            rng,
            remote,
            session: Session::new(arq, now),
            established: false,
            collisions: 0,
            last_ping: None,
            next_probe_id: 1,
            control: VecDeque::new(),
            events: VecDeque::new(),
            closed_reported: false,
            now,
        })
    }

    /// The conversation id (it changes if a collision forced a retry).
    pub fn conv(&self) -> u32 {
        self.session.arq().conv()
    }

    /// The server address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Whether the server has acknowledged the session.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// Whether the connection has ended (its `Closed` event is queued or taken).
    pub fn is_closed(&self) -> bool {
        self.session.closed().is_some()
    }

    /// The engine's counters, RTT and window.
    pub fn arq(&self) -> &Arq {
        self.session.arq()
    }

    /// Queues a message for the server. Refused (`Err`, nothing queued, the connection
    /// still usable) when empty, too large, over the queue limit, or once closing.
    pub fn send(&mut self, message: Bytes) -> Result<(), SessionError> {
        self.session.send(message)
    }

    /// Closes gracefully: flush, then FIN. `Closed(Closed)` (or `LingerExpired`) follows.
    pub fn close(&mut self, now: Instant) {
        self.now = now;
        let now_ms = self.clock.ms(now);
        self.session.close(now, now_ms, &self.config.session);
        self.after_activity();
    }

    /// Takes in a datagram that arrived from `from`. Only the remote is believed.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, payload: Bytes) {
        self.now = now;
        if from != self.remote || self.session.closed().is_some() {
            return;
        }
        let Ok(datagram) = Datagram::parse(payload) else {
            return;
        };
        if datagram.conv() != self.conv() {
            return;
        }
        let first = *datagram.first();
        match first.cmd {
            Cmd::Pong => {
                self.session.touch(now);
                if first.wnd == 0 && self.established {
                    debug!(conv = self.conv(), "server does not know the session");
                    self.session.close_now(CloseReason::Reset);
                }
            }
            Cmd::Kick => {
                let reason = datagram
                    .segments()
                    .next()
                    .and_then(|s| s.kick_reason())
                    .unwrap_or(0);
                self.drain_messages();
                self.events.push_back(ClientEvent::Kicked(reason));
                self.session.close_now(CloseReason::Kicked(reason));
            }
            Cmd::Fin => match FinReason::from_u8(first.frg) {
                FinReason::Collision => self.on_collision(),
                reason => self.session.on_fin(reason),
            },
            _ => self.on_data(now, &datagram),
        }
        self.after_activity();
    }

    fn on_data(&mut self, now: Instant, datagram: &Datagram) {
        let now_ms = self.clock.ms(now);
        let Ok(report) = self.session.input(now, now_ms, datagram) else {
            return;
        };
        if report.acknowledged() && !self.established {
            self.established = true;
            let _ = self.session.arq_mut().set_announce(None);
            debug!(conv = self.conv(), "connected");
            self.events
                .push_back(ClientEvent::Connected { conv: self.conv() });
            // The server confirms a session on its second datagram (PROTOCOL.md
            // section 8); a client with nothing to send yet confirms with a PING now
            // rather than at its first keepalive.
            if self.session.arq().waiting_to_send() == 0 {
                self.queue_ping(now);
            }
        }
    }

    /// FIN(collision): another session holds our conv. Retry under a fresh one.
    fn on_collision(&mut self) {
        if self.established {
            return; // Not ours to believe: our session is acknowledged.
        }
        if self.collisions >= self.config.max_collision_retries {
            self.session.close_now(CloseReason::Collision);
            return;
        }
        self.collisions += 1;
        let conv = fresh_conv(&mut self.rng);
        if self.session.arq_mut().restart_as(conv) {
            debug!(conv, "conv collision: retrying with a fresh conv");
        } else {
            self.session.close_now(CloseReason::Collision);
        }
    }

    /// Runs the timers due at `now`: the engine, keepalive, idle timeout, closing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        let now_ms = self.clock.ms(now);
        self.session
            .handle_timeout(now, now_ms, &self.config.session);
        if self.session.is_open() && now >= self.keepalive_at() {
            self.queue_ping(now);
        }
        self.after_activity();
    }

    /// Queues a PING on the current line (keepalive, or confirmation).
    fn queue_ping(&mut self, now: Instant) {
        let ping = wire::ping(self.conv(), self.clock.ms(now), self.next_probe_id);
        self.next_probe_id = self.next_probe_id.wrapping_add(1);
        self.control.push_back(ping);
        self.last_ping = Some(now);
    }

    /// When the next keepalive PING is due: `keepalive` after the later of the last
    /// receive and the last PING.
    fn keepalive_at(&self) -> Instant {
        let quiet_since = match self.last_ping {
            Some(ping) => ping.max(self.session.last_recv()),
            None => self.session.last_recv(),
        };
        quiet_since + self.config.session.keepalive
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let payload = self
            .session
            .poll_transmit()
            .or_else(|| self.control.pop_front())?;
        Some(Transmit {
            to: self.remote,
            payload,
        })
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next run; `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let now_ms = self.clock.ms(self.now);
        let session = self
            .session
            .deadline(self.now, now_ms, &self.config.session)?;
        if self.session.is_open() {
            Some(session.min(self.keepalive_at()))
        } else {
            Some(session)
        }
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        if self.closed_reported {
            return None;
        }
        self.session.recv().map(ClientEvent::Message)
    }

    fn drain_messages(&mut self) {
        while let Some(message) = self.session.recv() {
            self.events.push_back(ClientEvent::Message(message));
        }
    }

    /// Reports the close once, after the messages received before it.
    fn after_activity(&mut self) {
        if let Some(reason) = self.session.closed() {
            if !self.closed_reported {
                self.closed_reported = true;
                self.drain_messages();
                debug!(conv = self.conv(), ?reason, "closed");
                self.events.push_back(ClientEvent::Closed(reason));
            }
        }
    }
}

/// A random conv, never 0.
fn fresh_conv(rng: &mut SmallRng) -> u32 {
    loop {
        let conv: u32 = rng.random();
        if conv != 0 {
            return conv;
        }
    }
}
