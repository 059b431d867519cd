//! The waiter against the fake, on tokio's paused clock: exact schedules, no sleeping.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use longrunning::backoff::Backoff;
use longrunning::proto::rpc;
use longrunning::testing::{
    FakeMethod, FakeServer, HttpFault, Listing, Outcome, RecordedRequest, Script,
};
use longrunning::vision::{AnnotationState, BatchState, ImageAnnotator, ProductSearch, pb};
use longrunning::wait::{self, Progress, WaitOptions, WaitStrategy};
use longrunning::{Code, Error, Operation};
use prost::Message;
use tokio::time::Instant;

const OP: &str = "projects/p1/locations/us-west1/operations/op1";
const SECOND: Duration = Duration::from_secs(1);

type EmptyOperation = Operation<(), pb::BatchOperationMetadata>;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn finishing_after(after: Duration) -> Script {
    let processing = pb::BatchOperationMetadata {
        state: BatchState::Processing as i32,
        ..Default::default()
    };
    let successful = pb::BatchOperationMetadata {
        state: BatchState::Successful as i32,
        ..Default::default()
    };
    Script::finishing_after(after, Outcome::NoResult)
        .metadata_from(Duration::ZERO, &processing)
        .final_metadata(&successful)
}

fn options(strategy: WaitStrategy) -> WaitOptions {
    WaitOptions {
        strategy,
        ..WaitOptions::default()
    }
}

fn calls_of(requests: &[RecordedRequest], method: FakeMethod) -> Vec<Instant> {
    requests
        .iter()
        .filter(|r| r.method == method)
        .map(|r| r.at)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_wait_path_returns_as_soon_as_the_operation_finishes() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert(OP, finishing_after(secs(10)));
    let mut op = EmptyOperation::from_name(crate::wire::client(&fake), OP).unwrap();
    let start = Instant::now();
    op.wait(&WaitOptions::default()).await.unwrap();
    assert_eq!(start.elapsed(), secs(10));
    assert!(op.done());
    assert_eq!(op.state().unwrap(), Some(BatchState::Successful));
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 1);
    assert_eq!(fake.calls(FakeMethod::GetOperation), 0);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn each_wait_rpc_asks_for_at_most_the_cap_and_the_time_left() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert(OP, finishing_after(secs(150)));
    let start = Instant::now();
    let options = WaitOptions {
        timeout: Some(secs(200)),
        ..WaitOptions::default()
    };
    crate::wire::client(&fake)
        .wait_for(OP, &options)
        .await
        .unwrap();
    assert_eq!(start.elapsed(), secs(150));
    let waits = calls_of(&fake.requests(), FakeMethod::WaitOperation);
    let offsets: Vec<_> = waits.iter().map(|at| *at - start).collect();
    assert_eq!(offsets, [secs(0), secs(60), secs(120)]);

    // With 70 s left the first call asks for the 60 s cap, the second for the last 10 s
    // less a tenth (9 s); with a second left, none: the deadline passes with the latest
    // snapshot in hand.
    fake.insert("operations/slow", finishing_after(secs(500)));
    let start = Instant::now();
    let options = WaitOptions {
        timeout: Some(secs(70)),
        ..WaitOptions::default()
    };
    let err = fake
        .client()
        .wait_for("operations/slow", &options)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Timeout {
                rpcs: 2,
                last: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(start.elapsed(), secs(70));
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn polling_follows_the_backoff_schedule_within_its_jitter_bounds() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert(OP, finishing_after(secs(300)));
    let start = Instant::now();
    crate::wire::client(&fake)
        .wait_for(OP, &options(WaitStrategy::Poll))
        .await
        .unwrap();
    let polls = calls_of(&fake.requests(), FakeMethod::GetOperation);
    // The handle was known by name only: the first poll is immediate.
    assert_eq!(polls[0], start);
    let computed = Backoff::new(secs(1), secs(30), 1.5).computed_delays();
    for (gap, computed) in polls.windows(2).map(|w| w[1] - w[0]).zip(computed) {
        // Jittered to [50 %, 100 %], then rounded up to the client's grid (a quarter at most).
        assert!(
            gap >= computed / 2 && gap <= computed + computed / 4,
            "gap {gap:?} outside [50 %, 125 %] of {computed:?}"
        );
    }
    // Done at 300 s, seen by the first poll after it: at most one 30 s delay late.
    let finished = *polls.last().unwrap() - start;
    assert!(
        finished >= secs(300) && finished <= secs(330),
        "{finished:?}"
    );
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 0);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_handle_fresh_from_the_server_polls_after_the_first_delay() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_operation_duration(secs(5));
    fake.set_wait_unimplemented(true);
    let mut op = ProductSearch::new(crate::wire::client(&fake))
        .purge_products(pb::PurgeProductsRequest {
            parent: "projects/p1/locations/us-west1".into(),
            target: Some(pb::purge_products_request::Target::DeleteOrphanProducts(
                true,
            )),
            force: false,
        })
        .await
        .unwrap();
    let start = Instant::now();
    op.wait(&options(WaitStrategy::Poll)).await.unwrap();
    let first = calls_of(&fake.requests(), FakeMethod::GetOperation)[0] - start;
    assert!(first >= SECOND / 2 && first <= SECOND, "{first:?}");
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn unimplemented_wait_falls_back_to_polling_with_one_probe_per_client() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_wait_unimplemented(true);
    for i in 0..20 {
        fake.insert(format!("operations/op{i}"), finishing_after(secs(3 + i)));
    }
    let client = crate::wire::client(&fake);
    let ops = (0..20)
        .map(|i| EmptyOperation::from_name(client.clone(), &format!("operations/op{i}")).unwrap());
    let results = wait::wait_all(ops, &WaitOptions::default()).await;
    assert_eq!(results.len(), 20);
    assert!(
        results
            .iter()
            .all(|(op, result)| op.done() && result.is_ok())
    );
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 1);

    // Later waits on the same client (or a clone) poll at once.
    fake.insert("operations/later", finishing_after(secs(2)));
    client
        .clone()
        .wait_for("operations/later", &WaitOptions::default())
        .await
        .unwrap();
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 1);

    // A new client probes once for itself.
    fake.insert("operations/other", finishing_after(secs(2)));
    let other = crate::wire::client(&fake);
    other
        .wait_for("operations/other", &WaitOptions::default())
        .await
        .unwrap();
    other
        .wait_for("operations/other", &WaitOptions::default())
        .await
        .unwrap();
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 2);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_probe_overtaken_by_another_waits_verdict_costs_no_second_delay_nor_an_attempt() {
    use longrunning::backoff::Jitter;
    let fake = FakeServer::start().await.unwrap();
    fake.set_wait_unimplemented(true);
    fake.insert("operations/b", finishing_after(Duration::from_millis(3500)));
    fake.insert_running("operations/a");
    // Two attempts before a first answer, 3 s apart.
    let client = fake
        .connector()
        .retry_policy(longrunning::RetryPolicy {
            max_attempts: 2,
            backoff: Backoff::new(secs(3), secs(30), 2.0).with_jitter(Jitter::Off),
            ..Default::default()
        })
        .connect_lazy()
        .unwrap();
    let options = WaitOptions {
        poll_backoff: Backoff::new(secs(1), secs(30), 2.0).with_jitter(Jitter::Off),
        ..WaitOptions::default()
    };
    // B's probe is reset (no answer): B plans its next probe 3 s later.
    fake.http_fault_next(FakeMethod::WaitOperation, 1, HttpFault::ResetStream);
    let start = Instant::now();
    let b = {
        let (client, options) = (client.clone(), options.clone());
        tokio::spawn(async move { client.wait_for("operations/b", &options).await })
    };
    // Meanwhile A probes and learns that WaitOperation is missing.
    tokio::time::sleep(secs(1)).await;
    let a = {
        let (client, options) = (client.clone(), options.clone());
        tokio::spawn(async move { client.wait_for("operations/a", &options).await })
    };
    // B polls when its delay ends (3 s), not after a second fault delay, and is not given
    // up as if its overtaken probe had failed twice.
    let done = b.await.unwrap().expect("one failure of two attempts");
    assert!(done.done);
    assert_eq!(start.elapsed(), secs(4), "polls at 3 s, then 4 s");
    let requests: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.resource == "operations/b")
        .map(|r| (r.method, r.at - start))
        .collect();
    // (The reset probe at 0 s never reached the fake's records.)
    assert_eq!(
        requests,
        [
            (FakeMethod::GetOperation, secs(3)),
            (FakeMethod::GetOperation, secs(4)),
        ]
    );
    assert_eq!(
        fake.calls(FakeMethod::WaitOperation),
        2,
        "B's reset probe and A's"
    );
    a.abort();
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_lets_the_next_wait_probe_again() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert(OP, finishing_after(secs(100)));
    let client = crate::wire::client(&fake);
    let dropped = tokio::time::timeout(secs(5), client.wait_for(OP, &WaitOptions::default())).await;
    assert!(dropped.is_err());
    let start = Instant::now();
    client.wait_for(OP, &WaitOptions::default()).await.unwrap();
    assert_eq!(start.elapsed(), secs(95));
    // Had the dropped probe left the client "probing", this wait would first have waited
    // out the 250 ms grace for an answer that never comes.
    let waits = calls_of(&fake.requests(), FakeMethod::WaitOperation);
    assert_eq!(waits.len(), 3, "the dropped probe, then 60 s and 35 s");
    assert_eq!(waits[1], start);
    assert_eq!(fake.calls(FakeMethod::GetOperation), 0);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn forced_wait_strategy_reports_unimplemented() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_wait_unimplemented(true);
    fake.insert(OP, finishing_after(secs(3)));
    let err = fake
        .client()
        .wait_for(OP, &options(WaitStrategy::Wait))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::Unimplemented));
    assert_eq!(fake.calls(FakeMethod::GetOperation), 0);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_wait_that_returns_early_and_not_done_is_spaced_never_spun() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_wait_returns_early(Some(Duration::from_millis(100)));
    fake.insert(OP, finishing_after(secs(60)));
    let start = Instant::now();
    crate::wire::client(&fake)
        .wait_for(OP, &WaitOptions::default())
        .await
        .unwrap();
    let finished = start.elapsed();
    let waits = fake.calls(FakeMethod::WaitOperation);
    // Spaced by the polling backoff (≥ 0.5, 0.75, 1.1, … s): about a dozen calls in 60 s,
    // where a spinning client would have sent hundreds.
    assert!((5..=15).contains(&waits), "{waits} Wait calls");
    assert!(finished >= secs(60) && finished <= secs(90), "{finished:?}");
    assert_eq!(fake.calls(FakeMethod::GetOperation), 0);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_server_that_is_slow_to_return_early_is_waited_on_without_spacing() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_wait_returns_early(Some(secs(10)));
    fake.insert(OP, finishing_after(secs(30)));
    let start = Instant::now();
    crate::wire::client(&fake)
        .wait_for(OP, &WaitOptions::default())
        .await
        .unwrap();
    // Answers that took longer than 250 ms are followed by the next call at once, so the
    // operation is seen done the moment it finishes... unless the last answer was quick.
    let requests = fake.requests();
    let waits = calls_of(&requests, FakeMethod::WaitOperation);
    assert!(waits.len() >= 3, "{waits:?}");
    assert!(
        start.elapsed() < secs(31) + SECOND * 30,
        "{:?}",
        start.elapsed()
    );
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn unavailable_faults_are_retried_and_the_result_is_kept() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert(
        OP,
        Script::finishing_after(
            secs(20),
            Outcome::response(&pb::ImportProductSetsResponse {
                reference_images: Vec::new(),
                statuses: vec![rpc::Status::default(); 3],
            }),
        ),
    );
    fake.fail_next(FakeMethod::WaitOperation, 4);
    let mut op: Operation<pb::ImportProductSetsResponse, pb::BatchOperationMetadata> =
        Operation::from_name(crate::wire::client(&fake), OP).unwrap();
    let response = op.wait(&WaitOptions::default()).await.unwrap();
    assert_eq!(response.statuses.len(), 3);
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 5);

    fake.fail_next(FakeMethod::GetOperation, 4);
    fake.insert("operations/polled", finishing_after(secs(20)));
    crate::wire::client(&fake)
        .wait_for("operations/polled", &options(WaitStrategy::Poll))
        .await
        .unwrap();
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn retry_info_on_an_error_sets_the_next_delay() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert(OP, finishing_after(secs(60)));
    let details = rpc::Status {
        code: Code::Unavailable as i32,
        message: "busy".into(),
        details: vec![prost_types::Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: rpc::RetryInfo {
                retry_delay: Some(prost_types::Duration {
                    seconds: 7,
                    nanos: 0,
                }),
            }
            .encode_to_vec(),
        }],
    };
    fake.fail_next_with(
        FakeMethod::GetOperation,
        1,
        tonic::Status::with_details(Code::Unavailable, "busy", details.encode_to_vec().into()),
    );
    crate::wire::client(&fake)
        .wait_for(OP, &options(WaitStrategy::Poll))
        .await
        .unwrap();
    let polls = calls_of(&fake.requests(), FakeMethod::GetOperation);
    assert_eq!(polls[1] - polls[0], secs(7));
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn deadline_exceeded_from_the_wait_rpc_means_not_yet() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert(OP, finishing_after(secs(10)));
    fake.fail_next_with(
        FakeMethod::WaitOperation,
        2,
        tonic::Status::deadline_exceeded("server gave up"),
    );
    crate::wire::client(&fake)
        .wait_for(OP, &WaitOptions::default())
        .await
        .unwrap();
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 3);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_end_the_wait() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert(OP, finishing_after(secs(100)));
    for code in [
        Code::PermissionDenied,
        Code::Unauthenticated,
        Code::InvalidArgument,
    ] {
        fake.fail_next_with(FakeMethod::GetOperation, 1, tonic::Status::new(code, "no"));
        let err = fake
            .client()
            .wait_for(OP, &options(WaitStrategy::Poll))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(code));
    }
    // Deleted while waiting: NOT_FOUND ends it.
    let client = crate::wire::client(&fake);
    let poll = options(WaitStrategy::Poll);
    let waiting = client.wait_for(OP, &poll);
    let delete = async {
        tokio::time::sleep(secs(10)).await;
        crate::wire::client(&fake).delete(OP).await.unwrap();
    };
    let (result, ()) = tokio::join!(waiting, delete);
    assert_eq!(result.unwrap_err().code(), Some(Code::NotFound));
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_server_restarted_on_the_same_port_mid_wait_loses_nothing() {
    let mut fake = FakeServer::start().await.unwrap();
    fake.insert(
        OP,
        Script::finishing_after(secs(30), Outcome::error(Code::DataLoss, "disk on fire")),
    );
    let client = crate::wire::client(&fake);
    for strategy in [WaitStrategy::Auto, WaitStrategy::Poll] {
        let options = options(strategy);
        let waiting = client.wait_for(OP, &options);
        let restarts = async {
            tokio::time::sleep(secs(5)).await;
            fake.stop().await;
            tokio::time::sleep(secs(3)).await;
            fake.restart().await.unwrap();
        };
        let (result, ()) = tokio::join!(waiting, restarts);
        let op = result.unwrap();
        assert!(op.done, "{strategy:?}");
        let typed = EmptyOperation::from_raw(client.clone(), op);
        assert_eq!(typed.result().unwrap_err().code(), Some(Code::DataLoss));
    }
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn running_out_of_time_returns_the_last_snapshot_and_the_handle_resumes() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let mut op = EmptyOperation::from_name(crate::wire::client(&fake), OP).unwrap();
    let options = WaitOptions {
        timeout: Some(secs(90)),
        ..WaitOptions::default()
    };
    let start = Instant::now();
    let err = op.wait(&options).await.unwrap_err();
    let Error::Timeout {
        name,
        last,
        elapsed,
        rpcs,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(name, OP);
    assert_eq!(*elapsed, secs(90));
    assert_eq!(start.elapsed(), secs(90));
    assert_eq!(*rpcs, 2);
    let last = last.as_deref().expect("the server answered");
    assert!(!last.done);
    // The last snapshot, typed: by the error, and in the handle itself.
    let typed = EmptyOperation::from_raw(crate::wire::client(&fake), last.clone());
    assert_eq!(typed.state().unwrap(), Some(BatchState::Processing));
    assert_eq!(op.state().unwrap(), Some(BatchState::Processing));
    assert!(
        err.to_string().contains("not done after 90s (2 RPCs)"),
        "{err}"
    );
    // Nothing was cancelled; waiting again resumes.
    assert_eq!(fake.calls(FakeMethod::CancelOperation), 0);
    let finisher = async {
        tokio::time::sleep(secs(10)).await;
        fake.finish(OP, Outcome::NoResult);
    };
    let (result, ()) = tokio::join!(op.wait(&options), finisher);
    result.unwrap();
    assert!(op.done());
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_default_timeout_is_a_day_and_none_waits_forever() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert(OP, finishing_after(secs(25 * 3600)));
    let client = crate::wire::client(&fake);
    let err = client
        .wait_for(OP, &WaitOptions::default())
        .await
        .unwrap_err();
    let Error::Timeout { elapsed, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(elapsed, secs(24 * 3600));
    let forever = WaitOptions {
        timeout: None,
        ..WaitOptions::default()
    };
    let op = client.wait_for(OP, &forever).await.unwrap();
    assert!(op.done);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn cancel_on_a_handle_ends_its_wait_cancelled() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let mut op = EmptyOperation::from_name(crate::wire::client(&fake), OP).unwrap();
    let handle = op.clone();
    let canceller = async {
        tokio::time::sleep(secs(30)).await;
        handle.cancel().await.unwrap();
    };
    let start = Instant::now();
    let defaults = WaitOptions::default();
    let (result, ()) = tokio::join!(op.wait(&defaults), canceller);
    assert!(
        matches!(result, Err(Error::OperationCancelled { .. })),
        "{result:?}"
    );
    assert_eq!(start.elapsed(), secs(30));
    assert!(op.is_cancelled());
    assert_eq!(op.state().unwrap(), Some(BatchState::Cancelled));
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn dropping_a_wait_stops_its_rpcs() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let client = crate::wire::client(&fake);
    for strategy in [WaitStrategy::Poll, WaitStrategy::Wait] {
        let options = options(strategy);
        let wait = client.wait_for(OP, &options);
        assert!(tokio::time::timeout(secs(100), wait).await.is_err());
        let before = fake.total_calls();
        assert!(before > 0);
        tokio::time::sleep(secs(600)).await;
        assert_eq!(fake.total_calls(), before, "{strategy:?} kept calling");
    }
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn wait_for_rejects_bad_names_without_rpcs() {
    let fake = FakeServer::start().await.unwrap();
    let err = fake
        .client()
        .wait_for("operations/a b", &WaitOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }));
    assert!(EmptyOperation::from_name(crate::wire::client(&fake), "").is_err());
    assert_eq!(fake.total_calls(), 0);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn watch_reports_each_metadata_change_then_the_result() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_operation_duration(secs(20));
    let annotator = ImageAnnotator::new(crate::wire::client(&fake));
    let request = pb::AsyncBatchAnnotateImagesRequest {
        requests: vec![pb::AnnotateImageRequest::default()],
        ..Default::default()
    };
    for strategy in [WaitStrategy::Poll, WaitStrategy::Wait] {
        let op = annotator
            .async_batch_annotate_images(request.clone())
            .await
            .unwrap();
        let options = WaitOptions {
            strategy,
            // Progress on the Wait path is seen when each call returns.
            wait_rpc_cap: secs(5),
            ..WaitOptions::default()
        };
        let reports: Vec<_> = op.watch(&options).collect().await;
        let states: Vec<String> = reports
            .iter()
            .map(|report| match report {
                Ok(Progress::Running { metadata }) => {
                    format!(
                        "{:?}",
                        AnnotationState::try_from(metadata.as_ref().unwrap().state).unwrap()
                    )
                }
                Ok(Progress::Done { metadata, .. }) => {
                    format!(
                        "Done({:?})",
                        AnnotationState::try_from(metadata.as_ref().unwrap().state).unwrap()
                    )
                }
                Err(err) => format!("Err({err})"),
            })
            .collect();
        assert_eq!(states, ["Created", "Running", "Done(Done)"], "{strategy:?}");
    }
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn watch_ends_with_the_error_of_a_failed_operation_or_a_timeout() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert(OP, finishing_after(secs(5)));
    let client = crate::wire::client(&fake);
    let ok: Vec<_> = EmptyOperation::from_name(client.clone(), OP)
        .unwrap()
        .watch(&WaitOptions::default())
        .collect()
        .await;
    assert_eq!(ok.len(), 2);
    assert!(matches!(ok[1], Ok(Progress::Done { .. })));

    fake.insert(
        "operations/failing",
        Script::finishing_after(secs(5), Outcome::error(Code::Internal, "boom")),
    );
    let failed: Vec<_> = EmptyOperation::from_name(client.clone(), "operations/failing")
        .unwrap()
        .watch(&WaitOptions::default())
        .collect()
        .await;
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(matches!(&failed[1], Err(Error::OperationFailed { .. })));

    fake.insert_running("operations/forever");
    let short = WaitOptions {
        timeout: Some(secs(10)),
        ..WaitOptions::default()
    };
    let timed_out: Vec<_> = EmptyOperation::from_name(client, "operations/forever")
        .unwrap()
        .watch(&short)
        .collect()
        .await;
    assert!(matches!(timed_out.last(), Some(Err(Error::Timeout { .. }))));
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn wait_all_over_1000_operations_returns_each_exactly_once() {
    let fake = FakeServer::builder()
        .record_requests(false)
        .start()
        .await
        .unwrap();
    let client = crate::wire::client(&fake);
    let mut ops = Vec::new();
    for i in 0..1000u64 {
        let name = format!("operations/op{i:04}");
        let outcome = if i % 7 == 0 {
            Outcome::error(Code::Aborted, format!("failed {i}"))
        } else {
            Outcome::response(&pb::ImportProductSetsResponse {
                reference_images: Vec::new(),
                statuses: vec![rpc::Status {
                    code: 0,
                    message: format!("ok {i}"),
                    details: Vec::new(),
                }],
            })
        };
        fake.insert(
            &name,
            Script::finishing_after(Duration::from_millis(fastrand::u64(0..30_000)), outcome),
        );
        ops.push(
            Operation::<pb::ImportProductSetsResponse, pb::BatchOperationMetadata>::from_name(
                client.clone(),
                &name,
            )
            .unwrap(),
        );
    }
    let results = wait::wait_all(ops, &WaitOptions::default()).await;
    assert_eq!(results.len(), 1000);
    let mut seen = HashSet::new();
    for (i, (op, result)) in results.iter().enumerate() {
        assert_eq!(op.name(), format!("operations/op{i:04}"));
        assert!(seen.insert(op.name().to_owned()));
        match result {
            Ok(response) => assert_eq!(response.statuses[0].message, format!("ok {i}")),
            Err(err) => {
                assert_eq!(i % 7, 0);
                assert_eq!(err.code(), Some(Code::Aborted));
            }
        }
    }
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn wait_stream_yields_in_completion_order_within_the_in_flight_bound() {
    let fake = FakeServer::start().await.unwrap();
    let client = crate::wire::client(&fake);
    let options = WaitOptions {
        strategy: WaitStrategy::Poll,
        max_in_flight_rpcs: 1,
        ..WaitOptions::default()
    };
    let typed = [30u64, 10, 20].map(|after| {
        let name = format!("operations/typed{after}");
        fake.insert(&name, finishing_after(secs(after)));
        EmptyOperation::from_name(client.clone(), &name).unwrap()
    });
    let finished: Vec<String> = wait::wait_stream(typed, &options)
        .map(|(op, result)| {
            result.unwrap();
            op.name().to_owned()
        })
        .collect()
        .await;
    assert_eq!(
        finished,
        [
            "operations/typed10",
            "operations/typed20",
            "operations/typed30"
        ]
    );
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn many_polls_never_have_more_rpcs_in_flight_than_the_bound_and_waits_are_not_pushed_to_polling()
 {
    for strategy in [WaitStrategy::Wait, WaitStrategy::Poll] {
        let fake = FakeServer::builder()
            .record_requests(false)
            .start()
            .await
            .unwrap();
        fake.set_latency(Duration::from_millis(100));
        // GetOperations, one per poll: a server that lists nothing.
        fake.set_listing(Listing::Unimplemented);
        let client = crate::wire::client(&fake);
        let ops: Vec<_> = (0..50u64)
            .map(|i| {
                let name = format!("operations/op{i}");
                fake.insert(
                    &name,
                    finishing_after(secs(10) + Duration::from_millis(i * 200)),
                );
                EmptyOperation::from_name(client.clone(), &name).unwrap()
            })
            .collect();
        let options = WaitOptions {
            strategy,
            max_in_flight_rpcs: 5,
            ..WaitOptions::default()
        };
        let results = wait::wait_all(ops, &options).await;
        assert!(
            results.iter().all(|(_, result)| result.is_ok()),
            "{strategy:?}"
        );
        // GetOperations keep to the bound; parked WaitOperations take the pool's long-call
        // slots instead, all 50 at once.
        let expected = if strategy == WaitStrategy::Poll {
            5
        } else {
            50
        };
        assert_eq!(fake.peak_in_flight(), expected, "{strategy:?}");
        assert_eq!(
            fake.calls(FakeMethod::GetOperation) == 0,
            strategy == WaitStrategy::Wait
        );
        assert_eq!(fake.in_flight(), 0);
        fake.shutdown().await;
    }
}

/// Google's quota error as it usually comes: ErrorInfo and QuotaFailure, no RetryInfo.
fn quota_error() -> longrunning::Status {
    use longrunning::ErrorDetail;
    longrunning::Status::new(
        Code::ResourceExhausted,
        "Quota exceeded for quota metric 'Operation read requests'",
    )
    .with_detail(ErrorDetail::ErrorInfo(rpc::ErrorInfo {
        reason: "RATE_LIMIT_EXCEEDED".into(),
        domain: "googleapis.com".into(),
        metadata: Default::default(),
    }))
    .with_detail(ErrorDetail::QuotaFailure(rpc::QuotaFailure::default()))
}

#[tokio::test(start_paused = true)]
async fn quota_errors_without_retry_info_never_lose_a_wait() {
    for strategy in [WaitStrategy::Auto, WaitStrategy::Poll] {
        let fake = FakeServer::builder()
            .record_requests(false)
            .start()
            .await
            .unwrap();
        let client = crate::wire::client(&fake);
        let ops: Vec<_> = (0..200u64)
            .map(|i| {
                let name = format!("operations/quota{i}");
                fake.insert(&name, finishing_after(Duration::from_millis(i * 40)));
                EmptyOperation::from_name(client.clone(), &name).unwrap()
            })
            .collect();
        // A GetOperation per poll (quota errors in listing rounds: `listing.rs`).
        fake.set_listing(Listing::Unimplemented);
        fake.set_fault_status(quota_error());
        fake.set_fault_rate(0.3);
        let options = WaitOptions {
            strategy,
            ..WaitOptions::default()
        };
        let results = wait::wait_all(ops, &options).await;
        let lost = results.iter().filter(|(_, r)| r.is_err()).count();
        assert_eq!(
            lost,
            0,
            "{strategy:?}: {:?}",
            results.iter().find(|(_, r)| r.is_err())
        );
        assert!(fake.faults_injected() > 30, "{}", fake.faults_injected());
        fake.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn cancel_on_timeout_cancels_and_reports_the_confirmed_outcome() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let mut op = EmptyOperation::from_name(crate::wire::client(&fake), OP).unwrap();
    let options = WaitOptions {
        timeout: Some(secs(90)),
        cancel_on_timeout: true,
        ..WaitOptions::default()
    };
    let err = op.wait(&options).await.unwrap_err();
    assert!(matches!(err, Error::OperationCancelled { .. }), "{err:?}");
    assert_eq!(fake.calls(FakeMethod::CancelOperation), 1);
    assert!(op.done() && op.is_cancelled());
    assert_eq!(op.state().unwrap(), Some(BatchState::Cancelled));
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn watch_each_says_once_when_the_metadata_stops_changing() {
    use longrunning::wait::Watched;
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let options = WaitOptions {
        strategy: WaitStrategy::Poll,
        stall_after: Some(secs(30)),
        ..WaitOptions::default()
    };
    let client = crate::wire::client(&fake);
    let mut events = client.watch_each([OP.to_owned()], &options);
    let finisher = async {
        tokio::time::sleep(secs(120)).await;
        fake.finish(OP, Outcome::NoResult);
    };
    let collect = async {
        let mut stalls = Vec::new();
        let mut done = false;
        while let Some((_, event)) = events.next().await {
            match event.unwrap() {
                Watched::Stalled { unchanged_for } => stalls.push(unchanged_for),
                Watched::Snapshot(op) => done = op.done,
                Watched::Retrying { error, .. } => panic!("{error}"),
                Watched::Polling => panic!("the fake implements WaitOperation"),
            }
        }
        (stalls, done)
    };
    let ((stalls, done), ()) = tokio::join!(collect, finisher);
    assert!(done);
    assert_eq!(stalls.len(), 1, "{stalls:?}");
    assert!(stalls[0] >= secs(30) && stalls[0] < secs(60), "{stalls:?}");
    fake.shutdown().await;
}

/// A fake 600 ms slow (slower than `min_wait_interval`: no wait may read the server's pace
/// as a verdict), with or without WaitOperation, holding 1,000 operations done within 8 s.
async fn slow_fake_with_a_thousand_operations(supported: bool) -> (FakeServer, Vec<String>) {
    let fake = FakeServer::builder()
        .record_requests(false)
        .start()
        .await
        .unwrap();
    fake.set_latency(Duration::from_millis(600));
    fake.set_wait_unimplemented(!supported);
    let names = (0..1000u64)
        .map(|i| {
            fake.insert(
                format!("operations/probe{i}"),
                finishing_after(Duration::from_millis(5_000 + i * 3)),
            )
        })
        .collect();
    (fake, names)
}

#[tokio::test(start_paused = true)]
async fn one_probe_per_client_under_a_thousand_simultaneous_waits_however_slow_the_server() {
    for supported in [false, true] {
        let (fake, names) = slow_fake_with_a_thousand_operations(supported).await;
        let client = crate::wire::client(&fake);
        let ops = names
            .iter()
            .map(|name| EmptyOperation::from_name(client.clone(), name).unwrap());
        let results = wait::wait_all(ops, &WaitOptions::default()).await;
        assert!(results.iter().all(|(_, r)| r.is_ok()));
        let waits = fake.calls(FakeMethod::WaitOperation);
        if supported {
            // The probe, then one WaitOperation per operation.
            assert_eq!(waits, 1001, "supported");
            assert_eq!(fake.calls(FakeMethod::GetOperation), 0);
        } else {
            assert_eq!(waits, 1, "one probe, however many waits");
        }
        fake.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn polls_falling_due_together_go_out_together_on_the_clients_grid() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_listing(Listing::Unimplemented);
    let client = crate::wire::client(&fake);
    let epoch = Instant::now();
    let ops: Vec<EmptyOperation> = (0..200)
        .map(|i| {
            let name = fake.insert(format!("operations/op{i:03}"), finishing_after(secs(20)));
            EmptyOperation::from_name(client.clone(), &name).unwrap()
        })
        .collect();
    // Random jitter, as in production: without the grid each poll has its own instant.
    let results = wait::wait_all(ops, &options(WaitStrategy::Poll)).await;
    assert!(results.iter().all(|(_, result)| result.is_ok()));

    let requests = fake.requests();
    let mut by_operation: std::collections::HashMap<&str, Vec<Instant>> = Default::default();
    for r in requests
        .iter()
        .filter(|r| r.method == FakeMethod::GetOperation)
    {
        by_operation.entry(&r.resource).or_default().push(r.at);
    }
    let polls: Vec<Instant> = by_operation.values().flatten().copied().collect();
    let instants: HashSet<Instant> = polls.iter().copied().collect();
    assert!(polls.len() >= 200 * 5, "{} polls", polls.len());
    assert!(
        instants.len() * 4 < polls.len(),
        "{} polls on {} instants",
        polls.len(),
        instants.len()
    );
    let on_grid =
        |at: Instant, grid: Duration| (at - epoch).as_nanos().is_multiple_of(grid.as_nanos());
    for times in by_operation.values() {
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            let grid = if gap >= Duration::from_millis(900) {
                Duration::from_millis(100)
            } else {
                Duration::from_millis(10)
            };
            assert!(
                on_grid(pair[1], grid),
                "a poll after {gap:?} at {:?}",
                pair[1] - epoch
            );
        }
    }
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn watching_a_thousand_names_sends_one_probe_to_a_server_without_wait() {
    let fake = FakeServer::builder()
        .record_requests(false)
        .start()
        .await
        .unwrap();
    fake.set_wait_unimplemented(true);
    let names: Vec<String> = (0..1000u64)
        .map(|i| fake.insert(format!("operations/w{i}"), finishing_after(secs(1 + i % 8))))
        .collect();
    let done = fake
        .client()
        .watch_each(names, &WaitOptions::default())
        .filter(|(_, item)| {
            std::future::ready(matches!(item, Ok(wait::Watched::Snapshot(op)) if op.done))
        })
        .count()
        .await;
    assert_eq!(done, 1000);
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 1, "one probe");
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_thousand_separate_waits_on_a_slow_server_send_two_probes_at_most() {
    for supported in [false, true] {
        let (fake, names) = slow_fake_with_a_thousand_operations(supported).await;
        let client = crate::wire::client(&fake);
        let waits: Vec<_> = names
            .into_iter()
            .map(|name| {
                let client = client.clone();
                tokio::spawn(async move { client.wait_for(&name, &WaitOptions::default()).await })
            })
            .collect();
        for wait in waits {
            wait.await.unwrap().unwrap();
        }
        let probes_and_waits = fake.calls(FakeMethod::WaitOperation);
        if supported {
            // The blocking probe is the first wait's own; the quick one is one more RPC.
            assert_eq!(probes_and_waits, 1001, "supported");
            assert_eq!(fake.calls(FakeMethod::GetOperation), 0);
        } else {
            assert_eq!(probes_and_waits, 2, "the blocking probe and the quick one");
        }
        fake.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_wait_whose_server_cannot_be_reached_fails_as_get_does_whatever_its_timeout() {
    use longrunning::backoff::Jitter;
    let mut fake = FakeServer::start().await.unwrap();
    let client = fake
        .connector()
        .retry_policy(longrunning::RetryPolicy {
            backoff: Backoff::new(Duration::from_millis(500), secs(10), 2.0)
                .with_jitter(Jitter::Off),
            ..Default::default()
        })
        .connect_lazy()
        .unwrap();
    fake.stop().await;
    let get = client.get(OP).await.unwrap_err();
    assert_eq!(get.code(), Some(Code::Unavailable), "{get}");
    // The client's five attempts, 0.5 s, 1 s, 2 s and 4 s apart (the last ending on the
    // client's 1 s grid: at 8 s), or the deadline if sooner: with the failure either way,
    // not a timeout (nothing ever answered).
    for (timeout, gives_up_after) in [
        (None, secs(8)),
        (Some(secs(3600)), secs(8)),
        (Some(secs(2)), secs(2)),
    ] {
        let options = WaitOptions {
            timeout,
            ..WaitOptions::default()
        };
        let start = Instant::now();
        let err = client.wait_for(OP, &options).await.unwrap_err();
        assert!(matches!(err, Error::Rpc { .. }), "{timeout:?}: {err}");
        assert_eq!(
            err.to_string(),
            get.to_string().replace("GetOperation", "WaitOperation")
        );
        assert_eq!(start.elapsed(), gives_up_after, "{timeout:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_wait_on_a_silent_server_gives_up_after_one_silence_as_get_does() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let client = crate::wire::client(&fake);
    for method in [FakeMethod::GetOperation, FakeMethod::WaitOperation] {
        fake.http_fault_next(method, u64::MAX, HttpFault::Silence);
    }
    let get = client.get(OP).await.unwrap_err();
    let start = Instant::now();
    let wait = client
        .wait_for(OP, &WaitOptions::default())
        .await
        .unwrap_err();
    assert_eq!(get.code(), Some(Code::DeadlineExceeded), "{get}");
    assert_eq!(wait.code(), Some(Code::DeadlineExceeded), "{wait}");
    assert!(wait.to_string().contains("no answer from"), "{wait}");
    // One WaitOperation: its 60 s and the per-call margin of 10 s; not five of them.
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 1);
    assert_eq!(start.elapsed(), secs(70));
    // With less time than that: still the silence (exit 3 in `lro`), not a timeout (exit 4,
    // which says the server answered and the operation was not done).
    let start = Instant::now();
    let options = WaitOptions {
        timeout: Some(secs(5)),
        ..WaitOptions::default()
    };
    let wait = client.wait_for(OP, &options).await.unwrap_err();
    assert!(matches!(wait, Error::Rpc { .. }), "{wait}");
    assert_eq!(wait.code(), Some(Code::DeadlineExceeded), "{wait}");
    assert!(wait.to_string().contains("no answer from"), "{wait}");
    assert_eq!(start.elapsed(), secs(5));
    fake.shutdown().await;
}
