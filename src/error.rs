//! The one public error type, and `google.rpc.Status` with its details decoded.
//!
//! Every fallible call in this crate returns [`Error`]. RPC failures and failed operations
//! both carry a [`Status`]: the gRPC [`Code`], the message, and the `google.rpc` error
//! details ([`ErrorDetail`]) decoded into their proto types.

use std::fmt;
use std::time::Duration;

use prost::{Message, Name};
use prost_types::Any;
pub use tonic::Code;

use crate::proto::longrunning::Operation as RawOperation;
use crate::proto::rpc;

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
/// ```
#[derive(Debug, thiserror::Error)]
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
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint that was dialled.
        endpoint: String,
        /// The transport's reason.
        #[source]
        source: tonic::transport::Error,
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
    /// machine. Use `https://`, or allow it explicitly.
    #[error(
        "refusing to send an access token over plaintext to {endpoint}: use https://, or allow it explicitly"
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
    /// server: wait again, by handle or by name, to resume.
    #[error("operation {name} is not done after {elapsed:?} ({rpcs} RPCs)")]
    Timeout {
        /// The operation's name.
        name: String,
        /// The last snapshot seen; [`Operation::from_raw`](crate::Operation::from_raw) gives
        /// it back its types.
        last: Box<RawOperation>,
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

/// A `google.rpc.Status` with its code typed and its details decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// The gRPC code. A number outside the known codes becomes [`Code::Unknown`] and is named
    /// in [`message`](Self::message).
    pub code: Code,
    /// The developer-facing message.
    pub message: String,
    /// The decoded `google.rpc` error details, in the order they were sent.
    pub details: Vec<ErrorDetail>,
}

impl Status {
    /// Decodes a `google.rpc.Status` (an operation's `error`).
    pub fn from_proto(status: &rpc::Status) -> Self {
        let code = Code::from_i32(status.code);
        let message = if code == Code::Unknown && status.code != Code::Unknown as i32 {
            format!(
                "unrecognized status code {}: {}",
                status.code, status.message
            )
        } else {
            status.message.clone()
        };
        Status {
            code,
            message,
            details: status.details.iter().map(ErrorDetail::decode).collect(),
        }
    }

    /// Decodes a tonic status, including the `grpc-status-details-bin` trailer's details.
    ///
    /// A transport failure (connection refused or reset), which tonic reports as `Unknown`,
    /// becomes [`Code::Unavailable`]: the call never reached a server and may be retried.
    pub fn from_tonic(status: &tonic::Status) -> Self {
        let details = if status.details().is_empty() {
            Vec::new()
        } else {
            match rpc::Status::decode(status.details()) {
                Ok(decoded) => decoded.details.iter().map(ErrorDetail::decode).collect(),
                Err(_) => Vec::new(),
            }
        };
        let is_transport_failure =
            status.code() == Code::Unknown && std::error::Error::source(status).is_some();
        let code = if is_transport_failure {
            Code::Unavailable
        } else {
            status.code()
        };
        Status {
            code,
            message: status.message().to_owned(),
            details,
        }
    }

    /// The delay a `google.rpc.RetryInfo` detail asks for, if there is one.
    pub fn retry_delay(&self) -> Option<Duration> {
        self.details.iter().find_map(|detail| match detail {
            ErrorDetail::RetryInfo(info) => info.retry_delay.and_then(|delay| {
                let secs = u64::try_from(delay.seconds).ok()?;
                let nanos = u32::try_from(delay.nanos).ok()?;
                Duration::new(secs, 0).checked_add(Duration::from_nanos(nanos.into()))
            }),
            _ => None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", code_name(self.code), self.message)?;
        for detail in &self.details {
            write!(f, "; {}", detail.type_name())?;
        }
        Ok(())
    }
}

/// The canonical upper-case name of a gRPC code, e.g. `NOT_FOUND`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// One `google.rpc` error detail, decoded into its type from `google/rpc/error_details.proto`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ErrorDetail {
    /// `google.rpc.BadRequest`
    BadRequest(rpc::BadRequest),
    /// `google.rpc.ErrorInfo`
    ErrorInfo(rpc::ErrorInfo),
    /// `google.rpc.RetryInfo`
    RetryInfo(rpc::RetryInfo),
    /// `google.rpc.QuotaFailure`
    QuotaFailure(rpc::QuotaFailure),
    /// `google.rpc.PreconditionFailure`
    PreconditionFailure(rpc::PreconditionFailure),
    /// `google.rpc.ResourceInfo`
    ResourceInfo(rpc::ResourceInfo),
    /// `google.rpc.RequestInfo`
    RequestInfo(rpc::RequestInfo),
    /// `google.rpc.Help`
    Help(rpc::Help),
    /// `google.rpc.LocalizedMessage`
    LocalizedMessage(rpc::LocalizedMessage),
    /// `google.rpc.DebugInfo`
    DebugInfo(rpc::DebugInfo),
    /// A detail of another type, or one whose bytes did not decode, kept as sent.
    Other(Any),
}

impl ErrorDetail {
    /// Decodes one detail; unknown types and corrupt bytes are kept as [`ErrorDetail::Other`].
    pub fn decode(any: &Any) -> Self {
        fn try_as<T: Message + Name + Default>(any: &Any) -> Option<T> {
            if crate::operation::type_name_of(&any.type_url) == Some(T::full_name().as_str()) {
                T::decode(any.value.as_slice()).ok()
            } else {
                None
            }
        }
        let Some(name) = crate::operation::type_name_of(&any.type_url) else {
            return ErrorDetail::Other(any.clone());
        };
        let decoded = match name.strip_prefix("google.rpc.") {
            Some("BadRequest") => try_as(any).map(ErrorDetail::BadRequest),
            Some("ErrorInfo") => try_as(any).map(ErrorDetail::ErrorInfo),
            Some("RetryInfo") => try_as(any).map(ErrorDetail::RetryInfo),
            Some("QuotaFailure") => try_as(any).map(ErrorDetail::QuotaFailure),
            Some("PreconditionFailure") => try_as(any).map(ErrorDetail::PreconditionFailure),
            Some("ResourceInfo") => try_as(any).map(ErrorDetail::ResourceInfo),
            Some("RequestInfo") => try_as(any).map(ErrorDetail::RequestInfo),
            Some("Help") => try_as(any).map(ErrorDetail::Help),
            Some("LocalizedMessage") => try_as(any).map(ErrorDetail::LocalizedMessage),
            Some("DebugInfo") => try_as(any).map(ErrorDetail::DebugInfo),
            _ => None,
        };
        decoded.unwrap_or_else(|| ErrorDetail::Other(any.clone()))
    }

    /// The detail's full proto type name (or, for [`ErrorDetail::Other`], its type URL).
    pub fn type_name(&self) -> String {
        match self {
            ErrorDetail::BadRequest(_) => rpc::BadRequest::full_name(),
            ErrorDetail::ErrorInfo(_) => rpc::ErrorInfo::full_name(),
            ErrorDetail::RetryInfo(_) => rpc::RetryInfo::full_name(),
            ErrorDetail::QuotaFailure(_) => rpc::QuotaFailure::full_name(),
            ErrorDetail::PreconditionFailure(_) => rpc::PreconditionFailure::full_name(),
            ErrorDetail::ResourceInfo(_) => rpc::ResourceInfo::full_name(),
            ErrorDetail::RequestInfo(_) => rpc::RequestInfo::full_name(),
            ErrorDetail::Help(_) => rpc::Help::full_name(),
            ErrorDetail::LocalizedMessage(_) => rpc::LocalizedMessage::full_name(),
            ErrorDetail::DebugInfo(_) => rpc::DebugInfo::full_name(),
            ErrorDetail::Other(any) => any.type_url.clone(),
        }
    }
}
