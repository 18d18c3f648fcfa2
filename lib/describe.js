'use strict';
// Text about whatever user code threw or passed, for log lines and for the errors clients receive.
// Describing must never throw: `throw Object.create(null)`, or an Error whose `message` getter throws,
// would otherwise turn one failed handler into a request never answered or, from a promise callback, an
// unhandled rejection that ends the process.

/** `value` as text, an Error by its message; never throws. */
function describe(value) {
  try {
    return String(value instanceof Error ? value.message : value);
  } catch {
    return `(${typeof value} that cannot be shown as text)`;
  }
}

/** Logs `error` under `what`; a value the console cannot show (Node's throws for some) is logged described. */
function logFailure(what, error) {
  try {
    console.error(what, error);
  } catch {
    console.error(what, describe(error));
  }
}

module.exports = { describe, logFailure };
