//! Connection scale: opens many WebSocket connections, keeps them open and idle, and reports the connect rate.
//!
//! The suite (bench/run.mjs) reads the server's memory while the connections are held: this process prints a
//! `connected` line when they are all open, holds them until told on stdin, then prints how many are still open.

use std::net::IpAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{stream, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    connect_from, fd_limit, histogram, host_port, merge_percentiles, now_ns, round2, truncate,
    Args, FirstError, Protocol, Ws,
};

/// Connections per source address when the count is left to the load generator: well under the ~28k
/// ephemeral ports one address has.
const PER_SOURCE: usize = 10_000;

#[derive(Default)]
struct Shared {
    connected: AtomicU64,
    failed: AtomicU64,
    /// Connections that closed or failed after they were open.
    dropped: AtomicU64,
    errors: FirstError,
}

/// The source addresses to spread `count` sockets over: none (the kernel picks) unless the server is on a
/// loopback address, where all of 127/8 is ours.
fn sources(args: &Args, count: usize) -> Result<Vec<IpAddr>, String> {
    let addr = host_port(&args.url)?;
    let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
    let loopback = host
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback() && ip.is_ipv4());
    let n = match args.source_addresses {
        0 if loopback => count.div_ceil(PER_SOURCE),
        0 => 0,
        n => n,
    };
    if n > 250 {
        return Err("--source-addresses must be at most 250".into());
    }
    Ok((0..n)
        .map(|i| IpAddr::from([127, 0, 0, 2 + i as u8]))
        .collect())
}

pub async fn run(args: &Args) -> Result<serde_json::Value, String> {
    let count = args.connections;
    let sources = sources(args, count)?;
    let shared = Arc::new(Shared::default());
    // Idle sockets read almost nothing: a small read buffer keeps the load generator's own memory down.
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());

    let progress = tokio::spawn(report_progress(shared.clone(), count as u64));
    let handshakes = Mutex::new(histogram());
    // With a pause, the connections open in two steps; the connect rate counts the time spent connecting.
    let pause = (args.pause_at > 0 && args.pause_at < count).then_some(args.pause_at);
    let opening = Opening {
        args,
        sources: &sources,
        config,
        shared: &shared,
        handshakes: &handshakes,
    };
    let mut connect_ns = 0;
    let mut from = 0;
    for until in pause.into_iter().chain([count]) {
        connect_ns += opening.open(from..until).await;
        if until < count {
            let connected = shared.connected.load(Ordering::Relaxed);
            println!("{}", json!({ "event": "paused", "connected": connected }));
            let _ = stdin.read_line(&mut String::new()).await;
        }
        from = until;
    }
    progress.abort();
    let connected = shared.connected.load(Ordering::Relaxed);
    let failed = shared.failed.load(Ordering::Relaxed);
    let connect_s = connect_ns as f64 / 1e9;
    let rate = if connect_s > 0.0 {
        (connected as f64 / connect_s).round()
    } else {
        0.0
    };
    eprintln!(
        "progress connected {connected} of {count} in {connect_s:.1} s ({rate} per second), {failed} failed"
    );
    let mut value = json!({
        "scenario": "idle",
        "url": args.url,
        "connections": count,
        "connect_concurrency": args.connect_concurrency,
        "source_addresses": sources.len(),
        "fd_limit": fd_limit(),
        "connected": connected,
        "failed": failed,
        "connect_s": round2(connect_s),
        "connect_rate": rate,
    });
    let h = handshakes.into_inner().unwrap_or_else(|p| p.into_inner());
    merge_percentiles(&mut value, "connect_", &h);
    let mut event = value.clone();
    event["event"] = json!("connected");
    println!("{event}");

    // Hold: until a line or the end of stdin (the suite has read the server's memory), or --hold seconds.
    let held = now_ns();
    if args.hold > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    } else {
        let _ = stdin.read_line(&mut String::new()).await;
    }
    let dropped = shared.dropped.load(Ordering::Relaxed);
    value["held_s"] = json!(round2((now_ns() - held) as f64 / 1e9));
    value["dropped"] = json!(dropped);
    value["open"] = json!(connected.saturating_sub(dropped));
    value["errors"] = json!(failed + dropped);
    shared.errors.report(&mut value);
    Ok(value)
}

/// What opening connections needs.
struct Opening<'a> {
    args: &'a Args,
    sources: &'a [IpAddr],
    config: WebSocketConfig,
    shared: &'a Arc<Shared>,
    handshakes: &'a Mutex<Histogram<u64>>,
}

impl Opening<'_> {
    /// Opens connections `range` (each then held by a task of its own); returns the nanoseconds until the
    /// last one was open.
    async fn open(&self, range: Range<usize>) -> u64 {
        let started = now_ns();
        let last_done = AtomicU64::new(started);
        stream::iter(range)
            .for_each_concurrent(self.args.connect_concurrency.max(1), |i| {
                let shared = self.shared.clone();
                let source =
                    (!self.sources.is_empty()).then(|| self.sources[i % self.sources.len()]);
                let last_done = &last_done;
                async move {
                    let begin = now_ns();
                    match connect_from(&self.args.url, self.args.protocol, source, self.config)
                        .await
                    {
                        Ok(ws) => {
                            let end = now_ns();
                            last_done.fetch_max(end, Ordering::Relaxed);
                            let _ = self
                                .handshakes
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .record((end - begin).max(1));
                            shared.connected.fetch_add(1, Ordering::Relaxed);
                            tokio::spawn(hold(ws, self.args.protocol, shared));
                        }
                        Err(e) => {
                            shared.failed.fetch_add(1, Ordering::Relaxed);
                            shared.errors.note(e);
                        }
                    }
                }
            })
            .await;
        last_done.into_inner() - started
    }
}

/// Keeps one connection open and idle: reading is what answers WebSocket pings (tungstenite queues the pong
/// and sends it on the next read); Socket.IO's own pings ("2") are answered with "3".
async fn hold(mut ws: Ws, protocol: Protocol, shared: Arc<Shared>) {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text)))
                if protocol == Protocol::SocketIo && text.as_str() == "2" =>
            {
                if let Err(e) = ws.send(Message::text("3")).await {
                    shared.errors.note(format!("idle write: {e}"));
                    break;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                shared
                    .errors
                    .note(format!("server closed an idle connection: {frame:?}"));
                break;
            }
            Some(Ok(Message::Text(text)))
                if protocol == Protocol::SocketIo && text.starts_with('1') =>
            {
                shared.errors.note(format!(
                    "server closed an idle connection: {}",
                    truncate(text.as_bytes())
                ));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                shared.errors.note(format!("idle read: {e}"));
                break;
            }
            None => {
                shared
                    .errors
                    .note("idle connection closed by the server".into());
                break;
            }
        }
    }
    shared.dropped.fetch_add(1, Ordering::Relaxed);
}

/// A progress line every 2 s while connecting, so a long connect phase shows it is moving.
async fn report_progress(shared: Arc<Shared>, count: u64) {
    let started = now_ns();
    let mut previous = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.tick().await;
    loop {
        tick.tick().await;
        let connected = shared.connected.load(Ordering::Relaxed);
        let elapsed = (now_ns() - started) as f64 / 1e9;
        eprintln!(
            "progress connecting {connected} of {count}, {:.0} per second lately, {} failed, {elapsed:.0} s",
            (connected - previous) as f64 / 2.0,
            shared.failed.load(Ordering::Relaxed),
        );
        previous = connected;
    }
}
