//! The one place where core errors become JavaScript errors.

use std::fmt::Display;

/// Wraps any core error as a JavaScript `Error` carrying its message.
pub(crate) fn to_js(error: impl Display) -> napi::Error {
    napi::Error::from_reason(error.to_string())
}
