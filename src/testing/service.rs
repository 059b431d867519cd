//! The one service object behind the fake's three gRPC services.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::FakeMethod;
use super::script::{Outcome, Script, annotation_script, batch_script, speech_script};
use super::state::{Listing, Shared, lock, not_found};
use crate::client::RawOperation;
use crate::name::LocationName;
use crate::proto::longrunning as lro;
use crate::proto::longrunning::operations_server::Operations;
use crate::proto::rpc;
use crate::proto::speech;
use crate::proto::speech::speech_server::Speech;
use crate::proto::vision as pb;
use crate::proto::vision::image_annotator_server::ImageAnnotator;
use crate::proto::vision::product_search_server::ProductSearch;

/// The one service object behind all three fake services.
pub(super) struct FakeService {
    pub(super) shared: Arc<Shared>,
}

impl FakeService {
    /// Creates an operation under `parent` following `script` and answers with it.
    /// Starts an operation under `parent` following `script` to `outcome`, unless a
    /// failure is due ([`FakeServer::fail_next_starts`](super::FakeServer::fail_next_starts)).
    fn start_operation(
        &self,
        parent: &str,
        script: fn(Duration, Outcome) -> Script,
        outcome: Outcome,
    ) -> Result<Response<RawOperation>, Status> {
        let id = self.shared.new_id();
        let name = if parent.is_empty() {
            format!("operations/{id}")
        } else {
            format!("{parent}/operations/{id}")
        };
        self.start_named(name, script, outcome)
    }

    /// Starts an operation named `name` (as it is, however the API names its operations).
    fn start_named(
        &self,
        name: String,
        script: fn(Duration, Outcome) -> Script,
        outcome: Outcome,
    ) -> Result<Response<RawOperation>, Status> {
        let (duration, outcome) = {
            let mut switches = self.shared.lock_switches();
            let outcome = match &mut switches.start_failures {
                Some((left, status)) if *left > 0 => {
                    *left -= 1;
                    Outcome::Error(status.clone())
                }
                _ => outcome,
            };
            let duration =
                switches.operation_duration + switches.duration_spread.mul_f64(fastrand::f64());
            (duration, outcome)
        };
        lock(&self.shared.started).0.push(name.clone());
        self.shared.insert(name.clone(), script(duration, outcome));
        self.shared.get(&name).map(Response::new)
    }
}

/// Checks a `projects/P/locations/L` parent.
fn check_parent(parent: &str) -> Result<(), Status> {
    LocationName::parse(parent).map(drop).map_err(|_| {
        Status::invalid_argument(format!(
            "parent {parent:?} is not of the form projects/P/locations/L"
        ))
    })
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
        let (listing, max_page_size) = {
            let switches = shared.lock_switches();
            (switches.listing, switches.max_page_size)
        };
        let collection_form = request.name == "operations" || request.name.ends_with("/operations");
        match listing {
            Listing::Unimplemented => {
                return Err(Status::unimplemented("ListOperations is not implemented"));
            }
            Listing::ParentOnly if collection_form => {
                return Err(Status::invalid_argument(format!(
                    "name {:?}: list by the parent, without /operations",
                    request.name
                )));
            }
            Listing::CollectionOnly if !collection_form => {
                return Err(Status::invalid_argument(format!(
                    "name {:?}: list by the collection, ending in /operations",
                    request.name
                )));
            }
            _ => {}
        }
        let done_filter = parse_filter(&request.filter)?;
        let page_size = match usize::try_from(request.page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE.min(max_page_size),
            Ok(n) => n.min(max_page_size),
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
            (Some(_), Some(_)) if listing == Listing::RepeatsToken => "again".to_owned(),
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
        let name = shared.resolve(&request.get_ref().name);
        shared.get(&name).map(Response::new)
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
        let name = &shared.resolve(name);
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
        let name = &shared.resolve(name);
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
        let name = shared.resolve(&name);
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
        let method = FakeMethod::ImportProductSets;
        self.start(method, request, |request| {
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
            Ok(Start::under(&request.parent, batch_script, &response))
        })
        .await
    }

    async fn purge_products(
        &self,
        request: Request<pb::PurgeProductsRequest>,
    ) -> Result<Response<RawOperation>, Status> {
        self.start(FakeMethod::PurgeProducts, request, |request| {
            check_parent(&request.parent)?;
            if request.target.is_none() {
                return Err(Status::invalid_argument(
                    "one of product_set_purge_config or delete_orphan_products is required",
                ));
            }
            // As Google's documentation shows it: the request echoed as the response.
            Ok(Start::under(&request.parent, batch_script, &request))
        })
        .await
    }
}

#[tonic::async_trait]
impl ImageAnnotator for FakeService {
    async fn async_batch_annotate_files(
        &self,
        request: Request<pb::AsyncBatchAnnotateFilesRequest>,
    ) -> Result<Response<RawOperation>, Status> {
        self.start(FakeMethod::AsyncBatchAnnotateFiles, request, |request| {
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
            Ok(Start::under(&request.parent, annotation_script, &response))
        })
        .await
    }

    async fn async_batch_annotate_images(
        &self,
        request: Request<pb::AsyncBatchAnnotateImagesRequest>,
    ) -> Result<Response<RawOperation>, Status> {
        self.start(FakeMethod::AsyncBatchAnnotateImages, request, |request| {
            if request.requests.is_empty() {
                return Err(Status::invalid_argument("requests must not be empty"));
            }
            let response = pb::AsyncBatchAnnotateImagesResponse {
                output_config: request.output_config.clone(),
            };
            Ok(Start::under(&request.parent, annotation_script, &response))
        })
        .await
    }
}

#[tonic::async_trait]
impl Speech for FakeService {
    async fn long_running_recognize(
        &self,
        request: Request<speech::LongRunningRecognizeRequest>,
    ) -> Result<Response<RawOperation>, Status> {
        self.start(FakeMethod::LongRunningRecognize, request, |request| {
            if request.audio.is_none() {
                return Err(Status::invalid_argument("audio is required"));
            }
            let response = speech::LongRunningRecognizeResponse {
                results: vec![speech::SpeechRecognitionResult {
                    alternatives: vec![speech::SpeechRecognitionAlternative {
                        transcript: "hello from the fake".into(),
                        confidence: 0.9,
                        words: Vec::new(),
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            };
            // Speech names its operations by a bare number.
            let name = format!("{}", fastrand::u64(1_000_000_000..u64::MAX / 2));
            Ok(Start {
                name: Some(name),
                parent: String::new(),
                script: speech_script,
                outcome: Outcome::response(&response),
            })
        })
        .await
    }
}

/// What a start call starts: an operation under `parent` (or named `name`, as the API names
/// it) following `script` to `outcome`.
struct Start {
    name: Option<String>,
    parent: String,
    script: fn(Duration, Outcome) -> Script,
    outcome: Outcome,
}

impl Start {
    fn under<T: prost::Message + prost::Name>(
        parent: &str,
        script: fn(Duration, Outcome) -> Script,
        response: &T,
    ) -> Self {
        Start {
            name: None,
            parent: parent.to_owned(),
            script,
            outcome: Outcome::response(response),
        }
    }
}

/// The resource a start request is recorded under: its `parent`, when it has one.
trait Parent {
    fn parent(&self) -> &str;
}

macro_rules! parent_field {
    ($($request:ty),*) => {$(
        impl Parent for $request {
            fn parent(&self) -> &str {
                &self.parent
            }
        }
    )*};
}

parent_field!(
    pb::ImportProductSetsRequest,
    pb::PurgeProductsRequest,
    pb::AsyncBatchAnnotateFilesRequest,
    pb::AsyncBatchAnnotateImagesRequest
);

impl Parent for speech::LongRunningRecognizeRequest {
    fn parent(&self) -> &str {
        ""
    }
}

impl FakeService {
    /// A start call: counted and recorded, its request checked and turned into the operation
    /// it starts by `answer`, then started (unless a failure is due).
    async fn start<T: Parent>(
        &self,
        method: FakeMethod,
        request: Request<T>,
        answer: impl FnOnce(T) -> Result<Start, Status>,
    ) -> Result<Response<RawOperation>, Status> {
        let _call = self
            .shared
            .enter(method, &request, request.get_ref().parent())
            .await?;
        let start = answer(request.into_inner())?;
        match start.name {
            Some(name) => self.start_named(name, start.script, start.outcome),
            None => self.start_operation(&start.parent, start.script, start.outcome),
        }
    }
}
