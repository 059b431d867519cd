//! `lro wait` (and `vision … --wait`): every name at once, progress on stderr, each final
//! operation on stdout as it finishes; and `wait --timeout 0`, one look at each.

use std::time::Duration;

use futures_util::StreamExt as _;
use longrunning::proto::longrunning::operation::Result as RawResult;
use longrunning::wait::{WaitOptions, Watched};
use longrunning::{Error, OperationsClient, RawOperation};

use crate::exit::Exit;
use crate::output::{Printer, note};
use crate::progress::Progress;
use crate::requests::TypedCheck;

/// Prints an operation's error on stderr, one line.
pub(crate) fn report_failure(operation: &RawOperation) {
    if let (true, Some(RawResult::Error(status))) = (operation.done, &operation.result) {
        let status = longrunning::Status::from_proto(status);
        note!("lro: operation {} failed: {status}", operation.name);
    }
}

/// `wait --timeout 0`: one look at each operation. Done ones are printed as `wait` prints
/// them; one not done yet is printed too, and the exit says "not done" (4).
pub(crate) async fn look_once(
    client: &OperationsClient,
    printer: &Printer,
    names: &[String],
) -> Result<Exit, Error> {
    let several = names.len() > 1;
    let mut exit = Exit::Success;
    for name in names {
        let operation = client.get(name).await?;
        printer.final_operation(&operation, several);
        report_failure(&operation);
        exit = exit.worst(if operation.done {
            Exit::of_snapshot(&operation)
        } else {
            note!("lro: {name}: not done yet");
            Exit::TimedOut
        });
    }
    Ok(exit)
}

/// Waits for every name at once.
pub(crate) async fn wait(
    client: &OperationsClient,
    printer: &Printer,
    names: Vec<String>,
    options: &WaitOptions,
    quiet: bool,
    check: Option<TypedCheck>,
) -> Result<Exit, Error> {
    let several = names.len() > 1;
    let started = tokio::time::Instant::now();
    let mut progress = Progress::new(quiet, &names);
    let mut exit = Exit::Success;
    let total = names.len();
    let mut finished = 0usize;
    let mut snapshots = client.watch_each(names, options);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let next = tokio::select! {
            next = snapshots.next() => next,
            _ = &mut interrupted => {
                progress.clear();
                note!(
                    "lro: interrupted: {finished} of {total} done; the rest go on on the server"
                );
                return Ok(exit.worst(Exit::Interrupted));
            }
        };
        let Some((name, snapshot)) = next else {
            break;
        };
        if matches!(&snapshot, Ok(Watched::Snapshot(op)) if op.done) || snapshot.is_err() {
            finished += 1;
        }
        match snapshot {
            Ok(Watched::Retrying { error, .. }) => progress.retrying(&name, &error),
            Ok(Watched::Stalled { unchanged_for }) => progress.stalled(&name, unchanged_for),
            Ok(Watched::Polling) => {
                if !quiet {
                    progress.suspend(|| {
                        note!(
                            "lro: the server does not implement WaitOperation: polling \
                             (GetOperation, or ListOperations rounds for many under one parent)"
                        )
                    });
                }
            }
            Ok(Watched::Snapshot(operation)) if !operation.done => {
                progress.update(&name, &operation)
            }
            Ok(Watched::Snapshot(operation)) => {
                progress.finish(&name, &operation);
                let mut this = Exit::of_snapshot(&operation);
                let typed = match (this, check) {
                    (Exit::Success, Some(check)) => check(&operation).err(),
                    _ => None,
                };
                let cancelled_at_timeout = options.cancel_on_timeout
                    && is_cancelled(&operation)
                    && options
                        .timeout
                        .is_some_and(|timeout| started.elapsed() >= timeout);
                progress.suspend(|| {
                    printer.final_operation(&operation, several);
                    if cancelled_at_timeout {
                        note!(
                            "lro: {name}: not done within {}: cancelled as --cancel-on-timeout asks",
                            shown(options.timeout.unwrap_or_default())
                        );
                    }
                    report_failure(&operation);
                    if let Some(err) = &typed {
                        note!("lro: {err}");
                    }
                });
                if typed.is_some() {
                    this = Exit::OperationFailed;
                }
                exit = exit.worst(this);
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
                exit = exit.worst(Exit::of(&err));
            }
        }
    }
    progress.clear();
    Ok(exit)
}

fn is_cancelled(operation: &RawOperation) -> bool {
    matches!(&operation.result, Some(RawResult::Error(status)) if status.code == 1)
}

/// A duration as the options take it back: `90s`, `1500ms`.
fn shown(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}
