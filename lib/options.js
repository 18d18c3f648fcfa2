'use strict';
// Validation of `new Helios(options)` and `serve(options)`: every mistake is reported at the call,
// with the option's name.

const fs = require('node:fs');
const { MAX_DELAY, isDelay } = require('./deadlines.js');
const { describe: describeValue } = require('./describe.js');

const DEFAULTS = Object.freeze({
  requestTimeout: 5000,
  parseMode: 'strict',
  maxPayload: 1024 * 1024,
  maxBackpressure: 1024 * 1024,
  allowedOrigins: null,
  maxConnections: null,
  healthPath: null,
  upgrade: null,
  rateLimit: null,
  idleTimeout: null,
  sessionRecovery: null,
  cluster: null,
  echo: false,
  maxSubscriptions: 100,
  maxPendingRequests: 1000,
  handshakeTimeout: 10000,
  handlerTimeout: 30000,
  debug: false,
  healthCheck: Object.freeze({ enabled: true, interval: 30000, timeout: 10000, maxMissed: 2 }),
});

const KNOWN = new Set(Object.keys(DEFAULTS));
/** Capabilities of the product that this version does not have yet: refused rather than ignored. */

function fail(message) {
  throw new TypeError(`Helios: ${message}`);
}

function positiveInteger(name, value, max) {
  if (!Number.isInteger(value) || value <= 0 || value > max) {
    fail(`option '${name}' must be an integer from 1 to ${max}, got ${describe(value)}`);
  }
}

function describe(value) {
  return typeof value === 'string' ? `'${value}'` : describeValue(value);
}

/** Checks constructor options and fills in defaults. */
function heliosOptions(options = {}) {
  if (options === null || typeof options !== 'object') fail('options must be an object');
  for (const name of Object.keys(options)) {
    if (!KNOWN.has(name)) fail(`unknown option '${name}'`);
  }
  const merged = { ...DEFAULTS };
  for (const [name, value] of Object.entries(options)) {
    if (value !== undefined) merged[name] = value;
  }
  if (!isDelay(merged.requestTimeout) || merged.requestTimeout === 0) {
    fail(`option 'requestTimeout' must be a number of milliseconds from 1 to ${MAX_DELAY}, got ${describe(merged.requestTimeout)}`);
  }
  if (merged.parseMode !== 'strict' && merged.parseMode !== 'permissive') {
    fail(`option 'parseMode' must be 'strict' or 'permissive', got ${describe(merged.parseMode)}`);
  }
  positiveInteger('maxPayload', merged.maxPayload, 2 ** 31 - 1);
  positiveInteger('maxBackpressure', merged.maxBackpressure, 2 ** 31 - 1);
  merged.healthCheck = healthCheck(options.healthCheck);
  const { allowedOrigins, maxConnections, healthPath, upgrade } = merged;
  if (allowedOrigins !== null) {
    if (!Array.isArray(allowedOrigins) || allowedOrigins.some((o) => typeof o !== 'string' || o.length === 0)) {
      fail("option 'allowedOrigins' must be an array of origins such as 'https://example.com'");
    }
    merged.allowedOrigins = Object.freeze([...allowedOrigins]);
  }
  if (maxConnections !== null) positiveInteger('maxConnections', maxConnections, 2 ** 31 - 1);
  if (healthPath !== null && (typeof healthPath !== 'string' || !healthPath.startsWith('/'))) {
    fail(`option 'healthPath' must be a path starting with '/', got ${describe(healthPath)}`);
  }
  if (upgrade !== null && typeof upgrade !== 'function') fail("option 'upgrade' must be a function");
  if (merged.rateLimit !== null) merged.rateLimit = rateLimit(merged.rateLimit);
  if (merged.idleTimeout !== null) positiveInteger('idleTimeout', merged.idleTimeout, 2 ** 31 - 1);
  if (typeof merged.echo !== 'boolean') fail("option 'echo' must be a boolean");
  if (typeof merged.debug !== 'boolean') fail("option 'debug' must be a boolean");
  positiveInteger('maxSubscriptions', merged.maxSubscriptions, 2 ** 31 - 1);
  positiveInteger('maxPendingRequests', merged.maxPendingRequests, 2 ** 31 - 1);
  positiveInteger('handshakeTimeout', merged.handshakeTimeout, 2 ** 31 - 1);
  positiveInteger('handlerTimeout', merged.handlerTimeout, 2 ** 31 - 1);
  if (merged.sessionRecovery !== null) merged.sessionRecovery = sessionRecovery(merged.sessionRecovery);
  if (merged.cluster !== null) merged.cluster = cluster(merged.cluster);
  return Object.freeze(merged);
}

/** Checks `healthCheck`; a partial object keeps the other defaults. */
function healthCheck(value = {}) {
  if (value === null || typeof value !== 'object') fail("option 'healthCheck' must be an object");
  for (const name of Object.keys(value)) {
    if (!(name in DEFAULTS.healthCheck)) fail(`unknown option 'healthCheck.${name}'`);
  }
  const merged = { ...DEFAULTS.healthCheck };
  for (const [name, v] of Object.entries(value)) if (v !== undefined) merged[name] = v;
  if (typeof merged.enabled !== 'boolean') fail("option 'healthCheck.enabled' must be a boolean");
  positiveInteger('healthCheck.interval', merged.interval, 2 ** 31 - 1);
  positiveInteger('healthCheck.timeout', merged.timeout, 2 ** 31 - 1);
  positiveInteger('healthCheck.maxMissed', merged.maxMissed, 1000);
  return Object.freeze(merged);
}

/**
 * Checks `sessionRecovery`; returns null when it is disabled. The secret must hold at least 32 bytes (the
 * HS256 key size); `bufferSize` bounds what a session keeps for replay, by count and bytes.
 */
function sessionRecovery(value) {
  if (typeof value !== 'object') fail("option 'sessionRecovery' must be an object");
  for (const name of Object.keys(value)) {
    if (!['enabled', 'secret', 'ttl', 'bufferSize'].includes(name)) fail(`unknown option 'sessionRecovery.${name}'`);
  }
  const { enabled = true, secret, ttl = 300000, bufferSize = {} } = value;
  if (typeof enabled !== 'boolean') fail("option 'sessionRecovery.enabled' must be a boolean");
  if (!enabled) return null;
  if (typeof secret !== 'string' || Buffer.byteLength(secret) < 32) {
    fail("option 'sessionRecovery.secret' must be a string of at least 32 bytes (for example 32 random bytes, hex-encoded)");
  }
  positiveInteger('sessionRecovery.ttl', ttl, 2 ** 31 - 1);
  if (bufferSize === null || typeof bufferSize !== 'object') fail("option 'sessionRecovery.bufferSize' must be an object");
  const { messages = 1000, bytes = 1024 * 1024, ...unknown } = bufferSize;
  for (const name of Object.keys(unknown)) fail(`unknown option 'sessionRecovery.bufferSize.${name}'`);
  positiveInteger('sessionRecovery.bufferSize.messages', messages, 2 ** 31 - 1);
  positiveInteger('sessionRecovery.bufferSize.bytes', bytes, 2 ** 31 - 1);
  return Object.freeze({ secret, ttl, bufferSize: Object.freeze({ messages, bytes }) });
}

/**
 * Checks `cluster`: `redis` is the Redis URL; `channelPrefix` names every channel and key (default
 * `helios`); `queueLimit` bounds the commands waiting for Redis; `heartbeat` (ms) is how often a node says
 * it is alive (three missed: taken for dead); `timeout` (ms) is how long a cluster room query waits;
 * `sessionFlush` (ms) is how often changed sessions are written to Redis.
 */
function cluster(value) {
  if (typeof value !== 'object') fail("option 'cluster' must be an object { redis, channelPrefix? }");
  const known = ['redis', 'channelPrefix', 'queueLimit', 'heartbeat', 'timeout', 'sessionFlush'];
  for (const name of Object.keys(value)) {
    if (!known.includes(name)) fail(`unknown option 'cluster.${name}'`);
  }
  const { redis, channelPrefix = 'helios', queueLimit = 10000, heartbeat = 1000, timeout = 1000, sessionFlush = 50 } = value;
  if (typeof redis !== 'string' || !/^redis:\/\//.test(redis)) {
    fail(`option 'cluster.redis' must be a Redis URL such as 'redis://127.0.0.1:6379', got ${describe(redis)}`);
  }
  if (typeof channelPrefix !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(channelPrefix)) {
    fail("option 'cluster.channelPrefix' must be 1 to 64 letters, digits, '_', '.', ':' or '-'");
  }
  positiveInteger('cluster.queueLimit', queueLimit, 2 ** 31 - 1);
  positiveInteger('cluster.heartbeat', heartbeat, 2 ** 31 - 1);
  positiveInteger('cluster.timeout', timeout, 2 ** 31 - 1);
  positiveInteger('cluster.sessionFlush', sessionFlush, 2 ** 31 - 1);
  return Object.freeze({ redis, channelPrefix, queueLimit, heartbeat, timeout, sessionFlush });
}

/** Checks `rateLimit`: `messagesPerSecond` is required; `burst` defaults to it, `closeAfter` to 10 × burst. */
function rateLimit(value) {
  if (typeof value !== 'object') fail("option 'rateLimit' must be an object");
  for (const name of Object.keys(value)) {
    if (!['messagesPerSecond', 'burst', 'closeAfter'].includes(name)) fail(`unknown option 'rateLimit.${name}'`);
  }
  const { messagesPerSecond, burst = messagesPerSecond, closeAfter = burst * 10 } = value;
  positiveInteger('rateLimit.messagesPerSecond', messagesPerSecond, 1e9);
  positiveInteger('rateLimit.burst', burst, 1e9);
  positiveInteger('rateLimit.closeAfter', closeAfter, 1e9);
  return Object.freeze({ messagesPerSecond, burst, closeAfter });
}

/** Checks `tls`: `cert` and `key` are PEM text (string or Buffer) or paths to PEM files. */
function tlsOptions(tls) {
  if (typeof tls !== 'object') fail("serve option 'tls' must be an object { cert, key }");
  const pem = (name) => {
    const value = tls[name];
    if (Buffer.isBuffer(value)) return value.toString('utf8');
    if (typeof value !== 'string' || value.length === 0) fail(`serve option 'tls.${name}' must be PEM text or a path`);
    if (value.includes('-----BEGIN')) return value;
    try {
      return fs.readFileSync(value, 'utf8');
    } catch (error) {
      fail(`cannot read 'tls.${name}' from ${value}: ${error.message}`);
    }
  };
  return { cert: pem('cert'), key: pem('key') };
}

/** Checks `serve()` options. */
function serveOptions(options = {}) {
  if (options === null || typeof options !== 'object') fail('serve options must be an object');
  const { port = 3000, hostname = '0.0.0.0', tls = null, ...rest } = options;
  for (const name of Object.keys(rest)) fail(`unknown serve option '${name}'`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    fail(`serve option 'port' must be an integer from 0 to 65535, got ${describe(port)}`);
  }
  if (typeof hostname !== 'string' || hostname.length === 0) fail("serve option 'hostname' must be a non-empty string");
  return { port, hostname, tls: tls === null ? null : tlsOptions(tls) };
}

module.exports = { heliosOptions, serveOptions };
