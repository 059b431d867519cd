//! Overhead over hand-written tonic: `cargo bench --features testing --bench overhead`.
//!
//! 1. GetOperation round trips: the bare tonic-generated client against `OperationsClient`
//!    (routing header, retry wrapper, auth layer with a static token, typed metadata
//!    decode), on the same channel to the same in-process server in the same run. Batches of
//!    the two alternate, and the ratio reported is the median of the per-pair ratios, so
//!    that drift in the machine's speed falls on both alike.
//! 2. Decoding a large ImportProductSetsResponse (1,000 statuses): `Operation::result()`
//!    (type-URL check, then decode) against `prost::Message::decode` of the same bytes.

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use longrunning::proto::longrunning::GetOperationRequest;
use longrunning::proto::longrunning::operation::Result as RawResult;
use longrunning::proto::longrunning::operations_client::OperationsClient as BareClient;
use longrunning::proto::rpc;
use longrunning::vision::{ImportProductSetsOperation, pb};
use longrunning::{OperationsClient, RawOperation};
use prost::{Message, Name};

const NAME: &str = support::OVERHEAD_OP;

fn main() {
    if std::env::var_os(support::SERVE_ENV).is_some() {
        support::serve_in_child();
        return;
    }
    round_trips();
    large_decode();
}

fn round_trips() {
    const BATCH: usize = 500;
    const PAIRS: usize = 30;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (bare_times, ours_times) = runtime.block_on(async {
        let (fake, mut bare, ours) = support::overhead_pair().await;

        async fn bare_batch(client: &mut BareClient<tonic::transport::Channel>) -> Duration {
            let start = Instant::now();
            for _ in 0..BATCH {
                let request = GetOperationRequest { name: NAME.into() };
                let op = client.get_operation(request).await.expect("get");
                black_box(op.into_inner());
            }
            start.elapsed()
        }
        async fn our_batch(client: &OperationsClient) -> Duration {
            let start = Instant::now();
            for _ in 0..BATCH {
                let op: ImportProductSetsOperation = ImportProductSetsOperation::from_raw(
                    client.clone(),
                    client.get(NAME).await.expect("get"),
                );
                black_box(op.metadata().expect("metadata"));
            }
            start.elapsed()
        }
        // Warm both paths up.
        bare_batch(&mut bare).await;
        our_batch(&ours).await;
        let mut bare_times = Vec::new();
        let mut ours_times = Vec::new();
        for pair in 0..PAIRS {
            // Alternate which goes first.
            if pair % 2 == 0 {
                bare_times.push(bare_batch(&mut bare).await);
                ours_times.push(our_batch(&ours).await);
            } else {
                ours_times.push(our_batch(&ours).await);
                bare_times.push(bare_batch(&mut bare).await);
            }
        }
        fake.shutdown().await;
        (bare_times, ours_times)
    });
    let mut ratios: Vec<f64> = bare_times
        .iter()
        .zip(&ours_times)
        .map(|(bare, ours)| ours.as_secs_f64() / bare.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let per_call = |times: &[Duration]| {
        let (p50, _, _) = support::percentiles(times.to_vec());
        p50 / BATCH as u32
    };
    println!(
        "GetOperation round trip: bare tonic {:?}, OperationsClient {:?} per call (medians of {PAIRS} batches of {BATCH}); \
         ratio median {:.3}x (min {:.3}x, max {:.3}x)",
        per_call(&bare_times),
        per_call(&ours_times),
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
    );
}

fn large_decode() {
    const ROUNDS: u32 = 2000;
    let response = pb::ImportProductSetsResponse {
        reference_images: Vec::new(),
        statuses: (0..1000)
            .map(|i| rpc::Status {
                code: if i % 10 == 0 { 3 } else { 0 },
                message: format!("line {i}: product set row imported"),
                details: Vec::new(),
            })
            .collect(),
    };
    let bytes = response.encode_to_vec();
    let raw = RawOperation {
        name: NAME.into(),
        metadata: None,
        done: true,
        result: Some(RawResult::Response(prost_types::Any {
            type_url: pb::ImportProductSetsResponse::type_url(),
            value: bytes.clone(),
        })),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let op = runtime.block_on(async {
        // A channel that is never used: decoding makes no RPC.
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        ImportProductSetsOperation::from_raw(OperationsClient::new(channel), raw)
    });
    let time = |f: &dyn Fn()| {
        let start = Instant::now();
        for _ in 0..ROUNDS {
            f();
        }
        start.elapsed() / ROUNDS
    };
    // Interleave and keep the best of five, each way.
    let mut prost_best = Duration::MAX;
    let mut typed_best = Duration::MAX;
    for _ in 0..5 {
        prost_best = prost_best.min(time(&|| {
            black_box(
                pb::ImportProductSetsResponse::decode(black_box(bytes.as_slice())).expect("decode"),
            );
        }));
        typed_best = typed_best.min(time(&|| {
            black_box(black_box(&op).result().expect("result"));
        }));
    }
    println!(
        "decode ImportProductSetsResponse ({} bytes, 1,000 statuses): prost {prost_best:?}, Operation::result {typed_best:?}; ratio {:.3}x",
        bytes.len(),
        typed_best.as_secs_f64() / prost_best.as_secs_f64()
    );
}
