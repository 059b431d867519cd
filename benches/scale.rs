//! Scale: `cargo bench --features testing --bench scale`.
//!
//! 10,000 operations finishing at random times over 30 s (each 2 s to 32 s after it was
//! started), all waited for from one process, against the fake at 100 streams per
//! connection (what Google's front ends advertise). The fake and each client run in child
//! processes of their own. Reported: completion lag (the client seeing an operation done
//! minus its `endTime`, both on this machine's clock) p50/p99/max, RPCs per operation, the
//! client's peak RSS and CPU time.

mod support;

use std::process::Command;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use longrunning::transport::Connector;
use longrunning::vision::ProductSearch;
use longrunning::wait::{self, WaitOptions, WaitStrategy};
use support::{FakeChild, RssSampler, SERVE_ENV, cpu_time, percentiles, rss_kib, runtime};

const OPS: usize = 10_000;
const MODE_ENV: &str = "LRO_SCALE_MODE";
const ENDPOINT_ENV: &str = "LRO_SCALE_ENDPOINT";

fn main() {
    if std::env::var_os(SERVE_ENV).is_some() {
        support::serve_in_child();
        return;
    }
    if let (Ok(mode), Ok(endpoint)) = (std::env::var(MODE_ENV), std::env::var(ENDPOINT_ENV)) {
        client(&mode, endpoint);
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    for mode in ["wait-path", "wait-path-default-budget", "polling"] {
        let fake = FakeChild::start(Duration::from_secs(2), Duration::from_secs(30), Some(100));
        let output = Command::new(&exe)
            .env(MODE_ENV, mode)
            .env(ENDPOINT_ENV, &fake.endpoint)
            .output()
            .expect("run the client");
        let (gets, waits) = fake.stop();
        let rpcs = (gets + waits) as f64 / OPS as f64;
        print!("{}", String::from_utf8_lossy(&output.stdout));
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        println!("    RPCs per operation {rpcs:.2} ({gets} Get, {waits} Wait)");
    }
}

/// The client: start 10,000 purges on one pooled client, wait for all, report.
fn client(mode: &str, endpoint: String) {
    let options = match mode {
        "polling" => WaitOptions {
            strategy: WaitStrategy::Poll,
            ..WaitOptions::default()
        },
        // Every operation can hold a Wait at once (the pool's default budget of
        // 128 connections × 90 long calls covers 10,000).
        "wait-path" => WaitOptions {
            max_in_flight_rpcs: 12_000,
            ..WaitOptions::default()
        },
        _ => WaitOptions::default(),
    };
    let report = runtime().block_on(async {
        let client = Connector::new()
            .endpoint(endpoint)
            .connect()
            .await
            .expect("connect");
        let search = ProductSearch::new(client);
        let ops = support::start_purges(&search, OPS).await;
        let rss_before = rss_kib();
        let sampler = RssSampler::start();
        let cpu_before = cpu_time();
        let wall = std::time::Instant::now();
        let mut lags = Vec::with_capacity(OPS);
        let mut failed = 0;
        let mut finished = wait::wait_stream(ops, &options);
        while let Some((op, result)) = finished.next().await {
            let seen = SystemTime::now();
            if result.is_err() {
                failed += 1;
            }
            if let Some(lag) = support::lag_after_end(&op, seen) {
                lags.push(lag);
            }
        }
        let cpu = cpu_time() - cpu_before;
        (
            lags,
            failed,
            wall.elapsed(),
            rss_before,
            sampler.stop(),
            cpu,
        )
    });
    let (lags, failed, wall, rss_before, rss_peak, cpu) = report;
    let done = lags.len();
    let (p50, p99, max) = percentiles(lags);
    let per_wait = rss_peak.saturating_sub(rss_before) as f64 / OPS as f64;
    println!(
        "{mode}: {done} of {OPS} done ({failed} errors) in {wall:.1?}; lag p50 {p50:.1?} p99 {p99:.1?} max {max:.1?}; \
         client CPU {cpu:.2?}; peak RSS {rss_peak} KiB, {per_wait:.2} KiB per in-flight wait"
    );
}
