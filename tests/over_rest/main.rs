//! The library's behaviour tests that do not depend on the wire, run again over REST: the
//! same test bodies as in `library` (`#[path]`), with `wire::client` giving a REST client
//! (`RestRules::standard("v1")`, every Operations method bound) on the fake's in-memory
//! connections, so that the paused-clock tests stay exact.

#[path = "../support/mod.rs"]
mod support;

mod wire {
    use longrunning::OperationsClient;
    use longrunning::rest::RestRules;
    use longrunning::testing::FakeServer;

    pub(crate) fn client(fake: &FakeServer) -> OperationsClient {
        let rules = RestRules::standard("v1").expect("the standard rules");
        fake.connector()
            .rest(rules)
            .connect_lazy()
            .expect("a REST client")
    }
}

#[path = "../library/listing.rs"]
mod listing;
#[path = "../library/vision.rs"]
mod vision;
#[path = "../library/wait.rs"]
mod wait;
