//! Session recovery: many clients drop their sockets at once while a room keeps receiving broadcasts, then all
//! resume at once; every client's messages are checked by sequence number for loss and duplication.
//!
//! Helios (PROTOCOL.md "Sessions"):
//! Each client follows the protocol as the Starling client does: it counts every message that is not of type
//! `session` (the count is its `last_seq`), acknowledges every 50 messages with `{"type":"ack","seq":N}`, keeps
//! the latest token from `created` / `recovered`, and resumes by opening
//! `ws://host:port/?session_token=<token>&last_seq=<count>`: the server replays what the client had not
//! processed, then sends `recovered`.
//!
//! Socket.IO 4 with `connectionStateRecovery`: the namespace connect is answered by `40{"sid","pid"}`; every
//! room broadcast carries an offset as its last argument (`42["bench",{...},"<offset>"]`); the client resumes
//! by connecting with `40{"pid":"<pid>","offset":"<last offset processed>"}`. The server sends the missed
//! packets, then `40{...}` with the same `pid` (recovered) or a new one (not recovered).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{stream, SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    connect_from, field_u64, histogram, merge_percentiles, now_ns, truncate, Args, FirstError,
    Protocol, Ws,
};

/// Acknowledge processed messages this often (the Starling client's ACK_EVERY).
const ACK_EVERY: u64 = 50;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Phase {
    Run,
    Drop,
    Resume,
    Stop,
}

struct Shared {
    phase: watch::Receiver<Phase>,
    /// The last sequence number published, valid once the phase is `Stop`.
    last_seq: AtomicU64,
    dropped: AtomicUsize,
    resumed: AtomicUsize,
    /// When the reconnect began (now_ns).
    resume_start: AtomicU64,
    errors: AtomicU64,
    first_error: FirstError,
}

impl Shared {
    fn fail(&self, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.note(e);
    }
}

/// One client's session and what it has received.
struct Client {
    ws: Option<Ws>,
    protocol: Protocol,
    /// Helios: the resume token. Socket.IO: the session's `pid`.
    token: String,
    /// Socket.IO: the offset of the last broadcast processed.
    offset: String,
    /// Socket.IO: the namespace connect is done (`40` received).
    connected: bool,
    /// Counted messages processed so far in this session: the `last_seq` of a resume.
    count: u64,
    acked: u64,
    /// How many times each broadcast sequence number arrived.
    seen: Vec<u32>,
    /// Sequence numbers that arrived below one already seen.
    out_of_order: u64,
    highest: Option<u64>,
    /// Time from the start of the reconnect to `recovered` (ns), and what it said.
    resumed_after_ns: Option<u64>,
    replayed: u64,
    gap: bool,
    recovery_failed: Option<String>,
    /// The `seq` of `recovered` when it differed from the client's own count.
    count_mismatch: Option<u64>,
}

/// What a message from the server meant to the client.
enum Seen {
    Broadcast,
    Other,
    Recovered,
    Failed,
    /// The answer to the subscribe request; true when it succeeded.
    Subscribed(bool),
}

impl Client {
    /// Handles one text message: session control, or a counted message (a broadcast is recorded by seq).
    async fn handle(&mut self, text: &str) -> Result<Seen, String> {
        if self.protocol == Protocol::SocketIo {
            return self.handle_socketio(text).await;
        }
        if text.contains(r#""type":"session""#) {
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| format!("session message: {e}"))?;
            if let Some(token) = value["token"].as_str() {
                self.token = token.to_string();
            }
            return Ok(match value["event"].as_str() {
                Some("recovered") => {
                    self.replayed = value["replayed"].as_u64().unwrap_or(0);
                    self.gap = value["gap"] == true;
                    // The server's count corrects ours only if ours were lost (PROTOCOL.md): here it must agree.
                    self.count_mismatch = value["seq"].as_u64().filter(|seq| *seq != self.count);
                    Seen::Recovered
                }
                Some("recovery-failed") => {
                    self.recovery_failed =
                        Some(value["reason"].as_str().unwrap_or("?").to_string());
                    Seen::Failed
                }
                _ => Seen::Other,
            });
        }
        self.count += 1;
        let seen = if text.contains(r#""type":"event""#) && text.contains(r#""topic":"bench""#) {
            self.record(text)?;
            Seen::Broadcast
        } else if text.contains(r#""type":"response""#) && text.contains(r#""id":1,"#) {
            Seen::Subscribed(text.contains(r#""success":true"#))
        } else {
            Seen::Other
        };
        if self.count - self.acked >= ACK_EVERY {
            self.acked = self.count;
            if let Some(ws) = self.ws.as_mut() {
                let ack = format!(r#"{{"type":"ack","seq":{}}}"#, self.count);
                ws.send(Message::text(ack))
                    .await
                    .map_err(|e| format!("ack: {e}"))?;
            }
        }
        Ok(seen)
    }

    /// Records a broadcast's sequence number.
    fn record(&mut self, text: &str) -> Result<(), String> {
        let seq = field_u64(text.as_bytes(), br#""seq":"#)
            .ok_or_else(|| format!("broadcast without seq: {}", truncate(text.as_bytes())))?;
        if self.highest.is_some_and(|h| seq < h) {
            self.out_of_order += 1;
        }
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        let i = seq as usize;
        if self.seen.len() <= i {
            self.seen.resize(i + 1, 0);
        }
        self.seen[i] += 1;
        Ok(())
    }

    async fn send(&mut self, text: String) -> Result<(), String> {
        match self.ws.as_mut() {
            Some(ws) => ws
                .send(Message::text(text))
                .await
                .map_err(|e| format!("write: {e}")),
            None => Ok(()),
        }
    }

    /// Socket.IO: Engine.IO open (`0`) and ping (`2`), namespace connect (`40`), events (`42`), acks (`43`).
    async fn handle_socketio(&mut self, text: &str) -> Result<Seen, String> {
        if text == "2" {
            self.send("3".into()).await?;
            return Ok(Seen::Other);
        }
        if text.starts_with('0') {
            // Engine.IO is open: connect to the namespace, resuming when we have a session and an offset.
            let connect = if self.token.is_empty() || self.offset.is_empty() {
                "40".to_string()
            } else {
                format!("40{}", json!({ "pid": self.token, "offset": self.offset }))
            };
            self.send(connect).await?;
            return Ok(Seen::Other);
        }
        if let Some(body) = text.strip_prefix("40") {
            let value: serde_json::Value =
                serde_json::from_str(body).map_err(|e| format!("socket.io connect: {e}"))?;
            let pid = value["pid"]
                .as_str()
                .ok_or("socket.io connect without pid: is connectionStateRecovery on?")?
                .to_string();
            let first = !self.connected && self.token.is_empty();
            let same = pid == self.token;
            self.connected = true;
            self.token = pid;
            return Ok(if first {
                Seen::Other
            } else if same {
                Seen::Recovered
            } else {
                self.recovery_failed = Some("new session".into());
                Seen::Failed
            });
        }
        if text.starts_with("44") {
            return Err(format!(
                "socket.io connect refused: {}",
                truncate(text.as_bytes())
            ));
        }
        if let Some(body) = text.strip_prefix("42") {
            let value: serde_json::Value =
                serde_json::from_str(body).map_err(|e| format!("socket.io event: {e}"))?;
            if value[0] == "bench" {
                self.record(&value[1].to_string())?;
                // Before the namespace connect's answer, a broadcast is a missed packet being replayed.
                if !self.connected {
                    self.replayed += 1;
                }
                if let Some(offset) = value[2].as_str() {
                    self.offset = offset.to_string();
                }
                return Ok(Seen::Broadcast);
            }
            return Ok(Seen::Other);
        }
        if let Some(body) = text.strip_prefix("431") {
            return Ok(Seen::Subscribed(body.contains(r#""success":true"#)));
        }
        Ok(Seen::Other)
    }

    /// Reads one message (None: the socket ended).
    async fn read(&mut self) -> Option<Result<Seen, String>> {
        let ws = self.ws.as_mut()?;
        match ws.next().await? {
            Ok(Message::Text(text)) => Some(self.handle(&text).await),
            Ok(Message::Close(frame)) => Some(Err(format!("server closed: {frame:?}"))),
            Ok(_) => Some(Ok(Seen::Other)),
            Err(e) => Some(Err(format!("read: {e}"))),
        }
    }
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(8 * 1024)
}

/// Opens the client's WebSocket; for Socket.IO the raw Engine.IO socket, whose handshake `Client` does itself
/// (a resume's missed packets come before the namespace connect's answer).
async fn open(url: &str, protocol: Protocol) -> Result<Ws, String> {
    match protocol {
        Protocol::SocketIo => {
            let (base, query) = match url.split_once('?') {
                Some((base, query)) => (base, format!("&{query}")),
                None => (url, String::new()),
            };
            let url = format!(
                "{}/socket.io/?EIO=4&transport=websocket{query}",
                base.trim_end_matches('/')
            );
            connect_from(&url, Protocol::Plain, None, config()).await
        }
        _ => connect_from(url, protocol, None, config()).await,
    }
}

/// Connects, waits for the session (Helios: `created`; Socket.IO: `40` with a `pid`), and joins room 'bench'.
async fn join(url: String, protocol: Protocol) -> Result<Client, String> {
    let ws = open(&url, protocol).await?;
    let mut client = Client {
        ws: Some(ws),
        protocol,
        token: String::new(),
        offset: String::new(),
        connected: false,
        count: 0,
        acked: 0,
        seen: Vec::new(),
        out_of_order: 0,
        highest: None,
        resumed_after_ns: None,
        replayed: 0,
        gap: false,
        recovery_failed: None,
        count_mismatch: None,
    };
    let subscribe = match protocol {
        Protocol::SocketIo => r#"421["subscribe","bench"]"#,
        _ => r#"{"type":"request","id":1,"method":"helios.subscribe","payload":{"topic":"bench"}}"#,
    };
    let mut sent = false;
    loop {
        if !sent && (protocol != Protocol::SocketIo || client.connected) {
            client.send(subscribe.to_string()).await?;
            sent = true;
        }
        let ws = client.ws.as_mut().ok_or("no socket")?;
        let item = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .map_err(|_| "join: no answer in 10 s".to_string())?;
        let text = match item {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("join: {e}")),
            None => return Err("join: connection closed".into()),
        };
        if let Seen::Subscribed(ok) = client.handle(&text).await? {
            if !ok {
                return Err(format!("subscribe refused: {}", truncate(text.as_bytes())));
            }
            if client.token.is_empty() {
                return Err("no session: is the server started with session recovery?".into());
            }
            return Ok(client);
        }
    }
}

/// One client through the scenario: read until told to drop, drop the socket abruptly, resume when told,
/// read until told to stop and until it has the last broadcast.
async fn client_task(mut client: Client, url: String, shared: Arc<Shared>) -> Client {
    let mut phase = shared.phase.clone();
    // Before the drop: read.
    loop {
        tokio::select! {
            item = client.read() => match item {
                Some(Ok(_)) => {}
                Some(Err(e)) => { shared.fail(e); break; }
                None => { shared.fail("socket ended before the drop".into()); break; }
            },
            _ = phase.wait_for(|p| *p >= Phase::Drop) => break,
        }
    }
    // The drop: a reset, no close frame, so the server keeps the session (PROTOCOL.md, Resuming).
    if let Some(ws) = client.ws.take() {
        let _ = ws.get_ref().tcp().set_zero_linger();
        drop(ws);
    }
    shared.dropped.fetch_add(1, Ordering::Relaxed);
    let _ = phase.wait_for(|p| *p >= Phase::Resume).await;
    let start = shared.resume_start.load(Ordering::Relaxed);
    let resume_url = match client.protocol {
        // Socket.IO resumes in its namespace connect packet (see `handle_socketio`).
        Protocol::SocketIo => url.clone(),
        _ => format!(
            "{}?session_token={}&last_seq={}",
            url,
            client.token, // a JWT: base64url and dots, nothing to escape
            client.count
        ),
    };
    client.connected = false;
    match open(&resume_url, client.protocol).await {
        Ok(ws) => client.ws = Some(ws),
        Err(e) => {
            shared.fail(format!("resume: {e}"));
            return client;
        }
    }
    // Replayed messages, then `recovered`; then the session goes on until the stop and the last broadcast.
    let mut stopping = false;
    loop {
        if stopping {
            let last = shared.last_seq.load(Ordering::Relaxed);
            if client.highest.is_some_and(|h| h >= last) {
                break;
            }
        }
        tokio::select! {
            item = client.read() => match item {
                Some(Ok(Seen::Recovered)) => {
                    if let Some(seq) = client.count_mismatch {
                        shared.fail(format!("recovered says seq {seq}, the client counted {}", client.count));
                    }
                    client.resumed_after_ns = Some(now_ns().saturating_sub(start));
                    shared.resumed.fetch_add(1, Ordering::Relaxed);
                }
                Some(Ok(Seen::Failed)) => {
                    shared.fail(format!(
                        "recovery failed: {}",
                        client.recovery_failed.as_deref().unwrap_or("?")
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => { shared.fail(e); break; }
                None => { shared.fail("socket ended after the resume".into()); break; }
            },
            _ = phase.wait_for(|p| *p >= Phase::Stop), if !stopping => stopping = true,
            _ = tokio::time::sleep(Duration::from_secs(5)), if stopping => break,
        }
    }
    if let Some(mut ws) = client.ws.take() {
        let _ = ws.close(None).await;
    }
    client
}

pub async fn run(args: &Args) -> Result<serde_json::Value, String> {
    if args.protocol == Protocol::Plain {
        return Err("the resume scenario needs sessions: --protocol helios or socketio".into());
    }
    let url = args.url.split('?').next().unwrap_or(&args.url).to_string();
    let (phase_tx, phase_rx) = watch::channel(Phase::Run);
    let shared = Arc::new(Shared {
        phase: phase_rx,
        last_seq: AtomicU64::new(0),
        dropped: AtomicUsize::new(0),
        resumed: AtomicUsize::new(0),
        resume_start: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: FirstError::default(),
    });

    let begin = now_ns();
    let elapsed = move || (now_ns() - begin) as f64 / 1e9;
    let joined: Vec<Result<Client, String>> = stream::iter(0..args.clients)
        .map(|_| join(url.clone(), args.protocol))
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    let joined: Vec<Client> = joined.into_iter().collect::<Result<_, _>>()?;
    eprintln!(
        "progress {} clients joined room 'bench' with sessions, {:.1} s",
        joined.len(),
        elapsed()
    );
    let tasks: Vec<_> = joined
        .into_iter()
        .map(|c| tokio::spawn(client_task(c, url.clone(), shared.clone())))
        .collect();

    // The publisher: one more connection, never dropped; numbered broadcasts at a steady pace.
    let mut publisher = connect_from(&url, args.protocol, None, config()).await?;
    let protocol = args.protocol;
    let (stop_tx, mut stop_rx) = watch::channel(());
    let interval = Duration::from_millis(args.interval_ms);
    let publishing = tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let t = now_ns();
                    let event = match protocol {
                        Protocol::SocketIo => format!(r#"42["bench:publish",{{"t":{t},"seq":{seq}}}]"#),
                        _ => format!(
                            r#"{{"type":"event","topic":"bench:publish","data":{{"t":{t},"seq":{seq}}}}}"#
                        ),
                    };
                    if let Err(e) = publisher.send(Message::text(event)).await {
                        return Err(format!("publish: {e}"));
                    }
                    seq += 1;
                }
                // Reading answers the server's pings; the publisher gets nothing else but its session message.
                item = publisher.next() => match item {
                    Some(Err(e)) => return Err(format!("publisher read: {e}")),
                    Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                        if let Err(e) = publisher.send(Message::text("3")).await {
                            return Err(format!("publisher write: {e}"));
                        }
                    }
                    _ => {}
                },
                _ = stop_rx.changed() => break,
            }
        }
        let _ = publisher.close(None).await;
        Ok(seq.saturating_sub(1))
    });

    tokio::time::sleep(Duration::from_secs_f64(args.before)).await;
    eprintln!(
        "progress dropping {} sockets at once, {:.1} s",
        tasks.len(),
        elapsed()
    );
    let _ = phase_tx.send(Phase::Drop);
    wait_until(&shared.dropped, tasks.len(), 10.0, "dropped", elapsed).await;
    tokio::time::sleep(Duration::from_secs_f64(args.away)).await;

    eprintln!(
        "progress resuming {} sessions at once, {:.1} s",
        tasks.len(),
        elapsed()
    );
    shared.resume_start.store(now_ns(), Ordering::Relaxed);
    let _ = phase_tx.send(Phase::Resume);
    let all = wait_until(&shared.resumed, tasks.len(), 60.0, "resumed", elapsed).await;
    let wall_resume = (now_ns() - shared.resume_start.load(Ordering::Relaxed)) as f64 / 1e9;
    tokio::time::sleep(Duration::from_secs_f64(args.after)).await;

    let _ = stop_tx.send(());
    let last = publishing
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("publisher: {e}"))?;
    shared.last_seq.store(last, Ordering::Relaxed);
    let _ = phase_tx.send(Phase::Stop);
    eprintln!(
        "progress publisher stopped after broadcast {last}; checking every client, {:.1} s",
        elapsed()
    );

    let mut lost = 0u64;
    let mut duplicated = 0u64;
    let mut out_of_order = 0u64;
    let mut clients_with_loss = 0u64;
    let mut clients_with_duplicates = 0u64;
    let mut gaps = 0u64;
    let mut failed = 0u64;
    let mut replayed = 0u64;
    let mut resumed_after = histogram();
    let mut slowest = 0u64;
    for task in tasks {
        let client = task.await.map_err(|e| e.to_string())?;
        let mut client_lost = 0;
        let mut client_dup = 0;
        for seq in 0..=last as usize {
            match client.seen.get(seq).copied().unwrap_or(0) {
                0 => client_lost += 1,
                1 => {}
                n => client_dup += u64::from(n) - 1,
            }
        }
        lost += client_lost;
        duplicated += client_dup;
        clients_with_loss += u64::from(client_lost > 0);
        clients_with_duplicates += u64::from(client_dup > 0);
        out_of_order += client.out_of_order;
        gaps += u64::from(client.gap);
        failed += u64::from(client.recovery_failed.is_some());
        replayed += client.replayed;
        if let Some(ns) = client.resumed_after_ns {
            let _ = resumed_after.record(ns.max(1));
            slowest = slowest.max(ns);
        }
    }
    let resumed = shared.resumed.load(Ordering::Relaxed);
    let resume_s = if all {
        slowest as f64 / 1e9
    } else {
        wall_resume
    };
    let mut value = json!({
        "scenario": "resume",
        "url": args.url,
        "clients": args.clients,
        "interval_ms": args.interval_ms,
        "away_s": args.away,
        "broadcasts": last + 1,
        "resumed": resumed,
        "all_resumed": all,
        // From the start of the reconnect to the last client's `recovered` (its replay done).
        "resume_s": (resume_s * 1e4).round() / 1e4,
        "lost": lost,
        "duplicated": duplicated,
        "out_of_order": out_of_order,
        "clients_with_loss": clients_with_loss,
        "clients_with_duplicates": clients_with_duplicates,
        "gaps": gaps,
        "recovery_failed": failed,
        "replayed": replayed,
        "errors": shared.errors.load(Ordering::Relaxed),
    });
    merge_percentiles(&mut value, "resume_", &resumed_after);
    shared.first_error.report(&mut value);
    Ok(value)
}

/// Waits until `counter` reaches `target` (true) or `timeout` seconds pass (false), with a progress line
/// every 2 s.
async fn wait_until(
    counter: &AtomicUsize,
    target: usize,
    timeout: f64,
    what: &str,
    elapsed: impl Fn() -> f64,
) -> bool {
    let start = now_ns();
    let mut next_report = start + 2_000_000_000;
    loop {
        let n = counter.load(Ordering::Relaxed);
        if n >= target {
            return true;
        }
        let now = now_ns();
        if (now - start) as f64 / 1e9 > timeout {
            eprintln!("progress only {n} of {target} {what} after {timeout} s; going on");
            return false;
        }
        if now >= next_report {
            eprintln!("progress {n} of {target} {what}, {:.1} s", elapsed());
            next_report += 2_000_000_000;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
