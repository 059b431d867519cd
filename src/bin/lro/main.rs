//! `lro`: get, list, wait for, cancel and delete Google Cloud long-running operations over
//! gRPC, start Vision batch jobs, and run the emulator. A thin layer over the library; this
//! file is the command table.
//!
//! | room | what it holds |
//! |---|---|
//! | `args` | the command line: options, commands, the checks on their values |
//! | `credentials` | where to connect and with what token: explicit beats environment |
//! | `requests` | the Vision start calls, built from the command line |
//! | `listing` | `list`: page by page, nothing printed that did not happen |
//! | `waiting` | `wait` and `vision --wait`: every name at once |
//! | `progress` | progress on stderr |
//! | `output` | stdout: JSON or text; notes on stderr |
//! | `emulator` | `emulator` and `demo` |
//! | `exit` | the exit codes |

mod args;
mod credentials;
mod emulator;
mod exit;
mod listing;
mod output;
mod progress;
mod requests;
mod waiting;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use longrunning::Error;
use longrunning::wait::WaitOptions;

use args::{Cli, Command};
use credentials::connect;
use exit::Exit;
use output::{OutputFailure, Printer, note};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = err.print();
            return if err.use_stderr() {
                Exit::BadInput
            } else {
                Exit::Success
            }
            .into();
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
            return Exit::RpcFailed.into();
        }
    };
    // The command runs as a task, not as the runtime's `block_on` future: tokio looks for
    // I/O once more (one more `epoll_wait`) before each poll of that future, and a batch
    // of waits wakes it once per answer.
    runtime
        .block_on(async { tokio::spawn(run(cli)).await })
        .unwrap_or_else(|err| {
            note!("lro: the command stopped: {err}");
            Exit::RpcFailed
        })
        .into()
}

async fn run(cli: Cli) -> Exit {
    let printer = Printer::new(cli.output);
    let exit = match execute(&cli, &printer).await {
        Ok(exit) => exit,
        Err(err) => {
            note!("lro: {err}");
            Exit::of(&err)
        }
    };
    match printer.failure() {
        None | Some(OutputFailure::Closed) => exit,
        Some(OutputFailure::Failed(err)) => {
            note!("lro: cannot write the output: {err}");
            exit.worst(Exit::OutputFailed)
        }
    }
}

async fn execute(cli: &Cli, printer: &Printer) -> Result<Exit, Error> {
    for path in &cli.descriptor_set {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::InvalidArgument(format!("cannot read {}: {e}", path.display())))?;
        longrunning::json::register_descriptor_set(&bytes)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
    }
    if let Some(location) = &cli.location {
        args::check_location(location, &credentials::endpoint(cli))?;
    }
    let location = cli.location.as_deref();
    match &cli.command {
        Command::Get { name } => {
            let name = args::operation_name(name, location)?;
            let operation = connect(cli).await?.get(&name).await?;
            printer.operation(&operation);
            waiting::report_failure(&operation);
            Ok(Exit::of_snapshot(&operation))
        }
        Command::List {
            parent,
            filter,
            page_size,
            limit,
            page_token,
        } => {
            let listing = listing::Listing {
                parent,
                filter,
                page_size: *page_size,
                limit: *limit,
                page_token,
            };
            listing::list(&connect(cli).await?, printer, &listing).await
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
                .map(|name| args::operation_name(name, location))
                .collect::<Result<Vec<_>, _>>()?;
            let options = WaitOptions {
                timeout: timeout.map(|t| t.0),
                strategy: (*strategy).into(),
                cancel_on_timeout: *cancel_on_timeout,
                stall_after: Some(stall_after.0),
                ..WaitOptions::default()
            };
            let client = connect(cli).await?;
            if options.timeout == Some(Duration::ZERO) {
                return waiting::look_once(&client, printer, &names).await;
            }
            waiting::wait(&client, printer, names, &options, cli.quiet, None).await
        }
        Command::Cancel { name } => {
            let name = args::operation_name(name, location)?;
            connect(cli).await?.cancel(&name).await?;
            printer.empty(&format!("cancellation requested for {name}"));
            Ok(Exit::Success)
        }
        Command::Delete { name } => {
            let name = args::operation_name(name, location)?;
            connect(cli).await?.delete(&name).await?;
            printer.empty(&format!("deleted {name}"));
            Ok(Exit::Success)
        }
        Command::Vision(command) => {
            let request = requests::StartRequest::from_command(command)?;
            let check = request.typed_check();
            let client = connect(cli).await?;
            let operation = request.start(&client).await?;
            let waiting = command.waiting();
            if !waiting.wait {
                printer.operation(&operation);
                return Ok(Exit::of_snapshot(&operation));
            }
            if !cli.quiet {
                note!("lro: started {}", operation.name);
            }
            let options = WaitOptions {
                timeout: waiting
                    .timeout
                    .map(|t| t.0)
                    .or(WaitOptions::default().timeout),
                ..WaitOptions::default()
            };
            let names = vec![operation.name];
            waiting::wait(&client, printer, names, &options, cli.quiet, Some(check)).await
        }
        Command::Emulator { .. } | Command::Demo { .. }
            if !args::connection_options(cli).is_empty() =>
        {
            Err(Error::InvalidArgument(format!(
                "`lro {}` runs the emulator here and connects nowhere: it takes no {}",
                if matches!(cli.command, Command::Demo { .. }) {
                    "demo"
                } else {
                    "emulator"
                },
                args::connection_options(cli).join(", ")
            )))
        }
        Command::Emulator {
            listen,
            no_wait_rpc,
            speed,
            spread,
        } => {
            let emulation = emulator::Emulation {
                listen: *listen,
                no_wait_rpc: *no_wait_rpc,
                speed: speed.0,
                spread: spread.0,
            };
            emulator::serve(printer, &emulation).await
        }
        Command::Demo { speed } => emulator::demo(printer, cli.quiet, speed.0).await,
    }
}
