'use strict';
// A small event emitter for lifecycle and user events. A listener that throws or rejects is logged and
// never stops the other listeners (or the server).

class Emitter {
  #listeners = new Map();
  #onChange;

  /** @param {(name: string) => void} [onChange] told whenever the listeners of an event change */
  constructor(onChange) {
    this.#onChange = onChange;
  }

  /** Adds `listener` for `name`; returns `this`. */
  on(name, listener) {
    if (typeof listener !== 'function') throw new TypeError(`listener for '${String(name)}' must be a function`);
    const list = this.#listeners.get(name);
    if (list) list.push(listener);
    else this.#listeners.set(name, [listener]);
    this.#onChange?.(name);
    return this;
  }

  /** Adds `listener` for the next `name` only; returns `this`. */
  once(name, listener) {
    if (typeof listener !== 'function') throw new TypeError(`listener for '${String(name)}' must be a function`);
    const wrapper = (payload) => {
      this.off(name, wrapper);
      return listener(payload);
    };
    wrapper.listener = listener;
    return this.on(name, wrapper);
  }

  /** Removes `listener` (or every listener of `name` when none is given); returns `this`. */
  off(name, listener) {
    const list = this.#listeners.get(name);
    if (!list) return this;
    const kept = listener ? list.filter((l) => l !== listener && l.listener !== listener) : [];
    if (kept.length) this.#listeners.set(name, kept);
    else this.#listeners.delete(name);
    this.#onChange?.(name);
    return this;
  }

  /** Calls every listener of `name` with `payload`; returns whether there was any. */
  emit(name, payload) {
    const list = this.#listeners.get(name);
    if (!list) return false;
    for (const listener of [...list]) {
      try {
        const result = listener(payload);
        if (result && typeof result.then === 'function') {
          result.then(undefined, (error) => report(name, error));
        }
      } catch (error) {
        report(name, error);
      }
    }
    return true;
  }

  /** How many listeners `name` has. */
  listenerCount(name) {
    return this.#listeners.get(name)?.length ?? 0;
  }
}

function report(name, error) {
  console.error(`[helios] listener for '${String(name)}' failed:`, error);
}

module.exports = { Emitter };
