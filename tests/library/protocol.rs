//! What `OperationsClient` makes of servers that break the gRPC protocol: every case is a
//! typed error with the code gRPC prescribes, never a panic or a hang.

use std::convert::Infallible;
use std::future::Ready;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::StreamBody;
use longrunning::{Code, Error, OperationsClient, RetryPolicy};
use prost::Message;
use tonic::body::Body;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

const OP: &str = "operations/op1";

/// One scripted answer: the HTTP status, the response headers, then body frames.
#[derive(Clone)]
struct Answer {
    status: StatusCode,
    headers: Vec<(&'static str, &'static str)>,
    data: Vec<Vec<u8>>,
    trailers: Option<Vec<(&'static str, &'static str)>>,
}

impl Answer {
    fn ok(data: Vec<Vec<u8>>, trailers: Option<Vec<(&'static str, &'static str)>>) -> Self {
        Answer {
            status: StatusCode::OK,
            headers: vec![("content-type", "application/grpc")],
            data,
            trailers,
        }
    }
}

/// A server for `google.longrunning.Operations` that answers every call with one script.
#[derive(Clone)]
struct Scripted(Arc<Answer>);

impl tonic::server::NamedService for Scripted {
    const NAME: &'static str = "google.longrunning.Operations";
}

impl tower::Service<http::Request<Body>> for Scripted {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<Body>) -> Self::Future {
        let answer = &self.0;
        let header_map = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, HeaderValue::from_static(value));
            }
            map
        };
        let mut frames: Vec<Result<http_body::Frame<prost::bytes::Bytes>, Infallible>> = answer
            .data
            .iter()
            .map(|data| Ok(http_body::Frame::data(data.clone().into())))
            .collect();
        if let Some(trailers) = &answer.trailers {
            frames.push(Ok(http_body::Frame::trailers(header_map(trailers))));
        }
        let body = Body::new(StreamBody::new(futures_util::stream::iter(frames)));
        let mut response = http::Response::new(body);
        *response.status_mut() = answer.status;
        *response.headers_mut() = header_map(&answer.headers);
        std::future::ready(Ok(response))
    }
}

/// The result of one GetOperation against a server that always gives `answer`.
async fn get_against(answer: Answer) -> longrunning::Result<longrunning::RawOperation> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(Scripted(Arc::new(answer)))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                stopped.await.ok();
            }),
    );
    let client = OperationsClient::connect(format!("http://{address}"))
        .await
        .unwrap()
        .with_retry_policy(RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        });
    let result = client.get(OP).await;
    drop(client);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    result
}

fn framed(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut frame = vec![flag];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

fn operation_bytes() -> Vec<u8> {
    longrunning::RawOperation {
        name: OP.into(),
        done: true,
        ..Default::default()
    }
    .encode_to_vec()
}

fn code_and_message(result: longrunning::Result<longrunning::RawOperation>) -> (Code, String) {
    match result {
        Err(Error::Rpc { status, .. }) => (status.code, status.message),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_well_formed_answer_split_across_frames_decodes() {
    let frame = framed(0, &operation_bytes());
    let (head, tail) = frame.split_at(3);
    let op = get_against(Answer::ok(
        vec![head.to_vec(), tail.to_vec()],
        Some(vec![("grpc-status", "0")]),
    ))
    .await
    .unwrap();
    assert_eq!(op.name, OP);
    assert!(op.done);
}

#[tokio::test]
async fn status_details_that_are_not_base64_are_reported_not_a_panic() {
    let mut answer = Answer::ok(Vec::new(), None);
    answer.headers.extend([
        ("grpc-status", "14"),
        ("grpc-message", "try%20later"),
        ("grpc-status-details-bin", "*** not base64 ***"),
    ]);
    let (code, message) = code_and_message(get_against(answer).await);
    assert_eq!(code, Code::Unavailable);
    assert!(message.starts_with("try later"), "{message}");
    assert!(message.contains("not base64"), "{message}");
}

#[tokio::test]
async fn an_http_error_without_grpc_status_maps_as_grpc_prescribes() {
    for (http_status, expected) in [
        (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable),
        (StatusCode::UNAUTHORIZED, Code::Unauthenticated),
        (StatusCode::NOT_FOUND, Code::Unimplemented),
        (StatusCode::INTERNAL_SERVER_ERROR, Code::Unknown),
    ] {
        let answer = Answer {
            status: http_status,
            headers: Vec::new(),
            data: Vec::new(),
            trailers: None,
        };
        let (code, message) = code_and_message(get_against(answer).await);
        assert_eq!(code, expected, "HTTP {http_status}");
        assert!(message.contains(http_status.as_str()), "{message}");
    }
}

#[tokio::test]
async fn a_message_without_trailers_is_unknown() {
    let answer = Answer::ok(vec![framed(0, &operation_bytes())], None);
    let (code, _) = code_and_message(get_against(answer).await);
    assert_eq!(code, Code::Unknown);
}

#[tokio::test]
async fn an_error_in_the_trailers_wins_over_a_message() {
    let answer = Answer::ok(
        vec![framed(0, &operation_bytes())],
        Some(vec![("grpc-status", "5"), ("grpc-message", "gone")]),
    );
    let (code, message) = code_and_message(get_against(answer).await);
    assert_eq!((code, message.as_str()), (Code::NotFound, "gone"));
}

#[tokio::test]
async fn broken_messages_are_internal() {
    let ok = Some(vec![("grpc-status", "0")]);
    let op = operation_bytes();
    let mut cut = framed(0, &op);
    cut.truncate(cut.len() - 1);
    let cases = [
        (
            "compressed without negotiation",
            framed(1, &op),
            Code::Internal,
        ),
        ("unknown flag", framed(9, &op), Code::Internal),
        ("cut short", cut, Code::Internal),
        ("corrupt protobuf", framed(0, &[0xff, 0xff]), Code::Internal),
        // A 2 GiB message announced, 5 bytes sent: the stream ends short.
        (
            "announced but not sent",
            vec![0, 0x7f, 0, 0, 0],
            Code::Internal,
        ),
    ];
    for (case, body, expected) in cases {
        let answer = Answer::ok(vec![body], ok.clone());
        let (code, message) = code_and_message(get_against(answer).await);
        assert_eq!(code, expected, "{case}: {message}");
    }
    let (code, _) = code_and_message(get_against(Answer::ok(Vec::new(), ok)).await);
    assert_eq!(code, Code::Internal, "no message at all");
}
