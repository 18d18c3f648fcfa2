//! The WebSocket opening handshake (RFC 6455 §4.2): checks the client's upgrade request and writes the
//! server's answer.

use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::protocol::SUBPROTOCOL;

/// Why an upgrade request cannot be answered with a WebSocket.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not a valid WebSocket request (400).
    Malformed(&'static str),
    /// A WebSocket version other than 13 (426, naming the one we speak).
    Version,
}

/// The upgrade request's headers that matter here, lowercase names, values as sent.
pub(crate) struct Request<'a> {
    pub(crate) connection: Option<&'a str>,
    pub(crate) version: Option<&'a str>,
    pub(crate) key: Option<&'a str>,
    pub(crate) protocols: Option<&'a str>,
}

/// The `101 Switching Protocols` answer to a valid upgrade request; it takes our subprotocol when the
/// client offers it.
pub(crate) fn answer(request: &Request<'_>) -> Result<String, Refused> {
    let upgrade = request.connection.is_some_and(|value| {
        value
            .split(',')
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
    });
    if !upgrade {
        return Err(Refused::Malformed("missing 'Connection: Upgrade'"));
    }
    if request.version.map(str::trim) != Some("13") {
        return Err(Refused::Version);
    }
    let key = request
        .key
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .ok_or(Refused::Malformed("missing Sec-WebSocket-Key"))?;
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: {}\r\n",
        derive_accept_key(key.as_bytes())
    );
    let offered = request.protocols.is_some_and(|value| {
        value
            .split(',')
            .any(|protocol| protocol.trim() == SUBPROTOCOL)
    });
    if offered {
        response.push_str("sec-websocket-protocol: ");
        response.push_str(SUBPROTOCOL);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(version: &'a str, protocols: Option<&'a str>) -> Request<'a> {
        Request {
            connection: Some("keep-alive, Upgrade"),
            version: Some(version),
            key: Some("dGhlIHNhbXBsZSBub25jZQ=="),
            protocols,
        }
    }

    #[test]
    fn answers_with_the_accept_key_of_the_rfc_example() {
        let answer = answer(&request("13", None)).expect("valid");
        assert!(answer.starts_with("HTTP/1.1 101 "));
        assert!(answer.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(!answer.contains("sec-websocket-protocol"));
        assert!(answer.ends_with("\r\n\r\n"));
    }

    #[test]
    fn takes_our_subprotocol_only_when_offered() {
        let offered = format!("other, {SUBPROTOCOL}");
        let answer = answer(&request("13", Some(&offered))).expect("valid");
        assert!(answer.contains(&format!("sec-websocket-protocol: {SUBPROTOCOL}\r\n")));
        let answer = super::answer(&request("13", Some("other"))).expect("valid");
        assert!(!answer.contains("sec-websocket-protocol"));
    }

    #[test]
    fn refuses_other_versions_and_missing_headers() {
        assert_eq!(answer(&request("8", None)), Err(Refused::Version));
        let mut no_key = request("13", None);
        no_key.key = None;
        assert!(matches!(answer(&no_key), Err(Refused::Malformed(_))));
        let mut no_upgrade = request("13", None);
        no_upgrade.connection = Some("keep-alive");
        assert!(matches!(answer(&no_upgrade), Err(Refused::Malformed(_))));
    }
}
