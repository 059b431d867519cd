//! One unary gRPC call on the crate's transport: the request goes out as a single
//! length-prefixed frame; the response frame and the final status come back.
//!
//! The generated tonic clients send unary calls through tonic's streaming encoder and
//! decoder, which are built for streams of messages. Every RPC this crate makes carries one
//! message each way, so it frames the request itself, reads the response body to its
//! trailers, and decodes one message. This saves about 11,000 of the 140,000-odd
//! instructions a GetOperation round trip cost (`cargo bench --features testing --bench
//! instructions`). It also lets the crate
//! refuse what tonic would panic on: a `grpc-status-details-bin` that is not base64.
//!
//! The semantics are gRPC's, as tonic implements them:
//! - A `grpc-status` in the response headers (trailers-only response) ends the call.
//! - Otherwise the trailers' `grpc-status` does. Without one, the HTTP status maps to a
//!   code, as in gRPC's `http-grpc-status-mapping`.
//! - A compressed message is refused (none was asked for). A message over
//!   [`MAX_RESPONSE_BYTES`] is `OUT_OF_RANGE`. A second message is `INTERNAL`.
//! - Transport failures keep their source, so that [`Status::from_tonic`] can tell them
//!   apart (they become `UNAVAILABLE`).
//!
//! [`Status::from_tonic`]: crate::error::Status::from_tonic

use std::sync::OnceLock;

use base64::Engine as _;
use http::header::{CONTENT_TYPE, TE};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt as _;
use prost::Message;
use prost::bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use tonic::{Code, Status};
use tower::{Service as _, ServiceExt as _};

use crate::client::GrpcService;

/// The largest response message accepted: tonic's default, 4 MiB.
pub(crate) const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// The 5-byte prefix of every gRPC message: a compression flag and a big-endian length.
const PREFIX: usize = 5;

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_STATUS_DETAILS: HeaderName = HeaderName::from_static("grpc-status-details-bin");

/// Room for the headers a GetOperation carries: `te`, `content-type`, the routing header,
/// `authorization` and `x-goog-api-client` from the auth layer, `user-agent` from the
/// channel. A seventh (`grpc-timeout`, `x-goog-user-project`) makes the map grow once. The
/// next size up (twelve) is a larger allocation that cost every GetOperation about 300
/// instructions more (`--bench instructions`).
const HEADER_CAPACITY: usize = 6;

/// One RPC: its service and method, and the request path made from them once.
pub(crate) struct Method {
    /// The fully qualified service, e.g. `google.longrunning.Operations`.
    pub(crate) service: &'static str,
    /// The method, e.g. `GetOperation`, as errors and logs name it.
    pub(crate) name: &'static str,
    path: OnceLock<http::Uri>,
}

impl Method {
    pub(crate) const fn new(service: &'static str, name: &'static str) -> Self {
        Method {
            service,
            name,
            path: OnceLock::new(),
        }
    }

    /// `/service/name`, built and parsed on first use; later clones share its bytes.
    fn path(&self) -> http::Uri {
        self.path
            .get_or_init(|| {
                let path = format!("/{}/{}", self.service, self.name);
                // Service and method names are identifiers and dots: always a valid path.
                http::Uri::try_from(path).unwrap_or_default()
            })
            .clone()
    }
}

/// A request message, framed once and sent as often as a call is retried.
#[derive(Clone)]
pub(crate) struct Frame(Bytes);

impl Frame {
    /// Frames `message`: flag 0 (not compressed), its length, its bytes.
    pub(crate) fn encode(message: &impl Message) -> Result<Self, Status> {
        let len = message.encoded_len();
        let prefix_len = u32::try_from(len)
            .map_err(|_| Status::out_of_range(format!("a request of {len} bytes is too large")))?;
        let mut buf = BytesMut::with_capacity(PREFIX + len);
        buf.put_u8(0);
        buf.put_u32(prefix_len);
        message.encode_raw(&mut buf);
        Ok(Frame(buf.freeze()))
    }
}

/// The headers every call starts with (more are added by the caller and the layers).
pub(crate) fn call_headers() -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(HEADER_CAPACITY);
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers
}

/// A `grpc-timeout` value: the most precise unit that keeps the number within the 8 digits
/// gRPC allows (as tonic writes it), saturating at 99,999,999 hours instead of failing.
pub(crate) fn grpc_timeout(timeout: std::time::Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let secs = u128::from(timeout.as_secs());
    let (value, unit) = [
        (timeout.as_nanos(), 'n'),
        (timeout.as_micros(), 'u'),
        (timeout.as_millis(), 'm'),
        (secs, 'S'),
        (secs / 60, 'M'),
        (secs / 3600, 'H'),
    ]
    .into_iter()
    .find(|(value, _)| *value <= MAX)
    .unwrap_or((MAX, 'H'));
    // Digits and a unit letter are always a valid header value.
    HeaderValue::from_maybe_shared(Bytes::from(format!("{value}{unit}")))
        .unwrap_or(HeaderValue::from_static("99999999H"))
}

/// Sends `request` to `method` and decodes the one response.
pub(crate) async fn call<Resp: Message + Default>(
    mut service: GrpcService,
    method: &'static Method,
    headers: HeaderMap,
    request: Frame,
) -> Result<Resp, Status> {
    // The request is built only once the channel is ready, so that the future does not
    // carry it across that wait (a waiter holds thousands of these futures).
    service.ready().await.map_err(Status::from_error)?;
    let mut http_request = http::Request::new(tonic::body::Body::new(RequestBody(Some(request.0))));
    *http_request.method_mut() = http::Method::POST;
    *http_request.version_mut() = http::Version::HTTP_2;
    *http_request.uri_mut() = method.path();
    *http_request.headers_mut() = headers;
    let response = service
        .call(http_request)
        .await
        .map_err(Status::from_error)?;
    read_response(response).await
}

/// The request body: one frame, of a size it does not announce. (An exact size would make
/// hyper add a `content-length` header, which gRPC does not use, and which costs both ends
/// of every call a header.)
struct RequestBody(Option<Bytes>);

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.take().map(|data| Ok(http_body::Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }
}

/// Reads a response to its end: headers, the one message, trailers.
async fn read_response<Resp: Message + Default>(
    response: http::Response<tonic::body::Body>,
) -> Result<Resp, Status> {
    // Only the HTTP status is kept from the head (the future stays small).
    let (http_status, mut body) = {
        let (parts, body) = response.into_parts();
        // A trailers-only response: the status is all there is.
        if let Some(status) = final_status(&parts.headers) {
            status?;
            return Err(Status::internal("missing response message"));
        }
        (parts.status, body)
    };
    let mut message = Received::default();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        match frame.into_data() {
            Ok(data) => message.push(data)?,
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    match trailers.as_ref().and_then(final_status) {
        Some(status) => status?,
        None => return Err(status_from_http(http_status)),
    }
    message.decode()
}

/// The status in `headers`: `None` without `grpc-status`, `Ok` for code 0.
fn final_status(headers: &HeaderMap) -> Option<Result<(), Status>> {
    let code = headers.get(GRPC_STATUS)?;
    if code.as_bytes() == b"0" {
        return Some(Ok(()));
    }
    // tonic panics on details that are not base64; drop them and say so instead.
    let details_are_base64 = headers
        .get(GRPC_STATUS_DETAILS)
        .is_none_or(|details| STATUS_DETAILS_BASE64.decode(details.as_bytes()).is_ok());
    let status = if details_are_base64 {
        Status::from_header_map(headers)
    } else {
        let mut headers = headers.clone();
        headers.remove(GRPC_STATUS_DETAILS);
        Status::from_header_map(&headers).map(|status| {
            Status::with_metadata(
                status.code(),
                format!(
                    "{} (the server's grpc-status-details-bin was not base64)",
                    status.message()
                ),
                status.metadata().clone(),
            )
        })
    };
    status.map(|status| {
        if status.code() == Code::Ok {
            Ok(())
        } else {
            Err(status)
        }
    })
}

/// Base64 as gRPC sends binary headers: standard alphabet, padding optional.
const STATUS_DETAILS_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// The code of a response without `grpc-status`, from its HTTP status (gRPC's
/// `http-grpc-status-mapping`).
fn status_from_http(status: http::StatusCode) -> Status {
    let code = match status {
        http::StatusCode::BAD_REQUEST => Code::Internal,
        http::StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        http::StatusCode::FORBIDDEN => Code::PermissionDenied,
        http::StatusCode::NOT_FOUND => Code::Unimplemented,
        http::StatusCode::TOO_MANY_REQUESTS
        | http::StatusCode::BAD_GATEWAY
        | http::StatusCode::SERVICE_UNAVAILABLE
        | http::StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(
        code,
        format!(
            "the response has no grpc-status (HTTP status {})",
            status.as_u16()
        ),
    )
}

/// The response body as it arrives: usually one chunk, kept without copying.
#[derive(Default)]
struct Received {
    first: Bytes,
    more: Option<BytesMut>,
}

impl Received {
    fn push(&mut self, data: Bytes) -> Result<(), Status> {
        if self.first.is_empty() && self.more.is_none() {
            self.first = data;
        } else {
            let more = self.more.get_or_insert_with(|| {
                let mut more = BytesMut::with_capacity(self.first.len() + data.len());
                more.extend_from_slice(&self.first);
                more
            });
            more.extend_from_slice(&data);
        }
        // Refuse an oversized message as soon as its prefix says so, before buffering it.
        self.check_prefix().map(|_| ())
    }

    fn bytes(&self) -> &[u8] {
        match &self.more {
            Some(more) => more,
            None => &self.first,
        }
    }

    /// The message's length once the prefix is in, after checking the flag and the limit.
    fn check_prefix(&self) -> Result<Option<usize>, Status> {
        let mut bytes = self.bytes();
        if bytes.len() < PREFIX {
            return Ok(None);
        }
        match bytes.get_u8() {
            0 => {}
            1 => {
                return Err(Status::internal(
                    "protocol error: a compressed response message, but no compression was negotiated",
                ));
            }
            flag => {
                return Err(Status::internal(format!(
                    "protocol error: invalid compression flag {flag} (valid flags are 0 and 1)"
                )));
            }
        }
        let len = usize::try_from(bytes.get_u32()).unwrap_or(usize::MAX);
        if len > MAX_RESPONSE_BYTES {
            return Err(Status::out_of_range(format!(
                "the response message has {len} bytes; the limit is {MAX_RESPONSE_BYTES}"
            )));
        }
        if bytes.len() > len {
            return Err(Status::internal(
                "protocol error: more than one response message in a unary call",
            ));
        }
        Ok(Some(len))
    }

    fn decode<Resp: Message + Default>(self) -> Result<Resp, Status> {
        let len = match self.check_prefix()? {
            Some(len) => len,
            None if self.bytes().is_empty() => {
                return Err(Status::internal("missing response message"));
            }
            None => return Err(Status::internal("the response ended inside a message")),
        };
        let body = &self.bytes()[PREFIX..];
        if body.len() < len {
            return Err(Status::internal("the response ended inside a message"));
        }
        Resp::decode(body).map_err(|e| Status::internal(format!("undecodable response: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::longrunning as pb;

    fn received(chunks: &[&[u8]]) -> Result<Received, Status> {
        let mut received = Received::default();
        for chunk in chunks {
            received.push(Bytes::copy_from_slice(chunk))?;
        }
        Ok(received)
    }

    fn framed(message: &impl Message) -> Vec<u8> {
        Frame::encode(message)
            .map(|f| f.0.to_vec())
            .unwrap_or_default()
    }

    #[test]
    fn a_message_split_anywhere_decodes_the_same() {
        let op = pb::Operation {
            name: "operations/a".into(),
            done: true,
            ..Default::default()
        };
        let bytes = framed(&op);
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            let decoded: pb::Operation = received(&[a, b])
                .and_then(Received::decode)
                .expect("decodes");
            assert_eq!(decoded, op, "split at {split}");
        }
    }

    proptest::proptest! {
        /// Whatever bytes a server sends, in whatever chunks: a message or a typed status,
        /// never a panic.
        #[test]
        fn arbitrary_response_bodies_decode_or_fail_cleanly(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            cuts in proptest::collection::vec(0usize..256, 0..4),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([body.len()]) {
                chunks.push(&body[start..cut]);
                start = cut;
            }
            let _ = received(&chunks).and_then(Received::decode::<pb::Operation>);
        }

        /// A framed operation decodes to itself however its bytes are chunked.
        #[test]
        fn framed_operations_round_trip(
            name in "[ -~]{0,40}",
            done in proptest::prelude::any::<bool>(),
            split in 0usize..64,
        ) {
            let op = pb::Operation { name, done, ..Default::default() };
            let bytes = framed(&op);
            let (a, b) = bytes.split_at(split.min(bytes.len()));
            let decoded = received(&[a, b]).and_then(Received::decode::<pb::Operation>);
            proptest::prop_assert_eq!(decoded.ok(), Some(op));
        }
    }

    #[test]
    fn an_empty_message_is_five_bytes() {
        assert_eq!(framed(&()), vec![0, 0, 0, 0, 0]);
        let empty: () = received(&[&[0, 0, 0, 0, 0]])
            .and_then(Received::decode)
            .expect("decodes");
        assert_eq!(empty, ());
    }

    #[test]
    fn broken_bodies_are_typed_statuses() {
        let code = |chunks: &[&[u8]]| {
            received(chunks)
                .and_then(Received::decode::<pb::Operation>)
                .map(|_| ())
                .map_err(|status| status.code())
        };
        assert_eq!(code(&[]), Err(Code::Internal), "no message");
        assert_eq!(code(&[&[0, 0, 0]]), Err(Code::Internal), "cut prefix");
        assert_eq!(
            code(&[&[0, 0, 0, 0, 9, 1]]),
            Err(Code::Internal),
            "cut body"
        );
        assert_eq!(code(&[&[1, 0, 0, 0, 0]]), Err(Code::Internal), "compressed");
        assert_eq!(code(&[&[7, 0, 0, 0, 0]]), Err(Code::Internal), "bad flag");
        assert_eq!(
            code(&[&[0, 0, 0, 0, 0, 0]]),
            Err(Code::Internal),
            "two messages"
        );
        assert_eq!(
            code(&[&[0, 0xff, 0xff, 0xff, 0xff]]),
            Err(Code::OutOfRange),
            "over the limit"
        );
        assert_eq!(
            code(&[&[0, 0, 0, 0, 1, 0xff]]),
            Err(Code::Internal),
            "corrupt"
        );
    }

    #[test]
    fn an_oversized_message_is_refused_before_it_is_buffered() {
        let mut received = Received::default();
        let prefix = [0, 0x01, 0, 0, 0]; // 16 MiB
        assert_eq!(
            received
                .push(Bytes::copy_from_slice(&prefix))
                .map_err(|s| s.code()),
            Err(Code::OutOfRange)
        );
    }

    #[test]
    fn final_status_reads_codes_and_refuses_non_base64_details() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(final_status(&headers(&[])).is_none());
        assert!(matches!(
            final_status(&headers(&[("grpc-status", "0")])),
            Some(Ok(()))
        ));
        let not_found = final_status(&headers(&[
            ("grpc-status", "5"),
            ("grpc-message", "no%20such%20operation"),
            ("x-extra", "kept"),
        ]));
        let Some(Err(status)) = not_found else {
            panic!("expected an error status, got {not_found:?}");
        };
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "no such operation");
        assert!(status.metadata().contains_key("x-extra"));

        let corrupt = final_status(&headers(&[
            ("grpc-status", "14"),
            ("grpc-status-details-bin", "*** not base64 ***"),
        ]));
        let Some(Err(status)) = corrupt else {
            panic!("expected an error status, got {corrupt:?}");
        };
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.details().is_empty());
        assert!(
            status.message().contains("not base64"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn every_method_path_names_an_rpc_of_the_vendored_protos() {
        use crate::client::methods as ops;
        use crate::vision::methods as vision;
        let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set decodes");
        let declared: Vec<String> = set
            .file
            .iter()
            .flat_map(|file| {
                file.service.iter().flat_map(move |service| {
                    service.method.iter().map(move |method| {
                        format!("/{}.{}/{}", file.package(), service.name(), method.name())
                    })
                })
            })
            .collect();
        let ours = [
            &ops::GET_OPERATION,
            &ops::LIST_OPERATIONS,
            &ops::CANCEL_OPERATION,
            &ops::DELETE_OPERATION,
            &ops::WAIT_OPERATION,
            &vision::IMPORT_PRODUCT_SETS,
            &vision::PURGE_PRODUCTS,
            &vision::ASYNC_BATCH_ANNOTATE_FILES,
            &vision::ASYNC_BATCH_ANNOTATE_IMAGES,
        ];
        for method in ours {
            let path = method.path();
            assert!(
                declared.iter().any(|d| d == path.path()),
                "{path} is not an RPC of the vendored protos"
            );
            // Built once, then shared.
            assert_eq!(method.path(), path);
        }
    }

    #[test]
    fn grpc_timeouts_use_the_most_precise_unit_within_eight_digits() {
        use std::time::Duration;
        let value = |d: Duration| {
            grpc_timeout(d)
                .to_str()
                .map(str::to_owned)
                .unwrap_or_default()
        };
        assert_eq!(value(Duration::from_nanos(99_999_999)), "99999999n");
        assert_eq!(value(Duration::from_millis(100)), "100000u");
        assert_eq!(value(Duration::from_secs(10)), "10000000u");
        assert_eq!(value(Duration::from_secs(100)), "100000m");
        assert_eq!(value(Duration::from_secs(24 * 3600)), "86400000m");
        assert_eq!(value(Duration::from_secs(200_000)), "200000S");
        assert_eq!(value(Duration::from_secs(99_999_999 * 60)), "99999999M");
        assert_eq!(value(Duration::MAX), "99999999H");
    }

    #[test]
    fn http_statuses_map_as_grpc_documents() {
        let code = |status: u16| {
            status_from_http(http::StatusCode::from_u16(status).expect("valid")).code()
        };
        assert_eq!(code(200), Code::Unknown);
        assert_eq!(code(400), Code::Internal);
        assert_eq!(code(401), Code::Unauthenticated);
        assert_eq!(code(403), Code::PermissionDenied);
        assert_eq!(code(404), Code::Unimplemented);
        for unavailable in [429, 502, 503, 504] {
            assert_eq!(code(unavailable), Code::Unavailable);
        }
        assert_eq!(code(500), Code::Unknown);
    }
}
