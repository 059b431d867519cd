//! Egress proxies: which endpoints go through an HTTP CONNECT proxy, and the tunnel.
//!
//! **Which.** As gRPC's other clients (grpc-core, grpc-go, grpc-java) and curl choose:
//! [`Connector::proxy`](super::Connector::proxy), else `grpc_proxy`, else `https_proxy` for
//! `https://` endpoints or `http_proxy` for `http://` ones (each lower- or upper-case); then
//! [`Connector::no_proxy`](super::Connector::no_proxy), else `no_proxy` / `NO_PROXY`, exempts
//! host names, domain suffixes (`.googleapis.com`), IP addresses, CIDR ranges, or everything
//! (`*`). Loopback gets no implicit exception, as in grpc-core and curl: list
//! `localhost,127.0.0.1` in `no_proxy` for an emulator. The rules are hyper-util's
//! `Matcher` (curl's), not ours.
//!
//! **The tunnel.** TCP to the proxy, `CONNECT host:port` (hyper-util's `Tunnel`, with
//! `Proxy-Authorization: Basic` from credentials in the proxy URL), then, inside the
//! tunnel, TLS to the endpoint (the proxy never sees the plaintext) and HTTP/2, or h2c for
//! an `http://` endpoint. Credentials never appear in `Debug`, logs or errors: a proxy is
//! named by its host and port.
//!
//! **Faults**, each naming the proxy: unreachable, closed or cut during CONNECT, or
//! 502/503/504 from it: the call was never sent, and is retried as such; 407 (authentication
//! required), 403 (its policy refuses the host) and other refusals: [`Error::Proxy`],
//! never retried.
//!
//! Two guards around hyper-util 0.1's `Tunnel`, which reports any refusal but 407 as
//! `TunnelUnsuccessful` without its status, and drops the bytes that arrive with the
//! response head (left out of hyperium/hyper-util#315 on purpose): the proxy's connection is
//! read through a recorder of the handshake's first bytes, from which the status is taken
//! and any early tunnel bytes are handed back before the connection's own.
//!
//! [`Error::Proxy`]: crate::Error::Proxy

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tower::{Service, ServiceExt as _};

use super::dial::Dialer;
use crate::error::{Error, FaultKind, Result};
use crate::lock::lock;

/// How long dialling the proxy may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// The most of a CONNECT answer's head kept (hyper-util's own limit).
const HEAD_BYTES: usize = 8192;

/// A proxy chosen for an endpoint: where it is, and the credentials to give it.
#[derive(Clone)]
pub(crate) struct Proxy {
    uri: Uri,
    auth: Option<HeaderValue>,
    /// `host:port`, as errors name it (never the credentials).
    name: Arc<str>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("proxy", &self.name)
            .field("credentials", &self.auth.is_some())
            .finish()
    }
}

/// What the caller set: a proxy URL and a `no_proxy` list, each beating its variables.
#[derive(Clone, Default)]
pub(crate) struct ProxySettings {
    pub(crate) proxy: Option<String>,
    pub(crate) no_proxy: Option<String>,
}

impl fmt::Debug for ProxySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proxy = self.proxy.as_deref().map(without_credentials);
        f.debug_struct("ProxySettings")
            .field("proxy", &proxy)
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// A variable, lower-case name first, then upper-case; blank is unset.
fn variable(lower: &str) -> Option<String> {
    [lower.to_owned(), lower.to_ascii_uppercase()]
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .filter(|value| !value.trim().is_empty())
}

impl ProxySettings {
    /// The proxy for `endpoint`, if one applies.
    pub(crate) fn choose(&self, endpoint: &Uri) -> Result<Option<Proxy>> {
        let mut builder = Matcher::builder();
        if let Some(url) = &self.proxy {
            check_url(url)?;
            builder = builder.all(url.clone());
        } else if let Some(url) = variable("grpc_proxy") {
            builder = builder.all(url);
        } else {
            if let Some(url) = variable("https_proxy") {
                builder = builder.https(url);
            }
            if let Some(url) = variable("http_proxy") {
                builder = builder.http(url);
            }
        }
        let no_proxy = self.no_proxy.clone().or_else(|| variable("no_proxy"));
        if let Some(list) = no_proxy {
            // Guard: hyper-util 0.1.21's matcher tries `*` against host names only, so an
            // IP-address endpoint would still be proxied; curl and grpc-core exempt every
            // host.
            if list.split(',').any(|entry| entry.trim() == "*") {
                return Ok(None);
            }
            builder = builder.no(list);
        }
        let Some(intercept) = builder.build().intercept(endpoint) else {
            return Ok(None);
        };
        let uri = intercept.uri().clone();
        let host = uri.host().unwrap_or("the proxy");
        let port = uri.port_u16().unwrap_or(80);
        Ok(Some(Proxy {
            auth: intercept.basic_auth().cloned(),
            name: Arc::from(format!("{host}:{port}")),
            uri,
        }))
    }
}

/// An explicit proxy URL must be one: `http://[user:pass@]host[:port]`.
fn check_url(url: &str) -> Result<()> {
    let shown = without_credentials(url);
    let uri: Uri = url
        .parse()
        .map_err(|_| Error::InvalidArgument(format!("bad proxy URL {shown:?}")))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http"), Some(_)) => Ok(()),
        _ => Err(Error::InvalidArgument(format!(
            "bad proxy URL {shown:?}: give http://HOST:PORT (with user:password@ if the proxy asks)"
        ))),
    }
}

/// A URL with any `user:password@` taken out.
fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***@{}", &url[..scheme_end + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl Proxy {
    /// `host:port` of the proxy.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The dialer that reaches endpoints through this proxy.
    pub(crate) fn dialer(self) -> Dialer {
        let proxy = Arc::new(self);
        Dialer::new(tower::service_fn(move |endpoint: Uri| {
            let proxy = proxy.clone();
            async move { proxy.tunnel(endpoint).await }
        }))
    }

    /// A tunnel to `endpoint`'s host and port.
    async fn tunnel(&self, endpoint: Uri) -> std::result::Result<ProxyConnection, ProxyFailure> {
        let destination = with_port(&endpoint);
        // `None` until the proxy is reached; then the first bytes it answers.
        let head: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let recording = {
            let head = head.clone();
            tower::service_fn(move |uri: Uri| {
                let (mut tcp, head) = (tcp.clone(), head.clone());
                async move {
                    let connected = match tcp.ready().await {
                        Ok(tcp) => tcp.call(uri).await,
                        Err(error) => Err(error),
                    };
                    // A concrete error type: a boxed one trips the compiler's `Send` proof
                    // of the tunnel's future (rust-lang/rust#102211).
                    let stream = connected
                        .map_err(|error| std::io::Error::other(source_text(&error)))?
                        .into_inner();
                    *lock(&head) = Some(Vec::new());
                    Ok::<_, std::io::Error>(TokioIo::new(ProxyConnection {
                        stream,
                        head: Some(head),
                        early: Vec::new(),
                    }))
                }
            })
        };
        let mut tunnel = Tunnel::new(self.uri.clone(), recording);
        if let Some(auth) = &self.auth {
            tunnel = tunnel.with_auth(auth.clone());
        }
        let answer = tunnel.oneshot(destination.clone()).await;
        // hyper-util's error does not say the status, and is not nameable (its type is
        // private): what happened is read from the recorded handshake instead.
        let recorded = lock(&head).take();
        let reason = match (answer, recorded) {
            (Ok(connection), head) => {
                let early = head.map(|head| early_bytes(&head)).unwrap_or_default();
                return Ok(connection.into_inner().tunnelled(early));
            }
            (Err(error), None) => Reason::Unreachable(source_text(&error)),
            (Err(error), Some(head)) => match (status_of(&head), head.is_empty()) {
                (Some(status), _) => Reason::Refused(status),
                (None, true) => Reason::Closed,
                (None, false) if !head.windows(4).any(|w| w == b"\r\n\r\n") => Reason::Closed,
                (None, false) => Reason::Garbled(error.to_string()),
            },
        };
        Err(ProxyFailure {
            proxy: self.name.clone(),
            destination: authority(&destination),
            reason,
        })
    }
}

/// An error with its causes, in words.
fn source_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// The endpoint with its port spelt out (the tunnel assumes 443 otherwise).
fn with_port(endpoint: &Uri) -> Uri {
    if endpoint.port().is_some() {
        return endpoint.clone();
    }
    let port = if endpoint.scheme_str() == Some("http") {
        80
    } else {
        443
    };
    let host = endpoint.host().unwrap_or_default();
    let scheme = endpoint.scheme_str().unwrap_or("https");
    format!("{scheme}://{host}:{port}")
        .parse()
        .unwrap_or_else(|_| endpoint.clone())
}

fn authority(uri: &Uri) -> String {
    uri.authority()
        .map_or_else(String::new, ToString::to_string)
}

/// The status code of a recorded CONNECT answer.
fn status_of(head: &[u8]) -> Option<u16> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(_) => response.code,
        Err(_) => None,
    }
}

/// The bytes that came after a CONNECT answer's head in the same reads: the tunnel's first.
fn early_bytes(head: &[u8]) -> Vec<u8> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(end)) => head[end..].to_vec(),
        _ => Vec::new(),
    }
}

/// Why a tunnel could not be made.
#[derive(Debug, Clone)]
enum Reason {
    /// The proxy could not be reached.
    Unreachable(String),
    /// The proxy closed the connection before answering CONNECT in full.
    Closed,
    /// The proxy answered CONNECT with this status.
    Refused(u16),
    /// The proxy's answer could not be read.
    Garbled(String),
}

/// A tunnel that could not be made: what it means for the call, and words naming the proxy.
#[derive(Debug, Clone)]
pub(crate) struct ProxyFailure {
    proxy: Arc<str>,
    destination: String,
    reason: Reason,
}

impl ProxyFailure {
    /// What it means for the call: refusals are permanent; the rest never sent the call.
    pub(crate) fn kind(&self) -> FaultKind {
        match self.reason {
            Reason::Refused(status) if !(500..600).contains(&status) => FaultKind::ProxyRefused,
            Reason::Garbled(_) => FaultKind::ProxyRefused,
            _ => FaultKind::Unsent,
        }
    }

    /// The proxy, `host:port`.
    pub(crate) fn proxy(&self) -> &str {
        &self.proxy
    }
}

impl fmt::Display for ProxyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (proxy, destination) = (&self.proxy, &self.destination);
        match &self.reason {
            Reason::Unreachable(error) => write!(f, "cannot reach the proxy {proxy}: {error}"),
            Reason::Closed => write!(
                f,
                "the proxy {proxy} closed the connection before opening a tunnel to {destination}"
            ),
            Reason::Refused(407) => write!(
                f,
                "the proxy {proxy} requires authentication (407): give user:password@ in the proxy URL"
            ),
            Reason::Refused(403) => write!(
                f,
                "the proxy {proxy} refuses to connect to {destination} (403 Forbidden): its policy does not allow this host"
            ),
            Reason::Refused(status) => write!(
                f,
                "the proxy {proxy} did not open a tunnel to {destination}: HTTP {status}"
            ),
            Reason::Garbled(error) => write!(
                f,
                "the proxy {proxy} answered CONNECT with something that is not HTTP ({error})"
            ),
        }
    }
}

impl std::error::Error for ProxyFailure {}

/// The connection to the proxy. While CONNECT is answered, the first bytes read are kept
/// (at most [`HEAD_BYTES`]) in `head`; once the tunnel is open, the bytes that came with the
/// answer (`early`) are read first, then the connection's own.
struct ProxyConnection {
    stream: TcpStream,
    head: Option<Arc<Mutex<Option<Vec<u8>>>>>,
    early: Vec<u8>,
}

impl ProxyConnection {
    /// The open tunnel, its early bytes handed back.
    fn tunnelled(self, early: Vec<u8>) -> Self {
        ProxyConnection {
            stream: self.stream,
            head: None,
            early,
        }
    }
}

impl AsyncRead for ProxyConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.early.is_empty() {
            let n = this.early.len().min(buf.remaining());
            buf.put_slice(&this.early[..n]);
            this.early.drain(..n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(head)) = (&polled, &this.head)
            && let Some(head) = lock(head).as_mut()
        {
            let room = HEAD_BYTES.saturating_sub(head.len());
            let read = &buf.filled()[before..];
            head.extend_from_slice(&read[..read.len().min(room)]);
        }
        polled
    }
}

impl AsyncWrite for ProxyConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_never_shown() {
        assert_eq!(
            without_credentials("http://user:s3cret@proxy:3128"),
            "http://***@proxy:3128"
        );
        let settings = ProxySettings {
            proxy: Some("http://user:s3cret@proxy:3128".into()),
            no_proxy: None,
        };
        assert!(!format!("{settings:?}").contains("s3cret"));
        let proxy = settings
            .choose(&"https://vision.googleapis.com".parse().unwrap())
            .unwrap()
            .unwrap();
        assert!(proxy.auth.is_some());
        assert!(!format!("{proxy:?}").contains("s3cret"));
        assert_eq!(proxy.name(), "proxy:3128");
        let err = check_url("ftp://user:s3cret@proxy").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn no_proxy_exempts_hosts_suffixes_addresses_and_ranges_and_loopback_only_when_listed() {
        let settings = |no_proxy: &str| ProxySettings {
            proxy: Some("http://proxy:3128".into()),
            no_proxy: Some(no_proxy.into()),
        };
        let proxied = |settings: &ProxySettings, endpoint: &str| {
            settings
                .choose(&endpoint.parse().unwrap())
                .unwrap()
                .is_some()
        };
        let list = settings(".googleapis.com, 10.0.0.0/8, 192.168.1.7, example.org");
        assert!(!proxied(&list, "https://vision.googleapis.com"));
        assert!(!proxied(&list, "http://10.1.2.3:8080"));
        assert!(!proxied(&list, "http://192.168.1.7:80"));
        assert!(!proxied(&list, "https://api.example.org"));
        assert!(proxied(&list, "https://speech.example.com"));
        // No implicit exception for this machine: an emulator needs listing.
        assert!(proxied(&list, "http://127.0.0.1:8080"));
        assert!(proxied(&list, "http://localhost:8080"));
        let local = settings("localhost,127.0.0.1");
        assert!(!proxied(&local, "http://127.0.0.1:8080"));
        assert!(!proxied(&local, "http://localhost:8080"));
        assert!(!proxied(&settings("*"), "https://vision.googleapis.com"));
        assert!(!proxied(
            &settings("example.org, *"),
            "http://127.0.0.1:8080"
        ));
    }

    #[test]
    fn refusals_are_permanent_and_the_rest_never_sent_the_call() {
        let failure = |reason| ProxyFailure {
            proxy: Arc::from("proxy:3128"),
            destination: "vision.googleapis.com:443".into(),
            reason,
        };
        for (reason, kind) in [
            (Reason::Refused(407), FaultKind::ProxyRefused),
            (Reason::Refused(403), FaultKind::ProxyRefused),
            (Reason::Refused(400), FaultKind::ProxyRefused),
            (Reason::Refused(502), FaultKind::Unsent),
            (Reason::Refused(503), FaultKind::Unsent),
            (Reason::Refused(504), FaultKind::Unsent),
            (Reason::Closed, FaultKind::Unsent),
            (Reason::Unreachable("refused".into()), FaultKind::Unsent),
        ] {
            let failure = failure(reason);
            assert_eq!(failure.kind(), kind, "{failure}");
            assert!(failure.to_string().contains("proxy:3128"), "{failure}");
        }
    }

    #[test]
    fn the_status_and_the_early_bytes_are_read_from_the_recorded_head() {
        assert_eq!(status_of(b"HTTP/1.0 403 Forbidden\r\n\r\n"), Some(403));
        assert_eq!(status_of(b"HTTP/1.1 502 Bad Gateway\r\n"), Some(502));
        assert_eq!(status_of(b"garbage"), None);
        assert_eq!(
            early_bytes(b"HTTP/1.1 200 OK\r\n\r\nPRI * HTTP/2.0"),
            b"PRI * HTTP/2.0"
        );
        assert!(early_bytes(b"HTTP/1.0 200 Connection established\r\n\r\n").is_empty());
    }
}
