// Per-connection limits: message size, rate, and silence. Each one hits only the connection that passes
// it; a neighbour keeps working.

import { test, expect, describe } from 'bun:test';
import { Helios } from '../index.js';
import { useCleanup, startServer, connect, connectWithConnection, nextEvent, nextTopic, rawSocket, waitFor } from './helpers.js';

useCleanup();

describe('maxPayload', () => {
  test('a larger message closes its connection with 1009 and emits message-too-large', async () => {
    const { helios, url } = startServer({ maxPayload: 1024 }, (server) => server.method('ok', () => 'ok'));
    const neighbour = await connect(url);
    const { starling, connection } = await connectWithConnection(helios, url);
    const tooLarge = nextEvent(helios.events, 'message-too-large');
    const disconnected = nextEvent(helios.events, 'disconnection', (d) => d.connection === connection);
    starling.emit('big', 'x'.repeat(2048));
    expect((await tooLarge).connection).toBe(connection);
    expect((await disconnected).code).toBe(1009);
    expect((await neighbour.request('ok')).data).toBe('ok');
  });
});

describe('rateLimit', () => {
  const limited = { rateLimit: { messagesPerSecond: 5, burst: 5, closeAfter: 1000 } };

  test('requests over the rate get 429 RATE_LIMITED without reaching the handler; rate-limited fires once', async () => {
    let handled = 0;
    const { helios, url } = startServer(limited, (server) =>
      server.method('work', () => {
        handled += 1;
        return 'done';
      }),
    );
    const neighbour = await connect(url);
    const { starling } = await connectWithConnection(helios, url);
    let events = 0;
    helios.events.on('rate-limited', () => (events += 1));
    const answers = await Promise.all(Array.from({ length: 20 }, () => starling.request('work')));
    const statuses = answers.map((answer) => answer.status);
    expect(statuses.filter((status) => status === 200).length).toBeGreaterThanOrEqual(5);
    expect(statuses.filter((status) => status === 200).length).toBeLessThan(10);
    const refused = answers.find((answer) => answer.status === 429);
    expect(refused.error.code).toBe('RATE_LIMITED');
    expect(refused.error.message).toMatch(/retry in \d+ ms/);
    expect(handled).toBe(statuses.filter((status) => status === 200).length);
    // The 429s come straight from the core; the application hears of the limit in its next batch.
    await waitFor(() => events > 0, { message: 'the rate-limited event' });
    expect((await neighbour.request('work')).status).toBe(200);
    expect(events).toBe(1);
  });

  test('events over the rate are answered with a system:rate-limited event', async () => {
    const { helios, url } = startServer(limited, (server) => server.on('chat:*', () => {}));
    const { starling } = await connectWithConnection(helios, url);
    const told = nextTopic(starling, 'system:rate-limited');
    for (let i = 0; i < 10; i++) starling.emit('chat:x', i);
    const [data] = await told;
    expect(data.retryAfter).toBeGreaterThan(0);
  });

  test('a client that keeps flooding is closed with 1008', async () => {
    const { helios, url } = startServer({ rateLimit: { messagesPerSecond: 5, burst: 5, closeAfter: 20 } });
    const raw = await rawSocket(url);
    const disconnected = nextEvent(helios.events, 'disconnection');
    for (let i = 0; i < 100; i++) raw.send({ type: 'request', id: i, method: 'nothing' });
    const { code, reason } = await disconnected;
    expect(code).toBe(1008);
    expect(reason).toBe('Rate limit exceeded');
  });

  test('options are checked, with defaults for burst and closeAfter', () => {
    expect(new Helios({ rateLimit: { messagesPerSecond: 50 } }).options.rateLimit).toEqual({
      messagesPerSecond: 50,
      burst: 50,
      closeAfter: 500,
    });
    expect(() => new Helios({ rateLimit: { messagesPerSecond: 0 } })).toThrow(/rateLimit.messagesPerSecond/);
    expect(() => new Helios({ rateLimit: { perSecond: 5 } })).toThrow(/rateLimit.perSecond/);
    expect(() => new Helios({ rateLimit: 5 })).toThrow(/rateLimit/);
  });
});

describe('idleTimeout', () => {
  test('a connection that sends nothing is closed with 1001 and idle-timeout; a talking one stays', async () => {
    const { helios, url } = startServer({ idleTimeout: 200, healthCheck: { enabled: false } }, (server) =>
      server.method('ping', () => 'pong'),
    );
    const talker = await connect(url);
    const { connection: silent } = await connectWithConnection(helios, url);
    const idle = nextEvent(helios.events, 'idle-timeout');
    const disconnected = nextEvent(helios.events, 'disconnection', (d) => d.connection === silent);
    const pings = [];
    const keepTalking = setInterval(() => pings.push(talker.request('ping')), 50);
    try {
      expect((await idle).connection).toBe(silent);
      const { code, reason } = await disconnected;
      expect(code).toBe(1001);
      expect(reason).toBe('Idle timeout');
    } finally {
      clearInterval(keepTalking);
    }
    // Every request the talker made is answered, the ones still in flight included, before the test ends
    // and its client closes.
    const answers = await Promise.all(pings);
    expect(answers.length).toBeGreaterThan(0);
    for (const answer of answers) expect(answer.data).toBe('pong');
  });

  test('must be a positive number of ms', () => {
    expect(() => new Helios({ idleTimeout: 0 })).toThrow(/idleTimeout/);
  });
});
