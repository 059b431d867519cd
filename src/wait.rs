//! Waiting for operations to finish: WaitOperation first, polling GetOperation as fallback.
//!
//! # How a wait proceeds
//!
//! - **Wait path.** WaitOperation is called with `timeout = min(time left, wait_rpc_cap)`.
//!   The server may answer early and not done (it is best effort); the waiter then calls
//!   again, but answers that come back not done sooner than `min_wait_interval` are spaced
//!   by the polling backoff, so a server that always answers at once is never hammered.
//!   DEADLINE_EXCEEDED from the Wait call itself means "not yet".
//! - **Fallback.** In [`WaitStrategy::Auto`], the first UNIMPLEMENTED answer switches to
//!   polling, and the client remembers it: its later waits (and its clones') poll at once.
//!   Only one wait per client probes; waits that start meanwhile wait for the probe's answer
//!   (up to `min_wait_interval`, after which the server has plainly accepted the call).
//! - **Polling** calls GetOperation after each delay of `poll_backoff` (1 s, ×1.5, up to
//!   30 s, each jittered to [50 %, 100 %]).
//! - **Faults.** UNAVAILABLE, connection failures, CANCELLED streams and DEADLINE_EXCEEDED
//!   are retried after the next backoff delay (or the delay a `google.rpc.RetryInfo` detail
//!   asks for); the operation is never lost. Anything else (NOT_FOUND after a delete,
//!   PERMISSION_DENIED, UNAUTHENTICATED, …) ends the wait with that error.
//! - **Deadline.** Every sleep and RPC is bounded by [`WaitOptions::timeout`]. Running out
//!   gives [`Error::Timeout`] with the last snapshot; nothing is cancelled on the server.
//! - **No hidden tasks.** A wait is a plain future: dropping it stops its RPCs at once.
//!   [`wait_stream`] and [`wait_all`] drive many waits on the caller's task, on one channel,
//!   with at most [`WaitOptions::max_in_flight_rpcs`] RPCs in flight.
//!
//! ```
//! # #[cfg(feature = "testing")]
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> longrunning::Result<()> {
//! use std::time::Duration;
//! use longrunning::testing::FakeServer;
//! use longrunning::vision::{ProductSearch, pb};
//! use longrunning::wait::WaitOptions;
//!
//! let fake = FakeServer::start().await?;
//! let mut op = ProductSearch::new(fake.client())
//!     .purge_products(pb::PurgeProductsRequest {
//!         parent: "projects/p/locations/us-west1".into(),
//!         target: Some(pb::purge_products_request::Target::DeleteOrphanProducts(true)),
//!         force: true,
//!     })
//!     .await?;
//! let options = WaitOptions { timeout: Some(Duration::from_secs(600)), ..WaitOptions::default() };
//! let outcome = op.wait(&options).await?;
//! assert!(outcome.echoed_request.is_some());
//! # Ok(()) }
//! # #[cfg(not(feature = "testing"))]
//! # fn main() {}
//! ```

use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use prost::{Message, Name};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::backoff::{Backoff, Schedule};
use crate::client::{OperationsClient, RawOperation, WaitSupport};
use crate::error::{Code, Error, Result};
use crate::operation::{Operation, OperationResponse, decode_result, unseen};

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
    /// WaitOperation answers that come back not done sooner than this are spaced by the
    /// polling backoff (default 250 ms).
    pub min_wait_interval: Duration,
    /// The delays between polls, and between retries after faults (default 1 s, ×1.5, up
    /// to 30 s, jittered to [50 %, 100 %]).
    pub poll_backoff: Backoff,
    /// For [`wait_stream`] and [`wait_all`]: the most RPCs in flight at once (default 1,000).
    pub max_in_flight_rpcs: usize,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            timeout: Some(Duration::from_secs(24 * 60 * 60)),
            strategy: WaitStrategy::Auto,
            wait_rpc_cap: Duration::from_secs(60),
            min_wait_interval: Duration::from_millis(250),
            poll_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 1.5),
            max_in_flight_rpcs: 1000,
        }
    }
}

/// The in-flight budget of a batch of waits: `all` bounds every RPC; long calls must also
/// take one of `long`, which leaves a tenth of the budget (at least one) to short calls.
pub(crate) struct Budget {
    all: Arc<Semaphore>,
    long: Arc<Semaphore>,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        let limit = limit.max(1);
        let reserve = (limit / 10).max(1);
        Arc::new(Budget {
            all: Arc::new(Semaphore::new(limit)),
            long: Arc::new(Semaphore::new(limit - reserve)),
        })
    }
}

/// One RPC a wait may send next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// WaitOperation; `probe` when this wait is the client's one probe.
    Wait { probe: bool },
    /// GetOperation.
    Poll,
}

/// The engine behind every wait: hands out successively fresher snapshots of one operation.
pub(crate) struct Waiter {
    client: OperationsClient,
    options: WaitOptions,
    last: RawOperation,
    /// Whether `last` just came from the server (a poll should then sleep before asking).
    fresh: bool,
    /// A delay to keep before the next WaitOperation (after a quick, not-done answer).
    spacing: Option<Duration>,
    schedule: Schedule,
    started: Instant,
    deadline: Option<Instant>,
    rpcs: u32,
    budget: Option<Arc<Budget>>,
    /// Fetch the next snapshot with GetOperation whatever the strategy (a watcher's first
    /// look must not block until the operation is done).
    poll_next: bool,
}

impl Waiter {
    /// A wait from `last`, a snapshot that is `fresh` if it just came from the server.
    pub(crate) fn new(
        client: OperationsClient,
        last: RawOperation,
        fresh: bool,
        options: &WaitOptions,
        budget: Option<Arc<Budget>>,
    ) -> Self {
        let started = Instant::now();
        Waiter {
            client,
            options: options.clone(),
            last,
            fresh,
            spacing: None,
            schedule: Schedule::new(options.poll_backoff),
            started,
            deadline: options.timeout.and_then(|t| started.checked_add(t)),
            rpcs: 0,
            budget,
            poll_next: false,
        }
    }

    pub(crate) fn last(&self) -> &RawOperation {
        &self.last
    }

    pub(crate) fn into_last(self) -> RawOperation {
        self.last
    }

    /// Waits until the operation is done; the final snapshot is then [`last`](Self::last).
    pub(crate) async fn until_done(&mut self) -> Result<()> {
        let span = tracing::debug_span!(
            "wait",
            operation = %self.last.name,
            strategy = ?self.options.strategy,
            rpcs = tracing::field::Empty,
        );
        let outcome = async {
            while !self.last.done {
                self.next_snapshot().await?;
            }
            Ok(())
        }
        .instrument(span.clone())
        .await;
        span.record("rpcs", self.rpcs);
        outcome
    }

    /// Replaces `last` with a fresher snapshot from the server, retrying faults.
    pub(crate) async fn next_snapshot(&mut self) -> Result<()> {
        loop {
            let mut step = self.choose_step().await?;
            let support = self.client.wait_support().clone();
            // Held across the call: if this wait is dropped mid-probe, or polls this round
            // instead, the next wait probes again.
            let _probe =
                matches!(step, Step::Wait { probe: true }).then(|| ProbeGuard(support.clone()));
            let mut slots = Vec::new();
            if matches!(step, Step::Wait { .. }) {
                match self.admit_long_call().await? {
                    Some(taken) => slots = taken,
                    // Every long-call slot is taken: poll this round, never queue for one.
                    None => step = Step::Poll,
                }
            }
            let answer = match step {
                Step::Poll => self.poll().await?,
                Step::Wait { .. } => {
                    let answer = self.wait_rpc(slots).await?;
                    record_wait_support(&support, &answer);
                    answer
                }
            };
            match answer {
                Ok(op) => {
                    self.last = op;
                    self.fresh = true;
                    self.poll_next = false;
                    return Ok(());
                }
                Err(err) => self.absorb(err, step).await?,
            }
        }
    }

    /// Decides the next RPC, probing WaitOperation support once per client in `Auto`.
    async fn choose_step(&self) -> Result<Step> {
        let support = self.client.wait_support();
        if self.poll_next {
            return Ok(Step::Poll);
        }
        match self.options.strategy {
            WaitStrategy::Poll => return Ok(Step::Poll),
            WaitStrategy::Wait => return Ok(Step::Wait { probe: false }),
            WaitStrategy::Auto => {}
        }
        loop {
            let current = *support.borrow();
            match current {
                WaitSupport::Supported => return Ok(Step::Wait { probe: false }),
                WaitSupport::Unsupported => return Ok(Step::Poll),
                WaitSupport::Unknown => {
                    let claimed = support.send_if_modified(|state| {
                        let unknown = *state == WaitSupport::Unknown;
                        if unknown {
                            *state = WaitSupport::Probing;
                        }
                        unknown
                    });
                    if claimed {
                        return Ok(Step::Wait { probe: true });
                    }
                }
                WaitSupport::Probing => {
                    // A server without WaitOperation answers at once; one that is still
                    // busy with the probe after this long has accepted it.
                    let mut answer = support.subscribe();
                    let resolved = answer.wait_for(|state| *state != WaitSupport::Probing);
                    let grace = self.options.min_wait_interval;
                    if self
                        .bounded(tokio::time::timeout(grace, resolved))
                        .await?
                        .is_err()
                    {
                        return Ok(Step::Wait { probe: false });
                    }
                }
            }
        }
    }

    /// The slots a WaitOperation needs: one of the pool's long-call slots (if the client
    /// runs on a [`ChannelPool`](crate::pool::ChannelPool)) and, in a batch, one of its
    /// long-call permits and one of its in-flight permits. In `Auto` they are taken only if
    /// free (`None` otherwise: poll instead); a forced Wait strategy queues for them.
    async fn admit_long_call(&self) -> Result<Option<Vec<OwnedSemaphorePermit>>> {
        let queue = self.options.strategy == WaitStrategy::Wait;
        let mut semaphores = Vec::new();
        if let Some(slots) = self.client.long_call_slots() {
            semaphores.push(slots.clone());
        }
        if let Some(budget) = &self.budget {
            if !queue {
                semaphores.push(budget.long.clone());
            }
            semaphores.push(budget.all.clone());
        }
        let mut permits = Vec::with_capacity(semaphores.len());
        for semaphore in semaphores {
            let permit = if queue {
                self.bounded(semaphore.acquire_owned()).await?.ok()
            } else {
                semaphore.try_acquire_owned().ok()
            };
            match permit {
                Some(permit) => permits.push(permit),
                None => return Ok(None),
            }
        }
        Ok(Some(permits))
    }

    /// One GetOperation, after the polling delay if the last snapshot is fresh.
    async fn poll(&mut self) -> Result<Result<RawOperation>> {
        if self.fresh {
            let delay = self.schedule.next_delay();
            self.sleep(delay).await?;
        }
        let client = self.client.clone();
        let name = self.last.name.clone();
        let answer = self
            .rpc(async move { client.get_with(&name, false).await }, None)
            .await?;
        if let Ok(op) = &answer {
            tracing::debug!(rpc = "GetOperation", done = op.done, "polled");
        }
        Ok(answer)
    }

    /// One WaitOperation of `min(time left, cap)`; not-done answers that came back quickly
    /// leave a spacing delay for the next call.
    async fn wait_rpc(&mut self, slots: Vec<OwnedSemaphorePermit>) -> Result<Result<RawOperation>> {
        if let Some(delay) = self.spacing.take() {
            self.sleep(delay).await?;
        }
        let now = Instant::now();
        let left = self
            .deadline
            .map_or(Duration::MAX, |d| d.saturating_duration_since(now));
        let timeout = left.min(self.options.wait_rpc_cap);
        let client = self.client.clone();
        let name = self.last.name.clone();
        let answer = self
            .rpc(
                async move { client.wait(&name, timeout).await },
                Some(slots),
            )
            .await?;
        let quick = now.elapsed() < self.options.min_wait_interval;
        match &answer {
            Ok(op) => {
                tracing::debug!(rpc = "WaitOperation", done = op.done, "waited");
                if !op.done && quick {
                    self.spacing = Some(self.schedule.next_delay());
                }
            }
            Err(err) if err.code() == Some(Code::DeadlineExceeded) && quick => {
                self.spacing = Some(self.schedule.next_delay());
            }
            Err(_) => {}
        }
        Ok(answer)
    }

    /// Decides what an RPC error means for the wait: go on (after a delay), or end it.
    async fn absorb(&mut self, err: Error, step: Step) -> Result<()> {
        let code = err.code();
        tracing::debug!(error = %err, "rpc failed during wait");
        if code == Some(Code::Unimplemented) && step != Step::Poll {
            if self.options.strategy == WaitStrategy::Auto {
                // Fall back to polling now; the snapshot in hand may be old.
                self.fresh = false;
                return Ok(());
            }
            return Err(err);
        }
        if code == Some(Code::DeadlineExceeded) && step != Step::Poll {
            // The Wait call outlived its own deadline: not done yet.
            return Ok(());
        }
        let retry_delay = err.status().and_then(|status| status.retry_delay());
        let transient = matches!(
            code,
            Some(Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled)
        ) || (code == Some(Code::ResourceExhausted) && retry_delay.is_some());
        if !transient {
            return Err(err);
        }
        let delay = retry_delay.unwrap_or_else(|| self.schedule.next_delay());
        self.sleep(delay).await?;
        self.fresh = false;
        self.spacing = None;
        Ok(())
    }

    /// Runs one RPC under the deadline and the batch's in-flight limit, counting it.
    /// `admitted` are the permits a long call already holds; a short call queues for one.
    async fn rpc<T>(
        &mut self,
        call: impl Future<Output = Result<T>>,
        admitted: Option<Vec<OwnedSemaphorePermit>>,
    ) -> Result<Result<T>> {
        let permits = match (admitted, &self.budget) {
            (Some(permits), _) => permits,
            (None, Some(budget)) => {
                let all = budget.all.clone();
                self.bounded(all.acquire_owned())
                    .await?
                    .into_iter()
                    .collect()
            }
            (None, None) => Vec::new(),
        };
        self.rpcs = self.rpcs.saturating_add(1);
        let answer = self.bounded(call).await;
        drop(permits);
        answer
    }

    async fn sleep(&self, delay: Duration) -> Result<()> {
        self.bounded(tokio::time::sleep(delay)).await
    }

    /// Runs `future` until the wait's deadline; past it, [`Error::Timeout`].
    async fn bounded<T>(&self, future: impl Future<Output = T>) -> Result<T> {
        match self.deadline {
            None => Ok(future.await),
            Some(deadline) => tokio::time::timeout_at(deadline, future)
                .await
                .map_err(|_| self.timeout()),
        }
    }

    fn timeout(&self) -> Error {
        Error::Timeout {
            name: self.last.name.clone(),
            last: Box::new(self.last.clone()),
            elapsed: self.started.elapsed(),
            rpcs: self.rpcs,
        }
    }
}

/// Records what a WaitOperation answer says about the server's support.
fn record_wait_support(support: &watch::Sender<WaitSupport>, answer: &Result<RawOperation>) {
    let learnt = match answer {
        Ok(_) => WaitSupport::Supported,
        Err(err) if err.code() == Some(Code::Unimplemented) => WaitSupport::Unsupported,
        Err(_) => return,
    };
    support.send_if_modified(|state| {
        let changed = *state != learnt;
        *state = learnt;
        changed
    });
}

/// Held by the wait that probes WaitOperation support; dropped while the probe is still
/// unresolved (the wait was dropped, or its call failed), it lets the next wait probe.
struct ProbeGuard(Arc<watch::Sender<WaitSupport>>);

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        self.0.send_if_modified(|state| {
            let stuck = *state == WaitSupport::Probing;
            if stuck {
                *state = WaitSupport::Unknown;
            }
            stuck
        });
    }
}

impl OperationsClient {
    /// Waits for the operation `name` to finish and returns its final snapshot (an operation
    /// that failed is still a returned snapshot: its `result` holds the error).
    pub async fn wait_for(&self, name: &str, options: &WaitOptions) -> Result<RawOperation> {
        let mut waiter = Waiter::new(self.clone(), unseen(name)?, false, options, None);
        waiter.until_done().await?;
        Ok(waiter.into_last())
    }

    /// One waiter per name, sharing one in-flight budget; a bad name gives its error instead.
    fn waiters_by_name<I>(
        &self,
        names: I,
        options: &WaitOptions,
    ) -> impl Iterator<Item = (String, Result<Waiter>)> + use<'_, I>
    where
        I: IntoIterator<Item = String>,
    {
        let budget = Budget::new(options.max_in_flight_rpcs);
        let options = options.clone();
        names.into_iter().map(move |name| {
            let waiter = unseen(&name)
                .map(|raw| Waiter::new(self.clone(), raw, false, &options, Some(budget.clone())));
            (name, waiter)
        })
    }

    /// Waits for many operations by name on this client's channel, yielding each name with
    /// its final snapshot as it finishes, with at most `options.max_in_flight_rpcs` RPCs in
    /// flight. Bad names come back at once as [`Error::InvalidName`].
    pub fn wait_for_each<I>(
        &self,
        names: I,
        options: &WaitOptions,
    ) -> impl Stream<Item = (String, Result<RawOperation>)> + Send + use<I>
    where
        I: IntoIterator<Item = String>,
    {
        self.waiters_by_name(names, options)
            .map(|(name, start)| async move {
                let mut waiter = match start {
                    Ok(waiter) => waiter,
                    Err(err) => return (name, Err(err)),
                };
                let outcome = waiter.until_done().await;
                (name, outcome.map(|()| waiter.into_last()))
            })
            .collect::<FuturesUnordered<_>>()
    }
}

impl<R: OperationResponse, M> Operation<R, M> {
    /// Waits until the operation is done and returns its decoded result. The handle follows
    /// along: after a [`Error::Timeout`] it holds the last snapshot, and waiting again
    /// resumes.
    pub async fn wait(&mut self, options: &WaitOptions) -> Result<R> {
        self.wait_limited(options, None).await
    }

    async fn wait_limited(
        &mut self,
        options: &WaitOptions,
        budget: Option<Arc<Budget>>,
    ) -> Result<R> {
        let (raw, fetched) = self.take_raw();
        let mut waiter = Waiter::new(self.client().clone(), raw, fetched, options, budget);
        let outcome = waiter.until_done().await;
        let fetched = fetched || waiter.rpcs > 0;
        self.set_raw(waiter.into_last(), fetched);
        outcome?;
        decode_result(self.raw())
    }
}

/// What [`Operation::watch`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress<R, M> {
    /// Still running: the first snapshot, then each time the metadata changes.
    Running {
        /// The decoded metadata (`None` if the server sent none).
        metadata: Option<M>,
    },
    /// Finished with a response. Always the last item.
    Done {
        /// The final metadata.
        metadata: Option<M>,
        /// The decoded response.
        response: R,
    },
}

impl<R, M> Operation<R, M>
where
    R: OperationResponse + Send + 'static,
    M: Message + Name + Default + Send + 'static,
{
    /// A stream of typed progress reports: the current state, then one each time the
    /// metadata changes, ending with [`Progress::Done`] or with the error that ended the
    /// wait (a failed or cancelled operation, a timeout, an RPC error). Drive a progress bar
    /// from it.
    pub fn watch(
        self,
        options: &WaitOptions,
    ) -> impl Stream<Item = Result<Progress<R, M>>> + Send + use<R, M> {
        let client = self.client().clone();
        let fetched = self.is_fetched();
        let waiter = Waiter::new(client.clone(), self.into_raw(), fetched, options, None);
        snapshots(waiter, !fetched).scan(false, move |ended, snapshot| {
            if *ended {
                return std::future::ready(None);
            }
            let report = snapshot.and_then(|raw| {
                let handle = Operation::<R, M>::from_raw(client.clone(), raw);
                let metadata = handle.metadata()?;
                if handle.done() {
                    Ok(Progress::Done {
                        metadata,
                        response: handle.result()?,
                    })
                } else {
                    Ok(Progress::Running { metadata })
                }
            });
            *ended = !matches!(report, Ok(Progress::Running { .. }));
            std::future::ready(Some(report))
        })
    }
}

/// The snapshots of one wait: the current one (fetched with GetOperation first if
/// `need_fetch`), then each whose metadata differs from the last one yielded, and the done
/// one last. An error ends it.
fn snapshots(waiter: Waiter, need_fetch: bool) -> impl Stream<Item = Result<RawOperation>> + Send {
    struct State {
        waiter: Waiter,
        need_fetch: bool,
        reported_metadata: Option<Option<prost_types::Any>>,
        finished: bool,
    }
    let mut waiter = waiter;
    // A watcher's first look must not block until the operation is done.
    waiter.poll_next = need_fetch;
    let state = State {
        waiter,
        need_fetch,
        reported_metadata: None,
        finished: false,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        if state.finished {
            return None;
        }
        loop {
            if state.need_fetch
                && let Err(err) = state.waiter.next_snapshot().await
            {
                state.finished = true;
                return Some((Err(err), state));
            }
            state.need_fetch = true;
            let last = state.waiter.last();
            if last.done {
                state.finished = true;
                return Some((Ok(last.clone()), state));
            }
            if state.reported_metadata.as_ref() != Some(&last.metadata) {
                state.reported_metadata = Some(last.metadata.clone());
                return Some((Ok(last.clone()), state));
            }
        }
    })
}

impl OperationsClient {
    /// Watches many operations by name on this client's channel: yields a name with a
    /// snapshot each time that operation's metadata changes (its current state first), and
    /// its done snapshot, or the error that ended its wait, last. At most
    /// `options.max_in_flight_rpcs` RPCs are in flight. Bad names come back at once as
    /// [`Error::InvalidName`]. A CLI or dashboard can draw progress from it.
    pub fn watch_each<I>(
        &self,
        names: I,
        options: &WaitOptions,
    ) -> impl Stream<Item = (String, Result<RawOperation>)> + Send + use<I>
    where
        I: IntoIterator<Item = String>,
    {
        let streams = self
            .waiters_by_name(names, options)
            .map(|(name, start)| match start {
                Ok(waiter) => snapshots(waiter, true)
                    .map(move |item| (name.clone(), item))
                    .boxed(),
                Err(err) => {
                    futures_util::stream::once(std::future::ready((name, Err(err)))).boxed()
                }
            });
        futures_util::stream::select_all(streams)
    }
}

/// Waits for many typed operations at once, yielding each finished handle with its result
/// as it completes. All waits run on the caller's task, share the handles' channel, and keep
/// at most `options.max_in_flight_rpcs` RPCs in flight.
pub fn wait_stream<R, M, I>(
    operations: I,
    options: &WaitOptions,
) -> impl Stream<Item = (Operation<R, M>, Result<R>)> + use<R, M, I>
where
    R: OperationResponse,
    I: IntoIterator<Item = Operation<R, M>>,
{
    indexed_waits(operations, options).map(|(_, op, result)| (op, result))
}

/// A finished wait: the handle with its last snapshot, and its result.
pub type Finished<R, M> = (Operation<R, M>, Result<R>);

/// [`wait_stream`], collected in the order the operations were given.
pub async fn wait_all<R, M>(
    operations: impl IntoIterator<Item = Operation<R, M>>,
    options: &WaitOptions,
) -> Vec<(Operation<R, M>, Result<R>)>
where
    R: OperationResponse,
{
    let mut waits = indexed_waits(operations, options);
    let mut finished: Vec<Option<Finished<R, M>>> = Vec::new();
    finished.resize_with(waits.len(), || None);
    while let Some((index, op, result)) = waits.next().await {
        finished[index] = Some((op, result));
    }
    finished.into_iter().flatten().collect()
}

/// One future per operation, with its index, sharing one in-flight limit.
fn indexed_waits<R, M, I>(
    operations: I,
    options: &WaitOptions,
) -> FuturesUnordered<impl Future<Output = (usize, Operation<R, M>, Result<R>)> + use<R, M, I>>
where
    R: OperationResponse,
    I: IntoIterator<Item = Operation<R, M>>,
{
    let budget = Budget::new(options.max_in_flight_rpcs);
    operations
        .into_iter()
        .enumerate()
        .map(|(index, mut op)| {
            let budget = budget.clone();
            let options = options.clone();
            async move {
                let result = op.wait_limited(&options, Some(budget)).await;
                (index, op, result)
            }
        })
        .collect()
}
