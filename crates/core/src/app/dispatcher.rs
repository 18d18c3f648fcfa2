//! The one task that carries calls to the application, gathering whatever has queued into one batch.

use tokio::sync::mpsc;

use super::App;

/// Most calls carried by one batch, so one delivery never grows without bound.
const MAX_BATCH: usize = 1024;

/// Delivers calls in batches until every sender is gone, then drops the application.
pub(crate) async fn dispatch<A: App>(app: A, mut calls: mpsc::Receiver<String>) {
    let mut pending = Vec::with_capacity(MAX_BATCH);
    while calls.recv_many(&mut pending, MAX_BATCH).await > 0 {
        let size = pending.iter().map(|call| call.len() + 1).sum::<usize>() + 1;
        let mut batch = String::with_capacity(size);
        batch.push('[');
        for (index, call) in pending.drain(..).enumerate() {
            if index > 0 {
                batch.push(',');
            }
            batch.push_str(&call);
        }
        batch.push(']');
        app.deliver(batch).await;
    }
}
