//! [`StartCall`]: a call of any API that starts a long-running operation.

use std::time::Duration;

use super::OperationsClient;
use super::call::{Call, routing_text};
use crate::client::RawOperation;
use crate::error::{Error, Result};
use crate::transport::RetryPolicy;

/// A call that starts an operation, for any API: its path, its routing parameters and its
/// retry policy. The request must answer with a `google.longrunning.Operation`.
///
/// ```
/// use longrunning::StartCall;
/// use longrunning::RetryPolicy;
///
/// let call = StartCall::new("/google.cloud.speech.v1.Speech/LongRunningRecognize")
///     .retry_policy(RetryPolicy::no_retries(std::time::Duration::from_secs(60)));
/// ```
#[derive(Debug, Clone)]
pub struct StartCall {
    path: &'static str,
    routing: Vec<(&'static str, String)>,
    policy: Option<RetryPolicy>,
}

impl StartCall {
    /// A start call of the RPC at `path` (`/package.Service/Method`). By default it is sent
    /// once (plus the retries of a request that never reached the server) with a 60 s
    /// deadline.
    pub fn new(path: &'static str) -> Self {
        StartCall {
            path,
            routing: Vec::new(),
            policy: None,
        }
    }

    /// Adds a routing parameter (`x-goog-request-params`), e.g. `("parent", "projects/p")`.
    /// Empty values are left out, as Google's clients do.
    pub fn route(mut self, key: &'static str, value: impl Into<String>) -> Self {
        let value = value.into();
        if !value.is_empty() {
            self.routing.push((key, value));
        }
        self
    }

    /// The retry policy (timeouts and retried codes) of this call.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = Some(policy);
        self
    }
}

impl OperationsClient {
    /// Sends a call that starts an operation and returns the raw operation. Typed handles
    /// come from [`OperationsClient::start`].
    pub async fn start_raw<Req>(&self, start: &StartCall, request: Req) -> Result<RawOperation>
    where
        Req: prost::Message + Clone + Send + Sync + 'static,
    {
        let mut header = String::new();
        for (key, value) in &start.routing {
            if !header.is_empty() {
                header.push('&');
            }
            header.push_str(&routing_text(key, value));
        }
        let value = http::HeaderValue::from_maybe_shared(bytes::Bytes::from(header.into_bytes()))
            .map_err(|_| Error::InvalidArgument("unroutable start call".into()))?;
        let mut call = Call::new(start.path, value);
        call.policy = Some(
            start
                .policy
                .clone()
                .unwrap_or_else(|| RetryPolicy::no_retries(Duration::from_secs(60))),
        );
        call.sends_deadline = true;
        self.call(call, request).await
    }
}
