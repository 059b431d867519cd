//! `lro`: get, list, wait for, cancel and delete Google Cloud long-running operations over
//! gRPC, start Vision batch jobs, and run the emulator. A thin layer over the library.
//!
//! Exit codes: 0 done with a response (or a command that succeeded); 1 an operation finished
//! with an error (or, waited for by a `vision` command, without the result its type needs);
//! 2 bad usage or bad input; 3 an RPC failed; 4 `wait` timed out; 5 the output could not be
//! written (a closed pipe ends the command quietly instead).

mod args;
mod output;
mod progress;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use futures_util::StreamExt;
use longrunning::proto::longrunning::operation::Result as RawResult;
use longrunning::testing::FakeServer;
use longrunning::transport::Connector;
use longrunning::transport::TOKEN_ENV;
use longrunning::transport::{CommandToken, EnvToken, StaticToken};
use longrunning::vision::pb;
use longrunning::wait::{WaitOptions, Watched};
use longrunning::{Error, ListOptions, OperationsClient, RawOperation};

use args::{Cli, Command, VisionCommand};
use output::{OutputFailure, Printer, note};
use progress::Progress;

/// How a command ended, as an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success = 0,
    OperationFailed = 1,
    BadInput = 2,
    RpcFailed = 3,
    TimedOut = 4,
    OutputFailed = 5,
}

impl Outcome {
    /// The outcome of a failed library call.
    fn of(error: &Error) -> Self {
        match error {
            Error::InvalidName { .. }
            | Error::InvalidArgument(_)
            | Error::PlaintextToken { .. } => Outcome::BadInput,
            Error::OperationFailed { .. } | Error::OperationCancelled { .. } => {
                Outcome::OperationFailed
            }
            Error::Timeout { .. } => Outcome::TimedOut,
            _ => Outcome::RpcFailed,
        }
    }

    /// The outcome of a final (or current) snapshot.
    fn of_snapshot(operation: &RawOperation) -> Self {
        match (&operation.result, operation.done) {
            (Some(RawResult::Error(_)), true) => Outcome::OperationFailed,
            _ => Outcome::Success,
        }
    }

    /// Of several outcomes, the one to exit with: output failures, bad input, then RPC
    /// failures, then timeouts, then failed operations.
    fn worst(self, other: Outcome) -> Outcome {
        let rank = |o: Outcome| match o {
            Outcome::Success => 0,
            Outcome::OperationFailed => 1,
            Outcome::TimedOut => 2,
            Outcome::RpcFailed => 3,
            Outcome::BadInput => 4,
            Outcome::OutputFailed => 5,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    // One thread: a waiting command spends its time on timers and sockets, and a
    // multi-threaded runtime spent most of its CPU waking its threads up.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            note!("lro: cannot start the async runtime: {err}");
            return ExitCode::from(3);
        }
    };
    let outcome = runtime.block_on(run(cli));
    ExitCode::from(outcome as u8)
}

async fn run(cli: Cli) -> Outcome {
    let printer = Printer::new(cli.output);
    let outcome = match execute(&cli, &printer).await {
        Ok(outcome) => outcome,
        Err(err) => {
            note!("lro: {err}");
            Outcome::of(&err)
        }
    };
    match printer.failure() {
        None | Some(OutputFailure::Closed) => outcome,
        Some(OutputFailure::Failed(err)) => {
            note!("lro: cannot write the output: {err}");
            outcome.worst(Outcome::OutputFailed)
        }
    }
}

async fn execute(cli: &Cli, printer: &Printer) -> Result<Outcome, Error> {
    for path in &cli.descriptor_set {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::InvalidArgument(format!("cannot read {}: {e}", path.display())))?;
        longrunning::json::register_descriptor_set(&bytes)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
    }
    if let Some(location) = &cli.location {
        args::check_location(location, &cli.endpoint)?;
    }
    match &cli.command {
        Command::Get { name } => {
            let name = args::operation_name(name, cli.location.as_deref())?;
            let operation = connect(cli).await?.get(&name).await?;
            printer.operation(&operation);
            report_failure(&operation);
            Ok(Outcome::of_snapshot(&operation))
        }
        Command::List {
            parent,
            filter,
            page_size,
            limit,
        } => {
            let client = connect(cli).await?;
            let limit = limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
            list(&client, printer, parent, filter, *page_size, limit).await
        }
        Command::Wait {
            names,
            from_file,
            timeout,
            strategy,
            cancel_on_timeout,
            stall_after,
        } => {
            let mut all = names.clone();
            if let Some(file) = from_file {
                all.extend(args::names_from_file(file)?);
            }
            if all.is_empty() {
                return Err(Error::InvalidArgument(
                    "no operation to wait for: give NAME... or --from-file".into(),
                ));
            }
            let names = all
                .iter()
                .map(|n| args::operation_name(n, cli.location.as_deref()))
                .collect::<Result<Vec<_>, _>>()?;
            let options = WaitOptions {
                timeout: timeout.map(|t| t.0),
                strategy: strategy.0,
                cancel_on_timeout: *cancel_on_timeout,
                stall_after: Some(stall_after.0),
                ..WaitOptions::default()
            };
            let client = connect(cli).await?;
            if options.timeout == Some(Duration::ZERO) {
                return look_once(&client, printer, &names).await;
            }
            wait(&client, printer, names, &options, cli.quiet, None).await
        }
        Command::Cancel { name } => {
            let name = args::operation_name(name, cli.location.as_deref())?;
            connect(cli).await?.cancel(&name).await?;
            printer.empty(&format!("cancellation requested for {name}"));
            Ok(Outcome::Success)
        }
        Command::Delete { name } => {
            let name = args::operation_name(name, cli.location.as_deref())?;
            connect(cli).await?.delete(&name).await?;
            printer.empty(&format!("deleted {name}"));
            Ok(Outcome::Success)
        }
        Command::Vision(vision) => {
            let (request, wait_for_it) = vision_request(vision)?;
            let check = request.typed_check();
            let client = connect(cli).await?;
            let operation = start(&client, request).await?;
            if !wait_for_it {
                printer.operation(&operation);
                return Ok(Outcome::of_snapshot(&operation));
            }
            let name = operation.name.clone();
            wait(
                &client,
                printer,
                vec![name],
                &WaitOptions::default(),
                cli.quiet,
                Some(check),
            )
            .await
        }
        Command::Emulator {
            listen,
            no_wait_rpc,
            speed,
            spread,
        } => emulator(printer, *listen, *no_wait_rpc, speed.0, spread.0).await,
        Command::Demo => demo(printer, cli.quiet).await,
    }
}

/// The client the global options describe.
async fn connect(cli: &Cli) -> Result<OperationsClient, Error> {
    let mut connector = Connector::from_env().endpoint(&cli.endpoint);
    if let Some(project) = &cli.quota_project {
        connector = connector.quota_project(project);
    }
    if let Some(rate) = cli.max_rps {
        connector = connector.max_rps(rate);
    }
    if let Some(path) = &cli.ca_file {
        connector = connector.ca_file(path)?;
    }
    let emulated = std::env::var_os(longrunning::transport::EMULATOR_HOST_ENV).is_some();
    if let Some(token) = &cli.token {
        connector = connector.token_source(StaticToken::new(token));
    } else if let Some(command) = &cli.token_command {
        connector = connector.token_source(CommandToken::shell(command));
    } else if std::env::var(TOKEN_ENV).is_ok_and(|t| !t.trim().is_empty()) {
        connector = connector.token_source(EnvToken::new());
    } else if cli.endpoint.starts_with("https://") && !emulated {
        // Google's own endpoint with no token given: Application Default Credentials.
        connector =
            connector.token_source(longrunning::transport::ApplicationDefault::new().await?);
    }
    connector.connect_lazy()
}

/// Prints an operation's error on stderr, one line.
fn report_failure(operation: &RawOperation) {
    if let (true, Some(RawResult::Error(status))) = (operation.done, &operation.result) {
        let status = longrunning::Status::from_proto(status);
        note!("lro: operation {} failed: {status}", operation.name);
    }
}

/// Lists page by page, writing each page as it arrives (memory: one page). `--limit N`
/// stops after N operations or after N pages, whichever comes first, so that a server
/// answering empty pages costs at most N RPCs; the token to resume is printed then. A page
/// token the server already gave ends the listing with an error.
async fn list(
    client: &OperationsClient,
    printer: &Printer,
    parent: &str,
    filter: &str,
    page_size: Option<u32>,
    limit: Option<usize>,
) -> Result<Outcome, Error> {
    let page_size = page_size.map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX));
    let mut listed = 0usize;
    let mut pages = 0usize;
    let mut token = String::new();
    // Hashes of the tokens seen: a cycle of any length is caught with 8 bytes a page.
    let hasher = std::collections::hash_map::RandomState::new();
    let mut seen_tokens = std::collections::HashSet::new();
    printer.begin_list();
    loop {
        let wanted = limit.map(|limit| limit.saturating_sub(listed));
        // Ask for no more than the limit still allows, so that a page ends exactly there
        // and its token resumes right after.
        let size = match wanted {
            Some(wanted) if page_size == 0 || (wanted as i64) < page_size as i64 => {
                i32::try_from(wanted).unwrap_or(i32::MAX)
            }
            _ => page_size,
        };
        let options = ListOptions {
            filter: filter.to_owned(),
            page_size: size,
            page_token: token,
        };
        let page = match client.list(parent, &options).await {
            Ok(page) => page,
            Err(err) => {
                printer.end_list(None);
                return Err(err);
            }
        };
        pages += 1;
        let room = limit.map_or(usize::MAX, |limit| limit.saturating_sub(listed));
        for operation in page.operations.iter().take(room) {
            printer.list_item(operation);
            listed += 1;
        }
        if !printer.is_open() {
            return Ok(Outcome::Success);
        }
        let Some(next) = page.next_page_token else {
            break;
        };
        if !seen_tokens.insert(std::hash::BuildHasher::hash_one(&hasher, &next)) {
            printer.end_list(None);
            return Err(Error::Rpc {
                method: "ListOperations",
                status: longrunning::Status::new(
                    longrunning::Code::Internal,
                    format!(
                        "the server repeated the page token {:?}: the listing would never end",
                        next.chars().take(80).collect::<String>()
                    ),
                ),
                fault: None,
            });
        }
        if limit.is_some_and(|limit| listed >= limit || pages >= limit) {
            printer.end_list(Some(&next));
            return Ok(Outcome::Success);
        }
        token = next;
    }
    printer.end_list(None);
    Ok(Outcome::Success)
}

/// Waits for every name at once, with progress on stderr; prints each final operation as
/// it finishes.
/// `wait --timeout 0`: one look at each operation. Done ones are printed as `wait` prints
/// them; one not done yet is printed too, and the exit says "not done" (4).
async fn look_once(
    client: &OperationsClient,
    printer: &Printer,
    names: &[String],
) -> Result<Outcome, Error> {
    let several = names.len() > 1;
    let mut outcome = Outcome::Success;
    for name in names {
        let operation = client.get(name).await?;
        printer.final_operation(&operation, several);
        report_failure(&operation);
        outcome = outcome.worst(if operation.done {
            Outcome::of_snapshot(&operation)
        } else {
            note!("lro: {name}: not done yet");
            Outcome::TimedOut
        });
    }
    Ok(outcome)
}

/// Checks a finished operation against the response type its start call declares: done
/// with no result, or with another type, is not a success.
type TypedCheck = fn(&RawOperation) -> Result<(), Error>;

fn check_response<R: longrunning::OperationResponse>(
    operation: &RawOperation,
) -> Result<(), Error> {
    longrunning::Snapshot::<R, ()>::new(operation.clone())
        .result()
        .map(|_| ())
}

impl StartRequest {
    /// The check of the operation this request starts.
    fn typed_check(&self) -> TypedCheck {
        match self {
            StartRequest::Import(_) => check_response::<pb::ImportProductSetsResponse>,
            StartRequest::Purge(_) => check_response::<longrunning::vision::PurgeOutcome>,
            StartRequest::AnnotateFiles(_) => check_response::<pb::AsyncBatchAnnotateFilesResponse>,
        }
    }
}

async fn wait(
    client: &OperationsClient,
    printer: &Printer,
    names: Vec<String>,
    options: &WaitOptions,
    quiet: bool,
    check: Option<TypedCheck>,
) -> Result<Outcome, Error> {
    let several = names.len() > 1;
    let mut progress = Progress::new(quiet, &names);
    let mut outcome = Outcome::Success;
    let mut snapshots = client.watch_each(names, options);
    while let Some((name, snapshot)) = snapshots.next().await {
        match snapshot {
            Ok(Watched::Retrying { error, .. }) => progress.retrying(&name, &error),
            Ok(Watched::Stalled { unchanged_for }) => progress.stalled(&name, unchanged_for),
            Ok(Watched::Snapshot(operation)) if !operation.done => {
                progress.update(&name, &operation)
            }
            Ok(Watched::Snapshot(operation)) => {
                progress.finish(&name, &operation);
                let mut this = Outcome::of_snapshot(&operation);
                let typed = match (this, check) {
                    (Outcome::Success, Some(check)) => check(&operation).err(),
                    _ => None,
                };
                progress.suspend(|| {
                    printer.final_operation(&operation, several);
                    report_failure(&operation);
                    if let Some(err) = &typed {
                        note!("lro: {err}");
                    }
                });
                if typed.is_some() {
                    this = Outcome::OperationFailed;
                }
                outcome = outcome.worst(this);
            }
            Err(err) => {
                progress.fail(&name, &err);
                progress.suspend(|| {
                    // A timeout prints the last snapshot received; with none, nothing.
                    if let Error::Timeout {
                        last: Some(last), ..
                    } = &err
                    {
                        printer.final_operation(last, several);
                    }
                    note!("lro: {name}: {err}");
                });
                outcome = outcome.worst(Outcome::of(&err));
            }
        }
    }
    progress.clear();
    Ok(outcome)
}

/// A Vision start call, from the command line.
enum StartRequest {
    Import(pb::ImportProductSetsRequest),
    Purge(pb::PurgeProductsRequest),
    AnnotateFiles(pb::AsyncBatchAnnotateFilesRequest),
}

fn vision_request(command: &VisionCommand) -> Result<(StartRequest, bool), Error> {
    Ok(match command {
        VisionCommand::Import {
            parent,
            csv_uri,
            wait,
        } => {
            args::check_parent(parent)?;
            let request = pb::ImportProductSetsRequest {
                parent: parent.clone(),
                input_config: Some(pb::ImportProductSetsInputConfig {
                    source: Some(pb::import_product_sets_input_config::Source::GcsSource(
                        pb::ImportProductSetsGcsSource {
                            csv_file_uri: csv_uri.clone(),
                        },
                    )),
                }),
            };
            (StartRequest::Import(request), *wait)
        }
        VisionCommand::Purge {
            parent,
            product_set_id,
            orphans,
            force,
            wait,
        } => {
            args::check_parent(parent)?;
            let target = match (product_set_id, orphans) {
                (Some(id), false) => pb::purge_products_request::Target::ProductSetPurgeConfig(
                    pb::ProductSetPurgeConfig {
                        product_set_id: id.clone(),
                    },
                ),
                _ => pb::purge_products_request::Target::DeleteOrphanProducts(true),
            };
            let request = pb::PurgeProductsRequest {
                parent: parent.clone(),
                force: *force,
                target: Some(target),
            };
            (StartRequest::Purge(request), *wait)
        }
        VisionCommand::AnnotateFiles { request_file, wait } => {
            let text = args::read_input(request_file)?;
            let request: pb::AsyncBatchAnnotateFilesRequest =
                longrunning::json::message_from_json(&text)?;
            (StartRequest::AnnotateFiles(request), *wait)
        }
    })
}

async fn start(client: &OperationsClient, request: StartRequest) -> Result<RawOperation, Error> {
    use longrunning::vision::{ImageAnnotator, ProductSearch};
    Ok(match request {
        StartRequest::Import(request) => ProductSearch::new(client.clone())
            .import_product_sets(request)
            .await?
            .into_raw(),
        StartRequest::Purge(request) => ProductSearch::new(client.clone())
            .purge_products(request)
            .await?
            .into_raw(),
        StartRequest::AnnotateFiles(request) => ImageAnnotator::new(client.clone())
            .async_batch_annotate_files(request)
            .await?
            .into_raw(),
    })
}

/// How long the emulator's operations take at speed 1.
const EMULATED_DURATION: Duration = Duration::from_secs(10);

async fn emulator(
    printer: &Printer,
    listen: std::net::SocketAddr,
    no_wait_rpc: bool,
    speed: f64,
    spread: Duration,
) -> Result<Outcome, Error> {
    let fake = FakeServer::builder()
        .listen(listen)
        .record_requests(false)
        .start()
        .await?;
    fake.set_wait_unimplemented(no_wait_rpc);
    fake.set_operation_duration(EMULATED_DURATION.div_f64(speed));
    fake.set_operation_duration_spread(spread);
    printer.line(&format!("listening on {}", fake.addr()));
    let _ = tokio::signal::ctrl_c().await;
    // What it served, for measuring a client's RPCs per operation.
    let served: Vec<String> = longrunning::testing::FakeMethod::ALL
        .iter()
        .filter_map(|&method| {
            let calls = fake.calls(method);
            (calls > 0).then(|| format!("{} {calls}", method.name()))
        })
        .collect();
    note!("served {} RPCs: {}", fake.total_calls(), served.join(", "));
    fake.shutdown().await;
    Ok(Outcome::Success)
}

/// The README's main command: the emulator in process, a purge and an import, waited for
/// with progress, their final JSON printed.
async fn demo(printer: &Printer, quiet: bool) -> Result<Outcome, Error> {
    let fake = FakeServer::builder().record_requests(false).start().await?;
    fake.set_operation_duration(Duration::from_secs(3));
    if !quiet {
        note!("demo: emulator listening on {}", fake.addr());
    }
    let client = fake.client();
    let parent = "projects/demo-project/locations/us-west1";
    let purge = start(
        &client,
        StartRequest::Purge(pb::PurgeProductsRequest {
            parent: parent.into(),
            force: true,
            target: Some(pb::purge_products_request::Target::ProductSetPurgeConfig(
                pb::ProductSetPurgeConfig {
                    product_set_id: "demo-product-set".into(),
                },
            )),
        }),
    )
    .await?;
    let import = start(
        &client,
        StartRequest::Import(pb::ImportProductSetsRequest {
            parent: parent.into(),
            input_config: Some(pb::ImportProductSetsInputConfig {
                source: Some(pb::import_product_sets_input_config::Source::GcsSource(
                    pb::ImportProductSetsGcsSource {
                        csv_file_uri: "gs://demo-bucket/product-sets.csv".into(),
                    },
                )),
            }),
        }),
    )
    .await?;
    if !quiet {
        note!(
            "demo: started {} (purge) and {} (import)",
            purge.name,
            import.name
        );
    }
    let outcome = wait(
        &client,
        printer,
        vec![purge.name, import.name],
        &WaitOptions::default(),
        quiet,
        None,
    )
    .await;
    fake.shutdown().await;
    outcome
}
