//! Quota: `cargo bench --features testing --bench quota`.
//!
//! Google's quota errors as they usually come: RESOURCE_EXHAUSTED with `ErrorInfo` (reason
//! `RATE_LIMIT_EXCEEDED`) and `QuotaFailure`, no `RetryInfo`. The fake answers 30 % of all
//! calls so, at random, on the real clock (in process, multi-threaded runtime).
//!
//! 1. **Absorbed**: 1,000 operations, each done at a random time within 8 s, waited for with
//!    default options (the Wait path, then polling). Reported: waits lost (must be 0), quota
//!    errors answered, RPCs per operation, completion lag.
//! 2. **Held**: 200 such operations polled through a client with `max_rps(50)`, first on a
//!    healthy server and then with the quota errors. Reported on the fake's own clock (the
//!    arrival times it recorded): the busiest one-second window, against the limit plus the
//!    burst (50 + 5), and the mean rate (lowered after quota errors, to an eighth at most).
//! 3. **10,000 in a quota** (issue #24): 10,000 operations under one collection, finishing
//!    evenly over 2 minutes, on a server without WaitOperation that admits 900 Operations
//!    RPCs a minute, waited for with default options and no rate set; once with the fake
//!    listing the collection (batched polling) and once without (per-operation polling,
//!    held to the quota by the adaptive limit). On tokio's paused clock, in memory: exact,
//!    and a few seconds of real time. Reported: waits lost, Operations RPCs per operation,
//!    quota refusals in the first minute and after it (against the RPCs sent after it), and
//!    the lag from finishing to being seen done (p50, p99, max).
//! 4. **`lro wait --from-file` of the same 10,000 names**, on the real clock: the fake
//!    serves on loopback (900 a minute, no WaitOperation) and `lro` (built with `cargo build
//!    --release --features cli`; skipped, saying so, without it) waits in a child process.
//!    Reported as in 3, the lag from each operation's finish to its line on `lro`'s stdout.
//!
//! `QUOTA_ONLY_10K=1` runs 3 and 4 alone.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt as _;

use longrunning::proto::rpc;
use longrunning::testing::{FakeServer, Listing, Outcome, Script};
use longrunning::transport::Connector;
use longrunning::wait::{self, WaitOptions, WaitStrategy};
use longrunning::{Code, ErrorDetail, Operation, OperationsClient, Status};
use support::{percentiles, runtime};
use tokio::time::Instant;

const MAX_RPS: f64 = 50.0;
const HELD_OPS: usize = 200;

fn main() {
    if std::env::var_os("QUOTA_ONLY_10K").is_some() {
        for listing in [Listing::ParentOrCollection, Listing::Unimplemented] {
            paused_runtime().block_on(in_a_quota(listing));
        }
        runtime().block_on(lro_in_a_quota());
        return;
    }
    runtime().block_on(async {
        for strategy in [WaitStrategy::Auto, WaitStrategy::Poll] {
            absorbed(strategy).await;
        }
        for quota_errors in [false, true] {
            held(quota_errors).await;
        }
    });
    for listing in [Listing::ParentOrCollection, Listing::Unimplemented] {
        paused_runtime().block_on(in_a_quota(listing));
    }
    runtime().block_on(lro_in_a_quota());
}

/// `lro wait --from-file` of 10,000 names in a 900-a-minute quota, on the real clock.
async fn lro_in_a_quota() {
    use tokio::io::AsyncBufReadExt as _;
    let lro = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("lro")))
        .filter(|lro| lro.exists());
    let Some(lro) = lro else {
        println!(
            "lro wait in a quota: skipped (no target/release/lro: cargo build --release --features cli)"
        );
        return;
    };
    let (fake, start, mut due) = quota_fake(Listing::default()).await;
    let mut names = String::new();
    for name in due.keys() {
        names.push_str(name);
        names.push('\n');
    }
    let file = std::env::temp_dir().join(format!("lro-quota-{}.names", std::process::id()));
    std::fs::write(&file, names).expect("write the names");
    let mut child = tokio::process::Command::new(&lro)
        .arg("--endpoint")
        .arg(fake.endpoint())
        .args(["--quiet", "wait", "--from-file"])
        .arg(&file)
        .env_remove("LRO_EMULATOR_HOST")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start lro");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut lags = Vec::new();
    let mut first_minute = None;
    let minute = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(minute);
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    let seen = Instant::now();
                    let name = serde_json::from_str::<serde_json::Value>(&line)
                        .ok()
                        .and_then(|op| Some(op.get("name")?.as_str()?.to_owned()));
                    if let Some(at) = name.and_then(|name| due.remove(&name)) {
                        lags.push(seen - at);
                    }
                }
                _ => break,
            },
            () = &mut minute, if first_minute.is_none() => {
                first_minute = Some((fake.total_calls(), fake.quota_refusals()));
            }
        }
    }
    let status = child.wait().await.expect("lro ends");
    let took = start.elapsed();
    let _ = std::fs::remove_file(&file);
    let (sent_first, refused_first) =
        first_minute.unwrap_or((fake.total_calls(), fake.quota_refusals()));
    let (p50, p99, max) = percentiles(lags);
    println!(
        "lro wait --from-file, {QUOTA_OPS} names in {QUOTA_PER_MINUTE} a minute, real time: \
         exit {}; {} not printed; {:.3} Operations RPCs per operation ({} in all); \
         refused {refused_first} in the first minute, {} of {} after it; \
         lag p50 {p50:.1?} p99 {p99:.1?} max {max:.1?}; done {took:.0?} after the start",
        status
            .code()
            .map_or("by a signal".to_owned(), |code| code.to_string()),
        due.len(),
        fake.total_calls() as f64 / QUOTA_OPS as f64,
        fake.total_calls(),
        fake.quota_refusals() - refused_first,
        fake.total_calls() - sent_first,
    );
    fake.shutdown().await;
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime")
}

const QUOTA_OPS: usize = 10_000;
const QUOTA_PER_MINUTE: u32 = 900;

/// The fake of part 3 and 4: no WaitOperation, `listing`, the quota, and the 10,000
/// operations under one collection finishing evenly over 2 minutes from the instant
/// returned; with the instant each is due.
async fn quota_fake(listing: Listing) -> (FakeServer, Instant, HashMap<String, Instant>) {
    let fake = FakeServer::builder()
        .record_requests(false)
        .start()
        .await
        .expect("fake");
    fake.set_wait_unimplemented(true);
    fake.set_listing(listing);
    fake.set_quota(Some(QUOTA_PER_MINUTE));
    let start = Instant::now();
    let spread = Duration::from_secs(120);
    let due = (0..QUOTA_OPS)
        .map(|i| {
            let after = spread.mul_f64(i as f64 / QUOTA_OPS as f64);
            let name = fake.insert(
                format!("projects/p/locations/us-west1/operations/op{i:05}"),
                Script::finishing_after(after, Outcome::NoResult),
            );
            (name, start + after)
        })
        .collect();
    (fake, start, due)
}

async fn in_a_quota(listing: Listing) {
    let (fake, start, due) = quota_fake(listing).await;
    let client = fake.client();
    let ops: Vec<Operation<(), ()>> = due
        .keys()
        .map(|name| Operation::from_name(client.clone(), name).expect("a valid name"))
        .collect();
    let mut finished = wait::wait_stream(ops, &WaitOptions::default());
    let mut first_minute = None;
    let minute = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(minute);
    let mut lags = Vec::new();
    let mut lost = 0;
    loop {
        tokio::select! {
            item = finished.next() => match item {
                Some((op, Ok(()))) => lags.push(due[op.name()].elapsed()),
                Some((op, Err(err))) => {
                    lost += 1;
                    eprintln!("lost {}: {err}", op.name());
                }
                None => break,
            },
            () = &mut minute, if first_minute.is_none() => {
                first_minute = Some((fake.total_calls(), fake.quota_refusals()));
            }
        }
    }
    let took = start.elapsed();
    let (sent_first, refused_first) =
        first_minute.unwrap_or((fake.total_calls(), fake.quota_refusals()));
    let sent_after = fake.total_calls() - sent_first;
    let refused_after = fake.quota_refusals() - refused_first;
    let rpcs = fake.total_calls() as f64 / QUOTA_OPS as f64;
    let (p50, p99, max) = percentiles(lags);
    println!(
        "{QUOTA_OPS} waits in {QUOTA_PER_MINUTE} a minute, {}: {lost} lost; {rpcs:.3} Operations RPCs \
         per operation ({} in all); refused {refused_first} in the first minute, \
         {refused_after} of {sent_after} after it; lag p50 {p50:.1?} p99 {p99:.1?} max {max:.1?}; \
         all done {took:.0?} after the start",
        match listing {
            Listing::Unimplemented => "server that lists nothing (polling by name)",
            _ => "batched polling",
        },
        fake.total_calls(),
    );
    fake.shutdown().await;
}

/// Google's quota error without `RetryInfo`.
fn quota_error() -> Status {
    Status::new(
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

/// `count` operations on the fake, each done at a random time within `spread`; with the
/// instant each is due.
fn operations(
    fake: &FakeServer,
    client: &OperationsClient,
    count: usize,
    spread: Duration,
) -> (Vec<Operation<(), ()>>, Vec<Instant>) {
    let start = Instant::now();
    (0..count)
        .map(|i| {
            let after = spread.mul_f64(fastrand::f64());
            let name = fake.insert(
                format!("operations/quota{i}"),
                Script::finishing_after(after, Outcome::NoResult),
            );
            let op = Operation::from_name(client.clone(), &name).expect("a valid name");
            (op, start + after)
        })
        .unzip()
}

async fn absorbed(strategy: WaitStrategy) {
    let fake = FakeServer::builder()
        .record_requests(false)
        .start()
        .await
        .expect("fake");
    let client = Connector::new()
        .endpoint(fake.endpoint())
        .connect_lazy()
        .expect("client");
    let (ops, due) = operations(&fake, &client, 1000, Duration::from_secs(8));
    fake.set_fault_status(quota_error());
    fake.set_fault_rate(0.3);
    let options = WaitOptions {
        strategy,
        ..WaitOptions::default()
    };
    let wall = Instant::now();
    let mut lags = Vec::new();
    let mut lost = 0;
    let due: HashMap<String, Instant> =
        ops.iter().map(|op| op.name().to_owned()).zip(due).collect();
    let mut finished = wait::wait_stream(ops, &options);
    while let Some((op, result)) = finished.next().await {
        match result {
            Ok(()) => lags.push(due[op.name()].elapsed()),
            Err(err) => {
                lost += 1;
                eprintln!("lost {}: {err}", op.name());
            }
        }
    }
    let wall = wall.elapsed();
    let rpcs = fake.total_calls() as f64 / 1000.0;
    let (p50, p99, max) = percentiles(lags);
    println!(
        "absorbed, {strategy:?}: {lost} of 1000 waits lost; {} quota errors answered; \
         {rpcs:.2} RPCs per operation; lag p50 {p50:.1?} p99 {p99:.1?} max {max:.1?}; {wall:.1?}",
        fake.faults_injected()
    );
    fake.shutdown().await;
}

async fn held(quota_errors: bool) {
    let fake = FakeServer::start().await.expect("fake");
    let client = Connector::new()
        .endpoint(fake.endpoint())
        .max_rps(MAX_RPS)
        .connect_lazy()
        .expect("client");
    // A GetOperation per poll, so that the limit has calls to hold.
    fake.set_listing(Listing::Unimplemented);
    let (ops, _) = operations(&fake, &client, HELD_OPS, Duration::from_secs(8));
    if quota_errors {
        fake.set_fault_status(quota_error());
        fake.set_fault_rate(0.3);
    }
    let options = WaitOptions {
        strategy: WaitStrategy::Poll,
        ..WaitOptions::default()
    };
    let wall = Instant::now();
    let results = wait::wait_all(ops, &options).await;
    let wall = wall.elapsed();
    let lost = results.iter().filter(|(_, r)| r.is_err()).count();
    let mut arrivals: Vec<Instant> = fake.requests().iter().map(|r| r.at).collect();
    arrivals.sort();
    let busiest = busiest_second(&arrivals);
    let span = match (arrivals.first(), arrivals.last()) {
        (Some(first), Some(last)) => *last - *first,
        _ => Duration::ZERO,
    };
    let mean = arrivals.len() as f64 / span.as_secs_f64().max(1e-9);
    let burst = (MAX_RPS.ceil() as u32 / 10).max(1);
    println!(
        "held at {MAX_RPS} RPCs/s, {}: {lost} of {HELD_OPS} waits lost; {} RPCs ({} quota errors) \
         over {span:.1?}; busiest second {busiest} (limit {MAX_RPS} + burst {burst}); \
         mean {mean:.1}/s; {wall:.1?}",
        if quota_errors {
            "30 % quota errors"
        } else {
            "healthy server"
        },
        arrivals.len(),
        fake.faults_injected(),
    );
    fake.shutdown().await;
}

/// The most arrivals within any one second (sorted input).
fn busiest_second(arrivals: &[Instant]) -> usize {
    let mut busiest = 0;
    let mut first = 0;
    for (last, at) in arrivals.iter().enumerate() {
        while *at - arrivals[first] >= Duration::from_secs(1) {
            first += 1;
        }
        busiest = busiest.max(last + 1 - first);
    }
    busiest
}
