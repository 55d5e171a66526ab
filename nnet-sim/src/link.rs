//! A one-way link: latency, jitter, loss, duplication, reordering, a bandwidth limit
//! with a bounded queue, an MTU, and an up/down switch. Every random choice comes from
//! the caller's seeded RNG, so a run replays exactly.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::Rng;

/// How a link treats datagrams. Plain data with [`LinkConfig::default`] a perfect
/// 10 ms link.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Base one-way delay.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per datagram (may reorder).
    pub jitter: Duration,
    /// Probability a datagram is lost, 0.0 to 1.0.
    pub loss: f64,
    /// Probability a datagram is delivered twice (the copy with its own jitter).
    pub duplicate: f64,
    /// Probability a datagram is held back by `reorder_delay` (so later ones pass it).
    pub reorder: f64,
    /// How long a reordered datagram is held back.
    pub reorder_delay: Duration,
    /// Bytes per second, `None` for unlimited. Datagrams queue behind each other.
    pub bandwidth: Option<u64>,
    /// With a bandwidth limit: datagrams that would wait longer than this in the queue
    /// are dropped (tail drop).
    pub max_queue_delay: Duration,
    /// Larger datagrams are dropped.
    pub mtu: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(20),
            bandwidth: None,
            max_queue_delay: Duration::from_millis(200),
            mtu: 1500,
        }
    }
}

impl LinkConfig {
    /// A link with `latency` and nothing else.
    pub fn with_latency(latency: Duration) -> LinkConfig {
        LinkConfig {
            latency,
            ..LinkConfig::default()
        }
    }

    /// The same link with `loss`.
    pub fn lossy(self, loss: f64) -> LinkConfig {
        LinkConfig { loss, ..self }
    }
}

/// What a link did with the datagrams offered to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams offered.
    pub offered: u64,
    /// Bytes offered.
    pub bytes: u64,
    /// Dropped by random loss.
    pub lost: u64,
    /// Dropped because the link was down.
    pub down: u64,
    /// Dropped for exceeding the MTU.
    pub too_big: u64,
    /// Dropped because the queue was full.
    pub queue_full: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Datagrams held back to reorder.
    pub reordered: u64,
}

/// One direction of a link.
#[derive(Clone, Debug)]
pub struct Link {
    /// Its behaviour; may be changed during a run.
    pub config: LinkConfig,
    /// Whether it carries anything.
    pub up: bool,
    /// When the last queued datagram finishes serializing.
    busy_until: Option<Instant>,
    stats: LinkStats,
}

impl Link {
    /// An up link.
    pub fn new(config: LinkConfig) -> Link {
        Link {
            config,
            up: true,
            busy_until: None,
            stats: LinkStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Offers a datagram of `len` bytes at `now`; returns when its copies arrive (none
    /// if it is dropped, two if duplicated). Draws from `rng` in a fixed order.
    pub fn send(&mut self, now: Instant, len: usize, rng: &mut SmallRng) -> Vec<Instant> {
        self.stats.offered += 1;
        self.stats.bytes += len as u64;
        // Draw everything first so that the RNG stream does not depend on the outcome.
        let lost = rng.random_bool(self.config.loss.clamp(0.0, 1.0));
        let duplicated = rng.random_bool(self.config.duplicate.clamp(0.0, 1.0));
        let reordered = rng.random_bool(self.config.reorder.clamp(0.0, 1.0));
        let jitters = [self.jitter(rng), self.jitter(rng)];
        if !self.up {
            self.stats.down += 1;
            return Vec::new();
        }
        if len > self.config.mtu {
            self.stats.too_big += 1;
            return Vec::new();
        }
        if lost {
            self.stats.lost += 1;
            return Vec::new();
        }
        let Some(departs) = self.serialize(now, len) else {
            self.stats.queue_full += 1;
            return Vec::new();
        };
        let mut base = departs + self.config.latency;
        if reordered {
            self.stats.reordered += 1;
            base += self.config.reorder_delay;
        }
        let mut arrivals = vec![base + jitters[0]];
        if duplicated {
            self.stats.duplicated += 1;
            arrivals.push(departs + self.config.latency + jitters[1]);
        }
        arrivals
    }

    fn jitter(&self, rng: &mut SmallRng) -> Duration {
        let max = self.config.jitter.as_micros() as u64;
        if max == 0 {
            Duration::ZERO
        } else {
            Duration::from_micros(rng.random_range(0..=max))
        }
    }

    /// When a datagram of `len` bytes offered at `now` has left, behind the queue;
    /// `None` if the queue is too long.
    fn serialize(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let Some(rate) = self.config.bandwidth else {
            return Some(now);
        };
        let start = self.busy_until.map_or(now, |busy| busy.max(now));
        if start.saturating_duration_since(now) > self.config.max_queue_delay {
            return None;
        }
        let airtime =
            Duration::from_nanos((len as u64).saturating_mul(1_000_000_000) / rate.max(1));
        let done = start + airtime;
        self.busy_until = Some(done);
        Some(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_perfect_link_delivers_after_its_latency() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut link = Link::new(LinkConfig::with_latency(ms(25)));
        let t0 = Instant::now();
        assert_eq!(link.send(t0, 100, &mut rng), vec![t0 + ms(25)]);
        link.up = false;
        assert!(link.send(t0, 100, &mut rng).is_empty());
        assert_eq!(link.stats().down, 1);
    }

    #[test]
    fn loss_is_close_to_its_rate_and_replays_with_the_seed() {
        let t0 = Instant::now();
        let run = |seed| {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut link = Link::new(LinkConfig::default().lossy(0.2));
            (0..10_000)
                .map(|_| link.send(t0, 100, &mut rng).len())
                .collect::<Vec<_>>()
        };
        let fates = run(7);
        let lost = fates.iter().filter(|&&n| n == 0).count();
        assert!((1800..2200).contains(&lost), "{lost}");
        assert_eq!(fates, run(7));
        assert_ne!(fates, run(8));
    }

    #[test]
    fn bandwidth_queues_and_drops_at_the_queue_limit() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut link = Link::new(LinkConfig {
            latency: ms(10),
            bandwidth: Some(100_000), // 1000 bytes take 10 ms
            max_queue_delay: ms(25),
            ..LinkConfig::default()
        });
        let t0 = Instant::now();
        let arrivals: Vec<Vec<Instant>> = (0..5).map(|_| link.send(t0, 1000, &mut rng)).collect();
        assert_eq!(arrivals[0], vec![t0 + ms(20)]);
        assert_eq!(arrivals[1], vec![t0 + ms(30)]);
        assert_eq!(arrivals[2], vec![t0 + ms(40)]);
        // The fourth would wait 30 ms in the queue: over the 25 ms limit.
        assert!(arrivals[3].is_empty() && arrivals[4].is_empty());
        assert_eq!(link.stats().queue_full, 2);
    }

    #[test]
    fn oversized_datagrams_are_dropped_and_duplicates_counted() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut link = Link::new(LinkConfig {
            duplicate: 1.0,
            mtu: 500,
            ..LinkConfig::default()
        });
        let t0 = Instant::now();
        assert!(link.send(t0, 501, &mut rng).is_empty());
        assert_eq!(link.send(t0, 500, &mut rng).len(), 2);
        let stats = link.stats();
        assert_eq!((stats.too_big, stats.duplicated), (1, 1));
    }
}
