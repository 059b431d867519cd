//! Start, watch, wait for, cancel and delete Google Cloud long-running operations over gRPC,
//! with Google Cloud Vision v1's batch operations typed end to end.
//!
//! | module | what it holds |
//! |---|---|
//! | [`name`] | operation names: parse, validate, `id()` / `location()` / `project()` |
//! | [`error`] | the one [`Error`] enum; `google.rpc.Status` with decoded details |
//! | [`auth`] | token sources and the tower layer that sends tokens and the quota project |
//! | [`backoff`] | exponential backoff with jitter |
//! | [`connect`] | [`connect::Connector`]: endpoint, TLS, emulator, quota project, plaintext rules |
//! | [`client`] | [`OperationsClient`]: the five RPCs, routing header, timeouts, retries |
//! | [`pool`] | [`pool::ChannelPool`]: connections with a stream budget each, a reserve for short calls |
//! | [`operation`] | [`Operation<R, M>`]: typed handle, checked `Any` unpacking |
//! | [`wait`] | the waiter: WaitOperation first, polling fallback, deadlines, progress, many at once |
//! | [`vision`] | Vision v1 clients that start operations and return typed handles |
//! | `json` (feature `json`) | proto3 JSON as Google's REST API prints it, from the descriptor set |
//! | [`proto`] | the generated code and the embedded descriptor set |
//! | `unary` (internal) | one unary gRPC call: request frame out, response and status back |
//! | `testing` (feature `testing`) | an in-process fake server for your tests |
//!
//! # Example
//!
//! Start a Vision purge against the in-process fake, wait for it by polling, and decode
//! its typed metadata and result:
//!
//! ```
//! # #[cfg(feature = "testing")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> longrunning::Result<()> {
//! use std::time::Duration;
//! use longrunning::testing::FakeServer;
//! use longrunning::vision::{BatchState, ProductSearch, pb};
//!
//! let fake = FakeServer::builder().operation_duration(Duration::from_millis(200)).start().await?;
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

#![warn(missing_docs)]

pub mod auth;
pub mod backoff;
pub mod client;
pub mod connect;
pub mod error;
#[cfg(feature = "json")]
pub mod json;
pub mod name;
pub mod operation;
pub mod pool;
pub mod proto;
#[cfg(feature = "testing")]
pub mod testing;
mod unary;
pub mod vision;
pub mod wait;

/// The README's examples, compiled and run as doctests.
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use backoff::Backoff;
pub use client::{ListOptions, OperationsClient, OperationsPage, RawOperation, RetryPolicy};
pub use error::{Code, Error, ErrorDetail, Part, Result, Status};
pub use name::OperationName;
pub use operation::{Operation, OperationResponse};
pub use wait::{Progress, WaitOptions, WaitStrategy};
