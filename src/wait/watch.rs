//! Progress: a stream of reports as an operation runs, for one typed handle or many names.

use futures_core::Stream;
use futures_util::StreamExt as _;
use prost::{Message, Name};

use super::options::WaitOptions;
use super::waiter::{Batch, Mode, Progressed, Waiter};
use crate::client::{OperationsClient, RawOperation};
use crate::error::{Error, Result};
use crate::operation::{Operation, OperationResponse, Snapshot, unseen};

/// What [`Operation::watch`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress<R, M> {
    /// Still running: the first snapshot, then each time the metadata changes.
    Running {
        /// The decoded metadata (`None` if the server sent none).
        metadata: Option<M>,
    },
    /// Finished with a response. Always the last item.
    Done {
        /// The final metadata.
        metadata: Option<M>,
        /// The decoded response.
        response: R,
    },
}

/// What [`OperationsClient::watch_each`] reports about one operation.
#[derive(Debug)]
pub enum Watched {
    /// A snapshot: the current one first, then each whose metadata changed, the done one
    /// last.
    Snapshot(RawOperation),
    /// The operation's metadata has not changed for this long
    /// ([`WaitOptions::stall_after`]); said once per stall.
    Stalled {
        /// How long the metadata has been the same.
        unchanged_for: std::time::Duration,
    },
    /// The server does not implement WaitOperation: the waits poll from now on (said once,
    /// by the watch whose WaitOperation found out).
    Polling,
    /// An RPC failed, and the wait goes on after `delay` (so that nobody stares at silence).
    Retrying {
        /// What failed.
        error: Error,
        /// How long until the next RPC.
        delay: std::time::Duration,
    },
}

/// Options for a watch: WaitOperations capped at the watch interval, so that metadata
/// changes show on the Wait path too.
fn watch_options(options: &WaitOptions) -> WaitOptions {
    WaitOptions {
        wait_rpc_cap: options.wait_rpc_cap.min(options.watch_interval),
        ..options.clone()
    }
}

impl<R, M> Operation<R, M>
where
    R: OperationResponse + Send + 'static,
    M: Message + Name + Default + Send + 'static,
{
    /// A stream of typed progress reports: the current state, then one each time the
    /// metadata changes, ending with [`Progress::Done`] or with the error that ended the
    /// wait (a failed or cancelled operation, a timeout, an RPC error). On the Wait path
    /// it costs one WaitOperation per [`WaitOptions::watch_interval`].
    pub fn watch(
        self,
        options: &WaitOptions,
    ) -> impl Stream<Item = Result<Progress<R, M>>> + Send + use<R, M> {
        let fetched = self.is_fetched();
        let client = self.client().clone();
        let waiter = Waiter::new(
            client,
            self.into_raw(),
            fetched,
            &watch_options(options),
            Mode::Watch,
            None,
        );
        let snapshots = snapshots(waiter, !fetched).filter_map(|item| {
            std::future::ready(match item {
                Ok(Watched::Snapshot(raw)) => Some(Ok(raw)),
                Ok(Watched::Retrying { .. } | Watched::Stalled { .. } | Watched::Polling) => None,
                Err(err) => Some(Err(err)),
            })
        });
        snapshots.scan(false, |ended, snapshot| {
            if *ended {
                return std::future::ready(None);
            }
            let report = snapshot.and_then(|raw| {
                let snapshot = Snapshot::<R, M>::new(raw);
                let metadata = snapshot.metadata()?;
                if snapshot.done() {
                    Ok(Progress::Done {
                        metadata,
                        response: snapshot.result()?,
                    })
                } else {
                    Ok(Progress::Running { metadata })
                }
            });
            *ended = !matches!(report, Ok(Progress::Running { .. }));
            std::future::ready(Some(report))
        })
    }
}

impl OperationsClient {
    /// Watches many operations by name: yields a name with a snapshot each time that
    /// operation's metadata changes (the first answer first), each retry after a failed
    /// RPC, and its done snapshot, or the error that ended its wait, last. The first RPC is
    /// the WaitOperation itself, so an operation that finishes within the watch interval
    /// costs one RPC. Bad names come back at once as
    /// [`Error::InvalidName`]. At most
    /// `options.max_in_flight_rpcs` GetOperations are in flight; on the Wait path each
    /// operation costs one WaitOperation per [`WaitOptions::watch_interval`].
    pub fn watch_each<I>(
        &self,
        names: I,
        options: &WaitOptions,
    ) -> impl Stream<Item = (String, Result<Watched>)> + Send + use<I>
    where
        I: IntoIterator<Item = String>,
    {
        let options = watch_options(options);
        let names: Vec<String> = names.into_iter().collect();
        let batch = Batch::new(names.iter().map(String::as_str), &options);
        let mode = Mode::WatchEach {
            batch: names.len() > 1,
        };
        let streams = names.into_iter().map(|name| match unseen(&name) {
            Ok(raw) => {
                // No GetOperation first: the first WaitOperation is the first look (one RPC
                // for an operation that finishes within the watch interval).
                let batch = Some(batch.clone());
                let waiter = Waiter::new(self.clone(), raw, false, &options, mode, batch);
                OwnBudget(snapshots(waiter, true).boxed())
                    .map(move |item| (name.clone(), item))
                    .boxed()
            }
            Err(err) => futures_util::stream::once(std::future::ready((name, Err(err)))).boxed(),
        });
        futures_util::stream::select_all(streams)
    }
}

/// The snapshots of one wait: the current one (asked for first if `need_fetch`), then each
/// whose metadata differs from the last one yielded, and the done one last; retries between
/// them if the waiter reports them. An error ends it.
fn snapshots(waiter: Waiter, need_fetch: bool) -> impl Stream<Item = Result<Watched>> + Send {
    struct State {
        waiter: Waiter,
        need_fetch: bool,
        reported_metadata: Option<Option<prost_types::Any>>,
        finished: bool,
    }
    let state = State {
        waiter,
        need_fetch,
        reported_metadata: None,
        finished: false,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        if state.finished {
            return None;
        }
        loop {
            if state.need_fetch {
                match state.waiter.next_answer().await {
                    Ok(Progressed::Answered) => {}
                    Ok(Progressed::Retrying { error, delay }) => {
                        return Some((Ok(Watched::Retrying { error, delay }), state));
                    }
                    Ok(Progressed::Stalled { unchanged_for }) => {
                        return Some((Ok(Watched::Stalled { unchanged_for }), state));
                    }
                    Ok(Progressed::Polling) => {
                        return Some((Ok(Watched::Polling), state));
                    }
                    Err(err) => {
                        state.finished = true;
                        return Some((Err(err), state));
                    }
                }
            }
            state.need_fetch = true;
            let last = state.waiter.last();
            if last.done {
                state.finished = true;
                return Some((Ok(Watched::Snapshot(last.clone())), state));
            }
            if state.reported_metadata.as_ref() != Some(&last.metadata) {
                state.reported_metadata = Some(last.metadata.clone());
                return Some((Ok(Watched::Snapshot(last.clone())), state));
            }
        }
    })
}

/// One wait's stream, polled outside tokio's cooperative budget, as
/// [`wait_stream`](super::wait_stream)'s waits are: see `indexed_waits` for why.
struct OwnBudget<S>(S);

impl<S: Stream + Unpin> Stream for OwnBudget<S> {
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        let stream = &mut self.0;
        let mut next = tokio::task::unconstrained(std::future::poll_fn(|cx| {
            std::pin::Pin::new(&mut *stream).poll_next(cx)
        }));
        std::pin::Pin::new(&mut next).poll(cx)
    }
}
