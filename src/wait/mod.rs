//! Waiting for operations to finish: WaitOperation first, polling GetOperation as fallback.
//!
//! | file | what it holds |
//! |---|---|
//! | [`decide`](self) (internal) | the pure decision: which RPC next, after what delay |
//! | `waiter` (internal) | the one loop that executes it: one sleep site, the probe, admission |
//! | `coalesce` (internal) | where that sleep ends: on a grid the client's waits share, so polls due together go out together |
//! | `roster` (internal) | batched polling: a batch's polls under one collection answered by one ListOperations round |
//! | `batch` | waiting for one operation or many: [`Operation::wait`], [`OperationsClient::wait_for`], [`wait_all`], [`wait_stream`] |
//! | `watch` | progress: [`Operation::watch`], [`OperationsClient::watch_each`] |
//!
//! # The ways to wait, and what they cost
//!
//! | call | for | RPCs |
//! |---|---|---|
//! | [`Operation::wait`] | one typed handle; the handle follows along | one WaitOperation per `wait_rpc_cap` (60 s) the operation runs; polling: one GetOperation per poll delay |
//! | [`OperationsClient::wait_for`] | one operation by name | the same |
//! | [`wait_all`], [`wait_stream`] | many typed handles on the caller's task | Wait path: the same per operation. Polling: one ListOperations round (its pages) per poll delay for each collection with two waits or more, whatever their number; otherwise a GetOperation per poll, at most `max_in_flight_rpcs` in flight |
//! | [`Operation::watch`], [`OperationsClient::watch_each`] | progress reports | on the Wait path one WaitOperation per `watch_interval` (10 s), so metadata changes show within it; polling many names: as [`wait_all`] |
//!
//! Each client learns once whether the server implements WaitOperation, with one probe:
//! - In a batch ([`wait_all`], [`wait_stream`], `watch_each` of several names) the probe asks
//!   for no wait at all, so its verdict comes at once, and the other waits wait for it,
//!   however slow the server: one extra RPC per client.
//! - A single wait's probe is its own WaitOperation (one RPC for the whole wait when it
//!   works). A wait that starts while it is out sends the quick probe beside it, and every
//!   later one waits for that verdict: two probes at most, and no wait guesses from the time
//!   the server takes.
//!
//! After UNIMPLEMENTED every wait of the client polls.
//!
//! # Batched polling
//!
//! A batch's waits that poll (after UNIMPLEMENTED, or with [`WaitStrategy::Poll`]) under
//! one collection (the name up to `/operations/`) share ListOperations rounds instead of
//! sending a GetOperation each: 10,000 operations under one location cost ten pages a
//! round, not 10,000 calls. A finished operation's listing carries its result. Which
//! `name` lists the collection (its parent, or `…/operations`) is learnt once per client;
//! a server that lists neither is asked once, and its waits poll by name. A round that
//! would read more pages than polling by name costs, or whose page tokens repeat, hands the
//! batch back to polling by name; an operation a round does not show is looked up by name
//! (deleted: NOT_FOUND ends its wait). Nothing is filtered on the server: `done=true` would
//! hide deletions and progress, `done=false` the results.
//!
//! # How a wait proceeds
//!
//! WaitOperation with `timeout = min(time left, wait_rpc_cap)`; a server that answers not
//! done at once is spaced by the poll delays. Polling spaces GetOperations by the poll
//! delays. Sleeps end on a grid the client's waits share (never early; late by at most a
//! quarter of the delay, and at most 1 s), so that polls falling due together go out
//! together.
//!
//! # Which errors end a wait
//!
//! | an RPC of the wait fails with | the wait |
//! |---|---|
//! | UNAVAILABLE, or no answer at all (refused, reset, silence past the per-call timeout) | goes on after the fault delay |
//! | RESOURCE_EXHAUSTED (a quota), with or without `RetryInfo` | goes on after the fault delay; the client as a whole slows to what the quota admits (`transport::RateLimitLayer`) |
//! | DEADLINE_EXCEEDED, CANCELLED, ABORTED | goes on after the fault delay (a WaitOperation that outlived its own timeout is simply sent again) |
//! | UNIMPLEMENTED from WaitOperation | `Auto`: polls from then on (the whole client does); `Wait`: ends with it |
//! | any other code (NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED after the one token refresh, INVALID_ARGUMENT, INTERNAL, …) | ends with [`Error::Rpc`](crate::Error::Rpc) |
//! | a certificate the client does not trust | ends with [`Error::Certificate`](crate::Error::Certificate) |
//!
//! Before the server has answered a wait at all, silence (no answer within the per-call
//! timeout, or a server that sends nothing once connected) ends it as it ends a
//! GetOperation: DEADLINE_EXCEEDED, after one try (unless the client's retry policy retries
//! that code); so does a deadline that passes while the first RPC is out: the server's
//! silence, not a slow operation ([`Error::Rpc`](crate::Error::Rpc), not
//! [`Error::Timeout`](crate::Error::Timeout)).
//!
//! A `RetryInfo` detail sets the delay before the next try; it never makes a code that ends
//! the wait a retried one. The fault delays grow while faults repeat (default 1 s, ×2, up to
//! 30 s, jittered) and start over after an answer. A wait that has never had an answer gives
//! up after the client's retry attempts, as `get` does: nothing answers for that operation.
//! A failed *operation* (done, with an error) is not an RPC error: it ends the wait with
//! that error, decoded.
//! Every sleep and RPC is bounded by [`WaitOptions::timeout`]: running out gives
//! [`Error::Timeout`](crate::Error::Timeout) with the last snapshot received (if any). A
//! wait is a plain future: dropping it stops its RPCs at once.
//!
//! ```
//! # #[cfg(feature = "testing")]
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> longrunning::Result<()> {
//! use std::time::Duration;
//! use longrunning::testing::FakeServer;
//! use longrunning::vision::{ProductSearch, pb};
//! use longrunning::wait::WaitOptions;
//!
//! let fake = FakeServer::start().await?;
//! let mut op = ProductSearch::new(fake.client())
//!     .purge_products(pb::PurgeProductsRequest {
//!         parent: "projects/p/locations/us-west1".into(),
//!         target: Some(pb::purge_products_request::Target::DeleteOrphanProducts(true)),
//!         force: true,
//!     })
//!     .await?;
//! let options = WaitOptions { timeout: Some(Duration::from_secs(600)), ..WaitOptions::default() };
//! let outcome = op.wait(&options).await?;
//! assert!(outcome.echoed_request.is_some());
//! # Ok(()) }
//! # #[cfg(not(feature = "testing"))]
//! # fn main() {}
//! ```
//!
//! [`Operation::wait`]: crate::Operation::wait
//! [`Operation::watch`]: crate::Operation::watch
//! [`OperationsClient::wait_for`]: crate::OperationsClient::wait_for
//! [`OperationsClient::watch_each`]: crate::OperationsClient::watch_each

mod batch;
mod coalesce;
mod decide;
mod options;
mod roster;
mod waiter;
mod watch;

pub use batch::{Finished, wait_all, wait_stream};
pub use options::{WaitOptions, WaitStrategy};
pub use watch::{Progress, Watched};
