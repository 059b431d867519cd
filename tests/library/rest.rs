//! The REST wire: the same client, waiter and errors over HTTP/JSON, against the fake's
//! REST surface on the same port as its gRPC.

use std::time::Duration;

use longrunning::rest::{RestMethod, RestRules};
use longrunning::testing::{FakeMethod, FakeServer, HttpFault, Outcome, Script};
use longrunning::transport::Connector;
use longrunning::wait::{WaitOptions, WaitStrategy};
use longrunning::{Code, ErrorDetail, ListOptions, OperationsClient, Status};

const OP: &str = "projects/p/locations/us-west1/operations/op1";

fn rest(fake: &FakeServer, rules: RestRules) -> OperationsClient {
    Connector::new()
        .endpoint(fake.endpoint())
        .rest(rules)
        .connect_lazy()
        .unwrap()
}

#[tokio::test]
async fn get_list_cancel_delete_and_wait_over_the_standard_rules() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert(
        OP,
        Script::finishing_after(Duration::from_millis(300), Outcome::NoResult),
    );
    let client = rest(&fake, RestRules::standard("v1").unwrap());
    let op = client.get(OP).await.unwrap();
    assert_eq!(op.name, OP);
    assert!(!op.done);
    let page = client
        .list("projects/p/locations/us-west1", &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(page.operations.len(), 1);
    let done = client.wait_for(OP, &WaitOptions::default()).await.unwrap();
    assert!(done.done);
    client.cancel(OP).await.unwrap();
    client.delete(OP).await.unwrap();
    let err = client.get(OP).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    for method in [
        FakeMethod::GetOperation,
        FakeMethod::ListOperations,
        FakeMethod::WaitOperation,
        FakeMethod::CancelOperation,
        FakeMethod::DeleteOperation,
    ] {
        assert!(fake.calls(method) > 0, "{method:?}");
    }
    fake.shutdown().await;
}

/// The gRPC client and a REST client with `rules`, on the same fake: the behaviour tests
/// below run on both from one body.
fn both_wires(fake: &FakeServer, rules: RestRules) -> [(&'static str, OperationsClient); 2] {
    let grpc = Connector::new()
        .endpoint(fake.endpoint())
        .connect_lazy()
        .unwrap();
    [("grpc", grpc), ("rest", rest(fake, rules))]
}

/// Google's quota error, with its details.
fn quota_error() -> Status {
    Status::new(
        Code::ResourceExhausted,
        "Quota exceeded for 'Operation read requests'",
    )
    .with_detail(ErrorDetail::ErrorInfo(longrunning::proto::rpc::ErrorInfo {
        reason: "RATE_LIMIT_EXCEEDED".into(),
        domain: "googleapis.com".into(),
        metadata: [("quota_limit_value".to_owned(), "900".to_owned())].into(),
    }))
    .with_detail(ErrorDetail::RetryInfo(longrunning::proto::rpc::RetryInfo {
        retry_delay: Some(prost_types::Duration {
            seconds: 3,
            nanos: 0,
        }),
    }))
}

#[tokio::test]
async fn errors_carry_the_same_code_message_and_details_on_both_wires() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let mut seen = Vec::new();
    for (wire, client) in both_wires(&fake, RestRules::standard("v1").unwrap()) {
        fake.fail_next_with(FakeMethod::GetOperation, 1, quota_error());
        let err = client.get(OP).await.unwrap_err();
        let status = err
            .status()
            .unwrap_or_else(|| panic!("{wire}: {err}"))
            .clone();
        assert_eq!(status.code, Code::ResourceExhausted, "{wire}");
        assert_eq!(status.retry_delay(), Some(Duration::from_secs(3)), "{wire}");
        seen.push((status.code, status.message.clone(), status.details.clone()));
        let missing = client.get(format!("{OP}x")).await.unwrap_err();
        assert_eq!(missing.code(), Some(Code::NotFound), "{wire}: {missing}");
    }
    assert_eq!(seen[0], seen[1], "gRPC and REST disagree");
    fake.shutdown().await;
}

#[tokio::test]
async fn waits_work_alike_on_both_wires() {
    let fake = FakeServer::start().await.unwrap();
    for (wire, client) in both_wires(&fake, RestRules::standard("v1").unwrap()) {
        for strategy in [WaitStrategy::Auto, WaitStrategy::Poll] {
            let names: Vec<String> = (0..5)
                .map(|i| {
                    fake.insert(
                        format!("projects/p/locations/l/operations/{wire}{strategy:?}{i}"),
                        Script::finishing_after(Duration::from_millis(100 * i), Outcome::NoResult),
                    )
                })
                .collect();
            let ops: Vec<longrunning::Operation<(), ()>> = names
                .iter()
                .map(|name| longrunning::Operation::from_name(client.clone(), name).unwrap())
                .collect();
            let options = WaitOptions {
                strategy,
                ..WaitOptions::default()
            };
            let results = longrunning::wait::wait_all(ops, &options).await;
            assert!(
                results.iter().all(|(_, r)| r.is_ok()),
                "{wire} {strategy:?}: {:?}",
                results.iter().find(|(_, r)| r.is_err()).map(|(_, r)| r)
            );
        }
    }
    fake.shutdown().await;
}

#[tokio::test]
async fn vision_rules_bind_get_only_and_refuse_the_rest_locally() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert(
        OP,
        Script::finishing_after(Duration::from_millis(300), Outcome::NoResult),
    );
    let client = rest(&fake, RestRules::vision_v1());
    assert_eq!(client.get(OP).await.unwrap().name, OP);
    // The short form Vision's pages use, on its own binding.
    let short = "locations/us-west1/operations/op1";
    assert_eq!(client.get(short).await.unwrap().name, OP);
    let before = fake.total_calls();
    for err in [
        client.cancel(OP).await.unwrap_err(),
        client.delete(OP).await.unwrap_err(),
        client
            .list("projects/p/locations/us-west1", &ListOptions::default())
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.code(), Some(Code::Unimplemented), "{err}");
        assert!(err.to_string().contains("no REST binding for"), "{err}");
    }
    let err = client.get("projects/p/jobs/1").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");
    assert!(
        err.to_string()
            .contains("/v1/{name=projects/*/locations/*/operations/*}"),
        "{err}"
    );
    assert_eq!(fake.total_calls(), before, "nothing was sent");
    // A wait polls: WaitOperation has no binding.
    let done = client.wait_for(OP, &WaitOptions::default()).await.unwrap();
    assert!(done.done);
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 0);
    fake.shutdown().await;
}

#[tokio::test]
async fn pages_that_are_not_json_say_what_they_are() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    // A path nothing serves: Google's HTML 404 is not an operation's NOT_FOUND.
    let rules = RestRules::new()
        .bind(RestMethod::Get, "GET", "/nope/{name=**}")
        .unwrap();
    let err = rest(&fake, rules).get(OP).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unimplemented), "{err}");
    assert!(
        err.to_string()
            .contains("is not served (check the REST rules)"),
        "{err}"
    );
    assert!(err.to_string().len() < 600, "{err}");
    // A proxy's 502 page, quoted short.
    let client = rest(&fake, RestRules::standard("v1").unwrap());
    fake.http_fault_next(FakeMethod::GetOperation, 1, HttpFault::bad_gateway());
    let err = client.get(OP).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 502 from"), "{err}");
    fake.shutdown().await;
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_named_as_over_grpc() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = Connector::new()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .retry_policy(longrunning::RetryPolicy {
            backoff: longrunning::backoff::Backoff::new(
                Duration::from_millis(1),
                Duration::from_millis(2),
                2.0,
            ),
            ..Default::default()
        })
        .rest(RestRules::standard("v1").unwrap())
        .connect_lazy()
        .unwrap();
    let err = client.get(OP).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unavailable), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

/// A server that answers every request with `answer` (the whole HTTP response), or, for
/// `None`, with a chunked body that never ends.
async fn hostile(answer: Option<Vec<u8>>) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                match answer {
                    Some(answer) => {
                        let _ = socket.write_all(&answer).await;
                    }
                    None => {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n1\r\n{\r\n";
                        let _ = socket.write_all(head.as_bytes()).await;
                        for _ in 0..600 {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            if socket.write_all(b"1\r\n \r\n").await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (endpoint, task)
}

fn http_answer(content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut answer = b"HTTP/1.1 200 OK\r\n".to_vec();
    if let Some(content_type) = content_type {
        answer.extend_from_slice(format!("content-type: {content_type}\r\n").as_bytes());
    }
    answer.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    answer.extend_from_slice(body);
    answer
}

#[tokio::test]
async fn bad_answers_over_http_are_typed_errors_in_bounded_time_and_memory() {
    let json = Some("application/json");
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        (
            "50 MB",
            Some(http_answer(json, &vec![b' '; 50 << 20])),
            "larger than",
        ),
        (
            "truncated",
            Some(http_answer(json, br#"{"name": "x", "do"#)),
            "not a google.longrunning.Operation",
        ),
        (
            "not an object",
            Some(http_answer(json, b"[1, 2, 3]")),
            "not a google.longrunning.Operation",
        ),
        (
            "nested",
            Some(http_answer(json, nested.as_bytes())),
            "not a google.longrunning.Operation",
        ),
        (
            "done: yes",
            Some(http_answer(json, br#"{"name": "x", "done": "yes"}"#)),
            "not a google.longrunning.Operation",
        ),
        (
            "no content type",
            Some(http_answer(None, br#"{"name": "x"}"#)),
            "not JSON",
        ),
        (
            "text/plain",
            Some(http_answer(Some("text/plain"), br#"{"name": "x"}"#)),
            "not JSON",
        ),
        ("never ends", None, "no answer from"),
    ];
    for (case, answer, expected) in cases {
        let (endpoint, server) = hostile(answer).await;
        let client = Connector::new()
            .endpoint(endpoint)
            .max_response_bytes(4 << 20)
            .retry_policy(longrunning::RetryPolicy {
                max_attempts: 1,
                per_call_timeout: Duration::from_secs(1),
                ..Default::default()
            })
            .rest(RestRules::standard("v1").unwrap())
            .connect_lazy()
            .unwrap();
        let started = std::time::Instant::now();
        let err = client.get(OP).await.unwrap_err();
        assert!(err.to_string().contains(expected), "{case}: {err}");
        assert!(err.to_string().len() < 1000, "{case}: {err}");
        assert!(started.elapsed() < Duration::from_secs(10), "{case}");
        server.abort();
    }
}

#[tokio::test]
async fn vision_start_calls_go_by_their_own_http_rules_and_wait_alike() {
    use longrunning::vision::{ImageAnnotator, ProductSearch, pb};
    let fake = FakeServer::start().await.unwrap();
    fake.set_operation_duration(Duration::from_millis(200));
    for (wire, client) in both_wires(&fake, RestRules::vision_v1()) {
        let search = ProductSearch::new(client.clone());
        let mut purge = search
            .purge_products(pb::PurgeProductsRequest {
                parent: "projects/p/locations/us-west1".into(),
                target: Some(pb::purge_products_request::Target::DeleteOrphanProducts(
                    true,
                )),
                force: true,
            })
            .await
            .unwrap_or_else(|e| panic!("{wire}: {e}"));
        assert!(
            purge
                .name()
                .starts_with("projects/p/locations/us-west1/operations/")
        );
        let outcome = purge.wait(&WaitOptions::default()).await.unwrap();
        let echoed = outcome.echoed_request.expect("the request, echoed");
        assert!(echoed.force, "{wire}");
        assert_eq!(echoed.parent, "projects/p/locations/us-west1", "{wire}");
        let mut import = search
            .import_product_sets(pb::ImportProductSetsRequest {
                parent: "projects/p/locations/us-west1".into(),
                input_config: Some(pb::ImportProductSetsInputConfig {
                    source: Some(pb::import_product_sets_input_config::Source::GcsSource(
                        pb::ImportProductSetsGcsSource {
                            csv_file_uri: "gs://bucket/sets.csv".into(),
                        },
                    )),
                }),
            })
            .await
            .unwrap_or_else(|e| panic!("{wire}: {e}"));
        import.wait(&WaitOptions::default()).await.unwrap();
        let annotator = ImageAnnotator::new(client.clone());
        let mut annotate = annotator
            .async_batch_annotate_files(pb::AsyncBatchAnnotateFilesRequest {
                parent: "projects/p".into(),
                requests: vec![pb::AsyncAnnotateFileRequest {
                    input_config: Some(pb::InputConfig {
                        gcs_source: Some(pb::GcsSource {
                            uri: "gs://bucket/doc.pdf".into(),
                        }),
                        mime_type: "application/pdf".into(),
                        ..Default::default()
                    }),
                    features: vec![pb::Feature {
                        r#type: pb::feature::Type::DocumentTextDetection as i32,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{wire}: {e}"));
        annotate.wait(&WaitOptions::default()).await.unwrap();
    }
    let posts = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == FakeMethod::PurgeProducts)
        .count();
    assert_eq!(posts, 2, "one purge on each wire");
    fake.shutdown().await;
}

/// A Python with Google's api-core (and its REST transport): `LRO_APICORE_PYTHON`, else the
/// venv `.ci/run` and `benches/apicore/compare.sh` make in `target/`.
fn apicore_python() -> Option<std::path::PathBuf> {
    let candidate = std::env::var_os("LRO_APICORE_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/apicore-venv/bin/python")
        });
    let works = std::process::Command::new(&candidate)
        .args([
            "-c",
            "import google.api_core.operations_v1.transports.rest, google.cloud.vision_v1",
        ])
        .output()
        .is_ok_and(|out| out.status.success());
    works.then_some(candidate)
}

#[tokio::test]
async fn googles_python_api_core_reads_what_the_fake_serves_over_rest() {
    let Some(python) = apicore_python() else {
        eprintln!(
            "skipped: no Python with google-api-core[grpc] (set LRO_APICORE_PYTHON, or let \
             .ci/run make target/apicore-venv): the independent check of the fake's REST surface \
             needs Google's own client"
        );
        return;
    };
    let fake = FakeServer::start().await.unwrap();
    let parent = "projects/p/locations/us-west1";
    let running = fake.insert_running(format!("{parent}/operations/running"));
    let failed = fake.insert(
        format!("{parent}/operations/failed"),
        Script::finishing_after(
            Duration::ZERO,
            Outcome::error(tonic::Code::InvalidArgument, "bad CSV"),
        ),
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apicore/rest_client.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .arg(fake.addr().to_string())
        .args([parent, running.as_str(), failed.as_str()])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("api-core within a minute")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let steps: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(steps[0]["name"], running.as_str());
    assert_eq!(steps[0]["done"], false);
    assert_eq!(steps[1]["done"], true);
    assert_eq!(steps[1]["code"], 3);
    assert_eq!(steps[1]["message"], "bad CSV");
    assert_eq!(steps[2]["names"], serde_json::json!([failed, running]));
    assert_eq!(steps[3]["done"], true);
    assert_eq!(steps[3]["code"], 1, "cancelled");
    assert_eq!(steps[4]["error"], "NotFound");
    fake.shutdown().await;
}

/// The gRPC client and a REST client with `rules`, both on the fake's in-memory
/// connections: for exact tests on tokio's paused clock.
fn both_wires_in_memory(
    fake: &FakeServer,
    rules: RestRules,
) -> [(&'static str, OperationsClient); 2] {
    let rest = fake.connector().rest(rules).connect_lazy().unwrap();
    [("grpc", fake.client()), ("rest", rest)]
}

#[tokio::test(start_paused = true)]
async fn the_poll_schedule_is_exact_and_the_same_on_both_wires() {
    use longrunning::backoff::{Backoff, Jitter};
    let fake = FakeServer::start().await.unwrap();
    fake.set_wait_unimplemented(true);
    let options = WaitOptions {
        poll_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 2.0)
            .with_jitter(Jitter::Off),
        ..WaitOptions::default()
    };
    let mut schedules = Vec::new();
    for (wire, client) in both_wires_in_memory(&fake, RestRules::standard("v1").unwrap()) {
        let name = fake.insert(
            format!("projects/p/locations/l/operations/{wire}"),
            Script::finishing_after(Duration::from_millis(5500), Outcome::NoResult),
        );
        let start = tokio::time::Instant::now();
        let done = client.wait_for(&name, &options).await.unwrap();
        assert!(done.done, "{wire}");
        let gets: Vec<Duration> = fake
            .requests()
            .iter()
            .filter(|r| r.method == FakeMethod::GetOperation && r.resource == name)
            .map(|r| r.at - start)
            .collect();
        schedules.push((start.elapsed(), gets));
    }
    // After the WaitOperation probe (UNIMPLEMENTED), a GetOperation at once, then 1, 2 and
    // 4 s later: at 0, 1, 3 and 7 s, on either wire.
    let expected: Vec<Duration> = [0, 1, 3, 7].map(Duration::from_secs).to_vec();
    assert_eq!(schedules[0].1, expected, "grpc");
    assert_eq!(schedules[1].1, expected, "rest");
    assert_eq!(schedules[0].0, schedules[1].0);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn quota_errors_hold_both_wires_to_what_the_server_admits() {
    // Per-operation polling under a quota, on each wire: the adaptive limit reads the REST
    // wire's 429 as it reads gRPC's RESOURCE_EXHAUSTED, and no wait is lost.
    for wire in ["grpc", "rest"] {
        let fake = FakeServer::builder()
            .record_requests(false)
            .start()
            .await
            .unwrap();
        fake.set_wait_unimplemented(true);
        fake.set_listing(longrunning::testing::Listing::Unimplemented);
        fake.set_quota(Some(120));
        let [(_, grpc), (_, rest)] =
            both_wires_in_memory(&fake, RestRules::standard("v1").unwrap());
        let client = if wire == "grpc" { grpc } else { rest };
        let ops: Vec<longrunning::Operation<(), ()>> = (0..100)
            .map(|i| {
                let name = fake.insert(
                    format!("projects/p/locations/l/operations/q{i}"),
                    Script::finishing_after(Duration::from_secs(i), Outcome::NoResult),
                );
                longrunning::Operation::from_name(client.clone(), &name).unwrap()
            })
            .collect();
        let results = longrunning::wait::wait_all(ops, &WaitOptions::default()).await;
        let lost = results.iter().filter(|(_, r)| r.is_err()).count();
        assert_eq!(lost, 0, "{wire}");
        assert!(fake.quota_refusals() > 0, "{wire}: the quota was met");
        fake.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn progress_and_failed_operations_read_the_same_on_both_wires() {
    use futures_util::StreamExt as _;
    use longrunning::vision::{BatchState, pb};
    use longrunning::wait::Watched;
    let fake = FakeServer::start().await.unwrap();
    let mut seen = Vec::new();
    for (wire, client) in both_wires_in_memory(&fake, RestRules::standard("v1").unwrap()) {
        let running = pb::BatchOperationMetadata {
            state: BatchState::Processing as i32,
            ..Default::default()
        };
        let name = fake.insert(
            format!("projects/p/locations/l/operations/progress-{wire}"),
            Script::finishing_after(
                Duration::from_secs(30),
                Outcome::error(tonic::Code::InvalidArgument, "bad CSV line 7"),
            )
            .metadata_from(Duration::from_secs(5), &running),
        );
        let start = tokio::time::Instant::now();
        let mut states = Vec::new();
        let mut watched = client.watch_each([name.clone()], &WaitOptions::default());
        while let Some((_, item)) = watched.next().await {
            if let Watched::Snapshot(op) = item.unwrap() {
                let at = start.elapsed().as_secs();
                states.push((at, op.done, longrunning::json::metadata_state(&op)));
            }
        }
        assert!(
            states.last().is_some_and(|(_, done, _)| *done),
            "{wire}: {states:?}"
        );
        assert!(
            states.iter().any(|(_, done, _)| !done),
            "{wire}: {states:?}"
        );
        let mut op =
            longrunning::vision::ImportProductSetsOperation::from_name(client.clone(), &name)
                .unwrap();
        let err = op.wait(&WaitOptions::default()).await.unwrap_err();
        assert_eq!(err.code(), Some(Code::InvalidArgument), "{wire}: {err}");
        assert!(err.to_string().contains("bad CSV line 7"), "{wire}: {err}");
        seen.push(states);
    }
    assert_eq!(
        seen[0], seen[1],
        "the same reports at the same times on both wires"
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn https_trusts_the_cas_given_and_refuses_others_as_over_grpc() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let fake = FakeServer::builder()
        .tls(certified.cert.pem(), certified.signing_key.serialize_pem())
        .start()
        .await
        .unwrap();
    fake.insert_running(OP);
    let rules = RestRules::standard("v1").unwrap();
    let trusting = Connector::new()
        .endpoint(fake.endpoint())
        .ca_certificate_pem(certified.cert.pem())
        .rest(rules.clone())
        .connect_lazy()
        .unwrap();
    assert_eq!(trusting.get(OP).await.unwrap().name, OP);
    let untrusting = Connector::new()
        .endpoint(fake.endpoint())
        .rest(rules)
        .connect_lazy()
        .unwrap();
    let err = untrusting.get(OP).await.unwrap_err();
    let longrunning::Error::Certificate { peer, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*peer, format!("localhost:{}", fake.addr().port()));
    fake.shutdown().await;
}

#[tokio::test]
async fn speechs_rules_get_and_list_on_the_fake() {
    let fake = FakeServer::start().await.unwrap();
    let name = fake.insert_running("operations/1234");
    let client = rest(&fake, RestRules::speech_v1());
    // Speech's names are bare IDs: `GET /v1/operations/1234`.
    assert_eq!(client.get("1234").await.unwrap().name, name);
    let page = client.list("", &ListOptions::default()).await.unwrap();
    assert!(page.operations.iter().any(|op| op.name == name));
    let err = client.cancel(&name).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unimplemented), "{err}");
    fake.shutdown().await;
}
