//! The seam between the core and the application that runs user handlers (in Helios, JavaScript).
//!
//! Traffic crosses in batches of JSON text both ways: the core sends [`call`]s, many per delivery, and the
//! application answers with [`op`]s, many per flush. Nothing is built field by field at the boundary.

pub mod call;
mod dispatcher;
pub mod op;

use std::future::Future;

pub(crate) use dispatcher::{dispatch, Inbox};

/// The application side: receives batches of calls.
pub trait App: Send + Sync + 'static {
    /// Hands over one batch: a JSON array whose items are [`call`]s. The returned future resolves once the
    /// application has run the batch's synchronous part; the next batch waits for it, so batches grow
    /// while the application is busy instead of queueing one crossing per message. Before returning, the
    /// application may take what queued meanwhile itself ([`crate::Server::take_calls`]).
    fn deliver(&self, batch: String) -> impl Future<Output = ()> + Send;
}
