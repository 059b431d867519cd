//! The response guard: a tower layer between tonic and the connection that makes every
//! answer one tonic can read without panicking or misreading, and classifies transport
//! errors once.
//!
//! - **Non-gRPC answers.** A reverse proxy that cannot reach its backend answers
//!   `502 Bad Gateway` with an HTML page; tonic would read `<` as a compression flag and
//!   fail with `INTERNAL`. An answer with no `grpc-status` whose HTTP status is not 200 or
//!   whose content type is not `application/grpc*` becomes the status gRPC's
//!   `http-grpc-status-mapping.md` prescribes (502/503/504/429 → UNAVAILABLE, 401 →
//!   UNAUTHENTICATED, 403 → PERMISSION_DENIED, 404 → UNIMPLEMENTED, others → UNKNOWN), its
//!   message naming the HTTP status, the peer and the start of the body.
//! - **Bad status headers.** A `grpc-status-details-bin` that is not base64 makes tonic
//!   panic (`Status::from_header_map` expects it: tonic 0.14.9 `status.rs`); it is dropped
//!   and the message says so. A `grpc-message` that is not UTF-8 makes tonic turn any code
//!   into UNKNOWN; it is decoded lossily and keeps its code. Both in headers and trailers.
//! - **Message size.** A response body larger than the limit is `RESOURCE_EXHAUSTED`, as
//!   gRPC prescribes, refused before it is buffered.
//! - **Transport errors** (from the call and from the body) become `UNAVAILABLE` statuses
//!   carrying a [`Fault`] that says whether the request provably never reached the server.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt as _;
use prost::bytes::{Buf as _, Bytes};
use tonic::Code;
use tonic::body::Body;
use tower::{Layer, Service};

use super::fault::Fault;

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
const GRPC_DETAILS: HeaderName = HeaderName::from_static("grpc-status-details-bin");

/// How much of a non-gRPC body is quoted in the error.
const EXCERPT_BYTES: usize = 200;
/// How long the guard waits for that much of a non-gRPC body.
const EXCERPT_WAIT: Duration = Duration::from_millis(500);

/// Base64 as tonic 0.14 decodes `grpc-status-details-bin` (standard, padding optional).
const DETAILS_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Wraps a connection (or pool) in the response guard: non-gRPC answers, bad status
/// headers and oversized messages become statuses tonic reads safely, and transport
/// errors are classified once ([`Fault`]).
#[derive(Debug, Clone)]
pub struct GuardLayer {
    peer: Arc<str>,
    max_response_bytes: usize,
}

impl GuardLayer {
    /// A guard for calls to `peer` (`host:port`, named in errors), refusing response
    /// messages over `max_response_bytes`.
    pub fn new(peer: impl Into<Arc<str>>, max_response_bytes: usize) -> Self {
        GuardLayer {
            peer: peer.into(),
            max_response_bytes,
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`GuardLayer`] makes.
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    layer: GuardLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<Body>> for Guard<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>>,
    S::Error: Into<tower::BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    type Response = http::Response<Body>;
    type Error = tower::BoxError;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let peer = &self.layer.peer;
        self.inner
            .poll_ready(cx)
            .map_err(|e| transport_error(e.into(), peer))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        GuardFuture {
            state: GuardState::Calling {
                call: self.inner.call(request),
                layer: Some(self.layer.clone()),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Guard`]: nothing boxed on the usual path; a non-gRPC answer
    /// is read (its start, briefly) on the heap.
    pub struct GuardFuture<F> {
        #[pin]
        state: GuardState<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = GuardStateProjection]
    enum GuardState<F> {
        Calling {
            #[pin]
            call: F,
            layer: Option<GuardLayer>,
        },
        Reading {
            read: BoxFuture<tonic::Status>,
        },
    }
}

impl<F, B, E> Future for GuardFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<tower::BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    type Output = Result<http::Response<Body>, tower::BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (http_status, headers, body, peer) = match self.as_mut().project().state.project() {
            GuardStateProjection::Reading { read } => {
                return read.as_mut().poll(cx).map(|status| Ok(status.into_http()));
            }
            GuardStateProjection::Calling { call, layer } => {
                let answer = std::task::ready!(call.poll(cx));
                let Some(layer) = layer.take() else {
                    return Poll::Ready(Err("the call was already answered".into()));
                };
                let response = match answer {
                    Ok(response) => response,
                    Err(e) => return Poll::Ready(Err(transport_error(e.into(), &layer.peer))),
                };
                let (mut parts, body) = response.into_parts();
                let (has_status, grpc_content) = scan_head(&parts.headers);
                if !has_status && (parts.status != StatusCode::OK || !grpc_content) {
                    (parts.status, parts.headers, body, layer.peer)
                } else {
                    if has_status {
                        // Trailers-only: the status is all there is.
                        sanitize_status(&mut parts.headers);
                    }
                    let body = GuardedBody {
                        inner: body,
                        peer: layer.peer,
                        left: layer.max_response_bytes.saturating_add(5),
                        limit: layer.max_response_bytes,
                    };
                    return Poll::Ready(Ok(http::Response::from_parts(parts, Body::new(body))));
                }
            }
        };
        let read =
            Box::pin(async move { non_grpc_status(http_status, &headers, body, &peer).await });
        self.as_mut()
            .project()
            .state
            .set(GuardState::Reading { read });
        self.poll(cx)
    }
}

/// A transport error, classified; a status from below is passed on as it is.
fn transport_error(error: tower::BoxError, peer: &Arc<str>) -> tower::BoxError {
    match Fault::classify(&*error, peer) {
        Some(fault) => Box::new(fault.into_status()),
        None => error,
    }
}

/// The code of a trailers-only answer: its headers' `grpc-status`, if they carry one. A
/// pass over the few headers an answer has, cheaper than a hashed look-up on every call;
/// the one scan for it the layers share.
pub(super) fn grpc_status(headers: &HeaderMap) -> Option<Code> {
    headers
        .iter()
        .find(|(name, _)| **name == GRPC_STATUS)
        .map(|(_, value)| Code::from_bytes(value.as_bytes()))
}

/// Whether response headers carry a `grpc-status` (a trailers-only answer), and whether
/// their content type is gRPC's. One pass over the few headers an answer has, cheaper than
/// two hashed look-ups on every call.
fn scan_head(headers: &HeaderMap) -> (bool, bool) {
    let mut has_status = false;
    let mut grpc_content = false;
    for (name, value) in headers {
        if *name == CONTENT_TYPE {
            grpc_content = value.as_bytes().starts_with(b"application/grpc");
        } else if *name == GRPC_STATUS {
            has_status = true;
        }
    }
    (has_status, grpc_content)
}

/// The code gRPC's HTTP-to-gRPC mapping gives an HTTP status.
pub(crate) fn code_of_http(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// The status of an answer that is not gRPC, quoting the start of its body.
async fn non_grpc_status<B>(
    http_status: StatusCode,
    headers: &HeaderMap,
    body: B,
    peer: &str,
) -> tonic::Status
where
    B: http_body::Body<Data = Bytes>,
{
    let mut excerpt = Vec::new();
    let read = async {
        let mut body = std::pin::pin!(body);
        while excerpt.len() < EXCERPT_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        let take = data.remaining().min(EXCERPT_BYTES - excerpt.len());
                        excerpt.extend_from_slice(&data.copy_to_bytes(take));
                    }
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(EXCERPT_WAIT, read).await;
    let content_type = headers
        .get(CONTENT_TYPE)
        .map(|ct| String::from_utf8_lossy(ct.as_bytes()).into_owned())
        .unwrap_or_else(|| "no content type".to_owned());
    let text: String = String::from_utf8_lossy(&excerpt)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let reason = http_status.canonical_reason().unwrap_or("");
    let mut message = format!(
        "{peer} answered HTTP {} {reason} ({content_type}), not gRPC",
        http_status.as_u16()
    );
    if !text.is_empty() {
        message.push_str(&format!(": {text:?}"));
    }
    tonic::Status::new(code_of_http(http_status), message)
}

/// Makes a status in `headers` safe for tonic to read: details that are not base64 are
/// dropped, a message that is not UTF-8 is decoded lossily. Untouched when both are fine.
fn sanitize_status(headers: &mut HeaderMap) {
    let mut details_ok = true;
    let mut message_ok = true;
    // One pass, no hashing: a trailer block holds two or three entries.
    for (name, value) in headers.iter() {
        if *name == GRPC_DETAILS {
            details_ok = DETAILS_BASE64.decode(value.as_bytes()).is_ok();
        } else if *name == GRPC_MESSAGE {
            message_ok = percent_encoding::percent_decode(value.as_bytes())
                .decode_utf8()
                .is_ok();
        }
    }
    if details_ok && message_ok {
        return;
    }
    let code = headers
        .get(GRPC_STATUS)
        .map_or(Code::Unknown, |c| Code::from_bytes(c.as_bytes()));
    let mut message = headers
        .get(GRPC_MESSAGE)
        .map(|m| {
            String::from_utf8_lossy(
                &percent_encoding::percent_decode(m.as_bytes()).collect::<Vec<_>>(),
            )
            .into_owned()
        })
        .unwrap_or_default();
    if !details_ok {
        headers.remove(GRPC_DETAILS);
        message.push_str(" (the server's grpc-status-details-bin was not base64)");
    }
    headers.remove(GRPC_MESSAGE);
    headers.remove(GRPC_STATUS);
    // Writes grpc-status and a percent-encoded grpc-message; valid details stay as sent.
    if tonic::Status::new(code, message)
        .add_header(headers)
        .is_err()
    {
        headers.insert(GRPC_STATUS, HeaderValue::from(code as i32));
    }
}

pin_project_lite::pin_project! {
    /// A response body checked as it is read: size limit, status trailers, transport errors.
    struct GuardedBody<B> {
        #[pin]
        inner: B,
        peer: Arc<str>,
        left: usize,
        limit: usize,
    }
}

impl<B> http_body::Body for GuardedBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<tower::BoxError>,
{
    type Data = Bytes;
    type Error = tower::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let frame = match std::task::ready!(this.inner.poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(error)) => {
                return Poll::Ready(Some(Err(transport_error(error.into(), this.peer))));
            }
            Some(Ok(frame)) => frame,
        };
        let frame = match frame.into_data() {
            Ok(data) => {
                if data.len() > *this.left {
                    let status = tonic::Status::resource_exhausted(format!(
                        "the response from {} is larger than the limit of {} bytes",
                        this.peer, this.limit
                    ));
                    *this.left = 0;
                    return Poll::Ready(Some(Err(Box::new(status))));
                }
                *this.left -= data.len();
                http_body::Frame::data(data)
            }
            Err(frame) => match frame.into_trailers() {
                Ok(mut trailers) => {
                    sanitize_status(&mut trailers);
                    http_body::Frame::trailers(trailers)
                }
                Err(other) => other,
            },
        };
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_as_grpc_prescribes() {
        let table = [
            (400, Code::Internal),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::Unimplemented),
            (429, Code::Unavailable),
            (502, Code::Unavailable),
            (503, Code::Unavailable),
            (504, Code::Unavailable),
            (500, Code::Unknown),
            (418, Code::Unknown),
        ];
        for (http, code) in table {
            assert_eq!(
                code_of_http(StatusCode::from_u16(http).unwrap()),
                code,
                "{http}"
            );
        }
    }

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    #[test]
    fn a_message_that_is_not_utf8_keeps_its_code() {
        let mut map = headers(&[("grpc-status", b"14"), ("grpc-message", b"caf%C3%28 down")]);
        sanitize_status(&mut map);
        let status = tonic::Status::from_header_map(&map).unwrap();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().starts_with("caf"), "{}", status.message());
        assert!(status.message().ends_with(" down"), "{}", status.message());
    }

    #[test]
    fn details_that_are_not_base64_are_dropped_and_said() {
        let mut map = headers(&[
            ("grpc-status", b"5"),
            ("grpc-message", b"gone"),
            ("grpc-status-details-bin", b"%%%not base64"),
        ]);
        sanitize_status(&mut map);
        // tonic would have panicked on the original map.
        let status = tonic::Status::from_header_map(&map).unwrap();
        assert_eq!(status.code(), Code::NotFound);
        assert!(
            status.message().contains("not base64"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn good_status_headers_are_left_as_they_are() {
        let original = headers(&[
            ("grpc-status", b"8"),
            ("grpc-message", b"quota%20exceeded"),
            ("grpc-status-details-bin", b"CAg"),
        ]);
        let mut map = original.clone();
        sanitize_status(&mut map);
        assert_eq!(map, original);
    }
}
