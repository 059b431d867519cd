//! Poll schedules compared: `cargo bench --features testing --bench schedules`.
//!
//! RPCs per operation and lag (from finishing to being seen done: p50, p99) of a polling
//! wait, for operations lasting about 2 s, 30 s, 5 min and 30 min (each of 1,000 drawn
//! uniformly within ±25 % of it), under our default schedule and those of Google's
//! other clients. Each operation is waited for on its own, polling GetOperation (no
//! WaitOperation, no batched listing), by the crate's own waiter against the in-memory
//! fake on tokio's paused clock: exact, with the waiter's grid and jitter included, and a
//! few seconds of real time.
//!
//! | schedule | initial | × | max | jitter |
//! |---|---|---|---|---|
//! | ours (`WaitOptions::default`) | 1 s | 1.5 | 30 s | [50 %, 100 %] |
//! | Python api-core (`DEFAULT_POLLING`) | 1 s | 1.5 | 20 s | full, [0, 100 %] (`exponential_sleep_generator`) |
//! | google-cloud-rust (`ExponentialBackoff` as a polling policy) | 1 s | 2 | 60 s | none (`wait_period`) |
//! | Java, Vision's settings (`ImportProductSets`) | 20 s | 1.5 | 45 s | not modelled |
//!
//! Each schedule runs as this crate's waiter runs it (wakes on its shared grid), so the
//! rows differ by schedule alone.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt as _;
use longrunning::Operation;
use longrunning::backoff::{Backoff, Jitter};
use longrunning::testing::{FakeServer, Listing, Outcome, Script};
use longrunning::wait::{self, WaitOptions, WaitStrategy};
use support::percentiles;
use tokio::time::Instant;

const OPERATIONS: usize = 1000;

fn main() {
    let secs = Duration::from_secs;
    let schedules = [
        ("ours", WaitOptions::default().poll_backoff),
        (
            "api-core",
            Backoff::new(secs(1), secs(20), 1.5).with_jitter(Jitter::Full),
        ),
        (
            "google-cloud-rust",
            Backoff::new(secs(1), secs(60), 2.0).with_jitter(Jitter::Off),
        ),
        (
            "Java (Vision)",
            Backoff::new(secs(20), secs(45), 1.5).with_jitter(Jitter::Off),
        ),
    ];
    let durations = [secs(2), secs(30), secs(300), secs(1800)];
    println!(
        "| schedule | {} |",
        durations.map(|d| format!("{d:?}")).join(" | ")
    );
    println!("|---|{}", "---|".repeat(durations.len()));
    for (label, schedule) in schedules {
        let cells: Vec<String> = durations
            .iter()
            .map(|&duration| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .start_paused(true)
                    .build()
                    .expect("a tokio runtime");
                let (rpcs, p50, p99) = runtime.block_on(simulate(schedule, duration));
                format!("{rpcs:.1} RPCs, {p50:.1?} / {p99:.1?}")
            })
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
}

/// RPCs per operation, and lag p50 and p99, of polling waits under `schedule` for
/// operations lasting about `duration`.
async fn simulate(schedule: Backoff, duration: Duration) -> (f64, Duration, Duration) {
    let fake = FakeServer::builder()
        .record_requests(false)
        .start()
        .await
        .expect("fake");
    fake.set_listing(Listing::Unimplemented);
    let client = fake.client();
    let start = Instant::now();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut due = HashMap::new();
    let ops: Vec<Operation<(), ()>> = (0..OPERATIONS)
        .map(|i| {
            let lasts = duration.mul_f64(0.75 + rng.f64() * 0.5);
            let name = fake.insert(
                format!("operations/op{i:04}"),
                Script::finishing_after(lasts, Outcome::NoResult),
            );
            due.insert(name.clone(), start + lasts);
            Operation::from_name(client.clone(), &name).expect("a valid name")
        })
        .collect();
    let options = WaitOptions {
        strategy: WaitStrategy::Poll,
        poll_backoff: schedule,
        ..WaitOptions::default()
    };
    let mut lags = Vec::new();
    let mut finished = wait::wait_stream(ops, &options);
    while let Some((op, result)) = finished.next().await {
        result.expect("the wait ends with the operation");
        lags.push(due[op.name()].elapsed());
    }
    let rpcs = fake.total_calls() as f64 / OPERATIONS as f64;
    fake.shutdown().await;
    let (p50, p99, _) = percentiles(lags);
    (rpcs, p50, p99)
}
