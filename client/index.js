/**
 * Starling: the Helios WebSocket client for browsers, Bun and Node.
 *
 * Speaks the Helios wire protocol version 1 (see PROTOCOL.md): JSON text frames of type
 * `request`, `response`, `event` and `error`, plus the session messages (`session` from the
 * server, `ack` from the client) when the server runs session recovery. This file has no imports
 * so it can be served as-is to a browser and loaded by any runtime that has a WebSocket class.
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

/** Close code the server uses when this session was resumed on another socket (PROTOCOL.md, Sessions). */
const SESSION_TAKEN_OVER = 4009;
/** Acknowledge after this many counted messages… */
const ACK_EVERY = 50;
/** …or this long (ms) after the first unacknowledged one, whichever comes first. */
const ACK_DELAY = 1000;
/** setTimeout's largest delay; longer ones fire at once, so every delay we set is capped to it. */
const MAX_TIMER = 2 ** 31 - 1;
/** Request ids of one client start at a random integer below this (see randomIdBase). */
const ID_BASE_LIMIT = 2 ** 52;
/** Option defaults; an option given as undefined gets its default too. */
const DEFAULTS = Object.freeze({ timeout: 10000, requestTimeout: 5000, closeTimeout: 5000, parseMode: 'strict' });
/** The built-in method a health check probes the server with (answered by the server core itself). */
const PING_METHOD = 'helios.ping';

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
    // The server's error fields may be any JSON: describe() never throws, so neither does this.
    super(
      `Request '${describe(method)}' failed with status ${describe(response.status)}` +
        (error.code ? ` (${describe(error.code)})` : '') +
        (error.message ? `: ${describe(error.message)}` : '')
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

/**
 * Text for any value, never throwing: String() throws for null-prototype objects, objects whose
 * toString is not callable, and proxies or getters that throw; those get their JSON or a type tag.
 * @param {unknown} value
 * @returns {string}
 */
function describe(value) {
  if (typeof value === 'string') return value;
  try {
    return String(value);
  } catch {
    // not convertible: try the next form
  }
  try {
    const json = JSON.stringify(value);
    if (typeof json === 'string') return json;
  } catch {
    // a cycle, a BigInt inside, a throwing getter
  }
  try {
    return Object.prototype.toString.call(value);
  } catch {
    return `[${typeof value}]`; // a proxy that throws on every access
  }
}

/** The message of a thrown value (an Error's `message`, or the value itself), never throwing. */
function errorMessage(error) {
  try {
    if (error && typeof error === 'object' && 'message' in error) return describe(error.message);
  } catch {
    // a throwing `message` getter or proxy trap: describe the value itself
  }
  return describe(error);
}

/** Own properties of `options` whose value is not undefined: an option given as undefined means its default. */
function definedOnly(options) {
  const result = {};
  for (const [name, value] of Object.entries(options)) if (value !== undefined) result[name] = value;
  return result;
}

/**
 * The delay to give setTimeout for a timeout option, or null for none (0, Infinity, or not a
 * positive number). Capped to MAX_TIMER (~24.8 days), beyond which setTimeout fires at once.
 * @param {unknown} ms
 * @returns {number | null}
 */
function timerDelay(ms) {
  if (typeof ms !== 'number' || !(ms > 0) || ms === Infinity) return null;
  return Math.min(ms, MAX_TIMER);
}

/**
 * Where a client's request ids start: a random integer below 2^52. A client that resumes a
 * session another instance started (a page reload, a token from persistent storage) receives
 * that instance's unacknowledged responses in the replay; ids counted from 1 in both would
 * match them to its own new requests. From random bases 2^52 wide, two instances' ids overlap
 * only with negligible probability, and stay below 2^53 (sent as exact JSON integers).
 */
function randomIdBase() {
  const crypto = globalThis.crypto;
  if (crypto && typeof crypto.getRandomValues === 'function') {
    const [high, low] = crypto.getRandomValues(new Uint32Array(2));
    return (high % (ID_BASE_LIMIT / 2 ** 32)) * 2 ** 32 + low;
  }
  return Math.floor(Math.random() * ID_BASE_LIMIT);
}

/** A monotonic clock in ms where there is one (every supported runtime), so clock changes do not matter. */
function now() {
  return typeof performance !== 'undefined' && typeof performance.now === 'function' ? performance.now() : Date.now();
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

/** Lets Node and Bun exit while only this timer is left (browsers return a number: nothing to do). */
function unref(timer) {
  if (timer && typeof timer === 'object' && typeof timer.unref === 'function') timer.unref();
  return timer;
}

function noop() {}

/** A promise with its settle functions; its rejection is marked handled (callers may not await it). */
function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(noop);
  return { promise, resolve, reject };
}

/**
 * Appends `session_token` and `last_seq` to a URL without re-encoding what is there already
 * (PROTOCOL.md, Resuming). A fragment, which WebSocket URLs may not carry anyway, stays last.
 * @param {string} url
 * @param {string} token
 * @param {number} lastSeq
 */
function withResumeQuery(url, token, lastSeq) {
  const hash = url.indexOf('#');
  const base = hash === -1 ? url : url.slice(0, hash);
  const fragment = hash === -1 ? '' : url.slice(hash);
  const separator = !base.includes('?') ? '?' : base.endsWith('?') || base.endsWith('&') ? '' : '&';
  return `${base}${separator}session_token=${encodeURIComponent(token)}&last_seq=${lastSeq}${fragment}`;
}

/**
 * `window.sessionStorage` in a browser page (null elsewhere, or when the page may not use it).
 * Per tab, not localStorage: one session has one socket (a resume takes it over with 4009), so
 * a token shared by every tab of the origin would make each new tab take over another's
 * session. sessionStorage survives reloads of its tab, which is what session recovery is for.
 */
function browserSessionStorage() {
  if (typeof window === 'undefined' || typeof document === 'undefined') return null;
  try {
    const storage = window.sessionStorage;
    return storage && typeof storage.getItem === 'function' ? storage : null;
  } catch {
    return null; // e.g. a SecurityError in a sandboxed frame or with storage blocked
  }
}

/**
 * The default session storage: the tab's sessionStorage under `keyOf()` in a browser, otherwise
 * (or when the page may not use it) a variable of this client, so two clients never share, and
 * take over, one session.
 * @param {() => string} keyOf
 */
function defaultSessionStorage(keyOf) {
  const tab = browserSessionStorage();
  if (tab) {
    return {
      save: (token) => tab.setItem(keyOf(), token),
      load: () => tab.getItem(keyOf()),
      clear: () => tab.removeItem(keyOf()),
    };
  }
  let value = null;
  return {
    save: (token) => {
      value = token;
    },
    load: () => value,
    clear: () => {
      value = null;
    },
  };
}

const RECOVERY_DISABLED = Object.freeze({ enabled: false });

/** Normalizes `options.sessionRecovery` (`true` is short for `{ enabled: true }`). */
function recoveryOptions(value) {
  const options = value === true ? { enabled: true } : value;
  if (!isObject(options) || !options.enabled) return RECOVERY_DISABLED;
  return {
    enabled: true,
    autoRecover: options.autoRecover !== false,
    autoRefresh: options.autoRefresh !== false,
    refreshInterval: options.refreshInterval,
    storage: options.storage,
  };
}

function checkRecoveryOptions(value) {
  if (value === undefined || value === null || typeof value === 'boolean') return;
  if (!isObject(value)) throw new TypeError('sessionRecovery must be an object: { enabled: true, ... }');
  const { storage, refreshInterval } = value;
  if (storage !== undefined && storage !== null) {
    if (!isObject(storage) && typeof storage !== 'function') {
      throw new TypeError('sessionRecovery.storage must be an object with save(token), load() and clear()');
    }
    for (const name of ['save', 'load', 'clear']) {
      if (typeof storage[name] !== 'function') {
        throw new TypeError(`sessionRecovery.storage needs a ${name}() method`);
      }
    }
  }
  if (refreshInterval !== undefined && !(typeof refreshInterval === 'number' && refreshInterval > 0)) {
    throw new TypeError('sessionRecovery.refreshInterval must be a positive number of milliseconds');
  }
}

/** Normalizes `options.reconnect`: exponential backoff with full jitter. */
function reconnectOptions(value) {
  const options = isObject(value) ? value : {};
  return {
    initialDelay: options.initialDelay ?? 100,
    maxDelay: options.maxDelay ?? 10000,
    maxAttempts: options.maxAttempts ?? Infinity,
  };
}

function checkReconnectOptions(value) {
  if (value === undefined || value === null) return;
  if (!isObject(value)) throw new TypeError('reconnect must be an object: { initialDelay, maxDelay, maxAttempts }');
  for (const name of ['initialDelay', 'maxDelay', 'maxAttempts']) {
    const n = value[name];
    if (n !== undefined && !(typeof n === 'number' && n >= 0)) {
      throw new TypeError(`reconnect.${name} must be a number >= 0`);
    }
  }
}

const HEALTH_CHECK_DISABLED = Object.freeze({ enabled: false });

/** Normalizes `options.healthCheck` (`false` is short for `{ enabled: false }`; on by default). */
function healthCheckOptions(value) {
  if (value === false) return HEALTH_CHECK_DISABLED;
  const options = isObject(value) ? value : {};
  if (options.enabled === false) return HEALTH_CHECK_DISABLED;
  return {
    enabled: true,
    interval: options.interval ?? 30000,
    timeout: options.timeout ?? 10000,
    onPing: options.onPing,
  };
}

function checkHealthCheckOptions(value) {
  if (value === undefined || value === null || typeof value === 'boolean') return;
  if (!isObject(value)) throw new TypeError('healthCheck must be an object: { enabled, interval, timeout, onPing }');
  for (const name of ['interval', 'timeout']) {
    const n = value[name];
    if (n !== undefined && !(typeof n === 'number' && n > 0)) {
      throw new TypeError(`healthCheck.${name} must be a positive number of milliseconds`);
    }
  }
  if (value.onPing !== undefined && typeof value.onPing !== 'function') {
    throw new TypeError('healthCheck.onPing must be a function');
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
  /** The last request id taken; random per instance (see randomIdBase). */
  #nextId = randomIdBase();
  /** @type {WeakMap<any, SocketRecord>} what we know about each socket we opened */
  #sockets = new WeakMap();
  /**
   * Requests sent and not yet answered, by id. A request re-sent after a session recovery is
   * here under each id it was sent with; the first answer settles it.
   * @type {Map<number, PendingRequest>}
   */
  #pending = new Map();
  /** @type {Set<PendingRequest>} requests made while reconnecting, sent once a socket is open */
  #queue = new Set();
  #methods = new MethodRegistry();

  // Reconnection ----------------------------------------------------------------------------
  /** Incremented for every socket, so a request knows which socket (and session) it went out on. */
  #generation = 0;
  /** `close()` was called: the coming close is ours, do not reconnect. */
  #stopped = false;
  /** `connect()` is waiting for the session storage before it can open a socket. */
  #preparing = false;
  /** Between an unexpected close and the next open socket (or giving up). */
  #reconnecting = false;
  #reconnectAttempt = 0;
  #reconnectTimer = null;
  /** Settles `connect()` calls made while reconnecting. */
  #reconnectWait = null;
  /** Code and reason of the close that started the reconnection. */
  #lastClose = { code: 1006, reason: '' };

  // Session ---------------------------------------------------------------------------------
  /** The newest token (one resume per token), also saved to the storage. */
  #token = null;
  #sessionId = null;
  #ttl = null;
  /** Counted messages processed in this session, across its sockets. */
  #lastSeq = 0;
  /** The count last acknowledged to (or told to) the server. */
  #ackedSeq = 0;
  #ackTimer = null;
  #refreshTimer = null;
  #defaultStorage = null;
  /** The socket on which the current session was created or recovered. */
  #sessionSocket = null;
  /** Answers to server requests whose socket dropped, sent once the session is recovered. */
  #heldReplies = [];
  /** Storage calls run one after another, so an old token never overwrites a newer one. */
  #storageChain = Promise.resolve();

  // Health check ----------------------------------------------------------------------------
  /** When the current socket last received a frame (monotonic ms). */
  #lastReceivedAt = 0;
  /** Fires when the socket may have been silent for `healthCheck.interval`. */
  #healthTimer = null;
  /** @type {PendingRequest | null} the `helios.ping` in flight, if any */
  #probe = null;
  /** The health check options of the current socket, normalized when it opened. */
  #health = HEALTH_CHECK_DISABLED;

  /**
   * Connection events: 'open', 'close', 'error', 'message' (every raw frame), and in
   * permissive mode 'text' / 'json' / 'binary' for frames that are not protocol messages.
   * Sessions and reconnection add 'session:created', 'session:recovered',
   * 'session:recovery-failed', 'session:refreshed', 'reconnecting', 'reconnected' and
   * 'reconnect-failed'.
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
   * @param {boolean | { enabled: boolean, autoRecover?: boolean, autoRefresh?: boolean,
   *   refreshInterval?: number, storage?: { save(token: string): unknown, load(): unknown, clear(): unknown } }}
   *   [options.sessionRecovery] resume the server session after a dropped connection (see PROTOCOL.md,
   *   Sessions): reconnect by itself, get every message sent meanwhile exactly once, keep rooms and
   *   pending requests. `autoRecover` (default true) resumes with the stored token on `connect()`;
   *   `autoRefresh` (default true) calls `refreshSession()` every `refreshInterval` ms (default ttl / 2);
   *   `storage` keeps the token (default: the tab's sessionStorage in a browser, key `helios:session:<url>`,
   *   otherwise memory of this client)
   * @param {{ initialDelay?: number, maxDelay?: number, maxAttempts?: number }} [options.reconnect]
   *   backoff for reconnections (session recovery only): attempt n waits a random time in
   *   [0, min(maxDelay, initialDelay * 2^(n-1))); defaults 100, 10000, Infinity
   * @param {number} [options.closeTimeout=5000] ms `close()` waits for the server to answer the close
   *   handshake before treating the socket as closed (0 or Infinity: no limit)
   * @param {boolean | { enabled?: boolean, interval?: number, timeout?: number,
   *   onPing?: (latency: number) => void }} [options.healthCheck] after `interval` ms (default 30000)
   *   without receiving anything, call `helios.ping`; no answer within `timeout` ms (default 10000)
   *   closes the socket as dead. On by default.
   *
   * Every timeout is in ms; values above 2^31-1 (~24.8 days) are capped to it. An option given as
   * undefined takes its default.
   */
  constructor(options) {
    if (!isObject(options)) throw new TypeError('Starling needs an options object: new Starling({ url })');
    this.#options = { ...DEFAULTS, ...definedOnly(options) };
    checkOptions(this.#options);
  }

  /**
   * 'CONNECTING' also while reconnecting (between sockets) and while `connect()` reads the
   * session storage.
   * @returns {'CLOSED' | 'CONNECTING' | 'OPEN' | 'CLOSING'}
   */
  get state() {
    const ws = this.#ws;
    if (ws) return STATE_NAMES[ws.readyState] || 'CLOSED';
    return this.#reconnecting || this.#preparing ? 'CONNECTING' : 'CLOSED';
  }

  /**
   * The current session, or null before the server has created one (and after `clearSession()`).
   * `lastSeq` counts the messages processed in this session (PROTOCOL.md, Counting).
   * @returns {{ sessionId: string, ttl: number | null, lastSeq: number } | null}
   */
  get session() {
    if (this.#sessionId === null) return null;
    return Object.freeze({ sessionId: this.#sessionId, ttl: this.#ttl, lastSeq: this.#lastSeq });
  }

  /** The underlying WebSocket, or null when there is no connection. */
  get websocket() {
    return this.#ws;
  }

  /**
   * Opens the connection. Resolves with the WebSocket once open; rejects if the socket errors
   * or closes before opening, or after `timeout` ms. When already open, resolves at once; when
   * already connecting, returns the same attempt; while reconnecting, settles with the
   * reconnection (rejects if it gives up or `close()` is called).
   *
   * With `sessionRecovery` enabled and `autoRecover` on, a token in memory or in the storage is
   * used to resume its session (`session_token` and `last_seq` query parameters).
   * @param {object} [options] StarlingOptions overrides, kept for later connections too
   * @returns {Promise<any>}
   */
  async connect(options) {
    if (options !== undefined) {
      if (!isObject(options)) throw new TypeError('connect(options) expects an object');
      const merged = { ...this.#options, ...definedOnly(options) };
      checkOptions(merged);
      this.#options = merged;
    }
    if (this.#reconnecting) return this.#reconnectWait.promise;
    const state = this.state;
    if (state === 'OPEN') return this.#ws;
    if (state === 'CONNECTING' && this.#connecting) return this.#connecting;
    if (state === 'CLOSING') await this.#closed;
    // A server-side close may have started a reconnection meanwhile.
    if (this.#reconnecting) return this.#reconnectWait.promise;
    if (this.state !== 'CLOSED') return this.connect(); // another caller raced us in
    this.#stopped = false;
    this.#connecting = this.#open(false);
    try {
      return await this.#connecting;
    } finally {
      this.#connecting = null;
    }
  }

  /**
   * Closes the connection. Resolves once the socket has closed (at once if there is none).
   * Pending requests reject with ConnectionClosedError, and so does a pending `connect()`.
   * Stops a reconnection in progress; a close made with `close()` is never followed by one.
   *
   * Sessions: a normal close (1000, the default) ends the session on the server at once
   * (PROTOCOL.md), so when it closes a live socket the client forgets the session too (token,
   * storage, count). Any other code keeps it for its ttl, and a later `connect()` resumes it
   * (with `autoRecover`).
   * @param {number} [code=1000] close code: 1000 or 3000–4999
   * @param {string} [reason]
   * @returns {Promise<void>}
   */
  async close(code = 1000, reason) {
    this.#stopped = true;
    const live = this.#ws !== null && (this.#ws.readyState === OPEN || this.#ws.readyState === CONNECTING);
    if (code === 1000 && live && (this.#token !== null || this.#sessionId !== null)) {
      this.#token = null;
      this.#forgetSession();
      if (this.#recovery().enabled) this.#storageCall('clear');
    }
    if (this.#reconnecting) {
      this.#stopReconnecting('Connection closed by close() while reconnecting', { code, reason });
    }
    if (this.#preparing && this.#abortConnect) {
      this.#abortConnect(
        new ConnectionClosedError(`Connection to ${String(this.#options.url)} was closed before it opened`, {
          code,
          reason,
        })
      );
    }
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
    this.#closeSocket(ws, code, reason);
    this.#stopHealthCheck();
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
   *
   * With session recovery, a request made while reconnecting waits for the new socket (up to its
   * timeout) instead of failing at once. A request still unanswered when the connection drops
   * stays pending across the cut, and once the session is recovered:
   * - if it was made with `{ idempotent: true }`, it is sent again (under a new id; the first
   *   answer to either copy settles it), since the server may never have received it;
   * - otherwise it is NOT sent again, so the server never runs it twice: its answer arrives in
   *   the server's replay (or later) if the server received it, and otherwise it times out.
   * When the session cannot be recovered (`session:recovery-failed`, or a new session is
   * created), requests sent on the old session reject with ConnectionClosedError.
   *
   * @param {string} method method name, segments separated by `.`
   * @param {any} [payload] the method's argument (omitted from the frame when undefined)
   * @param {{ timeout?: number, throwOnError?: boolean, idempotent?: boolean } | null} [options]
   *   `timeout` overrides `requestTimeout`; `throwOnError` rejects with ResponseError on status >= 400;
   *   `idempotent` allows re-sending after a session recovery (see above). null is the same as none.
   * @returns {Promise<Response>} rejects with ConnectionClosedError when not open (and not
   *   reconnecting) or closed before the answer, RequestTimeoutError on timeout
   */
  request(method, payload, options) {
    if (typeof method !== 'string' || method === '') {
      return Promise.reject(new TypeError('request() needs a non-empty method name'));
    }
    if (options === undefined || options === null) options = {};
    else if (typeof options !== 'object') {
      return Promise.reject(new TypeError('request() options must be an object: { timeout, throwOnError, idempotent }'));
    }
    const ws = this.#ws;
    const open = ws !== null && ws.readyState === OPEN;
    if (!open && !this.#reconnecting) {
      return Promise.reject(
        new ConnectionClosedError(`Cannot call '${method}': the connection is not open (state ${this.state})`, {
          method,
        })
      );
    }
    const id = this.#takeId();
    const timeout = timerDelay(options.timeout ?? this.#options.requestTimeout);
    return new Promise((resolve, reject) => {
      let text;
      try {
        text = JSON.stringify({ type: 'request', id, method, payload });
      } catch (error) {
        reject(error); // e.g. a BigInt or a cycle in the payload
        return;
      }
      /** @type {PendingRequest} */
      const entry = {
        id,
        ids: [id],
        method,
        payload,
        idempotent: options.idempotent === true,
        generation: 0,
        timer: undefined,
        resolve: undefined,
        reject,
      };
      const throwOnError = options.throwOnError;
      entry.resolve = (response) => {
        // Whatever goes wrong here must still settle the promise: its timer is already stopped.
        try {
          if (throwOnError && response.isError()) reject(new ResponseError(response, method));
          else resolve(response);
        } catch (error) {
          reject(error);
        }
      };
      if (timeout !== null) {
        entry.timer = setTimeout(() => {
          this.#forget(entry);
          reject(new RequestTimeoutError(method, id, timeout));
        }, timeout);
      }
      if (open) this.#sendRequest(ws, entry, id, text);
      else this.#queue.add(entry); // reconnecting: sent once the new socket is open
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
  async subscribe(topic, data, options) {
    const response = await this.request('helios.subscribe', { topic, data }, { ...options, throwOnError: true });
    return response.data;
  }

  /**
   * Leaves a room: calls `helios.unsubscribe` with `{ topic }`.
   * @param {string} topic
   * @param {{ timeout?: number }} [options]
   * @returns {Promise<any>} the response data; rejects with ResponseError on an error answer
   */
  async unsubscribe(topic, options) {
    const response = await this.request('helios.unsubscribe', { topic }, { ...options, throwOnError: true });
    return response.data;
  }

  // -------------------------------------------------------------------------------------------
  // Sessions
  // -------------------------------------------------------------------------------------------

  /**
   * Asks the server for a new token for this session (`session.refresh`; the old token stops
   * working), stores it and emits 'session:refreshed'. The server allows one call per ttl / 2
   * (earlier ones reject with a ResponseError, status 429). Called by itself with `autoRefresh`.
   * @param {{ timeout?: number }} [options]
   * @returns {Promise<{ token: string, ttl: number }>} the response data
   */
  async refreshSession(options) {
    const response = await this.request('session.refresh', undefined, {
      timeout: options?.timeout,
      throwOnError: true,
    });
    const data = isObject(response.data) ? response.data : {};
    if (typeof data.token === 'string' && data.token !== '') this.#setToken(data.token);
    if (typeof data.ttl === 'number' && data.ttl > 0) this.#ttl = data.ttl;
    this.events.emit('session:refreshed', { token: data.token, sessionId: this.#sessionId, starling: this });
    this.#scheduleRefresh();
    return /** @type {any} */ (data);
  }

  /**
   * Forgets the session: clears the storage and the token, session id and count held in
   * memory. The current socket stays open, but the next connection starts a new session.
   * @returns {Promise<void>}
   */
  async clearSession() {
    this.#token = null;
    this.#forgetSession();
    await this.#storageCall('clear');
  }

  /** Handles a `session` control message (not counted). */
  #handleSession(ws, message) {
    const recovery = this.#recovery();
    switch (message.event) {
      case 'created': {
        // A new session: whatever was sent on an earlier one can no longer be answered.
        this.#rejectEarlier('the session was replaced by a new one');
        this.#heldReplies = []; // the server requests they answer died with the old session
        this.#sessionSocket = ws;
        this.#sessionId = message.sessionId ?? null;
        this.#ttl = typeof message.ttl === 'number' ? message.ttl : null;
        this.#lastSeq = 0;
        this.#ackedSeq = 0;
        this.#clearTimer('ack');
        this.#setToken(message.token);
        this.#scheduleRefresh();
        this.events.emit('session:created', {
          session: { sessionId: this.#sessionId, ttl: this.#ttl },
          starling: this,
        });
        return;
      }
      case 'recovered': {
        this.#sessionId = message.sessionId ?? this.#sessionId;
        if (typeof message.ttl === 'number') this.#ttl = message.ttl;
        this.#setToken(message.token);
        const gap = message.gap === true;
        const replayed = typeof message.replayed === 'number' ? message.replayed : 0;
        // The server's count: it corrects a count lost to a page reload (we resumed with last_seq=0).
        if (Number.isInteger(message.seq) && message.seq >= this.#lastSeq) this.#lastSeq = message.seq;
        this.events.emit('session:recovered', {
          session: { sessionId: this.#sessionId, ttl: this.#ttl, replayed, gap, recovered: !gap },
          starling: this,
        });
        this.#sessionSocket = ws;
        this.#sendHeldReplies(ws);
        this.#resendIdempotent(ws);
        this.#scheduleRefresh();
        // Acks held back while the session was not known yet (resuming a stored token).
        if (this.#lastSeq > this.#ackedSeq) this.#scheduleAck();
        return;
      }
      case 'recovery-failed': {
        const reason = typeof message.reason === 'string' ? message.reason : 'unknown';
        this.#token = null;
        this.#forgetSession();
        if (recovery.enabled) this.#storageCall('clear');
        this.events.emit('session:recovery-failed', { reason, starling: this });
        this.#rejectEarlier(`the session could not be recovered (${reason})`);
        return;
      }
      default:
        // Unknown session events are ignored, like unknown message types.
    }
  }

  /** Answers to server requests of this session that finished while the socket was down. */
  #sendHeldReplies(ws) {
    const held = this.#heldReplies;
    this.#heldReplies = [];
    for (const { session, text } of held) {
      if (session !== this.#sessionId || ws.readyState !== OPEN) continue;
      try {
        ws.send(text);
      } catch (error) {
        this.#reportError({ error });
      }
    }
  }

  #forgetSession() {
    this.#heldReplies = [];
    this.#sessionSocket = null;
    this.#sessionId = null;
    this.#ttl = null;
    this.#lastSeq = 0;
    this.#ackedSeq = 0;
    this.#clearTimer('ack');
    this.#clearTimer('refresh');
  }

  /** Keeps the newest token in memory and, with session recovery, in the storage. */
  #setToken(token) {
    if (typeof token !== 'string' || token === '') return;
    this.#token = token;
    if (this.#recovery().enabled) this.#storageCall('save', token);
  }

  /** Counts a processed message and acknowledges every ACK_EVERY, or ACK_DELAY after the first unacked one. */
  #count() {
    this.#lastSeq++;
    this.#scheduleAck();
  }

  #scheduleAck() {
    if (this.#lastSeq - this.#ackedSeq >= ACK_EVERY) this.#sendAck();
    else if (this.#ackTimer === null && this.#lastSeq > this.#ackedSeq) {
      this.#ackTimer = unref(
        setTimeout(() => {
          this.#ackTimer = null;
          this.#sendAck();
        }, ACK_DELAY)
      );
    }
  }

  #sendAck() {
    this.#clearTimer('ack');
    const ws = this.#ws;
    // Without a known session (server without sessions, or a resume not confirmed yet) nobody expects acks.
    if (this.#sessionId === null || !ws || ws.readyState !== OPEN || this.#lastSeq <= this.#ackedSeq) return;
    const seq = this.#lastSeq;
    try {
      ws.send(JSON.stringify({ type: 'ack', seq }));
      this.#ackedSeq = seq;
    } catch (error) {
      this.#reportError({ error });
    }
  }

  /** With autoRefresh: `refreshSession()` every refreshInterval (default ttl / 2). */
  #scheduleRefresh() {
    this.#clearTimer('refresh');
    const recovery = this.#recovery();
    if (!recovery.enabled || !recovery.autoRefresh || this.#sessionId === null) return;
    const interval = recovery.refreshInterval ?? (this.#ttl > 0 ? this.#ttl / 2 : 0);
    if (!(interval > 0)) return;
    this.#refreshTimer = unref(
      setTimeout(() => {
        this.#refreshTimer = null;
        this.refreshSession().catch((error) => {
          // A socket closing under the refresh is not an error of the refresh: a resume reschedules it.
          if (error instanceof ConnectionClosedError) return;
          this.#reportError({ error });
          // Try again next interval unless the socket is gone (a recovery reschedules then).
          if (this.#ws && this.#ws.readyState === OPEN) this.#scheduleRefresh();
        });
      }, Math.min(interval, MAX_TIMER))
    );
  }

  /** @param {'ack' | 'refresh' | 'reconnect'} name */
  #clearTimer(name) {
    if (name === 'ack') {
      clearTimeout(this.#ackTimer);
      this.#ackTimer = null;
    } else if (name === 'refresh') {
      clearTimeout(this.#refreshTimer);
      this.#refreshTimer = null;
    } else {
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = null;
    }
  }

  #recovery() {
    return recoveryOptions(this.#options.sessionRecovery);
  }

  #storage() {
    const custom = this.#recovery().storage;
    if (custom) return custom;
    if (!this.#defaultStorage) {
      this.#defaultStorage = defaultSessionStorage(() => `helios:session:${String(this.#options.url)}`);
    }
    return this.#defaultStorage;
  }

  /**
   * Runs `storage[name](arg)` after the storage calls before it. Never rejects: a failure is
   * reported on 'error' (code SESSION_STORAGE_FAILED) and resolves undefined.
   * @param {'save' | 'load' | 'clear'} name
   * @param {string} [arg]
   */
  #storageCall(name, arg) {
    const storage = this.#storage();
    const result = this.#storageChain.then(() => storage[name](arg));
    const settled = result.then(
      (value) => value,
      (error) => {
        this.#reportError({
          error: codedError('SESSION_STORAGE_FAILED', `Session storage ${name}() failed: ${errorMessage(error)}`, error),
        });
        return undefined;
      }
    );
    this.#storageChain = settled.then(noop);
    return settled;
  }

  // -------------------------------------------------------------------------------------------
  // Connection handling: everything about one socket's life lives here.
  // -------------------------------------------------------------------------------------------

  /**
   * Opens a socket; when resuming a session, first finds the token (memory, then storage).
   * The connect timeout covers both steps: a storage whose load() never settles cannot hang it.
   * @param {boolean} reconnecting true for automatic reconnections, which always resume
   */
  #open(reconnecting) {
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
    const timeout = timerDelay(options.timeout);
    const deadline = timeout === null ? null : now() + timeout;
    const recovery = this.#recovery();
    if (!recovery.enabled || (!reconnecting && !recovery.autoRecover)) {
      return this.#openSocket(WebSocketClass, null, deadline);
    }
    // The token of this client's own session comes with its exact count.
    if (this.#token) return this.#openSocket(WebSocketClass, { token: this.#token, lastSeq: this.#lastSeq }, deadline);

    // A stored token (e.g. after a page reload): its count is unknown, so 0 — the server then
    // replays everything it still holds.
    this.#preparing = true;
    return new Promise((resolve, reject) => {
      let done = false;
      let timer;
      const finish = () => {
        done = true;
        clearTimeout(timer);
        this.#preparing = false;
        this.#abortConnect = null;
      };
      const abort = (error) => {
        if (done) return;
        finish();
        reject(error);
      };
      this.#abortConnect = abort;
      if (timeout !== null) {
        timer = setTimeout(() => {
          // The load wrote nothing, so later storage calls need not wait for it (order is kept).
          this.#storageChain = Promise.resolve();
          abort(this.#connectTimeoutError(timeout, 'reading the session storage'));
        }, timeout);
      }
      this.#storageCall('load').then((token) => {
        if (done) return;
        finish();
        try {
          if (typeof token === 'string' && token !== '') {
            this.#lastSeq = 0;
            resolve(this.#openSocket(WebSocketClass, { token, lastSeq: 0 }, deadline));
          } else {
            resolve(this.#openSocket(WebSocketClass, null, deadline));
          }
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  /** @param {number} timeout @param {string} [during] */
  #connectTimeoutError(timeout, during) {
    const url = String(this.#options.url);
    return codedError('CONNECT_TIMEOUT', `Connection to ${url} timed out after ${timeout} ms${during ? ` (${during})` : ''}`);
  }

  /**
   * Creates a socket, wires its listeners and settles when it opens or fails to.
   * @param {any} WebSocketClass
   * @param {{ token: string, lastSeq: number } | null} resume
   * @param {number | null} deadline when the connect timeout ends (`now()` clock), null for none
   */
  #openSocket(WebSocketClass, resume, deadline) {
    const options = this.#options;
    const url = String(options.url);
    const extra = options.protocols === undefined ? [] : [].concat(options.protocols);
    const protocols = [SUBPROTOCOL, ...new Set(extra.filter((p) => p !== SUBPROTOCOL))];

    const ws = new WebSocketClass(resume ? withResumeQuery(url, resume.token, resume.lastSeq) : url, protocols);
    // ArrayBuffer is the one binary type browsers, Bun and `ws` all support.
    try {
      ws.binaryType = 'arraybuffer';
    } catch {
      // Some implementations make it read-only; binary frames then arrive in their default type.
    }
    this.#ws = ws;
    this.#generation++;
    // The server forgets what we told it we have; no need to acknowledge it again.
    if (resume) this.#ackedSeq = resume.lastSeq;
    let markClosed;
    this.#closed = new Promise((resolve) => (markClosed = resolve));
    /** @type {SocketRecord} */
    const record = { resumes: resume !== null, finished: false, finish: noop, closeTimer: null };
    this.#sockets.set(ws, record);

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
      if (deadline !== null) {
        // What is left of the connect timeout once the storage was read (at least 1 ms: 0 means none).
        const timeout = timerDelay(options.timeout);
        timer = setTimeout(() => {
          settle(reject, this.#connectTimeoutError(timeout));
          try {
            this.#closeSocket(ws);
          } catch {
            // Already failing; the close event finishes the cleanup.
          }
        }, Math.max(1, deadline - now()));
      }

      ws.addEventListener('open', (event) => {
        if (record.finished) return;
        opened = true;
        this.events.emit('open', { event, starling: this, websocket: ws });
        if (this.#ws === ws) this.#startHealthCheck(ws);
        settle(resolve, ws);
      });

      ws.addEventListener('message', (event) => {
        if (this.#ws !== ws) return;
        this.#lastReceivedAt = now();
        this.#handleFrame(ws, event);
      });

      ws.addEventListener('error', (event) => {
        // We already gave up on this attempt (timeout, close()) or on this socket: our own doing.
        if ((!opened && settled) || record.finished) return;
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

      /**
       * Everything that follows the end of this socket, once: on its close event, or earlier when
       * we stop waiting for that event (see #closeSocket, #healthCheckFailed).
       */
      record.finish = (code, reason, event) => {
        if (record.finished) return;
        record.finished = true;
        clearTimeout(record.closeTimer);
        const current = this.#ws === ws;
        if (current) {
          this.#ws = null;
          this.#clearTimer('ack');
          this.#clearTimer('refresh');
          this.#stopHealthCheck();
        }
        // Unexpected: the server closed it or the network dropped it — including the 1001 that
        // follows `server:shutdown`. Not when we closed it, and not 4009: the session lives on
        // another socket now, and we do not fight for it.
        const reconnect =
          opened && current && !this.#stopped && code !== SESSION_TAKEN_OVER && this.#recovery().enabled;
        if (reconnect) {
          this.#reconnecting = true;
          this.#reconnectAttempt = 0;
          this.#lastClose = { code, reason };
          this.#reconnectWait = deferred();
        } else if (!this.#reconnecting) {
          // (A failed reconnection attempt keeps the requests: the next attempt may bring them home.)
          this.#rejectPending(code, reason);
        }
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
        if (reconnect) this.#scheduleReconnect();
      };

      ws.addEventListener('close', (event) => {
        const code = event && typeof event.code === 'number' ? event.code : 1006;
        const reason = (event && event.reason) || '';
        record.finish(code, reason, event);
      });
    });
  }

  /**
   * Closes a socket we are done with. A peer may never answer the close handshake (a dead or
   * hostile server), and a runtime may then wait indefinitely for the close event: after
   * `closeTimeout` ms the socket is treated as closed (code 1006) and dropped.
   * @param {any} ws
   * @param {number} [code]
   * @param {string} [reason]
   */
  #closeSocket(ws, code, reason) {
    if (ws.readyState !== CLOSING && ws.readyState !== CLOSED) {
      if (code === undefined) ws.close();
      else if (reason === undefined) ws.close(code);
      else ws.close(code, reason);
    }
    const record = this.#sockets.get(ws);
    const delay = timerDelay(this.#options.closeTimeout);
    if (!record || record.finished || record.closeTimer !== null || delay === null) return;
    record.closeTimer = unref(
      setTimeout(() => this.#dropSocket(ws, 1006, `No close handshake within ${delay} ms`), delay)
    );
  }

  /** Treats `ws` as closed now with `code` and `reason`, and frees it where the runtime can. */
  #dropSocket(ws, code, reason) {
    const record = this.#sockets.get(ws);
    if (!record || record.finished) return;
    record.finish(code, reason, null);
    try {
      if (typeof ws.terminate === 'function') ws.terminate(); // Bun and `ws`; browsers have no such call
    } catch {
      // nothing more we can do for it
    }
  }

  // -------------------------------------------------------------------------------------------
  // Reconnection (session recovery only)
  // -------------------------------------------------------------------------------------------

  /** Waits a random delay in [0, min(maxDelay, initialDelay * 2^(attempt-1))) (full jitter), then tries. */
  #scheduleReconnect() {
    if (!this.#reconnecting) return;
    const { initialDelay, maxDelay, maxAttempts } = reconnectOptions(this.#options.reconnect);
    if (this.#reconnectAttempt >= maxAttempts) {
      this.#giveUp();
      return;
    }
    const attempt = ++this.#reconnectAttempt;
    const delay = Math.random() * Math.min(maxDelay, initialDelay * 2 ** (attempt - 1));
    this.events.emit('reconnecting', { attempt, delay, starling: this });
    if (!this.#reconnecting) return; // a listener called close()
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      this.#tryReconnect(attempt);
    }, Math.min(delay, MAX_TIMER));
  }

  #tryReconnect(attempt) {
    if (!this.#reconnecting) return;
    let opening;
    try {
      opening = this.#open(true);
    } catch (error) {
      this.#reportError({ error });
      this.#giveUp();
      return;
    }
    Promise.resolve(opening).then(
      (ws) => {
        if (!this.#reconnecting || this.#ws !== ws) return;
        this.#reconnecting = false;
        this.#reconnectAttempt = 0;
        // Without a token the new connection cannot be the old session (e.g. the server keeps
        // no sessions, so it never gave one): nothing sent on the old socket can be answered.
        if (!this.#sockets.get(ws)?.resumes) this.#rejectEarlier('the new connection does not resume the session (no session token)');
        this.#flushQueue(ws);
        this.events.emit('reconnected', { attempt, starling: this, websocket: ws });
        this.#reconnectWait.resolve(ws);
      },
      () => {
        // Reported on 'error' by the socket already; try again after the next delay.
        if (this.#reconnecting) this.#scheduleReconnect();
      }
    );
  }

  #giveUp() {
    const attempts = this.#reconnectAttempt;
    const { code, reason } = this.#lastClose;
    const message = `Could not reconnect to ${String(this.#options.url)} after ${attempts} attempt${attempts === 1 ? '' : 's'}`;
    const error = this.#stopReconnecting(message, { code, reason });
    this.events.emit('reconnect-failed', { attempts, error, starling: this });
  }

  /** Ends a reconnection: fails waiting requests and `connect()` calls with `message`. */
  #stopReconnecting(message, { code, reason }) {
    this.#reconnecting = false;
    this.#heldReplies = [];
    this.#reconnectAttempt = 0;
    this.#clearTimer('reconnect');
    const error = new ConnectionClosedError(message, { code, reason });
    this.#failRequests(
      [...new Set(this.#pending.values()), ...this.#queue],
      (entry) => `${message}; '${entry.method}' (id ${entry.id}) was not answered`,
      { code, reason }
    );
    if (this.#reconnectWait) this.#reconnectWait.reject(error);
    return error;
  }

  // -------------------------------------------------------------------------------------------
  // Health check: browsers cannot send WebSocket pings (nor see the server's), so a dead link
  // (a crashed server, a half-open TCP connection) is found by calling `helios.ping`, which the
  // server core answers itself. Any answer counts, even an error from a server without the method.
  // -------------------------------------------------------------------------------------------

  /** On open: probe once the socket has received nothing for `interval` ms. */
  #startHealthCheck(ws) {
    this.#stopHealthCheck();
    this.#health = healthCheckOptions(this.#options.healthCheck);
    if (!this.#health.enabled) return;
    this.#lastReceivedAt = now();
    this.#armHealthTimer(ws);
  }

  #stopHealthCheck() {
    clearTimeout(this.#healthTimer);
    this.#healthTimer = null;
    if (this.#probe) this.#forget(this.#probe);
    this.#probe = null;
  }

  /** Waits until `interval` ms after the last frame received (checked when it fires: no timer per frame). */
  #armHealthTimer(ws) {
    const delay = timerDelay(this.#health.interval);
    if (delay === null) return;
    const silent = now() - this.#lastReceivedAt;
    this.#healthTimer = unref(
      setTimeout(() => {
        this.#healthTimer = null;
        this.#onHealthTimer(ws);
      }, Math.max(1, delay - silent))
    );
  }

  #onHealthTimer(ws) {
    if (this.#ws !== ws || ws.readyState !== OPEN || this.#probe) return;
    if (now() - this.#lastReceivedAt < this.#health.interval) this.#armHealthTimer(ws);
    else this.#sendProbe(ws);
  }

  /** Calls `helios.ping` on `ws`; closes it as dead if no answer comes within `timeout` ms. */
  #sendProbe(ws) {
    const { timeout, onPing } = this.#health;
    const id = this.#takeId();
    const sentAt = now();
    /** @type {PendingRequest} */
    const probe = {
      id,
      ids: [id],
      method: PING_METHOD,
      payload: undefined,
      idempotent: false,
      generation: 0,
      timer: undefined,
      resolve: () => {
        this.#probe = null;
        if (typeof onPing === 'function') {
          safeCall(onPing, [now() - sentAt], (error) => this.#reportError({ error }));
        }
        if (this.#ws === ws) this.#armHealthTimer(ws);
      },
      reject: () => {
        // Only when sending it failed: the socket is going, and its close says why.
        if (this.#probe === probe) this.#probe = null;
      },
    };
    const delay = timerDelay(timeout);
    if (delay !== null) probe.timer = unref(setTimeout(() => this.#healthCheckFailed(ws, probe, delay), delay));
    this.#probe = probe;
    this.#sendRequest(ws, probe, id, JSON.stringify({ type: 'request', id, method: PING_METHOD }));
  }

  /** The probe got no answer in time: the link is dead, close it (the reconnect logic takes over). */
  #healthCheckFailed(ws, probe, timeout) {
    if (this.#probe !== probe) return;
    this.#probe = null;
    this.#forget(probe);
    if (this.#ws !== ws) return;
    const reason = `Health check failed: no answer to ${PING_METHOD} within ${timeout} ms`;
    this.#reportError({ error: codedError('HEALTH_CHECK_FAILED', reason) });
    try {
      // Not 1000, which would end the session on a server that is only slow; 3008 is "timeout".
      ws.close(3008, 'Health check failed');
    } catch {
      // dropped below anyway
    }
    // The server will not answer the close handshake either: drop the socket at once (1006).
    this.#dropSocket(ws, 1006, reason);
  }

  // -------------------------------------------------------------------------------------------
  // Pending requests
  // -------------------------------------------------------------------------------------------

  /** Sends a request frame and records it as pending under `id`. */
  #sendRequest(ws, entry, id, text) {
    this.#pending.set(id, entry);
    entry.generation = this.#generation;
    try {
      ws.send(text);
    } catch (error) {
      this.#forget(entry);
      entry.reject(error);
    }
  }

  /** Requests made while reconnecting go out on the new socket. */
  #flushQueue(ws) {
    const queued = [...this.#queue];
    this.#queue.clear();
    for (const entry of queued) {
      this.#sendRequest(ws, entry, entry.id, JSON.stringify({ type: 'request', id: entry.id, method: entry.method, payload: entry.payload }));
    }
  }

  /** After a recovery: re-sends the idempotent requests sent on earlier sockets (new id each). */
  #resendIdempotent(ws) {
    if (ws.readyState !== OPEN) return;
    for (const entry of new Set(this.#pending.values())) {
      if (!entry.idempotent || entry.generation >= this.#generation) continue;
      const id = this.#takeId();
      entry.ids.push(id);
      this.#sendRequest(ws, entry, id, JSON.stringify({ type: 'request', id, method: entry.method, payload: entry.payload }));
    }
  }

  /** Rejects the requests sent on earlier sockets: their session is gone. */
  #rejectEarlier(why) {
    const earlier = [...new Set(this.#pending.values())].filter((entry) => entry.generation < this.#generation);
    const { code, reason } = this.#lastClose;
    this.#failRequests(earlier, (entry) => `'${entry.method}' (id ${entry.id}) was lost: ${why}`, { code, reason });
  }

  /** Removes a request from every table (pending under each of its ids, queue) and stops its timer. */
  #forget(entry) {
    clearTimeout(entry.timer);
    for (const id of entry.ids) if (this.#pending.get(id) === entry) this.#pending.delete(id);
    this.#queue.delete(entry);
  }

  #failRequests(entries, describe, { code, reason }) {
    for (const entry of entries) {
      this.#forget(entry);
      entry.reject(new ConnectionClosedError(describe(entry), { code, reason, method: entry.method, id: entry.id }));
    }
  }

  /** Rejects every request still waiting: its answer can no longer arrive. */
  #rejectPending(code, reason) {
    this.#failRequests(
      [...new Set(this.#pending.values()), ...this.#queue],
      (entry) =>
        `Connection closed (code ${code}${reason ? `, ${reason}` : ''}) before '${entry.method}' (id ${entry.id}) was answered`,
      { code, reason }
    );
  }

  #takeId() {
    // Ids only need to be unique among pending requests; wrap long before precision is lost.
    if (this.#nextId >= Number.MAX_SAFE_INTEGER) this.#nextId = 0;
    return ++this.#nextId;
  }

  // -------------------------------------------------------------------------------------------
  // Incoming frames
  // -------------------------------------------------------------------------------------------

  /**
   * Processes one frame, then counts it unless it is a `session` control message
   * (PROTOCOL.md, Counting: the client counts the messages it has processed).
   */
  #handleFrame(ws, event) {
    let counted = true;
    try {
      counted = this.#processFrame(ws, event);
    } finally {
      if (counted) this.#count();
    }
  }

  /** @returns {boolean} false for `session` control messages, which are not counted */
  #processFrame(ws, event) {
    const raw = event.data;
    this.events.emit('message', { event, data: raw, starling: this, websocket: ws });

    if (typeof raw !== 'string') {
      this.#nonProtocol(ws, 'binary', raw, 'UNSUPPORTED_FRAME', 'Received a binary frame; protocol messages are text frames');
      return true;
    }
    let message;
    try {
      message = JSON.parse(raw);
    } catch (error) {
      this.#nonProtocol(ws, 'text', raw, 'INVALID_JSON', `Received a text frame that is not JSON: ${errorMessage(error)}`);
      return true;
    }
    if (!isObject(message) || typeof message.type !== 'string') {
      this.#nonProtocol(ws, 'json', message, 'INVALID_MESSAGE', 'Received JSON that is not a protocol message (no type)');
      return true;
    }

    switch (message.type) {
      case 'session':
        this.#handleSession(ws, message);
        return false;
      case 'response':
        if (!isValidId(message.id) || !Number.isInteger(message.status)) {
          this.#nonProtocol(ws, 'json', message, 'INVALID_MESSAGE', 'Received a response without a valid id or status');
        } else {
          this.#handleResponse(message);
        }
        return true;
      case 'event':
        if (typeof message.topic !== 'string' || message.topic === '') {
          this.#nonProtocol(ws, 'json', message, 'INVALID_MESSAGE', 'Received an event without a valid topic');
        } else {
          // `server:shutdown` needs nothing special here: with session recovery, the close that
          // follows it is unexpected like any server-side close, so we reconnect with jitter.
          const data = message.data === undefined ? null : message.data;
          this.topics.dispatch(message.topic, data, { topic: message.topic, starling: this, message });
        }
        return true;
      case 'request':
        if (!isValidId(message.id)) {
          this.#nonProtocol(ws, 'json', message, 'INVALID_MESSAGE', 'Received a request without a valid id');
        } else {
          this.#handleRequest(ws, message);
        }
        return true;
      case 'error': {
        const error = isObject(message.error)
          ? message.error
          : { code: 'UNKNOWN_ERROR', message: 'The server reported an error without details' };
        this.events.emit('error', { error, starling: this, websocket: ws });
        return true;
      }
      default:
        // Unknown types are ignored so newer servers can add message types (PROTOCOL.md);
        // permissive mode still hands them to the application.
        if (this.#options.parseMode === 'permissive') {
          this.events.emit('json', { data: message, starling: this, websocket: ws });
        }
        return true;
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
    // Unknown or expired id (e.g. answered after its timeout, or the second answer to a request
    // re-sent after a recovery): nothing is waiting, drop it.
    if (!entry) return;
    this.#forget(entry);
    entry.resolve(Response.fromMessage(message));
  }

  async #handleRequest(ws, message) {
    const { id, method } = message;
    const session = this.#sessionId;
    if (typeof method !== 'string' || method === '') {
      this.#reply(ws, session, id, { status: 400, error: { code: 'INVALID_REQUEST', message: 'The request has no method' } });
      return;
    }
    const entry = this.#methods.find(method);
    if (!entry) {
      this.#reply(ws, session, id, { status: 404, error: { code: 'METHOD_NOT_FOUND', message: `Method '${method}' not found` } });
      return;
    }
    const payload = message.payload === undefined ? null : message.payload;
    const context = { id, method, pattern: entry.pattern, starling: this, message };
    let answer;
    try {
      const result = await entry.handler(payload, context);
      answer = result instanceof Response ? fromHandlerResponse(result) : { status: 200, data: result };
    } catch (error) {
      // errorMessage never throws, whatever was thrown (e.g. a null-prototype object): the server
      // always gets its answer, and no rejection of this async function goes unhandled.
      answer = { status: 500, error: { code: 'HANDLER_ERROR', message: errorMessage(error) } };
    }
    this.#reply(ws, session, id, answer);
  }

  /**
   * Answers a server request on the socket it came from. With sessions, the server keeps its
   * request across a cut: if that socket is gone, the answer goes out on the socket that resumed
   * the session (held until the recovery when there is none yet).
   * @param {any} ws the socket the request came on
   * @param {string | null} session the session it belonged to
   */
  #reply(ws, session, id, { status, data, error }) {
    let target = ws;
    if (ws.readyState !== OPEN) {
      // Without a session, the server has already failed the request on its side.
      if (session === null || session !== this.#sessionId || !this.#recovery().enabled) return;
      const current = this.#ws;
      target = current && current === this.#sessionSocket && current.readyState === OPEN ? current : null;
    }
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
    if (target === null) {
      this.#heldReplies.push({ session, text });
      return;
    }
    try {
      target.send(text);
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

/**
 * @typedef {object} SocketRecord
 * @property {boolean} resumes opened with a session token (resuming a session)
 * @property {boolean} finished its end was handled (close event, or dropped without one)
 * @property {(code: number, reason: string, event: any) => void} finish handles its end, once
 * @property {any} closeTimer the close handshake deadline, once we closed it
 */

/**
 * @typedef {object} PendingRequest
 * @property {number} id the first id it was sent with
 * @property {number[]} ids every id it was sent with (re-sent after a recovery: one more)
 * @property {string} method
 * @property {any} payload
 * @property {boolean} idempotent may be sent again after a session recovery
 * @property {number} generation the socket it was last sent on
 * @property {any} timer
 * @property {Function} resolve
 * @property {Function} reject
 */

function checkOptions(options) {
  checkParseMode(options.parseMode);
  checkRecoveryOptions(options.sessionRecovery);
  checkReconnectOptions(options.reconnect);
  checkHealthCheckOptions(options.healthCheck);
}

function checkParseMode(mode) {
  if (mode !== 'strict' && mode !== 'permissive') {
    throw new TypeError(`parseMode must be 'strict' or 'permissive', got ${JSON.stringify(mode)}`);
  }
}
