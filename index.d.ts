// Type definitions for @aionbuilders/helios.

/** Options of `new Helios(options)`. */
export interface HeliosOptions {
  /** Default timeout of `connection.request`, in ms, 1 to 2^31 − 1; also how long a room validator may take. Default: 5000. */
  requestTimeout?: number;
  /**
   * What happens to frames that are not protocol messages. `'strict'` (default) answers them with an
   * `error` message; `'permissive'` hands them to `helios.events` as `text`, `json` or `binary` events.
   */
  parseMode?: 'strict' | 'permissive';
  /** Largest message a client may send, in bytes; larger ones close the connection with 1009. Default: 1 MiB. */
  maxPayload?: number;
  /** Most bytes queued for one connection before it is closed with 1013. Default: 1 MiB. */
  maxBackpressure?: number;
  /** WebSocket pings sent by the server to find dead connections; a partial object keeps the other defaults. */
  healthCheck?: HealthCheckOptions;
  /** Origins allowed to connect (exact `Origin` values); others get 403 before the upgrade. Default: any. */
  allowedOrigins?: string[] | null;
  /** Most connections at once; upgrades beyond it get 503. Default: no limit. */
  maxConnections?: number | null;
  /** A path answered with `stats()` as JSON (200) to plain HTTP requests; other plain requests get 426. */
  healthPath?: string | null;
  /**
   * Decides each upgrade before the WebSocket is accepted. Return (or resolve to) `true`/`undefined` to
   * accept, `{ data }` to accept with the connection's initial `data` entries (JSON-serializable), `false`
   * to refuse with 403, or `{ status, reason }` (400–599) to refuse with that answer. A hook that throws
   * refuses with 500.
   */
  upgrade?: ((request: UpgradeRequest) => UpgradeVerdict | Promise<UpgradeVerdict>) | null;
  /**
   * Messages each connection may send (a token bucket in the core). Requests over it get 429
   * `RATE_LIMITED`, events a `system:rate-limited` event; after `closeAfter` refusals in a row the
   * connection is closed with 1008. Default: no limit.
   */
  rateLimit?: RateLimitOptions | null;
  /** Close a connection (1001, 'Idle timeout') after this many ms without a message from it. Default: never. */
  idleTimeout?: number | null;
  /** Resumable sessions with lossless replay. Default: off. */
  sessionRecovery?: SessionRecoveryOptions | null;
  /**
   * Send every message back as it came, skipping the protocol. Only for testing the WebSocket layer
   * (Autobahn|Testsuite); no handler runs in this mode.
   */
  echo?: boolean;
  /** Rooms one connection may be in; past it `helios.subscribe` answers `too many subscriptions`. Default: 100. */
  maxSubscriptions?: number;
  /** Server requests waiting for one connection; past it `request` rejects with `TOO_MANY_PENDING`. Default: 1000. */
  maxPendingRequests?: number;
  /** ms a client has to complete its upgrade (TLS and HTTP head included). Default: 10000. */
  handshakeTimeout?: number;
  /** ms a method handler may take; past it the client gets 504 `HANDLER_TIMEOUT`. Default: 30000. */
  handlerTimeout?: number;
  /** Send handler errors' stack traces to clients. Default: false (never in production). */
  debug?: boolean;
  /**
   * Run as one node of a cluster through Redis (see README, "Cluster"): broadcasts reach every node,
   * `to(connectionId)` reaches connections on any node, rooms can be queried cluster-wide, and with
   * `sessionRecovery` a client whose node died resumes on another. Default: off (nothing connects).
   */
  cluster?: ClusterOptions | null;
}

/** Options of `cluster`. */
export interface ClusterOptions {
  /** The Redis URL, e.g. `redis://127.0.0.1:6379` (`redis://user:password@host:port/db`). */
  redis: string;
  /** Prefix of every channel and key, so clusters can share a Redis: letters, digits, `_.:-`. Default: 'helios'. */
  channelPrefix?: string;
  /** Commands waiting for Redis; past it (Redis slow or away) they are refused and counted. Default: 10000. */
  queueLimit?: number;
  /**
   * ms between heartbeats; a node that misses three is taken for dead. The link to Redis is watched on the
   * same scale: a subscription silent for three heartbeats is pinged, and silent for six it is counted lost
   * and reconnected. Default: 1000.
   */
  heartbeat?: number;
  /** ms a cluster room query waits for the other nodes by default. Default: 1000. */
  timeout?: number;
  /** ms between writes of changed sessions to Redis: what a node's death can take from them. Default: 50. */
  sessionFlush?: number;
}

/** The cluster part of `helios.stats()`. */
export interface ClusterStats {
  /** 'connecting' (not connected yet), 'connected', or 'disconnected' (lost; retrying with backoff). */
  state: 'connecting' | 'connected' | 'disconnected';
  /** This node's id, random per server. */
  nodeId: string;
  /** Live nodes, this one included. */
  nodes: number;
  /** Commands waiting for Redis. */
  queued: number;
  /** Commands Redis carried out (publishes, directory and session writes, pings). */
  sent: number;
  /** Messages received on this node's channels (its own broadcasts included, and skipped). */
  received: number;
  /** Commands refused because the queue was full, or lost with a failed connection. */
  dropped: number;
  /** Times the link to Redis came back after a loss. */
  reconnects: number;
}

/** Options of `rateLimit`. */
export interface RateLimitOptions {
  messagesPerSecond: number;
  /** Default: `messagesPerSecond`. */
  burst?: number;
  /** Default: 10 × `burst`. */
  closeAfter?: number;
}

/** What the upgrade hook sees of a request. */
export interface UpgradeRequest {
  /** Path and query, e.g. `/chat?token=abc`. */
  url: string;
  /** Request headers, names in lower case; repeated headers joined with ', '. */
  headers: Record<string, string>;
  /** `ip:port` of the client. */
  remoteAddress: string;
  /** The query parameters. */
  query: Record<string, string>;
}

/** The upgrade hook's answer. */
export type UpgradeVerdict =
  | boolean
  | undefined
  | { data: Record<string, unknown> }
  | { status: number; reason?: string };

/** What `helios.stats()` returns. */
export interface HeliosStats {
  connections: number;
  /** Rooms with at least one member. */
  rooms: number;
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Messages not sent because their connection was gone or past its outbound limit. */
  dropped: number;
  /** Closed connections by close code. */
  closed: Record<string, number>;
  /** The link to the cluster; absent without the `cluster` option. */
  cluster?: ClusterStats;
}

/**
 * Options of `sessionRecovery`. A client whose socket drops comes back to the same connection within `ttl`
 * and receives, in order and exactly once, what was sent meanwhile (see PROTOCOL.md, "Sessions").
 */
export interface SessionRecoveryOptions {
  /** Default: true when the object is given. */
  enabled?: boolean;
  /** HMAC secret of the HS256 resume tokens: at least 32 bytes. */
  secret?: string;
  /** ms a session waits for its client, and a token's lifetime. Default: 300000. */
  ttl?: number;
  /** What a session keeps for replay. Default: 1000 messages, 1 MiB. */
  bufferSize?: { messages?: number; bytes?: number };
}

/** Options of `healthCheck`. */
export interface HealthCheckOptions {
  /** Default: true. */
  enabled?: boolean;
  /** ms between pings. Default: 30000. */
  interval?: number;
  /** ms a pong may take. Default: 10000. */
  timeout?: number;
  /** Unanswered pings in a row after which the connection is closed. Default: 2. */
  maxMissed?: number;
}

/** Options of `helios.serve(options)`. */
export interface ServeOptions {
  /** Port to listen on; 0 picks a free one. Default: 3000. */
  port?: number;
  /** Address to listen on. Default: '0.0.0.0'. */
  hostname?: string;
  /** Serve wss:// (rustls, TLS 1.2 and 1.3): PEM text (string or Buffer) or paths to PEM files. */
  tls?: { cert: string | Buffer; key: string | Buffer } | null;
}

/** The address a server listens on. */
export interface ServerAddress {
  readonly port: number;
  readonly hostname: string;
  /** `ws://hostname:port`, or `wss://` with TLS */
  readonly url: string;
}

/** The error object of an error response. */
export interface ResponseError {
  code: string;
  message: string;
  [key: string]: unknown;
}

/**
 * The result of a request: `data` on success, `error` on failure, and an HTTP-like status. The status must be
 * an integer from 100 to 999; a handler's response with any other is answered 500 `INVALID_STATUS`.
 */
export declare class Response<T = any> {
  constructor(status: number, data?: T | null, error?: ResponseError | string | null);
  readonly status: number;
  readonly data: T | null;
  readonly error: ResponseError | null;
  /** A successful response. */
  static success<T>(data: T, status?: number): Response<T>;
  /** An error response; `code` defaults to a name derived from the status (401 → 'UNAUTHORIZED'). */
  static error(message: string, status?: number, code?: string): Response<never>;
  isSuccess(): boolean;
  isError(): boolean;
}

/** Options of `connection.request`. */
export interface RequestOptions {
  /** ms to wait for the client's answer, 0 to 2^31 − 1 (a RangeError rejects others). Default: the server's `requestTimeout`. */
  timeout?: number;
}

/** A client connection. */
export declare class Connection {
  /** Unique id of the connection (a UUID). */
  readonly id: string;
  /** The path and query the client connected with, e.g. `/?room=1`. */
  readonly url: string;
  /** The client's address, `ip:port`. */
  readonly remoteAddress: string;
  /** Session id, when session recovery is on. */
  sessionId: string | null;
  /** Application data attached to the connection. */
  readonly data: Map<string, any>;
  /** `SUSPENDED`: the socket is gone and the session waits for its client; emits and requests are kept. */
  readonly state: 'OPEN' | 'SUSPENDED' | 'CLOSING' | 'CLOSED';
  /** The topics of the rooms the connection is in (a copy, updated as it subscribes and unsubscribes). */
  readonly subscriptions: string[];
  /** The connection itself, for code written against a raw socket: `connection.ws.close(4001, 'Auth timeout')`. */
  readonly ws: Connection;
  /** Sends an event to the client; resolves to false when the connection is not open. */
  emit(topic: string, data?: unknown, options?: SendOptions): Promise<boolean>;
  /** Sends an event message. */
  send(message: { type: 'event'; topic: string; data?: unknown }): Promise<boolean>;
  /**
   * Calls a method the client registered. Resolves with the client's response (success or error);
   * rejects with `code: 'REQUEST_TIMEOUT'` when it does not answer in time and `code: 'CONNECTION_CLOSED'`
   * when the connection closes first.
   */
  request<T = any>(method: string, payload?: unknown, options?: RequestOptions): Promise<Response<T>>;
  /** Closes the connection; `code` is 1000 or an integer from 3000 to 4999, `reason` at most 123 bytes (RangeError otherwise). */
  close(code?: number, reason?: string): void;
  /** Pings the client; resolves with the round trip in ms. Same as `helios.ping(connection, { timeout })`. */
  ping(timeout: number): Promise<number>;
}

/** What a method handler and middleware receive. */
export declare class RequestContext<P = any> {
  readonly helios: Helios;
  readonly connection: Connection;
  /** The method the client called. */
  readonly method: string;
  /** The request's payload. */
  readonly payload: P;
  /** The client's request id. */
  readonly requestId: string | number;
  /** The id of the calling connection. */
  readonly clientId: string;
  /** An error response to return: the client receives `status` (400 to 999; a lower one throws RangeError) and `{ code, message }`. */
  createErrorResponse(message: string, status?: number, code?: string): Response<never>;
  /** A success response with an explicit status. */
  createResponse<T>(data: T, status?: number): Response<T>;
}

/** What an event handler receives besides the data. */
export declare class EventContext {
  readonly helios: Helios;
  readonly connection: Connection;
  /** The topic the client sent the event under. */
  readonly topic: string;
  /** The id of the sending connection. */
  readonly clientId: string;
}

/** A method handler: its return value (or resolved value) is the response data; a `Response` is sent as is. */
export type MethodHandler<P = any, R = any> = (context: RequestContext<P>) => R | Promise<R>;

/** Middleware: call `next()` to run the rest of the chain, or return a response to short-circuit. */
export type Middleware = (context: RequestContext, next: () => Promise<any>) => any;

/** A client event handler. */
export type EventHandler<D = any> = (data: D, context: EventContext) => void | Promise<void>;

/**
 * Options of `helios.room(pattern, options)`. A public room is an exact name anyone may join; a protected
 * room (the default) matches a pattern and asks its validator.
 */
export type RoomOptions =
  | { type: 'public' }
  | {
      type?: 'protected';
      /**
       * Decides a subscription: return (or resolve to) `true` to allow it; anything else denies. `captures`
       * are what the pattern's wildcards matched (`user:*` and `user:42` → `['42']`; `**` as one string),
       * `data` is what the client sent with `subscribe`. Throwing, rejecting or not settling within
       * `requestTimeout` denies too, and is logged.
       */
      validator: RoomValidator;
    };

/** A protected room's validator. */
export type RoomValidator = (connection: Connection, captures: string[], data: any) => boolean | Promise<boolean>;

/** Options of `helios.broadcast`. */
export interface BroadcastOptions extends SendOptions {
  /** A connection that receives nothing, typically the sender. */
  exclude?: Connection | null;
}

/** Options of `emit` and `broadcast`. */
export interface SendOptions {
  /**
   * When the recipient's outbound queue is past `maxBackpressure`, drop this message (counted in
   * `stats().dropped`) instead of closing the connection: for messages worthless once late.
   */
  volatile?: boolean;
}

/** What `helios.broadcast` did. */
export interface BroadcastResult {
  /** Deliveries selected: one per recipient and room (a connection in two matching rooms counts twice). */
  targets: number;
  /** Frames queued; fewer than `targets` when a recipient closed or passed its outbound limit. */
  sent: number;
}

/** A room and the connections in it. */
export interface Room {
  topic: string;
  connections: Connection[];
}

/** A room across every live node of a cluster. */
export interface ClusterRoom {
  topic: string;
  /** Ids of the connections in the room, on every node that answered. */
  connections: string[];
  count: number;
  /** Nodes that answered within the timeout, this one included. */
  nodes: string[];
  /** Live nodes that did not answer in time. */
  missing: string[];
}

/** `helios.rooms`: who is in which room. */
export interface Rooms {
  /** The room `topic` and its connections on this node (none when nobody is in it). */
  getRoom(topic: string): Room;
  /**
   * The room across every live node (needs the `cluster` option); resolves once every node answered or
   * `timeout` ms (default `cluster.timeout`) passed, saying which nodes answered.
   */
  getRoom(topic: string, options: { cluster: true; timeout?: number }): Promise<ClusterRoom>;
  /** The topics of the rooms `connection` is in. */
  getSubscriptions(connection: Connection): string[];
  /** How many rooms have at least one connection in them. */
  readonly count: number;
}

/** Payloads of the lifecycle events on `helios.events`. */
export interface HeliosEvents {
  /**
   * A connection opened. `restored` is true for a session brought over from another node of a cluster (its
   * client resumed it here, `session:recovered` follows; or it was taken over from a dead node and is
   * `SUSPENDED`): its data and rooms are back already, so one-time setup such as a welcome can be skipped.
   */
  connection: { connection: Connection; helios: Helios; restored?: boolean };
  /**
   * A socket closed. `sessionEnded` is false when the connection's session waits for its client to come
   * back (it then fires again, with true, if the session expires); always true without session recovery.
   */
  disconnection: { connection: Connection; code: number; reason: string; sessionEnded: boolean };
  /** A client resumed its session: the same connection, on a new socket. `gap` means some messages were lost. */
  'session:recovered': {
    connection: Connection;
    session: { sessionId: string; replayed: number; gap: boolean; recovered: boolean };
  };
  /** A client refreshed its token (`session.refresh`). */
  'session:refreshed': { connection: Connection; token: string };
  /** A text frame that is not JSON (permissive mode). */
  text: { connection: Connection; data: string };
  /** JSON that is not a protocol message (permissive mode). */
  json: { connection: Connection; data: unknown };
  /** A binary frame (permissive mode). */
  binary: { connection: Connection; data: Buffer };
  /** A health-check ping was answered after `latency` ms. Pongs cross into JavaScript only while this has listeners. */
  'pong-received': { connection: Connection; latency: number };
  /** A health-check ping went unanswered; `missedPongs` in a row so far. */
  'ping-missed': { connection: Connection; missedPongs: number };
  /**
   * `maxMissed` pings went unanswered, or a client that stopped reading took none of the frames waiting for it
   * for as long: the connection is dropped (its `disconnection` has code 1006, reason 'Ping timeout').
   */
  'ping-timeout': { connection: Connection };
  /** The connection went over its rate limit (once per run of refusals). */
  'rate-limited': { connection: Connection };
  /** The connection sent a message over `maxPayload`; it is closed with 1009. */
  'message-too-large': { connection: Connection };
  /** The connection stopped reading and passed `maxBackpressure`; it is dropped with 1013. */
  backpressure: { connection: Connection };
  /** The connection was silent for `idleTimeout`; it is closed with 1001. */
  'idle-timeout': { connection: Connection };
  /** A connection joined a room (through `helios.subscribe`). */
  'room:subscribed': { connection: Connection; topic: string };
  /** A connection left a room (`helios.unsubscribe`, or it closed: then before `disconnection`). */
  'room:unsubscribed': { connection: Connection; topic: string };
}

/** The emitter behind `helios.events`: lifecycle events, plus any event the application emits. */
export declare class Emitter<Events extends Record<string, any> = HeliosEvents> {
  on<K extends keyof Events & string>(name: K, listener: (payload: Events[K]) => unknown): this;
  on(name: string, listener: (payload: any) => unknown): this;
  once<K extends keyof Events & string>(name: K, listener: (payload: Events[K]) => unknown): this;
  once(name: string, listener: (payload: any) => unknown): this;
  off(name: string, listener?: (payload: any) => unknown): this;
  emit<K extends keyof Events & string>(name: K, payload: Events[K]): boolean;
  emit(name: string, payload?: unknown): boolean;
  listenerCount(name: string): number;
}

/** A name prefix: methods and middleware registered through it live under `prefix.`. */
export declare class Namespace {
  /** The full prefix, without the trailing dot. */
  readonly prefix: string;
  method(name: string, handler: MethodHandler): this;
  register(name: string, handler: MethodHandler): this;
  use(pattern: string, middleware: Middleware): this;
  use(middleware: Middleware): this;
  namespace(name: string): Namespace;
}

/**
 * A Helios server. Method names are `.`-separated and topics `:`-separated; in patterns `*` matches one
 * segment and `**` one or more (last only).
 */
export declare class Helios {
  constructor(options?: HeliosOptions);
  /** The validated options, with defaults. */
  readonly options: Readonly<Required<Omit<HeliosOptions, 'healthCheck' | 'sessionRecovery'>>> & {
    readonly healthCheck: Readonly<Required<HealthCheckOptions>>;
    readonly sessionRecovery: { readonly secret: string; readonly ttl: number; readonly bufferSize: { messages: number; bytes: number } } | null;
  };
  /** Lifecycle events, and any event the application emits. */
  readonly events: Emitter<HeliosEvents>;
  /** The address being served, or null. */
  readonly address: ServerAddress | null;
  /** Open connections by id. */
  readonly connections: Map<string, Connection>;
  /** Who is in which room. */
  readonly rooms: Rooms;
  /** Registers a method; when several patterns match a call, the most specific wins. */
  method<P = any, R = any>(name: string, handler: MethodHandler<P, R>): this;
  /** Same as `method`. */
  register<P = any, R = any>(name: string, handler: MethodHandler<P, R>): this;
  /** Adds middleware for the methods matching `pattern`; all matching middleware runs in registration order. */
  use(pattern: string, middleware: Middleware): this;
  use(middleware: Middleware): this;
  /** A namespace whose methods and middleware are prefixed with `name.`. */
  namespace(name: string): Namespace;
  /** Handles client events whose topic matches `pattern`; every matching handler runs. */
  on<D = any>(pattern: string, handler: EventHandler<D>): this;
  /** Removes an event handler. */
  off(pattern: string, handler: EventHandler): this;
  /**
   * Declares a room clients may subscribe to with the built-in method `helios.subscribe`; undeclared
   * topics are refused. Throws on an empty pattern, a wildcard in a public room, or a protected room
   * without validator. When several protected patterns match a topic, the most specific one decides.
   */
  room(pattern: string, options?: RoomOptions): this;
  /**
   * Sends an event to every connection in the room `topicOrPattern`, or in every room matching the
   * pattern (`chat:*`, `news:**`); each recipient gets it under the topic it subscribed to. Events
   * emitted before the call are sent before it.
   */
  broadcast(topicOrPattern: string, data?: unknown, options?: BroadcastOptions): BroadcastResult;
  /** Starts listening; throws when the port cannot be bound. */
  serve(options?: ServeOptions): ServerAddress;
  /**
   * Stops serving: closes every connection with 1001, rejects pending server requests, and resolves once
   * every `disconnection` event has fired and the port is free. With `grace` (ms), first stops accepting,
   * sends every client the event `server:shutdown` (`{ grace }`), answers new requests 503
   * `SHUTTING_DOWN`, and waits up to `grace` (at most 2^31 − 1) for the requests being handled to finish.
   */
  stop(options?: { grace?: number }): Promise<void>;
  /**
   * Pings `connection` now; resolves with the round trip in ms. Rejects with `code: 'PING_TIMEOUT'` when no
   * pong comes within `timeout` ms (default: `healthCheck.timeout`), `code: 'CONNECTION_CLOSED'` when it closes.
   */
  ping(connection: Connection, options?: { timeout?: number }): Promise<number>;
  /** Counters: connections, rooms, messages and bytes in and out, dropped messages, closes by code. */
  stats(): HeliosStats;
  /**
   * The connection `connectionId`, on this node or, in a cluster, on any node. Unknown ids reject with
   * `code: 'UNKNOWN_CONNECTION'`.
   */
  to(connectionId: string): ConnectionTarget;
}

/**
 * A connection by id, wherever it lives (`helios.to(connectionId)`). Failures reject with a `code`:
 * `UNKNOWN_CONNECTION` (no live node holds it), `REQUEST_TIMEOUT`, `CONNECTION_CLOSED`, `TOO_MANY_PENDING`,
 * `CLUSTER_UNAVAILABLE` (Redis unreachable).
 */
export interface ConnectionTarget {
  readonly id: string;
  /**
   * Sends an event; resolves to true once it is queued for the connection: on another node, once that node
   * answered that it holds the connection (no answer within `requestTimeout`: `REQUEST_TIMEOUT`).
   */
  emit(topic: string, data?: unknown, options?: { volatile?: boolean }): Promise<boolean>;
  /** Calls a method the client registered; resolves with its Response. */
  request<T = any>(method: string, payload?: unknown, options?: { timeout?: number }): Promise<Response<T>>;
}
