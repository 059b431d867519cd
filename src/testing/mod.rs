//! An in-process fake of the Operations, Vision ProductSearch and Vision ImageAnnotator
//! services, for your tests (feature `testing`).
//!
//! [`FakeServer`] serves on a random loopback port, and in memory to
//! [`FakeServer::client`]. Operations it creates follow a
//! [`Script`]: metadata states over time, then a response or an error. Time is tokio's, so
//! a test with a paused clock (`#[tokio::test(start_paused = true)]`) drives operations to
//! completion instantly and exactly. Switches make it misbehave the way real servers do:
//! WaitOperation answering UNIMPLEMENTED, the next N calls of a method failing with any
//! status (details included), a reverse proxy's error pages, reset streams, silence, mangled
//! status headers ([`HttpFault`]), added latency, a stream limit per connection, TLS,
//! restarts on the same port. Every request's headers are recorded for assertions.
//!
//! | file | what it holds |
//! |---|---|
//! | `server` | [`FakeServer`]: serving, restarts, switches, counters |
//! | `script` | [`Script`] and [`Outcome`]: what an operation shows over time |
//! | `state` | the operations, switches and records the services share |
//! | `service` | the three gRPC services, one object |
//! | `faults` | [`HttpFault`]: answers below gRPC |
//! | `memory` | in-memory connections, for exact paused-clock tests |
//! | `proxy` | the layer that gives calls their due fault |
//! | `rest` | the REST surface on the same port (feature `rest`): REST in, the same services, Google's JSON out |
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> longrunning::Result<()> {
//! use longrunning::testing::{FakeMethod, FakeServer};
//!
//! let fake = FakeServer::start().await?;
//! fake.fail_next(FakeMethod::GetOperation, 2); // the client's retries absorb these
//! let name = fake.insert_running("projects/p/locations/us-west1/operations/op1");
//! let op = fake.client().get(&name).await?;
//! assert!(!op.done);
//! assert_eq!(fake.calls(FakeMethod::GetOperation), 3);
//! # Ok(()) }
//! ```

mod faults;
mod memory;
mod proxy;
#[cfg(feature = "rest")]
mod rest;
mod script;
mod server;
mod service;
mod state;

pub use faults::HttpFault;
pub use script::{Outcome, Script};
pub use server::{FakeServer, FakeServerBuilder};
pub use state::{Listing, RecordedRequest};

/// The RPCs the fake implements: the crate's one table of RPCs.
pub use crate::rpc::Method as FakeMethod;
