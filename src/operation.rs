//! A typed long-running operation: [`Snapshot<R, M>`], one state as the server sent it,
//! decoded with no client; and [`Operation<R, M>`], the handle (a snapshot and the client it
//! came from) that refreshes, waits, cancels and deletes.
//!
//! `Any` payloads are unpacked with their type URL checked against the expected proto type
//! (`type.googleapis.com/<full.name>`, any prefix up to the last `/`): a mismatch or corrupt
//! bytes is an [`Error`], never a silent `None`.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use prost::{Message, Name};
use prost_types::Any;

use crate::any::is_type;
use crate::client::{OperationsClient, RawOperation, StartCall};
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

/// One state of an operation, typed: response `R`, metadata `M`. Pure data; decoding it
/// needs no client.
///
/// ```
/// use longrunning::{Error, RawOperation, Snapshot};
///
/// let raw = RawOperation { name: "operations/42".into(), done: true, ..Default::default() };
/// let snapshot: Snapshot<prost_types::Duration, ()> = Snapshot::new(raw);
/// assert!(matches!(snapshot.result(), Err(Error::MissingResult { .. })));
/// ```
pub struct Snapshot<R, M> {
    raw: RawOperation,
    types: PhantomData<fn() -> (R, M)>,
}

impl<R, M> Clone for Snapshot<R, M> {
    fn clone(&self) -> Self {
        Snapshot::new(self.raw.clone())
    }
}

impl<R, M> fmt::Debug for Snapshot<R, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("name", &self.raw.name)
            .field("done", &self.raw.done)
            .field("response_type", &std::any::type_name::<R>())
            .field("metadata_type", &std::any::type_name::<M>())
            .finish()
    }
}

impl<R, M> Snapshot<R, M> {
    /// A typed view of a raw operation.
    pub fn new(raw: RawOperation) -> Self {
        Snapshot {
            raw,
            types: PhantomData,
        }
    }

    /// The operation's name, as the server gave it.
    pub fn name(&self) -> &str {
        &self.raw.name
    }

    /// Whether the operation had finished.
    pub fn done(&self) -> bool {
        self.raw.done
    }

    /// Whether the operation finished cancelled (`error.code = 1`).
    pub fn is_cancelled(&self) -> bool {
        matches!(&self.raw.result, Some(RawResult::Error(status)) if status.code == tonic::Code::Cancelled as i32)
    }

    /// The snapshot as sent.
    pub fn raw(&self) -> &RawOperation {
        &self.raw
    }

    /// The snapshot as sent.
    pub fn into_raw(self) -> RawOperation {
        self.raw
    }
}

impl<R, M: Message + Name + Default> Snapshot<R, M> {
    /// The decoded metadata; `Ok(None)` if the server sent none.
    pub fn metadata(&self) -> Result<Option<M>> {
        self.raw
            .metadata
            .as_ref()
            .map(|any| unpack(&self.raw.name, Part::Metadata, any))
            .transpose()
    }
}

impl<R: OperationResponse, M> Snapshot<R, M> {
    /// The outcome: the decoded response, or the operation's error as
    /// [`Error::OperationFailed`] / [`Error::OperationCancelled`] with its decoded details,
    /// or [`Error::NotDone`]. Done with neither response nor error is
    /// [`Error::MissingResult`] unless `R` accepts no response.
    pub fn result(&self) -> Result<R> {
        decode_result(&self.raw)
    }
}

/// A typed handle on a long-running operation: the last [`Snapshot`] and the client it came
/// from. Reading it (through `Deref` to the snapshot) costs no RPC;
/// [`refresh`](Operation::refresh), [`cancel`](Operation::cancel),
/// [`delete`](Operation::delete) and the waits talk to the server.
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
    snapshot: Snapshot<R, M>,
    /// Whether the snapshot came from the server (false for a handle made from a name).
    fetched: bool,
    client: OperationsClient,
}

impl<R, M> Clone for Operation<R, M> {
    fn clone(&self) -> Self {
        Operation {
            snapshot: self.snapshot.clone(),
            fetched: self.fetched,
            client: self.client.clone(),
        }
    }
}

impl<R, M> fmt::Debug for Operation<R, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operation")
            .field("snapshot", &self.snapshot)
            .field("fetched", &self.fetched)
            .finish()
    }
}

impl<R, M> Deref for Operation<R, M> {
    type Target = Snapshot<R, M>;

    fn deref(&self) -> &Snapshot<R, M> {
        &self.snapshot
    }
}

impl<R, M> Operation<R, M> {
    /// A handle on a snapshot the caller already has (for example from
    /// [`OperationsClient::list`]).
    pub fn from_raw(client: OperationsClient, raw: RawOperation) -> Self {
        Operation {
            snapshot: Snapshot::new(raw),
            fetched: true,
            client,
        }
    }

    /// A handle on an operation known only by name, without any RPC: not done, no metadata
    /// until its first [`refresh`](Self::refresh) or wait fetches the state.
    pub fn from_name(client: OperationsClient, name: &str) -> Result<Self> {
        Ok(Operation {
            snapshot: Snapshot::new(unseen(name)?),
            fetched: false,
            client,
        })
    }

    /// Resumes an operation by name: fetches its current state with GetOperation and
    /// returns the same typed handle the call that started it returned. Nothing restarts.
    pub async fn resume(client: &OperationsClient, name: impl AsRef<str>) -> Result<Self> {
        let raw = client.get(name).await?;
        Ok(Self::from_raw(client.clone(), raw))
    }

    /// The last snapshot.
    pub fn snapshot(&self) -> &Snapshot<R, M> {
        &self.snapshot
    }

    /// The last snapshot, as sent.
    pub fn into_raw(self) -> RawOperation {
        self.snapshot.raw
    }

    /// Whether the snapshot came from the server (not just a name).
    pub fn is_fetched(&self) -> bool {
        self.fetched
    }

    /// Replaces the snapshot with one the waiter received.
    pub(crate) fn set_raw(&mut self, raw: RawOperation) {
        self.snapshot = Snapshot::new(raw);
        self.fetched = true;
    }

    /// The client this handle sends its RPCs on.
    pub fn client(&self) -> &OperationsClient {
        &self.client
    }

    /// Replaces the snapshot with the server's current state (GetOperation).
    pub async fn refresh(&mut self) -> Result<()> {
        let raw = self.client.get(self.name()).await?;
        self.set_raw(raw);
        Ok(())
    }

    /// Asks the server to cancel the operation (best effort). Refresh or wait to see the
    /// outcome: a cancelled operation's [`result`](Snapshot::result) is
    /// [`Error::OperationCancelled`].
    pub async fn cancel(&self) -> Result<()> {
        self.client.cancel(self.name()).await
    }

    /// Tells the server the result is no longer wanted. Does not cancel the operation.
    pub async fn delete(self) -> Result<()> {
        self.client.delete(self.name()).await
    }
}

impl OperationsClient {
    /// Starts an operation with a call of any API and returns its typed handle: response
    /// `R`, metadata `M`. The call's request must answer with a
    /// `google.longrunning.Operation`; see [`StartCall`] for its path, routing and retries.
    ///
    /// ```no_run
    /// # async fn run(client: longrunning::OperationsClient) -> longrunning::Result<()> {
    /// use longrunning::StartCall;
    /// use longrunning::vision::pb;
    ///
    /// let request = pb::PurgeProductsRequest { parent: "projects/p/locations/us-west1".into(), ..Default::default() };
    /// let call = StartCall::new("/google.cloud.vision.v1.ProductSearch/PurgeProducts")
    ///     .route("parent", &request.parent);
    /// let op = client
    ///     .start::<(), pb::BatchOperationMetadata, _>(&call, request)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn start<R, M, Req>(&self, call: &StartCall, request: Req) -> Result<Operation<R, M>>
    where
        Req: Message + Clone + Send + Sync + 'static,
    {
        let raw = self.start_raw(call, request).await?;
        Ok(Operation::from_raw(self.clone(), raw))
    }
}

/// The snapshot of an operation known only by its (checked) name.
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
