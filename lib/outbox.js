'use strict';
// Everything JavaScript sends goes through one outbox that is flushed to the native side once per
// microtask turn: one crossing carries every reply, event and request a batch produced, in order, one per
// line (the core's `app::op`). Replies are written here as finished frames, which the core sends as is.

const OP = { emit: 1, request: 2, close: 3, eventError: 4, roomVerdict: 5, ping: 6, upgrade: 7, routeEmit: 8, routeRequest: 9, roomQuery: 10, sessionData: 11 };

class Outbox {
  #native;
  // The flush's text in pieces, operations separated by '\n' pieces, joined once when it is handed over.
  #pieces = [];
  #scheduled = false;
  #flush = () => this.flush();

  constructor(native) {
    this.#native = native;
  }

  /** Queues one operation, already written as JSON array text (no raw line breaks, as JSON never has). */
  push(op) {
    this.#next();
    this.#pieces.push(op);
  }

  /**
   * Queues the response frame `{"type":"response","id":…,"status":…,"data"|"error":…}` for connection `key`.
   * It goes in as pieces, numbers as they are: the join writes them out once, so no line is built first.
   * `id` is the request id's JSON text or a number; `body` the JSON text of the result or error.
   */
  response(key, id, status, failed, body) {
    this.#next();
    if (status === 200) this.#pieces.push(key, RESPONSE, id, OK, body, '}');
    else this.#pieces.push(key, RESPONSE, id, STATUS, status, failed ? ERROR : DATA, body, '}');
  }

  /** Hands every queued operation to the native side now. */
  flush() {
    this.#scheduled = false;
    if (this.#pieces.length === 0) return;
    const text = this.#pieces.join('');
    // The array is kept for the next flush with the room it grew to, unless a rare flush made it large.
    if (this.#pieces.length > KEPT_PIECES) this.#pieces = [];
    else this.#pieces.length = 0;
    try {
      this.#native.apply(text);
    } catch (error) {
      // The core carried out every other operation; one it could not read is a bug on this side, not a
      // reason to fail the caller (a handler, a timer) or the process.
      console.error('[helios] the core refused an operation:', error);
    }
  }

  /** Starts an operation: a line break after the one before, or the flush's scheduling for the first. */
  #next() {
    if (this.#pieces.length > 0) this.#pieces.push('\n');
    else if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#flush);
    }
  }
}

/** Most pieces whose array a flush keeps for the next one (8 bytes each). */
const KEPT_PIECES = 65536;

const RESPONSE = ' {"type":"response","id":';
const OK = ',"status":200,"data":';
const STATUS = ',"status":';
const DATA = ',"data":';
const ERROR = ',"error":';

module.exports = { Outbox, OP };
