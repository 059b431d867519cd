#![no_main]
//! Typed unpacking of arbitrary operation bytes: never panics. Snapshots decode with no
//! client, so the target needs no runtime.

use libfuzzer_sys::fuzz_target;
use longrunning::vision::{PurgeOutcome, pb};
use longrunning::{RawOperation, Snapshot};
use prost::Message;

fuzz_target!(|bytes: &[u8]| {
    let Ok(raw) = RawOperation::decode(bytes) else {
        return;
    };
    let purge: Snapshot<PurgeOutcome, pb::BatchOperationMetadata> = Snapshot::new(raw.clone());
    let _ = purge.metadata();
    let _ = purge.state();
    let _ = purge.result();
    let files: Snapshot<pb::AsyncBatchAnnotateFilesResponse, pb::OperationMetadata> =
        Snapshot::new(raw);
    let _ = files.metadata();
    let _ = files.state();
    let _ = files.result();
});
