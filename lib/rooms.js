'use strict';
// Rooms as JavaScript sees them: checks of `helios.room(...)` declarations, and `helios.rooms`, a view of
// the membership the native core keeps.

const { MAX_DELAY, isDelay } = require('./deadlines.js');

const ROOM_TYPES = new Set(['public', 'protected']);
const ROOM_OPTIONS = new Set(['type', 'validator']);

/** Checks `helios.room(pattern, options)`; returns `{ type, validator }`. */
function roomDeclaration(pattern, options = {}) {
  if (typeof pattern !== 'string' || pattern.length === 0) {
    throw new TypeError('Helios: room pattern must be a non-empty string');
  }
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`Helios: options of room '${pattern}' must be an object`);
  }
  for (const name of Object.keys(options)) {
    if (!ROOM_OPTIONS.has(name)) throw new TypeError(`Helios: unknown option '${name}' of room '${pattern}'`);
  }
  const { type = 'protected', validator } = options;
  if (!ROOM_TYPES.has(type)) {
    throw new TypeError(`Helios: room '${pattern}' has type '${type}'; use 'public' or 'protected'`);
  }
  if (type === 'protected' && typeof validator !== 'function') {
    throw new TypeError(
      `Helios: protected room '${pattern}' needs a validator(connection, captures, data) function (or type: 'public')`,
    );
  }
  if (type === 'public' && validator !== undefined) {
    throw new TypeError(`Helios: public room '${pattern}' takes no validator; anyone may join it`);
  }
  return { type, validator };
}

/** `helios.rooms`: who is in which room. */
class Rooms {
  #native;
  #connectionOf;
  #cluster;

  /** @internal */
  constructor(native, connectionOf, cluster) {
    this.#native = native;
    this.#connectionOf = connectionOf;
    this.#cluster = cluster;
  }

  /**
   * The room `topic` and its connections on this node (none when nobody is in it). With
   * `{ cluster: true }`, a Promise of the room across every live node: `{ topic, connections, count, nodes,
   * missing }`, where `connections` are ids, `nodes` the nodes that answered within `timeout` ms (default
   * the `cluster.timeout` option) and `missing` the live nodes that did not.
   */
  getRoom(topic, options = {}) {
    if (typeof topic !== 'string' || topic.length === 0) throw new TypeError('Helios: topic must be a non-empty string');
    if (options === null || typeof options !== 'object') throw new TypeError('Helios: getRoom options must be an object');
    if (options.cluster === true) {
      if (!this.#cluster.enabled) return Promise.reject(new Error("Helios: getRoom({ cluster: true }) needs the 'cluster' option"));
      const timeout = options.timeout ?? this.#cluster.timeout;
      if (!isDelay(timeout)) return Promise.reject(new RangeError(`Helios: getRoom timeout must be a number of ms from 0 to ${MAX_DELAY}`));
      const local = this.getRoom(topic).connections.map((connection) => connection.id);
      return this.#cluster.room(topic, local, timeout);
    }
    const connections = [];
    for (const key of this.#native.roomMembers(topic)) {
      const connection = this.#connectionOf(key);
      if (connection) connections.push(connection);
    }
    return { topic, connections };
  }

  /** The topics of the rooms `connection` is in. */
  getSubscriptions(connection) {
    if (!connection || !Array.isArray(connection.subscriptions)) {
      throw new TypeError('Helios: getSubscriptions takes a Connection');
    }
    return connection.subscriptions;
  }

  /** How many rooms have at least one connection in them. */
  get count() {
    return this.#native.roomCount();
  }
}

module.exports = { Rooms, roomDeclaration };
