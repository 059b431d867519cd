//! The `lro` binary against the in-process fake: every command, every exit code, the
//! documented purge JSON, many names at once, and bad input.
//!
//! Every run names an `http://127.0.0.1` endpoint (or the emulator host), so no run ever
//! reaches for Google or the metadata server.

use std::process::Stdio;
use std::time::Duration;

use longrunning::RawOperation;
use longrunning::testing::{FakeMethod, FakeServer, Outcome, Script};
use longrunning::vision::pb;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

mod support;

use support::{DOCUMENTED_PURGE, Pager, documented_purge, serve_pager};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// One clear line on stderr, never a panic or a debug dump.
    fn assert_one_error_line(&self, needle: &str) {
        let lines: Vec<_> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "stderr: {}", self.stderr);
        assert!(lines[0].contains(needle), "{:?} lacks {needle:?}", lines[0]);
        assert!(!self.stderr.contains("panicked") && !self.stderr.contains("{ "));
    }
}

fn lro() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_lro"));
    command
        .env_remove("LRO_EMULATOR_HOST")
        .env_remove("GOOGLE_OAUTH_ACCESS_TOKEN")
        .env_remove("GOOGLE_CLOUD_QUOTA_PROJECT")
        .kill_on_drop(true);
    // The emulator on loopback is reached directly, whatever proxy the machine sets.
    for proxy in ["grpc_proxy", "https_proxy", "http_proxy", "no_proxy"] {
        command
            .env_remove(proxy)
            .env_remove(proxy.to_ascii_uppercase());
    }
    command
}

async fn run_with(mut command: tokio::process::Command, args: &[&str], stdin: &str) -> Run {
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("lro did not finish within 60 s")
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// `lro --endpoint <fake> ARGS...`
async fn run(fake: &FakeServer, args: &[&str]) -> Run {
    run_input(fake, args, "").await
}

/// `lro --endpoint <fake> ARGS...`, with `stdin` on its standard input.
async fn run_input(fake: &FakeServer, args: &[&str], stdin: &str) -> Run {
    let endpoint = fake.endpoint();
    let mut all = vec!["--endpoint", endpoint.as_str()];
    all.extend_from_slice(args);
    run_with(lro(), &all, stdin).await
}

async fn fake() -> FakeServer {
    let fake = FakeServer::start().await.unwrap();
    fake.set_operation_duration(Duration::from_millis(100));
    fake
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_prints_the_documented_purge_exactly() {
    let fake = fake().await;
    fake.insert_raw(documented_purge());
    let out = run(
        &fake,
        &["get", "locations/location-id/operations/operation-id"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim_end(), DOCUMENTED_PURGE);
    assert_eq!(out.stderr, "");

    // A bare ID with --location, and the text summary.
    fake.insert_raw(RawOperation {
        name: "locations/us-west1/operations/bc4e1d412863e626".into(),
        ..documented_purge()
    });
    let out = run(
        &fake,
        &[
            "--location",
            "us-west1",
            "--output",
            "text",
            "get",
            "bc4e1d412863e626",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "name:   locations/us-west1/operations/bc4e1d412863e626\nstate:  SUCCESSFUL\ndone:   true\n\
         result: type.googleapis.com/google.cloud.vision.v1.PurgeProductsRequest\n"
    );
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_operation_exits_1_with_its_status_on_stdout() {
    let fake = fake().await;
    fake.insert(
        "operations/failed",
        Script::finishing_after(
            Duration::ZERO,
            Outcome::error(tonic::Code::PermissionDenied, "no access to gs://b"),
        ),
    );
    let out = run(&fake, &["get", "operations/failed"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.json()["error"],
        json!({"code": 7, "message": "no access to gs://b"})
    );
    out.assert_one_error_line("PERMISSION_DENIED: no access to gs://b");
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_failures_exit_3_and_name_the_code() {
    let fake = fake().await;
    let out = run(&fake, &["get", "operations/missing"]).await;
    assert_eq!(out.code, 3);
    assert_eq!(out.stdout, "");
    out.assert_one_error_line("NOT_FOUND");

    fake.fail_next_with(
        FakeMethod::GetOperation,
        1,
        tonic::Status::unauthenticated("bad token"),
    );
    fake.insert_running("operations/x");
    let out = run(&fake, &["--token", "t", "get", "operations/x"]).await;
    // One refresh and one retry; the fake answers the retry.
    assert_eq!(out.code, 0, "{}", out.stderr);
    fake.fail_next_with(
        FakeMethod::GetOperation,
        2,
        tonic::Status::unauthenticated("bad token"),
    );
    let out = run(&fake, &["--token", "t", "get", "operations/x"]).await;
    assert_eq!(out.code, 3);
    out.assert_one_error_line("UNAUTHENTICATED");
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_are_vision_s_only_on_vision_s_endpoint() {
    let out = run_with(lro(), &["--location", "mars-north1", "get", "x"], "").await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    out.assert_one_error_line("us-west1, us-east1, europe-west1, asia-east1");
    // Another endpoint: any location, the name expanded.
    let fake = fake().await;
    fake.insert_running("locations/mars-north1/operations/x");
    let out = run(&fake, &["--location", "mars-north1", "get", "x"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["name"], "locations/mars-north1/operations/x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_from_file_takes_what_other_commands_print() {
    let fake = fake().await;
    fake.set_operation_duration(Duration::from_millis(100));
    let purge = run(
        &fake,
        &[
            "vision",
            "purge",
            "--parent",
            "projects/p/locations/us-west1",
            "--orphans",
        ],
    )
    .await;
    assert_eq!(purge.code, 0, "{}", purge.stderr);
    let started = purge.json()["name"].as_str().unwrap().to_owned();
    // `lro vision purge … | lro wait --from-file -`
    let out = run_input(
        &fake,
        &["--quiet", "wait", "--from-file", "-"],
        &purge.stdout,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["name"], started.as_str());
    // A listing works too, and so do plain names.
    let listing = run(&fake, &["list", "projects/p/locations/us-west1"]).await;
    let out = run_input(
        &fake,
        &["--quiet", "wait", "--from-file", "-"],
        &listing.stdout,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["name"], started.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_and_bad_input_exit_2() {
    let fake = fake().await;
    let cases: &[(&[&str], &str)] = &[
        (&["get", "operations/a b"], "whitespace"),
        (&["get", "just-an-id"], "needs --location"),
        (
            &["wait", "--from-file", "/nonexistent/names.txt"],
            "cannot read /nonexistent/names.txt",
        ),
        (&["wait"], "no operation to wait for"),
        (
            &["wait", "operations/x", "--timeout", "soon"],
            "bad duration",
        ),
        (
            &["wait", "operations/x", "--strategy", "hope"],
            "possible values: auto, wait, poll",
        ),
        (
            &[
                "vision",
                "purge",
                "--parent",
                "projects/p/locations/us-west1",
            ],
            "required",
        ),
        (
            &[
                "vision",
                "purge",
                "--parent",
                "projects/p/locations/mars",
                "--orphans",
            ],
            "unknown location",
        ),
        (
            &[
                "vision",
                "annotate-files",
                "--request-file",
                "/nonexistent.json",
            ],
            "cannot read",
        ),
        (&["bogus"], "unrecognized subcommand"),
    ];
    for (args, needle) in cases {
        let out = run(&fake, args).await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"));
    }
    // A token is never sent in plaintext to another machine.
    let out = run_with(
        lro(),
        &[
            "--endpoint",
            "http://10.9.8.7:80",
            "--token",
            "secret-token",
            "get",
            "operations/x",
        ],
        "",
    )
    .await;
    assert_eq!(out.code, 2);
    out.assert_one_error_line("refusing to send an access token over plaintext");
    assert!(!out.stderr.contains("secret-token"));
    assert_eq!(fake.total_calls(), 0);
    // The flag the message names exists.
    assert!(
        out.stderr.contains("--allow-plaintext-token"),
        "{}",
        out.stderr
    );
    fake.insert_running("operations/x");
    let out = run(
        &fake,
        &[
            "--allow-plaintext-token",
            "--token",
            "secret-token",
            "get",
            "operations/x",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_follows_pages_and_stops_at_the_limit_with_a_token() {
    let fake = fake().await;
    for i in 0..25 {
        fake.insert_running(format!("projects/p/locations/us-west1/operations/op{i:02}"));
    }
    let parent = "projects/p/locations/us-west1";
    let out = run(&fake, &["list", parent, "--page-size", "10"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let all = out.json();
    assert_eq!(all["operations"].as_array().unwrap().len(), 25);
    assert!(all.get("nextPageToken").is_none());
    assert_eq!(fake.calls(FakeMethod::ListOperations), 3);

    let out = run(
        &fake,
        &["list", parent, "--page-size", "10", "--limit", "12"],
    )
    .await;
    let some = out.json();
    let names: Vec<_> = some["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 12);
    assert_eq!(names[11], "projects/p/locations/us-west1/operations/op11");
    assert_eq!(some["nextPageToken"], names[11].as_str());

    let out = run(&fake, &["list", parent, "--filter", "done=true"]).await;
    assert_eq!(out.json(), json!({"operations": []}));
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_many_names_prints_one_document_per_line() {
    let fake = fake().await;
    let names: Vec<String> = (0..5)
        .map(|i| {
            fake.insert(
                format!("operations/op{i}"),
                Script::finishing_after(Duration::from_millis(100 * i), Outcome::NoResult),
            )
        })
        .collect();
    let mut args = vec!["--quiet", "wait"];
    args.extend(names[..2].iter().map(String::as_str));
    args.extend(["--from-file", "-"]);
    let stdin = format!("# more\n{}\n\n{}\n{}\n", names[2], names[3], names[4]);
    let endpoint = fake.endpoint();
    let mut all = vec!["--endpoint", endpoint.as_str()];
    all.extend(args);
    let out = run_with(lro(), &all, &stdin).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "", "--quiet prints no progress");
    let mut done: Vec<String> = out
        .json_lines()
        .iter()
        .map(|op| {
            assert_eq!(op["done"], true);
            op["name"].as_str().unwrap().to_owned()
        })
        .collect();
    done.sort();
    assert_eq!(done, names);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_shows_progress_lines_and_its_exit_code_is_the_worst_outcome() {
    let fake = fake().await;
    let purge = pb::BatchOperationMetadata {
        state: 1,
        ..Default::default()
    };
    fake.insert(
        "operations/ok",
        Script::finishing_after(Duration::from_millis(200), Outcome::NoResult)
            .metadata_from(Duration::ZERO, &purge),
    );
    fake.insert(
        "operations/bad",
        Script::finishing_after(
            Duration::from_millis(100),
            Outcome::error(tonic::Code::Internal, "boom"),
        ),
    );
    let out = run(
        &fake,
        &[
            "wait",
            "operations/ok",
            "operations/bad",
            "--strategy",
            "poll",
        ],
    )
    .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.json_lines().len(), 2);
    assert!(
        out.stderr.contains("operations/ok: PROCESSING\n"),
        "{}",
        out.stderr
    );
    // The script has no final metadata: the last state shown stays PROCESSING.
    assert!(
        out.stderr.contains("operations/ok: PROCESSING (done)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("lro: operation operations/bad failed: INTERNAL: boom")
    );

    // A missing operation (exit 3) outranks a failed one (exit 1).
    let out = run(
        &fake,
        &["--quiet", "wait", "operations/bad", "operations/gone"],
    )
    .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_times_out_with_exit_4_and_prints_the_last_snapshot() {
    let fake = fake().await;
    fake.insert_running("projects/p/locations/us-west1/operations/slow");
    let out = run(
        &fake,
        &[
            "--quiet",
            "wait",
            "projects/p/locations/us-west1/operations/slow",
            "--timeout",
            "700ms",
        ],
    )
    .await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    let last = out.json();
    assert_eq!(
        last["name"],
        "projects/p/locations/us-west1/operations/slow"
    );
    assert_eq!(last["metadata"]["state"], "PROCESSING");
    assert!(last.get("done").is_none());
    out.assert_one_error_line("is not done after");
    assert_eq!(fake.calls(FakeMethod::CancelOperation), 0);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_delete_print_an_empty_object() {
    let fake = fake().await;
    fake.insert_running("operations/c");
    let out = run(&fake, &["cancel", "operations/c"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "{}\n"));
    let out = run(&fake, &["get", "operations/c"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.json()["error"]["code"], 1);
    assert_eq!(out.json()["metadata"]["state"], "CANCELLED");

    let out = run(&fake, &["delete", "operations/c"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "{}\n"));
    let out = run(&fake, &["--output", "text", "delete", "operations/c"]).await;
    assert_eq!(out.code, 3);
    out.assert_one_error_line("NOT_FOUND");
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vision_commands_start_jobs_and_wait_for_them() {
    let fake = fake().await;
    let parent = "projects/p/locations/us-west1";
    let out = run(
        &fake,
        &[
            "vision",
            "purge",
            "--parent",
            parent,
            "--orphans",
            "--force",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let started = out.json();
    assert!(started.get("done").is_none());
    assert_eq!(started["metadata"]["state"], "PROCESSING");

    let out = run(
        &fake,
        &[
            "--quiet",
            "vision",
            "purge",
            "--parent",
            parent,
            "--product-set-id",
            "s1",
            "--wait",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let finished = out.json();
    assert_eq!(finished["done"], true);
    assert_eq!(
        finished["response"]["productSetPurgeConfig"]["productSetId"],
        "s1"
    );

    let out = run(
        &fake,
        &[
            "--quiet",
            "vision",
            "import",
            "--parent",
            parent,
            "--csv-uri",
            "gs://b/p.csv",
            "--wait",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.json()["response"]["@type"],
        "type.googleapis.com/google.cloud.vision.v1.ImportProductSetsResponse"
    );
    let out = run(
        &fake,
        &[
            "vision",
            "import",
            "--parent",
            parent,
            "--csv-uri",
            "/tmp/p.csv",
        ],
    )
    .await;
    assert_eq!(out.code, 3);
    out.assert_one_error_line("INVALID_ARGUMENT");

    let request = r#"{"requests": [{"inputConfig": {"gcsSource": {"uri": "gs://b/d.pdf"}, "mimeType": "application/pdf"},
        "features": [{"type": "DOCUMENT_TEXT_DETECTION"}],
        "outputConfig": {"gcsDestination": {"uri": "gs://b/out/"}}}], "parent": "projects/p/locations/us-west1"}"#;
    let endpoint = fake.endpoint();
    let args = [
        "--endpoint",
        endpoint.as_str(),
        "--quiet",
        "vision",
        "annotate-files",
        "--request-file",
        "-",
        "--wait",
    ];
    let out = run_with(lro(), &args, request).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let done = out.json();
    assert_eq!(done["metadata"]["state"], "DONE");
    assert_eq!(
        done["response"]["responses"][0]["outputConfig"]["gcsDestination"]["uri"],
        "gs://b/out/"
    );
    let out = run_with(lro(), &args, "{not json").await;
    assert_eq!(out.code, 2);
    out.assert_one_error_line("not a valid google.cloud.vision.v1.AsyncBatchAnnotateFilesRequest");
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_quota_project_and_emulator_host_reach_the_server() {
    let fake = fake().await;
    fake.insert_running("operations/h");
    let out = run(
        &fake,
        &[
            "--token",
            "tok-1",
            "--quota-project",
            "qp",
            "get",
            "operations/h",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(
        &fake,
        &["--token-command", "echo tok-2", "get", "operations/h"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run_with(
        {
            let mut command = lro();
            command.env("GOOGLE_OAUTH_ACCESS_TOKEN", "tok-3");
            command
        },
        &["--endpoint", &fake.endpoint(), "get", "operations/h"],
        "",
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // LRO_EMULATOR_HOST: plaintext, no token, whatever the endpoint says.
    let out = run_with(
        {
            let mut command = lro();
            command.env("LRO_EMULATOR_HOST", fake.addr().to_string());
            command
        },
        &["--token", "ignored", "get", "operations/h"],
        "",
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let auth: Vec<Option<String>> = fake
        .requests()
        .iter()
        .map(|r| {
            r.headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        auth,
        [
            Some("Bearer tok-1".to_owned()),
            Some("Bearer tok-2".to_owned()),
            Some("Bearer tok-3".to_owned()),
            None
        ]
    );
    assert_eq!(fake.requests()[0].headers["x-goog-user-project"], "qp");
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_serves_until_interrupted() {
    let mut child = lro()
        .args([
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--speed",
            "50",
            "--spread",
            "0.1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = line.strip_prefix("listening on ").expect(&line).to_owned();
    let client = longrunning::OperationsClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut op = longrunning::vision::ProductSearch::new(client)
        .purge_products(pb::PurgeProductsRequest {
            parent: "projects/p/locations/us-west1".into(),
            force: true,
            target: Some(pb::purge_products_request::Target::DeleteOrphanProducts(
                true,
            )),
        })
        .await
        .unwrap();
    // 10 s at speed 50: 200 ms.
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        op.wait(&longrunning::wait::WaitOptions::default()),
    )
    .await
    .unwrap();
    assert!(outcome.unwrap().echoed_request.is_some());

    let pid = child.id().unwrap().to_string();
    let interrupted = tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(interrupted.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    // What it served, counted per RPC.
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    let served = stderr.lines().last().unwrap_or_default();
    assert!(served.starts_with("served "), "{stderr}");
    assert!(served.contains("PurgeProducts 1"), "{served}");
    assert!(served.contains("WaitOperation "), "{served}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_refuses_a_bad_spread() {
    for spread in [
        "--spread=-1",
        "--spread=nan",
        "--spread=1e9",
        "--spread=soon",
    ] {
        let out = run_with(lro(), &["emulator", spread], "").await;
        assert_eq!(out.code, 2, "{spread}: {}", out.stderr);
        assert!(out.stderr.contains("bad spread"), "{}", out.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_offline_and_prints_two_finished_operations() {
    let out = run_with(lro(), &["--quiet", "demo", "--speed", "30"], "").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let operations = out.json_lines();
    assert_eq!(operations.len(), 2);
    let mut kinds: Vec<&str> = operations
        .iter()
        .map(|op| {
            assert_eq!(op["done"], true);
            assert_eq!(op["metadata"]["state"], "SUCCESSFUL");
            op["response"]["@type"].as_str().unwrap()
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "type.googleapis.com/google.cloud.vision.v1.ImportProductSetsResponse",
            "type.googleapis.com/google.cloud.vision.v1.PurgeProductsRequest"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_page_token_ends_the_listing_with_exit_3() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (endpoint, _stop) = serve_pager(Pager {
        per_page: 2,
        repeat_token: Some("same"),
        calls: calls.clone(),
    })
    .await;
    let out = run_with(lro(), &["--endpoint", &endpoint, "list", "projects/p"], "").await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    out.assert_one_error_line("repeated the page token");
    // The page before the repetition is printed, and nothing that looks like an end: no
    // JSON document a script could take for a complete listing. The page that names its
    // own token again is refused.
    assert!(out.stdout.contains("operations/p0-1"), "{}", out.stdout);
    assert!(serde_json::from_str::<serde_json::Value>(&out.stdout).is_err());
    assert!(
        !out.stdout.contains(']'),
        "the listing is not closed: {}",
        out.stdout
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_bounds_the_rpcs_when_pages_come_empty_and_zero_is_bad_input() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (endpoint, _stop) = serve_pager(Pager {
        per_page: 0,
        repeat_token: None,
        calls: calls.clone(),
    })
    .await;
    let list = |limit: &'static str| {
        let endpoint = endpoint.clone();
        async move {
            let args = [
                "--endpoint",
                &endpoint,
                "list",
                "--limit",
                limit,
                "projects/p",
            ];
            run_with(lro(), &args, "").await
        }
    };
    let out = list("5").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 5);
    assert_eq!(
        out.json(),
        json!({"operations": [], "nextPageToken": "page5"})
    );

    let out = list("0").await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        5,
        "no RPC for bad input"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_listing_streams_and_a_closed_pipe_ends_it_quietly() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (endpoint, _stop) = serve_pager(Pager {
        per_page: 50,
        repeat_token: None,
        calls: calls.clone(),
    })
    .await;
    let mut child = lro()
        .args(["--endpoint", &endpoint, "list", "projects/p"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first page arrives before the listing ends (it never does): streamed.
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut read = 0;
    while read < 20 {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("no output within 20 s")
            .unwrap()
            .expect("the output ended");
        assert!(!line.is_empty() || read > 0);
        read += 1;
    }
    drop(lines); // `| head -20`
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("lro did not stop after its reader went away")
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_errors_never_panic_stdout_fails_with_5_and_stderr_never_changes_the_exit() {
    let fake = fake().await;
    fake.insert_running("operations/x");
    let endpoint = fake.endpoint();
    let full = || {
        Stdio::from(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
    };

    let child = lro()
        .args(["--endpoint", &endpoint, "get", "operations/x"])
        .stdout(full())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("cannot write the output"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let child = lro()
        .args(["--endpoint", &endpoint, "get", "operations/unknown"])
        .stdout(Stdio::piped())
        .stderr(full())
        .spawn()
        .unwrap();
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(output.status.code(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_0_looks_once_and_negative_timeouts_are_plain_errors() {
    let fake = fake().await;
    fake.insert_raw(RawOperation {
        name: "operations/done".into(),
        done: true,
        ..Default::default()
    });
    fake.insert_running("operations/running");
    let out = run(&fake, &["wait", "--timeout", "0", "operations/done"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["name"], "operations/done");
    let out = run(&fake, &["wait", "--timeout", "0", "operations/running"]).await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert_eq!(out.json()["name"], "operations/running");
    assert_eq!(fake.calls(FakeMethod::WaitOperation), 0);

    let out = run(&fake, &["wait", "--timeout", "-1", "operations/done"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("cannot be negative"), "{}", out.stderr);
    assert!(!out.stderr.contains("-- -1"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vision_job_done_without_its_result_is_not_a_success() {
    let fake = fake().await;
    fake.set_operation_duration(Duration::from_secs(600));
    let endpoint = fake.endpoint();
    let child = lro()
        .args([
            "--endpoint",
            &endpoint,
            "--quiet",
            "vision",
            "import",
            "--parent",
            "projects/p/locations/us-west1",
            "--csv-uri",
            "gs://b/f.csv",
            "--wait",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = fake
        .wait_for_start(Duration::from_secs(20))
        .await
        .expect("no import started");
    assert!(fake.finish(&started, Outcome::NoResult));
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("has no result"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_exit_3_at_once_and_ca_file_trusts_it() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let certificate_pem = certified.cert.pem();
    let fake = FakeServer::builder()
        .tls(
            certificate_pem.clone(),
            certified.signing_key.serialize_pem(),
        )
        .start()
        .await
        .unwrap();
    fake.insert_running("operations/x");
    let endpoint = fake.endpoint();
    for command in [&["get"][..], &["wait", "--timeout", "1h"][..]] {
        let mut args = vec!["--endpoint", endpoint.as_str(), "--token", "t", "--quiet"];
        args.extend_from_slice(command);
        args.push("operations/x");
        let started = std::time::Instant::now();
        let out = run_with(lro(), &args, "").await;
        assert_eq!(out.code, 3, "{command:?}: {}", out.stderr);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        out.assert_one_error_line("certificate");
        assert!(out.stderr.contains("localhost:"), "{}", out.stderr);
    }
    let ca = std::env::temp_dir().join(format!("lro-test-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, &certificate_pem).unwrap();
    let out = run_with(
        lro(),
        &[
            "--endpoint",
            &endpoint,
            "--token",
            "t",
            "--ca-file",
            ca.to_str().unwrap(),
            "get",
            "operations/x",
        ],
        "",
    )
    .await;
    let _ = std::fs::remove_file(&ca);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["name"], "operations/x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_says_each_retry_on_stderr_and_a_timeout_without_an_answer_prints_nothing() {
    let fake = fake().await;
    fake.insert(
        "operations/flaky",
        Script::finishing_after(Duration::from_millis(500), Outcome::NoResult),
    );
    fake.fail_next(FakeMethod::WaitOperation, 1);
    let out = run(&fake, &["wait", "operations/flaky"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("operations/flaky: WAITING (retrying: UNAVAILABLE: fault injected"),
        "{}",
        out.stderr
    );

    fake.insert_running("operations/silent");
    for method in [FakeMethod::GetOperation, FakeMethod::WaitOperation] {
        fake.http_fault_next(method, 10, longrunning::testing::HttpFault::Silence);
    }
    let out = run(
        &fake,
        &["wait", "--timeout", "1s", "--quiet", "operations/silent"],
    )
    .await;
    // The server never answered: a failed call (3), not a slow operation (4).
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    out.assert_one_error_line("DEADLINE_EXCEEDED: no answer from 127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_can_cancel_at_its_timeout_and_says_when_an_operation_stalls() {
    let fake = fake().await;
    fake.insert_running("operations/stuck");
    let out = run(
        &fake,
        &[
            "wait",
            "--strategy",
            "poll",
            "--timeout",
            "1500ms",
            "--stall-after",
            "300ms",
            "--cancel-on-timeout",
            "operations/stuck",
        ],
    )
    .await;
    // Cancelled at the deadline: the operation ends cancelled, exit 1, its error printed.
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.json()["error"]["code"], 1);
    assert_eq!(fake.calls(FakeMethod::CancelOperation), 1);
    assert!(
        out.stderr.contains("not done within 1500ms: cancelled"),
        "the timeout is said beside the cancel: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("operations/stuck: PROCESSING (no change for "),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_rps_spaces_the_calls_of_a_wait() {
    let fake = fake().await;
    for i in 0..6 {
        fake.insert_running(format!("operations/r{i}"));
    }
    let names: Vec<String> = (0..6).map(|i| format!("operations/r{i}")).collect();
    let mut args = vec![
        "--max-rps",
        "10",
        "--quiet",
        "wait",
        "--strategy",
        "poll",
        "--timeout",
        "400ms",
    ];
    args.extend(names.iter().map(String::as_str));
    let started = std::time::Instant::now();
    let out = run(&fake, &args).await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    // Ten a second over 0.4 s: about five calls, not the six first looks at once.
    let calls = fake.calls(FakeMethod::GetOperation);
    assert!(calls <= 5, "{calls} calls");
    assert!(started.elapsed() >= Duration::from_millis(400));
    let out = run(&fake, &["--max-rps", "0", "get", "operations/r0"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("bad rate"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptor_sets_expand_other_apis_metadata() {
    use prost::Message as _;
    use prost_types::{
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    };
    let set = FileDescriptorSet {
        file: vec![FileDescriptorProto {
            name: Some("example/cli/v1/meta.proto".into()),
            package: Some("example.cli.v1".into()),
            message_type: vec![DescriptorProto {
                name: Some("Meta".into()),
                field: vec![FieldDescriptorProto {
                    name: Some("step".into()),
                    number: Some(1),
                    label: Some(1),
                    r#type: Some(9),
                    json_name: Some("step".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            syntax: Some("proto3".into()),
            ..Default::default()
        }],
    };
    let path = std::env::temp_dir().join(format!("lro-test-set-{}.pb", std::process::id()));
    std::fs::write(&path, set.encode_to_vec()).unwrap();
    let fake = fake().await;
    fake.insert_raw(RawOperation {
        name: "operations/other-api".into(),
        metadata: Some(prost_types::Any {
            type_url: "type.googleapis.com/example.cli.v1.Meta".into(),
            value: vec![0x0a, 0x03, b'o', b'n', b'e'],
        }),
        ..Default::default()
    });
    let out = run(&fake, &["get", "operations/other-api"]).await;
    assert_eq!(out.json()["metadata"]["value"], "CgNvbmU=");
    let set_path = path.to_str().unwrap();
    let out = run(
        &fake,
        &["--descriptor-set", set_path, "get", "operations/other-api"],
    )
    .await;
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["metadata"]["step"], "one");
    let out = run(
        &fake,
        &[
            "--descriptor-set",
            "/nonexistent.pb",
            "get",
            "operations/other-api",
        ],
    )
    .await;
    assert_eq!(out.code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_listing_prints_nothing_that_looks_like_a_result() {
    let fake = fake().await;
    fake.insert_running("projects/p/locations/us-west1/operations/a");
    fake.fail_next_with(
        FakeMethod::ListOperations,
        1,
        tonic::Status::permission_denied("no"),
    );
    let out = run(
        &fake,
        &[
            "list",
            "projects/p/locations/us-west1",
            "--filter",
            "done=false",
        ],
    )
    .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.stdout, "", "no empty listing for jq to count");
    out.assert_one_error_line("PERMISSION_DENIED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_endpoint_beats_the_emulator_variable_and_the_variable_says_so() {
    let fake = fake().await;
    fake.insert_running("operations/e");
    let emulator = FakeServer::start().await.unwrap();
    let with_emulator = |host: String| {
        let mut command = lro();
        command.env("LRO_EMULATOR_HOST", host);
        command
    };
    let endpoint = fake.endpoint();
    let args = ["--endpoint", endpoint.as_str(), "get", "operations/e"];
    let out = run_with(with_emulator(emulator.addr().to_string()), &args, "").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("LRO_EMULATOR_HOST"), "{}", out.stderr);
    assert!(out.stderr.contains("is ignored"), "{}", out.stderr);
    assert_eq!(emulator.total_calls(), 0, "the emulator was not asked");
    assert_eq!(fake.calls(FakeMethod::GetOperation), 1);

    // In effect, the variable says so, and says that a token given is not sent.
    let args = ["--token", "t0k3n", "get", "operations/e"];
    let out = run_with(with_emulator(fake.addr().to_string()), &args, "").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("in effect"), "{}", out.stderr);
    assert!(out.stderr.contains("not sent"), "{}", out.stderr);
    assert!(!out.stderr.contains("t0k3n"));

    // Empty is unset: Google's endpoint, with Application Default Credentials (here a
    // missing credentials file, so nothing leaves the machine), not the emulator path.
    let mut command = with_emulator(String::new());
    command.env("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/adc.json");
    let out = run_with(command, &["get", "operations/e"], "").await;
    assert_ne!(out.code, 0);
    assert!(!out.stderr.contains("emulator"), "{}", out.stderr);
    assert!(out.stderr.contains("access token"), "{}", out.stderr);
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_token_resumes_where_limit_stopped() {
    let fake = fake().await;
    for i in 0..5 {
        fake.insert_running(format!("projects/p/locations/us-west1/operations/op{i}"));
    }
    let parent = "projects/p/locations/us-west1";
    let first = run(&fake, &["list", parent, "--limit", "2"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let first = first.json();
    let token = first["nextPageToken"].as_str().expect("a token to resume");
    let rest = run(&fake, &["list", parent, "--page-token", token]).await;
    assert_eq!(rest.code, 0, "{}", rest.stderr);
    let names = |listing: &Value| -> Vec<String> {
        listing["operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|op| op["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut all = names(&first);
    all.extend(names(&rest.json()));
    let expected: Vec<String> = (0..5)
        .map(|i| format!("{parent}/operations/op{i}"))
        .collect();
    assert_eq!(all, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_purge_is_read_back_by_its_short_name_as_googles_page_does() {
    let fake = fake().await;
    let purge = [
        "vision",
        "purge",
        "--parent",
        "projects/p/locations/us-west1",
        "--orphans",
    ];
    let started = run(&fake, &purge).await;
    assert_eq!(started.code, 0, "{}", started.stderr);
    let name = started.json()["name"].as_str().unwrap().to_owned();
    let id = name.rsplit('/').next().unwrap();
    let out = run(&fake, &["--location", "us-west1", "get", id]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["name"], name.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_listings_pipe_into_wait_and_vision_wait_names_its_operation_at_once() {
    let fake = fake().await;
    fake.set_operation_duration(Duration::from_millis(50));
    let parent = "projects/p/locations/us-west1";
    let purge = [
        "vision",
        "purge",
        "--parent",
        parent,
        "--orphans",
        "--wait",
        "--timeout",
        "30s",
    ];
    let out = run(&fake, &purge).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let first_note = out.stderr.lines().next().unwrap_or_default();
    assert!(
        first_note.starts_with("lro: started projects/p/"),
        "{}",
        out.stderr
    );

    let listed = run(&fake, &["--output", "text", "list", parent]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains('\t'));
    let waited = run_input(
        &fake,
        &["--quiet", "wait", "--from-file", "-"],
        &listed.stdout,
    )
    .await;
    assert_eq!(waited.code, 0, "{}", waited.stderr);
    assert_eq!(waited.json()["done"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_every_exit_code_and_the_global_options_apart() {
    let out = run_with(lro(), &["--help"], "").await;
    assert_eq!(out.code, 0);
    for code in 0..=5 {
        assert!(
            out.stdout.contains(&format!("\n  {code}  ")),
            "{code}: {}",
            out.stdout
        );
    }
    assert!(out.stdout.contains("Global options"), "{}", out.stdout);
    let wait = run_with(lro(), &["wait", "--help"], "").await;
    let own = wait.stdout.find("--strategy").unwrap();
    let global = wait.stdout.find("Global options").unwrap();
    assert!(
        own < global,
        "the command's own options first: {}",
        wait.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_and_no_proxy_flags_choose_the_route() {
    let fake = fake().await;
    fake.insert_running("operations/p");
    // A proxy whose policy refuses every host.
    let refusing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = refusing.local_addr().unwrap();
    let server = tokio::spawn(async move {
        while let Ok((mut client, _)) = refusing.accept().await {
            let mut head = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut client, &mut head).await;
            let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
        }
    });
    let proxy = format!("http://user:pa55word@{addr}");
    let out = run(&fake, &["--proxy", &proxy, "get", "operations/p"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    out.assert_one_error_line(&format!("the proxy {addr} refuses to connect"));
    assert!(!out.stderr.contains("pa55word"));
    let args = [
        "--proxy",
        &proxy,
        "--no-proxy",
        "127.0.0.1",
        "get",
        "operations/p",
    ];
    let out = run(&fake, &args).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(&fake, &["--proxy", "socks5://x", "get", "operations/p"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("bad proxy URL"), "{}", out.stderr);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_ends_a_wait_with_a_summary_and_exit_130() {
    let fake = fake().await;
    fake.insert_running("operations/long");
    let endpoint = fake.endpoint();
    let mut child = lro()
        .args([
            "--endpoint",
            &endpoint,
            "wait",
            "--strategy",
            "poll",
            "operations/long",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Progress lines on stderr (not a terminal): the wait is under way.
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = stderr.next_line().await.unwrap().unwrap_or_default();
    assert!(first.contains("operations/long"), "{first}");
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(130));
    let mut rest = String::new();
    while let Ok(Some(line)) = stderr.next_line().await {
        rest.push_str(&line);
        rest.push('\n');
    }
    assert!(
        rest.contains("interrupted: 0 of 1 done; the rest go on on the server"),
        "{rest}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_wait_go_through_a_proxy_named_by_http_proxy_alone() {
    let fake = fake().await;
    fake.insert(
        "operations/through",
        Script::finishing_after(Duration::from_millis(100), Outcome::NoResult),
    );
    // A forward proxy that opens every tunnel asked for, and counts them.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnels = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let proxy = {
        let tunnels = tunnels.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let tunnels = tunnels.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if tokio::io::AsyncReadExt::read(&mut client, &mut byte)
                            .await
                            .ok()
                            != Some(1)
                        {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tunnels.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = client.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        })
    };
    let through_proxy = || {
        let mut command = lro();
        command.env("http_proxy", format!("http://{addr}"));
        command
    };
    let endpoint = fake.endpoint();
    let get = ["--endpoint", endpoint.as_str(), "get", "operations/through"];
    let out = run_with(through_proxy(), &get, "").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let wait = [
        "--endpoint",
        endpoint.as_str(),
        "--quiet",
        "wait",
        "operations/through",
    ];
    let out = run_with(through_proxy(), &wait, "").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["done"], true);
    assert_eq!(
        tunnels.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one tunnel a run"
    );
    proxy.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_to_polling_is_said_once_and_never_as_a_retry() {
    let fake = fake().await;
    fake.set_wait_unimplemented(true);
    let names: Vec<String> = (0..3)
        .map(|i| {
            fake.insert(
                format!("projects/p/locations/us-west1/operations/poll{i}"),
                Script::finishing_after(Duration::from_millis(200), Outcome::NoResult),
            )
        })
        .collect();
    let mut args = vec!["wait"];
    args.extend(names.iter().map(String::as_str));
    let out = run(&fake, &args).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stderr
            .matches("the server does not implement WaitOperation: polling")
            .count(),
        1,
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("retrying"), "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 3);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_and_demo_refuse_connection_options_rather_than_ignore_them() {
    for args in [
        &["--endpoint", "http://127.0.0.1:9", "demo"][..],
        &["demo", "--token", "secret-token", "--max-rps", "5"],
        &[
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--proxy",
            "http://127.0.0.1:9",
        ],
    ] {
        let out = run_with(lro(), args, "").await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("connects nowhere: it takes no --"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("secret-token"), "{}", out.stderr);
        assert!(out.stdout.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_prints_the_same_and_exits_the_same_over_rest() {
    let fake = fake().await;
    let parent = "projects/p/locations/us-west1";
    let done = fake.insert(
        format!("{parent}/operations/done"),
        Script::finishing_after(Duration::ZERO, Outcome::NoResult),
    );
    let failed = fake.insert(
        format!("{parent}/operations/failed"),
        Script::finishing_after(
            Duration::ZERO,
            Outcome::error(tonic::Code::InvalidArgument, "bad CSV"),
        ),
    );
    let commands: Vec<Vec<&str>> = vec![
        vec!["get", &done],
        vec!["get", &failed],
        vec!["get", "projects/p/locations/us-west1/operations/missing"],
        vec!["list", parent],
        vec!["--output", "text", "list", parent],
        vec!["wait", &done, &failed],
        vec!["cancel", &done],
    ];
    for command in commands {
        let grpc = run(&fake, &command).await;
        let mut over_rest = vec!["--transport", "rest", "--rest-rules", "standard-v1"];
        over_rest.extend(&command);
        let rest = run(&fake, &over_rest).await;
        assert_eq!(rest.code, grpc.code, "{command:?}: {}", rest.stderr);
        assert_eq!(rest.stdout, grpc.stdout, "{command:?}");
    }
    // The Vision commands over REST, by Vision's rules: the same result as over gRPC.
    let purge = [
        "vision",
        "purge",
        "--parent",
        parent,
        "--orphans",
        "--force",
        "--wait",
    ];
    let grpc = run(
        &fake,
        &["--quiet"]
            .iter()
            .chain(&purge)
            .copied()
            .collect::<Vec<_>>(),
    )
    .await;
    let rest = run(
        &fake,
        &["--quiet", "--transport", "rest"]
            .iter()
            .chain(&purge)
            .copied()
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!((grpc.code, rest.code), (0, 0), "{}", rest.stderr);
    for out in [&grpc, &rest] {
        let json = out.json();
        assert_eq!(json["done"], true);
        assert_eq!(json["response"]["parent"], parent, "the echoed request");
    }
    // Vision binds no ListOperations: a clear error, nothing printed.
    let out = run(&fake, &["--transport", "rest", "list", parent]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    out.assert_one_error_line("UNIMPLEMENTED: no REST binding for ListOperations");
    // Vision's GetOperation works.
    let out = run(&fake, &["--transport", "rest", "get", &done]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(
        &fake,
        &["--transport", "rest", "--rest-rules", "nope", "get", &done],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    fake.shutdown().await;
}
