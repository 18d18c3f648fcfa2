// Starling against servers that misbehave (hostile answers, no close handshake, silence), and the edges of
// its options: undefined options, huge timeouts, null request options, a storage that never answers, per-tab
// default storage in a browser, request ids across instances that share a session, the health check.
// Real Helios servers where the behaviour involves the core; small Bun.serve / TCP fakes where the server
// must do what Helios never does.

import { test, expect, describe, afterEach, spyOn } from 'bun:test';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { ConnectionClosedError, ResponseError, Response as ClientResponse } from '../client/index.js';
import { useCleanup, startServer, createClient, connectWithConnection, nextEvent, waitFor } from './helpers.js';

useCleanup();

const SECRET = 'r'.repeat(40);

/** Fake servers and globals a test set up, undone after it. */
const fakes = { servers: new Set(), globals: [] };

afterEach(() => {
  for (const server of fakes.servers) server.stop(true);
  fakes.servers.clear();
  for (const restore of fakes.globals.splice(0).reverse()) restore();
});

/** A server with session recovery (and without its own pings, which would only add traffic). */
function sessionServer(setup) {
  return startServer({ sessionRecovery: { secret: SECRET, ttl: 60000 }, healthCheck: { enabled: false } }, setup);
}

/**
 * A WebSocket server (Bun.serve) that does only what the test says: `onMessage(ws, message)` gets every
 * parsed frame. It never pings. `log.requests` holds the requests it received.
 */
function fakeServer({ onOpen = () => {}, onMessage = () => {} } = {}) {
  const log = { requests: [] };
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch(req, srv) {
      if (srv.upgrade(req, { headers: { 'Sec-WebSocket-Protocol': 'helios.v1' } })) return undefined;
      return new Response('WebSocket only', { status: 426 });
    },
    websocket: {
      sendPings: false,
      open: (ws) => onOpen(ws),
      message(ws, text) {
        const message = JSON.parse(String(text));
        if (message.type === 'request') log.requests.push(message);
        onMessage(ws, message);
      },
    },
  });
  fakes.servers.add(server);
  return { url: `ws://127.0.0.1:${server.port}/`, log };
}

/**
 * A TCP server for what no WebSocket library does. `upgrade: true` completes the WebSocket handshake and
 * then ignores everything (never answers a close frame, never closes); `upgrade: false` accepts TCP and
 * never answers the handshake.
 */
async function rawServer({ upgrade }) {
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    if (!upgrade) return;
    let head = '';
    const onData = (chunk) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.on('data', () => {}); // read and ignore everything, the close frame included
      const key = /sec-websocket-key: *(.+)\r\n/i.exec(head)[1].trim();
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: helios.v1\r\n\r\n`
      );
    };
    socket.on('data', onData);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  fakes.servers.add({
    stop() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  });
  return { url: `ws://127.0.0.1:${server.address().port}/`, sockets };
}

/** Sets `globalThis[name]` for this test only. */
function setGlobal(name, value) {
  const had = Object.prototype.hasOwnProperty.call(globalThis, name);
  const before = globalThis[name];
  globalThis[name] = value;
  fakes.globals.push(() => {
    if (had) globalThis[name] = before;
    else delete globalThis[name];
  });
}

/** A Web Storage stand-in (getItem / setItem / removeItem) over a Map. */
function webStorage() {
  const items = new Map();
  return {
    items,
    getItem: (key) => (items.has(key) ? items.get(key) : null),
    setItem: (key, value) => items.set(key, String(value)),
    removeItem: (key) => items.delete(key),
  };
}

/** How a promise stands right now: 'pending', or how it settled. */
async function status(promise) {
  const pending = {};
  const outcome = await Promise.race([
    promise.then(
      () => 'resolved',
      () => 'rejected'
    ),
    new Promise((resolve) => setTimeout(() => resolve(pending), 0)),
  ]);
  return outcome === pending ? 'pending' : outcome;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

describe('server answers the client cannot turn into text', () => {
  test('an error whose code and message String() cannot convert still settles every kind of call', async () => {
    const unconvertible = { toString: null };
    const { url } = fakeServer({
      onMessage(ws, message) {
        if (message.type !== 'request') return;
        ws.send(
          JSON.stringify({ type: 'response', id: message.id, status: 500, error: { code: unconvertible, message: unconvertible } })
        );
      },
    });
    const starling = createClient(url);
    await starling.connect();

    const plain = await starling.request('anything');
    expect(plain.status).toBe(500);
    expect(plain.error).toEqual({ code: unconvertible, message: unconvertible });

    const thrown = await starling.request('anything', null, { throwOnError: true }).catch((e) => e);
    expect(thrown).toBeInstanceOf(ResponseError);
    expect(thrown.message).toContain('{"toString":null}');
    expect(await starling.subscribe('lobby').catch((e) => e)).toBeInstanceOf(ResponseError);
    expect(await starling.unsubscribe('lobby').catch((e) => e)).toBeInstanceOf(ResponseError);

    const nullPrototype = new ClientResponse({ status: 500, error: Object.create(null) });
    nullPrototype.error.code = Object.create(null);
    expect(new ResponseError(nullPrototype, 'm').message).toBe("Request 'm' failed with status 500 ({})");
  });

  test('a method handler that throws a value String() cannot convert is answered 500 HANDLER_ERROR', async () => {
    const { helios, url } = startServer(() => {});
    const { starling, connection } = await connectWithConnection(helios, url);
    starling.method('client.null', () => {
      throw Object.create(null);
    });
    starling.method('client.getter', async () => {
      throw {
        get message() {
          throw new Error('no message for you');
        },
      };
    });
    for (const method of ['client.null', 'client.getter']) {
      const response = await connection.request(method, null, { timeout: 2000 });
      expect(response.status).toBe(500);
      expect(response.error.code).toBe('HANDLER_ERROR');
      expect(typeof response.error.message).toBe('string');
    }
  });
});

describe('request ids', () => {
  test('each instance starts its ids at its own random base below 2^52', async () => {
    const { url, log } = fakeServer({
      onMessage(ws, message) {
        if (message.type === 'request') ws.send(JSON.stringify({ type: 'response', id: message.id, status: 200, data: null }));
      },
    });
    for (let i = 0; i < 3; i++) {
      const starling = createClient(url);
      await starling.connect();
      await starling.request('first');
      await starling.request('second');
    }
    const ids = log.requests.map((request) => request.id);
    for (const id of ids) {
      expect(Number.isSafeInteger(id)).toBe(true);
      expect(id).toBeGreaterThan(0);
      expect(id).toBeLessThanOrEqual(2 ** 52);
    }
    expect(ids[1]).toBe(ids[0] + 1);
    expect(new Set(ids).size).toBe(6);
  });

  test('a client resuming a session saved by an earlier instance gets its own answers, not the replayed ones', async () => {
    const { url } = sessionServer((helios) => helios.method('echo', (context) => context.payload));
    let saved = null;
    const storage = { save: (token) => (saved = token), load: () => saved, clear: () => (saved = null) };

    const before = createClient(url, { sessionRecovery: { enabled: true, storage } });
    await before.connect();
    expect((await before.request('echo', 'for the page before')).data).toBe('for the page before');
    await before.close(4001, 'page unload'); // not 1000: the session is kept, as on a reload

    const after = createClient(url, { sessionRecovery: { enabled: true, storage } });
    const recovered = nextEvent(after.events, 'session:recovered');
    await after.connect();
    expect((await after.request('echo', 'for this page')).data).toBe('for this page');
    expect((await recovered).session.replayed).toBeGreaterThanOrEqual(1);
  });
});

describe('default session storage in a browser', () => {
  /** Makes this test's globals look like a browser tab whose sessionStorage is `tab`. */
  function browserTab(tab, local) {
    setGlobal('window', globalThis);
    setGlobal('document', {});
    setGlobal('localStorage', local);
    setGlobal('sessionStorage', tab);
  }

  test("is per tab: a second tab gets a session of its own, and a reload resumes its tab's session", async () => {
    const { helios, url } = sessionServer((h) => {
      h.room('lobby', { type: 'public' });
      h.method('whoami', (context) => context.connection.id);
    });
    const shared = webStorage(); // localStorage: every tab of the origin sees it
    const tab1 = webStorage();
    const tab2 = webStorage();

    browserTab(tab1, shared);
    const first = createClient(url, { sessionRecovery: true });
    const closes = [];
    first.events.on('close', ({ code }) => closes.push(code));
    await first.connect();
    await first.subscribe('lobby');
    const firstId = (await first.request('whoami')).data;
    await waitFor(() => tab1.items.size === 1, { message: "the token in tab 1's sessionStorage" });

    browserTab(tab2, shared);
    const second = createClient(url, { sessionRecovery: true });
    const recoveredBySecond = [];
    second.events.on('session:recovered', (payload) => recoveredBySecond.push(payload));
    await second.connect();
    const secondId = (await second.request('whoami')).data;
    expect(secondId).not.toBe(firstId);
    expect(recoveredBySecond).toEqual([]);
    expect(first.state).toBe('OPEN');
    expect((await first.request('whoami')).data).toBe(firstId);
    expect(closes).toEqual([]);
    expect(shared.items.size).toBe(0);

    // Reload of tab 1: the page goes (not a normal close, so the session lives on), a new client resumes.
    browserTab(tab1, shared);
    await first.close(4001, 'unload');
    const reloaded = createClient(url, { sessionRecovery: true });
    const recovered = nextEvent(reloaded.events, 'session:recovered');
    await reloaded.connect();
    expect((await recovered).session.sessionId).toBe(firstId);
    expect((await reloaded.request('whoami')).data).toBe(firstId);
    expect(helios.connections.size).toBe(2);
  });

  test('falls back to memory of the client when the page may not use sessionStorage', async () => {
    const { url } = sessionServer();
    const shared = webStorage();
    setGlobal('window', globalThis);
    setGlobal('document', {});
    setGlobal('localStorage', shared);
    Object.defineProperty(globalThis, 'sessionStorage', {
      configurable: true,
      get() {
        throw new Error('SecurityError: storage is blocked');
      },
    });
    fakes.globals.push(() => delete globalThis.sessionStorage);

    const starling = createClient(url, { sessionRecovery: true });
    const errors = [];
    starling.events.on('error', ({ error }) => errors.push(error));
    await starling.connect();
    await waitFor(() => starling.session !== null, { message: 'a session' });
    await starling.close(4001); // keeps the session: the token in memory resumes it
    const recovered = nextEvent(starling.events, 'session:recovered');
    await starling.connect();
    await recovered;
    expect(shared.items.size).toBe(0);
    expect(errors).toEqual([]);
  });
});

describe('close()', () => {
  test('settles when the server never answers the close handshake, and so do the requests and a connect() after it', async () => {
    const { url } = await rawServer({ upgrade: true });
    const starling = createClient(url, { requestTimeout: 0, closeTimeout: 100 });
    await starling.connect();
    const pending = starling.request('never.answered');
    const closing = starling.close();
    const reconnected = starling.connect();
    await closing;
    const error = await pending.catch((e) => e);
    expect(error).toBeInstanceOf(ConnectionClosedError);
    expect(error.code).toBe(1006);
    await reconnected;
    expect(starling.state).toBe('OPEN');
  });
});

describe('reconnection with session recovery', () => {
  test('against a server without sessions, requests sent before the cut reject once the new connection opens', async () => {
    let kick;
    const { url } = startServer((helios) => {
      helios.method('slow', () => new Promise(() => {}));
      helios.method('drop', (context) => {
        kick = () => context.connection.close(4000, 'bye');
        return 'ok';
      });
    });
    const starling = createClient(url, {
      sessionRecovery: true,
      requestTimeout: 0,
      reconnect: { initialDelay: 10, maxDelay: 20 },
    });
    await starling.connect();
    const slow = starling.request('slow');
    await starling.request('drop');
    const reconnected = nextEvent(starling.events, 'reconnected');
    kick();
    await reconnected;
    const error = await slow.catch((e) => e);
    expect(error).toBeInstanceOf(ConnectionClosedError);
    expect(error.message).toContain('does not resume the session');
    expect(error.code).toBe(4000);
    expect(starling.state).toBe('OPEN');
  });
});

describe('connect() timeout', () => {
  test('covers reading the session storage: a load() that never settles fails connect() in time', async () => {
    const { url } = sessionServer();
    let loads = 0;
    const storage = {
      save() {},
      clear() {},
      load() {
        loads += 1;
        return loads === 1 ? new Promise(() => {}) : null; // hangs once (e.g. its database is down), then works
      },
    };
    const starling = createClient(url, { timeout: 150, sessionRecovery: { enabled: true, storage } });
    const error = await starling.connect().catch((e) => e);
    expect(error.code).toBe('CONNECT_TIMEOUT');
    expect(starling.state).toBe('CLOSED');
    // The hung load does not block the storage calls that come after it.
    await starling.connect();
    expect(loads).toBe(2);
    expect(starling.state).toBe('OPEN');
  });
});

describe('timeouts longer than timers allow (2^31 - 1 ms)', () => {
  test('a request timeout of 30 days does not fire at once', async () => {
    const { url } = fakeServer(); // never answers
    const starling = createClient(url);
    await starling.connect();
    const request = starling.request('never.answered', null, { timeout: 30 * 24 * 3600 * 1000 });
    await sleep(100);
    expect(await status(request)).toBe('pending');
    await starling.close();
    expect(await request.catch((e) => e)).toBeInstanceOf(ConnectionClosedError);
  });

  test('a connect timeout of 2^31 ms does not fire at once', async () => {
    const { url } = await rawServer({ upgrade: false }); // the handshake is never answered
    const starling = createClient(url, { timeout: 2 ** 31 });
    starling.events.on('error', () => {});
    const connecting = starling.connect();
    await sleep(100);
    expect(await status(connecting)).toBe('pending');
    await starling.close();
    expect(await connecting.catch((e) => e)).toBeInstanceOf(ConnectionClosedError);
  });
});

describe('options given as undefined', () => {
  test('take their defaults in the constructor, and keep the current value in connect()', async () => {
    const { url } = fakeServer(); // never answers
    const original = globalThis.setTimeout;
    // Runs the 5000 ms default request timeout in 20 ms, unchanged otherwise.
    const spy = spyOn(globalThis, 'setTimeout').mockImplementation((fn, ms, ...args) =>
      original(fn, ms === 5000 ? 20 : ms, ...args)
    );
    fakes.globals.push(() => spy.mockRestore());

    // (createClient's own requestTimeout is overridden by this undefined, so the default must come back.)
    const defaults = createClient(url, { parseMode: undefined, requestTimeout: undefined, timeout: undefined });
    await defaults.connect();
    const error = await defaults.request('never.answered').catch((e) => e);
    expect(error.name).toBe('RequestTimeoutError');
    expect(error.timeout).toBe(5000);

    const kept = createClient(url, { requestTimeout: 50 });
    await kept.connect({ requestTimeout: undefined, parseMode: undefined });
    const keptError = await kept.request('never.answered').catch((e) => e);
    expect(keptError.name).toBe('RequestTimeoutError');
    expect(keptError.timeout).toBe(50);
  });
});

describe('request() options', () => {
  test('null is the same as no options', async () => {
    const { url } = startServer((helios) => helios.method('echo', (context) => context.payload));
    const starling = createClient(url);
    await starling.connect();
    const pending = starling.request('echo', 'hi', null);
    expect(pending).toBeInstanceOf(Promise);
    expect((await pending).data).toBe('hi');
    await expect(starling.request('echo', 'hi', 42)).rejects.toBeInstanceOf(TypeError);
  });
});

describe('health check', () => {
  test('probes a quiet connection with helios.ping, answered by the server itself; onPing gets the latency', async () => {
    const reached = [];
    const { url } = startServer((helios) => {
      helios.method('**', (context) => {
        reached.push(context.method);
        return 'from the application';
      });
    });
    const latencies = [];
    const starling = createClient(url, {
      healthCheck: { interval: 30, timeout: 2000, onPing: (latency) => latencies.push(latency) },
    });
    await starling.connect();
    await waitFor(() => latencies.length >= 3, { message: 'three answered probes' });
    for (const latency of latencies) {
      expect(typeof latency).toBe('number');
      expect(latency).toBeGreaterThanOrEqual(0);
    }
    expect(starling.state).toBe('OPEN');
    const ping = await starling.request('helios.ping');
    expect([ping.status, ping.data]).toEqual([200, null]);
    expect(reached).toEqual([]);
    // The catch-all does catch everything else.
    expect((await starling.request('any.other')).data).toBe('from the application');
    expect(reached).toEqual(['any.other']);
  });

  test('a silent server is found dead: the socket closes with a reason and pending requests reject', async () => {
    const { url, log } = fakeServer(); // completes the handshake, then never answers anything
    const starling = createClient(url, { requestTimeout: 0, healthCheck: { interval: 30, timeout: 100 } });
    const errors = [];
    starling.events.on('error', ({ error }) => errors.push(error));
    const closed = nextEvent(starling.events, 'close');
    await starling.connect();
    const pending = starling.request('never.answered');
    const { code, reason } = await closed;
    expect(code).toBe(1006);
    expect(reason).toContain('helios.ping');
    expect(errors.map((error) => error.code)).toEqual(['HEALTH_CHECK_FAILED']);
    const error = await pending.catch((e) => e);
    expect(error).toBeInstanceOf(ConnectionClosedError);
    expect(error.reason).toBe(reason);
    expect(starling.state).toBe('CLOSED');
    expect(log.requests.map((request) => request.method)).toEqual(['never.answered', 'helios.ping']);
  });

  test('with session recovery, a link found dead is replaced by a reconnection that resumes the session', async () => {
    const { url } = sessionServer((helios) => helios.method('echo', (context) => context.payload));
    const links = [];
    // A proxy in front of the server; a link it marks dead swallows everything both ways (a half-open TCP).
    const proxy = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch(req, srv) {
        const { pathname, search } = new URL(req.url);
        const link = { upstream: new WebSocket(`${url}${pathname}${search}`, 'helios.v1'), queue: [], dead: false };
        if (srv.upgrade(req, { data: link, headers: { 'Sec-WebSocket-Protocol': 'helios.v1' } })) return undefined;
        link.upstream.close();
        return new Response('WebSocket only', { status: 426 });
      },
      websocket: {
        sendPings: false,
        open(ws) {
          const link = ws.data;
          links.push(link);
          link.upstream.addEventListener('message', (event) => {
            if (!link.dead) ws.send(event.data);
          });
          link.upstream.addEventListener('open', () => link.queue.splice(0).forEach((text) => link.upstream.send(text)));
        },
        message(ws, text) {
          const link = ws.data;
          if (link.dead) return;
          if (link.upstream.readyState === 1) link.upstream.send(text);
          else link.queue.push(text);
        },
        close(ws) {
          ws.data.upstream.close(4001);
        },
      },
    });
    fakes.servers.add(proxy);

    const starling = createClient(`ws://127.0.0.1:${proxy.port}/`, {
      sessionRecovery: true,
      reconnect: { initialDelay: 10, maxDelay: 20 },
      healthCheck: { interval: 30, timeout: 100 },
    });
    const errors = [];
    starling.events.on('error', ({ error }) => errors.push(error.code));
    await starling.connect();
    await waitFor(() => starling.session !== null, { message: 'a session' });
    const { sessionId } = starling.session;
    const recovered = nextEvent(starling.events, 'session:recovered');
    links[0].dead = true;
    expect((await recovered).session.sessionId).toBe(sessionId);
    expect(errors).toContain('HEALTH_CHECK_FAILED');
    expect((await starling.request('echo', 'alive again')).data).toBe('alive again');
  });
});
