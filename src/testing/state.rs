//! The fake's state: its operations, its switches, what it counted and recorded.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tonic::{Request, Status};

use super::FakeMethod;
use super::faults::HttpFault;
use super::script::{Outcome, Script};
use crate::client::RawOperation;
use crate::proto::longrunning::operation::Result as RawResult;

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
    /// The client's address: which connection it came on.
    pub peer: Option<std::net::SocketAddr>,
}

pub(super) struct Shared {
    pub(super) operations: Mutex<BTreeMap<String, FakeOperation>>,
    pub(super) switches: Mutex<Switches>,
    /// Woken on every change to an operation, and on stop.
    pub(super) changed: Notify,
    /// Per method: how many more calls meet an HTTP fault, and which.
    pub(super) http_faults: Mutex<HashMap<FakeMethod, (u64, HttpFault)>>,
    /// The operations started through the start RPCs, in order, and how many of them
    /// `wait_for_start` has handed out.
    pub(super) started: Mutex<(Vec<String>, usize)>,
    /// Whether any HTTP fault was ever set (calls skip the lookup until then).
    pub(super) http_faults_armed: AtomicBool,
    pub(super) stopping: AtomicBool,
    pub(super) calls: [AtomicU64; FakeMethod::ALL.len()],
    pub(super) in_flight: AtomicU64,
    pub(super) peak_in_flight: AtomicU64,
    pub(super) faults_injected: AtomicU64,
    /// Calls refused because the quota was spent.
    pub(super) quota_refusals: AtomicU64,
    pub(super) record_requests: bool,
    pub(super) requests: Mutex<Vec<RecordedRequest>>,
    pub(super) next_id: AtomicU64,
}

/// How the fake's ListOperations behaves ([`FakeServer::set_listing`](super::FakeServer::set_listing)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Listing {
    /// `name` may be the collection's parent (`projects/p/locations/l`) or the collection
    /// itself (`projects/p/locations/l/operations`), as `google.longrunning` allows (the
    /// default).
    #[default]
    ParentOrCollection,
    /// Only the parent; the collection form answers INVALID_ARGUMENT.
    ParentOnly,
    /// Only the collection form; the parent answers INVALID_ARGUMENT.
    CollectionOnly,
    /// ListOperations answers UNIMPLEMENTED, as many APIs' servers do.
    Unimplemented,
    /// Every page that has a next one names the same next-page token: a listing that never
    /// ends.
    RepeatsToken,
}

pub(super) struct Switches {
    /// How ListOperations behaves.
    pub(super) listing: Listing,
    /// The largest page ListOperations returns.
    pub(super) max_page_size: usize,
    pub(super) operation_duration: Duration,
    pub(super) duration_spread: Duration,
    pub(super) wait_unimplemented: bool,
    pub(super) latency: Duration,
    /// Per method: how many more calls fail, and with what.
    pub(super) failures: HashMap<FakeMethod, (u64, Status)>,
    /// The chance that any call fails UNAVAILABLE.
    pub(super) fault_rate: f64,
    /// How many of the next started operations end with this error instead.
    pub(super) start_failures: Option<(u64, crate::proto::rpc::Status)>,
    /// What the random faults answer (default UNAVAILABLE).
    pub(super) fault_status: Option<Status>,
    /// Up to this much more latency, uniformly at random, on every call.
    pub(super) latency_jitter: Duration,
    /// WaitOperation returns after a random time up to this, done or not.
    pub(super) wait_returns_early: Option<Duration>,
    /// The Operations RPCs admitted per minute, and when the admitted ones came (a sliding
    /// window: at most that many instants are kept).
    pub(super) quota: Option<(u32, VecDeque<Instant>)>,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            listing: Listing::default(),
            max_page_size: 1000,
            operation_duration: Duration::from_secs(2),
            duration_spread: Duration::ZERO,
            wait_unimplemented: false,
            latency: Duration::ZERO,
            failures: HashMap::new(),
            fault_rate: 0.0,
            fault_status: None,
            start_failures: None,
            latency_jitter: Duration::ZERO,
            quota: None,
            wait_returns_early: None,
        }
    }
}

pub(super) fn injected_unavailable() -> Status {
    Status::unavailable("fault injected by the fake server")
}

pub(super) struct FakeOperation {
    pub(super) script: Script,
    pub(super) created: Instant,
    /// Set when finished early (by `finish` or a cancel): outcome and whether cancelled.
    pub(super) ended: Option<(Outcome, bool)>,
}

impl FakeOperation {
    pub(super) fn is_done(&self, now: Instant) -> bool {
        self.ended.is_some() || self.done_at().is_some_and(|at| now >= at)
    }

    pub(super) fn done_at(&self) -> Option<Instant> {
        self.script.done_after.map(|after| self.created + after)
    }

    pub(super) fn snapshot(&self, name: &str, now: Instant) -> RawOperation {
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

pub(super) use crate::lock::lock;

impl Shared {
    pub(super) fn lock_operations(&self) -> MutexGuard<'_, BTreeMap<String, FakeOperation>> {
        lock(&self.operations)
    }

    pub(super) fn lock_switches(&self) -> MutexGuard<'_, Switches> {
        lock(&self.switches)
    }

    pub(super) fn insert(&self, name: String, script: Script) {
        let op = FakeOperation {
            script,
            created: Instant::now(),
            ended: None,
        };
        self.lock_operations().insert(name, op);
        self.changed.notify_waiters();
    }

    pub(super) fn end(&self, name: &str, outcome: Outcome, cancelled: bool) -> bool {
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

    pub(super) fn new_id(&self) -> String {
        let counter = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}{:08x}", fastrand::u32(..), counter as u32)
    }

    /// Counts and records a call, applies latency, and injects a fault if one is due: a
    /// failure asked for, the quota spent, or a random fault.
    pub(super) async fn enter<T>(
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
                peer: request.remote_addr(),
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
            if fail.is_none()
                && method.is_operations()
                && let Some((per_minute, admitted)) = switches.quota.as_mut()
            {
                let now = Instant::now();
                while admitted
                    .front()
                    .is_some_and(|at| now.duration_since(*at) >= QUOTA_WINDOW)
                {
                    admitted.pop_front();
                }
                if admitted.len() < *per_minute as usize {
                    admitted.push_back(now);
                } else {
                    self.quota_refusals.fetch_add(1, Ordering::SeqCst);
                    fail = Some(quota_exceeded(*per_minute));
                }
            }
            if fail.is_none() && switches.fault_rate > 0.0 && fastrand::f64() < switches.fault_rate
            {
                fail = Some(
                    switches
                        .fault_status
                        .clone()
                        .unwrap_or_else(injected_unavailable),
                );
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

    /// The name an operation is kept under: `name` itself, or, for Vision's short form
    /// `locations/L/operations/ID` (what Google's pages read an operation by), the one
    /// `projects/P/locations/L/operations/ID` its start call returned.
    pub(super) fn resolve(&self, name: &str) -> String {
        let short = name.starts_with("locations/") && name.contains("/operations/");
        let operations = self.lock_operations();
        if !short || operations.contains_key(name) {
            return name.to_owned();
        }
        let suffix = format!("/{name}");
        let mut long = operations
            .keys()
            .filter(|key| key.starts_with("projects/") && key.ends_with(&suffix));
        match (long.next(), long.next()) {
            (Some(key), None) => key.clone(),
            _ => name.to_owned(),
        }
    }

    pub(super) fn get(&self, name: &str) -> Result<RawOperation, Status> {
        let now = Instant::now();
        self.lock_operations()
            .get(name)
            .map(|op| op.snapshot(name, now))
            .ok_or_else(|| not_found(name))
    }
}

/// Counts a call as in flight from its arrival until its handler returns.
pub(super) struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    pub(super) fn new(shared: &'a Shared) -> Self {
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

pub(super) fn not_found(name: &str) -> Status {
    Status::not_found(format!("operation {name} not found"))
}

/// The window a per-minute quota counts over.
const QUOTA_WINDOW: Duration = Duration::from_secs(60);

/// What Google answers when a per-minute quota is spent: RESOURCE_EXHAUSTED with an
/// `ErrorInfo` (RATE_LIMIT_EXCEEDED) and a `QuotaFailure` naming the metric, and no
/// `RetryInfo`.
fn quota_exceeded(per_minute: u32) -> Status {
    use crate::proto::rpc;
    use crate::status::ErrorDetail;
    let metric = "longrunning.googleapis.com/operation_requests";
    let status = crate::Status::new(
        tonic::Code::ResourceExhausted,
        format!(
            "Quota exceeded for quota metric 'Operation requests' and limit 'Operation requests per minute' ({per_minute})"
        ),
    )
    .with_detail(ErrorDetail::ErrorInfo(rpc::ErrorInfo {
        reason: "RATE_LIMIT_EXCEEDED".into(),
        domain: "googleapis.com".into(),
        metadata: [
            ("quota_metric".to_owned(), metric.to_owned()),
            ("quota_limit_value".to_owned(), per_minute.to_string()),
        ]
        .into_iter()
        .collect(),
    }))
    .with_detail(ErrorDetail::QuotaFailure(rpc::QuotaFailure {
        violations: vec![rpc::quota_failure::Violation {
            subject: "project".into(),
            description: format!("at most {per_minute} Operations requests a minute"),
            ..Default::default()
        }],
    }));
    status.into()
}
