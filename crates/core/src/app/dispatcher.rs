//! The calls waiting for the application, and the one task that carries them over in batches.
//!
//! Calls are pushed to the application: the dispatcher hands over whatever has queued as one batch and
//! waits until the application has run it. While the application is busy, it may also pull what queued
//! meanwhile ([`Inbox::take`]) before it returns, which saves the round trip through the dispatcher's
//! thread between two batches.

use tokio::sync::{mpsc, Mutex};

use super::App;

/// Most calls carried by one batch, so one delivery never grows without bound.
const MAX_BATCH: usize = 1024;

/// The queue of calls for the application.
pub(crate) struct Inbox(Mutex<mpsc::Receiver<String>>);

impl Inbox {
    pub(crate) fn new(calls: mpsc::Receiver<String>) -> Self {
        Inbox(Mutex::new(calls))
    }

    /// The calls waiting now, as one batch; `None` when none wait, or while the dispatcher waits for calls
    /// (it delivers them itself).
    pub(crate) fn take(&self) -> Option<String> {
        let mut calls = self.0.try_lock().ok()?;
        let mut pending = Vec::new();
        while pending.len() < MAX_BATCH {
            match calls.try_recv() {
                Ok(call) => pending.push(call),
                Err(_) => break,
            }
        }
        (!pending.is_empty()).then(|| batch(&mut pending))
    }
}

/// Delivers calls in batches until every sender is gone, then drops the application.
pub(crate) async fn dispatch<A: App>(app: A, inbox: std::sync::Arc<Inbox>) {
    let mut pending = Vec::with_capacity(MAX_BATCH);
    loop {
        // The lock is free while the application runs a batch, which is when it may take calls itself.
        let received = inbox
            .0
            .lock()
            .await
            .recv_many(&mut pending, MAX_BATCH)
            .await;
        if received == 0 {
            break;
        }
        app.deliver(batch(&mut pending)).await;
    }
}

/// The calls as one JSON array, leaving `pending` empty.
fn batch(pending: &mut Vec<String>) -> String {
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
    batch
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex as StdMutex};

    use super::*;

    /// Records each batch; on its first delivery it queues one more call and takes it, as JavaScript does
    /// when calls queue while it runs a batch.
    struct Recorder {
        inbox: Arc<Inbox>,
        calls: mpsc::WeakSender<String>,
        seen: Arc<StdMutex<Vec<String>>>,
    }

    impl App for Recorder {
        async fn deliver(&self, batch: String) {
            let first = self.seen.lock().expect("seen").is_empty();
            self.seen.lock().expect("seen").push(batch);
            if first {
                let calls = self.calls.upgrade().expect("the test holds a sender");
                calls.try_send("4".into()).expect("room in the queue");
                let taken = self.inbox.take().expect("the call queued during the batch");
                self.seen
                    .lock()
                    .expect("seen")
                    .push(format!("taken {taken}"));
            }
        }
    }

    #[tokio::test]
    async fn calls_go_once_and_in_order_whether_delivered_or_taken() {
        let (calls, receiver) = mpsc::channel(16);
        let inbox = Arc::new(Inbox::new(receiver));
        assert_eq!(inbox.take(), None, "nothing queued");
        calls.send("1".into()).await.expect("queued");
        calls.send("2".into()).await.expect("queued");
        assert_eq!(inbox.take().as_deref(), Some("[1,2]"));
        assert_eq!(inbox.take(), None, "taken once");

        let seen = Arc::new(StdMutex::new(Vec::new()));
        let app = Recorder {
            inbox: inbox.clone(),
            calls: calls.downgrade(),
            seen: seen.clone(),
        };
        let dispatcher = tokio::spawn(dispatch(app, inbox.clone()));
        calls.send("3".into()).await.expect("queued");
        while seen.lock().expect("seen").len() < 2 {
            tokio::task::yield_now().await;
        }
        // The dispatcher waits for calls again, holding the queue: calls are its to deliver.
        assert_eq!(inbox.take(), None);
        calls.send("5".into()).await.expect("queued");
        drop(calls);
        dispatcher.await.expect("the dispatcher ends");
        assert_eq!(*seen.lock().expect("seen"), ["[3]", "taken [4]", "[5]"]);
    }
}
