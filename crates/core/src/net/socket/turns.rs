//! The connection's loop: what woke it (a message, the outbox, a deadline, the backlog) and what it does
//! about it.

use std::future::{poll_fn, Future};

use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Bytes;

use crate::app::call;
use crate::net::frame::{Message, ReadError, PING, PONG};
use crate::net::health::{self, Due, Health};
use crate::net::outbox::Outbox;
use crate::net::rate::Bucket;
use crate::net::wire::Wire;
use crate::net::Connection;
use crate::server::Shared;

use super::burst::{Burst, MAX_BURST};
use super::closing::{close_for_stop, close_received, fail, lost, Closing, Ending, ABNORMAL};
use super::pings::Pings;
use super::receive::{pong, receive};
use super::writing::{flush_queue, stall_limit, unless_stuck, write, GaveUp, MAX_FRAMES_PER_FLUSH};
use super::Socket;

/// The connection's loop; returns how it ended.
///
/// A socket task wakes for every frame it writes, so one turn of this loop must cost little: the timer and
/// the outbox's signal are armed once and kept across turns, not rebuilt each turn.
/// Written as a function returning an `async move` block rather than an `async fn`, which would hold
/// each argument twice in the task (see [`live`]).
#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` would hold each argument twice, see above"
)]
pub(super) fn turns<'a>(
    shared: &'a Shared,
    conn: &'a Connection,
    outbox: &'a Outbox,
    wire: Option<&'a Wire>,
    ws: &'a mut Socket,
    shutdown: &'a watch::Receiver<bool>,
    burst: &'a mut Burst,
) -> impl Future<Output = Ending> + 'a {
    async move {
        // Set once we have sent a close frame: from then on we only wait for the client's.
        let mut closing: Closing = None;
        let mut health = shared
            .config
            .health_check
            .as_ref()
            .map(|config| Health::new(config, Instant::now()));
        let mut pings = Pings::default();
        let mut bucket = shared
            .config
            .rate_limit
            // Boxed: without a rate limit (the default) the loop's state holds a pointer, not a bucket.
            .map(|limit| Box::new(Bucket::new(limit, Instant::now())));
        let mut last_heard = Instant::now();
        // A stop from now on reaches the outbox (`Server::stop`); one that came before, this way.
        if *shutdown.borrow() {
            outbox.stop();
        }
        // One timer for the earliest deadline (close, health, idle). It is moved earlier when needed and
        // otherwise left alone: when it fires early (the client spoke since), the loop just re-arms it.
        // Boxed: tokio's timer is 112 bytes, and held inline it would take the task to the next size class.
        let mut timer = Box::pin(sleep_until(Instant::now()));
        let ready = outbox.ready();
        tokio::pin!(ready);
        // Whether the timer is set for a deadline that has not fired yet; the deadline itself is the
        // timer's, not a copy held across every wait.
        let mut armed = false;
        loop {
            // Whether the timer is set for a deadline; a flag rather than the deadline, which is not needed
            // past this point and would be held across every wait.
            let timed =
                match Deadlines::of(shared, &closing, health.as_ref(), last_heard).earliest() {
                    Some(due) => {
                        if !armed || due < timer.deadline() {
                            timer.as_mut().reset(due);
                            armed = true;
                        }
                        true
                    }
                    None => false,
                };
            // Biased: messages first, then the burst they made is handed over once there is none left to read;
            // every other branch runs with the burst sent, so the application hears of things in order.
            // The branches only work out the step and never wait: what woke the loop (a message) held across a
            // wait would size every connection's task.
            let step = tokio::select! {
                biased;
                incoming = ws.next_message() => match incoming {
                    Some(Ok(Message::Pong(bytes))) => {
                        pong(shared, conn, &bytes, health.as_mut(), &mut pings, burst);
                        continue;
                    }
                    Some(Ok(Message::Ping(bytes))) => Step::Pong(bytes),
                    Some(Ok(Message::Close(frame))) => Step::Closed(frame),
                    Some(Ok(message)) => Step::Received(receive(
                        shared,
                        conn,
                        message,
                        bucket.as_deref_mut(),
                        &mut last_heard,
                        burst,
                    )),
                    Some(Err(error)) => Step::Failed(error),
                    None => return lost(closing),
                },
                _ = std::future::ready(()), if !burst.is_empty() => Step::Burst,
                _ = &mut ready => Step::Outbox,
                _ = &mut timer, if timed => Step::Timer,
                _ = std::future::ready(()), if ws.stranded => Step::Backlog,
            };
            match step {
                Step::Pong(bytes) => {
                    if let Err(error) =
                        Box::pin(ws.send_soon(PONG, &bytes, shared.config.close_timeout)).await
                    {
                        tracing::debug!(conn = %conn.id, %error, "pong not sent");
                        return lost(closing);
                    }
                }
                Step::Closed(frame) => {
                    return Box::pin(close_received(ws, frame, closing, shared)).await
                }
                Step::Received(reply) => {
                    if let Some(reply) = reply {
                        // The application hears of the change before the client can act on the answer.
                        burst.send(conn).await;
                        conn.send(reply);
                    }
                    // A client that never pauses still meets the backpressure of the calls channel.
                    if burst.len() >= MAX_BURST {
                        burst.send(conn).await;
                    }
                }
                Step::Failed(error) => {
                    // Answers to the messages before the bad frame still go out, then the close.
                    if closing.is_none() {
                        Box::pin(flush_queue(ws, outbox, &mut closing, &mut pings, shared)).await;
                    }
                    return Box::pin(fail(ws, conn, error, closing)).await;
                }
                Step::Burst => {
                    burst.send(conn).await;
                }
                Step::Outbox => {
                    ready.set(outbox.ready());
                    // The signal also comes for bytes a sender left in the wire's backlog: drained next.
                    ws.stranded |= wire.is_some_and(Wire::stranded);
                    if closing.is_some() {
                        // Only the client's close is waited for now.
                        continue;
                    }
                    if outbox.overflowed() {
                        return Box::pin(GaveUp::Overflow.ending(conn, closing)).await;
                    }
                    if outbox.stopping() {
                        // What the application queued before the stop (the last replies) still goes out first.
                        Box::pin(flush_queue(ws, outbox, &mut closing, &mut pings, shared)).await;
                        Box::pin(close_for_stop(ws, &mut closing, shared)).await;
                        continue;
                    }
                    // The batch in a block of its own, so that it is not held beside the write that took it.
                    let written = {
                        let batch = outbox.take(MAX_FRAMES_PER_FLUSH);
                        if batch.is_empty() {
                            continue;
                        }
                        write(ws, outbox, batch, &mut closing, &mut pings, shared)
                    };
                    // Over TLS the loop writes the batch itself, and nothing else runs until it is taken.
                    let stall = if wire.is_none() {
                        stall_limit(shared)
                    } else {
                        None
                    };
                    if let Err(gave_up) =
                        Box::pin(unless_stuck(written, outbox, ready.as_mut(), stall, shared)).await
                    {
                        return Box::pin(gave_up.ending(conn, closing)).await;
                    }
                    if outbox.stopping() {
                        // The stop came while that write was in progress.
                        Box::pin(close_for_stop(ws, &mut closing, shared)).await;
                    }
                }
                Step::Timer => {
                    armed = false;
                    // Worked out in a block of its own: the time and the deadlines, held across the waits below,
                    // would size every connection's task.
                    let fired = {
                        let now = Instant::now();
                        let Deadlines {
                            close,
                            health: health_due,
                            idle,
                        } = Deadlines::of(shared, &closing, health.as_ref(), last_heard);
                        if close.is_some_and(|deadline| deadline <= now) {
                            Fired::CloseUnanswered
                        } else if idle.is_some_and(|deadline| deadline <= now) {
                            Fired::Idle
                        } else {
                            match health
                                .as_mut()
                                .filter(|_| health_due.is_some_and(|deadline| deadline <= now))
                            {
                                Some(health) => Fired::Health(health.due(now)),
                                // Early: the client spoke since the timer was set.
                                None => continue,
                            }
                        }
                    };
                    match fired {
                        Fired::CloseUnanswered => {
                            tracing::debug!(conn = %conn.id, "client did not answer the close frame");
                            return lost(closing);
                        }
                        Fired::Idle => {
                            tracing::debug!(conn = %conn.id, "idle, closing");
                            Box::pin(conn.tell(call::limit(conn.key, "idle-timeout"))).await;
                            conn.close(1001, "Idle timeout");
                        }
                        Fired::Health(Due::Ping(id)) => {
                            // A ping that cannot even be written in time simply goes unanswered.
                            let ping = health::payload(health::AUTO, id);
                            let _ =
                                Box::pin(ws.send_soon(PING, &ping, shared.config.close_timeout))
                                    .await;
                        }
                        Fired::Health(Due::Missed(count)) => {
                            Box::pin(conn.tell(call::health(
                                conn.key,
                                "missed",
                                Some(f64::from(count)),
                            )))
                            .await;
                        }
                        Fired::Health(Due::Dead) => {
                            tracing::info!(conn = %conn.id, "no pong in time, dropping the connection");
                            Box::pin(conn.tell(call::health(conn.key, "timeout", None))).await;
                            return Ending::new(ABNORMAL, "Ping timeout");
                        }
                    }
                }
                Step::Backlog => {
                    ws.stranded = false;
                    let Some(wire) = wire else { continue };
                    // Frames the socket did not take at once wait here. A deadline ends the wait, so a client
                    // that reads nothing is still health-checked (and dropped once its pongs stop coming): the
                    // timer's branch, before this one, runs next, then the wait resumes.
                    let drained = async {
                        tokio::select! {
                            drained = poll_fn(|cx| wire.poll_drain(cx)) => drained.map(|()| true),
                            _ = timer.as_mut(), if timed => Ok(false),
                        }
                    };
                    match Box::pin(unless_stuck(drained, outbox, ready.as_mut(), None, shared))
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            ws.stranded = true;
                            continue;
                        }
                        Err(gave_up) => return Box::pin(gave_up.ending(conn, closing)).await,
                    }
                    if outbox.stopping() {
                        Box::pin(close_for_stop(ws, &mut closing, shared)).await;
                    }
                }
            }
        }
    }
}

/// What the loop does about what woke it: a message, the burst to hand over, the outbox's signal, the
/// timer or the wire's backlog.
enum Step {
    /// Answer the client's ping.
    Pong(Bytes),
    /// The client sent its close frame.
    Closed(Option<(u16, String)>),
    /// A data message was taken in; with the frame to answer it with, if any.
    Received(Option<String>),
    /// The client's bytes broke the protocol, or the socket failed.
    Failed(ReadError),
    Burst,
    Outbox,
    Timer,
    Backlog,
}

/// Which of the loop's deadlines passed.
enum Fired {
    /// The client did not answer our close frame in time.
    CloseUnanswered,
    /// The client was silent for the idle timeout.
    Idle,
    /// The health check's next step.
    Health(Due),
}

/// When the connection's loop must next act on its own: the close it waits for, its health check, its
/// idle timeout.
struct Deadlines {
    close: Option<Instant>,
    health: Option<Instant>,
    idle: Option<Instant>,
}

impl Deadlines {
    /// Once a close has started, only its own deadline counts.
    fn of(
        shared: &Shared,
        closing: &Closing,
        health: Option<&Health>,
        last_heard: Instant,
    ) -> Self {
        let open = closing.is_none();
        Deadlines {
            close: closing.as_ref().map(|closing| closing.0),
            health: health.filter(|_| open).map(Health::deadline),
            idle: shared
                .config
                .idle_timeout
                .filter(|_| open)
                .map(|idle| last_heard + idle),
        }
    }

    fn earliest(&self) -> Option<Instant> {
        [self.close, self.health, self.idle]
            .into_iter()
            .flatten()
            .min()
    }
}
