//! The fake server's own switches: faults, latency, restarts, recording, shutdown.

use std::time::Duration;

use longrunning::proto::longrunning::operation::Result as RawResult;
use longrunning::proto::vision as pb;
use longrunning::testing::{FakeMethod, FakeServer, Outcome, Script};
use longrunning::{Code, RawOperation};
use tokio::time::Instant;

const OP: &str = "operations/op1";

#[tokio::test(start_paused = true)]
async fn fail_first_fails_that_many_calls_of_that_method_only() {
    let fake = FakeServer::start().await.unwrap();
    fake.fail_next(FakeMethod::GetOperation, 2);
    fake.insert_running(OP);
    let raw = fake.client().with_retry_policy(longrunning::RetryPolicy {
        max_attempts: 1,
        ..Default::default()
    });
    assert_eq!(
        raw.get(OP).await.unwrap_err().code(),
        Some(Code::Unavailable)
    );
    raw.cancel(OP).await.unwrap();
    assert_eq!(
        raw.get(OP).await.unwrap_err().code(),
        Some(Code::Unavailable)
    );
    assert!(raw.get(OP).await.unwrap().done);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn latency_delays_every_call() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_latency(Duration::from_millis(700));
    fake.insert_running(OP);
    let client = fake.client();
    let start = Instant::now();
    client.get(OP).await.unwrap();
    client.cancel(OP).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(1400));
    fake.set_latency(Duration::ZERO);
    let start = Instant::now();
    client.get(OP).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_restart_on_the_same_port_keeps_operations_and_clients_reconnect() {
    let mut fake = FakeServer::start().await.unwrap();
    fake.insert(
        OP,
        Script::finishing_after(Duration::from_secs(30), Outcome::NoResult),
    );
    let client = fake.client();
    assert!(!client.get(OP).await.unwrap().done);
    let addr = fake.addr();

    // A Wait pending across the stop fails UNAVAILABLE at once instead of hanging.
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.wait_operation(OP, Duration::from_secs(60)).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    fake.stop().await;
    let err = waiting.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Some(Code::Unavailable), "{err:?}");

    fake.restart().await.unwrap();
    assert_eq!(fake.addr(), addr);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(client.get(OP).await.unwrap().done);
    fake.shutdown().await;
}

#[tokio::test]
async fn dropping_the_fake_closes_its_port() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let endpoint = fake.endpoint();
    fake.client().get(OP).await.unwrap();
    drop(fake);
    // The listener closes with the server task; new connections are refused.
    let mut refused = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(endpoint.trim_start_matches("http://"))
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(refused, "the port still accepts connections after drop");
}

#[tokio::test]
async fn insert_raw_keeps_a_done_snapshot_as_it_is() {
    let fake = FakeServer::start().await.unwrap();
    let metadata = prost_types::Any {
        type_url: "type.googleapis.com/google.cloud.vision.v1.BatchOperationMetadata".into(),
        value: prost::Message::encode_to_vec(&pb::BatchOperationMetadata {
            state: 2,
            ..Default::default()
        }),
    };
    let raw = RawOperation {
        name: "locations/location-id/operations/operation-id".into(),
        metadata: Some(metadata),
        done: true,
        result: Some(RawResult::Error(longrunning::proto::rpc::Status {
            code: 5,
            message: "gone".into(),
            details: Vec::new(),
        })),
    };
    fake.insert_raw(raw.clone());
    assert_eq!(fake.client().get(&raw.name).await.unwrap(), raw);
    assert_eq!(fake.snapshot(&raw.name), Some(raw.clone()));
    // Finishing a done operation changes nothing.
    assert!(!fake.finish(&raw.name, Outcome::NoResult));
    assert_eq!(fake.operation_names(), vec![raw.name.clone()]);
    fake.shutdown().await;
}

#[tokio::test]
async fn finish_ends_a_running_operation_and_wakes_waiters() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let client = fake.client();
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.wait_operation(OP, Duration::from_secs(600)).await }
    });
    while fake.calls(FakeMethod::WaitOperation) == 0 {
        tokio::task::yield_now().await;
    }
    assert!(fake.finish(OP, Outcome::error(Code::Internal, "boom")));
    let op = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiter was not woken")
        .unwrap()
        .unwrap();
    assert!(op.done);
    assert!(matches!(op.result, Some(RawResult::Error(s)) if s.code == Code::Internal as i32));
    fake.shutdown().await;
}

#[tokio::test]
async fn requests_are_recorded_with_their_headers_unless_switched_off() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let mut request = tonic::Request::new(longrunning::proto::longrunning::GetOperationRequest {
        name: OP.into(),
    });
    request
        .metadata_mut()
        .insert("x-test", "hello".parse().unwrap());
    longrunning::proto::longrunning::operations_client::OperationsClient::new(fake.channel())
        .get_operation(request)
        .await
        .unwrap();
    let recorded = fake.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].resource, OP);
    assert_eq!(recorded[0].headers["x-test"], "hello");
    fake.shutdown().await;

    let quiet = FakeServer::builder()
        .record_requests(false)
        .start()
        .await
        .unwrap();
    quiet.insert_running(OP);
    quiet.client().get(OP).await.unwrap();
    assert!(quiet.requests().is_empty());
    assert_eq!(quiet.calls(FakeMethod::GetOperation), 1);
    quiet.shutdown().await;
}

#[tokio::test]
async fn a_stream_limit_is_advertised_and_calls_beyond_it_queue() {
    let fake = FakeServer::builder()
        .max_concurrent_streams(2)
        .start()
        .await
        .unwrap();
    fake.insert_running(OP);
    let client = fake.client();
    // Once the connection is up the client knows the server's SETTINGS and queues the
    // streams beyond the limit itself. (Before that, h2 opens them optimistically and the
    // server refuses the extras: the waiter's concern, not the fake's.)
    client.get(OP).await.unwrap();
    let waits: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.wait_operation(OP, Duration::from_secs(600)).await })
        })
        .collect();
    // Two Wait calls hold the two streams; the others queue on the client.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 2);
    fake.finish(OP, Outcome::NoResult);
    for wait in waits {
        assert!(wait.await.unwrap().unwrap().done);
    }
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 4);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_quota_admits_so_many_operations_rpcs_a_minute_and_answers_as_google_does() {
    use longrunning::ErrorDetail;
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running("operations/q");
    fake.set_quota(Some(10));
    let client = fake.client();
    let mut refused = Vec::new();
    for _ in 0..15 {
        if let Err(err) = client.get("operations/q").await {
            refused.push(err);
        }
    }
    assert_eq!(refused.len(), 5);
    assert_eq!(fake.quota_refusals(), 5);
    let status = refused[0].status().unwrap();
    assert_eq!(status.code, longrunning::Code::ResourceExhausted);
    assert!(status.details.iter().any(|d| matches!(
        d,
        ErrorDetail::ErrorInfo(info) if info.reason == "RATE_LIMIT_EXCEEDED"
    )));
    assert!(
        status
            .details
            .iter()
            .any(|d| matches!(d, ErrorDetail::QuotaFailure(_)))
    );
    assert_eq!(status.retry_delay(), None);
    // Start calls are not counted; a minute later the window has room again.
    longrunning::vision::ProductSearch::new(client.clone())
        .purge_products(pb::PurgeProductsRequest {
            parent: "projects/p/locations/us-west1".into(),
            target: Some(pb::purge_products_request::Target::DeleteOrphanProducts(
                true,
            )),
            force: true,
        })
        .await
        .unwrap();
    assert!(client.get("operations/q").await.is_err());
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    for _ in 0..10 {
        client.get("operations/q").await.unwrap();
    }
    assert!(client.get("operations/q").await.is_err());
    fake.set_quota(None);
    client.get("operations/q").await.unwrap();
    fake.shutdown().await;
}
