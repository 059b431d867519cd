//! Many waits against a server that allows few streams per connection: every wait completes,
//! none sees a transport error, and long Waits never starve short calls.

use std::time::Duration;

use longrunning::testing::{FakeMethod, FakeServer, Outcome, Script};
use longrunning::transport::{ChannelPool, PoolConfig};
use longrunning::vision::pb;
use longrunning::wait::{self, WaitOptions, WaitStrategy};
use longrunning::{Operation, OperationsClient};
use tokio::time::Instant;

type EmptyOperation = Operation<(), pb::BatchOperationMetadata>;

fn pool(streams: usize, connections: usize) -> PoolConfig {
    PoolConfig {
        max_streams_per_connection: streams,
        max_connections: connections,
        reserved_streams: 1,
        ..PoolConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn many_more_waits_than_streams_all_complete_without_transport_errors() {
    let fake = FakeServer::builder()
        .max_concurrent_streams(4)
        .record_requests(false)
        .start()
        .await
        .unwrap();
    let client = fake
        .connector()
        .pool_config(pool(4, 2))
        .connect_lazy()
        .unwrap();
    let ops: Vec<_> = (0..300)
        .map(|i| {
            let name = format!("operations/op{i:03}");
            let after = Duration::from_millis(fastrand::u64(0..20_000));
            let outcome = Outcome::response(&pb::ImportProductSetsResponse {
                reference_images: Vec::new(),
                statuses: vec![longrunning::proto::rpc::Status {
                    code: 0,
                    message: name.clone(),
                    details: Vec::new(),
                }],
            });
            fake.insert(&name, Script::finishing_after(after, outcome));
            Operation::<pb::ImportProductSetsResponse, pb::BatchOperationMetadata>::from_name(
                client.clone(),
                &name,
            )
            .unwrap()
        })
        .collect();
    let results = wait::wait_all(ops, &WaitOptions::default()).await;
    for (op, result) in &results {
        let response = result
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e:?}", op.name()));
        assert_eq!(response.statuses[0].message, op.name());
    }
    // Never more streams than 2 connections × 4, and both kinds of call were used.
    assert!(fake.peak_in_flight() <= 8, "peak {}", fake.peak_in_flight());
    assert!(fake.calls(FakeMethod::WaitOperation) > 0);
    assert!(fake.calls(FakeMethod::ListOperations) > 0);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn long_waits_never_starve_short_calls() {
    let fake = FakeServer::builder()
        .max_concurrent_streams(4)
        .start()
        .await
        .unwrap();
    let client = fake
        .connector()
        .pool_config(pool(4, 1))
        .connect_lazy()
        .unwrap();
    let ops: Vec<_> = (0..20)
        .map(|i| {
            let name = fake.insert(
                format!("operations/slow{i}"),
                Script::finishing_after(Duration::from_secs(600), Outcome::NoResult),
            );
            EmptyOperation::from_name(client.clone(), &name).unwrap()
        })
        .collect();
    fake.insert_running("operations/other");
    let defaults = WaitOptions::default();
    let waiting = wait::wait_all(ops, &defaults);
    let short_calls = async {
        // Let the waits take every long-call slot they can.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            fake.in_flight(),
            3,
            "three Waits parked, one stream kept free"
        );
        for _ in 0..10 {
            let start = Instant::now();
            client.get("operations/other").await.unwrap();
            client.cancel("operations/nonexistent").await.unwrap_err();
            assert_eq!(start.elapsed(), Duration::ZERO, "a short call had to wait");
        }
    };
    let (results, ()) = tokio::join!(waiting, short_calls);
    assert!(results.iter().all(|(_, r)| r.is_ok()));
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_pool_opens_a_connection_only_when_the_others_are_full() {
    let fake = FakeServer::builder()
        .max_concurrent_streams(4)
        .start()
        .await
        .unwrap();
    let endpoint = tonic::transport::Endpoint::from_shared(fake.endpoint()).unwrap();
    let pool = ChannelPool::new(endpoint, pool(4, 5));
    let client = OperationsClient::from_pool(pool.clone());
    fake.insert_running("operations/x");
    client.get("operations/x").await.unwrap();
    assert_eq!(pool.connections(), 1);
    assert_eq!(pool.in_flight(), 0, "a finished call gives its stream back");

    let forced = WaitOptions {
        strategy: WaitStrategy::Wait,
        ..WaitOptions::default()
    };
    let waits: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            let forced = forced.clone();
            tokio::spawn(async move { client.wait_for("operations/x", &forced).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pool.in_flight(), 10);
    assert_eq!(pool.connections(), 3, "4 + 4 + 2 streams");
    fake.finish("operations/x", Outcome::NoResult);
    for wait in waits {
        assert!(wait.await.unwrap().unwrap().done);
    }
    assert_eq!(pool.in_flight(), 0);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_burst_on_a_fresh_pool_never_meets_a_refused_stream() {
    let fake = FakeServer::builder()
        .max_concurrent_streams(4)
        .record_requests(false)
        .start()
        .await
        .unwrap();
    fake.set_latency(Duration::from_millis(50));
    fake.insert_running("operations/x");
    // No retries: any stream the server refused would surface as an error here.
    let client = fake
        .connector()
        .pool_config(pool(4, 3))
        .retry_policy(longrunning::RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        })
        .connect_lazy()
        .unwrap();
    let burst = (0..200).map(|_| client.get("operations/x"));
    for result in futures_util::future::join_all(burst).await {
        result.unwrap();
    }
    assert_eq!(fake.calls(FakeMethod::GetOperation), 200);
    assert_eq!(
        fake.peak_in_flight(),
        12,
        "3 connections × 4 streams, all used"
    );
    fake.shutdown().await;
}
