//! [`Latch`]: a yes-or-no fact about the server, learnt once by one caller while the
//! others wait for its verdict; and [`WaitShared`], what the waits of one client share:
//! such a latch for whether the server implements WaitOperation, how the server lists each
//! collection, and the origin of the grid their sleeps end on. The client owns one; only
//! the waiter looks inside.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::lock::lock;

/// What the waits of one client (and its clones) share. Opaque to the client that owns it.
#[derive(Debug)]
pub(crate) struct WaitShared {
    wait_support: Latch,
    /// How the server lists each collection, by its parent (`projects/p/locations/l`).
    listings: Mutex<HashMap<String, ListForm>>,
    epoch: Instant,
}

/// How a server's ListOperations covers a collection of operations, once learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListForm {
    /// `name` is the collection's parent: `projects/p/locations/l` (Google's usual form).
    Parent,
    /// `name` is the collection itself: `projects/p/locations/l/operations`.
    Collection,
    /// Neither lists the collection's operations.
    Refused,
}

impl WaitShared {
    /// Nothing learnt yet; the grid starts now.
    pub(crate) fn new() -> Self {
        WaitShared {
            wait_support: Latch::new(),
            listings: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }

    /// Whether the server implements WaitOperation, as far as the client knows.
    pub(crate) fn wait_support(&self) -> &Latch {
        &self.wait_support
    }

    /// How the server lists the collection under `parent`, if learnt.
    pub(crate) fn listing(&self, parent: &str) -> Option<ListForm> {
        lock(&self.listings).get(parent).copied()
    }

    /// Records how the server lists the collection under `parent`.
    pub(crate) fn learn_listing(&self, parent: &str, form: ListForm) {
        lock(&self.listings).insert(parent.to_owned(), form);
    }

    /// The origin of the grid the waits' sleeps end on.
    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
    }
}

/// What a [`Latch`] knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Knowledge {
    /// Nobody has asked yet (or the asker gave up).
    Unknown,
    /// One caller is finding out; `quickly` if its answer is due at once.
    Learning { quickly: bool },
    /// The verdict.
    Known(bool),
}

/// A fact learnt once: one caller claims the right to find out; the others wait for its
/// verdict. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub(crate) struct Latch(watch::Sender<Knowledge>);

impl Latch {
    pub(crate) fn new() -> Self {
        Latch(watch::Sender::new(Knowledge::Unknown))
    }

    pub(crate) fn knowledge(&self) -> Knowledge {
        *self.0.borrow()
    }

    /// Claims the right to find out, if nothing is known and nobody is finding out, or, with
    /// `quickly`, if only a slow finder is: `quickly` if the verdict will come at once (others
    /// may then wait for it). The claim hands the latch back to the next caller if it is
    /// dropped without a verdict.
    pub(crate) fn claim(&self, quickly: bool) -> Option<Claim<'_>> {
        let claimed = self.0.send_if_modified(|state| {
            let free = match *state {
                Knowledge::Unknown => true,
                Knowledge::Learning { quickly: false } => quickly,
                _ => false,
            };
            if free {
                *state = Knowledge::Learning { quickly };
            }
            free
        });
        // Built only when claimed: a dropped `Claim` hands the latch back.
        claimed.then(|| Claim {
            latch: self,
            quickly,
        })
    }

    /// Records the verdict (any caller may: a verdict is a verdict).
    pub(crate) fn settle(&self, verdict: bool) {
        self.0.send_if_modified(|state| {
            let changed = *state != Knowledge::Known(verdict);
            *state = Knowledge::Known(verdict);
            changed
        });
    }

    /// Waits until nobody is finding out any more; returns what is known then (`Unknown` if
    /// the one finding out gave up: claim it yourself).
    pub(crate) async fn learnt(&self) -> Knowledge {
        let mut receiver = self.0.subscribe();
        match receiver
            .wait_for(|state| !matches!(state, Knowledge::Learning { .. }))
            .await
        {
            Ok(state) => *state,
            Err(_) => Knowledge::Unknown,
        }
    }
}

/// The right to find out; dropped without a verdict, it lets the next caller try.
#[derive(Debug)]
pub(crate) struct Claim<'a> {
    latch: &'a Latch,
    quickly: bool,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let quickly = self.quickly;
        self.latch.0.send_if_modified(|state| {
            // Only its own claim: a slow claim dropped while a quick one finds out leaves
            // that one be.
            let stuck = *state == Knowledge::Learning { quickly };
            if stuck {
                *state = Knowledge::Unknown;
            }
            stuck
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_claim_at_a_time_and_the_others_get_its_verdict() {
        let latch = std::sync::Arc::new(Latch::new());
        let claim = latch.claim(false).expect("the first caller claims");
        assert!(latch.claim(false).is_none());
        let waiting = {
            let latch = latch.clone();
            tokio::spawn(async move { latch.learnt().await })
        };
        tokio::task::yield_now().await;
        latch.settle(false);
        assert_eq!(latch.knowledge(), Knowledge::Known(false));
        drop(claim);
        assert_eq!(waiting.await.unwrap(), Knowledge::Known(false));
        assert!(latch.claim(false).is_none(), "settled: nothing to claim");
    }

    #[tokio::test]
    async fn a_quick_claim_joins_a_slow_one_and_the_others_wait_for_it() {
        let latch = Latch::new();
        let slow = latch.claim(false).expect("the first caller claims");
        assert!(latch.claim(false).is_none(), "one slow finder at a time");
        let quick = latch.claim(true).expect("a quick finder joins a slow one");
        assert_eq!(latch.knowledge(), Knowledge::Learning { quickly: true });
        assert!(latch.claim(true).is_none() && latch.claim(false).is_none());
        // The slow one giving up leaves the quick one finding out.
        drop(slow);
        assert_eq!(latch.knowledge(), Knowledge::Learning { quickly: true });
        drop(quick);
        assert_eq!(latch.knowledge(), Knowledge::Unknown);
    }

    #[tokio::test]
    async fn a_claim_dropped_without_a_verdict_frees_the_latch() {
        let latch = Latch::new();
        drop(latch.claim(false).unwrap());
        assert_eq!(latch.learnt().await, Knowledge::Unknown);
        assert!(latch.claim(false).is_some());
    }
}
