//! The node's link to Redis: one connection that sends commands in the order they were queued (so
//! Redis keeps this node's publish order), one that listens to the node's channels, and the reconnect
//! loop of each, with capped exponential backoff. Redis being away never blocks a caller: commands wait
//! in a bounded queue, and what does not fit is refused and counted.
//!
//! A connection can also go silent without ever failing (a half-open TCP connection: Redis's host
//! vanished, or a middlebox dropped the flow). Neither side then notices by itself, so each is watched:
//! every command has a reply timeout, an idle command connection is pinged, and the subscription
//! connection is pinged once it has been quiet for a while and counted lost when it stays silent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, OptionFuture};
use futures_util::{FutureExt, StreamExt};
use redis::aio::{MultiplexedConnection, PubSub, PubSubSink};
use redis::{AsyncConnectionConfig, Client, Cmd, Msg, RedisResult, Value};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Instant;

use crate::sync::Locked;

/// Most commands sent in one pipeline.
const MAX_PIPELINE: usize = 512;
/// The first wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between two reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a connection attempt or a reply may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping node keeps sending what is still queued.
const FLUSH_ON_STOP: Duration = Duration::from_secs(1);

/// The state of the link, as `stats()` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not connected yet.
    Connecting,
    /// Both connections are up.
    Connected,
    /// A connection was lost; reconnecting with backoff.
    Disconnected,
}

impl LinkState {
    /// The name `stats()` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::Disconnected => "disconnected",
        }
    }
}

/// A command waiting for Redis, with where its reply goes (if anyone wants it).
pub(crate) struct Job {
    pub(crate) cmd: Cmd,
    pub(crate) reply: Option<oneshot::Sender<RedisResult<Value>>>,
}

/// Counters of the link.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Commands Redis carried out.
    pub(crate) sent: AtomicU64,
    /// Messages received from other nodes.
    pub(crate) received: AtomicU64,
    /// Commands refused (queue full) or lost (the connection failed under them).
    pub(crate) dropped: AtomicU64,
    /// Times a lost connection came back.
    pub(crate) reconnects: AtomicU64,
}

/// The shared half of the link: the queue's sending end, the state and the counters.
#[derive(Debug)]
pub(crate) struct Link {
    client: Client,
    queue: mpsc::Sender<Job>,
    /// The command connection while it is up, for commands that need their reply at once.
    commands: Mutex<Option<MultiplexedConnection>>,
    publisher_up: AtomicBool,
    subscriber_up: AtomicBool,
    state: Mutex<LinkState>,
    /// Wakes the sending loop to check its connection: the listening one was just lost, so Redis may be.
    check: Notify,
    /// Told each time both connections are up again (see [`Link::came_up`]).
    up: Notify,
    pub(crate) counters: Counters,
}

impl Link {
    /// A link to the Redis at `url` (not connected yet) and the receiving end of its queue.
    pub(crate) fn new(
        url: &str,
        queue_limit: usize,
    ) -> RedisResult<(Arc<Link>, mpsc::Receiver<Job>)> {
        let client = Client::open(url)?;
        let (queue, jobs) = mpsc::channel(queue_limit.max(1));
        let link = Arc::new(Link {
            client,
            queue,
            commands: Mutex::new(None),
            publisher_up: AtomicBool::new(false),
            subscriber_up: AtomicBool::new(false),
            state: Mutex::new(LinkState::Connecting),
            check: Notify::new(),
            up: Notify::new(),
            counters: Counters::default(),
        });
        Ok((link, jobs))
    }

    /// Queues a command; false (and counted) when the queue is full.
    pub(crate) fn send(&self, cmd: Cmd) -> bool {
        self.enqueue(Job { cmd, reply: None })
    }

    /// Queues a command whose reply the caller awaits; `None` when the queue is full.
    pub(crate) fn ask(&self, cmd: Cmd) -> Option<oneshot::Receiver<RedisResult<Value>>> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Job {
            cmd,
            reply: Some(reply),
        })
        .then_some(answer)
    }

    fn enqueue(&self, job: Job) -> bool {
        if self.queue.try_send(job).is_ok() {
            return true;
        }
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Commands waiting for Redis.
    pub(crate) fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// The command connection, when it is up: for queries outside the ordered queue.
    pub(crate) fn commands(&self) -> Option<MultiplexedConnection> {
        self.lock_commands().clone()
    }

    fn lock_commands(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.commands.locked()
    }

    /// The current state.
    pub(crate) fn state(&self) -> LinkState {
        *self.state.locked()
    }

    /// Resolves once both connections are up, since the last time it resolved (at once if they came up
    /// meanwhile): the heartbeat then beats without waiting for its next tick.
    pub(crate) async fn came_up(&self) {
        self.up.notified().await;
    }

    /// Records that one side went up or down, and logs the link's state once per change.
    fn mark(&self, side: &AtomicBool, up: bool, why: &str) {
        side.store(up, Ordering::Release);
        let both =
            self.publisher_up.load(Ordering::Acquire) && self.subscriber_up.load(Ordering::Acquire);
        let mut state = self.state.locked();
        let next = match (*state, both) {
            (_, true) => LinkState::Connected,
            (LinkState::Connecting, false) => LinkState::Connecting,
            (_, false) => LinkState::Disconnected,
        };
        if next == *state {
            return;
        }
        match next {
            LinkState::Connected if *state == LinkState::Disconnected => {
                self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("cluster: Redis is reachable again; cross-node traffic resumes");
            }
            LinkState::Connected => tracing::info!("cluster: connected to Redis"),
            _ => {
                tracing::warn!(%why, "cluster: lost Redis; serving local clients only, retrying with backoff");
            }
        }
        *state = next;
        if next == LinkState::Connected {
            self.up.notify_one();
        }
    }
}

/// Capped exponential backoff.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(MIN_BACKOFF)
    }

    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
        wait
    }

    fn reset(&mut self) {
        self.0 = MIN_BACKOFF;
    }
}

/// Resolves once `stop` turns true or its sender is gone.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here, not across the caller's awaits.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Waits `wait`; false when `stop` turned true meanwhile.
async fn pause(wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = stopped(stop) => false,
    }
}

/// Whether an error means the connection is gone (rather than one command failing).
fn connection_lost(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_timeout()
        || error.is_unrecoverable_error()
}

/// Sends queued commands in order, in pipelines, reconnecting when the connection fails (a reply is
/// awaited [`RESPONSE_TIMEOUT`] at most). An idle connection is pinged every `idle_ping`, and when the
/// subscription was just lost, so a lost Redis is noticed before the next message needs it; a ping
/// unanswered for `answer_within` counts the connection lost. Ends when `stop` turns true, after sending
/// what is queued for at most a second.
pub(crate) async fn send_loop(
    link: Arc<Link>,
    jobs: &mut mpsc::Receiver<Job>,
    idle_ping: Duration,
    answer_within: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut backoff = Backoff::new();
    let mut batch = Vec::with_capacity(MAX_PIPELINE);
    loop {
        if *stop.borrow() {
            return;
        }
        let mut conn = match link
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(conn) => conn,
            Err(error) => {
                link.mark(&link.publisher_up, false, &error.to_string());
                if !pause(backoff.next(), &mut stop).await {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        *link.lock_commands() = Some(conn.clone());
        link.mark(&link.publisher_up, true, "");
        loop {
            let sent = tokio::select! {
                received = jobs.recv_many(&mut batch, MAX_PIPELINE) => {
                    if received == 0 {
                        return;
                    }
                    run(&mut conn, &mut batch, &link).await.map_err(|error| error.to_string())
                }
                _ = tokio::time::sleep(idle_ping) => ping_commands(&mut conn, &link, answer_within).await,
                _ = link.check.notified() => ping_commands(&mut conn, &link, answer_within).await,
                _ = stopped(&mut stop) => {
                    flush(&mut conn, jobs, &link).await;
                    return;
                }
            };
            if let Err(why) = sent {
                *link.lock_commands() = None;
                link.mark(&link.publisher_up, false, &why);
                break;
            }
        }
    }
}

/// Pings the command connection; an error when the connection failed or Redis did not answer within
/// `answer_within` (the connection is half-open, or Redis is stuck).
async fn ping_commands(
    conn: &mut MultiplexedConnection,
    link: &Link,
    answer_within: Duration,
) -> Result<(), String> {
    let ping = redis::cmd("PING");
    match tokio::time::timeout(answer_within, ping.query_async::<Value>(conn)).await {
        Ok(Ok(_)) => {
            link.counters.sent.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Ok(Err(error)) if connection_lost(&error) => Err(error.to_string()),
        // Even an error reply is Redis answering.
        Ok(Err(_)) => Ok(()),
        Err(_) => Err("no answer to a ping".to_owned()),
    }
}

/// Sends what is queued at stop, for a bounded time.
async fn flush(conn: &mut MultiplexedConnection, jobs: &mut mpsc::Receiver<Job>, link: &Link) {
    let drain = async {
        let mut batch = Vec::with_capacity(MAX_PIPELINE);
        while let Ok(job) = jobs.try_recv() {
            batch.push(job);
            if batch.len() == MAX_PIPELINE && run(conn, &mut batch, link).await.is_err() {
                return;
            }
        }
        let _ = run(conn, &mut batch, link).await;
    };
    let _ = tokio::time::timeout(FLUSH_ON_STOP, drain).await;
}

/// Sends one batch as a pipeline and hands out the replies; an error only when the connection failed.
async fn run(
    conn: &mut MultiplexedConnection,
    batch: &mut Vec<Job>,
    link: &Link,
) -> RedisResult<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let mut replies = Vec::with_capacity(batch.len());
    for job in batch.drain(..) {
        pipe.add_command(job.cmd);
        replies.push(job.reply);
    }
    match pipe.query_async::<Vec<RedisResult<Value>>>(conn).await {
        Ok(values) => {
            link.counters
                .sent
                .fetch_add(values.len() as u64, Ordering::Relaxed);
            for (value, reply) in values.into_iter().zip(replies) {
                if let Err(error) = &value {
                    tracing::warn!(%error, "cluster: a Redis command failed");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(value);
                }
            }
            Ok(())
        }
        Err(error) if connection_lost(&error) => {
            // Some of these may have reached Redis: resending could deliver them twice, so they are lost.
            link.counters
                .dropped
                .fetch_add(replies.len() as u64, Ordering::Relaxed);
            Err(error)
        }
        Err(error) => {
            tracing::warn!(%error, "cluster: a Redis pipeline failed");
            link.counters
                .dropped
                .fetch_add(replies.len() as u64, Ordering::Relaxed);
            Ok(())
        }
    }
}

/// Listens to `channels`, handing the messages' texts to `on_messages` in the order Redis delivers them
/// (those that arrived together in one call), and resubscribes after a lost connection. A connection silent
/// for `quiet` is pinged, and one silent for twice `quiet` is taken for lost (see [`listen`]). Ends when
/// `stop` turns true.
pub(crate) async fn listen_loop(
    link: Arc<Link>,
    channels: Vec<String>,
    on_messages: impl Fn(&[&str]) + Send + 'static,
    quiet: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let subscribed = async {
            let mut pubsub = link.client.get_async_pubsub().await?;
            pubsub.subscribe(&channels).await?;
            RedisResult::Ok(pubsub)
        };
        let pubsub = match tokio::time::timeout(CONNECT_TIMEOUT, subscribed).await {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(error)) => {
                link.mark(&link.subscriber_up, false, &error.to_string());
                if !pause(backoff.next(), &mut stop).await {
                    return;
                }
                continue;
            }
            Err(_) => {
                link.mark(&link.subscriber_up, false, "subscribing timed out");
                if !pause(backoff.next(), &mut stop).await {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        link.mark(&link.subscriber_up, true, "");
        match listen(&link, pubsub, &on_messages, quiet, &mut stop).await {
            Ended::Stopped => return,
            Ended::Lost(why) => {
                link.mark(&link.subscriber_up, false, why);
                link.check.notify_one();
            }
        }
    }
}

/// Why listening on one subscription connection ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// `stop` turned true.
    Stopped,
    /// The connection is gone, for this reason.
    Lost(&'static str),
}

/// Hands the messages of one subscription connection to `on_messages` until the connection closes, goes
/// silent, or `stop` turns true. Nothing heard for `quiet` (an idle cluster): it is pinged, which Redis
/// answers in subscribed mode too, behind any message already on its way. Nothing at all heard for twice
/// `quiet`: the connection is half-open (its packets lost while TCP never fails) and counts as lost.
async fn listen(
    link: &Link,
    pubsub: PubSub,
    on_messages: &impl Fn(&[&str]),
    quiet: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let (sink, mut messages) = pubsub.split();
    let mut heard = Instant::now();
    let mut pong: Option<BoxFuture<'static, RedisResult<Value>>> = None;
    loop {
        let deadline = heard + if pong.is_some() { quiet * 2 } else { quiet };
        let waiting = pong.is_some();
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Ended::Lost("the subscription connection closed");
                };
                heard = Instant::now();
                // Those that arrived with it go in the same call, up to a bound.
                let mut batch = vec![message];
                let mut ended = false;
                while batch.len() < MAX_BATCH {
                    match messages.next().now_or_never() {
                        Some(Some(message)) => batch.push(message),
                        Some(None) => {
                            ended = true;
                            break;
                        }
                        None => break,
                    }
                }
                hand_over(link, &batch, on_messages);
                if ended {
                    return Ended::Lost("the subscription connection closed");
                }
            }
            Some(answer) = OptionFuture::from(pong.as_mut()), if waiting => {
                pong = None;
                match answer {
                    Err(error) if connection_lost(&error) => {
                        return Ended::Lost("the subscription connection failed");
                    }
                    // Even an error reply is Redis answering.
                    _ => heard = Instant::now(),
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                if waiting {
                    return Ended::Lost("the subscription connection went silent");
                }
                pong = Some(ping_subscription(sink.clone()));
            }
            _ = stopped(stop) => return Ended::Stopped,
        }
    }
}

/// A ping on the subscription connection, resolving with Redis's answer.
fn ping_subscription(mut sink: PubSubSink) -> BoxFuture<'static, RedisResult<Value>> {
    Box::pin(async move { sink.ping::<Value>().await })
}

/// Most messages handed over in one call: a bound on how long one call keeps its I/O thread.
const MAX_BATCH: usize = 64;

/// Counts messages from the node channels and hands their texts to `on_messages`.
fn hand_over(link: &Link, batch: &[Msg], on_messages: &impl Fn(&[&str])) {
    link.counters
        .received
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    let texts: Vec<&str> = batch
        .iter()
        .filter_map(|message| {
            let text = std::str::from_utf8(message.get_payload_bytes());
            if text.is_err() {
                tracing::warn!("cluster: a message that is not UTF-8, ignored");
            }
            text.ok()
        })
        .collect();
    on_messages(&texts);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new();
        let waits: Vec<Duration> = (0..8).map(|_| backoff.next()).collect();
        assert_eq!(waits[0], MIN_BACKOFF);
        assert_eq!(waits[1], MIN_BACKOFF * 2);
        assert!(waits.windows(2).all(|pair| pair[1] >= pair[0]));
        assert_eq!(*waits.last().expect("eight waits"), MAX_BACKOFF);
        backoff.reset();
        assert_eq!(backoff.next(), MIN_BACKOFF);
    }

    #[test]
    fn a_full_queue_refuses_and_counts() {
        let (link, _jobs) = Link::new("redis://127.0.0.1:1", 2).expect("a valid URL");
        assert!(link.send(redis::cmd("PING")));
        assert!(link.ask(redis::cmd("PING")).is_some());
        assert!(!link.send(redis::cmd("PING")));
        assert_eq!(link.queued(), 2);
        assert_eq!(link.counters.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(link.state(), LinkState::Connecting);
    }
}
