//! Client overhead in instructions (deterministic, unlike wall time on a shared VM):
//! `cargo bench --features testing --bench instructions` (needs valgrind).
//!
//! Each variant runs N = 1,000 and N = 3,000 GetOperation round trips against the in-process
//! fake under `valgrind --tool=callgrind`; the difference divided by 2,000 is the cost of one
//! call, client and server together, with start-up cancelled out.
//!
//! - `bare`: the tonic-generated client, no extra headers.
//! - `headers`: the tonic-generated client sending the headers `OperationsClient` sends
//!   with a GetOperation: routing header, `authorization` (never indexed),
//!   `x-goog-api-client`.
//! - `ours`: `OperationsClient` with the auth layer (static token), then typed metadata
//!   decode into `BatchOperationMetadata`.
//! - `adaptive`: `ours` under the adaptive rate limit a `Connector` adds when no rate is set
//!   (no limit in force: the cost of watching for quota errors).

mod support;

use std::hint::black_box;
use std::process::Command;

use longrunning::proto::longrunning::GetOperationRequest;
use longrunning::vision::ImportProductSetsOperation;

const NAME: &str = support::OVERHEAD_OP;
const VARIANTS: [&str; 4] = ["bare", "headers", "ours", "adaptive"];

fn main() {
    if let (Ok(variant), Ok(n)) = (std::env::var("LRO_VARIANT"), std::env::var("LRO_CALLS")) {
        run(&variant, n.parse().unwrap_or(1000));
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let mut per_call = Vec::new();
    for variant in VARIANTS {
        let mut counts = Vec::new();
        for calls in [1000u64, 3000] {
            let output = Command::new("valgrind")
                .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
                .arg(&exe)
                .env("LRO_VARIANT", variant)
                .env("LRO_CALLS", calls.to_string())
                .output();
            let Ok(output) = output else {
                println!("valgrind is not installed: apt-get install valgrind");
                return;
            };
            let stderr = String::from_utf8_lossy(&output.stderr);
            let collected = stderr
                .lines()
                .find_map(|l| l.split("Collected :").nth(1))
                .and_then(|n| n.trim().replace(',', "").parse::<u64>().ok());
            match collected {
                Some(n) => counts.push(n),
                None => {
                    println!("no count from callgrind for {variant}:\n{stderr}");
                    return;
                }
            }
        }
        per_call.push((variant, (counts[1] - counts[0]) as f64 / 2000.0));
    }
    let bare = per_call[0].1;
    let headers = per_call[1].1;
    for (variant, cost) in per_call {
        println!(
            "{variant:>8}: {cost:>9.0} instructions per GetOperation round trip; {:.3}x bare, {:.3}x same headers",
            cost / bare,
            cost / headers
        );
    }
}

fn run(variant: &str, calls: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let rate = (variant == "adaptive").then(longrunning::transport::RateLimitLayer::adaptive);
        let (fake, mut bare, ours) = support::overhead_pair_with(rate).await;
        for _ in 0..calls {
            match variant {
                "bare" => {
                    let request = GetOperationRequest { name: NAME.into() };
                    black_box(bare.get_operation(request).await.expect("get"));
                }
                "headers" => {
                    let mut request =
                        tonic::Request::new(GetOperationRequest { name: NAME.into() });
                    let metadata = request.metadata_mut();
                    let routing = "name=projects%2Fp%2Flocations%2Fus-west1%2Foperations%2Fop1";
                    metadata.insert("x-goog-request-params", routing.parse().expect("ascii"));
                    metadata.insert(
                        "x-goog-api-client",
                        "gl-rust longrunning/0.1.0 grpc/tonic"
                            .parse()
                            .expect("ascii"),
                    );
                    let mut token: tonic::metadata::MetadataValue<_> =
                        "Bearer ya29.benchmark-token".parse().expect("ascii");
                    token.set_sensitive(true);
                    metadata.insert("authorization", token);
                    black_box(bare.get_operation(request).await.expect("get"));
                }
                _ => {
                    let raw = ours.get(NAME).await.expect("get");
                    let op = ImportProductSetsOperation::from_raw(ours.clone(), raw);
                    black_box(op.metadata().expect("metadata"));
                }
            }
        }
        fake.shutdown().await;
    });
}
