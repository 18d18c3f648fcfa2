import { test, expect, describe } from 'bun:test';
import { Response } from '../index.js';
import { useCleanup, startServer, connect, connectWithConnection, rawSocket, quiet } from './helpers.js';

useCleanup();

describe('methods return data', () => {
  test('an async handler returns data to the caller', async () => {
    const { url } = startServer((helios) => {
      helios.method('user.get', async (context) => ({ id: context.payload.userId, name: 'Alice' }));
    });
    const client = await connect(url);
    const response = await client.request('user.get', { userId: 42 });
    expect(response.status).toBe(200);
    expect(response.isSuccess()).toBe(true);
    expect(response.data).toEqual({ id: 42, name: 'Alice' });
  });

  test('a sync handler returns data to the caller', async () => {
    const { url } = startServer((helios) => {
      helios.method('math.add', (context) => context.payload.a + context.payload.b);
    });
    const client = await connect(url);
    const response = await client.request('math.add', { a: 2, b: 3 });
    expect(response.status).toBe(200);
    expect(response.data).toBe(5);
  });

  test('register is the same as method', async () => {
    const { url } = startServer((helios) => {
      helios.register('ping', () => 'pong');
    });
    const client = await connect(url);
    expect((await client.request('ping')).data).toBe('pong');
  });

  test('a handler returning undefined answers data null', async () => {
    const { url } = startServer((helios) => {
      helios.method('nothing', () => undefined);
      helios.method('nothing.async', async () => {});
    });
    const raw = await rawSocket(url);
    const sync = await raw.request(1, 'nothing');
    expect(sync).toEqual({ type: 'response', id: 1, status: 200, data: null });
    const asynchronous = await raw.request(2, 'nothing.async');
    expect(asynchronous.status).toBe(200);
    expect(asynchronous).toHaveProperty('data', null);
  });

  test('a missing payload reaches the handler as null', async () => {
    let seen = 'unset';
    const { url } = startServer((helios) => {
      helios.method('echo', (context) => {
        seen = context.payload;
        return context.payload;
      });
    });
    const raw = await rawSocket(url);
    const response = await raw.request(7, 'echo');
    expect(seen).toBeNull();
    expect(response.data).toBeNull();
  });

  test('string request ids are answered with the same id', async () => {
    const { url } = startServer((helios) => helios.method('echo', (context) => context.payload));
    const raw = await rawSocket(url);
    const response = await raw.request('abc-1', 'echo', { x: [1, 'two', null] });
    expect(response).toEqual({ type: 'response', id: 'abc-1', status: 200, data: { x: [1, 'two', null] } });
  });

  test('ids, topics and method names that need escaping reach the client exactly', async () => {
    const names = ['q"uote', 'back\\slash', 'line\nbreak', 'tab\t\u0001', 'é€\u2028', '🌍', 'plain-1'];
    const { url, helios } = startServer((helios) => helios.method('echo', (context) => context.payload));
    const raw = await rawSocket(url);
    for (const id of [...names, 0, 9007199254740991]) {
      expect(await raw.request(id, 'echo', id)).toEqual({ type: 'response', id, status: 200, data: id });
    }
    const [connection] = helios.connections.values();
    for (const topic of names) await connection.emit(topic, topic);
    for (const topic of names) {
      const event = await raw.next((message) => message.type === 'event' && message.topic === topic);
      expect(event.data).toBe(topic);
    }
    const asked = names.map((method) => connection.request(method, null, { timeout: 2000 }));
    for (const method of names) {
      const request = await raw.next((message) => message.type === 'request' && message.method === method);
      raw.send({ type: 'response', id: request.id, status: 200, data: method });
    }
    expect((await Promise.all(asked)).map((response) => response.data)).toEqual(names);
  });

  test('unicode and escapes survive the round trip', async () => {
    const { url } = startServer((helios) => {
      helios.method('echo', (context) => context.payload);
      helios.method('héllo.wörld', () => 'unicode name');
    });
    const client = await connect(url);
    const payload = { text: 'héllo 🌍 \u2028 "quoted" \\ back\nslash', nested: [{ '🔑': '✓' }], n: -0.5e-10 };
    expect((await client.request('echo', payload)).data).toEqual(payload);
    expect((await client.request('héllo.wörld')).data).toBe('unicode name');
  });

  test('an event the handler emits before returning arrives before the response', async () => {
    const { url } = startServer((helios) => {
      helios.method('work', async (context) => {
        await context.connection.emit('progress', 50);
        await context.connection.emit('progress', 100);
        return 'done';
      });
    });
    const raw = await rawSocket(url);
    const response = await raw.request(1, 'work');
    expect(response.data).toBe('done');
    expect(raw.frames.map((f) => f.json.type === 'event' ? f.json.data : f.json.type)).toEqual([50, 100, 'response']);
  });

  test('many concurrent requests are each answered with their own result', async () => {
    const { url } = startServer((helios) => {
      helios.method('double', async (context) => {
        await Promise.resolve();
        return context.payload * 2;
      });
    });
    const client = await connect(url);
    const responses = await Promise.all(Array.from({ length: 50 }, (_, i) => client.request('double', i)));
    expect(responses.map((r) => r.data)).toEqual(Array.from({ length: 50 }, (_, i) => i * 2));
  });
});

describe('the handler context', () => {
  test('has payload, method, connection, clientId and createErrorResponse', async () => {
    let context;
    const { helios, url } = startServer((server) => {
      server.method('ctx.check', (ctx) => {
        context = ctx;
        return 'ok';
      });
    });
    const { starling, connection } = await connectWithConnection(helios, url);
    await starling.request('ctx.check', { a: 1 });
    expect(context.payload).toEqual({ a: 1 });
    expect(context.method).toBe('ctx.check');
    expect(context.connection).toBe(connection);
    expect(context.clientId).toBe(connection.id);
    expect(typeof context.createErrorResponse).toBe('function');
  });

  test('context.requestId is the id the client sent', async () => {
    const { url } = startServer((helios) => helios.method('id', (ctx) => ctx.requestId));
    const raw = await rawSocket(url);
    expect((await raw.request('req-9', 'id')).data).toBe('req-9');
    expect((await raw.request(77, 'id')).data).toBe(77);
  });

  test('context.method is the called name, not the pattern', async () => {
    const { url } = startServer((helios) => helios.method('files.**', (ctx) => ctx.method));
    const client = await connect(url);
    expect((await client.request('files.a.b.c')).data).toBe('files.a.b.c');
  });

  test('createErrorResponse sends the chosen status and message', async () => {
    const { url } = startServer((helios) => {
      helios.method('forbidden', (ctx) => ctx.createErrorResponse('Not for you', 403));
    });
    const client = await connect(url);
    const response = await client.request('forbidden');
    expect(response.status).toBe(403);
    expect(response.isError()).toBe(true);
    expect(response.error.message).toBe('Not for you');
    expect(typeof response.error.code).toBe('string');
  });

  test('createErrorResponse accepts a custom code', async () => {
    const { url } = startServer((helios) => {
      helios.method('teapot', (ctx) => ctx.createErrorResponse('short and stout', 418, 'TEAPOT'));
    });
    const client = await connect(url);
    const response = await client.request('teapot');
    expect(response.status).toBe(418);
    expect(response.error).toEqual({ code: 'TEAPOT', message: 'short and stout' });
  });

  test('a returned success Response with a status is sent with that status', async () => {
    const { url } = startServer((helios) => {
      helios.method('create', (ctx) => ctx.createResponse({ created: true }, 201));
    });
    const client = await connect(url);
    const response = await client.request('create');
    expect(response.status).toBe(201);
    expect(response.data).toEqual({ created: true });
  });
});

describe('failing handlers', () => {
  test('a thrown error answers 500 HANDLER_ERROR with the message and the connection stays usable', async () => {
    const logged = quiet();
    const { url } = startServer((helios) => {
      helios.method('boom', () => {
        throw new Error('kaboom');
      });
      helios.method('ok', () => 'still here');
    });
    const client = await connect(url);
    const response = await client.request('boom');
    expect(response.status).toBe(500);
    expect(response.error).toMatchObject({ code: 'HANDLER_ERROR', message: 'kaboom' });
    expect(client.state).toBe('OPEN');
    expect((await client.request('ok')).data).toBe('still here');
    expect(logged).toHaveBeenCalled();
  });

  test('a rejected promise answers 500 with the message and the connection stays usable', async () => {
    quiet();
    const { url } = startServer((helios) => {
      helios.method('reject', async () => {
        await Promise.resolve();
        throw new Error('async kaboom');
      });
      helios.method('ok', () => 1);
    });
    const client = await connect(url);
    const response = await client.request('reject');
    expect(response.status).toBe(500);
    expect(response.error).toMatchObject({ code: 'HANDLER_ERROR', message: 'async kaboom' });
    expect((await client.request('ok')).data).toBe(1);
  });

  test('a thrown non-Error value answers 500 with its text', async () => {
    quiet();
    const { url } = startServer((helios) => {
      helios.method('throw.string', () => {
        throw 'plain string';
      });
    });
    const client = await connect(url);
    const response = await client.request('throw.string');
    expect(response.status).toBe(500);
    expect(response.error.message).toBe('plain string');
  });

  test('an unknown method answers 404 METHOD_NOT_FOUND', async () => {
    const { url } = startServer((helios) => helios.method('known', () => 1));
    const client = await connect(url);
    const response = await client.request('unknown.method');
    expect(response.status).toBe(404);
    expect(response.error.code).toBe('METHOD_NOT_FOUND');
    expect(response.error.message).toContain('unknown.method');
    expect((await client.request('known')).data).toBe(1);
  });

  test('a circular result answers 500 UNSERIALIZABLE_RESULT', async () => {
    quiet();
    const { url } = startServer((helios) => {
      helios.method('circular', () => {
        const value = { name: 'loop' };
        value.self = value;
        return value;
      });
      helios.method('ok', () => 'fine');
    });
    const client = await connect(url);
    const response = await client.request('circular');
    expect(response.status).toBe(500);
    expect(response.error.code).toBe('UNSERIALIZABLE_RESULT');
    expect((await client.request('ok')).data).toBe('fine');
  });

  test('a BigInt result answers 500 UNSERIALIZABLE_RESULT', async () => {
    quiet();
    const { url } = startServer((helios) => {
      helios.method('bigint', async () => ({ n: 10n }));
    });
    const client = await connect(url);
    const response = await client.request('bigint');
    expect(response.status).toBe(500);
    expect(response.error.code).toBe('UNSERIALIZABLE_RESULT');
  });

  test('a response whose status is not an integer from 100 to 999 answers 500 INVALID_STATUS, never a broken frame', async () => {
    const logged = quiet();
    const statuses = [NaN, '201', '200,"forged":true', 200.5, 1e21, -1, 1000, {}];
    const { url } = startServer((helios) => {
      helios.method('status', (ctx) => ctx.createResponse({ ok: true }, statuses[ctx.payload]));
      helios.method('fine', (ctx) => ctx.createResponse('created', 201));
    });
    const raw = await rawSocket(url);
    for (let i = 0; i < statuses.length; i++) {
      const response = await raw.request(i, 'status', i);
      expect(response).toEqual({
        type: 'response',
        id: i,
        status: 500,
        error: {
          code: 'INVALID_STATUS',
          message: `Invalid response status ${typeof statuses[i] === 'object' ? 'object' : String(statuses[i])}: use an integer from 100 to 999`,
        },
      });
    }
    // Every frame the client got was JSON.
    expect(raw.frames.every((frame) => frame.json !== undefined)).toBe(true);
    expect(logged.mock.calls.length).toBe(statuses.length);
    expect(await raw.request(99, 'fine')).toMatchObject({ status: 201, data: 'created' });
  });

  test('registering with a non-function handler or an empty name throws', () => {
    const { helios } = startServer(() => {});
    expect(() => helios.method('x', 'not a function')).toThrow(TypeError);
    expect(() => helios.method('', () => {})).toThrow(TypeError);
  });
});

describe('patterns', () => {
  test('* matches exactly one segment', async () => {
    const { url } = startServer((helios) => helios.method('user.*', (ctx) => `star:${ctx.method}`));
    const client = await connect(url);
    expect((await client.request('user.get')).data).toBe('star:user.get');
    expect((await client.request('user.get.more')).status).toBe(404);
    expect((await client.request('user')).status).toBe(404);
  });

  test('** matches one or more segments', async () => {
    const { url } = startServer((helios) => helios.method('files.**', (ctx) => ctx.method));
    const client = await connect(url);
    expect((await client.request('files.a')).data).toBe('files.a');
    expect((await client.request('files.a.b.c.d')).data).toBe('files.a.b.c.d');
    expect((await client.request('files')).status).toBe(404);
  });

  test('the most specific pattern wins: exact > * > **, whatever the registration order', async () => {
    const register = (helios, order) => {
      const handlers = {
        globstar: () => helios.method('api.**', () => '**'),
        star: () => helios.method('api.*', () => '*'),
        exact: () => helios.method('api.users', () => 'exact'),
      };
      for (const name of order) handlers[name]();
    };
    for (const order of [
      ['globstar', 'star', 'exact'],
      ['exact', 'star', 'globstar'],
      ['star', 'globstar', 'exact'],
    ]) {
      const { url } = startServer((helios) => register(helios, order));
      const client = await connect(url);
      expect((await client.request('api.users')).data).toBe('exact');
      expect((await client.request('api.posts')).data).toBe('*');
      expect((await client.request('api.posts.recent')).data).toBe('**');
    }
  });

  test('a longer pattern beats a shorter one, a literal beats * further left', async () => {
    const { url } = startServer((helios) => {
      helios.method('a.**', () => 'a.**');
      helios.method('a.*.**', () => 'a.*.**');
      helios.method('a.*.c', () => 'a.*.c');
      helios.method('a.b.*', () => 'a.b.*');
    });
    const client = await connect(url);
    // a.b.* beats a.*.c: literal `b` beats `*` at the second segment.
    expect((await client.request('a.b.c')).data).toBe('a.b.*');
    expect((await client.request('a.x.c')).data).toBe('a.*.c');
    // a.*.** is longer than a.** with the same start.
    expect((await client.request('a.x.y.z')).data).toBe('a.*.**');
    expect((await client.request('a.x')).data).toBe('a.**');
  });

  test('registering the same name again replaces the handler', async () => {
    const { url } = startServer((helios) => {
      helios.method('version', () => 1);
      helios.method('version', () => 2);
    });
    const client = await connect(url);
    expect((await client.request('version')).data).toBe(2);
  });
});

describe('returning a Response', () => {
  test('a Response from another client (gateway) is forwarded as is', async () => {
    const { helios, url } = startServer((server) => {
      server.method('forward.*', async (ctx) => {
        const backend = ctx.helios.connections.get(ctx.payload.to);
        return backend.request(ctx.payload.method, ctx.payload.args);
      });
    });
    const { starling: backend, connection: backendConnection } = await connectWithConnection(helios, url);
    backend.method('svc.sum', (payload) => payload.reduce((a, b) => a + b, 0));
    backend.method('svc.fail', () => {
      throw new Error('backend broke');
    });
    backend.method('svc.refuse', () => ({ never: 'seen' }));
    const user = await connect(url);

    const ok = await user.request('forward.x', { to: backendConnection.id, method: 'svc.sum', args: [1, 2, 3] });
    expect(ok.status).toBe(200);
    expect(ok.data).toBe(6);

    const failed = await user.request('forward.x', { to: backendConnection.id, method: 'svc.fail' });
    expect(failed.status).toBe(500);
    expect(failed.error).toMatchObject({ code: 'HANDLER_ERROR', message: 'backend broke' });

    const missing = await user.request('forward.x', { to: backendConnection.id, method: 'svc.nope' });
    expect(missing.status).toBe(404);
    expect(missing.error.code).toBe('METHOD_NOT_FOUND');
  });

  test('Response.success / Response.error built directly are sent as is', async () => {
    const { url } = startServer((helios) => {
      helios.method('made.ok', () => Response.success({ fine: true }, 202));
      helios.method('made.err', () => Response.error('Slow down', 429));
    });
    const client = await connect(url);
    const ok = await client.request('made.ok');
    expect(ok.status).toBe(202);
    expect(ok.data).toEqual({ fine: true });
    const err = await client.request('made.err');
    expect(err.status).toBe(429);
    expect(err.error).toEqual({ code: 'RATE_LIMITED', message: 'Slow down' });
  });
});
