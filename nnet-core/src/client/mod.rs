//! The client side of a session: a [`Connection`] that reaches its server over several
//! lines (PROTOCOL.md section 6) and keeps the session when one of them dies.
//!
//! Life of a connection:
//! 1. **Connect.** [`Connection::connect`] PINGs every line at once, again every
//!    `probe_interval`, for up to `probe_timeout`; the lowest RTT among the lines that
//!    answer within `probe_grace` of the first answer wins, and the session starts there
//!    with NEW segments carrying its token (an empty hello first).
//! 2. **Watch.** The current line is suspect when nothing came back from it for
//!    `line_timeout` while something was unacknowledged or a keepalive PING unanswered,
//!    when it delivers an empty datagram, or when its server answers a keepalive with
//!    "unknown session".
//! 3. **Switch.** All lines are probed again (the suspect one from a fresh socket:
//!    [`ClientTransmit::fresh_socket`]); the session waits, its timers stopped. The best
//!    line whose server knows the session takes it: everything in flight is sent again
//!    there at once, as NEW until the server acknowledges on that line. If lines answer
//!    but none knows the session, the connection closes with `Reset` at once.
//! 4. **Give up.** A probe round without any answer is one failed attempt
//!    ([`ClientEvent::ProbeFailed`]: a good moment for [`Connection::set_lines`]); after
//!    `max_retries` in a row the connection closes with `Unreachable`.
//!
//! The connection also answers KICK with FIN, retries with a fresh conv on a collision,
//! and closes with `Reset` on a FIN(reset) from its current line. Optionally
//! ([`FasterLine`](crate::config::FasterLine)) it moves to a line that stays clearly
//! faster.
//!
//! Driving it is the usual sans-IO loop: feed datagrams
//! ([`handle_datagram`](Connection::handle_datagram), naming the line they came on)
//! and expired timers ([`handle_timeout`](Connection::handle_timeout)), then drain
//! [`poll_transmit`](Connection::poll_transmit) and
//! [`poll_event`](Connection::poll_event), and sleep until
//! [`poll_timeout`](Connection::poll_timeout).

mod faster;
mod watchdog;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracing::{debug, info};

use crate::arq::{Arq, ArqConfig};
use crate::clock::Clock;
use crate::config::{ClientConfig, ConfigError};
use crate::event::{ClientEvent, CloseReason, SwitchReason};
use crate::line::probe::{ProbeRound, RoundOutcome};
use crate::line::set::{LineId, LineSet};
use crate::line::{Line, LineInfo, LineState, LinesError};
use crate::session::{Session, SessionError};
use crate::transmit::ClientTransmit;
use crate::wire::{self, Cmd, Datagram, FinReason, Header, Token};

use faster::FasterCheck;
use watchdog::Watchdog;

/// Counters of a connection's line handling; the session's own counters are in
/// [`Connection::arq`]'s stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Times the session moved from one line to another (the first choice not counted).
    pub switches: u64,
    /// Probe rounds started (connect and switches).
    pub probe_rounds: u64,
    /// Probe rounds that ended without any answer.
    pub failed_rounds: u64,
    /// Datagrams dropped: unparsable, from no known line, for another conv, or a FIN or
    /// KICK from a line that is not the current one.
    pub dropped: u64,
}

/// A probe round that chooses the line the session runs on; meanwhile the session
/// waits.
#[derive(Clone, Debug)]
struct Choosing {
    round: ProbeRound,
    reason: SwitchReason,
}

/// A client connection. See the [module docs](self).
#[derive(Debug)]
pub struct Connection {
    config: ClientConfig,
    clock: Clock,
    rng: SmallRng,
    token: Token,
    session: Session,
    lines: LineSet,
    /// The line the session runs on (or ran on, while a switch round probes): its id
    /// and the line itself (kept if the application removed it).
    current: Option<(LineId, Line)>,
    /// A round choosing the line; `None` while the session runs on `current`.
    choosing: Option<Choosing>,
    /// The optional periodic check for a faster line.
    faster: Option<FasterCheck>,
    watchdog: Watchdog,
    /// The server acknowledged something: the session exists on the server.
    established: bool,
    collisions: u8,
    /// Probe rounds without any answer, in a row.
    failed_rounds: u32,
    /// The unanswered keepalive PING on the current line: probe id and when it left.
    keepalive: Option<(u32, Instant)>,
    /// When the last keepalive PING went out.
    last_ping: Option<Instant>,
    next_probe_id: u32,
    /// Probes and keepalives waiting to be sent (before the session's datagrams).
    outbox: VecDeque<ClientTransmit>,
    events: VecDeque<ClientEvent>,
    closed_reported: bool,
    stats: ClientStats,
    now: Instant,
}

impl Connection {
    /// Starts a connection over `lines` (in order of preference for equal RTTs): the
    /// first probe round's PINGs are ready at once in
    /// [`poll_transmit`](Self::poll_transmit). Messages may be sent at once; they go out
    /// after the hello once a line is chosen.
    ///
    /// Errors: settings out of range, or an empty or too long line list.
    pub fn connect(
        config: ClientConfig,
        lines: &[Line],
        now: Instant,
    ) -> Result<Connection, ConfigError> {
        config.validate()?;
        let lines = LineSet::new(lines)?;
        let mut rng = SmallRng::seed_from_u64(config.seed);
        // Drawn even when the settings name the conv, so the token depends on the seed
        // alone.
        let drawn = fresh_conv(&mut rng);
        let conv = config.conv.unwrap_or(drawn);
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
        debug!(conv, lines = lines.iter().count(), "connecting");
        let mut connection = Connection {
            clock: Clock::new(now),
            rng,
            token,
            session: Session::new(arq, now),
            lines,
            current: None,
            choosing: None,
            faster: None,
            watchdog: Watchdog::new(now),
            established: false,
            collisions: 0,
            failed_rounds: 0,
            keepalive: None,
            last_ping: None,
            next_probe_id: 1,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            closed_reported: false,
            stats: ClientStats::default(),
            now,
            config,
        };
        connection.start_round(now, SwitchReason::Connect);
        Ok(connection)
    }

    /// The conversation id (it changes if a collision forced a retry).
    pub fn conv(&self) -> u32 {
        self.session.arq().conv()
    }

    /// The line the session runs on; `None` until the first probe round chose one.
    /// During a switch round it is still the line being left.
    pub fn current_line(&self) -> Option<Line> {
        self.current.map(|(_, line)| line)
    }

    /// Whether a probe round is choosing the line (connecting or switching).
    pub fn is_probing(&self) -> bool {
        self.choosing.is_some()
    }

    /// Every line with its role, RTT and counters, in the application's order. Cost:
    /// one small allocation.
    pub fn lines(&self) -> Vec<LineInfo> {
        self.lines
            .iter()
            .map(|slot| {
                let state = match self.current {
                    Some((id, _)) if id == slot.id && self.choosing.is_some() => LineState::Suspect,
                    Some((id, _)) if id == slot.id => LineState::Current,
                    _ if slot.answered => LineState::Standby,
                    _ => LineState::Silent,
                };
                LineInfo {
                    line: slot.line,
                    state,
                    stats: slot.stats,
                }
            })
            .collect()
    }

    /// Counters of line handling.
    pub fn stats(&self) -> ClientStats {
        self.stats
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
    /// While a probe round runs the message waits and goes out on the chosen line.
    pub fn send(&mut self, message: Bytes) -> Result<(), SessionError> {
        self.session.send(message)
    }

    /// Closes gracefully: flush, then FIN. `Closed(Closed)` (or `LingerExpired`)
    /// follows. During a probe round the flush waits for the chosen line.
    pub fn close(&mut self, now: Instant) {
        self.now = now;
        if self.choosing.is_some() {
            self.session.begin_close(now, &self.config.session);
        } else {
            let now_ms = self.clock.ms(now);
            self.session.close(now, now_ms, &self.config.session);
        }
        self.after_activity(now);
    }

    /// Replaces the line list (for example with a fresh one from the application's
    /// directory). Lines that stay keep their history; new lines join the running probe
    /// round at once; if the current line left, the session switches. On `Err` nothing
    /// changes.
    pub fn set_lines(&mut self, lines: &[Line], now: Instant) -> Result<(), LinesError> {
        self.now = now;
        let removed = self.lines.replace(lines)?;
        // Probes not yet sent on lines that left are not sent at all.
        let kept = &self.lines;
        self.outbox.retain(|t| kept.find(&t.line).is_some());
        if let Some(choosing) = &mut self.choosing {
            for &id in &removed {
                choosing.round.forget(id);
            }
            choosing.round.ping_now(now);
            self.drive_round(now);
        } else if let Some((id, _)) = self.current {
            if removed.contains(&id) && self.session.closed().is_none() {
                self.start_round(now, SwitchReason::LineRemoved);
            }
        }
        self.after_activity(now);
        Ok(())
    }

    /// Takes in a datagram that arrived on `line`. Datagrams from lines not in the list,
    /// unparsable ones and those of another conv are counted and dropped.
    pub fn handle_datagram(&mut self, now: Instant, line: Line, payload: Bytes) {
        self.now = now;
        if self.session.closed().is_some() {
            return;
        }
        let Some(id) = self.lines.find(&line) else {
            self.stats.dropped += 1;
            return;
        };
        if let Some(slot) = self.lines.get_mut(id) {
            slot.stats.datagrams_in += 1;
        }
        let on_current = self.current_id() == Some(id);
        if payload.is_empty() {
            // What nginx sends back when its upstream refused a datagram.
            if on_current && self.choosing.is_none() && self.session.delivering() {
                self.suspect(now, SwitchReason::EmptyDatagram);
                self.after_activity(now);
            }
            return;
        }
        let Ok(datagram) = Datagram::parse(payload) else {
            self.stats.dropped += 1;
            return;
        };
        let first = *datagram.first();
        if first.cmd == Cmd::Pong {
            self.on_pong(now, id, &first);
        } else if datagram.conv() != self.conv() {
            self.stats.dropped += 1;
        } else {
            if on_current {
                self.watchdog.heard(now);
            }
            match first.cmd {
                Cmd::Kick | Cmd::Fin if !on_current => self.stats.dropped += 1,
                Cmd::Kick => self.on_kick(&datagram),
                Cmd::Fin => match FinReason::from_u8(first.frg) {
                    FinReason::Collision => self.on_collision(),
                    reason => self.session.on_fin(reason),
                },
                _ => self.on_data(now, &datagram, on_current),
            }
        }
        self.after_activity(now);
    }

    fn current_id(&self) -> Option<LineId> {
        self.current.map(|(id, _)| id)
    }

    fn on_kick(&mut self, datagram: &Datagram) {
        let reason = datagram
            .segments()
            .next()
            .and_then(|s| s.kick_reason())
            .unwrap_or(0);
        self.drain_messages();
        self.events.push_back(ClientEvent::Kicked(reason));
        self.session.close_now(CloseReason::Kicked(reason));
    }

    /// A PONG: an answer to a probe round's PING, a faster-line check's or a
    /// keepalive's.
    fn on_pong(&mut self, now: Instant, id: LineId, pong: &Header) {
        let probe_conv = self.probe_conv();
        if pong.conv != probe_conv && pong.conv != self.conv() {
            self.stats.dropped += 1;
            return;
        }
        let known = pong.wnd != 0;
        let mut rtt = None;
        if let Some(choosing) = &mut self.choosing {
            rtt = choosing.round.on_pong(id, pong.sn, known, now);
        }
        if let Some(round) = self.faster.as_mut().and_then(|f| f.round_mut()) {
            rtt = rtt.or(round.on_pong(id, pong.sn, known, now));
        }
        let on_current = self.current_id() == Some(id);
        if on_current && pong.conv == self.conv() {
            self.watchdog.heard(now);
            self.session.touch(now);
            if let Some((probe_id, sent)) = self.keepalive {
                if probe_id == pong.sn {
                    self.keepalive = None;
                    rtt = rtt.or(Some(now.saturating_duration_since(sent)));
                }
            }
        }
        if let Some(slot) = self.lines.get_mut(id) {
            match rtt {
                Some(rtt) => slot.stats.on_rtt(rtt),
                None => slot.stats.pongs += 1,
            }
        }
        if self.choosing.is_some() {
            self.drive_round(now);
        } else if on_current && !known && self.established && self.session.delivering() {
            debug!(
                conv = self.conv(),
                "the current line's server lost the session"
            );
            self.suspect(now, SwitchReason::ServerLost);
        } else {
            self.conclude_faster_check(now);
        }
    }

    fn on_data(&mut self, now: Instant, datagram: &Datagram, on_current: bool) {
        let now_ms = self.clock.ms(now);
        let Ok(report) = self.session.input(now, now_ms, datagram) else {
            self.stats.dropped += 1;
            return;
        };
        if !report.acknowledged() || !on_current || self.choosing.is_some() {
            return;
        }
        // The first acknowledgement on the current line ends its NEW phase.
        if self.session.arq().announce().is_some() {
            let _ = self.session.arq_mut().set_announce(None);
        }
        if !self.established {
            self.established = true;
            debug!(conv = self.conv(), "connected");
            self.events
                .push_back(ClientEvent::Connected { conv: self.conv() });
            // The server confirms a session on its second datagram (PROTOCOL.md
            // section 8); a client with nothing to send yet confirms with a PING now
            // rather than at its first keepalive.
            if self.session.arq().waiting_to_send() == 0 {
                self.send_keepalive(now);
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

    /// Runs the timers due at `now`: the probe round, or the session's engine,
    /// keepalive, line watchdog, idle timeout and closing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.session.closed().is_some() {
            return;
        }
        if self.choosing.is_some() {
            self.drive_round(now);
        } else {
            let now_ms = self.clock.ms(now);
            self.session
                .handle_timeout(now, now_ms, &self.config.session);
            if self.session.is_open() && now >= self.keepalive_at() {
                self.send_keepalive(now);
            }
            self.update_watchdog(now);
            if self
                .watchdog
                .deadline(self.line_timeout())
                .is_some_and(|at| now >= at)
            {
                self.suspect(now, SwitchReason::Silent);
            } else {
                self.run_faster_check(now);
            }
        }
        self.after_activity(now);
    }

    /// The line timeout in force: the setting, or twice the RTO if that is longer.
    fn line_timeout(&self) -> Duration {
        let rto = Duration::from_millis(u64::from(self.session.arq().rto_ms()));
        self.config.line_timeout.max(rto * 2)
    }

    /// The watchdog waits only while the session still has data to deliver: once the
    /// FIN is out, a silent line just shortens the wait for its answer.
    fn update_watchdog(&mut self, now: Instant) {
        let waiting = self.session.delivering()
            && (self.session.arq().in_flight() > 0 || self.keepalive.is_some());
        self.watchdog.set_waiting(waiting, now);
    }

    /// The current line failed: probe every line to choose where the session goes.
    fn suspect(&mut self, now: Instant, reason: SwitchReason) {
        if let Some(slot) = self.current_id().and_then(|id| self.lines.get_mut(id)) {
            slot.stats.failures += 1;
            slot.failed_at = Some(now);
            // A proxy that lost its upstream may keep our old source address bound to
            // it: only a fresh socket gets a fresh proxy session. A server that lost
            // the session is no reason to change sockets.
            slot.rebind |= reason != SwitchReason::ServerLost;
        }
        debug!(conv = self.conv(), ?reason, "current line suspect: probing");
        self.start_round(now, reason);
    }

    /// Starts a probe round that will choose the session's line.
    fn start_round(&mut self, now: Instant, reason: SwitchReason) {
        self.stats.probe_rounds += 1;
        self.keepalive = None;
        self.faster = None;
        self.choosing = Some(Choosing {
            round: ProbeRound::new(now, self.established),
            reason,
        });
        self.drive_round(now);
    }

    /// Sends the round's PINGs when due and acts on its outcome.
    fn drive_round(&mut self, now: Instant) {
        let Some(mut choosing) = self.choosing.take() else {
            return;
        };
        if choosing.round.pings_due(now) {
            self.ping_all_lines(&mut choosing.round, now);
            choosing.round.pings_sent(now, self.config.probe_interval);
        }
        let outcome =
            choosing
                .round
                .outcome(now, self.config.probe_grace, self.config.probe_timeout);
        for slot in self.lines.iter_mut() {
            slot.answered = choosing.round.answer(slot.id).is_some();
        }
        match outcome {
            RoundOutcome::Pending => self.choosing = Some(choosing),
            RoundOutcome::Chosen { line, rtt } => {
                self.failed_rounds = 0;
                self.switch_to(now, line, rtt, choosing.reason);
            }
            RoundOutcome::Unknown => {
                debug!(conv = self.conv(), "no line's server knows the session");
                self.session.close_now(CloseReason::Reset);
            }
            RoundOutcome::NoAnswer => {
                self.failed_rounds += 1;
                self.stats.failed_rounds += 1;
                self.events.push_back(ClientEvent::ProbeFailed {
                    attempt: self.failed_rounds,
                    max_retries: self.config.max_retries,
                });
                if self.failed_rounds >= self.config.max_retries {
                    info!(
                        conv = self.conv(),
                        rounds = self.failed_rounds,
                        "no line answers: giving up"
                    );
                    self.session.close_now(CloseReason::Unreachable);
                } else {
                    // Every proxy may hold a dead upstream for our sockets: try the
                    // next round from fresh ones.
                    for slot in self.lines.iter_mut() {
                        slot.rebind = true;
                    }
                    self.start_round(now, choosing.reason);
                }
            }
        }
    }

    /// PINGs every line once into `round`.
    fn ping_all_lines(&mut self, round: &mut ProbeRound, now: Instant) {
        let ids: Vec<LineId> = self.lines.iter().map(|slot| slot.id).collect();
        let conv = self.probe_conv();
        for id in ids {
            let probe_id = self.send_ping(id, conv, now);
            round.on_ping(id, probe_id, now);
        }
    }

    /// The conv a probe carries: 0 before the session exists anywhere (PROTOCOL.md
    /// section 6), the session's afterwards (so the PONG says whether it is known).
    fn probe_conv(&self) -> u32 {
        if self.current.is_none() {
            0
        } else {
            self.conv()
        }
    }

    /// Queues a PING on line `id`; returns its probe id.
    fn send_ping(&mut self, id: LineId, conv: u32, now: Instant) -> u32 {
        let probe_id = self.next_probe_id;
        self.next_probe_id = self.next_probe_id.wrapping_add(1);
        let fresh_socket = self.lines.take_rebind(id);
        if let Some(slot) = self.lines.get_mut(id) {
            slot.stats.pings += 1;
            self.outbox.push_back(ClientTransmit {
                line: slot.line,
                fresh_socket,
                payload: wire::ping(conv, self.clock.ms(now), probe_id),
            });
        }
        probe_id
    }

    /// Moves the session onto line `id`, which answered a probe in `rtt`.
    fn switch_to(&mut self, now: Instant, id: LineId, rtt: Duration, reason: SwitchReason) {
        let Some(slot) = self.lines.get_mut(id) else {
            return;
        };
        slot.stats.chosen += 1;
        let to = slot.line;
        let from = self.current.replace((id, to)).map(|(_, line)| line);
        if from.is_some() {
            self.stats.switches += 1;
        }
        let rtt_ms = rtt.as_millis().min(u128::from(u32::MAX)) as u32;
        let token = self.token;
        let arq = self.session.arq_mut();
        arq.on_path_change(Some(rtt_ms));
        // NEW until the server acknowledges on this line; an empty NEW if there is no
        // data to carry the announcement (also while closing: the server must learn
        // the new remote to believe the FIN that comes from it).
        let _ = arq.set_announce(Some(token));
        if self.established && arq.waiting_to_send() == 0 {
            arq.send_hello();
        }
        arq.flush(self.clock.ms(now));
        self.session.touch(now);
        self.watchdog = Watchdog::new(now);
        self.last_ping = None;
        self.faster = self
            .config
            .faster_line
            .as_ref()
            .map(|config| FasterCheck::new(now, config));
        info!(conv = self.conv(), ?from, %to, ?reason, rtt_ms, "line chosen");
        self.events
            .push_back(ClientEvent::Switched { from, to, reason });
    }

    /// Starts or settles the periodic faster-line check, if configured.
    fn run_faster_check(&mut self, now: Instant) {
        let Some(faster) = &mut self.faster else {
            return;
        };
        if self.lines.iter().count() < 2 || !self.session.is_open() {
            return;
        }
        if faster.due(now) {
            let mut round = ProbeRound::new(now, true);
            self.ping_all_lines(&mut round, now);
            if let Some(faster) = &mut self.faster {
                *faster.start(now) = round;
            }
        }
        self.conclude_faster_check(now);
    }

    fn conclude_faster_check(&mut self, now: Instant) {
        let current = self.current_id();
        let (Some(faster), Some(config), Some(current)) =
            (&mut self.faster, &self.config.faster_line, current)
        else {
            return;
        };
        let settle = self.config.probe_interval;
        if let Some((line, rtt)) = faster.conclude(now, settle, current, &self.lines, config) {
            self.switch_to(now, line, rtt, SwitchReason::Faster);
        }
    }

    /// Queues a keepalive PING on the current line.
    fn send_keepalive(&mut self, now: Instant) {
        let Some(id) = self.current_id() else {
            return;
        };
        let probe_id = self.send_ping(id, self.conv(), now);
        self.keepalive = Some((probe_id, now));
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

    /// The next datagram to send, with the line it goes out on.
    pub fn poll_transmit(&mut self) -> Option<ClientTransmit> {
        if let Some(transmit) = self.outbox.pop_front() {
            return Some(self.count_out(transmit));
        }
        // While a round chooses the line, the session's datagrams wait (a closed
        // session's last FIN still goes out on the line it was on).
        if self.choosing.is_some() && self.session.closed().is_none() {
            return None;
        }
        let (id, line) = self.current?;
        let payload = self.session.poll_transmit()?;
        let fresh_socket = self.lines.take_rebind(id);
        Some(self.count_out(ClientTransmit {
            line,
            fresh_socket,
            payload,
        }))
    }

    fn count_out(&mut self, transmit: ClientTransmit) -> ClientTransmit {
        if let Some(id) = self.lines.find(&transmit.line) {
            if let Some(slot) = self.lines.get_mut(id) {
                slot.stats.datagrams_out += 1;
            }
        }
        transmit
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next run; `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.session.closed().is_some() {
            return None;
        }
        if let Some(choosing) = &self.choosing {
            return Some(
                choosing
                    .round
                    .deadline(self.config.probe_grace, self.config.probe_timeout),
            );
        }
        let now_ms = self.clock.ms(self.now);
        let session = self
            .session
            .deadline(self.now, now_ms, &self.config.session)?;
        let mut at = session;
        if self.session.is_open() {
            at = at.min(self.keepalive_at());
        }
        if let Some(watchdog) = self.watchdog.deadline(self.line_timeout()) {
            at = at.min(watchdog);
        }
        if let Some(faster) = &self.faster {
            at = at.min(faster.deadline(self.config.probe_interval));
        }
        Some(at)
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

    /// Keeps the watchdog current and reports the close once, after the messages
    /// received before it.
    fn after_activity(&mut self, now: Instant) {
        if self.choosing.is_none() {
            self.update_watchdog(now);
        }
        if let Some(reason) = self.session.closed() {
            if !self.closed_reported {
                self.closed_reported = true;
                self.choosing = None;
                self.faster = None;
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
