//! Exponential backoff with jitter, shared by RPC retries and polling.

use std::time::Duration;

/// An exponential backoff schedule: `initial`, then × `multiplier` each step, capped at `max`.
///
/// Each delay handed out is jittered to a uniformly random value within
/// [50 %, 100 %] of the computed one, so many clients that started together spread out.
///
/// ```
/// use std::time::Duration;
/// use longrunning::Backoff;
///
/// let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 1.5);
/// let computed: Vec<_> = backoff.computed_delays().take(4).collect();
/// assert_eq!(computed, [1000, 1500, 2250, 3375].map(Duration::from_millis));
/// let mut delays = backoff.delays();
/// let first = delays.next().unwrap();
/// assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// The growth factor per step (values below 1 are treated as 1).
    pub multiplier: f64,
}

impl Backoff {
    /// A schedule from its three parameters.
    pub const fn new(initial: Duration, max: Duration, multiplier: f64) -> Self {
        Backoff {
            initial,
            max,
            multiplier,
        }
    }

    /// The delays before jitter: `initial`, `initial × multiplier`, … capped at `max`. Endless.
    pub fn computed_delays(&self) -> impl Iterator<Item = Duration> + use<> {
        let backoff = *self;
        std::iter::successors(Some(self.first()), move |previous| {
            Some(backoff.after(*previous))
        })
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

    /// The jittered delays: each in [50 %, 100 %] of the computed one. Endless.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        self.computed_delays().map(jitter)
    }
}

/// A position in a [`Backoff`] schedule, for loops that sleep between attempts.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    backoff: Backoff,
    next: Duration,
}

impl Schedule {
    pub(crate) fn new(backoff: Backoff) -> Self {
        Schedule {
            backoff,
            next: backoff.first(),
        }
    }

    /// The next jittered delay; the schedule moves one step on.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let computed = self.next;
        self.next = self.backoff.after(computed);
        jitter(computed)
    }
}

/// A uniformly random duration within [50 %, 100 %] of `delay`.
pub(crate) fn jitter(delay: Duration) -> Duration {
    // The factor is within [0.5, 1], so the product never exceeds `delay` and cannot overflow.
    delay.mul_f64(0.5 + fastrand::f64() * 0.5)
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
    fn jittered_delays_stay_within_half_and_all_of_the_computed_one() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 1.5);
        let mut below_three_quarters = false;
        for _ in 0..200 {
            for (jittered, computed) in backoff.delays().zip(backoff.computed_delays()).take(12) {
                assert!(
                    jittered >= computed / 2 && jittered <= computed,
                    "{jittered:?} vs {computed:?}"
                );
                below_three_quarters |= jittered < computed.mul_f64(0.75);
            }
        }
        assert!(below_three_quarters, "jitter never spread the delays");
    }

    #[test]
    fn a_schedule_hands_out_the_same_steps_as_the_iterator() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 1.5);
        let mut schedule = Schedule::new(backoff);
        for computed in backoff.computed_delays().take(15) {
            let delay = schedule.next_delay();
            assert!(
                delay >= computed / 2 && delay <= computed,
                "{delay:?} vs {computed:?}"
            );
        }
    }

    #[test]
    fn bad_multipliers_and_huge_caps_never_panic() {
        for multiplier in [0.0, -3.0, f64::NAN, f64::INFINITY, 1e308] {
            let backoff = Backoff::new(Duration::from_secs(1), Duration::MAX, multiplier);
            let last = backoff.delays().take(2000).last().unwrap();
            assert!(last <= Duration::MAX);
        }
        let flat = Backoff::new(MS(300), MS(200), 0.5);
        assert_eq!(
            flat.computed_delays().take(3).collect::<Vec<_>>(),
            [MS(200); 3]
        );
    }
}
