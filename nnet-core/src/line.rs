//! A client's lines and the probe rounds that choose among them (PROTOCOL.md section
//! 6). Pure bookkeeping: the [`Connection`](crate::client::Connection) sends the PINGs
//! this module asks for and hands it the PONGs that come back.
//!
//! A probe round PINGs every line at once, again every `probe_interval`, until
//! `probe_timeout`. The first answer opens a short grace period; when it ends, the
//! round picks the lowest RTT among the lines that answered (and, for an established
//! session, that still know it). A round with no answer at all is one failed attempt.

// The probe round is wired into the client's failover next (issue 5); until then only
// its tests use it.
#![cfg_attr(not(test), allow(dead_code))]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How datagrams travel on a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// One datagram per UDP packet.
    Udp,
    /// One datagram per frame (2-byte big-endian length, then the datagram) on a TCP
    /// stream, where UDP is blocked.
    Tcp,
}

/// One way to reach the server: usually a proxy or gateway in front of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Line {
    /// UDP or TCP.
    pub transport: Transport,
    /// The proxy's (or server's) address.
    pub addr: SocketAddr,
}

impl Line {
    /// A UDP line to `addr`.
    pub fn udp(addr: SocketAddr) -> Line {
        Line {
            transport: Transport::Udp,
            addr,
        }
    }
}

/// What one line has shown so far; readable from the client's stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineStats {
    /// PINGs sent on the line.
    pub pings: u64,
    /// PONGs received on the line.
    pub pongs: u64,
    /// Smoothed probe RTT, if the line ever answered.
    pub srtt: Option<Duration>,
    /// Last probe RTT.
    pub last_rtt: Option<Duration>,
}

impl LineStats {
    /// Folds one RTT sample in (weight 1/8, like TCP's SRTT).
    pub(crate) fn on_rtt(&mut self, rtt: Duration) {
        self.pongs += 1;
        self.last_rtt = Some(rtt);
        self.srtt = Some(match self.srtt {
            None => rtt,
            Some(srtt) => (srtt * 7 + rtt) / 8,
        });
    }

    /// Share of PINGs that went unanswered, 0.0 to 1.0.
    pub fn loss(&self) -> f64 {
        if self.pings == 0 {
            0.0
        } else {
            1.0 - (self.pongs.min(self.pings) as f64 / self.pings as f64)
        }
    }
}

/// How a probe round ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoundOutcome {
    /// Still probing.
    Pending,
    /// The best line that answered (and knows the session, when that is required).
    Chosen { line: usize, rtt: Duration },
    /// Lines answered, but none knows the session: the server lost it.
    Unknown,
    /// No line answered within the probe timeout: one failed attempt.
    NoAnswer,
}

/// One PING sent in a round.
#[derive(Clone, Copy, Debug)]
struct Sent {
    probe_id: u32,
    line: usize,
    at: Instant,
}

/// One PONG received in a round.
#[derive(Clone, Copy, Debug)]
struct Answer {
    line: usize,
    rtt: Duration,
    known: bool,
}

/// A probe round over all lines.
#[derive(Clone, Debug)]
pub(crate) struct ProbeRound {
    started: Instant,
    next_send: Instant,
    first_answer: Option<Instant>,
    /// The session must be known by the chosen line's server (a switch, not a connect).
    need_known: bool,
    sent: Vec<Sent>,
    answers: Vec<Answer>,
}

impl ProbeRound {
    /// A round starting at `now`; the first PINGs are due at once.
    pub(crate) fn new(now: Instant, need_known: bool) -> ProbeRound {
        ProbeRound {
            started: now,
            next_send: now,
            first_answer: None,
            need_known,
            sent: Vec::new(),
            answers: Vec::new(),
        }
    }

    /// Whether PINGs are due at `now`.
    pub(crate) fn pings_due(&self, now: Instant) -> bool {
        now >= self.next_send
    }

    /// Records a PING with `probe_id` sent on `line` at `now`.
    pub(crate) fn on_ping(&mut self, line: usize, probe_id: u32, now: Instant) {
        self.sent.push(Sent {
            probe_id,
            line,
            at: now,
        });
    }

    /// All PINGs of this repetition are out; the next are due `interval` later.
    pub(crate) fn pings_sent(&mut self, now: Instant, interval: Duration) {
        self.next_send = now + interval;
    }

    /// A PONG for `probe_id` came back from `line`; returns its RTT if it matches a
    /// PING of this round on that line.
    pub(crate) fn on_pong(
        &mut self,
        line: usize,
        probe_id: u32,
        known: bool,
        now: Instant,
    ) -> Option<Duration> {
        let sent = self
            .sent
            .iter()
            .find(|s| s.probe_id == probe_id && s.line == line)?;
        let rtt = now.saturating_duration_since(sent.at);
        if !self.answers.iter().any(|a| a.line == line) {
            self.answers.push(Answer { line, rtt, known });
        }
        self.first_answer.get_or_insert(now);
        Some(rtt)
    }

    /// Where the round stands at `now`.
    pub(crate) fn outcome(&self, now: Instant, grace: Duration, timeout: Duration) -> RoundOutcome {
        let Some(first) = self.first_answer else {
            return if now >= self.started + timeout {
                RoundOutcome::NoAnswer
            } else {
                RoundOutcome::Pending
            };
        };
        if now < first + grace && now < self.started + timeout {
            return RoundOutcome::Pending;
        }
        self.answers
            .iter()
            .filter(|a| a.known || !self.need_known)
            .min_by_key(|a| (a.rtt, a.line))
            .map_or(RoundOutcome::Unknown, |a| RoundOutcome::Chosen {
                line: a.line,
                rtt: a.rtt,
            })
    }

    /// When the round next needs attention: the next PINGs, the end of the grace, or
    /// the timeout.
    pub(crate) fn deadline(&self, grace: Duration, timeout: Duration) -> Instant {
        let end = match self.first_answer {
            Some(first) => (first + grace).min(self.started + timeout),
            None => self.started + timeout,
        };
        self.next_send.min(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_millis(50);
    const TIMEOUT: Duration = Duration::from_secs(4);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_fastest_answer_within_the_grace_wins() {
        let t0 = Instant::now();
        let mut round = ProbeRound::new(t0, false);
        for line in 0..3 {
            round.on_ping(line, 10 + line as u32, t0);
        }
        round.pings_sent(t0, ms(250));
        assert_eq!(round.on_pong(2, 12, true, t0 + ms(40)), Some(ms(40)));
        assert_eq!(
            round.outcome(t0 + ms(41), GRACE, TIMEOUT),
            RoundOutcome::Pending
        );
        assert_eq!(round.on_pong(0, 10, true, t0 + ms(30 + 40)), Some(ms(70)));
        // Line 1 answers after the grace: too late to count.
        let outcome = round.outcome(t0 + ms(90), GRACE, TIMEOUT);
        assert_eq!(
            outcome,
            RoundOutcome::Chosen {
                line: 2,
                rtt: ms(40)
            }
        );
    }

    #[test]
    fn a_pong_must_match_a_ping_on_its_line() {
        let t0 = Instant::now();
        let mut round = ProbeRound::new(t0, false);
        round.on_ping(0, 1, t0);
        assert_eq!(round.on_pong(1, 1, true, t0 + ms(5)), None);
        assert_eq!(round.on_pong(0, 2, true, t0 + ms(5)), None);
        assert_eq!(
            round.outcome(t0 + ms(100), GRACE, TIMEOUT),
            RoundOutcome::Pending
        );
    }

    #[test]
    fn a_switch_needs_a_line_whose_server_knows_the_session() {
        let t0 = Instant::now();
        let mut round = ProbeRound::new(t0, true);
        round.on_ping(0, 1, t0);
        round.on_ping(1, 2, t0);
        round.on_pong(0, 1, false, t0 + ms(10));
        round.on_pong(1, 2, true, t0 + ms(30));
        let outcome = round.outcome(t0 + ms(100), GRACE, TIMEOUT);
        assert_eq!(
            outcome,
            RoundOutcome::Chosen {
                line: 1,
                rtt: ms(30)
            }
        );
        let mut lost = ProbeRound::new(t0, true);
        lost.on_ping(0, 1, t0);
        lost.on_pong(0, 1, false, t0 + ms(10));
        assert_eq!(
            lost.outcome(t0 + ms(100), GRACE, TIMEOUT),
            RoundOutcome::Unknown
        );
    }

    #[test]
    fn silence_until_the_timeout_is_a_failed_attempt() {
        let t0 = Instant::now();
        let mut round = ProbeRound::new(t0, false);
        round.on_ping(0, 1, t0);
        round.pings_sent(t0, ms(250));
        assert!(!round.pings_due(t0 + ms(249)));
        assert!(round.pings_due(t0 + ms(250)));
        assert_eq!(round.deadline(GRACE, TIMEOUT), t0 + ms(250));
        assert_eq!(
            round.outcome(t0 + ms(3999), GRACE, TIMEOUT),
            RoundOutcome::Pending
        );
        assert_eq!(
            round.outcome(t0 + TIMEOUT, GRACE, TIMEOUT),
            RoundOutcome::NoAnswer
        );
    }

    #[test]
    fn line_stats_smooth_rtt_and_count_loss() {
        let mut stats = LineStats {
            pings: 4,
            ..LineStats::default()
        };
        stats.on_rtt(ms(80));
        stats.on_rtt(ms(160));
        assert_eq!(stats.srtt, Some(ms(90)));
        assert_eq!(stats.loss(), 0.5);
    }
}
