//! [`lock`]: a mutex's guard even after a panic elsewhere poisoned it. Every mutex of the
//! crate holds plain data that stays consistent between statements, so the crate keeps
//! serving it rather than turn one panicked task into a failure of every later call.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, poisoned or not.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
