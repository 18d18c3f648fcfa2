// Starling's session recovery against a mock server (Bun.serve) that speaks just enough of PROTOCOL.md's
// "Sessions" section: `created` on connect, counting and buffering every non-session message, resume with
// session_token + last_seq (4009 to the old socket, replay, `recovered`), `recovery-failed` + `created`
// for refused tokens, ack trimming and `session.refresh`. The real core is not involved, so these tests
// pin the client's side of the contract.

import { test, expect, describe, afterEach, spyOn } from 'bun:test';
import { Starling, ConnectionClosedError } from '../client/index.js';

const opened = { servers: new Set(), clients: new Set(), spies: new Set() };

afterEach(async () => {
  const clients = [...opened.clients];
  opened.clients.clear();
  await Promise.all(clients.map((client) => client.close().catch(() => {})));
  for (const server of opened.servers) server.stop(true);
  opened.servers.clear();
  for (const spy of opened.spies) spy.mockRestore();
  opened.spies.clear();
});

/** Polls `condition` until it holds (no fixed sleeps). */
async function waitFor(condition, { timeout = 3000, message = 'condition' } = {}) {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeout) throw new Error(`Timed out waiting for ${message}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** The next emission of `name` on an EventEmitter-like. */
function nextEvent(emitter, name) {
  return new Promise((resolve) => emitter.once(name, resolve));
}

/** An in-memory SessionStorage that records its calls; async when asked. */
function recordingStorage(initial = null, { async = false } = {}) {
  const storage = {
    token: initial,
    calls: [],
    save(token) {
      storage.calls.push(['save', token]);
      storage.token = token;
      return async ? Promise.resolve() : undefined;
    },
    load() {
      storage.calls.push(['load']);
      return async ? Promise.resolve(storage.token) : storage.token;
    },
    clear() {
      storage.calls.push(['clear']);
      storage.token = null;
      return async ? Promise.resolve() : undefined;
    },
  };
  return storage;
}

function client(url, options = {}) {
  const starling = new Starling({
    url,
    sessionRecovery: { enabled: true },
    reconnect: { initialDelay: 20, maxDelay: 200 },
    ...options,
  });
  opened.clients.add(starling);
  return starling;
}

/**
 * The mock server. Every counted message goes through `send(session, message)`: numbered, buffered until
 * acknowledged, and written to the session's socket when it has one.
 */
function mockServer({ ttl = 60000 } = {}) {
  const sessions = new Map();
  const tokens = new Map(); // token -> session id, deleted once used (one resume per token)
  const used = new Set();
  const log = { connects: [], acks: [], requests: [], responses: [], closes: [] };
  let ids = 0;
  let tokenIds = 0;

  const issue = (session) => {
    const token = `token-${++tokenIds}`;
    tokens.set(token, session.id);
    return token;
  };
  const control = (ws, message) => ws.send(JSON.stringify({ type: 'session', ...message }));
  const send = (session, message) => {
    const text = JSON.stringify(message);
    session.seq++;
    session.buffer.push({ seq: session.seq, text });
    if (session.ws) session.ws.send(text);
  };
  const reply = (session, id, data) => send(session, { type: 'response', id, status: 200, data });
  const create = (ws) => {
    const session = { id: `s${++ids}`, seq: 0, buffer: [], ws };
    sessions.set(session.id, session);
    ws.data.session = session;
    control(ws, { event: 'created', sessionId: session.id, token: issue(session), ttl });
  };

  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch(req, srv) {
      const headers = { 'Sec-WebSocket-Protocol': 'helios.v1' };
      if (srv.upgrade(req, { data: { url: new URL(req.url), session: null }, headers })) return undefined;
      return new Response('WebSocket only', { status: 426 });
    },
    websocket: {
      open(ws) {
        const query = Object.fromEntries(ws.data.url.searchParams);
        log.connects.push(query);
        const token = query.session_token;
        if (token === undefined) return create(ws);
        const session = sessions.get(tokens.get(token));
        if (!session) {
          const reason = used.has(token) ? 'token already used' : tokens.has(token) ? 'unknown session' : 'invalid token';
          control(ws, { event: 'recovery-failed', reason });
          return create(ws);
        }
        tokens.delete(token);
        used.add(token);
        if (session.ws) {
          const old = session.ws;
          session.ws = null;
          old.close(4009, 'Session taken over');
        }
        session.ws = ws;
        ws.data.session = session;
        const from = Number(query.last_seq);
        const held = session.buffer.filter((m) => m.seq > from);
        const gap = held.length ? held[0].seq > from + 1 : session.seq > from;
        for (const m of held) ws.send(m.text);
        control(ws, {
          event: 'recovered',
          sessionId: session.id,
          token: issue(session),
          ttl,
          replayed: held.length,
          gap,
        });
      },
      message(ws, text) {
        const session = ws.data.session;
        const message = JSON.parse(String(text));
        if (message.type === 'ack') {
          log.acks.push(message.seq);
          session.buffer = session.buffer.filter((m) => m.seq > message.seq);
        } else if (message.type === 'request') {
          log.requests.push(message);
          if (message.method === 'echo') reply(session, message.id, message.payload ?? null);
          else if (message.method === 'session.refresh') reply(session, message.id, { token: issue(session), ttl });
          // 'hold': answered by the test through `mock.reply`.
        } else if (message.type === 'response') {
          log.responses.push({ ...message, session: session.id });
        }
      },
      close(ws, code) {
        log.closes.push(code);
        const session = ws.data.session;
        if (session && session.ws === ws) session.ws = null;
      },
    },
  });
  opened.servers.add(server);

  const latest = () => [...sessions.values()].at(-1);
  return {
    server,
    url: `ws://127.0.0.1:${server.port}/`,
    log,
    sessions,
    latest,
    send,
    reply,
    /** Counted events `from`..`to` under `topic` on the latest session. */
    emitRange(from, to, topic = 'count') {
      for (let n = from; n <= to; n++) send(latest(), { type: 'event', topic, data: n });
    },
    /** Drops a session's socket (default: the latest's) without a close frame (the client sees 1006). */
    kill(session = latest()) {
      const ws = session.ws;
      session.ws = null;
      ws.terminate();
    },
  };
}

describe('counting and acks', () => {
  test('session messages are not counted; acks go out every 50 messages and within 1 s of the last', async () => {
    const mock = mockServer();
    const starling = client(mock.url);
    const received = [];
    starling.on('count', (n) => received.push(n));
    const created = nextEvent(starling.events, 'session:created');
    await starling.connect();
    const { session } = await created;
    expect(session).toEqual({ sessionId: 's1', ttl: 60000 });
    expect(starling.session).toEqual({ sessionId: 's1', ttl: 60000, lastSeq: 0 });

    mock.emitRange(1, 60);
    // A control message in the middle of the stream: not counted (the server does not count it either).
    mock.latest().ws.send(JSON.stringify({ type: 'session', event: 'something-new' }));
    mock.emitRange(61, 120);
    await waitFor(() => received.length === 120, { message: '120 events' });
    const lastAt = Date.now();
    expect(starling.session.lastSeq).toBe(120);

    await waitFor(() => mock.log.acks.includes(120), { message: 'ack 120' });
    expect(Date.now() - lastAt).toBeLessThan(1500);
    expect(mock.log.acks).toEqual([50, 100, 120]);
    expect(mock.latest().buffer).toEqual([]);

    // Responses are counted too.
    const response = await starling.request('echo', 'hi');
    expect(response.data).toBe('hi');
    expect(starling.session.lastSeq).toBe(121);
  });
});

describe('reconnection', () => {
  test('an abrupt close: resumes with the right last_seq and gets every message exactly once, in order', async () => {
    const mock = mockServer();
    const starling = client(`${mock.url}?app=demo`);
    const received = [];
    starling.on('count', (n) => received.push(n));
    const seen = [];
    let cut;
    starling.events.on('close', ({ code }) => {
      cut = { code, state: starling.state, lastSeq: starling.session.lastSeq };
    });
    starling.events.on('reconnecting', ({ attempt, delay }) => seen.push(['reconnecting', attempt, delay]));
    starling.events.on('reconnected', ({ attempt }) => seen.push(['reconnected', attempt]));
    await starling.connect();
    await waitFor(() => starling.session !== null);
    const sessionId = starling.session.sessionId;

    mock.emitRange(1, 300); // partly in flight when the socket dies
    mock.kill();
    mock.emitRange(301, 400); // sent while the client is away: buffered only
    const recovered = nextEvent(starling.events, 'session:recovered');
    const { session } = await recovered;

    expect(cut.code).toBe(1006);
    expect(cut.state).toBe('CONNECTING');
    expect(mock.log.connects).toHaveLength(2);
    expect(mock.log.connects[1]).toEqual({ app: 'demo', session_token: 'token-1', last_seq: String(cut.lastSeq) });
    expect(session).toEqual({ sessionId, ttl: 60000, replayed: 400 - cut.lastSeq, gap: false, recovered: true });
    expect(received).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
    expect(starling.session).toEqual({ sessionId, ttl: 60000, lastSeq: 400 });
    expect(starling.state).toBe('OPEN');
    expect(seen.map((entry) => entry[0])).toEqual(['reconnecting', 'reconnected']);
    expect(seen[0][1]).toBe(1);

    // The session goes on: new messages keep counting from 400, and the next token is the new one.
    mock.emitRange(401, 410);
    await waitFor(() => received.length === 410);
    expect(received.at(-1)).toBe(410);
    mock.kill();
    await nextEvent(starling.events, 'session:recovered');
    expect(mock.log.connects[2]).toEqual({ app: 'demo', session_token: 'token-2', last_seq: '410' });
    expect(received).toHaveLength(410);
  });

  test('4009 (session taken over) is not retried; the other client gets the session and its unacked messages', async () => {
    const mock = mockServer();
    const storage = recordingStorage(null, { async: true });
    const first = client(mock.url, { sessionRecovery: { enabled: true, storage } });
    const reconnecting = [];
    first.events.on('reconnecting', (payload) => reconnecting.push(payload));
    await first.connect();
    await waitFor(() => storage.token === 'token-1');
    const pending = first.request('hold', null, { timeout: 0 });
    await waitFor(() => mock.log.requests.length === 1);
    mock.emitRange(1, 3);

    const closed = nextEvent(first.events, 'close');
    const second = client(mock.url, { sessionRecovery: { enabled: true, storage } });
    const got = [];
    second.on('count', (n) => got.push(n));
    const recovered = nextEvent(second.events, 'session:recovered');
    await second.connect();
    // A stored token's count is unknown: last_seq=0, so the server replays all it still holds.
    expect(mock.log.connects[1]).toEqual({ session_token: 'token-1', last_seq: '0' });
    const { code } = await closed;
    expect(code).toBe(4009);
    expect(first.state).toBe('CLOSED');
    const error = await pending.catch((e) => e);
    expect(error).toBeInstanceOf(ConnectionClosedError);
    expect(error.code).toBe(4009);
    expect((await recovered).session.replayed).toBeGreaterThanOrEqual(3);
    await waitFor(() => got.length === 3);
    expect(got).toEqual([1, 2, 3]);

    // Give a reconnection every chance to show up (several times maxDelay): none does.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(reconnecting).toEqual([]);
    expect(mock.log.connects).toHaveLength(2);
    expect(first.state).toBe('CLOSED');
    expect(second.state).toBe('OPEN');
  });

  test('recovery-failed clears the stored token, emits the event, and a new session follows', async () => {
    const mock = mockServer();
    const storage = recordingStorage('not-a-token');
    const starling = client(mock.url, { sessionRecovery: { enabled: true, storage } });
    const order = [];
    starling.events.on('session:recovery-failed', ({ reason, starling: s }) => order.push(['failed', reason, s === starling]));
    starling.events.on('session:created', ({ session }) => order.push(['created', session.sessionId]));
    const created = nextEvent(starling.events, 'session:created');
    await starling.connect();
    await created;
    expect(mock.log.connects[0]).toEqual({ session_token: 'not-a-token', last_seq: '0' });
    expect(order).toEqual([
      ['failed', 'invalid token', true],
      ['created', 's1'],
    ]);
    await waitFor(() => storage.token === 'token-1');
    expect(storage.calls).toEqual([['load'], ['clear'], ['save', 'token-1']]);
    expect(starling.session).toEqual({ sessionId: 's1', ttl: 60000, lastSeq: 0 });
  });

  test('when the session is gone on reconnection, requests sent on it reject with ConnectionClosedError', async () => {
    const mock = mockServer();
    const starling = client(mock.url);
    await starling.connect();
    await waitFor(() => starling.session !== null);
    mock.emitRange(1, 5);
    await waitFor(() => starling.session.lastSeq === 5);
    const plain = starling.request('hold', 'plain', { timeout: 0 });
    const idempotent = starling.request('hold', 'idem', { timeout: 0, idempotent: true });
    await waitFor(() => mock.log.requests.length === 2);

    const session = mock.latest();
    mock.sessions.clear(); // the server lost the session (e.g. it restarted)
    const failed = nextEvent(starling.events, 'session:recovery-failed');
    const created = nextEvent(starling.events, 'session:created');
    mock.kill(session);
    expect((await failed).reason).toBe('unknown session');
    await created;
    for (const request of [plain, idempotent]) {
      const error = await request.catch((e) => e);
      expect(error).toBeInstanceOf(ConnectionClosedError);
      expect(error.message).toContain('could not be recovered (unknown session)');
    }
    expect(starling.session).toEqual({ sessionId: 's2', ttl: 60000, lastSeq: 0 });
    expect(mock.log.requests).toHaveLength(2); // nothing re-sent to the new session
  });

  test('after a recovery only idempotent requests are sent again; requests made while reconnecting wait', async () => {
    const mock = mockServer();
    const starling = client(mock.url);
    await starling.connect();
    await waitFor(() => starling.session !== null);

    const idem = starling.request('hold', 'idem', { idempotent: true, timeout: 3000 });
    const plain = starling.request('hold', 'plain', { timeout: 3000 });
    const answeredMeanwhile = starling.request('hold', 'replayed', { idempotent: true, timeout: 3000 });
    await waitFor(() => mock.log.requests.length === 3);
    const [idemSent, plainSent, replayedSent] = mock.log.requests;

    let during;
    starling.events.once('close', () => {
      // Made while reconnecting: waits for the new socket instead of failing.
      expect(starling.state).toBe('CONNECTING');
      during = starling.request('echo', 'during');
    });
    mock.kill();
    // The server finished this one while the client was away: its answer comes in the replay.
    mock.reply(mock.latest(), replayedSent.id, 'from replay');
    const recovered = nextEvent(starling.events, 'session:recovered');
    await recovered;

    expect((await during).data).toBe('during');
    expect((await answeredMeanwhile).data).toBe('from replay');
    await waitFor(() => mock.log.requests.length === 5);
    const after = mock.log.requests.slice(3);
    // The queued echo (on open) and the idempotent one again, under a new id; never 'plain' or 'replayed'.
    expect(after.map((r) => [r.method, r.payload]).sort()).toEqual([
      ['echo', 'during'],
      ['hold', 'idem'],
    ]);
    const resent = after.find((r) => r.payload === 'idem');
    expect(resent.id).not.toBe(idemSent.id);

    mock.reply(mock.latest(), resent.id, 'idem answered');
    expect((await idem).data).toBe('idem answered');
    // The first copy's late answer is dropped: the request was settled once.
    mock.reply(mock.latest(), idemSent.id, 'late duplicate');
    // The non-idempotent request is still pending: the server answers the original id on the session.
    mock.reply(mock.latest(), plainSent.id, 'plain answered');
    expect((await plain).data).toBe('plain answered');
  });

  test('a server request in flight across the cut is answered on the socket that resumed the session', async () => {
    const mock = mockServer();
    const starling = client(mock.url);
    const gates = {};
    starling.method('client.slow', (payload) => new Promise((resolve) => (gates[payload] = resolve)));
    await starling.connect();
    await waitFor(() => starling.session !== null);
    const session = mock.latest();
    mock.send(session, { type: 'request', id: 'srv-1', method: 'client.slow', payload: 'a' });
    mock.send(session, { type: 'request', id: 'srv-2', method: 'client.slow', payload: 'b' });
    await waitFor(() => gates.a && gates.b);

    const reconnecting = nextEvent(starling.events, 'reconnecting');
    mock.kill();
    await reconnecting;
    gates.a('finished while away'); // no socket: held until the recovery
    await nextEvent(starling.events, 'session:recovered');
    await waitFor(() => mock.log.responses.length === 1);
    gates.b('finished after'); // the old socket is gone: goes out on the new one
    await waitFor(() => mock.log.responses.length === 2);
    expect(mock.log.responses.map(({ id, data, session: s }) => [id, data, s])).toEqual([
      ['srv-1', 'finished while away', 's1'],
      ['srv-2', 'finished after', 's1'],
    ]);
  });

  test('a non-idempotent request the server never answers times out normally after a recovery', async () => {
    const mock = mockServer();
    const starling = client(mock.url);
    await starling.connect();
    await waitFor(() => starling.session !== null);
    const plain = starling.request('hold', 'plain', { timeout: 300 });
    await waitFor(() => mock.log.requests.length === 1);
    mock.kill();
    await nextEvent(starling.events, 'session:recovered');
    const error = await plain.catch((e) => e);
    expect(error.name).toBe('RequestTimeoutError');
    expect(mock.log.requests).toHaveLength(1);
  });

  test('backoff: delays grow exponentially up to maxDelay, with full jitter; maxAttempts gives up', async () => {
    const mock = mockServer();
    const randoms = [0.5, 0.1, 0.9, 0.5, 0.75, 0.25];
    let call = 0;
    const spy = spyOn(Math, 'random').mockImplementation(() => randoms[call++ % randoms.length]);
    opened.spies.add(spy);
    const starling = client(mock.url, {
      reconnect: { initialDelay: 10, maxDelay: 80, maxAttempts: 6 },
    });
    starling.events.on('error', () => {}); // each failed attempt reports CONNECT_FAILED
    const delays = [];
    starling.events.on('reconnecting', ({ attempt, delay }) => delays.push([attempt, delay]));
    await starling.connect();
    await waitFor(() => starling.session !== null);
    const pending = starling.request('hold', null, { timeout: 0 });
    await waitFor(() => mock.log.requests.length === 1);

    const failed = nextEvent(starling.events, 'reconnect-failed');
    const reconnecting = nextEvent(starling.events, 'reconnecting');
    mock.server.stop(true); // the server is gone: every attempt is refused
    await reconnecting;
    const waiting = starling.connect(); // while reconnecting: settles with the reconnection
    const { attempts, error } = await failed;

    // cap = min(80, 10 * 2^(attempt-1)) = 10, 20, 40, 80, 80, 80; delay = random * cap
    expect(delays).toEqual([
      [1, 5],
      [2, 2],
      [3, 36],
      [4, 40],
      [5, 60],
      [6, 20],
    ]);
    expect(attempts).toBe(6);
    expect(error).toBeInstanceOf(ConnectionClosedError);
    expect(starling.state).toBe('CLOSED');
    expect(await pending.catch((e) => e)).toBeInstanceOf(ConnectionClosedError);
    expect(await waiting.catch((e) => e)).toBeInstanceOf(ConnectionClosedError);
  });

  test('backoff with the real Math.random: every delay is in [0, cap) and they are not all the cap', async () => {
    const mock = mockServer();
    const starling = client(mock.url, { reconnect: { initialDelay: 4, maxDelay: 16, maxAttempts: 8 } });
    starling.events.on('error', () => {});
    const delays = [];
    starling.events.on('reconnecting', ({ attempt, delay }) => delays.push({ attempt, delay }));
    await starling.connect();
    const failed = nextEvent(starling.events, 'reconnect-failed');
    mock.server.stop(true);
    await failed;
    expect(delays.map((d) => d.attempt)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    for (const { attempt, delay } of delays) {
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(Math.min(16, 4 * 2 ** (attempt - 1)));
    }
    expect(new Set(delays.map((d) => d.delay)).size).toBeGreaterThan(1);
  });

  test('server:shutdown reaches the user handler, and the close that follows is followed by a resume', async () => {
    const mock = mockServer();
    const starling = client(mock.url);
    const notices = [];
    starling.on('server:shutdown', (data) => notices.push(data));
    await starling.connect();
    await waitFor(() => starling.session !== null);
    const session = mock.latest();
    mock.send(session, { type: 'event', topic: 'server:shutdown', data: { grace: 50 } });
    await waitFor(() => notices.length === 1);
    expect(notices).toEqual([{ grace: 50 }]);
    const reconnecting = nextEvent(starling.events, 'reconnecting');
    const recovered = nextEvent(starling.events, 'session:recovered');
    session.ws.close(1001, 'Server shutting down');
    const { attempt, delay } = await reconnecting;
    expect(attempt).toBe(1);
    expect(delay).toBeLessThan(20);
    expect((await recovered).session.recovered).toBe(true);
    expect(mock.log.connects[1].last_seq).toBe('1');
  });

  test('close() while reconnecting stops it and fails the requests waiting for it', async () => {
    const mock = mockServer();
    const starling = client(mock.url, { reconnect: { initialDelay: 5000, maxDelay: 5000 } });
    await starling.connect();
    await waitFor(() => starling.session !== null);
    const reconnecting = nextEvent(starling.events, 'reconnecting');
    mock.kill();
    await reconnecting;
    expect(starling.state).toBe('CONNECTING');
    const waiting = starling.request('echo', 1);
    await starling.close(4000);
    expect(starling.state).toBe('CLOSED');
    expect(await waiting.catch((e) => e)).toBeInstanceOf(ConnectionClosedError);
    expect(mock.log.connects).toHaveLength(1);
  });

  test('without sessionRecovery nothing changes: pending requests reject at once and nobody reconnects', async () => {
    const mock = mockServer();
    const starling = client(mock.url, { sessionRecovery: undefined });
    const reconnecting = [];
    starling.events.on('reconnecting', (payload) => reconnecting.push(payload));
    await starling.connect();
    await waitFor(() => starling.session !== null); // control messages are still understood
    const pending = starling.request('hold', null, { timeout: 0 });
    await waitFor(() => mock.log.requests.length === 1);
    const closed = nextEvent(starling.events, 'close');
    mock.kill();
    await closed;
    expect(starling.state).toBe('CLOSED');
    expect(await pending.catch((e) => e)).toBeInstanceOf(ConnectionClosedError);
    expect(reconnecting).toEqual([]);
    await expect(starling.request('echo', 1)).rejects.toBeInstanceOf(ConnectionClosedError);
  });
});

describe('tokens', () => {
  test('autoRefresh calls session.refresh every ttl / 2 and stores each new token; refreshSession() by hand', async () => {
    const mock = mockServer({ ttl: 80 });
    const storage = recordingStorage();
    const starling = client(mock.url, { sessionRecovery: { enabled: true, storage } });
    const refreshed = [];
    starling.events.on('session:refreshed', ({ token, sessionId }) => refreshed.push([token, sessionId]));
    const start = Date.now();
    await starling.connect();
    await waitFor(() => refreshed.length === 2, { message: 'two refreshes' });
    expect(Date.now() - start).toBeGreaterThanOrEqual(75);
    expect(refreshed).toEqual([
      ['token-2', 's1'],
      ['token-3', 's1'],
    ]);
    expect(storage.token).toBe('token-3');
    expect(mock.log.requests.every((r) => r.method === 'session.refresh' && r.payload === undefined)).toBe(true);

    const data = await starling.refreshSession();
    expect(data.token).toBe(storage.token);
    expect(data.ttl).toBe(80);
  });

  test('clearSession() forgets everything; the next connection starts a new session', async () => {
    const mock = mockServer();
    const storage = recordingStorage();
    const starling = client(mock.url, { sessionRecovery: { enabled: true, storage, autoRefresh: false } });
    await starling.connect();
    await waitFor(() => storage.token === 'token-1');
    await starling.clearSession();
    expect(storage.token).toBe(null);
    expect(starling.session).toBe(null);
    const created = nextEvent(starling.events, 'session:created');
    mock.kill();
    expect((await created).session.sessionId).toBe('s2');
    expect(mock.log.connects[1]).toEqual({});
  });

  test('close(1000) ends the session and forgets it; another code keeps it and connect() resumes', async () => {
    const mock = mockServer();
    const storage = recordingStorage();
    const starling = client(mock.url, { sessionRecovery: { enabled: true, storage } });
    await starling.connect();
    await waitFor(() => storage.token === 'token-1');
    mock.emitRange(1, 2);
    await waitFor(() => starling.session?.lastSeq === 2);

    await starling.close(4000, 'bye for now');
    expect(storage.token).toBe('token-1');
    const recovered = nextEvent(starling.events, 'session:recovered');
    await starling.connect();
    expect(mock.log.connects[1]).toEqual({ session_token: 'token-1', last_seq: '2' });
    expect((await recovered).session.sessionId).toBe('s1');

    await starling.close();
    expect(starling.session).toBe(null);
    await waitFor(() => storage.token === null);
    await starling.connect();
    expect(mock.log.connects[2]).toEqual({});
  });

  test('autoRecover: false ignores the stored token on connect()', async () => {
    const mock = mockServer();
    const storage = recordingStorage('token-from-before');
    const starling = client(mock.url, { sessionRecovery: { enabled: true, storage, autoRecover: false } });
    await starling.connect();
    await waitFor(() => starling.session !== null);
    expect(mock.log.connects[0]).toEqual({});
    expect(storage.calls[0]).toEqual(['save', 'token-1']);
  });
});
