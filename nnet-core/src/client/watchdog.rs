//! Watches the current line: it is suspect once nothing came back from it for the line
//! timeout while the client was waiting for an answer (data unacknowledged, or a
//! keepalive PING unanswered). Silence while nothing is expected is not a failure.

use std::time::{Duration, Instant};

/// Silence detection on the current line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Watchdog {
    /// When the line last delivered something.
    last_heard: Instant,
    /// Since when the client has been waiting for an answer, if it is.
    waiting_since: Option<Instant>,
}

impl Watchdog {
    /// A watchdog for a line taken at `now` (counts as heard).
    pub(crate) fn new(now: Instant) -> Watchdog {
        Watchdog {
            last_heard: now,
            waiting_since: None,
        }
    }

    /// The line delivered something at `now`.
    pub(crate) fn heard(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
    }

    /// Whether the client waits for an answer at `now`.
    pub(crate) fn set_waiting(&mut self, waiting: bool, now: Instant) {
        match (waiting, self.waiting_since) {
            (true, None) => self.waiting_since = Some(now),
            (false, _) => self.waiting_since = None,
            (true, Some(_)) => {}
        }
    }

    /// When the line becomes suspect if nothing arrives, given the line timeout.
    pub(crate) fn deadline(&self, timeout: Duration) -> Option<Instant> {
        self.waiting_since
            .map(|since| since.max(self.last_heard) + timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(500);

    #[test]
    fn silence_counts_only_while_waiting() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(t0);
        assert_eq!(dog.deadline(TIMEOUT), None);
        // Quiet for 10 s, then a message goes out: the timeout starts there.
        let sent = t0 + Duration::from_secs(10);
        dog.set_waiting(true, sent);
        assert_eq!(dog.deadline(TIMEOUT), Some(sent + TIMEOUT));
        // Still waiting later: the start does not move.
        dog.set_waiting(true, sent + Duration::from_millis(100));
        assert_eq!(dog.deadline(TIMEOUT), Some(sent + TIMEOUT));
        // Something arrives: the silence restarts from it.
        let heard = sent + Duration::from_millis(300);
        dog.heard(heard);
        assert_eq!(dog.deadline(TIMEOUT), Some(heard + TIMEOUT));
        dog.set_waiting(false, heard);
        assert_eq!(dog.deadline(TIMEOUT), None);
    }
}
