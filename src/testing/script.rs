//! Scripts: what a fake operation shows over time, and the Vision scripts the fake's start
//! calls follow.

use std::time::{Duration, SystemTime};

use prost::{Message, Name};
use prost_types::Any;

use crate::proto::rpc;
use crate::proto::vision as pb;

type BatchState = pb::batch_operation_metadata::State;
type AnnotationState = pb::operation_metadata::State;

/// How a scripted operation ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done with this `response`.
    Response(Any),
    /// Done with this `error`.
    Error(rpc::Status),
    /// Done with neither (valid only for `google.protobuf.Empty` responses).
    NoResult,
}

impl Outcome {
    /// Done with `message` packed as the response.
    pub fn response<T: Message + Name>(message: &T) -> Self {
        Outcome::Response(to_any(message))
    }

    /// Done with an error of `code` and `message`.
    pub fn error(code: tonic::Code, message: impl Into<String>) -> Self {
        Outcome::Error(rpc::Status {
            code: code as i32,
            message: message.into(),
            details: Vec::new(),
        })
    }
}

/// What a fake operation shows over time.
///
/// ```
/// use std::time::Duration;
/// use longrunning::testing::{Outcome, Script};
/// use longrunning::vision::pb;
///
/// let processing = pb::BatchOperationMetadata { state: 1, ..Default::default() };
/// let successful = pb::BatchOperationMetadata { state: 2, ..Default::default() };
/// let script = Script::finishing_after(Duration::from_secs(5), Outcome::response(&()))
///     .metadata_from(Duration::ZERO, &processing)
///     .final_metadata(&successful);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// Metadata shown from each offset on, in order of offset.
    pub(super) phases: Vec<(Duration, Any)>,
    /// When it finishes by itself, counted from its creation; `None`: never.
    pub(super) done_after: Option<Duration>,
    pub(super) outcome: Outcome,
    pub(super) final_metadata: Option<Any>,
    pub(super) cancelled_metadata: Option<Any>,
}

impl Script {
    /// Finishes with `outcome` `after` its creation. No metadata until some is added.
    pub fn finishing_after(after: Duration, outcome: Outcome) -> Self {
        Script {
            phases: Vec::new(),
            done_after: Some(after),
            outcome,
            final_metadata: None,
            cancelled_metadata: None,
        }
    }

    /// Never finishes by itself (until [`FakeServer::finish`](super::FakeServer::finish) or a cancel).
    pub fn running() -> Self {
        Script {
            done_after: None,
            ..Self::finishing_after(Duration::ZERO, Outcome::NoResult)
        }
    }

    /// Shows `metadata` from `offset` after creation on (until a later phase or the end).
    pub fn metadata_from<M: Message + Name>(mut self, offset: Duration, metadata: &M) -> Self {
        self.phases.push((offset, to_any(metadata)));
        self.phases.sort_by_key(|(offset, _)| *offset);
        self
    }

    /// Shows `metadata` once finished.
    pub fn final_metadata<M: Message + Name>(mut self, metadata: &M) -> Self {
        self.final_metadata = Some(to_any(metadata));
        self
    }

    /// Shows `metadata` once cancelled.
    pub fn cancelled_metadata<M: Message + Name>(mut self, metadata: &M) -> Self {
        self.cancelled_metadata = Some(to_any(metadata));
        self
    }

    /// How long after creation the operation finishes by itself, if it does.
    pub fn done_after(&self) -> Option<Duration> {
        self.done_after
    }
}

pub(super) fn batch_metadata(
    state: BatchState,
    submitted: SystemTime,
    ended: Option<SystemTime>,
) -> pb::BatchOperationMetadata {
    pb::BatchOperationMetadata {
        state: state as i32,
        submit_time: Some(submitted.into()),
        end_time: ended.map(Into::into),
    }
}

fn annotation_metadata(
    state: AnnotationState,
    created: SystemTime,
    updated: SystemTime,
) -> pb::OperationMetadata {
    pb::OperationMetadata {
        state: state as i32,
        create_time: Some(created.into()),
        update_time: Some(updated.into()),
    }
}

/// The script of a Vision batch operation: PROCESSING, then SUCCESSFUL with `outcome`.
/// (FAILED instead of SUCCESSFUL when the outcome is an error.)
pub(super) fn batch_script(duration: Duration, outcome: Outcome) -> Script {
    let submitted = SystemTime::now();
    let ended = submitted + duration;
    let last = match outcome {
        Outcome::Error(_) => BatchState::Failed,
        _ => BatchState::Successful,
    };
    Script::finishing_after(duration, outcome)
        .metadata_from(
            Duration::ZERO,
            &batch_metadata(BatchState::Processing, submitted, None),
        )
        .final_metadata(&batch_metadata(last, submitted, Some(ended)))
        .cancelled_metadata(&batch_metadata(BatchState::Cancelled, submitted, None))
}

/// The script of an async annotation: CREATED, RUNNING from a tenth of the way, then DONE.
pub(super) fn annotation_script(duration: Duration, outcome: Outcome) -> Script {
    let created = SystemTime::now();
    let running_from = duration / 10;
    Script::finishing_after(duration, outcome)
        .metadata_from(
            Duration::ZERO,
            &annotation_metadata(AnnotationState::Created, created, created),
        )
        .metadata_from(
            running_from,
            &annotation_metadata(AnnotationState::Running, created, created + running_from),
        )
        .final_metadata(&annotation_metadata(
            AnnotationState::Done,
            created,
            created + duration,
        ))
        .cancelled_metadata(&annotation_metadata(
            AnnotationState::Cancelled,
            created,
            created,
        ))
}

/// The script of a Speech long-running recognition: progress 0 %, 50 % from halfway, then
/// 100 % with the outcome.
pub(super) fn speech_script(duration: Duration, outcome: Outcome) -> Script {
    use crate::proto::speech::LongRunningRecognizeMetadata;
    let started = SystemTime::now();
    let at = |progress_percent: i32, offset: Duration| LongRunningRecognizeMetadata {
        progress_percent,
        start_time: Some(started.into()),
        last_update_time: Some((started + offset).into()),
        uri: String::new(),
    };
    Script::finishing_after(duration, outcome)
        .metadata_from(Duration::ZERO, &at(0, Duration::ZERO))
        .metadata_from(duration / 2, &at(50, duration / 2))
        .final_metadata(&at(100, duration))
}

/// `message` in an `Any`, with the `type.googleapis.com/` type URL Google's servers use.
fn to_any<T: Message + Name>(message: &T) -> Any {
    // Encoding into a `Vec` never runs out of room: the error cannot happen.
    Any::from_msg(message).unwrap_or_default()
}
