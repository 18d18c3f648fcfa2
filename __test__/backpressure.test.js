import { test, expect, describe } from 'bun:test';
import {
  useCleanup,
  startServer,
  connect,
  connectWithConnection,
  tcpSocket,
  connectionAt,
  nextEvent,
  waitFor,
} from './helpers.js';

useCleanup();

const CHUNK = 'x'.repeat(1_000_000);
/** 60 MB: far more than the socket buffers of a loopback connection hold. */
const CHUNKS = 60;

/**
 * A server with `maxBackpressure` 2 MiB, a well-behaved client, and a hand-written client that has
 * stopped reading. `flood()` emits CHUNKS events to the stuck client, one per event-loop turn (as an
 * application emitting over time would), until it is disconnected.
 */
async function stuckClient() {
  const { helios, url, port } = startServer({ maxBackpressure: 2 * 1024 * 1024 }, (server) => {
    server.method('ok', () => 'ok');
  });
  const good = await connect(url);
  const connected = connectionAt(helios, '/stuck');
  const stuck = await tcpSocket(port, '/stuck');
  const connection = await connected;
  stuck.pause();
  let disconnected = null;
  helios.events.on('disconnection', (payload) => {
    if (payload.connection === connection) disconnected = payload;
  });
  const flood = async () => {
    for (let i = 0; i < CHUNKS && !disconnected; i++) {
      connection.emit('bulk', CHUNK);
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  return { helios, good, stuck, connection, flood, disconnection: () => disconnected };
}

describe('backpressure', () => {
  test('a client that stops reading is closed with 1013 once maxBackpressure is passed; others are unaffected', async () => {
    const { helios, good, connection, flood, disconnection } = await stuckClient();
    const disconnected = nextEvent(helios.events, 'disconnection', (d) => d.connection === connection, 4000);
    const backpressure = nextEvent(helios.events, 'backpressure', (d) => d.connection === connection, 4000);
    await flood();
    await backpressure;
    expect((await good.request('ok')).data).toBe('ok');
    const { code } = disconnection() ?? (await disconnected);
    expect(code).toBe(1013);
    expect(connection.state).toBe('CLOSED');
    expect(await connection.emit('bulk', 'after close')).toBe(false);
    expect(helios.stats().dropped).toBeGreaterThan(0);
    expect((await good.request('ok')).data).toBe('ok');
  }, 10000);

  test('emitting 100 MB to a client that never reads keeps memory bounded', async () => {
    const { helios, connection } = await stuckClient();
    const closed = nextEvent(helios.events, 'disconnection', (d) => d.connection === connection, 8000);
    Bun.gc(true);
    const before = process.memoryUsage().rss;
    let peak = before;
    for (let i = 0; i < 100; i++) {
      await connection.emit('bulk', CHUNK);
      await new Promise((resolve) => setImmediate(resolve));
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    expect((await closed).code).toBe(1013);
    // 2 MiB may wait in the queue, plus socket buffers and the JSON text in flight: far below 100 MB.
    expect(peak - before).toBeLessThan(48 * 1024 * 1024);
    expect(helios.stats().dropped).toBeGreaterThan(0);
  }, 15000);

  test('volatile events to a client that never reads are dropped and counted; the connection stays', async () => {
    const { helios, good, connection } = await stuckClient();
    const closes = [];
    helios.events.on('disconnection', (d) => closes.push(d));
    for (let i = 0; i < 20; i++) {
      await connection.emit('bulk', CHUNK, { volatile: true });
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(helios.stats().dropped).toBeGreaterThan(0);
    expect(connection.state).toBe('OPEN');
    expect(closes).toEqual([]);
    expect((await good.request('ok')).data).toBe('ok');
  }, 10000);

  test('helios.stop() completes while a client is not reading', async () => {
    const { helios, flood } = await stuckClient();
    await flood();
    const outcome = await Promise.race([
      helios.stop().then(() => 'stopped'),
      new Promise((resolve) => setTimeout(() => resolve('stop() still pending after 4 s'), 4000)),
    ]);
    expect(outcome).toBe('stopped');
  }, 10000);

  test('a client that pauses reading gets every frame, in order, once it reads again', async () => {
    // Far more than the socket buffers hold, well under the limit: what the socket does not take waits in
    // the server until the client reads again.
    const { helios, port } = startServer({ maxBackpressure: 64 * 1024 * 1024 }, () => {});
    const connected = connectionAt(helios, '/paused');
    const client = await tcpSocket(port, '/paused');
    const connection = await connected;
    client.pause();
    const chunk = 'z'.repeat(1_000_000);
    for (let n = 0; n < 20; n++) {
      expect(await connection.emit('seq', { n, chunk })).toBe(true);
      await new Promise((resolve) => setImmediate(resolve));
    }
    client.resume();
    const events = () => client.frames.filter((frame) => frame.opcode === 1);
    await waitFor(() => events().length === 20, { timeout: 8000, message: '20 events' });
    expect(events().map((frame) => JSON.parse(frame.payload.toString()).data.n)).toEqual(
      Array.from({ length: 20 }, (_, n) => n)
    );
    expect(connection.state).toBe('OPEN');
  }, 15000);

  test('a client that keeps up is never closed, and receives everything in order', async () => {
    const { helios, url } = startServer({ maxBackpressure: 256 * 1024 }, () => {});
    const { starling, connection } = await connectWithConnection(helios, url);
    const got = [];
    starling.on('seq', (data) => got.push(data.n));
    const chunk = 'y'.repeat(10_000);
    // 3 MB in all, but never more than 100 kB in flight: the client reads as fast as it is sent to.
    for (let n = 0; n < 300; n++) {
      connection.emit('seq', { n, chunk });
      if (n % 10 === 9) await waitFor(() => got.length === n + 1, { message: `event ${n}` });
    }
    expect(got).toEqual(Array.from({ length: 300 }, (_, n) => n));
    expect(connection.state).toBe('OPEN');
  });

  test('one handler sending more than maxBackpressure at once to clients that read does not drop them', async () => {
    const chunk = 'z'.repeat(50_000);
    const { helios, url } = startServer({ maxBackpressure: 256 * 1024 }, (server) => {
      server.room('feed', { type: 'public' });
      // 1.5 MB within one batch: the frames are held for the batch's end, not left unread by the client.
      server.method('burst', (context) => {
        for (let n = 0; n < 30; n++) context.connection.emit('seq', { n, chunk });
        for (let n = 0; n < 30; n++) helios.broadcast('feed', { n, chunk });
        return 'sent';
      });
    });
    const closed = [];
    helios.events.on('disconnection', ({ code }) => closed.push(code));
    const member = await connect(url);
    await member.subscribe('feed');
    const fed = [];
    member.on('feed', (data) => fed.push(data.n));
    const caller = await connect(url);
    const seen = [];
    caller.on('seq', (data) => seen.push(data.n));
    expect((await caller.request('burst')).data).toBe('sent');
    await waitFor(() => seen.length === 30 && fed.length === 30, { message: 'every frame', timeout: 10_000 });
    expect(seen).toEqual(Array.from({ length: 30 }, (_, n) => n));
    expect(fed).toEqual(Array.from({ length: 30 }, (_, n) => n));
    expect(closed).toEqual([]);
  });
});
