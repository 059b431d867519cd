//! What goes to stdout: proto3 JSON (the default) or a short text summary; and notes on
//! stderr. Nothing here panics on a closed or full stream: the first failed write to stdout
//! is kept (later writes are skipped) and decides the exit; a failed write to stderr is
//! ignored.

use std::io::{self, Write as _};
use std::sync::Mutex;

use longrunning::json::{metadata_state, operation_to_json};
use longrunning::proto::longrunning::operation::Result as RawResult;
use longrunning::{RawOperation, Status};
use serde_json::Value;

use crate::args::OutputFormat;

/// A line on stderr; a failed write is ignored (it must never change the exit code).
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use note;

/// Prints results in the chosen format.
pub(crate) struct Printer {
    format: OutputFormat,
    /// The first write to stdout that failed.
    failed: Mutex<Option<io::Error>>,
    /// Operations written so far in the listing being printed.
    listed: Mutex<usize>,
}

/// Why stdout could not take the output.
pub(crate) enum OutputFailure {
    /// The reader went away (`lro list | head -1`): end quietly.
    Closed,
    /// Anything else (a full disk): an error.
    Failed(io::Error),
}

impl Printer {
    pub(crate) fn new(format: OutputFormat) -> Self {
        Printer {
            format,
            failed: Mutex::new(None),
            listed: Mutex::new(0),
        }
    }

    /// What went wrong writing to stdout, if anything.
    pub(crate) fn failure(&self) -> Option<OutputFailure> {
        lock(&self.failed).take().map(|err| {
            if err.kind() == io::ErrorKind::BrokenPipe {
                OutputFailure::Closed
            } else {
                OutputFailure::Failed(err)
            }
        })
    }

    /// Whether stdout still takes output.
    pub(crate) fn is_open(&self) -> bool {
        lock(&self.failed).is_none()
    }

    fn write(&self, text: &str) {
        if !self.is_open() {
            return;
        }
        let mut out = io::stdout().lock();
        if let Err(err) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            *lock(&self.failed) = Some(err);
        }
    }

    /// One operation, as the only result of a command.
    pub(crate) fn operation(&self, operation: &RawOperation) {
        self.final_operation(operation, false);
    }

    /// One of possibly several results: several print one JSON document per line.
    pub(crate) fn final_operation(&self, operation: &RawOperation, several: bool) {
        match self.format {
            OutputFormat::Json => self.write(&json_text(&operation_to_json(operation), several)),
            OutputFormat::Text => self.write(&format!("{}\n", summary(operation))),
        }
    }

    /// Starts a listing: `{"operations": [` in JSON.
    pub(crate) fn begin_list(&self) {
        *lock(&self.listed) = 0;
        if self.format == OutputFormat::Json {
            self.write("{\n  \"operations\": [");
        }
    }

    /// One operation of a listing, written as soon as its page arrived.
    pub(crate) fn list_item(&self, operation: &RawOperation) {
        let first = *lock(&self.listed) == 0;
        *lock(&self.listed) += 1;
        match self.format {
            OutputFormat::Json => {
                let item = json_text(&operation_to_json(operation), false);
                let indented: Vec<String> = item
                    .trim_end()
                    .lines()
                    .map(|line| format!("    {line}"))
                    .collect();
                let separator = if first { "\n" } else { ",\n" };
                self.write(&format!("{separator}{}", indented.join("\n")));
            }
            OutputFormat::Text => {
                self.write(&format!("{}\t{}\n", operation.name, short_state(operation)));
            }
        }
    }

    /// Ends a listing, with `nextPageToken` when it stopped early.
    pub(crate) fn end_list(&self, next_page_token: Option<&str>) {
        match self.format {
            OutputFormat::Json => {
                let close = if *lock(&self.listed) == 0 {
                    "]"
                } else {
                    "\n  ]"
                };
                let token = next_page_token
                    .map(|t| format!(",\n  \"nextPageToken\": {}", Value::String(t.to_owned())))
                    .unwrap_or_default();
                self.write(&format!("{close}{token}\n}}\n"));
            }
            OutputFormat::Text => {
                if let Some(token) = next_page_token {
                    self.write(&format!("next page token: {token}\n"));
                }
            }
        }
    }

    /// The answer of a call that returns nothing (cancel, delete): `{}` as REST prints it.
    pub(crate) fn empty(&self, text: &str) {
        match self.format {
            OutputFormat::Json => self.write("{}\n"),
            OutputFormat::Text => self.write(&format!("{text}\n")),
        }
    }

    /// A plain line (the emulator's address).
    pub(crate) fn line(&self, text: &str) {
        self.write(&format!("{text}\n"));
    }
}

fn json_text(value: &Value, compact: bool) -> String {
    let text = if compact {
        serde_json::to_string(value)
    } else {
        serde_json::to_string_pretty(value)
    };
    // Serializing a serde_json::Value cannot fail.
    format!("{}\n", text.unwrap_or_default())
}

fn short_state(operation: &RawOperation) -> String {
    let state = metadata_state(operation);
    let done = if operation.done { "done" } else { "running" };
    match state {
        Some(state) => format!("{state}\t{done}"),
        None => done.to_owned(),
    }
}

/// How many error details the text summary lists before it summarises the rest.
const DETAILS_LISTED: usize = 5;

/// Name, state, done, and the result or the error with its details.
fn summary(operation: &RawOperation) -> String {
    let mut lines = vec![format!("name:   {}", operation.name)];
    if let Some(state) = metadata_state(operation) {
        lines.push(format!("state:  {state}"));
    }
    lines.push(format!("done:   {}", operation.done));
    match &operation.result {
        Some(RawResult::Response(any)) => lines.push(format!("result: {}", any.type_url)),
        Some(RawResult::Error(status)) => {
            let status = Status::from_proto(status);
            lines.push(format!("error:  {status}"));
            for detail in status.details.iter().take(DETAILS_LISTED) {
                lines.push(format!("        detail {}", detail.type_name()));
            }
            if status.details.len() > DETAILS_LISTED {
                lines.push(format!(
                    "        and {} more details",
                    status.details.len() - DETAILS_LISTED
                ));
            }
        }
        None if operation.done => lines.push("result: (none)".to_owned()),
        None => {}
    }
    lines.join("\n")
}

/// The guard of `mutex`, even if a thread panicked holding it (the values here stay valid).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
