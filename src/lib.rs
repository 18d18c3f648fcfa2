//! The napi binding of Helios: mirrors the core's server as a JavaScript class and translates values.
//! It holds no logic of its own; everything it does is a call into `helios_core`.

#![deny(clippy::unwrap_used)]

mod app;
mod error;
mod logging;
mod server;

use napi_derive::module_init;

/// The addon's allocator. Memory crosses threads all the time here (a call's text is built on an I/O
/// thread and freed on the JavaScript thread, a reply's frame the other way round); the system allocator
/// takes a lock for every such free, and the two threads then wait on each other.
///
/// mimalloc's v2 line, not v3: under v3 an idle connection measured ~0.35 KiB more (10,000 connections),
/// and v3 over-allocates a 128-byte-aligned block whose size is not a power of two (a connection's task,
/// which tokio aligns so) into the next size class: the task's class (see the core's `net/socket/mod.rs`)
/// holds under v2 only.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Builds the runtime the addon's sockets run on, before napi starts its own.
#[module_init]
fn init() {
    logging::init();
    let workers = std::env::var("HELIOS_WORKER_THREADS")
        .ok()
        .and_then(|value| value.parse::<usize>().ok())
        .filter(|workers| *workers > 0)
        .unwrap_or_else(default_workers);
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("helios-io")
        .enable_all()
        .build()
    {
        Ok(runtime) => napi::bindgen_prelude::create_custom_tokio_runtime(runtime),
        Err(error) => tracing::error!(%error, "cannot build the I/O runtime, using napi's default"),
    }
}

/// One I/O thread per core, leaving one core to the JavaScript thread.
fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|cores| cores.get().saturating_sub(1).max(1))
        .unwrap_or(1)
}
