//! Vision v1 long-running calls against the fake: start, progress, typed result, resume.

use std::time::Duration;

use longrunning::testing::{FakeMethod, FakeServer};
use longrunning::vision::{
    AnnotationState, AsyncBatchAnnotateFilesOperation, BatchState, ImageAnnotator,
    ImportProductSetsOperation, ProductSearch, PurgeProductsOperation, pb,
};
use longrunning::{Code, Error, OperationName};

const PARENT: &str = "projects/p1/locations/us-west1";

fn purge_request() -> pb::PurgeProductsRequest {
    pb::PurgeProductsRequest {
        parent: PARENT.into(),
        force: true,
        target: Some(pb::purge_products_request::Target::ProductSetPurgeConfig(
            pb::ProductSetPurgeConfig {
                product_set_id: "set-1".into(),
            },
        )),
    }
}

fn import_request(csv: &str) -> pb::ImportProductSetsRequest {
    pb::ImportProductSetsRequest {
        parent: PARENT.into(),
        input_config: Some(pb::ImportProductSetsInputConfig {
            source: Some(pb::import_product_sets_input_config::Source::GcsSource(
                pb::ImportProductSetsGcsSource {
                    csv_file_uri: csv.into(),
                },
            )),
        }),
    }
}

#[tokio::test(start_paused = true)]
async fn purge_progresses_to_successful_and_echoes_the_request() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_operation_duration(Duration::from_secs(10));
    let search = ProductSearch::new(crate::wire::client(&fake));
    let mut op = search.purge_products(purge_request()).await.unwrap();

    let name = OperationName::parse(op.name()).unwrap();
    assert_eq!(name.project(), Some("p1"));
    assert_eq!(name.location(), Some("us-west1"));
    assert!(!op.done());
    assert_eq!(op.state().unwrap(), Some(BatchState::Processing));
    assert!(matches!(op.result(), Err(Error::NotDone { .. })));

    tokio::time::sleep(Duration::from_secs(9)).await;
    op.refresh().await.unwrap();
    assert!(!op.done());
    tokio::time::sleep(Duration::from_secs(1)).await;
    op.refresh().await.unwrap();
    assert!(op.done());
    assert_eq!(op.state().unwrap(), Some(BatchState::Successful));
    let metadata = op.metadata().unwrap().unwrap();
    let submitted = metadata.submit_time.unwrap();
    let ended = metadata.end_time.unwrap();
    assert_eq!(ended.seconds - submitted.seconds, 10);
    assert_eq!(op.result().unwrap().echoed_request, Some(purge_request()));
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn import_returns_a_typed_response_and_rejects_bad_input() {
    let fake = FakeServer::start().await.unwrap();
    let search = ProductSearch::new(crate::wire::client(&fake));
    let mut op = search
        .import_product_sets(import_request("gs://bucket/products.csv"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    op.refresh().await.unwrap();
    let response = op.result().unwrap();
    assert_eq!(response.statuses.len(), 1);
    assert_eq!(response.statuses[0].code, 0);

    let err = search
        .import_product_sets(import_request("/local/file.csv"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument));
    assert!(matches!(
        err,
        Error::Rpc {
            method: "ImportProductSets",
            ..
        }
    ));
    let err = search
        .purge_products(pb::PurgeProductsRequest {
            parent: "p1".into(),
            ..purge_request()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument));
    fake.shutdown().await;
}

#[tokio::test]
async fn start_calls_send_the_parent_routing_header_over_grpc() {
    let fake = FakeServer::start().await.unwrap();
    // The routing header is gRPC's (REST sends none): the gRPC client on either run.
    let search = ProductSearch::new(fake.client());
    search.purge_products(purge_request()).await.unwrap();
    let request = &fake.requests()[0];
    assert_eq!(request.method, FakeMethod::PurgeProducts);
    assert_eq!(
        request.headers["x-goog-request-params"],
        "parent=projects%2Fp1%2Flocations%2Fus-west1"
    );
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn start_calls_are_not_retried() {
    let fake = FakeServer::start().await.unwrap();
    let search = ProductSearch::new(crate::wire::client(&fake));
    search.purge_products(purge_request()).await.unwrap();
    fake.fail_next(FakeMethod::PurgeProducts, 1);
    let err = search.purge_products(purge_request()).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unavailable));
    // A retry could start a second purge: the client sent it once.
    assert_eq!(fake.calls(FakeMethod::PurgeProducts), 2);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn resume_by_name_returns_the_same_typed_handle_without_restarting() {
    let fake = FakeServer::start().await.unwrap();
    let client = crate::wire::client(&fake);
    let started = ProductSearch::new(client.clone())
        .purge_products(purge_request())
        .await
        .unwrap();
    let saved_name = started.name().to_owned();
    drop(started);

    tokio::time::sleep(Duration::from_secs(3)).await;
    let resumed = PurgeProductsOperation::resume(&client, &saved_name)
        .await
        .unwrap();
    assert_eq!(resumed.name(), saved_name);
    assert!(resumed.done());
    assert_eq!(
        resumed.result().unwrap().echoed_request,
        Some(purge_request())
    );
    assert_eq!(fake.calls(FakeMethod::PurgeProducts), 1);
    assert_eq!(fake.calls(FakeMethod::GetOperation), 1);

    let err = ImportProductSetsOperation::resume(&client, "locations/us-west1/operations/gone")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound));
    let err = ImportProductSetsOperation::resume(&client, "gone\u{200b}")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }));
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn cancel_on_a_handle_ends_it_cancelled() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_operation_duration(Duration::from_secs(60));
    let mut op = ProductSearch::new(crate::wire::client(&fake))
        .purge_products(purge_request())
        .await
        .unwrap();
    op.cancel().await.unwrap();
    op.refresh().await.unwrap();
    assert!(op.done());
    assert!(op.is_cancelled());
    assert_eq!(op.state().unwrap(), Some(BatchState::Cancelled));
    assert!(matches!(op.result(), Err(Error::OperationCancelled { .. })));
    // Cancelling again is harmless, and deleting forgets it.
    op.cancel().await.unwrap();
    let name = op.name().to_owned();
    op.delete().await.unwrap();
    assert_eq!(
        crate::wire::client(&fake)
            .get(&name)
            .await
            .unwrap_err()
            .code(),
        Some(Code::NotFound)
    );
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn async_annotation_goes_created_running_done() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_operation_duration(Duration::from_secs(10));
    let annotator = ImageAnnotator::new(crate::wire::client(&fake));
    let output = pb::OutputConfig {
        gcs_destination: Some(pb::GcsDestination {
            uri: "gs://bucket/out/".into(),
        }),
        batch_size: 2,
    };
    let mut files: AsyncBatchAnnotateFilesOperation = annotator
        .async_batch_annotate_files(pb::AsyncBatchAnnotateFilesRequest {
            requests: vec![pb::AsyncAnnotateFileRequest {
                output_config: Some(output.clone()),
                ..Default::default()
            }],
            parent: PARENT.into(),
            labels: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(files.state().unwrap(), Some(AnnotationState::Created));
    tokio::time::sleep(Duration::from_secs(1)).await;
    files.refresh().await.unwrap();
    assert_eq!(files.state().unwrap(), Some(AnnotationState::Running));
    tokio::time::sleep(Duration::from_secs(9)).await;
    files.refresh().await.unwrap();
    assert_eq!(files.state().unwrap(), Some(AnnotationState::Done));
    let response = files.result().unwrap();
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].output_config, Some(output.clone()));

    let mut images = annotator
        .async_batch_annotate_images(pb::AsyncBatchAnnotateImagesRequest {
            requests: vec![pb::AnnotateImageRequest::default()],
            output_config: Some(output.clone()),
            parent: String::new(),
            labels: Default::default(),
        })
        .await
        .unwrap();
    assert!(images.name().starts_with("operations/"));
    tokio::time::sleep(Duration::from_secs(10)).await;
    images.refresh().await.unwrap();
    assert_eq!(images.result().unwrap().output_config, Some(output));

    let err = annotator
        .async_batch_annotate_images(pb::AsyncBatchAnnotateImagesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument));
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_fake_fails_started_jobs_with_consistent_metadata() {
    use longrunning::{ErrorDetail, Status};
    let fake = FakeServer::start().await.unwrap();
    let status = Status::new(Code::InvalidArgument, "the CSV has a bad line")
        .with_detail(ErrorDetail::retry_after(Duration::from_secs(1)));
    fake.fail_next_starts(1, status.clone());
    let search = ProductSearch::new(crate::wire::client(&fake));
    let mut failed = search.purge_products(purge_request()).await.unwrap();
    let started = fake.wait_for_start(Duration::from_secs(1)).await.unwrap();
    assert_eq!(started, failed.name());
    let err = failed.wait(&Default::default()).await.unwrap_err();
    let Error::OperationFailed { status: got, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*got, status);
    assert_eq!(failed.state().unwrap(), Some(BatchState::Failed));
    // Only the next one: the following start succeeds again.
    let mut ok = search.purge_products(purge_request()).await.unwrap();
    ok.wait(&Default::default()).await.unwrap();
    assert_eq!(ok.state().unwrap(), Some(BatchState::Successful));
    fake.shutdown().await;
}
