//! The one loop that executes a wait's [decisions](super::decide): it asks the plan what
//! to do, does it (one sleep site; each RPC sent once), and turns what happened into the
//! next event. It decides nothing itself.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument as _;

use super::decide::{Decision, Event, Facts, Plan, Probe, ProbeStyle, Rpc};
use super::options::{WaitOptions, WaitStrategy};
use super::roster::{Look, Roster, Seat};
use crate::client::{OperationsClient, Outcome, RawOperation};
use crate::error::{Error, Result};
use crate::status::Code;
use crate::transport::LongCall;

/// What the waits of one batch share: the in-flight budget (GetOperations take one permit
/// each) and the roster that polls their collections by listing them.
pub(crate) struct Batch {
    budget: Semaphore,
    roster: Roster,
}

impl Batch {
    /// For waits on `names`, with `options`.
    pub(crate) fn new<'a>(
        names: impl IntoIterator<Item = &'a str>,
        options: &WaitOptions,
    ) -> Arc<Self> {
        Arc::new(Batch {
            budget: Semaphore::new(options.max_in_flight_rpcs.max(1)),
            roster: Roster::new(names, options.poll_backoff),
        })
    }
}

/// What kind of wait this is: how it probes, and what it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A wait on its own (`wait_for`, `Operation::wait`): its probe is its own Wait.
    Single,
    /// One of a batch started together (`wait_all`, `wait_stream`): its probe asks for an
    /// answer at once, and the others wait for that verdict.
    Batch,
    /// A typed watch (`Operation::watch`): looks with a GetOperation first.
    Watch,
    /// One of `watch_each`'s: reports each retry and stall; `batch` if started with others.
    WatchEach { batch: bool },
}

impl Mode {
    fn probe_style(self) -> ProbeStyle {
        match self {
            Mode::Batch | Mode::WatchEach { batch: true } => ProbeStyle::Quick,
            _ => ProbeStyle::Blocking,
        }
    }

    fn reports(self) -> bool {
        matches!(self, Mode::WatchEach { .. })
    }
}

/// How [`Waiter::next_answer`] returned.
pub(crate) enum Progressed {
    /// The server answered; `last` is the answer.
    Answered,
    /// An RPC failed and the wait goes on after `delay` (only in [`Mode::WatchEach`]).
    Retrying {
        error: Error,
        delay: std::time::Duration,
    },
    /// The metadata has not changed for `unchanged_for` (only in [`Mode::WatchEach`]).
    Stalled { unchanged_for: std::time::Duration },
    /// The server answered WaitOperation UNIMPLEMENTED and the wait polls from now on (only
    /// in [`Mode::WatchEach`], said by the wait that found out).
    Polling,
}

/// Whether the operation's metadata has been quiet too long, and whether that was said.
#[derive(Debug, Clone, Copy)]
enum Stall {
    /// The metadata last changed then.
    Quiet { since: Instant },
    /// Said; a change of metadata starts a new watch.
    Reported,
}

/// One wait: hands out successively fresher snapshots of one operation.
pub(crate) struct Waiter {
    client: OperationsClient,
    options: WaitOptions,
    mode: Mode,
    plan: Plan,
    last: RawOperation,
    /// What the plan decides on next.
    event: Event,
    /// The last failure, which a `Fail` decision ends the wait with.
    failure: Option<Error>,
    /// A call decided but not yet made (a retry was reported first): when, and which.
    planned: Option<(Instant, Rpc)>,
    started: Instant,
    deadline: Option<Instant>,
    rpcs: u32,
    batch: Option<Arc<Batch>>,
    /// The wait's place in its collection's listing rounds, if its batch lists it.
    seat: Option<Seat>,
    stall: Stall,
    /// This wait found WaitOperation missing and polls now: said once, when reporting.
    fell_back: bool,
}

impl Waiter {
    /// A wait from `last`, a snapshot that is `fresh` if it just came from the server.
    pub(crate) fn new(
        client: OperationsClient,
        last: RawOperation,
        fresh: bool,
        options: &WaitOptions,
        mode: Mode,
        batch: Option<Arc<Batch>>,
    ) -> Self {
        let started = Instant::now();
        let seat = batch
            .as_ref()
            .and_then(|batch| batch.roster.seat(&last.name));
        let policy = client.retry_policy();
        let mut plan = Plan::new(
            options,
            policy.backoff,
            policy.max_attempts,
            mode.probe_style(),
        );
        if mode == Mode::Watch {
            plan = plan.looking_first();
        }
        let plan = plan.retrying_silence(policy.retry_codes.contains(&Code::DeadlineExceeded));
        Waiter {
            client,
            options: options.clone(),
            mode,
            plan,
            last,
            event: Event::Start { fresh },
            failure: None,
            planned: None,
            started,
            deadline: options.timeout.and_then(|t| started.checked_add(t)),
            rpcs: 0,
            seat,
            batch,
            stall: Stall::Quiet { since: started },
            fell_back: false,
        }
    }

    pub(crate) fn last(&self) -> &RawOperation {
        &self.last
    }

    pub(crate) fn into_last(self) -> RawOperation {
        self.last
    }

    /// Whether `last` came from the server.
    pub(crate) fn has_answer(&self) -> bool {
        self.plan.answered()
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
            while !(self.has_answer() && self.last.done) {
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
        if let Some(unchanged_for) = self.stall() {
            return Ok(Progressed::Stalled { unchanged_for });
        }
        loop {
            let (wake, rpc) = match self.planned.take() {
                Some(planned) => planned,
                None => {
                    let now = Instant::now();
                    let facts = Facts {
                        probe: self.client.waits().wait_support().knowledge(),
                        now,
                        epoch: self.client.waits().epoch(),
                        deadline: self.deadline,
                    };
                    match self.plan.decide(self.event, facts) {
                        Decision::Finish => return Ok(Progressed::Answered),
                        Decision::Fail => return Err(self.take_failure()),
                        Decision::TimedOut => return Err(self.timeout()),
                        Decision::CancelThenLook => {
                            self.event = Box::pin(self.cancel_then_look()).await;
                            continue;
                        }
                        Decision::AwaitVerdict => {
                            let support = self.client.waits().clone();
                            let verdict = support.wait_support().learnt();
                            self.event = match self.bounded(verdict).await {
                                Some(_) => Event::ProbeMoved,
                                None => Event::DeadlinePassed,
                            };
                            continue;
                        }
                        Decision::IdleUntilDeadline => {
                            // Decided only with a deadline: the sleep ends at it.
                            let deadline = self.deadline.unwrap_or(now);
                            self.event = self
                                .sleep_until(deadline)
                                .await
                                .unwrap_or(Event::DeadlinePassed);
                            continue;
                        }
                        Decision::Call { after, rpc } => {
                            let wake = now + after;
                            // Each failure is reported once, at the retry it was decided
                            // into; the wait keeps it, to end with it if it comes to that.
                            if self.mode.reports()
                                && matches!(self.event, Event::Failed { .. })
                                && let Some(error) = self.failure.clone()
                            {
                                self.planned = Some((wake, rpc));
                                return Ok(Progressed::Retrying {
                                    error,
                                    delay: after,
                                });
                            }
                            (wake, rpc)
                        }
                    }
                }
            };
            self.event = match self.sleep_until(wake).await {
                Some(deadline_passed) => deadline_passed,
                None => self.send(rpc).await,
            };
            if matches!(self.event, Event::Answered { .. }) {
                return Ok(Progressed::Answered);
            }
            if std::mem::take(&mut self.fell_back) && self.mode.reports() {
                return Ok(Progressed::Polling);
            }
        }
    }

    /// The one sleep: until `wake`, or [`Event::DeadlinePassed`] if the deadline comes
    /// first (`None` then: slept). One timer, at whichever comes first.
    async fn sleep_until(&self, wake: Instant) -> Option<Event> {
        if wake <= Instant::now() {
            return None;
        }
        match self.deadline {
            Some(deadline) if deadline < wake => {
                tokio::time::sleep_until(deadline).await;
                Some(Event::DeadlinePassed)
            }
            _ => {
                tokio::time::sleep_until(wake).await;
                None
            }
        }
    }

    /// Sends `rpc` once and says what happened.
    async fn send(&mut self, rpc: Rpc) -> Event {
        match rpc {
            Rpc::Get => {
                let sent = Instant::now();
                let client = self.client.clone();
                if let Some(seat) = self.seat.as_mut() {
                    let look = Box::pin(seat.look(&client, &self.last.name));
                    match within(self.deadline, look).await {
                        None => return Event::DeadlinePassed,
                        Some(Look::Listed(op)) => return self.record(rpc, Ok(op), sent),
                        Some(Look::Failed(err)) => return self.record(rpc, Err(err), sent),
                        Some(Look::ByName) => {}
                    }
                }
                let batch = self.batch.clone();
                let _permit = match &batch {
                    // A timer only if no permit is free now.
                    Some(batch) => match batch.budget.try_acquire() {
                        Ok(permit) => Some(permit),
                        Err(_) => match self.bounded(batch.budget.acquire()).await {
                            Some(permit) => permit.ok(),
                            None => return Event::DeadlinePassed,
                        },
                    },
                    None => None,
                };
                self.rpcs = self.rpcs.saturating_add(1);
                let outcome = Box::pin(client.get_once(&self.last.name, self.deadline)).await;
                self.outcome(rpc, outcome, sent)
            }
            Rpc::Wait { timeout, probe } => {
                let waits = self.client.waits().clone();
                let support = waits.wait_support();
                let claim = match probe {
                    None => None,
                    Some(probe) => match support.claim(probe == Probe::Quick) {
                        Some(claim) => Some(claim),
                        None => return Event::ProbeMoved,
                    },
                };
                let long_call = match self.options.strategy {
                    WaitStrategy::Wait => LongCall::Queue,
                    _ => LongCall::IfFree,
                };
                let client = self.client.clone();
                self.rpcs = self.rpcs.saturating_add(1);
                let sent = Instant::now();
                let call = client.wait_once(&self.last.name, timeout, long_call, self.deadline);
                let answer = match Box::pin(call).await {
                    Outcome::Answer(answer) => answer,
                    unanswered => return self.outcome(rpc, unanswered, sent),
                };
                let missing =
                    matches!(&answer, Err(err) if err.code() == Some(Code::Unimplemented));
                match &answer {
                    Ok(_) => support.settle(true),
                    Err(_) if missing => support.settle(false),
                    Err(_) => {}
                }
                drop(claim);
                let event = self.record(rpc, answer, sent);
                if missing && self.options.strategy == WaitStrategy::Auto {
                    // Learning that WaitOperation is missing is no failure to report: the
                    // wait polls from now on, and says so.
                    self.failure = None;
                    self.fell_back = true;
                }
                event
            }
        }
    }

    /// The deadline passed while `rpc` was out. If the server has never answered this
    /// wait, that is the server's silence, not a slow operation: a failure (exit 3 in
    /// `lro`), as a GetOperation that met it would be, not a timeout.
    fn cut_short(&mut self, rpc: Rpc, sent: Instant) -> Event {
        if self.has_answer() {
            return Event::DeadlinePassed;
        }
        let silence = Error::Rpc {
            method: rpc.name(),
            status: crate::status::Status::new(
                Code::DeadlineExceeded,
                format!(
                    "no answer from {} within {:?}, the time the wait had left",
                    self.client.peer(),
                    sent.elapsed()
                ),
            ),
            fault: Some(crate::error::FaultKind::Silent),
        };
        self.record(rpc, Err(silence), sent)
    }

    /// What a call came back with: its answer (or failure), or none because it was refused
    /// a long-call slot or held back by the rate limit past the deadline (nothing sent, so
    /// not counted, and the server was not silent), or cut short by the deadline while out.
    fn outcome(&mut self, rpc: Rpc, outcome: Outcome<RawOperation>, sent: Instant) -> Event {
        match outcome {
            Outcome::Answer(answer) => self.record(rpc, answer, sent),
            Outcome::NoLongCallSlot => {
                self.rpcs = self.rpcs.saturating_sub(1);
                Event::NoLongCallSlot
            }
            Outcome::DeadlineBeforeSending => {
                self.rpcs = self.rpcs.saturating_sub(1);
                Event::DeadlinePassed
            }
            Outcome::DeadlinePassed => self.cut_short(rpc, sent),
        }
    }

    /// After the deadline: CancelOperation, then one look, each under the client's own
    /// per-call deadline.
    async fn cancel_then_look(&mut self) -> Event {
        let name = self.last.name.clone();
        tracing::info!(operation = %name, "deadline passed: cancelling the operation");
        self.rpcs = self.rpcs.saturating_add(2);
        let sent = Instant::now();
        let answer = match self.client.cancel(&name).await {
            Ok(()) => self.client.get(&name).await,
            Err(err) => Err(err),
        };
        self.record(Rpc::Get, answer, sent)
    }

    /// A stall to report now: the metadata unchanged for `stall_after`, said once per stall
    /// (a warning in the log; an item of the stream in [`Mode::WatchEach`]).
    fn stall(&mut self) -> Option<std::time::Duration> {
        let limit = self.options.stall_after?;
        let Stall::Quiet { since } = self.stall else {
            return None;
        };
        let unchanged_for = since.elapsed();
        if !self.has_answer() || self.last.done || unchanged_for < limit {
            return None;
        }
        self.stall = Stall::Reported;
        tracing::warn!(
            operation = %self.last.name,
            unchanged_for = ?unchanged_for,
            "the operation's metadata has not changed"
        );
        self.mode.reports().then_some(unchanged_for)
    }

    /// Keeps an answer, or the failure, and says what happened.
    fn record(&mut self, rpc: Rpc, answer: Result<RawOperation>, sent: Instant) -> Event {
        match answer {
            Ok(op) => {
                if !self.has_answer() || op.metadata != self.last.metadata {
                    self.stall = Stall::Quiet {
                        since: Instant::now(),
                    };
                }
                tracing::debug!(rpc = rpc.name(), done = op.done, "answered");
                let done = op.done;
                self.last = op;
                self.failure = None;
                Event::Answered {
                    rpc,
                    done,
                    took: sent.elapsed(),
                }
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

    /// Runs `future` until the wait's deadline; `None` past it.
    async fn bounded<T>(&self, future: impl Future<Output = T>) -> Option<T> {
        within(self.deadline, future).await
    }

    fn timeout(&self) -> Error {
        Error::Timeout {
            name: self.last.name.clone(),
            last: self.has_answer().then(|| Box::new(self.last.clone())),
            elapsed: self.started.elapsed(),
            rpcs: self.rpcs,
        }
    }
}

/// Runs `future` until `deadline`; `None` past it.
async fn within<T>(deadline: Option<Instant>, future: impl Future<Output = T>) -> Option<T> {
    match deadline {
        None => Some(future.await),
        Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
    }
}
