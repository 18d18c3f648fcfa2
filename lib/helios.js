'use strict';
// The Helios server as JavaScript sees it. Rust owns the sockets, the protocol and the routing; this file
// keeps user handlers and user state, runs each batch of calls the core delivers, and sends results back
// through one outbox.

const { NativeServer } = require('./native.js');
const { Connection, json, jsonScalar } = require('./connection.js');
const { RequestContext, EventContext } = require('./context.js');
const { Emitter } = require('./emitter.js');
const { Namespace } = require('./namespace.js');
const { heliosOptions, serveOptions } = require('./options.js');
const { Outbox, OP } = require('./outbox.js');
const { Response, isStatus } = require('./response.js');
const { Deadlines, MAX_DELAY, isDelay } = require('./deadlines.js');
const { Rooms, roomDeclaration } = require('./rooms.js');
const { ClusterCalls, Target } = require('./cluster.js');
const { describe, logFailure } = require('./describe.js');

/** Call kinds, as the core's `app::call` documents them. */
const CALL = { open: 0, close: 1, request: 2, event: 3, response: 4, requestFailed: 5, unparsed: 6, room: 7, validate: 8, health: 9, pong: 10, upgrade: 11, limit: 12, session: 13, routedAnswer: 14, routedFailed: 15, roomAnswer: 16 };

/** Most batches of calls taken at the end of a delivered one before returning to the event loop. */
const MAX_TAKEN_BATCHES = 4;

/** Servers that are serving, kept reachable so the garbage collector never stops one under its clients. */
const serving = new Set();

class Helios {
  #native;
  /** Handler functions by the id the core routes to. */
  #handlers = [];
  /** The name each method handler was registered under, by handler id: a request to an exact name comes without it. */
  #methodNames = [];
  /** Event handler ids by pattern, for `off`. */
  #eventHandlers = [];
  /** The connections this side has heard of, by key: see `#hearOpens`. */
  #connections = new Map();
  /** The same connections by id, for `to()`. */
  #byId = new Map();
  /** Whether the core reports every connection as it opens. */
  #hearsOpens = false;
  #cluster;
  #requestIds = 0;
  #address = null;
  #onBatch = (text) => this.#runBatch(text);
  /** Client requests whose handler has not answered yet. */
  #inFlight = 0;
  #idleWaiters = [];
  #stopping = null;
  #deadlines = new Deadlines();

  constructor(options) {
    /** The validated options, with defaults. */
    this.options = heliosOptions(options);
    /** Lifecycle events (`connection`, `disconnection`, ...) and any event the application emits. */
    this.events = new Emitter((name) => {
      // Every pong crosses into JavaScript only while someone listens for it.
      if (name === 'pong-received') this.#native.reportPongs(this.events.listenerCount(name) > 0);
      else if ((name === 'connection' || name === 'disconnection') && this.events.listenerCount(name) > 0) this.#hearOpens();
    });
    this.#native = new NativeServer({
      parseMode: this.options.parseMode,
      maxMessageSize: this.options.maxPayload,
      maxBackpressure: this.options.maxBackpressure,
      healthCheck: this.options.healthCheck.enabled ? this.options.healthCheck : undefined,
      allowedOrigins: this.options.allowedOrigins ?? undefined,
      maxConnections: this.options.maxConnections ?? undefined,
      healthPath: this.options.healthPath ?? undefined,
      upgradeHook: this.options.upgrade !== null,
      rateLimit: this.options.rateLimit ?? undefined,
      idleTimeout: this.options.idleTimeout ?? undefined,
      echo: this.options.echo,
      maxSubscriptions: this.options.maxSubscriptions,
      maxPendingRequests: this.options.maxPendingRequests,
      handshakeTimeout: this.options.handshakeTimeout,
      sessions: this.options.sessionRecovery
        ? {
            secret: this.options.sessionRecovery.secret,
            ttl: this.options.sessionRecovery.ttl,
            bufferMessages: this.options.sessionRecovery.bufferSize.messages,
            bufferBytes: this.options.sessionRecovery.bufferSize.bytes,
          }
        : undefined,
      cluster: this.options.cluster ?? undefined,
    });
    /** @internal */
    this._outbox = new Outbox(this.#native);
    /** Who is in which room. */
    this.#cluster = new ClusterCalls(this, this.#native);
    this.rooms = new Rooms(this.#native, (key) => this.#connections.get(key), this.#cluster);
    // Sessions and clusters follow every connection. Otherwise JavaScript hears of a connection with the
    // first call about it, so one that stays silent costs no crossing and no object here.
    if (this.options.sessionRecovery || this.options.cluster) this.#hearOpens();
    else this.#native.reportOpens(false);
  }

  /** Registers a method clients can call. `name` may be a pattern (`user.*`, `gateway.**`). */
  method(name, handler) {
    checkHandler('method', name, handler);
    const handlerId = this.#register(handler);
    this.#methodNames[handlerId] = name;
    this.#native.addMethod(name, handlerId);
    return this;
  }

  /** Same as `method`. */
  register(name, handler) {
    return this.method(name, handler);
  }

  /** Adds middleware `(context, next) => ...` for the methods matching `pattern` (default `**`). */
  use(pattern, middleware) {
    if (typeof pattern === 'function') return this.use('**', pattern);
    checkHandler('middleware', pattern, middleware);
    this.#native.addMiddleware(pattern, this.#register(middleware));
    return this;
  }

  /** A namespace: methods and middleware registered through it are prefixed with `name.`. */
  namespace(name) {
    return new Namespace(this, name);
  }

  /** Handles client events whose topic matches `pattern` (`chat:message`, `chat:*`, `chat:**`). */
  on(pattern, handler) {
    checkHandler('event handler', pattern, handler);
    const id = this.#register(handler);
    this.#native.addEventHandler(pattern, id);
    this.#eventHandlers.push({ pattern, handler, id });
    return this;
  }

  /** Removes an event handler added with `on`. */
  off(pattern, handler) {
    this.#eventHandlers = this.#eventHandlers.filter((entry) => {
      if (entry.pattern !== pattern || entry.handler !== handler) return true;
      this.#native.removeEventHandler(entry.id);
      this.#handlers[entry.id] = undefined;
      return false;
    });
    return this;
  }

  /**
   * Declares a room clients may subscribe to (`helios.subscribe`). `{ type: 'public' }` rooms are exact
   * names anyone may join; protected rooms (the default) match a pattern (`user:*`, `files:**`) and ask
   * `validator(connection, captures, data)`, which allows the subscription by returning (or resolving to)
   * true. When several protected patterns match a topic, the most specific one decides.
   */
  room(pattern, options) {
    const { type, validator } = roomDeclaration(pattern, options);
    if (type === 'public') this.#native.declarePublicRoom(pattern);
    else this.#native.declareProtectedRoom(pattern, this.#register(validator));
    return this;
  }

  /**
   * Sends an event to every connection in the room `topicOrPattern`, or in every room matching the pattern
   * (`chat:*`), each under its own room's topic. `options.exclude` is a connection that receives nothing
   * (typically the sender). Returns `{ targets, sent }`: deliveries selected and frames queued.
   */
  broadcast(topicOrPattern, data, options = {}) {
    if (typeof topicOrPattern !== 'string' || topicOrPattern.length === 0) {
      throw new TypeError('Helios: broadcast topic must be a non-empty string');
    }
    if (options === null || typeof options !== 'object') throw new TypeError('Helios: broadcast options must be an object');
    for (const name of Object.keys(options)) {
      if (name !== 'exclude' && name !== 'volatile') throw new TypeError(`Helios: unknown broadcast option '${name}'`);
    }
    const { exclude, volatile = false } = options;
    if (exclude != null && !(exclude instanceof Connection)) {
      throw new TypeError("Helios: broadcast option 'exclude' must be a Connection");
    }
    let body;
    try {
      body = json(data);
    } catch (error) {
      throw new TypeError(`Helios: data of broadcast to '${topicOrPattern}' is not serializable: ${describe(error)}`);
    }
    // Everything queued earlier (replies, emits) goes out before the broadcast.
    this._outbox.flush();
    return this.#native.broadcast(topicOrPattern, body, exclude ? exclude._key : null, volatile === true);
  }

  /**
   * The connection `connectionId`, on this node or, in a cluster, on any node: `{ emit, request }`.
   * Unknown ids reject with `UNKNOWN_CONNECTION`.
   */
  to(connectionId) {
    if (typeof connectionId !== 'string' || connectionId.length === 0) {
      throw new TypeError('Helios: to() takes a connection id');
    }
    return new Target(this, this.#cluster, connectionId);
  }

  /** @internal a new connection's `data`: a Map, or in a cluster with sessions one that reports changes */
  _dataFor(connection) {
    return this.#cluster._dataFor(connection);
  }

  /** @internal the open (or suspended) connection of this node with id `id` */
  _connectionById(id) {
    return this.#byId.get(id);
  }

  /** Counters: connections, rooms, messages and bytes in and out, dropped messages, closes by code. */
  stats() {
    return JSON.parse(this.#native.stats());
  }

  /**
   * Pings `connection` now; resolves with the round trip in ms, rejects when no pong comes within
   * `timeout` ms (default: `healthCheck.timeout`) or the connection closes.
   */
  ping(connection, options = {}) {
    if (!(connection instanceof Connection)) return Promise.reject(new TypeError('Helios: ping takes a Connection'));
    return connection.ping(options.timeout ?? this.options.healthCheck.timeout);
  }

  /**
   * Starts listening. Port 0 picks a free port. Returns the address actually bound; throws when the
   * port cannot be bound.
   */
  serve(options) {
    const { port, hostname, tls } = serveOptions(options);
    if (this.#address) throw new Error(`Helios: already serving on port ${this.#address.port}`);
    const bound = this.#native.listen(hostname, port, tls ?? undefined, this.#onBatch);
    serving.add(this);
    const host = hostname.includes(':') ? `[${hostname}]` : hostname;
    const scheme = tls ? 'wss' : 'ws';
    this.#address = Object.freeze({ port: bound, hostname, url: `${scheme}://${host}:${bound}` });
    return this.#address;
  }

  /** The address being served, or null. */
  get address() {
    return this.#address;
  }

  /** Open connections by id. */
  get connections() {
    // An application that lists its connections hears of every one from then on, so a later listing
    // need not ask the core again.
    this.#hearOpens();
    const byId = new Map();
    for (const connection of this.#connections.values()) byId.set(connection.id, connection);
    return byId;
  }

  /**
   * Stops serving: closes every connection with 1001, rejects pending server requests, and resolves once
   * every `disconnection` event has fired and the port is free. With `grace` (ms), first stops accepting,
   * sends every client the event `server:shutdown` ({ grace }), answers new requests 503 `SHUTTING_DOWN`,
   * and waits up to `grace` for the requests being handled to finish.
   */
  async stop(options = {}) {
    if (this.#stopping) return this.#stopping;
    if (!this.#address) return;
    const { grace = 0 } = options;
    if (!isDelay(grace)) throw new RangeError(`Helios: grace must be a number of ms from 0 to ${MAX_DELAY}`);
    this.#stopping = this.#stop(grace);
    try {
      await this.#stopping;
    } finally {
      this.#stopping = null;
    }
  }

  async #stop(grace) {
    this._outbox.flush();
    if (grace > 0) {
      // Tell clients first so they can reconnect elsewhere, then let running handlers finish.
      this.#native.drain(JSON.stringify({ grace }));
      let timer;
      const graceOver = new Promise((resolve) => {
        timer = setTimeout(resolve, grace);
      });
      await Promise.race([this.#whenIdle(), graceOver]);
      clearTimeout(timer);
      this._outbox.flush();
    }
    await this.#native.stop();
    this.#address = null;
    serving.delete(this);
  }

  /** Resolves when no client request is being handled. */
  #whenIdle() {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }


  /** @internal */
  _nextRequestId() {
    this.#requestIds += 1;
    return this.#requestIds;
  }

  /**
   * From now on the core reports every connection as it opens (someone listens for `connection` or
   * `disconnection`, lists `connections`, or sessions are on). The connections open already are
   * introduced now, without a `connection` event: they opened before anyone listened.
   */
  #hearOpens() {
    if (this.#hearsOpens) return;
    this.#hearsOpens = true;
    this.#native.reportOpens(true);
    for (const call of JSON.parse(this.#native.introduceAll())) this.#opened(call);
  }

  /** Takes in the connection of open call `call`; returns it. */
  #opened(call) {
    const [, key, id, url, remoteAddress, data, restored] = call;
    const connection = new Connection(this, key, id, url, remoteAddress);
    if (this.options.sessionRecovery) connection.sessionId = id;
    // A session of a dead node taken over here: it waits for its client.
    if (restored === 'suspended') connection._suspended();
    // The upgrade hook's data is in place before anyone hears of the connection.
    if (data) for (const [name, value] of Object.entries(data)) connection.data.set(name, value);
    this.#connections.set(key, connection);
    this.#byId.set(id, connection);
    return connection;
  }

  #register(handler) {
    this.#handlers.push(handler);
    return this.#handlers.length - 1;
  }

  #runBatch(text) {
    this.#runCalls(text);
    // Calls that queued meanwhile are taken here, a few batches at most so promises and timers get their turn.
    for (let more = 0; more < MAX_TAKEN_BATCHES; more++) {
      const taken = this.#native.takeCalls();
      if (taken === null) break;
      this.#runCalls(taken);
    }
  }

  #runCalls(text) {
    let calls;
    try {
      calls = JSON.parse(text);
    } catch (error) {
      console.error('[helios] unreadable batch from the native core:', error);
      return;
    }
    // Every frame the batch sends (replies, emits, broadcasts) is held and leaves at the end, one write per
    // connection.
    this.#native.beginTurn();
    try {
      for (let i = 0; i < calls.length; i++) {
        const call = calls[i];
        try {
          if (typeof call === 'number') {
            // A bare call, a request or an event for one handler: its four values follow its kind in the
            // batch (see the core's `app::call`), which spares JSON.parse an array per call.
            const key = calls[i + 1];
            const a = calls[i + 2];
            const b = calls[i + 3];
            const c = calls[i + 4];
            i += 4;
            this.#runBare(call, key, a, b, c);
          } else {
            this.#run(call);
          }
        } catch (error) {
          logFailure('[helios] failed to handle a call:', error);
        }
      }
      this._outbox.flush();
    } finally {
      this.#native.endTurn();
    }
  }

  #run(call) {
    const kind = call[0];
    if (kind === CALL.open) {
      const connection = this.#opened(call);
      // Brought over from another node (cluster): set up already, so the application can skip its welcome.
      const restored = call[6];
      this.events.emit('connection', restored ? { connection, helios: this, restored: true } : { connection, helios: this });
      return;
    }
    if (kind === CALL.upgrade) {
      const [, id, url, headers, remoteAddress] = call;
      this.#runUpgrade(id, url, headers, remoteAddress);
      return;
    }
    if (kind === CALL.routedAnswer) return this.#cluster._answered(call[1], call[2], call[3], call[4]);
    if (kind === CALL.routedFailed) return this.#cluster._failed(call[1], call[2]);
    if (kind === CALL.roomAnswer) return this.#cluster._roomAnswer(call[1], call[2], call[3]);
    const connection = this.#connections.get(call[1]);
    if (!connection) return;
    switch (kind) {
      case CALL.close: {
        const [, key, code, reason, sessionEnded] = call;
        if (!sessionEnded) {
          // The socket is gone but the session waits for its client: rooms, data and pending requests stay.
          connection._suspended();
          this.events.emit('disconnection', { connection, code, reason, sessionEnded });
          break;
        }
        this.#connections.delete(key);
        if (this.#byId.get(connection.id) === connection) this.#byId.delete(connection.id);
        connection._closed();
        // The core took the connection out of every room already.
        for (const topic of connection._leftAll()) this.events.emit('room:unsubscribed', { connection, topic });
        this.events.emit('disconnection', { connection, code, reason, sessionEnded });
        break;
      }
      case CALL.session: {
        const [, , what, ...details] = call;
        if (what === 'recovered') {
          const [replayed, gap] = details;
          connection._resumed();
          const session = { sessionId: connection.sessionId, replayed, gap, recovered: !gap };
          this.events.emit('session:recovered', { connection, session });
        } else if (what === 'refreshed') {
          this.events.emit('session:refreshed', { connection, token: details[0] });
        }
        break;
      }
      case CALL.request: {
        const [, , requestId, handlerId, payload, method, middlewareIds] = call;
        this.#runRequest(connection, requestId, method ?? this.#methodNames[handlerId], handlerId, middlewareIds, payload);
        break;
      }
      case CALL.event: {
        const [, , topic, handlerIds, data] = call;
        this.#runEvent(connection, topic, handlerIds, data);
        break;
      }
      case CALL.response: {
        const [, , requestId, status, data, error] = call;
        connection._answered(requestId, status, data, error);
        break;
      }
      case CALL.requestFailed:
        connection._failed(call[2], call[3]);
        break;
      case CALL.unparsed: {
        const [, , format, content] = call;
        const data = format === 'binary' ? Buffer.from(content, 'base64') : content;
        this.events.emit(format, { connection, data });
        break;
      }
      case CALL.room: {
        const [, , topic, joined] = call;
        if (joined ? connection._joined(topic) : connection._left(topic)) {
          this.events.emit(joined ? 'room:subscribed' : 'room:unsubscribed', { connection, topic });
        }
        break;
      }
      case CALL.health: {
        const [, , what, value] = call;
        if (what === 'pong') this.events.emit('pong-received', { connection, latency: value });
        else if (what === 'missed') this.events.emit('ping-missed', { connection, missedPongs: value });
        else this.events.emit('ping-timeout', { connection });
        break;
      }
      case CALL.limit:
        // The limit's name is the event's: rate-limited, message-too-large, backpressure, idle-timeout.
        this.events.emit(call[2], { connection });
        break;
      case CALL.pong:
        connection._ponged(call[2], call[3]);
        break;
      case CALL.validate: {
        const [, , requestId, topic, validatorId, captures, data] = call;
        this.#runValidator(connection, requestId, topic, validatorId, captures, data);
        break;
      }
      default:
        console.error(`[helios] unknown call kind ${kind}`);
    }
  }

  /**
   * A bare call: a request to a handler registered under the method's own name, with no middleware
   * (`requestId, handlerId, payload`), or an event for one handler (`topic, handlerId, data`).
   */
  #runBare(kind, key, a, handlerId, c) {
    const connection = this.#connections.get(key);
    if (!connection) return;
    if (kind === CALL.request) this.#runRequest(connection, a, this.#methodNames[handlerId], handlerId, undefined, c);
    else if (kind === CALL.event) this.#runEvent(connection, a, handlerId, c);
    else console.error(`[helios] unknown bare call kind ${kind}`);
  }

  #runRequest(connection, requestId, method, handlerId, middlewareIds, payload) {
    const context = new RequestContext(this, connection, method, payload, requestId);
    const handler = this.#handlers[handlerId];
    this.#inFlight += 1;
    let result;
    let then;
    try {
      result =
        middlewareIds === undefined
          ? handler(context)
          : runChain(middlewareIds.map((id) => this.#handlers[id]), handler, context);
      // Read once and inside the try: `then` may be a getter, and it may throw.
      then = result?.then;
    } catch (error) {
      this.#answered(connection, requestId, handlerFailure(method, error, this.options.debug));
      return;
    }
    // A synchronous answer needs none of the bookkeeping below: most handlers take this path.
    if (typeof then === 'function') this.#await(connection, requestId, method, result, then);
    else this.#answered(connection, requestId, result);
  }

  /** Answers with the thenable's outcome, or with a 504 once the handler has taken too long: exactly once. */
  #await(connection, requestId, method, thenable, then) {
    let answered = false;
    const respond = (value) => {
      if (answered) return;
      answered = true;
      forgetDeadline();
      this.#answered(connection, requestId, value);
    };
    const timeout = this.options.handlerTimeout;
    const forgetDeadline = this.#deadlines.watch(timeout, () => {
      console.error(`[helios] handler of '${method}' did not answer within ${timeout} ms`);
      respond(Response.error(`Handler of '${method}' did not answer within ${timeout} ms`, 504, 'HANDLER_TIMEOUT'));
    });
    const fail = (error) => respond(handlerFailure(method, error, this.options.debug));
    try {
      then.call(thenable, respond, fail);
    } catch (error) {
      fail(error);
    }
  }

  #answered(connection, requestId, value) {
    try {
      this.#reply(connection, requestId, value);
    } finally {
      this.#inFlight -= 1;
      if (this.#inFlight === 0 && this.#idleWaiters.length > 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
    }
  }

  #reply(connection, requestId, value) {
    const response = value instanceof Response ? value : null;
    const status = response ? response.status : 200;
    if (!isStatus(status)) {
      // Written into the frame as it stands: anything else would send the client broken or forged JSON.
      console.error(`[helios] result of request ${JSON.stringify(requestId)} has an invalid status:`, status);
      const shown = typeof status === 'number' || typeof status === 'string' ? status : typeof status;
      const failure = Response.error(`Invalid response status ${shown}: use an integer from 100 to 999`, 500, 'INVALID_STATUS');
      return this.#reply(connection, requestId, failure);
    }
    const failed = status >= 400;
    let text;
    try {
      text = json(response ? (failed ? response.error : response.data) : value);
    } catch (error) {
      logFailure(`[helios] result of request ${JSON.stringify(requestId)} is not serializable:`, error);
      const failure = Response.error(`Result is not serializable: ${describe(error)}`, 500, 'UNSERIALIZABLE_RESULT');
      return this.#reply(connection, requestId, failure);
    }
    // The response frame, written here; the core sends it as is. A numeric id (the core passes only integers
    // below 2^53) goes in as a number, which the flush's join writes out.
    const id = typeof requestId === 'number' ? requestId : jsonScalar(requestId);
    this._outbox.response(connection._key, id, status, failed, text);
  }

  /** Runs the handlers of a client event: `handlerIds` is one id (a bare call) or an array of them. */
  #runEvent(connection, topic, handlerIds, data) {
    const context = new EventContext(this, connection, topic);
    if (typeof handlerIds === 'number') this.#runEventHandler(handlerIds, data, context, connection, topic);
    else for (const id of handlerIds) this.#runEventHandler(id, data, context, connection, topic);
  }

  #runEventHandler(id, data, context, connection, topic) {
    const handler = this.#handlers[id];
    if (!handler) return;
    try {
      const result = handler(data, context);
      // The rejection handler is made only for a promise: most event handlers return nothing.
      if (result && typeof result.then === 'function') result.then(undefined, (error) => this.#eventFailed(connection, topic, error));
    } catch (error) {
      this.#eventFailed(connection, topic, error);
    }
  }

  /** Logs an event handler's failure and tells the sender (op 4). */
  #eventFailed(connection, topic, error) {
    logFailure(`[helios] handler of event '${topic}' failed:`, error);
    this._outbox.push(`[${OP.eventError},${connection._key},${jsonScalar(topic)},${jsonScalar(describe(error))}]`);
  }

  /** Asks the `upgrade` option whether a request may connect, and answers the core (op 7). */
  #runUpgrade(id, url, headers, remoteAddress) {
    const answer = (accepted, status = 0, reason = '', data = null) =>
      this._outbox.push(`[${OP.upgrade},${id},${accepted},${status},${jsonScalar(reason)},${data}]`);
    const refuse = (error) => {
      logFailure('[helios] upgrade hook failed:', error);
      answer(false, 500, 'Upgrade hook failed');
    };
    const decide = (verdict) => {
      if (verdict === undefined || verdict === true) return answer(true);
      if (verdict === false) return answer(false, 403, 'Forbidden');
      if (verdict && typeof verdict === 'object' && 'status' in verdict) {
        const { status, reason = 'Refused' } = verdict;
        if (!Number.isInteger(status) || status < 400 || status > 599) {
          return refuse(new RangeError(`upgrade hook refused with status ${status}; use 400-599`));
        }
        return answer(false, status, describe(reason));
      }
      if (verdict && typeof verdict === 'object' && verdict.data && typeof verdict.data === 'object') {
        let data;
        try {
          data = JSON.stringify(verdict.data);
        } catch (error) {
          return refuse(error);
        }
        return answer(true, 0, '', data);
      }
      return refuse(new TypeError('upgrade hook must return true, false, { data } or { status, reason }'));
    };
    let query;
    try {
      query = Object.fromEntries(new URL(url, 'http://localhost').searchParams);
    } catch {
      // A path no URL parser reads (`//%`): the request is malformed whatever the hook would say.
      answer(false, 400, 'Bad Request');
      return;
    }
    // `decide` runs in a promise callback too, where nothing would catch what it throws.
    const decideSafely = (verdict) => {
      try {
        decide(verdict);
      } catch (error) {
        refuse(error);
      }
    };
    try {
      const verdict = this.options.upgrade({ url, headers, remoteAddress, query });
      const then = verdict?.then;
      if (typeof then === 'function') then.call(verdict, decideSafely, refuse);
      else decideSafely(verdict);
    } catch (error) {
      refuse(error);
    }
  }

  /**
   * Asks a protected room's validator whether `connection` may join `topic`, within `requestTimeout`, and
   * hands the verdict to the core, which joins and answers the client.
   */
  #runValidator(connection, requestId, topic, validatorId, captures, data) {
    const validator = this.#handlers[validatorId];
    const timeout = this.options.requestTimeout;
    let timer;
    let settled = false;
    /** `failed`: the validator threw, rejected or timed out, with `failure`. */
    const verdict = (allowed, failed = false, failure = undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      let error = null;
      if (failed) {
        logFailure(`[helios] validator of room '${topic}' failed:`, failure);
        error = describe(failure);
      }
      const granted = allowed && !failed;
      // The core joins (and reports the join with a room call) or refuses, for instance past `maxSubscriptions`.
      this._outbox.push(
        `[${OP.roomVerdict},${connection._key},${jsonScalar(requestId)},${jsonScalar(topic)},${granted},${jsonScalar(error)}]`,
      );
    };
    let result;
    let then;
    try {
      result = validator(connection, captures, data);
      then = result?.then;
    } catch (error) {
      verdict(false, true, error);
      return;
    }
    if (typeof then !== 'function') {
      verdict(result === true);
      return;
    }
    timer = setTimeout(() => verdict(false, true, new Error(`timed out after ${timeout} ms`)), timeout);
    // A validator that never settles must not keep a stopped server's process alive.
    timer.unref?.();
    try {
      then.call(result, (value) => verdict(value === true), (error) => verdict(false, true, error));
    } catch (error) {
      verdict(false, true, error);
    }
  }
}

/** Runs middleware in order around the handler; `next()` always returns a promise. */
function runChain(chain, handler, context) {
  const step = (index) => {
    if (index === chain.length) return handler(context);
    let called = false;
    const next = () => {
      if (called) return Promise.reject(new Error('next() called more than once'));
      called = true;
      try {
        return Promise.resolve(step(index + 1));
      } catch (error) {
        return Promise.reject(error);
      }
    };
    return chain[index](context, next);
  };
  return step(0);
}

/** The 500 answer of a handler that threw; its stack goes to the client only in debug mode. */
function handlerFailure(method, error, debug) {
  logFailure(`[helios] handler of '${method}' failed:`, error);
  const body = { code: 'HANDLER_ERROR', message: describe(error) };
  if (debug) {
    const stack = stackOf(error);
    if (stack) body.stack = stack;
  }
  return new Response(500, null, body);
}

/** The stack of a thrown Error, if reading it works and gives text. */
function stackOf(error) {
  try {
    return error instanceof Error && typeof error.stack === 'string' ? error.stack : null;
  } catch {
    return null;
  }
}

function checkHandler(what, pattern, handler) {
  if (typeof pattern !== 'string' || pattern.length === 0) throw new TypeError(`${what} pattern must be a non-empty string`);
  if (typeof handler !== 'function') throw new TypeError(`${what} for '${pattern}' must be a function`);
}

module.exports = { Helios };
