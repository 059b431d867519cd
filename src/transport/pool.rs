//! [`ChannelPool`]: several HTTP/2 connections to one endpoint, with never more streams on a
//! connection than it allows.
//!
//! # Why
//!
//! Google's front ends advertise `MAX_CONCURRENT_STREAMS = 100` per connection, and a
//! WaitOperation call holds its stream for as long as it waits. On one connection, 100
//! pending Waits would starve every other call (including the polls of operations that
//! finished long ago), and a burst of thousands of calls on a fresh connection gets streams
//! refused before the client has even read the server's limit.
//!
//! # How
//!
//! - The pool counts the streams in flight on each connection itself, from the moment a call
//!   is sent until its response body is finished or dropped, and never lets a connection
//!   carry more than [`PoolConfig::max_streams_per_connection`]. A call goes to the least
//!   busy connection; a new connection is opened only when all are full, up to
//!   [`PoolConfig::max_connections`]. Past that, calls queue in the pool (never on the
//!   wire, so the server never refuses a stream).
//! - Long calls (WaitOperation) may only use [`PoolConfig::long_call_slots`]: all but
//!   [`PoolConfig::reserved_streams`] of each connection's streams. A long call is marked on
//!   its request (a [`LongCall`] in its extensions); the pool admits it to a slot, queues it
//!   for one, or (for the waiter, which then polls for that round) refuses it at once with
//!   [`NoLongCallSlot`], so the reserve is always there for short calls: Get, List, Cancel,
//!   Delete, and the Vision start calls.
//!
//! - **Health.** Connections send HTTP/2 keepalive pings while calls are open
//!   ([`PoolConfig::keepalive_interval`]), so a dead connection is found rather than waited
//!   on. Each is retired after [`PoolConfig::max_connection_age`] (less up to a tenth, at
//!   random, so that connections opened together do not all go at once): Google's front
//!   ends close connections after about an hour, and Google's Java clients refresh theirs at
//!   about 50 minutes. Calls in flight finish on the retired connection. A connection whose
//!   call failed below HTTP (refused, reset, closed) is dropped and never picked again.
//!
//! This mirrors the channel pools of Google's own client libraries (dynamic channel pools
//! with a stream budget per channel), with the long-call reserve added because WaitOperation
//! is the one call here that parks a stream.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tower::{Service, ServiceExt as _};

use super::dial::Dialer;

type Body = tonic::body::Body;

/// How big a [`ChannelPool`] may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// The most streams in flight on one connection (default 100, what Google's front
    /// ends advertise). Set it to what the server allows.
    pub max_streams_per_connection: usize,
    /// The most connections (default 128).
    pub max_connections: usize,
    /// Streams per connection that long calls (WaitOperation) may not use (default 10).
    pub reserved_streams: usize,
    /// How often a connection with open calls is pinged; `None` never (default 2 min, as
    /// Google's Spanner clients do; Google's front ends refuse pings more often than that).
    pub keepalive_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is closed (default 20 s).
    pub keepalive_timeout: Duration,
    /// The age at which a connection is retired (default 50 min, less up to 10 % jitter).
    pub max_connection_age: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_streams_per_connection: 100,
            max_connections: 128,
            reserved_streams: 10,
            keepalive_interval: Some(Duration::from_secs(120)),
            keepalive_timeout: Duration::from_secs(20),
            max_connection_age: Duration::from_secs(50 * 60),
        }
    }
}

impl PoolConfig {
    fn streams(&self) -> usize {
        self.max_streams_per_connection.max(1)
    }

    fn connections(&self) -> usize {
        self.max_connections.max(1)
    }

    /// The most streams in flight over the whole pool.
    pub fn total_streams(&self) -> usize {
        self.streams().saturating_mul(self.connections())
    }

    /// The most long calls in flight over the whole pool (at least one).
    pub fn long_call_slots(&self) -> usize {
        let per_connection = self.streams().saturating_sub(self.reserved_streams).max(1);
        per_connection.saturating_mul(self.connections())
    }
}

/// A tower service over up to [`PoolConfig::max_connections`] connections to one endpoint.
/// Cheap to clone; clones share the connections.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use longrunning::OperationsClient;
/// use longrunning::transport::{ChannelPool, PoolConfig};
///
/// let endpoint = tonic::transport::Endpoint::from_static("http://127.0.0.1:8080");
/// let pool = ChannelPool::new(endpoint, PoolConfig::default());
/// let client = OperationsClient::from_pool(pool);
/// # }
/// ```
#[derive(Clone)]
pub struct ChannelPool {
    shared: Arc<PoolShared>,
}

struct PoolShared {
    endpoint: Endpoint,
    /// How connections are opened, when not by tonic's TCP dialling.
    dialer: Option<Dialer>,
    config: PoolConfig,
    connections: Mutex<Vec<Connection>>,
    /// One permit per stream the pool may carry in all.
    streams: Arc<Semaphore>,
    /// One permit per long call the pool may carry in all.
    long_calls: Arc<Semaphore>,
}

struct Connection {
    channel: Channel,
    in_flight: Arc<AtomicUsize>,
    /// When it stops taking new calls.
    retire_at: Instant,
}

impl Connection {
    fn new(channel: Channel, config: &PoolConfig) -> Self {
        let age = config
            .max_connection_age
            .mul_f64(1.0 - fastrand::f64() / 10.0);
        Connection {
            channel,
            in_flight: Arc::new(AtomicUsize::new(0)),
            retire_at: Instant::now() + age,
        }
    }
}

impl fmt::Debug for ChannelPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelPool")
            .field("endpoint", &self.shared.endpoint.uri())
            .field("config", &self.shared.config)
            .field("connections", &self.connections())
            .finish()
    }
}

impl ChannelPool {
    /// A pool to `endpoint` (its TLS and timeouts apply to every connection). Connections
    /// are opened when calls need them.
    pub fn new(endpoint: Endpoint, config: PoolConfig) -> Self {
        Self::with_dialer(endpoint, config, None)
    }

    /// A pool whose connections `dialer` opens (tonic's TCP dialling if `None`).
    pub(crate) fn with_dialer(
        endpoint: Endpoint,
        config: PoolConfig,
        dialer: Option<Dialer>,
    ) -> Self {
        let mut endpoint = endpoint
            .keep_alive_timeout(config.keepalive_timeout)
            .keep_alive_while_idle(false);
        if let Some(interval) = config.keepalive_interval {
            endpoint = endpoint.http2_keep_alive_interval(interval);
        }
        ChannelPool {
            shared: Arc::new(PoolShared {
                endpoint,
                dialer,
                config,
                connections: Mutex::new(Vec::new()),
                streams: Arc::new(Semaphore::new(config.total_streams())),
                long_calls: Arc::new(Semaphore::new(config.long_call_slots())),
            }),
        }
    }

    /// The same pool, with `channel` (already connected to the endpoint) as its first
    /// connection.
    pub(crate) fn with_connection(self, channel: Channel) -> Self {
        let config = self.shared.config;
        self.lock().push(Connection::new(channel, &config));
        self
    }

    /// A new connection to the endpoint, opened when first used.
    fn open(&self) -> Channel {
        match &self.shared.dialer {
            Some(dialer) => self
                .shared
                .endpoint
                .connect_with_connector_lazy(dialer.clone()),
            None => self.shared.endpoint.connect_lazy(),
        }
    }

    /// `host:port` of the endpoint, as errors name it.
    pub fn peer(&self) -> String {
        let uri = self.shared.endpoint.uri();
        let secure = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        format!("{}:{port}", uri.host().unwrap_or("the server"))
    }

    /// How many connections are open (or opening).
    pub fn connections(&self) -> usize {
        self.lock().len()
    }

    /// How many streams are in flight over all connections.
    pub fn in_flight(&self) -> usize {
        self.lock()
            .iter()
            .map(|c| c.in_flight.load(Ordering::SeqCst))
            .sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        crate::lock::lock(&self.shared.connections)
    }

    /// The least busy connection with room, opening one if all are full; counts the call
    /// on it. Connections past their age are retired first (their calls finish on them).
    fn pick(&self) -> (Channel, StreamGuard, Arc<AtomicUsize>) {
        let config = self.shared.config;
        let mut connections = self.lock();
        let now = Instant::now();
        connections.retain(|c| c.retire_at > now);
        let least_busy = connections
            .iter()
            .enumerate()
            .min_by_key(|(_, c)| c.in_flight.load(Ordering::SeqCst))
            .map(|(i, c)| (i, c.in_flight.load(Ordering::SeqCst)));
        let index = match least_busy {
            Some((i, busy)) if busy < config.streams() => i,
            Some((i, _)) if connections.len() >= config.connections() => i,
            _ => {
                connections.push(Connection::new(self.open(), &config));
                tracing::debug!(
                    connections = connections.len(),
                    "opened a pooled connection"
                );
                connections.len() - 1
            }
        };
        let connection = &connections[index];
        connection.in_flight.fetch_add(1, Ordering::SeqCst);
        (
            connection.channel.clone(),
            StreamGuard {
                in_flight: connection.in_flight.clone(),
                _permits: [None, None],
            },
            connection.in_flight.clone(),
        )
    }

    /// Drops the connection whose counter is `id` (its call failed below HTTP): the next
    /// call that needs one opens a new connection.
    fn drop_connection(&self, id: &Arc<AtomicUsize>) {
        self.lock().retain(|c| !Arc::ptr_eq(&c.in_flight, id));
    }
}

/// Marks a request as a long call (WaitOperation), which a [`ChannelPool`] admits only to a
/// long-call slot. Without the marker a request is a short call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LongCall {
    /// Take a slot if one is free; else the call fails at once with [`NoLongCallSlot`],
    /// and nothing is sent.
    IfFree,
    /// Wait for a slot.
    Queue,
}

/// A long call the pool refused: no long-call slot was free ([`LongCall::IfFree`]). Carried
/// as the source of the status the call fails with; nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoLongCallSlot;

impl fmt::Display for NoLongCallSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no long-call slot of the pool is free")
    }
}

impl std::error::Error for NoLongCallSlot {}

impl NoLongCallSlot {
    fn into_error(self) -> tower::BoxError {
        let mut status = tonic::Status::resource_exhausted(self.to_string());
        status.set_source(Arc::new(self));
        Box::new(status)
    }
}

/// Counts a stream as in flight until dropped (with the response body, or with the call),
/// and holds its stream permit and, for a long call, its long-call slot.
struct StreamGuard {
    in_flight: Arc<AtomicUsize>,
    _permits: [Option<OwnedSemaphorePermit>; 2],
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pin_project_lite::pin_project! {
    /// A response body of a [`ChannelPool`] call: its stream counts as in flight until the
    /// body is read to its end or dropped.
    pub struct PooledBody {
        #[pin]
        inner: Body,
        stream: StreamGuard,
    }
}

impl fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBody").finish_non_exhaustive()
    }
}

impl http_body::Body for PooledBody {
    type Data = prost::bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Service<http::Request<Body>> for ChannelPool {
    type Response = http::Response<PooledBody>;
    type Error = tower::BoxError;
    type Future = PoolFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Calls wait for a stream inside `call`, so that each waits only for its own.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let shared = &self.shared;
        // The long-call slot the call needs, if any: `Err` when it must queue for one.
        let slot = match request.extensions().get::<LongCall>() {
            None => Ok(None),
            Some(LongCall::IfFree) => match shared.long_calls.clone().try_acquire_owned() {
                Ok(slot) => Ok(Some(slot)),
                Err(_) => {
                    return PoolFuture {
                        state: PoolState::Failed {
                            error: Some(NoLongCallSlot.into_error()),
                        },
                    };
                }
            },
            Some(LongCall::Queue) => shared.long_calls.clone().try_acquire_owned().map(Some),
        };
        // The usual case: a slot and a stream are free now, and the call goes at once,
        // with nothing boxed. `None`: it must queue for a long-call slot.
        let slot = match slot {
            Ok(slot) => match shared.streams.clone().try_acquire_owned() {
                Ok(permit) => return self.send(request, permit, slot),
                Err(_) => Some(slot),
            },
            Err(_) => None,
        };
        let pool = self.clone();
        PoolFuture {
            state: PoolState::Queued {
                queued: Box::pin(async move {
                    let slot = match slot {
                        Some(slot) => slot,
                        None => Some(pool.shared.long_calls.clone().acquire_owned().await?),
                    };
                    let permit = pool.shared.streams.clone().acquire_owned().await?;
                    pool.send(request, permit, slot).await
                }),
            },
        }
    }
}

impl ChannelPool {
    /// Sends `request` on the least busy connection, holding `permit` (and `slot`) until
    /// its response body is done.
    fn send(
        &self,
        request: http::Request<Body>,
        permit: OwnedSemaphorePermit,
        slot: Option<OwnedSemaphorePermit>,
    ) -> PoolFuture {
        let (channel, mut guard, id) = self.pick();
        guard._permits = [Some(permit), slot];
        PoolFuture {
            state: PoolState::Sending {
                call: channel.oneshot(request),
                stream: Some(guard),
                id,
                pool: self.clone(),
            },
        }
    }
}

type QueuedCall =
    Pin<Box<dyn Future<Output = Result<http::Response<PooledBody>, tower::BoxError>> + Send>>;

pin_project_lite::pin_project! {
    /// The future of a [`ChannelPool`] call.
    pub struct PoolFuture {
        #[pin]
        state: PoolState,
    }
}

pin_project_lite::pin_project! {
    #[project = PoolStateProj]
    enum PoolState {
        /// On its connection.
        Sending {
            #[pin]
            call: tower::util::Oneshot<Channel, http::Request<Body>>,
            stream: Option<StreamGuard>,
            id: Arc<AtomicUsize>,
            pool: ChannelPool,
        },
        /// Waiting for a long-call slot or a stream.
        Queued { queued: QueuedCall },
        /// Refused before it was sent.
        Failed { error: Option<tower::BoxError> },
    }
}

impl fmt::Debug for PoolFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolFuture").finish_non_exhaustive()
    }
}

impl Future for PoolFuture {
    type Output = Result<http::Response<PooledBody>, tower::BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            PoolStateProj::Sending {
                call,
                stream,
                id,
                pool,
            } => match std::task::ready!(call.poll(cx)) {
                // The stream stays open until the body (with its trailers) is read or
                // dropped.
                Ok(response) => Poll::Ready(match stream.take() {
                    Some(stream) => Ok(response.map(|inner| PooledBody { inner, stream })),
                    None => Err("a pooled call polled after it ended".into()),
                }),
                Err(error) => {
                    tracing::debug!(%error, "dropping a pooled connection after a failed call");
                    pool.drop_connection(id);
                    Poll::Ready(Err(error.into()))
                }
            },
            PoolStateProj::Queued { queued } => queued.as_mut().poll(cx),
            PoolStateProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "a pooled call polled after it ended".into()))),
        }
    }
}
