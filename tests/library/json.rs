//! Proto3 JSON rendering: Google's documented purge operation, unknown `Any` types, and
//! parsing request files.

use longrunning::RawOperation;
use longrunning::json::{
    message_from_json, metadata_state, operation_bytes_to_json, operation_to_json,
};
use longrunning::proto::longrunning::operation::Result as RawResult;
use longrunning::proto::rpc;
use longrunning::vision::pb;
use prost::Name;
use prost_types::Any;
use serde_json::json;

use crate::support::{DOCUMENTED_PURGE, any, documented_purge};

#[test]
fn the_documented_purge_renders_exactly_as_google_shows_it() {
    let rendered = operation_to_json(&documented_purge());
    let documented: serde_json::Value = serde_json::from_str(DOCUMENTED_PURGE).unwrap();
    assert_eq!(rendered, documented);
    // Same keys in the same order, too.
    assert_eq!(
        serde_json::to_string_pretty(&rendered).unwrap(),
        DOCUMENTED_PURGE
    );
    assert_eq!(
        metadata_state(&documented_purge()).as_deref(),
        Some("SUCCESSFUL")
    );
}

#[test]
fn an_any_of_an_unknown_type_or_with_corrupt_bytes_prints_as_base64() {
    let op = RawOperation {
        name: "operations/x".into(),
        metadata: Some(Any {
            type_url: "type.googleapis.com/example.Unknown".into(),
            value: vec![1, 2, 3],
        }),
        done: true,
        result: Some(RawResult::Response(Any {
            type_url: pb::PurgeProductsRequest::type_url(),
            value: vec![0x0a, 0x7f],
        })),
    };
    assert_eq!(
        operation_to_json(&op),
        json!({
            "name": "operations/x",
            "metadata": {"@type": "type.googleapis.com/example.Unknown", "value": "AQID"},
            "done": true,
            "response": {"@type": "type.googleapis.com/google.cloud.vision.v1.PurgeProductsRequest", "value": "Cn8="}
        })
    );
    assert_eq!(metadata_state(&op), None);
}

#[test]
fn errors_render_with_their_details_and_well_known_types_nest_under_value() {
    let op = RawOperation {
        name: "operations/x".into(),
        metadata: Some(any(&prost_types::Duration {
            seconds: 90,
            nanos: 0,
        })),
        done: true,
        result: Some(RawResult::Error(rpc::Status {
            code: 5,
            message: "gone".into(),
            details: vec![
                any(&rpc::ResourceInfo {
                    resource_type: "operation".into(),
                    resource_name: "x".into(),
                    owner: String::new(),
                    description: String::new(),
                }),
                any(&rpc::RetryInfo {
                    retry_delay: Some(prost_types::Duration {
                        seconds: 3,
                        nanos: 500_000_000,
                    }),
                }),
            ],
        })),
    };
    assert_eq!(
        operation_to_json(&op),
        json!({
            "name": "operations/x",
            "metadata": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "90s"},
            "done": true,
            "error": {
                "code": 5,
                "message": "gone",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.ResourceInfo", "resourceType": "operation", "resourceName": "x"},
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3.500s"}
                ]
            }
        })
    );
}

#[test]
fn a_request_file_parses_into_its_message_and_bad_ones_are_errors() {
    let request: pb::AsyncBatchAnnotateFilesRequest = message_from_json(
        r#"{"requests": [{"inputConfig": {"gcsSource": {"uri": "gs://b/doc.pdf"}, "mimeType": "application/pdf"},
            "features": [{"type": "DOCUMENT_TEXT_DETECTION"}],
            "outputConfig": {"gcsDestination": {"uri": "gs://b/out/"}, "batchSize": 2}}],
            "parent": "projects/p/locations/us-west1"}"#,
    )
    .unwrap();
    assert_eq!(request.parent, "projects/p/locations/us-west1");
    assert_eq!(
        request.requests[0]
            .output_config
            .as_ref()
            .unwrap()
            .batch_size,
        2
    );
    assert_eq!(
        request.requests[0].features[0].r#type(),
        pb::feature::Type::DocumentTextDetection
    );
    for bad in [
        "",
        "[]",
        r#"{"requests": 5}"#,
        r#"{"nonsense": 1}"#,
        r#"{} trailing"#,
    ] {
        assert!(
            message_from_json::<pb::AsyncBatchAnnotateFilesRequest>(bad).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn arbitrary_bytes_are_an_error_or_json_never_a_panic() {
    assert!(operation_bytes_to_json(&[0xff, 0xff]).is_err());
    assert_eq!(operation_bytes_to_json(&[]).unwrap(), json!({}));
}

#[test]
fn deeply_nested_payloads_render_bounded_with_the_rest_elided() {
    use longrunning::RawOperation;
    use longrunning::json::{MAX_DEPTH, operation_to_json};
    use prost::Message as _;

    // 3,000 Anys, each holding the next, around a Duration: 185 KB that once overflowed the
    // stack of `lro get`.
    let mut inner = prost_types::Any::from_msg(&prost_types::Duration {
        seconds: 1,
        nanos: 0,
    })
    .unwrap();
    for _ in 0..3000 {
        inner = prost_types::Any {
            type_url: "type.googleapis.com/google.protobuf.Any".into(),
            value: inner.encode_to_vec(),
        };
    }
    let op = RawOperation {
        name: "operations/deep".into(),
        metadata: Some(inner),
        ..Default::default()
    };
    let json = operation_to_json(&op);
    // Walk down the expanded levels to the elided rest.
    let mut level = &json["metadata"];
    let mut depth = 0;
    while let Some(next) = level.get("value").filter(|v| v.is_object()) {
        level = next;
        depth += 1;
    }
    assert!(depth <= MAX_DEPTH, "{depth}");
    assert!(depth >= MAX_DEPTH - 2, "{depth}");
    assert!(
        level["value"].is_string(),
        "the rest is kept as base64: {level}"
    );
    assert!(serde_json::to_string_pretty(&json).unwrap().len() < 2_000_000);
}

#[test]
fn well_known_types_inside_any_render_as_googles_json_format_does() {
    use base64::Engine as _;
    use longrunning::json::operation_bytes_to_json;
    // Made by tests/fixtures/make_wkt_json.py with Google's protobuf `json_format`.
    let fixtures: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/wkt_json.json")).unwrap();
    for fixture in fixtures.as_array().unwrap() {
        let case = fixture["case"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(fixture["bytes"].as_str().unwrap())
            .unwrap();
        let ours = operation_bytes_to_json(&bytes).unwrap();
        assert_eq!(ours, fixture["json"], "{case}");
    }
}

#[test]
fn registered_descriptor_sets_expand_other_apis_anys() {
    use longrunning::RawOperation;
    use longrunning::json::{operation_to_json, register_descriptor_set};
    use prost::Message as _;
    use prost_types::{
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    };

    let file = FileDescriptorProto {
        name: Some("example/registered/v1/custom.proto".into()),
        package: Some("example.registered.v1".into()),
        message_type: vec![DescriptorProto {
            name: Some("Custom".into()),
            field: vec![FieldDescriptorProto {
                name: Some("note".into()),
                number: Some(1),
                label: Some(1),
                r#type: Some(9),
                json_name: Some("note".into()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        syntax: Some("proto3".into()),
        ..Default::default()
    };
    let op = RawOperation {
        name: "operations/custom".into(),
        metadata: Some(prost_types::Any {
            type_url: "type.googleapis.com/example.registered.v1.Custom".into(),
            value: vec![0x0a, 0x02, b'h', b'i'],
        }),
        ..Default::default()
    };
    assert_eq!(operation_to_json(&op)["metadata"]["value"], "CgJoaQ==");
    assert!(register_descriptor_set(b"\\xff not a descriptor set").is_err());
    let set = FileDescriptorSet { file: vec![file] }.encode_to_vec();
    register_descriptor_set(&set).unwrap();
    assert_eq!(
        operation_to_json(&op)["metadata"],
        serde_json::json!({
            "@type": "type.googleapis.com/example.registered.v1.Custom",
            "note": "hi"
        })
    );
}
