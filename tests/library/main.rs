//! The library's behaviour, in one test binary (one link instead of eleven). Tests that
//! need a process of their own stand apart: `env` (environment variables), `observability`
//! (a global subscriber), `cli` (the `lro` binary).

#[path = "../support/mod.rs"]
mod support;

/// The client the behaviour tests that do not depend on the wire use: gRPC here, REST in
/// the `over_rest` test binary, which runs the same bodies.
mod wire {
    use longrunning::OperationsClient;
    use longrunning::testing::FakeServer;

    pub(crate) fn client(fake: &FakeServer) -> OperationsClient {
        fake.client()
    }
}

mod auth;
mod chaos;
mod client;
mod fake;
mod json;
mod listing;
mod other_apis;
mod properties;
mod protocol;
mod proxy;
#[cfg(feature = "rest")]
mod rest;
mod scale;
mod transport;
mod typed;
mod vision;
mod wait;
