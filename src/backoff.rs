//! Exponential backoff with jitter from an injectable, seedable source; shared by RPC
//! retries and polling.

use std::time::Duration;

/// Where the randomness of jitter comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Each delay is uniformly random within [50 %, 100 %] of the computed one, from a
    /// fresh random seed per schedule (the default: many clients that started together
    /// spread out).
    #[default]
    Random,
    /// The same, from this seed: the same seed gives the same delays (for tests).
    Seeded(u64),
    /// "Full jitter": each delay uniformly random within [0, 100 %] of the computed one, as
    /// Google's Python api-core and gax-java retry, from a fresh random seed.
    Full,
    /// No jitter: every delay is the computed one.
    Off,
}

impl Jitter {
    /// The random source, and the least fraction of the computed delay a delay can be.
    fn rng(self) -> Option<(fastrand::Rng, f64)> {
        match self {
            Jitter::Random => Some((fastrand::Rng::new(), 0.5)),
            Jitter::Seeded(seed) => Some((fastrand::Rng::with_seed(seed), 0.5)),
            Jitter::Full => Some((fastrand::Rng::new(), 0.0)),
            Jitter::Off => None,
        }
    }
}

/// An exponential backoff schedule: `initial`, then × `multiplier` each step, capped at
/// `max`, each delay jittered as [`Jitter`] says.
///
/// ```
/// use std::time::Duration;
/// use longrunning::backoff::{Backoff, Jitter};
///
/// let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 1.5);
/// let computed: Vec<_> = backoff.computed_delays().take(4).collect();
/// assert_eq!(computed, [1000, 1500, 2250, 3375].map(Duration::from_millis));
///
/// // Seeded jitter gives the same delays every time.
/// let seeded = backoff.with_jitter(Jitter::Seeded(7));
/// let a: Vec<_> = seeded.delays().take(5).collect();
/// let b: Vec<_> = seeded.delays().take(5).collect();
/// assert_eq!(a, b);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// The growth factor per step (values below 1 are treated as 1).
    pub multiplier: f64,
    /// Where the jitter comes from (default [`Jitter::Random`]).
    pub jitter: Jitter,
}

impl Backoff {
    /// A schedule from its three parameters, with random jitter.
    pub const fn new(initial: Duration, max: Duration, multiplier: f64) -> Self {
        Backoff {
            initial,
            max,
            multiplier,
            jitter: Jitter::Random,
        }
    }

    /// The same schedule with another jitter source.
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delays before jitter: `initial`, `initial × multiplier`, … capped at `max`. Endless.
    pub fn computed_delays(&self) -> impl Iterator<Item = Duration> + use<> {
        let backoff = *self;
        std::iter::successors(Some(self.first()), move |previous| {
            Some(backoff.after(*previous))
        })
    }

    /// The jittered delays. Endless.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        let mut schedule = Schedule::new(*self);
        std::iter::repeat_with(move || schedule.next_delay())
    }

    fn first(&self) -> Duration {
        self.initial.min(self.max)
    }

    /// The computed delay that follows `previous`.
    fn after(&self, previous: Duration) -> Duration {
        let multiplier = if self.multiplier.is_finite() && self.multiplier > 1.0 {
            self.multiplier
        } else {
            1.0
        };
        Duration::try_from_secs_f64(previous.as_secs_f64() * multiplier)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// A position in a [`Backoff`] schedule, with its own jitter source, for loops that sleep
/// between attempts.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    backoff: Backoff,
    next: Duration,
    rng: Option<(fastrand::Rng, f64)>,
}

impl Schedule {
    pub(crate) fn new(backoff: Backoff) -> Self {
        Schedule {
            backoff,
            next: backoff.first(),
            rng: backoff.jitter.rng(),
        }
    }

    /// The next jittered delay; the schedule moves one step on.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let computed = self.next;
        self.next = self.backoff.after(computed);
        match &mut self.rng {
            // The factor is within [least, 1]: the product never exceeds `computed`.
            Some((rng, least)) => computed.mul_f64(*least + rng.f64() * (1.0 - *least)),
            None => computed,
        }
    }

    /// Back to the first step (after a success).
    pub(crate) fn reset(&mut self) {
        self.next = self.backoff.first();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn computed_delays_grow_by_the_multiplier_up_to_the_cap() {
        let backoff = Backoff::new(MS(500), Duration::from_secs(10), 2.0);
        let delays: Vec<_> = backoff.computed_delays().take(8).collect();
        let expected = [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000].map(MS);
        assert_eq!(delays, expected);
    }

    #[test]
    fn full_jitter_spreads_delays_over_all_of_the_computed_one() {
        let backoff = Backoff::new(MS(1000), MS(1000), 1.0).with_jitter(Jitter::Full);
        let delays: Vec<_> = backoff.delays().take(400).collect();
        assert!(delays.iter().all(|d| *d <= MS(1000)));
        // 400 draws: all above half would be a 1 in 2^400 event.
        assert!(delays.iter().any(|d| *d < MS(500)), "{delays:?}");
        assert!(delays.iter().any(|d| *d > MS(500)), "{delays:?}");
    }

    #[test]
    fn seeded_jitter_gives_exact_delays_within_half_and_all_of_the_computed_one() {
        let backoff = Backoff::new(MS(1000), MS(30_000), 1.5).with_jitter(Jitter::Seeded(42));
        let first: Vec<_> = backoff.delays().take(12).collect();
        assert_eq!(first, backoff.delays().take(12).collect::<Vec<_>>());
        let mut spread = false;
        for (jittered, computed) in first.iter().zip(backoff.computed_delays()) {
            assert!(*jittered >= computed / 2 && *jittered <= computed);
            spread |= *jittered < computed.mul_f64(0.75);
        }
        assert!(spread, "jitter never spread the delays: {first:?}");
        let other: Vec<_> = backoff
            .with_jitter(Jitter::Seeded(43))
            .delays()
            .take(12)
            .collect();
        assert_ne!(first, other);
    }

    #[test]
    fn no_jitter_gives_the_computed_delays_and_reset_starts_over() {
        let backoff = Backoff::new(MS(100), MS(1000), 2.0).with_jitter(Jitter::Off);
        let mut schedule = Schedule::new(backoff);
        let taken: Vec<_> = (0..3).map(|_| schedule.next_delay()).collect();
        assert_eq!(taken, [MS(100), MS(200), MS(400)]);
        schedule.reset();
        assert_eq!(schedule.next_delay(), MS(100));
    }

    #[test]
    fn bad_multipliers_and_huge_caps_never_panic() {
        let second = |multiplier: f64| {
            let backoff = Backoff::new(Duration::from_secs(1), Duration::MAX, multiplier);
            // Jittered delays of every size are computed without panicking.
            assert_eq!(backoff.delays().take(2000).count(), 2000);
            backoff.computed_delays().nth(1).unwrap()
        };
        for flat in [0.0, -3.0, f64::NAN, f64::INFINITY] {
            assert_eq!(second(flat), Duration::from_secs(1), "{flat}");
        }
        for huge in [1e308, f64::MAX] {
            assert_eq!(second(huge), Duration::MAX, "{huge}");
        }
        let capped = Backoff::new(MS(300), MS(200), 0.5);
        assert_eq!(
            capped.computed_delays().take(3).collect::<Vec<_>>(),
            [MS(200); 3]
        );
    }
}
