//! Timer coalescing: a wait's sleeps end on a grid that every wait of a client shares, so
//! polls that fall due close together go out on one wake-up of the runtime (one write, one
//! read) instead of one each.
//!
//! A delay's grid is the coarsest power of ten of milliseconds that is at most a quarter of
//! it: 1 ms from 4 ms, 10 ms from 40 ms, 100 ms from 0.4 s, 1 s from 4 s. The grids nest, so a
//! 30 s poll and a 1 s poll that fall due in the same tenth of a second share it. A sleep
//! never ends early (a `RetryInfo` delay is a floor), and never later than a quarter of its
//! delay, 100 ms under 4 s and 1 s beyond (the poll delays' own jitter spans a half); a delay
//! under 4 ms, or one that would end past the wait's deadline, is kept as it is.
//!
//! Measured on `lro wait --strategy poll`, 1,000 operations done within 8 s (README, "Client
//! CPU per completed wait"): `epoll_wait`s 15,661 → about 1,800 and client CPU 0.67 s → 0.13 s
//! with the other cuts of that round; an eighth instead of a quarter gave 0.16 s.

use std::time::Duration;

use tokio::time::Instant;

/// The coarsest grid, reached by delays of 8 s and more.
const COARSEST: Duration = Duration::from_secs(1);

/// When a sleep of `after` that starts `now` ends: rounded up to the grid for `after`,
/// counted from `epoch` (the client's), unless that passes `deadline`.
pub(crate) fn wake_at(
    epoch: Instant,
    now: Instant,
    after: Duration,
    deadline: Option<Instant>,
) -> Instant {
    // As `tokio::time::sleep` does with a delay past the end of time: about 30 years.
    let Some(exact) = now.checked_add(after) else {
        return now + Duration::from_secs(86_400 * 365 * 30);
    };
    let Some(grid) = grid(after) else {
        return exact;
    };
    let since = exact.saturating_duration_since(epoch).as_nanos();
    let grid = grid.as_nanos();
    let Ok(aligned) = u64::try_from(since.div_ceil(grid) * grid) else {
        return exact;
    };
    let aligned = epoch + Duration::from_nanos(aligned);
    match deadline {
        Some(deadline) if aligned > deadline => exact,
        _ => aligned,
    }
}

/// The grid for a delay: `None` under 4 ms.
fn grid(after: Duration) -> Option<Duration> {
    let mut grid = Duration::from_millis(1);
    if after < grid * 4 {
        return None;
    }
    while grid < COARSEST && after >= grid * 40 {
        grid *= 10;
    }
    Some(grid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn each_delay_gets_the_coarsest_grid_within_a_quarter_of_it() {
        let table = [
            (ms(0), None),
            (ms(3), None),
            (ms(4), Some(ms(1))),
            (ms(39), Some(ms(1))),
            (ms(40), Some(ms(10))),
            (ms(250), Some(ms(10))),
            (ms(399), Some(ms(10))),
            (ms(400), Some(ms(100))),
            (ms(1500), Some(ms(100))),
            (ms(3999), Some(ms(100))),
            (ms(4000), Some(ms(1000))),
            (Duration::from_secs(30), Some(ms(1000))),
            (Duration::from_secs(86_400), Some(ms(1000))),
            (Duration::MAX, Some(ms(1000))),
        ];
        for (after, expected) in table {
            assert_eq!(grid(after), expected, "{after:?}");
        }
    }

    #[test]
    fn wakes_round_up_to_the_grid_from_the_clients_epoch() {
        let epoch = Instant::now();
        let at = |offset: u64| epoch + ms(offset);
        // (now, after) -> wake, as offsets from the epoch
        let table = [
            (0, 0, 0),
            (3, 5, 8),           // 1 ms grid
            (1, 1000, 1100),     // 1,001 ms up to the 100 ms grid
            (0, 1000, 1000),     // already on it
            (1234, 1500, 2800),  // 2,734 ms
            (40, 250, 290),      // 10 ms grid
            (1, 30_000, 31_000), // 1 s grid
        ];
        for (now, after, wake) in table {
            assert_eq!(
                wake_at(epoch, at(now), ms(after), None),
                at(wake),
                "{now} + {after}"
            );
        }
    }

    #[test]
    fn never_early_and_never_later_than_a_quarter_of_the_delay() {
        let epoch = Instant::now();
        for now in (0..5000).step_by(37) {
            for after in (0..40_000).step_by(91) {
                let start = epoch + ms(now);
                let wake = wake_at(epoch, start, ms(after), None);
                let slept = wake - start;
                assert!(slept >= ms(after), "{now} + {after}");
                assert!(
                    slept <= ms(after) + ms(after) / 4,
                    "{now} + {after}: {slept:?}"
                );
            }
        }
    }

    #[test]
    fn a_wake_past_the_deadline_is_kept_exact() {
        let epoch = Instant::now();
        let now = epoch + ms(1);
        let deadline = Some(epoch + ms(1050));
        assert_eq!(wake_at(epoch, now, ms(1000), deadline), epoch + ms(1001));
        let later = Some(epoch + ms(1100));
        assert_eq!(wake_at(epoch, now, ms(1000), later), epoch + ms(1100));
    }

    #[test]
    fn a_clock_before_the_epoch_or_a_huge_delay_does_not_panic() {
        let epoch = Instant::now() + Duration::from_secs(10);
        let now = Instant::now();
        assert_eq!(wake_at(epoch, now, ms(1000), None), epoch);
        let far = Duration::from_secs(100 * 365 * 86_400);
        assert!(wake_at(epoch, now, far, None) >= now + far);
        assert!(wake_at(epoch, now, Duration::MAX, None) > now + far / 4);
    }
}
