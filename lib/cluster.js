'use strict';
// The cluster as JavaScript sees it: `helios.to(connectionId)` reaches a connection on any node, and room
// queries gather the answers of every live node. The native core routes everything through Redis; this
// file only keeps the promises waiting for the outcomes.

const { OP } = require('./outbox.js');
const { Response } = require('./response.js');
const { json, jsonScalar, requestTimeoutError } = require('./connection.js');
const { isDelay } = require('./deadlines.js');
const { describe } = require('./describe.js');

/** Rejections of routed emits and requests, by the reason the core gives. */
const FAILURES = {
  'unknown-connection': ['UNKNOWN_CONNECTION', (id) => `no node holds connection ${id}`],
  timeout: ['REQUEST_TIMEOUT', (id, what) => `${what} to connection ${id} timed out`],
  'connection-closed': ['CONNECTION_CLOSED', (id) => `connection ${id} is closed`],
  'too-many-pending': ['TOO_MANY_PENDING', (id) => `connection ${id} has too many requests waiting`],
  'cluster-unavailable': ['CLUSTER_UNAVAILABLE', () => 'Redis is unreachable'],
};

function failure(reason, id, what) {
  const [code, message] = FAILURES[reason] ?? ['CLUSTER_ERROR', () => reason];
  return Object.assign(new Error(`Helios: ${what} failed: ${message(id, what)}`), { code });
}

/**
 * `connection.data` of a session in a cluster: a Map that reports every change, so the session's copy in
 * Redis gets its JSON-serializable entries (changes inside a value, without `set`, are not seen).
 */
class SessionData extends Map {
  #changed;

  constructor(changed) {
    super();
    this.#changed = changed;
  }

  set(key, value) {
    super.set(key, value);
    this.#changed?.();
    return this;
  }

  delete(key) {
    const deleted = super.delete(key);
    if (deleted) this.#changed();
    return deleted;
  }

  clear() {
    super.clear();
    this.#changed();
  }
}

/** The entries of `data` whose key is a string and whose value survives JSON, as JSON object text. */
function serializable(data) {
  const parts = [];
  for (const [key, value] of data) {
    if (typeof key !== 'string') continue;
    try {
      const text = JSON.stringify(value);
      if (text !== undefined) parts.push(`${JSON.stringify(key)}:${text}`);
    } catch {
      // not serializable (a cycle, a BigInt): stays on this node only
    }
  }
  return `{${parts.join(',')}}`;
}

/** Routed emits, requests and room queries waiting for their outcome. */
class ClusterCalls {
  #helios;
  #native;
  /** ticket → { resolve, reject, timer, id, what } */
  #pending = new Map();
  /** ticket → { answers: Map(node → ids), expected: Set, finish } */
  #queries = new Map();

  /** @internal */
  constructor(helios, native) {
    this.#helios = helios;
    this.#native = native;
  }

  /** Connections whose session data changed since the last write. */
  #dirty = new Set();

  /** @internal the data Map of a new connection: reports changes when sessions are kept in Redis */
  _dataFor(connection) {
    if (!this.enabled || !this.#helios.options.sessionRecovery) return new Map();
    return new SessionData(() => this.#dataChanged(connection));
  }

  #dataChanged(connection) {
    if (this.#dirty.size === 0) queueMicrotask(() => this.#writeData());
    this.#dirty.add(connection);
  }

  #writeData() {
    for (const connection of this.#dirty) {
      if (connection.state === 'CLOSED') continue;
      this.#helios._outbox.push(`[${OP.sessionData},${connection._key},${serializable(connection.data)}]`);
    }
    this.#dirty.clear();
  }

  /** Whether the server is a node of a cluster. */
  get enabled() {
    return this.#helios.options.cluster !== null;
  }

  /** How long a cluster room query waits for the other nodes, by default. */
  get timeout() {
    return this.#helios.options.cluster.timeout;
  }

  #wait(id, what, timeout, op) {
    const ticket = this.#helios._nextRequestId();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this._failed(ticket, 'timeout'), timeout);
      timer.unref?.();
      this.#pending.set(ticket, { resolve, reject, timer, id, what });
      this.#helios._outbox.push(op(ticket));
    });
  }

  /** Sends an event to connection `id` on another node. */
  emit(id, topic, data, options) {
    let body;
    try {
      body = json(data);
    } catch (error) {
      return Promise.reject(new TypeError(`data of event '${topic}' is not serializable: ${describe(error)}`));
    }
    const volatile = options.volatile === true;
    const what = `emit of '${topic}'`;
    return this.#wait(id, what, this.#helios.options.requestTimeout, (ticket) =>
      `[${OP.routeEmit},${ticket},${jsonScalar(id)},${jsonScalar(topic)},${body},${volatile}]`);
  }

  /** Sends a request to connection `id` on another node; resolves with the client's Response. */
  request(id, method, payload, timeout) {
    let body;
    try {
      body = json(payload);
    } catch (error) {
      return Promise.reject(new TypeError(`payload of '${method}' is not serializable: ${describe(error)}`));
    }
    const what = `request '${method}'`;
    return this.#wait(id, what, timeout, (ticket) =>
      `[${OP.routeRequest},${ticket},${jsonScalar(id)},${jsonScalar(method)},${body},${Math.ceil(timeout)}]`);
  }

  /** @internal call 14: a routed request was answered (a routed emit: `200, true`) */
  _answered(ticket, status, data, error) {
    const pending = this.#take(ticket);
    if (!pending) return;
    pending.resolve(pending.what.startsWith('emit') ? true : new Response(status, data, error));
  }

  /** @internal call 15, or the local timer: a routed emit or request failed */
  _failed(ticket, reason) {
    const pending = this.#take(ticket);
    if (pending) pending.reject(failure(reason, pending.id, pending.what));
  }

  #take(ticket) {
    const pending = this.#pending.get(ticket);
    if (!pending) return null;
    this.#pending.delete(ticket);
    clearTimeout(pending.timer);
    return pending;
  }

  /**
   * Asks every live node who is in the room `topic`; resolves once each answered or `timeout` ms passed,
   * with `{ topic, connections (ids), count, nodes (that answered), missing (that did not) }`.
   */
  room(topic, localIds, timeout) {
    const self = this.#native.nodeId();
    const expected = new Set(this.#native.clusterNodes().filter((node) => node !== self));
    const answers = new Map([[self, localIds]]);
    const result = () => {
      const connections = [...answers.values()].flat();
      return {
        topic,
        connections,
        count: connections.length,
        nodes: [...answers.keys()],
        missing: [...expected].filter((node) => !answers.has(node)),
      };
    };
    if (expected.size === 0) return Promise.resolve(result());
    const ticket = this.#helios._nextRequestId();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.#queries.delete(ticket);
        resolve(result());
      };
      const timer = setTimeout(finish, timeout);
      timer.unref?.();
      this.#queries.set(ticket, { answers, expected, finish });
      this.#helios._outbox.push(`[${OP.roomQuery},${ticket},${jsonScalar(topic)}]`);
    });
  }

  /** @internal call 16: node `node` answered room query `ticket` */
  _roomAnswer(ticket, node, ids) {
    const query = this.#queries.get(ticket);
    if (!query) return;
    query.answers.set(node, ids);
    if ([...query.expected].every((expected) => query.answers.has(expected))) query.finish();
  }
}

/**
 * `helios.to(connectionId)`: a connection on this node or, in a cluster, on any node. Unknown ids reject
 * with `UNKNOWN_CONNECTION`.
 */
class Target {
  #helios;
  #cluster;

  /** @internal */
  constructor(helios, cluster, id) {
    this.#helios = helios;
    this.#cluster = cluster;
    /** The connection's id. */
    this.id = id;
  }

  /**
   * Sends an event; resolves to true once it is queued for the connection (on another node: once that node
   * answered that it holds the connection).
   */
  emit(topic, data, options = {}) {
    if (typeof topic !== 'string' || topic.length === 0) {
      return Promise.reject(new TypeError('topic must be a non-empty string'));
    }
    const local = this.#helios._connectionById(this.id);
    if (local) return local.emit(topic, data, options);
    if (!this.#cluster.enabled) return Promise.reject(failure('unknown-connection', this.id, `emit of '${topic}'`));
    return this.#cluster.emit(this.id, topic, data, options);
  }

  /** Calls a method the client registered; resolves with its Response. */
  request(method, payload, options = {}) {
    if (typeof method !== 'string' || method.length === 0) {
      return Promise.reject(new TypeError('method must be a non-empty string'));
    }
    const local = this.#helios._connectionById(this.id);
    if (local) return local.request(method, payload, options);
    const timeout = options.timeout ?? this.#helios.options.requestTimeout;
    if (!isDelay(timeout)) return Promise.reject(requestTimeoutError());
    if (!this.#cluster.enabled) return Promise.reject(failure('unknown-connection', this.id, `request '${method}'`));
    return this.#cluster.request(this.id, method, payload, timeout);
  }
}

module.exports = { ClusterCalls, Target };
