//! Reading JSON arrays element by element: the shape of calls, ops and cluster envelopes, whose elements
//! are decoded one at a time and whose raw JSON payloads are kept as they are.

use serde_json::value::RawValue;

/// Element `at` of `item`, decoded; the error names the element.
pub(crate) fn field<'a, T: serde::Deserialize<'a>>(
    item: &[&'a RawValue],
    at: usize,
) -> Result<T, String> {
    let raw = raw(item, at)?;
    serde_json::from_str(raw.get()).map_err(|error| format!("element {at}: {error}"))
}

/// Element `at` of `item`, as raw JSON.
pub(crate) fn raw<'a>(item: &[&'a RawValue], at: usize) -> Result<&'a RawValue, String> {
    item.get(at)
        .copied()
        .ok_or_else(|| format!("missing element {at}"))
}
