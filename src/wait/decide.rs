//! The waiter's whole policy: given what just happened and what is known now, what the
//! loop does next. Pure (no clock is read: the time is an input; its only state is the
//! backoff schedules, whose jitter is seedable, and a few counters), so every rule is a row
//! of the table tests below; [`super::waiter`] only executes.
//!
//! | what happened | next |
//! |---|---|
//! | the start, no snapshot from the server yet | a Wait at once (a Get if polling, WaitOperation is known missing, or a watch looks first) |
//! | the start, with a fresh snapshot | a Wait at once; polling: a Get after the poll delay |
//! | an answer, done | finish |
//! | a Wait answered not done after a while | a Wait again at once |
//! | a Wait answered not done quickly (the server does not block) | a Wait after the poll delay |
//! | a Get answered not done | `Auto` with WaitOperation not known missing: a Wait at once (after the poll delay if the Get stood in for a Wait); polling: a Get after the poll delay |
//! | no long-call slot was free for a Wait (the pool refused it; nothing was sent) | a Get at once, standing in for it |
//! | the client's probe changed hands or settled before a planned Wait went out (nothing was sent) | decide the same step again on what is known now, with no new delay |
//! | UNIMPLEMENTED from a Wait | `Auto`: a Get at once; `Wait`: fail |
//! | DEADLINE_EXCEEDED from a Wait once answered | a Wait again (it outlived its own timeout: not done yet) |
//! | UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, ABORTED, RESOURCE_EXHAUSTED | the same RPC after the fault delay (a `RetryInfo` delay if the server gave one) |
//! | no answer at all (refused, reset, silence) before the first answer | the same, after the client's retry delays; the client's attempts in a row: fail, as `get` does |
//! | a certificate the client does not accept, or any other code | fail |
//! | the deadline passed | cancel, then look once (with `cancel_on_timeout`); fail with the last failure if the server never answered; else time out |
//!
//! Which Wait: the client's probe while nobody knows whether the server implements
//! WaitOperation (asking for an answer at once in a batch, or beside another wait's
//! blocking probe; a wait that meets a quick probe out awaits its verdict), else one of
//! `min(wait_rpc_cap, time left less a tenth, at most 1 s)`: asked to answer a little before
//! the deadline, so that a wait that runs out still holds the latest snapshot. Too little
//! time left for a Wait to learn anything new: idle until the deadline.
//!
//! Every delay ends on the [grid](super::coalesce) the client's waits share.

use std::time::Duration;

use tokio::time::Instant;

use super::coalesce;
use super::options::{WaitOptions, WaitStrategy};
use crate::backoff::Schedule;
use crate::latch::Knowledge;
use crate::status::Code;

/// The RPC a wait sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rpc {
    /// GetOperation.
    Get,
    /// WaitOperation asking the server to answer within `timeout`; `probe` if it is the
    /// client's probe of WaitOperation support.
    Wait {
        timeout: Duration,
        probe: Option<Probe>,
    },
}

impl Rpc {
    /// The RPC's name, as logs give it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Rpc::Get => "GetOperation",
            Rpc::Wait { .. } => "WaitOperation",
        }
    }
}

/// How the client's probe of WaitOperation support asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// A wait's own WaitOperation, blocking as long as it may (one RPC for the whole wait
    /// when WaitOperation works).
    Blocking,
    /// A WaitOperation asking for an answer at once, so that the verdict comes after one
    /// round trip for every wait waiting for it.
    Quick,
}

/// What just happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// The wait starts; `fresh` if its snapshot just came from the server.
    Start { fresh: bool },
    /// The server answered `rpc` after `took`.
    Answered {
        rpc: Rpc,
        done: bool,
        took: Duration,
    },
    /// `rpc` failed.
    Failed {
        rpc: Rpc,
        code: Code,
        /// The delay a `RetryInfo` detail asked for.
        retry_delay: Option<Duration>,
        /// A failure no retry can mend (an untrusted certificate).
        permanent: bool,
        /// Whether the failure was an answer (from the server or a proxy before it) rather
        /// than no answer at all (refused connection, reset, silence).
        answered: bool,
    },
    /// A planned probe was not sent: the client's probe changed hands, or its verdict came
    /// in, since the decision.
    ProbeMoved,
    /// A planned Wait was not sent: the pool had no long-call slot free.
    NoLongCallSlot,
    /// The wait's deadline passed (during a sleep or an RPC).
    DeadlinePassed,
}

/// What is known besides the event: the client's knowledge of WaitOperation and the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Facts {
    /// What the client knows of WaitOperation support.
    pub(crate) probe: Knowledge,
    /// The time of the decision.
    pub(crate) now: Instant,
    /// The origin of the grid the client's waits' sleeps end on.
    pub(crate) epoch: Instant,
    /// When the wait runs out (`None`: never).
    pub(crate) deadline: Option<Instant>,
}

/// What the loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Send `rpc` after `after`.
    Call { after: Duration, rpc: Rpc },
    /// A quick probe is out: wait for its verdict (then [`Event::ProbeMoved`]).
    AwaitVerdict,
    /// Nothing an RPC could learn in the time left: sleep until the deadline.
    IdleUntilDeadline,
    /// The deadline passed: send CancelOperation, then look once with a GetOperation.
    CancelThenLook,
    /// The operation is done.
    Finish,
    /// End the wait with the last failure.
    Fail,
    /// End the wait with a timeout holding the last snapshot.
    TimedOut,
}

/// How a wait's probe asks, by the kind of wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeStyle {
    /// A wait on its own: its probe is its own blocking WaitOperation.
    Blocking,
    /// One of a batch started together: its probe asks for an answer at once.
    Quick,
}

/// The decision maker of one wait.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    strategy: WaitStrategy,
    probe_style: ProbeStyle,
    /// Look with a GetOperation first (a watch reports the current state at once).
    look_first: bool,
    cancel_on_timeout: bool,
    wait_rpc_cap: Duration,
    min_wait_interval: Duration,
    polls: Schedule,
    faults: Schedule,
    /// The delays after failures with no answer before the first answer: the client's.
    unanswered: Schedule,
    /// How many failures with no answer before the first answer end the wait.
    first_answer_attempts: u32,
    /// Whether the server has answered this wait.
    answered: bool,
    /// Failures since the last answer; no-answer failures before the first answer.
    failures: u32,
    unanswered_failures: u32,
    /// Whether the client retries a call that met silence (DEADLINE_EXCEEDED with no
    /// answer): before its first answer, a wait gives up on silence as a GetOperation would.
    retries_silence: bool,
    /// The Get out stands in for a Wait (no long-call slot was free).
    standing_in: bool,
    /// CancelOperation was sent after the deadline.
    cancelled: bool,
}

impl Plan {
    /// A plan for a wait with `options`, whose client gives up on a call after
    /// `first_answer_attempts` with the delays of `retry_backoff`.
    pub(crate) fn new(
        options: &WaitOptions,
        retry_backoff: crate::backoff::Backoff,
        first_answer_attempts: u32,
        probe_style: ProbeStyle,
    ) -> Self {
        Plan {
            strategy: options.strategy,
            probe_style,
            look_first: false,
            cancel_on_timeout: options.cancel_on_timeout,
            wait_rpc_cap: options.wait_rpc_cap,
            min_wait_interval: options.min_wait_interval,
            polls: Schedule::new(options.poll_backoff),
            faults: Schedule::new(options.fault_backoff),
            unanswered: Schedule::new(retry_backoff),
            first_answer_attempts: first_answer_attempts.max(1),
            answered: false,
            failures: 0,
            unanswered_failures: 0,
            retries_silence: true,
            standing_in: false,
            cancelled: false,
        }
    }

    /// The same plan, looking with a GetOperation before anything else.
    pub(crate) fn looking_first(mut self) -> Self {
        self.look_first = true;
        self
    }

    /// The same plan, giving up at the first silence before the first answer, as the
    /// client's GetOperation does when its policy does not retry DEADLINE_EXCEEDED.
    pub(crate) fn retrying_silence(mut self, retries: bool) -> Self {
        self.retries_silence = retries;
        self
    }

    /// Whether the server has answered this wait.
    pub(crate) fn answered(&self) -> bool {
        self.answered
    }

    /// Decides what follows `event`, knowing `facts`. Each event is decided once.
    pub(crate) fn decide(&mut self, event: Event, facts: Facts) -> Decision {
        if self.cancelled {
            // After the deadline's cancel: the look decides between done and timed out.
            return match event {
                Event::Answered { done: true, .. } => Decision::Finish,
                Event::Failed { .. } => Decision::Fail,
                _ => Decision::TimedOut,
            };
        }
        let now = Duration::ZERO;
        match event {
            Event::Start { fresh } => {
                self.answered = fresh;
                match (self.waits(facts.probe), fresh) {
                    (true, false) if self.look_first => self.call(now, Rpc::Get, facts),
                    (true, _) => self.wait_after(now, facts),
                    (false, false) => self.call(now, Rpc::Get, facts),
                    (false, true) => {
                        let delay = self.polls.next_delay();
                        self.call(delay, Rpc::Get, facts)
                    }
                }
            }
            Event::Answered { done: true, .. } => {
                self.answered = true;
                Decision::Finish
            }
            Event::Answered { rpc, took, .. } => {
                self.answered = true;
                self.failures = 0;
                self.faults.reset();
                let quick = match rpc {
                    Rpc::Get => std::mem::take(&mut self.standing_in),
                    Rpc::Wait { probe, .. } => {
                        probe != Some(Probe::Quick) && took < self.min_wait_interval
                    }
                };
                match (self.waits(facts.probe), quick) {
                    (true, false) => self.wait_after(now, facts),
                    (true, true) => {
                        let delay = self.polls.next_delay();
                        self.wait_after(delay, facts)
                    }
                    (false, _) => {
                        let delay = self.polls.next_delay();
                        self.call(delay, Rpc::Get, facts)
                    }
                }
            }
            Event::ProbeMoved => {
                // Nothing was sent: the delay before it is spent; only the RPC is re-chosen.
                self.wait_after(now, facts)
            }
            Event::NoLongCallSlot => {
                self.standing_in = true;
                self.call(now, Rpc::Get, facts)
            }
            Event::DeadlinePassed => {
                if self.cancel_on_timeout {
                    self.cancelled = true;
                    Decision::CancelThenLook
                } else if !self.answered && self.failures > 0 {
                    // Never reached: the failure says why, not the clock.
                    Decision::Fail
                } else {
                    Decision::TimedOut
                }
            }
            Event::Failed {
                permanent: true, ..
            } => Decision::Fail,
            Event::Failed {
                rpc: Rpc::Wait { .. },
                code: Code::Unimplemented,
                ..
            } => match self.strategy {
                WaitStrategy::Auto => self.call(now, Rpc::Get, facts),
                _ => Decision::Fail,
            },
            Event::Failed {
                rpc: Rpc::Wait { .. },
                code: Code::DeadlineExceeded,
                ..
            } if self.answered => self.wait_after(now, facts),
            Event::Failed {
                code: Code::DeadlineExceeded,
                answered: false,
                ..
            } if !self.answered && !self.retries_silence => {
                self.failures = self.failures.saturating_add(1);
                Decision::Fail
            }
            Event::Failed {
                rpc,
                code,
                retry_delay,
                answered,
                ..
            } => {
                self.failures = self.failures.saturating_add(1);
                if !is_transient(code) {
                    return Decision::Fail;
                }
                let delay = if !self.answered && !answered {
                    self.unanswered_failures += 1;
                    if self.unanswered_failures >= self.first_answer_attempts {
                        return Decision::Fail;
                    }
                    self.unanswered.next_delay()
                } else {
                    self.faults.next_delay()
                };
                let delay = retry_delay.unwrap_or(delay);
                match rpc {
                    Rpc::Wait { .. } if self.waits(facts.probe) => self.wait_after(delay, facts),
                    _ => self.call(delay, Rpc::Get, facts),
                }
            }
        }
    }

    /// Whether the next look is a Wait (not known missing, and not polling).
    fn waits(&self, probe: Knowledge) -> bool {
        match self.strategy {
            WaitStrategy::Poll => false,
            WaitStrategy::Wait => true,
            WaitStrategy::Auto => probe != Knowledge::Known(false),
        }
    }

    /// A Wait after `after`, as what is known allows: the probe while nothing is, a Get
    /// once WaitOperation is known missing, idling when too little time is left.
    fn wait_after(&mut self, after: Duration, facts: Facts) -> Decision {
        if !self.waits(facts.probe) {
            return self.call(after, Rpc::Get, facts);
        }
        let probe = match (self.strategy, facts.probe) {
            (WaitStrategy::Wait, _) | (_, Knowledge::Known(_)) => None,
            (_, Knowledge::Unknown) => Some(match self.probe_style {
                ProbeStyle::Blocking => Probe::Blocking,
                ProbeStyle::Quick => Probe::Quick,
            }),
            // A single wait's probe blocks if WaitOperation works: probe quickly beside it
            // (one more RPC per client), so that this wait and every later one learn the
            // verdict after one round trip, however slow the server.
            (_, Knowledge::Learning { quickly: false }) => Some(Probe::Quick),
            // A quick probe is out: its verdict decides this wait's RPC (after the delay,
            // if one is due, when the verdict is usually in).
            (_, Knowledge::Learning { quickly: true }) if after.is_zero() => {
                return Decision::AwaitVerdict;
            }
            (_, Knowledge::Learning { quickly: true }) => Some(Probe::Quick),
        };
        if probe == Some(Probe::Quick) {
            return self.call(
                after,
                Rpc::Wait {
                    timeout: Duration::ZERO,
                    probe,
                },
                facts,
            );
        }
        let wake = wake_at(after, facts);
        let left = facts
            .deadline
            .map_or(Duration::MAX, |d| d.saturating_duration_since(wake));
        let before_deadline = left.saturating_sub((left / 10).min(Duration::from_secs(1)));
        if self.answered
            && facts.deadline.is_some()
            && before_deadline < self.min_wait_interval.max(Duration::from_secs(1))
        {
            return Decision::IdleUntilDeadline;
        }
        let timeout = self.wait_rpc_cap.min(before_deadline);
        self.call(after, Rpc::Wait { timeout, probe }, facts)
    }

    fn call(&self, after: Duration, rpc: Rpc, facts: Facts) -> Decision {
        let after = wake_at(after, facts).saturating_duration_since(facts.now);
        Decision::Call { after, rpc }
    }
}

/// When a delay of `after` from the decision ends, on the client's grid.
fn wake_at(after: Duration, facts: Facts) -> Instant {
    if after.is_zero() {
        return facts.now;
    }
    coalesce::wake_at(facts.epoch, facts.now, after, facts.deadline)
}

/// The codes a wait rides out: the server or the path is busy, or the quota is spent for
/// now. Everything else (NOT_FOUND after a delete, PERMISSION_DENIED, UNAUTHENTICATED, …)
/// ends the wait.
pub(crate) fn is_transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::ResourceExhausted
    )
}

#[cfg(test)]
mod tests;
