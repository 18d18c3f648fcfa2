//! Load generator for the Helios benchmark suite.
//!
//! Drives the same wire messages against every server under test and prints one JSON line of results:
//!
//! ```text
//! loadgen rpc    --url ws://127.0.0.1:PORT --protocol helios|plain --connections 50 --inflight 10 --duration 5
//! loadgen fanout --url ws://127.0.0.1:PORT --protocol helios|plain --subscribers 1000 --messages 100000 --duration 5
//! ```
//!
//! Wire messages (the same for every server, see bench/README.md):
//! - rpc: `{"type":"request","id":N,"method":"echo","payload":{...}}` answered by
//!   `{"type":"response","id":N,"status":200,"data":{...}}`.
//! - fanout: subscribers call `helios.subscribe` with `{"topic":"bench"}`; the publisher sends
//!   `{"type":"event","topic":"bench:publish","data":{"t":NANOS,"seq":N}}` and the server relays `data` to the
//!   room as `{"type":"event","topic":"bench","data":{...}}`. `t` is this process's monotonic clock, so
//!   delivery latency is measured on one clock. A fan-out run has a throughput phase (`--window` broadcasts in
//!   flight) and then a latency phase (one broadcast at a time, `--latency-duration` seconds).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::stream;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

mod client;
mod idle;
mod resume;
mod transport;

use client::{field_u64, field_u64_end, push_u64, Client, Outgoing};
use transport::Stream;

type Ws = WebSocketStream<Stream>;

/// The small JSON payload of every RPC request.
const RPC_PAYLOAD: &str = r#"{"name":"bench","n":42,"tags":["a","b"],"ok":true}"#;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process-wide epoch.
fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn histogram() -> Histogram<u64> {
    // 1 ns .. 120 s, 3 significant digits.
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("histogram bounds")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// Helios: offers the `helios.v1` subprotocol.
    Helios,
    /// The plain JavaScript servers: same JSON messages, no subprotocol.
    Plain,
    /// Socket.IO 4 (Engine.IO 4 over a WebSocket): `42<id>["echo",{...}]` answered by the ack `43<id>[{...}]`;
    /// `42<id>["subscribe","bench"]` with an ack; `42["bench:publish",{...}]` relayed as `42["bench",{...}]`.
    SocketIo,
}

struct Args {
    scenario: String,
    url: String,
    protocol: Protocol,
    threads: usize,
    connections: usize,
    inflight: usize,
    duration: f64,
    warmup: f64,
    subscribers: usize,
    messages: u64,
    window: usize,
    latency_duration: f64,
    connect_concurrency: usize,
    source_addresses: usize,
    hold: f64,
    pause_at: usize,
    clients: usize,
    interval_ms: u64,
    before: f64,
    away: f64,
    after: f64,
}

const USAGE: &str = "usage:
  loadgen rpc    --url ws://127.0.0.1:PORT [--protocol helios|plain|socketio] [--connections 50] [--inflight 10]
                 [--duration 5] [--warmup 1] [--threads 1]
  loadgen fanout --url ws://127.0.0.1:PORT [--protocol helios|plain|socketio] [--subscribers 1000] [--messages 1000000]
                 [--window 8] [--latency-duration 2] [--duration 5] [--warmup 1] [--threads 1]
options:
  --threads N              tokio worker threads (default 1)
  --duration S             measured seconds (default 5); fanout stops at --messages or --duration, first reached
  --warmup S               seconds of load before measuring (default 1)
  --window N               fanout, throughput phase: broadcasts in flight; the next is published when one has
                           reached every subscriber (default 8)
  --latency-duration S     fanout, latency phase: seconds of one broadcast at a time after the throughput phase
                           (default 2; 0 skips it)
  --connect-concurrency N  handshakes in flight while connecting (default 64)
  --ca FILE                trust the PEM certificate(s) in FILE, for a wss:// URL (TLS)
  loadgen idle   --url ws://127.0.0.1:PORT [--protocol helios|plain|socketio] --connections N
                 [--connect-concurrency 64] [--source-addresses 0] [--hold 0] [--pause-at 0]
      opens --connections WebSocket connections (--connect-concurrency handshakes in flight), keeps them open and
      idle (answering pings), prints a `connected` JSON line, then holds them until a line or EOF on stdin
      (or --hold seconds when above 0) and prints the result: how many are still open.
  --pause-at M             idle: once M are open, print a `paused` JSON line and wait for a line on stdin before
                           opening the rest (the suite reads the server's memory at both counts; 0: no pause)
  --source-addresses N     spread client sockets over 127.0.0.2 .. 127.0.0.(N+1) (default 0: one address per
                           10,000 connections when the server is on a loopback address)
  loadgen resume --url ws://127.0.0.1:PORT --protocol helios|socketio [--clients 1000] [--interval-ms 20]
                 [--before 2] [--away 2] [--after 2] [--connect-concurrency 64]
      Helios sessions, or Socket.IO's connectionStateRecovery. --clients connections with session recovery join
      room 'bench'; a publisher broadcasts a numbered message every --interval-ms; after --before s every client
      drops its socket at once (reset, no close frame), stays away --away s, then all resume at once; after
      --after s more the publisher stops and every client's sequence numbers are checked (lost, duplicated).
Progress lines go to stderr; the result is one JSON line on stdout.";

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let scenario = it.next().ok_or("missing scenario")?;
    if scenario == "--help" || scenario == "-h" {
        println!("{USAGE}");
        std::process::exit(0);
    }
    if !["rpc", "fanout", "idle", "resume"].contains(&scenario.as_str()) {
        return Err(format!("unknown scenario '{scenario}'"));
    }
    let mut args = Args {
        scenario,
        url: String::new(),
        protocol: Protocol::Plain,
        threads: 1,
        connections: 50,
        inflight: 10,
        duration: 5.0,
        warmup: 1.0,
        subscribers: 1000,
        messages: 1_000_000,
        window: 8,
        latency_duration: 2.0,
        connect_concurrency: 64,
        source_addresses: 0,
        hold: 0.0,
        pause_at: 0,
        clients: 1000,
        interval_ms: 20,
        before: 2.0,
        away: 2.0,
        after: 2.0,
    };
    let seconds = |flag: &str, value: &str| -> Result<f64, String> {
        value
            .parse::<f64>()
            .ok()
            .filter(|s| *s >= 0.0)
            .ok_or_else(|| format!("bad value for {flag}: {value}"))
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |_| format!("bad value for {flag}: {value}");
        match flag.as_str() {
            "--url" => args.url = value.clone(),
            "--protocol" => {
                args.protocol = match value.as_str() {
                    "helios" => Protocol::Helios,
                    "plain" => Protocol::Plain,
                    "socketio" => Protocol::SocketIo,
                    _ => return Err(format!("unknown protocol '{value}'")),
                }
            }
            "--threads" => args.threads = value.parse().map_err(bad)?,
            "--connections" => args.connections = value.parse().map_err(bad)?,
            "--inflight" => args.inflight = value.parse().map_err(bad)?,
            "--duration" => {
                args.duration = value.parse().map_err(|_| format!("bad value for {flag}"))?
            }
            "--warmup" => {
                args.warmup = value.parse().map_err(|_| format!("bad value for {flag}"))?
            }
            "--subscribers" => args.subscribers = value.parse().map_err(bad)?,
            "--messages" => args.messages = value.parse().map_err(bad)?,
            "--window" => args.window = value.parse().map_err(bad)?,
            "--latency-duration" => {
                args.latency_duration =
                    value.parse().map_err(|_| format!("bad value for {flag}"))?
            }
            "--connect-concurrency" => args.connect_concurrency = value.parse().map_err(bad)?,
            "--source-addresses" => args.source_addresses = value.parse().map_err(bad)?,
            "--hold" => args.hold = seconds(&flag, &value)?,
            "--pause-at" => args.pause_at = value.parse().map_err(bad)?,
            "--clients" => args.clients = value.parse().map_err(bad)?,
            "--interval-ms" => args.interval_ms = value.parse().map_err(bad)?,
            "--before" => args.before = seconds(&flag, &value)?,
            "--away" => args.away = seconds(&flag, &value)?,
            "--after" => args.after = seconds(&flag, &value)?,
            "--ca" => transport::trust(&value)?,
            _ => return Err(format!("unknown flag '{flag}'")),
        }
    }
    if args.url.is_empty() {
        return Err("--url is required".into());
    }
    if args.threads == 0
        || args.connections == 0
        || args.inflight == 0
        || args.subscribers == 0
        || args.window == 0
        || args.clients == 0
        || args.interval_ms == 0
    {
        return Err("counts must be at least 1".into());
    }
    if args.window >= RING {
        return Err(format!("--window must be below {RING}"));
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    EPOCH.get_or_init(Instant::now);
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let cpu_before = cpu_seconds();
    let wall = Instant::now();
    let result = runtime.block_on(async {
        match args.scenario.as_str() {
            "rpc" => rpc(&args).await,
            "idle" => idle::run(&args).await,
            "resume" => resume::run(&args).await,
            _ => fanout(&args).await,
        }
    });
    match result {
        Ok(mut value) => {
            if let (Some(before), Some(after)) = (cpu_before, cpu_seconds()) {
                // CPU the load generator used, in cores (1.0 = one core busy for the whole run): tells whether it
                // could have been the bottleneck.
                value["loadgen_cpu_cores"] =
                    json!(round2((after - before) / wall.elapsed().as_secs_f64()));
            }
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            println!("{}", json!({ "scenario": args.scenario, "fatal": e }));
            ExitCode::from(1)
        }
    }
}

/// Raises this process's open-file soft limit to its hard limit: every connection is a file descriptor.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer, which outlives the calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// The open-file soft limit after `raise_fd_limit`, for the result (None where unknown).
fn fd_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: as in `raise_fd_limit`.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    ok.then_some(limit.rlim_cur)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// User + system CPU time of this process, from /proc (Linux only).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state is field 3, utime field 14 and stime field 15 (1-based, man 5 proc).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0) // USER_HZ is 100 on Linux
}

/// `url` past its `ws://` or `wss://`.
fn after_scheme(url: &str) -> Result<&str, String> {
    url.strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .ok_or_else(|| "only ws:// and wss:// URLs are supported".to_string())
}

fn host_port(url: &str) -> Result<String, String> {
    let rest = after_scheme(url)?;
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    if authority.contains(':') {
        Ok(authority.to_string())
    } else if url.starts_with("wss://") {
        Ok(format!("{authority}:443"))
    } else {
        Ok(format!("{authority}:80"))
    }
}

/// Opens a WebSocket (and, for Socket.IO, completes the Engine.IO and namespace handshakes). With `source`, the
/// socket is bound to that local address first: one source address has only ~28k ephemeral ports, so the
/// connection-scale scenario spreads its sockets over 127.0.0.2, 127.0.0.3, ...
async fn connect_from(
    url: &str,
    protocol: Protocol,
    source: Option<IpAddr>,
    config: WebSocketConfig,
) -> Result<Ws, String> {
    let addr = host_port(url)?;
    let url = endpoint(url, protocol);
    let url = url.as_str();
    let tcp = match source {
        None => TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?,
        Some(ip) => {
            let target: SocketAddr = addr
                .parse()
                .map_err(|_| format!("--source-addresses needs a numeric address, got {addr}"))?;
            let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
            bind_address_no_port(&socket);
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| format!("bind {ip}: {e}"))?;
            socket
                .connect(target)
                .await
                .map_err(|e| format!("connect {addr} from {ip}: {e}"))?
        }
    };
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let stream = Stream::open(tcp, &addr, url).await?;
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    if protocol == Protocol::Helios {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("helios.v1"),
        );
    }
    // Small read buffer: tungstenite zero-fills its read buffer, and the default 128 KiB costs more than the reads.
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|e| format!("handshake {url}: {e}"))?;
    if protocol == Protocol::SocketIo {
        socketio_handshake(&mut ws).await?;
    }
    Ok(ws)
}

/// The URL a client opens: `url` itself, or for Socket.IO its Engine.IO endpoint under `url`.
fn endpoint(url: &str, protocol: Protocol) -> String {
    if protocol != Protocol::SocketIo {
        return url.to_string();
    }
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("&{query}")),
        None => (url, String::new()),
    };
    format!(
        "{}/socket.io/?EIO=4&transport=websocket{query}",
        base.trim_end_matches('/')
    )
}

/// Asks Linux to pick the source port at `connect`, knowing the destination, rather than at `bind`: a
/// `bind(ip, 0)` must find a port free for every destination, which gets slow (and runs out) with thousands of
/// sockets on one address (measured: ~220 connects/s instead of ~5,000 at 8,000 connections). Best effort.
fn bind_address_no_port(socket: &TcpSocket) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and a pointer to an int that lives across the call, with its size.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

/// Engine.IO open packet (`0{...}`), then the Socket.IO connect to the main namespace (`40` → `40{...}`).
async fn socketio_handshake(ws: &mut Ws) -> Result<(), String> {
    let mut sent_connect = false;
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .map_err(|_| "socket.io handshake: no answer in 10 s".to_string())?;
        let text = match item {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("socket.io handshake: {e}")),
            None => return Err("socket.io handshake: connection closed".into()),
        };
        if text.starts_with('0') && !sent_connect {
            ws.send(Message::text("40"))
                .await
                .map_err(|e| format!("socket.io handshake: {e}"))?;
            sent_connect = true;
        } else if text.starts_with("40") {
            return Ok(());
        } else if text.starts_with("44") {
            return Err(format!(
                "socket.io connect refused: {}",
                truncate(text.as_bytes())
            ));
        } else if text.as_str() == "2" {
            ws.send(Message::text("3"))
                .await
                .map_err(|e| format!("socket.io handshake: {e}"))?;
        }
    }
}

/// Opens `count` connections, `--connect-concurrency` handshakes at a time.
async fn open_clients(args: &Args, count: usize) -> Result<Vec<Client>, String> {
    let results: Vec<Result<Client, String>> = stream::iter(0..count)
        .map(|_| Client::open(&args.url, args.protocol))
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}

fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    let us = |ns: u64| ((ns as f64) / 100.0).round() / 10.0;
    if h.is_empty() {
        return json!({ "p50_us": null, "p90_us": null, "p99_us": null, "max_us": null, "mean_us": null });
    }
    json!({
        "p50_us": us(h.value_at_quantile(0.50)),
        "p90_us": us(h.value_at_quantile(0.90)),
        "p99_us": us(h.value_at_quantile(0.99)),
        "max_us": us(h.max()),
        "mean_us": ((h.mean() / 100.0).round()) / 10.0,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// RPC: each connection keeps `inflight` requests outstanding; every response is answered by a new request.

struct RpcWindow {
    start_ns: u64,
    end_ns: u64,
}

struct RpcOutcome {
    completed: u64,
    errors: u64,
    first_error: Option<String>,
    histogram: Histogram<u64>,
}

/// Hashes the request ids of one connection, which count up from 1: one multiply spreads them over the table.
/// The standard hasher's defence against keys chosen to collide is not needed for ids this program picks, and it
/// took about 2% of the load generator's time.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(self.0 ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Queues request `id` (method `echo`, the small payload).
fn queue_request(outgoing: &mut Outgoing, protocol: Protocol, id: u64) {
    outgoing.text_with(|text| {
        match protocol {
            Protocol::SocketIo => {
                text.extend_from_slice(b"42");
                push_u64(text, id);
                text.extend_from_slice(br#"["echo","#);
            }
            _ => {
                text.extend_from_slice(br#"{"type":"request","id":"#);
                push_u64(text, id);
                text.extend_from_slice(br#","method":"echo","payload":"#);
            }
        }
        text.extend_from_slice(RPC_PAYLOAD.as_bytes());
        text.push(if protocol == Protocol::SocketIo {
            b']'
        } else {
            b'}'
        });
    });
}

/// What a message means to the RPC scenario.
enum Reply {
    /// The answer to request `id`; `ok` when it is a success.
    Response {
        id: u64,
        ok: bool,
    },
    /// A Socket.IO ping: answer "3".
    Ping,
    Other,
}

fn parse_reply(protocol: Protocol, text: &[u8]) -> Reply {
    match protocol {
        Protocol::SocketIo => {
            if text == b"2" {
                return Reply::Ping;
            }
            let Some(rest) = text.strip_prefix(b"43") else {
                return Reply::Other;
            };
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            match std::str::from_utf8(&rest[..digits])
                .ok()
                .and_then(|d| d.parse().ok())
            {
                Some(id) => Reply::Response {
                    id,
                    ok: rest[digits..].starts_with(b"["),
                },
                None => Reply::Other,
            }
        }
        // Every server here writes the status right after the id, so it is looked for there first.
        _ => match field_u64_end(text, br#""id":"#) {
            Some((id, end)) => {
                let status = field_u64(&text[end..], br#""status":"#)
                    .or_else(|| field_u64(text, br#""status":"#));
                Reply::Response {
                    id,
                    ok: status == Some(200),
                }
            }
            None => Reply::Other,
        },
    }
}

async fn rpc(args: &Args) -> Result<serde_json::Value, String> {
    let clients = open_clients(args, args.connections).await?;
    let begin = now_ns();
    let window = Arc::new(RpcWindow {
        start_ns: begin + (args.warmup * 1e9) as u64,
        end_ns: begin + ((args.warmup + args.duration) * 1e9) as u64,
    });
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            tokio::spawn(rpc_connection(
                client,
                args.protocol,
                args.inflight,
                window.clone(),
            ))
        })
        .collect();
    let mut completed = 0;
    let mut errors = 0;
    let mut first_error = None;
    let mut all = histogram();
    for task in tasks {
        let outcome = task.await.map_err(|e| e.to_string())?;
        completed += outcome.completed;
        errors += outcome.errors;
        first_error = first_error.or(outcome.first_error);
        all.add(&outcome.histogram).map_err(|e| e.to_string())?;
    }
    let seconds = args.duration;
    let mut value = json!({
        "scenario": "rpc",
        "url": args.url,
        "connections": args.connections,
        "inflight": args.inflight,
        "duration_s": seconds,
        "threads": args.threads,
        "completed": completed,
        "throughput": (completed as f64 / seconds).round(),
        "errors": errors,
    });
    merge(&mut value, percentiles(&all));
    if let Some(e) = first_error {
        value["first_error"] = json!(e);
    }
    Ok(value)
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(a), serde_json::Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

/// Adds a histogram's percentiles to a result, each key with `prefix` (`latency_p99_us`, ...).
fn merge_percentiles(into: &mut serde_json::Value, prefix: &str, h: &Histogram<u64>) {
    let mut prefixed = serde_json::Map::new();
    if let serde_json::Value::Object(map) = percentiles(h) {
        for (k, v) in map {
            prefixed.insert(format!("{prefix}{k}"), v);
        }
    }
    merge(into, serde_json::Value::Object(prefixed));
}

/// The first error of a run, shared by its tasks; it goes into the result as `first_error`.
#[derive(Default)]
struct FirstError(Mutex<Option<String>>);

impl FirstError {
    fn note(&self, e: String) {
        let mut first = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(e);
        }
    }

    fn report(&self, value: &mut serde_json::Value) {
        if let Some(e) = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            value["first_error"] = json!(e);
        }
    }
}

async fn rpc_connection(
    mut client: Client,
    protocol: Protocol,
    inflight: usize,
    window: Arc<RpcWindow>,
) -> RpcOutcome {
    let mut outcome = RpcOutcome {
        completed: 0,
        errors: 0,
        first_error: None,
        histogram: histogram(),
    };
    let mut pending: HashMap<u64, u64, BuildHasherDefault<IdHasher>> =
        HashMap::with_capacity_and_hasher(inflight * 2, BuildHasherDefault::default());
    let mut next_id: u64 = 1;
    let fail = |outcome: &mut RpcOutcome, e: String| {
        outcome.errors += 1;
        if outcome.first_error.is_none() {
            outcome.first_error = Some(e);
        }
    };

    for _ in 0..inflight {
        pending.insert(next_id, now_ns());
        queue_request(&mut client.outgoing, protocol, next_id);
        next_id += 1;
    }
    loop {
        // Everything the last read answered goes out in one write.
        if let Err(e) = client.flush().await {
            fail(&mut outcome, e);
            return outcome;
        }
        // After the measured window, wait at most 5 s for the requests still out.
        let read = if now_ns() >= window.end_ns {
            if pending.is_empty() {
                break;
            }
            match tokio::time::timeout(Duration::from_secs(5), client.read()).await {
                Ok(read) => read,
                Err(_) => {
                    let n = pending.len();
                    fail(
                        &mut outcome,
                        format!("{n} responses missing 5 s after the run"),
                    );
                    outcome.errors += n as u64 - 1;
                    break;
                }
            }
        } else {
            client.read().await
        };
        if let Err(e) = read {
            fail(&mut outcome, e);
            break;
        }
        let now = now_ns();
        loop {
            let text = match client.incoming.next(&mut client.outgoing) {
                Ok(Some(text)) => text,
                Ok(None) => break,
                Err(e) => {
                    fail(&mut outcome, e);
                    return outcome;
                }
            };
            let (sent, ok) = match parse_reply(protocol, text) {
                Reply::Ping => {
                    client.outgoing.text(b"3");
                    continue;
                }
                Reply::Response { id, ok } => (pending.remove(&id), ok),
                Reply::Other => (None, false),
            };
            match sent {
                Some(sent) => {
                    if !ok {
                        fail(&mut outcome, format!("bad response: {}", truncate(text)));
                    } else if sent >= window.start_ns && now <= window.end_ns {
                        outcome.completed += 1;
                        let _ = outcome.histogram.record((now - sent).max(1));
                    }
                    if now < window.end_ns {
                        pending.insert(next_id, now);
                        queue_request(&mut client.outgoing, protocol, next_id);
                        next_id += 1;
                    }
                }
                None => fail(
                    &mut outcome,
                    format!("unexpected message: {}", truncate(text)),
                ),
            }
        }
    }
    client.close().await;
    outcome
}

fn truncate(text: &[u8]) -> String {
    String::from_utf8_lossy(text).chars().take(200).collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Fan-out: `subscribers` connections join room 'bench'; one publisher keeps `window` broadcasts in flight and
// publishes the next as soon as one has reached every subscriber (throughput phase), then sends one broadcast at a
// time (latency phase).

/// Slots for per-broadcast delivery counts, indexed by `seq % RING`.
const RING: usize = 4096;

struct FanoutShared {
    subscribers: u32,
    start_ns: AtomicU64,
    end_ns: AtomicU64,
    counts: Vec<AtomicU32>,
    done: mpsc::UnboundedSender<u64>,
    histogram: Mutex<Histogram<u64>>,
    deliveries: AtomicU64,
    errors: AtomicU64,
    first_error: FirstError,
    stop: AtomicBool,
}

impl FanoutShared {
    fn fail(&self, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.note(e);
    }
}

/// Joins room 'bench' and waits for the answer.
async fn subscribe(mut client: Client, protocol: Protocol) -> Result<Client, String> {
    let request = match protocol {
        Protocol::SocketIo => r#"421["subscribe","bench"]"#,
        _ => r#"{"type":"request","id":1,"method":"helios.subscribe","payload":{"topic":"bench"}}"#,
    };
    client.outgoing.text(request.as_bytes());
    loop {
        client
            .flush()
            .await
            .map_err(|e| format!("subscribe: {e}"))?;
        tokio::time::timeout(Duration::from_secs(10), client.read())
            .await
            .map_err(|_| "subscribe: no answer in 10 s".to_string())?
            .map_err(|e| format!("subscribe: {e}"))?;
        while let Some(text) = client
            .incoming
            .next(&mut client.outgoing)
            .map_err(|e| format!("subscribe: {e}"))?
        {
            let answer: Option<serde_json::Value> = match protocol {
                Protocol::SocketIo if text == b"2" => {
                    client.outgoing.text(b"3");
                    None
                }
                Protocol::SocketIo => match text.strip_prefix(b"431") {
                    Some(rest) => {
                        let value: serde_json::Value =
                            serde_json::from_slice(rest).map_err(|e| format!("subscribe: {e}"))?;
                        Some(value[0].clone())
                    }
                    None => None,
                },
                _ => {
                    let value: serde_json::Value =
                        serde_json::from_slice(text).map_err(|e| format!("subscribe: {e}"))?;
                    (value["type"] == "response" && value["id"] == 1).then(|| {
                        if value["status"] == 200 {
                            value["data"].clone()
                        } else {
                            serde_json::Value::Null
                        }
                    })
                }
            };
            match answer {
                Some(data) if data["success"] == true => return Ok(client),
                Some(_) => return Err(format!("subscribe refused: {}", truncate(text))),
                None => {}
            }
        }
    }
}

async fn fanout(args: &Args) -> Result<serde_json::Value, String> {
    let clients = open_clients(args, args.subscribers).await?;
    let subscribed: Vec<Result<Client, String>> = stream::iter(clients)
        .map(|client| subscribe(client, args.protocol))
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    let subscribed: Vec<Client> = subscribed.into_iter().collect::<Result<_, _>>()?;
    let publisher = Client::open(&args.url, args.protocol).await?;

    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(FanoutShared {
        subscribers: args.subscribers as u32,
        start_ns: AtomicU64::new(u64::MAX),
        end_ns: AtomicU64::new(u64::MAX),
        counts: (0..RING).map(|_| AtomicU32::new(0)).collect(),
        done: done_tx,
        histogram: Mutex::new(histogram()),
        deliveries: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: FirstError::default(),
        stop: AtomicBool::new(false),
    });
    let mut tasks = Vec::with_capacity(subscribed.len());
    for client in subscribed {
        tasks.push(tokio::spawn(subscriber(client, shared.clone())));
    }

    let mut publisher = Publisher {
        client: publisher,
        protocol: args.protocol,
        done: done_rx,
        next_seq: 0,
    };
    // Phase 1, throughput: `window` broadcasts in flight for warm-up + duration, measured after the warm-up.
    let loaded = publisher
        .phase(
            &shared,
            args.window,
            args.warmup,
            args.duration,
            args.messages,
        )
        .await?;
    // Phase 2, latency: one broadcast at a time, each published when the previous one reached every subscriber.
    let isolated = if args.latency_duration > 0.0 && loaded.stalled.is_none() {
        Some(
            publisher
                .phase(&shared, 1, 0.0, args.latency_duration, args.messages)
                .await?,
        )
    } else {
        None
    };

    shared.stop.store(true, Ordering::Relaxed);
    publisher.client.close().await;
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }

    let mut value = json!({
        "scenario": "fanout",
        "url": args.url,
        "subscribers": args.subscribers,
        "window": args.window,
        "duration_s": round2(loaded.seconds),
        "threads": args.threads,
        "published": loaded.published,
        "deliveries": loaded.deliveries,
        "throughput": if loaded.seconds > 0.0 { (loaded.deliveries as f64 / loaded.seconds).round() } else { 0.0 },
        "errors": shared.errors.load(Ordering::Relaxed),
    });
    // p50_us, p99_us...: delivery latency under load (phase 1); latency_*: one broadcast at a time (phase 2).
    merge(&mut value, percentiles(&loaded.histogram));
    if let Some(isolated) = isolated {
        value["latency_broadcasts"] = json!(isolated.published);
        merge_percentiles(&mut value, "latency_", &isolated.histogram);
    }
    shared.first_error.report(&mut value);
    Ok(value)
}

struct Publisher {
    client: Client,
    protocol: Protocol,
    done: mpsc::UnboundedReceiver<u64>,
    next_seq: u64,
}

struct PhaseResult {
    published: u64,
    deliveries: u64,
    seconds: f64,
    histogram: Histogram<u64>,
    stalled: Option<String>,
}

impl Publisher {
    /// Queues the next broadcast, stamped with the time.
    fn queue(&mut self, shared: &FanoutShared) {
        let seq = self.next_seq;
        self.next_seq += 1;
        shared.counts[(seq as usize) % RING].store(0, Ordering::Relaxed);
        let t = now_ns();
        let protocol = self.protocol;
        self.client.outgoing.text_with(|text| {
            text.extend_from_slice(match protocol {
                Protocol::SocketIo => br#"42["bench:publish",{"t":"#.as_slice(),
                _ => br#"{"type":"event","topic":"bench:publish","data":{"t":"#,
            });
            push_u64(text, t);
            text.extend_from_slice(br#","seq":"#);
            push_u64(text, seq);
            text.extend_from_slice(match protocol {
                Protocol::SocketIo => b"}]".as_slice(),
                _ => b"}}",
            });
        });
    }

    /// Keeps `window` broadcasts in flight for `warmup + duration` seconds (or until `max` were published),
    /// then waits for the last ones. Deliveries of broadcasts sent in the measured part are counted and timed.
    async fn phase(
        &mut self,
        shared: &FanoutShared,
        window: usize,
        warmup: f64,
        duration: f64,
        max: u64,
    ) -> Result<PhaseResult, String> {
        let begin = now_ns();
        let start_ns = begin + (warmup * 1e9) as u64;
        let end_ns = start_ns + (duration * 1e9) as u64;
        shared.start_ns.store(start_ns, Ordering::Relaxed);
        shared.end_ns.store(end_ns, Ordering::Relaxed);

        let mut published: u64 = 0;
        let mut completed: u64 = 0;
        for _ in 0..(window as u64).min(max) {
            self.queue(shared);
            published += 1;
        }
        self.client
            .flush()
            .await
            .map_err(|e| format!("publish: {e}"))?;
        let mut stalled = None;
        while completed < published {
            match tokio::time::timeout(Duration::from_secs(5), self.done.recv()).await {
                Ok(Some(_seq)) => {}
                Ok(None) => break,
                Err(_) => {
                    let e = format!(
                        "stalled: {completed} of {published} broadcasts reached every subscriber, then none for 5 s"
                    );
                    shared.fail(e.clone());
                    stalled = Some(e);
                    break;
                }
            }
            completed += 1;
            if published < max && now_ns() < end_ns {
                self.queue(shared);
                self.client
                    .flush()
                    .await
                    .map_err(|e| format!("publish: {e}"))?;
                published += 1;
            }
        }
        let finished = now_ns();
        // Deliveries are counted while received in [start_ns, end_ns] (see `subscriber`); `max` may end it early.
        let measured_end = finished.min(end_ns);
        shared.end_ns.store(0, Ordering::Relaxed);
        let seconds = measured_end.saturating_sub(start_ns) as f64 / 1e9;
        let deliveries = shared.deliveries.swap(0, Ordering::Relaxed);
        let histogram = std::mem::replace(
            &mut *shared.histogram.lock().unwrap_or_else(|p| p.into_inner()),
            histogram(),
        );
        Ok(PhaseResult {
            published,
            deliveries,
            seconds,
            histogram,
            stalled,
        })
    }
}

async fn subscriber(mut client: Client, shared: Arc<FanoutShared>) {
    // Per read: the latencies to record and the broadcasts this delivery completed, shared once for the batch.
    let mut latencies = Vec::new();
    let mut completed = Vec::new();
    loop {
        let outcome = client.read().await;
        let now = now_ns();
        let (start_ns, end_ns) = (
            shared.start_ns.load(Ordering::Relaxed),
            shared.end_ns.load(Ordering::Relaxed),
        );
        let mut failed = outcome.err();
        while failed.is_none() {
            let text = match client.incoming.next(&mut client.outgoing) {
                Ok(Some(text)) => text,
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            if text == b"2" {
                // A Socket.IO ping.
                client.outgoing.text(b"3");
                continue;
            }
            let (Some(t), Some(seq)) = (field_u64(text, br#""t":"#), field_u64(text, br#""seq":"#))
            else {
                shared.fail(format!("unexpected message: {}", truncate(text)));
                continue;
            };
            if t >= start_ns && now <= end_ns {
                latencies.push(now.saturating_sub(t).max(1));
            }
            let slot = &shared.counts[(seq as usize) % RING];
            if slot.fetch_add(1, Ordering::AcqRel) + 1 == shared.subscribers {
                completed.push(seq);
            }
        }
        if !latencies.is_empty() {
            shared
                .deliveries
                .fetch_add(latencies.len() as u64, Ordering::Relaxed);
            let mut histogram = shared.histogram.lock().unwrap_or_else(|p| p.into_inner());
            for latency in latencies.drain(..) {
                let _ = histogram.record(latency);
            }
        }
        // Counted before the publisher hears that the broadcast is complete, so its phase sees them.
        for seq in completed.drain(..) {
            let _ = shared.done.send(seq);
        }
        if failed.is_none() {
            failed = client.flush().await.err();
        }
        if let Some(e) = failed {
            if !shared.stop.load(Ordering::Relaxed) {
                shared.fail(format!("subscriber: {e}"));
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_of_ws_and_wss_urls() {
        assert_eq!(
            host_port("ws://127.0.0.1:9000/").as_deref(),
            Ok("127.0.0.1:9000")
        );
        assert_eq!(
            host_port("wss://localhost/path").as_deref(),
            Ok("localhost:443")
        );
        assert_eq!(host_port("ws://example?x=1").as_deref(), Ok("example:80"));
        assert!(host_port("http://example/").is_err());
    }
}
