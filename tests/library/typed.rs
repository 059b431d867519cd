//! Typed decoding of operations: metadata, responses, errors and their details, and every
//! kind of bad payload.

use longrunning::proto::longrunning::operation::Result as RawResult;
use longrunning::proto::rpc;
use longrunning::vision::{AnnotationState, BatchState, PurgeOutcome, pb};
use longrunning::{Code, Error, ErrorDetail, Part, RawOperation, Snapshot};
use prost::{Message, Name};
use prost_types::Any;

const NAME: &str = "locations/us-west1/operations/op1";

/// What the Vision handles hold: snapshots decode with no client and no runtime.
type PurgeProductsOperation = Snapshot<PurgeOutcome, pb::BatchOperationMetadata>;
type ImportProductSetsOperation =
    Snapshot<pb::ImportProductSetsResponse, pb::BatchOperationMetadata>;
type AsyncBatchAnnotateFilesOperation =
    Snapshot<pb::AsyncBatchAnnotateFilesResponse, pb::OperationMetadata>;

fn any<T: Message + Name>(message: &T) -> Any {
    Any {
        type_url: T::type_url(),
        value: message.encode_to_vec(),
    }
}

fn op<R, M>(raw: RawOperation) -> Snapshot<R, M> {
    Snapshot::new(raw)
}

fn done_with(result: Option<RawResult>) -> RawOperation {
    RawOperation {
        name: NAME.into(),
        metadata: None,
        done: true,
        result,
    }
}

fn batch_metadata(state: i32) -> Any {
    any(&pb::BatchOperationMetadata {
        state,
        submit_time: Some(prost_types::Timestamp {
            seconds: 1567612719,
            nanos: 131591882,
        }),
        end_time: None,
    })
}

#[test]
fn metadata_decodes_the_expected_type() {
    let raw = RawOperation {
        name: NAME.into(),
        metadata: Some(batch_metadata(BatchState::Processing as i32)),
        ..Default::default()
    };
    let op: PurgeProductsOperation = op(raw);
    let metadata = op.metadata().unwrap().unwrap();
    assert_eq!(metadata.state(), BatchState::Processing);
    assert_eq!(metadata.submit_time.unwrap().nanos, 131591882);
    assert_eq!(op.state().unwrap(), Some(BatchState::Processing));
    assert!(!op.done());
    assert!(matches!(op.result(), Err(Error::NotDone { name }) if name == NAME));
}

#[test]
fn missing_metadata_is_none_not_an_error() {
    let op: PurgeProductsOperation = op(done_with(None));
    assert_eq!(op.metadata().unwrap(), None);
    assert_eq!(op.state().unwrap(), None);
}

#[test]
fn metadata_of_the_wrong_type_names_expected_and_actual() {
    let raw = RawOperation {
        name: NAME.into(),
        metadata: Some(any(&pb::OperationMetadata::default())),
        ..Default::default()
    };
    let op: PurgeProductsOperation = op(raw);
    let err = op.metadata().unwrap_err();
    let Error::UnexpectedType {
        part,
        expected,
        actual,
        name,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*part, Part::Metadata);
    assert_eq!(expected, "google.cloud.vision.v1.BatchOperationMetadata");
    assert_eq!(
        actual,
        "type.googleapis.com/google.cloud.vision.v1.OperationMetadata"
    );
    assert_eq!(name, NAME);
    assert!(op.state().is_err());
}

#[test]
fn corrupt_metadata_bytes_are_an_error() {
    let raw = RawOperation {
        name: NAME.into(),
        metadata: Some(Any {
            type_url: pb::BatchOperationMetadata::type_url(),
            // Field 1 as a length-delimited value that runs past the end.
            value: vec![0x0a, 0x05, 0x01],
        }),
        ..Default::default()
    };
    let op: PurgeProductsOperation = op(raw);
    let err = op.metadata().unwrap_err();
    assert!(
        matches!(
            err,
            Error::CorruptPayload {
                part: Part::Metadata,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn unknown_state_numbers_are_a_typed_error() {
    let raw = RawOperation {
        name: NAME.into(),
        metadata: Some(batch_metadata(42)),
        ..Default::default()
    };
    let op: PurgeProductsOperation = op(raw);
    let err = op.state().unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnknownEnumValue {
                field: "state",
                value: 42,
                ..
            }
        ),
        "{err:?}"
    );
    let raw = RawOperation {
        name: NAME.into(),
        metadata: Some(any(&pb::OperationMetadata {
            state: 9,
            ..Default::default()
        })),
        ..Default::default()
    };
    let annotate: AsyncBatchAnnotateFilesOperation = op_from(raw.clone());
    assert!(matches!(
        annotate.state(),
        Err(Error::UnknownEnumValue { value: 9, .. })
    ));
    let raw = RawOperation {
        metadata: Some(any(&pb::OperationMetadata {
            state: AnnotationState::Running as i32,
            ..Default::default()
        })),
        ..raw
    };
    let annotate: AsyncBatchAnnotateFilesOperation = op_from(raw);
    assert_eq!(annotate.state().unwrap(), Some(AnnotationState::Running));
}

fn op_from<R, M>(raw: RawOperation) -> Snapshot<R, M> {
    op(raw)
}

#[test]
fn response_decodes_the_expected_type() {
    let response = pb::ImportProductSetsResponse {
        reference_images: vec![pb::ReferenceImage {
            name: "ri".into(),
            uri: "gs://b/i.jpg".into(),
            bounding_polys: Vec::new(),
        }],
        statuses: vec![rpc::Status::default()],
    };
    let raw = done_with(Some(RawResult::Response(any(&response))));
    let op: ImportProductSetsOperation = op(raw);
    assert_eq!(op.result().unwrap(), response);
}

#[test]
fn any_type_url_prefix_up_to_the_last_slash_is_accepted() {
    let response = pb::ImportProductSetsResponse::default();
    for prefix in ["type.googleapis.com/", "example.com/types/", "/"] {
        let raw = done_with(Some(RawResult::Response(Any {
            type_url: format!("{prefix}google.cloud.vision.v1.ImportProductSetsResponse"),
            value: response.encode_to_vec(),
        })));
        let op: ImportProductSetsOperation = op(raw);
        assert_eq!(op.result().unwrap(), response, "{prefix}");
    }
    for type_url in [
        "google.cloud.vision.v1.ImportProductSetsResponse",
        "type.googleapis.com/google.cloud.vision.v1.ImportProductSetsResponseX",
        "type.googleapis.com/",
        "",
    ] {
        let raw = done_with(Some(RawResult::Response(Any {
            type_url: type_url.into(),
            value: Vec::new(),
        })));
        let op: ImportProductSetsOperation = op(raw);
        let err = op.result().unwrap_err();
        assert!(
            matches!(&err, Error::UnexpectedType { part: Part::Response, actual, .. } if actual == type_url),
            "{type_url}: {err:?}"
        );
    }
}

#[test]
fn corrupt_response_bytes_are_an_error() {
    let raw = done_with(Some(RawResult::Response(Any {
        type_url: pb::ImportProductSetsResponse::type_url(),
        value: vec![0xff, 0xff, 0xff],
    })));
    let op: ImportProductSetsOperation = op(raw);
    let err = op.result().unwrap_err();
    assert!(
        matches!(
            err,
            Error::CorruptPayload {
                part: Part::Response,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn done_without_result_is_success_only_for_empty() {
    let op: ImportProductSetsOperation = op(done_with(None));
    let err = op.result().unwrap_err();
    let Error::MissingResult { expected, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(expected, "google.cloud.vision.v1.ImportProductSetsResponse");

    let empty: Snapshot<(), pb::BatchOperationMetadata> = op_from(done_with(None));
    empty.result().unwrap();
    let packed_empty: Snapshot<(), pb::BatchOperationMetadata> =
        op_from(done_with(Some(RawResult::Response(any(&())))));
    packed_empty.result().unwrap();
}

#[test]
fn purge_accepts_empty_the_echoed_request_or_nothing() {
    let request = pb::PurgeProductsRequest {
        parent: "projects/project-id/locations/location-id".into(),
        force: true,
        target: Some(pb::purge_products_request::Target::ProductSetPurgeConfig(
            pb::ProductSetPurgeConfig {
                product_set_id: "project-set-id".into(),
            },
        )),
    };
    let cases = [
        (
            Some(RawResult::Response(any(&request))),
            Some(request.clone()),
        ),
        (Some(RawResult::Response(any(&()))), None),
        (None, None),
    ];
    for (result, echoed) in cases {
        let op: PurgeProductsOperation = op(done_with(result));
        assert_eq!(
            op.result().unwrap(),
            PurgeOutcome {
                echoed_request: echoed
            }
        );
    }
    let wrong: PurgeProductsOperation = op(done_with(Some(RawResult::Response(any(
        &pb::ImportProductSetsResponse::default(),
    )))));
    let err = wrong.result().unwrap_err();
    let Error::UnexpectedType { expected, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(
        expected,
        "google.protobuf.Empty or google.cloud.vision.v1.PurgeProductsRequest"
    );
    let corrupt: PurgeProductsOperation = op(done_with(Some(RawResult::Response(Any {
        type_url: pb::PurgeProductsRequest::type_url(),
        value: vec![0x0a, 0x09],
    }))));
    assert!(matches!(
        corrupt.result(),
        Err(Error::CorruptPayload { .. })
    ));
}

/// An error status carrying one detail of every kind `google/rpc/error_details.proto` has,
/// one of an unknown type, and one whose bytes are corrupt.
fn status_with_every_detail(code: i32) -> rpc::Status {
    rpc::Status {
        code,
        message: "bad things".into(),
        details: vec![
            any(&rpc::BadRequest {
                field_violations: vec![rpc::bad_request::FieldViolation {
                    field: "parent".into(),
                    description: "missing".into(),
                    ..Default::default()
                }],
            }),
            any(&rpc::ErrorInfo {
                reason: "QUOTA".into(),
                domain: "vision.googleapis.com".into(),
                metadata: Default::default(),
            }),
            any(&rpc::RetryInfo {
                retry_delay: Some(prost_types::Duration {
                    seconds: 3,
                    nanos: 500_000_000,
                }),
            }),
            any(&rpc::QuotaFailure::default()),
            any(&rpc::PreconditionFailure::default()),
            any(&rpc::ResourceInfo {
                resource_name: NAME.into(),
                ..Default::default()
            }),
            any(&rpc::RequestInfo::default()),
            any(&rpc::Help::default()),
            any(&rpc::LocalizedMessage {
                locale: "ko-KR".into(),
                message: "실패".into(),
            }),
            any(&rpc::DebugInfo::default()),
            Any {
                type_url: "type.googleapis.com/example.Custom".into(),
                value: vec![1, 2, 3],
            },
            Any {
                type_url: rpc::ErrorInfo::type_url(),
                value: vec![0x0a, 0x7f],
            },
        ],
    }
}

#[test]
fn a_failed_operation_is_a_typed_error_with_decoded_details() {
    let raw = done_with(Some(RawResult::Error(status_with_every_detail(
        Code::ResourceExhausted as i32,
    ))));
    let op: ImportProductSetsOperation = op(raw);
    assert!(!op.is_cancelled());
    let err = op.result().unwrap_err();
    let Error::OperationFailed { name, status } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(name, NAME);
    assert_eq!(status.code, Code::ResourceExhausted);
    assert_eq!(status.message, "bad things");
    assert_eq!(err.code(), Some(Code::ResourceExhausted));
    let kinds: Vec<String> = status.details.iter().map(|d| d.type_name()).collect();
    assert_eq!(
        kinds,
        [
            "google.rpc.BadRequest",
            "google.rpc.ErrorInfo",
            "google.rpc.RetryInfo",
            "google.rpc.QuotaFailure",
            "google.rpc.PreconditionFailure",
            "google.rpc.ResourceInfo",
            "google.rpc.RequestInfo",
            "google.rpc.Help",
            "google.rpc.LocalizedMessage",
            "google.rpc.DebugInfo",
            "type.googleapis.com/example.Custom",
            "type.googleapis.com/google.rpc.ErrorInfo",
        ]
    );
    assert!(
        matches!(&status.details[0], ErrorDetail::BadRequest(b) if b.field_violations[0].field == "parent")
    );
    assert!(matches!(&status.details[8], ErrorDetail::LocalizedMessage(m) if m.message == "실패"));
    assert!(matches!(&status.details[10], ErrorDetail::Other(a) if a.value == [1, 2, 3]));
    // A detail whose bytes do not decode is kept as sent.
    assert!(matches!(&status.details[11], ErrorDetail::Other(_)));
    assert_eq!(
        status.retry_delay(),
        Some(std::time::Duration::from_millis(3500))
    );
    assert!(
        err.to_string().contains("RESOURCE_EXHAUSTED: bad things"),
        "{err}"
    );
}

#[test]
fn a_cancelled_operation_is_its_own_error() {
    let raw = done_with(Some(RawResult::Error(rpc::Status {
        code: 1,
        message: "Operation cancelled.".into(),
        details: Vec::new(),
    })));
    let op: PurgeProductsOperation = op(raw);
    assert!(op.is_cancelled());
    let err = op.result().unwrap_err();
    assert!(matches!(err, Error::OperationCancelled { .. }), "{err:?}");
    assert_eq!(err.code(), Some(Code::Cancelled));
}

#[test]
fn an_unknown_status_code_is_unknown_and_says_which() {
    let raw = done_with(Some(RawResult::Error(rpc::Status {
        code: 99,
        message: "from the future".into(),
        details: Vec::new(),
    })));
    let op: PurgeProductsOperation = op(raw);
    let err = op.result().unwrap_err();
    let status = err.status().unwrap();
    assert_eq!(status.code, Code::Unknown);
    assert_eq!(
        status.message,
        "unrecognized status code 99: from the future"
    );
}

#[test]
fn tonic_statuses_decode_their_details_trailer() {
    let proto = status_with_every_detail(Code::Unavailable as i32);
    let status =
        tonic::Status::with_details(Code::Unavailable, "try later", proto.encode_to_vec().into());
    let decoded = longrunning::Status::from_tonic(&status);
    assert_eq!(decoded.code, Code::Unavailable);
    assert_eq!(decoded.details.len(), 12);
    assert_eq!(
        decoded.retry_delay(),
        Some(std::time::Duration::from_millis(3500))
    );
    // Corrupt trailers give a status without details, not a failure.
    let garbled = tonic::Status::with_details(Code::Internal, "x", vec![0xff, 0x01].into());
    assert!(longrunning::Status::from_tonic(&garbled).details.is_empty());
}

#[test]
fn a_retry_delay_out_of_range_is_ignored() {
    let status = longrunning::Status::from_proto(&rpc::Status {
        code: 14,
        message: String::new(),
        details: vec![any(&rpc::RetryInfo {
            retry_delay: Some(prost_types::Duration {
                seconds: -5,
                nanos: 0,
            }),
        })],
    });
    assert_eq!(status.retry_delay(), None);
}
