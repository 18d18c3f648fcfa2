'use strict';
// Everything JavaScript sends goes through one outbox that is flushed to the native side once per
// microtask turn: one crossing carries every reply, event and request a batch produced, in order, one per
// line (the core's `app::op`). Replies are written here as finished frames, which the core sends as is.

const OP = { emit: 1, request: 2, close: 3, eventError: 4, roomVerdict: 5, ping: 6, upgrade: 7, routeEmit: 8, routeRequest: 9, roomQuery: 10, sessionData: 11 };

class Outbox {
  #native;
  #ops = [];
  #scheduled = false;
  #flush = () => this.flush();

  constructor(native) {
    this.#native = native;
  }

  /** Queues one operation, already written as JSON array text (no raw line breaks, as JSON never has). */
  push(op) {
    this.#ops.push(op);
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#flush);
    }
  }

  /** Queues a frame for connection `key`: JSON object text, sent to the client as is. */
  frame(key, text) {
    this.push(key + ' ' + text);
  }

  /** Hands every queued operation to the native side now. */
  flush() {
    this.#scheduled = false;
    if (this.#ops.length === 0) return;
    const text = this.#ops.join('\n');
    this.#ops = [];
    this.#native.apply(text);
  }
}

module.exports = { Outbox, OP };
