//! Waiter benchmarks: `cargo bench --features testing --bench waiter`.
//!
//! 1. Completion lag: from the moment the fake's operation is done to `wait` returning,
//!    WaitOperation path vs polling, real clock, loopback.
//! 2. RPCs to wait for a 10 s operation, WaitOperation path vs polling with the defaults
//!    (tokio's paused clock: exact counts, no waiting).
//! 3. 10,000 concurrent waits on one channel: all complete; the client process's peak RSS
//!    and CPU time. The fake and the client run in child processes (this binary, re-run),
//!    so the numbers are the client's alone.

use std::process::Command;
use std::time::Duration;

use longrunning::testing::{FakeMethod, FakeServer, Outcome, Script};
use longrunning::vision::{ProductSearch, PurgeProductsOperation, pb};
use longrunning::wait::{self, WaitOptions, WaitStrategy};
use longrunning::{Operation, OperationsClient};
use tokio::time::Instant;

mod support;

use support::{RssSampler, SERVE_ENV, cpu_time, rss_kib, runtime, serve_in_child};

const CLIENT_ENV: &str = "LRO_BENCH_CLIENT";
const ENDPOINT_ENV: &str = "LRO_BENCH_ENDPOINT";

fn main() {
    if std::env::var_os(SERVE_ENV).is_some() {
        serve_in_child();
        return;
    }
    if let (Ok(strategy), Ok(endpoint)) = (std::env::var(CLIENT_ENV), std::env::var(ENDPOINT_ENV)) {
        concurrent_waits_in_child(&strategy, endpoint);
        return;
    }
    // `cargo bench` passes `--bench`; any other argument selects benches by name.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let selected = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));
    if selected("lag") {
        completion_lag();
    }
    if selected("rpcs") {
        rpcs_for_a_ten_second_operation();
    }
    if selected("concurrent") {
        ten_thousand_concurrent_waits();
    }
}

type Empty = Operation<(), pb::BatchOperationMetadata>;

/// 300 operations finishing at random times within 2 s, waited for concurrently; the lag of
/// each is `wait` returning minus the moment it was due.
fn completion_lag() {
    const OPS: usize = 300;
    for strategy in [WaitStrategy::Auto, WaitStrategy::Poll] {
        let lags = runtime().block_on(async {
            let fake = FakeServer::builder()
                .record_requests(false)
                .start()
                .await
                .expect("fake");
            let client = fake.client();
            // Warm the connection (and, on the Wait path, the client's probe).
            fake.insert(
                "operations/warm",
                Script::finishing_after(Duration::ZERO, Outcome::NoResult),
            );
            client
                .wait_for("operations/warm", &WaitOptions::default())
                .await
                .expect("warm");
            let options = WaitOptions {
                strategy,
                ..WaitOptions::default()
            };
            let start = Instant::now();
            let waits = (0..OPS).map(|i| {
                let due = Duration::from_millis(fastrand::u64(100..2000));
                let name = fake.insert(
                    format!("operations/op{i}"),
                    Script::finishing_after(due, Outcome::NoResult),
                );
                let client = client.clone();
                let options = options.clone();
                async move {
                    let mut op = Empty::from_name(client, &name).expect("name");
                    op.wait(&options).await.expect("wait");
                    Instant::now().saturating_duration_since(start + due)
                }
            });
            let lags = futures_util::future::join_all(waits).await;
            fake.shutdown().await;
            lags
        });
        report_lag(strategy, lags);
    }
}

fn report_lag(strategy: WaitStrategy, mut lags: Vec<Duration>) {
    lags.sort();
    let at = |q: f64| lags[((lags.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "completion lag, {:<5} {} ops: p50 {:>9.3?}  p99 {:>9.3?}  max {:>9.3?}",
        format!("{strategy:?}"),
        lags.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// RPCs sent to wait for one operation that takes 10 s, on tokio's paused clock.
fn rpcs_for_a_ten_second_operation() {
    for strategy in [WaitStrategy::Auto, WaitStrategy::Poll] {
        let (rpcs, lag) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime")
            .block_on(async {
                let fake = FakeServer::start().await.expect("fake");
                fake.set_operation_duration(Duration::from_secs(10));
                let search = ProductSearch::new(fake.client());
                let mut op = search
                    .purge_products(pb::PurgeProductsRequest {
                        parent: "projects/p/locations/us-west1".into(),
                        target: Some(pb::purge_products_request::Target::DeleteOrphanProducts(
                            true,
                        )),
                        force: true,
                    })
                    .await
                    .expect("purge");
                let started = Instant::now();
                let options = WaitOptions {
                    strategy,
                    ..WaitOptions::default()
                };
                op.wait(&options).await.expect("wait");
                let rpcs =
                    fake.calls(FakeMethod::GetOperation) + fake.calls(FakeMethod::WaitOperation);
                let lag = started.elapsed().saturating_sub(Duration::from_secs(10));
                fake.shutdown().await;
                (rpcs, lag)
            });
        println!(
            "a 10 s operation, {:<5}: {rpcs} RPCs, seen done {lag:.2?} after it finished",
            format!("{strategy:?}")
        );
    }
}

/// 10,000 purges started, then waited for at once on one channel. For each strategy the
/// fake and the client each run in a process of their own, so that the client's memory and
/// CPU are measured alone and from a clean start.
fn ten_thousand_concurrent_waits() {
    let exe = std::env::current_exe().expect("own path");
    for strategy in ["auto", "poll"] {
        let server = support::FakeChild::start(Duration::from_secs(10), Duration::ZERO, None);
        let client = Command::new(&exe)
            .env(CLIENT_ENV, strategy)
            .env(ENDPOINT_ENV, &server.endpoint)
            .output()
            .expect("run the client in a child process");
        print!("{}", String::from_utf8_lossy(&client.stdout));
        server.stop();
    }
}

/// The client child: start 10,000 purges, wait for all, print what it cost.
fn concurrent_waits_in_child(strategy: &str, endpoint: String) {
    const OPS: usize = 10_000;
    let strategy = match strategy {
        "poll" => WaitStrategy::Poll,
        _ => WaitStrategy::Auto,
    };
    let outcome = runtime().block_on(async {
        let client = OperationsClient::connect(endpoint).await.expect("connect");
        let search = ProductSearch::new(client.clone());
        let request = pb::PurgeProductsRequest {
            parent: "projects/p/locations/us-west1".into(),
            target: Some(pb::purge_products_request::Target::DeleteOrphanProducts(
                true,
            )),
            force: true,
        };
        let mut ops: Vec<PurgeProductsOperation> = Vec::with_capacity(OPS);
        for _ in 0..OPS {
            ops.push(search.purge_products(request.clone()).await.expect("purge"));
        }
        let rss_before = rss_kib();
        let sampler = RssSampler::start();
        let cpu_before = cpu_time();
        let started = std::time::Instant::now();
        let options = WaitOptions {
            strategy,
            ..WaitOptions::default()
        };
        let results = wait::wait_all(ops, &options).await;
        let ok = results.iter().filter(|(_, r)| r.is_ok()).count();
        let cpu = cpu_time() - cpu_before;
        (ok, started.elapsed(), rss_before, sampler.stop(), cpu)
    });
    let (ok, wall, rss_before, rss_peak, cpu) = outcome;
    let per_wait = (rss_peak.saturating_sub(rss_before)) as f64 / OPS as f64;
    println!(
        "{OPS} concurrent waits, {:<5}: {ok} ok, wall {wall:.2?}, client CPU {cpu:.2?}, \
         peak RSS {rss_peak} KiB, {per_wait:.2} KiB per in-flight wait over the {rss_before} KiB before",
        format!("{strategy:?}")
    );
}
