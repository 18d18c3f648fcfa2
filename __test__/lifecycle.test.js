import { test, expect, describe } from 'bun:test';
import { Helios, Connection } from '../index.js';
import {
  useCleanup,
  startServer,
  serve,
  connect,
  connectWithConnection,
  createClient,
  nextEvent,
  waitFor,
  quiet,
  rawWithConnection,
} from './helpers.js';

useCleanup();

describe('helios.events', () => {
  test('on / emit / off for user events', () => {
    const helios = new Helios();
    const seen = [];
    const listener = (payload) => seen.push(payload);
    helios.events.on('custom', listener);
    expect(helios.events.emit('custom', 1)).toBe(true);
    helios.events.off('custom', listener);
    expect(helios.events.emit('custom', 2)).toBe(false);
    expect(seen).toEqual([1]);
  });

  test('once runs a listener for the next emit only, and can be removed with off', () => {
    const helios = new Helios();
    const seen = [];
    helios.events.once('auth:42', (payload) => seen.push(payload));
    helios.events.emit('auth:42', { token: 'a' });
    helios.events.emit('auth:42', { token: 'b' });
    expect(seen).toEqual([{ token: 'a' }]);

    const never = () => seen.push('never');
    helios.events.once('other', never);
    helios.events.off('other', never);
    helios.events.emit('other');
    expect(seen).toEqual([{ token: 'a' }]);
  });

  test('a throwing listener does not stop the others', () => {
    quiet();
    const helios = new Helios();
    const seen = [];
    helios.events.on('e', () => {
      throw new Error('listener broke');
    });
    helios.events.on('e', () => seen.push('second'));
    helios.events.emit('e');
    expect(seen).toEqual(['second']);
  });

  test('connection fires with { connection, helios } for each client', async () => {
    const { helios, url } = startServer(() => {});
    const payloads = [];
    helios.events.on('connection', (payload) => payloads.push(payload));
    await connect(url, {}, '/?n=1');
    await connect(url, {}, '/?n=2');
    await waitFor(() => payloads.length === 2, { message: 'two connection events' });
    expect(payloads.map((p) => p.connection.url).sort()).toEqual(['/?n=1', '/?n=2']);
    for (const payload of payloads) {
      expect(payload.helios).toBe(helios);
      expect(payload.connection).toBeInstanceOf(Connection);
      expect(payload.connection.state).toBe('OPEN');
    }
  });

  test('disconnection fires with the code and reason the client closed with', async () => {
    const { helios, url } = startServer(() => {});
    const { starling, connection } = await connectWithConnection(helios, url);
    const disconnected = nextEvent(helios.events, 'disconnection');
    await starling.close(4321, 'client says bye');
    const payload = await disconnected;
    expect(payload.connection).toBe(connection);
    expect(payload.code).toBe(4321);
    expect(payload.reason).toBe('client says bye');
    expect(connection.state).toBe('CLOSED');
    expect(helios.connections.has(connection.id)).toBe(false);
  });

  test("a client's close is answered with a close frame: the client sees a clean close with its code", async () => {
    const { helios, url } = startServer(() => {});
    const { raw } = await rawWithConnection(helios, url);
    const closeEvent = new Promise((resolve) => raw.ws.addEventListener('close', resolve));
    raw.ws.close(4321, 'client says bye');
    const event = await closeEvent;
    expect({ code: event.code, wasClean: event.wasClean }).toEqual({ code: 4321, wasClean: true });
  });

  test('disconnection fires when a client goes away without a close frame', async () => {
    const { helios, url } = startServer(() => {});
    const { raw, connection } = await rawWithConnection(helios, url);
    const disconnected = nextEvent(helios.events, 'disconnection');
    raw.ws.terminate(); // drops the TCP connection, no close frame
    const payload = await disconnected;
    expect(payload.connection).toBe(connection);
    expect(payload.code).toBe(1006);
    expect(connection.state).toBe('CLOSED');
  });

  test('user events keyed by connection id (seed Authentication flow)', async () => {
    const { helios, url } = startServer((server) => {
      server.events.on('connection', ({ connection }) => {
        server.events.once(`auth:${connection.id}`, ({ token }) => connection.data.set('token', token));
      });
      server.method('auth.login', (ctx) => {
        server.events.emit(`auth:${ctx.connection.id}`, { token: `token-for-${ctx.payload.user}` });
        return true;
      });
      server.method('whoami', (ctx) => ctx.connection.data.get('token') ?? null);
    });
    const a = await connect(url);
    const b = await connect(url);
    await a.request('auth.login', { user: 'alice' });
    expect((await a.request('whoami')).data).toBe('token-for-alice');
    expect((await b.request('whoami')).data).toBeNull();
    expect(helios.connections.size).toBe(2);
  });
});

describe('garbage collection', () => {
  test('a serving server the application no longer references keeps serving', async () => {
    let url;
    let ref;
    (() => {
      const helios = new Helios();
      helios.method('alive', () => 'yes');
      url = helios.serve({ port: 0, hostname: '127.0.0.1' }).url;
      ref = new WeakRef(helios);
    })();
    try {
      for (let i = 0; i < 3; i++) {
        Bun.gc(true);
        await new Promise((resolve) => setImmediate(resolve));
      }
      const client = await connect(url);
      expect((await client.request('alive')).data).toBe('yes');
    } finally {
      await ref.deref()?.stop();
    }
  });

  test('a stopped server can be collected', async () => {
    let ref;
    await (async () => {
      const helios = new Helios();
      helios.serve({ port: 0, hostname: '127.0.0.1' });
      ref = new WeakRef(helios);
      await helios.stop();
    })();
    await waitFor(() => {
      Bun.gc(true);
      return ref.deref() === undefined;
    }, { message: 'the stopped server to be collected' });
  });
});

describe('stop()', () => {
  test('clients get close code 1001 and disconnection fires for each before stop() resolves', async () => {
    const { helios, url } = startServer(() => {});
    const clients = [];
    for (let i = 0; i < 3; i++) clients.push(await connect(url));
    const closes = clients.map((client) => nextEvent(client.events, 'close'));
    const disconnections = [];
    helios.events.on('disconnection', (payload) => disconnections.push(payload));
    await helios.stop();
    expect(disconnections.length).toBe(3);
    expect(disconnections.every((d) => d.connection.state === 'CLOSED')).toBe(true);
    for (const close of await Promise.all(closes)) expect(close.code).toBe(1001);
    expect(helios.address).toBeNull();
    expect(helios.connections.size).toBe(0);
  });

  test('stop() twice, concurrently, and before serve are fine', async () => {
    const never = new Helios();
    await never.stop();
    const { helios, url } = startServer(() => {});
    await connect(url);
    await Promise.all([helios.stop(), helios.stop()]);
    await helios.stop();
    expect(helios.address).toBeNull();
  });

  test('after stop the port is free: serving again on the same port works', async () => {
    const { helios, port } = startServer((server) => server.method('where', () => 'first'));
    await connect(`ws://127.0.0.1:${port}`);
    await helios.stop();

    const again = new Helios();
    again.method('where', () => 'second');
    const address = again.serve({ port, hostname: '127.0.0.1' });
    try {
      expect(address.port).toBe(port);
      const client = await connect(`ws://127.0.0.1:${port}`);
      expect((await client.request('where')).data).toBe('second');
    } finally {
      await again.stop();
    }
  });

  test('the same Helios can serve again after stop', async () => {
    const { helios } = startServer((server) => server.method('alive', () => true));
    await helios.stop();
    const { url } = serve(helios);
    const client = await connect(url);
    expect((await client.request('alive')).data).toBe(true);
  });

  test('a client connecting after stop is refused', async () => {
    const { helios, url } = startServer(() => {});
    await helios.stop();
    const starling = createClient(url, { timeout: 2000 });
    await expect(starling.connect()).rejects.toThrow();
  });

  test('a request in flight during stop does not crash the server, and the client sees the close', async () => {
    quiet();
    let release;
    const { helios, url } = startServer((server) => {
      server.method('slow', () => new Promise((resolve) => (release = resolve)));
    });
    const client = await connect(url);
    const pending = client.request('slow').then(
      (response) => ({ response }),
      (error) => ({ error })
    );
    await waitFor(() => release, { message: 'the handler to start' });
    await helios.stop();
    release('late');
    const outcome = await pending;
    // Either the server answered before closing, or the client's request failed with the close.
    if (outcome.error) expect(outcome.error.code).toBe(1001);
    else expect(outcome.response.status).toBeGreaterThanOrEqual(200);
  });
});
