//! Property tests: operation names, typed unpacking and JSON rendering never panic on
//! arbitrary input, and names round-trip.

use longrunning::proto::longrunning::operation::Result as RawResult;
use longrunning::vision::{PurgeOutcome, pb};
use longrunning::{OperationName, OperationResponse, Part, RawOperation, Snapshot};
use proptest::prelude::*;
use prost::Message;
use prost_types::Any;

/// A path segment that is valid in a name: visible ASCII without `/`.
fn segment() -> impl Strategy<Value = String> {
    "[!-.0-~]{1,20}"
}

/// One of the accepted name forms, from arbitrary parts.
fn valid_name() -> impl Strategy<Value = (String, Option<String>, Option<String>, String)> {
    (
        proptest::option::of(segment()),
        proptest::option::of(segment()),
        segment(),
    )
        .prop_map(|(project, location, id)| {
            let mut name = String::new();
            if let Some(p) = &project {
                name.push_str(&format!("projects/{p}/"));
            }
            if let Some(l) = &location {
                name.push_str(&format!("locations/{l}/"));
            }
            name.push_str(&format!("operations/{id}"));
            (name, project, location, id)
        })
}

/// A type URL: sometimes one of the types the decoders look for, often anything.
fn type_url() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("type.googleapis.com/google.cloud.vision.v1.BatchOperationMetadata".to_owned()),
        Just("type.googleapis.com/google.cloud.vision.v1.PurgeProductsRequest".to_owned()),
        Just("type.googleapis.com/google.protobuf.Empty".to_owned()),
        Just("type.googleapis.com/google.rpc.ErrorInfo".to_owned()),
        ".*",
    ]
}

fn any_payload() -> impl Strategy<Value = Any> {
    (type_url(), proptest::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(type_url, value)| Any { type_url, value })
}

proptest! {
    #[test]
    fn names_round_trip_with_their_parts((text, project, location, id) in valid_name()) {
        let name = OperationName::parse(&text).unwrap();
        prop_assert_eq!(name.as_str(), text.as_str());
        prop_assert_eq!(name.project(), project.as_deref());
        prop_assert_eq!(name.location(), location.as_deref());
        prop_assert_eq!(name.id(), Some(id.as_str()));
        prop_assert_eq!(OperationName::parse(name.as_str()).unwrap(), name);
    }

    #[test]
    fn parsing_any_string_never_panics(text in ".*") {
        if OperationName::parse(&text).is_ok() {
            prop_assert!(!text.is_empty());
            prop_assert!(!text.chars().any(|c| c.is_whitespace() || c.is_control()));
        }
    }

    #[test]
    fn unpacking_any_payload_never_panics(metadata in proptest::option::of(any_payload()),
                                          response in proptest::option::of(any_payload()),
                                          done in any::<bool>()) {
        let raw = RawOperation {
            name: "operations/x".into(),
            metadata,
            done,
            result: response.clone().map(RawResult::Response),
        };
        // Snapshots decode with no client.
        let purge: Snapshot<PurgeOutcome, pb::BatchOperationMetadata> = Snapshot::new(raw.clone());
        let _ = purge.metadata();
        let _ = purge.state();
        let _ = purge.result();
        let import: Snapshot<pb::ImportProductSetsResponse, pb::OperationMetadata> =
            Snapshot::new(raw);
        let _ = import.metadata();
        let _ = import.result();
        let _ = <() as OperationResponse>::from_response("operations/x", response.as_ref());
        if let Some(any) = &response {
            let _ = longrunning::unpack::<pb::PurgeProductsRequest>("operations/x", Part::Response, any);
            let _ = longrunning::ErrorDetail::decode(any);
        }
    }

    #[test]
    fn rendering_arbitrary_operation_bytes_as_json_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(json) = longrunning::json::operation_bytes_to_json(&bytes) {
            prop_assert!(json.is_object());
        }
    }

    #[test]
    fn rendering_operations_with_arbitrary_payloads_never_panics(metadata in proptest::option::of(any_payload()),
                                                                 response in proptest::option::of(any_payload())) {
        let raw = RawOperation {
            name: "operations/x".into(),
            metadata,
            done: true,
            result: response.map(RawResult::Response),
        };
        let json = longrunning::json::operation_to_json(&raw);
        prop_assert_eq!(&json["name"], "operations/x");
        // From the struct or from its bytes: the same JSON.
        let from_bytes = longrunning::json::operation_bytes_to_json(&raw.encode_to_vec());
        // As text: key order counts (a map compares equal in any order).
        prop_assert_eq!(Some(json.to_string()), from_bytes.ok().map(|j| j.to_string()));
    }

    #[test]
    fn operations_render_the_same_from_the_struct_and_from_their_bytes(
        named in any::<bool>(),
        done in any::<bool>(),
        metadata in proptest::option::of(any_payload()),
        failed in any::<bool>(),
        code in 0i32..20,
        details in proptest::collection::vec(any_payload(), 0..3),
        response in proptest::option::of(any_payload()),
    ) {
        let result = if failed {
            Some(RawResult::Error(longrunning::proto::rpc::Status {
                code,
                message: "failed".into(),
                details,
            }))
        } else {
            response.map(RawResult::Response)
        };
        let raw = RawOperation {
            name: if named { "projects/p/operations/x".into() } else { String::new() },
            metadata,
            done,
            result,
        };
        let json = longrunning::json::operation_to_json(&raw);
        let from_bytes = longrunning::json::operation_bytes_to_json(&raw.encode_to_vec());
        // As text: key order counts (a map compares equal in any order).
        prop_assert_eq!(Some(json.to_string()), from_bytes.ok().map(|j| j.to_string()));
    }
}
