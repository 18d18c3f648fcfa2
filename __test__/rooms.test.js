// Rooms: declarations, subscribing through the built-in methods, validators with captures, deny by
// default, room events, unsubscribing and leaving every room on close. Real sockets throughout.

import { test, expect, describe } from 'bun:test';
import { Helios } from '../index.js';
import {
  useCleanup,
  startServer,
  connect,
  connectWithConnection,
  nextEvent,
  rawSocket,
  waitFor,
  deferred,
  quiet,
} from './helpers.js';

useCleanup();

describe('declaring rooms', () => {
  test('room() returns the server, so declarations chain', () => {
    const helios = new Helios();
    expect(helios.room('lobby', { type: 'public' }).room('user:*', { validator: () => true })).toBe(helios);
  });

  test('a public room with a wildcard, a protected room without validator and a bad pattern throw', () => {
    const helios = new Helios();
    expect(() => helios.room('chat:*', { type: 'public' })).toThrow(/must be an exact name/);
    expect(() => helios.room('chat:**', { type: 'public' })).toThrow(/must be an exact name/);
    expect(() => helios.room('user:*')).toThrow(/needs a validator/);
    expect(() => helios.room('user:*', {})).toThrow(/needs a validator/);
    expect(() => helios.room('', { type: 'public' })).toThrow(/non-empty string/);
    expect(() => helios.room(42, { type: 'public' })).toThrow(/non-empty string/);
    expect(() => helios.room('a::b', { validator: () => true })).toThrow(/invalid room pattern/);
    expect(() => helios.room('x', { type: 'secret' })).toThrow(/'public' or 'protected'/);
    expect(() => helios.room('x', { type: 'public', validatr: () => true })).toThrow(/unknown option 'validatr'/);
  });
});

describe('subscribing', () => {
  test('a public room is joined at once; subscriptions and getRoom see it; room:subscribed fires', async () => {
    const { helios, url } = startServer((server) => server.room('lobby', { type: 'public' }));
    const subscribed = nextEvent(helios.events, 'room:subscribed');
    const { starling, connection } = await connectWithConnection(helios, url);
    expect(await starling.subscribe('lobby')).toEqual({ success: true, topic: 'lobby' });
    const event = await subscribed;
    expect(event.connection).toBe(connection);
    expect(event.topic).toBe('lobby');
    expect(connection.subscriptions).toEqual(['lobby']);
    expect(helios.rooms.getSubscriptions(connection)).toEqual(['lobby']);
    const room = helios.rooms.getRoom('lobby');
    expect(room.topic).toBe('lobby');
    expect(room.connections).toEqual([connection]);
    // Subscribing twice is not an error and does not fire the event again.
    expect(await starling.subscribe('lobby')).toEqual({ success: true, topic: 'lobby' });
    expect(helios.rooms.getRoom('lobby').connections.length).toBe(1);
  });

  test('deny by default: an undeclared topic is refused with success false', async () => {
    const { helios, url } = startServer((server) => server.room('lobby', { type: 'public' }));
    const { starling, connection } = await connectWithConnection(helios, url);
    expect(await starling.subscribe('elsewhere')).toEqual({
      success: false,
      topic: 'elsewhere',
      error: 'undeclared topic',
    });
    expect(connection.subscriptions).toEqual([]);
    expect(helios.rooms.getRoom('elsewhere').connections).toEqual([]);
  });

  test('a topic that cannot name a room is refused; a malformed payload is a 400', async () => {
    const { url } = startServer((server) => server.room('**', { validator: () => true }));
    const raw = await rawSocket(url);
    const wildcard = await raw.request(1, 'helios.subscribe', { topic: 'chat:*' });
    expect(wildcard.status).toBe(200);
    expect(wildcard.data.success).toBe(false);
    expect(wildcard.data.error).toMatch(/^invalid topic/);
    const empty = await raw.request(2, 'helios.subscribe', { topic: 'a::b' });
    expect(empty.data.success).toBe(false);
    const missing = await raw.request(3, 'helios.subscribe', { room: 'x' });
    expect(missing.status).toBe(400);
    expect(missing.error.code).toBe('INVALID_REQUEST');
    const notObject = await raw.request(4, 'helios.unsubscribe', 'lobby');
    expect(notObject.status).toBe(400);
  });

  test("a protected room's validator gets the connection, the captures and the client's data", async () => {
    const calls = [];
    const { helios, url } = startServer((server) =>
      server.room('user:*', {
        validator: (connection, captures, data) => {
          calls.push({ connection, captures, data });
          return true;
        },
      }),
    );
    const { starling, connection } = await connectWithConnection(helios, url);
    expect(await starling.subscribe('user:42', { token: 't' })).toEqual({ success: true, topic: 'user:42' });
    expect(calls.length).toBe(1);
    expect(calls[0].connection).toBe(connection);
    expect(calls[0].captures).toEqual(['42']);
    expect(calls[0].data).toEqual({ token: 't' });
    expect(connection.subscriptions).toEqual(['user:42']);
    expect(helios.rooms.getRoom('user:42').connections).toEqual([connection]);
  });

  test('** captures the rest of the topic as one string; an async validator is awaited', async () => {
    let captured;
    const { url } = startServer((server) =>
      server.room('files:**', {
        validator: async (connection, captures) => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          captured = captures;
          return true;
        },
      }),
    );
    const client = await connect(url);
    expect((await client.subscribe('files:a:b:c')).success).toBe(true);
    expect(captured).toEqual(['a:b:c']);
  });

  test('a validator returning false (or anything but true) denies: permission denied', async () => {
    const { helios, url } = startServer((server) => {
      server.room('user:*', { validator: (connection, [id]) => connection.data.get('userId') === id });
      server.room('truthy:*', { validator: () => 'yes' });
    });
    helios.events.on('connection', ({ connection }) => connection.data.set('userId', '42'));
    const { starling, connection } = await connectWithConnection(helios, url);
    expect(await starling.subscribe('user:7')).toEqual({ success: false, topic: 'user:7', error: 'permission denied' });
    expect((await starling.subscribe('truthy:x')).error).toBe('permission denied');
    expect((await starling.subscribe('user:42')).success).toBe(true);
    expect(connection.subscriptions).toEqual(['user:42']);
  });

  test('a validator that throws or rejects denies with its message, is logged, and the connection stays', async () => {
    const logged = quiet();
    const { helios, url } = startServer((server) => {
      server.room('sync:*', {
        validator: () => {
          throw new Error('database down');
        },
      });
      server.room('async:*', { validator: async () => Promise.reject(new Error('no access table')) });
      server.method('ping', () => 'pong');
    });
    const { starling, connection } = await connectWithConnection(helios, url);
    expect(await starling.subscribe('sync:1')).toEqual({
      success: false,
      topic: 'sync:1',
      error: 'validator failed: database down',
    });
    expect((await starling.subscribe('async:1')).error).toBe('validator failed: no access table');
    expect(logged.mock.calls.some(([message]) => String(message).includes("validator of room 'sync:1' failed"))).toBe(true);
    expect(connection.state).toBe('OPEN');
    expect((await starling.request('ping')).data).toBe('pong');
    expect(connection.subscriptions).toEqual([]);
  });

  test('a validator that does not settle within requestTimeout is denied', async () => {
    quiet();
    const { url } = startServer({ requestTimeout: 50 }, (server) =>
      server.room('slow:*', { validator: () => new Promise(() => {}) }),
    );
    const client = await connect(url);
    const answer = await client.subscribe('slow:1');
    expect(answer.success).toBe(false);
    expect(answer.error).toBe('validator failed: timed out after 50 ms');
  });

  test('the most specific protected pattern decides, whatever the declaration order', async () => {
    const decided = [];
    const validator = (name) => (connection, captures) => {
      decided.push([name, captures]);
      return true;
    };
    const { url } = startServer((server) => {
      server.room('chat:**', { validator: validator('chat:**') });
      server.room('chat:*', { validator: validator('chat:*') });
      server.room('chat:admin', { validator: validator('chat:admin') });
      server.room('chat:*:log', { validator: validator('chat:*:log') });
      server.room('lobby', { type: 'public' });
    });
    const client = await connect(url);
    for (const topic of ['chat:admin', 'chat:general', 'chat:general:log', 'chat:a:b']) {
      expect((await client.subscribe(topic)).success).toBe(true);
    }
    expect(decided).toEqual([
      ['chat:admin', []],
      ['chat:*', ['general']],
      ['chat:*:log', ['general']],
      ['chat:**', ['a:b']],
    ]);
  });

  test('the built-in methods are answered before application methods and middleware', async () => {
    const seen = [];
    const { url } = startServer((server) => {
      server.room('lobby', { type: 'public' });
      server.use('**', (context, next) => {
        seen.push(context.method);
        return next();
      });
      server.method('helios.subscribe', () => 'shadowed');
      server.method('helios.ping', () => 'shadowed');
    });
    const client = await connect(url);
    expect(await client.subscribe('lobby')).toEqual({ success: true, topic: 'lobby' });
    // The link probe of clients that cannot send WebSocket pings.
    const pong = await client.request('helios.ping');
    expect(pong.status).toBe(200);
    expect(pong.data).toBeNull();
    expect(seen).toEqual([]);
  });
});

describe('unsubscribing and closing', () => {
  test('unsubscribe leaves the room and fires room:unsubscribed; leaving twice says not subscribed', async () => {
    const { helios, url } = startServer((server) => {
      server.room('lobby', { type: 'public' });
      server.room('user:*', { validator: () => true });
    });
    const { starling, connection } = await connectWithConnection(helios, url);
    await starling.subscribe('lobby');
    await starling.subscribe('user:1');
    expect(connection.subscriptions.sort()).toEqual(['lobby', 'user:1']);
    const left = nextEvent(helios.events, 'room:unsubscribed');
    expect(await starling.unsubscribe('user:1')).toEqual({ success: true, topic: 'user:1' });
    const event = await left;
    expect(event.connection).toBe(connection);
    expect(event.topic).toBe('user:1');
    expect(connection.subscriptions).toEqual(['lobby']);
    expect(helios.rooms.getRoom('user:1').connections).toEqual([]);
    expect(await starling.unsubscribe('user:1')).toEqual({ success: false, topic: 'user:1', error: 'not subscribed' });
  });

  test('a closed connection leaves all its rooms at once, with room:unsubscribed before disconnection', async () => {
    const { helios, url } = startServer((server) => {
      server.room('lobby', { type: 'public' });
      server.room('user:*', { validator: () => true });
    });
    const order = [];
    helios.events.on('room:unsubscribed', ({ topic }) => order.push(topic));
    helios.events.on('disconnection', () => order.push('disconnection'));
    const { starling, connection } = await connectWithConnection(helios, url);
    await starling.subscribe('lobby');
    await starling.subscribe('user:1');
    expect(helios.rooms.count).toBe(2);
    const gone = nextEvent(helios.events, 'disconnection');
    await starling.close();
    await gone;
    expect(order.slice(0, 2).sort()).toEqual(['lobby', 'user:1']);
    expect(order[2]).toBe('disconnection');
    expect(connection.subscriptions).toEqual([]);
    expect(helios.rooms.getRoom('lobby').connections).toEqual([]);
    expect(helios.rooms.count).toBe(0);
  });

  test('no leak: 1,000 connect/subscribe/close cycles leave every room empty', async () => {
    const { helios, url } = startServer((server) => {
      server.room('lobby', { type: 'public' });
      server.room('user:*', { validator: async () => true });
    });
    let disconnections = 0;
    helios.events.on('disconnection', () => (disconnections += 1));
    const cycles = 1000;
    const batch = 50;
    for (let start = 0; start < cycles; start += batch) {
      await Promise.all(
        Array.from({ length: batch }, async (_, index) => {
          const raw = await rawSocket(url);
          const a = await raw.request(1, 'helios.subscribe', { topic: 'lobby' });
          const b = await raw.request(2, 'helios.subscribe', { topic: `user:${start + index}` });
          if (!a.data.success || !b.data.success) throw new Error('subscription refused');
          raw.ws.close();
          await raw.closed;
        }),
      );
    }
    await waitFor(() => disconnections === cycles, { message: 'every disconnection', timeout: 10000 });
    expect(helios.rooms.count).toBe(0);
    expect(helios.rooms.getRoom('lobby').connections).toEqual([]);
    expect(helios.connections.size).toBe(0);
  }, 30000);

  test('a protected subscription whose connection closes during validation joins nothing', async () => {
    const release = deferred();
    const started = deferred();
    const { helios, url } = startServer((server) =>
      server.room('user:*', {
        validator: async () => {
          started.resolve();
          await release.promise;
          return true;
        },
      }),
    );
    const raw = await rawSocket(url);
    raw.send({ type: 'request', id: 1, method: 'helios.subscribe', payload: { topic: 'user:1' } });
    await started.promise;
    const gone = nextEvent(helios.events, 'disconnection');
    raw.ws.close();
    await gone;
    release.resolve();
    // The validator's continuation and the verdict's flush are microtasks: all done before the next macrotask.
    await new Promise((resolve) => setImmediate(resolve));
    expect(helios.rooms.count).toBe(0);
  });
});
