//! Everything read from environment variables (tokens, the emulator, the quota project, the
//! proxy variables). One test in a binary of its own: changing
//! the environment while other threads read it is unsound (`set_var` is `unsafe`).

#![allow(unsafe_code)]

use longrunning::testing::FakeServer;
use longrunning::transport::Connector;
use longrunning::transport::{EnvToken, TokenSource};

const OP: &str = "operations/op1";

fn set(name: &str, value: &str) {
    // SAFETY: this binary runs a single test, and it reads the environment on this thread
    // (and the runtime's, which only read) after each change.
    unsafe { std::env::set_var(name, value) }
}

fn unset(name: &str) {
    // SAFETY: as in `set`.
    unsafe { std::env::remove_var(name) }
}

#[tokio::test(flavor = "current_thread")]
async fn environment_variables_choose_token_emulator_and_quota_project() {
    // GOOGLE_OAUTH_ACCESS_TOKEN is the default token variable, read at each fetch.
    set("GOOGLE_OAUTH_ACCESS_TOKEN", " from-env \n");
    assert_eq!(EnvToken::new().fetch().await.unwrap().secret(), "from-env");
    set("GOOGLE_OAUTH_ACCESS_TOKEN", "");
    let err = EnvToken::new().fetch().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot get an access token from environment variable GOOGLE_OAUTH_ACCESS_TOKEN: it is empty"
    );
    unset("GOOGLE_OAUTH_ACCESS_TOKEN");

    // LRO_EMULATOR_HOST: plaintext, no token; GOOGLE_CLOUD_QUOTA_PROJECT: the quota project.
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    set("LRO_EMULATOR_HOST", &fake.addr().to_string());
    set("GOOGLE_CLOUD_QUOTA_PROJECT", "quota-from-env");
    let client = Connector::from_env()
        .token_source(EnvToken::named("LRO_TEST_UNSET"))
        .connect_lazy()
        .unwrap();
    client.get(OP).await.unwrap();
    let headers = &fake.requests()[0].headers;
    assert!(headers.get("authorization").is_none());
    assert_eq!(headers["x-goog-user-project"], "quota-from-env");
    unset("LRO_EMULATOR_HOST");
    unset("GOOGLE_CLOUD_QUOTA_PROJECT");
    // Without the emulator variable the default endpoint is Google's, over TLS.
    assert!(format!("{:?}", Connector::from_env()).contains("https://vision.googleapis.com"));
    fake.shutdown().await;

    // A bad credentials file is named by the error; its contents are not quoted.
    #[cfg(feature = "adc")]
    {
        let path = std::env::temp_dir().join(format!("lro-bad-adc-{}.json", std::process::id()));
        std::fs::write(
            &path,
            "{\"private_key\": \"-----BEGIN SECRET-----\", \"type\": 42",
        )
        .unwrap();
        set("GOOGLE_APPLICATION_CREDENTIALS", path.to_str().unwrap());
        let err = longrunning::transport::ApplicationDefault::new()
            .await
            .unwrap_err();
        std::fs::remove_file(&path).unwrap();
        unset("GOOGLE_APPLICATION_CREDENTIALS");
        let longrunning::Error::Auth { source_name, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(source_name, "application default credentials");
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains("BEGIN SECRET"),
            "leaked file contents: {text}"
        );
    }

    proxy_variables_choose_as_grpc_clients_do().await;
}

/// Part of the one test above (the environment is the process's).
async fn proxy_variables_choose_as_grpc_clients_do() {
    // A "proxy" that is a closed port: a call through it fails naming it; a direct call works.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let fake = FakeServer::start().await.unwrap();
    fake.insert_running(OP);
    let get = || async {
        Connector::new()
            .endpoint(fake.endpoint())
            .retry_policy(longrunning::RetryPolicy {
                max_attempts: 1,
                ..Default::default()
            })
            .connect_lazy()
            .unwrap()
            .get(OP)
            .await
    };
    let through_closed = |result: longrunning::Result<longrunning::RawOperation>| {
        result.err().is_some_and(|e| {
            e.to_string()
                .contains(&format!("cannot reach the proxy {closed}"))
        })
    };
    let proxy = format!("http://{closed}");
    // http:// endpoints take http_proxy (either case); https_proxy is for https:// ones.
    set("HTTPS_PROXY", &proxy);
    assert!(
        get().await.is_ok(),
        "https_proxy is not for http:// endpoints"
    );
    set("http_proxy", &proxy);
    assert!(through_closed(get().await));
    // no_proxy exempts; loopback only when listed.
    set("NO_PROXY", "localhost");
    assert!(through_closed(get().await), "127.0.0.1 is not localhost");
    set("NO_PROXY", "localhost,127.0.0.1");
    assert!(get().await.is_ok());
    unset("NO_PROXY");
    unset("http_proxy");
    unset("HTTPS_PROXY");
    // grpc_proxy beats the others, for every scheme.
    set("grpc_proxy", &proxy);
    assert!(through_closed(get().await));
    // An explicit no_proxy beats the variables; an explicit proxy too.
    let direct = Connector::new()
        .endpoint(fake.endpoint())
        .no_proxy("127.0.0.1")
        .connect_lazy()
        .unwrap();
    assert!(direct.get(OP).await.is_ok());
    unset("grpc_proxy");
    fake.shutdown().await;
}
