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
        let max = self.max;
        let multiplier = if self.multiplier.is_finite() && self.multiplier > 1.0 {
            self.multiplier
        } else {
            1.0
        };
        std::iter::successors(Some(self.initial.min(max)), move |previous| {
            let next = Duration::try_from_secs_f64(previous.as_secs_f64() * multiplier);
            Some(next.unwrap_or(max).min(max))
        })
    }

    /// The jittered delays: each in [50 %, 100 %] of the computed one. Endless.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        self.computed_delays().map(jitter)
    }
}

/// A uniformly random duration within [50 %, 100 %] of `delay`.
pub(crate) fn jitter(delay: Duration) -> Duration {
    // The factor is within [0.5, 1], so the product never exceeds `delay` and cannot overflow.
    delay.mul_f64(0.5 + fastrand::f64() * 0.5)
}
