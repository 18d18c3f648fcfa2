'use strict';
// Deadlines for many pending things with one timer: a handler timeout per request would cost a timer
// each; here a single sweep runs only while something is waiting.

/** The longest delay a timer can wait, in ms: past it `setTimeout` fires at once. */
const MAX_DELAY = 2 ** 31 - 1;

/** Whether `ms` is a delay timers can wait: a number of ms from 0 to `MAX_DELAY`. */
function isDelay(ms) {
  return typeof ms === 'number' && ms >= 0 && ms <= MAX_DELAY;
}

class Deadlines {
  /** Waiting entries, in the order they were added (so deadlines of one length come out in order). */
  #entries = new Set();
  #timer = null;

  /** Calls `expire` after about `ms` ms unless it has been forgotten; returns a function that forgets it. */
  watch(ms, expire) {
    const entry = { at: performance.now() + ms, expire };
    this.#entries.add(entry);
    if (!this.#timer) {
      // Coarse on purpose: a deadline fires within a tenth of its length (at most 250 ms) of its time.
      const every = Math.max(10, Math.min(250, Math.floor(ms / 10)));
      this.#timer = setInterval(() => this.#sweep(), every);
      // Waiting handlers must not keep a stopped server's process alive.
      this.#timer.unref?.();
    }
    return () => this.#entries.delete(entry);
  }

  #sweep() {
    const now = performance.now();
    for (const entry of this.#entries) {
      if (entry.at > now) continue;
      this.#entries.delete(entry);
      entry.expire();
    }
    if (this.#entries.size === 0) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }
}

module.exports = { Deadlines, MAX_DELAY, isDelay };
