//! [`Exit`]: how a command ended, as its exit code; the one table of codes, which `--help`
//! prints.

use std::process::ExitCode;

use longrunning::proto::longrunning::operation::Result as RawResult;
use longrunning::{Error, RawOperation};

/// How a command ended. The discriminant is the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Done with a response, or the command succeeded.
    Success = 0,
    /// An operation finished with an error (or, waited for by a `vision` command, without
    /// the result its type needs).
    OperationFailed = 1,
    /// Bad usage or bad input.
    BadInput = 2,
    /// An RPC failed, or the server could not be reached.
    RpcFailed = 3,
    /// The server answered, but the operation was not done in time.
    TimedOut = 4,
    /// The output could not be written (a closed pipe ends the command quietly instead).
    OutputFailed = 5,
    /// Interrupted (Ctrl-C) while waiting: the operations go on on the server.
    Interrupted = 130,
}

/// The exit codes, as `lro --help` lists them.
pub(crate) const TABLE: &str = "\
Exit codes:
  0  done with a response, or the command succeeded
  1  an operation finished with an error (or, waited for by a vision command, without
     the result its type needs)
  2  bad usage or bad input
  3  an RPC failed, or the server could not be reached
  4  the server answered, but the operation was not done in time (wait --timeout)
  5  the output could not be written (a closed pipe ends the command quietly instead)
  130  interrupted (Ctrl-C) while waiting; the operations go on on the server";

impl Exit {
    /// The outcome of a failed library call.
    pub(crate) fn of(error: &Error) -> Self {
        match error {
            Error::InvalidName { .. }
            | Error::InvalidArgument(_)
            | Error::PlaintextToken { .. } => Exit::BadInput,
            Error::OperationFailed { .. } | Error::OperationCancelled { .. } => {
                Exit::OperationFailed
            }
            Error::Timeout { .. } => Exit::TimedOut,
            _ => Exit::RpcFailed,
        }
    }

    /// The outcome of a final (or current) snapshot.
    pub(crate) fn of_snapshot(operation: &RawOperation) -> Self {
        match (&operation.result, operation.done) {
            (Some(RawResult::Error(_)), true) => Exit::OperationFailed,
            _ => Exit::Success,
        }
    }

    /// Of two outcomes, the one to exit with: output failures, bad input, then RPC
    /// failures, then timeouts, then failed operations.
    pub(crate) fn worst(self, other: Exit) -> Exit {
        let rank = |exit: Exit| match exit {
            Exit::Success => 0,
            Exit::OperationFailed => 1,
            Exit::TimedOut => 2,
            Exit::RpcFailed => 3,
            Exit::BadInput => 4,
            Exit::OutputFailed => 5,
            Exit::Interrupted => 6,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_table_lists_every_code() {
        for exit in [
            Exit::Success,
            Exit::OperationFailed,
            Exit::BadInput,
            Exit::RpcFailed,
            Exit::TimedOut,
            Exit::OutputFailed,
            Exit::Interrupted,
        ] {
            let row = format!("\n  {}  ", exit as u8);
            assert!(TABLE.contains(&row), "{exit:?} is missing from the table");
        }
    }
}
