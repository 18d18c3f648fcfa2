'use strict';
// A client connection as JavaScript sees it: identity, user data, and ways to reach the client.

const { OP } = require('./outbox.js');
const { Response } = require('./response.js');
const { MAX_DELAY, isDelay } = require('./deadlines.js');
const { describe } = require('./describe.js');

/** The error of a request timeout out of range: one range for every request, though only routed requests
 * wait on a JavaScript timer. */
function requestTimeoutError() {
  return new RangeError(`timeout must be a number of milliseconds from 0 to ${MAX_DELAY}`);
}

/** Close codes an application may send (RFC 6455 §7.4). */
function validCloseCode(code) {
  return code === 1000 || (Number.isInteger(code) && code >= 3000 && code <= 4999);
}

class Connection {
  #helios;
  #key;
  // The collections below are made on first use: most connections never need some of them, and
  // an idle connection should cost little.
  /** Pings waiting for their pong: id → {resolve, reject, timer}. */
  #pings = null;
  /** Server requests waiting for this client's answer: id → {resolve, reject, method, timeout}. */
  #pending = null;
  /** Topics of the rooms the connection is in, as the native core reported them. */
  #subscriptions = null;
  /** The application's data, made on first use too. */
  #data = null;

  constructor(helios, key, id, url, remoteAddress) {
    this.#helios = helios;
    this.#key = key;
    /** Unique id of the connection. */
    this.id = id;
    /** The path and query the client connected with. */
    this.url = url;
    /** The client's address, `ip:port`. */
    this.remoteAddress = remoteAddress;
    /** Session id, when session recovery is on. */
    this.sessionId = null;
    /** 'OPEN' | 'SUSPENDED' (its session waits for the client) | 'CLOSING' | 'CLOSED' */
    this.state = 'OPEN';
  }

  /** Application data attached to the connection. */
  get data() {
    return (this.#data ??= this.#helios._dataFor(this));
  }

  /** The topics of the rooms the connection is in (a copy). */
  get subscriptions() {
    return this.#subscriptions ? [...this.#subscriptions] : [];
  }

  /** The connection itself, for code written against a raw socket (`connection.ws.close(...)`). */
  get ws() {
    return this;
  }

  /**
   * Sends an event to this client. Resolves to false when the connection is not open. With
   * `{ volatile: true }` the event is dropped (and counted in `stats().dropped`) instead of closing a
   * client that reads too slowly.
   */
  emit(topic, data, options = {}) {
    if (typeof topic !== 'string' || topic.length === 0) {
      return Promise.reject(new TypeError('topic must be a non-empty string'));
    }
    if (!this.#reachable()) return Promise.resolve(false);
    let body;
    try {
      body = json(data);
    } catch (error) {
      return Promise.reject(new TypeError(`data of event '${topic}' is not serializable: ${describe(error)}`));
    }
    this.#helios._outbox.push(`[${OP.emit},${this.#key},${jsonScalar(topic)},${body},${options.volatile === true}]`);
    return Promise.resolve(true);
  }

  /** Sends a protocol message; only `{ type: 'event', topic, data }` messages can be sent this way. */
  send(message) {
    if (!message || message.type !== 'event') {
      return Promise.reject(new TypeError("send() takes an event message: { type: 'event', topic, data }"));
    }
    return this.emit(message.topic, message.data);
  }

  /**
   * Calls a method the client registered. Resolves with the client's Response; rejects when the client
   * does not answer within `timeout` ms or the connection closes first.
   */
  request(method, payload, options = {}) {
    if (typeof method !== 'string' || method.length === 0) {
      return Promise.reject(new TypeError('method must be a non-empty string'));
    }
    const timeout = options.timeout ?? this.#helios.options.requestTimeout;
    if (!isDelay(timeout)) return Promise.reject(requestTimeoutError());
    if (!this.#reachable()) {
      return Promise.reject(closedError(method, this));
    }
    let body;
    try {
      body = json(payload);
    } catch (error) {
      return Promise.reject(new TypeError(`payload of '${method}' is not serializable: ${describe(error)}`));
    }
    const id = this.#helios._nextRequestId();
    return new Promise((resolve, reject) => {
      (this.#pending ??= new Map()).set(id, { resolve, reject, method, timeout });
      this.#helios._outbox.push(`[${OP.request},${this.#key},${id},${jsonScalar(method)},${body},${Math.ceil(timeout)}]`);
    });
  }

  /** Pings the client; resolves with the round trip in ms. Prefer `helios.ping(connection)`. */
  ping(timeout) {
    if (!isDelay(timeout) || timeout === 0) {
      return Promise.reject(new RangeError(`timeout must be a number of milliseconds from 1 to ${MAX_DELAY}`));
    }
    if (this.state !== 'OPEN') return Promise.reject(closedError('ping', this));
    const id = this.#helios._nextRequestId();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pings?.delete(id);
        const error = new Error(`Ping of connection ${this.id} got no pong within ${timeout} ms`);
        error.code = 'PING_TIMEOUT';
        reject(error);
      }, timeout);
      // An unanswered ping must not keep the process alive.
      timer.unref?.();
      (this.#pings ??= new Map()).set(id, { resolve, reject, timer });
      this.#helios._outbox.push(`[${OP.ping},${this.#key},${id}]`);
    });
  }

  /** Closes the connection with `code` (1000 or 3000–4999) and `reason`. */
  close(code = 1000, reason = '') {
    if (!validCloseCode(code)) throw new RangeError(`invalid close code ${code}: use 1000 or 3000-4999`);
    if (Buffer.byteLength(String(reason)) > 123) throw new RangeError('close reason is longer than 123 bytes');
    if (!this.#reachable()) return;
    this.state = 'CLOSING';
    this.#helios._outbox.push(`[${OP.close},${this.#key},${code},${jsonScalar(String(reason))}]`);
  }

  /** @internal the numeric key the native core knows this connection by */
  get _key() {
    return this.#key;
  }

  /** @internal the client answered request `id` */
  _answered(id, status, data, error) {
    const pending = this.#pending?.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    pending.resolve(new Response(status, data, error));
  }

  /** @internal request `id` got no answer in time */
  _failed(id, reason) {
    const pending = this.#pending?.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    const error =
      reason === 'too-many-pending'
        ? Object.assign(new Error(`Request '${pending.method}' refused: connection ${this.id} has too many requests waiting`), {
            code: 'TOO_MANY_PENDING',
          })
        : Object.assign(new Error(`Request '${pending.method}' timed out after ${pending.timeout} ms`), {
            code: 'REQUEST_TIMEOUT',
          });
    pending.reject(error);
  }

  /** @internal the connection joined the room `topic`; false when nothing changed */
  _joined(topic) {
    if (this.state === 'CLOSED' || this.#subscriptions?.has(topic)) return false;
    (this.#subscriptions ??= new Set()).add(topic);
    return true;
  }

  /** @internal the connection left the room `topic`; false when it was not in it */
  _left(topic) {
    return this.#subscriptions?.delete(topic) ?? false;
  }

  /** @internal the connection left every room (it closed); returns the topics */
  _leftAll() {
    const topics = this.#subscriptions ? [...this.#subscriptions] : [];
    this.#subscriptions = null;
    return topics;
  }

  /** @internal the pong to ping `id` came back after `latency` ms */
  _ponged(id, latency) {
    const ping = this.#pings?.get(id);
    if (!ping) return;
    this.#pings.delete(id);
    clearTimeout(ping.timer);
    ping.resolve(latency);
  }

  /** Open, or suspended: a suspended session keeps what is sent to it for its client's return. */
  #reachable() {
    return this.state === 'OPEN' || this.state === 'SUSPENDED';
  }

  /** @internal the socket closed but the session waits for its client */
  _suspended() {
    this.state = 'SUSPENDED';
  }

  /** @internal the client resumed the session on a new socket */
  _resumed() {
    this.state = 'OPEN';
  }

  /** @internal the socket closed */
  _closed() {
    this.state = 'CLOSED';
    for (const ping of this.#pings?.values() ?? []) {
      clearTimeout(ping.timer);
      ping.reject(closedError('ping', this));
    }
    this.#pings = null;
    for (const pending of this.#pending?.values() ?? []) pending.reject(closedError(pending.method, this));
    this.#pending = null;
  }
}

function closedError(method, connection) {
  const error = new Error(`Request '${method}' failed: connection ${connection.id} is closed`);
  error.code = 'CONNECTION_CLOSED';
  return error;
}

/** JSON text of a value, `null` for undefined. Throws on cycles and BigInt. */
function json(value) {
  return JSON.stringify(value) ?? 'null';
}

/** Characters a JSON string holds as they are: no quote, backslash, control character or lone surrogate. */
const VERBATIM = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;

/** A surrogate without its pair: JavaScript strings may hold one, UTF-8 text (and so the core) cannot. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * JSON text of a request id, topic, method name or other string the core reads, as `JSON.stringify` writes it;
 * that call costs more than the rest of a reply for such small values, so numbers and strings with nothing to
 * escape are written here. A lone surrogate becomes U+FFFD, as it would in any text frame, so that the core
 * never refuses the operation that carries it.
 */
function jsonScalar(value) {
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null';
  if (typeof value === 'string') {
    return VERBATIM.test(value) ? `"${value}"` : JSON.stringify(value.replace(LONE_SURROGATE, '\ufffd'));
  }
  return json(value);
}

module.exports = { Connection, json, jsonScalar, requestTimeoutError };
