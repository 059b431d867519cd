//! Google Cloud Vision v1's long-running operations, typed end to end.
//!
//! [`ProductSearch`] starts bulk imports and purges, [`ImageAnnotator`] starts async batch
//! annotation; each returns a typed [`Operation`] handle. A handle whose name was saved can
//! be had again with [`Operation::resume`], e.g.
//! `PurgeProductsOperation::resume(&client, name)`.
//!
//! | start call | handle |
//! |---|---|
//! | [`ProductSearch::import_product_sets`] | [`ImportProductSetsOperation`] |
//! | [`ProductSearch::purge_products`] | [`PurgeProductsOperation`] |
//! | [`ImageAnnotator::async_batch_annotate_files`] | [`AsyncBatchAnnotateFilesOperation`] |
//! | [`ImageAnnotator::async_batch_annotate_images`] | [`AsyncBatchAnnotateImagesOperation`] |

use prost::Name;
use prost_types::Any;

use crate::any::is_type;
use crate::client::{OperationsClient, StartCall};
use crate::error::{Error, Part, Result};
use crate::operation::{Operation, OperationResponse, Snapshot, unpack};
pub use crate::proto::vision as pb;
use crate::rpc::Method;
use crate::transport::RetryPolicy;

/// The state of a Vision batch operation (`BatchOperationMetadata.state`).
pub use crate::proto::vision::batch_operation_metadata::State as BatchState;
/// The state of an async annotation (`OperationMetadata.state`).
pub use crate::proto::vision::operation_metadata::State as AnnotationState;

/// ImportProductSets: reference images imported, and a status per CSV line.
pub type ImportProductSetsOperation =
    Operation<pb::ImportProductSetsResponse, pb::BatchOperationMetadata>;
/// PurgeProducts: see [`PurgeOutcome`] for what its response may be.
pub type PurgeProductsOperation = Operation<PurgeOutcome, pb::BatchOperationMetadata>;
/// AsyncBatchAnnotateFiles.
pub type AsyncBatchAnnotateFilesOperation =
    Operation<pb::AsyncBatchAnnotateFilesResponse, pb::OperationMetadata>;
/// AsyncBatchAnnotateImages.
pub type AsyncBatchAnnotateImagesOperation =
    Operation<pb::AsyncBatchAnnotateImagesResponse, pb::OperationMetadata>;

/// The result of a successful PurgeProducts.
///
/// PurgeProducts is declared to return `google.protobuf.Empty`, but Google's documentation
/// shows the request echoed back as the response. Both are accepted, and so is a finished
/// operation with no response at all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PurgeOutcome {
    /// The request, when the server echoed it as the response.
    pub echoed_request: Option<pb::PurgeProductsRequest>,
}

impl OperationResponse for PurgeOutcome {
    fn expected_type() -> String {
        format!(
            "{} or {}",
            <() as Name>::full_name(),
            pb::PurgeProductsRequest::full_name()
        )
    }

    fn from_response(name: &str, response: Option<&Any>) -> Result<Self> {
        match response {
            None => Ok(PurgeOutcome::default()),
            Some(any) if is_type::<()>(any) => Ok(PurgeOutcome::default()),
            Some(any) if is_type::<pb::PurgeProductsRequest>(any) => Ok(PurgeOutcome {
                echoed_request: Some(unpack(name, Part::Response, any)?),
            }),
            Some(any) => Err(Error::UnexpectedType {
                name: name.to_owned(),
                part: Part::Response,
                expected: Self::expected_type(),
                actual: any.type_url.clone(),
            }),
        }
    }
}

impl<R> Snapshot<R, pb::BatchOperationMetadata> {
    /// The batch state of the last snapshot (`None` without metadata). A state number the
    /// vendored protos do not know is [`Error::UnknownEnumValue`].
    pub fn state(&self) -> Result<Option<BatchState>> {
        let Some(metadata) = self.metadata()? else {
            return Ok(None);
        };
        BatchState::try_from(metadata.state)
            .map(Some)
            .map_err(|_| self.unknown_state(metadata.state))
    }
}

impl<R> Snapshot<R, pb::OperationMetadata> {
    /// The annotation state of the last snapshot (`None` without metadata). A state number
    /// the vendored protos do not know is [`Error::UnknownEnumValue`].
    pub fn state(&self) -> Result<Option<AnnotationState>> {
        let Some(metadata) = self.metadata()? else {
            return Ok(None);
        };
        AnnotationState::try_from(metadata.state)
            .map(Some)
            .map_err(|_| self.unknown_state(metadata.state))
    }
}

impl<R, M> Snapshot<R, M> {
    fn unknown_state(&self, value: i32) -> Error {
        Error::UnknownEnumValue {
            name: self.name().to_owned(),
            part: Part::Metadata,
            field: "state",
            value,
        }
    }
}

/// Starts a Vision operation: the request's `parent` routes it; Google's published
/// timeouts and retries for the method apply ([`RetryPolicy::vision_start`]).
async fn start<Req, R, M>(
    operations: &OperationsClient,
    method: Method,
    parent: &str,
    request: Req,
) -> Result<Operation<R, M>>
where
    Req: prost::Message + Clone + Send + Sync + 'static,
{
    let idempotent = matches!(
        method,
        Method::AsyncBatchAnnotateFiles | Method::AsyncBatchAnnotateImages
    );
    let call = StartCall::new(method.path())
        .route("parent", parent)
        .retry_policy(RetryPolicy::vision_start(idempotent));
    operations.start(&call, request).await
}

/// The Vision v1 ProductSearch service, for its long-running calls.
///
/// It shares the channel (and its middleware) of the [`OperationsClient`] it is made from.
#[derive(Debug, Clone)]
pub struct ProductSearch {
    operations: OperationsClient,
}

impl ProductSearch {
    /// ProductSearch on the channel of `operations`.
    pub fn new(operations: OperationsClient) -> Self {
        ProductSearch { operations }
    }

    /// The operations client handles are made with.
    pub fn operations(&self) -> &OperationsClient {
        &self.operations
    }

    /// ImportProductSets: starts a bulk import from a CSV in Cloud Storage. Sent once (a
    /// retry could start a second import).
    pub async fn import_product_sets(
        &self,
        request: pb::ImportProductSetsRequest,
    ) -> Result<ImportProductSetsOperation> {
        start(
            &self.operations,
            Method::ImportProductSets,
            &request.parent.clone(),
            request,
        )
        .await
    }

    /// PurgeProducts: starts deleting a product set's products or the orphan products.
    /// Sent once.
    pub async fn purge_products(
        &self,
        request: pb::PurgeProductsRequest,
    ) -> Result<PurgeProductsOperation> {
        start(
            &self.operations,
            Method::PurgeProducts,
            &request.parent.clone(),
            request,
        )
        .await
    }
}

/// The Vision v1 ImageAnnotator service, for its long-running calls.
///
/// It shares the channel (and its middleware) of the [`OperationsClient`] it is made from.
#[derive(Debug, Clone)]
pub struct ImageAnnotator {
    operations: OperationsClient,
}

impl ImageAnnotator {
    /// ImageAnnotator on the channel of `operations`.
    pub fn new(operations: OperationsClient) -> Self {
        ImageAnnotator { operations }
    }

    /// The operations client handles are made with.
    pub fn operations(&self) -> &OperationsClient {
        &self.operations
    }

    /// AsyncBatchAnnotateFiles: starts annotating PDF/TIFF files. Sent once.
    pub async fn async_batch_annotate_files(
        &self,
        request: pb::AsyncBatchAnnotateFilesRequest,
    ) -> Result<AsyncBatchAnnotateFilesOperation> {
        start(
            &self.operations,
            Method::AsyncBatchAnnotateFiles,
            &request.parent.clone(),
            request,
        )
        .await
    }

    /// AsyncBatchAnnotateImages: starts annotating a batch of images. Sent once.
    pub async fn async_batch_annotate_images(
        &self,
        request: pb::AsyncBatchAnnotateImagesRequest,
    ) -> Result<AsyncBatchAnnotateImagesOperation> {
        start(
            &self.operations,
            Method::AsyncBatchAnnotateImages,
            &request.parent.clone(),
            request,
        )
        .await
    }
}
