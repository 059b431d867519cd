//! [`RateLimitLayer`]: a client-wide limit on RPCs per second.
//!
//! Every call made through the layer takes a slot: the waits, polls, listings and retries of
//! every client that shares it. Slots are spaced evenly (GCRA: a call may go early by at
//! most the burst), so the server never sees more than the rate plus the burst in any
//! second. A RESOURCE_EXHAUSTED answer halves the rate for a minute; each quiet minute
//! after that doubles it again, up to the configured rate.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderName;
use tokio::time::Instant;
use tower::{Layer, Service};

type Body = tonic::body::Body;

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// How long a lowered rate holds before it is raised again.
const LOWERED_FOR: Duration = Duration::from_secs(60);

/// Limits the RPCs per second of every call made through it. Cheap to clone; clones share
/// the limit.
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Arc<Limiter>,
}

struct Limiter {
    max_rps: f64,
    burst: u32,
    state: Mutex<State>,
}

struct State {
    /// The rate in force (lowered after quota errors).
    rps: f64,
    /// The theoretical time of the next slot (GCRA).
    next: Instant,
    /// When the rate may be raised again.
    lowered_until: Option<Instant>,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("max_rps", &self.limiter.max_rps)
            .field("burst", &self.limiter.burst)
            .finish()
    }
}

impl RateLimitLayer {
    /// At most `max_rps` calls per second (at least one per minute), with bursts of up to
    /// `burst` calls (at least one) let through at once.
    pub fn new(max_rps: f64, burst: u32) -> Self {
        let max_rps = if max_rps.is_finite() {
            max_rps.max(1.0 / 60.0)
        } else {
            f64::from(u32::MAX)
        };
        RateLimitLayer {
            limiter: Arc::new(Limiter {
                max_rps,
                burst: burst.max(1),
                state: Mutex::new(State {
                    rps: max_rps,
                    // Long ago: the first burst may go at once.
                    next: Instant::now()
                        .checked_sub(Duration::from_secs(3600))
                        .unwrap_or_else(Instant::now),
                    lowered_until: None,
                }),
            }),
        }
    }

    /// The rate in force now.
    pub fn current_rps(&self) -> f64 {
        self.limiter.lock().rps
    }
}

impl Limiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the next slot; returns when the call may go.
    fn slot(&self) -> Instant {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(until) = state.lowered_until
            && now >= until
        {
            state.rps = (state.rps * 2.0).min(self.max_rps);
            state.lowered_until = (state.rps < self.max_rps).then_some(now + LOWERED_FOR);
        }
        let interval = Duration::from_secs_f64(1.0 / state.rps);
        let tolerance = interval * (self.burst - 1);
        let earliest = now.checked_sub(tolerance).unwrap_or(now);
        let at = state.next.max(earliest);
        state.next = at + interval;
        at.max(now)
    }

    /// The server said the quota is spent: half the rate, for a while.
    fn lower(&self) {
        let mut state = self.lock();
        state.rps = (state.rps / 2.0).max(1.0 / 60.0);
        state.lowered_until = Some(Instant::now() + LOWERED_FOR);
        tracing::debug!(
            rps = state.rps,
            "RESOURCE_EXHAUSTED: lowering the request rate"
        );
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

/// The service [`RateLimitLayer`] makes.
#[derive(Clone)]
pub struct RateLimited<S> {
    inner: S,
    limiter: Arc<Limiter>,
}

impl<S> fmt::Debug for RateLimited<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimited").finish_non_exhaustive()
    }
}

impl<S> Service<http::Request<Body>> for RateLimited<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError>,
{
    type Response = http::Response<Body>;
    type Error = tower::BoxError;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<Body>, tower::BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The clone that was driven to readiness serves the call once its slot comes.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        Box::pin(async move {
            tokio::time::sleep_until(limiter.slot()).await;
            let response = inner.call(request).await.map_err(Into::into)?;
            let exhausted = response
                .headers()
                .iter()
                .any(|(name, value)| *name == GRPC_STATUS && value.as_bytes() == b"8");
            if exhausted {
                limiter.lower();
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_spaced_by_the_rate_after_the_burst() {
        let layer = RateLimitLayer::new(10.0, 3);
        let start = Instant::now();
        let slots: Vec<_> = (0..6).map(|_| layer.limiter.slot() - start).collect();
        let ms = Duration::from_millis;
        assert_eq!(slots, [ms(0), ms(0), ms(0), ms(100), ms(200), ms(300)]);
    }

    #[tokio::test(start_paused = true)]
    async fn quota_errors_halve_the_rate_for_a_minute_then_it_recovers() {
        let layer = RateLimitLayer::new(10.0, 1);
        layer.limiter.lower();
        assert_eq!(layer.current_rps(), 5.0);
        layer.limiter.lower();
        assert_eq!(layer.current_rps(), 2.5);
        tokio::time::sleep(LOWERED_FOR).await;
        layer.limiter.slot();
        assert_eq!(layer.current_rps(), 5.0);
        tokio::time::sleep(LOWERED_FOR).await;
        layer.limiter.slot();
        assert_eq!(layer.current_rps(), 10.0);
        tokio::time::sleep(LOWERED_FOR * 5).await;
        layer.limiter.slot();
        assert_eq!(layer.current_rps(), 10.0);
    }
}
