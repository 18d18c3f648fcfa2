//! Admission: reads the HTTP request head, answers what is not a WebSocket upgrade, and applies the
//! server's rules — allowed origins, the connection limit, the application's upgrade hook — before the
//! WebSocket handshake starts.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::app::call;
use crate::server::Shared;

use super::handshake::{self, Refused};
use super::transport::Transport;

/// Largest request head accepted; browsers send a few KiB at most.
const MAX_HEAD: usize = 16 * 1024;
/// Most header lines read.
const MAX_HEADERS: usize = 64;

/// The application's answer to an upgrade.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Accept, with the connection's initial data (raw JSON object) when the hook gave some.
    Accept(Option<Box<RawValue>>),
    /// Refuse with this HTTP status and reason.
    Reject {
        /// HTTP status, 400–599.
        status: u16,
        /// Short reason, also the body.
        reason: String,
    },
}

/// A connection allowed in, its handshake still to be answered.
pub(crate) struct Admitted {
    pub(crate) stream: Transport,
    /// The request's URL (path and query).
    pub(crate) url: String,
    /// The `101` answer to write.
    pub(crate) answer: String,
    /// Bytes the client sent behind its request head: the start of its first frames.
    pub(crate) early: Vec<u8>,
    /// The initial data the upgrade hook gave.
    pub(crate) data: Option<Box<RawValue>>,
    /// The connection's place under the connection limit.
    pub(crate) slot: Slot,
}

/// One place under `max_connections`, given back when dropped.
pub(crate) struct Slot(Arc<Shared>);

impl Slot {
    fn take(shared: &Arc<Shared>) -> Option<Slot> {
        let taken = shared.admitted.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = Slot(shared.clone());
        match shared.config.max_connections {
            Some(max) if taken > max => None, // dropping `slot` gives the place back
            _ => Some(slot),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What admission needs to know of the request, borrowed from its bytes: most connections need no more
/// than a few headers looked up once, and copying every header into a map cost some twenty allocations
/// per connection.
struct Head<'a> {
    method: &'a str,
    url: &'a str,
    /// Names and values as sent.
    headers: Vec<(&'a str, &'a [u8])>,
}

impl<'a> Head<'a> {
    /// The value of header `name` (any case); repeated headers are joined with `, `, as HTTP allows.
    fn header(&self, name: &str) -> Option<Cow<'a, str>> {
        let mut values = self
            .headers
            .iter()
            .filter(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| String::from_utf8_lossy(value));
        let first = values.next()?;
        Some(values.fold(first, |mut joined, value| {
            let text = joined.to_mut();
            text.push_str(", ");
            text.push_str(&value);
            joined
        }))
    }

    /// Every header, lowercase names, repeated ones joined as [`Head::header`] joins them: what the
    /// upgrade hook is given.
    fn header_map(&self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        for (name, _) in &self.headers {
            map.entry(name.to_ascii_lowercase())
                .or_insert_with(|| self.header(name).unwrap_or_default().into_owned());
        }
        map
    }

    fn is_upgrade(&self) -> bool {
        self.method == "GET"
            && self.header("upgrade").is_some_and(|value| {
                value
                    .split(',')
                    .any(|v| v.trim().eq_ignore_ascii_case("websocket"))
            })
    }

    fn path(&self) -> &str {
        self.url.split('?').next().unwrap_or_default()
    }
}

/// Admits or refuses one TCP connection. Refusals are answered with an HTTP response and logged.
pub(crate) async fn admit(
    shared: &Arc<Shared>,
    calls: &mpsc::Sender<String>,
    mut stream: Transport,
    remote: SocketAddr,
) -> Option<Admitted> {
    let bytes = match read_head(&mut stream).await {
        Ok(bytes) => bytes,
        Err(status) => {
            respond(&mut stream, status, "Bad Request", &[]).await;
            return None;
        }
    };
    let Some((head, head_len)) = parse(&bytes) else {
        respond(&mut stream, 400, "Bad Request", &[]).await;
        return None;
    };
    if !head.is_upgrade() {
        if shared.config.health_path.as_deref() == Some(head.path()) {
            let stats = serde_json::to_string(&shared.snapshot()).unwrap_or_default();
            respond(
                &mut stream,
                200,
                &stats,
                &[("content-type", "application/json")],
            )
            .await;
        } else {
            respond(
                &mut stream,
                426,
                "Upgrade Required",
                &[("upgrade", "websocket")],
            )
            .await;
        }
        return None;
    }
    let (connection, version, key, protocols) = (
        head.header("connection"),
        head.header("sec-websocket-version"),
        head.header("sec-websocket-key"),
        head.header("sec-websocket-protocol"),
    );
    let request = handshake::Request {
        connection: connection.as_deref(),
        version: version.as_deref(),
        key: key.as_deref(),
        protocols: protocols.as_deref(),
    };
    let answer = match handshake::answer(&request) {
        Ok(answer) => answer,
        Err(Refused::Malformed(what)) => {
            tracing::debug!(%remote, what, "bad WebSocket handshake");
            respond(&mut stream, 400, what, &[]).await;
            return None;
        }
        Err(Refused::Version) => {
            tracing::debug!(%remote, "unsupported WebSocket version");
            let headers = [("sec-websocket-version", "13")];
            respond(&mut stream, 426, "Unsupported WebSocket version", &headers).await;
            return None;
        }
    };
    if let Some(allowed) = &shared.config.allowed_origins {
        let origin = head.header("origin").unwrap_or_default();
        if !allowed.iter().any(|allowed| *allowed == origin) {
            tracing::info!(%remote, %origin, "origin not allowed");
            respond(&mut stream, 403, "Origin not allowed", &[]).await;
            return None;
        }
    }
    let Some(slot) = Slot::take(shared) else {
        tracing::warn!(%remote, "connection limit reached");
        respond(&mut stream, 503, "Server at capacity", &[]).await;
        return None;
    };
    let data = if shared.config.upgrade_hook {
        match ask(shared, calls, &head, remote).await {
            Verdict::Accept(data) => data,
            Verdict::Reject { status, reason } => {
                tracing::debug!(%remote, status, %reason, "upgrade refused by the application");
                respond(&mut stream, status, &reason, &[]).await;
                return None;
            }
        }
    } else {
        None
    };
    Some(Admitted {
        stream,
        url: head.url.to_owned(),
        answer,
        early: bytes[head_len..].to_vec(),
        data,
        slot,
    })
}

/// Reads until the end of the request head; the error is the HTTP status to answer with.
async fn read_head(stream: &mut Transport) -> Result<Vec<u8>, u16> {
    let mut bytes = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let read = stream.read(&mut chunk).await.map_err(|_| 400u16)?;
        if read == 0 {
            return Err(400);
        }
        // Only the new bytes (and the three before them) can complete the blank line.
        let from = bytes.len().saturating_sub(3);
        bytes.extend_from_slice(&chunk[..read]);
        if let Some(at) = bytes[from..]
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
        {
            // The limit is the head's, blank line included; frames may follow it in the same read.
            return if from + at + 4 > MAX_HEAD {
                Err(431)
            } else {
                Ok(bytes)
            };
        }
        if bytes.len() > MAX_HEAD {
            return Err(431);
        }
    }
}

/// The request head and its length in bytes; `None` unless complete and valid.
fn parse(bytes: &[u8]) -> Option<(Head<'_>, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = request.parse(bytes).ok()? else {
        return None;
    };
    let head = Head {
        method: request.method?,
        url: request.path?,
        headers: request
            .headers
            .iter()
            .map(|header| (header.name, header.value))
            .collect(),
    };
    Some((head, len))
}

/// Asks the application's upgrade hook; its answer arrives through [`crate::Server::apply`].
async fn ask(
    shared: &Arc<Shared>,
    calls: &mpsc::Sender<String>,
    head: &Head<'_>,
    remote: SocketAddr,
) -> Verdict {
    let id = shared.next_key();
    let (answer, verdict) = oneshot::channel();
    shared.upgrades.insert(id, answer);
    // Whatever ends this wait (an answer, a timeout, a closed server), the entry goes.
    let _entry = Entry(shared, id);
    let asked = call::upgrade(id, head.url, &head.header_map(), &remote.to_string());
    if calls.send(asked).await.is_err() {
        return Verdict::Reject {
            status: 503,
            reason: "Server stopping".to_owned(),
        };
    }
    verdict.await.unwrap_or(Verdict::Reject {
        status: 503,
        reason: "Server stopping".to_owned(),
    })
}

struct Entry<'a>(&'a Shared, u64);

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        self.0.upgrades.remove(&self.1);
    }
}

/// Writes a short HTTP response and closes.
async fn respond(stream: &mut Transport, status: u16, body: &str, headers: &[(&str, &str)]) {
    let mut response = format!(
        "HTTP/1.1 {status} {}\r\nconnection: close\r\ncontent-length: {}\r\n",
        reason_phrase(status),
        body.len()
    );
    if !headers.iter().any(|(name, _)| *name == "content-type") {
        response.push_str("content-type: text/plain; charset=utf-8\r\n");
    }
    for (name, value) in headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(body);
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_head_and_recognizes_upgrades() {
        let (head, len) = parse(b"GET /chat?room=1 HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nOrigin: https://a.example\r\nX-A: 1\r\nx-a: 2\r\n\r\n\x81")
            .expect("complete head");
        assert_eq!(len, 101, "the bytes after the head are not part of it");
        assert!(head.is_upgrade());
        assert_eq!(head.path(), "/chat");
        assert_eq!(head.header("origin").as_deref(), Some("https://a.example"));
        assert_eq!(head.header("x-a").as_deref(), Some("1, 2"));
        assert_eq!(
            head.header("X-A").as_deref(),
            Some("1, 2"),
            "names in any case"
        );
        assert_eq!(
            head.header_map().get("x-a").map(String::as_str),
            Some("1, 2")
        );
        assert_eq!(
            head.header_map().get("origin").map(String::as_str),
            Some("https://a.example")
        );
        let (plain, _) = parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("complete head");
        assert!(!plain.is_upgrade());
        assert!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n").is_none());
    }
}
