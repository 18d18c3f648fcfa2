//! Corking: the frames one call from the application sends leave together, written by an I/O thread.
//!
//! The application thread sends in bursts: a flush of a batch's replies, a broadcast to a thousand
//! members. Writing each frame at once would put a system call per frame on the application's thread;
//! waking each connection's task would cost a wake-up per frame. Instead the call holds its frames in
//! each socket's backlog, then hands the list of their outboxes to one task on an I/O thread
//! ([`release`], then [`write`]). Frames to one connection held before that task reaches it (several
//! broadcasts in a row) leave in one write, much as uWebSockets corks a socket. Frames sent outside a
//! hold go out at once.

use std::cell::RefCell;
use std::sync::Arc;

use super::outbox::Outbox;

#[derive(Default)]
struct Cork {
    active: bool,
    held: Vec<Arc<Outbox>>,
}

thread_local! {
    static CORK: RefCell<Cork> = RefCell::new(Cork::default());
}

/// From now until [`release`], frames sent from this thread are held.
pub(crate) fn hold() {
    CORK.with_borrow_mut(|cork| cork.active = true);
}

/// Whether frames sent from this thread are held now.
pub(crate) fn active() -> bool {
    CORK.with_borrow(|cork| cork.active)
}

/// Remembers an outbox whose wire holds frames, to write them at [`release`].
pub(crate) fn held(outbox: Arc<Outbox>) {
    CORK.with_borrow_mut(|cork| cork.held.push(outbox));
}

/// Ends the hold; `write_later` receives the outboxes whose wires hold frames (never an empty list) and
/// must see that [`write`] (or [`write_now`]) runs on them.
pub(crate) fn release(write_later: impl FnOnce(Vec<Arc<Outbox>>)) {
    let held = CORK.with_borrow_mut(|cork| {
        cork.active = false;
        std::mem::take(&mut cork.held)
    });
    if !held.is_empty() {
        write_later(held);
    }
}

/// Connections the writer releases between two yields to its I/O thread.
///
/// A broadcast to a large room is thousands of system calls. Written in one go they would keep the
/// thread from every other socket it serves; in slices, the thread reads in between, and frames the
/// application sends meanwhile join the wires this writer has not reached yet (more frames per write).
const SLICE: usize = 64;

/// Writes what each wire holds, yielding to the runtime every [`SLICE`] connections.
pub(crate) async fn write(held: Vec<Arc<Outbox>>) {
    for (index, outbox) in held.iter().enumerate() {
        if index > 0 && index % SLICE == 0 {
            tokio::task::yield_now().await;
        }
        outbox.release();
    }
}

/// Writes what each wire holds, now (no runtime to hand the work to).
pub(crate) fn write_now(held: Vec<Arc<Outbox>>) {
    for outbox in held {
        outbox.release();
    }
}

/// Runs `send` with the frames it sends from this thread held, then hands them to `write` (as [`release`]
/// does). Within a hold begun on this thread already, that hold keeps them. The hold ends even if `send`
/// panics, so that this thread's later frames are not held forever.
pub(crate) fn holding<T>(send: impl FnOnce() -> T, write: impl FnOnce(Vec<Arc<Outbox>>)) -> T {
    struct Release<W: FnOnce(Vec<Arc<Outbox>>)>(Option<W>);
    impl<W: FnOnce(Vec<Arc<Outbox>>)> Drop for Release<W> {
        fn drop(&mut self) {
            if let Some(write) = self.0.take() {
                release(write);
            }
        }
    }
    if active() {
        return send();
    }
    hold();
    let _release = Release(Some(write));
    send()
}

/// [`holding`], written from this thread: the frames `send` sends to one connection (a session's replay, a
/// hundred frames) leave in one write instead of one each.
pub(crate) fn in_one_write<T>(send: impl FnOnce() -> T) -> T {
    holding(send, write_now)
}
