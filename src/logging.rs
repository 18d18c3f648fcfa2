//! Log output: `tracing` events to stderr, at the level named by `HELIOS_LOG` (default `warn`).

use tracing_subscriber::filter::LevelFilter;

pub(crate) fn init() {
    let level = match std::env::var("HELIOS_LOG")
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Ok("off") => LevelFilter::OFF,
        Ok("error") => LevelFilter::ERROR,
        Ok("info") => LevelFilter::INFO,
        Ok("debug") => LevelFilter::DEBUG,
        Ok("trace") => LevelFilter::TRACE,
        _ => LevelFilter::WARN,
    };
    // Fails only when a subscriber is already set (the addon loaded twice); keep the first.
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
