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

/// The client's retry delays before a first answer: 2 s, ×2.
const RETRY: Backoff =
    Backoff::new(Duration::from_secs(2), Duration::from_secs(60), 2.0).with_jitter(Jitter::Off);

fn plan(strategy: WaitStrategy, style: ProbeStyle) -> Plan {
    Plan::new(&options(strategy), RETRY, 5, style)
}

/// A time on the grid, with an hour left (`None`: no deadline).
fn facts(probe: Knowledge) -> Facts {
    at(probe, Some(S(3600)))
}

fn at(probe: Knowledge, left: Option<Duration>) -> Facts {
    let epoch = Instant::now();
    let now = epoch + S(100);
    Facts {
        probe,
        now,
        epoch,
        deadline: left.map(|left| now + left),
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

fn answered(rpc: Rpc, done: bool, took: Duration) -> Event {
    Event::Answered { rpc, done, took }
}

const SLOW: Duration = Duration::from_secs(5);
const FAST: Duration = Duration::ZERO;
const CAP: Duration = Duration::from_secs(60);

/// A Wait (not a probe) with the default cap.
const WAIT: Rpc = Rpc::Wait {
    timeout: CAP,
    probe: None,
};
const BLOCKING_PROBE: Rpc = Rpc::Wait {
    timeout: CAP,
    probe: Some(Probe::Blocking),
};
const QUICK_PROBE: Rpc = Rpc::Wait {
    timeout: Duration::ZERO,
    probe: Some(Probe::Quick),
};

fn call(secs: u64, rpc: Rpc) -> Decision {
    Decision::Call {
        after: S(secs),
        rpc,
    }
}

fn wait(secs: u64) -> Decision {
    call(secs, WAIT)
}

fn get(secs: u64) -> Decision {
    call(secs, Rpc::Get)
}

#[test]
fn the_decision_table() {
    use Code::*;
    use ProbeStyle::{Blocking, Quick};
    use WaitStrategy::*;
    let unknown = Knowledge::Unknown;
    let supported = Knowledge::Known(true);
    let missing = Knowledge::Known(false);
    let slow_probe_out = Knowledge::Learning { quickly: false };
    let quick_probe_out = Knowledge::Learning { quickly: true };
    // One plan per row: strategy, probe style, what is known, the event → the decision.
    let rows = [
        // The start.
        (
            Auto,
            Blocking,
            unknown,
            Event::Start { fresh: false },
            call(0, BLOCKING_PROBE),
        ),
        (
            Auto,
            Quick,
            unknown,
            Event::Start { fresh: false },
            call(0, QUICK_PROBE),
        ),
        (
            Auto,
            Blocking,
            slow_probe_out,
            Event::Start { fresh: false },
            call(0, QUICK_PROBE),
        ),
        (
            Auto,
            Quick,
            quick_probe_out,
            Event::Start { fresh: false },
            Decision::AwaitVerdict,
        ),
        (
            Auto,
            Blocking,
            supported,
            Event::Start { fresh: false },
            wait(0),
        ),
        (
            Auto,
            Blocking,
            missing,
            Event::Start { fresh: false },
            get(0),
        ),
        (
            Auto,
            Blocking,
            missing,
            Event::Start { fresh: true },
            get(1),
        ),
        (
            Poll,
            Blocking,
            supported,
            Event::Start { fresh: false },
            get(0),
        ),
        (
            Wait,
            Blocking,
            missing,
            Event::Start { fresh: true },
            wait(0),
        ),
        (Wait, Quick, unknown, Event::Start { fresh: false }, wait(0)),
        // Answers.
        (
            Auto,
            Blocking,
            supported,
            answered(WAIT, true, FAST),
            Decision::Finish,
        ),
        (
            Poll,
            Blocking,
            unknown,
            answered(Rpc::Get, true, FAST),
            Decision::Finish,
        ),
        (
            Auto,
            Blocking,
            supported,
            answered(WAIT, false, SLOW),
            wait(0),
        ),
        (
            Auto,
            Blocking,
            supported,
            answered(WAIT, false, FAST),
            wait(1),
        ),
        // A quick probe answers at once by design: that is no server ignoring timeouts.
        (
            Auto,
            Quick,
            supported,
            answered(QUICK_PROBE, false, FAST),
            wait(0),
        ),
        (
            Auto,
            Blocking,
            supported,
            answered(Rpc::Get, false, FAST),
            wait(0),
        ),
        (
            Auto,
            Blocking,
            missing,
            answered(Rpc::Get, false, FAST),
            get(1),
        ),
        (
            Auto,
            Blocking,
            missing,
            answered(QUICK_PROBE, false, FAST),
            get(1),
        ),
        // What the loop could not send.
        (Auto, Blocking, supported, Event::NoLongCallSlot, get(0)),
        (Auto, Blocking, missing, Event::ProbeMoved, get(0)),
        (Auto, Blocking, supported, Event::ProbeMoved, wait(0)),
        (
            Auto,
            Blocking,
            quick_probe_out,
            Event::ProbeMoved,
            Decision::AwaitVerdict,
        ),
        // Failures.
        (
            Auto,
            Blocking,
            missing,
            failed(BLOCKING_PROBE, Unimplemented),
            get(0),
        ),
        (
            Wait,
            Blocking,
            unknown,
            failed(WAIT, Unimplemented),
            Decision::Fail,
        ),
        (
            Auto,
            Blocking,
            supported,
            failed(WAIT, Unavailable),
            wait(2),
        ),
        (
            Auto,
            Blocking,
            unknown,
            failed(BLOCKING_PROBE, Unavailable),
            call(2, BLOCKING_PROBE),
        ),
        (
            Auto,
            Blocking,
            missing,
            failed(Rpc::Get, ResourceExhausted),
            get(2),
        ),
        (Poll, Blocking, unknown, failed(Rpc::Get, Aborted), get(2)),
        (
            Auto,
            Blocking,
            supported,
            failed(Rpc::Get, NotFound),
            Decision::Fail,
        ),
        (
            Auto,
            Blocking,
            supported,
            failed(Rpc::Get, PermissionDenied),
            Decision::Fail,
        ),
        (
            Auto,
            Blocking,
            supported,
            failed(Rpc::Get, Unauthenticated),
            Decision::Fail,
        ),
        (
            Auto,
            Blocking,
            supported,
            failed(Rpc::Get, InvalidArgument),
            Decision::Fail,
        ),
        (
            Auto,
            Blocking,
            supported,
            Event::Failed {
                rpc: WAIT,
                code: Unavailable,
                retry_delay: None,
                permanent: true,
                answered: false,
            },
            Decision::Fail,
        ),
        // The deadline, with nothing received and nothing failed.
        (
            Auto,
            Blocking,
            supported,
            Event::DeadlinePassed,
            Decision::TimedOut,
        ),
    ];
    for (strategy, style, knowledge, event, expected) in rows {
        let mut plan = plan(strategy, style);
        assert_eq!(
            plan.decide(event, facts(knowledge)),
            expected,
            "{strategy:?} {style:?} {knowledge:?} {event:?}"
        );
    }
}

#[test]
fn a_probe_that_did_not_go_out_costs_no_second_delay_and_no_attempt() {
    // The defect of the old loop: a Wait planned before the probe's verdict was decided
    // again with the same event, drawing (and sleeping) the fault delay twice and counting
    // the failure twice.
    let mut plan = Plan::new(&options(WaitStrategy::Auto), RETRY, 2, ProbeStyle::Blocking);
    let unknown = facts(Knowledge::Unknown);
    assert_eq!(
        plan.decide(Event::Start { fresh: false }, unknown),
        call(0, BLOCKING_PROBE)
    );
    assert_eq!(
        plan.decide(failed(BLOCKING_PROBE, Code::Unavailable), unknown),
        call(2, BLOCKING_PROBE)
    );
    // Another wait's probe learnt the verdict while this one slept: nothing was sent.
    assert_eq!(
        plan.decide(Event::ProbeMoved, facts(Knowledge::Known(false))),
        get(0)
    );
    // The next failure is only the second: the wait gives up on it (2 attempts), not before.
    assert_eq!(
        plan.decide(
            failed(Rpc::Get, Code::Unavailable),
            facts(Knowledge::Known(false))
        ),
        Decision::Fail
    );
}

#[test]
fn a_quick_probe_out_is_awaited_only_when_no_delay_is_due() {
    let mut plan = plan(WaitStrategy::Auto, ProbeStyle::Blocking);
    let quick_out = facts(Knowledge::Learning { quickly: true });
    plan.decide(Event::Start { fresh: true }, quick_out);
    // A poll delay is due first: by then the verdict is usually in, and if it is not, the
    // claim fails at the send and the wait awaits it then.
    assert_eq!(
        plan.decide(answered(WAIT, false, FAST), quick_out),
        call(1, QUICK_PROBE)
    );
    assert_eq!(
        plan.decide(Event::ProbeMoved, quick_out),
        Decision::AwaitVerdict
    );
}

#[test]
fn a_wait_asks_to_answer_before_the_deadline_and_idles_when_nothing_can_be_learnt() {
    let mut plan = plan(WaitStrategy::Auto, ProbeStyle::Blocking);
    let supported = Knowledge::Known(true);
    // 20 s left: answer 1 s before it.
    let decision = plan.decide(Event::Start { fresh: false }, at(supported, Some(S(20))));
    assert_eq!(
        decision,
        call(
            0,
            Rpc::Wait {
                timeout: S(19),
                probe: None
            }
        )
    );
    // 5 s left: a tenth of it.
    let decision = plan.decide(answered(WAIT, false, SLOW), at(supported, Some(S(5))));
    assert_eq!(
        decision,
        call(
            0,
            Rpc::Wait {
                timeout: Duration::from_millis(4500),
                probe: None
            }
        )
    );
    // Under a second left: nothing to learn.
    let decision = plan.decide(
        answered(WAIT, false, SLOW),
        at(supported, Some(Duration::from_millis(900))),
    );
    assert_eq!(decision, Decision::IdleUntilDeadline);
    // No deadline: the cap.
    assert_eq!(
        plan.decide(answered(WAIT, false, SLOW), at(supported, None)),
        wait(0)
    );
}

#[test]
fn delays_end_on_the_clients_grid() {
    let mut plan = Plan::new(
        &WaitOptions {
            poll_backoff: Backoff::new(Duration::from_millis(1234), S(30), 2.0)
                .with_jitter(Jitter::Off),
            strategy: WaitStrategy::Poll,
            ..WaitOptions::default()
        },
        RETRY,
        5,
        ProbeStyle::Blocking,
    );
    // 1.234 s from a time on the grid ends on the next tenth of a second.
    assert_eq!(
        plan.decide(Event::Start { fresh: true }, facts(Knowledge::Unknown)),
        Decision::Call {
            after: Duration::from_millis(1300),
            rpc: Rpc::Get
        }
    );
}

#[test]
fn the_deadline_cancels_then_looks_once_with_cancel_on_timeout() {
    let mut plan = Plan::new(
        &WaitOptions {
            cancel_on_timeout: true,
            ..options(WaitStrategy::Auto)
        },
        RETRY,
        5,
        ProbeStyle::Blocking,
    );
    let supported = facts(Knowledge::Known(true));
    plan.decide(Event::Start { fresh: true }, supported);
    assert_eq!(
        plan.decide(Event::DeadlinePassed, supported),
        Decision::CancelThenLook
    );
    let mut not_done = plan.clone();
    assert_eq!(
        plan.decide(answered(Rpc::Get, true, FAST), supported),
        Decision::Finish
    );
    assert_eq!(
        not_done.decide(answered(Rpc::Get, false, FAST), supported),
        Decision::TimedOut
    );
}

#[test]
fn a_wait_never_answered_fails_with_its_failure_when_the_deadline_passes() {
    let mut plan = plan(WaitStrategy::Auto, ProbeStyle::Blocking);
    let supported = facts(Knowledge::Known(true));
    plan.decide(Event::Start { fresh: false }, supported);
    plan.decide(failed(WAIT, Code::Unavailable), supported);
    assert_eq!(
        plan.decide(Event::DeadlinePassed, supported),
        Decision::Fail
    );
}

#[test]
fn a_watch_looks_first_then_waits() {
    let mut plan = plan(WaitStrategy::Auto, ProbeStyle::Blocking).looking_first();
    let supported = facts(Knowledge::Known(true));
    assert_eq!(
        plan.decide(Event::Start { fresh: false }, supported),
        get(0)
    );
    assert_eq!(
        plan.decide(answered(Rpc::Get, false, FAST), supported),
        wait(0)
    );
}

#[test]
fn a_get_standing_in_for_a_wait_spaces_the_next_wait() {
    let mut plan = plan(WaitStrategy::Auto, ProbeStyle::Blocking);
    let supported = facts(Knowledge::Known(true));
    plan.decide(Event::Start { fresh: true }, supported);
    assert_eq!(plan.decide(Event::NoLongCallSlot, supported), get(0));
    assert_eq!(
        plan.decide(answered(Rpc::Get, false, FAST), supported),
        wait(1)
    );
    // Only that one: a later Get (after a watch's look) is not standing in.
    assert_eq!(plan.decide(answered(WAIT, false, SLOW), supported), wait(0));
}

#[test]
fn a_retry_info_delay_is_honoured_only_for_codes_that_are_ridden_out() {
    let mut plan = plan(WaitStrategy::Poll, ProbeStyle::Blocking);
    let unknown = facts(Knowledge::Unknown);
    plan.decide(Event::Start { fresh: true }, unknown);
    let quota = Event::Failed {
        rpc: Rpc::Get,
        code: Code::ResourceExhausted,
        retry_delay: Some(S(7)),
        permanent: false,
        answered: true,
    };
    assert_eq!(plan.decide(quota, unknown), get(7));
    let denied = Event::Failed {
        rpc: Rpc::Get,
        code: Code::PermissionDenied,
        retry_delay: Some(S(7)),
        permanent: false,
        answered: true,
    };
    assert_eq!(plan.decide(denied, unknown), Decision::Fail);
}

#[test]
fn poll_delays_grow_and_fault_delays_start_over_after_an_answer() {
    let mut plan = plan(WaitStrategy::Poll, ProbeStyle::Blocking);
    let mut next = |event| plan.decide(event, facts(Knowledge::Unknown));
    let proxy_page = Event::Failed {
        rpc: Rpc::Get,
        code: Code::Unavailable,
        retry_delay: None,
        permanent: false,
        answered: true,
    };
    assert_eq!(next(Event::Start { fresh: true }), get(1));
    assert_eq!(next(answered(Rpc::Get, false, FAST)), get(2));
    assert_eq!(next(proxy_page), get(3));
    assert_eq!(next(failed(Rpc::Get, Code::Unavailable)), get(6));
    assert_eq!(next(answered(Rpc::Get, false, FAST)), get(4));
    assert_eq!(next(proxy_page), get(3));
}

#[test]
fn a_wait_that_never_had_an_answer_gives_up_after_the_client_attempts_and_delays() {
    let mut plan = Plan::new(&options(WaitStrategy::Auto), RETRY, 3, ProbeStyle::Blocking);
    let mut next = |event| plan.decide(event, facts(Knowledge::Known(true)));
    assert_eq!(next(Event::Start { fresh: false }), wait(0));
    assert_eq!(next(failed(WAIT, Code::Unavailable)), wait(2));
    assert_eq!(next(failed(WAIT, Code::DeadlineExceeded)), wait(4));
    assert_eq!(next(failed(WAIT, Code::Unavailable)), Decision::Fail);
}

#[test]
fn answers_that_are_errors_never_end_a_wait_that_had_no_snapshot_yet() {
    let mut plan = Plan::new(&options(WaitStrategy::Auto), RETRY, 2, ProbeStyle::Blocking);
    let mut next = |event| plan.decide(event, facts(Knowledge::Known(true)));
    next(Event::Start { fresh: false });
    let proxy_page = Event::Failed {
        rpc: WAIT,
        code: Code::Unavailable,
        retry_delay: None,
        permanent: false,
        answered: true,
    };
    for _ in 0..20 {
        assert!(matches!(
            next(proxy_page),
            Decision::Call {
                rpc: Rpc::Wait { .. },
                ..
            }
        ));
    }
}

#[test]
fn once_answered_faults_are_ridden_out_for_as_long_as_the_deadline_allows() {
    let mut plan = Plan::new(&options(WaitStrategy::Auto), RETRY, 2, ProbeStyle::Blocking);
    let mut next = |event| plan.decide(event, facts(Knowledge::Known(true)));
    next(Event::Start { fresh: false });
    next(answered(WAIT, false, SLOW));
    for _ in 0..50 {
        assert!(matches!(
            next(failed(WAIT, Code::Unavailable)),
            Decision::Call {
                rpc: Rpc::Wait { .. },
                ..
            }
        ));
    }
    // A Wait outliving its own timeout is "not done yet", not a fault.
    assert_eq!(next(failed(WAIT, Code::DeadlineExceeded)), wait(0));
}
