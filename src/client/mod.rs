//! [`OperationsClient`]: the five `google.longrunning.Operations` RPCs, and start calls of
//! any API, on tonic's client.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | [`OperationsClient`]: construction and the five RPCs |
//! | `start` | [`StartCall`]: a call of any API that starts an operation |
//! | `call` | the call loop: tonic's `Grpc`, routing header, deadline, retries as decided |
//!
//! Every call goes through `tonic::client::Grpc` with the generated prost codec, the way the
//! generated clients call, over the crate's [`Transport`]. Each sends the routing header
//! `x-goog-request-params`, runs under a per-call deadline that the client enforces (and
//! sends as `grpc-timeout` on calls that start work; a WaitOperation's request carries its
//! own timeout), and retries as
//! its [`RetryPolicy`] decides ([`crate::transport::retry`]). WaitOperation is never retried
//! here: it is the waiter's building block.

mod call;
mod start;

use call::{Call, StatusErrors, routing};

use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;

use crate::error::{Error, Result};
use crate::latch::WaitShared;
use crate::name::{OperationName, validate_text};
use crate::proto::longrunning as pb;
use crate::rpc::Method;
use crate::status::{Code, Status};
use crate::transport::{ChannelPool, Connector, GuardLayer, LongCall, RetryPolicy, Transport};

pub(crate) use call::Outcome;

/// The operation type as it travels on the wire.
pub type RawOperation = pb::Operation;

/// The routing header Google's front ends use to route a request by resource name.
pub const ROUTING_HEADER: &str = "x-goog-request-params";

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

/// ListOperations page by page ([`OperationsClient::pager`]): the next page when asked
/// for, with the page size of your choice each time. A page token the server already gave
/// is an error (the listing would never end), and ends the listing.
///
/// ```no_run
/// # async fn run(client: longrunning::OperationsClient) -> longrunning::Result<()> {
/// use longrunning::ListOptions;
///
/// let mut pager = client.pager("projects/p/locations/us-west1", ListOptions::default());
/// while let Some(page) = pager.next_page().await {
///     for op in page?.operations {
///         println!("{}", op.name);
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Pager {
    client: OperationsClient,
    parent: String,
    options: ListOptions,
    /// Hashes of the tokens seen: a cycle of any length is caught, 8 bytes a page.
    seen_tokens: std::collections::HashSet<u64>,
    hasher: std::collections::hash_map::RandomState,
    finished: bool,
}

impl Pager {
    /// The largest page to ask for from the next page on (0 lets the server choose).
    pub fn set_page_size(&mut self, page_size: i32) {
        self.options.page_size = page_size;
    }

    /// The next page; `None` after the last page or an error.
    pub async fn next_page(&mut self) -> Option<Result<OperationsPage>> {
        if self.finished {
            return None;
        }
        let page = self.client.list(&self.parent, &self.options).await;
        let page = page.and_then(|page| match &page.next_page_token {
            Some(token)
                if !self
                    .seen_tokens
                    .insert(std::hash::BuildHasher::hash_one(&self.hasher, token)) =>
            {
                Err(repeated_token(token))
            }
            _ => Ok(page),
        });
        match &page {
            Ok(OperationsPage {
                next_page_token: Some(token),
                ..
            }) => self.options.page_token = token.clone(),
            _ => self.finished = true,
        }
        Some(page)
    }
}

/// A client of `google.longrunning.Operations`. Cheap to clone; clones share the transport.
///
/// ```no_run
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
    /// Behind one `Arc`, so that a clone (every operation handle holds one) costs one
    /// reference count.
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    grpc: tonic::client::Grpc<StatusErrors>,
    policy: RetryPolicy,
    /// What the client's waits share (and its clones', whatever their policy).
    waits: Arc<WaitShared>,
    /// `host:port` of the server, as errors name it.
    peer: Arc<str>,
}

impl Connector {
    /// The client, connecting on its first call. Checks everything that can be checked
    /// without the network.
    pub fn connect_lazy(self) -> Result<OperationsClient> {
        let policy = self.policy().clone();
        let (transport, peer) = self.assembled()?;
        Ok(OperationsClient::from_parts(transport, peer).with_retry_policy(policy))
    }

    /// The client, connected (one connection is dialled before this returns, so that an
    /// unreachable endpoint or an untrusted certificate is reported now).
    pub async fn connect(self) -> Result<OperationsClient> {
        let policy = self.policy().clone();
        let (transport, peer) = self.dial().await?;
        Ok(OperationsClient::from_parts(transport, peer).with_retry_policy(policy))
    }
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
    /// [`Connector`].
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self> {
        Connector::new().endpoint(endpoint).connect().await
    }

    /// A client on an existing tonic channel.
    pub fn new(channel: tonic::transport::Channel) -> Self {
        Self::from_service(channel)
    }

    /// A client on any tower service that speaks gRPC over HTTP/2, whatever its response
    /// body: a channel, a channel wrapped in middleware, or tonic's `InterceptedService`.
    /// The response guard is put in front of it, so its faults are classified as a
    /// [`Connector`]'s are.
    pub fn from_service<S, B>(service: S) -> Self
    where
        S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<B>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Error: Into<tower::BoxError>,
        S::Future: Send + 'static,
        B: http_body::Body<Data = prost::bytes::Bytes> + Send + 'static,
        B::Error: Into<tower::BoxError>,
    {
        let guarded = tower::ServiceBuilder::new()
            .layer(GuardLayer::new("the server", usize::MAX))
            .service(service);
        Self::from_parts(Transport::new(guarded), Arc::from("the server"))
    }

    /// A client on a [`Transport`] (e.g. from
    /// [`Connector::transport`](crate::transport::Connector::transport)), sharing its
    /// connections, stream budget and long-call slots with everything else on it.
    pub fn from_transport(transport: Transport) -> Self {
        Self::from_parts(transport, Arc::from("the server"))
    }

    /// A client on a [`ChannelPool`], with no token.
    pub fn from_pool(pool: ChannelPool) -> Self {
        let peer = Arc::from(pool.peer());
        let guarded = tower::ServiceBuilder::new()
            .layer(GuardLayer::new("the server", usize::MAX))
            .service(pool);
        Self::from_parts(Transport::new(guarded), peer)
    }

    fn from_parts(transport: Transport, peer: Arc<str>) -> Self {
        // The guard enforces the size limit (as RESOURCE_EXHAUSTED, before buffering).
        let grpc =
            tonic::client::Grpc::new(StatusErrors(transport)).max_decoding_message_size(usize::MAX);
        OperationsClient {
            shared: Arc::new(Shared {
                peer,
                grpc,
                policy: RetryPolicy::default(),
                waits: Arc::new(WaitShared::new()),
            }),
        }
    }

    /// The same client with another retry policy (what it has learnt of the server stays
    /// shared).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        Arc::make_mut(&mut self.shared).policy = policy;
        self
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.shared.policy
    }

    /// What the client's waits share ([`crate::wait`] alone looks inside).
    /// `host:port` of the endpoint, as errors name it.
    pub(crate) fn peer(&self) -> &str {
        &self.shared.peer
    }

    pub(crate) fn waits(&self) -> &Arc<WaitShared> {
        &self.shared.waits
    }

    /// GetOperation: the operation's latest state.
    pub async fn get(&self, name: impl AsRef<str>) -> Result<RawOperation> {
        self.get_with(name.as_ref(), true).await
    }

    /// GetOperation for the waiter, which retries by itself: sent once (once more at once
    /// if it provably never reached the server, or with a new token after a rejected one).
    /// It ends by `deadline` (the wait's) if that comes first.
    pub(crate) async fn get_once(
        &self,
        name: &str,
        deadline: Option<tokio::time::Instant>,
    ) -> Outcome<RawOperation> {
        let (mut call, request) = match self.get_call(name) {
            Ok(prepared) => prepared,
            Err(err) => return Outcome::Answer(Err(err)),
        };
        call.retried = false;
        call.deadline = deadline;
        self.call_admitted(call, request).await
    }

    async fn get_with(&self, name: &str, retried: bool) -> Result<RawOperation> {
        let (mut call, request) = self.get_call(name)?;
        call.retried = retried;
        self.call(call, request).await
    }

    fn get_call(&self, name: &str) -> Result<(Call, pb::GetOperationRequest)> {
        let name = OperationName::parse(name)?;
        let call = Call::of_method(Method::GetOperation, routing("name", name.as_str())?);
        Ok((call, pb::GetOperationRequest { name: name.into() }))
    }

    /// ListOperations: one page of the operations under `parent` (e.g.
    /// `projects/P/locations/L`; empty for all the server lists). A page whose next token is
    /// the token it was asked with is an error: the listing would never end.
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
        let call = Call::of_method(Method::ListOperations, routing("name", parent)?);
        let response: pb::ListOperationsResponse = self.call(call, request).await?;
        let next_page_token = Some(response.next_page_token).filter(|t| !t.is_empty());
        if let Some(token) = &next_page_token
            && *token == options.page_token
        {
            return Err(repeated_token(token));
        }
        Ok(OperationsPage {
            operations: response.operations,
            next_page_token,
        })
    }

    /// ListOperations page by page, each page asked for when wanted: a [`Pager`].
    pub fn pager(&self, parent: &str, options: ListOptions) -> Pager {
        Pager {
            client: self.clone(),
            parent: parent.to_owned(),
            options,
            seen_tokens: Default::default(),
            hasher: Default::default(),
            finished: false,
        }
    }

    /// ListOperations page by page: a stream of pages, each fetched when the previous one
    /// is used up (one page in memory at a time). The first error ends the stream; so does
    /// a page token the server already gave (an error: the listing would never end).
    ///
    /// `options.page_token` is where the listing starts (empty for the beginning); each
    /// page's `next_page_token` resumes right after it.
    pub fn pages(
        &self,
        parent: &str,
        options: ListOptions,
    ) -> impl Stream<Item = Result<OperationsPage>> + Send + 'static + use<> {
        futures_util::stream::unfold(self.pager(parent, options), |mut pager| async move {
            let page = pager.next_page().await?;
            Some((page, pager))
        })
    }

    /// ListOperations over every page: a stream of operations ([`pages`](Self::pages),
    /// flattened). The first error ends the stream.
    pub fn list_all(
        &self,
        parent: &str,
        options: ListOptions,
    ) -> impl Stream<Item = Result<RawOperation>> + Send + 'static + use<> {
        use futures_util::StreamExt as _;
        self.pages(parent, options).flat_map(|page| {
            let items: Vec<Result<RawOperation>> = match page {
                Ok(page) => page.operations.into_iter().map(Ok).collect(),
                Err(err) => vec![Err(err)],
            };
            futures_util::stream::iter(items)
        })
    }

    /// CancelOperation: asks the server to cancel (best effort). On success the operation
    /// later finishes with `error.code = 1` (CANCELLED).
    pub async fn cancel(&self, name: impl AsRef<str>) -> Result<()> {
        let name = OperationName::parse(name.as_ref())?;
        let call = Call::of_method(Method::CancelOperation, routing("name", name.as_str())?);
        self.call(call, pb::CancelOperationRequest { name: name.into() })
            .await
    }

    /// DeleteOperation: the caller is no longer interested in the result. Does not cancel.
    pub async fn delete(&self, name: impl AsRef<str>) -> Result<()> {
        let name = OperationName::parse(name.as_ref())?;
        let call = Call::of_method(Method::DeleteOperation, routing("name", name.as_str())?);
        self.call(call, pb::DeleteOperationRequest { name: name.into() })
            .await
    }

    /// WaitOperation, one RPC: blocks until the operation is done or `timeout` passes on
    /// the server (which may answer earlier, not done). Not retried; many servers answer
    /// `UNIMPLEMENTED`. To wait for an operation to finish, use the waiter
    /// ([`OperationsClient::wait_for`]), which falls back to polling.
    ///
    /// On a [`Connector`]'s pool the call takes one of the pool's long-call slots, queueing
    /// for one when none is free ([`PoolConfig`](crate::transport::PoolConfig)).
    pub async fn wait_operation(
        &self,
        name: impl AsRef<str>,
        timeout: Duration,
    ) -> Result<RawOperation> {
        match self
            .wait_once(name.as_ref(), timeout, LongCall::Queue, None)
            .await
        {
            Outcome::Answer(answer) => answer,
            Outcome::NoLongCallSlot => Err(call::no_long_call_slot(Method::WaitOperation)),
            // Only a caller's deadline ends a call so, and none was given.
            Outcome::DeadlinePassed | Outcome::DeadlineBeforeSending => Err(
                call::no_answer_within(Method::WaitOperation, self.peer(), timeout),
            ),
        }
    }

    /// One WaitOperation, admitted to a long-call slot as `long_call` says: for the waiter,
    /// which learns from [`Outcome::NoLongCallSlot`] that nothing was sent. It ends by
    /// `deadline` (the wait's) if that comes first.
    pub(crate) async fn wait_once(
        &self,
        name: &str,
        timeout: Duration,
        long_call: LongCall,
        deadline: Option<tokio::time::Instant>,
    ) -> Outcome<RawOperation> {
        let name = match OperationName::parse(name) {
            Ok(name) => name,
            Err(err) => return Outcome::Answer(Err(err)),
        };
        let routing = match routing("name", name.as_str()) {
            Ok(routing) => routing,
            Err(err) => return Outcome::Answer(Err(err)),
        };
        let mut call = Call::of_method(Method::WaitOperation, routing);
        // The server answers by `timeout`; the client's deadline leaves it the usual margin.
        call.timeout = Some(timeout.saturating_add(self.shared.policy.per_call_timeout));
        call.retried = false;
        call.long_call = Some(long_call);
        call.deadline = deadline;
        let request = pb::WaitOperationRequest {
            name: name.into(),
            timeout: Some(proto_duration(timeout)),
        };
        self.call_admitted(call, request).await
    }
}

fn repeated_token(token: &str) -> Error {
    let shown: String = token.chars().take(80).collect();
    Error::Rpc {
        fault: None,
        method: "ListOperations",
        status: Status::new(
            Code::Internal,
            format!("the server repeated the page token {shown:?}: the listing would never end"),
        ),
    }
}

/// A `google.protobuf.Duration` from a std duration (saturating at the proto's range).
pub(crate) fn proto_duration(duration: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(duration.subsec_nanos()).unwrap_or(0),
    }
}

pub use start::StartCall;
