//! The REST wire: a tower service where the pool of HTTP/2 connections goes, taking the
//! client's gRPC requests and answering them as gRPC, having asked the server over
//! HTTP/JSON by [`RestRules`]. Everything above it (the call loop and its retries, auth,
//! the guard, the rate limit, your layers, the waiter) is the same on either wire: a REST
//! error answers as the gRPC status it means, details included, and a connection fault
//! reaches the guard as the same transport error.
//!
//! Underneath is hyper-util's pooled client (keep-alive, HTTP/1.1 or HTTP/2 by ALPN) on
//! rustls with the `ring` provider, as tonic's TLS: reqwest would bring a second HTTP stack
//! for the same job.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::{Message as _, Name as _};

use super::errors;
use super::rules::{Binding, NoRoute, RestMethod, RestRules, SEGMENT, lower_camel};
use crate::proto::longrunning as pb;
use crate::transport::{Dialer, DialerConnector, MakeWire, Transport, WireContext, tcp};

/// The header naming the client library.
const API_CLIENT: &str = "x-goog-api-client";

/// The largest REST response read when the client sets no bound of its own.
const DEFAULT_LIMIT: usize = 32 * 1024 * 1024;

/// The gRPC paths of the Operations methods.
const OPERATIONS: &str = "/google.longrunning.Operations/";

type HttpsClient = Client<hyper_rustls::HttpsConnector<DialerConnector>, Full<Bytes>>;

/// Makes [`RestWire`]s for a connector.
pub(crate) struct MakeRest(pub(crate) RestRules);

impl MakeWire for MakeRest {
    fn make(&self, context: &WireContext<'_>) -> Transport {
        Transport::new(RestWire::new(self.0.clone(), context))
    }
}

/// The REST wire. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RestWire {
    shared: Arc<Shared>,
}

struct Shared {
    /// A client made at the first call (TLS setup can fail: the call then fails saying why).
    client: Result<HttpsClient, String>,
    /// `scheme://authority` of the endpoint.
    base: String,
    rules: RestRules,
    peer: Arc<str>,
    limit: usize,
}

impl RestWire {
    fn new(rules: RestRules, context: &WireContext<'_>) -> Self {
        let base = context.url.trim_end_matches('/').to_owned();
        RestWire {
            shared: Arc::new(Shared {
                client: https_client(
                    context.ca_certificates,
                    context.dialer.clone().unwrap_or_else(tcp),
                ),
                base,
                rules,
                peer: context.peer.clone(),
                limit: match context.max_response_bytes {
                    0 | usize::MAX => DEFAULT_LIMIT,
                    limit => limit,
                },
            }),
        }
    }
}

/// hyper-util's pooled client on rustls (ring) with the bundled roots and `ca_certificates`,
/// its connections opened by `dialer` (TCP, yours, or the proxy's tunnel: TLS runs inside).
fn https_client(ca_certificates: &[Vec<u8>], dialer: Dialer) -> Result<HttpsClient, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for pem in ca_certificates {
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate = certificate.map_err(|e| format!("a CA certificate: {e}"))?;
            roots
                .add(certificate)
                .map_err(|e| format!("a CA certificate: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(DialerConnector(dialer));
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// What a gRPC request of an Operations method asks for, in REST terms.
struct Outgoing {
    method: RestMethod,
    name: String,
    query: Vec<(&'static str, String)>,
    body: Option<String>,
}

/// A REST request, ready to send, and the message its answer holds.
struct Planned {
    verb: http::Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<String>,
    /// The full name of the answer's message; empty for `google.protobuf.Empty`.
    output: String,
}

impl tower::Service<http::Request<tonic::body::Body>> for RestWire {
    type Response = http::Response<tonic::body::Body>;
    type Error = tower::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move { shared.answer(request).await })
    }
}

impl Shared {
    async fn answer(
        &self,
        request: http::Request<tonic::body::Body>,
    ) -> Result<http::Response<tonic::body::Body>, tower::BoxError> {
        let (parts, body) = request.into_parts();
        let rpc = parts.uri.path().to_owned();
        let framed = body.collect().await?.to_bytes();
        let planned = match unframe(&framed).and_then(|message| self.plan(&rpc, message)) {
            Ok(planned) => planned,
            Err(status) => return Ok(status.into_http()),
        };
        let mut query: Vec<(&str, String)> = vec![("$alt", "json;enum-encoding=int".to_owned())];
        query.extend(planned.query);
        let query: Vec<String> = query
            .iter()
            .map(|(key, value)| {
                format!(
                    "{}={}",
                    percent_encoding::utf8_percent_encode(key, SEGMENT),
                    percent_encoding::utf8_percent_encode(value, SEGMENT)
                )
            })
            .collect();
        let uri = format!("{}{}?{}", self.base, planned.path, query.join("&"));
        let mut builder = http::Request::builder()
            .method(planned.verb)
            .uri(&uri)
            .header(ACCEPT, "application/json");
        for name in [AUTHORIZATION.as_str(), "x-goog-user-project"] {
            if let Some(value) = parts.headers.get(name) {
                builder = builder.header(name, value.clone());
            }
        }
        builder = builder.header(API_CLIENT, rest_api_client(parts.headers.get(API_CLIENT)));
        let body = match planned.body {
            Some(json) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(json))
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder
            .body(body)
            .map_err(|e| tonic::Status::invalid_argument(format!("cannot build {uri}: {e}")))?;
        let client = self
            .client
            .as_ref()
            .map_err(|e| tonic::Status::invalid_argument(e.clone()))?;
        let response = client.request(request).await?;
        let (head, body) = response.into_parts();
        let body = match Limited::new(body, self.limit).collect().await {
            Ok(body) => body.to_bytes(),
            Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                return Ok(tonic::Status::resource_exhausted(format!(
                    "the REST answer from {} is larger than {} bytes",
                    self.peer, self.limit
                ))
                .into_http());
            }
            Err(err) => return Err(err),
        };
        let content_type = head
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !head.status.is_success() {
            let status =
                errors::status_of(head.status, &content_type, &body, &self.peer, &planned.path);
            return Ok(status.into_http());
        }
        Ok(match self.success(&planned.output, &content_type, &body) {
            Ok(message) => grpc_ok(message),
            Err(status) => status.into_http(),
        })
    }

    /// Where the gRPC request of `rpc` goes over REST: an Operations method by the rules,
    /// a start call by its own `google.api.http` option.
    fn plan(&self, rpc: &str, message: &[u8]) -> Result<Planned, tonic::Status> {
        if !rpc.starts_with(OPERATIONS) {
            return start_call(rpc, message);
        }
        let outgoing = outgoing(rpc, message)?;
        let route = self
            .rules
            .route(outgoing.method, &outgoing.name)
            .map_err(|no_route| match no_route {
                NoRoute::Unbound(_) => tonic::Status::unimplemented(no_route.to_string()),
                NoRoute::NoFit { .. } => tonic::Status::invalid_argument(no_route.to_string()),
            })?;
        let mut query = Vec::new();
        if route.name_in_query {
            query.push(("name", outgoing.name));
        }
        query.extend(outgoing.query);
        Ok(Planned {
            verb: route.verb,
            path: route.path,
            query,
            body: outgoing.body,
            output: match outgoing.method {
                RestMethod::Cancel | RestMethod::Delete => String::new(),
                RestMethod::List => pb::ListOperationsResponse::full_name(),
                RestMethod::Get | RestMethod::Wait => pb::Operation::full_name(),
            },
        })
    }

    /// The message a successful answer carries, encoded as the gRPC method's response.
    fn success(
        &self,
        full_name: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Vec<u8>, tonic::Status> {
        if full_name.is_empty() {
            // `google.protobuf.Empty`: whatever the body says.
            return Ok(Vec::new());
        }
        if !content_type.contains("json") {
            return Err(tonic::Status::unknown(format!(
                "{} answered with {}, not JSON",
                self.peer,
                if content_type.is_empty() {
                    "no content type"
                } else {
                    content_type
                }
            )));
        }
        let text = std::str::from_utf8(body).map_err(|_| {
            tonic::Status::unknown(format!("{} answered JSON that is not UTF-8", self.peer))
        })?;
        crate::json::json_to_bytes(full_name, text).map_err(|e| {
            tonic::Status::unknown(format!(
                "{} answered JSON that is not a {full_name}: {e}",
                self.peer
            ))
        })
    }
}

/// The message bytes of a gRPC request body (one uncompressed frame).
fn unframe(framed: &[u8]) -> Result<&[u8], tonic::Status> {
    match framed {
        [0, a, b, c, d, message @ ..]
            if u32::from_be_bytes([*a, *b, *c, *d]) as usize == message.len() =>
        {
            Ok(message)
        }
        _ => Err(tonic::Status::internal(
            "a request the REST wire cannot read",
        )),
    }
}

/// A call of another service (a start call) over REST, by the `google.api.http` rules its
/// descriptors give: the first binding whose variable the request's field fits.
fn start_call(rpc: &str, message: &[u8]) -> Result<Planned, tonic::Status> {
    let unbound = || {
        tonic::Status::unimplemented(format!(
            "no REST binding for {rpc}: no registered descriptor set gives it a google.api.http rule"
        ))
    };
    let (rules, input, output) = crate::json::http_rules(rpc).ok_or_else(unbound)?;
    if rules.is_empty() {
        return Err(unbound());
    }
    let mut templates = Vec::new();
    for rule in rules {
        let Ok(binding) = Binding::with_any_field(&rule.verb, &rule.template) else {
            continue;
        };
        templates.push(binding.to_string());
        let (value, json) = crate::json::request_for_rest(&input, message, binding.field())
            .map_err(|e| {
                tonic::Status::internal(format!("a request the REST wire cannot read: {e}"))
            })?;
        let Some((path, _)) = binding.path(&value) else {
            continue;
        };
        let body = match rule.body.as_str() {
            "" => None,
            "*" => Some(json.to_string()),
            field => Some(
                json.get(lower_camel(field).as_str())
                    .cloned()
                    .unwrap_or(serde_json::Value::Object(Default::default()))
                    .to_string(),
            ),
        };
        return Ok(Planned {
            verb: binding.verb().clone(),
            path,
            query: Vec::new(),
            body,
            output,
        });
    }
    Err(tonic::Status::invalid_argument(format!(
        "the request of {rpc} fits no REST binding: {}; nothing was sent",
        templates.join(", ")
    )))
}

/// The REST request a gRPC request of `rpc` means.
fn outgoing(rpc: &str, message: &[u8]) -> Result<Outgoing, tonic::Status> {
    let bad = |e: prost::DecodeError| {
        tonic::Status::internal(format!("a request the REST wire cannot read: {e}"))
    };
    let method = rpc.strip_prefix(OPERATIONS).unwrap_or_default();
    Ok(match method {
        "GetOperation" => Outgoing {
            method: RestMethod::Get,
            name: pb::GetOperationRequest::decode(message).map_err(bad)?.name,
            query: Vec::new(),
            body: None,
        },
        "ListOperations" => {
            let request = pb::ListOperationsRequest::decode(message).map_err(bad)?;
            let mut query = Vec::new();
            if !request.filter.is_empty() {
                query.push(("filter", request.filter));
            }
            if request.page_size != 0 {
                query.push(("pageSize", request.page_size.to_string()));
            }
            if !request.page_token.is_empty() {
                query.push(("pageToken", request.page_token));
            }
            Outgoing {
                method: RestMethod::List,
                name: request.name,
                query,
                body: None,
            }
        }
        "CancelOperation" => Outgoing {
            method: RestMethod::Cancel,
            name: pb::CancelOperationRequest::decode(message)
                .map_err(bad)?
                .name,
            query: Vec::new(),
            body: Some("{}".to_owned()),
        },
        "DeleteOperation" => Outgoing {
            method: RestMethod::Delete,
            name: pb::DeleteOperationRequest::decode(message)
                .map_err(bad)?
                .name,
            query: Vec::new(),
            body: None,
        },
        "WaitOperation" => {
            let request = pb::WaitOperationRequest::decode(message).map_err(bad)?;
            let body = match request.timeout {
                Some(timeout) => format!(
                    "{{\"timeout\":\"{}.{:09}s\"}}",
                    timeout.seconds,
                    timeout.nanos.max(0)
                ),
                None => "{}".to_owned(),
            };
            Outgoing {
                method: RestMethod::Wait,
                name: request.name,
                query: Vec::new(),
                body: Some(body),
            }
        }
        _ => {
            return Err(tonic::Status::unimplemented(format!(
                "no REST binding for {rpc}: over REST, this client makes the Operations calls only"
            )));
        }
    })
}

/// The client's `x-goog-api-client`, its `grpc/` token replaced by a `rest/` one.
fn rest_api_client(grpc: Option<&HeaderValue>) -> HeaderValue {
    let tokens = grpc
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .split_whitespace()
        .filter(|token| !token.starts_with("grpc/"))
        .chain(std::iter::once("rest/1"))
        .collect::<Vec<_>>()
        .join(" ");
    HeaderValue::from_str(&tokens).unwrap_or_else(|_| HeaderValue::from_static("rest/1"))
}

/// A gRPC answer: `message` in one frame, then `grpc-status: 0`.
fn grpc_ok(message: Vec<u8>) -> http::Response<tonic::body::Body> {
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = futures_util::stream::iter([
        Ok::<_, tonic::Status>(http_body::Frame::data(Bytes::from(framed))),
        Ok(http_body::Frame::trailers(trailers)),
    ]);
    let body = tonic::body::Body::new(http_body_util::StreamBody::new(frames));
    let mut response = http::Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

impl std::fmt::Debug for RestWire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestWire")
            .field("base", &self.shared.base)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_with_enums_as_numbers_or_names_and_unknown_fields_or_values_skipped() {
        let body = r#"{
            "name": "operations/1",
            "done": true,
            "addedByANewerServer": {"x": 1},
            "metadata": {
                "@type": "type.googleapis.com/google.cloud.vision.v1.BatchOperationMetadata",
                "state": 2,
                "alsoNew": true
            }
        }"#;
        let bytes = crate::json::json_to_bytes(&pb::Operation::full_name(), body).unwrap();
        let op = pb::Operation::decode(bytes.as_slice()).unwrap();
        assert_eq!(op.name, "operations/1");
        let metadata = crate::proto::vision::BatchOperationMetadata::decode(
            op.metadata.as_ref().unwrap().value.as_slice(),
        )
        .unwrap();
        assert_eq!(metadata.state, 2);
        for state in [r#""SUCCESSFUL""#, r#""A_STATE_FROM_THE_FUTURE""#] {
            let body = format!(
                r#"{{"name": "operations/1", "metadata": {{"@type": "type.googleapis.com/google.cloud.vision.v1.BatchOperationMetadata", "state": {state}}}}}"#
            );
            let parsed = crate::json::json_to_bytes(&pb::Operation::full_name(), &body);
            assert!(parsed.is_ok(), "{state}: {parsed:?}");
        }
    }

    #[test]
    fn requests_are_routed_with_their_fields_in_the_query_or_body() {
        let wait = pb::WaitOperationRequest {
            name: "operations/1".into(),
            timeout: Some(prost_types::Duration {
                seconds: 12,
                nanos: 500_000_000,
            }),
        };
        let out = outgoing(
            "/google.longrunning.Operations/WaitOperation",
            &wait.encode_to_vec(),
        )
        .unwrap();
        assert_eq!(out.body.as_deref(), Some(r#"{"timeout":"12.500000000s"}"#));
        let list = pb::ListOperationsRequest {
            name: "projects/p".into(),
            filter: "done=false".into(),
            page_size: 50,
            page_token: "t".into(),
            return_partial_success: false,
        };
        let out = outgoing(
            "/google.longrunning.Operations/ListOperations",
            &list.encode_to_vec(),
        )
        .unwrap();
        assert_eq!(
            out.query,
            [
                ("filter", "done=false".to_owned()),
                ("pageSize", "50".to_owned()),
                ("pageToken", "t".to_owned())
            ]
        );
        assert_eq!(
            rest_api_client(Some(&HeaderValue::from_static(
                "gl-rust longrunning/0.1.0 grpc/tonic"
            ))),
            "gl-rust longrunning/0.1.0 rest/1"
        );
        assert!(unframe(&[0, 0, 0, 0, 5, 1]).is_err(), "a short frame");
    }
}
