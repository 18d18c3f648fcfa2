//! Property tests of the replay buffer: random pushes and acks under random bounds, checked against a
//! model of what the buffer must still hold.

use proptest::prelude::*;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::replay::Replay;

/// One thing that happens to a session's buffer.
#[derive(Debug, Clone)]
enum Step {
    /// A counted frame of `pad` extra bytes goes out.
    Push(usize),
    /// The client acknowledges a count (possibly beyond what was sent).
    Ack(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0usize..12).prop_map(Step::Push),
        1 => (0u64..48).prop_map(Step::Ack),
    ]
}

/// Frame `number`: its number first, so the frames are all different.
fn frame(number: u64, pad: usize) -> String {
    format!("{number}:{}", "x".repeat(pad))
}

/// What the buffer must hold: the longest run of the newest unacknowledged frames within both bounds
/// (the byte bound never empties it). Returns the number of the first frame held and the frames.
fn model_held(
    sent: &[String],
    acked: u64,
    max_messages: usize,
    max_bytes: usize,
) -> (u64, Vec<String>) {
    let max_messages = max_messages.max(1);
    let (mut count, mut bytes) = (0, 0);
    let mut first = sent.len() as u64 + 1;
    for number in (acked + 1..=sent.len() as u64).rev() {
        let size = sent[number as usize - 1].len();
        if count + 1 > max_messages || (bytes + size > max_bytes && count + 1 > 1) {
            break;
        }
        count += 1;
        bytes += size;
        first = number;
    }
    (first, sent[first as usize - 1..].to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn since_returns_what_is_held_after_the_count_and_reports_gaps(
        max_messages in 0usize..7,
        max_bytes in prop_oneof![0usize..40, Just(usize::MAX)],
        steps in prop::collection::vec(step(), 0..40),
    ) {
        let mut replay = Replay::new(max_messages, max_bytes);
        let mut sent: Vec<String> = Vec::new();
        // Every frame numbered this or lower has been acknowledged.
        let mut acked = 0;
        for step in steps {
            match step {
                Step::Push(pad) => {
                    let text = frame(sent.len() as u64 + 1, pad);
                    replay.push(Utf8Bytes::from(text.clone()));
                    sent.push(text);
                }
                Step::Ack(seq) => {
                    replay.ack(seq);
                    // An ack covers only frames already sent.
                    acked = acked.max(seq.min(sent.len() as u64));
                }
            }
            let last = sent.len() as u64;
            prop_assert_eq!(replay.next_seq(), last + 1);
            let (first, held) = model_held(&sent, acked, max_messages, max_bytes);
            for count in 0..=last + 2 {
                let since = replay.since(count);
                let got: Vec<&str> = since.frames.iter().map(|frame| frame.as_str()).collect();
                // A count beyond what was sent means everything was processed.
                let clamped = count.min(last);
                let skip = (clamped + 1).saturating_sub(first) as usize;
                let expected: Vec<&str> = held.iter().skip(skip).map(String::as_str).collect();
                prop_assert_eq!(&got, &expected, "since({})", count);
                // A gap: some frame after the count is no longer held.
                prop_assert_eq!(since.gap, (clamped + 1..=last).any(|n| n < first), "since({})", count);
            }
        }
    }
}
