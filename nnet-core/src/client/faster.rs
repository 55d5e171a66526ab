//! The optional move to a clearly faster line ([`FasterLine`]): every
//! `check_interval` the client PINGs all lines once; a line that beats the current one
//! by both margins in `confirmations` checks in a row, and has not failed recently,
//! takes the session.

use std::time::{Duration, Instant};

use crate::config::FasterLine;
use crate::line::probe::ProbeRound;
use crate::line::set::{LineId, LineSet};

/// The periodic check and its hysteresis.
#[derive(Clone, Debug)]
pub(crate) struct FasterCheck {
    next_check: Instant,
    round: Option<ProbeRound>,
    /// The line that won the last checks, and how many in a row.
    candidate: Option<(LineId, u8)>,
}

impl FasterCheck {
    /// The first check comes one interval after `now`.
    pub(crate) fn new(now: Instant, config: &FasterLine) -> FasterCheck {
        FasterCheck {
            next_check: now + config.check_interval,
            round: None,
            candidate: None,
        }
    }

    /// Whether a check round should start at `now`.
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.round.is_none() && now >= self.next_check
    }

    /// Starts a check round at `now`; the caller PINGs every line into it.
    pub(crate) fn start(&mut self, now: Instant) -> &mut ProbeRound {
        self.round.insert(ProbeRound::new(now, true))
    }

    /// The running round, to record PINGs and PONGs.
    pub(crate) fn round_mut(&mut self) -> Option<&mut ProbeRound> {
        self.round.as_mut()
    }

    /// When the check next needs attention; a round settles after `settle`.
    pub(crate) fn deadline(&self, settle: Duration) -> Instant {
        match &self.round {
            Some(round) => round.started() + settle,
            None => self.next_check,
        }
    }

    /// Ends the round once every line answered or `settle` passed, and returns the
    /// line to move to if one has now won often enough.
    pub(crate) fn conclude(
        &mut self,
        now: Instant,
        settle: Duration,
        current: LineId,
        lines: &LineSet,
        config: &FasterLine,
    ) -> Option<(LineId, Duration)> {
        let round = self.round.as_ref()?;
        if now < round.started() + settle && !round.all_answered() {
            return None;
        }
        let round = self.round.take()?;
        self.next_check = now + config.check_interval;
        let winner = round.answer(current).and_then(|current_answer| {
            let best = lines
                .iter()
                .filter(|slot| slot.id != current)
                .filter(|slot| {
                    slot.failed_at
                        .is_none_or(|at| now.saturating_duration_since(at) >= config.failure_memory)
                })
                .filter_map(|slot| round.answer(slot.id))
                .filter(|answer| answer.known)
                .min_by_key(|answer| (answer.rtt, answer.line))?;
            let cur = current_answer.rtt;
            let clearly = best.rtt * 100 <= cur * u32::from(config.max_rtt_percent)
                && best.rtt + config.min_gain <= cur;
            clearly.then_some((best.line, best.rtt))
        });
        let Some((line, rtt)) = winner else {
            self.candidate = None;
            return None;
        };
        let wins = match self.candidate {
            Some((same, wins)) if same == line => wins.saturating_add(1),
            _ => 1,
        };
        if wins >= config.confirmations {
            self.candidate = None;
            Some((line, rtt))
        } else {
            self.candidate = Some((line, wins));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::Line;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn lines() -> LineSet {
        let line = |port| Line::udp(std::net::SocketAddr::from(([192, 0, 2, 1], port)));
        LineSet::new(&[line(1), line(2)]).expect("lines")
    }

    /// Runs the next check, where line 0 (current) answers in `current` ms and line 1
    /// in `other` ms.
    fn check(
        faster: &mut FasterCheck,
        lines: &LineSet,
        current: u64,
        other: u64,
    ) -> Option<(LineId, Duration)> {
        let config = FasterLine::default();
        let at = faster.deadline(ms(250));
        assert!(faster.due(at));
        let round = faster.start(at);
        round.on_ping(0, 1, at);
        round.on_ping(1, 2, at);
        round.on_pong(0, 1, true, at + ms(current));
        round.on_pong(1, 2, true, at + ms(other));
        faster.conclude(at + ms(current.max(other)), ms(250), 0, lines, &config)
    }

    #[test]
    fn a_faster_line_must_win_several_checks_in_a_row() {
        let config = FasterLine::default();
        let lines = lines();
        let mut faster = FasterCheck::new(Instant::now(), &config);
        assert_eq!(check(&mut faster, &lines, 100, 40), None);
        assert_eq!(check(&mut faster, &lines, 100, 40), None);
        // A check where the gain is too small resets the count.
        assert_eq!(check(&mut faster, &lines, 100, 85), None);
        assert_eq!(check(&mut faster, &lines, 100, 40), None);
        assert_eq!(check(&mut faster, &lines, 100, 40), None);
        assert_eq!(check(&mut faster, &lines, 100, 40), Some((1, ms(40))));
    }

    #[test]
    fn a_line_that_failed_recently_is_no_candidate() {
        let config = FasterLine::default();
        let mut lines = lines();
        let t0 = Instant::now();
        lines.get_mut(1).expect("slot").failed_at = Some(t0);
        let mut faster = FasterCheck::new(t0, &config);
        for _ in 0..config.confirmations {
            assert_eq!(check(&mut faster, &lines, 100, 10), None);
        }
    }
}
