//! Batched polling: the waits of a batch that poll operations of one collection learn their
//! states from one ListOperations round (its pages) instead of one GetOperation each.
//!
//! A *collection* is an operation name up to `/operations/`: `projects/p/locations/l` for
//! `projects/p/locations/l/operations/123`. A batch lists a collection only if it waits for
//! two or more of its operations; a single wait keeps using Get or Wait.
//!
//! - **Which `name` lists it is learnt once per client and collection.** Google's APIs
//!   differ: most take the parent (`projects/p/locations/l`), some the collection itself
//!   (`…/operations`). The first round tries the parent, then the collection; a form that is
//!   refused (UNIMPLEMENTED, INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, …) or that
//!   lists none of the batch's operations is passed over. If neither form works, the
//!   client's waits on that collection poll by name from then on, with no second probe.
//! - **Rounds are paced** by the poll delays (the first at once, then 1 s, 1.5 s, … up to
//!   30 s by default), and each of their pages goes through the client's rate limit. A wait
//!   that looks takes the latest round finished since its last look, or the one in flight,
//!   or starts the next when it is due; so a round costs its pages however many waits share
//!   it, and an operation is seen done within one poll delay (and one round) of finishing.
//! - **Rounds are bounded**: at most `max(4, waits left / 2)` pages (beyond that, polling by
//!   name is cheaper), and a repeated page token ends the listing. A round over its bound
//!   ends listing for the batch, which then polls by name.
//! - **Nothing is filtered on the server.** `done=true` would hide a deleted operation and
//!   running operations' metadata (progress reports need it); `done=false` would hide the
//!   results, which would then cost a GetOperation each. An unfiltered round shows both, and
//!   the listing's other operations (older ones, other clients', payloads of other types)
//!   are skipped.
//! - **An operation a round does not show is looked up by name**, by the wait that missed
//!   it: deleted, it ends with NOT_FOUND as it would when polling.
//! - **A round that fails as an RPC fails** (UNAVAILABLE, a quota, no answer) fails the
//!   looks that waited for it: each wait goes on after its fault delay, as after a failed
//!   GetOperation, and the client's adaptive rate limit learns from the quota error.
//!
//! Every round is run by a wait that looked, on its own task: no background task. If that
//! wait is dropped mid-round, the next look starts the round again.

use std::collections::HashSet;

// Hashed with a fast seeded hasher: names are looked up once a wait and once a listed
// operation, and SipHash was half of the roster's cost.
use foldhash::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;

use super::decide::is_transient;
use crate::backoff::{Backoff, Schedule};
use crate::client::{ListOptions, OperationsClient, RawOperation};
use crate::error::Error;
use crate::latch::ListForm;
use crate::lock::lock;

/// The largest page a round asks for; servers cap it at their own.
const PAGE_SIZE: i32 = 1000;

/// The fewest pages a round may read before its bound says polling by name is cheaper.
const MIN_PAGE_BOUND: usize = 4;

/// What a batch's waits share to poll by collection.
pub(crate) struct Roster {
    collections: HashMap<String, Arc<Collection>>,
}

impl Roster {
    /// A roster for waits on `names`, paced by `pace`. Collections with fewer than two of
    /// the names are not listed.
    pub(crate) fn new<'a>(names: impl IntoIterator<Item = &'a str>, pace: Backoff) -> Self {
        let mut members: HashMap<&str, NameSet> = HashMap::default();
        for name in names {
            if let Some(parent) = parent_of(name) {
                members.entry(parent).or_default().insert(name);
            }
        }
        let collections = members
            .into_iter()
            .filter(|(_, names)| names.len() >= 2)
            .map(|(parent, names)| {
                let collection = Collection {
                    parent: parent.to_owned(),
                    left: AtomicUsize::new(0),
                    names,
                    rounds: watch::Sender::new(Rounds {
                        latest: 0,
                        found: Found::Listed(Arc::default()),
                        running: false,
                        next_at: Instant::now(),
                    }),
                    pace: Mutex::new(Schedule::new(pace)),
                };
                (parent.to_owned(), Arc::new(collection))
            })
            .collect();
        Roster { collections }
    }

    /// A seat for the wait on `name`, if its collection is listed for this batch.
    pub(crate) fn seat(&self, name: &str) -> Option<Seat> {
        let collection = self.collections.get(parent_of(name)?)?;
        collection.left.fetch_add(1, Ordering::Relaxed);
        Some(Seat {
            collection: collection.clone(),
            seen: 0,
        })
    }
}

/// The parent of the collection `name` belongs to: all before its last `/operations/`
/// (empty for `operations/…`); `None` for a name outside any collection.
fn parent_of(name: &str) -> Option<&str> {
    // Most names end `/operations/ID` with no `/` in the ID: one scan for the last `/`.
    if let Some((head, _)) = name.rsplit_once('/') {
        if let Some(parent) = head.strip_suffix("/operations") {
            return Some(parent);
        }
        if head == "operations" {
            return Some("");
        }
    }
    match name.rsplit_once("/operations/") {
        Some((parent, _)) => Some(parent),
        None => name.starts_with("operations/").then_some(""),
    }
}

/// The names of a batch's operations in one collection, kept as 64-bit hashes: a round
/// tells them from the listing's other operations without a copy of each name. A collision
/// only lets a stranger into the round's findings, where no wait looks it up.
#[derive(Default)]
struct NameSet {
    hasher: foldhash::fast::RandomState,
    hashes: HashSet<u64, std::hash::BuildHasherDefault<Prehashed>>,
}

impl NameSet {
    fn insert(&mut self, name: &str) {
        let hash = std::hash::BuildHasher::hash_one(&self.hasher, name);
        self.hashes.insert(hash);
    }

    fn contains(&self, name: &str) -> bool {
        self.hashes
            .contains(&std::hash::BuildHasher::hash_one(&self.hasher, name))
    }

    fn len(&self) -> usize {
        self.hashes.len()
    }
}

/// The hasher of keys that are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64`s are hashed here; any other key still hashes, byte by byte.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// What a look found.
#[derive(Debug)]
pub(crate) enum Look {
    /// The operation as the round listed it.
    Listed(RawOperation),
    /// Ask by name: the round did not show it, or its collection is not listed (any more).
    ByName,
    /// The round failed as an RPC fails; the wait goes on after its fault delay.
    Failed(Error),
}

/// One wait's place in its collection's rounds. Dropped when the wait ends, which makes
/// the collection's bound smaller.
pub(crate) struct Seat {
    collection: Arc<Collection>,
    /// The latest round this wait has taken.
    seen: u64,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.collection.left.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Seat {
    /// The state of `name` from a round newer than this seat's last one: the latest
    /// finished, the one in flight, or the next one (run here when it is due).
    pub(crate) async fn look(&mut self, client: &OperationsClient, name: &str) -> Look {
        let collection = self.collection.clone();
        let mut rounds = collection.rounds.subscribe();
        loop {
            let (latest, running, next_at) = {
                let state = rounds.borrow_and_update();
                if matches!(state.found, Found::Abandoned) {
                    return Look::ByName;
                }
                if state.latest > self.seen {
                    self.seen = state.latest;
                    return state.found.look(name);
                }
                (state.latest, state.running, state.next_at)
            };
            let now = Instant::now();
            if running || now < next_at {
                // The sender lives in `collection`, which this holds: `changed` only ever
                // returns when the state changes.
                tokio::select! {
                    _ = rounds.changed() => {}
                    () = tokio::time::sleep_until(next_at), if !running => {}
                }
                continue;
            }
            let claimed = collection.rounds.send_if_modified(|state| {
                let free = !state.running && state.latest == latest;
                state.running |= free;
                free
            });
            if claimed {
                let mut leader = Leader {
                    collection: &collection,
                    finished: false,
                };
                let found = collection.round(client).await;
                leader.finish(found, now);
            }
        }
    }
}

/// The rounds of one collection, as the seats see them.
#[derive(Debug, Clone)]
struct Rounds {
    /// The number of the latest finished round (0: none yet).
    latest: u64,
    /// What it found.
    found: Found,
    /// Whether a seat is running the next one.
    running: bool,
    /// When the next round may start.
    next_at: Instant,
}

/// What a round found.
#[derive(Debug, Clone)]
enum Found {
    /// The batch's operations the round listed, by name.
    Listed(Arc<HashMap<String, RawOperation>>),
    /// The round failed as an RPC fails.
    Failed(Error),
    /// Listing is over for this batch: the collection is not listed, or not within bounds.
    Abandoned,
}

impl Found {
    fn look(&self, name: &str) -> Look {
        match self {
            Found::Listed(listed) => match listed.get(name) {
                Some(op) => Look::Listed(op.clone()),
                None => Look::ByName,
            },
            Found::Failed(err) => Look::Failed(err.clone()),
            Found::Abandoned => Look::ByName,
        }
    }
}

/// The seat running a round; dropped before it finishes, it lets the next look run it.
struct Leader<'a> {
    collection: &'a Collection,
    finished: bool,
}

impl Leader<'_> {
    fn finish(&mut self, found: Found, started: Instant) {
        self.finished = true;
        let pause = lock(&self.collection.pace).next_delay();
        self.collection.rounds.send_modify(|state| {
            state.latest += 1;
            state.found = found;
            state.running = false;
            state.next_at = started + pause;
        });
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.collection
                .rounds
                .send_modify(|state| state.running = false);
        }
    }
}

/// The operations of one collection that a batch waits for.
struct Collection {
    parent: String,
    names: NameSet,
    /// The waits still seated.
    left: AtomicUsize,
    rounds: watch::Sender<Rounds>,
    pace: Mutex<Schedule>,
}

/// How one listing of the collection went.
enum Listing {
    /// Every page read: the batch's operations among them.
    Complete(HashMap<String, RawOperation>),
    /// The server refused this form of `name` (or the listing broke its bound).
    Refused(Error),
    /// Failed as an RPC fails: worth another round later.
    Failed(Error),
    /// More pages than polling by name would cost.
    OverBound { pages: usize },
}

impl Collection {
    /// One round: the listing in the form learnt for the client, or the first form that
    /// works.
    async fn round(&self, client: &OperationsClient) -> Found {
        let known = client.waits().listing(&self.parent);
        let forms: &[ListForm] = match known {
            Some(ListForm::Refused) => return Found::Abandoned,
            Some(ListForm::Parent) => &[ListForm::Parent],
            Some(ListForm::Collection) => &[ListForm::Collection],
            None => &[ListForm::Parent, ListForm::Collection],
        };
        for &form in forms {
            match self.list(client, form).await {
                Listing::Complete(found) if known.is_some() || !found.is_empty() => {
                    client.waits().learn_listing(&self.parent, form);
                    return Found::Listed(Arc::new(found));
                }
                Listing::Complete(_) => {
                    tracing::debug!(parent = %self.parent, ?form, "the listing shows none of the batch's operations");
                }
                Listing::Refused(err) if known.is_none() => {
                    tracing::debug!(parent = %self.parent, ?form, error = %err, "listing refused");
                }
                Listing::Refused(err) => {
                    tracing::warn!(parent = %self.parent, error = %err, "listing refused: polling by name");
                    return Found::Abandoned;
                }
                Listing::OverBound { pages } => {
                    tracing::info!(parent = %self.parent, pages, "the listing costs more than polling by name: polling by name");
                    return Found::Abandoned;
                }
                Listing::Failed(err) => return Found::Failed(err),
            }
        }
        client
            .waits()
            .learn_listing(&self.parent, ListForm::Refused);
        Found::Abandoned
    }

    /// Lists the collection in `form`, keeping the batch's operations.
    async fn list(&self, client: &OperationsClient, form: ListForm) -> Listing {
        let name = match form {
            ListForm::Collection if self.parent.is_empty() => "operations".to_owned(),
            ListForm::Collection => format!("{}/operations", self.parent),
            _ => self.parent.clone(),
        };
        let bound = MIN_PAGE_BOUND.max(self.left.load(Ordering::Relaxed) / 2);
        let options = ListOptions {
            page_size: PAGE_SIZE,
            ..ListOptions::default()
        };
        let mut pager = client.pager(&name, options);
        let mut found = HashMap::default();
        let mut pages = 0;
        while let Some(page) = pager.next_page().await {
            let page = match page {
                Ok(page) => page,
                Err(err) => return classify(err),
            };
            pages += 1;
            for op in page.operations {
                if self.names.contains(&op.name) {
                    found.insert(op.name.clone(), op);
                }
            }
            if page.next_page_token.is_some() && pages >= bound {
                return Listing::OverBound { pages };
            }
        }
        Listing::Complete(found)
    }
}

/// A failed page: worth another round if it failed as RPCs that waits retry fail.
fn classify(err: Error) -> Listing {
    match &err {
        Error::Rpc {
            fault: None,
            status,
            ..
        } if !is_transient(status.code) => Listing::Refused(err),
        _ => Listing::Failed(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_is_the_name_up_to_its_last_operations_segment() {
        let table = [
            (
                "projects/p/locations/l/operations/1",
                Some("projects/p/locations/l"),
            ),
            ("locations/l/operations/abc", Some("locations/l")),
            ("operations/abc", Some("")),
            ("operations/a/operations/b", Some("operations/a")),
            ("locations/l/operations/a/b", Some("locations/l")),
            ("operations/a/b", Some("")),
            ("locations/l/myoperations/1", None),
            ("projects/p/jobs/1", None),
        ];
        for (name, parent) in table {
            assert_eq!(parent_of(name), parent, "{name}");
        }
    }

    #[test]
    fn only_collections_with_two_waits_or_more_are_listed() {
        let names = [
            "projects/p/locations/a/operations/1",
            "projects/p/locations/a/operations/2",
            "projects/p/locations/b/operations/1",
            "projects/p/jobs/1",
        ];
        let pace = Backoff::new(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(30),
            1.5,
        );
        let roster = Roster::new(names, pace);
        assert!(roster.seat(names[0]).is_some());
        assert!(roster.seat(names[2]).is_none());
        assert!(roster.seat(names[3]).is_none());
        assert!(roster.seat("projects/p/locations/c/operations/9").is_none());
    }
}
