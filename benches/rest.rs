//! REST beside gRPC: `cargo bench --features testing,rest --bench rest`.
//!
//! The fake in a child process serves both wires on one port; the client runs here, on
//! one thread (as `lro`).
//!
//! 1. **GetOperation**: client CPU and wall time per call, sequential, batches of 500 over
//!    gRPC and over REST (`RestRules::standard("v1")`) alternating, six pairs; medians.
//! 2. **1,000 waits over REST**: operations done 0–8 s after they start (started over gRPC,
//!    not measured), waited for with `wait_stream` and default options: with the standard
//!    rules (WaitOperation as `POST …:wait`) and with Vision's (GetOperation only: the
//!    waits poll). Reported: RPCs per operation, lag p50/p99 (finish → seen done, from the
//!    metadata's `endTime`), client CPU.

mod support;

use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt as _;
use longrunning::rest::RestRules;
use longrunning::transport::Connector;
use longrunning::vision::ProductSearch;
use longrunning::wait::{self, WaitOptions};
use support::{FakeChild, SERVE_ENV, cpu_time, percentiles};

const BATCH: usize = 500;
const PAIRS: usize = 6;
const WAITS: usize = 1000;

fn main() {
    if std::env::var_os(SERVE_ENV).is_some() {
        support::serve_in_child();
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(gets());
    for (label, rules) in [
        (
            "standard-v1 (POST :wait)",
            RestRules::standard("v1").expect("rules"),
        ),
        (
            "vision-v1 (GetOperation only: polling)",
            RestRules::vision_v1(),
        ),
    ] {
        runtime.block_on(waits(label, rules));
    }
}

async fn gets() {
    let fake = FakeChild::start(Duration::from_secs(3600), Duration::ZERO, None);
    let grpc = Connector::new()
        .endpoint(fake.endpoint.clone())
        .connect()
        .await
        .expect("connect");
    let rest = Connector::new()
        .endpoint(fake.endpoint.clone())
        .rest(RestRules::standard("v1").expect("rules"))
        .connect()
        .await
        .expect("connect");
    let search = ProductSearch::new(grpc.clone());
    let op = search
        .purge_products(support::purge_request())
        .await
        .expect("purge");
    let name = op.name().to_owned();
    let mut results: [Vec<(Duration, Duration)>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..PAIRS {
        for (i, client) in [&grpc, &rest].into_iter().enumerate() {
            let cpu = cpu_time();
            let wall = Instant::now();
            for _ in 0..BATCH {
                client.get(&name).await.expect("get");
            }
            results[i].push((
                (cpu_time() - cpu) / BATCH as u32,
                wall.elapsed() / BATCH as u32,
            ));
        }
    }
    for (label, mut batches) in ["gRPC", "REST"].into_iter().zip(results) {
        batches.sort();
        let (cpu, _) = batches[batches.len() / 2];
        let mut walls: Vec<Duration> = batches.iter().map(|(_, w)| *w).collect();
        walls.sort();
        println!(
            "GetOperation over {label}: client CPU {:.1} µs a call, wall {:.1} µs a call (medians of {PAIRS} batches of {BATCH})",
            cpu.as_secs_f64() * 1e6,
            walls[walls.len() / 2].as_secs_f64() * 1e6,
        );
    }
    fake.stop();
}

async fn waits(label: &str, rules: RestRules) {
    let fake = FakeChild::start(Duration::ZERO, Duration::from_secs(8), None);
    let grpc = Connector::new()
        .endpoint(fake.endpoint.clone())
        .connect()
        .await
        .expect("connect");
    let rest = Connector::new()
        .endpoint(fake.endpoint.clone())
        .rest(rules)
        .connect_lazy()
        .expect("client");
    let search = ProductSearch::new(grpc);
    let ops: Vec<_> = support::start_purges(&search, WAITS)
        .await
        .into_iter()
        .map(|op| {
            longrunning::vision::PurgeProductsOperation::from_raw(rest.clone(), op.raw().clone())
        })
        .collect();
    let cpu = cpu_time();
    let mut lags = Vec::new();
    let mut failed = 0;
    let mut finished = wait::wait_stream(ops, &WaitOptions::default());
    while let Some((op, result)) = finished.next().await {
        let seen = SystemTime::now();
        if result.is_err() {
            failed += 1;
        }
        if let Some(lag) = support::lag_after_end(&op, seen) {
            lags.push(lag);
        }
    }
    let cpu = cpu_time() - cpu;
    let (gets, wait_calls) = fake.stop();
    let (p50, p99, _) = percentiles(lags);
    println!(
        "{WAITS} waits over REST, {label}: {failed} failed; {:.2} RPCs per operation ({gets} Get, {wait_calls} Wait); \
         lag p50 {p50:.1?} p99 {p99:.1?}; client CPU {cpu:.2?} ({:.0} µs a wait)",
        (gets + wait_calls) as f64 / WAITS as f64,
        cpu.as_secs_f64() * 1e6 / WAITS as f64,
    );
}
