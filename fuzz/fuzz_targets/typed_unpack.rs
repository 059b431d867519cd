#![no_main]
//! Typed unpacking of arbitrary operation bytes: never panics.

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use longrunning::vision::{PurgeOutcome, pb};
use longrunning::{Operation, OperationsClient, RawOperation};
use prost::Message;

/// One client for the whole run: each lazy channel spawns a worker task on a runtime that
/// is never driven, so making one per input would pile them up until memory runs out.
fn client() -> OperationsClient {
    static CLIENT: OnceLock<(tokio::runtime::Runtime, OperationsClient)> = OnceLock::new();
    let (_, client) = CLIENT.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let client = {
            let _guard = runtime.enter();
            let channel =
                tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
            OperationsClient::new(channel)
        };
        (runtime, client)
    });
    client.clone()
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(raw) = RawOperation::decode(bytes) else {
        return;
    };
    let client = client();
    let purge: Operation<PurgeOutcome, pb::BatchOperationMetadata> =
        Operation::from_raw(client.clone(), raw.clone());
    let _ = purge.metadata();
    let _ = purge.state();
    let _ = purge.result();
    let files: Operation<pb::AsyncBatchAnnotateFilesResponse, pb::OperationMetadata> =
        Operation::from_raw(client, raw);
    let _ = files.metadata();
    let _ = files.state();
    let _ = files.result();
});
