//! The one public error type.
//!
//! Every fallible call in this crate returns [`Error`]. RPC failures and failed operations
//! both carry a [`Status`]: the gRPC [`Code`], the message, and the `google.rpc` error
//! details decoded into their proto types. In a tonic service, `?` turns an [`Error`] into a
//! [`tonic::Status`] with the same code, message and details.

use std::fmt;

use crate::proto::longrunning::Operation as RawOperation;
use crate::proto::rpc;
use crate::status::{Code, Status};

/// What happened below gRPC when a call got no answer from the server: what it means for
/// the call (see [`Error::Rpc`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// The request provably never reached the server: connecting failed, the stream was
    /// refused (`REFUSED_STREAM`), it was above a GOAWAY's last stream id, or the connection
    /// closed before it was sent. Safe to retry any call, even one that starts work.
    Unsent,
    /// The connection or stream broke after the request may have reached the server (reset,
    /// HTTP/2 protocol error, TLS stream cut, keepalive timeout). Retried for reads and waits.
    Interrupted,
    /// The server's TLS certificate was not accepted. Permanent: never retried.
    Certificate,
    /// No answer within the per-call deadline: the request may have reached the server.
    Silent,
    /// The egress proxy refused to open a tunnel to the endpoint (407 authentication
    /// required, 403 forbidden by its policy, …): permanent, never retried.
    ProxyRefused,
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, from a bad operation name to a failed operation.
///
/// ```
/// use longrunning::{Error, OperationName};
///
/// let err = OperationName::parse("operations/has space").unwrap_err();
/// assert!(matches!(err, Error::InvalidName { .. }));
/// assert!(err.to_string().contains("whitespace"));
/// let status: tonic::Status = err.into();
/// assert_eq!(status.code(), tonic::Code::InvalidArgument);
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operation name (or list parent) that cannot be sent.
    #[error("invalid operation name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A bad argument given by the caller (not a name), such as an unusable endpoint URL.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The channel to the endpoint could not be set up.
    #[error("cannot connect to {endpoint}: {message}")]
    Connect {
        /// The endpoint that was dialled.
        endpoint: String,
        /// What went wrong, in words.
        message: String,
    },
    /// The server's TLS certificate was not accepted. Permanent: retrying cannot help. Add
    /// the CA that signed it (`Connector::ca_certificate_pem`, `lro --ca-file`), or fix the
    /// server's certificate.
    #[error("the TLS certificate of {peer} was not accepted: {reason}")]
    Certificate {
        /// The host and port whose certificate it was.
        peer: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The egress proxy refused to open a tunnel to the endpoint (authentication required,
    /// or its policy forbids the host). Permanent: retrying cannot help. Names the proxy by
    /// its host and port, never its credentials.
    #[error("{message}")]
    Proxy {
        /// The proxy, `host:port`.
        proxy: String,
        /// What it answered, in words.
        message: String,
    },
    /// A token source could not give a token. Names the source, never the token or the
    /// contents of a credentials file.
    #[error("cannot get an access token from {source_name}: {message}")]
    Auth {
        /// The source, e.g. `environment variable GOOGLE_OAUTH_ACCESS_TOKEN`.
        source_name: String,
        /// What went wrong.
        message: String,
    },
    /// A bearer token would have been sent over plaintext HTTP to a host that is not this
    /// machine. Use `https://`, or allow it explicitly (`Connector::allow_plaintext_token`,
    /// `lro --allow-plaintext-token`).
    #[error(
        "refusing to send an access token over plaintext to {endpoint}: use https://, or allow it explicitly (--allow-plaintext-token)"
    )]
    PlaintextToken {
        /// The endpoint that was refused.
        endpoint: String,
    },
    /// An RPC failed (after any retries the client's [`RetryPolicy`](crate::RetryPolicy)
    /// allowed).
    #[error("{method} failed: {status}")]
    Rpc {
        /// The RPC, e.g. `GetOperation`.
        method: &'static str,
        /// The gRPC status with its decoded details.
        status: Status,
        /// What happened below gRPC, when the status was not the server's answer (a refused
        /// connection, a reset stream, no answer at all).
        fault: Option<FaultKind>,
    },
    /// The operation finished with an error other than CANCELLED.
    #[error("operation {name} failed: {status}")]
    OperationFailed {
        /// The operation's name.
        name: String,
        /// The operation's `error`.
        status: Status,
    },
    /// The operation finished cancelled (`error.code = 1`), usually after CancelOperation.
    #[error("operation {name} was cancelled: {status}")]
    OperationCancelled {
        /// The operation's name.
        name: String,
        /// The operation's `error`.
        status: Status,
    },
    /// The result of an operation that is not done yet was asked for.
    #[error("operation {name} is not done yet")]
    NotDone {
        /// The operation's name.
        name: String,
    },
    /// The operation is done but carries neither a response nor an error, and its response
    /// type is not `google.protobuf.Empty`.
    #[error("operation {name} is done but has no result (expected a response of type {expected})")]
    MissingResult {
        /// The operation's name.
        name: String,
        /// The response type(s) that were expected.
        expected: String,
    },
    /// An `Any` (response or metadata) holds another type than the one asked for.
    #[error("the {part} of operation {name} has type URL {actual:?}, expected type {expected}")]
    UnexpectedType {
        /// The operation's name.
        name: String,
        /// Which part of the operation held the `Any`.
        part: Part,
        /// The expected full proto name(s).
        expected: String,
        /// The type URL that was found.
        actual: String,
    },
    /// An `Any` of the right type whose bytes do not decode.
    #[error("the {part} of operation {name} ({type_url}) is corrupt: {source}")]
    CorruptPayload {
        /// The operation's name.
        name: String,
        /// Which part of the operation held the bytes.
        part: Part,
        /// The `Any`'s type URL.
        type_url: String,
        /// The decoder's reason.
        #[source]
        source: prost::DecodeError,
    },
    /// A wait ran out of time before the operation finished. Nothing was cancelled on the
    /// server (unless the wait was asked to): wait again, by handle or by name, to resume.
    #[error("{}", timeout_message(name, last.is_some(), elapsed, *rpcs))]
    Timeout {
        /// The operation's name.
        name: String,
        /// The last snapshot the server actually sent; `None` if no answer ever came.
        /// [`Operation::from_raw`](crate::Operation::from_raw) gives it back its types.
        last: Option<Box<RawOperation>>,
        /// How long the wait lasted.
        elapsed: std::time::Duration,
        /// How many RPCs the wait sent.
        rpcs: u32,
    },
    /// An enum field holds a number the vendored protos do not define.
    #[error("the {part} of operation {name} has an unknown {field} value {value}")]
    UnknownEnumValue {
        /// The operation's name.
        name: String,
        /// Which part of the operation held the field.
        part: Part,
        /// The field, e.g. `state`.
        field: &'static str,
        /// The number found.
        value: i32,
    },
}

fn timeout_message(name: &str, answered: bool, elapsed: &std::time::Duration, rpcs: u32) -> String {
    if answered {
        format!("operation {name} is not done after {elapsed:?} ({rpcs} RPCs)")
    } else {
        format!("no answer about operation {name} within {elapsed:?} ({rpcs} RPCs)")
    }
}

impl Error {
    /// The gRPC code of an RPC failure or of a failed or cancelled operation.
    pub fn code(&self) -> Option<Code> {
        self.status().map(|status| status.code)
    }

    /// The status of an RPC failure or of a failed or cancelled operation.
    pub fn status(&self) -> Option<&Status> {
        match self {
            Error::Rpc { status, .. }
            | Error::OperationFailed { status, .. }
            | Error::OperationCancelled { status, .. } => Some(status),
            _ => None,
        }
    }

    pub(crate) fn invalid_name(name: &str, reason: impl Into<String>) -> Self {
        Error::InvalidName {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    /// The error for a finished operation's `error` field.
    pub(crate) fn from_operation_error(op: &RawOperation, status: &rpc::Status) -> Self {
        let status = Status::from_proto(status);
        let name = op.name.clone();
        if status.code == Code::Cancelled {
            Error::OperationCancelled { name, status }
        } else {
            Error::OperationFailed { name, status }
        }
    }

    /// The gRPC code a server would answer with for this error.
    fn tonic_code(&self) -> Code {
        match self {
            Error::InvalidName { .. } | Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::Connect { .. } | Error::Certificate { .. } | Error::Proxy { .. } => {
                Code::Unavailable
            }
            Error::Auth { .. } => Code::Unauthenticated,
            Error::PlaintextToken { .. } | Error::NotDone { .. } => Code::FailedPrecondition,
            Error::Timeout { .. } => Code::DeadlineExceeded,
            Error::Rpc { status, .. }
            | Error::OperationFailed { status, .. }
            | Error::OperationCancelled { status, .. } => status.code,
            Error::MissingResult { .. }
            | Error::UnexpectedType { .. }
            | Error::CorruptPayload { .. }
            | Error::UnknownEnumValue { .. } => Code::Internal,
        }
    }
}

impl From<Error> for tonic::Status {
    /// The status a tonic handler answers with: an RPC failure or a failed operation keeps
    /// its code, message and details; everything else gets the code that fits and the
    /// error's text.
    fn from(error: Error) -> Self {
        match error {
            Error::Rpc { status, .. }
            | Error::OperationFailed { status, .. }
            | Error::OperationCancelled { status, .. } => status.into(),
            other => tonic::Status::new(other.tonic_code(), other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tonic handler's body: `?` turns the crate's errors into statuses.
    fn handler(name: &str) -> std::result::Result<(), tonic::Status> {
        crate::name::OperationName::parse(name)?;
        Err(Error::Rpc {
            method: "GetOperation",
            status: Status::new(Code::NotFound, "gone"),
            fault: None,
        })?
    }

    #[test]
    fn a_tonic_handler_can_question_mark_our_errors() {
        assert_eq!(handler("").unwrap_err().code(), Code::InvalidArgument);
        let status = handler("operations/x").unwrap_err();
        assert_eq!((status.code(), status.message()), (Code::NotFound, "gone"));
    }
}

/// Which part of an operation an `Any` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The `metadata` field.
    Metadata,
    /// The `response` field.
    Response,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Metadata => "metadata",
            Part::Response => "response",
        })
    }
}
