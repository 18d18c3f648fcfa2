//! When the application hears of a connection.
//!
//! An application that does not listen for every open (no `connection` listener, say) need not hear of a
//! connection that never does anything: it hears of it with the first call that concerns it, the open
//! call going just before, in the same item of the calls channel. A connection that stays silent costs
//! the application nothing — no crossing, no object — and its close is not reported either.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use crate::sync::Locked;

/// The application has not heard of the connection: the open call waits.
const DUE: u8 = 0;
/// The application has the open call.
const HEARD: u8 = 1;
/// The connection ended unheard of: the application never hears of it.
const FORGOTTEN: u8 = 2;

/// Whether the application has heard of a connection, and what its open call will say if not (see
/// [`crate::app::call::origin`]).
#[derive(Debug)]
pub(crate) struct Introduction {
    /// `DUE`, `HEARD` or `FORGOTTEN`; changed only under the lock, read without it by the fast path.
    state: AtomicU8,
    /// The open call's origin while the call is due.
    open: Mutex<Option<Box<str>>>,
}

impl Introduction {
    /// A connection the application has not heard of; `open` is its open call's origin.
    pub(crate) fn due(open: String) -> Self {
        Introduction {
            state: AtomicU8::new(DUE),
            open: Mutex::new(Some(open.into_boxed_str())),
        }
    }

    /// A connection the application knows already (a session brought over from another node).
    pub(crate) fn heard() -> Self {
        Introduction {
            state: AtomicU8::new(HEARD),
            open: Mutex::new(None),
        }
    }

    /// The open call's origin, if the application has not heard of the connection yet; from now on it
    /// has.
    pub(crate) fn take(&self) -> Option<Box<str>> {
        if self.state.load(Ordering::Acquire) != DUE {
            return None;
        }
        // The state changes under the lock, so `end` never sees the call taken and the state still due.
        let mut open = self.open();
        let taken = open.take()?;
        self.state.store(HEARD, Ordering::Release);
        Some(taken)
    }

    /// The connection ended: true when the application heard of it (and so must hear of the close).
    /// One that was not heard of is never introduced afterwards.
    pub(crate) fn end(&self) -> bool {
        let mut open = self.open();
        if open.take().is_some() {
            self.state.store(FORGOTTEN, Ordering::Release);
        }
        self.state.load(Ordering::Acquire) == HEARD
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Option<Box<str>>> {
        // Every update is a single assignment: a poisoned lock still holds a valid value.
        self.open.locked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_call_is_taken_once_and_its_close_then_reported() {
        let introduction = Introduction::due("\"/\",\"127.0.0.1:1\",null".to_owned());
        assert_eq!(
            introduction.take().as_deref(),
            Some("\"/\",\"127.0.0.1:1\",null")
        );
        assert!(introduction.take().is_none());
        assert!(introduction.end(), "heard of, so its close is reported");
    }

    #[test]
    fn a_connection_that_ends_unheard_of_is_never_introduced() {
        let introduction = Introduction::due("\"/\",\"127.0.0.1:1\",null".to_owned());
        assert!(!introduction.end());
        assert!(introduction.take().is_none());
        assert!(Introduction::heard().end());
        assert!(Introduction::heard().take().is_none());
    }
}
