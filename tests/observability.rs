//! Observability: a tracing span per wait and an event per RPC, and no token in any log
//! line. One test in a binary of its own: tracing caches per-callsite interest process-wide,
//! which other tests' threads (with no subscriber) would race with.

use std::time::Duration;

use longrunning::testing::{FakeMethod, FakeServer, Outcome, Script};
use longrunning::transport::Connector;
use longrunning::transport::StaticToken;
use longrunning::wait::{WaitOptions, WaitStrategy};

const OP: &str = "projects/p1/locations/us-west1/operations/op1";

#[tokio::test(start_paused = true)]
async fn waits_are_traced_and_tokens_never_logged() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let fake = FakeServer::start().await.unwrap();
    fake.insert(
        OP,
        Script::finishing_after(Duration::from_secs(3), Outcome::NoResult),
    );
    let poll = WaitOptions {
        strategy: WaitStrategy::Poll,
        ..WaitOptions::default()
    };
    fake.client().wait_for(OP, &poll).await.unwrap();

    // An authenticated client whose token is refreshed once: nothing of it in the logs.
    fake.fail_next_with(
        FakeMethod::GetOperation,
        1,
        tonic::Status::unauthenticated("expired"),
    );
    let authenticated = Connector::new()
        .endpoint(fake.endpoint())
        .token_source(StaticToken::new("ya29.super-secret-token"))
        .connect_lazy()
        .unwrap();
    authenticated.get(OP).await.unwrap();
    fake.shutdown().await;

    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let close = log
        .lines()
        .find(|line| line.contains("longrunning::wait::waiter: close"))
        .unwrap_or_else(|| panic!("no span closed:\n{log}"));
    assert!(
        close.contains(
            "wait{operation=projects/p1/locations/us-west1/operations/op1 strategy=Poll rpcs="
        ),
        "{close}"
    );
    assert!(!log.contains("super-secret"), "a token was logged:\n{log}");
    assert!(
        log.contains("UNAUTHENTICATED: refreshing the token once"),
        "{log}"
    );
    let polls = log
        .lines()
        .filter(|line| line.contains("rpc=\"GetOperation\""))
        .count();
    assert_eq!(polls as u64, fake_calls_in(&log));
}

/// The number of polls the span reports in its `rpcs` field.
fn fake_calls_in(log: &str) -> u64 {
    log.lines()
        .find_map(|line| line.split("rpcs=").nth(1))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}
