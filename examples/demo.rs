//! The main job, offline: start the in-process fake, start a Vision purge, wait for it by
//! polling GetOperation, and print its typed metadata and result.
//!
//! ```text
//! cargo run --release --features testing --example demo
//! ```

use std::time::Duration;

use longrunning::testing::FakeServer;
use longrunning::vision::{ProductSearch, pb};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = FakeServer::start().await?;
    fake.set_operation_duration(Duration::from_secs(2));
    println!("fake Vision server listening on {}", fake.endpoint());

    let search = ProductSearch::new(fake.client());
    let mut op = search
        .purge_products(pb::PurgeProductsRequest {
            parent: "projects/demo-project/locations/us-west1".into(),
            target: Some(pb::purge_products_request::Target::ProductSetPurgeConfig(
                pb::ProductSetPurgeConfig {
                    product_set_id: "demo-product-set".into(),
                },
            )),
            force: true,
        })
        .await?;
    println!("started {}", op.name());

    while !op.done() {
        println!("  state: {:?}", op.state()?);
        tokio::time::sleep(Duration::from_millis(500)).await;
        op.refresh().await?;
    }

    let metadata = op.metadata()?.unwrap_or_default();
    println!("finished: state {:?}", op.state()?);
    println!("  submitted {:?}", metadata.submit_time);
    println!("  ended     {:?}", metadata.end_time);
    match op.result() {
        Ok(outcome) => println!("result: {:#?}", outcome.echoed_request),
        Err(err) => println!("failed: {err}"),
    }
    fake.shutdown().await;
    Ok(())
}
