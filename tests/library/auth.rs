//! Auth and transport against the fake (which records every request's headers): tokens and
//! quota project on every RPC, single-flight refresh, refresh ahead of expiry, one retry on
//! UNAUTHENTICATED, plaintext refusal, TLS, redaction, and bad token sources.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use longrunning::testing::{FakeMethod, FakeServer, RecordedRequest};
use longrunning::transport::Connector;
use longrunning::transport::{
    AuthLayer, CommandToken, EnvToken, StaticToken, Token, TokenFuture, TokenSource,
};
use longrunning::vision::{ImageAnnotator, ProductSearch, pb};
use longrunning::wait::WaitOptions;
use longrunning::{Code, Error, ListOptions, OperationsClient};

const OP: &str = "projects/p1/locations/us-west1/operations/op1";
const PARENT: &str = "projects/p1/locations/us-west1";
const SECRET: &str = "ya29.super-secret-token";

/// Hands out `token-1`, `token-2`, … each valid for `lifetime`, counting fetches. Each fetch
/// takes `delay`, so that concurrent callers overlap.
#[derive(Clone)]
struct CountingSource {
    fetches: Arc<AtomicU32>,
    lifetime: Option<Duration>,
    delay: Duration,
}

impl CountingSource {
    fn new(lifetime: Option<Duration>) -> Self {
        CountingSource {
            fetches: Arc::new(AtomicU32::new(0)),
            lifetime,
            delay: Duration::from_millis(50),
        }
    }

    fn fetches(&self) -> u32 {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl TokenSource for CountingSource {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Token::new(format!("token-{n}"), self.lifetime))
        })
    }

    fn name(&self) -> String {
        "the counting test source".into()
    }
}

fn header<'a>(request: &'a RecordedRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The `authorization` header of every request the fake received, in order.
fn tokens_sent(fake: &FakeServer) -> Vec<String> {
    fake.requests()
        .iter()
        .map(|r| header(r, "authorization").unwrap().to_owned())
        .collect()
}

fn authenticated(fake: &FakeServer, source: impl TokenSource) -> OperationsClient {
    Connector::new()
        .endpoint(fake.endpoint())
        .token_source(source)
        .connect_lazy()
        .unwrap()
}

#[tokio::test]
async fn token_quota_project_and_api_client_go_with_every_rpc_of_every_kind() {
    let fake = FakeServer::start().await.unwrap();
    fake.set_operation_duration(Duration::from_millis(10));
    let client = Connector::new()
        .endpoint(fake.endpoint())
        .token_source(StaticToken::new(SECRET))
        .quota_project("billing-project")
        .connect_lazy()
        .unwrap();
    fake.insert_running(OP);
    client.get(OP).await.unwrap();
    client.list(PARENT, &ListOptions::default()).await.unwrap();
    client.wait_operation(OP, Duration::ZERO).await.unwrap();
    client.cancel(OP).await.unwrap();
    client.delete(OP).await.unwrap();
    let mut purge = ProductSearch::new(client.clone())
        .purge_products(pb::PurgeProductsRequest {
            parent: PARENT.into(),
            target: Some(pb::purge_products_request::Target::DeleteOrphanProducts(
                true,
            )),
            force: true,
        })
        .await
        .unwrap();
    purge.wait(&WaitOptions::default()).await.unwrap();
    ProductSearch::new(client.clone())
        .import_product_sets(pb::ImportProductSetsRequest {
            parent: PARENT.into(),
            input_config: Some(pb::ImportProductSetsInputConfig {
                source: Some(pb::import_product_sets_input_config::Source::GcsSource(
                    pb::ImportProductSetsGcsSource {
                        csv_file_uri: "gs://b/p.csv".into(),
                    },
                )),
            }),
        })
        .await
        .unwrap();
    let annotator = ImageAnnotator::new(client.clone());
    annotator
        .async_batch_annotate_files(pb::AsyncBatchAnnotateFilesRequest {
            requests: vec![Default::default()],
            ..Default::default()
        })
        .await
        .unwrap();
    annotator
        .async_batch_annotate_images(pb::AsyncBatchAnnotateImagesRequest {
            requests: vec![Default::default()],
            ..Default::default()
        })
        .await
        .unwrap();

    let requests = fake.requests();
    let methods: std::collections::BTreeSet<FakeMethod> =
        requests.iter().map(|r| r.method).collect();
    assert_eq!(methods.len(), 9, "every method was called: {methods:?}");
    for request in &requests {
        let auth = format!("Bearer {SECRET}");
        assert_eq!(
            header(request, "authorization"),
            Some(auth.as_str()),
            "{:?}",
            request.method
        );
        assert_eq!(
            header(request, "x-goog-user-project"),
            Some("billing-project")
        );
        let api_client = header(request, "x-goog-api-client").unwrap();
        assert!(
            api_client.starts_with("gl-rust longrunning/0."),
            "{api_client}"
        );
    }
    fake.shutdown().await;
}

#[tokio::test]
async fn a_hundred_concurrent_calls_fetch_one_token() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let source = CountingSource::new(Some(Duration::from_secs(3600)));
    let client = authenticated(&fake, source.clone());
    let calls = (0..100).map(|_| client.get(OP));
    for result in futures_util::future::join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(source.fetches(), 1);
    assert_eq!(fake.calls(FakeMethod::GetOperation), 100);
    assert!(
        fake.requests()
            .iter()
            .all(|r| header(r, "authorization") == Some("Bearer token-1"))
    );
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn tokens_are_refreshed_ahead_of_their_expiry() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let source = CountingSource::new(Some(Duration::from_secs(10 * 60)));
    let client = authenticated(&fake, source.clone());
    client.get(OP).await.unwrap();
    // Fetched at 50 ms, valid for 10 min, replaced 5 min before it expires.
    tokio::time::sleep(Duration::from_secs(4 * 60 + 59)).await;
    client.get(OP).await.unwrap();
    assert_eq!(source.fetches(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    client.get(OP).await.unwrap();
    assert_eq!(source.fetches(), 2);
    let tokens = tokens_sent(&fake);
    assert_eq!(
        tokens,
        ["Bearer token-1", "Bearer token-1", "Bearer token-2"]
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn unauthenticated_triggers_one_refresh_and_one_retry_never_a_loop() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let source = CountingSource::new(None);
    let client = authenticated(&fake, source.clone());

    fake.fail_next_with(
        FakeMethod::GetOperation,
        1,
        tonic::Status::unauthenticated("expired"),
    );
    client.get(OP).await.unwrap();
    assert_eq!(fake.calls(FakeMethod::GetOperation), 2);
    assert_eq!(source.fetches(), 2);
    let tokens = tokens_sent(&fake);
    assert_eq!(tokens, ["Bearer token-1", "Bearer token-2"]);

    fake.fail_next_with(
        FakeMethod::GetOperation,
        100,
        tonic::Status::unauthenticated("no"),
    );
    let err = client.get(OP).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unauthenticated));
    assert_eq!(
        fake.calls(FakeMethod::GetOperation),
        4,
        "one call and one retry"
    );
    assert_eq!(source.fetches(), 3);
    fake.shutdown().await;
}

#[tokio::test]
async fn a_failing_token_source_fails_the_call_once_with_its_name() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let client = authenticated(
        &fake,
        EnvToken::named("LRO_TEST_VARIABLE_THAT_IS_NEVER_SET"),
    );
    let err = client.get(OP).await.unwrap_err();
    let Error::Auth {
        source_name,
        message,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(
        source_name,
        "environment variable LRO_TEST_VARIABLE_THAT_IS_NEVER_SET"
    );
    assert_eq!(message, "it is not set");
    assert_eq!(fake.total_calls(), 0, "no call without a token");
    fake.shutdown().await;
}

#[tokio::test]
async fn each_bad_token_source_says_what_is_wrong() {
    let cases: Vec<(Box<dyn TokenSource>, &str, &str)> = vec![
        (
            Box::new(CommandToken::shell(
                "echo 'gcloud: not logged in' >&2; exit 3",
            )),
            "command `echo 'gcloud: not logged in' >&2; exit 3`",
            "it exited with exit status: 3: gcloud: not logged in",
        ),
        (
            Box::new(CommandToken::shell("true")),
            "command `true`",
            "it did not print exactly one token",
        ),
        (
            Box::new(CommandToken::shell("echo two tokens")),
            "command `echo two tokens`",
            "it did not print exactly one token",
        ),
        (
            Box::new(CommandToken::new(
                "/nonexistent/gcloud",
                ["auth", "print-access-token"],
            )),
            "command `/nonexistent/gcloud auth print-access-token`",
            "it could not be run",
        ),
        (
            Box::new(StaticToken::new("  ")),
            "the given token",
            "the token is empty",
        ),
    ];
    for (source, name, message) in cases {
        let err = source.fetch().await.unwrap_err();
        let Error::Auth {
            source_name,
            message: said,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(source_name, name);
        assert!(
            said.starts_with(message),
            "{said:?} should start with {message:?}"
        );
        assert!(
            err.to_string()
                .starts_with("cannot get an access token from"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_command_token_is_cached_and_rerun_before_it_expires() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let dir = std::env::temp_dir().join(format!("lro-command-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let counter = dir.join("runs");
    let script = format!(
        "echo x >> {0}; echo token-$(wc -l < {0} | tr -d ' ')",
        counter.display()
    );
    let client = authenticated(
        &fake,
        CommandToken::shell(script).lifetime(Duration::from_secs(3600)),
    );
    client.get(OP).await.unwrap();
    client.get(OP).await.unwrap();
    // Jump the clock 55 min on without the command running on a paused clock (which would
    // let tokio race past every timer while the child process runs).
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(55 * 60 + 1)).await;
    tokio::time::resume();
    client.get(OP).await.unwrap();
    let tokens = tokens_sent(&fake);
    assert_eq!(
        tokens,
        ["Bearer token-1", "Bearer token-1", "Bearer token-2"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
    fake.shutdown().await;
}

#[tokio::test]
async fn tokens_go_over_plaintext_only_to_this_machine_unless_allowed() {
    for endpoint in [
        "http://10.1.2.3:8080",
        "http://vision.example.com",
        "http://[fd00::1]:80",
    ] {
        let err = Connector::new()
            .endpoint(endpoint)
            .token_source(StaticToken::new(SECRET))
            .connect_lazy()
            .unwrap_err();
        assert!(
            matches!(err, Error::PlaintextToken { .. }),
            "{endpoint}: {err:?}"
        );
        assert!(err.to_string().contains(endpoint));
        assert!(!err.to_string().contains(SECRET));
        Connector::new()
            .endpoint(endpoint)
            .token_source(StaticToken::new(SECRET))
            .allow_plaintext_token(true)
            .connect_lazy()
            .unwrap();
        // Without a token there is nothing to leak.
        Connector::new().endpoint(endpoint).connect_lazy().unwrap();
    }
    for endpoint in [
        "http://127.0.0.1:9",
        "http://localhost:9",
        "http://[::1]:9",
        "https://vision.googleapis.com",
    ] {
        Connector::new()
            .endpoint(endpoint)
            .token_source(StaticToken::new(SECRET))
            .connect_lazy()
            .unwrap();
    }
    for endpoint in ["ftp://host", "vision.googleapis.com", "http://", ""] {
        let err = Connector::new()
            .endpoint(endpoint)
            .connect_lazy()
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument(_)),
            "{endpoint}: {err:?}"
        );
    }
}

#[tokio::test]
async fn an_emulator_host_means_plaintext_and_no_token() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let client = Connector::new()
        .endpoint("https://vision.googleapis.com")
        .emulator_host(fake.addr().to_string())
        .token_source(StaticToken::new(SECRET))
        .connect_lazy()
        .unwrap();
    client.get(OP).await.unwrap();
    let request = &fake.requests()[0];
    assert_eq!(header(request, "authorization"), None);
    assert!(header(request, "x-goog-api-client").is_some());
    fake.shutdown().await;
}

#[tokio::test]
async fn tls_with_an_explicitly_trusted_self_signed_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let certificate_pem = certified.cert.pem();
    let key_pem = certified.signing_key.serialize_pem();
    let fake = FakeServer::builder()
        .tls(certificate_pem.clone(), key_pem)
        .start()
        .await
        .unwrap();
    fake.insert_running(OP);
    assert!(fake.endpoint().starts_with("https://localhost:"));

    let client = Connector::new()
        .endpoint(fake.endpoint())
        .ca_certificate_pem(certificate_pem)
        .token_source(StaticToken::new(SECRET))
        .connect()
        .await
        .unwrap();
    assert!(!client.get(OP).await.unwrap().done);
    let auth = format!("Bearer {SECRET}");
    assert_eq!(
        header(&fake.requests()[0], "authorization"),
        Some(auth.as_str())
    );

    // Not trusted without the CA: the handshake fails at once, the error names the
    // certificate and the host, and no request arrives.
    let untrusting = Connector::new().endpoint(fake.endpoint()).connect().await;
    let Err(Error::Certificate { peer, reason }) = &untrusting else {
        panic!("{untrusting:?}");
    };
    assert!(peer.starts_with("localhost:"), "{peer}");
    assert!(reason.contains("does not trust"), "{reason}");
    assert_eq!(fake.calls(FakeMethod::GetOperation), 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn tokens_never_appear_in_debug_or_errors() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let client = authenticated(&fake, StaticToken::new(SECRET));
    client.get(OP).await.unwrap();
    let err = client.get("operations/missing").await.unwrap_err();

    let token = Token::new(SECRET, Some(Duration::from_secs(60)));
    let connector = Connector::new().token_source(StaticToken::new(SECRET));
    let texts = [
        format!("{token:?}"),
        format!("{:?}", StaticToken::new(SECRET)),
        format!("{:?}", AuthLayer::new(StaticToken::new(SECRET))),
        format!("{connector:?}"),
        format!("{client:?}"),
        format!("{err:?} {err}"),
    ];
    for text in &texts {
        assert!(!text.contains("super-secret"), "leaked: {text}");
    }
    assert!(texts[0].contains("<redacted>"));
    fake.shutdown().await;
}

#[tokio::test]
async fn the_authorization_header_is_marked_sensitive() {
    use tower::{Service, ServiceExt};
    let seen = Arc::new(std::sync::Mutex::new(None));
    let record = seen.clone();
    let inner = tower::service_fn(move |request: http::Request<tonic::body::Body>| {
        let record = record.clone();
        async move {
            *record.lock().unwrap() = request.headers().get("authorization").cloned();
            Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
        }
    });
    let mut service = tower::ServiceBuilder::new()
        .layer(AuthLayer::new(StaticToken::new(SECRET)))
        .service(inner);
    service
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(tonic::body::Body::empty()))
        .await
        .unwrap();
    let value = seen.lock().unwrap().clone().unwrap();
    assert!(value.is_sensitive());
    assert_eq!(format!("{value:?}"), "Sensitive");
}

#[tokio::test]
async fn a_token_command_over_its_time_limit_is_killed_with_its_children_and_named() {
    let pid_file = std::env::temp_dir().join(format!("lro-token-child-{}", std::process::id()));
    let script = format!("sleep 1000 & echo $! > {}; wait", pid_file.display());
    let source = CommandToken::shell(script).time_limit(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = source.fetch().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(text.contains("command `sleep 1000 &"), "{text}");
    assert!(text.contains("did not finish within 300ms"), "{text}");
    // The shell's child went with it: no orphan.
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let _ = std::fs::remove_file(&pid_file);
    let proc_dir = format!("/proc/{}", pid.trim());
    let mut gone = false;
    for _ in 0..100 {
        let state = std::fs::read_to_string(format!("{proc_dir}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for init to reap it.
        if state.is_empty() || state.contains(") Z ") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the token command's child {pid} is still running");
}

#[tokio::test]
async fn a_token_command_printing_without_end_is_cut_off_and_named() {
    let source = CommandToken::shell("yes");
    let err = source.fetch().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("command `yes`"), "{text}");
    assert!(text.contains("printed more than 65536 bytes"), "{text}");
}

/// Hands out tokens that all expire at the same instant, as `gcp_auth`'s cache does until
/// shortly before that instant; counts fetches.
struct FixedExpirySource {
    fetches: Arc<AtomicU32>,
    expires_at: tokio::time::Instant,
}

impl TokenSource for FixedExpirySource {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let left = self
                .expires_at
                .saturating_duration_since(tokio::time::Instant::now());
            Ok(Token::new("same-token", Some(left)))
        })
    }

    fn name(&self) -> String {
        "the fixed-expiry test source".into()
    }
}

#[tokio::test(start_paused = true)]
async fn no_call_waits_on_a_renewal_while_a_valid_token_is_at_hand() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let source = CountingSource {
        delay: Duration::from_secs(1),
        ..CountingSource::new(Some(Duration::from_secs(600)))
    };
    let client = fake
        .connector()
        .token_source(source.clone())
        .connect_lazy()
        .unwrap();
    client.get(OP).await.unwrap();
    assert_eq!(source.fetches(), 1);
    // Within the 5-minute margin: one call renews, the others go on with the valid token.
    tokio::time::sleep(Duration::from_secs(6 * 60)).await;
    let started = tokio::time::Instant::now();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client.get(OP).await.unwrap();
                started.elapsed()
            })
        })
        .collect();
    let mut waited = Vec::new();
    for call in calls {
        waited.push(call.await.unwrap());
    }
    waited.sort();
    assert_eq!(waited[8], Duration::ZERO, "{waited:?}");
    assert_eq!(waited[9], Duration::from_secs(1), "{waited:?}");
    assert_eq!(source.fetches(), 2);
    // The renewed token is fresh: no more fetches.
    client.get(OP).await.unwrap();
    assert_eq!(source.fetches(), 2);
    fake.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_renewal_that_brings_the_same_expiry_back_is_not_retried_on_every_call() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let fetches = Arc::new(AtomicU32::new(0));
    let client = fake
        .connector()
        .token_source(FixedExpirySource {
            fetches: fetches.clone(),
            expires_at: tokio::time::Instant::now() + Duration::from_secs(3600),
        })
        .connect_lazy()
        .unwrap();
    client.get(OP).await.unwrap();
    // Into the margin: each call would renew, and get the same token back.
    tokio::time::sleep(Duration::from_secs(56 * 60)).await;
    for _ in 0..20 {
        client.get(OP).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // One renewal, then quiet for 30 s.
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    fake.shutdown().await;
}
