//! [`OperationsClient`]: the five `google.longrunning.Operations` RPCs over one channel.
//!
//! Every call sends the routing header `x-goog-request-params: name=<percent-encoded name>`,
//! runs under a per-call deadline that the client enforces (and sends as `grpc-timeout` on
//! WaitOperation and on calls that start work), and (for Get, List, Cancel and Delete)
//! retries the codes of its [`RetryPolicy`] with jittered exponential backoff, as Google's
//! own clients do. WaitOperation is never retried here: it is the waiter's building block.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use http::{HeaderName, HeaderValue};
use tonic::transport::Channel;

use crate::backoff::Backoff;
use crate::error::{Code, Error, Result, Status};
use crate::name::{OperationName, validate_text};
use crate::proto::longrunning as pb;
use crate::unary;

/// The operation type as it travels on the wire.
pub type RawOperation = pb::Operation;

/// The type-erased transport every call of this crate runs on: a tonic [`Channel`], a
/// [`ChannelPool`](crate::pool::ChannelPool), possibly wrapped in tower middleware (such as
/// an auth layer).
pub(crate) type GrpcService = tower::util::BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    tower::BoxError,
>;

/// The routing header Google's front ends use to route a request by resource name.
pub const ROUTING_HEADER: &str = "x-goog-request-params";

const ROUTING: HeaderName = HeaderName::from_static(ROUTING_HEADER);
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The `google.longrunning.Operations` RPCs.
pub(crate) mod methods {
    use crate::unary::Method;

    const SERVICE: &str = "google.longrunning.Operations";
    pub(crate) static GET_OPERATION: Method = Method::new(SERVICE, "GetOperation");
    pub(crate) static LIST_OPERATIONS: Method = Method::new(SERVICE, "ListOperations");
    pub(crate) static CANCEL_OPERATION: Method = Method::new(SERVICE, "CancelOperation");
    pub(crate) static DELETE_OPERATION: Method = Method::new(SERVICE, "DeleteOperation");
    pub(crate) static WAIT_OPERATION: Method = Method::new(SERVICE, "WaitOperation");
}

/// How RPCs other than WaitOperation are timed out and retried.
///
/// The default is Google's service config for `google.longrunning.Operations`: a 10 s
/// per-call timeout, 5 attempts, and backoff from 0.5 s to 10 s, ×2, retrying only
/// `UNAVAILABLE`.
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
    /// passes; calls that start work, and WaitOperation, also send it as `grpc-timeout`.
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

/// Options of one ListOperations call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// The server's filter expression (empty for none).
    pub filter: String,
    /// The largest page the server should return (0 lets the server choose).
    pub page_size: i32,
    /// The token of the page to fetch (empty for the first).
    pub page_token: String,
}

/// One page of ListOperations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperationsPage {
    /// The operations on this page.
    pub operations: Vec<RawOperation>,
    /// The token of the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// A client of `google.longrunning.Operations`. Cheap to clone; clones share the channel.
///
/// ```no_run
/// use std::time::Duration;
/// use longrunning::OperationsClient;
///
/// # async fn run() -> longrunning::Result<()> {
/// let client = OperationsClient::connect("http://127.0.0.1:8080").await?;
/// let op = client.get("locations/us-west1/operations/bc4e1d412863e626").await?;
/// println!("{} done={}", op.name, op.done);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OperationsClient {
    /// Behind one `Arc`, so that a clone (every [`Operation`](crate::Operation) handle holds
    /// one) costs one reference count.
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    service: GrpcService,
    policy: RetryPolicy,
    /// `policy.per_call_timeout` in `grpc-timeout` form, made once.
    grpc_timeout: HeaderValue,
    /// What this client has learnt about the server's WaitOperation, shared by its clones
    /// and by clients made from it with another retry policy.
    wait_support: Arc<tokio::sync::watch::Sender<WaitSupport>>,
    /// On a [`ChannelPool`](crate::pool::ChannelPool): the slots WaitOperation calls take.
    long_call_slots: Option<Arc<tokio::sync::Semaphore>>,
}

/// Whether the server implements WaitOperation, as far as a client knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitSupport {
    /// Not asked yet.
    Unknown,
    /// One wait is asking now.
    Probing,
    /// A WaitOperation call succeeded.
    Supported,
    /// WaitOperation answered UNIMPLEMENTED.
    Unsupported,
}

impl std::fmt::Debug for OperationsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationsClient")
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

impl OperationsClient {
    /// Connects to `endpoint` (`https://…`, or `http://…` for an emulator) without
    /// credentials. For tokens, a quota project or extra CAs use
    /// [`Connector`](crate::connect::Connector).
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self> {
        crate::connect::Connector::new()
            .endpoint(endpoint)
            .connect()
            .await
    }

    /// A client on an existing channel.
    pub fn new(channel: Channel) -> Self {
        Self::from_service(channel)
    }

    /// A client on any tower service that speaks gRPC over HTTP/2, such as a channel
    /// wrapped in middleware.
    pub fn from_service<S>(service: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Error: Into<tower::BoxError>,
        S::Future: Send + 'static,
    {
        let service = tower::ServiceBuilder::new()
            .map_err(|e: S::Error| e.into())
            .service(service);
        let policy = RetryPolicy::default();
        OperationsClient {
            shared: Arc::new(Shared {
                service: GrpcService::new(service),
                grpc_timeout: unary::grpc_timeout(policy.per_call_timeout),
                policy,
                wait_support: Arc::new(tokio::sync::watch::Sender::new(WaitSupport::Unknown)),
                long_call_slots: None,
            }),
        }
    }

    /// A client on a [`ChannelPool`](crate::pool::ChannelPool): its waits keep WaitOperation
    /// calls to the pool's long-call slots.
    pub fn from_pool(pool: crate::pool::ChannelPool) -> Self {
        let slots = pool.long_call_slots();
        Self::from_service(pool).with_long_call_slots(slots)
    }

    pub(crate) fn with_long_call_slots(mut self, slots: Arc<tokio::sync::Semaphore>) -> Self {
        Arc::make_mut(&mut self.shared).long_call_slots = Some(slots);
        self
    }

    /// The same client with another retry policy.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        shared.grpc_timeout = unary::grpc_timeout(policy.per_call_timeout);
        shared.policy = policy;
        self
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.shared.policy
    }

    /// What this client has learnt about the server's WaitOperation.
    pub(crate) fn wait_support(&self) -> &Arc<tokio::sync::watch::Sender<WaitSupport>> {
        &self.shared.wait_support
    }

    /// On a [`ChannelPool`](crate::pool::ChannelPool): the slots WaitOperation calls take.
    pub(crate) fn long_call_slots(&self) -> Option<&Arc<tokio::sync::Semaphore>> {
        self.shared.long_call_slots.as_ref()
    }

    /// GetOperation: the operation's latest state.
    pub fn get<'a, N: AsRef<str>>(
        &'a self,
        name: N,
    ) -> impl Future<Output = Result<RawOperation>> + Send + use<'a, N> {
        self.get_with(name.as_ref(), true)
    }

    /// GetOperation, retried under the policy or sent once (the waiter retries by itself).
    /// The name is checked before the future is made, so the future borrows only `self`.
    pub(crate) fn get_with<'a>(
        &'a self,
        name: &str,
        retried: bool,
    ) -> impl Future<Output = Result<RawOperation>> + Send + use<'a> {
        let prepared = OperationName::parse(name).map(|name| {
            let request = pb::GetOperationRequest { name: name.into() };
            let rpc = if retried {
                Rpc::retried(&methods::GET_OPERATION, "name", &request.name)
            } else {
                Rpc::once(&methods::GET_OPERATION, "name", &request.name)
            };
            (rpc, request)
        });
        async move {
            let (rpc, request) = prepared?;
            self.call(rpc, &request).await
        }
    }

    /// ListOperations: one page of the operations under `parent` (e.g.
    /// `projects/P/locations/L`; empty for all the server lists).
    pub async fn list(&self, parent: &str, options: &ListOptions) -> Result<OperationsPage> {
        if !parent.is_empty() {
            validate_text(parent, "list parent")?;
        }
        let request = pb::ListOperationsRequest {
            name: parent.to_owned(),
            filter: options.filter.clone(),
            page_size: options.page_size,
            page_token: options.page_token.clone(),
            return_partial_success: false,
        };
        let response: pb::ListOperationsResponse = self
            .call(
                Rpc::retried(&methods::LIST_OPERATIONS, "name", parent),
                &request,
            )
            .await?;
        Ok(OperationsPage {
            operations: response.operations,
            next_page_token: Some(response.next_page_token).filter(|t| !t.is_empty()),
        })
    }

    /// ListOperations over every page: a stream of operations that fetches the next page
    /// when the previous one is used up. The first error ends the stream.
    ///
    /// `options.page_token` is where the listing starts (empty for the beginning).
    pub fn list_all(
        &self,
        parent: &str,
        options: ListOptions,
    ) -> impl Stream<Item = Result<RawOperation>> + Send + 'static + use<> {
        struct State {
            client: OperationsClient,
            parent: String,
            options: ListOptions,
            page: std::vec::IntoIter<RawOperation>,
            finished: bool,
        }
        let state = State {
            client: self.clone(),
            parent: parent.to_owned(),
            options,
            page: Vec::new().into_iter(),
            finished: false,
        };
        futures_util::stream::unfold(state, |mut state| async move {
            loop {
                if let Some(op) = state.page.next() {
                    return Some((Ok(op), state));
                }
                if state.finished {
                    return None;
                }
                match state.client.list(&state.parent, &state.options).await {
                    Ok(page) => {
                        state.page = page.operations.into_iter();
                        match page.next_page_token {
                            Some(token) => state.options.page_token = token,
                            None => state.finished = true,
                        }
                    }
                    Err(err) => {
                        state.finished = true;
                        state.page = Vec::new().into_iter();
                        return Some((Err(err), state));
                    }
                }
            }
        })
    }

    /// CancelOperation: asks the server to cancel (best effort). On success the operation
    /// later finishes with `error.code = 1` (CANCELLED).
    pub async fn cancel(&self, name: impl AsRef<str>) -> Result<()> {
        let name = OperationName::parse(name.as_ref())?;
        let request = pb::CancelOperationRequest { name: name.into() };
        self.call(
            Rpc::retried(&methods::CANCEL_OPERATION, "name", &request.name),
            &request,
        )
        .await
    }

    /// DeleteOperation: the caller is no longer interested in the result. Does not cancel.
    pub async fn delete(&self, name: impl AsRef<str>) -> Result<()> {
        let name = OperationName::parse(name.as_ref())?;
        let request = pb::DeleteOperationRequest { name: name.into() };
        self.call(
            Rpc::retried(&methods::DELETE_OPERATION, "name", &request.name),
            &request,
        )
        .await
    }

    /// WaitOperation, once: blocks until the operation is done or `timeout` passes on the
    /// server (which may answer earlier, not done). Not retried; many servers answer
    /// `UNIMPLEMENTED`.
    pub async fn wait(&self, name: impl AsRef<str>, timeout: Duration) -> Result<RawOperation> {
        let name = OperationName::parse(name.as_ref())?;
        let request = pb::WaitOperationRequest {
            name: name.into(),
            timeout: Some(proto_duration(timeout)),
        };
        // The server answers by `timeout`; the client's deadline leaves it the usual margin.
        let deadline = timeout.saturating_add(self.shared.policy.per_call_timeout);
        self.call(
            Rpc::once(&methods::WAIT_OPERATION, "name", &request.name)
                .with_timeout(deadline)
                .sending_deadline(),
            &request,
        )
        .await
    }

    /// Runs one unary RPC on this client's channel, with the routing header, the per-call
    /// timeout and, if `rpc` allows it, retries.
    pub(crate) async fn call<Req, Resp>(&self, rpc: Rpc, request: &Req) -> Result<Resp>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        let policy = &self.shared.policy;
        let method = rpc.method.name;
        let routing = rpc.routing?;
        let timeout = rpc.timeout.unwrap_or(policy.per_call_timeout);
        let grpc_timeout = match rpc.timeout {
            _ if !rpc.sends_deadline => None,
            Some(timeout) => Some(unary::grpc_timeout(timeout)),
            None => Some(self.shared.grpc_timeout.clone()),
        };
        let frame = unary::Frame::encode(request).map_err(|status| Error::Rpc {
            method,
            status: Status::from_tonic(&status),
        })?;
        let max_attempts = if rpc.retried {
            policy.max_attempts.max(1)
        } else {
            1
        };
        let mut delays = policy.backoff.delays();
        let mut attempt = 1;
        let mut reauthenticated = false;
        loop {
            let mut headers = unary::call_headers();
            headers.insert(ROUTING, routing.clone());
            if let Some(grpc_timeout) = &grpc_timeout {
                headers.insert(GRPC_TIMEOUT, grpc_timeout.clone());
            }
            let deadline = tokio::time::Instant::now() + timeout;
            // On the heap while in flight: a waiter holds thousands of these futures, most
            // of them between calls, and then they are small.
            let sent = Box::pin(unary::call(
                self.shared.service.clone(),
                rpc.method,
                headers,
                frame.clone(),
            ));
            let answer = tokio::time::timeout_at(deadline, sent).await;
            let mut token_rejected = false;
            let status = match answer {
                Ok(Ok(response)) => {
                    tracing::trace!(method = method, attempt, "rpc succeeded");
                    return Ok(response);
                }
                // tonic's server ends a call whose `grpc-timeout` expired with CANCELLED;
                // for the caller it is the same deadline as ours.
                Ok(Err(status))
                    if status.code() == Code::Cancelled
                        && tokio::time::Instant::now() >= deadline =>
                {
                    deadline_exceeded(timeout)
                }
                Ok(Err(status)) => match crate::auth::auth_failure(&status) {
                    // No token, no call: retrying would ask the failing source again.
                    Some(auth_error) => return Err(auth_error),
                    None => {
                        token_rejected =
                            status.metadata().contains_key(crate::auth::TOKEN_REJECTED);
                        Status::from_tonic(&status)
                    }
                },
                Err(_) => deadline_exceeded(timeout),
            };
            // The auth layer dropped a rejected token: one more try fetches a new one. Safe
            // for every call, start calls included: the server did nothing.
            let reauthenticate = token_rejected && !reauthenticated;
            if reauthenticate {
                reauthenticated = true;
                tracing::debug!(method = method, "retrying once after UNAUTHENTICATED");
                continue;
            }
            let retry = attempt < max_attempts && policy.retry_codes.contains(&status.code);
            tracing::debug!(
                method = method,
                attempt,
                code = crate::error::code_name(status.code),
                retry,
                "rpc failed"
            );
            if !retry {
                return Err(Error::Rpc { method, status });
            }
            let delay = status
                .retry_delay()
                .or_else(|| delays.next())
                .unwrap_or(policy.backoff.max);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// What [`OperationsClient::call`] needs to know about one RPC.
pub(crate) struct Rpc {
    method: &'static unary::Method,
    /// `key=<percent-encoded value>`, computed when the call is described, so that the
    /// request it was taken from can be moved into the call.
    routing: Result<HeaderValue>,
    /// Whether the server is told the deadline (`grpc-timeout`). Only where it has work to
    /// abort: the calls that start operations, and WaitOperation. The reads (Get, List,
    /// Cancel, Delete) go without: the client enforces their deadline and resets the stream
    /// when it passes, which the server sees at once, and a seventh request header would
    /// cost 2% of a round trip (`cargo bench --bench instructions`).
    sends_deadline: bool,
    retried: bool,
    timeout: Option<Duration>,
}

impl Rpc {
    /// An idempotent RPC, retried under the client's policy.
    pub(crate) fn retried(method: &'static unary::Method, key: &'static str, value: &str) -> Self {
        Rpc {
            method,
            routing: routing_header(key, value),
            sends_deadline: false,
            retried: true,
            timeout: None,
        }
    }

    /// An RPC sent once (it starts work, or it is a long wait).
    pub(crate) fn once(method: &'static unary::Method, key: &'static str, value: &str) -> Self {
        Rpc {
            retried: false,
            ..Self::retried(method, key, value)
        }
    }

    fn with_timeout(self, timeout: Duration) -> Self {
        Rpc {
            timeout: Some(timeout),
            ..self
        }
    }

    /// Sends the deadline to the server as `grpc-timeout`.
    pub(crate) fn sending_deadline(self) -> Self {
        Rpc {
            sends_deadline: true,
            ..self
        }
    }
}

fn deadline_exceeded(timeout: Duration) -> Status {
    Status {
        code: Code::DeadlineExceeded,
        message: format!("no answer within the per-call timeout of {timeout:?}"),
        details: Vec::new(),
    }
}

/// `key=<percent-encoded value>`, as Google's clients send it: RFC 3986's unreserved
/// characters stay, every other byte of the UTF-8 becomes `%XX`.
fn routing_header(key: &str, value: &str) -> Result<HeaderValue> {
    // Encoded on the stack when even an all-escaped value fits (names are short), then
    // copied once into the header.
    let mut stack = [0u8; 256];
    let longest = key.len() + 1 + 3 * value.len();
    let header = if longest <= stack.len() {
        let len = percent_encode(key, value, &mut stack);
        HeaderValue::from_bytes(stack.get(..len).unwrap_or_default())
    } else {
        let mut heap = vec![0u8; longest];
        let len = percent_encode(key, value, &mut heap);
        heap.truncate(len);
        HeaderValue::from_maybe_shared(prost::bytes::Bytes::from(heap))
    };
    // Percent-encoding leaves only visible ASCII, which is always a valid header value.
    header.map_err(|_| Error::invalid_name(value, "it cannot be sent in a routing header"))
}

/// Writes `key=<percent-encoded value>` into `out` (at least `key + 1 + 3 × value` long)
/// and returns its length.
fn percent_encode(key: &str, value: &str, out: &mut [u8]) -> usize {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut len = 0;
    let mut put = |byte: u8| {
        if let Some(slot) = out.get_mut(len) {
            *slot = byte;
        }
        len += 1;
    };
    key.bytes().for_each(&mut put);
    put(b'=');
    for byte in value.bytes() {
        if UNRESERVED[usize::from(byte)] {
            put(byte);
        } else {
            put(b'%');
            put(HEX[usize::from(byte >> 4)]);
            put(HEX[usize::from(byte & 0x0f)]);
        }
    }
    len
}

/// RFC 3986's unreserved characters, `A-Z a-z 0-9 - _ . ~`, by byte.
static UNRESERVED: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        byte += 1;
    }
    table
};

/// A `google.protobuf.Duration` from a std duration (saturating at the proto's range).
pub(crate) fn proto_duration(duration: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(duration.subsec_nanos()).unwrap_or(0),
    }
}
