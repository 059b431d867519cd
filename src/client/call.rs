//! The call loop: one unary RPC through tonic's `Grpc` with the routing header and the
//! per-call deadline, retried as [`decide`] says.

use std::time::Duration;

use futures_util::FutureExt as _;
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue};

use super::{OperationsClient, ROUTING_HEADER};
use crate::backoff::Schedule;
use crate::error::FaultKind;
use crate::error::{Error, Result};
use crate::rpc::{Method, method_name};
use crate::status::{Code, Status};
use crate::transport::retry::{Attempt, Verdict, decide};
use crate::transport::{
    Fault, LongCall, NoLongCallSlot, RetryPolicy, TokenRejected, Transport, carried,
};

/// How a call ended.
pub(crate) enum Outcome<T> {
    /// The server's answer, or the call's failure.
    Answer(Result<T>),
    /// The pool had no long-call slot free for it ([`LongCall::IfFree`]): nothing was sent.
    NoLongCallSlot,
    /// The caller's deadline ([`Call::deadline`]) came before an answer.
    DeadlinePassed,
    /// The caller's deadline came while the call waited for the client's rate limit:
    /// nothing was sent.
    DeadlineBeforeSending,
}

impl OperationsClient {
    /// Runs one unary RPC through tonic with the routing header, the per-call deadline and,
    /// as the policy decides, retries.
    pub(crate) async fn call<Req, Resp>(&self, call: Call, request: Req) -> Result<Resp>
    where
        Req: prost::Message + Clone + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let method = call.method;
        let timeout = call.timeout;
        match self.call_admitted(call, request).await {
            Outcome::Answer(answer) => answer,
            Outcome::NoLongCallSlot => Err(no_long_call_slot_named(method)),
            Outcome::DeadlinePassed | Outcome::DeadlineBeforeSending => {
                let timeout = timeout.unwrap_or(self.shared.policy.per_call_timeout);
                Err(no_answer_within_named(method, &self.shared.peer, timeout))
            }
        }
    }

    /// [`call`](Self::call), telling a long call the pool refused apart from a failure.
    pub(crate) async fn call_admitted<Req, Resp>(&self, call: Call, request: Req) -> Outcome<Resp>
    where
        Req: prost::Message + Clone + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let policy = call.policy.as_ref().unwrap_or(&self.shared.policy);
        let method = call.method;
        let timeout = call.timeout.unwrap_or(policy.per_call_timeout);
        // Made at the first failure: most calls never need one.
        let mut schedule: Option<Schedule> = None;
        let mut number = 1;
        let mut reauthenticated = false;
        loop {
            let mut tonic_request = tonic::Request::new(request.clone());
            // Straight into the headers, by names made at compile time.
            let headers = tonic_request.metadata_mut().as_mut();
            headers.insert(ROUTING, call.routing.clone());
            if call.sends_deadline {
                headers.insert(GRPC_TIMEOUT, grpc_timeout_cached(timeout));
            }
            if let Some(long_call) = call.long_call {
                tonic_request.extensions_mut().insert(long_call);
            }
            let mut grpc = self.shared.grpc.clone();
            // Waiting for a slot of the client's rate limit (in `poll_ready`) is not the
            // server's silence: the per-call deadline starts when the call may go. The
            // caller's deadline bounds this wait; a timer only if the slot is not free now.
            let ready = match grpc.ready().now_or_never() {
                Some(ready) => ready,
                None => match call.deadline {
                    None => grpc.ready().await,
                    Some(until) => match tokio::time::timeout_at(until, grpc.ready()).await {
                        Ok(ready) => ready,
                        Err(_) => return Outcome::DeadlineBeforeSending,
                    },
                },
            }
            .map(|_| ());
            // One timer: the per-call deadline, or the caller's if that comes first.
            let own = tokio::time::Instant::now() + timeout;
            let (deadline, callers) = match call.deadline {
                Some(until) if until < own => (until, true),
                _ => (own, false),
            };
            let path = PathAndQuery::from_static(call.path);
            // Not boxed on its own: the waiter boxes each call it makes as a whole (one
            // allocation a call, and a waiter between calls stays small).
            let sent = async move {
                ready?;
                grpc.unary(tonic_request, path, SmallBuffers::<Req, Resp>::new())
                    .await
            };
            let (status, fault, token_rejected) = match tokio::time::timeout_at(deadline, sent)
                .await
            {
                Ok(Ok(response)) => {
                    tracing::trace!(method, attempt = number, "rpc succeeded");
                    return Outcome::Answer(Ok(response.into_inner()));
                }
                // tonic's server ends a call whose `grpc-timeout` expired with CANCELLED;
                // for the caller it is the same deadline as ours.
                Ok(Err(status))
                    if status.code() == Code::Cancelled
                        && tokio::time::Instant::now() >= deadline =>
                {
                    if callers {
                        return Outcome::DeadlinePassed;
                    }
                    self.silence(timeout)
                }
                Ok(Err(status)) => {
                    let mut return_silence = false;
                    if carried::<NoLongCallSlot>(&status).is_some() {
                        return Outcome::NoLongCallSlot;
                    }
                    if let Some(error) = layer_error(&status) {
                        return Outcome::Answer(Err(error));
                    }
                    let fault = carried::<Fault>(&status);
                    // Permanent: never retried.
                    match fault.map(|fault| (fault.kind(), fault)) {
                        Some((FaultKind::Certificate, fault)) => {
                            return Outcome::Answer(Err(Error::Certificate {
                                peer: fault.peer().to_owned(),
                                reason: fault.message().to_owned(),
                            }));
                        }
                        Some((FaultKind::ProxyRefused, fault)) => {
                            return Outcome::Answer(Err(Error::Proxy {
                                proxy: fault.peer().to_owned(),
                                message: fault.message().to_owned(),
                            }));
                        }
                        // tonic's channel enforcing the `grpc-timeout` sent: our deadline.
                        Some((FaultKind::Silent, _)) if tokio::time::Instant::now() >= deadline => {
                            return_silence = true;
                        }
                        _ => {}
                    }
                    if return_silence && callers {
                        return Outcome::DeadlinePassed;
                    } else if return_silence {
                        self.silence(timeout)
                    } else {
                        (
                            Status::from_tonic(&status),
                            fault.map(Fault::kind),
                            carried::<TokenRejected>(&status).is_some(),
                        )
                    }
                }
                Err(_) if callers => return Outcome::DeadlinePassed,
                Err(_) => self.silence(timeout),
            };
            let attempt = Attempt {
                number,
                reauthenticated,
                token_rejected,
                by_code: call.retried,
                status: &status,
                fault,
            };
            let next_backoff = schedule
                .get_or_insert_with(|| Schedule::new(policy.backoff))
                .next_delay();
            let verdict = decide(policy, attempt, next_backoff);
            tracing::debug!(
                method,
                attempt = number,
                code = crate::status::code_name(status.code),
                ?verdict,
                "rpc failed"
            );
            match verdict {
                Verdict::Reauthenticate => reauthenticated = true,
                Verdict::Retry(delay) => {
                    let wake = tokio::time::Instant::now() + delay;
                    match call.deadline {
                        Some(until) if until < wake => {
                            tokio::time::sleep_until(until).await;
                            return Outcome::DeadlinePassed;
                        }
                        _ => tokio::time::sleep_until(wake).await,
                    }
                    number += 1;
                }
                Verdict::Fail => {
                    return Outcome::Answer(Err(Error::Rpc {
                        method,
                        status,
                        fault,
                    }));
                }
            }
        }
    }
}

impl OperationsClient {
    /// The failure of a call that had no answer within `timeout`.
    fn silence(&self, timeout: Duration) -> (Status, Option<FaultKind>, bool) {
        let status = deadline_exceeded(&self.shared.peer, timeout);
        (status, Some(FaultKind::Silent), false)
    }
}

/// The transport with its errors as tonic statuses (a status in the chain, such as a
/// classified [`Fault`], kept with its source). A concrete error type, where the boxed one
/// trips the compiler's `Send` proof of tonic's unary future (rust-lang/rust#102211).
#[derive(Clone)]
pub(super) struct StatusErrors(pub(super) Transport);

impl tower::Service<http::Request<tonic::body::Body>> for StatusErrors {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::Status;
    type Future = futures_util::future::MapErr<
        <Transport as tower::Service<http::Request<tonic::body::Body>>>::Future,
        fn(tower::BoxError) -> tonic::Status,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx).map_err(tonic::Status::from_error)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        use futures_util::TryFutureExt as _;
        let to_status: fn(tower::BoxError) -> tonic::Status = tonic::Status::from_error;
        self.0.call(request).map_err(to_status)
    }
}

/// What [`OperationsClient::call`] needs to know about one RPC.
pub(crate) struct Call {
    pub(super) path: &'static str,
    /// The method's name, as errors and logs give it.
    pub(super) method: &'static str,
    pub(super) routing: HeaderValue,
    /// Whether the server is told the deadline (`grpc-timeout`). Only where it has work to
    /// abort: the calls that start operations. The others go without: the client enforces
    /// their deadline and resets the stream when it passes, which the server sees at once.
    /// WaitOperation carries its own `timeout` in the request, which the server keeps (the
    /// client's deadline is that plus a margin): a `grpc-timeout` would tell it nothing
    /// more, and would cost a second timer in tonic's channel besides the client's.
    pub(super) sends_deadline: bool,
    pub(super) retried: bool,
    pub(super) timeout: Option<Duration>,
    /// Another policy than the client's.
    pub(super) policy: Option<RetryPolicy>,
    /// A long call (WaitOperation), admitted by the pool to a long-call slot as it says.
    pub(super) long_call: Option<LongCall>,
    /// The caller's own deadline (a wait's): the call ends by it, with
    /// [`Outcome::DeadlinePassed`], whatever its per-call deadline. Bounded so, a call
    /// needs no timer around it besides its own.
    pub(super) deadline: Option<tokio::time::Instant>,
}

impl Call {
    /// A call of one of the crate's known methods.
    pub(super) fn of_method(method: Method, routing: HeaderValue) -> Self {
        Self::named(method.path(), method.name(), routing)
    }

    /// A call of any method, named by its path.
    pub(super) fn new(path: &'static str, routing: HeaderValue) -> Self {
        Self::named(path, method_name(path), routing)
    }

    fn named(path: &'static str, method: &'static str, routing: HeaderValue) -> Self {
        Call {
            path,
            method,
            routing,
            sends_deadline: false,
            retried: true,
            timeout: None,
            policy: None,
            long_call: None,
            deadline: None,
        }
    }
}

/// A crate error raised by a layer (a token source that failed), if the status carries one.
fn layer_error(status: &tonic::Status) -> Option<Error> {
    match carried::<Error>(status)? {
        Error::Auth {
            source_name,
            message,
        } => Some(Error::Auth {
            source_name: source_name.clone(),
            message: message.clone(),
        }),
        _ => None,
    }
}

/// The error of a long call refused by the pool, for callers that do not tell it apart.
pub(super) fn no_long_call_slot(method: Method) -> Error {
    no_long_call_slot_named(method.name())
}

fn no_long_call_slot_named(method: &'static str) -> Error {
    Error::Rpc {
        method,
        status: Status::new(Code::ResourceExhausted, NoLongCallSlot.to_string()),
        fault: None,
    }
}

/// The error of a call the caller's deadline ended, for callers that do not tell it apart.
pub(super) fn no_answer_within(method: Method, peer: &str, timeout: Duration) -> Error {
    no_answer_within_named(method.name(), peer, timeout)
}

fn no_answer_within_named(method: &'static str, peer: &str, timeout: Duration) -> Error {
    Error::Rpc {
        method,
        status: deadline_exceeded(peer, timeout),
        fault: Some(FaultKind::Silent),
    }
}

fn deadline_exceeded(peer: &str, timeout: Duration) -> Status {
    Status::new(
        Code::DeadlineExceeded,
        format!("no answer from {peer} within the per-call timeout of {timeout:?}"),
    )
}

/// The header that tells the server the call's deadline.
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The routing header.
const ROUTING: HeaderName = HeaderName::from_static(ROUTING_HEADER);

/// [`grpc_timeout`], remembered for the last timeout this thread wrote: a client's calls
/// mostly send the same one (the policy's per-call timeout, or a wait's), and a clone of
/// the remembered value costs no allocation.
fn grpc_timeout_cached(timeout: Duration) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(Duration, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            return grpc_timeout(timeout);
        };
        match &*last {
            Some((cached, value)) if *cached == timeout => value.clone(),
            _ => {
                let value = grpc_timeout(timeout);
                *last = Some((timeout, value.clone()));
                value
            }
        }
    })
}

/// `timeout` as gRPC writes it: at most 8 digits, in the most precise unit that fits
/// (`n`, `u`, `m`, `S`, `M`, `H`), saturating at 99,999,999 hours. What tonic's
/// `Request::set_timeout` sends, without its formatting machinery (a tenth of a polling
/// call's client CPU) or its panic on durations past 11,000 years.
fn grpc_timeout(timeout: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let units: [(u128, u8); 6] = [
        (timeout.as_nanos(), b'n'),
        (timeout.as_micros(), b'u'),
        (timeout.as_millis(), b'm'),
        (u128::from(timeout.as_secs()), b'S'),
        (u128::from(timeout.as_secs() / 60), b'M'),
        (u128::from(timeout.as_secs() / 3600), b'H'),
    ];
    let (value, unit) = units
        .into_iter()
        .find(|(value, _)| *value <= MAX)
        .unwrap_or((MAX, b'H'));
    // At most 8 digits, then the unit.
    let mut text = [0u8; 9];
    let mut at = text.len() - 1;
    text[at] = unit;
    let mut rest = value;
    loop {
        at -= 1;
        text[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    HeaderValue::from_bytes(&text[at..]).unwrap_or_else(|_| HeaderValue::from_static("99999999H"))
}

/// The routing header value `key=<percent-encoded value>`.
pub(super) fn routing(key: &str, value: &str) -> Result<HeaderValue> {
    let text = routing_text(key, value);
    // Percent-encoding leaves only visible ASCII: always a valid header value. From
    // `Bytes`, the text is kept, not copied.
    let mut value = HeaderValue::from_maybe_shared(bytes::Bytes::from(text.into_bytes()))
        .map_err(|_| Error::invalid_name(value, "it cannot be sent in a routing header"))?;
    // Sent without HPACK indexing: each operation's value is new, and indexing it would
    // only churn the connection's header table (evicting the headers every call repeats).
    value.set_sensitive(true);
    Ok(value)
}

/// `key=<percent-encoded value>`, as Google's clients send it: RFC 3986's unreserved
/// characters (`A-Z a-z 0-9 - _ . ~`) stay, every other byte of the UTF-8 becomes `%XX`.
pub(super) fn routing_text(key: &str, value: &str) -> String {
    let mut text = String::with_capacity(key.len() + 1 + value.len() + 16);
    text.push_str(key);
    text.push('=');
    // The encoder hands out the runs that need no escape whole.
    text.extend(percent_encoding::utf8_percent_encode(
        value,
        ROUTING_ESCAPED,
    ));
    text
}

/// Everything but RFC 3986's unreserved characters.
const ROUTING_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// tonic's prost codec with 1 KiB first buffers instead of 8 KiB. tonic allocates one
/// encode and one decode buffer per call at this size, and grows each to the message's
/// length when it is larger; operations are a few hundred bytes, and two 8 KiB buffers per
/// poll were a fifth of a polling client's CPU (glibc's slow path for blocks past its
/// 1 KiB per-thread cache) and most of an in-flight call's memory.
struct SmallBuffers<Req, Resp>(std::marker::PhantomData<fn(Req) -> Resp>);

impl<Req, Resp> SmallBuffers<Req, Resp> {
    /// What each call starts with: fits a GetOperation answer, and glibc's fast path.
    const SETTINGS: (usize, usize) = (1024, 32 * 1024);

    fn new() -> Self {
        SmallBuffers(std::marker::PhantomData)
    }

    fn settings() -> tonic::codec::BufferSettings {
        tonic::codec::BufferSettings::new(Self::SETTINGS.0, Self::SETTINGS.1)
    }
}

impl<Req, Resp> tonic::codec::Codec for SmallBuffers<Req, Resp>
where
    Req: prost::Message + Send + 'static,
    Resp: prost::Message + Default + Send + 'static,
{
    type Encode = Req;
    type Decode = Resp;
    type Encoder = tonic_prost::ProstEncoder<Req>;
    type Decoder = tonic_prost::ProstDecoder<Resp>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(Self::settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(Self::settings())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_values_are_percent_encoded_as_google_clients_do() {
        assert_eq!(
            routing_text("name", "projects/p/locations/us-west1/operations/a~b_c.d-e"),
            "name=projects%2Fp%2Flocations%2Fus-west1%2Foperations%2Fa~b_c.d-e"
        );
        assert_eq!(routing_text("name", "é "), "name=%C3%A9%20");
    }

    #[test]
    fn routing_values_are_sent_without_hpack_indexing() {
        let value = routing("name", "projects/p/locations/l/operations/1").unwrap();
        assert!(value.is_sensitive());
    }

    #[test]
    fn grpc_timeout_is_written_as_tonic_writes_it() {
        let mut durations = vec![
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(99_999_999),
            Duration::from_nanos(100_000_000),
            Duration::from_millis(250),
            Duration::from_secs(10),
            Duration::from_secs(70),
            Duration::from_secs(99_999_999),
            Duration::from_secs(100_000_000),
            Duration::from_secs(24 * 3600 + 10),
            Duration::from_secs(6_000_000_000),
        ];
        let mut seed = 7u64;
        for _ in 0..2000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            durations.push(Duration::from_nanos(seed >> (seed % 40)));
        }
        for duration in durations {
            let mut request = tonic::Request::new(());
            request.set_timeout(duration);
            let tonic_header = request.metadata().as_ref().get(GRPC_TIMEOUT).cloned();
            assert_eq!(Some(grpc_timeout(duration)), tonic_header, "{duration:?}");
        }
    }

    #[test]
    fn the_remembered_grpc_timeout_is_always_the_one_asked_for() {
        let durations = [
            Duration::from_secs(60),
            Duration::from_secs(60),
            Duration::from_millis(1500),
            Duration::from_secs(60),
            Duration::ZERO,
            Duration::ZERO,
            Duration::MAX,
        ];
        for timeout in durations {
            assert_eq!(
                grpc_timeout_cached(timeout),
                grpc_timeout(timeout),
                "{timeout:?}"
            );
        }
    }

    #[test]
    fn grpc_timeout_saturates_where_tonic_panics() {
        assert_eq!(grpc_timeout(Duration::MAX), "99999999H");
    }
}
