//! Health checks of one connection: when to ping, whether the pong came back in time, and when a silent
//! client is given up on. A state machine over instants, so it is tested without sockets or real time.

use tokio::time::{Duration, Instant};

use crate::config::HealthCheck;

/// The first byte of the server's own ping payloads; application pings (`helios.ping`) use another.
pub(crate) const AUTO: u8 = b'h';
/// The first byte of application ping payloads.
pub(crate) const ON_DEMAND: u8 = b'a';

/// A ping payload: a tag byte and a big-endian id.
pub(crate) fn payload(tag: u8, id: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(9);
    bytes.push(tag);
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes
}

/// Reads a payload written by [`payload`].
pub(crate) fn parse(bytes: &[u8]) -> Option<(u8, u64)> {
    let (&tag, id) = bytes.split_first()?;
    Some((tag, u64::from_be_bytes(id.try_into().ok()?)))
}

/// What the connection must do at its health deadline.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Send a ping with this id.
    Ping(u64),
    /// A ping went unanswered; this many in a row now.
    Missed(u32),
    /// Too many pings went unanswered: close the connection.
    Dead,
}

/// The health state of one connection. It lives in every connection's task, so it borrows its settings and
/// keeps only what changes.
#[derive(Debug)]
pub(crate) struct Health<'a> {
    config: &'a HealthCheck,
    next_ping: Instant,
    /// When the ping waiting for its pong was sent; that ping is always the latest, `next_id`.
    outstanding: Option<Instant>,
    missed: u32,
    next_id: u64,
}

impl<'a> Health<'a> {
    pub(crate) fn new(config: &'a HealthCheck, now: Instant) -> Self {
        Health {
            next_ping: now + config.interval,
            config,
            outstanding: None,
            missed: 0,
            next_id: 0,
        }
    }

    /// When [`Health::due`] must next be called.
    pub(crate) fn deadline(&self) -> Instant {
        match self.outstanding {
            Some(sent) => sent + self.config.timeout,
            None => self.next_ping,
        }
    }

    /// Acts on the deadline: a ping to send, or an unanswered ping to count.
    pub(crate) fn due(&mut self, now: Instant) -> Due {
        if let Some(sent) = self.outstanding.take() {
            self.missed += 1;
            self.next_ping = (sent + self.config.interval).max(now);
            return if self.missed >= self.config.max_missed {
                Due::Dead
            } else {
                Due::Missed(self.missed)
            };
        }
        self.next_id += 1;
        self.outstanding = Some(now);
        Due::Ping(self.next_id)
    }

    /// A pong to the ping `id` arrived: returns the round trip when it answers the outstanding ping.
    pub(crate) fn pong(&mut self, id: u64, now: Instant) -> Option<Duration> {
        match self.outstanding {
            Some(sent) if id == self.next_id => {
                self.outstanding = None;
                self.missed = 0;
                self.next_ping = sent + self.config.interval;
                Some(now.saturating_duration_since(sent))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> HealthCheck {
        HealthCheck {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            max_missed: 2,
        }
    }

    #[test]
    fn pings_every_interval_and_measures_the_pong() {
        let (config, start) = (config(), Instant::now());
        let mut health = Health::new(&config, start);
        assert_eq!(health.deadline(), start + Duration::from_secs(30));
        let sent = health.deadline();
        assert_eq!(health.due(sent), Due::Ping(1));
        assert_eq!(health.deadline(), sent + Duration::from_secs(10));
        assert_eq!(
            health.pong(7, sent),
            None,
            "a pong to another ping is not the answer"
        );
        assert_eq!(
            health.pong(1, sent + Duration::from_millis(5)),
            Some(Duration::from_millis(5))
        );
        assert_eq!(health.deadline(), sent + Duration::from_secs(30));
    }

    #[test]
    fn gives_up_after_max_missed_unanswered_pings() {
        let (config, start) = (config(), Instant::now());
        let mut health = Health::new(&config, start);
        let mut now = health.deadline();
        assert_eq!(health.due(now), Due::Ping(1));
        now = health.deadline();
        assert_eq!(health.due(now), Due::Missed(1));
        now = health.deadline();
        assert_eq!(health.due(now), Due::Ping(2));
        now = health.deadline();
        assert_eq!(health.due(now), Due::Dead);
    }

    #[test]
    fn an_answer_resets_the_missed_count() {
        let (config, start) = (config(), Instant::now());
        let mut health = Health::new(&config, start);
        let now = health.deadline();
        health.due(now);
        health.due(health.deadline());
        let now = health.deadline();
        assert_eq!(health.due(now), Due::Ping(2));
        assert!(health.pong(2, now).is_some());
        health.due(health.deadline());
        assert_eq!(health.due(health.deadline()), Due::Missed(1));
    }

    #[test]
    fn payloads_round_trip() {
        assert_eq!(parse(&payload(AUTO, 42)), Some((AUTO, 42)));
        assert_eq!(parse(b"short"), None);
        assert_eq!(parse(&[]), None);
    }
}
