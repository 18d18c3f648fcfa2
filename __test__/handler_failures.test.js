import { test, expect, describe } from 'bun:test';
import { useCleanup, startServer, rawSocket, connectionAt, tcpSocket, quiet } from './helpers.js';

useCleanup();

/** Thrown values that no conversion to text survives: describing them must not become a second failure. */
const undescribable = {
  nullPrototype: () => Object.create(null),
  throwingMessage: () =>
    Object.defineProperty(new Error('hidden'), 'message', {
      get() {
        throw new Error('message getter');
      },
    }),
  throwingToString: () => ({
    toString() {
      throw null;
    },
  }),
};

/** A result whose `then` is a getter that throws: the check for a promise must not escape the handler's guard. */
const throwingThen = () =>
  Object.defineProperty({}, 'then', {
    get() {
      throw new Error('then getter');
    },
  });

describe('whatever user code throws or returns, the sender gets an answer and other clients lose nothing', () => {
  test('request handlers that throw or reject undescribable values answer 500 HANDLER_ERROR', async () => {
    quiet();
    const { helios, url } = startServer((server) => {
      for (const [name, make] of Object.entries(undescribable)) {
        server.method(`sync.${name}`, () => {
          throw make();
        });
        server.method(`async.${name}`, async () => {
          throw make();
        });
      }
      server.method('thenGetter', throwingThen);
      server.method('toJSONThrowsNull', () => ({
        toJSON() {
          throw null;
        },
      }));
      server.method('ok', () => 'fine');
    });
    const raw = await rawSocket(url);
    let id = 0;
    for (const name of Object.keys(undescribable)) {
      for (const mode of ['sync', 'async']) {
        const response = await raw.request(++id, `${mode}.${name}`);
        expect(response).toMatchObject({ status: 500, error: { code: 'HANDLER_ERROR' } });
        expect(typeof response.error.message).toBe('string');
      }
    }
    expect(await raw.request(++id, 'thenGetter')).toMatchObject({
      status: 500,
      error: { code: 'HANDLER_ERROR', message: 'then getter' },
    });
    expect(await raw.request(++id, 'toJSONThrowsNull')).toMatchObject({
      status: 500,
      error: { code: 'UNSERIALIZABLE_RESULT', message: 'Result is not serializable: null' },
    });
    expect((await raw.request(++id, 'ok')).data).toBe('fine');
    // Every one of those requests counts as answered: a graceful stop does not wait out its grace for them
    // (the test would time out).
    await helios.stop({ grace: 60_000 });
  });

  test('an event handler that throws an undescribable value gets its sender EVENT_HANDLER_ERROR; the next handlers still run', async () => {
    quiet();
    const ran = [];
    const { url } = startServer((server) => {
      server.on('chat:message', () => {
        ran.push('first');
        throw undescribable.nullPrototype();
      });
      server.on('chat:*', async () => {
        ran.push('second');
        throw undescribable.throwingMessage();
      });
      server.on('chat:**', () => {
        ran.push('third');
        return throwingThen();
      });
    });
    const raw = await rawSocket(url);
    raw.send({ type: 'event', topic: 'chat:message', data: 1 });
    for (let i = 0; i < 3; i++) {
      const error = await raw.next((m) => m.type === 'error');
      expect(error.error).toMatchObject({ code: 'EVENT_HANDLER_ERROR', topic: 'chat:message' });
    }
    expect(ran).toEqual(['first', 'second', 'third']);
  });

  test('a room validator that throws or rejects an undescribable value denies with "validator failed"', async () => {
    quiet();
    const { url } = startServer((server) => {
      server.room('a:*', { validator: () => { throw undescribable.nullPrototype(); } });
      server.room('b:*', { validator: async () => { throw undescribable.throwingToString(); } });
      server.room('c:*', { validator: throwingThen });
    });
    const raw = await rawSocket(url);
    let id = 0;
    for (const topic of ['a:1', 'b:1', 'c:1']) {
      const response = await raw.request(++id, 'helios.subscribe', { topic });
      expect(response.data).toMatchObject({ success: false, topic });
      expect(response.data.error).toStartWith('validator failed: ');
    }
  });

  test('an upgrade hook is not asked about a path no URL parser reads: 400', async () => {
    let asked = 0;
    const { port } = startServer({
      // Without an answer the connection would end at this timeout.
      handshakeTimeout: 1000,
      upgrade: () => {
        asked += 1;
        return true;
      },
    });
    for (const path of ['//%', '//[']) {
      await expect(tcpSocket(port, path)).rejects.toThrow(/HTTP\/1.1 400/);
    }
    await tcpSocket(port, '/fine');
    expect(asked).toBe(1);
  });
});

describe('values the protocol cannot carry are refused at the call', () => {
  test('close codes must be integers; timeouts must fit a timer', async () => {
    const { helios, url } = startServer();
    const raw = await rawSocket(url);
    const connection = await connectionAt(helios, '/');
    for (const code of [3000.5, '3e3', [4000]]) {
      expect(() => connection.close(code)).toThrow(RangeError);
    }
    expect(connection.state).toBe('OPEN');
    for (const timeout of [2 ** 31, 1e21, Number.MAX_VALUE, -1, NaN]) {
      await expect(connection.request('m', null, { timeout })).rejects.toThrow(RangeError);
      await expect(helios.ping(connection, { timeout })).rejects.toThrow(RangeError);
      await expect(helios.to(connection.id).request('m', null, { timeout })).rejects.toThrow(RangeError);
    }
    await expect(helios.stop({ grace: 2 ** 31 })).rejects.toThrow(RangeError);
    expect(() => startServer({ requestTimeout: 2 ** 31 })).toThrow(/requestTimeout/);
    connection.close(4000, 'done');
    expect((await raw.closed).code).toBe(4000);
  });

  test('data whose toJSON throws null is refused with a TypeError: emit and request reject, broadcast throws', async () => {
    const { helios, url } = startServer((server) => server.room('lobby', { type: 'public' }));
    await rawSocket(url);
    const connection = await connectionAt(helios, '/');
    const odd = {
      toJSON() {
        throw null;
      },
    };
    await expect(connection.emit('topic', odd)).rejects.toThrow('not serializable: null');
    await expect(connection.request('m', odd)).rejects.toThrow('not serializable: null');
    await expect(helios.to(connection.id).emit('topic', odd)).rejects.toThrow(TypeError);
    expect(() => helios.broadcast('lobby', odd)).toThrow('not serializable: null');
  });

  test('an error response needs an error status: createErrorResponse(message, 200) answers 500 saying so', async () => {
    quiet();
    const { url } = startServer((server) => {
      server.method('wrong', (ctx) => ctx.createErrorResponse('lost?', 200));
    });
    const raw = await rawSocket(url);
    expect(await raw.request(1, 'wrong')).toMatchObject({
      status: 500,
      error: { code: 'HANDLER_ERROR', message: 'an error response needs a status from 400 to 999, got 200' },
    });
  });
});
