//! Property tests of the frame reader: random messages, cut into random fragments with control frames
//! between them, masked with random keys and delivered in random pieces, read back as the messages sent.

use proptest::prelude::*;
use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

use super::frame::tests::masked;
use super::frame::{Message, Reader, BINARY, CONTINUATION, PING, TEXT};

/// A message a client sends, and where its payload is cut into frames.
#[derive(Debug, Clone)]
struct Sent {
    text: bool,
    payload: Vec<u8>,
    /// Frame boundaries, as offsets into the payload.
    cuts: Vec<usize>,
    /// A ping goes between this message's first and second frame.
    ping_inside: bool,
}

fn sent() -> impl Strategy<Value = Sent> {
    (
        any::<bool>(),
        // Text made of any characters, so fragments split characters too; binary of any bytes.
        prop_oneof![
            "\\PC{0,80}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..400),
        ],
        proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(text, payload, cuts, ping_inside)| {
            let text = text && std::str::from_utf8(&payload).is_ok();
            let mut cuts: Vec<usize> = cuts
                .iter()
                .map(|cut| cut.index(payload.len() + 1))
                .collect();
            cuts.sort_unstable();
            cuts.dedup();
            Sent {
                text,
                payload,
                cuts,
                ping_inside,
            }
        })
}

/// One masked client frame.
fn frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    masked(if fin { 0x80 } else { 0 } | opcode, payload, mask)
}

/// The bytes of `messages` on the wire, and what the reader must make of them.
fn encode(messages: &[Sent], mask: [u8; 4]) -> (Vec<u8>, Vec<Message>) {
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for message in messages {
        let mut bounds = vec![0];
        bounds.extend(message.cuts.iter().copied().filter(|&cut| cut > 0));
        bounds.push(message.payload.len());
        bounds.dedup();
        let pieces: Vec<&[u8]> = if bounds.len() < 2 {
            vec![&message.payload[..]]
        } else {
            bounds
                .windows(2)
                .map(|w| &message.payload[w[0]..w[1]])
                .collect()
        };
        for (index, piece) in pieces.iter().enumerate() {
            let opcode = match (index, message.text) {
                (0, true) => TEXT,
                (0, false) => BINARY,
                _ => CONTINUATION,
            };
            wire.extend(frame(index + 1 == pieces.len(), opcode, piece, mask));
            if index == 0 && message.ping_inside && pieces.len() > 1 {
                wire.extend(frame(true, PING, b"p", mask));
                expected.push(Message::Ping(Bytes::from_static(b"p")));
            }
        }
        expected.push(if message.text {
            Message::Text(Utf8Bytes::from(
                String::from_utf8(message.payload.clone()).unwrap_or_default(),
            ))
        } else {
            Message::Binary(Bytes::from(message.payload.clone()))
        });
    }
    (wire, expected)
}

proptest! {
    #[test]
    fn messages_arrive_whole_and_in_order_however_the_bytes_are_cut(
        messages in proptest::collection::vec(sent(), 1..6),
        mask in any::<[u8; 4]>(),
        reads in proptest::collection::vec(1usize..300, 1..40),
    ) {
        let (wire, expected) = encode(&messages, mask);
        let mut reader = Reader::new(1 << 20, &[]);
        let mut received = Vec::new();
        let mut at = 0;
        let mut sizes = reads.iter().cycle();
        while at < wire.len() {
            let size = (*sizes.next().unwrap_or(&1)).min(wire.len() - at);
            reader.push(&wire[at..at + size]);
            at += size;
            while let Some(message) = reader.next().expect("valid frames") {
                received.push(message);
            }
        }
        prop_assert_eq!(received, expected);
    }
}
