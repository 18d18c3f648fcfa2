//! A lean WebSocket client for the throughput scenarios (`rpc`, `fanout`).
//!
//! The load generator shares the machine with the server under test, so every microsecond it spends per message is
//! taken from the server. This client reads into one reusable buffer (never zero-filled again), hands out each
//! message as a slice of it, queues outgoing frames into one buffer and writes them with one `send` per turn. It
//! speaks just enough of RFC 6455 for a client: masked frames out; text, binary, continuation, ping, pong and
//! close in; no extensions. Over `wss://` it speaks TLS (rustls) to a server whose certificate `--ca` names.

use std::ops::Range;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::transport::Stream;
use crate::Protocol;

/// Initial read buffer: many frames per `recv`; a larger frame grows it.
const READ_BUFFER: usize = 64 * 1024;
/// Longest HTTP response head accepted from the server.
const MAX_HEAD: usize = 16 * 1024;

/// One open WebSocket connection.
pub struct Client {
    stream: Stream,
    /// Frames received and not yet handed out.
    pub incoming: Incoming,
    /// Frames queued and not yet written.
    pub outgoing: Outgoing,
}

impl Client {
    /// Connects to `url` (`ws://host:port/path`), upgrades, and for Socket.IO also completes the Engine.IO and
    /// namespace handshakes.
    pub async fn open(url: &str, protocol: Protocol) -> Result<Client, String> {
        let addr = crate::host_port(url)?;
        let endpoint = crate::endpoint(url, protocol);
        let rest = crate::after_scheme(&endpoint)?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('?') => (&rest[..at], format!("/{}", &rest[at..])),
            Some(at) => (&rest[..at], rest[at..].to_string()),
            None => (rest, "/".to_string()),
        };
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let stream = Stream::open(tcp, &addr, &endpoint).await?;
        let mut client = Client {
            stream,
            incoming: Incoming::new(),
            outgoing: Outgoing::new(),
        };
        client.upgrade(authority, &path, protocol).await?;
        if protocol == Protocol::SocketIo {
            client.socketio_handshake().await?;
        }
        Ok(client)
    }

    async fn upgrade(&mut self, host: &str, path: &str, protocol: Protocol) -> Result<(), String> {
        let subprotocol = if protocol == Protocol::Helios {
            "Sec-WebSocket-Protocol: helios.v1\r\n"
        } else {
            ""
        };
        // The key only has to be well formed: the server's answer to it is not checked (the status is).
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{subprotocol}\r\n"
        );
        self.outgoing.buf.extend_from_slice(request.as_bytes());
        self.flush()
            .await
            .map_err(|e| format!("handshake {host}{path}: {e}"))?;
        loop {
            self.read()
                .await
                .map_err(|e| format!("handshake {host}{path}: {e}"))?;
            let received = self.incoming.pending();
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).into_owned();
                if !head.starts_with("HTTP/1.1 101") {
                    let status = head.lines().next().unwrap_or_default();
                    return Err(format!("handshake {host}{path}: {status}"));
                }
                // What follows the head is the start of the first frames.
                self.incoming.consume(end + 4);
                return Ok(());
            }
            if received.len() > MAX_HEAD {
                return Err(format!("handshake {host}{path}: response head too long"));
            }
        }
    }

    /// Engine.IO's open packet (`0{...}`), then the connect to the main namespace (`40` answered by `40{...}`).
    async fn socketio_handshake(&mut self) -> Result<(), String> {
        let mut sent_connect = false;
        loop {
            while let Some(text) = self
                .incoming
                .next(&mut self.outgoing)
                .map_err(|e| format!("socket.io handshake: {e}"))?
            {
                if text.starts_with(b"0") && !sent_connect {
                    self.outgoing.text(b"40");
                    sent_connect = true;
                } else if text.starts_with(b"40") {
                    return self.flush().await;
                } else if text.starts_with(b"44") {
                    let text = String::from_utf8_lossy(text);
                    return Err(format!("socket.io connect refused: {text}"));
                } else if text == b"2" {
                    self.outgoing.text(b"3");
                }
            }
            self.flush().await?;
            tokio::time::timeout(Duration::from_secs(10), self.read())
                .await
                .map_err(|_| "socket.io handshake: no answer in 10 s".to_string())?
                .map_err(|e| format!("socket.io handshake: {e}"))?;
        }
    }

    /// Reads what the socket has (waiting for at least one byte) into the incoming buffer.
    pub async fn read(&mut self) -> Result<(), String> {
        let space = self.incoming.space();
        match self.stream.read(space).await {
            Ok(0) => Err("connection closed".into()),
            Ok(read) => {
                self.incoming.end += read;
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// Writes every queued frame, in one `send` when the socket takes it.
    pub async fn flush(&mut self) -> Result<(), String> {
        if self.outgoing.buf.is_empty() {
            return Ok(());
        }
        // One `send`; over TLS, one record (up to 16 KiB) per `send`.
        let written = match self.stream.write_all(&self.outgoing.buf).await {
            Ok(()) => self.stream.flush().await,
            failed => failed,
        };
        self.outgoing.buf.clear();
        written.map_err(|e| format!("write: {e}"))
    }

    /// Sends a close frame and waits briefly for the server to close.
    pub async fn close(mut self) {
        self.outgoing.frame(OP_CLOSE, &1000u16.to_be_bytes());
        let _ = self.flush().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while self.read().await.is_ok() {}
        })
        .await;
    }
}

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Received bytes, parsed into messages on demand.
pub struct Incoming {
    buf: Vec<u8>,
    /// Bytes before `start` were handed out; bytes from `end` on are free.
    start: usize,
    end: usize,
    /// A fragmented message being put together.
    fragments: Vec<u8>,
}

/// Where the message `Incoming::next` found lies.
enum Found {
    Frame(Range<usize>),
    Fragments,
}

impl Incoming {
    fn new() -> Incoming {
        Incoming {
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            fragments: Vec::new(),
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, len: usize) {
        self.start += len;
    }

    /// Free space to read into: moves unparsed bytes to the front when that helps, and grows the buffer when a
    /// frame fills it.
    fn space(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && (self.end == self.buf.len() || self.start >= self.buf.len() / 2)
        {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        &mut self.buf[self.end..]
    }

    /// The next complete message's payload (text or binary), or `None` until more bytes arrive. Pings are
    /// answered through `outgoing`; a close frame or a protocol violation is an error.
    pub fn next(&mut self, outgoing: &mut Outgoing) -> Result<Option<&[u8]>, String> {
        let found = loop {
            let Some((fin, opcode, payload)) = self.frame()? else {
                return Ok(None);
            };
            match opcode {
                OP_TEXT | OP_BINARY if fin => break Found::Frame(payload),
                OP_TEXT | OP_BINARY => {
                    self.fragments.clear();
                    self.fragments.extend_from_slice(&self.buf[payload]);
                }
                OP_CONTINUATION => {
                    self.fragments.extend_from_slice(&self.buf[payload]);
                    if fin {
                        break Found::Fragments;
                    }
                }
                OP_PING => outgoing.frame(OP_PONG, &self.buf[payload]),
                OP_PONG => {}
                OP_CLOSE => {
                    let code = self.buf[payload]
                        .get(..2)
                        .map(|b| u16::from_be_bytes([b[0], b[1]]));
                    return Err(format!("server closed (code {code:?})"));
                }
                other => return Err(format!("unknown opcode {other}")),
            }
        };
        Ok(Some(match found {
            Found::Frame(range) => &self.buf[range],
            Found::Fragments => &self.fragments,
        }))
    }

    /// Takes the next complete frame off the buffer: its FIN bit, opcode and payload's place.
    fn frame(&mut self) -> Result<Option<(bool, u8, Range<usize>)>, String> {
        let bytes = self.pending();
        if bytes.len() < 2 {
            return Ok(None);
        }
        if bytes[0] & 0x70 != 0 {
            return Err("reserved bits set (no extension was negotiated)".into());
        }
        if bytes[1] & 0x80 != 0 {
            return Err("the server masked a frame".into());
        }
        let (header, len) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (4, u16::from_be_bytes([bytes[2], bytes[3]]) as usize),
            127 if bytes.len() >= 10 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&bytes[2..10]);
                (
                    10,
                    usize::try_from(u64::from_be_bytes(be)).map_err(|_| "frame too long")?,
                )
            }
            126 | 127 => return Ok(None),
            len => (2, len as usize),
        };
        if bytes.len() - header < len {
            return Ok(None);
        }
        let (fin, opcode) = (bytes[0] & 0x80 != 0, bytes[0] & 0x0f);
        let payload = self.start + header..self.start + header + len;
        self.start = payload.end;
        Ok(Some((fin, opcode, payload)))
    }
}

/// Frames queued for the next write.
pub struct Outgoing {
    buf: Vec<u8>,
    /// Where `text_with` writes a payload before it is framed.
    scratch: Vec<u8>,
    /// Source of masking keys (xorshift).
    seed: u64,
}

impl Outgoing {
    fn new() -> Outgoing {
        Outgoing {
            buf: Vec::with_capacity(4096),
            scratch: Vec::new(),
            seed: crate::now_ns() | 1,
        }
    }

    /// Queues a text frame.
    pub fn text(&mut self, payload: &[u8]) {
        self.frame(OP_TEXT, payload);
    }

    /// Queues a text frame whose payload `write` appends to the given (empty) buffer.
    pub fn text_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let mut payload = std::mem::take(&mut self.scratch);
        payload.clear();
        write(&mut payload);
        self.frame(OP_TEXT, &payload);
        self.scratch = payload;
    }

    fn frame(&mut self, opcode: u8, payload: &[u8]) {
        self.buf.push(0x80 | opcode);
        match payload.len() {
            len @ 0..=125 => self.buf.push(0x80 | len as u8),
            len @ 126..=65535 => {
                self.buf.push(0x80 | 126);
                self.buf.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                self.buf.push(0x80 | 127);
                self.buf.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        let mask = self.mask();
        self.buf.extend_from_slice(&mask);
        let start = self.buf.len();
        self.buf.extend_from_slice(payload);
        mask_in_place(&mut self.buf[start..], mask);
    }

    fn mask(&mut self) -> [u8; 4] {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        (self.seed as u32).to_ne_bytes()
    }
}

/// XORs `payload` with the 4-byte `mask`, eight bytes at a time (a byte at a time cost the load generator more
/// than any other step of sending a request).
fn mask_in_place(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The tail starts at a multiple of 8 from the payload's start, so the mask's phase is the byte's index.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// Appends `n` in decimal.
pub fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

/// The unsigned integer right after `needle` (such as `"id":`) in a JSON text; no full parse.
pub fn field_u64(text: &[u8], needle: &[u8]) -> Option<u64> {
    field_u64_end(text, needle).map(|(value, _)| value)
}

/// [`field_u64`], and where the integer ends in `text`.
pub fn field_u64_end(text: &[u8], needle: &[u8]) -> Option<(u64, usize)> {
    let mut at = find(text, needle)? + needle.len();
    while text.get(at) == Some(&b' ') {
        at += 1;
    }
    let mut value: u64 = 0;
    let start = at;
    while let Some(&b) = text.get(at).filter(|b| b.is_ascii_digit()) {
        value = value.checked_mul(10)?.checked_add((b - b'0') as u64)?;
        at += 1;
    }
    (at > start).then_some((value, at))
}

/// Where `needle` first occurs in `text`: candidates are found by its first byte, and the rest is compared byte by
/// byte in place (a library `memcmp` call per candidate cost more than the search itself, JSON having a quote every
/// few bytes).
fn find(text: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let last = text.len().checked_sub(needle.len())?;
    let mut at = 0;
    while at <= last {
        at += text[at..=last].iter().position(|&b| b == first)?;
        if text[at + 1..].iter().zip(rest).all(|(a, b)| a == b) {
            return Some(at);
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_length_as_byte_by_byte_masking_does() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for len in 0..40 {
            let payload: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            let mut wide = payload.clone();
            mask_in_place(&mut wide, mask);
            let narrow: Vec<u8> = payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i & 3])
                .collect();
            assert_eq!(wide, narrow, "length {len}");
        }
    }

    #[test]
    fn reads_an_integer_field_and_where_it_ends() {
        let text = br#"{"type":"response","id": 42,"status":200,"data":{"id":7}}"#;
        let (id, end) = field_u64_end(text, br#""id":"#).expect("id");
        assert_eq!(id, 42);
        assert_eq!(field_u64(&text[end..], br#""status":"#), Some(200));
        assert_eq!(field_u64(text, br#""seq":"#), None);
        assert_eq!(field_u64(br#"{"id":"x"}"#, br#""id":"#), None);
        assert_eq!(field_u64(br#"{"i":1,"id":2}"#, br#""id":"#), Some(2));
        assert_eq!(field_u64(br#"{"id":"#, br#""id":"#), None);
        assert_eq!(find(b"ab", b"abc"), None);
    }
}
