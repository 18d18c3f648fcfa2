//! The core's `App` seam implemented by a JavaScript function: each batch of calls becomes one call of it.

use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;

/// The JavaScript batch handler: receives the batch's JSON text and returns nothing.
pub(crate) type BatchHandler = ThreadsafeFunction<String, (), String, Status, false>;

/// Delivers batches to JavaScript; dropping it releases the function, letting the process exit.
pub(crate) struct JsApp {
    pub(crate) on_batch: BatchHandler,
}

impl helios_core::App for JsApp {
    async fn deliver(&self, batch: String) {
        // Waiting for the call to return is what makes the next batch gather what arrives meanwhile.
        if let Err(error) = self.on_batch.call_async(batch).await {
            tracing::error!(%error, "the batch handler failed");
        }
    }
}
