//! Start, watch, wait for, cancel and delete Google Cloud long-running operations over gRPC,
//! with Google Cloud Vision v1's batch operations typed end to end, and any other API's
//! operations through the generic start call.
//!
//! The modules, in layers: each uses only those in its own layer or above it in this
//! table (`tests/layers.rs` holds the imports to it).
//!
//! | layer | module | what it holds |
//! |---|---|---|
//! | generated | [`proto`] | the generated code and the embedded descriptor set |
//! | | `rpc` | the table of RPCs, shared by the client and the fake |
//! | leaves | [`any`] | `Any` type names and checks |
//! | | [`backoff`] | exponential backoff, seedable jitter |
//! | | `latch` | a fact learnt once per client, by one caller; what a client's waits share |
//! | | `lock` | a mutex's guard, poisoned or not |
//! | statuses, errors | `status` | [`Status`]: `google.rpc.Status` with decoded details |
//! | | `error` | the one [`Error`] enum, and [`FaultKind`] |
//! | names | `name` | [`OperationName`]: opaque operation names, best-effort parts |
//! | transport | [`transport`] | connector, pool, dialer, response guard, faults, retry, auth, rate, tokens |
//! | client | `client` | [`OperationsClient`]: the five RPCs and the generic [`StartCall`] |
//! | operation | `operation` | [`Snapshot`] (pure data) and the [`Operation`] handle |
//! | waiting | [`wait`] | the waiter: one loop around one pure decision; batches; watches |
//! | APIs | [`vision`] | Vision v1 start calls returning typed handles |
//! | rendering | `json` (feature `json`) | proto3 JSON from descriptor sets |
//! | wires | [`rest`] (feature `rest`) | REST (HTTP/JSON) under the same client: Google's HTTP rules, transcoding, errors |
//! | testing | `testing` (feature `testing`) | the in-process fake server |
//!
//! # Example
//!
//! Start a Vision purge against the in-process fake, wait for it, and decode its typed
//! metadata and result:
//!
//! ```
//! # #[cfg(feature = "testing")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> longrunning::Result<()> {
//! use std::time::Duration;
//! use longrunning::testing::FakeServer;
//! use longrunning::vision::{BatchState, ProductSearch, pb};
//!
//! let fake = FakeServer::start().await?;
//! fake.set_operation_duration(Duration::from_millis(200));
//! let search = ProductSearch::new(fake.client());
//! let mut op = search
//!     .purge_products(pb::PurgeProductsRequest {
//!         parent: "projects/my-project/locations/us-west1".into(),
//!         target: Some(pb::purge_products_request::Target::DeleteOrphanProducts(true)),
//!         force: true,
//!     })
//!     .await?;
//! while !op.done() {
//!     tokio::time::sleep(Duration::from_millis(50)).await;
//!     op.refresh().await?;
//! }
//! assert_eq!(op.state()?, Some(BatchState::Successful));
//! let outcome = op.result()?;
//! assert!(outcome.echoed_request.is_some_and(|request| request.force));
//! # Ok(()) }
//! # #[cfg(not(feature = "testing"))]
//! # fn main() {}
//! ```

pub mod any;
pub mod backoff;
mod error;
mod latch;
mod lock;
mod name;
mod status;

pub mod proto;
mod rpc;

pub mod transport;

mod client;

mod operation;

pub mod wait;

pub mod vision;

#[cfg(feature = "json")]
pub mod json;

#[cfg(feature = "rest")]
pub mod rest;

#[cfg(feature = "testing")]
pub mod testing;

/// The README's examples, compiled and run as doctests (they use the fake and REST).
#[cfg(all(doctest, feature = "testing", feature = "rest"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use client::{
    ListOptions, OperationsClient, OperationsPage, Pager, ROUTING_HEADER, RawOperation, StartCall,
};
pub use error::{Error, FaultKind, Part, Result};
pub use name::{LocationName, OperationName};
pub use operation::{Operation, OperationResponse, Snapshot, unpack};
pub use status::{Code, ErrorDetail, Status, code_name};
pub use transport::retry::RetryPolicy;

/// The versions of tonic, prost and prost-types this crate is built with, re-exported so
/// that generated code and your calls use exactly the same ones.
pub use {prost, prost_types, tonic};
