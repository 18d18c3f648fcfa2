import { test, expect, describe } from 'bun:test';
import { EventContext } from '../index.js';
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

describe('client events', () => {
  test('a handler receives the data and a context with topic, clientId and connection', async () => {
    const received = deferred();
    const { helios, url } = startServer((server) => {
      server.on('chat:message', (data, context) => received.resolve({ data, context }));
    });
    const { starling, connection } = await connectWithConnection(helios, url);
    await starling.emit('chat:message', { text: 'hi' });
    const { data, context } = await received.promise;
    expect(data).toEqual({ text: 'hi' });
    expect(context).toBeInstanceOf(EventContext);
    expect(context.topic).toBe('chat:message');
    expect(context.clientId).toBe(connection.id);
    expect(context.connection).toBe(connection);
  });

  test('an event without data reaches the handler as null', async () => {
    const received = deferred();
    const { url } = startServer((helios) => helios.on('ping', (data) => received.resolve(data)));
    const raw = await rawSocket(url);
    raw.send({ type: 'event', topic: 'ping' });
    expect(await received.promise).toBeNull();
  });

  test('patterns: * matches one segment, ** one or more, and context.topic is the sent topic', async () => {
    const seen = [];
    const { url } = startServer((helios) => {
      helios.on('chat:*', (data, ctx) => seen.push(`*:${ctx.topic}`));
      helios.on('chat:**', (data, ctx) => seen.push(`**:${ctx.topic}`));
      helios.on('done', () => seen.push('done'));
    });
    const client = await connect(url);
    await client.emit('chat:general', 1);
    await client.emit('chat:room:42', 2);
    await client.emit('chat', 3);
    await client.emit('done');
    await waitFor(() => seen.includes('done'), { message: 'the done event' });
    expect(seen).toEqual(['*:chat:general', '**:chat:general', '**:chat:room:42', 'done']);
  });

  test('every matching handler runs, in registration order', async () => {
    const order = [];
    const { url } = startServer((helios) => {
      helios.on('a:b', () => order.push('exact'));
      helios.on('**', () => order.push('everything'));
      helios.on('a:*', () => order.push('star'));
      helios.on('a:b', () => order.push('exact again'));
    });
    const client = await connect(url);
    await client.emit('a:b', null);
    await waitFor(() => order.length === 4, { message: 'four handlers' });
    expect(order).toEqual(['exact', 'everything', 'star', 'exact again']);
  });

  test('events from one client arrive in the order they were sent', async () => {
    const got = [];
    const { url } = startServer((helios) => helios.on('seq', (n) => got.push(n)));
    const client = await connect(url);
    for (let i = 0; i < 100; i++) await client.emit('seq', i);
    await waitFor(() => got.length === 100, { message: '100 events' });
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  test('off removes a handler; the others keep running', async () => {
    const seen = [];
    const removed = () => seen.push('removed');
    const kept = () => seen.push('kept');
    const { helios, url } = startServer((server) => {
      server.on('t', removed);
      server.on('t', kept);
      server.on('marker', () => seen.push('marker'));
    });
    helios.off('t', removed);
    const client = await connect(url);
    await client.emit('t');
    await client.emit('marker');
    await waitFor(() => seen.includes('marker'), { message: 'the marker event' });
    expect(seen).toEqual(['kept', 'marker']);
  });

  test('off while serving takes effect for later events', async () => {
    const seen = [];
    const handler = (data) => seen.push(data);
    const { helios, url } = startServer((server) => server.on('t', handler));
    const client = await connect(url);
    await client.emit('t', 1);
    await waitFor(() => seen.length === 1, { message: 'first event' });
    helios.off('t', handler);
    helios.on('marker', () => seen.push('marker'));
    await client.emit('t', 2);
    await client.emit('marker');
    await waitFor(() => seen.includes('marker'), { message: 'the marker event' });
    expect(seen).toEqual([1, 'marker']);
  });

  test('an event nobody handles is ignored silently', async () => {
    const { url } = startServer((helios) => helios.method('ok', () => 'ok'));
    const raw = await rawSocket(url);
    raw.send({ type: 'event', topic: 'nobody:listens', data: 1 });
    const response = await raw.request(1, 'ok');
    expect(response.data).toBe('ok');
    expect(raw.frames.map((f) => f.json.type)).toEqual(['response']);
  });

  test('a throwing handler sends the sender an EVENT_HANDLER_ERROR with the topic; the connection stays open', async () => {
    quiet();
    const { url } = startServer((helios) => {
      helios.on('bad:topic', () => {
        throw new Error('handler exploded');
      });
      helios.method('ok', () => 'still open');
    });
    const raw = await rawSocket(url);
    raw.send({ type: 'event', topic: 'bad:topic', data: {} });
    const error = await raw.next((m) => m.type === 'error');
    expect(error.error.code).toBe('EVENT_HANDLER_ERROR');
    expect(error.error.topic).toBe('bad:topic');
    expect(error.error.message).toContain('handler exploded');
    expect((await raw.request(1, 'ok')).data).toBe('still open');
  });

  test('a rejecting async handler also reports EVENT_HANDLER_ERROR to the Starling client', async () => {
    quiet();
    const { url } = startServer((helios) => {
      helios.on('async:bad', async () => {
        await Promise.resolve();
        throw new Error('async exploded');
      });
      helios.method('ok', () => 'ok');
    });
    const client = await connect(url);
    const errorEvent = nextEvent(client.events, 'error');
    await client.emit('async:bad', 1);
    const { error } = await errorEvent;
    expect(error.code).toBe('EVENT_HANDLER_ERROR');
    expect(error.topic).toBe('async:bad');
    expect(client.state).toBe('OPEN');
    expect((await client.request('ok')).data).toBe('ok');
  });

  test('a throwing handler does not stop the other matching handlers', async () => {
    quiet();
    const ran = deferred();
    const { url } = startServer((helios) => {
      helios.on('multi', () => {
        throw new Error('first fails');
      });
      helios.on('multi', (data) => ran.resolve(data));
    });
    const client = await connect(url);
    await client.emit('multi', 'second ran');
    expect(await ran.promise).toBe('second ran');
  });

  test("an event goes to the server's handlers only, not to other clients", async () => {
    const got = deferred();
    const { url } = startServer((helios) => helios.on('chat:message', (data) => got.resolve(data)));
    const sender = await connect(url);
    const other = await rawSocket(url);
    await sender.emit('chat:message', 'x');
    expect(await got.promise).toBe('x');
    await other.request(1, 'missing'); // a round trip: anything sent to `other` before it would have arrived
    expect(other.frames.filter((f) => f.json.type === 'event')).toEqual([]);
  });
});
