import { test, expect, describe } from 'bun:test';
import { useCleanup, startServer, rawSocket, nextEvent, rawWithConnection } from './helpers.js';

useCleanup();

describe("parseMode 'strict' (default)", () => {
  test('non-JSON text gets INVALID_JSON and the connection stays open', async () => {
    const { helios, url } = startServer((server) => server.method('ok', () => 'ok'));
    expect(helios.options.parseMode).toBe('strict');
    const raw = await rawSocket(url);
    raw.send('this is not json');
    const error = await raw.next((m) => m.type === 'error');
    expect(error.error.code).toBe('INVALID_JSON');
    expect(typeof error.error.message).toBe('string');
    expect((await raw.request(1, 'ok')).data).toBe('ok');
  });

  test('JSON that is not a message gets INVALID_MESSAGE', async () => {
    const { url } = startServer({ parseMode: 'strict' }, (server) => server.method('ok', () => 'ok'));
    const raw = await rawSocket(url);
    const notMessages = [
      '[1,2,3]',
      '42',
      '"text"',
      'null',
      '{"no":"type"}',
      '{"type":"event"}',
      '{"type":"event","topic":""}',
      '{"type":"response","status":200}',
      '{"type":"request","method":"ok"}',
    ];
    for (const text of notMessages) raw.send(text);
    const response = await raw.request(1, 'ok');
    expect(response.data).toBe('ok');
    const codes = raw.frames.filter((f) => f.json.type === 'error').map((f) => f.json.error.code);
    expect(codes).toEqual(Array(notMessages.length).fill('INVALID_MESSAGE'));
  });

  test('a binary frame gets UNSUPPORTED_FRAME and the connection stays open', async () => {
    const { url } = startServer((server) => server.method('ok', () => 'ok'));
    const raw = await rawSocket(url);
    raw.send(new Uint8Array([1, 2, 3, 255]));
    const error = await raw.next((m) => m.type === 'error');
    expect(error.error.code).toBe('UNSUPPORTED_FRAME');
    expect((await raw.request(2, 'ok')).data).toBe('ok');
  });

  test('the permissive events do not fire in strict mode', async () => {
    const { helios, url } = startServer((server) => server.method('ok', () => 'ok'));
    const fired = [];
    for (const name of ['text', 'json', 'binary']) helios.events.on(name, () => fired.push(name));
    const raw = await rawSocket(url);
    raw.send('nope');
    raw.send('[1]');
    raw.send(new Uint8Array([0]));
    await raw.request(1, 'ok');
    expect(fired).toEqual([]);
  });
});

describe("parseMode 'permissive'", () => {
  test("non-JSON text fires 'text' with the string and no error frame is sent", async () => {
    const { helios, url } = startServer({ parseMode: 'permissive' }, (server) => server.method('ok', () => 'ok'));
    const { raw, connection } = await rawWithConnection(helios, url);
    const text = nextEvent(helios.events, 'text');
    raw.send('hello, plain text');
    const payload = await text;
    expect(payload.connection).toBe(connection);
    expect(payload.data).toBe('hello, plain text');
    expect((await raw.request(1, 'ok')).data).toBe('ok');
    expect(raw.frames.filter((f) => f.json.type === 'error')).toEqual([]);
  });

  test("JSON that is not a message fires 'json' with the parsed value", async () => {
    const { helios, url } = startServer({ parseMode: 'permissive' }, (server) => server.method('ok', () => 'ok'));
    const raw = await rawSocket(url);
    const received = [];
    helios.events.on('json', ({ data }) => received.push(data));
    raw.send('{"hello":"world","n":[1,2]}');
    raw.send('[1,"two"]');
    raw.send('{"type":"event"}');
    expect((await raw.request(1, 'ok')).data).toBe('ok');
    expect(received).toEqual([{ hello: 'world', n: [1, 2] }, [1, 'two'], { type: 'event' }]);
    expect(raw.frames.filter((f) => f.json.type === 'error')).toEqual([]);
  });

  test("a binary frame fires 'binary' with the bytes", async () => {
    const { helios, url } = startServer({ parseMode: 'permissive' }, (server) => server.method('ok', () => 'ok'));
    const { raw, connection } = await rawWithConnection(helios, url);
    const binary = nextEvent(helios.events, 'binary');
    raw.send(new Uint8Array([0, 1, 2, 254, 255]));
    const payload = await binary;
    expect(payload.connection).toBe(connection);
    expect(payload.data).toBeInstanceOf(Uint8Array);
    expect([...payload.data]).toEqual([0, 1, 2, 254, 255]);
    expect((await raw.request(1, 'ok')).data).toBe('ok');
    expect(raw.frames.filter((f) => f.json.type === 'error')).toEqual([]);
  });

  test('protocol messages still work normally in permissive mode', async () => {
    const { helios, url } = startServer({ parseMode: 'permissive' }, (server) => {
      server.method('double', (ctx) => ctx.payload * 2);
    });
    const handed = [];
    helios.events.on('json', ({ data }) => handed.push(data));
    helios.events.on('text', ({ data }) => handed.push(data));
    const raw = await rawSocket(url);
    expect((await raw.request(1, 'double', 21)).data).toBe(42);
    expect(handed).toEqual([]);
  });
});
