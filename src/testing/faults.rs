//! Faults below gRPC: the fake answers some calls the way a reverse proxy, a broken server or
//! a dead backend does, so that tests meet what clients meet on real networks.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use http::{HeaderValue, StatusCode};
use prost::bytes::Bytes;
use tonic::Code;
use tonic::body::Body;
use tower::{Layer, Service};

use super::FakeMethod;
use super::state::{Shared, lock};

/// How the fake answers a call below gRPC.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpFault {
    /// A reverse proxy's error page: this HTTP status, content type and body, no gRPC.
    ErrorPage {
        /// The HTTP status, e.g. 502.
        status: u16,
        /// The content type, e.g. `text/html`.
        content_type: String,
        /// The body.
        body: String,
    },
    /// Response headers, then `RST_STREAM` (INTERNAL_ERROR) instead of a message.
    ResetStream,
    /// No answer at all, until the fake stops.
    Silence,
    /// An error status with a `grpc-message` that is not UTF-8 and a
    /// `grpc-status-details-bin` that is not base64.
    MangledStatus {
        /// The `grpc-status` sent.
        code: Code,
    },
}

impl HttpFault {
    /// The page a reverse proxy answers with when its backend is down or restarting.
    pub fn bad_gateway() -> Self {
        Self::error_page(
            502,
            "text/html",
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        )
    }

    /// An error page with this status, content type and body.
    pub fn error_page(status: u16, content_type: &str, body: &str) -> Self {
        HttpFault::ErrorPage {
            status,
            content_type: content_type.to_owned(),
            body: body.to_owned(),
        }
    }

    /// The answer this fault gives; `None` for silence.
    fn response(&self) -> Option<http::Response<Body>> {
        let mut response = http::Response::new(Body::empty());
        let headers = response.headers_mut();
        match self {
            HttpFault::ErrorPage {
                status,
                content_type,
                body,
            } => {
                *response.status_mut() =
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
                if let Ok(value) = HeaderValue::from_str(content_type) {
                    response
                        .headers_mut()
                        .insert(http::header::CONTENT_TYPE, value);
                }
                *response.body_mut() =
                    Body::new(http_body_util::Full::new(Bytes::from(body.clone())));
            }
            HttpFault::ResetStream => {
                headers.insert(http::header::CONTENT_TYPE, grpc());
                let broken = futures_util::stream::once(async {
                    Err::<http_body::Frame<Bytes>, _>(std::io::Error::other(
                        "stream reset by the fake",
                    ))
                });
                *response.body_mut() = Body::new(http_body_util::StreamBody::new(broken));
            }
            HttpFault::MangledStatus { code } => {
                headers.insert(http::header::CONTENT_TYPE, grpc());
                headers.insert("grpc-status", HeaderValue::from(*code as i32));
                if let Ok(message) = HeaderValue::from_bytes(b"caf\xc3\x28 mangled") {
                    headers.insert("grpc-message", message);
                }
                headers.insert(
                    "grpc-status-details-bin",
                    HeaderValue::from_static("%%%not base64"),
                );
            }
            HttpFault::Silence => return None,
        }
        Some(response)
    }
}

fn grpc() -> HeaderValue {
    HeaderValue::from_static("application/grpc")
}

/// Puts the fake's HTTP faults in front of its services.
#[derive(Clone)]
pub(super) struct FaultLayer(pub(super) Arc<Shared>);

impl<S> Layer<S> for FaultLayer {
    type Service = FaultService<S>;

    fn layer(&self, inner: S) -> FaultService<S> {
        FaultService {
            inner,
            shared: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub(super) struct FaultService<S> {
    inner: S,
    shared: Arc<Shared>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<http::Request<Body>> for FaultService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let method = FakeMethod::ALL
            .into_iter()
            .find(|m| m.path() == request.uri().path());
        let fault = method.and_then(|method| self.take_fault(method));
        let Some(fault) = fault else {
            return Box::pin(self.inner.call(request));
        };
        let shared = self.shared.clone();
        Box::pin(async move {
            if let Some(response) = fault.response() {
                return Ok(response);
            }
            // Silence: hold the call until the fake stops.
            loop {
                let changed = shared.changed.notified();
                if shared.stopping.load(Ordering::SeqCst) {
                    return Ok(tonic::Status::unavailable("the fake server stopped").into_http());
                }
                changed.await;
            }
        })
    }
}

impl<S> FaultService<S> {
    /// The fault due for the next call of `method`, counted as a call and a fault.
    fn take_fault(&self, method: FakeMethod) -> Option<HttpFault> {
        let fault = {
            let mut faults = lock(&self.shared.http_faults);
            match faults.get_mut(&method) {
                Some((left, fault)) if *left > 0 => {
                    *left -= 1;
                    Some(fault.clone())
                }
                _ => None,
            }
        }?;
        self.shared.calls[method.index()].fetch_add(1, Ordering::SeqCst);
        self.shared.faults_injected.fetch_add(1, Ordering::SeqCst);
        Some(fault)
    }
}
