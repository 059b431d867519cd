//! [`FakeServer`]: serving, stopping, restarting, and the switches and counters a test
//! reaches for.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Status;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};

use super::FakeMethod;
use super::faults::HttpFault;
use super::memory::{Accepted, MemoryDoor};
use super::proxy::FaultLayer;
use super::script::{Outcome, Script, batch_metadata};
use super::service::FakeService;
use super::state::{Listing, RecordedRequest, Shared, Switches, injected_unavailable, lock};
use crate::client::{OperationsClient, RawOperation};
use crate::error::{Error, Result};
use crate::proto::longrunning::operation::Result as RawResult;
use crate::proto::longrunning::operations_server::OperationsServer;
use crate::proto::speech::speech_server::SpeechServer;
use crate::proto::vision as pb;
use crate::proto::vision::image_annotator_server::ImageAnnotatorServer;
use crate::proto::vision::product_search_server::ProductSearchServer;

type BatchState = pb::batch_operation_metadata::State;

/// Builds a [`FakeServer`] that serves differently: address, stream limit, TLS, request
/// recording. How it behaves (latency, failures, durations, WaitOperation support) is set
/// on the running server, at any time, one way each.
#[derive(Debug, Clone)]
pub struct FakeServerBuilder {
    addr: SocketAddr,
    max_concurrent_streams: Option<u32>,
    max_connection_age: Option<Duration>,
    record_requests: bool,
    tls: Option<TlsIdentity>,
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
            max_concurrent_streams: None,
            max_connection_age: None,
            record_requests: true,
            tls: None,
        }
    }
}

impl FakeServerBuilder {
    /// The address to listen on (default `127.0.0.1:0`, a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// The HTTP/2 `MAX_CONCURRENT_STREAMS` advertised per connection (Google's front ends
    /// advertise 100).
    pub fn max_concurrent_streams(mut self, streams: u32) -> Self {
        self.max_concurrent_streams = Some(streams);
        self
    }

    /// Closes each connection (GOAWAY, then the calls in flight finish) once it is this old,
    /// as proxies and Google's front ends do (default never).
    pub fn max_connection_age(mut self, age: Duration) -> Self {
        self.max_connection_age = Some(age);
        self
    }

    /// Whether every request's headers are kept for [`FakeServer::requests`] (default on;
    /// turn it off for long load runs).
    pub fn record_requests(mut self, record: bool) -> Self {
        self.record_requests = record;
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
            switches: Mutex::new(Switches::default()),
            changed: Notify::new(),
            http_faults: Mutex::new(Default::default()),
            http_faults_armed: AtomicBool::new(false),
            started: Mutex::new((Vec::new(), 0)),
            stopping: AtomicBool::new(false),
            calls: Default::default(),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
            faults_injected: AtomicU64::new(0),
            quota_refusals: AtomicU64::new(0),
            record_requests: self.record_requests,
            requests: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        });
        let mut server = FakeServer {
            max_connection_age: self.max_connection_age,
            addr: self.addr,
            tls: self.tls,
            max_concurrent_streams: self.max_concurrent_streams,
            shared,
            memory: MemoryDoor::default(),
            running: None,
        };
        server.serve().await?;
        Ok(server)
    }
}

/// The in-process fake server. Dropping it shuts it down.
pub struct FakeServer {
    max_connection_age: Option<Duration>,
    addr: SocketAddr,
    tls: Option<TlsIdentity>,
    max_concurrent_streams: Option<u32>,
    shared: Arc<Shared>,
    memory: MemoryDoor,
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

    /// A client to it, built as [`Connector`](crate::transport::Connector) builds one
    /// (pool, response guard, auth layer, no token), on in-memory connections: with a
    /// paused clock, no timer fires while a reply is on its way, so timing is exact.
    pub fn client(&self) -> OperationsClient {
        self.connector()
            .connect_lazy()
            .unwrap_or_else(|_| OperationsClient::new(self.channel()))
    }

    /// A [`Connector`](crate::transport::Connector) to it on in-memory connections (see
    /// [`client`](Self::client)), for other settings: retry policy, pool, layers, rate.
    pub fn connector(&self) -> crate::transport::Connector {
        crate::transport::Connector::new()
            .endpoint(format!("http://{}", self.addr))
            .dialer(self.memory.dialer())
    }

    /// Stops serving, as a crash would: pending calls fail UNAVAILABLE and connections close.
    /// Operations are kept for [`restart`](Self::restart).
    pub async fn stop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.changed.notify_waiters();
        self.memory.close();
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
        let mut builder = with_tls(Server::builder(), self.tls.as_ref())?;
        if let Some(age) = self.max_connection_age {
            builder = builder.max_connection_age(age);
        }
        let router = builder
            .accept_http1(cfg!(feature = "rest"))
            .max_concurrent_streams(self.max_concurrent_streams)
            .layer(rest_layer())
            .layer(FaultLayer(self.shared.clone()))
            .add_service(OperationsServer::from_arc(service.clone()))
            .add_service(ProductSearchServer::from_arc(service.clone()))
            .add_service(ImageAnnotatorServer::from_arc(service.clone()))
            .add_service(SpeechServer::from_arc(service));
        use futures_util::StreamExt as _;
        let tcp = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .map(|accepted| accepted.map(Accepted::Tcp));
        let memory = futures_util::stream::unfold(self.memory.open(), |mut door| async move {
            let accepted = door.recv().await?;
            Some((Ok::<_, std::io::Error>(accepted), door))
        });
        let incoming = futures_util::stream::select(tcp, memory);
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

    /// The operations started through the start RPCs (Vision's), oldest first.
    pub fn started(&self) -> Vec<String> {
        lock(&self.shared.started).0.clone()
    }

    /// The next operation started through a start RPC that this method has not handed out
    /// yet, as soon as it is started; `None` if none is within `timeout`.
    pub async fn wait_for_start(&self, timeout: Duration) -> Option<String> {
        let next = async {
            loop {
                let changed = self.shared.changed.notified();
                tokio::pin!(changed);
                // Registered before the list is read, so no start can slip in between.
                changed.as_mut().enable();
                {
                    let mut started = lock(&self.shared.started);
                    let (names, handed_out) = &mut *started;
                    if let Some(name) = names.get(*handed_out).cloned() {
                        *handed_out += 1;
                        return name;
                    }
                }
                changed.await;
            }
        };
        tokio::time::timeout(timeout, next).await.ok()
    }

    /// The next `count` operations started through the start RPCs end with `status` as
    /// their error, their metadata consistent with it (Vision batch jobs: FAILED).
    pub fn fail_next_starts(&self, count: u64, status: crate::Status) {
        self.shared.lock_switches().start_failures = Some((count, status.to_proto()));
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

    /// The next `count` calls of `method` meet `fault` below gRPC: a proxy's error page, a
    /// reset stream, silence, or mangled status headers.
    pub fn http_fault_next(&self, method: FakeMethod, count: u64, fault: HttpFault) {
        lock(&self.shared.http_faults).insert(method, (count, fault));
        self.shared.http_faults_armed.store(true, Ordering::SeqCst);
    }

    /// Admits at most `per_minute` Operations RPCs (Get, List, Wait, Cancel, Delete
    /// together) in any 60 s on tokio's clock, answering the others RESOURCE_EXHAUSTED with
    /// Google's `ErrorInfo` (RATE_LIMIT_EXCEEDED) and `QuotaFailure` and no `RetryInfo`, as a
    /// project's quota does; `None` lifts it. Start calls are not counted.
    pub fn set_quota(&self, per_minute: Option<u32>) {
        self.shared.lock_switches().quota =
            per_minute.map(|per_minute| (per_minute, std::collections::VecDeque::new()));
    }

    /// How many calls the quota refused ([`set_quota`](Self::set_quota)).
    pub fn quota_refusals(&self) -> u64 {
        self.shared.quota_refusals.load(Ordering::SeqCst)
    }

    /// Every call from now on fails with probability `rate` (0 to 1), UNAVAILABLE unless
    /// [`set_fault_status`](Self::set_fault_status) says otherwise.
    pub fn set_fault_rate(&self, rate: f64) {
        self.shared.lock_switches().fault_rate = rate.clamp(0.0, 1.0);
    }

    /// What the calls failed by [`set_fault_rate`](Self::set_fault_rate) answer, e.g. a
    /// quota error (RESOURCE_EXHAUSTED with `ErrorInfo` and `QuotaFailure`).
    pub fn set_fault_status(&self, status: impl Into<Status>) {
        self.shared.lock_switches().fault_status = Some(status.into());
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

    /// How ListOperations behaves from now on: which forms of `name` it takes, or
    /// UNIMPLEMENTED, or a listing that never ends.
    pub fn set_listing(&self, listing: Listing) {
        self.shared.lock_switches().listing = listing;
    }

    /// The largest page ListOperations returns from now on (default 1,000, at least 1).
    pub fn set_max_page_size(&self, size: usize) {
        self.shared.lock_switches().max_page_size = size.max(1);
    }

    /// Switches WaitOperation between answering UNIMPLEMENTED and working.
    pub fn set_wait_unimplemented(&self, unimplemented: bool) {
        self.shared.lock_switches().wait_unimplemented = unimplemented;
    }

    /// Latency added to every call from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock_switches().latency = latency;
    }

    /// How long operations started from now on through the Vision RPCs take (default 2 s).
    pub fn set_operation_duration(&self, duration: Duration) {
        self.shared.lock_switches().operation_duration = duration;
    }

    /// Each operation started from now on through the Vision RPCs takes the operation
    /// duration plus a uniformly random extra of up to `spread` (default none).
    pub fn set_operation_duration_spread(&self, spread: Duration) {
        self.shared.lock_switches().duration_spread = spread;
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
            self.memory.close();
            self.shared.stopping.store(true, Ordering::SeqCst);
            self.shared.changed.notify_waiters();
            let _ = running.shutdown.send(());
        }
    }
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

/// The REST surface in front of the services (feature `rest`).
#[cfg(feature = "rest")]
fn rest_layer() -> super::rest::RestLayer {
    super::rest::RestLayer
}

/// No REST surface without the feature.
#[cfg(not(feature = "rest"))]
fn rest_layer() -> tower::layer::util::Identity {
    tower::layer::util::Identity::new()
}
