//! [`Connector`]: from an endpoint and credentials to a ready [`OperationsClient`], safely.
//!
//! - `https://` endpoints use rustls (the `ring` provider) trusting the bundled Mozilla
//!   roots and the system's, plus any CA you add. The default endpoint is
//!   [`DEFAULT_ENDPOINT`].
//! - Plain `http://` is for emulators. A bearer token is never sent over plaintext to a host
//!   other than this machine (127.0.0.0/8, `::1`, `localhost`) unless you explicitly allow
//!   it: [`Error::PlaintextToken`] otherwise.
//! - `LRO_EMULATOR_HOST=host:port` (read by [`Connector::from_env`]) switches to plaintext
//!   with no token, the way Google's emulators do, whatever else is configured.
//! - The quota project comes from [`Connector::quota_project`] or
//!   `GOOGLE_CLOUD_QUOTA_PROJECT`.
//!
//! ```no_run
//! use longrunning::auth::CommandToken;
//! use longrunning::connect::Connector;
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
use std::time::Duration;

use tonic::transport::Endpoint;

use crate::auth::{AuthLayer, TokenSource};
use crate::client::{OperationsClient, RetryPolicy};
use crate::error::{Error, Result};
use crate::pool::{ChannelPool, PoolConfig};

/// Where Vision (and its operations) are served.
pub const DEFAULT_ENDPOINT: &str = "https://vision.googleapis.com";

/// `host:port` of an emulator: plaintext, no token.
pub const EMULATOR_HOST_ENV: &str = "LRO_EMULATOR_HOST";

/// The project billed for quota, sent as `x-goog-user-project`.
pub const QUOTA_PROJECT_ENV: &str = "GOOGLE_CLOUD_QUOTA_PROJECT";

/// Builds an [`OperationsClient`]: endpoint, TLS, token, quota project, retry policy.
pub struct Connector {
    endpoint: String,
    emulator_host: Option<String>,
    token_source: Option<Box<dyn TokenSource>>,
    quota_project: Option<String>,
    ca_certificates: Vec<Vec<u8>>,
    allow_plaintext_token: bool,
    retry_policy: RetryPolicy,
    pool: PoolConfig,
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
            .finish()
    }
}

impl Default for Connector {
    fn default() -> Self {
        Self::new()
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
        }
    }

    /// [`new`](Self::new), then `LRO_EMULATOR_HOST` and `GOOGLE_CLOUD_QUOTA_PROJECT` if set.
    pub fn from_env() -> Self {
        let non_empty = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Connector {
            emulator_host: non_empty(EMULATOR_HOST_ENV),
            quota_project: non_empty(QUOTA_PROJECT_ENV),
            ..Self::new()
        }
    }

    /// The endpoint URL, `https://…` or (for emulators) `http://…`.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = url.into();
        self
    }

    /// Talk to an emulator at `host:port`: plaintext, no token.
    pub fn emulator_host(mut self, host: impl Into<String>) -> Self {
        self.emulator_host = Some(host.into());
        self
    }

    /// Where tokens come from (none by default).
    pub fn token_source(mut self, source: impl TokenSource) -> Self {
        self.token_source = Some(Box::new(source));
        self
    }

    /// The project billed for quota (`x-goog-user-project`).
    pub fn quota_project(mut self, project: impl Into<String>) -> Self {
        self.quota_project = Some(project.into());
        self
    }

    /// Also trusts this CA certificate (PEM), e.g. a test server's.
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certificates.push(pem.into());
        self
    }

    /// Allows sending a token over plaintext HTTP to a host that is not this machine.
    /// Anyone on the path can read it: only for networks you trust.
    pub fn allow_plaintext_token(mut self, allow: bool) -> Self {
        self.allow_plaintext_token = allow;
        self
    }

    /// How many connections and streams the client may use (see [`crate::pool`]).
    pub fn pool_config(mut self, pool: PoolConfig) -> Self {
        self.pool = pool;
        self
    }

    /// The retry policy of the client.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = policy;
        self
    }

    /// The client, connecting on its first call. Checks everything that can be checked
    /// without the network.
    pub fn connect_lazy(self) -> Result<OperationsClient> {
        let pool_config = self.pool;
        let (endpoint, layer, retry_policy) = self.prepare()?;
        let pool = ChannelPool::new(endpoint, pool_config);
        Ok(client_on(pool, layer, retry_policy))
    }

    /// The client, connected (one connection is dialled before this returns, so that an
    /// unreachable endpoint is reported now rather than at the first call).
    pub async fn connect(self) -> Result<OperationsClient> {
        let pool_config = self.pool;
        let (endpoint, layer, retry_policy) = self.prepare()?;
        let url = endpoint.uri().to_string();
        let channel = endpoint.connect().await.map_err(|source| Error::Connect {
            endpoint: url,
            source,
        })?;
        let pool = ChannelPool::with_connection(endpoint, pool_config, channel);
        Ok(client_on(pool, layer, retry_policy))
    }

    fn prepare(self) -> Result<(Endpoint, AuthLayer, RetryPolicy)> {
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
        let token_source = if emulated { None } else { self.token_source };
        if token_source.is_some() && !secure && !self.allow_plaintext_token && !is_loopback(host) {
            return Err(Error::PlaintextToken { endpoint: url });
        }
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| Error::InvalidArgument(format!("bad endpoint {url:?}: {e}")))?
            .connect_timeout(Duration::from_secs(20));
        if secure {
            endpoint = tls(endpoint, &self.ca_certificates)?;
        }
        let mut layer = match token_source {
            Some(source) => AuthLayer::from_boxed(source),
            None => AuthLayer::without_token(),
        };
        if let Some(project) = &self.quota_project {
            layer = layer.quota_project(project)?;
        }
        Ok((endpoint, layer, self.retry_policy))
    }
}

fn client_on(pool: ChannelPool, layer: AuthLayer, retry_policy: RetryPolicy) -> OperationsClient {
    let slots = pool.long_call_slots();
    let service = tower::ServiceBuilder::new().layer(layer).service(pool);
    OperationsClient::from_service(service)
        .with_retry_policy(retry_policy)
        .with_long_call_slots(slots)
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
