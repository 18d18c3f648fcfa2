import { test, expect, describe } from 'bun:test';
import { Response } from '../index.js';
import { Response as ClientResponse } from '../client/index.js';
import { useCleanup, startServer, connectWithConnection, nextEvent, deferred, quiet, rawWithConnection } from './helpers.js';

useCleanup();

/**
 * A server whose client has received a request it never answers: resolves once the client's handler
 * runs, with `pending` settling to the request's rejection.
 */
async function hangingRequest() {
  const { helios, url } = startServer(() => {});
  const { starling, connection } = await connectWithConnection(helios, url);
  const started = deferred();
  starling.method('client.hang', () => {
    started.resolve();
    return new Promise(() => {});
  });
  const pending = connection.request('client.hang', null, { timeout: 5000 }).catch((e) => e);
  await started.promise;
  return { helios, starling, connection, pending };
}

describe('connection.request', () => {
  test("the client's method answers with data and the Response is a success", async () => {
    const { helios, url } = startServer(() => {});
    const { starling, connection } = await connectWithConnection(helios, url);
    let seen;
    starling.method('client.info', (payload, context) => {
      seen = { payload, method: context.method };
      return { platform: 'test', echo: payload };
    });
    const response = await connection.request('client.info', { q: 1 });
    expect(response).toBeInstanceOf(Response);
    expect(response.isSuccess()).toBe(true);
    expect(response.isError()).toBe(false);
    expect(response.status).toBe(200);
    expect(response.data).toEqual({ platform: 'test', echo: { q: 1 } });
    expect(seen).toEqual({ payload: { q: 1 }, method: 'client.info' });
  });

  test('async client handlers and patterns work', async () => {
    const { helios, url } = startServer(() => {});
    const { starling, connection } = await connectWithConnection(helios, url);
    starling.method('service.*', async (payload, context) => {
      await Promise.resolve();
      return `${context.method}:${payload}`;
    });
    const response = await connection.request('service.call', 'x');
    expect(response.data).toBe('service.call:x');
  });

  test('a client handler that throws gives an error Response with status 500', async () => {
    const { helios, url } = startServer(() => {});
    const { starling, connection } = await connectWithConnection(helios, url);
    starling.method('client.fail', () => {
      throw new Error('client side failure');
    });
    const response = await connection.request('client.fail');
    expect(response.isError()).toBe(true);
    expect(response.isSuccess()).toBe(false);
    expect(response.status).toBe(500);
    expect(response.error).toMatchObject({ code: 'HANDLER_ERROR', message: 'client side failure' });
    expect(response.data).toBeNull();
  });

  test('a method the client did not register gives a 404 Response', async () => {
    const { helios, url } = startServer(() => {});
    const { connection } = await connectWithConnection(helios, url);
    const response = await connection.request('client.missing');
    expect(response.status).toBe(404);
    expect(response.error.code).toBe('METHOD_NOT_FOUND');
  });

  test('concurrent requests to several clients each get their own answer', async () => {
    const { helios, url } = startServer(() => {});
    const a = await connectWithConnection(helios, url);
    const b = await connectWithConnection(helios, url);
    a.starling.method('whoami', (n) => `a${n}`);
    b.starling.method('whoami', (n) => `b${n}`);
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? b : a).connection.request('whoami', i))
    );
    expect(responses.map((r) => r.data)).toEqual(Array.from({ length: 20 }, (_, i) => `${i % 2 ? 'b' : 'a'}${i}`));
  });

  test('a client that never answers makes the request reject with REQUEST_TIMEOUT after about the timeout', async () => {
    const { helios, url } = startServer(() => {});
    const { raw, connection } = await rawWithConnection(helios, url);
    const started = Date.now();
    const error = await connection.request('client.silent', null, { timeout: 150 }).then(
      () => null,
      (e) => e
    );
    const elapsed = Date.now() - started;
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('REQUEST_TIMEOUT');
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(2000);
    // The client did receive the request.
    const request = await raw.next((m) => m.type === 'request');
    expect(request).toMatchObject({ type: 'request', method: 'client.silent', payload: null });
    expect(connection.state).toBe('OPEN');
  });

  test("the server's requestTimeout option is the default timeout", async () => {
    const { helios, url } = startServer({ requestTimeout: 120 }, () => {});
    const { connection } = await rawWithConnection(helios, url);
    const started = Date.now();
    const error = await connection.request('client.silent').catch((e) => e);
    expect(error.code).toBe('REQUEST_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test('a late answer after the timeout is ignored and the connection keeps working', async () => {
    quiet('warn');
    quiet('error');
    const { helios, url } = startServer((server) => server.method('ok', () => 'ok'));
    const { raw, connection } = await rawWithConnection(helios, url);
    const error = await connection.request('client.slow', null, { timeout: 50 }).catch((e) => e);
    expect(error.code).toBe('REQUEST_TIMEOUT');
    const request = await raw.next((m) => m.type === 'request');
    raw.send({ type: 'response', id: request.id, status: 200, data: 'too late' });
    expect((await raw.request(1, 'ok')).data).toBe('ok');
    expect(connection.state).toBe('OPEN');
  });

  test('closing the connection while a request is pending rejects it with CONNECTION_CLOSED', async () => {
    const { starling, pending } = await hangingRequest();
    await starling.close();
    const error = await pending;
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('CONNECTION_CLOSED');
  });

  test('the server closing the connection while a request is pending rejects it', async () => {
    const { connection, pending } = await hangingRequest();
    connection.close(4000, 'bye');
    const error = await pending;
    expect(error.code).toBe('CONNECTION_CLOSED');
  });

  test('helios.stop() while a request is pending rejects it', async () => {
    const { helios, pending } = await hangingRequest();
    const began = Date.now();
    await helios.stop();
    const error = await pending;
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('CONNECTION_CLOSED');
    expect(Date.now() - began).toBeLessThan(2000);
  });

  test('request on a closed connection rejects at once', async () => {
    const { helios, url } = startServer(() => {});
    const { starling, connection } = await connectWithConnection(helios, url);
    const disconnected = nextEvent(helios.events, 'disconnection');
    await starling.close();
    await disconnected;
    const error = await connection.request('anything').catch((e) => e);
    expect(error.code).toBe('CONNECTION_CLOSED');
  });

  test('request refuses bad arguments', async () => {
    const { helios, url } = startServer(() => {});
    const { connection } = await connectWithConnection(helios, url);
    await expect(connection.request('')).rejects.toThrow(TypeError);
    await expect(connection.request('x', null, { timeout: -1 })).rejects.toThrow(RangeError);
    await expect(connection.request('x', { big: 1n })).rejects.toThrow(TypeError);
  });

  test('a client Response with a custom status is passed through', async () => {
    const { helios, url } = startServer(() => {});
    const { starling, connection } = await connectWithConnection(helios, url);
    starling.method('client.denied', () => new ClientResponse({ status: 403, error: { code: 'NOPE', message: 'denied' } }));
    const response = await connection.request('client.denied');
    expect(response.status).toBe(403);
    expect(response.error).toMatchObject({ code: 'NOPE', message: 'denied' });
  });
});
