//! Egress proxies: calls and waits through an HTTP CONNECT proxy, with TLS inside the
//! tunnel; `no_proxy`; credentials; and every fault a proxy can answer with. An in-process
//! proxy makes the faults on demand; tinyproxy, a real one, proves the everyday path.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use longrunning::testing::{FakeMethod, FakeServer, Outcome, Script};
use longrunning::transport::Connector;
use longrunning::wait::WaitOptions;
use longrunning::{Code, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const OP: &str = "projects/p/locations/us-west1/operations/proxied";

/// How the test proxy answers the next CONNECT.
#[derive(Clone, Debug)]
enum Answer {
    /// `200` (as this status line), then the tunnel; with `early`, the endpoint's first
    /// bytes ride in the same write as the answer's head.
    Tunnel {
        status_line: &'static str,
        early: bool,
    },
    /// This whole answer, then the connection closes.
    Refuse(&'static str),
    /// Close without a word.
    Hang,
}

const TUNNEL: Answer = Answer::Tunnel {
    status_line: "HTTP/1.1 200 Connection established",
    early: false,
};

/// One CONNECT the proxy received.
#[derive(Clone, Debug)]
struct Connect {
    target: String,
    authorization: Option<String>,
    /// The first byte the client sent through the tunnel (0x16: a TLS handshake).
    first_byte: Option<u8>,
}

/// An in-process HTTP CONNECT proxy on loopback.
struct TestProxy {
    addr: std::net::SocketAddr,
    answers: Arc<Mutex<Vec<Answer>>>,
    connects: Arc<Mutex<Vec<Connect>>>,
    tunnels: Arc<Mutex<Vec<JoinHandle<()>>>>,
    task: JoinHandle<()>,
}

impl TestProxy {
    /// Answers with `answers` in turn, then tunnels.
    async fn start(answers: Vec<Answer>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answers = Arc::new(Mutex::new(answers));
        let connects = Arc::new(Mutex::new(Vec::new()));
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (answers, connects, tunnels) = (answers.clone(), connects.clone(), tunnels.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let answer = {
                        let mut answers = answers.lock().unwrap();
                        if answers.is_empty() {
                            TUNNEL
                        } else {
                            answers.remove(0)
                        }
                    };
                    let connects = connects.clone();
                    let tunnel = tokio::spawn(serve(client, answer, connects));
                    tunnels.lock().unwrap().push(tunnel);
                }
            })
        };
        TestProxy {
            addr,
            answers,
            connects,
            tunnels,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn connects(&self) -> Vec<Connect> {
        self.connects.lock().unwrap().clone()
    }

    /// Cuts every open tunnel, as a proxy that restarts does.
    fn cut_tunnels(&self) {
        for tunnel in self.tunnels.lock().unwrap().drain(..) {
            tunnel.abort();
        }
    }

    fn then(&self, answer: Answer) {
        self.answers.lock().unwrap().push(answer);
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_tunnels();
    }
}

async fn serve(mut client: TcpStream, answer: Answer, connects: Arc<Mutex<Vec<Connect>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match client.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("CONNECT "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default()
        .to_owned();
    let authorization = head
        .lines()
        .find_map(|line| line.strip_prefix("Proxy-Authorization: "))
        .map(str::to_owned);
    let index = {
        let mut connects = connects.lock().unwrap();
        connects.push(Connect {
            target: target.clone(),
            authorization,
            first_byte: None,
        });
        connects.len() - 1
    };
    match answer {
        Answer::Hang => {}
        Answer::Refuse(answer) => {
            let _ = client.write_all(answer.as_bytes()).await;
        }
        Answer::Tunnel { status_line, early } => {
            let Ok(mut server) = TcpStream::connect(&target).await else {
                let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                return;
            };
            let mut answer = format!("{status_line}\r\n\r\n").into_bytes();
            if early {
                // The endpoint's first bytes (an HTTP/2 server's SETTINGS), in the same write.
                let mut first = vec![0u8; 1024];
                if let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_secs(2), server.read(&mut first)).await
                {
                    answer.extend_from_slice(&first[..n]);
                }
            }
            if client.write_all(&answer).await.is_err() {
                return;
            }
            if client.read(&mut byte).await.ok() != Some(1) {
                return;
            }
            connects.lock().unwrap()[index].first_byte = Some(byte[0]);
            if server.write_all(&byte).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
    }
}

/// A plaintext fake with [`OP`] running.
async fn fake_with_op() -> FakeServer {
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    fake
}

fn tls_fake_identity() -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

#[tokio::test]
async fn calls_and_waits_go_through_the_proxy_with_tls_inside_the_tunnel() {
    let (certificate, key) = tls_fake_identity();
    let fake = FakeServer::builder()
        .tls(certificate.clone(), key)
        .start()
        .await
        .unwrap();
    fake.insert(
        OP,
        Script::finishing_after(Duration::from_millis(300), Outcome::NoResult),
    );
    let proxy = TestProxy::start(Vec::new()).await;
    let client = Connector::new()
        .endpoint(fake.endpoint())
        .ca_certificate_pem(certificate)
        .proxy(proxy.url())
        .no_proxy("example.com")
        .connect()
        .await
        .unwrap();
    assert!(!client.get(OP).await.unwrap().done);
    let done = client.wait_for(OP, &WaitOptions::default()).await.unwrap();
    assert!(done.done);
    let connects = proxy.connects();
    assert_eq!(connects.len(), 1, "one tunnel for every call: {connects:?}");
    assert_eq!(
        connects[0].target,
        format!("localhost:{}", fake.addr().port())
    );
    assert_eq!(connects[0].first_byte, Some(0x16), "TLS inside the tunnel");
    fake.shutdown().await;
}

#[tokio::test]
async fn plaintext_endpoints_tunnel_too_and_no_proxy_goes_direct() {
    let fake = fake_with_op().await;
    let proxy = TestProxy::start(Vec::new()).await;
    let through = Connector::new()
        .endpoint(fake.endpoint())
        .proxy(proxy.url())
        .connect_lazy()
        .unwrap();
    through.get(OP).await.unwrap();
    let connects = proxy.connects();
    assert_eq!(connects.len(), 1);
    assert_eq!(
        connects[0].first_byte,
        Some(b'P'),
        "h2c's preface: PRI * HTTP/2.0"
    );

    for listed in ["127.0.0.1", "127.0.0.0/8", "*"] {
        let direct = Connector::new()
            .endpoint(fake.endpoint())
            .proxy(proxy.url())
            .no_proxy(listed)
            .connect_lazy()
            .unwrap();
        direct.get(OP).await.unwrap();
    }
    assert_eq!(proxy.connects().len(), 1, "no_proxy bypassed the proxy");

    // The REST wire tunnels through the same proxy (HTTP/1.1 inside: `GET /v1/…`).
    #[cfg(feature = "rest")]
    {
        let rest = Connector::new()
            .endpoint(fake.endpoint())
            .proxy(proxy.url())
            .rest(longrunning::rest::RestRules::vision_v1())
            .connect_lazy()
            .unwrap();
        assert_eq!(rest.get(OP).await.unwrap().name, OP);
        let connects = proxy.connects();
        assert_eq!(connects.len(), 2);
        assert_eq!(connects[1].first_byte, Some(b'G'), "GET, over HTTP/1.1");
    }
    fake.shutdown().await;
}

#[tokio::test]
async fn credentials_go_as_basic_auth_and_are_never_printed() {
    let fake = fake_with_op().await;
    let proxy = TestProxy::start(vec![Answer::Refuse(
        "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 5\r\n\r\ndenied",
    )])
    .await;
    let url = format!("http://aladdin:open%20sesame@{}", proxy.addr);
    let connector = Connector::new().endpoint(fake.endpoint()).proxy(&url);
    assert!(!format!("{connector:?}").contains("sesame"));
    let client = connector.connect_lazy().unwrap();
    // 407: at once, never retried, the proxy named, the password nowhere.
    let err = client.get(OP).await.unwrap_err();
    let Error::Proxy {
        proxy: named,
        message,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(named, &proxy.addr.to_string());
    assert!(message.contains("requires authentication"), "{message}");
    assert!(!format!("{err:?}").contains("sesame") && !err.to_string().contains("sesame"));
    assert_eq!(proxy.connects().len(), 1, "a 407 is never retried");
    let sent = proxy.connects()[0].authorization.clone().unwrap();
    // "aladdin:open sesame", base64.
    assert_eq!(sent, "Basic YWxhZGRpbjpvcGVuIHNlc2FtZQ==");

    // The same credentials, accepted: the call goes through.
    client.get(OP).await.unwrap();
    // A wait ends at once on a refusal too.
    proxy.then(Answer::Refuse(
        "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
    ));
    let fresh = Connector::new()
        .endpoint(fake.endpoint())
        .proxy(&url)
        .connect_lazy()
        .unwrap();
    let err = fresh
        .wait_for(OP, &WaitOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Proxy { .. }), "{err:?}");
    fake.shutdown().await;
}

#[tokio::test]
async fn a_forbidden_host_is_permanent_and_gateway_errors_are_ridden_out() {
    let fake = fake_with_op().await;
    let proxy = TestProxy::start(vec![Answer::Refuse(
        "HTTP/1.0 403 Forbidden\r\nContent-Type: text/html\r\n\r\n<html>Access denied</html>",
    )])
    .await;
    let client = Connector::new()
        .endpoint(fake.endpoint())
        .proxy(proxy.url())
        .connect_lazy()
        .unwrap();
    let err = client.get(OP).await.unwrap_err();
    assert!(
        err.to_string().contains("403") && err.to_string().contains(&proxy.addr.to_string()),
        "{err}"
    );
    assert!(matches!(err, Error::Proxy { .. }), "{err:?}");
    assert_eq!(proxy.connects().len(), 1);

    // 502, 503, 504 and a proxy that hangs up: the call was never sent; it is sent again.
    for answer in [
        Answer::Refuse("HTTP/1.1 502 Bad Gateway\r\n\r\n"),
        Answer::Refuse("HTTP/1.1 503 Service Unavailable\r\n\r\n"),
        Answer::Refuse("HTTP/1.1 504 Gateway Timeout\r\n\r\n"),
        Answer::Hang,
    ] {
        proxy.then(answer);
    }
    let before = proxy.connects().len();
    let quick = longrunning::backoff::Backoff::new(
        Duration::from_millis(10),
        Duration::from_millis(10),
        1.0,
    );
    let client = Connector::new()
        .endpoint(fake.endpoint())
        .proxy(proxy.url())
        .retry_policy(longrunning::RetryPolicy {
            backoff: quick,
            ..Default::default()
        })
        .connect_lazy()
        .unwrap();
    let op = client.get(OP).await.unwrap();
    assert_eq!(op.name, OP);
    assert_eq!(
        proxy.connects().len() - before,
        5,
        "four refused, the fifth tunnels"
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_proxy_is_named_and_an_http_1_0_proxy_with_early_bytes_works() {
    let fake = fake_with_op().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let client = Connector::new()
        .endpoint(fake.endpoint())
        .proxy(format!("http://{closed}"))
        .retry_policy(longrunning::RetryPolicy {
            max_attempts: 2,
            ..Default::default()
        })
        .connect_lazy()
        .unwrap();
    let err = client.get(OP).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unavailable), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("cannot reach the proxy {closed}")),
        "{err}"
    );

    let proxy = TestProxy::start(vec![Answer::Tunnel {
        status_line: "HTTP/1.0 200 Connection established",
        early: true,
    }])
    .await;
    let client = Connector::new()
        .endpoint(fake.endpoint())
        .proxy(proxy.url())
        .connect_lazy()
        .unwrap();
    client.get(OP).await.unwrap();
    assert_eq!(proxy.connects().len(), 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn waits_survive_a_proxy_that_cuts_its_tunnels() {
    let fake = FakeServer::start().await.unwrap();
    fake.insert(
        OP,
        Script::finishing_after(Duration::from_millis(800), Outcome::NoResult),
    );
    let proxy = TestProxy::start(Vec::new()).await;
    let client = Connector::new()
        .endpoint(fake.endpoint())
        .proxy(proxy.url())
        .connect_lazy()
        .unwrap();
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move { client.wait_for(OP, &WaitOptions::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut_tunnels();
    let done = waiting.await.unwrap().unwrap();
    assert!(done.done);
    assert!(proxy.connects().len() >= 2, "a new tunnel after the cut");
    assert!(fake.calls(FakeMethod::WaitOperation) >= 2);
    fake.shutdown().await;
}

/// tinyproxy on a free loopback port, allowed to CONNECT to `port` only; killed on drop.
struct Tinyproxy {
    child: tokio::process::Child,
    port: u16,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Tinyproxy {
    async fn start(connect_port: u16) -> Option<Self> {
        let Ok(binary) = which("tinyproxy") else {
            eprintln!(
                "skipped: tinyproxy is not installed (`.ci/run` installs it with apt-get; \
                 `apt-get install tinyproxy` to run this test)"
            );
            return None;
        };
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let dir = std::env::temp_dir().join(format!("lro-tinyproxy-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("tinyproxy.conf");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\nConnectPort {connect_port}\n\
                 LogFile \"{}\"\nLogLevel Connect\nMaxClients 100\n",
                dir.join("tinyproxy.log").display()
            ),
        )
        .unwrap();
        let child = tokio::process::Command::new(binary)
            .arg("-d")
            .arg("-c")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Ready when it takes connections.
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Some(Tinyproxy {
                    child,
                    port,
                    _dir: TempDir(dir),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("tinyproxy did not start on port {port}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.0.join("tinyproxy.log")).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or(())
}

#[tokio::test]
async fn a_thousand_waits_through_tinyproxy() {
    let fake = FakeServer::builder()
        .record_requests(false)
        .start()
        .await
        .unwrap();
    let Some(tinyproxy) = Tinyproxy::start(fake.addr().port()).await else {
        return;
    };
    fake.set_operation_duration(Duration::from_millis(200));
    let client = Connector::new()
        .endpoint(fake.endpoint())
        .proxy(format!("http://127.0.0.1:{}", tinyproxy.port))
        .connect()
        .await
        .unwrap();
    let names: Vec<String> = (0..1000)
        .map(|i| {
            fake.insert(
                format!("operations/t{i}"),
                Script::finishing_after(Duration::from_millis(100 + i % 300), Outcome::NoResult),
            )
        })
        .collect();
    let ops = names
        .iter()
        .map(|name| longrunning::Operation::<(), ()>::from_name(client.clone(), name).unwrap());
    let results = longrunning::wait::wait_all(ops, &WaitOptions::default()).await;
    assert_eq!(results.len(), 1000);
    assert!(
        results
            .iter()
            .all(|(op, result)| op.done() && result.is_ok())
    );
    // tinyproxy logged the tunnels it opened to the fake: the calls went through it.
    let log = tinyproxy.log();
    assert!(
        log.contains(&format!("CONNECT 127.0.0.1:{}", fake.addr().port()))
            || log.contains("Established connection"),
        "tinyproxy's log: {log}"
    );
    fake.shutdown().await;
}
