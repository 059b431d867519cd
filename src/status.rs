//! `google.rpc.Status` with its code typed and its details decoded, and its conversions to
//! and from tonic's status.

use std::fmt;
use std::time::Duration;

use prost::{Message, Name};
use prost_types::Any;
pub use tonic::Code;

use crate::any::{is_type, type_name_of};
use crate::proto::rpc;

/// How many details [`Status`]'s `Display` names before it summarises the rest.
const DETAILS_SHOWN: usize = 3;

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
    /// A status with no details.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Status {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// The same status with one more detail.
    pub fn with_detail(mut self, detail: ErrorDetail) -> Self {
        self.details.push(detail);
        self
    }

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

    /// The `google.rpc.Status` this status was decoded from (details re-encoded).
    pub fn to_proto(&self) -> rpc::Status {
        rpc::Status {
            code: self.code as i32,
            message: self.message.clone(),
            details: self.details.iter().map(ErrorDetail::encode).collect(),
        }
    }

    /// Decodes a tonic status, including the `grpc-status-details-bin` trailer's details.
    pub fn from_tonic(status: &tonic::Status) -> Self {
        let details = if status.details().is_empty() {
            Vec::new()
        } else {
            match rpc::Status::decode(status.details()) {
                Ok(decoded) => decoded.details.iter().map(ErrorDetail::decode).collect(),
                Err(_) => Vec::new(),
            }
        };
        Status {
            code: status.code(),
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
        for detail in self.details.iter().take(DETAILS_SHOWN) {
            write!(f, "; {}", detail.type_name())?;
        }
        if let Some(more) = self
            .details
            .len()
            .checked_sub(DETAILS_SHOWN)
            .filter(|n| *n > 0)
        {
            write!(f, "; and {more} more details")?;
        }
        Ok(())
    }
}

impl From<Status> for tonic::Status {
    /// Code, message, and the details re-encoded as `grpc-status-details-bin`.
    fn from(status: Status) -> Self {
        let details = status.to_proto().encode_to_vec();
        tonic::Status::with_details(status.code, status.message, details.into())
    }
}

impl From<&tonic::Status> for Status {
    fn from(status: &tonic::Status) -> Self {
        Status::from_tonic(status)
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
            is_type::<T>(any)
                .then(|| T::decode(any.value.as_slice()).ok())
                .flatten()
        }
        let decoded = match type_name_of(&any.type_url).and_then(|n| n.strip_prefix("google.rpc."))
        {
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

    /// The detail packed as an `Any` again.
    pub fn encode(&self) -> Any {
        let packed = match self {
            ErrorDetail::BadRequest(d) => Any::from_msg(d),
            ErrorDetail::ErrorInfo(d) => Any::from_msg(d),
            ErrorDetail::RetryInfo(d) => Any::from_msg(d),
            ErrorDetail::QuotaFailure(d) => Any::from_msg(d),
            ErrorDetail::PreconditionFailure(d) => Any::from_msg(d),
            ErrorDetail::ResourceInfo(d) => Any::from_msg(d),
            ErrorDetail::RequestInfo(d) => Any::from_msg(d),
            ErrorDetail::Help(d) => Any::from_msg(d),
            ErrorDetail::LocalizedMessage(d) => Any::from_msg(d),
            ErrorDetail::DebugInfo(d) => Any::from_msg(d),
            ErrorDetail::Other(any) => return any.clone(),
        };
        // Encoding into a `Vec` never runs out of room: the error cannot happen.
        packed.unwrap_or_default()
    }

    /// A `google.rpc.RetryInfo` asking for `delay`.
    pub fn retry_after(delay: Duration) -> Self {
        ErrorDetail::RetryInfo(rpc::RetryInfo {
            retry_delay: prost_types::Duration::try_from(delay).ok(),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_details_are_summarised_after_the_first_few() {
        let mut status = Status::new(Code::InvalidArgument, "bad");
        for _ in 0..1000 {
            status = status.with_detail(ErrorDetail::Help(rpc::Help::default()));
        }
        let text = status.to_string();
        assert!(text.ends_with("; and 997 more details"), "{text}");
        assert!(text.len() < 200, "{}", text.len());
    }

    #[test]
    fn a_status_survives_the_trip_through_tonic_with_its_details() {
        let status = Status::new(Code::ResourceExhausted, "quota")
            .with_detail(ErrorDetail::retry_after(Duration::from_millis(1500)));
        let tonic_status: tonic::Status = status.clone().into();
        assert_eq!(tonic_status.code(), Code::ResourceExhausted);
        let back = Status::from_tonic(&tonic_status);
        assert_eq!(back, status);
        assert_eq!(back.retry_delay(), Some(Duration::from_millis(1500)));
    }
}
