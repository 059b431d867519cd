//! The transport against servers and proxies that misbehave the way real ones do: error
//! pages, reset streams, silence, mangled status headers, refused connections, restarts,
//! untrusted certificates, oversized answers.

use std::time::Duration;

use longrunning::testing::{FakeMethod, FakeServer, HttpFault, Listing, Outcome, Script};
use longrunning::transport::Connector;
use longrunning::vision::{ProductSearch, pb};
use longrunning::wait::WaitOptions;
use longrunning::{Code, Error, RetryPolicy};

const OP: &str = "projects/p/locations/us-west1/operations/op1";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn once() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    }
}

fn rpc_status(result: longrunning::Result<impl std::fmt::Debug>) -> longrunning::Status {
    match result {
        Err(Error::Rpc { status, .. }) => status,
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

fn purge() -> pb::PurgeProductsRequest {
    pb::PurgeProductsRequest {
        parent: "projects/p/locations/us-west1".into(),
        target: Some(pb::purge_products_request::Target::DeleteOrphanProducts(
            true,
        )),
        force: true,
    }
}

#[tokio::test(start_paused = true)]
async fn a_proxy_error_page_is_the_status_grpc_prescribes_naming_the_page() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let client = fake.client().with_retry_policy(once());
    let table = [
        (502, Code::Unavailable),
        (503, Code::Unavailable),
        (504, Code::Unavailable),
        (429, Code::Unavailable),
        (401, Code::Unauthenticated),
        (403, Code::PermissionDenied),
        (404, Code::Unimplemented),
        (400, Code::Internal),
        (500, Code::Unknown),
        (200, Code::Unknown),
    ];
    for (http, code) in table {
        let page = HttpFault::error_page(http, "text/html", "<html><b>backend  down</b></html>");
        fake.http_fault_next(FakeMethod::GetOperation, 1, page);
        let status = rpc_status(client.get(OP).await);
        assert_eq!(status.code, code, "HTTP {http}: {}", status.message);
        for words in [
            format!("HTTP {http}"),
            "text/html".into(),
            "backend down".into(),
        ] {
            assert!(status.message.contains(&words), "{}", status.message);
        }
        assert!(
            status.message.starts_with("127.0.0.1:"),
            "{}",
            status.message
        );
    }
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn wait_survives_its_backend_restarting_behind_a_proxy() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert(OP, Script::finishing_after(secs(150), Outcome::NoResult));
    let client = fake.client();
    let waiting = tokio::spawn(async move { client.wait_for(OP, &WaitOptions::default()).await });
    // The first WaitOperation answered at 60 s; from 61 s the proxy's backend is down.
    tokio::time::sleep(secs(61)).await;
    fake.http_fault_next(FakeMethod::WaitOperation, 10, HttpFault::bad_gateway());
    let done = waiting.await.unwrap().unwrap();
    assert!(done.done);
    assert_eq!(fake.faults_injected(), 10);
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 13);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_wait_that_never_had_an_answer_gives_up_as_get_does() {
    // Silence: given up at once, as a GetOperation is (the client does not retry
    // DEADLINE_EXCEEDED: the server may have the call), the cause named.
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    fake.http_fault_next(FakeMethod::WaitOperation, 1000, HttpFault::Silence);
    let client = fake.client().with_retry_policy(RetryPolicy {
        per_call_timeout: secs(1),
        ..RetryPolicy::default()
    });
    let err = client
        .wait_for(OP, &WaitOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no answer from"), "{err}");
    assert_eq!(fake.faults_injected(), 1);
    fake.shutdown().await;

    // A closed port: refused, named.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = Connector::new()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .connect_lazy()
        .unwrap();
    let err = client
        .wait_for(OP, &WaitOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("connection refused by"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_proxy_in_front_of_a_restarting_backend_never_ends_a_wait() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert(OP, Script::finishing_after(secs(600), Outcome::NoResult));
    fake.http_fault_next(FakeMethod::WaitOperation, 12, HttpFault::bad_gateway());
    let done = fake
        .client()
        .wait_for(OP, &WaitOptions::default())
        .await
        .unwrap();
    assert!(done.done);
    assert_eq!(fake.faults_injected(), 12);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_reset_stream_is_retried_for_reads_and_not_for_start_calls() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    fake.http_fault_next(FakeMethod::GetOperation, 2, HttpFault::ResetStream);
    fake.client().get(OP).await.unwrap();
    assert_eq!(fake.calls(FakeMethod::GetOperation), 3);

    fake.http_fault_next(FakeMethod::PurgeProducts, 1, HttpFault::ResetStream);
    let err = ProductSearch::new(fake.client())
        .purge_products(purge())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::Unavailable), "{err}");
    assert!(err.to_string().contains("reset the stream"), "{err}");
    // The purge may have started: it is not sent again.
    assert_eq!(fake.calls(FakeMethod::PurgeProducts), 1);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn mangled_status_headers_keep_their_code_and_never_panic() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let mangled = HttpFault::MangledStatus {
        code: Code::Unavailable,
    };
    fake.http_fault_next(FakeMethod::GetOperation, 1, mangled.clone());
    let status = rpc_status(fake.client().with_retry_policy(once()).get(OP).await);
    assert_eq!(status.code, Code::Unavailable);
    assert!(status.message.starts_with("caf"), "{}", status.message);
    assert!(status.message.contains("not base64"), "{}", status.message);
    // Still UNAVAILABLE, so retried.
    fake.http_fault_next(FakeMethod::GetOperation, 1, mangled);
    fake.client().get(OP).await.unwrap();
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_meets_the_deadline_naming_the_peer() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    fake.http_fault_next(FakeMethod::GetOperation, 1, HttpFault::Silence);
    let client = fake.client().with_retry_policy(RetryPolicy {
        per_call_timeout: secs(2),
        ..once()
    });
    let start = tokio::time::Instant::now();
    let status = rpc_status(client.get(OP).await);
    assert_eq!(start.elapsed(), secs(2));
    assert_eq!(status.code, Code::DeadlineExceeded);
    let peer = fake.addr().to_string();
    assert!(
        status.message.contains(&format!("no answer from {peer}")),
        "{}",
        status.message
    );
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_connection_names_the_address_and_is_retried() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = Connector::new()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .connect_lazy()
        .unwrap();
    let status = rpc_status(client.get(OP).await);
    assert_eq!(status.code, Code::Unavailable);
    assert!(
        status
            .message
            .contains(&format!("connection refused by 127.0.0.1:{port}")),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn an_untrusted_certificate_fails_at_once_naming_the_host() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let fake = FakeServer::builder()
        .tls(certified.cert.pem(), certified.signing_key.serialize_pem())
        .start()
        .await
        .unwrap();
    fake.insert_running(OP);
    let client = Connector::new()
        .endpoint(fake.endpoint())
        .connect_lazy()
        .unwrap();
    let start = std::time::Instant::now();
    let err = client.get(OP).await.unwrap_err();
    // No retries: the default policy would have slept for seconds between five attempts.
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    let Error::Certificate { peer, reason } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*peer, format!("localhost:{}", fake.addr().port()));
    assert!(reason.contains("does not trust"), "{reason}");
    // The waiter does not ride it out either.
    let err = client
        .wait_for(OP, &WaitOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Certificate { .. }), "{err:?}");
    assert_eq!(fake.calls(FakeMethod::GetOperation), 0);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn calls_caught_by_a_server_restart_are_retried() {
    let mut fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    fake.set_latency(Duration::from_millis(500));
    let client = fake.client();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get(OP).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // GOAWAY to every connection; the calls in flight are failed, then retried.
    fake.restart().await.unwrap();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_answer_over_the_size_limit_is_resource_exhausted() {
    let fake = FakeServer::start().await.unwrap();
    let big = pb::BatchOperationMetadata {
        state: 1,
        ..Default::default()
    };
    let mut script = Script::running();
    for i in 0..200 {
        script = script.metadata_from(Duration::from_nanos(i), &big);
    }
    fake.insert(
        OP,
        script.metadata_from(
            Duration::ZERO,
            &pb::PurgeProductsRequest {
                parent: "x".repeat(4000),
                ..Default::default()
            },
        ),
    );
    let client = fake
        .connector()
        .max_response_bytes(1000)
        .connect_lazy()
        .unwrap()
        .with_retry_policy(once());
    let status = rpc_status(client.get(OP).await);
    assert_eq!(status.code, Code::ResourceExhausted, "{}", status.message);
    assert!(
        status.message.contains("limit of 1000 bytes"),
        "{}",
        status.message
    );
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn thousands_of_waits_complete_while_every_connection_is_closed_every_two_seconds() {
    use longrunning::wait::{self, WaitStrategy};
    let fake = FakeServer::builder()
        .max_connection_age(secs(2))
        .record_requests(false)
        .start()
        .await
        .unwrap();
    let client = fake.client();
    for strategy in [WaitStrategy::Auto, WaitStrategy::Poll] {
        let ops: Vec<_> = (0..1000u64)
            .map(|i| {
                let name = format!("operations/{strategy:?}{i}");
                let after = Duration::from_millis(fastrand::u64(0..30_000));
                fake.insert(&name, Script::finishing_after(after, Outcome::NoResult));
                longrunning::Operation::<(), ()>::from_name(client.clone(), &name).unwrap()
            })
            .collect();
        let options = WaitOptions {
            strategy,
            ..WaitOptions::default()
        };
        let results = wait::wait_all(ops, &options).await;
        let failed: Vec<_> = results
            .iter()
            .filter_map(|(_, r)| r.as_ref().err())
            .collect();
        assert!(
            failed.is_empty(),
            "{strategy:?}: {} failed, first {:?}",
            failed.len(),
            failed.first()
        );
    }
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn connections_are_retired_at_their_age_and_a_broken_one_is_replaced() {
    use longrunning::transport::PoolConfig;
    let mut fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let client = fake
        .connector()
        .pool_config(PoolConfig {
            max_connection_age: secs(60),
            ..PoolConfig::default()
        })
        .connect_lazy()
        .unwrap();
    let peer_of_last = |fake: &FakeServer| fake.requests().last().and_then(|r| r.peer).unwrap();
    client.get(OP).await.unwrap();
    let first = peer_of_last(&fake);
    tokio::time::sleep(secs(30)).await;
    client.get(OP).await.unwrap();
    assert_eq!(peer_of_last(&fake), first, "young connections are kept");
    // Past its age (less up to 10 %): a new connection.
    tokio::time::sleep(secs(31)).await;
    client.get(OP).await.unwrap();
    let second = peer_of_last(&fake);
    assert_ne!(second, first);
    // A connection whose call failed below HTTP is not picked again.
    fake.stop().await;
    assert!(client.get(OP).await.is_err());
    fake.restart().await.unwrap();
    client.get(OP).await.unwrap();
    assert_ne!(peer_of_last(&fake), second);
    fake.shutdown().await;
}

/// Polls 30 operations on `client`, done 5 s to 34 s from now, to the end.
async fn poll_thirty_operations(
    fake: &FakeServer,
    client: &longrunning::OperationsClient,
    prefix: &str,
) -> Vec<longrunning::wait::Finished<(), ()>> {
    use longrunning::wait::{self, WaitStrategy};
    // A GetOperation per poll: a server that lists nothing.
    fake.set_listing(Listing::Unimplemented);
    let ops: Vec<_> = (0..30u64)
        .map(|i| {
            let name = fake.insert(
                format!("operations/{prefix}{i}"),
                Script::finishing_after(secs(5 + i), Outcome::NoResult),
            );
            longrunning::Operation::<(), ()>::from_name(client.clone(), &name).unwrap()
        })
        .collect();
    let options = WaitOptions {
        strategy: WaitStrategy::Poll,
        ..WaitOptions::default()
    };
    wait::wait_all(ops, &options).await
}

/// The most requests the fake saw in any one-second window.
fn busiest_second(fake: &FakeServer) -> usize {
    let times: Vec<_> = fake.requests().iter().map(|r| r.at).collect();
    times
        .iter()
        .map(|start| {
            times
                .iter()
                .filter(|t| **t >= *start && **t < *start + secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_holds_on_the_server_s_clock_for_every_call_and_wait() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let client = fake.connector().max_rps(10.0).connect_lazy().unwrap();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get(OP).await })
        })
        .collect();
    // Polling waits of many operations share the same limit.
    let results = poll_thirty_operations(&fake, &client, "limited").await;
    assert!(results.iter().all(|(_, r)| r.is_ok()));
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let busiest = busiest_second(&fake);
    assert!(
        busiest <= 11,
        "{busiest} requests in one second at 10 per second, burst 1"
    );
    assert!(
        busiest >= 9,
        "{busiest}: the limit should be used, not starved"
    );
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_quota_error_slows_the_client_down() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let client = fake
        .connector()
        .max_rps(10.0)
        .connect_lazy()
        .unwrap()
        .with_retry_policy(once());
    fake.fail_next_with(
        FakeMethod::GetOperation,
        1,
        longrunning::Status::new(Code::ResourceExhausted, "quota"),
    );
    assert!(client.get(OP).await.is_err());
    let start = tokio::time::Instant::now();
    for _ in 0..10 {
        client.get(OP).await.unwrap();
    }
    // Five a second now, not ten.
    assert!(
        start.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        start.elapsed()
    );
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn under_steady_quota_errors_the_limit_slows_down_but_never_stalls() {
    let fake = FakeServer::start().await.unwrap();
    let client = fake.connector().max_rps(10.0).connect_lazy().unwrap();
    fake.set_fault_status(longrunning::Status::new(Code::ResourceExhausted, "quota"));
    fake.set_fault_rate(0.3);
    let start = tokio::time::Instant::now();
    let results = poll_thirty_operations(&fake, &client, "refused").await;
    let lost: Vec<_> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    assert!(lost.is_empty(), "{} lost: {}", lost.len(), lost[0]);
    // About 30 % of 50-odd calls; at least a few, whatever the draw.
    assert!(fake.faults_injected() >= 3, "{}", fake.faults_injected());
    assert!(busiest_second(&fake) <= 11);
    // Halving at every refusal would reach one call a minute: 30 polls would take half an
    // hour. Without a stall, the last operation (done at 34 s) is seen within one poll
    // delay (30 s at most), one fault delay (30 s at most) per refusal, and the floor of
    // the limit (10 / 8 a second) for every call queued before it. Which calls are
    // refused is random, so the bound counts the refusals rather than assuming them.
    let calls = fake.total_calls() as f64;
    let faults = fake.faults_injected() as f64;
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        elapsed <= 34.0 + 30.0 + 30.0 * faults + calls / 1.25,
        "{calls} calls ({faults} refused) took {elapsed:.0} s"
    );
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn tls_against_a_plaintext_server_says_so() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running("operations/x");
    let client = fake
        .connector()
        .endpoint(format!("https://localhost:{}", fake.addr().port()))
        .retry_policy(RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        })
        .connect_lazy()
        .unwrap();
    let err = client.get("operations/x").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not speak TLS (an emulator? use http://"),
        "{err}"
    );
    fake.shutdown().await;
}

/// Waits that poll a server with a per-minute quota, no rate set: the RPCs sent and refused
/// after the first minute, and those refused in it.
async fn polling_under_a_quota(quota: u32, operations: u64, spread: Duration) -> (u64, u64, u64) {
    let fake = FakeServer::builder()
        .record_requests(false)
        .start()
        .await
        .unwrap();
    fake.set_wait_unimplemented(true);
    // Per-operation polling: a server that lists nothing.
    fake.set_listing(Listing::Unimplemented);
    fake.set_quota(Some(quota));
    let client = fake.client();
    let ops: Vec<_> = (0..operations)
        .map(|i| {
            let name = format!("operations/q{i}");
            let after = spread.mul_f64(i as f64 / operations as f64);
            fake.insert(&name, Script::finishing_after(after, Outcome::NoResult));
            longrunning::Operation::<(), ()>::from_name(client.clone(), &name).unwrap()
        })
        .collect();
    let options = WaitOptions::default();
    let waits = longrunning::wait::wait_all(ops, &options);
    tokio::pin!(waits);
    // The counters a minute in.
    let first_minute = tokio::time::sleep(Duration::from_secs(60));
    let results = tokio::select! {
        results = &mut waits => results,
        () = first_minute => Vec::new(),
    };
    assert!(results.is_empty(), "still waiting a minute in");
    let (calls_at_60, refused_first) = (fake.total_calls(), fake.quota_refusals());
    let results = waits.await;
    let lost = results.iter().filter(|(_, result)| result.is_err()).count();
    assert_eq!(results.len() as u64, operations);
    assert_eq!(lost, 0, "every wait ends with its result");
    let sent_after = fake.total_calls() - calls_at_60;
    let refused_after = fake.quota_refusals() - refused_first;
    fake.shutdown().await;
    (sent_after, refused_after, refused_first)
}

#[tokio::test(start_paused = true)]
async fn with_no_rate_set_a_quota_holds_the_whole_client_after_its_first_minute() {
    let (sent_after, refused_after, refused_first) =
        polling_under_a_quota(600, 1000, Duration::from_secs(120)).await;
    assert!(refused_first > 0, "the quota was met in the first minute");
    assert!(
        refused_after * 10 <= sent_after,
        "after the first minute at most a tenth refused: {refused_after} of {sent_after}"
    );
}

#[tokio::test]
async fn a_server_that_accepts_and_says_nothing_fails_a_wait_as_it_fails_get() {
    // Accepts connections (the backlog does) and never sends a byte.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let client = Connector::new()
        .endpoint(&endpoint)
        .retry_policy(RetryPolicy {
            per_call_timeout: Duration::from_secs(1),
            ..RetryPolicy::default()
        })
        .connect_lazy()
        .unwrap();
    let start = std::time::Instant::now();
    let get = client.get(OP).await.unwrap_err();
    let get_took = start.elapsed();
    let start = std::time::Instant::now();
    let wait = client
        .wait_for(OP, &WaitOptions::default())
        .await
        .unwrap_err();
    let wait_took = start.elapsed();
    assert_eq!(get.code(), Some(Code::DeadlineExceeded), "{get}");
    assert_eq!(
        wait.to_string(),
        get.to_string().replace("GetOperation", "WaitOperation")
    );
    // The per-call timeout once, not a minute's WaitOperation.
    assert!(get_took < Duration::from_secs(3), "{get_took:?}");
    assert!(wait_took < Duration::from_secs(3), "{wait_took:?}: {wait}");
    drop(silent);
}

#[tokio::test(start_paused = true)]
async fn a_wait_whose_deadline_passes_while_it_queues_for_the_rate_limit_ends_at_the_deadline() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let client = fake.connector().max_rps(1.0).connect_lazy().unwrap();
    // Ten calls take the limit's next ten seconds.
    let queued: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get(OP).await })
        })
        .collect();
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    let options = WaitOptions {
        timeout: Some(secs(3)),
        ..WaitOptions::default()
    };
    let err = client.wait_for(OP, &options).await.unwrap_err();
    // Ended by its own deadline, though its call's slot was seconds away: one timer, the
    // wait's, bounds the queueing too. Nothing was sent, so the server was not silent: the
    // wait timed out, having sent nothing.
    assert_eq!(start.elapsed(), secs(3), "{err}");
    assert!(
        matches!(
            err,
            Error::Timeout {
                last: None,
                rpcs: 0,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 0);
    for call in queued {
        call.await.unwrap().unwrap();
    }
    fake.shutdown().await;
}
