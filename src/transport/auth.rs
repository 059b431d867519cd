//! [`AuthLayer`]: the tower layer that authenticates every call.
//!
//! On every request it sets `authorization: Bearer <token>` (marked sensitive, so HTTP/2
//! never indexes it), the quota project as `x-goog-user-project` when one is set, and
//! `x-goog-api-client`. Tokens are cached; a token within its source's refresh margin is
//! still used by every call while one call fetches its successor, so no call waits on a
//! refresh while a valid token is at hand. Concurrent callers share one fetch.
//!
//! An UNAUTHENTICATED answer drops the cached token and, if the source can give another,
//! fails the call with a status whose source is a `TokenRejected` signal: the client sends
//! it once more, with a new token, never more.
//!
//! ```no_run
//! use longrunning::OperationsClient;
//! use longrunning::transport::{AuthLayer, CommandToken};
//!
//! # async fn run() -> longrunning::Result<()> {
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:8080").connect_lazy();
//! let layer = AuthLayer::new(CommandToken::shell("gcloud auth print-access-token"))
//!     .quota_project("my-project")?;
//! let client = OperationsClient::from_service(tower::ServiceBuilder::new().layer(layer).service(channel));
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use tokio::time::Instant;
use tonic::Code;
use tower::{Layer, Service};

use super::guard::grpc_status;
use super::token::{Token, TokenSource};
use crate::error::{Error, Result};

/// The value sent as `x-goog-api-client`.
pub const API_CLIENT: &str = concat!(
    "gl-rust longrunning/",
    env!("CARGO_PKG_VERSION"),
    " grpc/tonic"
);

const API_CLIENT_HEADER: HeaderName = HeaderName::from_static("x-goog-api-client");
/// Checked at compile time, not at each call.
const API_CLIENT_VALUE: HeaderValue = HeaderValue::from_static(API_CLIENT);
const USER_PROJECT_HEADER: HeaderName = HeaderName::from_static("x-goog-user-project");

/// After a refresh that brought no later expiry, how long before the next try.
const REFRESH_RETRY: Duration = Duration::from_secs(30);

type Body = tonic::body::Body;

/// A token with its `authorization` header value, built once per token rather than per call.
#[derive(Clone)]
struct Bearer {
    token: Token,
    header: Option<HeaderValue>,
}

impl Bearer {
    fn new(token: Token) -> Self {
        let header = HeaderValue::try_from(format!("Bearer {}", token.secret()))
            .ok()
            .map(|mut value| {
                value.set_sensitive(true);
                value
            });
        Bearer { token, header }
    }
}

/// What the cache holds for a call.
enum Cached {
    /// A token that may be sent.
    Valid(Bearer),
    /// Nothing usable: the call must wait for a fetch.
    Missing,
}

/// Caches one token; concurrent callers share one fetch.
struct TokenCache {
    source: Arc<dyn TokenSource>,
    current: Mutex<Current>,
    refresh: tokio::sync::Mutex<()>,
    margin: Duration,
}

#[derive(Default)]
struct Current {
    bearer: Option<Bearer>,
    /// No refresh before this (after one that brought the same expiry back).
    quiet_until: Option<Instant>,
}

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        crate::lock::lock(&self.current)
    }

    /// The token for a call right now; `refresh` is true when it is due for renewal.
    fn cached(&self, now: Instant) -> (Cached, bool) {
        let current = self.lock();
        let Some(bearer) = &current.bearer else {
            return (Cached::Missing, false);
        };
        match bearer.token.expires_at() {
            None => (Cached::Valid(bearer.clone()), false),
            Some(at) if now >= at => (Cached::Missing, false),
            Some(at) => {
                let due =
                    now + self.margin >= at && current.quiet_until.is_none_or(|quiet| now >= quiet);
                (Cached::Valid(bearer.clone()), due)
            }
        }
    }

    /// A token for a call, fetching one only when none is valid. While a valid token is due
    /// for renewal, one call (whichever gets the refresh lock) renews it; the others go on
    /// with the valid one.
    async fn get(&self) -> Result<Bearer> {
        let (cached, due) = self.cached(Instant::now());
        if let Cached::Valid(bearer) = cached {
            if !due {
                return Ok(bearer);
            }
            let Ok(_single_flight) = self.refresh.try_lock() else {
                return Ok(bearer);
            };
            // A failed renewal keeps the valid token.
            return Ok(self.fetch().await.unwrap_or(bearer));
        }
        let _single_flight = self.refresh.lock().await;
        if let (Cached::Valid(bearer), _) = self.cached(Instant::now()) {
            return Ok(bearer);
        }
        self.fetch().await
    }

    async fn fetch(&self) -> Result<Bearer> {
        let bearer = Bearer::new(self.source.fetch().await?);
        tracing::debug!(source = %self.source.name(), "fetched an access token");
        let mut current = self.lock();
        let previous = current.bearer.as_ref().and_then(|b| b.token.expires_at());
        let renewed = match (previous, bearer.token.expires_at()) {
            (Some(before), Some(after)) => after > before,
            _ => true,
        };
        current.quiet_until = (!renewed).then(|| Instant::now() + REFRESH_RETRY);
        current.bearer = Some(bearer.clone());
        Ok(bearer)
    }

    /// Drops `rejected` if it is still the cached token, so the next `get` fetches anew.
    fn reject(&self, rejected: &Bearer) {
        let mut current = self.lock();
        if current.bearer.as_ref().map(|c| &c.token) == Some(&rejected.token) {
            *current = Current::default();
        }
    }
}

/// The tower layer that authenticates every call. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct AuthLayer {
    cache: Option<Arc<TokenCache>>,
    quota_project: Option<HeaderValue>,
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("source", &self.cache.as_ref().map(|c| c.source.name()))
            .field("quota_project", &self.quota_project)
            .finish()
    }
}

impl AuthLayer {
    /// Sends tokens from `source`.
    pub fn new(source: impl TokenSource) -> Self {
        Self::from_shared(Arc::new(source))
    }

    pub(crate) fn from_shared(source: Arc<dyn TokenSource>) -> Self {
        let margin = source.refresh_margin();
        AuthLayer {
            cache: Some(Arc::new(TokenCache {
                source,
                current: Mutex::new(Current::default()),
                refresh: tokio::sync::Mutex::new(()),
                margin,
            })),
            quota_project: None,
        }
    }

    /// Sends no token (for emulators), only `x-goog-api-client` and any quota project.
    pub fn without_token() -> Self {
        AuthLayer {
            cache: None,
            quota_project: None,
        }
    }

    /// Also sends `x-goog-user-project: <project>`, the project billed for quota.
    pub fn quota_project(mut self, project: &str) -> Result<Self> {
        let value = HeaderValue::from_str(project)
            .ok()
            .filter(|_| !project.is_empty() && !project.contains(char::is_whitespace))
            .ok_or_else(|| Error::InvalidArgument(format!("bad quota project {project:?}")))?;
        self.quota_project = Some(value);
        Ok(self)
    }

    /// Replaces cached tokens this long before they expire (default: the source's
    /// [`TokenSource::refresh_margin`]).
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        if let Some(cache) = self.cache.as_mut().and_then(Arc::get_mut) {
            cache.margin = margin;
        }
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S> fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<S> Service<http::Request<Body>> for AuthService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError>,
{
    type Response = http::Response<Body>;
    type Error = tower::BoxError;
    type Future = AuthFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let headers = request.headers_mut();
        headers.insert(API_CLIENT_HEADER, API_CLIENT_VALUE);
        if let Some(project) = &self.layer.quota_project {
            headers.insert(USER_PROJECT_HEADER, project.clone());
        }
        let Some(cache) = &self.layer.cache else {
            return AuthFuture::calling(self.inner.call(request), None);
        };
        // The usual case: a cached token not yet due, and the call goes out on the service
        // that was driven to readiness, with nothing boxed.
        if let (Cached::Valid(bearer), false) = cache.cached(Instant::now()) {
            let Some(value) = bearer.header.clone() else {
                return AuthFuture::failed(invalid_token(&*cache.source));
            };
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value);
            let sent = Sent {
                cache: cache.clone(),
                bearer,
            };
            return AuthFuture::calling(self.inner.call(request), Some(sent));
        }
        // A token must be fetched (or renewed) first; the clone that was driven to
        // readiness serves the call once it has one (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let cache = cache.clone();
        AuthFuture::fetching(Box::pin(async move {
            let bearer = cache.get().await.map_err(tower::BoxError::from)?;
            let value = bearer
                .header
                .clone()
                .ok_or_else(|| invalid_token(&*cache.source))?;
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value);
            let response = inner.call(request).await.map_err(Into::into)?;
            Sent { cache, bearer }.check(response)
        }))
    }
}

/// A token that cannot be sent as a header (it has control characters). Its text is kept
/// out of the error.
fn invalid_token(source: &dyn TokenSource) -> tower::BoxError {
    Box::new(super::token::auth_error(
        source,
        "the access token has characters that cannot be sent in a header",
    ))
}

/// The token a call carried, to drop it if the server rejects it.
struct Sent {
    cache: Arc<TokenCache>,
    bearer: Bearer,
}

impl Sent {
    /// On UNAUTHENTICATED, drops the token (the next call fetches a new one) and, if the
    /// source can give another, fails the call with [`TokenRejected`] so that the client
    /// sends it once more.
    fn check(
        self,
        response: http::Response<Body>,
    ) -> Result<http::Response<Body>, tower::BoxError> {
        // A pass over the few response headers, cheaper than a hashed look-up.
        let unauthenticated = grpc_status(response.headers()) == Some(Code::Unauthenticated);
        if !unauthenticated {
            return Ok(response);
        }
        self.cache.reject(&self.bearer);
        if !self.cache.source.can_renew() {
            return Ok(response);
        }
        tracing::debug!(source = %self.cache.source.name(), "UNAUTHENTICATED: refreshing the token once");
        let server = tonic::Status::from_header_map(response.headers())
            .map(|status| status.message().to_owned())
            .unwrap_or_default();
        let mut status = tonic::Status::unauthenticated(server);
        status.set_source(Arc::new(TokenRejected));
        Err(Box::new(status))
    }
}

/// The signal of a call whose token the server rejected and the auth layer dropped: the
/// client sends the call once more, with a new token. Carried as the source of the
/// UNAUTHENTICATED status the call fails with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenRejected;

impl fmt::Display for TokenRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the server rejected the access token")
    }
}

impl std::error::Error for TokenRejected {}

type BoxedCall =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, tower::BoxError>> + Send>>;

pin_project_lite::pin_project! {
    /// The response future of [`AuthService`].
    pub struct AuthFuture<F> {
        #[pin]
        state: AuthState<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = AuthStateProjection]
    enum AuthState<F> {
        // The inner call, with the token it carries.
        Calling {
            #[pin]
            call: F,
            sent: Option<Sent>,
        },
        // Fetching a token, then calling.
        Fetching { call: BoxedCall },
        // No call was made.
        Failed { error: Option<tower::BoxError> },
    }
}

impl<F> AuthFuture<F> {
    fn calling(call: F, sent: Option<Sent>) -> Self {
        AuthFuture {
            state: AuthState::Calling { call, sent },
        }
    }

    fn fetching(call: BoxedCall) -> Self {
        AuthFuture {
            state: AuthState::Fetching { call },
        }
    }

    fn failed(error: tower::BoxError) -> Self {
        AuthFuture {
            state: AuthState::Failed { error: Some(error) },
        }
    }
}

impl<F> fmt::Debug for AuthFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthFuture").finish_non_exhaustive()
    }
}

impl<F, E> Future for AuthFuture<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
    E: Into<tower::BoxError>,
{
    type Output = Result<http::Response<Body>, tower::BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            AuthStateProjection::Calling { call, sent } => {
                let response = std::task::ready!(call.poll(cx)).map_err(Into::into)?;
                Poll::Ready(match sent.take() {
                    Some(sent) => sent.check(response),
                    None => Ok(response),
                })
            }
            AuthStateProjection::Fetching { call } => call.as_mut().poll(cx),
            AuthStateProjection::Failed { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "the call was already answered".into()))),
        }
    }
}
