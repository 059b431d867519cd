//! [`Connector`]: from an endpoint and credentials to a ready transport (and, with
//! `connect`, an operations client), safely.
//!
//! - `https://` endpoints use rustls (the `ring` provider) trusting the bundled Mozilla
//!   roots and the system's (`SSL_CERT_FILE` and `SSL_CERT_DIR` name other system stores),
//!   plus any CA you add with [`Connector::ca_certificate_pem`] or [`Connector::ca_file`].
//!   A certificate the client does not accept is [`Error::Certificate`], at once: it is
//!   never retried.
//! - Plain `http://` is for emulators. A bearer token is never sent over plaintext to a host
//!   other than this machine (127.0.0.0/8, `::1`, `localhost`) unless you explicitly allow
//!   it: [`Error::PlaintextToken`] otherwise.
//! - `LRO_EMULATOR_HOST=host:port` (read by [`Connector::from_env`]; empty is unset)
//!   switches to plaintext with no token, the way Google's emulators do, unless an endpoint
//!   is then set explicitly ([`Connector::endpoint`]): explicit beats the environment.
//! - The quota project comes from [`Connector::quota_project`] or
//!   `GOOGLE_CLOUD_QUOTA_PROJECT`.
//!
//! The stack every call goes through, top to bottom: your layers
//! ([`Connector::layer`]), the [`AuthLayer`], the [response guard](super::guard), the
//! [`ChannelPool`]. [`Connector::transport`] hands out that stack for other generated
//! clients, on the same connections.
//!
//! ```no_run
//! use longrunning::transport::{CommandToken, Connector};
//!
//! # async fn run() -> longrunning::Result<()> {
//! let client = Connector::from_env()
//!     .token_source(CommandToken::shell("gcloud auth print-access-token"))
//!     .quota_project("my-project")
//!     .connect()
//!     .await?;
//! let op = client.get("locations/us-west1/operations/bc4e1d412863e626").await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Endpoint;
use tower::Layer as _;

use super::auth::AuthLayer;
use super::dial::Dialer;
use super::fault::Fault;
use super::guard::GuardLayer;
use super::pool::{ChannelPool, PoolConfig};
use super::proxy::ProxySettings;
use super::rate::RateLimitLayer;
use super::retry::RetryPolicy;
use super::token::TokenSource;
use super::{Transport, TransportLayer};
use crate::error::FaultKind;
use crate::error::{Error, Result};

/// Where Vision (and its operations) are served.
pub const DEFAULT_ENDPOINT: &str = "https://vision.googleapis.com";

/// `host:port` of an emulator: plaintext, no token.
pub const EMULATOR_HOST_ENV: &str = "LRO_EMULATOR_HOST";

/// The project billed for quota, sent as `x-goog-user-project`.
pub const QUOTA_PROJECT_ENV: &str = "GOOGLE_CLOUD_QUOTA_PROJECT";

/// The largest response message accepted by default: none in practice, as Google's own
/// Vision clients set it (`grpc.max_receive_message_length = -1`).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = usize::MAX;

/// Builds an operations client (`connect`, `connect_lazy`) or the transport under it:
/// endpoint, TLS, token, quota
/// project, retry policy, pool, middleware.
pub struct Connector {
    endpoint: String,
    emulator_host: Option<String>,
    token_source: Option<Arc<dyn TokenSource>>,
    quota_project: Option<String>,
    ca_certificates: Vec<Vec<u8>>,
    allow_plaintext_token: bool,
    retry_policy: RetryPolicy,
    pool: PoolConfig,
    max_response_bytes: usize,
    layers: Vec<Arc<dyn TransportLayer>>,
    rate_limit: Option<RateLimitLayer>,
    dialer: Option<Dialer>,
    proxy: ProxySettings,
    /// A wire other than gRPC's (REST), put where the pool of HTTP/2 connections goes.
    wire: Option<Arc<dyn MakeWire>>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("endpoint", &self.endpoint)
            .field("emulator_host", &self.emulator_host)
            .field(
                "token_source",
                &self.token_source.as_ref().map(|s| s.name()),
            )
            .field("quota_project", &self.quota_project)
            .field("ca_certificates", &self.ca_certificates.len())
            .field("allow_plaintext_token", &self.allow_plaintext_token)
            .field("layers", &self.layers.len())
            .field("dialer", &self.dialer.is_some())
            .field("wire", &if self.wire.is_some() { "rest" } else { "grpc" })
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl Default for Connector {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`Connector::prepare`] checked and built, before any connection.
struct Prepared {
    endpoint: Endpoint,
    url: String,
    peer: Arc<str>,
    auth: AuthLayer,
    /// Yours, the proxy's tunnel, or TCP straight to the endpoint.
    dialer: Option<Dialer>,
}

impl Prepared {
    /// The dialer of gRPC's connections: a server that sends nothing at all once connected
    /// (every HTTP/2 server sends its SETTINGS at once) is found out within the per-call
    /// timeout, as a GetOperation finds it out. Not for REST: an HTTP/1.1 server says
    /// nothing until it answers.
    fn grpc_dialer(&self, per_call_timeout: Duration) -> Option<Dialer> {
        self.dialer
            .clone()
            .map(|dialer| dialer.silent_after(per_call_timeout))
    }
}

impl Connector {
    /// [`DEFAULT_ENDPOINT`], no token, no quota project, the default retry policy. Reads no
    /// environment variables.
    pub fn new() -> Self {
        Connector {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            emulator_host: None,
            token_source: None,
            quota_project: None,
            ca_certificates: Vec::new(),
            allow_plaintext_token: false,
            retry_policy: RetryPolicy::default(),
            pool: PoolConfig::default(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            layers: Vec::new(),
            rate_limit: None,
            dialer: None,
            proxy: ProxySettings::default(),
            wire: None,
        }
    }

    /// [`new`](Self::new), then `LRO_EMULATOR_HOST` and `GOOGLE_CLOUD_QUOTA_PROJECT` if set
    /// and not blank. A later [`endpoint`](Self::endpoint) replaces the emulator host.
    pub fn from_env() -> Self {
        let non_empty = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Connector {
            emulator_host: non_empty(EMULATOR_HOST_ENV),
            quota_project: non_empty(QUOTA_PROJECT_ENV),
            ..Self::new()
        }
    }

    /// The endpoint URL, `https://…` or (for emulators) `http://…`. Explicit beats the
    /// environment: it replaces an emulator host set before (`LRO_EMULATOR_HOST` read by
    /// [`from_env`](Self::from_env)).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = url.into();
        self.emulator_host = None;
        self
    }

    /// Talk to an emulator at `host:port`: plaintext, no token (whatever endpoint was set
    /// before).
    pub fn emulator_host(mut self, host: impl Into<String>) -> Self {
        self.emulator_host = Some(host.into());
        self
    }

    /// Where tokens come from (none by default).
    pub fn token_source(mut self, source: impl TokenSource) -> Self {
        self.token_source = Some(Arc::new(source));
        self
    }

    /// The project billed for quota (`x-goog-user-project`).
    pub fn quota_project(mut self, project: impl Into<String>) -> Self {
        self.quota_project = Some(project.into());
        self
    }

    /// Also trusts this CA certificate (PEM), e.g. a test server's or a company proxy's.
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certificates.push(pem.into());
        self
    }

    /// Also trusts the CA certificates in the PEM file at `path`.
    pub fn ca_file(self, path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| {
            Error::InvalidArgument(format!("cannot read CA file {}: {e}", path.display()))
        })?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(Error::InvalidArgument(format!(
                "CA file {} holds no PEM certificate",
                path.display()
            )));
        }
        Ok(self.ca_certificate_pem(pem))
    }

    /// Allows sending a token over plaintext HTTP to a host that is not this machine.
    /// Anyone on the path can read it: only for networks you trust.
    pub fn allow_plaintext_token(mut self, allow: bool) -> Self {
        self.allow_plaintext_token = allow;
        self
    }

    /// How many connections and streams the client may use, and how they are kept healthy.
    pub fn pool_config(mut self, pool: PoolConfig) -> Self {
        self.pool = pool;
        self
    }

    /// The retry policy of the client.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = policy;
        self
    }

    /// The retry policy the client gets.
    pub(crate) fn policy(&self) -> &RetryPolicy {
        &self.retry_policy
    }

    /// The largest response message accepted (default: no practical limit, as Google's
    /// Vision clients). A larger one fails the call with `RESOURCE_EXHAUSTED`.
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// At most `max_rps` RPCs per second from every client made from this connector (and its
    /// transport), waits, polls, listings and retries alike; bursts of up to a tenth of a
    /// second's worth (at least one call, at most 100) at once; halved for a while after
    /// RESOURCE_EXHAUSTED. See [`RateLimitLayer`]. Without it the client still adapts to
    /// the server's quota ([`RateLimitLayer::adaptive`]): no limit until a quota error, then
    /// what the server admits.
    pub fn max_rps(mut self, max_rps: f64) -> Self {
        let burst = if max_rps.is_finite() && max_rps >= 1.0 {
            (max_rps.ceil() as u32).min(1000) / 10
        } else {
            1
        };
        self.rate_limit = Some(RateLimitLayer::new(max_rps, burst.max(1)));
        self
    }

    /// Adds a tower layer above the auth layer (the first added is outermost), e.g. a
    /// tonic interceptor or your own metrics. It sees every call of every client made from
    /// this connector.
    pub fn layer(mut self, layer: impl TransportLayer) -> Self {
        self.layers.push(Arc::new(layer));
        self
    }

    /// The stack, with one connection dialled before it returns (so that an unreachable
    /// endpoint or an untrusted certificate is reported now).
    /// Opens connections with `dialer` instead of TCP to the endpoint's host: an in-memory
    /// pipe (as [`FakeServer::client`](crate::testing::FakeServer::client) does), a Unix
    /// socket, a tunnel. The endpoint URL still names the peer, chooses TLS and is the
    /// `:authority` of every call.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> longrunning::Result<()> {
    /// use longrunning::transport::{Connector, Dialer};
    ///
    /// let (client_end, _server_end) = tokio::io::duplex(64 * 1024);
    /// let one_pipe = std::sync::Arc::new(std::sync::Mutex::new(Some(client_end)));
    /// let dialer = Dialer::new(tower::service_fn(move |_uri: http::Uri| {
    ///     let pipe = one_pipe.lock().unwrap().take();
    ///     async move { pipe.ok_or("only one connection") }
    /// }));
    /// let client = Connector::new()
    ///     .endpoint("http://in-memory.invalid")
    ///     .dialer(dialer)
    ///     .connect_lazy()?;
    /// # Ok(()) }
    /// ```
    pub fn dialer(mut self, dialer: Dialer) -> Self {
        self.dialer = Some(dialer);
        self
    }

    /// Reach the endpoint through the HTTP CONNECT proxy at `url`
    /// (`http://[user:password@]host:port`), whatever `grpc_proxy`, `https_proxy` and
    /// `http_proxy` say; endpoints that [`no_proxy`](Self::no_proxy) (or `no_proxy`) lists
    /// still go direct. TLS to the endpoint runs inside the tunnel. A [`dialer`](Self::dialer)
    /// of yours takes precedence over any proxy.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy.proxy = Some(url.into());
        self
    }

    /// The endpoints that go direct, whatever proxy applies, in `no_proxy`'s form:
    /// comma-separated host names, domain suffixes (`.googleapis.com`), IP addresses, CIDR
    /// ranges, or `*`; replaces the `no_proxy` variable. Loopback is not exempt unless listed.
    pub fn no_proxy(mut self, list: impl Into<String>) -> Self {
        self.proxy.no_proxy = Some(list.into());
        self
    }

    /// Puts `wire` where the pool of gRPC connections goes: the layers above (auth, guard,
    /// rate limit, yours) and the client's call loop stay as they are.
    #[cfg_attr(not(feature = "rest"), allow(dead_code))]
    pub(crate) fn with_wire(mut self, wire: Arc<dyn MakeWire>) -> Self {
        self.wire = Some(wire);
        self
    }

    /// The stack and the peer errors name.
    pub(crate) async fn dial(self) -> Result<(Transport, Arc<str>)> {
        if self.wire.is_some() {
            // A wire of its own connects when first used.
            return self.assembled();
        }
        let prepared = self.prepare()?;
        let connecting = match &prepared.grpc_dialer(self.retry_policy.per_call_timeout) {
            Some(dialer) => {
                prepared
                    .endpoint
                    .connect_with_connector(dialer.clone())
                    .await
            }
            None => prepared.endpoint.connect().await,
        };
        let channel = connecting.map_err(|e| connect_error(&e, &prepared.peer, &prepared.url))?;
        Ok(self.assemble(prepared, Some(channel)))
    }

    /// The authenticated, guarded, pooled transport, for other generated clients: wrap it
    /// in `tonic::client::Grpc` or give it to a generated client's `new`. Calls made on it
    /// share the connections, stream budget and long-call slots of operations clients made
    /// from it ([`OperationsClient::from_transport`](crate::OperationsClient::from_transport)).
    /// Nothing is dialled yet.
    pub fn transport(self) -> Result<Transport> {
        Ok(self.assembled()?.0)
    }

    /// The stack, nothing dialled yet, and the peer errors name.
    pub(crate) fn assembled(self) -> Result<(Transport, Arc<str>)> {
        let prepared = self.prepare()?;
        Ok(self.assemble(prepared, None))
    }

    fn assemble(
        &self,
        prepared: Prepared,
        channel: Option<tonic::transport::Channel>,
    ) -> (Transport, Arc<str>) {
        let peer = prepared.peer.clone();
        // With no rate set, the adaptive limit: none until the server refuses for its
        // quota, then what it admits.
        let limit = self
            .rate_limit
            .clone()
            .unwrap_or_else(RateLimitLayer::adaptive);
        let guard = GuardLayer::new(prepared.peer.clone(), self.max_response_bytes);
        let mut transport = match &self.wire {
            Some(wire) => {
                let bottom = wire.make(&WireContext {
                    url: &prepared.url,
                    peer: &prepared.peer,
                    ca_certificates: &self.ca_certificates,
                    max_response_bytes: self.max_response_bytes,
                    dialer: prepared.dialer.clone(),
                });
                let guarded = tower::ServiceBuilder::new()
                    .layer(prepared.auth)
                    .layer(guard)
                    .service(bottom);
                Transport::new(limit.layer(guarded))
            }
            None => {
                let dialer = prepared.grpc_dialer(self.retry_policy.per_call_timeout);
                let pool = ChannelPool::with_dialer(prepared.endpoint, self.pool, dialer);
                let pool = match channel {
                    Some(channel) => pool.with_connection(channel),
                    None => pool,
                };
                let guarded = tower::ServiceBuilder::new()
                    .layer(prepared.auth)
                    .layer(guard)
                    .service(pool);
                Transport::new(limit.layer(guarded))
            }
        };
        for layer in self.layers.iter().rev() {
            transport = layer.wrap(transport);
        }
        (transport, peer)
    }

    fn prepare(&self) -> Result<Prepared> {
        let emulated = self.emulator_host.is_some();
        let url = match &self.emulator_host {
            Some(host) => format!("http://{}", host.trim_start_matches("http://")),
            None => self.endpoint.clone(),
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e| Error::InvalidArgument(format!("bad endpoint {url:?}: {e}")))?;
        let host = uri
            .host()
            .ok_or_else(|| Error::InvalidArgument(format!("endpoint {url:?} has no host")))?;
        let secure = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "endpoint {url:?} must start with https:// (or http:// for an emulator)"
                )));
            }
        };
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let peer: Arc<str> = Arc::from(format!("{host}:{port}"));
        let token_source = if emulated {
            None
        } else {
            self.token_source.as_ref()
        };
        if token_source.is_some() && !secure && !self.allow_plaintext_token && !is_loopback(host) {
            return Err(Error::PlaintextToken { endpoint: url });
        }
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| Error::InvalidArgument(format!("bad endpoint {url:?}: {e}")))?
            .connect_timeout(Duration::from_secs(20));
        if secure {
            endpoint = tls(endpoint, &self.ca_certificates)?;
        }
        let mut auth = match token_source {
            Some(source) => AuthLayer::from_shared(source.clone()),
            None => AuthLayer::without_token(),
        };
        if let Some(project) = &self.quota_project {
            auth = auth.quota_project(project)?;
        }
        let dialer = match &self.dialer {
            Some(dialer) => dialer.clone(),
            None => match self.proxy.choose(&uri)? {
                Some(proxy) => {
                    tracing::debug!(proxy = proxy.name(), endpoint = %url, "through a proxy");
                    proxy.dialer()
                }
                None => super::dial::tcp(),
            },
        };
        let dialer = Some(dialer);
        Ok(Prepared {
            endpoint,
            url,
            peer,
            auth,
            dialer,
        })
    }
}

/// The error of a connection that could not be made, classified.
fn connect_error(error: &tonic::transport::Error, peer: &Arc<str>, url: &str) -> Error {
    let fault = Fault::classify(error, peer);
    match fault {
        Some(fault) if fault.kind() == FaultKind::Certificate => Error::Certificate {
            peer: peer.to_string(),
            reason: fault.message().to_owned(),
        },
        Some(fault) if fault.kind() == FaultKind::ProxyRefused => Error::Proxy {
            proxy: fault.peer().to_owned(),
            message: fault.message().to_owned(),
        },
        Some(fault) => Error::Connect {
            endpoint: url.to_owned(),
            message: fault.message().to_owned(),
        },
        None => Error::Connect {
            endpoint: url.to_owned(),
            message: error.to_string(),
        },
    }
}

#[cfg(feature = "tls")]
fn tls(endpoint: Endpoint, ca_certificates: &[Vec<u8>]) -> Result<Endpoint> {
    let certificates = ca_certificates
        .iter()
        .map(tonic::transport::Certificate::from_pem);
    let config = tonic::transport::ClientTlsConfig::new()
        .with_enabled_roots()
        .ca_certificates(certificates);
    endpoint
        .tls_config(config)
        .map_err(|e| Error::InvalidArgument(format!("TLS setup failed: {e}")))
}

#[cfg(not(feature = "tls"))]
fn tls(_endpoint: Endpoint, _ca_certificates: &[Vec<u8>]) -> Result<Endpoint> {
    Err(Error::InvalidArgument(
        "https:// endpoints need this crate's `tls` feature".to_owned(),
    ))
}

/// What a wire other than gRPC's is made from.
#[cfg_attr(not(feature = "rest"), allow(dead_code))]
pub(crate) struct WireContext<'a> {
    /// The endpoint, `https://host[:port]` or `http://…` (an emulator's).
    pub(crate) url: &'a str,
    /// `host:port`, as errors name it.
    pub(crate) peer: &'a Arc<str>,
    /// PEM CA certificates to trust besides the usual roots.
    pub(crate) ca_certificates: &'a [Vec<u8>],
    /// The largest response body accepted (0: the wire's own bound).
    pub(crate) max_response_bytes: usize,
    /// How connections are opened: yours, or the proxy's tunnel; `None`: TCP.
    pub(crate) dialer: Option<Dialer>,
}

/// Makes the bottom of a transport: a service that takes the client's gRPC requests and
/// answers them as gRPC, however it reaches the server.
pub(crate) trait MakeWire: Send + Sync {
    fn make(&self, context: &WireContext<'_>) -> Transport;
}

/// Whether `host` (from a URI, so IPv6 in brackets) is this machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in ["127.0.0.1", "127.8.9.10", "[::1]", "localhost", "LOCALHOST"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "10.0.0.1",
            "192.168.1.1",
            "example.com",
            "[::2]",
            "localhost.evil.com",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
