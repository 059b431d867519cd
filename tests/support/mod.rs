//! Fixtures shared by the test binaries.

#![allow(dead_code)]

use longrunning::RawOperation;
use longrunning::proto::longrunning::operation::Result as RawResult;
use longrunning::vision::pb;
use prost::{Message, Name};
use prost_types::Any;

/// The finished purge exactly as Google's "Getting an operation's status" page shows it.
pub(crate) const DOCUMENTED_PURGE: &str = r#"{
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

pub(crate) fn any<T: Message + Name>(message: &T) -> Any {
    Any {
        type_url: T::type_url(),
        value: message.encode_to_vec(),
    }
}

/// The documented purge as the server sends it.
pub(crate) fn documented_purge() -> RawOperation {
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

/// A ListOperations server for the listing tests: every page holds `per_page` new
/// operations and names `token` (or, if empty, a new token each time) as the next one.
#[derive(Clone)]
pub(crate) struct Pager {
    pub per_page: usize,
    pub repeat_token: Option<&'static str>,
    pub calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[tonic::async_trait]
impl longrunning::proto::longrunning::operations_server::Operations for Pager {
    async fn list_operations(
        &self,
        _request: tonic::Request<longrunning::proto::longrunning::ListOperationsRequest>,
    ) -> Result<
        tonic::Response<longrunning::proto::longrunning::ListOperationsResponse>,
        tonic::Status,
    > {
        let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let operations = (0..self.per_page)
            .map(|i| longrunning::RawOperation {
                name: format!("operations/p{call}-{i}"),
                ..Default::default()
            })
            .collect();
        let next_page_token = match self.repeat_token {
            Some(token) => token.to_owned(),
            None => format!("page{}", call + 1),
        };
        Ok(tonic::Response::new(
            longrunning::proto::longrunning::ListOperationsResponse {
                operations,
                next_page_token,
                unreachable: Vec::new(),
            },
        ))
    }
}

/// Serves `pager` on loopback until the returned sender is dropped.
pub(crate) async fn serve_pager(pager: Pager) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder().add_service(
        longrunning::proto::longrunning::operations_server::OperationsServer::new(pager),
    );
    tokio::spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let _ = server
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            })
            .await;
    });
    (endpoint, stop)
}
