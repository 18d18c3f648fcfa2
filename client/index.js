/**
 * Starling: the Helios WebSocket client for browsers, Bun and Node.
 *
 * Speaks the Helios wire protocol version 1 (see PROTOCOL.md): JSON text frames of type
 * `request`, `response`, `event` and `error`. This file has no imports so it can be served
 * as-is to a browser and loaded by any runtime that has a WebSocket class.
 *
 * @module @aionbuilders/helios/client
 */

/** Subprotocol for protocol version 1; always offered so the server knows which version we speak. */
const SUBPROTOCOL = 'helios.v1';

/** WebSocket readyState values, identical in browsers, Bun and the `ws` package. */
const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;
const STATE_NAMES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/**
 * The connection is not open, or closed before an answer arrived.
 * `code` and `reason` are the WebSocket close code and reason when known.
 */
export class ConnectionClosedError extends Error {
  /**
   * @param {string} message
   * @param {{ code?: number, reason?: string, method?: string, id?: number }} [details]
   */
  constructor(message, details = {}) {
    super(message);
    this.name = 'ConnectionClosedError';
    /** @type {number | undefined} */
    this.code = details.code;
    /** @type {string | undefined} */
    this.reason = details.reason;
    /** @type {string | undefined} */
    this.method = details.method;
    /** @type {number | undefined} */
    this.id = details.id;
  }
}

/** A request got no response within its timeout. */
export class RequestTimeoutError extends Error {
  /**
   * @param {string} method
   * @param {number} id
   * @param {number} timeout milliseconds waited
   */
  constructor(method, id, timeout) {
    super(`Request '${method}' (id ${id}) timed out after ${timeout} ms`);
    this.name = 'RequestTimeoutError';
    this.method = method;
    this.id = id;
    this.timeout = timeout;
  }
}

/** Thrown by `request(..., { throwOnError: true })` when the server answered with status >= 400. */
export class ResponseError extends Error {
  /**
   * @param {Response} response the error response
   * @param {string} method the method that was called
   */
  constructor(response, method) {
    const error = response.error || { code: 'UNKNOWN_ERROR', message: '' };
    super(
      `Request '${method}' failed with status ${response.status}` +
        (error.code ? ` (${error.code})` : '') +
        (error.message ? `: ${error.message}` : '')
    );
    this.name = 'ResponseError';
    this.response = response;
    this.method = method;
    this.status = response.status;
    this.code = error.code;
  }
}

// ---------------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------------

/**
 * The answer to a request. Also returned by client method handlers to choose the status
 * (and error) of their answer to the server.
 * @template [T=any]
 */
export class Response {
  /**
   * @param {{ id?: string | number | null, status?: number, data?: T | null,
   *           error?: { code: string, message: string, [key: string]: any } | null }} [init]
   */
  constructor({ id = null, status = 200, data = null, error = null } = {}) {
    /** @type {string | number | null} the request's id */
    this.id = id;
    /** @type {number} HTTP-like status: 2xx success, 4xx bad request, 5xx handler failure */
    this.status = status;
    /** @type {T | null} the result; null for error responses */
    this.data = data === undefined ? null : data;
    /** @type {{ code: string, message: string, [key: string]: any } | null} */
    this.error = error === undefined ? null : error;
  }

  /** @returns {boolean} true when status < 400 */
  isSuccess() {
    return this.status < 400;
  }

  /** @returns {boolean} true when status >= 400 */
  isError() {
    return this.status >= 400;
  }

  /**
   * Builds a Response from a protocol `response` message, tolerating a missing `error`
   * on an error status so callers can always read `response.error.message`.
   * @param {any} message
   * @returns {Response}
   * @internal
   */
  static fromMessage(message) {
    const status = message.status;
    let error = null;
    if (status >= 400) {
      error = isObject(message.error)
        ? message.error
        : { code: 'UNKNOWN_ERROR', message: `Request failed with status ${status}` };
    }
    return new Response({
      id: message.id,
      status,
      data: status < 400 && message.data !== undefined ? message.data : null,
      error,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** @param {unknown} value */
function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A request id per PROTOCOL.md: a string or a non-negative safe integer. */
function isValidId(value) {
  return (
    typeof value === 'string' || (Number.isSafeInteger(value) && /** @type {number} */ (value) >= 0)
  );
}

/** @param {unknown} error */
function errorMessage(error) {
  if (error && typeof error === 'object' && 'message' in error) return String(error.message);
  return String(error);
}

/** Errors we create carry a protocol-style `code` so listeners can switch on it. */
function codedError(code, message, cause) {
  const error = new Error(message, cause === undefined ? undefined : { cause });
  /** @type {any} */ (error).code = code;
  return error;
}

/**
 * Last resort for errors thrown by 'error' listeners themselves: re-emitting would loop, and
 * swallowing would hide bugs. console.error rather than reportError, which Bun treats as an
 * uncaught exception (exit code 1).
 */
function reportUnhandled(error) {
  if (typeof console !== 'undefined') console.error(error);
}

/** Calls a listener, routing sync throws and async rejections to `onError`. */
function safeCall(fn, args, onError) {
  try {
    const result = fn(...args);
    if (result && typeof result.then === 'function') result.then(undefined, onError);
  } catch (error) {
    onError(error);
  }
}

/**
 * Splits and validates a pattern. Throws on patterns that can never match so mistakes show
 * at registration instead of as silently ignored messages.
 * @param {string} pattern
 * @param {string} separator
 * @param {string} kind 'topic' or 'method', for messages
 * @returns {string[]}
 */
function parsePattern(pattern, separator, kind) {
  if (typeof pattern !== 'string' || pattern === '') {
    throw new TypeError(`A ${kind} pattern must be a non-empty string`);
  }
  const segments = pattern.split(separator);
  const last = segments.length - 1;
  segments.forEach((segment, index) => {
    if (segment === '**' && index !== last) {
      throw new TypeError(`Invalid ${kind} pattern '${pattern}': '**' may only stand last`);
    }
  });
  return segments;
}

/**
 * Pattern matching per PROTOCOL.md: a literal matches itself, `*` one non-empty segment,
 * `**` (last only) one or more non-empty segments.
 * @param {string[]} pattern
 * @param {string[]} parts
 */
function matchSegments(pattern, parts) {
  for (let i = 0; i < pattern.length; i++) {
    const segment = pattern[i];
    if (segment === '**') {
      if (parts.length <= i) return false;
      for (let j = i; j < parts.length; j++) if (parts[j] === '') return false;
      return true;
    }
    if (i >= parts.length) return false;
    if (segment === '*') {
      if (parts[i] === '') return false;
    } else if (segment !== parts[i]) {
      return false;
    }
  }
  return pattern.length === parts.length;
}

/** Specificity rank of one segment: literal > `*` > `**`. */
function segmentRank(segment) {
  return segment === '**' ? 0 : segment === '*' ? 1 : 2;
}

/**
 * True when pattern `a` is more specific than `b`: compared left to right, literal beats
 * `*` beats `**`; when one is a prefix-equal of the other, the longer wins.
 */
function moreSpecific(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const diff = segmentRank(a[i]) - segmentRank(b[i]);
    if (diff !== 0) return diff > 0;
  }
  return a.length > b.length;
}

// ---------------------------------------------------------------------------------------------
// Emitters
// ---------------------------------------------------------------------------------------------

/**
 * Minimal named-event emitter (no dependency on Node's `events` or the DOM's EventTarget, so
 * it behaves the same everywhere). A throwing listener never stops the others.
 * @template {Record<string, any>} [Events=Record<string, any>]
 */
export class EventEmitter {
  /** @type {Map<keyof Events, Array<{ listener: Function, once: boolean }>>} */
  #listeners = new Map();
  /** @type {(error: unknown, name: keyof Events) => void} */
  #onError;

  /**
   * @param {{ onError?: (error: unknown, name: keyof Events) => void }} [options]
   *   where listener errors go; by default `console.error`.
   */
  constructor({ onError } = {}) {
    this.#onError = onError || ((error) => reportUnhandled(error));
  }

  /**
   * Adds a listener.
   * @template {keyof Events} K
   * @param {K} name
   * @param {(payload: Events[K]) => void} listener
   * @returns {() => void} removes this listener
   */
  on(name, listener) {
    return this.#add(name, listener, false);
  }

  /**
   * Adds a listener that runs at most once.
   * @template {keyof Events} K
   * @param {K} name
   * @param {(payload: Events[K]) => void} listener
   * @returns {() => void} removes this listener
   */
  once(name, listener) {
    return this.#add(name, listener, true);
  }

  /**
   * Removes a listener (every registration of it under `name`).
   * @template {keyof Events} K
   * @param {K} name
   * @param {(payload: Events[K]) => void} listener
   */
  off(name, listener) {
    const list = this.#listeners.get(name);
    if (!list) return;
    const kept = list.filter((entry) => entry.listener !== listener);
    if (kept.length) this.#listeners.set(name, kept);
    else this.#listeners.delete(name);
  }

  /**
   * Calls every listener of `name` in registration order.
   * @template {keyof Events} K
   * @param {K} name
   * @param {Events[K]} payload
   * @returns {boolean} whether any listener ran
   */
  emit(name, payload) {
    const list = this.#listeners.get(name);
    if (!list || list.length === 0) return false;
    // Snapshot: listeners may add or remove listeners while we iterate.
    for (const entry of list.slice()) {
      if (entry.once) this.#remove(name, entry);
      safeCall(entry.listener, [payload], (error) => this.#onError(error, name));
    }
    return true;
  }

  /**
   * @param {keyof Events} name
   * @returns {number}
   */
  listenerCount(name) {
    return this.#listeners.get(name)?.length ?? 0;
  }

  #add(name, listener, once) {
    if (typeof listener !== 'function') throw new TypeError('The listener must be a function');
    const entry = { listener, once };
    const list = this.#listeners.get(name);
    if (list) list.push(entry);
    else this.#listeners.set(name, [entry]);
    return () => this.#remove(name, entry);
  }

  #remove(name, entry) {
    const list = this.#listeners.get(name);
    if (!list) return;
    const index = list.indexOf(entry);
    if (index !== -1) list.splice(index, 1);
    if (list.length === 0) this.#listeners.delete(name);
  }
}

/**
 * Handlers registered under topic patterns (`chat:*`, `chat:**`). Every handler whose pattern
 * matches a topic runs, in registration order; a throwing handler never stops the others.
 */
export class TopicEmitter {
  /** @type {Array<{ pattern: string, segments: string[], handler: Function, once: boolean }>} */
  #entries = [];
  /** @type {(error: unknown, topic: string) => void} */
  #onError;

  /**
   * @param {{ onError?: (error: unknown, topic: string) => void }} [options]
   *   where handler errors go; by default `console.error`.
   */
  constructor({ onError } = {}) {
    this.#onError = onError || ((error) => reportUnhandled(error));
  }

  /**
   * Runs `handler(data, context)` for every event whose topic matches `pattern`.
   * @param {string} pattern topic or pattern, segments separated by `:`
   * @param {(data: any, context: any) => unknown} handler
   * @returns {() => void} removes this registration
   */
  on(pattern, handler) {
    return this.#add(pattern, handler, false);
  }

  /**
   * Like `on`, but the handler runs for the first matching event only.
   * @param {string} pattern
   * @param {(data: any, context: any) => unknown} handler
   * @returns {() => void} removes this registration
   */
  once(pattern, handler) {
    return this.#add(pattern, handler, true);
  }

  /**
   * Removes `handler` registered under exactly `pattern` (every such registration).
   * @param {string} pattern
   * @param {(data: any, context: any) => unknown} handler
   */
  off(pattern, handler) {
    this.#entries = this.#entries.filter(
      (entry) => !(entry.pattern === pattern && entry.handler === handler)
    );
  }

  /**
   * Removes every handler registered under exactly `pattern`, or every handler at all when
   * no pattern is given.
   * @param {string} [pattern]
   */
  offAll(pattern) {
    this.#entries =
      pattern === undefined ? [] : this.#entries.filter((entry) => entry.pattern !== pattern);
  }

  /**
   * Runs the handlers matching `topic` (locally; nothing is sent).
   * @param {string} topic
   * @param {any} data
   * @param {any} [context] passed as the handlers' second argument; defaults to `{ topic }`
   * @returns {number} how many handlers ran
   */
  dispatch(topic, data, context = { topic }) {
    const parts = topic.split(':');
    let count = 0;
    // Snapshot: handlers may register or remove handlers while we iterate.
    for (const entry of this.#entries.slice()) {
      if (!matchSegments(entry.segments, parts)) continue;
      if (entry.once) this.#entries = this.#entries.filter((e) => e !== entry);
      count++;
      safeCall(entry.handler, [data, context], (error) => this.#onError(error, topic));
    }
    return count;
  }

  /**
   * @param {string} [topic] when given, counts only handlers matching this topic
   * @returns {number}
   */
  listenerCount(topic) {
    if (topic === undefined) return this.#entries.length;
    const parts = topic.split(':');
    return this.#entries.filter((entry) => matchSegments(entry.segments, parts)).length;
  }

  #add(pattern, handler, once) {
    if (typeof handler !== 'function') throw new TypeError('The handler must be a function');
    const entry = { pattern, segments: parsePattern(pattern, ':', 'topic'), handler, once };
    this.#entries.push(entry);
    return () => {
      this.#entries = this.#entries.filter((e) => e !== entry);
    };
  }
}

/** Client-side methods the server may call, resolved by specificity (PROTOCOL.md, Patterns). */
class MethodRegistry {
  /** @type {Map<string, { pattern: string, segments: string[], handler: Function }>} */
  #methods = new Map();

  add(pattern, handler) {
    if (typeof handler !== 'function') throw new TypeError('The method handler must be a function');
    const entry = { pattern, segments: parsePattern(pattern, '.', 'method'), handler };
    this.#methods.set(pattern, entry);
    return entry;
  }

  remove(pattern, entry) {
    if (entry === undefined || this.#methods.get(pattern) === entry) this.#methods.delete(pattern);
  }

  /** @param {string} name */
  find(name) {
    // An exact literal registration is always the most specific match.
    const exact = this.#methods.get(name);
    if (exact && !exact.segments.some((s) => s === '*' || s === '**')) return exact;
    const parts = name.split('.');
    let best = null;
    for (const entry of this.#methods.values()) {
      if (!matchSegments(entry.segments, parts)) continue;
      if (!best || moreSpecific(entry.segments, best.segments)) best = entry;
    }
    return best;
  }
}

// ---------------------------------------------------------------------------------------------
// Starling
// ---------------------------------------------------------------------------------------------

/**
 * A connection to a Helios server.
 *
 * @example
 * const starling = new Starling({ url: 'ws://localhost:3000' });
 * await starling.connect();
 * const response = await starling.request('user.get', { userId: 42 });
 */
export class Starling {
  /** Constructor options merged with defaults and any `connect(options)` overrides. */
  #options;
  /** The current socket; null when never connected or after it closed. */
  #ws = null;
  /** Pending `connect()` promise while CONNECTING, so concurrent calls share one socket. */
  #connecting = null;
  /** Resolves when the current socket has closed. */
  #closed = Promise.resolve();
  /** While CONNECTING: fails the pending `connect()` (used by `close()`). */
  #abortConnect = null;
  #nextId = 0;
  /** @type {Map<number, { method: string, resolve: Function, reject: Function, timer: any }>} */
  #pending = new Map();
  #methods = new MethodRegistry();

  /**
   * Connection events: 'open', 'close', 'error', 'message' (every raw frame), and in
   * permissive mode 'text' / 'json' / 'binary' for frames that are not protocol messages.
   * Listen to 'error': handler failures and server `error` messages are reported there only.
   */
  events = new EventEmitter({
    onError: (error, name) => {
      // An 'error' listener that throws must not re-enter 'error' forever.
      if (name === 'error') reportUnhandled(error);
      else this.#reportError({ error });
    },
  });

  /** Handlers for events the server sends, by topic pattern (`chat:*`, `chat:**`). */
  topics = new TopicEmitter({
    onError: (error, topic) => this.#reportError({ error, topic }),
  });

  /**
   * @param {object} options
   * @param {string | URL} options.url server URL, `ws://…` or `wss://…`
   * @param {string | string[]} [options.protocols] extra subprotocols, offered after `helios.v1`
   * @param {number} [options.timeout=10000] connection timeout in ms (0 or Infinity: none)
   * @param {number} [options.requestTimeout=5000] default request timeout in ms (0 or Infinity: none)
   * @param {'strict' | 'permissive'} [options.parseMode='strict'] what to do with frames that are
   *   not protocol messages: 'strict' reports an 'error' event, 'permissive' emits 'text' / 'json' / 'binary'
   * @param {any} [options.WebSocket] WebSocket class to use (e.g. `ws`'s in Node 20, which has
   *   no global one); defaults to `globalThis.WebSocket`
   */
  constructor(options) {
    if (!isObject(options)) throw new TypeError('Starling needs an options object: new Starling({ url })');
    this.#options = { timeout: 10000, requestTimeout: 5000, parseMode: 'strict', ...options };
    checkParseMode(this.#options.parseMode);
  }

  /** @returns {'CLOSED' | 'CONNECTING' | 'OPEN' | 'CLOSING'} */
  get state() {
    const ws = this.#ws;
    return ws ? STATE_NAMES[ws.readyState] || 'CLOSED' : 'CLOSED';
  }

  /** The underlying WebSocket, or null when there is no connection. */
  get websocket() {
    return this.#ws;
  }

  /**
   * Opens the connection. Resolves with the WebSocket once open; rejects if the socket errors
   * or closes before opening, or after `timeout` ms. When already open, resolves at once; when
   * already connecting, returns the same attempt.
   * @param {object} [options] StarlingOptions overrides, kept for later connections too
   * @returns {Promise<any>}
   */
  async connect(options) {
    if (options !== undefined) {
      if (!isObject(options)) throw new TypeError('connect(options) expects an object');
      checkParseMode(options.parseMode ?? this.#options.parseMode);
      this.#options = { ...this.#options, ...options };
    }
    const state = this.state;
    if (state === 'OPEN') return this.#ws;
    if (state === 'CONNECTING' && this.#connecting) return this.#connecting;
    if (state === 'CLOSING') await this.#closed;
    if (this.state !== 'CLOSED') return this.connect(); // another caller raced us in
    this.#connecting = this.#open();
    try {
      return await this.#connecting;
    } finally {
      this.#connecting = null;
    }
  }

  /**
   * Closes the connection. Resolves once the socket has closed (at once if there is none).
   * Pending requests reject with ConnectionClosedError, and so does a pending `connect()`.
   * @param {number} [code=1000] close code: 1000 or 3000–4999
   * @param {string} [reason]
   * @returns {Promise<void>}
   */
  async close(code = 1000, reason) {
    const ws = this.#ws;
    if (!ws || ws.readyState === CLOSED) return;
    const closed = this.#closed;
    if (ws.readyState === CONNECTING && this.#abortConnect) {
      this.#abortConnect(
        new ConnectionClosedError(`Connection to ${String(this.#options.url)} was closed before it opened`, {
          code,
          reason,
        })
      );
    }
    // An explicit 1000 rather than no code: without one, peers see 1005 (no status).
    if (ws.readyState !== CLOSING) {
      if (reason === undefined) ws.close(code);
      else ws.close(code, reason);
    }
    await closed;
  }

  /**
   * Alias of `close()`.
   * @param {number} [code]
   * @param {string} [reason]
   * @returns {Promise<void>}
   */
  disconnect(code, reason) {
    return this.close(code, reason);
  }

  /**
   * Calls a server method.
   * @param {string} method method name, segments separated by `.`
   * @param {any} [payload] the method's argument (omitted from the frame when undefined)
   * @param {{ timeout?: number, throwOnError?: boolean }} [options]
   *   `timeout` overrides `requestTimeout`; `throwOnError` rejects with ResponseError on status >= 400
   * @returns {Promise<Response>} rejects with ConnectionClosedError when not open or closed before
   *   the answer, RequestTimeoutError on timeout
   */
  request(method, payload, options = {}) {
    if (typeof method !== 'string' || method === '') {
      return Promise.reject(new TypeError('request() needs a non-empty method name'));
    }
    const ws = this.#ws;
    if (!ws || ws.readyState !== OPEN) {
      return Promise.reject(
        new ConnectionClosedError(`Cannot call '${method}': the connection is not open (state ${this.state})`, {
          method,
        })
      );
    }
    const id = this.#takeId();
    const timeout = options.timeout ?? this.#options.requestTimeout;
    return new Promise((resolve, reject) => {
      let text;
      try {
        text = JSON.stringify({ type: 'request', id, method, payload });
      } catch (error) {
        reject(error); // e.g. a BigInt or a cycle in the payload
        return;
      }
      const entry = { method, timer: undefined, resolve: undefined, reject };
      entry.resolve = (response) => {
        if (options.throwOnError && response.isError()) reject(new ResponseError(response, method));
        else resolve(response);
      };
      if (timeout > 0 && Number.isFinite(timeout)) {
        entry.timer = setTimeout(() => {
          this.#pending.delete(id);
          reject(new RequestTimeoutError(method, id, timeout));
        }, timeout);
      }
      this.#pending.set(id, entry);
      try {
        ws.send(text);
      } catch (error) {
        clearTimeout(entry.timer);
        this.#pending.delete(id);
        reject(error);
      }
    });
  }

  /**
   * Sends an event to the server.
   * @param {string} topic topic, segments separated by `:`
   * @param {any} [data] (omitted from the frame when undefined)
   * @returns {Promise<boolean>} false when the connection is not open
   */
  async emit(topic, data) {
    if (typeof topic !== 'string' || topic === '') throw new TypeError('emit() needs a non-empty topic');
    return this.send({ type: 'event', topic, data });
  }

  /**
   * Sends a raw protocol message. Objects are serialized as JSON; strings are sent as they are.
   * @param {object | string} message
   * @returns {Promise<boolean>} false when the connection is not open
   */
  async send(message) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== OPEN) return false;
    // A payload JSON cannot represent (BigInt, cycle) throws here and rejects the promise.
    ws.send(typeof message === 'string' ? message : JSON.stringify(message));
    return true;
  }

  /**
   * Calls `handler(data, context)` for every server event whose topic matches `topicPattern`.
   * Same as `topics.on`.
   * @param {string} topicPattern
   * @param {(data: any, context: { topic: string, starling: Starling, message: any }) => unknown} handler
   * @returns {() => void} removes this registration
   */
  on(topicPattern, handler) {
    return this.topics.on(topicPattern, handler);
  }

  /**
   * Removes a handler added with `on`. Same as `topics.off`.
   * @param {string} topicPattern
   * @param {(data: any, context: any) => unknown} handler
   */
  off(topicPattern, handler) {
    this.topics.off(topicPattern, handler);
  }

  /**
   * Registers a method the server may call on this client. The handler's return value (or
   * resolved value) is the response data; a thrown error answers 500 HANDLER_ERROR; a returned
   * Response sets status/data/error itself. Registering the same name again replaces it.
   * @param {string} name method name or pattern, segments separated by `.` (`*`, `**` last)
   * @param {(payload: any, context: { id: string | number, method: string, pattern: string, starling: Starling, message: any }) => unknown} handler
   * @returns {() => void} unregisters this handler
   */
  method(name, handler) {
    const entry = this.#methods.add(name, handler);
    return () => this.#methods.remove(name, entry);
  }

  /**
   * Joins a room: calls `helios.subscribe` with `{ topic, data }`.
   * @param {string} topic
   * @param {any} [data] sent to the server, e.g. for authorization
   * @param {{ timeout?: number }} [options]
   * @returns {Promise<any>} the response data (e.g. `{ success: true }`); rejects with
   *   ResponseError when the server answers with an error
   */
  async subscribe(topic, data, options = {}) {
    const response = await this.request('helios.subscribe', { topic, data }, { ...options, throwOnError: true });
    return response.data;
  }

  /**
   * Leaves a room: calls `helios.unsubscribe` with `{ topic }`.
   * @param {string} topic
   * @param {{ timeout?: number }} [options]
   * @returns {Promise<any>} the response data; rejects with ResponseError on an error answer
   */
  async unsubscribe(topic, options = {}) {
    const response = await this.request('helios.unsubscribe', { topic }, { ...options, throwOnError: true });
    return response.data;
  }

  // -------------------------------------------------------------------------------------------
  // Connection handling: everything about one socket's life lives here, so reconnection can
  // be layered on without touching the messaging code.
  // -------------------------------------------------------------------------------------------

  /** Creates a socket, wires its listeners and settles when it opens or fails to. */
  #open() {
    const options = this.#options;
    const WebSocketClass = options.WebSocket ?? globalThis.WebSocket;
    if (typeof WebSocketClass !== 'function') {
      throw new TypeError(
        'No WebSocket implementation: this runtime has no global WebSocket. Pass a class, e.g. in ' +
          "Node 20: import { WebSocket } from 'ws'; new Starling({ url, WebSocket })"
      );
    }
    if (options.url === undefined || options.url === null || options.url === '') {
      throw new TypeError('Starling needs a url, e.g. new Starling({ url: "ws://localhost:3000" })');
    }
    const url = String(options.url);
    const extra = options.protocols === undefined ? [] : [].concat(options.protocols);
    const protocols = [SUBPROTOCOL, ...new Set(extra.filter((p) => p !== SUBPROTOCOL))];

    const ws = new WebSocketClass(url, protocols);
    // ArrayBuffer is the one binary type browsers, Bun and `ws` all support.
    try {
      ws.binaryType = 'arraybuffer';
    } catch {
      // Some implementations make it read-only; binary frames then arrive in their default type.
    }
    this.#ws = ws;
    let markClosed;
    this.#closed = new Promise((resolve) => (markClosed = resolve));

    return new Promise((resolve, reject) => {
      let opened = false;
      let settled = false;
      let timer;
      const settle = (fn, value) => {
        if (settled) return;
        settled = true;
        this.#abortConnect = null;
        clearTimeout(timer);
        fn(value);
      };
      this.#abortConnect = (error) => settle(reject, error);
      const timeout = options.timeout;
      if (timeout > 0 && Number.isFinite(timeout)) {
        timer = setTimeout(() => {
          settle(reject, codedError('CONNECT_TIMEOUT', `Connection to ${url} timed out after ${timeout} ms`));
          try {
            ws.close();
          } catch {
            // Already failing; the close event finishes the cleanup.
          }
        }, timeout);
      }

      ws.addEventListener('open', (event) => {
        opened = true;
        this.events.emit('open', { event, starling: this, websocket: ws });
        settle(resolve, ws);
      });

      ws.addEventListener('message', (event) => {
        if (this.#ws === ws) this.#handleFrame(ws, event);
      });

      ws.addEventListener('error', (event) => {
        // We already gave up on this attempt (timeout, close()): this error is our own doing.
        if (!opened && settled) return;
        // Browsers give no detail; `ws` and Bun put the cause on event.error.
        const cause = event && event.error;
        const detail = cause ? errorMessage(cause) : '';
        let text;
        if (opened) text = detail ? `WebSocket error: ${detail}` : 'WebSocket error';
        else if (detail.includes(url)) text = detail;
        else text = `WebSocket connection to ${url} failed${detail ? `: ${detail}` : ''}`;
        const error = codedError(opened ? 'WEBSOCKET_ERROR' : 'CONNECT_FAILED', text, cause);
        this.events.emit('error', { event, error, starling: this, websocket: ws });
        if (!opened) settle(reject, error);
      });

      ws.addEventListener('close', (event) => {
        const code = event && typeof event.code === 'number' ? event.code : 1006;
        const reason = (event && event.reason) || '';
        if (this.#ws === ws) this.#ws = null;
        this.#rejectPending(code, reason);
        if (!opened) {
          settle(
            reject,
            new ConnectionClosedError(`Connection to ${url} closed before it opened (code ${code}${reason ? `, ${reason}` : ''})`, {
              code,
              reason,
            })
          );
        }
        this.events.emit('close', { event, starling: this, websocket: ws, code, reason });
        markClosed();
      });
    });
  }

  /** Rejects every request still waiting: its answer can no longer arrive. */
  #rejectPending(code, reason) {
    const pending = [...this.#pending];
    this.#pending.clear();
    for (const [id, entry] of pending) {
      clearTimeout(entry.timer);
      entry.reject(
        new ConnectionClosedError(
          `Connection closed (code ${code}${reason ? `, ${reason}` : ''}) before '${entry.method}' (id ${id}) was answered`,
          { code, reason, method: entry.method, id }
        )
      );
    }
  }

  #takeId() {
    // Ids only need to be unique among pending requests; wrap long before precision is lost.
    if (this.#nextId >= Number.MAX_SAFE_INTEGER) this.#nextId = 0;
    return ++this.#nextId;
  }

  // -------------------------------------------------------------------------------------------
  // Incoming frames
  // -------------------------------------------------------------------------------------------

  #handleFrame(ws, event) {
    const raw = event.data;
    this.events.emit('message', { event, data: raw, starling: this, websocket: ws });

    if (typeof raw !== 'string') {
      this.#nonProtocol(ws, 'binary', raw, 'UNSUPPORTED_FRAME', 'Received a binary frame; protocol messages are text frames');
      return;
    }
    let message;
    try {
      message = JSON.parse(raw);
    } catch (error) {
      this.#nonProtocol(ws, 'text', raw, 'INVALID_JSON', `Received a text frame that is not JSON: ${errorMessage(error)}`);
      return;
    }
    if (!isObject(message) || typeof message.type !== 'string') {
      this.#nonProtocol(ws, 'json', message, 'INVALID_MESSAGE', 'Received JSON that is not a protocol message (no type)');
      return;
    }

    switch (message.type) {
      case 'response':
        if (!isValidId(message.id) || !Number.isInteger(message.status)) {
          this.#nonProtocol(ws, 'json', message, 'INVALID_MESSAGE', 'Received a response without a valid id or status');
        } else {
          this.#handleResponse(message);
        }
        return;
      case 'event':
        if (typeof message.topic !== 'string' || message.topic === '') {
          this.#nonProtocol(ws, 'json', message, 'INVALID_MESSAGE', 'Received an event without a valid topic');
        } else {
          const data = message.data === undefined ? null : message.data;
          this.topics.dispatch(message.topic, data, { topic: message.topic, starling: this, message });
        }
        return;
      case 'request':
        if (!isValidId(message.id)) {
          this.#nonProtocol(ws, 'json', message, 'INVALID_MESSAGE', 'Received a request without a valid id');
        } else {
          this.#handleRequest(ws, message);
        }
        return;
      case 'error': {
        const error = isObject(message.error)
          ? message.error
          : { code: 'UNKNOWN_ERROR', message: 'The server reported an error without details' };
        this.events.emit('error', { error, starling: this, websocket: ws });
        return;
      }
      default:
        // Unknown types are ignored so newer servers can add message types (PROTOCOL.md);
        // permissive mode still hands them to the application.
        if (this.#options.parseMode === 'permissive') {
          this.events.emit('json', { data: message, starling: this, websocket: ws });
        }
    }
  }

  /** A frame that is not a usable protocol message: an 'error' (strict) or handed over (permissive). */
  #nonProtocol(ws, kind, data, code, text) {
    if (this.#options.parseMode === 'permissive') {
      this.events.emit(kind, { data, starling: this, websocket: ws });
    } else {
      this.events.emit('error', { error: codedError(code, text), data, starling: this, websocket: ws });
    }
  }

  #handleResponse(message) {
    const entry = this.#pending.get(message.id);
    // Unknown or expired id (e.g. answered after its timeout): nothing is waiting, drop it.
    if (!entry) return;
    this.#pending.delete(message.id);
    clearTimeout(entry.timer);
    entry.resolve(Response.fromMessage(message));
  }

  async #handleRequest(ws, message) {
    const { id, method } = message;
    if (typeof method !== 'string' || method === '') {
      this.#reply(ws, id, { status: 400, error: { code: 'INVALID_REQUEST', message: 'The request has no method' } });
      return;
    }
    const entry = this.#methods.find(method);
    if (!entry) {
      this.#reply(ws, id, { status: 404, error: { code: 'METHOD_NOT_FOUND', message: `Method '${method}' not found` } });
      return;
    }
    const payload = message.payload === undefined ? null : message.payload;
    const context = { id, method, pattern: entry.pattern, starling: this, message };
    let answer;
    try {
      const result = await entry.handler(payload, context);
      answer = result instanceof Response ? fromHandlerResponse(result) : { status: 200, data: result };
    } catch (error) {
      answer = { status: 500, error: { code: 'HANDLER_ERROR', message: errorMessage(error) } };
    }
    this.#reply(ws, id, answer);
  }

  /** Answers a server request on the socket it came from. */
  #reply(ws, id, { status, data, error }) {
    // The socket that asked is gone: the server has already failed the request on its side.
    if (ws.readyState !== OPEN) return;
    let text;
    try {
      text =
        status < 400
          ? JSON.stringify({ type: 'response', id, status, data: data === undefined ? null : data })
          : JSON.stringify({ type: 'response', id, status, error });
    } catch (cause) {
      text = JSON.stringify({
        type: 'response',
        id,
        status: 500,
        error: { code: 'UNSERIALIZABLE_RESULT', message: errorMessage(cause) },
      });
    }
    try {
      ws.send(text);
    } catch (error) {
      this.#reportError({ error });
    }
  }

  /** Reports a non-fatal problem on `events` 'error'. */
  #reportError(fields) {
    this.events.emit('error', { ...fields, starling: this, websocket: this.#ws });
  }
}

/** Turns a Response returned by a method handler into the fields of our answer. */
function fromHandlerResponse(response) {
  const status = Number.isInteger(response.status) ? response.status : 200;
  if (status < 400) return { status, data: response.data };
  let error = response.error;
  if (!isObject(error)) {
    error = {
      code: 'HANDLER_ERROR',
      message: typeof error === 'string' ? error : `The handler answered with status ${status}`,
    };
  }
  return { status, error };
}

function checkParseMode(mode) {
  if (mode !== 'strict' && mode !== 'permissive') {
    throw new TypeError(`parseMode must be 'strict' or 'permissive', got ${JSON.stringify(mode)}`);
  }
}
