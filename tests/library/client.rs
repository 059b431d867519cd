//! `OperationsClient` against the in-process fake: every RPC, pagination, the routing
//! header, retries, timeouts, and bad input.

use std::time::Duration;

use futures_util::TryStreamExt;
use longrunning::testing::{FakeMethod, FakeServer, Outcome, Script};
use longrunning::{Code, Error, ListOptions, OperationsClient, RetryPolicy};
use tokio::time::Instant;

const OP: &str = "projects/p1/locations/us-west1/operations/op1";

#[tokio::test]
async fn get_returns_the_operation_and_sends_the_routing_header() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let op = fake.client().get(OP).await.unwrap();
    assert_eq!(op.name, OP);
    assert!(!op.done);

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, FakeMethod::GetOperation);
    assert_eq!(
        requests[0].headers["x-goog-request-params"],
        "name=projects%2Fp1%2Flocations%2Fus-west1%2Foperations%2Fop1"
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn every_rpc_sends_the_routing_header_with_its_resource() {
    let fake = FakeServer::start().await.unwrap();
    let client = fake.client();
    fake.insert_running(OP);
    client.get(OP).await.unwrap();
    client
        .list("projects/p1/locations/us-west1", &ListOptions::default())
        .await
        .unwrap();
    client.wait_operation(OP, Duration::ZERO).await.unwrap();
    client.cancel(OP).await.unwrap();
    client.delete(OP).await.unwrap();

    let seen: Vec<(FakeMethod, String)> = fake
        .requests()
        .into_iter()
        .map(|r| {
            let header = r.headers["x-goog-request-params"]
                .to_str()
                .unwrap()
                .to_owned();
            (r.method, header)
        })
        .collect();
    let op = "name=projects%2Fp1%2Flocations%2Fus-west1%2Foperations%2Fop1".to_owned();
    assert_eq!(
        seen,
        [
            (FakeMethod::GetOperation, op.clone()),
            (
                FakeMethod::ListOperations,
                "name=projects%2Fp1%2Flocations%2Fus-west1".to_owned()
            ),
            (FakeMethod::WaitOperation, op.clone()),
            (FakeMethod::CancelOperation, op.clone()),
            (FakeMethod::DeleteOperation, op),
        ]
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn list_returns_one_page_and_list_all_follows_every_page() {
    let fake = FakeServer::start().await.unwrap();
    for i in 0..25 {
        fake.insert_running(format!(
            "projects/p1/locations/us-west1/operations/op{i:02}"
        ));
    }
    fake.insert_running("projects/p2/locations/us-west1/operations/elsewhere");
    let client = fake.client();
    let parent = "projects/p1/locations/us-west1";
    let options = ListOptions {
        page_size: 10,
        ..ListOptions::default()
    };

    let first = client.list(parent, &options).await.unwrap();
    assert_eq!(first.operations.len(), 10);
    assert!(first.next_page_token.is_some());

    let all: Vec<_> = client
        .list_all(parent, options)
        .try_collect()
        .await
        .unwrap();
    let names: Vec<_> = all.iter().map(|op| op.name.as_str()).collect();
    let expected: Vec<_> = (0..25)
        .map(|i| format!("projects/p1/locations/us-west1/operations/op{i:02}"))
        .collect();
    assert_eq!(names, expected);
    // One page first, then three more for list_all (10 + 10 + 5).
    assert_eq!(fake.calls(FakeMethod::ListOperations), 4);
    fake.shutdown().await;
}

#[tokio::test]
async fn list_passes_the_filter_and_reports_server_errors() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running("operations/running");
    fake.insert(
        "operations/finished",
        Script::finishing_after(Duration::ZERO, Outcome::NoResult),
    );
    let client = fake.client();
    let done = ListOptions {
        filter: "done = true".into(),
        ..ListOptions::default()
    };
    let page = client.list("", &done).await.unwrap();
    let names: Vec<_> = page.operations.iter().map(|op| op.name.as_str()).collect();
    assert_eq!(names, ["operations/finished"]);
    assert_eq!(page.next_page_token, None);

    let bad = ListOptions {
        filter: "metadata.state = 3".into(),
        ..ListOptions::default()
    };
    let err = client.list("", &bad).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument));
    // A stream stops at its first error.
    let items: Vec<_> = client.list_all("", bad).collect_all().await;
    assert_eq!(items.len(), 1);
    assert!(items[0].is_err());
    fake.shutdown().await;
}

#[tokio::test]
async fn cancel_turns_the_operation_into_a_cancelled_one() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let client = fake.client();
    client.cancel(OP).await.unwrap();
    let op = client.get(OP).await.unwrap();
    assert!(op.done);
    let Some(longrunning::proto::longrunning::operation::Result::Error(status)) = op.result else {
        panic!("not an error: {op:?}");
    };
    assert_eq!(status.code, 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn delete_forgets_the_operation_and_get_then_reports_not_found() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let client = fake.client();
    client.delete(OP).await.unwrap();
    let err = client.get(OP).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound));
    assert!(
        matches!(
            err,
            Error::Rpc {
                method: "GetOperation",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("NOT_FOUND"), "{err}");
    // NOT_FOUND is not retried.
    assert_eq!(fake.calls(FakeMethod::GetOperation), 1);
    for result in [client.cancel(OP).await, client.delete(OP).await] {
        assert_eq!(result.unwrap_err().code(), Some(Code::NotFound));
    }
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn wait_returns_as_soon_as_the_operation_is_done() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert(
        OP,
        Script::finishing_after(Duration::from_secs(5), Outcome::NoResult),
    );
    let start = Instant::now();
    let op = fake
        .client()
        .wait_operation(OP, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(op.done);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn wait_returns_not_done_when_its_timeout_passes() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let start = Instant::now();
    let op = fake
        .client()
        .wait_operation(OP, Duration::from_secs(3))
        .await
        .unwrap();
    assert!(!op.done);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn wait_reports_unimplemented_and_is_not_retried() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_wait_unimplemented(true);
    fake.insert_running(OP);
    let err = fake
        .client()
        .wait_operation(OP, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::Unimplemented));
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 1);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn unavailable_is_retried_with_backoff_until_it_succeeds() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    fake.fail_next(FakeMethod::GetOperation, 3);
    let start = Instant::now();
    let op = fake.client().get(OP).await.unwrap();
    assert_eq!(op.name, OP);
    assert_eq!(fake.calls(FakeMethod::GetOperation), 4);
    // Jittered 0.5 s, 1 s, 2 s: between half and all of 3.5 s.
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(1750) && waited <= Duration::from_millis(3500),
        "{waited:?}"
    );
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn retries_stop_after_max_attempts() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    fake.fail_next(FakeMethod::GetOperation, 100);
    let err = fake.client().get(OP).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unavailable));
    assert_eq!(fake.calls(FakeMethod::GetOperation), 5);

    fake.fail_next(FakeMethod::CancelOperation, 100);
    fake.fail_next(FakeMethod::DeleteOperation, 100);
    let once = fake.client().with_retry_policy(RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    });
    once.cancel(OP).await.unwrap_err();
    once.delete(OP).await.unwrap_err();
    assert_eq!(fake.calls(FakeMethod::CancelOperation), 1);
    assert_eq!(fake.calls(FakeMethod::DeleteOperation), 1);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn list_cancel_and_delete_retry_unavailable_too() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let client = fake.client();
    for method in [
        FakeMethod::ListOperations,
        FakeMethod::CancelOperation,
        FakeMethod::DeleteOperation,
    ] {
        fake.fail_next(method, 2);
    }
    client.list("", &ListOptions::default()).await.unwrap();
    client.cancel(OP).await.unwrap();
    client.delete(OP).await.unwrap();
    assert_eq!(fake.calls(FakeMethod::ListOperations), 3);
    assert_eq!(fake.calls(FakeMethod::CancelOperation), 3);
    assert_eq!(fake.calls(FakeMethod::DeleteOperation), 3);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_server_hits_the_per_call_timeout() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_latency(Duration::from_secs(30));
    fake.insert_running(OP);
    let client = fake.client().with_retry_policy(RetryPolicy {
        per_call_timeout: Duration::from_secs(2),
        ..RetryPolicy::default()
    });
    let start = Instant::now();
    let err = client.get(OP).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::DeadlineExceeded));
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    // DEADLINE_EXCEEDED is not in the default retry codes.
    assert_eq!(fake.calls(FakeMethod::GetOperation), 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn bad_names_are_rejected_before_any_rpc() {
    let fake = FakeServer::start().await.unwrap();
    let client = fake.client();
    for name in [
        "",
        "operations/a b",
        "operations/x\n",
        "operations/a\u{200b}b",
    ] {
        for err in [
            client.get(name).await.unwrap_err(),
            client.cancel(name).await.unwrap_err(),
            client.delete(name).await.unwrap_err(),
            client
                .wait_operation(name, Duration::from_secs(1))
                .await
                .unwrap_err(),
        ] {
            assert!(
                matches!(err, Error::InvalidName { .. }),
                "{name:?}: {err:?}"
            );
        }
    }
    let err = client
        .list("projects/p 1", &ListOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err:?}");
    assert_eq!(fake.total_calls(), 0);
    fake.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_connect_error_or_unavailable() {
    // A port that was just free: bind, note it, release it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let err = OperationsClient::connect(endpoint.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&endpoint), "{err}");

    let err = OperationsClient::connect("not a url").await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");

    // A lazy channel reports the refused connection as UNAVAILABLE, after the retries.
    let channel = tonic::transport::Endpoint::from_shared(endpoint)
        .unwrap()
        .connect_lazy();
    let client = OperationsClient::new(channel).with_retry_policy(RetryPolicy {
        max_attempts: 2,
        backoff: longrunning::backoff::Backoff::new(
            Duration::from_millis(1),
            Duration::from_millis(1),
            1.0,
        ),
        ..RetryPolicy::default()
    });
    let err = client.get(OP).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unavailable), "{err:?}");
}

/// Collects a stream of results, errors included.
trait CollectAll: futures_core::Stream + Sized {
    async fn collect_all(self) -> Vec<Self::Item> {
        use futures_util::StreamExt;
        self.collect().await
    }
}

impl<S: futures_core::Stream> CollectAll for S {}

#[tokio::test]
async fn routing_values_are_percent_encoded_byte_by_byte() {
    let fake = FakeServer::start().await.unwrap();
    let name = "projects/p.1~x_y-z/locations/üs/operations/a%b+c";
    fake.insert_running(name);
    fake.client().get(name).await.unwrap();
    assert_eq!(
        fake.requests()[0].headers["x-goog-request-params"],
        "name=projects%2Fp.1~x_y-z%2Flocations%2F%C3%BCs%2Foperations%2Fa%25b%2Bc"
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn long_names_are_encoded_whole() {
    let fake = FakeServer::start().await.unwrap();
    // Long enough that the encoder leaves its stack buffer.
    let id = "é".repeat(100);
    let name = format!("projects/p/locations/l/operations/{id}");
    fake.insert_running(&name);
    fake.client().get(&name).await.unwrap();
    let expected = format!(
        "name=projects%2Fp%2Flocations%2Fl%2Foperations%2F{}",
        "%C3%A9".repeat(100)
    );
    assert_eq!(
        fake.requests()[0].headers["x-goog-request-params"],
        expected
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn only_calls_that_start_work_send_their_deadline_and_a_wait_sends_its_timeout() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let client = fake.client();
    client.get(OP).await.unwrap();
    // The server keeps the timeout in the request: it answers, still running, at once.
    let waited = client
        .wait_operation(OP, Duration::from_millis(1))
        .await
        .unwrap();
    assert!(!waited.done);
    let search = longrunning::vision::ProductSearch::new(client.clone());
    search
        .purge_products(longrunning::vision::pb::PurgeProductsRequest {
            parent: "projects/p1/locations/us-west1".into(),
            target: Some(
                longrunning::vision::pb::purge_products_request::Target::DeleteOrphanProducts(true),
            ),
            force: true,
        })
        .await
        .unwrap();
    let requests = fake.requests();
    let timeouts: Vec<_> = requests
        .iter()
        .map(|r| {
            let timeout = r.headers.get("grpc-timeout");
            (
                r.method,
                timeout.and_then(|v| v.to_str().ok()).map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(timeouts[0], (FakeMethod::GetOperation, None));
    // The wait's timeout is in its request, and the server keeps it; the client's deadline
    // (that plus the per-call margin) it enforces itself.
    assert_eq!(timeouts[1], (FakeMethod::WaitOperation, None));

    assert_eq!(timeouts[2].0, FakeMethod::PurgeProducts);
    assert_eq!(timeouts[2].1.as_deref(), Some("600000m"));
    fake.shutdown().await;
}

#[tokio::test]
async fn list_all_ends_with_an_error_when_the_server_repeats_a_page_token() {
    use crate::support::{Pager, serve_pager};
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (endpoint, _stop) = serve_pager(Pager {
        per_page: 3,
        repeat_token: Some("again"),
        calls: calls.clone(),
    })
    .await;
    let client = OperationsClient::connect(endpoint).await.unwrap();
    let items: Vec<_> =
        futures_util::StreamExt::collect(client.list_all("projects/p", ListOptions::default()))
            .await;
    assert_eq!(items.len(), 4, "three operations, then the error");
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert!(err.to_string().contains("repeated the page token"), "{err}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn any_channel_fits_a_tonic_interceptor_included() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let intercepted = tonic::service::interceptor::InterceptedService::new(
        fake.channel(),
        |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("x-intercepted", "yes".parse().unwrap());
            Ok(request)
        },
    );
    let client = OperationsClient::from_service(intercepted);
    assert!(!client.get(OP).await.unwrap().done);
    let headers = &fake.requests()[0].headers;
    assert_eq!(headers["x-intercepted"], "yes");
    fake.shutdown().await;
}

#[tokio::test]
async fn connector_layers_see_every_call_and_its_transport_serves_other_generated_clients() {
    use longrunning::proto::longrunning::GetOperationRequest;
    use longrunning::proto::longrunning::operations_client::OperationsClient as Generated;
    use longrunning::transport::Connector;

    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    let layer = tower::layer::layer_fn(move |inner: longrunning::transport::Transport| {
        let counter = counter.clone();
        tower::ServiceExt::map_request(inner, move |request: http::Request<tonic::body::Body>| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            request
        })
    });
    let connector = || {
        Connector::new()
            .endpoint(fake.endpoint())
            .layer(layer.clone())
    };
    connector().connect().await.unwrap().get(OP).await.unwrap();
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);

    // The same stack under a tonic-generated client, sharing the pool with ours.
    let transport = connector().transport().unwrap();
    let mut generated = Generated::new(transport.clone());
    let answer = generated
        .get_operation(GetOperationRequest { name: OP.into() })
        .await
        .unwrap();
    assert_eq!(answer.into_inner().name, OP);
    let ours = OperationsClient::from_transport(transport);
    ours.get(OP).await.unwrap();
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 3);
    let requests = fake.requests();
    let [.., generated_call, our_call] = requests.as_slice() else {
        panic!("three calls were made");
    };
    assert_eq!(
        generated_call.peer, our_call.peer,
        "one connection under both clients"
    );
    // Every request carried the auth layer's x-goog-api-client.
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.headers.contains_key("x-goog-api-client"))
    );
    fake.shutdown().await;
}
