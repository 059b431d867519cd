//! Retry policy: how calls are timed out and retried, and the pure decision the client's
//! call loop executes (a policy decides, the service executes, as in tower's `retry`).

use std::time::Duration;

use crate::backoff::Backoff;
use crate::status::{Code, Status};

use crate::error::FaultKind;

/// How one RPC is timed out and retried.
///
/// The default is Google's service config for `google.longrunning.Operations`: a 10 s
/// per-call timeout, 5 attempts, backoff from 0.5 s to 10 s, ×2, retrying `UNAVAILABLE`.
/// Whatever the codes, a request that provably never reached the server (see
/// [`FaultKind::Unsent`]) is retried, and a certificate the client does not accept never is.
///
/// ```
/// use std::time::Duration;
/// use longrunning::RetryPolicy;
///
/// let policy = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
/// assert_eq!(policy.per_call_timeout, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 disables retries).
    pub max_attempts: u32,
    /// The delays between attempts. A `google.rpc.RetryInfo` detail overrides one.
    pub backoff: Backoff,
    /// The deadline of each attempt. The client enforces it and resets the stream when it
    /// passes; calls that start work also send it as `grpc-timeout`. It
    /// starts once the transport is ready for the call: the wait for a slot of the client's
    /// rate limit ([`Connector::max_rps`](crate::transport::Connector::max_rps)) is not the
    /// server's silence and does not count.
    pub per_call_timeout: Duration,
    /// The codes that are retried.
    pub retry_codes: Vec<Code>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(10), 2.0),
            per_call_timeout: Duration::from_secs(10),
            retry_codes: vec![Code::Unavailable],
        }
    }
}

impl RetryPolicy {
    /// No retries by code (a request that never reached the server is still retried).
    pub fn no_retries(per_call_timeout: Duration) -> Self {
        RetryPolicy {
            max_attempts: 1,
            per_call_timeout,
            retry_codes: Vec::new(),
            ..RetryPolicy::default()
        }
    }

    /// Google's published client config for Vision v1's long-running start calls (npm
    /// `@google-cloud/vision` 6.1.0, `product_search_client_config.json` and
    /// `image_annotator_client_config.json`): 600 s per call; backoff 100 ms ×1.3 up to
    /// 60 s. `idempotent` calls (AsyncBatchAnnotateFiles/Images) retry `DEADLINE_EXCEEDED`
    /// and `UNAVAILABLE`; the others (ImportProductSets, PurgeProducts) retry no code.
    pub fn vision_start(idempotent: bool) -> Self {
        RetryPolicy {
            max_attempts: if idempotent { 5 } else { 3 },
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(60), 1.3),
            per_call_timeout: Duration::from_secs(600),
            retry_codes: if idempotent {
                vec![Code::DeadlineExceeded, Code::Unavailable]
            } else {
                Vec::new()
            },
        }
    }
}

/// What the call loop does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send again after this delay.
    Retry(Duration),
    /// Send again at once with a new token (the auth layer dropped the rejected one).
    Reauthenticate,
    /// Give up with this failure.
    Fail,
}

/// One failed attempt, as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt<'a> {
    /// 1 for the first attempt.
    pub(crate) number: u32,
    /// Whether this call was already re-sent with a new token.
    pub(crate) reauthenticated: bool,
    /// Whether the server rejected the token it carried, and the auth layer dropped it.
    pub(crate) token_rejected: bool,
    /// Whether the policy's codes apply (false for calls whose caller retries by itself,
    /// such as the waiter's: only a request that never reached the server is sent again,
    /// at once and once, and a rejected token is replaced once).
    pub(crate) by_code: bool,
    /// The failure.
    pub(crate) status: &'a Status,
    /// Its transport fault, if it was one.
    pub(crate) fault: Option<FaultKind>,
}

/// Decides what follows a failed attempt. `next_backoff` is the schedule's next delay, used
/// when the server asked for none. Pure: the call loop only executes the verdict.
pub(crate) fn decide(
    policy: &RetryPolicy,
    attempt: Attempt<'_>,
    next_backoff: Duration,
) -> Verdict {
    let attempts_left = attempt.number < policy.max_attempts.max(1);
    if attempt.token_rejected {
        return if attempt.reauthenticated {
            Verdict::Fail
        } else {
            Verdict::Reauthenticate
        };
    }
    match attempt.fault {
        Some(FaultKind::Certificate | FaultKind::ProxyRefused) => return Verdict::Fail,
        // Never reached the server: as safe to send again as the first time. The first
        // retry goes at once (another connection is usually ready, e.g. after a GOAWAY);
        // later ones only for callers that do not retry by themselves (the waiter spaces
        // its own, so that no sleep hides under its RPCs).
        Some(FaultKind::Unsent) if attempt.number == 1 => return Verdict::Retry(Duration::ZERO),
        Some(FaultKind::Unsent)
            if attempt.by_code && attempt.number < UNSENT_ATTEMPTS.max(policy.max_attempts) =>
        {
            return Verdict::Retry(next_backoff);
        }
        _ => {}
    }
    if attempt.by_code && attempts_left && policy.retry_codes.contains(&attempt.status.code) {
        Verdict::Retry(attempt.status.retry_delay().unwrap_or(next_backoff))
    } else {
        Verdict::Fail
    }
}

/// The attempts a request that never reached the server gets, whatever the policy allows.
const UNSENT_ATTEMPTS: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::ErrorDetail;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn verdict(
        policy: &RetryPolicy,
        number: u32,
        code: Code,
        fault: Option<FaultKind>,
        reauthenticated: bool,
    ) -> Verdict {
        let status = Status::new(code, "x");
        decide(
            policy,
            Attempt {
                number,
                reauthenticated,
                token_rejected: false,
                by_code: true,
                status: &status,
                fault,
            },
            MS(700),
        )
    }

    #[test]
    fn the_decision_table() {
        use Code::*;
        use FaultKind::*;
        let reads = RetryPolicy::default();
        let starts = RetryPolicy::vision_start(false);
        let cases = [
            // policy, attempt, code, fault, reauthenticated → verdict
            (&reads, 1, Unavailable, None, false, Verdict::Retry(MS(700))),
            (&reads, 4, Unavailable, None, false, Verdict::Retry(MS(700))),
            (&reads, 5, Unavailable, None, false, Verdict::Fail),
            (&reads, 1, NotFound, None, false, Verdict::Fail),
            (&reads, 1, ResourceExhausted, None, false, Verdict::Fail),
            (
                &reads,
                1,
                Unavailable,
                Some(Interrupted),
                false,
                Verdict::Retry(MS(700)),
            ),
            (
                &reads,
                1,
                Unavailable,
                Some(Certificate),
                false,
                Verdict::Fail,
            ),
            (
                &reads,
                1,
                Unavailable,
                Some(Unsent),
                false,
                Verdict::Retry(Duration::ZERO),
            ),
            (
                &reads,
                2,
                Unavailable,
                Some(Unsent),
                false,
                Verdict::Retry(MS(700)),
            ),
            (&starts, 1, Unavailable, None, false, Verdict::Fail),
            (
                &starts,
                1,
                Unavailable,
                Some(Interrupted),
                false,
                Verdict::Fail,
            ),
            (
                &starts,
                1,
                Unavailable,
                Some(Unsent),
                false,
                Verdict::Retry(Duration::ZERO),
            ),
            (
                &starts,
                2,
                Unavailable,
                Some(Unsent),
                false,
                Verdict::Retry(MS(700)),
            ),
            (&starts, 3, Unavailable, Some(Unsent), false, Verdict::Fail),
            (&reads, 1, Unauthenticated, None, false, Verdict::Fail),
        ];
        for (policy, number, code, fault, reauthenticated, expected) in cases {
            assert_eq!(
                verdict(policy, number, code, fault, reauthenticated),
                expected,
                "attempt {number} {code:?} {fault:?}"
            );
        }
    }

    #[test]
    fn a_rejected_token_is_replaced_once_whatever_the_policy() {
        let status = Status::new(Code::Unauthenticated, "x");
        for policy in [RetryPolicy::default(), RetryPolicy::vision_start(false)] {
            let attempt = |reauthenticated| Attempt {
                number: 1,
                reauthenticated,
                token_rejected: true,
                by_code: true,
                status: &status,
                fault: None,
            };
            assert_eq!(
                decide(&policy, attempt(false), MS(700)),
                Verdict::Reauthenticate
            );
            assert_eq!(decide(&policy, attempt(true), MS(700)), Verdict::Fail);
        }
    }

    #[test]
    fn a_call_whose_caller_retries_gets_only_the_always_safe_retries() {
        let policy = RetryPolicy::default();
        let status = Status::new(Code::Unavailable, "x");
        let attempt = |fault| Attempt {
            number: 1,
            reauthenticated: false,
            token_rejected: false,
            by_code: false,
            status: &status,
            fault,
        };
        assert_eq!(decide(&policy, attempt(None), MS(700)), Verdict::Fail);
        assert_eq!(
            decide(&policy, attempt(Some(FaultKind::Interrupted)), MS(700)),
            Verdict::Fail
        );
        assert_eq!(
            decide(&policy, attempt(Some(FaultKind::Unsent)), MS(700)),
            Verdict::Retry(Duration::ZERO)
        );
        // Never a delayed one: the caller spaces its own retries.
        let second = Attempt {
            number: 2,
            ..attempt(Some(FaultKind::Unsent))
        };
        assert_eq!(decide(&policy, second, MS(700)), Verdict::Fail);
        let rejected = Attempt {
            token_rejected: true,
            ..attempt(None)
        };
        assert_eq!(decide(&policy, rejected, MS(700)), Verdict::Reauthenticate);
    }

    #[test]
    fn a_retry_info_delay_replaces_the_backoff_only_for_retried_codes() {
        let policy = RetryPolicy::default();
        let asked = Status::new(Code::Unavailable, "busy")
            .with_detail(ErrorDetail::retry_after(Duration::from_secs(3)));
        let attempt = |status| Attempt {
            token_rejected: false,
            number: 1,
            reauthenticated: false,
            by_code: true,
            status,
            fault: None,
        };
        assert_eq!(
            decide(&policy, attempt(&asked), MS(700)),
            Verdict::Retry(Duration::from_secs(3))
        );
        let not_retried = Status::new(Code::PermissionDenied, "no")
            .with_detail(ErrorDetail::retry_after(Duration::from_secs(3)));
        assert_eq!(
            decide(&policy, attempt(&not_retried), MS(700)),
            Verdict::Fail
        );
    }
}
