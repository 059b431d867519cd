//! An in-process fake of the Operations, Vision ProductSearch and Vision ImageAnnotator
//! services, for your tests (feature `testing`).
//!
//! [`FakeServer`] serves on a random loopback port. Operations it creates follow a
//! [`Script`]: metadata states over time, then a response or an error. Time is tokio's, so
//! a test with a paused clock (`#[tokio::test(start_paused = true)]`) drives operations to
//! completion instantly and exactly. Switches make it misbehave the way real servers do:
//! WaitOperation answering UNIMPLEMENTED, the first N calls of a method failing UNAVAILABLE,
//! added latency, a stream limit per connection, restarts on the same port. Every request's
//! headers are recorded for assertions.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> longrunning::Result<()> {
//! use longrunning::testing::{FakeMethod, FakeServer};
//!
//! let fake = FakeServer::start().await?;
//! fake.fail_next(FakeMethod::GetOperation, 2); // the client's retries absorb these
//! let name = fake.insert_running("projects/p/locations/us-west1/operations/op1");
//! let op = fake.client().get(&name).await?;
//! assert!(!op.done);
//! assert_eq!(fake.calls(FakeMethod::GetOperation), 3);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use prost::{Message, Name};
use prost_types::Any;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};

use crate::any::pack;
use crate::client::{OperationsClient, RawOperation};
use crate::error::{Error, Result};
use crate::proto::longrunning as lro;
use crate::proto::longrunning::operation::Result as RawResult;
use crate::proto::longrunning::operations_server::{Operations, OperationsServer};
use crate::proto::rpc;
use crate::proto::vision as pb;
use crate::proto::vision::image_annotator_server::{ImageAnnotator, ImageAnnotatorServer};
use crate::proto::vision::product_search_server::{ProductSearch, ProductSearchServer};

/// The RPCs the fake implements: the crate's one table of RPCs.
pub use crate::rpc::Method as FakeMethod;

/// How a scripted operation ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done with this `response`.
    Response(Any),
    /// Done with this `error`.
    Error(rpc::Status),
    /// Done with neither (valid only for `google.protobuf.Empty` responses).
    NoResult,
}

impl Outcome {
    /// Done with `message` packed as the response.
    pub fn response<T: Message + Name>(message: &T) -> Self {
        Outcome::Response(pack(message))
    }

    /// Done with an error of `code` and `message`.
    pub fn error(code: tonic::Code, message: impl Into<String>) -> Self {
        Outcome::Error(rpc::Status {
            code: code as i32,
            message: message.into(),
            details: Vec::new(),
        })
    }
}

/// What a fake operation shows over time.
///
/// ```
/// use std::time::Duration;
/// use longrunning::testing::{Outcome, Script};
/// use longrunning::vision::pb;
///
/// let processing = pb::BatchOperationMetadata { state: 1, ..Default::default() };
/// let successful = pb::BatchOperationMetadata { state: 2, ..Default::default() };
/// let script = Script::finishing_after(Duration::from_secs(5), Outcome::response(&()))
///     .metadata_from(Duration::ZERO, &processing)
///     .final_metadata(&successful);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// Metadata shown from each offset on, in order of offset.
    phases: Vec<(Duration, Any)>,
    /// When it finishes by itself, counted from its creation; `None`: never.
    done_after: Option<Duration>,
    outcome: Outcome,
    final_metadata: Option<Any>,
    cancelled_metadata: Option<Any>,
}

impl Script {
    /// Finishes with `outcome` `after` its creation. No metadata until some is added.
    pub fn finishing_after(after: Duration, outcome: Outcome) -> Self {
        Script {
            phases: Vec::new(),
            done_after: Some(after),
            outcome,
            final_metadata: None,
            cancelled_metadata: None,
        }
    }

    /// Never finishes by itself (until [`FakeServer::finish`] or a cancel).
    pub fn running() -> Self {
        Script {
            done_after: None,
            ..Self::finishing_after(Duration::ZERO, Outcome::NoResult)
        }
    }

    /// Shows `metadata` from `offset` after creation on (until a later phase or the end).
    pub fn metadata_from<M: Message + Name>(mut self, offset: Duration, metadata: &M) -> Self {
        self.phases.push((offset, pack(metadata)));
        self.phases.sort_by_key(|(offset, _)| *offset);
        self
    }

    /// Shows `metadata` once finished.
    pub fn final_metadata<M: Message + Name>(mut self, metadata: &M) -> Self {
        self.final_metadata = Some(pack(metadata));
        self
    }

    /// Shows `metadata` once cancelled.
    pub fn cancelled_metadata<M: Message + Name>(mut self, metadata: &M) -> Self {
        self.cancelled_metadata = Some(pack(metadata));
        self
    }

    /// How long after creation the operation finishes by itself, if it does.
    pub fn done_after(&self) -> Option<Duration> {
        self.done_after
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The RPC.
    pub method: FakeMethod,
    /// The operation name, list parent or request parent it was about.
    pub resource: String,
    /// Its metadata (HTTP/2 headers), as received.
    pub headers: http::HeaderMap,
    /// When it arrived (tokio's clock, so paused-clock tests can check schedules).
    pub at: Instant,
}

/// Builds a [`FakeServer`] with non-default switches.
#[derive(Debug, Clone)]
pub struct FakeServerBuilder {
    addr: SocketAddr,
    operation_duration: Duration,
    wait_unimplemented: bool,
    latency: Duration,
    max_concurrent_streams: Option<u32>,
    record_requests: bool,
    fail_first: Vec<(FakeMethod, u64)>,
    tls: Option<TlsIdentity>,
    duration_spread: Duration,
}

/// A server certificate chain and its private key, both PEM.
#[derive(Clone)]
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
struct TlsIdentity {
    certificate_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity { .. }")
    }
}

impl Default for FakeServerBuilder {
    fn default() -> Self {
        FakeServerBuilder {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            operation_duration: Duration::from_secs(2),
            wait_unimplemented: false,
            latency: Duration::ZERO,
            max_concurrent_streams: None,
            record_requests: true,
            fail_first: Vec::new(),
            tls: None,
            duration_spread: Duration::ZERO,
        }
    }
}

impl FakeServerBuilder {
    /// The address to listen on (default `127.0.0.1:0`, a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// How long operations started through the Vision RPCs take (default 2 s).
    pub fn operation_duration(mut self, duration: Duration) -> Self {
        self.operation_duration = duration;
        self
    }

    /// Each operation started through the Vision RPCs takes the operation duration plus a
    /// uniformly random extra of up to `spread` (default none).
    pub fn operation_duration_spread(mut self, spread: Duration) -> Self {
        self.duration_spread = spread;
        self
    }

    /// Whether WaitOperation answers UNIMPLEMENTED, as many Google services do.
    pub fn wait_unimplemented(mut self, unimplemented: bool) -> Self {
        self.wait_unimplemented = unimplemented;
        self
    }

    /// Latency added to every call before it is handled.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// The HTTP/2 `MAX_CONCURRENT_STREAMS` advertised per connection (Google's front ends
    /// advertise 100).
    pub fn max_concurrent_streams(mut self, streams: u32) -> Self {
        self.max_concurrent_streams = Some(streams);
        self
    }

    /// Whether every request's headers are kept for [`FakeServer::requests`] (default on;
    /// turn it off for long load runs).
    pub fn record_requests(mut self, record: bool) -> Self {
        self.record_requests = record;
        self
    }

    /// The first `count` calls of `method` fail with UNAVAILABLE.
    pub fn fail_first(mut self, method: FakeMethod, count: u64) -> Self {
        self.fail_first.push((method, count));
        self
    }

    /// Serves TLS with this certificate (PEM, for `localhost`) and key (PEM); the
    /// [`endpoint`](FakeServer::endpoint) is then `https://localhost:PORT`.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, certificate_pem: impl Into<String>, key_pem: impl Into<String>) -> Self {
        self.tls = Some(TlsIdentity {
            certificate_pem: certificate_pem.into(),
            key_pem: key_pem.into(),
        });
        self
    }

    /// Binds the port and starts serving.
    pub async fn start(self) -> Result<FakeServer> {
        let shared = Arc::new(Shared {
            operations: Mutex::new(BTreeMap::new()),
            switches: Mutex::new(Switches {
                operation_duration: self.operation_duration,
                duration_spread: self.duration_spread,
                wait_unimplemented: self.wait_unimplemented,
                latency: self.latency,
                failures: self
                    .fail_first
                    .iter()
                    .map(|(method, count)| (*method, (*count, injected_unavailable())))
                    .collect(),
                wait_returns_early: None,
                fault_rate: 0.0,
                latency_jitter: Duration::ZERO,
            }),
            changed: Notify::new(),
            stopping: AtomicBool::new(false),
            calls: Default::default(),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
            faults_injected: AtomicU64::new(0),
            record_requests: self.record_requests,
            requests: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        });
        let mut server = FakeServer {
            addr: self.addr,
            tls: self.tls,
            max_concurrent_streams: self.max_concurrent_streams,
            shared,
            running: None,
        };
        server.serve().await?;
        Ok(server)
    }
}

/// The in-process fake server. Dropping it shuts it down.
pub struct FakeServer {
    addr: SocketAddr,
    tls: Option<TlsIdentity>,
    max_concurrent_streams: Option<u32>,
    shared: Arc<Shared>,
    running: Option<Running>,
}

struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("addr", &self.addr)
            .field("serving", &self.running.is_some())
            .finish_non_exhaustive()
    }
}

impl FakeServer {
    /// A fake with default switches on a free loopback port.
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    /// A builder for non-default switches.
    pub fn builder() -> FakeServerBuilder {
        FakeServerBuilder::default()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for [`OperationsClient::connect`] (with TLS: `https://localhost:PORT`).
    pub fn endpoint(&self) -> String {
        match &self.tls {
            Some(_) => format!("https://localhost:{}", self.addr.port()),
            None => format!("http://{}", self.addr),
        }
    }

    /// A new plaintext channel to it (connected on first use). For a TLS fake, build the
    /// client with [`Connector`](crate::transport::Connector) and the test CA instead.
    pub fn channel(&self) -> Channel {
        // `http://IP:PORT` is always a well-formed URI.
        match Endpoint::from_shared(format!("http://{}", self.addr)) {
            Ok(endpoint) => endpoint.connect_lazy(),
            Err(_) => unreachable!("http://IP:PORT is a valid URI"),
        }
    }

    /// A client to it, built as [`Connector`](crate::transport::Connector) builds one:
    /// pool, response guard, auth layer (no token), on new connections.
    pub fn client(&self) -> OperationsClient {
        crate::transport::Connector::new()
            .endpoint(format!("http://{}", self.addr))
            .connect_lazy()
            .unwrap_or_else(|_| OperationsClient::new(self.channel()))
    }

    /// Stops serving, as a crash would: pending calls fail UNAVAILABLE and connections close.
    /// Operations are kept for [`restart`](Self::restart).
    pub async fn stop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.changed.notify_waiters();
        let _ = running.shutdown.send(());
        let mut task = running.task;
        // Graceful shutdown finishes once clients have seen GOAWAY; a client that holds
        // its connection open longer is cut off.
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
            let _ = task.await;
        }
    }

    /// Serves again on the same address with the same operations, after [`stop`](Self::stop)
    /// (or stops first if still serving).
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await;
        self.serve().await
    }

    /// Stops serving and waits until every task of the server has ended.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    async fn serve(&mut self) -> Result<()> {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .map_err(|e| Error::InvalidArgument(format!("cannot listen on {}: {e}", self.addr)))?;
        self.addr = listener
            .local_addr()
            .map_err(|e| Error::InvalidArgument(format!("no local address: {e}")))?;
        self.shared.stopping.store(false, Ordering::SeqCst);
        let service = Arc::new(FakeService {
            shared: self.shared.clone(),
        });
        let router = with_tls(Server::builder(), self.tls.as_ref())?
            .max_concurrent_streams(self.max_concurrent_streams)
            .add_service(OperationsServer::from_arc(service.clone()))
            .add_service(ProductSearchServer::from_arc(service.clone()))
            .add_service(ImageAnnotatorServer::from_arc(service));
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let signal = async {
                let _ = signal.await;
            };
            if let Err(e) = router.serve_with_incoming_shutdown(incoming, signal).await {
                tracing::warn!(error = %e, "fake server stopped with an error");
            }
        });
        self.running = Some(Running { shutdown, task });
        Ok(())
    }

    /// Inserts an operation that follows `script` from now on. Returns its name.
    pub fn insert(&self, name: impl Into<String>, script: Script) -> String {
        let name = name.into();
        self.shared.insert(name.clone(), script);
        name
    }

    /// Inserts a fixed snapshot: a done one stays as it is; one not done runs until
    /// [`finish`](Self::finish) or a cancel.
    pub fn insert_raw(&self, raw: RawOperation) -> String {
        let mut script = if raw.done {
            let outcome = match raw.result.clone() {
                Some(RawResult::Response(any)) => Outcome::Response(any),
                Some(RawResult::Error(status)) => Outcome::Error(status),
                None => Outcome::NoResult,
            };
            Script::finishing_after(Duration::ZERO, outcome)
        } else {
            Script::running()
        };
        if let Some(metadata) = raw.metadata {
            script.phases.push((Duration::ZERO, metadata.clone()));
            script.final_metadata = Some(metadata);
        }
        self.insert(raw.name, script)
    }

    /// Inserts an operation that runs until [`finish`](Self::finish) or a cancel, with
    /// Vision batch metadata (PROCESSING, then SUCCESSFUL or CANCELLED).
    pub fn insert_running(&self, name: impl Into<String>) -> String {
        let now = SystemTime::now();
        let script = Script::running()
            .metadata_from(
                Duration::ZERO,
                &batch_metadata(BatchState::Processing, now, None),
            )
            .final_metadata(&batch_metadata(BatchState::Successful, now, None))
            .cancelled_metadata(&batch_metadata(BatchState::Cancelled, now, None));
        self.insert(name, script)
    }

    /// Finishes an operation now with `outcome`. Returns false if there is no such operation
    /// or it is already done.
    pub fn finish(&self, name: &str, outcome: Outcome) -> bool {
        self.shared.end(name, outcome, false)
    }

    /// The operation's current state, as GetOperation would answer (without counting a call).
    pub fn snapshot(&self, name: &str) -> Option<RawOperation> {
        let now = Instant::now();
        self.shared
            .lock_operations()
            .get(name)
            .map(|op| op.snapshot(name, now))
    }

    /// The names of all operations it holds.
    pub fn operation_names(&self) -> Vec<String> {
        self.shared.lock_operations().keys().cloned().collect()
    }

    /// The next `count` calls of `method` fail with UNAVAILABLE.
    pub fn fail_next(&self, method: FakeMethod, count: u64) {
        self.fail_next_with(method, count, injected_unavailable());
    }

    /// The next `count` calls of `method` fail with `status`: the crate's
    /// [`Status`](crate::Status) (details such as `RetryInfo` or `QuotaFailure` included, see
    /// [`ErrorDetail`](crate::ErrorDetail)) or a tonic status.
    pub fn fail_next_with(&self, method: FakeMethod, count: u64, status: impl Into<Status>) {
        self.shared
            .lock_switches()
            .failures
            .insert(method, (count, status.into()));
    }

    /// Every call from now on fails UNAVAILABLE with probability `rate` (0 to 1).
    pub fn set_fault_rate(&self, rate: f64) {
        self.shared.lock_switches().fault_rate = rate.clamp(0.0, 1.0);
    }

    /// Every call from now on gets up to `jitter` more latency, uniformly at random.
    pub fn set_latency_jitter(&self, jitter: Duration) {
        self.shared.lock_switches().latency_jitter = jitter;
    }

    /// How many faults it has injected so far (`fail_next`, `fail_first`, fault rate).
    pub fn faults_injected(&self) -> u64 {
        self.shared.faults_injected.load(Ordering::SeqCst)
    }

    /// Makes WaitOperation best effort the hard way: each call returns after a random time
    /// up to `at_most` (or when the operation finishes, if sooner), usually not done. `None`
    /// restores waiting for the whole timeout.
    pub fn set_wait_returns_early(&self, at_most: Option<Duration>) {
        self.shared.lock_switches().wait_returns_early = at_most;
    }

    /// Switches WaitOperation between answering UNIMPLEMENTED and working.
    pub fn set_wait_unimplemented(&self, unimplemented: bool) {
        self.shared.lock_switches().wait_unimplemented = unimplemented;
    }

    /// Latency added to every call from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock_switches().latency = latency;
    }

    /// How long operations started from now on through the Vision RPCs take.
    pub fn set_operation_duration(&self, duration: Duration) {
        self.shared.lock_switches().operation_duration = duration;
    }

    /// How many calls of `method` arrived (failed ones included).
    pub fn calls(&self, method: FakeMethod) -> u64 {
        self.shared.calls[method.index()].load(Ordering::SeqCst)
    }

    /// How many calls arrived, of every method.
    pub fn total_calls(&self) -> u64 {
        FakeMethod::ALL.iter().map(|m| self.calls(*m)).sum()
    }

    /// How many calls are being handled right now.
    pub fn in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most calls handled at once so far.
    pub fn peak_in_flight(&self) -> u64 {
        self.shared.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Every request received so far, oldest first (empty if recording is off).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            self.shared.stopping.store(true, Ordering::SeqCst);
            self.shared.changed.notify_waiters();
            let _ = running.shutdown.send(());
        }
    }
}

type BatchState = pb::batch_operation_metadata::State;
type AnnotationState = pb::operation_metadata::State;

struct Shared {
    operations: Mutex<BTreeMap<String, FakeOperation>>,
    switches: Mutex<Switches>,
    /// Woken on every change to an operation, and on stop.
    changed: Notify,
    stopping: AtomicBool,
    calls: [AtomicU64; FakeMethod::ALL.len()],
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    faults_injected: AtomicU64,
    record_requests: bool,
    requests: Mutex<Vec<RecordedRequest>>,
    next_id: AtomicU64,
}

struct Switches {
    operation_duration: Duration,
    duration_spread: Duration,
    wait_unimplemented: bool,
    latency: Duration,
    /// Per method: how many more calls fail, and with what.
    failures: HashMap<FakeMethod, (u64, Status)>,
    /// The chance that any call fails UNAVAILABLE.
    fault_rate: f64,
    /// Up to this much more latency, uniformly at random, on every call.
    latency_jitter: Duration,
    /// WaitOperation returns after a random time up to this, done or not.
    wait_returns_early: Option<Duration>,
}

fn injected_unavailable() -> Status {
    Status::unavailable("fault injected by the fake server")
}

struct FakeOperation {
    script: Script,
    created: Instant,
    /// Set when finished early (by `finish` or a cancel): outcome and whether cancelled.
    ended: Option<(Outcome, bool)>,
}

impl FakeOperation {
    fn is_done(&self, now: Instant) -> bool {
        self.ended.is_some() || self.done_at().is_some_and(|at| now >= at)
    }

    fn done_at(&self) -> Option<Instant> {
        self.script.done_after.map(|after| self.created + after)
    }

    fn snapshot(&self, name: &str, now: Instant) -> RawOperation {
        let script = &self.script;
        let elapsed = now.saturating_duration_since(self.created);
        let running_metadata = script
            .phases
            .iter()
            .take_while(|(offset, _)| *offset <= elapsed)
            .last()
            .map(|(_, any)| any.clone());
        let (outcome, metadata) = match &self.ended {
            Some((outcome, true)) => (
                Some(outcome),
                script.cancelled_metadata.clone().or(running_metadata),
            ),
            Some((outcome, false)) => (
                Some(outcome),
                script.final_metadata.clone().or(running_metadata),
            ),
            None if self.is_done(now) => (
                Some(&script.outcome),
                script.final_metadata.clone().or(running_metadata),
            ),
            None => (None, running_metadata),
        };
        RawOperation {
            name: name.to_owned(),
            metadata,
            done: outcome.is_some(),
            result: outcome.and_then(|outcome| match outcome {
                Outcome::Response(any) => Some(RawResult::Response(any.clone())),
                Outcome::Error(status) => Some(RawResult::Error(status.clone())),
                Outcome::NoResult => None,
            }),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data; keep serving it.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn lock_operations(&self) -> MutexGuard<'_, BTreeMap<String, FakeOperation>> {
        lock(&self.operations)
    }

    fn lock_switches(&self) -> MutexGuard<'_, Switches> {
        lock(&self.switches)
    }

    fn insert(&self, name: String, script: Script) {
        let op = FakeOperation {
            script,
            created: Instant::now(),
            ended: None,
        };
        self.lock_operations().insert(name, op);
        self.changed.notify_waiters();
    }

    fn end(&self, name: &str, outcome: Outcome, cancelled: bool) -> bool {
        let now = Instant::now();
        let ended = match self.lock_operations().get_mut(name) {
            Some(op) if !op.is_done(now) => {
                op.ended = Some((outcome, cancelled));
                true
            }
            _ => false,
        };
        if ended {
            self.changed.notify_waiters();
        }
        ended
    }

    fn new_id(&self) -> String {
        let counter = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}{:08x}", fastrand::u32(..), counter as u32)
    }

    /// Counts and records a call, applies latency, and injects a fault if one is due.
    async fn enter<T>(
        &self,
        method: FakeMethod,
        request: &Request<T>,
        resource: &str,
    ) -> Result<InFlight<'_>, Status> {
        self.calls[method.index()].fetch_add(1, Ordering::SeqCst);
        let in_flight = InFlight::new(self);
        if self.record_requests {
            lock(&self.requests).push(RecordedRequest {
                method,
                resource: resource.to_owned(),
                headers: request.metadata().clone().into_headers(),
                at: Instant::now(),
            });
        }
        let (latency, fail) = {
            let mut switches = self.lock_switches();
            let mut fail = match switches.failures.get_mut(&method) {
                Some((left, status)) if *left > 0 => {
                    *left -= 1;
                    Some(status.clone())
                }
                _ => None,
            };
            if fail.is_none() && switches.fault_rate > 0.0 && fastrand::f64() < switches.fault_rate
            {
                fail = Some(injected_unavailable());
            }
            let jitter = switches.latency_jitter.mul_f64(fastrand::f64());
            (switches.latency + jitter, fail)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if let Some(status) = fail {
            self.faults_injected.fetch_add(1, Ordering::SeqCst);
            return Err(status);
        }
        if self.stopping.load(Ordering::SeqCst) {
            return Err(Status::unavailable("the fake server is shutting down"));
        }
        Ok(in_flight)
    }

    fn get(&self, name: &str) -> Result<RawOperation, Status> {
        let now = Instant::now();
        self.lock_operations()
            .get(name)
            .map(|op| op.snapshot(name, now))
            .ok_or_else(|| not_found(name))
    }
}

/// Counts a call as in flight from its arrival until its handler returns.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn new(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn not_found(name: &str) -> Status {
    Status::not_found(format!("operation {name} not found"))
}

fn batch_metadata(
    state: BatchState,
    submitted: SystemTime,
    ended: Option<SystemTime>,
) -> pb::BatchOperationMetadata {
    pb::BatchOperationMetadata {
        state: state as i32,
        submit_time: Some(submitted.into()),
        end_time: ended.map(Into::into),
    }
}

fn annotation_metadata(
    state: AnnotationState,
    created: SystemTime,
    updated: SystemTime,
) -> pb::OperationMetadata {
    pb::OperationMetadata {
        state: state as i32,
        create_time: Some(created.into()),
        update_time: Some(updated.into()),
    }
}

/// The script of a Vision batch operation: PROCESSING, then SUCCESSFUL with `outcome`.
fn batch_script(duration: Duration, outcome: Outcome) -> Script {
    let submitted = SystemTime::now();
    let ended = submitted + duration;
    Script::finishing_after(duration, outcome)
        .metadata_from(
            Duration::ZERO,
            &batch_metadata(BatchState::Processing, submitted, None),
        )
        .final_metadata(&batch_metadata(
            BatchState::Successful,
            submitted,
            Some(ended),
        ))
        .cancelled_metadata(&batch_metadata(BatchState::Cancelled, submitted, None))
}

/// The script of an async annotation: CREATED, RUNNING from a tenth of the way, then DONE.
fn annotation_script(duration: Duration, outcome: Outcome) -> Script {
    let created = SystemTime::now();
    let running_from = duration / 10;
    Script::finishing_after(duration, outcome)
        .metadata_from(
            Duration::ZERO,
            &annotation_metadata(AnnotationState::Created, created, created),
        )
        .metadata_from(
            running_from,
            &annotation_metadata(AnnotationState::Running, created, created + running_from),
        )
        .final_metadata(&annotation_metadata(
            AnnotationState::Done,
            created,
            created + duration,
        ))
        .cancelled_metadata(&annotation_metadata(
            AnnotationState::Cancelled,
            created,
            created,
        ))
}

#[cfg(feature = "tls")]
fn with_tls(server: Server, tls: Option<&TlsIdentity>) -> Result<Server> {
    let Some(identity) = tls else {
        return Ok(server);
    };
    let identity =
        tonic::transport::Identity::from_pem(&identity.certificate_pem, &identity.key_pem);
    server
        .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
        .map_err(|e| Error::InvalidArgument(format!("bad TLS identity: {e}")))
}

#[cfg(not(feature = "tls"))]
fn with_tls(server: Server, _tls: Option<&TlsIdentity>) -> Result<Server> {
    Ok(server)
}

/// The one service object behind all three fake services.
struct FakeService {
    shared: Arc<Shared>,
}

impl FakeService {
    /// Creates an operation under `parent` following `script` and answers with it.
    fn start_operation(
        &self,
        parent: &str,
        script: impl FnOnce(Duration) -> Script,
    ) -> Result<Response<RawOperation>, Status> {
        let id = self.shared.new_id();
        let name = if parent.is_empty() {
            format!("operations/{id}")
        } else {
            format!("{parent}/operations/{id}")
        };
        let duration = {
            let switches = self.shared.lock_switches();
            switches.operation_duration + switches.duration_spread.mul_f64(fastrand::f64())
        };
        self.shared.insert(name.clone(), script(duration));
        self.shared.get(&name).map(Response::new)
    }
}

/// Checks a `projects/P/locations/L` parent.
fn check_parent(parent: &str) -> Result<(), Status> {
    match parent.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", p, "locations", l] if !p.is_empty() && !l.is_empty() => Ok(()),
        _ => Err(Status::invalid_argument(format!(
            "parent {parent:?} is not of the form projects/P/locations/L"
        ))),
    }
}

/// Which operations a ListOperations parent covers: those named `{prefix}operations/…`.
fn list_prefix(parent: &str) -> String {
    let parent = parent.trim_end_matches('/');
    let parent = parent.strip_suffix("operations").unwrap_or(parent);
    let parent = parent.trim_end_matches('/');
    if parent.is_empty() {
        String::new()
    } else {
        format!("{parent}/")
    }
}

/// The filters the fake understands: empty, `done=true`, `done=false`.
fn parse_filter(filter: &str) -> Result<Option<bool>, Status> {
    let compact: String = filter.chars().filter(|c| !c.is_whitespace()).collect();
    match compact.as_str() {
        "" => Ok(None),
        "done=true" => Ok(Some(true)),
        "done=false" => Ok(Some(false)),
        _ => Err(Status::invalid_argument(format!(
            "unsupported filter {filter:?} (the fake understands done=true and done=false)"
        ))),
    }
}

const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;
const DEFAULT_WAIT: Duration = Duration::from_secs(60);

#[tonic::async_trait]
impl Operations for FakeService {
    async fn list_operations(
        &self,
        request: Request<lro::ListOperationsRequest>,
    ) -> Result<Response<lro::ListOperationsResponse>, Status> {
        let shared = &self.shared;
        let _call = shared
            .enter(
                FakeMethod::ListOperations,
                &request,
                &request.get_ref().name,
            )
            .await?;
        let request = request.into_inner();
        let done_filter = parse_filter(&request.filter)?;
        let page_size = match usize::try_from(request.page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) => n.min(MAX_PAGE_SIZE),
            Err(_) => return Err(Status::invalid_argument("page_size must not be negative")),
        };
        let prefix = list_prefix(&request.name);
        let start = if request.page_token.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(request.page_token.clone())
        };
        let now = Instant::now();
        let operations = shared.lock_operations();
        let mut matching = operations
            .range((start, Bound::Unbounded))
            .filter(|(name, _)| {
                name.strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with("operations/"))
            })
            .filter(|(_, op)| done_filter.is_none_or(|done| op.is_done(now) == done));
        let page: Vec<RawOperation> = matching
            .by_ref()
            .take(page_size)
            .map(|(name, op)| op.snapshot(name, now))
            .collect();
        let next_page_token = match (matching.next(), page.last()) {
            (Some(_), Some(last)) => last.name.clone(),
            _ => String::new(),
        };
        Ok(Response::new(lro::ListOperationsResponse {
            operations: page,
            next_page_token,
            unreachable: Vec::new(),
        }))
    }

    async fn get_operation(
        &self,
        request: Request<lro::GetOperationRequest>,
    ) -> Result<Response<RawOperation>, Status> {
        let shared = &self.shared;
        let _call = shared
            .enter(FakeMethod::GetOperation, &request, &request.get_ref().name)
            .await?;
        shared.get(&request.get_ref().name).map(Response::new)
    }

    async fn delete_operation(
        &self,
        request: Request<lro::DeleteOperationRequest>,
    ) -> Result<Response<()>, Status> {
        let shared = &self.shared;
        let name = &request.get_ref().name;
        let _call = shared
            .enter(FakeMethod::DeleteOperation, &request, name)
            .await?;
        if shared.lock_operations().remove(name).is_none() {
            return Err(not_found(name));
        }
        shared.changed.notify_waiters();
        Ok(Response::new(()))
    }

    async fn cancel_operation(
        &self,
        request: Request<lro::CancelOperationRequest>,
    ) -> Result<Response<()>, Status> {
        let shared = &self.shared;
        let name = &request.get_ref().name;
        let _call = shared
            .enter(FakeMethod::CancelOperation, &request, name)
            .await?;
        if !shared.lock_operations().contains_key(name) {
            return Err(not_found(name));
        }
        // Best effort, as on real servers: cancelling a finished operation changes nothing.
        let outcome = Outcome::error(tonic::Code::Cancelled, "Operation cancelled by the caller.");
        shared.end(name, outcome, true);
        Ok(Response::new(()))
    }

    async fn wait_operation(
        &self,
        request: Request<lro::WaitOperationRequest>,
    ) -> Result<Response<RawOperation>, Status> {
        let shared = &self.shared;
        let name = request.get_ref().name.clone();
        let _call = shared
            .enter(FakeMethod::WaitOperation, &request, &name)
            .await?;
        let (unimplemented, returns_early) = {
            let switches = shared.lock_switches();
            (switches.wait_unimplemented, switches.wait_returns_early)
        };
        if unimplemented {
            return Err(Status::unimplemented(
                "WaitOperation is not implemented by this server",
            ));
        }
        let mut timeout = match request.get_ref().timeout {
            Some(timeout) => Duration::try_from(timeout)
                .map_err(|_| Status::invalid_argument("timeout must not be negative"))?,
            None => DEFAULT_WAIT,
        };
        if let Some(at_most) = returns_early {
            timeout = timeout.min(at_most.mul_f64(fastrand::f64()));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let changed = shared.changed.notified();
            tokio::pin!(changed);
            // Registered before the state is read, so no change can slip in between.
            changed.as_mut().enable();
            if shared.stopping.load(Ordering::SeqCst) {
                return Err(Status::unavailable("the fake server is shutting down"));
            }
            let now = Instant::now();
            let (snapshot, done_at) = {
                let operations = shared.lock_operations();
                let op = operations.get(&name).ok_or_else(|| not_found(&name))?;
                (op.snapshot(&name, now), op.done_at())
            };
            if snapshot.done || now >= deadline {
                return Ok(Response::new(snapshot));
            }
            let wake = done_at.map_or(deadline, |at| at.min(deadline));
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = changed => {}
            }
        }
    }
}

#[tonic::async_trait]
impl ProductSearch for FakeService {
    async fn import_product_sets(
        &self,
        request: Request<pb::ImportProductSetsRequest>,
    ) -> Result<Response<RawOperation>, Status> {
        let _call = self
            .shared
            .enter(
                FakeMethod::ImportProductSets,
                &request,
                &request.get_ref().parent,
            )
            .await?;
        let request = request.into_inner();
        check_parent(&request.parent)?;
        let source = request
            .input_config
            .and_then(|config| config.source)
            .ok_or_else(|| Status::invalid_argument("input_config.gcs_source is required"))?;
        let pb::import_product_sets_input_config::Source::GcsSource(gcs) = source;
        if !gcs.csv_file_uri.starts_with("gs://") {
            return Err(Status::invalid_argument(format!(
                "csv_file_uri {:?} is not a gs:// URI",
                gcs.csv_file_uri
            )));
        }
        let response = pb::ImportProductSetsResponse {
            reference_images: Vec::new(),
            statuses: vec![rpc::Status::default()],
        };
        self.start_operation(&request.parent, |duration| {
            batch_script(duration, Outcome::response(&response))
        })
    }

    async fn purge_products(
        &self,
        request: Request<pb::PurgeProductsRequest>,
    ) -> Result<Response<RawOperation>, Status> {
        let _call = self
            .shared
            .enter(
                FakeMethod::PurgeProducts,
                &request,
                &request.get_ref().parent,
            )
            .await?;
        let request = request.into_inner();
        check_parent(&request.parent)?;
        if request.target.is_none() {
            return Err(Status::invalid_argument(
                "one of product_set_purge_config or delete_orphan_products is required",
            ));
        }
        // As Google's documentation shows it: the request echoed as the response.
        self.start_operation(&request.parent, |duration| {
            batch_script(duration, Outcome::response(&request))
        })
    }
}

#[tonic::async_trait]
impl ImageAnnotator for FakeService {
    async fn async_batch_annotate_files(
        &self,
        request: Request<pb::AsyncBatchAnnotateFilesRequest>,
    ) -> Result<Response<RawOperation>, Status> {
        let _call = self
            .shared
            .enter(
                FakeMethod::AsyncBatchAnnotateFiles,
                &request,
                &request.get_ref().parent,
            )
            .await?;
        let request = request.into_inner();
        if request.requests.is_empty() {
            return Err(Status::invalid_argument("requests must not be empty"));
        }
        let response = pb::AsyncBatchAnnotateFilesResponse {
            responses: request
                .requests
                .iter()
                .map(|file| pb::AsyncAnnotateFileResponse {
                    output_config: file.output_config.clone(),
                })
                .collect(),
        };
        self.start_operation(&request.parent, |duration| {
            annotation_script(duration, Outcome::response(&response))
        })
    }

    async fn async_batch_annotate_images(
        &self,
        request: Request<pb::AsyncBatchAnnotateImagesRequest>,
    ) -> Result<Response<RawOperation>, Status> {
        let _call = self
            .shared
            .enter(
                FakeMethod::AsyncBatchAnnotateImages,
                &request,
                &request.get_ref().parent,
            )
            .await?;
        let request = request.into_inner();
        if request.requests.is_empty() {
            return Err(Status::invalid_argument("requests must not be empty"));
        }
        let response = pb::AsyncBatchAnnotateImagesResponse {
            output_config: request.output_config.clone(),
        };
        self.start_operation(&request.parent, |duration| {
            annotation_script(duration, Outcome::response(&response))
        })
    }
}
