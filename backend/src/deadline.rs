//! The time limit of one request, and the rule that makes its answer honest: a write that
//! has begun committing is never cut off.
//!
//! A plain timeout drops the handler when time is up and answers "unavailable, safe to
//! retry", yet a write already handed to the database commits anyway, and the client's retry
//! then creates it twice. So every request carries a [`Deadline`], and whoever acts first
//! wins, atomically:
//!
//! - the store calls [`Deadline::begin_commit`] just before a write's transaction starts; once
//!   that succeeds, the request waits for the outcome however long the limit;
//! - the timeout calls [`Deadline::give_up`] when the limit passes; if no commit has begun,
//!   the request is answered 503 (safe to retry: nothing was or will be written) and the store
//!   skips the write when it comes to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

const WAITING: u8 = 0;
const COMMITTING: u8 = 1;
const GAVE_UP: u8 = 2;

/// Shared between a request's timeout and the store writing on its behalf. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Deadline(Arc<AtomicU8>);

impl Deadline {
    /// A deadline that never passes (for writes made outside a request: seeding, tests).
    pub fn none() -> Self {
        Self::default()
    }

    /// The store is about to commit this request's write: `true` if it may (the request will
    /// wait for the outcome), `false` if the request has already been answered and the write
    /// must be skipped.
    pub fn begin_commit(&self) -> bool {
        match self
            .0
            .compare_exchange(WAITING, COMMITTING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => state == COMMITTING,
        }
    }

    /// The time limit has passed: `true` if the request may be answered now as safe to
    /// retry (no commit has begun, and none will), `false` if a commit is under way and its
    /// outcome must be awaited.
    pub fn give_up(&self) -> bool {
        match self
            .0
            .compare_exchange(WAITING, GAVE_UP, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => state == GAVE_UP,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_that_began_first_is_awaited() {
        let deadline = Deadline::default();
        assert!(deadline.begin_commit());
        assert!(!deadline.give_up(), "the timeout must wait for the outcome");
        assert!(
            deadline.begin_commit(),
            "a second write of the same request may go on"
        );
    }

    #[test]
    fn a_request_that_gave_up_first_is_never_committed() {
        let deadline = Deadline::default();
        assert!(deadline.give_up());
        assert!(!deadline.begin_commit(), "the store must skip the write");
        assert!(deadline.give_up());
    }
}
