//! [`Operation<R, M>`]: a typed handle on one long-running operation.
//!
//! The handle holds the last snapshot the server sent and the client it came from. Reading
//! it ([`done`](Operation::done), [`metadata`](Operation::metadata),
//! [`result`](Operation::result)) costs no RPC; [`refresh`](Operation::refresh),
//! [`cancel`](Operation::cancel) and [`delete`](Operation::delete) talk to the server.
//!
//! `Any` payloads are unpacked with their type URL checked against the expected proto type
//! (`type.googleapis.com/<full.name>`, any prefix up to the last `/`): a mismatch or corrupt
//! bytes is an [`Error`], never a silent `None`.

use std::fmt;
use std::marker::PhantomData;

use prost::{Message, Name};
use prost_types::Any;

use crate::client::{OperationsClient, RawOperation};
use crate::error::{Error, Part, Result};
use crate::name::OperationName;
use crate::proto::longrunning::operation::Result as RawResult;

/// A type an operation's `response` can be decoded into.
///
/// Every generated message (`prost::Message + prost::Name`) is one: its `Any` must carry
/// exactly that type, and a finished operation with no response is a success only for
/// `google.protobuf.Empty` (which prost maps to `()`). Implement it yourself for a response
/// that may come in several types, as [`PurgeOutcome`](crate::vision::PurgeOutcome) does.
pub trait OperationResponse: Sized {
    /// The accepted proto type(s), for error messages.
    fn expected_type() -> String;

    /// Decodes the `response` of the finished, successful operation `name` (`None` when the
    /// operation carried no response at all).
    fn from_response(name: &str, response: Option<&Any>) -> Result<Self>;
}

impl<T: Message + Name + Default> OperationResponse for T {
    fn expected_type() -> String {
        T::full_name()
    }

    fn from_response(name: &str, response: Option<&Any>) -> Result<Self> {
        match response {
            Some(any) => unpack(name, Part::Response, any),
            None if T::PACKAGE == <() as Name>::PACKAGE && T::NAME == <() as Name>::NAME => {
                Ok(T::default())
            }
            None => Err(Error::MissingResult {
                name: name.to_owned(),
                expected: T::full_name(),
            }),
        }
    }
}

/// The full proto type name in a type URL: everything after the last `/`.
pub(crate) fn type_name_of(type_url: &str) -> Option<&str> {
    type_url
        .rsplit_once('/')
        .map(|(_, name)| name)
        .filter(|n| !n.is_empty())
}

/// Whether `any` holds a `T`, judged by its type URL.
pub fn is_type<T: Name>(any: &Any) -> bool {
    // `PACKAGE.NAME`, compared without building the string.
    type_name_of(&any.type_url)
        .and_then(|name| name.strip_prefix(T::PACKAGE))
        .and_then(|rest| rest.strip_prefix('.'))
        == Some(T::NAME)
}

/// Decodes `any` as a `T`, checking its type URL. `name` and `part` say where it came from.
pub fn unpack<T: Message + Name + Default>(name: &str, part: Part, any: &Any) -> Result<T> {
    if !is_type::<T>(any) {
        return Err(Error::UnexpectedType {
            name: name.to_owned(),
            part,
            expected: T::full_name(),
            actual: any.type_url.clone(),
        });
    }
    T::decode(any.value.as_slice()).map_err(|source| Error::CorruptPayload {
        name: name.to_owned(),
        part,
        type_url: any.type_url.clone(),
        source,
    })
}

/// A typed handle on a long-running operation whose response decodes into `R` and whose
/// metadata decodes into `M`.
///
/// ```
/// # #[cfg(feature = "testing")]
/// # async fn demo() -> longrunning::Result<()> {
/// use longrunning::testing::FakeServer;
/// use longrunning::vision::{ProductSearch, pb};
///
/// let fake = FakeServer::start().await?;
/// let search = ProductSearch::new(fake.client());
/// let op = search
///     .purge_products(pb::PurgeProductsRequest {
///         parent: "projects/p/locations/us-west1".into(),
///         target: Some(pb::purge_products_request::Target::DeleteOrphanProducts(true)),
///         force: true,
///     })
///     .await?;
/// assert!(!op.done());
/// let metadata = op.metadata()?.expect("the fake always sends metadata");
/// assert_eq!(metadata.state(), pb::batch_operation_metadata::State::Processing);
/// # Ok(()) }
/// ```
pub struct Operation<R, M> {
    raw: RawOperation,
    /// Whether `raw` came from the server (false for a handle made from a name alone).
    fetched: bool,
    client: OperationsClient,
    types: PhantomData<fn() -> (R, M)>,
}

impl<R, M> Clone for Operation<R, M> {
    fn clone(&self) -> Self {
        Operation {
            raw: self.raw.clone(),
            fetched: self.fetched,
            client: self.client.clone(),
            types: PhantomData,
        }
    }
}

impl<R, M> fmt::Debug for Operation<R, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.raw.name)
            .field("done", &self.raw.done)
            .field("response_type", &std::any::type_name::<R>())
            .field("metadata_type", &std::any::type_name::<M>())
            .finish()
    }
}

impl<R, M> Operation<R, M> {
    /// A handle on a snapshot the caller already has (for example from
    /// [`OperationsClient::list`]).
    pub fn from_raw(client: OperationsClient, raw: RawOperation) -> Self {
        Operation {
            raw,
            fetched: true,
            client,
            types: PhantomData,
        }
    }

    /// A handle on an operation known only by name, without any RPC: not done, no metadata
    /// until its first [`refresh`](Self::refresh) or wait fetches the state.
    pub fn from_name(client: OperationsClient, name: &str) -> Result<Self> {
        Ok(Operation {
            raw: unseen(name)?,
            fetched: false,
            client,
            types: PhantomData,
        })
    }

    /// Resumes an operation by name: fetches its current state with GetOperation and
    /// returns the same typed handle the call that started it returned. Nothing restarts.
    pub async fn resume(client: &OperationsClient, name: impl AsRef<str>) -> Result<Self> {
        let raw = client.get(name).await?;
        Ok(Self::from_raw(client.clone(), raw))
    }

    /// The operation's name, as the server gave it.
    pub fn name(&self) -> &str {
        &self.raw.name
    }

    /// Whether the operation had finished at the last snapshot.
    pub fn done(&self) -> bool {
        self.raw.done
    }

    /// Whether the operation finished cancelled (`error.code = 1`).
    pub fn is_cancelled(&self) -> bool {
        matches!(&self.raw.result, Some(RawResult::Error(status)) if status.code == tonic::Code::Cancelled as i32)
    }

    /// The last snapshot, as sent.
    pub fn raw(&self) -> &RawOperation {
        &self.raw
    }

    /// The last snapshot, as sent.
    pub fn into_raw(self) -> RawOperation {
        self.raw
    }

    /// Takes the snapshot out for a wait, which hands it back with [`Self::set_raw`].
    pub(crate) fn take_raw(&mut self) -> (RawOperation, bool) {
        (std::mem::take(&mut self.raw), self.fetched)
    }

    pub(crate) fn set_raw(&mut self, raw: RawOperation, fetched: bool) {
        self.raw = raw;
        self.fetched = fetched;
    }

    pub(crate) fn is_fetched(&self) -> bool {
        self.fetched
    }

    /// The client this handle sends its RPCs on.
    pub fn client(&self) -> &OperationsClient {
        &self.client
    }

    /// Replaces the snapshot with the server's current state (GetOperation).
    pub async fn refresh(&mut self) -> Result<()> {
        self.raw = self.client.get(&self.raw.name).await?;
        self.fetched = true;
        Ok(())
    }

    /// Asks the server to cancel the operation (best effort). Refresh or wait to see the
    /// outcome: a cancelled operation's [`result`](Self::result) is
    /// [`Error::OperationCancelled`].
    pub async fn cancel(&self) -> Result<()> {
        self.client.cancel(&self.raw.name).await
    }

    /// Tells the server the result is no longer wanted. Does not cancel the operation.
    pub async fn delete(self) -> Result<()> {
        self.client.delete(&self.raw.name).await
    }
}

impl<R, M: Message + Name + Default> Operation<R, M> {
    /// The metadata of the last snapshot; `Ok(None)` if the server sent none.
    pub fn metadata(&self) -> Result<Option<M>> {
        self.raw
            .metadata
            .as_ref()
            .map(|any| unpack(&self.raw.name, Part::Metadata, any))
            .transpose()
    }
}

impl<R: OperationResponse, M> Operation<R, M> {
    /// The outcome of the last snapshot: the decoded response, or the operation's error as
    /// [`Error::OperationFailed`] / [`Error::OperationCancelled`] with its decoded details,
    /// or [`Error::NotDone`].
    pub fn result(&self) -> Result<R> {
        decode_result(&self.raw)
    }
}

/// The snapshot of an operation known only by its (validated) name.
pub(crate) fn unseen(name: &str) -> Result<RawOperation> {
    Ok(RawOperation {
        name: OperationName::parse(name)?.into(),
        ..RawOperation::default()
    })
}

/// The outcome of a raw snapshot, decoded as `R`.
pub(crate) fn decode_result<R: OperationResponse>(raw: &RawOperation) -> Result<R> {
    if !raw.done {
        return Err(Error::NotDone {
            name: raw.name.clone(),
        });
    }
    match &raw.result {
        Some(RawResult::Error(status)) => Err(Error::from_operation_error(raw, status)),
        Some(RawResult::Response(any)) => R::from_response(&raw.name, Some(any)),
        None => R::from_response(&raw.name, None),
    }
}
