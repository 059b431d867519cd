//! Faults below gRPC: the fake answers some calls the way a reverse proxy, a broken server or
//! a dead backend does, so that tests meet what clients meet on real networks.

use http::{HeaderValue, StatusCode};
use prost::bytes::Bytes;
use tonic::Code;
use tonic::body::Body;

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
    pub(super) fn response(&self) -> Option<http::Response<Body>> {
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
