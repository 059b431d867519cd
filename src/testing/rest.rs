//! The fake's REST surface (feature `rest`): on the same port as gRPC, told apart by the
//! content type. A REST request is transcoded into the gRPC call it means and given to the
//! same services, behind the same switches (failures, quotas, latency, HTTP faults); the
//! answer comes back as Google's REST API gives it: the message as proto3 JSON, or
//! `{"error": {"code", "message", "status", "details"}}` with the HTTP status Google uses for
//! the code. A path nothing serves gets Google's HTML 404; an HTTP fault's page passes as
//! it is. It serves every path the presets bind: `/vN/{name}`, `/vN/{name}/operations`,
//! `/vN/operations?name=…`, `:cancel`, `:wait`, and `DELETE`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http_body_util::{BodyExt as _, Limited};
use prost::Message as _;
use tonic::body::Body;
use tower::{Layer, Service};

use super::FakeMethod;
use crate::proto::longrunning as pb;
use crate::rest::{Binding, lower_camel};

/// The largest REST request body the fake reads.
const MAX_REQUEST: usize = 1024 * 1024;

/// Puts the REST surface in front of the fake's gRPC services.
#[derive(Clone)]
pub(super) struct RestLayer;

impl<S> Layer<S> for RestLayer {
    type Service = RestService<S>;

    fn layer(&self, inner: S) -> RestService<S> {
        RestService { inner }
    }
}

#[derive(Clone)]
pub(super) struct RestService<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<http::Request<Body>> for RestService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let grpc = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/grpc"));
        if grpc {
            return Box::pin(self.inner.call(request));
        }
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { Ok(answer(inner, request).await) })
    }
}

/// A REST request, answered.
async fn answer<S>(mut inner: S, request: http::Request<Body>) -> http::Response<Body>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
{
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_REQUEST).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return json_error(
                tonic::Code::InvalidArgument,
                "the request body is too large or broken",
                None,
            );
        }
    };
    let Some((method, message)) =
        grpc_request(&parts.method, parts.uri.path(), parts.uri.query(), &body)
    else {
        return not_served(parts.uri.path());
    };
    let mut call = http::Request::builder()
        .method(http::Method::POST)
        .uri(method.path())
        .header(CONTENT_TYPE, "application/grpc")
        .header("te", "trailers");
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE && name != http::header::CONTENT_LENGTH {
            call = call.header(name, value);
        }
    }
    let mut framed = vec![0];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let Ok(call) = call.body(Body::new(http_body_util::Full::new(Bytes::from(framed)))) else {
        return json_error(
            tonic::Code::InvalidArgument,
            "a request the fake cannot read",
            None,
        );
    };
    let Ok(response) = inner.call(call).await;
    let grpc = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if !grpc {
        // An HTTP fault's page (a proxy's 502, …): as it is.
        return response;
    }
    let (head, body) = response.into_parts();
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(_) => return json_error(tonic::Code::Unavailable, "the call broke off", None),
    };
    let trailers = collected.trailers().cloned();
    let bytes = collected.to_bytes();
    let status = tonic::Status::from_header_map(trailers.as_ref().unwrap_or(&head.headers))
        .or_else(|| tonic::Status::from_header_map(&head.headers));
    match status {
        Some(status) if status.code() != tonic::Code::Ok => {
            let details = (!status.details().is_empty()).then(|| status.details().to_vec());
            json_error(status.code(), status.message(), details)
        }
        _ => json_ok(method, bytes.get(5..).unwrap_or_default()),
    }
}

/// A start call a REST request means, by the `google.api.http` rules of the fake's start
/// RPCs: the path's variable set in the body's request.
fn start_request(verb: &http::Method, path: &str, body: &[u8]) -> Option<(FakeMethod, Vec<u8>)> {
    for method in FakeMethod::ALL.into_iter().filter(|m| !m.is_operations()) {
        let Some((rules, input, _)) = crate::json::http_rules(method.path()) else {
            continue;
        };
        for rule in rules {
            if rule.verb != verb.as_str() {
                continue;
            }
            let Ok(binding) = Binding::with_any_field(&rule.verb, &rule.template) else {
                continue;
            };
            let Some(value) = binding.extract(path) else {
                continue;
            };
            let mut json = if body.is_empty() {
                serde_json::Value::Object(Default::default())
            } else {
                serde_json::from_slice::<serde_json::Value>(body).ok()?
            };
            if binding.has_variable() {
                let object = json.as_object_mut()?;
                object.insert(
                    lower_camel(binding.field()),
                    serde_json::Value::String(value),
                );
            }
            let bytes = crate::json::json_to_bytes(&input, &json.to_string()).ok()?;
            return Some((method, bytes));
        }
    }
    None
}

/// The gRPC method and request a REST request means; `None` for a path nothing serves.
fn grpc_request(
    verb: &http::Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Option<(FakeMethod, Vec<u8>)> {
    if let Some(start) = start_request(verb, path, body) {
        return Some(start);
    }
    let rest = path.strip_prefix('/')?;
    let (version, rest) = rest.split_once('/')?;
    if !(version.starts_with('v') && version[1..].chars().all(|c| c.is_ascii_alphanumeric())) {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .ok()?
        .into_owned();
    let query = parse_query(query.unwrap_or_default());
    let get = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    Some(match *verb {
        http::Method::GET if decoded == "operations" || decoded.ends_with("/operations") => {
            let name = match decoded.strip_suffix("/operations") {
                Some(parent) => parent.to_owned(),
                None => get("name").unwrap_or_default(),
            };
            let request = pb::ListOperationsRequest {
                name,
                filter: get("filter").unwrap_or_default(),
                page_size: get("pageSize")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_default(),
                page_token: get("pageToken").unwrap_or_default(),
                return_partial_success: false,
            };
            (FakeMethod::ListOperations, request.encode_to_vec())
        }
        http::Method::GET => (
            FakeMethod::GetOperation,
            pb::GetOperationRequest { name: decoded }.encode_to_vec(),
        ),
        http::Method::DELETE => (
            FakeMethod::DeleteOperation,
            pb::DeleteOperationRequest { name: decoded }.encode_to_vec(),
        ),
        http::Method::POST => {
            if let Some(name) = decoded.strip_suffix(":cancel") {
                let request = pb::CancelOperationRequest {
                    name: name.to_owned(),
                };
                (FakeMethod::CancelOperation, request.encode_to_vec())
            } else {
                let name = decoded.strip_suffix(":wait")?;
                let timeout = serde_json::from_slice::<serde_json::Value>(body)
                    .ok()
                    .and_then(|json| json.get("timeout")?.as_str().map(str::to_owned))
                    .and_then(|text| parse_duration(&text));
                let request = pb::WaitOperationRequest {
                    name: name.to_owned(),
                    timeout,
                };
                (FakeMethod::WaitOperation, request.encode_to_vec())
            }
        }
        _ => return None,
    })
}

/// `key=value&…`, percent-decoded.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .ok()
                    .map(|s| s.into_owned())
            };
            Some((decode(key)?, decode(value)?))
        })
        .collect()
}

/// A proto3 JSON duration, `"12.5s"`.
fn parse_duration(text: &str) -> Option<prost_types::Duration> {
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    if !(0.0..1e12).contains(&seconds) {
        return None;
    }
    Some(prost_types::Duration {
        seconds: seconds.trunc() as i64,
        nanos: (seconds.fract() * 1e9).round() as i32,
    })
}

/// The answer of `method`, as JSON.
fn json_ok(method: FakeMethod, message: &[u8]) -> http::Response<Body> {
    let json = match method {
        FakeMethod::ListOperations => pb::ListOperationsResponse::decode(message)
            .ok()
            .and_then(|m| crate::json::message_to_json(&m).ok()),
        FakeMethod::CancelOperation | FakeMethod::DeleteOperation => Some(serde_json::json!({})),
        // Gets, waits and start calls answer an operation.
        _ => pb::Operation::decode(message)
            .ok()
            .map(|op| crate::json::operation_to_json(&op)),
    };
    match json {
        Some(json) => json_response(http::StatusCode::OK, &json),
        None => json_error(
            tonic::Code::Internal,
            "the fake could not render its answer",
            None,
        ),
    }
}

/// Google's JSON error, with the HTTP status Google gives the code.
fn json_error(code: tonic::Code, message: &str, details: Option<Vec<u8>>) -> http::Response<Body> {
    let http = http_status(code);
    let mut error = serde_json::json!({
        "code": http.as_u16(),
        "message": message,
        "status": crate::status::code_name(code),
    });
    let details = details
        .and_then(|bytes| crate::proto::rpc::Status::decode(bytes.as_slice()).ok())
        .and_then(|status| crate::json::message_to_json(&status).ok())
        .and_then(|json| json.get("details").cloned());
    if let Some(details) = details {
        error["details"] = details;
    }
    json_response(http, &serde_json::json!({ "error": error }))
}

fn json_response(status: http::StatusCode, json: &serde_json::Value) -> http::Response<Body> {
    let mut response = http::Response::new(Body::new(http_body_util::Full::new(Bytes::from(
        json.to_string(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

/// Google's page for a path nothing serves.
fn not_served(path: &str) -> http::Response<Body> {
    let page = format!(
        "<!DOCTYPE html><html lang=en><title>Error 404 (Not Found)!!1</title><p><b>404.</b> \
         <ins>That’s an error.</ins><p>The requested URL <code>{path}</code> was not found on this server."
    );
    let mut response = http::Response::new(Body::new(http_body_util::Full::new(Bytes::from(page))));
    *response.status_mut() = http::StatusCode::NOT_FOUND;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    response
}

/// The HTTP status Google's REST front end gives a code.
fn http_status(code: tonic::Code) -> http::StatusCode {
    use tonic::Code;
    let status = match code {
        Code::Ok => 200,
        Code::Cancelled => 499,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::Aborted | Code::AlreadyExists => 409,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    };
    http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
}
