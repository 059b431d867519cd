//! The Vision start calls `lro vision` (and `lro demo`) make: requests built from the command
//! line, sent, and the typed check of what their operations finish with.

use longrunning::vision::{ImageAnnotator, ProductSearch, pb};
use longrunning::{Error, OperationsClient, RawOperation};

use crate::args::{self, VisionCommand};

/// A Vision start call.
pub(crate) enum StartRequest {
    Import(pb::ImportProductSetsRequest),
    Purge(pb::PurgeProductsRequest),
    AnnotateFiles(pb::AsyncBatchAnnotateFilesRequest),
}

/// Checks a finished operation against the response type its start call declares: done
/// with no result, or with another type, is not a success.
pub(crate) type TypedCheck = fn(&RawOperation) -> Result<(), Error>;

fn check_response<R: longrunning::OperationResponse>(
    operation: &RawOperation,
) -> Result<(), Error> {
    longrunning::Snapshot::<R, ()>::new(operation.clone())
        .result()
        .map(|_| ())
}

impl StartRequest {
    /// The request a `vision` command describes (its parent checked).
    pub(crate) fn from_command(command: &VisionCommand) -> Result<Self, Error> {
        Ok(match command {
            VisionCommand::Import {
                parent, csv_uri, ..
            } => {
                args::check_parent(parent)?;
                import(parent, csv_uri)
            }
            VisionCommand::Purge {
                parent,
                product_set_id,
                force,
                ..
            } => {
                args::check_parent(parent)?;
                purge(parent, product_set_id.as_deref(), *force)
            }
            VisionCommand::AnnotateFiles { request_file, .. } => {
                let text = args::read_input(request_file)?;
                StartRequest::AnnotateFiles(longrunning::json::message_from_json(&text)?)
            }
        })
    }

    /// The check of the operation this request starts.
    pub(crate) fn typed_check(&self) -> TypedCheck {
        match self {
            StartRequest::Import(_) => check_response::<pb::ImportProductSetsResponse>,
            StartRequest::Purge(_) => check_response::<longrunning::vision::PurgeOutcome>,
            StartRequest::AnnotateFiles(_) => check_response::<pb::AsyncBatchAnnotateFilesResponse>,
        }
    }

    /// Sends it; the operation it started.
    pub(crate) async fn start(self, client: &OperationsClient) -> Result<RawOperation, Error> {
        Ok(match self {
            StartRequest::Import(request) => ProductSearch::new(client.clone())
                .import_product_sets(request)
                .await?
                .into_raw(),
            StartRequest::Purge(request) => ProductSearch::new(client.clone())
                .purge_products(request)
                .await?
                .into_raw(),
            StartRequest::AnnotateFiles(request) => ImageAnnotator::new(client.clone())
                .async_batch_annotate_files(request)
                .await?
                .into_raw(),
        })
    }
}

/// ImportProductSets from a CSV in Cloud Storage.
pub(crate) fn import(parent: &str, csv_uri: &str) -> StartRequest {
    StartRequest::Import(pb::ImportProductSetsRequest {
        parent: parent.to_owned(),
        input_config: Some(pb::ImportProductSetsInputConfig {
            source: Some(pb::import_product_sets_input_config::Source::GcsSource(
                pb::ImportProductSetsGcsSource {
                    csv_file_uri: csv_uri.to_owned(),
                },
            )),
        }),
    })
}

/// PurgeProducts of a product set, or (with `None`) the orphan products.
pub(crate) fn purge(parent: &str, product_set_id: Option<&str>, force: bool) -> StartRequest {
    let target = match product_set_id {
        Some(id) => {
            pb::purge_products_request::Target::ProductSetPurgeConfig(pb::ProductSetPurgeConfig {
                product_set_id: id.to_owned(),
            })
        }
        None => pb::purge_products_request::Target::DeleteOrphanProducts(true),
    };
    StartRequest::Purge(pb::PurgeProductsRequest {
        parent: parent.to_owned(),
        force,
        target: Some(target),
    })
}
