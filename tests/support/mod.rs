//! Fixtures shared by the test binaries.

#![allow(dead_code)]

use longrunning::RawOperation;
use longrunning::proto::longrunning::operation::Result as RawResult;
use longrunning::vision::pb;
use prost::{Message, Name};
use prost_types::Any;

/// The finished purge exactly as Google's "Getting an operation's status" page shows it.
pub const DOCUMENTED_PURGE: &str = r#"{
  "name": "locations/location-id/operations/operation-id",
  "metadata": {
    "@type": "type.googleapis.com/google.cloud.vision.v1.BatchOperationMetadata",
    "state": "SUCCESSFUL",
    "submitTime": "2019-09-04T15:58:39.131591882Z",
    "endTime": "2019-09-04T15:58:43.099020580Z"
  },
  "done": true,
  "response": {
    "@type": "type.googleapis.com/google.cloud.vision.v1.PurgeProductsRequest",
    "parent": "projects/project-id/locations/location-id",
    "productSetPurgeConfig": {
      "productSetId": "project-set-id"
    },
    "force": true
  }
}"#;

pub fn any<T: Message + Name>(message: &T) -> Any {
    Any {
        type_url: T::type_url(),
        value: message.encode_to_vec(),
    }
}

/// The documented purge as the server sends it.
pub fn documented_purge() -> RawOperation {
    RawOperation {
        name: "locations/location-id/operations/operation-id".into(),
        metadata: Some(any(&pb::BatchOperationMetadata {
            state: pb::batch_operation_metadata::State::Successful as i32,
            submit_time: Some(prost_types::Timestamp {
                seconds: 1567612719,
                nanos: 131591882,
            }),
            end_time: Some(prost_types::Timestamp {
                seconds: 1567612723,
                nanos: 99020580,
            }),
        })),
        done: true,
        result: Some(RawResult::Response(any(&pb::PurgeProductsRequest {
            parent: "projects/project-id/locations/location-id".into(),
            force: true,
            target: Some(pb::purge_products_request::Target::ProductSetPurgeConfig(
                pb::ProductSetPurgeConfig {
                    product_set_id: "project-set-id".into(),
                },
            )),
        }))),
    }
}
