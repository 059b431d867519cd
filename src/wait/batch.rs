//! Waiting for one operation, or many at once on the caller's task.

use std::sync::Arc;

use futures_core::Stream;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use super::options::WaitOptions;
use super::waiter::{Batch, Mode, Waiter};
use crate::client::{OperationsClient, RawOperation};
use crate::error::Result;
use crate::operation::{Operation, OperationResponse, decode_result, unseen};

impl OperationsClient {
    /// Waits for the operation `name` to finish and returns its final snapshot (an operation
    /// that failed is still a returned snapshot: its `result` holds the error). The first
    /// RPC is the WaitOperation itself: no GetOperation first.
    pub async fn wait_for(&self, name: &str, options: &WaitOptions) -> Result<RawOperation> {
        let mut waiter = Waiter::new(
            self.clone(),
            unseen(name)?,
            false,
            options,
            Mode::Single,
            None,
        );
        waiter.until_done().await?;
        Ok(waiter.into_last())
    }
}

impl<R: OperationResponse, M> Operation<R, M> {
    /// Waits until the operation is done and returns its decoded result. The handle follows
    /// along: after an [`Error::Timeout`](crate::Error::Timeout) it holds the last snapshot,
    /// and waiting again resumes.
    pub async fn wait(&mut self, options: &WaitOptions) -> Result<R> {
        self.wait_limited(options, None).await
    }

    async fn wait_limited(
        &mut self,
        options: &WaitOptions,
        batch: Option<Arc<Batch>>,
    ) -> Result<R> {
        let fetched = self.is_fetched();
        let raw = self.raw().clone();
        let mode = match batch {
            Some(_) => Mode::Batch,
            None => Mode::Single,
        };
        let mut waiter = Waiter::new(self.client().clone(), raw, fetched, options, mode, batch);
        let outcome = waiter.until_done().await;
        if waiter.has_answer() {
            self.set_raw(waiter.into_last());
        }
        outcome?;
        decode_result(self.raw())
    }
}

/// A finished wait: the handle with its last snapshot, and its result.
pub type Finished<R, M> = (Operation<R, M>, Result<R>);

/// Waits for many typed operations at once, yielding each finished handle with its result
/// as it completes. All waits run on the caller's task, share the handles' client, and keep
/// at most `options.max_in_flight_rpcs` GetOperations in flight.
pub fn wait_stream<R, M, I>(
    operations: I,
    options: &WaitOptions,
) -> impl Stream<Item = Finished<R, M>> + use<R, M, I>
where
    R: OperationResponse,
    I: IntoIterator<Item = Operation<R, M>>,
{
    indexed_waits(operations, options).map(|(_, op, result)| (op, result))
}

/// [`wait_stream`], collected in the order the operations were given.
pub async fn wait_all<R, M>(
    operations: impl IntoIterator<Item = Operation<R, M>>,
    options: &WaitOptions,
) -> Vec<Finished<R, M>>
where
    R: OperationResponse,
{
    let mut waits = indexed_waits(operations, options);
    let mut finished: Vec<Option<Finished<R, M>>> = Vec::new();
    finished.resize_with(waits.len(), || None);
    while let Some((index, op, result)) = waits.next().await {
        if let Some(slot) = finished.get_mut(index) {
            *slot = Some((op, result));
        }
    }
    finished.into_iter().flatten().collect()
}

/// One future per operation, with its index, sharing one in-flight budget and roster.
///
/// Each wait is polled outside tokio's cooperative budget (`unconstrained`). All of a
/// batch's waits run on one task, and the budget (128 operations on tokio's timers,
/// semaphores and channels per poll of a task) would be theirs to share: once spent, every
/// other wait's poll returns at once and asks to be polled again, so a thousand waits woken
/// together were polled many times over, and the task parked in between. The batch still
/// yields: `FuturesUnordered` returns after polling each of its futures once.
fn indexed_waits<R, M, I>(
    operations: I,
    options: &WaitOptions,
) -> FuturesUnordered<impl Future<Output = (usize, Operation<R, M>, Result<R>)> + use<R, M, I>>
where
    R: OperationResponse,
    I: IntoIterator<Item = Operation<R, M>>,
{
    let operations: Vec<Operation<R, M>> = operations.into_iter().collect();
    let batch = Batch::new(operations.iter().map(|op| op.name()), options);
    operations
        .into_iter()
        .enumerate()
        .map(|(index, mut op)| {
            let batch = batch.clone();
            let options = options.clone();
            tokio::task::unconstrained(async move {
                let result = op.wait_limited(&options, Some(batch)).await;
                (index, op, result)
            })
        })
        .collect()
}
