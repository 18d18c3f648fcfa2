// Session recovery through real sockets: tokens, ordered replay with nothing lost or doubled, requests
// across the cut, takeover, races, gaps, expiry and refresh. The clients here speak PROTOCOL.md's
// "Sessions" section by hand, so every rule is checked on the wire.

import { test, expect, describe } from 'bun:test';
import { createHmac } from 'node:crypto';
import { Helios } from '../index.js';
import { useCleanup, startServer, nextEvent, rawSocket, tcpSocket, waitFor, Starling } from './helpers.js';

useCleanup();

const SECRET = 'a'.repeat(16) + 'b'.repeat(16);
const TEXT = 1;

function sessionServer(options = {}, setup) {
  return startServer({ sessionRecovery: { secret: SECRET, ttl: 5000, ...options }, healthCheck: { enabled: false } }, setup);
}

/** The counted messages of a raw socket: everything but `type: "session"`. */
function counted(raw) {
  return raw.frames.filter((frame) => frame.json && frame.json.type !== 'session').map((frame) => frame.json);
}

/** Text frames a hand-written TCP client parsed, as JSON. */
function tcpMessages(tcp) {
  return tcp.frames.filter((frame) => frame.opcode === TEXT).map((frame) => JSON.parse(frame.payload.toString()));
}

function resumeUrl(url, token, lastSeq) {
  return `${url}/?session_token=${token}&last_seq=${lastSeq}`;
}

/** A raw client's session whose socket then dropped (code 4000: the session waits): its connection and token. */
async function awaySession(helios, url) {
  const opened = nextEvent(helios.events, 'connection');
  const raw = await rawSocket(url);
  const { connection } = await opened;
  const token = (await raw.next((m) => m.type === 'session')).token;
  const suspended = nextEvent(helios.events, 'disconnection');
  raw.ws.close(4000);
  await suspended;
  return { connection, token };
}

/** A JWT signed with HS256 over `claims` with `secret`, or unsigned with alg none. */
function jwt(claims, secret, alg = 'HS256') {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${part({ alg, typ: 'JWT' })}.${part(claims)}`;
  if (alg === 'none') return `${body}.`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

describe('sessions', () => {
  test('a new connection gets session:created first, with a token and the ttl', async () => {
    const { helios, url } = sessionServer();
    const opened = nextEvent(helios.events, 'connection');
    const raw = await rawSocket(url);
    const created = await raw.next((m) => m.type === 'session');
    expect(created.event).toBe('created');
    expect(created.ttl).toBe(5000);
    expect(created.token.split('.')).toHaveLength(3);
    const { connection } = await opened;
    expect(created.sessionId).toBe(connection.id);
    expect(connection.sessionId).toBe(connection.id);
  });

  test('1,000 events emitted across an abrupt cut arrive exactly once and in order after the resume', async () => {
    const { helios, url, port } = sessionServer({ bufferSize: { messages: 5000 } });
    const opened = nextEvent(helios.events, 'connection');
    const first = await tcpSocket(port, '/');
    const { connection } = await opened;
    const suspended = nextEvent(helios.events, 'disconnection');
    const emitting = (async () => {
      for (let n = 1; n <= 1000; n++) {
        connection.emit('count', n);
        if (n % 25 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    await waitFor(() => tcpMessages(first).filter((m) => m.type === 'event').length >= 200, { message: '200 events' });
    first.destroy();
    const received = tcpMessages(first);
    const token = received.find((m) => m.type === 'session').token;
    const before = received.filter((m) => m.type !== 'session');
    const { sessionEnded } = await suspended;
    expect(sessionEnded).toBe(false);
    expect(connection.state).toBe('SUSPENDED');
    const recovered = nextEvent(helios.events, 'session:recovered');
    const second = await rawSocket(resumeUrl(url, token, before.length));
    await emitting;
    await waitFor(() => before.length + counted(second).length >= 1000, { message: 'all 1,000', timeout: 5000 });
    const numbers = [...before, ...counted(second)].map((m) => m.data);
    expect(numbers).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    const session = second.frames.find((f) => f.json?.type === 'session').json;
    expect(session.event).toBe('recovered');
    expect(session.gap).toBe(false);
    expect((await recovered).connection).toBe(connection);
    expect(connection.state).toBe('OPEN');
  });

  test('the same connection comes back: id, data, rooms, and a server request in flight across the cut', async () => {
    const { helios, url } = sessionServer({}, (server) => server.room('lobby', { type: 'public' }));
    const opened = nextEvent(helios.events, 'connection');
    const first = await rawSocket(url);
    const { connection } = await opened;
    connection.data.set('user', 'ada');
    expect((await first.request(1, 'helios.subscribe', { topic: 'lobby' })).data.success).toBe(true);
    const token = (await first.next((m) => m.type === 'session')).token;
    const processed = counted(first).length;
    const suspended = nextEvent(helios.events, 'disconnection');
    first.ws.close(4000, 'network change');
    await suspended;
    // Sent while the client is away: kept, then replayed.
    const answer = connection.request('client.whoami', { q: 1 }, { timeout: 5000 });
    helios.broadcast('lobby', { news: 'while you were away' });
    const second = await rawSocket(resumeUrl(url, token, processed));
    const request = await second.next((m) => m.type === 'request');
    expect(request.method).toBe('client.whoami');
    second.send({ type: 'response', id: request.id, status: 200, data: 'ada-device' });
    expect((await answer).data).toBe('ada-device');
    expect((await second.next((m) => m.type === 'event')).data).toEqual({ news: 'while you were away' });
    expect(helios.connections.get(connection.id)).toBe(connection);
    expect(connection.data.get('user')).toBe('ada');
    expect(connection.subscriptions).toEqual(['lobby']);
    expect(helios.rooms.getRoom('lobby').connections).toEqual([connection]);
  });

  test('resuming while the old socket lives closes it with 4009; the token then works only once', async () => {
    const { url } = sessionServer();
    const first = await rawSocket(url);
    const token = (await first.next((m) => m.type === 'session')).token;
    const second = await rawSocket(resumeUrl(url, token, 0));
    expect((await second.next((m) => m.type === 'session')).event).toBe('recovered');
    expect((await first.closed).code).toBe(4009);
    const third = await rawSocket(resumeUrl(url, token, 0));
    const failed = await third.next((m) => m.type === 'session');
    expect(failed).toEqual({ type: 'session', event: 'recovery-failed', reason: 'token already used' });
    expect((await third.next((m) => m.type === 'session')).event).toBe('created');
    expect(second.closeInfo).toBeNull();
  });

  test('two sockets racing to resume one session: one wins, the other gets a new session', async () => {
    const { helios, url } = sessionServer();
    const opened = nextEvent(helios.events, 'connection');
    const first = await rawSocket(url);
    const { connection } = await opened;
    const token = (await first.next((m) => m.type === 'session')).token;
    first.ws.close(4000);
    await nextEvent(helios.events, 'disconnection');
    const [a, b] = await Promise.all([rawSocket(resumeUrl(url, token, 0)), rawSocket(resumeUrl(url, token, 0))]);
    const outcomes = await Promise.all([a, b].map((raw) => raw.next((m) => m.type === 'session')));
    expect(outcomes.map((m) => m.event).sort()).toEqual(['recovered', 'recovery-failed']);
    const loser = outcomes[0].event === 'recovered' ? b : a;
    const created = await loser.next((m) => m.type === 'session');
    expect(created.event).toBe('created');
    expect(created.sessionId).not.toBe(connection.id);
  });

  test('forged, unsigned, expired and unknown tokens are refused with a reason and a new session', async () => {
    const { helios, url } = sessionServer();
    const opened = nextEvent(helios.events, 'connection');
    const raw = await rawSocket(url);
    const { connection } = await opened;
    const exp = Math.floor(Date.now() / 1000) + 60;
    const cases = [
      [jwt({ sid: connection.id, gen: 0, exp }, 'another secret that is long enough!'), 'invalid token'],
      [jwt({ sid: connection.id, gen: 0, exp }, SECRET, 'none'), 'invalid token'],
      [jwt({ sid: connection.id, gen: 0, exp }, SECRET, 'HS512'), 'invalid token'],
      [jwt({ sid: connection.id, gen: 0, exp: 1 }, SECRET), 'expired token'],
      [jwt({ sid: 'no-such-session', gen: 0, exp }, SECRET), 'unknown session'],
      ['garbage', 'invalid token'],
    ];
    for (const [token, reason] of cases) {
      const attempt = await rawSocket(resumeUrl(url, token, 0));
      expect(await attempt.next((m) => m.type === 'session')).toEqual({ type: 'session', event: 'recovery-failed', reason });
      expect((await attempt.next((m) => m.type === 'session')).event).toBe('created');
    }
    // A well-signed token of ours still works: the refusals touched nothing.
    const good = jwt({ sid: connection.id, gen: 0, exp }, SECRET);
    raw.ws.close(4000);
    const back = await rawSocket(resumeUrl(url, good, 0));
    expect((await back.next((m) => m.type === 'session')).event).toBe('recovered');
  });

  test('an overflowing buffer while away is reported as a gap', async () => {
    const { helios, url } = sessionServer({ bufferSize: { messages: 10 } });
    const { connection, token } = await awaySession(helios, url);
    for (let n = 1; n <= 30; n++) connection.emit('count', n);
    const recovered = nextEvent(helios.events, 'session:recovered');
    const second = await rawSocket(resumeUrl(url, token, 0));
    const session = await second.next((m) => m.type === 'session');
    expect(session.gap).toBe(true);
    expect(session.replayed).toBe(10);
    expect(counted(second).map((m) => m.data)).toEqual(Array.from({ length: 10 }, (_, i) => i + 21));
    expect((await recovered).session).toMatchObject({ gap: true, recovered: false, replayed: 10 });
  });

  test('a replay larger than maxBackpressure arrives whole, then recovered with the next token', async () => {
    const { helios, url } = startServer({
      maxBackpressure: 64 * 1024,
      sessionRecovery: { secret: SECRET, ttl: 5000, bufferSize: { messages: 5000, bytes: 64 * 1024 * 1024 } },
      healthCheck: { enabled: false },
    });
    const { connection, token } = await awaySession(helios, url);
    // 16 MB while away: more than the socket buffers take at once, far more than maxBackpressure.
    const pad = 'p'.repeat(8000);
    for (let n = 1; n <= 2000; n++) connection.emit('n', { n, pad });
    const second = await rawSocket(resumeUrl(url, token, 0));
    const recovered = await second.next((m) => m.type === 'session', 15_000);
    expect(recovered).toMatchObject({ event: 'recovered', replayed: 2000, gap: false });
    expect(counted(second).map((m) => m.data.n)).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
  }, 20_000);

  test('a token past its expiry still resumes a session waiting for its client; it cannot take over a live socket', async () => {
    const { helios, url } = sessionServer();
    const opened = nextEvent(helios.events, 'connection');
    const first = await rawSocket(url);
    const { connection } = await opened;
    await first.next((m) => m.type === 'session');
    // Issued long ago (as a token is when the client connected long before it lost its socket).
    const old = jwt({ sid: connection.id, gen: 0, exp: 1 }, SECRET);
    const takeover = await rawSocket(resumeUrl(url, old, 0));
    expect(await takeover.next((m) => m.type === 'session')).toMatchObject({ event: 'recovery-failed', reason: 'expired token' });
    const suspended = nextEvent(helios.events, 'disconnection', ({ connection: c }) => c === connection);
    first.ws.close(4000);
    await suspended;
    const back = await rawSocket(resumeUrl(url, old, 0));
    expect(await back.next((m) => m.type === 'session')).toMatchObject({ event: 'recovered', sessionId: connection.id });
  });

  test('acks let the server forget: a resume from before the ack has a gap', async () => {
    const { helios, url } = sessionServer();
    const opened = nextEvent(helios.events, 'connection');
    const first = await rawSocket(url);
    const { connection } = await opened;
    const token = (await first.next((m) => m.type === 'session')).token;
    for (let n = 1; n <= 5; n++) connection.emit('count', n);
    await waitFor(() => counted(first).length === 5, { message: 'five events' });
    first.send({ type: 'ack', seq: 5 });
    first.ws.close(4000);
    await nextEvent(helios.events, 'disconnection');
    const second = await rawSocket(resumeUrl(url, token, 2));
    const session = await second.next((m) => m.type === 'session');
    expect(session).toMatchObject({ event: 'recovered', replayed: 0, gap: true });
  });

  test('after the ttl the session ends: rooms left, pending requests rejected, disconnection says so', async () => {
    const { helios, url } = sessionServer({ ttl: 200 }, (server) => server.room('lobby', { type: 'public' }));
    const opened = nextEvent(helios.events, 'connection');
    const raw = await rawSocket(url);
    const { connection } = await opened;
    await raw.request(1, 'helios.subscribe', { topic: 'lobby' });
    const token = (await raw.next((m) => m.type === 'session')).token;
    const pending = connection.request('client.never', null, { timeout: 5000 }).catch((error) => error);
    const ended = nextEvent(helios.events, 'disconnection', (d) => d.sessionEnded === true, 3000);
    raw.ws.close(4000);
    const { code } = await ended;
    expect(code).toBe(1001);
    expect(connection.state).toBe('CLOSED');
    expect((await pending).code).toBe('CONNECTION_CLOSED');
    expect(helios.rooms.count).toBe(0);
    expect(helios.connections.size).toBe(0);
    // The token of the destroyed session resumes nothing.
    const late = await rawSocket(resumeUrl(url, token, 0));
    expect((await late.next((m) => m.type === 'session')).reason).toBe('unknown session');
  });

  test('session.refresh gives a new token once per ttl/2; the old token stops working', async () => {
    const { helios, url } = sessionServer({ ttl: 400 });
    const raw = await rawSocket(url);
    const first = (await raw.next((m) => m.type === 'session')).token;
    const early = await raw.request(1, 'session.refresh');
    expect(early.status).toBe(429);
    expect(early.error.message).toMatch(/retry in \d+ ms/);
    await new Promise((resolve) => setTimeout(resolve, 220));
    const refreshedEvent = nextEvent(helios.events, 'session:refreshed');
    const refreshed = await raw.request(2, 'session.refresh');
    expect(refreshed.status).toBe(200);
    expect(refreshed.data.ttl).toBe(400);
    expect(refreshed.data.token).not.toBe(first);
    expect((await refreshedEvent).token).toBe(refreshed.data.token);
    const stale = await rawSocket(resumeUrl(url, first, 0));
    expect((await stale.next((m) => m.type === 'session')).reason).toBe('token already used');
    const fresh = await rawSocket(resumeUrl(url, refreshed.data.token, 0));
    expect((await fresh.next((m) => m.type === 'session')).event).toBe('recovered');
  });

  test('stop() ends every session at once', async () => {
    const { helios, url } = sessionServer({ ttl: 60000 });
    const raw = await rawSocket(url);
    await raw.next((m) => m.type === 'session');
    raw.ws.close(4000);
    await nextEvent(helios.events, 'disconnection');
    const ended = nextEvent(helios.events, 'disconnection', (d) => d.sessionEnded);
    const began = Date.now();
    await helios.stop();
    await ended;
    expect(Date.now() - began).toBeLessThan(2000);
  });

  test('options: a short secret or a wrong shape is refused at construction', () => {
    expect(() => new Helios({ sessionRecovery: { enabled: true, secret: 'short' } })).toThrow(/at least 32 bytes/);
    expect(() => new Helios({ sessionRecovery: { enabled: true } })).toThrow(/secret/);
    expect(() => new Helios({ sessionRecovery: { secret: SECRET, ttl: -1 } })).toThrow(/sessionRecovery.ttl/);
    expect(() => new Helios({ sessionRecovery: { secret: SECRET, bufferSize: { frames: 3 } } })).toThrow(/bufferSize.frames/);
    expect(new Helios({ sessionRecovery: { enabled: false } }).options.sessionRecovery).toBeNull();
    expect(new Helios({ sessionRecovery: { secret: SECRET } }).options.sessionRecovery).toEqual({
      secret: SECRET,
      ttl: 300000,
      bufferSize: { messages: 1000, bytes: 1024 * 1024 },
    });
  });
});

describe('ending a session', () => {
  test('the server closing a connection ends its session, also while it waits for its client', async () => {
    const { helios, url } = sessionServer();
    const opened = nextEvent(helios.events, 'connection');
    await rawSocket(url);
    const { connection } = await opened;
    const ended = nextEvent(helios.events, 'disconnection');
    connection.close(4000, 'kicked');
    expect(await ended).toMatchObject({ code: 4000, sessionEnded: true });

    const reopened = nextEvent(helios.events, 'connection');
    const raw = await rawSocket(url);
    const { connection: waiting } = await reopened;
    const suspended = nextEvent(helios.events, 'disconnection');
    raw.ws.close(4000, 'network change');
    expect((await suspended).sessionEnded).toBe(false);
    const over = nextEvent(helios.events, 'disconnection');
    waiting.close(4001, 'not coming back');
    expect(await over).toMatchObject({ code: 4001, sessionEnded: true });
    expect(waiting.state).toBe('CLOSED');
    expect(helios.connections.size).toBe(0);
  });

  test('a normal close (1000) ends the session at once; another code keeps it', async () => {
    const { helios, url } = sessionServer();
    const a = await rawSocket(url);
    await a.next((m) => m.type === 'session');
    const kept = nextEvent(helios.events, 'disconnection');
    a.ws.close(4000, 'flaky network');
    expect((await kept).sessionEnded).toBe(false);
    const b = await rawSocket(url);
    await b.next((m) => m.type === 'session');
    const ended = nextEvent(helios.events, 'disconnection');
    b.ws.close(1000, 'bye');
    expect((await ended).sessionEnded).toBe(true);
  });
});

describe('with the bundled client', () => {
  test('the client reconnects by itself and gets every event exactly once, in order', async () => {
    const { helios, url } = sessionServer({}, (server) =>
      server.method('slow', () => new Promise((resolve) => setTimeout(() => resolve('late answer'), 100))),
    );
    const opened = nextEvent(helios.events, 'connection');
    const client = new Starling({ url, sessionRecovery: { enabled: true }, reconnect: { initialDelay: 10, maxDelay: 50 } });
    let socket;
    client.events.on('open', ({ websocket }) => (socket ??= websocket));
    const got = [];
    client.on('count', (n) => got.push(n));
    const recovered = new Promise((resolve) => client.events.on('session:recovered', resolve));
    await client.connect();
    const { connection } = await opened;
    const answer = client.request('slow', null, { timeout: 3000 });
    for (let n = 1; n <= 500; n++) {
      connection.emit('count', n);
      // The network drops under the client: its socket goes, the client did not ask for it.
      if (n === 200) socket.close(4000, 'network change');
      if (n % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const { session } = await recovered;
    expect(session.sessionId).toBe(connection.id);
    await waitFor(() => got.length >= 500, { message: '500 events', timeout: 5000 });
    expect(got).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    expect((await answer).data).toBe('late answer');
    expect(helios.connections.size).toBe(1);
    await client.close();
  });
});
