//! Batched polling: the waits of a batch that poll learn their operations' states from
//! ListOperations rounds, one per collection, instead of one GetOperation each.

use std::time::Duration;

use futures_util::StreamExt as _;
use longrunning::backoff::{Backoff, Jitter};
use longrunning::testing::{FakeMethod, FakeServer, Listing, Outcome, Script};
use longrunning::vision::{BatchState, pb};
use longrunning::wait::{self, WaitOptions, WaitStrategy, Watched};
use longrunning::{Code, Operation, OperationsClient};
use tokio::time::Instant;

type BatchOperation = Operation<pb::ImportProductSetsResponse, pb::BatchOperationMetadata>;

const COLLECTION: &str = "projects/p/locations/us-west1";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Polling with the default schedule, unjittered: polls at 0, 1, 2.5, 4.75, 8.125 s, …
fn polling() -> WaitOptions {
    WaitOptions {
        strategy: WaitStrategy::Poll,
        poll_backoff: Backoff::new(secs(1), secs(30), 1.5).with_jitter(Jitter::Off),
        fault_backoff: Backoff::new(secs(1), secs(30), 2.0).with_jitter(Jitter::Off),
        ..WaitOptions::default()
    }
}

fn answer(name: &str) -> Outcome {
    Outcome::response(&pb::ImportProductSetsResponse {
        reference_images: Vec::new(),
        statuses: vec![longrunning::proto::rpc::Status {
            code: 0,
            message: name.to_owned(),
            details: Vec::new(),
        }],
    })
}

/// `count` operations under `collection`, each answering its own name, finishing after
/// `after(i)`.
fn operations(
    fake: &FakeServer,
    client: &OperationsClient,
    collection: &str,
    count: usize,
    after: impl Fn(usize) -> Duration,
) -> Vec<BatchOperation> {
    (0..count)
        .map(|i| {
            let name = format!("{collection}/operations/op{i:04}");
            fake.insert(&name, Script::finishing_after(after(i), answer(&name)));
            BatchOperation::from_name(client.clone(), &name).unwrap()
        })
        .collect()
}

/// Every wait ended with its own operation's response.
fn assert_all_answered(
    results: &[wait::Finished<pb::ImportProductSetsResponse, pb::BatchOperationMetadata>],
) {
    for (op, result) in results {
        let response = result
            .as_ref()
            .unwrap_or_else(|err| panic!("{}: {err}", op.name()));
        assert_eq!(response.statuses[0].message, op.name());
    }
}

/// The names `method` was called with, in order.
fn resources(fake: &FakeServer, method: FakeMethod) -> Vec<String> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method == method)
        .map(|r| r.resource)
        .collect()
}

/// The names ListOperations was called with, in order.
fn listed_names(fake: &FakeServer) -> Vec<String> {
    resources(fake, FakeMethod::ListOperations)
}

#[tokio::test(start_paused = true)]
async fn a_batch_under_one_collection_polls_by_listing_with_no_get_per_operation() {
    let fake = FakeServer::start().await.unwrap();
    let client = crate::wire::client(&fake);
    let start = Instant::now();
    let ops = operations(&fake, &client, COLLECTION, 300, |i| {
        Duration::from_millis(3000 + i as u64)
    });
    let results = wait::wait_all(ops, &polling()).await;
    assert_all_answered(&results);
    assert_eq!(fake.calls(FakeMethod::GetOperation), 0);
    // Rounds at 0, 1, 2.5 and 4.8 s (4.75 s on the 100 ms grid the waits share): the last
    // sees them all done, with their results.
    let rounds: Vec<Duration> = fake
        .requests()
        .iter()
        .filter(|r| r.method == FakeMethod::ListOperations)
        .map(|r| r.at - start)
        .collect();
    assert_eq!(
        rounds,
        [0, 1000, 2500, 4800].map(Duration::from_millis),
        "one page a round"
    );
    assert_eq!(listed_names(&fake), [COLLECTION; 4]);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_batched_path_is_taken_after_the_wait_probe_says_unimplemented() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_wait_unimplemented(true);
    fake.set_max_page_size(100);
    let client = crate::wire::client(&fake);
    let ops = operations(&fake, &client, COLLECTION, 1000, |i| {
        Duration::from_millis(20 * i as u64)
    });
    let options = WaitOptions {
        strategy: WaitStrategy::Auto,
        ..polling()
    };
    let results = wait::wait_all(ops, &options).await;
    assert_all_answered(&results);
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 1, "one probe");
    assert_eq!(fake.calls(FakeMethod::GetOperation), 0);
    // Ten pages a round, rounds until 20 s: 0, 1, 2.5, 4.75, 8.1, 13.2, 20.8 s.
    let lists = fake.calls(FakeMethod::ListOperations);
    assert_eq!(lists, 70, "0.07 RPCs per operation");
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn which_name_lists_a_collection_is_learnt_once_per_client() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_listing(Listing::CollectionOnly);
    let client = crate::wire::client(&fake);
    for batch in ["a", "b"] {
        let ops = operations(&fake, &client, &format!("{COLLECTION}/{batch}"), 5, |_| {
            secs(2)
        });
        let results = wait::wait_all(ops, &polling()).await;
        assert_all_answered(&results);
    }
    let collection_a = format!("{COLLECTION}/a");
    let collection_b = format!("{COLLECTION}/b");
    let names = listed_names(&fake);
    // Each collection: its parent refused once, then the collection form every round.
    assert_eq!(names[0], collection_a);
    assert!(
        names[1..4]
            .iter()
            .all(|n| *n == format!("{collection_a}/operations")),
        "{names:?}"
    );
    assert_eq!(names[4], collection_b);
    assert!(
        names[5..]
            .iter()
            .all(|n| *n == format!("{collection_b}/operations")),
        "{names:?}"
    );
    assert_eq!(names.len(), 8, "{names:?}");
    assert_eq!(fake.calls(FakeMethod::GetOperation), 0);

    // A second batch on the first collection sends no refused form.
    let again = operations(&fake, &client, &collection_a, 3, |_| secs(1));
    let before = names.len();
    assert_all_answered(&wait::wait_all(again, &polling()).await);
    let names = listed_names(&fake);
    assert!(
        names[before..]
            .iter()
            .all(|n| *n == format!("{collection_a}/operations")),
        "{names:?}"
    );
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_server_that_lists_nothing_is_asked_once_then_polled_by_name() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_listing(Listing::Unimplemented);
    let client = crate::wire::client(&fake);
    for _ in 0..2 {
        let ops = operations(&fake, &client, COLLECTION, 4, |_| secs(2));
        assert_all_answered(&wait::wait_all(ops, &polling()).await);
    }
    // Both forms once, for the client's first batch only; polls at 0, 1 and 2.5 s.
    assert_eq!(
        listed_names(&fake),
        [COLLECTION.to_owned(), format!("{COLLECTION}/operations")]
    );
    assert_eq!(fake.calls(FakeMethod::GetOperation), 2 * 4 * 3);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_deleted_operation_vanishes_from_the_listing_and_its_wait_ends_not_found() {
    let fake = FakeServer::start().await.unwrap();
    let client = crate::wire::client(&fake);
    let ops = operations(&fake, &client, COLLECTION, 3, |_| secs(10));
    let doomed = ops[1].name().to_owned();
    let deleting = {
        let client = client.clone();
        let doomed = doomed.clone();
        tokio::spawn(async move {
            tokio::time::sleep(secs(3)).await;
            client.delete(&doomed).await
        })
    };
    let results = wait::wait_all(ops, &polling()).await;
    deleting.await.unwrap().unwrap();
    for (op, result) in &results {
        if op.name() == doomed {
            let err = result.as_ref().unwrap_err();
            assert_eq!(err.code(), Some(Code::NotFound), "{err}");
        } else {
            assert!(result.is_ok(), "{}", op.name());
        }
    }
    // The round after the delete missed it: one GetOperation, for it alone.
    let gets = resources(&fake, FakeMethod::GetOperation);
    assert_eq!(gets, [doomed]);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_listing_that_never_ends_falls_back_to_polling_by_name() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_listing(Listing::RepeatsToken);
    fake.set_max_page_size(2);
    let client = crate::wire::client(&fake);
    let ops = operations(&fake, &client, COLLECTION, 6, |_| secs(2));
    assert_all_answered(&wait::wait_all(ops, &polling()).await);
    // Two pages for each form (the second repeats the token), then polls by name at 0, 1
    // and 2.5 s.
    assert_eq!(fake.calls(FakeMethod::ListOperations), 4);
    assert_eq!(fake.calls(FakeMethod::GetOperation), 6 * 3);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_listing_that_costs_more_than_polling_by_name_is_left_for_it() {
    let fake = FakeServer::builder()
        .record_requests(false)
        .start()
        .await
        .unwrap();
    // 2,000 old operations in the collection, 100 a page: 21 pages a round for 10 waits.
    for i in 0..2000 {
        fake.insert(
            format!("{COLLECTION}/operations/old{i:04}"),
            Script::finishing_after(Duration::ZERO, Outcome::NoResult),
        );
    }
    fake.set_max_page_size(100);
    let client = crate::wire::client(&fake);
    let ops = operations(&fake, &client, COLLECTION, 10, |_| secs(2));
    assert_all_answered(&wait::wait_all(ops, &polling()).await);
    // Four pages (the bound for ten waits), then polls by name at 0, 1 and 2.5 s.
    assert_eq!(fake.calls(FakeMethod::ListOperations), 4);
    assert_eq!(fake.calls(FakeMethod::GetOperation), 10 * 3);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn quota_errors_during_a_round_delay_it_and_lose_nothing() {
    let fake = FakeServer::start().await.unwrap();
    let client = crate::wire::client(&fake);
    let quota = longrunning::Status::new(Code::ResourceExhausted, "Quota exceeded");
    fake.fail_next_with(FakeMethod::ListOperations, 3, quota);
    let start = Instant::now();
    let ops = operations(&fake, &client, COLLECTION, 50, |_| secs(1));
    assert_all_answered(&wait::wait_all(ops, &polling()).await);
    assert_eq!(fake.calls(FakeMethod::GetOperation), 0);
    // Refused at 0 s, then after the fault delays (1 s, 2 s, 4 s): at 1, 3 and 7 s; the
    // fourth round, at 7 s, lists them done.
    let rounds: Vec<Duration> = fake
        .requests()
        .iter()
        .filter(|r| r.method == FakeMethod::ListOperations)
        .map(|r| r.at - start)
        .collect();
    assert_eq!(rounds, [0, 1, 3, 7].map(secs));
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn each_collection_of_a_mixed_batch_is_listed_on_its_own() {
    let fake = FakeServer::start().await.unwrap();
    let client = crate::wire::client(&fake);
    let mut ops = operations(&fake, &client, "projects/p/locations/a", 3, |_| secs(2));
    ops.extend(operations(
        &fake,
        &client,
        "projects/p/locations/b",
        3,
        |_| secs(2),
    ));
    // Alone in its collection: polled by name, as a single wait would.
    ops.extend(operations(
        &fake,
        &client,
        "projects/p/locations/c",
        1,
        |_| secs(2),
    ));
    assert_all_answered(&wait::wait_all(ops, &polling()).await);
    let mut names = listed_names(&fake);
    names.sort();
    names.dedup();
    assert_eq!(names, ["projects/p/locations/a", "projects/p/locations/b"]);
    let gets = resources(&fake, FakeMethod::GetOperation);
    assert_eq!(gets, ["projects/p/locations/c/operations/op0000"; 3]);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn watch_each_reports_metadata_changes_seen_in_the_listing() {
    let fake = FakeServer::start().await.unwrap();
    let client = crate::wire::client(&fake);
    let names: Vec<String> = (0..3)
        .map(|i| {
            let name = format!("{COLLECTION}/operations/w{i}");
            let running = pb::BatchOperationMetadata {
                state: BatchState::Processing as i32,
                ..Default::default()
            };
            let finished = pb::BatchOperationMetadata {
                state: BatchState::Successful as i32,
                ..Default::default()
            };
            let script = Script::finishing_after(secs(5), answer(&name))
                .metadata_from(Duration::ZERO, &running)
                .final_metadata(&finished);
            fake.insert(&name, script)
        })
        .collect();
    let mut watched = client.watch_each(names.clone(), &polling());
    let mut snapshots = 0;
    let mut done = 0;
    while let Some((_, item)) = watched.next().await {
        if let Watched::Snapshot(op) = item.unwrap() {
            snapshots += 1;
            done += usize::from(op.done);
        }
    }
    // Each: the running snapshot, then the done one.
    assert_eq!((snapshots, done), (6, 3));
    assert_eq!(fake.calls(FakeMethod::GetOperation), 0);
    assert!(fake.calls(FakeMethod::ListOperations) > 0);
    fake.shutdown().await;
}
