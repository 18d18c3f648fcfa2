// Health checks: WebSocket pings sent by the core, pong latency, missed pongs, giving up on silent clients,
// and helios.ping. A hand-written TCP client plays the client that never answers pings.

import { test, expect, describe } from 'bun:test';
import { Helios } from '../index.js';
import {
  useCleanup,
  startServer,
  connect,
  connectWithConnection,
  nextEvent,
  tcpSocket,
  waitFor,
} from './helpers.js';

useCleanup();

const PING = 9;
const fast = { healthCheck: { interval: 50, timeout: 50, maxMissed: 2 } };

describe('health checks', () => {
  test('a client that answers pings reports pong-received with a latency', async () => {
    const { helios, url } = startServer(fast);
    const pong = nextEvent(helios.events, 'pong-received');
    const { connection } = await connectWithConnection(helios, url);
    const event = await pong;
    expect(event.connection).toBe(connection);
    expect(typeof event.latency).toBe('number');
    expect(event.latency).toBeGreaterThanOrEqual(0);
    expect(event.latency).toBeLessThan(1000);
    expect(connection.state).toBe('OPEN');
  });

  test('a client that ignores pings gets ping-missed, then ping-timeout, then is closed; a neighbour keeps working', async () => {
    const { helios, url, port } = startServer(fast, (server) => server.method('echo', (c) => c.payload));
    const neighbour = await connect(url);
    const missed = nextEvent(helios.events, 'ping-missed');
    const timedOut = nextEvent(helios.events, 'ping-timeout');
    const disconnected = nextEvent(helios.events, 'disconnection', ({ connection }) => connection.url === '/silent');
    const silent = await tcpSocket(port, '/silent');
    await silent.nextFrame(PING);
    const missedEvent = await missed;
    expect(missedEvent.missedPongs).toBe(1);
    expect(missedEvent.connection.url).toBe('/silent');
    expect((await timedOut).connection).toBe(missedEvent.connection);
    const { code, reason } = await disconnected;
    expect(code).toBe(1006);
    expect(reason).toBe('Ping timeout');
    expect(await silent.closeCode).toBeNull();
    expect((await neighbour.request('echo', 'still here')).data).toBe('still here');
  });

  test('pings carry on at the interval while the client answers', async () => {
    const { helios, url } = startServer(fast);
    let pongs = 0;
    helios.events.on('pong-received', () => (pongs += 1));
    const missed = [];
    helios.events.on('ping-missed', (event) => missed.push(event));
    await connect(url);
    await waitFor(() => pongs >= 3, { message: 'three pongs' });
    expect(missed).toEqual([]);
  });

  test('with healthCheck.enabled false no ping is sent', async () => {
    const { helios, port } = startServer({ healthCheck: { enabled: false } });
    const silent = await tcpSocket(port, '/silent');
    await expect(silent.nextFrame(PING, 300)).rejects.toThrow(/timed out/);
    expect(helios.connections.size).toBe(1);
  });

  test('a partial healthCheck keeps the other defaults; defaults are 30 s / 10 s / 2', () => {
    expect(new Helios().options.healthCheck).toEqual({ enabled: true, interval: 30000, timeout: 10000, maxMissed: 2 });
    expect(new Helios({ healthCheck: { interval: 1000 } }).options.healthCheck).toEqual({
      enabled: true,
      interval: 1000,
      timeout: 10000,
      maxMissed: 2,
    });
  });

  test('invalid healthCheck options are refused with the option name', () => {
    expect(() => new Helios({ healthCheck: { interval: 0 } })).toThrow(/healthCheck.interval/);
    expect(() => new Helios({ healthCheck: { timeout: 'soon' } })).toThrow(/healthCheck.timeout/);
    expect(() => new Helios({ healthCheck: { maxMissed: 1.5 } })).toThrow(/healthCheck.maxMissed/);
    expect(() => new Helios({ healthCheck: { enabled: 'yes' } })).toThrow(/healthCheck.enabled/);
    expect(() => new Helios({ healthCheck: { every: 5 } })).toThrow(/healthCheck.every/);
    expect(() => new Helios({ healthCheck: null })).toThrow(/healthCheck/);
  });
});

describe('helios.ping', () => {
  test('resolves with the round trip in ms', async () => {
    const { helios, url } = startServer({ healthCheck: { enabled: false } });
    const { connection } = await connectWithConnection(helios, url);
    const latency = await helios.ping(connection);
    expect(typeof latency).toBe('number');
    expect(latency).toBeGreaterThanOrEqual(0);
    expect(latency).toBeLessThan(1000);
  });

  test('rejects with PING_TIMEOUT when no pong comes', async () => {
    const { helios, port } = startServer({ healthCheck: { enabled: false } });
    const opened = nextEvent(helios.events, 'connection');
    await tcpSocket(port, '/silent');
    const { connection } = await opened;
    const error = await helios.ping(connection, { timeout: 100 }).catch((e) => e);
    expect(error.code).toBe('PING_TIMEOUT');
  });

  test('rejects when the connection closes first, and at once once it is closed', async () => {
    const { helios, port } = startServer({ healthCheck: { enabled: false } });
    const opened = nextEvent(helios.events, 'connection');
    const silent = await tcpSocket(port, '/silent');
    const { connection } = await opened;
    const pending = helios.ping(connection, { timeout: 5000 }).catch((e) => e);
    await silent.nextFrame(PING);
    silent.destroy();
    expect((await pending).code).toBe('CONNECTION_CLOSED');
    expect((await helios.ping(connection).catch((e) => e)).code).toBe('CONNECTION_CLOSED');
  });

  test('refuses what is not a connection', async () => {
    const helios = new Helios();
    await expect(helios.ping({})).rejects.toThrow(TypeError);
  });
});
