//! The floor: `cargo bench --features testing --bench floor`.
//!
//! Client CPU per completed wait of this crate's waiter beside the floor: tonic's generated
//! `Operations` client with nothing around it (one channel, a task per operation, no
//! headers, no deadlines, no retries), sending the same RPCs on the same schedule. 1,000
//! operations, each done a random 0–8 s after it starts, against the fake in a child
//! process; each client runs in a child process of its own on one thread, as a task (as
//! `lro` does), started after the operations are (the starts are not measured). Seven interleaved
//! rounds; medians. CPU is the scheduler's runtime of the process's threads (`/proc/self/task/*/schedstat`, in nanoseconds).
//!
//! - **polling**: the fake answers WaitOperation and ListOperations UNIMPLEMENTED; the floor
//!   polls GetOperation on our default schedule (1 s ×1.5 to 30 s, jittered to [50 %,
//!   100 %], the same generator); ours is `wait_stream` with `WaitStrategy::Poll` (two
//!   ListOperations probes, then a GetOperation per poll).
//! - **Wait path**: the floor sends one WaitOperation per operation (60 s) until done; ours
//!   is `wait_stream` with default options (one probe, then one WaitOperation each).
//!   Ours spreads its 1,000 parked calls over 12 connections, as Google's limit of 100
//!   streams a connection needs; the fake here has no limit, and the floor puts them all on
//!   one. `ours-wait-sized` is ours with the pool sized to this server
//!   (`PoolConfig::max_streams_per_connection`), on one connection too.
//!
//! `LRO_FLOOR_CLIENT=none` (with `LRO_FLOOR_ENDPOINT`) runs the starts alone: the part a
//! profile of one client (`valgrind --tool=callgrind`) subtracts.

mod support;

use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt as _;
use longrunning::proto::longrunning as lro;
use longrunning::transport::{Connector, PoolConfig};
use longrunning::vision::{ProductSearch, PurgeProductsOperation};
use longrunning::wait::{self, WaitOptions, WaitStrategy};
use support::{FakeChild, SERVE_ENV, cpu_time};

const OPS: usize = 1000;
const ROUNDS: usize = 7;
const CLIENT_ENV: &str = "LRO_FLOOR_CLIENT";
const ENDPOINT_ENV: &str = "LRO_FLOOR_ENDPOINT";
/// A file of JSON lines with the names to wait for (no operations are started): how
/// `benches/apicore/side_by_side.sh` runs the floor against its grpcio server.
const NAMES_ENV: &str = "LRO_FLOOR_NAMES";

fn main() {
    if std::env::var_os(SERVE_ENV).is_some() {
        support::serve_in_child();
        return;
    }
    if let (Ok(client), Ok(endpoint)) = (std::env::var(CLIENT_ENV), std::env::var(ENDPOINT_ENV)) {
        let cpu = run_client(&client, endpoint);
        println!("{}", cpu.as_micros());
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let clients = [
        "floor-poll",
        "ours-poll",
        "floor-wait",
        "ours-wait",
        "ours-wait-sized",
    ];
    let mut cpu: Vec<Vec<Duration>> = vec![Vec::new(); clients.len()];
    let mut rpcs: Vec<Vec<f64>> = vec![Vec::new(); clients.len()];
    for round in 0..ROUNDS {
        for (i, client) in clients.iter().enumerate() {
            let flags: &[&str] = if client.ends_with("poll") {
                &["FAKE_NO_LIST", "FAKE_NO_WAIT"]
            } else {
                &[]
            };
            let fake = FakeChild::start_with(Duration::ZERO, Duration::from_secs(8), None, flags);
            let output = Command::new(&exe)
                .env(CLIENT_ENV, client)
                .env(ENDPOINT_ENV, &fake.endpoint)
                .output()
                .expect("run the client");
            let (gets, waits) = fake.stop();
            let micros: u64 = String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .unwrap_or_else(|_| {
                    panic!("{client}: {}", String::from_utf8_lossy(&output.stderr))
                });
            cpu[i].push(Duration::from_micros(micros));
            rpcs[i].push((gets + waits) as f64 / OPS as f64);
            eprintln!("round {round}: {client}: {micros} µs CPU, {gets} Get, {waits} Wait");
        }
    }
    let median = |values: &mut Vec<Duration>| {
        values.sort();
        values[values.len() / 2]
    };
    let medians: Vec<Duration> = cpu.iter_mut().map(median).collect();
    for (i, client) in clients.iter().enumerate() {
        let mut r = rpcs[i].clone();
        r.sort_by(f64::total_cmp);
        let floor = medians[if client.ends_with("poll") { 0 } else { 2 }];
        println!(
            "{client}: CPU per completed wait {:.1} µs (median of {ROUNDS}: {:?}); {:.2}× the floor; \
             Get+Wait RPCs per operation {:.2}",
            medians[i].as_secs_f64() * 1e6 / OPS as f64,
            cpu[i],
            medians[i].as_secs_f64() / floor.as_secs_f64(),
            r[r.len() / 2],
        );
    }
}

/// Starts the operations (not measured), waits for them all; returns the CPU the waits took.
fn run_client(client: &str, endpoint: String) -> Duration {
    // One thread, as `lro` runs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // The client runs as a task, as `lro` runs its command (see its `main`).
    let client = client.to_owned();
    let task = async move {
        let client = client.as_str();
        let mut connector = Connector::new().endpoint(endpoint.clone());
        if client == "ours-wait-sized" {
            // The pool sized to what this server allows (no stream limit), as its docs
            // say: one connection, as the floor's.
            connector = connector.pool_config(PoolConfig {
                max_streams_per_connection: 100_000,
                ..PoolConfig::default()
            });
        }
        let ours = connector.connect().await.expect("connect");
        let ops = match std::env::var_os(NAMES_ENV) {
            // Another server's operations (the grpcio side-by-side), by name.
            Some(path) => std::fs::read_to_string(path)
                .expect("the names file")
                .lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .filter_map(|line| line["name"].as_str().map(str::to_owned))
                .map(|name| PurgeProductsOperation::from_name(ours.clone(), &name).expect("a name"))
                .collect(),
            None => support::start_purges(&ProductSearch::new(ours.clone()), OPS).await,
        };
        let names: Vec<String> = ops.iter().map(|op| op.name().to_owned()).collect();
        let floor = match client {
            "floor-poll" | "floor-wait" => {
                let channel = tonic::transport::Endpoint::from_shared(endpoint)
                    .expect("endpoint")
                    .connect()
                    .await
                    .expect("connect");
                Some(lro::operations_client::OperationsClient::new(channel))
            }
            _ => None,
        };
        let before = cpu_time();
        match (client, floor) {
            ("floor-poll", Some(floor)) => {
                let schedule = WaitOptions::default().poll_backoff;
                floor_waits(names, move |name| {
                    let mut floor = floor.clone();
                    async move {
                        // The start's answer said not done: a delay first, as ours.
                        let mut delays = schedule.delays();
                        loop {
                            tokio::time::sleep(delays.next().unwrap_or_default()).await;
                            let request = lro::GetOperationRequest { name: name.clone() };
                            let op = floor
                                .get_operation(request)
                                .await
                                .expect("get")
                                .into_inner();
                            if op.done {
                                return;
                            }
                        }
                    }
                })
                .await;
            }
            ("floor-wait", Some(floor)) => {
                floor_waits(names, move |name| {
                    let mut floor = floor.clone();
                    async move {
                        loop {
                            let request = lro::WaitOperationRequest {
                                name: name.clone(),
                                timeout: Some(prost_types::Duration {
                                    seconds: 60,
                                    nanos: 0,
                                }),
                            };
                            let op = floor
                                .wait_operation(request)
                                .await
                                .expect("wait")
                                .into_inner();
                            if op.done {
                                return;
                            }
                        }
                    }
                })
                .await;
            }
            // The starts alone: what a profile of a client subtracts.
            ("none", _) => {}
            _ => {
                let options = WaitOptions {
                    strategy: if client == "ours-poll" {
                        WaitStrategy::Poll
                    } else {
                        WaitStrategy::Auto
                    },
                    ..WaitOptions::default()
                };
                let mut finished = wait::wait_stream(ops, &options);
                while let Some((op, result)) = finished.next().await {
                    result.unwrap_or_else(|err| panic!("{}: {err}", op.name()));
                }
            }
        }
        cpu_time() - before
    };
    runtime
        .block_on(async { tokio::spawn(task).await })
        .expect("the client task")
}

/// A task per operation, each running `wait`; returns when all have.
async fn floor_waits<F, Fut>(names: Vec<String>, wait: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tasks: Vec<_> = names
        .into_iter()
        .map(|name| tokio::spawn(wait(name)))
        .collect();
    for task in tasks {
        task.await.expect("a floor wait");
    }
}
