/**
 * Starling: the Helios WebSocket client for browsers, Bun and Node.
 * Speaks the Helios wire protocol version 1 (PROTOCOL.md).
 */

// ---------------------------------------------------------------------------------------------
// WebSocket shapes (structural, so the DOM class, Bun's and the `ws` package's all fit)
// ---------------------------------------------------------------------------------------------

/** The parts of a WebSocket that Starling uses. */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  binaryType: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (event: any) => void): void;
}

/** A WebSocket class: `globalThis.WebSocket`, or `WebSocket` from the `ws` package. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export type ConnectionState = 'CLOSED' | 'CONNECTING' | 'OPEN' | 'CLOSING';

export type ParseMode = 'strict' | 'permissive';

/**
 * Options of `new Starling(options)` and `connect(options)`. An option given as `undefined` takes
 * its default (or, in `connect`, keeps its current value). Every timeout is in ms; a value above
 * 2^31−1 (~24.8 days, the longest delay timers support) is capped to it.
 */
export interface StarlingOptions {
  /** Server URL, `ws://…` or `wss://…` (a string or a URL object). */
  url: string | { readonly href: string };
  /** Extra subprotocols, offered after `helios.v1` (which is always offered). */
  protocols?: string | string[];
  /**
   * Connection timeout in ms, covering the whole `connect()`: reading the session storage, then
   * the WebSocket handshake (rejects with a CodedError `CONNECT_TIMEOUT`). 0 or Infinity disables it.
   * Default 10000.
   */
  timeout?: number;
  /** Default request timeout in ms; 0 or Infinity disables it. Default 5000. */
  requestTimeout?: number;
  /**
   * How long `close()` waits for the server to answer the close handshake, in ms. A server that
   * never answers (dead, or hostile) would otherwise leave `close()`, the requests it rejects and a
   * following `connect()` pending: after this the socket is treated as closed, with code 1006.
   * 0 or Infinity disables it. Default 5000.
   */
  closeTimeout?: number;
  /**
   * Frames that are not protocol messages: 'strict' (default) reports them as 'error' events,
   * 'permissive' emits them as 'text' / 'json' / 'binary' events.
   */
  parseMode?: ParseMode;
  /** WebSocket class to use; defaults to `globalThis.WebSocket`. Required in Node 20 (pass `ws`'s). */
  WebSocket?: WebSocketConstructor;
  /**
   * Resume the server session after a dropped connection (PROTOCOL.md, "Sessions"): reconnect by
   * itself, receive every message sent meanwhile exactly once and in order, keep rooms and pending
   * requests. `true` is short for `{ enabled: true }`. Off by default.
   */
  sessionRecovery?: SessionRecoveryOptions | boolean;
  /** Backoff of automatic reconnections (which happen only with session recovery). */
  reconnect?: ReconnectOptions;
  /**
   * Finds a dead connection (a crashed server, a half-open TCP link) that would otherwise look
   * open forever. On by default; `false` is short for `{ enabled: false }`.
   */
  healthCheck?: HealthCheckOptions | boolean;
}

/**
 * The client's health check. Browsers can neither send WebSocket pings nor see the server's, so
 * the client probes at the application level: once the socket has received nothing for
 * `interval` ms, it calls the built-in method `helios.ping` (answered by the server core itself,
 * never by application handlers). Any answer proves the link alive. With no answer within
 * `timeout` ms, the client reports an 'error' (CodedError `HEALTH_CHECK_FAILED`) and closes the
 * socket (a 'close' with code 1006 and a reason saying why): pending requests then reject with
 * ConnectionClosedError, or with session recovery the client reconnects and resumes.
 * Probes happen only while a socket is open; the timers never keep a Node or Bun process alive.
 * The probes count as activity for a server's idle timeout.
 */
export interface HealthCheckOptions {
  /** Default true. */
  enabled?: boolean;
  /** ms without receiving anything before a probe is sent. Default 30000. */
  interval?: number;
  /** ms to wait for the probe's answer before closing the socket. Default 10000. */
  timeout?: number;
  /** Called with the round trip of each answered probe, in ms. */
  onPing?: (latency: number) => void;
}

/**
 * Where the session token is kept between connections. Methods may return promises; calls run
 * one after another. Failures are reported on `events` 'error' (code `SESSION_STORAGE_FAILED`).
 */
export interface SessionStorage {
  save(token: string): void | Promise<void>;
  /** The saved token, or null/undefined when there is none. */
  load(): string | null | undefined | Promise<string | null | undefined>;
  clear(): void | Promise<void>;
}

export interface SessionRecoveryOptions {
  enabled: boolean;
  /**
   * On `connect()`, resume the session of the token in memory or in `storage` (default true).
   * Automatic reconnections always resume.
   */
  autoRecover?: boolean;
  /** Call `refreshSession()` every `refreshInterval` ms while connected (default true). */
  autoRefresh?: boolean;
  /** Milliseconds between automatic refreshes; default: the session's ttl / 2. */
  refreshInterval?: number;
  /**
   * Default: in a browser, the tab's `sessionStorage` (key `helios:session:<url>`); elsewhere, or
   * when the page may not use sessionStorage, memory of this client.
   *
   * Per tab rather than `localStorage` (which every tab of the origin shares): a session has one
   * socket, and resuming it takes it over (the other socket is closed with 4009), so with a shared
   * token each new tab would take over another tab's session, its rooms and its replies.
   * sessionStorage survives reloads of its tab, which is what session recovery is for. (A tab
   * duplicated by the browser starts with a copy of it: the copy resumes the session and the
   * original gets 4009. Pass a storage of your own to decide otherwise.)
   *
   * Only the token is stored: after a reload, the resume says `last_seq=0` and the server
   * replays everything it still holds.
   */
  storage?: SessionStorage;
}

/**
 * Exponential backoff with full jitter: attempt n waits a random time in
 * `[0, min(maxDelay, initialDelay * 2^(n-1)))`.
 */
export interface ReconnectOptions {
  /** Default 100 ms. */
  initialDelay?: number;
  /** Default 10000 ms. */
  maxDelay?: number;
  /** Attempts before giving up ('reconnect-failed'); default Infinity. */
  maxAttempts?: number;
}

export interface RequestOptions {
  /** Overrides `requestTimeout` for this request (ms); 0 or Infinity disables it; capped to 2^31−1. */
  timeout?: number;
  /** Reject with ResponseError instead of resolving when the status is >= 400. */
  throwOnError?: boolean;
  /**
   * Session recovery: the request may safely run twice. If it is still unanswered when the
   * connection drops, it is sent again (under a new id) once the session is recovered; the first
   * answer settles it. Requests without this flag are never sent again: their answer comes from
   * the server's replay if the server received them, otherwise they time out.
   */
  idempotent?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Protocol messages
// ---------------------------------------------------------------------------------------------

export type RequestId = string | number;

/** `error` field of an error response or of an `error` message. */
export interface ErrorBody {
  code: string;
  message: string;
  [key: string]: unknown;
}

export interface RequestMessage {
  type: 'request';
  id: RequestId;
  method: string;
  payload?: unknown;
}

export interface ResponseMessage {
  type: 'response';
  id: RequestId;
  status: number;
  data?: unknown;
  error?: ErrorBody;
}

export interface EventMessage {
  type: 'event';
  topic: string;
  data?: unknown;
}

export interface ErrorMessage {
  type: 'error';
  error: ErrorBody;
}

/** Session control (server to client); not counted. */
export type SessionMessage =
  | { type: 'session'; event: 'created'; sessionId: string; token: string; ttl: number }
  | {
      type: 'session';
      event: 'recovered';
      sessionId: string;
      token: string;
      ttl: number;
      replayed: number;
      gap: boolean;
    }
  | { type: 'session'; event: 'recovery-failed'; reason: string };

/** "I have processed the first `seq` counted messages" (client to server). */
export interface AckMessage {
  type: 'ack';
  seq: number;
}

export type ProtocolMessage = RequestMessage | ResponseMessage | EventMessage | ErrorMessage | SessionMessage | AckMessage;

// ---------------------------------------------------------------------------------------------
// Response and errors
// ---------------------------------------------------------------------------------------------

export interface ResponseInit<T = any> {
  id?: RequestId | null;
  /** Default 200. */
  status?: number;
  data?: T | null;
  error?: ErrorBody | null;
}

/**
 * The answer to a request. Method handlers may also return one to choose their answer's
 * status and error.
 */
export class Response<T = any> {
  constructor(init?: ResponseInit<T>);
  /** The request's id. */
  id: RequestId | null;
  /** HTTP-like status: 2xx success, 4xx bad request, 5xx handler failure. */
  status: number;
  /** The result; null for error responses. */
  data: T | null;
  /** `{ code, message }` for error responses, otherwise null. */
  error: ErrorBody | null;
  /** status < 400 */
  isSuccess(): this is Response<T> & { data: T; error: null };
  /** status >= 400 */
  isError(): this is Response<T> & { data: null; error: ErrorBody };
  /** Builds a Response from a protocol `response` message. */
  static fromMessage<T = any>(message: ResponseMessage): Response<T>;
}

/** The connection is not open, or closed before an answer arrived. */
export class ConnectionClosedError extends Error {
  constructor(message: string, details?: { code?: number; reason?: string; method?: string; id?: number });
  name: 'ConnectionClosedError';
  /** WebSocket close code, when the connection closed. */
  code: number | undefined;
  /** WebSocket close reason, when the connection closed. */
  reason: string | undefined;
  /** The method of the request that failed, if any. */
  method: string | undefined;
  /** The id of the request that failed, if it was sent. */
  id: number | undefined;
}

/** A request got no response within its timeout. */
export class RequestTimeoutError extends Error {
  constructor(method: string, id: number, timeout: number);
  name: 'RequestTimeoutError';
  method: string;
  id: number;
  /** Milliseconds waited. */
  timeout: number;
}

/**
 * Thrown by `request(…, { throwOnError: true })`, `subscribe` and `unsubscribe` on status >= 400.
 * Its message describes the server's `error.code` and `error.message` whatever JSON they hold.
 */
export class ResponseError extends Error {
  constructor(response: Response, method: string);
  name: 'ResponseError';
  response: Response;
  method: string;
  status: number;
  /** The error code, e.g. `METHOD_NOT_FOUND`. */
  code: string;
}

/**
 * Errors Starling creates itself carry a protocol-style code: `CONNECT_FAILED`,
 * `CONNECT_TIMEOUT`, `WEBSOCKET_ERROR`, `SESSION_STORAGE_FAILED`, `HEALTH_CHECK_FAILED`, and in
 * strict mode `INVALID_JSON`, `INVALID_MESSAGE`, `UNSUPPORTED_FRAME`.
 */
export interface CodedError extends Error {
  code: string;
}

// ---------------------------------------------------------------------------------------------
// Emitters
// ---------------------------------------------------------------------------------------------

export interface EventEmitterOptions<Events> {
  /** Where listener errors go; by default `console.error`. */
  onError?: (error: unknown, name: keyof Events) => void;
}

/** Minimal named-event emitter; a throwing listener never stops the others. */
export class EventEmitter<Events extends Record<string, any> = Record<string, any>> {
  constructor(options?: EventEmitterOptions<Events>);
  /** Returns a function that removes this listener. */
  on<K extends keyof Events>(name: K, listener: (payload: Events[K]) => void): () => void;
  /** Like `on`, for one call only. */
  once<K extends keyof Events>(name: K, listener: (payload: Events[K]) => void): () => void;
  /** Removes every registration of `listener` under `name`. */
  off<K extends keyof Events>(name: K, listener: (payload: Events[K]) => void): void;
  /** Calls the listeners in registration order; returns whether any ran. */
  emit<K extends keyof Events>(name: K, payload: Events[K]): boolean;
  listenerCount(name: keyof Events): number;
}

export type TopicHandler<T = any, C = TopicContext> = (data: T, context: C) => unknown;

export interface TopicEmitterOptions {
  /** Where handler errors go; by default `console.error`. */
  onError?: (error: unknown, topic: string) => void;
}

/**
 * Handlers by topic pattern: segments split on `:`, `*` matches one non-empty segment, `**`
 * (last only) one or more. Every matching handler runs, in registration order.
 */
export class TopicEmitter<C = TopicContext> {
  constructor(options?: TopicEmitterOptions);
  /** Throws TypeError for an empty pattern or a `**` that is not last. Returns a remover. */
  on<T = any>(pattern: string, handler: TopicHandler<T, C>): () => void;
  once<T = any>(pattern: string, handler: TopicHandler<T, C>): () => void;
  /** Removes `handler` registered under exactly `pattern`. */
  off<T = any>(pattern: string, handler: TopicHandler<T, C>): void;
  /** Removes every handler under exactly `pattern`, or every handler when omitted. */
  offAll(pattern?: string): void;
  /** Runs the handlers matching `topic` locally; returns how many ran. */
  dispatch(topic: string, data: unknown, context?: C): number;
  /** Handlers matching `topic`, or all handlers when omitted. */
  listenerCount(topic?: string): number;
}

// ---------------------------------------------------------------------------------------------
// Starling
// ---------------------------------------------------------------------------------------------

/**
 * Second argument of topic handlers. There is no `clientId` (older docs showed one): an `event`
 * message carries no sender, so a server that wants receivers to know who sent an event puts it
 * in `data`. This client's own session id is `starling.session?.sessionId`.
 */
export interface TopicContext {
  /** The event's actual topic (not the pattern). */
  topic: string;
  starling: Starling;
  /** The raw protocol message. */
  message: EventMessage;
}

/** Second argument of method handlers. */
export interface MethodContext {
  /** The server's request id. */
  id: RequestId;
  /** The method name the server called. */
  method: string;
  /** The pattern the handler was registered under. */
  pattern: string;
  starling: Starling;
  /** The raw protocol message. */
  message: RequestMessage;
}

/**
 * A method the server may call. Its (resolved) return value is the response data; a thrown
 * error answers 500 HANDLER_ERROR; a returned Response sets status/data/error itself.
 */
export type MethodHandler<P = any, R = unknown> = (payload: P, context: MethodContext) => R | Promise<R>;

interface BasePayload {
  starling: Starling;
  websocket: WebSocketLike | null;
}

export interface OpenEventPayload extends BasePayload {
  event: unknown;
  websocket: WebSocketLike;
}

export interface CloseEventPayload extends BasePayload {
  /** The WebSocket close event; null when the client stopped waiting for it (see `closeTimeout`, `healthCheck`). */
  event: unknown;
  websocket: WebSocketLike;
  /** Close code (1006 when the implementation gave none). */
  code: number;
  reason: string;
}

export interface ErrorEventPayload extends BasePayload {
  /** The WebSocket error event, for socket errors. */
  event?: unknown;
  /**
   * A socket error or a strict-mode bad frame (CodedError), an error thrown by a topic
   * handler or listener, or the `error` object of a server `error` message (ErrorBody).
   */
  error?: unknown;
  /** For a topic handler's error: the event's topic. */
  topic?: string;
  /** For a strict-mode bad frame: the frame's text, parsed JSON, or binary data. */
  data?: unknown;
}

export interface MessageEventPayload extends BasePayload {
  event: unknown;
  /** The raw frame: a string for text frames, binary data otherwise. */
  data: unknown;
  websocket: WebSocketLike;
}

/** Binary frame data: ArrayBuffer, a Buffer/typed array, or a Blob (structural, so no DOM lib is needed). */
export type BinaryData =
  | ArrayBuffer
  | ArrayBufferView
  | { readonly size: number; readonly type: string; arrayBuffer(): Promise<ArrayBuffer> };

export interface TextEventPayload extends BasePayload {
  /** A text frame that is not JSON. */
  data: string;
  websocket: WebSocketLike;
}

export interface JsonEventPayload extends BasePayload {
  /** JSON that is not a protocol message (or has a message type this client does not know). */
  data: unknown;
  websocket: WebSocketLike;
}

export interface BinaryEventPayload extends BasePayload {
  /** Usually an ArrayBuffer (Starling sets binaryType to 'arraybuffer'). */
  data: BinaryData;
  websocket: WebSocketLike;
}

/** `starling.session`. */
export interface SessionInfo {
  sessionId: string;
  /** Milliseconds the server keeps the session after a drop. */
  ttl: number | null;
  /** Counted messages processed in this session, across its sockets. */
  lastSeq: number;
}

export interface SessionCreatedPayload {
  session: { sessionId: string; ttl: number | null };
  starling: Starling;
}

export interface SessionRecoveredPayload {
  session: {
    sessionId: string;
    ttl: number | null;
    /** How many messages the server sent again. */
    replayed: number;
    /** Some messages sent while away are gone (the server's buffer overflowed): resync. */
    gap: boolean;
    /** `!gap`: nothing was lost. */
    recovered: boolean;
  };
  starling: Starling;
}

export interface SessionRecoveryFailedPayload {
  /** `invalid token`, `expired token`, `unknown session`, `token already used`. */
  reason: string;
  starling: Starling;
}

export interface SessionRefreshedPayload {
  token: string;
  sessionId: string | null;
  starling: Starling;
}

export interface ReconnectingPayload {
  /** 1 for the first attempt after a drop. */
  attempt: number;
  /** Milliseconds waited before this attempt. */
  delay: number;
  starling: Starling;
}

export interface ReconnectedPayload {
  attempt: number;
  starling: Starling;
  websocket: WebSocketLike;
}

export interface ReconnectFailedPayload {
  attempts: number;
  /** What the requests still waiting were rejected with. */
  error: ConnectionClosedError;
  starling: Starling;
}

export interface StarlingEventMap {
  open: OpenEventPayload;
  close: CloseEventPayload;
  error: ErrorEventPayload;
  /** Every incoming frame, before parsing. */
  message: MessageEventPayload;
  /** Permissive mode only. */
  text: TextEventPayload;
  /** Permissive mode only. */
  json: JsonEventPayload;
  /** Permissive mode only. */
  binary: BinaryEventPayload;
  /** The server started a new session (first message of a connection, or after a failed resume). */
  'session:created': SessionCreatedPayload;
  /** A resume succeeded: the replayed messages have been processed already. */
  'session:recovered': SessionRecoveredPayload;
  /**
   * A resume was refused: the stored token is cleared, requests sent on the old session reject
   * with ConnectionClosedError, rooms are gone; a 'session:created' follows.
   */
  'session:recovery-failed': SessionRecoveryFailedPayload;
  'session:refreshed': SessionRefreshedPayload;
  /** After an unexpected close (session recovery only), before each attempt. */
  reconnecting: ReconnectingPayload;
  /** The new socket is open; 'session:recovered' or 'session:recovery-failed' follows. */
  reconnected: ReconnectedPayload;
  /** `reconnect.maxAttempts` attempts failed: waiting requests were rejected; state is CLOSED. */
  'reconnect-failed': ReconnectFailedPayload;
}

/** Answer of `subscribe` / `unsubscribe`. */
export interface SubscriptionResult {
  success: boolean;
  [key: string]: unknown;
}

/** A connection to a Helios server. */
export class Starling {
  constructor(options: StarlingOptions);

  /** Connection events. Listen to 'error': handler failures and server `error` messages go there only. */
  readonly events: EventEmitter<StarlingEventMap>;
  /** Handlers for server events, by topic pattern. */
  readonly topics: TopicEmitter<TopicContext>;
  /** 'CONNECTING' also while reconnecting between sockets. */
  readonly state: ConnectionState;
  /** The underlying WebSocket, or null when there is no connection (also while reconnecting). */
  readonly websocket: WebSocketLike | null;
  /** The current session, or null before the server created one and after `clearSession()`. */
  readonly session: Readonly<SessionInfo> | null;

  /**
   * Opens the connection; resolves with the WebSocket once open. Rejects if it errors or closes
   * first (ConnectionClosedError), or after `timeout` ms. Options override the constructor's.
   * With session recovery and `autoRecover`, resumes the session of the token in memory or in
   * storage. While reconnecting, settles with the reconnection.
   */
  connect(options?: Partial<StarlingOptions>): Promise<WebSocketLike>;
  /**
   * Closes the connection; resolves once closed, or after `closeTimeout` ms if the server does not
   * answer the close handshake. Pending requests reject with ConnectionClosedError. Never followed
   * by a reconnection, and stops one in progress.
   * A normal close (1000, the default) ends the session on the server, so the client forgets it
   * (token and storage); another code keeps it for a later `connect()`.
   */
  close(code?: number, reason?: string): Promise<void>;
  /** Alias of `close`. */
  disconnect(code?: number, reason?: string): Promise<void>;

  /**
   * Calls a server method. Rejects with ConnectionClosedError when not open or closed before
   * the answer, RequestTimeoutError on timeout, ResponseError on status >= 400 with `throwOnError`.
   *
   * With session recovery: calls made while reconnecting wait for the new socket (up to their
   * timeout). A request unanswered when the connection drops stays pending; after the recovery it
   * is sent again only if made with `{ idempotent: true }` — otherwise its answer comes from the
   * server's replay if the server got it, or it times out. If the session cannot be recovered
   * (recovery refused, a new session created, or a reconnection with no session token to resume,
   * as with a server without session recovery), requests sent on the old socket reject with
   * ConnectionClosedError.
   *
   * Request ids start at a random integer below 2^52 in each instance, so a client that resumes a
   * session another instance started (a page reload) never takes that instance's replayed
   * answers for its own. `options` null is the same as none.
   */
  request<T = any>(method: string, payload?: unknown, options?: RequestOptions | null): Promise<Response<T>>;
  /** Sends an event; resolves false when not open (also while reconnecting: events are not queued). */
  emit(topic: string, data?: unknown): Promise<boolean>;
  /** Sends a raw protocol message (objects as JSON, strings as they are); resolves false when not open. */
  send(message: ProtocolMessage | Record<string, unknown> | string): Promise<boolean>;

  /** Same as `topics.on`. Returns a remover. */
  on<T = any>(topicPattern: string, handler: TopicHandler<T, TopicContext>): () => void;
  /** Same as `topics.off`. */
  off<T = any>(topicPattern: string, handler: TopicHandler<T, TopicContext>): void;

  /**
   * Registers a method the server may call (name or pattern, segments split on `.`; the most
   * specific match wins). Registering a name again replaces it. Returns an unregister function.
   */
  method<P = any, R = unknown>(name: string, handler: MethodHandler<P, R>): () => void;

  /** Calls `helios.subscribe` with `{ topic, data }`; resolves the response data. */
  subscribe<T = SubscriptionResult>(topic: string, data?: unknown, options?: { timeout?: number }): Promise<T>;
  /** Calls `helios.unsubscribe` with `{ topic }`; resolves the response data. */
  unsubscribe<T = SubscriptionResult>(topic: string, options?: { timeout?: number }): Promise<T>;

  /**
   * Calls `session.refresh`: a new token for the same session (the old one stops working), saved
   * to the storage; emits 'session:refreshed'. Allowed once per ttl / 2 (else ResponseError 429).
   */
  refreshSession(options?: { timeout?: number }): Promise<{ token: string; ttl: number }>;
  /** Clears the storage and forgets the token, session id and count; the next connection starts a new session. */
  clearSession(): Promise<void>;
}
