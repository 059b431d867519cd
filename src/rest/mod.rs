//! REST (HTTP/JSON) as a second wire under the same client (feature `rest`).
//!
//! [`Connector::rest`](crate::transport::Connector::rest) puts the REST wire where the pool
//! of gRPC connections goes; you get the same [`OperationsClient`](crate::OperationsClient),
//! waiter, typed results and [`Error`](crate::Error). Code that waits does not change when
//! the wire does.
//!
//! | file | what it holds |
//! |---|---|
//! | `rules` | [`RestRules`]: Google's HTTP rules for the Operations methods, with the Vision, Speech and standard presets |
//! | `wire` | the transcoding service: gRPC requests in, HTTP/JSON out, gRPC answers back |
//! | `errors` | REST errors as the gRPC statuses they mean, details decoded as over gRPC |
//!
//! What goes on the wire, as Google's clients send it: the path from the first binding the
//! name fits (each segment percent-encoded; `**` keeps the slashes), `$alt=json;enum-encoding=int`,
//! ListOperations' `filter`, `pageSize` and `pageToken` in the query, `{}` to cancel,
//! `{"timeout": "…s"}` to wait; `authorization`, `x-goog-user-project` and an
//! `x-goog-api-client` with a `rest/` token; no `x-goog-request-params`. Answers are parsed
//! ignoring unknown fields and enum values. A method the rules do not bind, or a name that
//! fits none of its templates, is refused before anything is sent: UNIMPLEMENTED ("no REST
//! binding for …") or INVALID_ARGUMENT naming the templates. A wait then polls.
//!
//! Start calls (Vision's, and any [`StartCall`](crate::StartCall) whose API's descriptor set
//! is registered) go by their own `google.api.http` rules, read from the descriptors: the
//! first binding whose variable the request's field fits, the request (less that field) as
//! the body when the rule says `body: "*"`.
//!
//! ```no_run
//! # async fn run() -> longrunning::Result<()> {
//! use longrunning::rest::RestRules;
//! use longrunning::transport::Connector;
//!
//! let client = Connector::from_env()
//!     .endpoint("https://vision.googleapis.com")
//!     .rest(RestRules::vision_v1())
//!     .connect()
//!     .await?;
//! let op = client.get("locations/us-west1/operations/bc4e1d412863e626").await?;
//! println!("{} done={}", op.name, op.done);
//! # Ok(()) }
//! ```

mod errors;
mod rules;
mod wire;

use std::sync::Arc;

#[cfg(feature = "testing")]
pub(crate) use rules::lower_camel;
pub use rules::{Binding, RestMethod, RestRules};

use crate::transport::Connector;

impl Connector {
    /// Speaks REST (HTTP/JSON) by `rules` instead of gRPC. The endpoint, token, quota
    /// project, CA certificates, proxy, dialer, retry policy, rate limit and your layers
    /// apply as over gRPC; the pool settings do not (the REST wire keeps hyper-util's pool
    /// of keep-alive connections, HTTP/2 by ALPN over TLS, HTTP/1.1 otherwise). Over REST,
    /// [`connect`](Connector::connect) dials nothing first: an unreachable endpoint or an
    /// untrusted certificate is reported by the first call.
    pub fn rest(self, rules: RestRules) -> Self {
        self.with_wire(Arc::new(wire::MakeRest(rules)))
    }
}
