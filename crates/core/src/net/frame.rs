//! The WebSocket framing (RFC 6455 §5): client frames read into messages, server frame headers written.
//!
//! Reading owns no buffer between reads: the socket is read into one scratch buffer per thread (see
//! [`Reader::read`]), and only the bytes of a frame that has not fully arrived are kept, in a buffer that is
//! given back once they are parsed. An idle connection holds no read buffer at all.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::task::{ready, Context, Poll};

use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

pub(crate) const CONTINUATION: u8 = 0x0;
pub(crate) const TEXT: u8 = 0x1;
pub(crate) const BINARY: u8 = 0x2;
pub(crate) const CLOSE: u8 = 0x8;
pub(crate) const PING: u8 = 0x9;
pub(crate) const PONG: u8 = 0xA;

/// Bytes one read takes from the socket at most.
const SCRATCH: usize = 64 * 1024;

/// Largest payload of a control frame (§5.5).
const MAX_CONTROL: usize = 125;

thread_local! {
    /// The buffer every socket on this thread reads into.
    static SCRATCH_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH]);
}

/// A message from the client.
#[derive(Debug, PartialEq)]
pub(crate) enum Message {
    Text(Utf8Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    /// The client's close frame: its code and reason, if it gave a code.
    Close(Option<(u16, String)>),
}

/// Why the client's bytes were refused; each maps to a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// Against the framing rules (1002).
    Protocol(&'static str),
    /// A text message or close reason that is not UTF-8 (1007).
    Utf8,
    /// A message over the size limit (1009).
    TooLarge,
}

impl Invalid {
    /// The close code that tells the client.
    pub(crate) fn code(self) -> u16 {
        match self {
            Invalid::Protocol(_) => 1002,
            Invalid::Utf8 => 1007,
            Invalid::TooLarge => 1009,
        }
    }

    /// The close reason that tells the client.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Invalid::Protocol(_) => "Protocol error",
            Invalid::Utf8 => "Invalid UTF-8",
            Invalid::TooLarge => "Message too large",
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Protocol(what) => write!(f, "protocol error: {what}"),
            Invalid::Utf8 => f.write_str("invalid UTF-8"),
            Invalid::TooLarge => f.write_str("message too large"),
        }
    }
}

/// What a read found.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The client's bytes broke the protocol.
    Invalid(Invalid),
    /// The socket failed.
    Io(io::Error),
}

/// A message split over several frames, as far as it has come.
#[derive(Debug)]
struct Fragments {
    text: bool,
    bytes: Vec<u8>,
    /// How much of `bytes` is known to be valid UTF-8; the rest is an incomplete character at most.
    checked: usize,
}

/// Turns the bytes a client sends into messages.
#[derive(Debug)]
pub(crate) struct Reader {
    /// Bytes read but not parsed yet, from `start` on; empty (no allocation) between bursts.
    pending: Vec<u8>,
    start: usize,
    fragments: Option<Fragments>,
    max_message: usize,
}

/// A frame's header, once all of it has arrived.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Header bytes, including the mask.
    len: usize,
    payload: usize,
}

impl Reader {
    /// A reader refusing messages over `max_message` bytes, starting with `early`: bytes the client sent
    /// right behind its request head.
    pub(crate) fn new(max_message: usize, early: &[u8]) -> Self {
        Reader {
            pending: early.to_vec(),
            start: 0,
            fragments: None,
            max_message,
        }
    }

    /// The next message, reading the socket as needed through `read` (which fills the buffer it is given,
    /// like a `poll_read`). `None` once the client closed the stream.
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        mut read: impl FnMut(&mut Context<'_>, &mut [u8]) -> Poll<io::Result<usize>>,
    ) -> Poll<Option<Result<Message, ReadError>>> {
        loop {
            if let Some(message) = self.next().map_err(ReadError::Invalid).transpose() {
                return Poll::Ready(Some(message));
            }
            let read = SCRATCH_BUFFER.with_borrow_mut(|scratch| {
                let read = ready!(read(cx, scratch))?;
                self.push(&scratch[..read]);
                Poll::Ready(Ok::<_, io::Error>(read))
            });
            match ready!(read) {
                Ok(0) => return Poll::Ready(None),
                Ok(_) => {}
                Err(error) => return Poll::Ready(Some(Err(ReadError::Io(error)))),
            }
        }
    }

    /// Adds bytes read from the socket, after dropping those parsed already: a client that always ends its
    /// writes inside a frame would otherwise grow the buffer without bound, a message at a time.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.pending.drain(..self.start);
            self.start = 0;
        }
        self.pending.extend_from_slice(bytes);
    }

    /// The next complete message among the bytes read, if there is one.
    pub(super) fn next(&mut self) -> Result<Option<Message>, Invalid> {
        loop {
            let Some(header) = self.header()? else {
                return Ok(None);
            };
            let end = self.start + header.len + header.payload;
            if self.pending.len() < end {
                return Ok(None);
            }
            let payload = &mut self.pending[self.start + header.len..end];
            unmask(payload, header.mask);
            let message = match header.opcode {
                PING => Some(Message::Ping(Bytes::copy_from_slice(payload))),
                PONG => Some(Message::Pong(Bytes::copy_from_slice(payload))),
                CLOSE => Some(Message::Close(close(payload)?)),
                _ => {
                    let payload = payload.to_vec();
                    self.data(header.fin, header.opcode, payload)?
                }
            };
            self.start = end;
            if self.start == self.pending.len() {
                // Everything read is parsed: the buffer goes back, so a quiet connection holds none.
                self.pending = Vec::new();
                self.start = 0;
            }
            if message.is_some() {
                return Ok(message);
            }
        }
    }

    /// Parses the header at `start`, checking it against the rules; `None` until all of it has arrived.
    fn header(&self) -> Result<Option<Header>, Invalid> {
        let bytes = &self.pending[self.start..];
        let [first, second, ..] = *bytes else {
            return Ok(None);
        };
        let fin = first & 0x80 != 0;
        let opcode = first & 0x0F;
        if first & 0x70 != 0 {
            return Err(Invalid::Protocol("reserved bits set"));
        }
        if second & 0x80 == 0 {
            return Err(Invalid::Protocol("client frame not masked"));
        }
        let (payload, mut len) = match second & 0x7F {
            126 => match bytes.get(2..4) {
                Some(length) => (u64::from(u16::from_be_bytes([length[0], length[1]])), 4),
                None => return Ok(None),
            },
            127 => match bytes.get(2..10).and_then(|length| length.try_into().ok()) {
                Some(length) => (u64::from_be_bytes(length), 10),
                None => return Ok(None),
            },
            short => (u64::from(short), 2),
        };
        match opcode {
            CONTINUATION | TEXT | BINARY => {
                let so_far = self.fragments.as_ref().map_or(0, |f| f.bytes.len());
                // Refused as soon as the header says so, before the payload is waited for.
                if payload > (self.max_message.saturating_sub(so_far)) as u64 {
                    return Err(Invalid::TooLarge);
                }
            }
            CLOSE | PING | PONG => {
                if !fin {
                    return Err(Invalid::Protocol("fragmented control frame"));
                }
                if payload > MAX_CONTROL as u64 {
                    return Err(Invalid::Protocol("control frame too long"));
                }
            }
            _ => return Err(Invalid::Protocol("unknown opcode")),
        }
        let Some(mask) = bytes.get(len..len + 4) else {
            return Ok(None);
        };
        let mask = [mask[0], mask[1], mask[2], mask[3]];
        len += 4;
        Ok(Some(Header {
            fin,
            opcode,
            mask,
            len,
            // Below max_message, which is a usize.
            payload: payload as usize,
        }))
    }

    /// Takes a data frame; the message once its last frame has come.
    fn data(
        &mut self,
        fin: bool,
        opcode: u8,
        payload: Vec<u8>,
    ) -> Result<Option<Message>, Invalid> {
        let mut fragments = match (opcode, self.fragments.take()) {
            (CONTINUATION, None) => return Err(Invalid::Protocol("continuation of nothing")),
            (CONTINUATION, Some(mut fragments)) => {
                fragments.bytes.extend_from_slice(&payload);
                fragments
            }
            (_, Some(_)) => return Err(Invalid::Protocol("new message inside a fragmented one")),
            (_, None) if fin => return message(opcode == TEXT, payload).map(Some),
            (_, None) => Fragments {
                text: opcode == TEXT,
                bytes: payload,
                checked: 0,
            },
        };
        if fragments.text {
            // Checked as the fragments come, so bad text is refused at once rather than at the end.
            if let Err(error) = std::str::from_utf8(&fragments.bytes[fragments.checked..]) {
                if error.error_len().is_some() || fin {
                    return Err(Invalid::Utf8);
                }
                fragments.checked += error.valid_up_to();
            } else {
                fragments.checked = fragments.bytes.len();
            }
        }
        if fin {
            return message(fragments.text, fragments.bytes).map(Some);
        }
        self.fragments = Some(fragments);
        Ok(None)
    }
}

/// A whole data message.
fn message(text: bool, bytes: Vec<u8>) -> Result<Message, Invalid> {
    if text {
        let text = String::from_utf8(bytes).map_err(|_| Invalid::Utf8)?;
        Ok(Message::Text(Utf8Bytes::from(text)))
    } else {
        Ok(Message::Binary(Bytes::from(bytes)))
    }
}

/// Reads a close frame's payload: a code, then a UTF-8 reason (§5.5.1).
fn close(payload: &[u8]) -> Result<Option<(u16, String)>, Invalid> {
    match payload {
        [] => Ok(None),
        [_] => Err(Invalid::Protocol("close frame of one byte")),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !valid_close_code(code) {
                return Err(Invalid::Protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| Invalid::Utf8)?;
            Ok(Some((code, reason.to_owned())))
        }
    }
}

/// Codes a peer may send (§7.4): the defined ones that are not reserved for local use, and the ranges
/// left to libraries and applications.
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let value = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    for (byte, key) in chunks.into_remainder().iter_mut().zip(mask) {
        *byte ^= key;
    }
}

/// The header of a final, unmasked (server to client) frame: the bytes and how many are used.
pub(crate) fn header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut header = [0u8; 10];
    header[0] = 0x80 | opcode;
    let used = if len < 126 {
        // Below 126: fits the second byte.
        header[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        header[1] = 126;
        header[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        header[1] = 127;
        header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (header, used)
}

/// A close frame's payload: the code, then the reason cut to fit a control frame at a character boundary.
pub(crate) fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A client frame with the given first byte (FIN, opcode), masked with `mask`.
    pub(in crate::net) fn masked(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut bytes = vec![first];
        match payload.len() {
            len if len < 126 => bytes.push(0x80 | len as u8),
            len if len <= 0xFFFF => {
                bytes.push(0x80 | 126);
                bytes.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                bytes.push(0x80 | 127);
                bytes.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        bytes.extend_from_slice(&mask);
        bytes.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, k)| b ^ k));
        bytes
    }

    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        masked(first, payload, [0x12, 0x34, 0x56, 0x78])
    }

    fn read_all(reader: &mut Reader, bytes: &[u8]) -> Result<Vec<Message>, Invalid> {
        reader.push(bytes);
        let mut messages = Vec::new();
        while let Some(message) = reader.next()? {
            messages.push(message);
        }
        Ok(messages)
    }

    #[test]
    fn reads_messages_of_every_length_form_in_one_read_and_keeps_no_buffer() {
        let long = "x".repeat(300);
        let huge = "y".repeat(70_000);
        let mut bytes = frame(0x81, b"hello");
        bytes.extend(frame(0x81, long.as_bytes()));
        bytes.extend(frame(0x82, huge.as_bytes()));
        let mut reader = Reader::new(1 << 20, &[]);
        let messages = read_all(&mut reader, &bytes).expect("valid");
        assert_eq!(
            messages,
            vec![
                Message::Text("hello".into()),
                Message::Text(long.into()),
                Message::Binary(Bytes::from(huge.into_bytes())),
            ]
        );
        assert_eq!(reader.pending.capacity(), 0, "nothing is held once parsed");
    }

    #[test]
    fn a_frame_split_anywhere_arrives_whole() {
        let bytes = frame(0x81, "héllo wörld".as_bytes());
        for cut in 0..bytes.len() {
            let mut reader = Reader::new(1024, &bytes[..cut]);
            assert_eq!(read_all(&mut reader, &[]).expect("valid"), vec![]);
            assert_eq!(
                read_all(&mut reader, &bytes[cut..]).expect("valid"),
                vec![Message::Text("héllo wörld".into())]
            );
        }
    }

    #[test]
    fn parsed_bytes_are_let_go_when_every_read_ends_inside_a_frame() {
        let pong = frame(0x8A, &[7; 100]);
        let mut reader = Reader::new(1024, &[]);
        let mut messages = 0;
        // Each write: the rest of one pong and the start of the next, so no read ends between frames.
        let (head, tail) = pong.split_at(50);
        read_all(&mut reader, head).expect("valid");
        for _ in 0..10_000 {
            messages += read_all(&mut reader, &[tail, head].concat())
                .expect("valid")
                .len();
        }
        assert_eq!(messages, 10_000);
        assert!(
            reader.pending.len() <= 2 * pong.len(),
            "{} bytes held",
            reader.pending.len()
        );
    }

    #[test]
    fn fragments_join_around_control_frames() {
        let mut bytes = frame(0x01, "hé".as_bytes());
        bytes.extend(frame(0x89, b"ping"));
        bytes.extend(frame(0x00, &"llo".as_bytes()[..1]));
        bytes.extend(frame(0x80, b"lo"));
        let mut reader = Reader::new(1024, &[]);
        assert_eq!(
            read_all(&mut reader, &bytes).expect("valid"),
            vec![
                Message::Ping(Bytes::from_static(b"ping")),
                Message::Text("héllo".into())
            ]
        );
    }

    #[test]
    fn a_character_split_between_fragments_is_valid_and_bad_text_fails_at_once() {
        let word = "é".as_bytes();
        let mut bytes = frame(0x01, &word[..1]);
        bytes.extend(frame(0x80, &word[1..]));
        let mut reader = Reader::new(1024, &[]);
        assert_eq!(
            read_all(&mut reader, &bytes).expect("valid"),
            vec![Message::Text("é".into())]
        );
        let mut reader = Reader::new(1024, &[]);
        assert_eq!(
            read_all(&mut reader, &frame(0x01, &[b'a', 0xFF])),
            Err(Invalid::Utf8),
            "refused before the last fragment"
        );
        let mut reader = Reader::new(1024, &[]);
        assert_eq!(
            read_all(&mut reader, &frame(0x81, &[0xC3])),
            Err(Invalid::Utf8)
        );
    }

    #[test]
    fn breaking_the_rules_is_refused() {
        let cases: Vec<(Vec<u8>, Invalid)> = vec![
            (frame(0xC1, b"x"), Invalid::Protocol("reserved bits set")),
            (
                vec![0x81, 0x01, b'x'],
                Invalid::Protocol("client frame not masked"),
            ),
            (frame(0x83, b""), Invalid::Protocol("unknown opcode")),
            (
                frame(0x09, b""),
                Invalid::Protocol("fragmented control frame"),
            ),
            (
                frame(0x89, &[0; 126]),
                Invalid::Protocol("control frame too long"),
            ),
            (
                frame(0x80, b"x"),
                Invalid::Protocol("continuation of nothing"),
            ),
            (
                [frame(0x01, b"a"), frame(0x81, b"b")].concat(),
                Invalid::Protocol("new message inside a fragmented one"),
            ),
            (
                frame(0x88, &[3]),
                Invalid::Protocol("close frame of one byte"),
            ),
            (
                frame(0x88, &1005u16.to_be_bytes()),
                Invalid::Protocol("invalid close code"),
            ),
            (frame(0x88, &[0x03, 0xE8, 0xFF]), Invalid::Utf8),
        ];
        for (bytes, expected) in cases {
            let mut reader = Reader::new(1024, &[]);
            assert_eq!(read_all(&mut reader, &bytes), Err(expected), "{bytes:x?}");
        }
    }

    #[test]
    fn a_message_over_the_limit_is_refused_from_its_header() {
        let mut reader = Reader::new(10, &[]);
        let bytes = frame(0x81, &[b'a'; 11]);
        assert_eq!(read_all(&mut reader, &bytes[..4]), Err(Invalid::TooLarge));
        let mut reader = Reader::new(10, &[]);
        let mut bytes = frame(0x01, &[b'a'; 6]);
        bytes.extend(frame(0x80, &[b'a'; 5]));
        assert_eq!(read_all(&mut reader, &bytes), Err(Invalid::TooLarge));
    }

    #[test]
    fn close_frames_carry_their_code_and_reason() {
        let mut reader = Reader::new(1024, &[]);
        let mut bytes = frame(0x88, &[0x03, 0xE8, b'b', b'y', b'e']);
        bytes.extend(frame(0x88, b""));
        assert_eq!(
            read_all(&mut reader, &bytes).expect("valid"),
            vec![
                Message::Close(Some((1000, "bye".to_owned()))),
                Message::Close(None)
            ]
        );
    }

    #[test]
    fn server_headers_use_the_shortest_length_form() {
        let bytes = |len| {
            let (header, used) = header(TEXT, len);
            header[..used].to_vec()
        };
        assert_eq!(bytes(125), vec![0x81, 125]);
        assert_eq!(bytes(126), vec![0x81, 126, 0, 126]);
        assert_eq!(bytes(65_536), vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(header(BINARY, 1).0[0], 0x82);
    }

    #[test]
    fn close_reasons_are_cut_to_fit_at_a_character_boundary() {
        let payload = close_payload(1000, &"é".repeat(100));
        assert!(payload.len() <= MAX_CONTROL);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }
}
