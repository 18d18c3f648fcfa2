// Broadcast: to a room, to every room matching a pattern, excluding the sender, with { targets, sent }
// counts, ordered after earlier emits, and to 1,000 subscribers at once. Real sockets throughout.

import { test, expect, describe } from 'bun:test';
import { Helios } from '../index.js';
import { useCleanup, startServer, connect, connectWithConnection, nextTopic, rawSocket, waitFor } from './helpers.js';

useCleanup();

/** A server with a public `lobby`, open `chat:*` rooms and an open `news:**` room family. */
function roomServer(setup = () => {}) {
  return startServer((helios) => {
    helios.room('lobby', { type: 'public' });
    helios.room('chat:*', { validator: () => true });
    helios.room('news:**', { validator: () => true });
    setup(helios);
  });
}

/** Collects every event a Starling client receives, as `[topic, data]`. */
function collect(starling) {
  const received = [];
  starling.on('**', (data, context) => received.push([context.topic, data]));
  return received;
}

describe('broadcast', () => {
  test('reaches every subscriber of an exact topic, and nobody else; returns { targets, sent }', async () => {
    const { helios, url } = roomServer();
    const a = await connect(url);
    const b = await connect(url);
    const outsider = await connect(url);
    await a.subscribe('lobby');
    await b.subscribe('lobby');
    await outsider.subscribe('chat:x');
    const gotA = collect(a);
    const gotB = collect(b);
    const gotOutsider = collect(outsider);
    expect(helios.broadcast('lobby', { message: 'Welcome!' })).toEqual({ targets: 2, sent: 2 });
    await waitFor(() => gotA.length === 1 && gotB.length === 1, { message: 'both lobby events' });
    expect(gotA).toEqual([['lobby', { message: 'Welcome!' }]]);
    expect(gotB).toEqual([['lobby', { message: 'Welcome!' }]]);
    // A round trip later, the outsider still has nothing.
    await outsider.unsubscribe('chat:x');
    expect(gotOutsider).toEqual([]);
  });

  test('a topic nobody is in reaches nobody', () => {
    const helios = new Helios();
    expect(helios.broadcast('lobby', 1)).toEqual({ targets: 0, sent: 0 });
  });

  test('a pattern reaches every matching room, each recipient under the topic it subscribed to', async () => {
    const { helios, url } = roomServer();
    const general = await connect(url);
    const random = await connect(url);
    const deep = await connect(url);
    await general.subscribe('chat:general');
    await random.subscribe('chat:random');
    expect((await deep.subscribe('chat:general:log')).success).toBe(false); // undeclared: stays out
    await deep.subscribe('news:tech:rust');
    const got = [general, random, deep].map(collect);
    expect(helios.broadcast('chat:*', { text: 'hi' })).toEqual({ targets: 2, sent: 2 });
    expect(helios.broadcast('news:**', 'n')).toEqual({ targets: 1, sent: 1 });
    expect(helios.broadcast('*:general', 'g')).toEqual({ targets: 1, sent: 1 });
    await waitFor(() => got[0].length === 2 && got[1].length === 1 && got[2].length === 1, { message: 'the events' });
    expect(got[0]).toEqual([['chat:general', { text: 'hi' }], ['chat:general', 'g']]);
    expect(got[1]).toEqual([['chat:random', { text: 'hi' }]]);
    expect(got[2]).toEqual([['news:tech:rust', 'n']]);
  });

  test('a connection in two matching rooms gets one copy per room', async () => {
    const { helios, url } = roomServer();
    const client = await connect(url);
    await client.subscribe('chat:a');
    await client.subscribe('chat:b');
    const got = collect(client);
    expect(helios.broadcast('chat:*', 1)).toEqual({ targets: 2, sent: 2 });
    await waitFor(() => got.length === 2, { message: 'two events' });
    expect(got.map(([topic]) => topic).sort()).toEqual(['chat:a', 'chat:b']);
  });

  test('exclude: the sender does not receive its own broadcast', async () => {
    const { helios, url } = roomServer((server) => {
      server.on('chat:*', (data, context) => {
        server.broadcast(context.topic, { from: context.clientId, text: data.text }, { exclude: context.connection });
      });
    });
    const { starling: sender, connection } = await connectWithConnection(helios, url);
    const listener = await connect(url);
    await sender.subscribe('chat:room');
    await listener.subscribe('chat:room');
    const senderGot = collect(sender);
    const received = nextTopic(listener, 'chat:room');
    await sender.emit('chat:room', { text: 'hello' });
    expect((await received)[0]).toEqual({ from: connection.id, text: 'hello' });
    // The sender's round trip comes after the broadcast: a copy for it would have arrived first.
    await sender.unsubscribe('chat:room');
    expect(senderGot).toEqual([]);
  });

  test('a broadcast comes after the events emitted before it, in order', async () => {
    const { helios, url } = roomServer();
    const { starling, connection } = await connectWithConnection(helios, url);
    await starling.subscribe('lobby');
    const got = collect(starling);
    connection.emit('first', 1);
    helios.broadcast('lobby', 2);
    connection.emit('third', 3);
    await waitFor(() => got.length === 3, { message: 'three events' });
    expect(got).toEqual([['first', 1], ['lobby', 2], ['third', 3]]);
  });

  test('bad arguments throw', () => {
    const helios = new Helios();
    expect(() => helios.broadcast('', 1)).toThrow(/non-empty string/);
    expect(() => helios.broadcast('a::b', 1)).toThrow(/invalid broadcast topic/);
    expect(() => helios.broadcast('lobby', 1n)).toThrow(/not serializable/);
    expect(() => helios.broadcast('lobby', 1, { exclude: 'someone' })).toThrow(/must be a Connection/);
    expect(() => helios.broadcast('lobby', 1, { exlude: null })).toThrow(/unknown broadcast option/);
  });

  test('1,000 subscribers each receive exactly one copy of every broadcast, in order', async () => {
    const { helios, url } = roomServer();
    const count = 1000;
    const sockets = [];
    for (let start = 0; start < count; start += 100) {
      const batch = await Promise.all(
        Array.from({ length: 100 }, async () => {
          const raw = await rawSocket(url);
          const answer = await raw.request(1, 'helios.subscribe', { topic: 'lobby' });
          if (!answer.data.success) throw new Error('subscription refused');
          return raw;
        }),
      );
      sockets.push(...batch);
    }
    // Public joins are answered by the core at once; the JavaScript side hears of the connections (and the
    // joins) in its next batches, so wait for it to catch up before asking it.
    await waitFor(() => helios.rooms.getRoom('lobby').connections.length === count, {
      message: 'JavaScript sees every member',
    });
    const messages = 5;
    for (let n = 0; n < messages; n += 1) {
      expect(helios.broadcast('lobby', { n })).toEqual({ targets: count, sent: count });
    }
    const events = (raw) => raw.frames.filter((frame) => frame.json?.type === 'event');
    await waitFor(() => sockets.every((raw) => events(raw).length >= messages), {
      message: 'every copy',
      timeout: 10000,
    });
    // One more round trip per socket: a duplicate would have arrived before its answer.
    await Promise.all(sockets.map((raw) => raw.request(2, 'helios.unsubscribe', { topic: 'lobby' })));
    for (const raw of sockets) {
      expect(events(raw).map((frame) => frame.json)).toEqual(
        Array.from({ length: messages }, (_, n) => ({ type: 'event', topic: 'lobby', data: { n } })),
      );
    }
  }, 30000);
});
