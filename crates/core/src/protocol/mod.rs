//! The wire protocol of PROTOCOL.md: message types, decoding of client frames and encoding of server
//! frames. Pure functions over text; no I/O.

pub(crate) mod array;
mod decode;
mod encode;
mod error_code;
mod json;

pub use decode::{decode, DecodeError, Inbound, RequestId};
pub use encode::{
    error_body, error_frame, event_frame, request_frame, response_frame, session_frame,
    SessionEvent,
};
pub use error_code::ErrorCode;
pub use json::Json;

/// The subprotocol name a client may offer during the handshake.
pub const SUBPROTOCOL: &str = "helios.v1";

/// Longest accepted method name or topic, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// Longest accepted string request id, in bytes.
pub const MAX_ID_LEN: usize = 128;
