//! What the benchmarks share: child processes for the fake, and the client's RSS and CPU.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use longrunning::testing::{FakeMethod, FakeServer};

/// Set in a child process: serve the fake (with `FAKE_STREAMS`, `FAKE_MIN_MS`,
/// `FAKE_SPREAD_MS`; `FAKE_NO_LIST` answers ListOperations UNIMPLEMENTED, `FAKE_NO_WAIT`
/// WaitOperation).
pub(crate) const SERVE_ENV: &str = "LRO_BENCH_SERVE";

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The fake in a child process of this very binary.
pub(crate) struct FakeChild {
    child: Child,
    pub endpoint: String,
}

impl FakeChild {
    /// Operations take `min` plus up to `spread`; `streams` per connection if given.
    pub(crate) fn start(min: Duration, spread: Duration, streams: Option<u32>) -> Self {
        Self::start_with(min, spread, streams, &[])
    }

    /// The same, with more of the variables above set (to "1").
    pub(crate) fn start_with(
        min: Duration,
        spread: Duration,
        streams: Option<u32>,
        flags: &[&str],
    ) -> Self {
        let exe = std::env::current_exe().expect("own path");
        let mut command = Command::new(exe);
        for flag in flags {
            command.env(flag, "1");
        }
        command
            .env(SERVE_ENV, "1")
            .env("FAKE_MIN_MS", min.as_millis().to_string())
            .env("FAKE_SPREAD_MS", spread.as_millis().to_string())
            .stdout(Stdio::piped())
            .stdin(Stdio::piped());
        if let Some(streams) = streams {
            command.env("FAKE_STREAMS", streams.to_string());
        }
        let mut child = command.spawn().expect("start the fake in a child process");
        let mut endpoint = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout"))
            .read_line(&mut endpoint)
            .expect("the fake's address");
        FakeChild {
            child,
            endpoint: endpoint.trim().to_owned(),
        }
    }

    /// Stops the fake; returns how many Get and Wait calls it served.
    pub(crate) fn stop(mut self) -> (u64, u64) {
        drop(self.child.stdin.take());
        let mut counts = String::new();
        if let Some(stdout) = self.child.stdout.as_mut() {
            let _ = BufReader::new(stdout).read_line(&mut counts);
        }
        let _ = self.child.wait();
        let mut numbers = counts.split_whitespace().filter_map(|n| n.parse().ok());
        (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
    }
}

/// The child's side: serve until stdin closes, then print "GETS WAITS".
pub(crate) fn serve_in_child() {
    let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    runtime().block_on(async {
        let mut builder = FakeServer::builder().record_requests(false);
        if let Some(streams) = number("FAKE_STREAMS") {
            builder = builder.max_concurrent_streams(streams as u32);
        }
        let fake = builder.start().await.expect("fake");
        if std::env::var_os("FAKE_NO_LIST").is_some() {
            fake.set_listing(longrunning::testing::Listing::Unimplemented);
        }
        fake.set_wait_unimplemented(std::env::var_os("FAKE_NO_WAIT").is_some());
        fake.set_operation_duration(Duration::from_millis(
            number("FAKE_MIN_MS").unwrap_or(10_000),
        ));
        fake.set_operation_duration_spread(Duration::from_millis(
            number("FAKE_SPREAD_MS").unwrap_or(0),
        ));
        println!("{}", fake.endpoint());
        let _ = std::io::stdout().flush();
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            let _ = std::io::stdin().read_line(&mut sink);
        })
        .await;
        println!(
            "{} {}",
            fake.calls(FakeMethod::GetOperation),
            fake.calls(FakeMethod::WaitOperation)
        );
        let _ = std::io::stdout().flush();
        fake.shutdown().await;
    });
}

/// The process's resident set now (VmRSS), in KiB.
pub(crate) fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// Samples VmRSS every 20 ms on a thread of its own and keeps the largest value. (VmHWM would
/// keep an earlier run's peak.)
pub(crate) struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    pub(crate) fn start() -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib());
                std::thread::sleep(Duration::from_millis(20));
            }
            peak.max(rss_kib())
        });
        RssSampler { stop, thread }
    }

    pub(crate) fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

/// User + system CPU time of this process so far (from /proc, in 10 ms ticks).
pub(crate) fn cpu_time() -> Duration {
    // The scheduler's exact runtime of each thread, in nanoseconds (the first field of
    // its `schedstat`), summed; `/proc/self/stat` gives the same in 10 ms ticks.
    let nanos: u64 = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// p50, p99 and max of some durations.
pub(crate) fn percentiles(mut values: Vec<Duration>) -> (Duration, Duration, Duration) {
    values.sort();
    if values.is_empty() {
        return (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    }
    let at = |q: f64| values[((values.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99), at(1.0))
}

/// The operation the overhead benchmarks fetch.
pub(crate) const OVERHEAD_OP: &str = "projects/p/locations/us-west1/operations/op1";

/// What both overhead benchmarks compare, on one channel to one in-process fake that holds
/// [`OVERHEAD_OP`]: the bare tonic-generated client, and `OperationsClient` behind the auth
/// layer with a static token.
pub(crate) async fn overhead_pair() -> (
    FakeServer,
    longrunning::proto::longrunning::operations_client::OperationsClient<tonic::transport::Channel>,
    longrunning::OperationsClient,
) {
    overhead_pair_with(None).await
}

/// [`overhead_pair`], our client also under `rate` (the layer a `Connector` puts above auth).
pub(crate) async fn overhead_pair_with(
    rate: Option<longrunning::transport::RateLimitLayer>,
) -> (
    FakeServer,
    longrunning::proto::longrunning::operations_client::OperationsClient<tonic::transport::Channel>,
    longrunning::OperationsClient,
) {
    use longrunning::transport::{AuthLayer, StaticToken};
    let fake = FakeServer::builder()
        .record_requests(false)
        .start()
        .await
        .expect("fake");
    fake.insert_running(OVERHEAD_OP);
    let channel = fake.channel();
    let bare =
        longrunning::proto::longrunning::operations_client::OperationsClient::new(channel.clone());
    let ours = longrunning::OperationsClient::from_service(
        tower::ServiceBuilder::new()
            .option_layer(rate)
            .layer(AuthLayer::new(StaticToken::new("ya29.benchmark-token")))
            .service(channel),
    );
    (fake, bare, ours)
}

/// The purge the benchmarks start: orphan products under one location, forced.
pub(crate) fn purge_request() -> longrunning::vision::pb::PurgeProductsRequest {
    use longrunning::vision::pb;
    pb::PurgeProductsRequest {
        parent: "projects/p/locations/us-west1".into(),
        target: Some(pb::purge_products_request::Target::DeleteOrphanProducts(
            true,
        )),
        force: true,
    }
}

/// `count` purges started at once on `search`.
pub(crate) async fn start_purges(
    search: &longrunning::vision::ProductSearch,
    count: usize,
) -> Vec<longrunning::vision::PurgeProductsOperation> {
    let started =
        futures_util::future::join_all((0..count).map(|_| search.purge_products(purge_request())))
            .await;
    started.into_iter().map(|r| r.expect("purge")).collect()
}

/// How long after its `endTime` an operation was seen done at `seen` (its metadata's, as
/// the fake sets it), if it has one.
pub(crate) fn lag_after_end(
    op: &longrunning::vision::PurgeProductsOperation,
    seen: std::time::SystemTime,
) -> Option<Duration> {
    let end = op.metadata().ok().flatten()?.end_time?;
    let end = std::time::SystemTime::try_from(end).ok()?;
    Some(seen.duration_since(end).unwrap_or_default())
}
