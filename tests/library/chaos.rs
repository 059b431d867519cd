//! Chaos: operations finishing at random while the fake fails 30 % of calls UNAVAILABLE, adds
//! random latency, and is restarted on the same port. Every operation's correct result must
//! come back exactly once, and no task may be left running.
//!
//! The small run is part of the normal suite (tokio's paused clock: exact and fast). The
//! full run is real time, 1,000 operations over 20 s:
//!
//! ```text
//! cargo test --release --all-features --test chaos -- --ignored --nocapture
//! ```

use std::collections::HashSet;
use std::time::Duration;

use longrunning::proto::rpc;
use longrunning::testing::{FakeServer, Outcome, Script};
use longrunning::transport::Connector;
use longrunning::vision::pb;
use longrunning::wait::{self, WaitOptions};
use longrunning::{Code, Error, Operation};
use tokio::time::Instant;

type ImportOperation = Operation<pb::ImportProductSetsResponse, pb::BatchOperationMetadata>;

struct Chaos {
    operations: usize,
    /// Operations finish at random within this long of their start.
    spread: Duration,
    fault_rate: f64,
    latency_jitter: Duration,
    /// When (from the start) the fake is stopped, and for how long.
    restarts_at: Vec<Duration>,
    downtime: Duration,
}

#[derive(Debug)]
struct Report {
    operations: usize,
    faults_injected: u64,
    restarts_survived: usize,
    results_lost: usize,
    rpcs_per_operation: f64,
    wall: Duration,
    tasks_left: usize,
}

/// What operation `i` must end with: every fifth fails, the rest answer with their name.
fn expected(i: usize, name: &str) -> Outcome {
    if i.is_multiple_of(5) {
        Outcome::error(Code::Aborted, format!("{name} aborted"))
    } else {
        Outcome::response(&pb::ImportProductSetsResponse {
            reference_images: Vec::new(),
            statuses: vec![rpc::Status {
                code: 0,
                message: name.to_owned(),
                details: Vec::new(),
            }],
        })
    }
}

fn is_correct(i: usize, name: &str, result: &Result<pb::ImportProductSetsResponse, Error>) -> bool {
    match result {
        Ok(response) => !i.is_multiple_of(5) && response.statuses[0].message == name,
        Err(Error::OperationFailed { status, .. }) => {
            i.is_multiple_of(5)
                && status.code == Code::Aborted
                && status.message == format!("{name} aborted")
        }
        Err(_) => false,
    }
}

async fn run(chaos: Chaos) -> Report {
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let start = Instant::now();
    let mut fake = FakeServer::builder()
        .record_requests(false)
        .start()
        .await
        .unwrap();
    let client = Connector::new()
        .endpoint(fake.endpoint())
        .connect_lazy()
        .unwrap();
    let names: Vec<String> = (0..chaos.operations)
        .map(|i| {
            let name = format!("projects/p/locations/us-west1/operations/chaos{i:05}");
            let after = chaos.spread.mul_f64(fastrand::f64());
            fake.insert(&name, Script::finishing_after(after, expected(i, &name)))
        })
        .collect();
    fake.set_fault_rate(chaos.fault_rate);
    fake.set_latency_jitter(chaos.latency_jitter);
    let ops: Vec<ImportOperation> = names
        .iter()
        .map(|name| ImportOperation::from_name(client.clone(), name).unwrap())
        .collect();
    let options = WaitOptions {
        timeout: Some(Duration::from_secs(600)),
        max_in_flight_rpcs: chaos.operations * 2,
        ..WaitOptions::default()
    };

    let mut restarts_survived = 0;
    let waiting = wait::wait_all(ops, &options);
    let restarts = async {
        for at in &chaos.restarts_at {
            tokio::time::sleep_until(start + *at).await;
            fake.stop().await;
            tokio::time::sleep(chaos.downtime).await;
            fake.restart().await.unwrap();
            restarts_survived += 1;
        }
    };
    let (results, ()) = tokio::join!(waiting, restarts);
    let wall = start.elapsed();

    // Exactly once: one result per operation, each the right one.
    let mut seen = HashSet::new();
    let mut correct = 0;
    for (i, (op, result)) in results.iter().enumerate() {
        assert_eq!(op.name(), names[i]);
        if seen.insert(op.name().to_owned()) && is_correct(i, op.name(), result) {
            correct += 1;
        }
    }
    let faults_injected = fake.faults_injected();
    let rpcs_per_operation = fake.total_calls() as f64 / chaos.operations as f64;
    drop(results);
    drop(client);
    fake.shutdown().await;
    // Connection tasks end as their channels close; give them a moment, then count.
    let mut tasks_left = usize::MAX;
    for _ in 0..100 {
        tasks_left = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
            .saturating_sub(tasks_before);
        if tasks_left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Report {
        operations: chaos.operations,
        faults_injected,
        restarts_survived,
        results_lost: chaos.operations - correct,
        rpcs_per_operation,
        wall,
        tasks_left,
    }
}

fn check(report: &Report, restarts: usize) {
    println!(
        "chaos: {} operations, {} faults injected, {} restarts survived, {} results lost, \
         {:.2} RPCs per operation, wall {:.1?}, {} tasks left",
        report.operations,
        report.faults_injected,
        report.restarts_survived,
        report.results_lost,
        report.rpcs_per_operation,
        report.wall,
        report.tasks_left
    );
    assert_eq!(report.results_lost, 0, "{report:?}");
    assert_eq!(report.restarts_survived, restarts);
    assert!(report.faults_injected > 0);
    assert_eq!(report.tasks_left, 0, "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn chaos_small_every_result_exactly_once_and_no_task_left() {
    let report = run(Chaos {
        operations: 150,
        spread: Duration::from_secs(20),
        fault_rate: 0.3,
        latency_jitter: Duration::from_millis(200),
        restarts_at: vec![Duration::from_secs(5), Duration::from_secs(12)],
        downtime: Duration::from_secs(1),
    })
    .await;
    check(&report, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the full chaos run takes about half a minute of real time; run it with --ignored"]
async fn chaos_full_1000_operations_over_20_seconds() {
    let report = run(Chaos {
        operations: 1000,
        spread: Duration::from_secs(20),
        fault_rate: 0.3,
        latency_jitter: Duration::from_millis(100),
        restarts_at: vec![Duration::from_secs(6), Duration::from_secs(13)],
        downtime: Duration::from_millis(500),
    })
    .await;
    check(&report, 2);
}
