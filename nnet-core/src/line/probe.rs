//! One probe round over a client's lines (PROTOCOL.md section 6).
//!
//! A round PINGs every line at once, again every `probe_interval`, until
//! `probe_timeout`. The first answer opens a short grace period; when it ends (or as
//! soon as every line answered), the round picks the lowest RTT among the lines that
//! answered and, for an established session, still know it. A round with no answer at
//! all is one failed attempt.

use std::time::{Duration, Instant};

use super::set::LineId;

/// How a probe round ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoundOutcome {
    /// Still probing.
    Pending,
    /// The best line that answered (and knows the session, when that is required).
    Chosen { line: LineId, rtt: Duration },
    /// Lines answered, but none knows the session: the server lost it.
    Unknown,
    /// No line answered within the probe timeout: one failed attempt.
    NoAnswer,
}

/// One PING sent in a round.
#[derive(Clone, Copy, Debug)]
struct Sent {
    probe_id: u32,
    line: LineId,
    at: Instant,
}

/// The first PONG received from a line in a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub line: LineId,
    pub rtt: Duration,
    /// The server behind the line holds a live session for the conv probed.
    pub known: bool,
}

/// A probe round over all lines. Memory: one entry per PING sent and per answer (at
/// most `probe_timeout / probe_interval` PINGs per line).
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

    /// When the round started.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// Whether PINGs are due at `now`.
    pub(crate) fn pings_due(&self, now: Instant) -> bool {
        now >= self.next_send
    }

    /// Records a PING with `probe_id` sent on `line` at `now`.
    pub(crate) fn on_ping(&mut self, line: LineId, probe_id: u32, now: Instant) {
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

    /// Makes the next PINGs due at once (new lines joined the round).
    pub(crate) fn ping_now(&mut self, now: Instant) {
        self.next_send = self.next_send.min(now);
    }

    /// A PONG for `probe_id` came back from `line`; returns its RTT if it matches a
    /// PING of this round on that line.
    pub(crate) fn on_pong(
        &mut self,
        line: LineId,
        probe_id: u32,
        known: bool,
        now: Instant,
    ) -> Option<Duration> {
        let sent = self
            .sent
            .iter()
            .find(|s| s.probe_id == probe_id && s.line == line)?;
        let rtt = now.saturating_duration_since(sent.at);
        if self.answer(line).is_none() {
            self.answers.push(Answer { line, rtt, known });
        }
        self.first_answer.get_or_insert(now);
        Some(rtt)
    }

    /// The first answer of `line` in this round.
    pub(crate) fn answer(&self, line: LineId) -> Option<Answer> {
        self.answers.iter().copied().find(|a| a.line == line)
    }

    /// Forgets `line` (it left the line list): its PINGs and answer no longer count.
    pub(crate) fn forget(&mut self, line: LineId) {
        self.sent.retain(|s| s.line != line);
        self.answers.retain(|a| a.line != line);
        if self.answers.is_empty() {
            self.first_answer = None;
        }
    }

    /// Whether every line PINGed in this round has answered.
    pub(crate) fn all_answered(&self) -> bool {
        self.sent.iter().all(|s| self.answer(s.line).is_some())
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
        let waiting = now < first + grace && now < self.started + timeout;
        if waiting && !self.all_answered() {
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
            round.on_ping(line, 10 + line, t0);
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
    fn the_round_ends_without_the_grace_once_every_line_answered() {
        let t0 = Instant::now();
        let mut round = ProbeRound::new(t0, false);
        round.on_ping(0, 1, t0);
        round.on_ping(1, 2, t0);
        round.on_pong(1, 2, true, t0 + ms(20));
        assert_eq!(
            round.outcome(t0 + ms(21), GRACE, TIMEOUT),
            RoundOutcome::Pending
        );
        round.on_pong(0, 1, true, t0 + ms(30));
        assert_eq!(
            round.outcome(t0 + ms(30), GRACE, TIMEOUT),
            RoundOutcome::Chosen {
                line: 1,
                rtt: ms(20)
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
            lost.outcome(t0 + ms(10), GRACE, TIMEOUT),
            RoundOutcome::Unknown
        );
    }

    #[test]
    fn a_forgotten_line_no_longer_counts() {
        let t0 = Instant::now();
        let mut round = ProbeRound::new(t0, false);
        round.on_ping(0, 1, t0);
        round.on_ping(1, 2, t0);
        round.on_pong(0, 1, true, t0 + ms(10));
        round.forget(0);
        assert_eq!(round.answer(0), None);
        assert_eq!(
            round.outcome(t0 + ms(100), GRACE, TIMEOUT),
            RoundOutcome::Pending
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
}
