//! Conversion between the caller's `Instant`s and KCP's wrapping millisecond clock.

use std::time::{Duration, Instant};

/// A millisecond clock that starts at an epoch chosen by its owner. KCP's `ts` fields and
/// the engine's timers run on it; it wraps after about 49.7 days, which the engine's
/// wrapping arithmetic handles.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock that reads 0 at `epoch`.
    pub(crate) fn new(epoch: Instant) -> Clock {
        Clock { epoch }
    }

    /// Milliseconds since the epoch at `now`, wrapped to 32 bits. An `Instant` before
    /// the epoch reads 0.
    pub(crate) fn ms(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_millis() as u32
    }

    /// The `Instant` at which the clock reads `at_ms`, given that it reads `now_ms` at
    /// `now`. A time in the past (by wrapping difference) maps to `now`.
    pub(crate) fn instant_at(now: Instant, now_ms: u32, at_ms: u32) -> Instant {
        let ahead = at_ms.wrapping_sub(now_ms) as i32;
        now + Duration::from_millis(ahead.max(0) as u64)
    }
}

/// `a` is later than `b` on a wrapping 32-bit clock (PROTOCOL.md: compare with the
/// wrapping difference).
pub(crate) fn is_newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_reads_milliseconds_and_wraps() {
        let epoch = Instant::now();
        let clock = Clock::new(epoch);
        assert_eq!(clock.ms(epoch + Duration::from_millis(1234)), 1234);
        assert_eq!(clock.ms(epoch), 0);
        let later = epoch + Duration::from_millis(u32::MAX as u64 + 6);
        assert_eq!(clock.ms(later), 5);
    }

    #[test]
    fn instants_from_wrapping_milliseconds() {
        let now = Instant::now();
        assert_eq!(
            Clock::instant_at(now, u32::MAX - 4, 5),
            now + Duration::from_millis(10)
        );
        assert_eq!(Clock::instant_at(now, 100, 90), now);
    }

    #[test]
    fn wrapping_freshness() {
        assert!(is_newer(1, 0));
        assert!(is_newer(3, u32::MAX - 2));
        assert!(!is_newer(u32::MAX - 2, 3));
        assert!(!is_newer(7, 7));
    }
}
