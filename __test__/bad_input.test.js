import { test, expect, describe } from 'bun:test';
import { useCleanup, startServer, connect, rawSocket, nextEvent, connectionAt, tcpSocket, quiet, waitFor } from './helpers.js';

useCleanup();

/**
 * A server with an `ok` method, a well-behaved Starling client and a raw socket for the bad input.
 * `check()` proves the server and the well-behaved client are unaffected.
 */
async function setup(options) {
  const { helios, url } = startServer(options, (server) => {
    server.method('ok', (ctx) => ({ ok: true, n: ctx.payload }));
  });
  const good = await connect(url);
  const bad = await rawSocket(url);
  const check = async () => {
    const response = await good.request('ok', 1);
    expect(response.data).toEqual({ ok: true, n: 1 });
    expect(good.state).toBe('OPEN');
    // The server still accepts new clients.
    const late = await connect(url);
    expect((await late.request('ok', 2)).data).toEqual({ ok: true, n: 2 });
    await late.close();
  };
  return { helios, url, good, bad, check };
}

describe('bad input never affects other clients', () => {
  test('malformed JSON', async () => {
    const { bad, check } = await setup();
    for (const text of ['{', '{"type":', 'nul', '}{', '\u0000', '', ' ']) bad.send(text);
    const response = await bad.request(1, 'ok', 0);
    expect(response.data).toEqual({ ok: true, n: 0 });
    const errors = bad.frames.filter((f) => f.json.type === 'error').map((f) => f.json.error.code);
    expect(errors).toEqual(Array(7).fill('INVALID_JSON'));
    await check();
  });

  test('binary garbage', async () => {
    const { bad, check } = await setup();
    const garbage = new Uint8Array(4096);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 131 + 7) & 0xff;
    bad.send(garbage);
    bad.send(new Uint8Array(0));
    const response = await bad.request(1, 'ok', 0);
    expect(response.status).toBe(200);
    const errors = bad.frames.filter((f) => f.json.type === 'error').map((f) => f.json.error.code);
    expect(errors).toEqual(['UNSUPPORTED_FRAME', 'UNSUPPORTED_FRAME']);
    await check();
  });

  test('a request without an id gets INVALID_MESSAGE, not a response', async () => {
    const { bad, check } = await setup();
    bad.send({ type: 'request', method: 'ok', payload: 1 });
    bad.send({ type: 'request', id: -1, method: 'ok' });
    bad.send({ type: 'request', id: 1.5, method: 'ok' });
    bad.send({ type: 'request', id: { nested: true }, method: 'ok' });
    bad.send({ type: 'request', id: 'x'.repeat(200), method: 'ok' });
    const response = await bad.request(9, 'ok', 3);
    expect(response.data).toEqual({ ok: true, n: 3 });
    const types = bad.frames.map((f) => f.json.type);
    expect(types).toEqual(['error', 'error', 'error', 'error', 'error', 'response']);
    expect(bad.frames.slice(0, 5).every((f) => f.json.error.code === 'INVALID_MESSAGE')).toBe(true);
    await check();
  });

  test('request ids at the limits of PROTOCOL.md are answered with the id as sent', async () => {
    const { bad, check } = await setup();
    const valid = [0, 2 ** 53 - 1, 'x'.repeat(128), 'é'.repeat(64), '"'.repeat(100), '\\n'.repeat(60), ''];
    for (const id of valid) bad.send({ type: 'request', id, method: 'ok', payload: 0 });
    await bad.request('last', 'ok', 0); // answered after every request sent before it
    const messages = bad.frames.map((f) => f.json);
    // Error frames come straight from the core and can overtake responses: compare regardless of order.
    expect(messages.filter((m) => m.type === 'error')).toEqual([]);
    for (const id of valid) {
      expect(messages.find((m) => m.id === id)).toEqual({ type: 'response', id, status: 200, data: { ok: true, n: 0 } });
    }
    await check();
  });

  test('request ids past the limits get INVALID_MESSAGE', async () => {
    const { bad, check } = await setup();
    for (const id of [2 ** 53, 'x'.repeat(129), 'é'.repeat(65)]) bad.send({ type: 'request', id, method: 'ok' });
    const response = await bad.request(1, 'ok', 0);
    expect(response.status).toBe(200);
    const codes = bad.frames.filter((f) => f.json.type === 'error').map((f) => f.json.error.code);
    expect(codes).toEqual(['INVALID_MESSAGE', 'INVALID_MESSAGE', 'INVALID_MESSAGE']);
    await check();
  });

  test('a request with an invalid method gets 400 INVALID_REQUEST with its id', async () => {
    const { bad, check } = await setup();
    const cases = [
      { id: 1 },
      { id: 2, method: '' },
      { id: 3, method: 42 },
      { id: 4, method: 'm'.repeat(257) },
      { id: 'five', method: null },
    ];
    for (const fields of cases) bad.send({ type: 'request', ...fields });
    for (const { id } of cases) {
      const response = await bad.next((m) => m.type === 'response' && m.id === id);
      expect(response.status).toBe(400);
      expect(response.error.code).toBe('INVALID_REQUEST');
    }
    await check();
  });

  test('a response to an unknown id is ignored', async () => {
    quiet('warn');
    const { bad, check } = await setup();
    bad.send({ type: 'response', id: 123456, status: 200, data: 'nobody asked' });
    bad.send({ type: 'response', id: 'unknown', status: 500, error: { code: 'X', message: 'y' } });
    const response = await bad.request(1, 'ok', 0);
    expect(response.status).toBe(200);
    expect(bad.frames.map((f) => f.json.type)).toEqual(['response']);
    await check();
  });

  test('events with a bad topic get INVALID_MESSAGE', async () => {
    const { bad, check } = await setup();
    bad.send({ type: 'event', data: 1 });
    bad.send({ type: 'event', topic: 7 });
    bad.send({ type: 'event', topic: 't'.repeat(257) });
    const response = await bad.request(1, 'ok', 0);
    expect(response.status).toBe(200);
    const codes = bad.frames.filter((f) => f.json.type === 'error').map((f) => f.json.error.code);
    expect(codes).toEqual(['INVALID_MESSAGE', 'INVALID_MESSAGE', 'INVALID_MESSAGE']);
    await check();
  });

  test('a message over 1 MiB closes that connection with 1009', async () => {
    const { helios, bad, check } = await setup();
    const disconnected = nextEvent(helios.events, 'disconnection');
    bad.send(JSON.stringify({ type: 'request', id: 1, method: 'ok', payload: 'x'.repeat(1024 * 1024 + 10) }));
    const closed = await bad.closed;
    expect(closed.code).toBe(1009);
    expect((await disconnected).code).toBe(1009);
    await check();
  });

  test('a message just under 1 MiB is accepted', async () => {
    const { bad, check } = await setup();
    const payload = 'y'.repeat(1024 * 1024 - 100);
    const response = await bad.request(1, 'ok', payload);
    expect(response.status).toBe(200);
    expect(response.data.n.length).toBe(payload.length);
    await check();
  });

  test('the maxPayload option lowers the limit', async () => {
    const { bad, check } = await setup({ maxPayload: 1024 });
    const small = await bad.request(1, 'ok', 'z'.repeat(500));
    expect(small.status).toBe(200);
    bad.send(JSON.stringify({ type: 'request', id: 2, method: 'ok', payload: 'z'.repeat(2000) }));
    expect((await bad.closed).code).toBe(1009);
    await check();
  });

  test('a flood of requests from one client does not starve another', async () => {
    const { bad, check } = await setup();
    for (let i = 0; i < 2000; i++) bad.send({ type: 'request', id: i, method: 'ok', payload: i });
    await check();
    await bad.next((m) => m.type === 'response' && m.id === 1999, 10000);
  });

  test('a client disconnecting in the middle of requests does not break the server', async () => {
    const { helios, bad, check } = await setup();
    const disconnected = nextEvent(helios.events, 'disconnection');
    for (let i = 0; i < 100; i++) bad.send({ type: 'request', id: i, method: 'ok', payload: i });
    bad.ws.terminate();
    await disconnected;
    await check();
  });

  test('a text frame with invalid UTF-8 closes that connection with 1007', async () => {
    const { helios, url, check } = await setup();
    const tcp = await tcpSocket(Number(new URL(url).port), '/tcp');
    const disconnected = nextEvent(helios.events, 'disconnection', ({ connection }) => connection.url === '/tcp');
    tcp.sendFrame(0x1, [0x7b, 0xc3, 0x28, 0xff, 0x7d]);
    expect(await tcp.closeCode).toBe(1007);
    expect((await disconnected).code).toBe(1007);
    tcp.destroy();
    await check();
  });

  test('an unmasked client frame (a protocol violation) closes that connection with 1002', async () => {
    const { helios, url, check } = await setup();
    const tcp = await tcpSocket(Number(new URL(url).port), '/tcp');
    const disconnected = nextEvent(helios.events, 'disconnection', ({ connection }) => connection.url === '/tcp');
    tcp.sendFrame(0x1, '{"type":"event","topic":"x"}', { mask: false });
    expect(await tcp.closeCode).toBe(1002);
    expect((await disconnected).code).toBe(1002);
    tcp.destroy();
    await check();
  });

  test('the hand-written TCP client sees close frames (so the two tests above can fail)', async () => {
    const { helios, url, check } = await setup();
    const connected = connectionAt(helios, '/tcp');
    const tcp = await tcpSocket(Number(new URL(url).port), '/tcp');
    const connection = await connected;
    connection.close(4000, 'helper check');
    expect(await tcp.closeCode).toBe(4000);
    tcp.destroy();
    await check();
  });

  test('strings UTF-8 cannot hold (lone surrogates) in what handlers send arrive with U+FFFD; nothing else is lost', async () => {
    const logged = quiet();
    const { helios, url } = startServer((server) => {
      server.method('odd', (ctx) => {
        ctx.connection.emit('odd\ud800topic', 'data \udc00 kept');
        return 'replied';
      });
      server.on('throws', () => {
        throw new Error('lone \ud800 in a message');
      });
      server.method('ok', () => 'ok');
    });
    const raw = await rawSocket(url);
    expect((await raw.request(1, 'odd')).data).toBe('replied');
    const event = await raw.next((m) => m.type === 'event');
    expect(event.topic).toBe('odd\ufffdtopic');
    // Event data is JSON the client reads as JavaScript does: the escape is passed on as written.
    expect(event.data).toBe('data \udc00 kept');
    raw.send({ type: 'event', topic: 'throws', data: null });
    const error = await raw.next((m) => m.type === 'error');
    expect(error.error.message).toContain('lone \ufffd in a message');
    const connection = await connectionAt(helios, '/');
    connection.close(4001, 'bye \udbff');
    expect((await raw.closed).reason).toBe('bye \ufffd');
    expect(logged.mock.calls.flat().join(' ')).not.toContain('refused');
  });

  test('an operation the core cannot read is logged and costs only itself: the replies beside it still go out', async () => {
    const logged = quiet();
    const { url } = startServer((server) => {
      server.method('garbled', () => {
        // Lib code writes every operation; this stands in for a bug there.
        server._outbox.push('[99,1]');
        return 'replied';
      });
    });
    const raw = await rawSocket(url);
    expect((await raw.request(1, 'garbled')).data).toBe('replied');
    await waitFor(() => logged.mock.calls.length > 0, { message: 'the refusal logged' });
    expect(logged.mock.calls[0].join(' ')).toContain('the core refused an operation');
    expect(logged.mock.calls[0].join(' ')).toContain('unknown kind 99');
    expect((await raw.request(2, 'garbled')).data).toBe('replied');
  });
});

