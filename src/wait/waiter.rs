//! The one loop that executes a wait's [decisions](super::decide): sleep (the only sleep
//! site), send the RPC the plan chose, turn the answer into the next event.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::Instrument as _;

use super::WaitOptions;
use super::coalesce;
use super::decide::{Decision, Event, Plan, Rpc};
use crate::client::{OperationsClient, RawOperation};
use crate::error::{Error, Result};
use crate::latch::Knowledge;
use crate::status::Code;

/// The in-flight budget a batch of waits shares: GetOperations take one permit each.
pub(crate) type Budget = Arc<Semaphore>;

/// How [`Waiter::next_answer`] returned.
pub(crate) enum Progressed {
    /// The server answered; `last` is the answer.
    Answered,
    /// An RPC failed and the wait goes on after `delay` (only when retries are reported).
    Retrying { error: Error, delay: Duration },
    /// The metadata has not changed for `unchanged_for` (only when retries are reported).
    Stalled { unchanged_for: Duration },
}

/// One wait: hands out successively fresher snapshots of one operation.
pub(crate) struct Waiter {
    client: OperationsClient,
    options: WaitOptions,
    plan: Plan,
    last: RawOperation,
    /// Whether `last` came from the server.
    answered: bool,
    /// What the plan decides on next.
    event: Event,
    /// The failure a `Fail` decision ends the wait with.
    failure: Option<Error>,
    started: Instant,
    deadline: Option<Instant>,
    rpcs: u32,
    budget: Option<Budget>,
    /// Whether [`next_answer`](Self::next_answer) returns at each retry, to report it.
    report_retries: bool,
    /// A decision taken but not yet carried out (a retry was reported first).
    planned: Option<(Duration, Rpc)>,
    /// When the metadata last changed, and whether the stall since was reported.
    metadata_since: Instant,
    stall_reported: bool,
    /// Whether CancelOperation was sent after the deadline.
    cancelled: bool,
    /// Whether this wait is one of a batch started together (its probe is then short).
    in_batch: bool,
}

impl Waiter {
    /// A wait from `last`, a snapshot that is `fresh` if it just came from the server.
    pub(crate) fn new(
        client: OperationsClient,
        last: RawOperation,
        fresh: bool,
        options: &WaitOptions,
        budget: Option<Budget>,
    ) -> Self {
        let started = Instant::now();
        let attempts = client.retry_policy().max_attempts;
        Waiter {
            plan: Plan::new(options, attempts),
            client,
            options: options.clone(),
            last,
            answered: fresh,
            event: Event::Start { fresh },
            failure: None,
            started,
            deadline: options.timeout.and_then(|t| started.checked_add(t)),
            rpcs: 0,
            budget,
            report_retries: false,
            planned: None,
            metadata_since: started,
            stall_reported: false,
            cancelled: false,
            in_batch: false,
        }
    }

    /// The same wait, one of a batch started together: if it probes WaitOperation support,
    /// it asks for an answer at once, and the others wait for that verdict.
    pub(crate) fn in_batch(mut self) -> Self {
        self.in_batch = true;
        self
    }

    /// The same wait, returning from [`next_answer`](Self::next_answer) at each retry.
    pub(crate) fn reporting_retries(mut self) -> Self {
        self.report_retries = true;
        self
    }

    pub(crate) fn last(&self) -> &RawOperation {
        &self.last
    }

    pub(crate) fn into_last(self) -> RawOperation {
        self.last
    }

    /// Whether `last` came from the server.
    pub(crate) fn has_answer(&self) -> bool {
        self.answered
    }

    /// The same wait, looking with a GetOperation first (for watches).
    pub(crate) fn looking_first(mut self) -> Self {
        self.plan = self.plan.looking_first();
        self
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
            while !(self.answered && self.last.done) {
                self.next_answer().await?;
            }
            Ok(())
        }
        .instrument(span.clone())
        .await;
        span.record("rpcs", self.rpcs);
        outcome
    }

    /// Runs the loop until the server answers once more (or the wait ends); `last` is then
    /// that answer.
    pub(crate) async fn next_answer(&mut self) -> Result<Progressed> {
        match self.next_answer_in_time().await {
            Err(Error::Timeout { .. }) if self.options.cancel_on_timeout && !self.cancelled => {
                self.cancel_after_timeout().await
            }
            other => other,
        }
    }

    /// After the deadline: CancelOperation, then one look, each under the client's own
    /// per-call deadline. Done now: the outcome is reported as an answer; else the timeout,
    /// with the snapshot after the cancel.
    async fn cancel_after_timeout(&mut self) -> Result<Progressed> {
        self.cancelled = true;
        let name = self.last.name.clone();
        tracing::info!(operation = %name, "deadline passed: cancelling the operation");
        self.rpcs = self.rpcs.saturating_add(2);
        self.client.cancel(&name).await?;
        let after = self.client.get(&name).await?;
        let done = after.done;
        self.last = after;
        self.answered = true;
        if done {
            self.event = Event::Answered {
                rpc: Rpc::Get,
                done,
                quick: false,
            };
            return Ok(Progressed::Answered);
        }
        Err(self.timeout())
    }

    async fn next_answer_in_time(&mut self) -> Result<Progressed> {
        if let Some(unchanged_for) = self.stall() {
            return Ok(Progressed::Stalled { unchanged_for });
        }
        loop {
            let (after, rpc) = match self.planned.take() {
                Some(planned) => planned,
                None => {
                    let knowledge = self.client.wait_support().knowledge();
                    match self.plan.decide(self.event, knowledge) {
                        Decision::Finish => return Ok(Progressed::Answered),
                        Decision::Fail => return Err(self.take_failure()),
                        Decision::Call { after, rpc } => {
                            if self.report_retries
                                && let Some(error) = self.failure.take()
                            {
                                self.planned = Some((after, rpc));
                                return Ok(Progressed::Retrying {
                                    error,
                                    delay: after,
                                });
                            }
                            (after, rpc)
                        }
                    }
                }
            };
            if !after.is_zero() {
                let wake =
                    coalesce::wake_at(self.client.epoch(), Instant::now(), after, self.deadline);
                self.bounded(tokio::time::sleep_until(wake)).await?;
            }
            if let Some(event) = self.send(rpc).await? {
                let answered = matches!(event, Event::Answered { .. });
                self.event = event;
                if answered {
                    return Ok(Progressed::Answered);
                }
            }
        }
    }

    /// Sends `rpc` and describes its outcome; `None` when nothing was sent (the client's
    /// probe settled what the plan assumed: decide again).
    async fn send(&mut self, rpc: Rpc) -> Result<Option<Event>> {
        match rpc {
            Rpc::Get => self.get().await.map(Some),
            Rpc::Wait => self.wait().await,
        }
    }

    async fn get(&mut self) -> Result<Event> {
        self.get_spaced(false).await
    }

    /// A GetOperation; `instead_of_wait` when it stands in for a Wait with no slot free.
    async fn get_spaced(&mut self, instead_of_wait: bool) -> Result<Event> {
        let _permit = match &self.budget {
            Some(budget) => Some(self.bounded(budget.clone().acquire_owned()).await?),
            None => None,
        };
        self.rpcs = self.rpcs.saturating_add(1);
        let client = self.client.clone();
        let answer = self
            .bounded(client.get_with(&self.last.name, false))
            .await?;
        Ok(self.record(Rpc::Get, answer, instead_of_wait))
    }

    /// One WaitOperation of `min(time left, cap)`; the client's probe if nothing is known
    /// yet. Without a free long-call slot
    /// on the pool, a GetOperation goes instead.
    async fn wait(&mut self) -> Result<Option<Event>> {
        let support = self.client.wait_support().clone();
        let auto = self.options.strategy == super::WaitStrategy::Auto;
        let knowledge = support.knowledge();
        let claim = match knowledge {
            // Learnt since the plan chose this Wait (it was decided before the probe's
            // verdict): decide again, now knowing.
            Knowledge::Known(false) if auto => return Ok(None),
            Knowledge::Known(_) => None,
            _ if !auto => None,
            _ => match support.claim(self.in_batch) {
                Some(claim) => Some(claim),
                // A single wait's probe is out, which blocks if WaitOperation works: ask for
                // an answer at once beside it (one more RPC per client), so that this wait
                // and every later one learn the verdict after one round trip, however slow
                // the server.
                None => match support.claim(true) {
                    Some(claim) => Some(claim),
                    None => {
                        // A quick probe is out: its verdict decides this wait's next RPC.
                        self.bounded(support.learnt()).await?;
                        return Ok(None);
                    }
                },
            },
        };
        let Some(_slot) = self.long_call_slot().await? else {
            return self.get_spaced(true).await.map(Some);
        };
        let left = self.deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        // A quick probe (a batch's, or one beside a single wait's blocking probe) asks for no
        // wait at all, so that the verdict (and the first snapshot) comes at once for every
        // wait waiting for it: one extra RPC per client.
        let probe_now = claim.as_ref().is_some_and(|claim| claim.quickly());
        // Asked to answer a little before our own deadline (a tenth of the time left, at
        // most a second), so that a wait that runs out still holds the latest snapshot.
        let timeout = if probe_now {
            Duration::ZERO
        } else {
            self.options
                .wait_rpc_cap
                .min(left.saturating_sub((left / 10).min(Duration::from_secs(1))))
        };
        if !probe_now
            && self.answered
            && timeout < self.options.min_wait_interval.max(Duration::from_secs(1))
        {
            // Too little time left to learn anything new: wait out the deadline.
            self.bounded(std::future::pending::<()>()).await?;
        }
        self.rpcs = self.rpcs.saturating_add(1);
        let sent = Instant::now();
        let client = self.client.clone();
        let answer = self
            .bounded(client.wait_operation(&self.last.name, timeout))
            .await?;
        match &answer {
            Ok(_) => support.settle(true),
            Err(err) if err.code() == Some(Code::Unimplemented) => support.settle(false),
            Err(_) => {}
        }
        drop(claim);
        // A probe answers at once by design: that is not a server that ignores timeouts.
        let quick = !probe_now && sent.elapsed() < self.options.min_wait_interval;
        Ok(Some(self.record(Rpc::Wait, answer, quick)))
    }

    /// A long-call slot of the pool, if the client runs on one: taken only if free in
    /// `Auto` (`None`: poll this round), queued for when the strategy is `Wait`.
    async fn long_call_slot(&self) -> Result<Option<Option<OwnedSemaphorePermit>>> {
        let Some(slots) = self.client.long_call_slots() else {
            return Ok(Some(None));
        };
        if self.options.strategy == super::WaitStrategy::Wait {
            let permit = self.bounded(slots.clone().acquire_owned()).await?;
            return Ok(permit.ok().map(Some));
        }
        Ok(slots.clone().try_acquire_owned().ok().map(Some))
    }

    /// A stall to report now: the metadata unchanged for `stall_after`, said once per stall
    /// (a warning in the log; an item of the stream when retries are reported).
    fn stall(&mut self) -> Option<Duration> {
        let limit = self.options.stall_after?;
        let unchanged_for = self.metadata_since.elapsed();
        if self.stall_reported || !self.answered || self.last.done || unchanged_for < limit {
            return None;
        }
        self.stall_reported = true;
        tracing::warn!(
            operation = %self.last.name,
            unchanged_for = ?unchanged_for,
            "the operation's metadata has not changed"
        );
        self.report_retries.then_some(unchanged_for)
    }

    /// Keeps an answer, or the failure, and says what happened.
    fn record(&mut self, rpc: Rpc, answer: Result<RawOperation>, quick: bool) -> Event {
        match answer {
            Ok(op) => {
                if !self.answered || op.metadata != self.last.metadata {
                    self.metadata_since = Instant::now();
                    self.stall_reported = false;
                }
                tracing::debug!(rpc = rpc.name(), done = op.done, "answered");
                let done = op.done;
                self.last = op;
                self.answered = true;
                self.failure = None;
                Event::Answered { rpc, done, quick }
            }
            Err(err) => {
                tracing::debug!(rpc = rpc.name(), error = %err, "rpc failed during wait");
                let event = Event::Failed {
                    rpc,
                    code: err.code().unwrap_or(Code::Unknown),
                    retry_delay: err.status().and_then(|s| s.retry_delay()),
                    permanent: !matches!(err, Error::Rpc { .. }),
                    answered: matches!(err, Error::Rpc { fault: None, .. }),
                };
                self.failure = Some(err);
                event
            }
        }
    }

    fn take_failure(&mut self) -> Error {
        self.failure.take().unwrap_or_else(|| self.timeout())
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
            last: self.answered.then(|| Box::new(self.last.clone())),
            elapsed: self.started.elapsed(),
            rpcs: self.rpcs,
        }
    }
}
