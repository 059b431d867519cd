//! Access tokens and where they come from: [`StaticToken`], [`EnvToken`]
//! (`GOOGLE_OAUTH_ACCESS_TOKEN` by default), [`CommandToken`] (for
//! `gcloud auth print-access-token`), and with the `adc` feature `ApplicationDefault`
//! (service-account JSON from `GOOGLE_APPLICATION_CREDENTIALS`, gcloud user credentials, the
//! metadata server). Tokens never appear in `Debug`, `Display`, errors or logs.
//!
//! After the server rejects a token, [`AuthLayer`](super::auth::AuthLayer) drops it and the
//! call is sent once more with a fresh fetch. Where a source cannot give a new token: a
//! [`StaticToken`] (the retry carries the same token); an [`EnvToken`] whose variable did
//! not change;
//! `ApplicationDefault`, whose `gcp_auth` cache returns the same token until 20 s before it
//! expires (the retry then fails the same way, and the error is the server's).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// How long before its expiry a cached token is replaced, unless its source says otherwise.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The environment variable [`EnvToken::new`] reads.
pub const TOKEN_ENV: &str = "GOOGLE_OAUTH_ACCESS_TOKEN";

/// An OAuth2 access token. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    secret: Arc<str>,
    expires_at: Option<Instant>,
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

    /// How long before expiry a cached token is replaced (default [`REFRESH_MARGIN`]). Set
    /// it below the source's own caching margin, or refreshes get the same token back.
    fn refresh_margin(&self) -> Duration {
        REFRESH_MARGIN
    }

    /// Whether a fetch after a rejection can give another token (default true). A fixed
    /// token cannot: a call it made that the server rejected is not retried.
    fn can_renew(&self) -> bool {
        true
    }
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
///
/// Each run is bounded: it must finish within [`CommandToken::time_limit`] (default 8 s)
/// and print at most [`CommandToken::MAX_OUTPUT`] bytes. A command that runs over either,
/// or whose call is dropped, is killed together with its process group (the children a
/// shell started too). Every error names the command.
#[derive(Clone, Debug)]
pub struct CommandToken {
    program: String,
    args: Vec<String>,
    lifetime: Duration,
    time_limit: Duration,
}

impl CommandToken {
    /// The most a token command may print (64 KiB; access tokens are a few KiB).
    pub const MAX_OUTPUT: usize = 64 * 1024;

    /// Runs `program` with `args`; its standard output, trimmed, is the token.
    pub fn new(
        program: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        CommandToken {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            lifetime: Duration::from_secs(3600),
            time_limit: Duration::from_secs(8),
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

    /// How long one run may take before it is killed (default 8 s, within the 10 s per-call
    /// deadline of a call waiting for the token, so that a hung command is named as such).
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
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

    async fn run(&self) -> Result<Token> {
        use tokio::io::AsyncReadExt as _;
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| auth_error(self, format!("it could not be run: {e}")))?;
        let mut group = ProcessGroup(child.id());
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(auth_error(self, "its output could not be read"));
        };
        let cap = Self::MAX_OUTPUT as u64 + 1;
        let mut stdout = stdout.take(cap);
        let run = async {
            // stderr is read beside, so that a command filling it cannot block; stdout decides.
            let errors = tokio::spawn(async move {
                let mut err = Vec::new();
                let _ = stderr.take(4096).read_to_end(&mut err).await;
                err
            });
            let mut out = Vec::new();
            let read_out = stdout.read_to_end(&mut out).await;
            if read_out.is_err() || out.len() as u64 >= cap {
                errors.abort();
                return Err(auth_error(
                    self,
                    format!("it printed more than {} bytes", Self::MAX_OUTPUT),
                ));
            }
            let status = child
                .wait()
                .await
                .map_err(|e| auth_error(self, format!("it could not be waited for: {e}")))?;
            let err = errors.await.unwrap_or_default();
            Ok((status, out, err))
        };
        let (status, out, err) =
            tokio::time::timeout(self.time_limit, run)
                .await
                .map_err(|_| {
                    auth_error(
                        self,
                        format!("it did not finish within {:?}", self.time_limit),
                    )
                })??;
        // It exited and was reaped: its id may be reused from now on, so the group is not
        // signalled (what it left running in the background is its own business).
        group.0 = None;
        if !status.success() {
            let stderr = String::from_utf8_lossy(&err);
            let first_line = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let excerpt: String = first_line.chars().take(200).collect();
            return Err(auth_error(
                self,
                format!("it exited with {status}: {}", excerpt.trim()),
            ));
        }
        let token = String::from_utf8(out)
            .map_err(|_| auth_error(self, "it printed something that is not UTF-8"))?;
        let token = token.trim();
        if token.is_empty() || token.contains(char::is_whitespace) {
            return Err(auth_error(self, "it did not print exactly one token"));
        }
        Ok(Token::new(token, Some(self.lifetime)))
    }
}

/// Kills a token command's whole process group when dropped before the command exited:
/// when it ran over its limits, or when the call waiting for it was dropped.
struct ProcessGroup(Option<u32>);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self.0.and_then(|pid| libc::pid_t::try_from(pid).ok()) {
            #[allow(unsafe_code)]
            // SAFETY: killpg only sends a signal; the group was made for this command
            // (`process_group(0)`), so nothing else is in it.
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
    }
}

impl TokenSource for CommandToken {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self.run())
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

    /// gcp_auth caches each token and hands out a new one only 20 s before expiry: a wider
    /// margin would fetch the same token again and again.
    fn refresh_margin(&self) -> Duration {
        Duration::from_secs(10)
    }
}
