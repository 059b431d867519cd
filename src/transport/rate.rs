//! [`RateLimitLayer`]: a client-wide limit on RPCs per second.
//!
//! Every call made through the layer takes a slot: the waits, polls, listings and retries of
//! every client that shares it. Slots are spaced evenly (GCRA: a call may go early by at
//! most the burst), so the server never sees more than the rate plus the burst in any
//! second. A RESOURCE_EXHAUSTED answer halves the rate for a minute; each quiet minute
//! after that doubles it again, up to the configured rate.
//!
//! Only an answer to a call sent after the last halving halves again (as TCP halves once per
//! window): the answers to calls already in flight at the old rate carry no news. And the
//! rate never drops below an eighth of the configured one: a server that still refuses
//! then is not refusing for the rate, and each wait's own backoff deals with it. Without
//! these two rules, a server refusing 30 % of calls at random drove the rate down to one
//! call a minute within seconds.
//!
//! **Adaptive** ([`RateLimitLayer::adaptive`], what a [`Connector`](super::Connector) with
//! no rate set uses): no limit at all until the server refuses a call for its quota; then the
//! rate is what the server admitted over the last minute (the answers that were not quota
//! errors), which is what a per-minute quota admits, and never under one call a second. A later refusal (of a call sent after
//! that) sets it again from what was admitted, never higher. Each quiet minute raises it by
//! a tenth, so that probing for more costs at most a tenth over the quota; past eight times
//! the rate it started from, the limit is lifted. Google's clients leave this to each call's
//! backoff, which cannot hold a client of thousands of waits to a project's quota.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt as _};

use super::guard::grpc_status;

type Body = tonic::body::Body;

/// How long a lowered rate holds before it is raised again.
const LOWERED_FOR: Duration = Duration::from_secs(60);

/// The lowest rate quota errors bring the limit down to, as a fraction of the configured one.
const FLOOR: f64 = 1.0 / 8.0;

/// The lowest rate an adaptive limit goes down to, in calls a second. A client that sends
/// less than this is not what spends a quota of hundreds a minute (other clients of the
/// project are); holding it to what it happened to send would make each of its waits crawl
/// at a call a minute, while its waits' own backoff already answers the refusals.
const ADAPTIVE_FLOOR_RPS: f64 = 1.0;

/// Limits the RPCs per second of every call made through it. Cheap to clone; clones share
/// the limit.
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Arc<Limiter>,
}

struct Limiter {
    /// The configured ceiling; `None`: adaptive.
    max_rps: Option<f64>,
    burst: u32,
    state: Mutex<State>,
    /// Whether any limit is in force (an adaptive limiter before the first quota error has
    /// none): calls then go without touching the lock.
    limited: AtomicBool,
    /// Adaptive: answers that were not quota errors over the last minute.
    admitted: LastMinute,
    /// Adaptive: quota errors over the last minute.
    refused: LastMinute,
    /// Adaptive: calls sent and not yet answered (a parked WaitOperation was admitted when
    /// it arrived, though its answer comes much later).
    in_flight: AtomicU64,
}

/// A count of events over the last minute, per second: each slot holds the second it
/// counts (high 32 bits) and how many (low 32 bits); without a lock, since every answer
/// counts. A race between two seconds loses a count at most.
struct LastMinute {
    slots: [AtomicU64; ADMITTED_WINDOW],
    /// The origin of those seconds.
    epoch: Instant,
}

impl LastMinute {
    fn new(epoch: Instant) -> Self {
        LastMinute {
            slots: std::array::from_fn(|_| AtomicU64::new(u64::MAX)),
            epoch,
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() & 0xffff_ffff
    }

    /// Counts one event now.
    fn count(&self) {
        let second = self.second(Instant::now());
        let slot = &self.slots[(second % ADMITTED_WINDOW as u64) as usize];
        let packed = slot.load(Ordering::Relaxed);
        if packed >> 32 == second {
            slot.fetch_add(1, Ordering::Relaxed);
        } else {
            slot.store(second << 32 | 1, Ordering::Relaxed);
        }
    }

    /// The events of the last minute.
    fn total(&self, now: Instant) -> u64 {
        let second = self.second(now);
        self.slots
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed))
            .filter(|packed| {
                let at = packed >> 32;
                at <= second && second - at < ADMITTED_WINDOW as u64
            })
            .map(|packed| packed & 0xffff_ffff)
            .sum()
    }
}

/// How long back the rate the server admits is measured.
const ADMITTED_WINDOW: usize = 60;
/// An adaptive limit rises by this factor each quiet minute.
const PROBE: f64 = 1.1;
/// An adaptive limit is lifted past this multiple of the rate it started from.
const LIFT: f64 = 8.0;

struct State {
    /// The rate in force (lowered after quota errors).
    rps: f64,
    /// The theoretical time of the next slot (GCRA).
    next: Instant,
    /// When the rate was last halved, and when it may be raised again.
    lowered_at: Option<Instant>,
    lowered_until: Option<Instant>,
    /// Adaptive: the rate the limit started from, at the first quota error.
    started_at_rps: f64,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("max_rps", &self.limiter.max_rps)
            .field("limited", &self.limiter.limited.load(Ordering::Relaxed))
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
        Self::with(Some(max_rps), burst, max_rps)
    }

    /// No limit until the server answers RESOURCE_EXHAUSTED for its quota; then the rate
    /// the server admitted over the last minute (the answers that were not quota errors).
    /// A later refusal, of a call sent after that, sets it again from what was admitted,
    /// never higher; each quiet minute raises it by a tenth, so that probing costs at most a
    /// tenth over the quota; past eight times where it started, the limit is lifted. What a
    /// [`Connector`](super::Connector) with no rate set uses.
    pub fn adaptive() -> Self {
        Self::with(None, 1, f64::INFINITY)
    }

    fn with(max_rps: Option<f64>, burst: u32, rps: f64) -> Self {
        let now = Instant::now();
        RateLimitLayer {
            limiter: Arc::new(Limiter {
                max_rps,
                burst: burst.max(1),
                limited: AtomicBool::new(rps.is_finite()),
                admitted: LastMinute::new(now),
                refused: LastMinute::new(now),
                in_flight: AtomicU64::new(0),
                state: Mutex::new(State {
                    rps,
                    // Long ago: the first burst may go at once.
                    next: now.checked_sub(Duration::from_secs(3600)).unwrap_or(now),
                    lowered_at: None,
                    lowered_until: None,
                    started_at_rps: f64::INFINITY,
                }),
            }),
        }
    }

    /// The rate in force now (infinite: no limit).
    pub fn current_rps(&self) -> f64 {
        self.limiter.lock().rps
    }
}

impl Limiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::lock::lock(&self.state)
    }

    /// Takes the next slot; returns when the call may go.
    fn slot(&self) -> Instant {
        let now = Instant::now();
        if !self.limited.load(Ordering::Relaxed) {
            return now;
        }
        let mut state = self.lock();
        if let Some(until) = state.lowered_until
            && now >= until
        {
            match self.max_rps {
                Some(max_rps) => {
                    state.rps = (state.rps * 2.0).min(max_rps);
                    state.lowered_until = (state.rps < max_rps).then_some(now + LOWERED_FOR);
                }
                None if state.rps * PROBE > state.started_at_rps * LIFT => {
                    tracing::debug!("no quota error for a while: lifting the request rate limit");
                    state.rps = f64::INFINITY;
                    state.lowered_until = None;
                    self.limited.store(false, Ordering::Relaxed);
                    return now;
                }
                None => {
                    state.rps *= PROBE;
                    state.lowered_until = Some(now + LOWERED_FOR);
                }
            }
        }
        if !state.rps.is_finite() {
            return now;
        }
        let interval = Duration::from_secs_f64(1.0 / state.rps);
        let tolerance = interval * (self.burst - 1);
        let earliest = now.checked_sub(tolerance).unwrap_or(now);
        let at = state.next.max(earliest);
        state.next = at + interval;
        at.max(now)
    }

    /// The server said the quota is spent, answering a call sent at `sent`: half the rate
    /// (not below the floor), for a while, unless the call went before the last halving.
    fn lower(&self, sent: Instant) {
        let now = Instant::now();
        let mut state = self.lock();
        if state.lowered_at.is_some_and(|lowered| sent < lowered) {
            return;
        }
        match self.max_rps {
            Some(max_rps) => {
                let floor = (max_rps * FLOOR).max(1.0 / 60.0);
                state.rps = (state.rps / 2.0).max(floor).min(state.rps);
            }
            None => {
                // What the server admitted over the last minute is what it admits. The limit
                // starts once the server refuses more than it admits: one that admits most
                // calls is not refusing for a spent quota, and each call's backoff answers it.
                self.refused.count();
                let admitted = self.admitted.total(now) + self.in_flight.load(Ordering::Relaxed);
                if !state.rps.is_finite() && self.refused.total(now) <= admitted {
                    return;
                }
                let admitted = admitted as f64 / ADMITTED_WINDOW as f64;
                if !state.rps.is_finite() {
                    state.started_at_rps = admitted.max(ADAPTIVE_FLOOR_RPS);
                    state.next = now;
                }
                let floor = (state.started_at_rps * FLOOR).max(ADAPTIVE_FLOOR_RPS);
                state.rps = admitted.min(state.rps).max(floor);
                self.limited.store(true, Ordering::Relaxed);
            }
        }
        state.lowered_at = Some(now);
        state.lowered_until = Some(now + LOWERED_FOR);
        tracing::debug!(
            rps = state.rps,
            "RESOURCE_EXHAUSTED: lowering the request rate"
        );
    }
}

impl Limiter {
    /// An answer that was not a quota error (counted only by an adaptive limiter).
    fn admitted(&self) {
        if self.max_rps.is_none() {
            self.admitted.count();
        }
    }
}

/// A call in flight, counted by an adaptive limiter while it lasts (until [`finish`] or
/// drop); it carries the limiter the call's answer reports to.
///
/// [`finish`]: InFlight::finish
struct InFlight {
    limiter: Arc<Limiter>,
    counted: bool,
}

impl InFlight {
    fn new(limiter: Arc<Limiter>) -> Self {
        let counted = limiter.max_rps.is_none();
        if counted {
            limiter.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        InFlight { limiter, counted }
    }

    /// The call is answered: no longer in flight.
    fn finish(&mut self) -> &Limiter {
        if std::mem::take(&mut self.counted) {
            self.limiter.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        &self.limiter
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited {
            inner,
            limiter: self.limiter.clone(),
            reserved: None,
        }
    }
}

/// The service [`RateLimitLayer`] makes. It waits for the call's slot in `poll_ready`, so
/// that a caller timing only the call itself (the client's per-call deadline) does not
/// count the wait for the slot as the server's silence.
pub struct RateLimited<S> {
    inner: S,
    limiter: Arc<Limiter>,
    /// The slot `poll_ready` took, and the sleep until it (none when it is now).
    reserved: Option<(Instant, Option<Pin<Box<tokio::time::Sleep>>>)>,
}

impl<S: Clone> Clone for RateLimited<S> {
    fn clone(&self) -> Self {
        RateLimited {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            // A clone takes its own slot.
            reserved: None,
        }
    }
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
    type Future = RateLimitedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let limiter = &self.limiter;
        let (_, sleep) = self.reserved.get_or_insert_with(|| {
            let at = limiter.slot();
            let sleep = (at > Instant::now()).then(|| Box::pin(tokio::time::sleep_until(at)));
            (at, sleep)
        });
        if let Some(sleep) = sleep {
            std::task::ready!(sleep.as_mut().poll(cx));
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let Some((sent, _)) = self.reserved.take() else {
            // Called without `poll_ready` (outside tower's contract): the slot is taken,
            // and waited for, before the call goes, on a clone of the service.
            let mut inner = self.inner.clone();
            let limiter = self.limiter.clone();
            return RateLimitedFuture {
                state: Sending::Queued {
                    queued: Box::pin(async move {
                        let sent = limiter.slot();
                        tokio::time::sleep_until(sent).await;
                        let in_flight = InFlight::new(limiter);
                        let response = inner.ready().await.map_err(Into::into);
                        let response = match response {
                            Ok(ready) => ready.call(request).await.map_err(Into::into),
                            Err(error) => Err(error),
                        };
                        answered(response, in_flight, sent)
                    }),
                },
            };
        };
        // The usual case: the service driven to readiness takes the call at once, and
        // nothing is boxed.
        let in_flight = InFlight::new(self.limiter.clone());
        RateLimitedFuture {
            state: Sending::Calling {
                call: self.inner.call(request),
                in_flight,
                sent,
            },
        }
    }
}

/// Reports a call's answer to the limit: a quota error lowers it (if the call was sent
/// after the last lowering), any other answer counts as admitted.
fn answered(
    response: Result<http::Response<Body>, tower::BoxError>,
    mut in_flight: InFlight,
    sent: Instant,
) -> Result<http::Response<Body>, tower::BoxError> {
    let limiter = in_flight.finish();
    let response = response?;
    if grpc_status(response.headers()) == Some(tonic::Code::ResourceExhausted) {
        limiter.lower(sent);
    } else {
        limiter.admitted();
    }
    Ok(response)
}

type QueuedCall =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, tower::BoxError>> + Send>>;

pin_project_lite::pin_project! {
    /// The future of a [`RateLimited`] call: the inner call, whose answer then tells the
    /// limit whether the server refused it for its quota.
    pub struct RateLimitedFuture<F> {
        #[pin]
        state: Sending<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = SendingProj]
    #[project_replace = SendingReplace]
    enum Sending<F> {
        /// Sent on the service `poll_ready` readied, in the slot it took.
        Calling {
            #[pin]
            call: F,
            in_flight: InFlight,
            sent: Instant,
        },
        /// Called without `poll_ready`: waits for its slot first.
        Queued { queued: QueuedCall },
        /// Answered.
        Done,
    }
}

impl<F> fmt::Debug for RateLimitedFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitedFuture").finish_non_exhaustive()
    }
}

impl<F, E> Future for RateLimitedFuture<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
    E: Into<tower::BoxError>,
{
    type Output = Result<http::Response<Body>, tower::BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        let answer = match state.as_mut().project() {
            SendingProj::Calling { call, .. } => {
                std::task::ready!(call.poll(cx)).map_err(Into::into)
            }
            SendingProj::Queued { queued } => return queued.as_mut().poll(cx),
            SendingProj::Done => {
                return Poll::Ready(Err("a rate-limited call polled after it ended".into()));
            }
        };
        match state.as_mut().project_replace(Sending::Done) {
            SendingReplace::Calling {
                in_flight, sent, ..
            } => Poll::Ready(answered(answer, in_flight, sent)),
            // Only a call that was calling got here.
            _ => Poll::Ready(Err("a rate-limited call lost its state".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_adaptive_limit_starts_at_what_the_server_admitted_probes_a_tenth_up_and_lifts() {
        let layer = RateLimitLayer::adaptive();
        let limiter = &layer.limiter;
        let start = Instant::now();
        // No limit: every slot is now, whatever the number.
        assert!((0..1000).all(|_| limiter.slot() == start));
        // The server admitted 120 calls in the last minute, then refused as many: no limit
        // yet (it admits most calls); one refusal more, and the limit is what it admitted.
        for _ in 0..120 {
            limiter.admitted();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        for _ in 0..120 {
            limiter.lower(Instant::now());
        }
        assert!(layer.current_rps().is_infinite());
        limiter.lower(Instant::now());
        assert_eq!(layer.current_rps(), 2.0);
        // Answers to calls sent before carry no news; a later refusal sets it again from
        // what was admitted, never higher.
        limiter.lower(start);
        assert_eq!(layer.current_rps(), 2.0);
        // Each quiet minute: a tenth more; past eight times the start: no limit.
        let mut rates = Vec::new();
        for _ in 0..25 {
            tokio::time::advance(LOWERED_FOR).await;
            limiter.slot();
            rates.push(layer.current_rps());
        }
        assert!((rates[0] - 2.2).abs() < 1e-9, "{rates:?}");
        assert!(rates.windows(2).all(|w| w[1] > w[0] || w[1].is_infinite()));
        assert!(rates.last().unwrap().is_infinite(), "{rates:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn calls_in_flight_count_as_admitted_so_random_refusals_never_limit() {
        // A thousand WaitOperations parked at the server, 30 % of them refused at once:
        // the server admitted most of them, though none has answered yet.
        let layer = RateLimitLayer::adaptive();
        let limiter = &layer.limiter;
        let parked: Vec<InFlight> = (0..700).map(|_| InFlight::new(limiter.clone())).collect();
        for _ in 0..300 {
            limiter.lower(Instant::now());
        }
        assert!(layer.current_rps().is_infinite());
        assert!(!limiter.limited.load(Ordering::Relaxed));
        // Once they are answered and the server refuses more than it admitted: limited.
        drop(parked);
        for _ in 0..700 {
            limiter.admitted();
        }
        for _ in 0..401 {
            limiter.lower(Instant::now());
        }
        assert!((layer.current_rps() - 700.0 / 60.0).abs() < 1e-9);
    }

    /// A service answering every call at once with `grpc-status` `code`.
    fn answering(
        code: i32,
    ) -> impl Service<
        http::Request<Body>,
        Response = http::Response<Body>,
        Error = tower::BoxError,
        Future = std::future::Ready<Result<http::Response<Body>, tower::BoxError>>,
    > + Clone {
        tower::service_fn(move |_: http::Request<Body>| {
            let response = http::Response::builder()
                .header("grpc-status", code.to_string())
                .body(Body::empty())
                .map_err(tower::BoxError::from);
            std::future::ready(response)
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_goes_in_its_slot_with_or_without_poll_ready_and_its_answer_counts() {
        let layer = RateLimitLayer::new(1.0, 1);
        let mut refused = layer.layer(answering(8));
        let mut admitted = layer.layer(answering(0));
        let start = Instant::now();
        // As tower's contract has it: the slot is waited for in `poll_ready`.
        let response = refused
            .ready()
            .await
            .unwrap()
            .call(http::Request::new(Body::empty()));
        assert_eq!(
            layer.limiter.in_flight.load(Ordering::Relaxed),
            0,
            "counted only if adaptive"
        );
        let response = response.await.unwrap();
        assert_eq!(
            grpc_status(response.headers()),
            Some(tonic::Code::ResourceExhausted)
        );
        assert_eq!(layer.current_rps(), 0.5, "a quota error halves the rate");
        // Called without `poll_ready`: the call waits for its slot itself, the one after the
        // first (1 s later, at the rate in force when that was taken).
        admitted
            .call(http::Request::new(Body::empty()))
            .await
            .unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
        // Adaptive: a call counts as in flight until answered.
        let layer = RateLimitLayer::adaptive();
        let mut service = layer.layer(answering(0));
        let call = service
            .ready()
            .await
            .unwrap()
            .call(http::Request::new(Body::empty()));
        assert_eq!(layer.limiter.in_flight.load(Ordering::Relaxed), 1);
        call.await.unwrap();
        assert_eq!(layer.limiter.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(layer.limiter.admitted.total(Instant::now()), 1);
        // A call dropped unanswered is no longer in flight.
        let call = service
            .ready()
            .await
            .unwrap()
            .call(http::Request::new(Body::empty()));
        drop(call);
        assert_eq!(layer.limiter.in_flight.load(Ordering::Relaxed), 0);
    }

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
        layer.limiter.lower(Instant::now());
        assert_eq!(layer.current_rps(), 5.0);
        tokio::time::sleep(Duration::from_millis(1)).await;
        layer.limiter.lower(Instant::now());
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

    #[tokio::test(start_paused = true)]
    async fn only_calls_sent_after_a_halving_halve_again_and_never_below_an_eighth() {
        let layer = RateLimitLayer::new(80.0, 1);
        let before = Instant::now();
        tokio::time::sleep(Duration::from_millis(1)).await;
        layer.limiter.lower(before);
        assert_eq!(layer.current_rps(), 40.0);
        // Answers to calls sent at the old rate: no news.
        for _ in 0..10 {
            layer.limiter.lower(before);
        }
        assert_eq!(layer.current_rps(), 40.0);
        // Calls sent after it keep halving, down to the floor and no further.
        let mut rates = Vec::new();
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            layer.limiter.lower(Instant::now());
            rates.push(layer.current_rps());
        }
        assert_eq!(rates, [20.0, 10.0, 10.0, 10.0, 10.0, 10.0]);
        // Still at the floor, each refusal holds the lowered rate for another minute.
        tokio::time::sleep(LOWERED_FOR - Duration::from_millis(1)).await;
        layer.limiter.slot();
        assert_eq!(layer.current_rps(), 10.0);
        tokio::time::sleep(Duration::from_millis(1)).await;
        layer.limiter.slot();
        assert_eq!(layer.current_rps(), 20.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tiny_limit_floors_at_one_call_a_minute() {
        for max_rps in [0.05, 0.0] {
            let layer = RateLimitLayer::new(max_rps, 1);
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                layer.limiter.lower(Instant::now());
            }
            assert!(
                (layer.current_rps() - 1.0 / 60.0).abs() < 1e-12,
                "{max_rps}"
            );
        }
    }
}
