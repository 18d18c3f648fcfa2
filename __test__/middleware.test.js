import { test, expect, describe } from 'bun:test';
import { useCleanup, startServer, connect, connectWithConnection, quiet } from './helpers.js';

useCleanup();

describe('middleware', () => {
  test('runs in registration order, before the handler, for matching methods', async () => {
    const order = [];
    const { url } = startServer((helios) => {
      helios.use('**', async (ctx, next) => {
        order.push('first');
        return next();
      });
      helios.use('user.*', async (ctx, next) => {
        order.push('second');
        return next();
      });
      helios.use('**', (ctx, next) => {
        order.push('third');
        return next();
      });
      helios.method('user.get', () => {
        order.push('handler');
        return 'done';
      });
    });
    const client = await connect(url);
    const response = await client.request('user.get');
    expect(response.data).toBe('done');
    expect(order).toEqual(['first', 'second', 'third', 'handler']);
  });

  test('registration order counts even when middleware is added after the method', async () => {
    const order = [];
    const { url } = startServer((helios) => {
      helios.method('thing', () => order.push('handler'));
      helios.use('thing', (ctx, next) => {
        order.push('a');
        return next();
      });
      helios.use((ctx, next) => {
        order.push('b');
        return next();
      });
    });
    const client = await connect(url);
    await client.request('thing');
    expect(order).toEqual(['a', 'b', 'handler']);
  });

  test('only middleware whose pattern matches runs', async () => {
    const ran = [];
    const { url } = startServer((helios) => {
      helios.use('admin.**', (ctx, next) => {
        ran.push('admin');
        return next();
      });
      helios.use('user.*', (ctx, next) => {
        ran.push('user');
        return next();
      });
      helios.method('user.get', () => 'user');
    });
    const client = await connect(url);
    expect((await client.request('user.get')).data).toBe('user');
    expect(ran).toEqual(['user']);
  });

  test('short-circuits with createErrorResponse: the client gets that status and the handler does not run', async () => {
    let handlerRan = false;
    let laterMiddlewareRan = false;
    const { url } = startServer((helios) => {
      helios.use('**', (ctx) => ctx.createErrorResponse('Unauthorized', 401));
      helios.use('**', (ctx, next) => {
        laterMiddlewareRan = true;
        return next();
      });
      helios.method('secret', () => {
        handlerRan = true;
        return 'secret';
      });
    });
    const client = await connect(url);
    const response = await client.request('secret');
    expect(response.status).toBe(401);
    expect(response.error).toMatchObject({ code: 'UNAUTHORIZED', message: 'Unauthorized' });
    expect(handlerRan).toBe(false);
    expect(laterMiddlewareRan).toBe(false);
  });

  test('can short-circuit with plain data without calling next', async () => {
    let handlerRan = false;
    const { url } = startServer((helios) => {
      helios.use('cached.*', () => ({ cached: true }));
      helios.method('cached.value', () => {
        handlerRan = true;
        return { cached: false };
      });
    });
    const client = await connect(url);
    expect((await client.request('cached.value')).data).toEqual({ cached: true });
    expect(handlerRan).toBe(false);
  });

  test('can wrap next(): sees the handler result and can alter it', async () => {
    let seen;
    const { url } = startServer((helios) => {
      helios.use('**', async (ctx, next) => {
        const result = await next();
        seen = result;
        return { ...result, wrapped: true };
      });
      helios.method('value', async () => ({ value: 1 }));
    });
    const client = await connect(url);
    const response = await client.request('value');
    expect(seen).toEqual({ value: 1 });
    expect(response.data).toEqual({ value: 1, wrapped: true });
  });

  test('timing middleware around a slow handler measures the handler (seed timing example)', async () => {
    let duration = -1;
    const { url } = startServer((helios) => {
      helios.use('**', async (context, next) => {
        const start = Date.now();
        const result = await next();
        duration = Date.now() - start;
        return result;
      });
      helios.method('slow', () => new Promise((resolve) => setTimeout(() => resolve('slow done'), 60)));
    });
    const client = await connect(url);
    const response = await client.request('slow');
    expect(response.data).toBe('slow done');
    expect(duration).toBeGreaterThanOrEqual(50);
  });

  test('sees the error response of an inner middleware through next()', async () => {
    let innerStatus;
    const { url } = startServer((helios) => {
      helios.use('**', async (ctx, next) => {
        const result = await next();
        innerStatus = result.status;
        return result;
      });
      helios.use('**', (ctx) => ctx.createErrorResponse('nope', 403));
      helios.method('guarded', () => 'never');
    });
    const client = await connect(url);
    const response = await client.request('guarded');
    expect(response.status).toBe(403);
    expect(innerStatus).toBe(403);
  });

  test('middleware context has the method, payload and connection', async () => {
    let seen;
    const { helios, url } = startServer((server) => {
      server.use('**', (ctx, next) => {
        seen = { method: ctx.method, payload: ctx.payload, connection: ctx.connection, clientId: ctx.clientId };
        return next();
      });
      server.method('inspect', () => true);
    });
    const { starling, connection } = await connectWithConnection(helios, url);
    await starling.request('inspect', { q: 1 });
    expect(seen.method).toBe('inspect');
    expect(seen.payload).toEqual({ q: 1 });
    expect(seen.connection).toBe(connection);
    expect(seen.clientId).toBe(connection.id);
  });

  test('middleware can pass data to the handler through connection.data', async () => {
    const { url } = startServer((helios) => {
      helios.use('**', (ctx, next) => {
        ctx.connection.data.set('seenBy', 'middleware');
        return next();
      });
      helios.method('who', (ctx) => ctx.connection.data.get('seenBy'));
    });
    const client = await connect(url);
    expect((await client.request('who')).data).toBe('middleware');
  });

  test('a middleware that throws answers 500 and the handler does not run', async () => {
    quiet();
    let handlerRan = false;
    const { url } = startServer((helios) => {
      helios.use('**', () => {
        throw new Error('middleware broke');
      });
      helios.method('m', () => {
        handlerRan = true;
      });
    });
    const client = await connect(url);
    const response = await client.request('m');
    expect(response.status).toBe(500);
    expect(response.error.message).toBe('middleware broke');
    expect(handlerRan).toBe(false);
  });

  test('a middleware rejecting after next() answers 500', async () => {
    quiet();
    const { url } = startServer((helios) => {
      helios.use('**', async (ctx, next) => {
        await next();
        throw new Error('after next');
      });
      helios.method('m', () => 'x');
    });
    const client = await connect(url);
    const response = await client.request('m');
    expect(response.status).toBe(500);
    expect(response.error.message).toBe('after next');
  });

  test('calling next() twice fails the request instead of running the handler twice', async () => {
    quiet();
    let runs = 0;
    const { url } = startServer((helios) => {
      helios.use('**', async (ctx, next) => {
        await next();
        return next();
      });
      helios.method('twice', () => ++runs);
    });
    const client = await connect(url);
    const response = await client.request('twice');
    expect(response.status).toBe(500);
    expect(runs).toBe(1);
  });

  test('middleware does not make an unknown method exist', async () => {
    let ran = false;
    const { url } = startServer((helios) => {
      helios.use('**', (ctx, next) => {
        ran = true;
        return next();
      });
    });
    const client = await connect(url);
    const response = await client.request('ghost');
    expect(response.status).toBe(404);
    expect(response.error.code).toBe('METHOD_NOT_FOUND');
    expect(ran).toBe(false);
  });
});
