//! Raw JSON text that is known to hold one value, and the check that makes it so without a parser: a
//! request's id and payload cross to the application as the client wrote them, so they are only checked,
//! never rebuilt.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// Text that holds exactly one JSON value, embedded as it stands in the frames and calls that carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Json<'a>(&'a str);

impl<'a> Json<'a> {
    /// JSON `null`.
    pub const NULL: Json<'static> = Json("null");

    /// `text` when it is one JSON value written plainly; `None` when it is not, and also for some valid
    /// values the check leaves to serde_json (nesting deeper than 64 levels, `\u` escapes of
    /// surrogates, white space around the value). What it accepts, every JSON parser accepts.
    pub fn check(text: &'a str) -> Option<Self> {
        (value(text.as_bytes()) == Some(text.len())).then_some(Json(text))
    }

    /// The JSON text.
    pub fn get(self) -> &'a str {
        self.0
    }
}

impl<'a> From<&'a RawValue> for Json<'a> {
    fn from(raw: &'a RawValue) -> Self {
        Json(raw.get())
    }
}

impl Serialize for Json<'_> {
    /// serde_json embeds text as it stands only through its `RawValue`, which it makes by parsing: this is
    /// for the rare frames (errors, room answers); the common ones embed the text by hand.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<&RawValue>(self.0) {
            Ok(raw) => raw.serialize(serializer),
            Err(_) => serializer.serialize_unit(),
        }
    }
}

/// Deepest nesting [`Json::check`] follows (serde_json's own limit is 128); one bit each.
const MAX_DEPTH: usize = 64;

/// The end of the value that starts `bytes`, if one does.
fn value(bytes: &[u8]) -> Option<usize> {
    // One bit per open array (0) or object (1), the innermost lowest.
    let mut open: u64 = 0;
    let mut depth = 0;
    let mut at = 0;
    'value: loop {
        at = match *bytes.get(at)? {
            first @ (b'{' | b'[') => {
                let object = first == b'{';
                at = space(bytes, at + 1);
                if bytes.get(at) == Some(if object { &b'}' } else { &b']' }) {
                    at + 1
                } else {
                    if depth == MAX_DEPTH {
                        return None;
                    }
                    open = open << 1 | u64::from(object);
                    depth += 1;
                    if object {
                        at = key(bytes, at)?;
                    }
                    continue 'value;
                }
            }
            b'"' => string(bytes, at)?,
            b't' => literal(bytes, at, b"true")?,
            b'f' => literal(bytes, at, b"false")?,
            b'n' => literal(bytes, at, b"null")?,
            _ => number(bytes, at)?,
        };
        // After a value: the next element, or the end of the arrays and objects it closes.
        while depth > 0 {
            at = space(bytes, at);
            let object = open & 1 == 1;
            match *bytes.get(at)? {
                b',' => {
                    at = space(bytes, at + 1);
                    if object {
                        at = key(bytes, at)?;
                    }
                    continue 'value;
                }
                b'}' if object => {}
                b']' if !object => {}
                _ => return None,
            }
            open >>= 1;
            depth -= 1;
            at += 1;
        }
        return Some(at);
    }
}

/// An object's key and its colon, followed by the start of the value.
fn key(bytes: &[u8], at: usize) -> Option<usize> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let at = space(bytes, string(bytes, at)?);
    (bytes.get(at) == Some(&b':')).then(|| space(bytes, at + 1))
}

fn space(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

fn literal(bytes: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    bytes[at..].starts_with(word).then_some(at + word.len())
}

/// The bytes that end a string's plain run: its quote, an escape, a control character.
const STOPS: [bool; 256] = {
    let mut stops = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        stops[byte] = true;
        byte += 1;
    }
    stops[b'"' as usize] = true;
    stops[b'\\' as usize] = true;
    stops
};

/// The end of the string whose opening quote is at `at`. The text is UTF-8 already; only quotes,
/// escapes and control characters matter.
fn string(bytes: &[u8], at: usize) -> Option<usize> {
    let mut at = at + 1;
    loop {
        at += bytes
            .get(at..)?
            .iter()
            .position(|&byte| STOPS[usize::from(byte)])?;
        match bytes[at] {
            b'"' => return Some(at + 1),
            b'\\' => at += escape(bytes.get(at + 1..)?)?,
            _ => return None,
        }
    }
}

/// The length of the escape whose backslash comes just before `rest`, backslash included.
fn escape(rest: &[u8]) -> Option<usize> {
    match rest {
        [b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't', ..] => Some(2),
        // Surrogates are left to serde_json, which checks that they pair.
        [b'u', b'd' | b'D', b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F', ..] => None,
        [b'u', hex @ ..] if hex.len() >= 4 && hex[..4].iter().all(u8::is_ascii_hexdigit) => Some(6),
        _ => None,
    }
}

/// The end of the number that starts at `at`: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn number(bytes: &[u8], at: usize) -> Option<usize> {
    // The end of the digits from `at` on; at least one.
    let digits = |at: usize| {
        let count = bytes
            .get(at..)?
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        (count > 0).then_some(at + count)
    };
    let mut at = at + usize::from(bytes.get(at) == Some(&b'-'));
    at = match bytes.get(at)? {
        b'0' => at + 1,
        b'1'..=b'9' => digits(at)?,
        _ => return None,
    };
    if bytes.get(at) == Some(&b'.') {
        at = digits(at + 1)?;
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        at = digits(at)?;
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_json_stringify_writes() {
        for text in [
            "0",
            "-0.5e+10",
            "12.25E-3",
            "true",
            "false",
            "null",
            r#""""#,
            r#""é \" \\ \/ \b\f\n\r\t \u00e9 \u20AC""#,
            "[]",
            "{}",
            r#"{"name":"bench","n":42,"tags":["a","b"],"ok":true}"#,
            r#"[1,[2,[3,{"a":[{}]}]],"x"]"#,
            "[ 1 , { \"a\" :\n2 } ]",
        ] {
            assert_eq!(Json::check(text).map(Json::get), Some(text), "{text}");
            assert!(serde_json::from_str::<&RawValue>(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_one_json_value() {
        for text in [
            "",
            " ",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "tru",
            "nul",
            "True",
            "NaN",
            "1 2",
            "[1,]",
            "[,1]",
            "{,}",
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{a:1}"#,
            "{1:1}",
            "[1}",
            r#"{"a":1]"#,
            "[",
            "]",
            r#"""#,
            r#""\x""#,
            r#""\u12""#,
            r#""\u12G4""#,
            "\"a\tb\"",
            "\"\u{1}\"",
            "[1]]",
            "{}}",
            "'a'",
        ] {
            assert_eq!(Json::check(text), None, "{text:?}");
        }
    }

    #[test]
    fn leaves_the_rarer_valid_forms_to_serde_json() {
        let nesting = |depth| format!("{}0{}", "[".repeat(depth), "]".repeat(depth));
        let (nested, deep) = (nesting(MAX_DEPTH), nesting(MAX_DEPTH + 1));
        assert!(Json::check(&nested).is_some());
        for text in [" 1", "1 ", r#""\ud83d\ude00""#, &deep] {
            assert_eq!(Json::check(text), None, "{text}");
            assert!(serde_json::from_str::<&RawValue>(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn agrees_with_serde_json_on_every_short_text_of_json_characters() {
        // Every text of up to 4 bytes over an alphabet of JSON's structural characters: whatever the check
        // accepts, serde_json accepts too.
        let alphabet = b"{}[]\",:01-.e \\tnu";
        let mut texts = vec![Vec::new()];
        for _ in 0..4 {
            let longer: Vec<Vec<u8>> = texts
                .iter()
                .flat_map(|text: &Vec<u8>| {
                    alphabet.iter().map(move |&b| {
                        let mut text = text.clone();
                        text.push(b);
                        text
                    })
                })
                .collect();
            for text in &longer {
                let text = std::str::from_utf8(text).expect("ascii");
                if Json::check(text).is_some() {
                    assert!(serde_json::from_str::<&RawValue>(text).is_ok(), "{text}");
                }
            }
            texts = longer;
        }
    }
}
