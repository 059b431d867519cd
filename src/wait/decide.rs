//! The waiter's decisions: given what just happened, which RPC comes next and after what
//! delay. Pure (its only state is the two backoff schedules, whose jitter is seedable), so
//! every rule is a row of the table test below; [`super::waiter`] only executes.
//!
//! | what happened | next |
//! |---|---|
//! | the start, no snapshot from the server yet | Wait at once (Get if polling, or WaitOperation is known missing) |
//! | the start, with a fresh snapshot | Wait at once; polling: Get after the poll delay |
//! | an answer, done | finish |
//! | a Wait answered not done after a while | Wait again at once |
//! | a Wait answered not done quickly (server does not block) | Wait after the poll delay |
//! | a Get answered not done | Get after the poll delay (a Wait in `Auto` unless WaitOperation is known missing: at once after a first look, after the poll delay if the Get stood in for a Wait with no long-call slot free) |
//! | UNIMPLEMENTED from a Wait | `Auto`: Get at once; `Wait`: fail |
//! | DEADLINE_EXCEEDED from a Wait | Wait again (it outlived its own timeout: not done yet) |
//! | UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, ABORTED, RESOURCE_EXHAUSTED | the same RPC after the fault delay (a `RetryInfo` delay if the server gave one) |
//! | no answer at all (refused, reset, silence) the client's attempts times in a row before the first answer | fail, as `get` does: nothing answers for the operation |
//! | a certificate the client does not accept, or any other code | fail |
//!
//! The poll delays (1 s ×1.5 up to 30 s by default) grow while the operation runs; the fault
//! delays grow with consecutive faults and start over after an answer.

use std::time::Duration;

use crate::backoff::Schedule;
use crate::latch::Knowledge;
use crate::status::Code;

use super::{WaitOptions, WaitStrategy};

/// The RPC a wait sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rpc {
    /// GetOperation.
    Get,
    /// WaitOperation.
    Wait,
}

impl Rpc {
    /// The RPC's name, as logs give it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Rpc::Get => "GetOperation",
            Rpc::Wait => "WaitOperation",
        }
    }
}

/// What just happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// The wait starts; `fresh` if its snapshot just came from the server.
    Start { fresh: bool },
    /// The server answered.
    Answered {
        rpc: Rpc,
        done: bool,
        /// A Wait that came back not done sooner than `min_wait_interval`, or a Get sent
        /// in place of a Wait (no long-call slot was free): either way, space the next.
        quick: bool,
    },
    /// The RPC failed.
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
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Send `rpc` after `after`.
    Call { after: Duration, rpc: Rpc },
    /// The operation is done.
    Finish,
    /// End the wait with the last failure.
    Fail,
}

/// The decision maker of one wait.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    strategy: WaitStrategy,
    polls: Schedule,
    faults: Schedule,
    /// Whether the server has answered this wait at least once.
    answered: bool,
    /// Consecutive failures before the first answer.
    unanswered_failures: u32,
    /// How many failures before the first answer end the wait (the client's attempts).
    first_answer_attempts: u32,
    /// Look with a GetOperation first (a watch must report the current state at once).
    look_first: bool,
}

impl Plan {
    pub(crate) fn new(options: &WaitOptions, first_answer_attempts: u32) -> Self {
        Plan {
            strategy: options.strategy,
            polls: Schedule::new(options.poll_backoff),
            faults: Schedule::new(options.fault_backoff),
            answered: false,
            unanswered_failures: 0,
            first_answer_attempts: first_answer_attempts.max(1),
            look_first: false,
        }
    }

    /// The same plan, looking with a GetOperation before anything else.
    pub(crate) fn looking_first(mut self) -> Self {
        self.look_first = true;
        self
    }

    /// Decides what follows `event`, knowing what the client has learnt of WaitOperation.
    pub(crate) fn decide(&mut self, event: Event, wait_support: Knowledge) -> Decision {
        let waits = match self.strategy {
            WaitStrategy::Poll => false,
            WaitStrategy::Wait => true,
            WaitStrategy::Auto => wait_support != Knowledge::Known(false),
        };
        let now = Duration::ZERO;
        match event {
            Event::Start { fresh } => {
                self.answered = fresh;
                match (waits, fresh) {
                    (true, false) if self.look_first => call(now, Rpc::Get),
                    (true, _) => call(now, Rpc::Wait),
                    (false, false) => call(now, Rpc::Get),
                    (false, true) => call(self.polls.next_delay(), Rpc::Get),
                }
            }
            Event::Answered { done: true, .. } => Decision::Finish,
            Event::Answered { rpc, quick, .. } => {
                self.answered = true;
                self.unanswered_failures = 0;
                self.faults.reset();
                match (rpc, waits) {
                    (Rpc::Wait, true) if !quick => call(now, Rpc::Wait),
                    (Rpc::Wait, true) => call(self.polls.next_delay(), Rpc::Wait),
                    (Rpc::Get, true) if !quick => call(now, Rpc::Wait),
                    (Rpc::Get, true) => call(self.polls.next_delay(), Rpc::Wait),
                    (_, false) => call(self.polls.next_delay(), Rpc::Get),
                }
            }
            Event::Failed {
                permanent: true, ..
            } => Decision::Fail,
            Event::Failed {
                rpc: Rpc::Wait,
                code: Code::Unimplemented,
                ..
            } => match self.strategy {
                WaitStrategy::Auto => call(now, Rpc::Get),
                _ => Decision::Fail,
            },
            Event::Failed {
                rpc: Rpc::Wait,
                code: Code::DeadlineExceeded,
                ..
            } if self.answered => call(now, Rpc::Wait),
            Event::Failed {
                rpc,
                code,
                retry_delay,
                answered,
                ..
            } => {
                if !is_transient(code) {
                    return Decision::Fail;
                }
                if !self.answered && !answered {
                    self.unanswered_failures += 1;
                    if self.unanswered_failures >= self.first_answer_attempts {
                        return Decision::Fail;
                    }
                }
                let rpc = if waits { rpc } else { Rpc::Get };
                let delay = self.faults.next_delay();
                call(retry_delay.unwrap_or(delay), rpc)
            }
        }
    }
}

fn call(after: Duration, rpc: Rpc) -> Decision {
    Decision::Call { after, rpc }
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
mod tests {
    use super::*;
    use crate::backoff::{Backoff, Jitter};

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn options(strategy: WaitStrategy) -> WaitOptions {
        WaitOptions {
            strategy,
            poll_backoff: Backoff::new(S(1), S(30), 2.0).with_jitter(Jitter::Off),
            fault_backoff: Backoff::new(S(3), S(30), 2.0).with_jitter(Jitter::Off),
            ..WaitOptions::default()
        }
    }

    fn failed(rpc: Rpc, code: Code) -> Event {
        Event::Failed {
            rpc,
            code,
            retry_delay: None,
            permanent: false,
            answered: false,
        }
    }

    fn answered(rpc: Rpc, done: bool, quick: bool) -> Event {
        Event::Answered { rpc, done, quick }
    }

    fn wait(secs: u64) -> Decision {
        call(S(secs), Rpc::Wait)
    }

    fn get(secs: u64) -> Decision {
        call(S(secs), Rpc::Get)
    }

    #[test]
    fn the_decision_table() {
        use Code::*;
        use WaitStrategy::*;
        let unknown = Knowledge::Unknown;
        let supported = Knowledge::Known(true);
        let missing = Knowledge::Known(false);
        // One plan per row: strategy, what is known, the event → the decision.
        let rows = [
            (Auto, unknown, Event::Start { fresh: false }, wait(0)),
            (Auto, missing, Event::Start { fresh: false }, get(0)),
            (Auto, missing, Event::Start { fresh: true }, get(1)),
            (Poll, supported, Event::Start { fresh: false }, get(0)),
            (Wait, missing, Event::Start { fresh: true }, wait(0)),
            (
                Auto,
                supported,
                answered(Rpc::Wait, true, true),
                Decision::Finish,
            ),
            (
                Poll,
                unknown,
                answered(Rpc::Get, true, false),
                Decision::Finish,
            ),
            (Auto, supported, answered(Rpc::Wait, false, false), wait(0)),
            (Auto, supported, answered(Rpc::Wait, false, true), wait(1)),
            (Auto, supported, answered(Rpc::Get, false, false), wait(0)),
            (Auto, supported, answered(Rpc::Get, false, true), wait(1)),
            (Auto, missing, answered(Rpc::Get, false, false), get(1)),
            (Auto, missing, failed(Rpc::Wait, Unimplemented), get(0)),
            (
                Wait,
                unknown,
                failed(Rpc::Wait, Unimplemented),
                Decision::Fail,
            ),
            (Auto, supported, failed(Rpc::Wait, Unavailable), wait(3)),
            (Auto, missing, failed(Rpc::Get, ResourceExhausted), get(3)),
            (Poll, unknown, failed(Rpc::Get, Aborted), get(3)),
            (Auto, supported, failed(Rpc::Get, NotFound), Decision::Fail),
            (
                Auto,
                supported,
                failed(Rpc::Get, PermissionDenied),
                Decision::Fail,
            ),
            (
                Auto,
                supported,
                failed(Rpc::Get, Unauthenticated),
                Decision::Fail,
            ),
            (
                Auto,
                supported,
                failed(Rpc::Get, InvalidArgument),
                Decision::Fail,
            ),
            (
                Auto,
                supported,
                Event::Failed {
                    rpc: Rpc::Wait,
                    code: Unavailable,
                    retry_delay: None,
                    permanent: true,
                    answered: false,
                },
                Decision::Fail,
            ),
        ];
        for (strategy, knowledge, event, expected) in rows {
            let mut plan = Plan::new(&options(strategy), 5);
            assert_eq!(
                plan.decide(event, knowledge),
                expected,
                "{strategy:?} {knowledge:?} {event:?}"
            );
        }
    }

    #[test]
    fn a_watch_looks_first_then_waits() {
        let mut plan = Plan::new(&options(WaitStrategy::Auto), 5).looking_first();
        let supported = Knowledge::Known(true);
        assert_eq!(
            plan.decide(Event::Start { fresh: false }, supported),
            get(0)
        );
        assert_eq!(
            plan.decide(answered(Rpc::Get, false, false), supported),
            wait(0)
        );
    }

    #[test]
    fn a_retry_info_delay_is_honoured_only_for_codes_that_are_ridden_out() {
        let mut plan = Plan::new(&options(WaitStrategy::Poll), 5);
        plan.decide(Event::Start { fresh: true }, Knowledge::Unknown);
        let quota = Event::Failed {
            rpc: Rpc::Get,
            code: Code::ResourceExhausted,
            retry_delay: Some(S(7)),
            permanent: false,
            answered: true,
        };
        assert_eq!(plan.decide(quota, Knowledge::Unknown), get(7));
        let denied = Event::Failed {
            rpc: Rpc::Get,
            code: Code::PermissionDenied,
            retry_delay: Some(S(7)),
            permanent: false,
            answered: true,
        };
        assert_eq!(plan.decide(denied, Knowledge::Unknown), Decision::Fail);
    }

    #[test]
    fn poll_delays_grow_and_fault_delays_start_over_after_an_answer() {
        let mut plan = Plan::new(&options(WaitStrategy::Poll), 5);
        let mut next = |event| plan.decide(event, Knowledge::Unknown);
        assert_eq!(next(Event::Start { fresh: true }), get(1));
        assert_eq!(next(answered(Rpc::Get, false, false)), get(2));
        assert_eq!(next(failed(Rpc::Get, Code::Unavailable)), get(3));
        assert_eq!(next(failed(Rpc::Get, Code::Unavailable)), get(6));
        assert_eq!(next(answered(Rpc::Get, false, false)), get(4));
        assert_eq!(next(failed(Rpc::Get, Code::Unavailable)), get(3));
    }

    #[test]
    fn a_wait_that_never_had_an_answer_gives_up_after_the_client_attempts() {
        let mut plan = Plan::new(&options(WaitStrategy::Auto), 3);
        let mut next = |event| plan.decide(event, Knowledge::Known(true));
        assert_eq!(next(Event::Start { fresh: false }), wait(0));
        assert_eq!(next(failed(Rpc::Wait, Code::Unavailable)), wait(3));
        assert_eq!(next(failed(Rpc::Wait, Code::DeadlineExceeded)), wait(6));
        assert_eq!(next(failed(Rpc::Wait, Code::Unavailable)), Decision::Fail);
    }

    #[test]
    fn answers_that_are_errors_never_end_a_wait_that_had_no_snapshot_yet() {
        let mut plan = Plan::new(&options(WaitStrategy::Auto), 2);
        let mut next = |event| plan.decide(event, Knowledge::Known(true));
        next(Event::Start { fresh: false });
        let proxy_page = Event::Failed {
            rpc: Rpc::Wait,
            code: Code::Unavailable,
            retry_delay: None,
            permanent: false,
            answered: true,
        };
        for _ in 0..20 {
            assert!(matches!(
                next(proxy_page),
                Decision::Call { rpc: Rpc::Wait, .. }
            ));
        }
    }

    #[test]
    fn once_answered_faults_are_ridden_out_for_as_long_as_the_deadline_allows() {
        let mut plan = Plan::new(&options(WaitStrategy::Auto), 2);
        let mut next = |event| plan.decide(event, Knowledge::Known(true));
        next(Event::Start { fresh: false });
        next(answered(Rpc::Wait, false, false));
        for _ in 0..50 {
            assert!(matches!(
                next(failed(Rpc::Wait, Code::Unavailable)),
                Decision::Call { rpc: Rpc::Wait, .. }
            ));
        }
        // A Wait outliving its own timeout is "not done yet", not a fault.
        assert_eq!(next(failed(Rpc::Wait, Code::DeadlineExceeded)), wait(0));
    }
}
