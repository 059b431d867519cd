//! A REST answer that is not a success, as the `Status` the same failure has over gRPC:
//! Google's JSON error body (`{"error": {"code", "message", "status", "details"}}`) with its
//! details decoded as over gRPC, or, for a body that is not that (a proxy's HTML page,
//! Google's HTML 404 for a path nothing serves), the HTTP status's code and a short excerpt.

use serde_json::Value as Json;
use tonic::Code;

/// The longest excerpt of a body that is not Google's JSON error.
const EXCERPT: usize = 200;

/// The status a failed REST answer means.
pub(crate) fn status_of(
    http: http::StatusCode,
    content_type: &str,
    body: &[u8],
    peer: &str,
    path: &str,
) -> tonic::Status {
    let by_http = code_of(http);
    let text = String::from_utf8_lossy(body);
    if content_type.contains("json")
        && let Ok(json) = serde_json::from_str::<Json>(&text)
        && let Some(error) = json.get("error").and_then(Json::as_object)
    {
        let message = error
            .get("message")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        let code = error
            .get("status")
            .and_then(Json::as_str)
            .and_then(code_named)
            .unwrap_or(by_http);
        // The details, as a `google.rpc.Status` would carry them: decoded as over gRPC.
        let details = error
            .get("details")
            .filter(|d| d.is_array())
            .and_then(|details| {
                let status = serde_json::json!({
                    "code": code as i32,
                    "message": message,
                    "details": details,
                });
                crate::json::json_to_bytes("google.rpc.Status", &status.to_string()).ok()
            });
        return match details {
            Some(bytes) => tonic::Status::with_details(code, message, bytes.into()),
            None => tonic::Status::new(code, message),
        };
    }
    let excerpt = excerpt(&text);
    if http == http::StatusCode::NOT_FOUND && !content_type.contains("json") {
        return tonic::Status::new(
            Code::Unimplemented,
            format!(
                "HTTP 404 from {peer}: the path {path} is not served (check the REST rules): {excerpt}"
            ),
        );
    }
    let what = if content_type.is_empty() {
        "no content type".to_owned()
    } else {
        content_type.to_owned()
    };
    tonic::Status::new(
        by_http,
        format!("HTTP {} from {peer} ({what}): {excerpt}", http.as_u16()),
    )
}

/// The code of an HTTP status, as Google's clients map it.
pub(crate) fn code_of(http: http::StatusCode) -> Code {
    match http.as_u16() {
        200..=299 => Code::Ok,
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::Aborted,
        416 => Code::OutOfRange,
        429 => Code::ResourceExhausted,
        499 => Code::Cancelled,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        402 | 405..=408 | 410..=415 | 417..=428 | 430..=498 => Code::FailedPrecondition,
        500 | 502 | 505..=599 => Code::Internal,
        _ => Code::Unknown,
    }
}

/// A code by its name (`NOT_FOUND`), as `google.rpc.Code` spells it.
fn code_named(name: &str) -> Option<Code> {
    (0..=16)
        .map(Code::from_i32)
        .find(|code| crate::status::code_name(*code) == name)
}

/// The start of `text`, whitespace collapsed, tags kept (they say what the page is).
fn excerpt(text: &str) -> String {
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut excerpt: String = collapsed.chars().take(EXCERPT).collect();
    if collapsed.chars().count() > EXCERPT {
        excerpt.push('…');
    }
    if excerpt.is_empty() {
        excerpt.push_str("(no body)");
    }
    excerpt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_as_googles_clients_map_them() {
        let table = [
            (400, Code::InvalidArgument),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::NotFound),
            (409, Code::Aborted),
            (412, Code::FailedPrecondition),
            (416, Code::OutOfRange),
            (429, Code::ResourceExhausted),
            (499, Code::Cancelled),
            (500, Code::Internal),
            (501, Code::Unimplemented),
            (502, Code::Internal),
            (503, Code::Unavailable),
            (504, Code::DeadlineExceeded),
        ];
        for (http, code) in table {
            assert_eq!(
                code_of(http::StatusCode::from_u16(http).unwrap()),
                code,
                "{http}"
            );
        }
    }

    #[test]
    fn googles_json_error_gives_its_status_name_message_and_details() {
        let body = br#"{"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com", "unknownField": 1}]}}"#;
        let status = status_of(
            http::StatusCode::TOO_MANY_REQUESTS,
            "application/json; charset=UTF-8",
            body,
            "h:443",
            "/v1/x",
        );
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "Quota exceeded");
        let ours = crate::status::Status::from_tonic(&status);
        assert!(
            ours.details.iter().any(|d| matches!(d, crate::status::ErrorDetail::ErrorInfo(info) if info.reason == "RATE_LIMIT_EXCEEDED")),
            "{ours:?}"
        );
        // A status name the code does not know: the HTTP status decides.
        let body = br#"{"error": {"code": 404, "message": "gone", "status": "NOPE"}}"#;
        let status = status_of(
            http::StatusCode::NOT_FOUND,
            "application/json",
            body,
            "h:443",
            "/v1/x",
        );
        assert_eq!((status.code(), status.message()), (Code::NotFound, "gone"));
    }

    #[test]
    fn pages_that_are_not_json_map_by_status_with_a_short_excerpt() {
        let page = format!(
            "<html><body><h1>502 Bad Gateway</h1>{}</body></html>",
            "x".repeat(10_000)
        );
        let status = status_of(
            http::StatusCode::BAD_GATEWAY,
            "text/html",
            page.as_bytes(),
            "proxy:3128",
            "/v1/x",
        );
        assert_eq!(status.code(), Code::Internal);
        assert!(
            status
                .message()
                .contains("HTTP 502 from proxy:3128 (text/html): <html><body><h1>502 Bad Gateway"),
            "{}",
            status.message()
        );
        assert!(status.message().len() < 400);
        let status = status_of(
            http::StatusCode::NOT_FOUND,
            "text/html",
            b"<html>Error 404 (Not Found)!!1</html>",
            "h:443",
            "/v1/locations/l/operations/1",
        );
        assert_eq!(status.code(), Code::Unimplemented);
        assert!(status.message().contains(
            "the path /v1/locations/l/operations/1 is not served (check the REST rules)"
        ));
        let status = status_of(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "",
            b"",
            "h:443",
            "/v1/x",
        );
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            status.message().contains("(no content type): (no body)"),
            "{}",
            status.message()
        );
        // JSON that is not Google's error: by the HTTP status.
        let status = status_of(
            http::StatusCode::FORBIDDEN,
            "application/json",
            b"[1,2]",
            "h:443",
            "/v1/x",
        );
        assert_eq!(status.code(), Code::PermissionDenied);
    }
}
