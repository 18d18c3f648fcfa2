import { test, expect, describe } from 'bun:test';
import {
  useCleanup,
  startServer,
  connectWithConnection,
  rawWithConnection,
  nextEvent,
  nextTopic,
  waitFor,
} from './helpers.js';

useCleanup();

describe('connection', () => {
  test('ids are unique strings and connections are listed by id', async () => {
    const { helios, url } = startServer(() => {});
    const first = await connectWithConnection(helios, url);
    const second = await connectWithConnection(helios, url);
    expect(typeof first.connection.id).toBe('string');
    expect(first.connection.id.length).toBeGreaterThan(0);
    expect(first.connection.id).not.toBe(second.connection.id);
    expect(helios.connections.get(first.connection.id)).toBe(first.connection);
    expect(helios.connections.get(second.connection.id)).toBe(second.connection);
  });

  test('url holds the path and query the client connected with; remoteAddress is ip:port', async () => {
    const { helios, url } = startServer(() => {});
    const { connection } = await connectWithConnection(helios, url, {}, '/room?service=billing&x=1');
    expect(connection.url).toBe('/room?service=billing&x=1');
    expect(connection.remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  test('data is a Map kept for the life of the connection', async () => {
    const { helios, url } = startServer((server) => {
      server.method('set', (ctx) => {
        ctx.connection.data.set('count', (ctx.connection.data.get('count') ?? 0) + 1);
        return ctx.connection.data.get('count');
      });
    });
    const { starling, connection } = await connectWithConnection(helios, url);
    expect(connection.data).toBeInstanceOf(Map);
    await starling.request('set');
    expect((await starling.request('set')).data).toBe(2);
    expect(connection.data.get('count')).toBe(2);
  });

  test("state goes from 'OPEN' to 'CLOSED'", async () => {
    const { helios, url } = startServer(() => {});
    const { starling, connection } = await connectWithConnection(helios, url);
    expect(connection.state).toBe('OPEN');
    const disconnected = nextEvent(helios.events, 'disconnection');
    await starling.close();
    await disconnected;
    expect(connection.state).toBe('CLOSED');
  });

  test('emit reaches the client and resolves true; false after close', async () => {
    const { helios, url } = startServer(() => {});
    const { starling, connection } = await connectWithConnection(helios, url);
    const received = nextTopic(starling, 'welcome');
    expect(await connection.emit('welcome', { message: 'Hello!' })).toBe(true);
    const [data, context] = await received;
    expect(data).toEqual({ message: 'Hello!' });
    expect(context.topic).toBe('welcome');

    const disconnected = nextEvent(helios.events, 'disconnection');
    await starling.close();
    await disconnected;
    expect(await connection.emit('late', 1)).toBe(false);
  });

  test('emit without data sends data null; events arrive in the order emitted', async () => {
    const { helios, url } = startServer(() => {});
    const { raw, connection } = await rawWithConnection(helios, url);
    connection.emit('first');
    for (let i = 0; i < 20; i++) connection.emit('n', i);
    const first = await raw.next((m) => m.topic === 'first');
    expect(first).toEqual({ type: 'event', topic: 'first', data: null });
    await waitFor(() => raw.frames.length === 21, { message: '21 frames' });
    expect(raw.frames.slice(1).map((f) => f.json.data)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  test('emit and send reject (not throw) on an empty topic or an unserializable payload', async () => {
    const { helios, url } = startServer(() => {});
    const { connection } = await connectWithConnection(helios, url);
    await expect(connection.emit('', 1)).rejects.toThrow(TypeError);
    const cyclic = {};
    cyclic.self = cyclic;
    let result;
    // A Promise-returning method reports failures through its promise, never by throwing.
    expect(() => {
      result = connection.emit('cyclic', cyclic);
    }).not.toThrow();
    await expect(result).rejects.toThrow(TypeError);
    let big;
    expect(() => {
      big = connection.send({ type: 'event', topic: 'big', data: { n: 1n } });
    }).not.toThrow();
    await expect(big).rejects.toThrow(TypeError);
  });

  test("send({ type: 'event', topic, data }) reaches the client", async () => {
    const { helios, url } = startServer(() => {});
    const { starling, connection } = await connectWithConnection(helios, url);
    const received = nextTopic(starling, 'news:today');
    expect(await connection.send({ type: 'event', topic: 'news:today', data: [1, 2] })).toBe(true);
    expect((await received)[0]).toEqual([1, 2]);
    await expect(connection.send({ type: 'request', method: 'x' })).rejects.toThrow(TypeError);
  });

  test('close(code, reason) closes the client with that code and reason', async () => {
    const { helios, url } = startServer(() => {});
    const { starling, connection } = await connectWithConnection(helios, url);
    const closed = nextEvent(starling.events, 'close');
    const disconnected = nextEvent(helios.events, 'disconnection');
    connection.close(4000, 'go away');
    const { code, reason } = await closed;
    expect(code).toBe(4000);
    expect(reason).toBe('go away');
    const payload = await disconnected;
    expect(payload.connection).toBe(connection);
    expect(connection.state).toBe('CLOSED');
  });

  test("connection.ws.close(4001, 'Auth timeout') closes the client with that code and reason", async () => {
    const { helios, url } = startServer(() => {});
    const { raw, connection } = await rawWithConnection(helios, url);
    connection.ws.close(4001, 'Auth timeout');
    expect(await raw.closed).toEqual({ code: 4001, reason: 'Auth timeout' });
  });

  test('close() without arguments closes with 1000', async () => {
    const { helios, url } = startServer(() => {});
    const { raw, connection } = await rawWithConnection(helios, url);
    connection.close();
    expect((await raw.closed).code).toBe(1000);
  });

  test('an invalid close code throws RangeError and leaves the connection open', async () => {
    const { helios, url } = startServer((server) => server.method('ok', () => 'ok'));
    const { starling, connection } = await connectWithConnection(helios, url);
    expect(() => connection.close(1001, 'reserved')).toThrow(RangeError);
    expect(() => connection.close(1006)).toThrow(RangeError);
    expect(() => connection.close(5000)).toThrow(RangeError);
    expect(() => connection.close(4000, 'x'.repeat(124))).toThrow(RangeError);
    expect(connection.state).toBe('OPEN');
    expect((await starling.request('ok')).data).toBe('ok');
  });

  test('closing one connection does not affect another', async () => {
    const { helios, url } = startServer((server) => server.method('ok', () => 'ok'));
    const first = await connectWithConnection(helios, url);
    const second = await connectWithConnection(helios, url);
    const closed = nextEvent(first.starling.events, 'close');
    first.connection.close(4002, 'only you');
    expect((await closed).code).toBe(4002);
    expect((await second.starling.request('ok')).data).toBe('ok');
  });
});
