//! How calls reach the server: one tower stack shared by every call and every wait.
//!
//! | file | what it holds |
//! |---|---|
//! | `connector` | [`Connector`]: endpoint, TLS, token, quota project, the stack assembled |
//! | `pool` | [`ChannelPool`]: connections with a stream budget each, keepalive, max age |
//! | `dial` | [`Dialer`]: connections opened by a service of yours (in-memory, tunnels) |
//! | `proxy` | egress proxies: which endpoints go through one (`grpc_proxy`, `https_proxy`, `no_proxy`), the CONNECT tunnel, its faults |
//! | `guard` | [`GuardLayer`]: non-gRPC answers, bad status headers, size limit, faults |
//! | `fault` | [`Fault`]: what a transport failure means for a call, classified once |
//! | `rate` | [`RateLimitLayer`]: a client-wide RPC rate, lowered after quota errors; adaptive when none is set |
//! | `retry` | [`RetryPolicy`] and the pure decision the client's call loop executes |
//! | `auth` | [`AuthLayer`]: tokens, quota project, one retry after UNAUTHENTICATED |
//! | `token` | token sources: static, environment, command, application default |
//!
//! The stack, top to bottom: tonic's `Grpc` client (in the operations client) → your layers →
//! the rate limit (if set) →
//! [`AuthLayer`] → [`GuardLayer`] → [`ChannelPool`] → HTTP/2.

mod auth;
mod connector;
mod dial;
mod fault;
mod guard;
mod pool;
mod proxy;
mod rate;
pub(crate) mod retry;
pub(crate) use retry::RetryPolicy;
mod token;

pub(crate) use auth::TokenRejected;
pub use auth::{API_CLIENT, AuthFuture, AuthLayer, AuthService};
pub use connector::{
    Connector, DEFAULT_ENDPOINT, DEFAULT_MAX_RESPONSE_BYTES, EMULATOR_HOST_ENV, QUOTA_PROJECT_ENV,
};
#[cfg(feature = "rest")]
pub(crate) use connector::{MakeWire, WireContext};
pub use dial::{ByteStream, Dialer};
#[cfg(feature = "rest")]
pub(crate) use dial::{DialerConnector, tcp};
pub use fault::Fault;
pub(crate) use fault::carried;
pub use guard::{Guard, GuardFuture, GuardLayer};
pub use pool::{ChannelPool, PoolConfig, PoolFuture, PooledBody};
pub(crate) use pool::{LongCall, NoLongCallSlot};
pub use rate::{RateLimitLayer, RateLimited, RateLimitedFuture};
#[cfg(feature = "adc")]
pub use token::ApplicationDefault;
pub use token::{
    CommandToken, EnvToken, REFRESH_MARGIN, StaticToken, TOKEN_ENV, Token, TokenFuture, TokenSource,
};

/// The type-erased stack every call of this crate runs on; cheap to clone. Give it to any
/// tonic-generated client (`FooClient::new(transport)`) to share the connections.
pub type Transport = tower::util::BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    tower::BoxError,
>;

/// A tower layer that can wrap the [`Transport`]: one whose service still speaks gRPC over
/// HTTP/2 with the same bodies. Every such `tower::Layer` is one; [`Connector::layer`]
/// takes them.
pub trait TransportLayer: Send + Sync + 'static {
    /// The transport wrapped in this layer.
    fn wrap(&self, inner: Transport) -> Transport;
}

impl<L> TransportLayer for L
where
    L: tower::Layer<Transport> + Send + Sync + 'static,
    L::Service: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        > + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Error: Into<tower::BoxError>,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Future: Send + 'static,
{
    fn wrap(&self, inner: Transport) -> Transport {
        let service = tower::ServiceBuilder::new()
            .map_err(Into::into)
            .service(self.layer(inner));
        Transport::new(service)
    }
}
