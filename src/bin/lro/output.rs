//! What goes to stdout: proto3 JSON (the default) or a short text summary.

use longrunning::json::{metadata_state, operation_to_json};
use longrunning::proto::longrunning::operation::Result as RawResult;
use longrunning::{RawOperation, Status};
use serde_json::{Map, Value};

use crate::args::OutputFormat;

/// Prints results in the chosen format.
pub struct Printer {
    format: OutputFormat,
}

impl Printer {
    pub fn new(format: OutputFormat) -> Self {
        Printer { format }
    }

    /// One operation, as the only result of a command.
    pub fn operation(&self, operation: &RawOperation) {
        self.final_operation(operation, false);
    }

    /// One of possibly several results: several print one JSON document per line.
    pub fn final_operation(&self, operation: &RawOperation, several: bool) {
        match self.format {
            OutputFormat::Json => print_json(&operation_to_json(operation), several),
            OutputFormat::Text => println!("{}", summary(operation)),
        }
    }

    /// `{"operations": [...]}`, with `nextPageToken` when the listing stopped early.
    pub fn operations(&self, operations: &[RawOperation], next_page_token: Option<&str>) {
        match self.format {
            OutputFormat::Json => {
                let mut out = Map::new();
                out.insert(
                    "operations".into(),
                    Value::Array(operations.iter().map(operation_to_json).collect()),
                );
                if let Some(token) = next_page_token {
                    out.insert("nextPageToken".into(), Value::String(token.to_owned()));
                }
                print_json(&Value::Object(out), false);
            }
            OutputFormat::Text => {
                for operation in operations {
                    println!("{}\t{}", operation.name, short_state(operation));
                }
                if let Some(token) = next_page_token {
                    println!("next page token: {token}");
                }
            }
        }
    }

    /// The answer of a call that returns nothing (cancel, delete): `{}` as REST prints it.
    pub fn empty(&self, text: &str) {
        match self.format {
            OutputFormat::Json => println!("{{}}"),
            OutputFormat::Text => println!("{text}"),
        }
    }
}

fn print_json(value: &Value, compact: bool) {
    let text = if compact {
        serde_json::to_string(value)
    } else {
        serde_json::to_string_pretty(value)
    };
    // Serializing a serde_json::Value cannot fail.
    println!("{}", text.unwrap_or_default());
}

fn short_state(operation: &RawOperation) -> String {
    let state = metadata_state(operation);
    let done = if operation.done { "done" } else { "running" };
    match state {
        Some(state) => format!("{state}\t{done}"),
        None => done.to_owned(),
    }
}

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
            for detail in &status.details {
                lines.push(format!("        detail {}", detail.type_name()));
            }
        }
        None if operation.done => lines.push("result: (none)".to_owned()),
        None => {}
    }
    lines.join("\n")
}
