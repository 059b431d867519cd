//! Start, watch, wait for, cancel and delete Google Cloud long-running operations over gRPC,
//! with Google Cloud Vision v1's batch operations typed end to end, and any other API's
//! operations through the generic start call.
//!
//! The modules, in layers: each uses only those above it in this table.
//!
//! | layer | module | what it holds |
//! |---|---|---|
//! | names, statuses | [`name`] | opaque operation names, best-effort parts |
//! | | [`any`] | `Any` type names, checks, packing |
//! | | [`status`] | `google.rpc.Status` with decoded details |
//! | | [`error`] | the one [`Error`] enum |
//! | | [`backoff`] | exponential backoff, seedable jitter |
//! | | `latch` (internal) | a fact learnt once per client, by one caller |
//! | generated | [`proto`] | the generated code and the embedded descriptor set |
//! | | [`rpc`] | the table of RPCs, shared by the client and the fake |
//! | transport | [`transport`] | connector, pool, response guard, faults, retry, auth, tokens |
//! | client | [`client`] | [`OperationsClient`]: the five RPCs and the generic start call |
//! | operation | [`operation`] | [`Snapshot`] (pure data) and the [`Operation`] handle |
//! | waiting | [`wait`] | the waiter: one loop around a pure decision; batches; watches |
//! | APIs | [`vision`] | Vision v1 start calls returning typed handles |
//! | rendering | `json` (feature `json`) | proto3 JSON from descriptor sets |
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
pub mod error;
mod latch;
pub mod name;
pub mod status;

pub mod proto;
pub mod rpc;

pub mod transport;

pub mod client;

pub mod operation;

pub mod wait;

pub mod vision;

#[cfg(feature = "json")]
pub mod json;

#[cfg(feature = "testing")]
pub mod testing;

/// The README's examples, compiled and run as doctests.
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use backoff::Backoff;
pub use client::{ListOptions, OperationsClient, OperationsPage, RawOperation, StartCall};
pub use error::{Error, Part, Result};
pub use name::OperationName;
pub use operation::{Operation, OperationResponse, Snapshot};
pub use status::{Code, ErrorDetail, Status};
pub use transport::RetryPolicy;
pub use wait::{Progress, WaitOptions, WaitStrategy};

/// The versions of tonic, prost and prost-types this crate is built with, re-exported so
/// that generated code and your calls use exactly the same ones.
pub use {prost, prost_types, tonic};
