//! Access tokens, and the tower layer that sends them with every call.
//!
//! A [`TokenSource`] fetches OAuth2 access tokens: [`StaticToken`], [`EnvToken`]
//! (`GOOGLE_OAUTH_ACCESS_TOKEN` by default), [`CommandToken`] (for
//! `gcloud auth print-access-token`), and with the `adc` feature
//! `ApplicationDefault` (service-account JSON from `GOOGLE_APPLICATION_CREDENTIALS`, gcloud
//! user credentials, the metadata server).
//!
//! [`AuthLayer`] wraps any tonic channel (or other tower service). On every request it sets
//! `authorization: Bearer <token>` (marked sensitive, so HTTP/2 never indexes it), the quota
//! project as `x-goog-user-project` when one is set, and `x-goog-api-client`. Tokens are
//! cached and refreshed [`REFRESH_MARGIN`] before they expire; concurrent calls share one
//! fetch. An UNAUTHENTICATED answer drops the cached token, so the next call fetches a new
//! one; [`OperationsClient`](crate::OperationsClient) retries such a call once, never more.
//!
//! Tokens never appear in `Debug`, `Display`, errors or logs.
//!
//! ```no_run
//! use longrunning::OperationsClient;
//! use longrunning::auth::{AuthLayer, CommandToken};
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

use http::HeaderValue;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::error::{Error, Result};

/// How long before its expiry a cached token is replaced.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The environment variable [`EnvToken::new`] reads.
pub const TOKEN_ENV: &str = "GOOGLE_OAUTH_ACCESS_TOKEN";

/// Set by [`AuthService`] on an UNAUTHENTICATED answer whose token it dropped (never sent):
/// a retry will carry a new token.
pub(crate) const TOKEN_REJECTED: &str = "x-longrunning-token-rejected";

/// The value sent as `x-goog-api-client`.
pub const API_CLIENT: &str = concat!(
    "gl-rust longrunning/",
    env!("CARGO_PKG_VERSION"),
    " grpc/tonic"
);

/// An OAuth2 access token. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    secret: Arc<str>,
    expires_at: Option<Instant>,
}

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

impl Token {
    /// A token that is valid for `lifetime` from now (`None`: until the server rejects it).
    pub fn new(secret: impl Into<String>, lifetime: Option<Duration>) -> Self {
        Token {
            secret: Arc::from(secret.into()),
            expires_at: lifetime.and_then(|l| Instant::now().checked_add(l)),
        }
    }

    /// The secret, for the `authorization` header.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// When it expires, if known.
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A boxed future of a token, as [`TokenSource::fetch`] returns it.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Token>> + Send + 'a>>;

/// Where access tokens come from. Implement it for your own source.
pub trait TokenSource: Send + Sync + 'static {
    /// Fetches a new token. Failures should be [`Error::Auth`] naming this source.
    fn fetch(&self) -> TokenFuture<'_>;

    /// A name for errors and logs, such as `environment variable GOOGLE_OAUTH_ACCESS_TOKEN`.
    /// Never the token.
    fn name(&self) -> String;
}

/// The error of a source that could not give a token.
pub(crate) fn auth_error(source: &dyn TokenSource, message: impl Into<String>) -> Error {
    Error::Auth {
        source_name: source.name(),
        message: message.into(),
    }
}

/// A fixed token.
#[derive(Clone, Debug)]
pub struct StaticToken(Token);

impl StaticToken {
    /// A fixed token with no known expiry.
    pub fn new(secret: impl Into<String>) -> Self {
        StaticToken(Token::new(secret, None))
    }
}

impl TokenSource for StaticToken {
    fn fetch(&self) -> TokenFuture<'_> {
        let token = self.0.clone();
        Box::pin(async move {
            if token.secret().trim().is_empty() {
                return Err(auth_error(self, "the token is empty"));
            }
            Ok(token)
        })
    }

    fn name(&self) -> String {
        "the given token".to_owned()
    }
}

/// A token read from an environment variable at each fetch.
#[derive(Clone, Debug)]
pub struct EnvToken {
    variable: String,
}

impl EnvToken {
    /// Reads [`TOKEN_ENV`] (`GOOGLE_OAUTH_ACCESS_TOKEN`).
    pub fn new() -> Self {
        Self::named(TOKEN_ENV)
    }

    /// Reads the environment variable `variable`.
    pub fn named(variable: impl Into<String>) -> Self {
        EnvToken {
            variable: variable.into(),
        }
    }
}

impl Default for EnvToken {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenSource for EnvToken {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            match std::env::var(&self.variable) {
                Ok(value) if !value.trim().is_empty() => Ok(Token::new(value.trim(), None)),
                Ok(_) => Err(auth_error(self, "it is empty")),
                Err(std::env::VarError::NotPresent) => Err(auth_error(self, "it is not set")),
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(auth_error(self, "it is not valid UTF-8"))
                }
            }
        })
    }

    fn name(&self) -> String {
        format!("environment variable {}", self.variable)
    }
}

/// A token printed by a command, such as `gcloud auth print-access-token`. The command is
/// run again when the token is due for refresh (tokens from gcloud live an hour).
#[derive(Clone, Debug)]
pub struct CommandToken {
    program: String,
    args: Vec<String>,
    lifetime: Duration,
}

impl CommandToken {
    /// Runs `program` with `args`; its standard output, trimmed, is the token.
    pub fn new(
        program: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        CommandToken {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            lifetime: Duration::from_secs(3600),
        }
    }

    /// Runs `command` with `sh -c`.
    pub fn shell(command: impl Into<String>) -> Self {
        Self::new("sh", ["-c".to_owned(), command.into()])
    }

    /// How long a token it prints stays valid (default one hour).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    fn command_line(&self) -> String {
        match self.args.as_slice() {
            [flag, command] if self.program == "sh" && flag == "-c" => command.clone(),
            args => std::iter::once(self.program.as_str())
                .chain(args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

impl TokenSource for CommandToken {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let output = tokio::process::Command::new(&self.program)
                .args(&self.args)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|e| auth_error(self, format!("it could not be run: {e}")))?;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let first_line = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                let excerpt: String = first_line.chars().take(200).collect();
                return Err(auth_error(
                    self,
                    format!("it exited with {}: {}", output.status, excerpt.trim()),
                ));
            }
            let token = String::from_utf8(output.stdout)
                .map_err(|_| auth_error(self, "it printed something that is not UTF-8"))?;
            let token = token.trim();
            if token.is_empty() || token.contains(char::is_whitespace) {
                return Err(auth_error(self, "it did not print exactly one token"));
            }
            Ok(Token::new(token, Some(self.lifetime)))
        })
    }

    fn name(&self) -> String {
        format!("command `{}`", self.command_line())
    }
}

/// Application Default Credentials through the `gcp_auth` crate: the service-account JSON
/// named by `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's user credentials, or the metadata
/// server, whichever is found first.
#[cfg(feature = "adc")]
pub struct ApplicationDefault {
    provider: Arc<dyn gcp_auth::TokenProvider>,
}

#[cfg(feature = "adc")]
impl ApplicationDefault {
    /// The scope requested: all of Google Cloud.
    pub const SCOPE: &'static str = "https://www.googleapis.com/auth/cloud-platform";

    /// Finds the credentials.
    pub async fn new() -> Result<Self> {
        let provider = gcp_auth::provider().await.map_err(|e| Error::Auth {
            source_name: "application default credentials".to_owned(),
            message: adc_message(&e),
        })?;
        Ok(ApplicationDefault { provider })
    }
}

/// `gcp_auth`'s error, with any file contents it might quote left out.
#[cfg(feature = "adc")]
fn adc_message(error: &gcp_auth::Error) -> String {
    let text = error.to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect::<String>();
    if first.is_empty() {
        "no credentials found".to_owned()
    } else {
        first
    }
}

#[cfg(feature = "adc")]
impl fmt::Debug for ApplicationDefault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationDefault").finish_non_exhaustive()
    }
}

#[cfg(feature = "adc")]
impl TokenSource for ApplicationDefault {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let token = self
                .provider
                .token(&[Self::SCOPE])
                .await
                .map_err(|e| auth_error(self, adc_message(&e)))?;
            let lifetime = (token.expires_at() - chrono::Utc::now()).to_std().ok();
            Ok(Token::new(token.as_str(), lifetime))
        })
    }

    fn name(&self) -> String {
        "application default credentials".to_owned()
    }
}

/// Caches one token; concurrent callers share one fetch.
struct TokenCache {
    source: Box<dyn TokenSource>,
    current: Mutex<Option<Bearer>>,
    refresh: tokio::sync::Mutex<()>,
    margin: Duration,
}

impl TokenCache {
    fn valid(&self) -> Option<Bearer> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .filter(|bearer| {
                bearer
                    .token
                    .expires_at
                    .is_none_or(|at| Instant::now() + self.margin < at)
            })
            .cloned()
    }

    async fn get(&self) -> Result<Bearer> {
        if let Some(token) = self.valid() {
            return Ok(token);
        }
        let _single_flight = self.refresh.lock().await;
        if let Some(token) = self.valid() {
            return Ok(token);
        }
        let bearer = Bearer::new(self.source.fetch().await?);
        tracing::debug!(source = %self.source.name(), "fetched an access token");
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(bearer.clone());
        Ok(bearer)
    }

    /// Drops `rejected` if it is still the cached token, so the next `get` fetches anew.
    fn reject(&self, rejected: &Bearer) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().map(|c| &c.token) == Some(&rejected.token) {
            *current = None;
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
        Self::from_boxed(Box::new(source))
    }

    pub(crate) fn from_boxed(source: Box<dyn TokenSource>) -> Self {
        AuthLayer {
            cache: Some(Arc::new(TokenCache {
                source,
                current: Mutex::new(None),
                refresh: tokio::sync::Mutex::new(()),
                margin: REFRESH_MARGIN,
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

    /// Replaces cached tokens this long before they expire (default [`REFRESH_MARGIN`]).
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

type Body = tonic::body::Body;

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
        headers.insert(API_CLIENT_HEADER, HeaderValue::from_static(API_CLIENT));
        if let Some(project) = &self.layer.quota_project {
            headers.insert(USER_PROJECT_HEADER, project.clone());
        }
        let Some(cache) = &self.layer.cache else {
            return AuthFuture::calling(self.inner.call(request), None);
        };
        // The usual case: a cached token, and the call goes out on the service that was
        // driven to readiness, with nothing boxed.
        if let Some(bearer) = cache.valid() {
            let Some(value) = bearer.header.clone() else {
                return AuthFuture::failed(InvalidTokenError.into());
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
        // A token must be fetched first; the clone that was driven to readiness serves the
        // call once it has one (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let cache = cache.clone();
        AuthFuture::fetching(Box::pin(async move {
            let bearer = cache.get().await?;
            let value = bearer
                .header
                .clone()
                .ok_or_else(|| tower::BoxError::from(InvalidTokenError))?;
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value);
            let response = inner.call(request).await.map_err(Into::into)?;
            Ok(Sent { cache, bearer }.check(response))
        }))
    }
}

const API_CLIENT_HEADER: http::HeaderName = http::HeaderName::from_static("x-goog-api-client");
const USER_PROJECT_HEADER: http::HeaderName = http::HeaderName::from_static("x-goog-user-project");

/// The token a call carried, to drop it if the server rejects it.
struct Sent {
    cache: Arc<TokenCache>,
    bearer: Bearer,
}

impl Sent {
    /// On UNAUTHENTICATED, drops the token (the next call fetches a new one) and marks the
    /// response, so that `OperationsClient` retries this call once.
    fn check(self, mut response: http::Response<Body>) -> http::Response<Body> {
        if is_unauthenticated(&response) {
            tracing::debug!(source = %self.cache.source.name(), "UNAUTHENTICATED: refreshing the token once");
            self.cache.reject(&self.bearer);
            response
                .headers_mut()
                .insert(TOKEN_REJECTED, HeaderValue::from_static("1"));
        }
        response
    }
}

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
                Poll::Ready(Ok(match sent.take() {
                    Some(sent) => sent.check(response),
                    None => response,
                }))
            }
            AuthStateProjection::Fetching { call } => call.as_mut().poll(cx),
            AuthStateProjection::Failed { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "the call was already answered".into()))),
        }
    }
}

/// A token that cannot be sent as a header (it has control characters). Its text is kept
/// out of the error.
#[derive(Debug)]
struct InvalidTokenError;

impl fmt::Display for InvalidTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the access token has characters that cannot be sent in a header")
    }
}

impl std::error::Error for InvalidTokenError {}

/// A trailers-only gRPC answer of UNAUTHENTICATED (16), as servers send errors.
fn is_unauthenticated(response: &http::Response<Body>) -> bool {
    response
        .headers()
        .get("grpc-status")
        .is_some_and(|status| status.as_bytes() == b"16")
}

/// The crate error a token source failed with, if that is what a tonic status carries.
pub(crate) fn auth_failure(status: &tonic::Status) -> Option<Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(Error::Auth {
            source_name,
            message,
        }) = error.downcast_ref::<Error>()
        {
            return Some(Error::Auth {
                source_name: source_name.clone(),
                message: message.clone(),
            });
        }
        if error.downcast_ref::<InvalidTokenError>().is_some() {
            return Some(Error::Auth {
                source_name: "the token source".to_owned(),
                message: InvalidTokenError.to_string(),
            });
        }
        source = error.source();
    }
    None
}
