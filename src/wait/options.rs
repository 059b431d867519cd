//! [`WaitOptions`]: how a wait behaves, and [`WaitStrategy`]: which RPC it uses.

use std::time::Duration;

use crate::backoff::Backoff;

/// Which RPC a wait uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitStrategy {
    /// WaitOperation, falling back to polling once the server answers UNIMPLEMENTED.
    #[default]
    Auto,
    /// WaitOperation only; UNIMPLEMENTED ends the wait with that error.
    Wait,
    /// GetOperation polling only.
    Poll,
}

/// How a wait behaves. `Default` gives the documented defaults.
///
/// ```
/// use std::time::Duration;
/// use longrunning::wait::{WaitOptions, WaitStrategy};
///
/// let options = WaitOptions {
///     timeout: Some(Duration::from_secs(15 * 60)),
///     strategy: WaitStrategy::Poll,
///     ..WaitOptions::default()
/// };
/// assert_eq!(options.wait_rpc_cap, Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct WaitOptions {
    /// How long to wait in all (default 24 h). `None` waits for as long as it takes.
    pub timeout: Option<Duration>,
    /// Wait, poll, or wait with polling fallback (default [`WaitStrategy::Auto`]).
    pub strategy: WaitStrategy,
    /// The longest single WaitOperation call (default 60 s).
    pub wait_rpc_cap: Duration,
    /// For watches: the longest single WaitOperation, so that metadata changes show at
    /// least this often (default 10 s).
    pub watch_interval: Duration,
    /// WaitOperation answers that come back not done sooner than this are spaced by the
    /// poll delays (default 250 ms).
    pub min_wait_interval: Duration,
    /// The delays between polls (default 1 s, ×1.5, up to 30 s, jittered to [50 %, 100 %]).
    ///
    /// Chosen on a paused-clock comparison (`cargo bench --bench schedules`, README "Poll
    /// schedules"): against Python api-core's (1 s ×1.5 to 20 s, full jitter), google-cloud-rust's
    /// (1 s ×2 to 60 s) and Java's Vision settings (20 s ×1.5 to 45 s), no schedule polls less
    /// *and* sees operations done sooner, for operations of 2 s, 30 s, 5 min or 30 min: a
    /// 30-minute operation costs 86 GetOperations and is seen done 12 s late (p50; api-core:
    /// 180 and 6 s; google-cloud-rust: 36 and 31 s).
    pub poll_backoff: Backoff,
    /// The delays after faults, growing while they repeat and starting over after an
    /// answer (default 1 s, ×2, up to 30 s, jittered). A `RetryInfo` delay replaces one.
    pub fault_backoff: Backoff,
    /// For [`wait_stream`](super::wait_stream) and [`wait_all`](super::wait_all): the most GetOperations in flight at once
    /// (default 1,000). WaitOperations are bounded by the pool's long-call slots instead.
    pub max_in_flight_rpcs: usize,
    /// Send CancelOperation when the wait runs out of time, then look once more: a wait
    /// that ends so reports the confirmed outcome (cancelled, or done after all), or
    /// [`Error::Timeout`](crate::Error::Timeout) with the snapshot after the cancel
    /// (default off: nothing is cancelled).
    pub cancel_on_timeout: bool,
    /// Report an operation whose metadata has not changed for this long: a `tracing`
    /// warning, and for [`OperationsClient::watch_each`](crate::OperationsClient::watch_each)
    /// a [`Watched::Stalled`](super::Watched::Stalled) (default 10 minutes; `None`: never).
    pub stall_after: Option<Duration>,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            timeout: Some(Duration::from_secs(24 * 60 * 60)),
            strategy: WaitStrategy::Auto,
            wait_rpc_cap: Duration::from_secs(60),
            watch_interval: Duration::from_secs(10),
            min_wait_interval: Duration::from_millis(250),
            poll_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 1.5),
            fault_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 2.0),
            max_in_flight_rpcs: 1000,
            cancel_on_timeout: false,
            stall_after: Some(Duration::from_secs(10 * 60)),
        }
    }
}
