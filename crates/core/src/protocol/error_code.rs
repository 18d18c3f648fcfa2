//! Stable error codes carried in `error.code`, and the status each one answers with.

/// An error the server reports to a client, in a response or an `error` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A text frame that is not JSON.
    InvalidJson,
    /// JSON that is not a protocol message.
    InvalidMessage,
    /// A binary frame.
    UnsupportedFrame,
    /// A request whose method is missing, empty or too long.
    InvalidRequest,
    /// No method matches the request.
    MethodNotFound,
    /// A handler threw or rejected.
    HandlerError,
    /// A handler for a client event threw or rejected.
    EventHandlerError,
    /// The server is stopping.
    ShuttingDown,
    /// The client sends faster than its rate limit.
    RateLimited,
}

impl ErrorCode {
    /// The code's text, as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "INVALID_JSON",
            ErrorCode::InvalidMessage => "INVALID_MESSAGE",
            ErrorCode::UnsupportedFrame => "UNSUPPORTED_FRAME",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::MethodNotFound => "METHOD_NOT_FOUND",
            ErrorCode::HandlerError => "HANDLER_ERROR",
            ErrorCode::EventHandlerError => "EVENT_HANDLER_ERROR",
            ErrorCode::ShuttingDown => "SHUTTING_DOWN",
            ErrorCode::RateLimited => "RATE_LIMITED",
        }
    }

    /// The response status that goes with the code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidJson
            | ErrorCode::InvalidMessage
            | ErrorCode::UnsupportedFrame
            | ErrorCode::InvalidRequest => 400,
            ErrorCode::MethodNotFound => 404,
            ErrorCode::HandlerError | ErrorCode::EventHandlerError => 500,
            ErrorCode::ShuttingDown => 503,
            ErrorCode::RateLimited => 429,
        }
    }
}
