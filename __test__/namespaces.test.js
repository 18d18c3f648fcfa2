import { test, expect, describe } from 'bun:test';
import { Namespace } from '../index.js';
import { useCleanup, startServer, connect } from './helpers.js';

useCleanup();

describe('namespaces', () => {
  test('register and method prefix the name with the namespace', async () => {
    const { helios, url } = startServer((server) => {
      const api = server.namespace('api');
      api.register('users.list', () => ['alice', 'bob']);
      api.method('ping', () => 'pong');
    });
    const client = await connect(url);
    expect((await client.request('api.users.list')).data).toEqual(['alice', 'bob']);
    expect((await client.request('api.ping')).data).toBe('pong');
    expect((await client.request('users.list')).status).toBe(404);
    expect(helios.namespace('api')).toBeInstanceOf(Namespace);
    expect(helios.namespace('api').prefix).toBe('api');
  });

  test("namespace.use('**') applies to the namespace's methods only", async () => {
    const seen = [];
    const { url } = startServer((helios) => {
      const api = helios.namespace('api');
      api.use('**', (ctx, next) => {
        seen.push(ctx.method);
        return next();
      });
      api.register('users.list', () => 'users');
      helios.method('public.info', () => 'info');
      helios.method('apiary', () => 'bees');
    });
    const client = await connect(url);
    expect((await client.request('public.info')).data).toBe('info');
    expect((await client.request('apiary')).data).toBe('bees');
    expect((await client.request('api.users.list')).data).toBe('users');
    expect(seen).toEqual(['api.users.list']);
  });

  test('a namespace auth middleware blocks its methods but not methods outside it', async () => {
    const { url } = startServer((helios) => {
      const api = helios.namespace('api');
      api.use('**', async (context, next) => {
        if (!context.connection.data.get('token')) return context.createErrorResponse('Unauthorized', 401);
        return await next();
      });
      api.register('secret', () => 'secret');
      helios.method('login', (ctx) => {
        ctx.connection.data.set('token', 't');
        return true;
      });
    });
    const client = await connect(url);
    const denied = await client.request('api.secret');
    expect(denied.status).toBe(401);
    expect(denied.error.message).toBe('Unauthorized');
    expect((await client.request('login')).data).toBe(true);
    expect((await client.request('api.secret')).data).toBe('secret');
  });

  test('namespace.use with a function only is the same as **', async () => {
    const seen = [];
    const { url } = startServer((helios) => {
      const api = helios.namespace('api');
      api.use((ctx, next) => {
        seen.push(ctx.method);
        return next();
      });
      api.method('a.b', () => 1);
      helios.method('other', () => 2);
    });
    const client = await connect(url);
    await client.request('api.a.b');
    await client.request('other');
    expect(seen).toEqual(['api.a.b']);
  });

  test('namespace middleware with a narrower pattern only matches inside the namespace', async () => {
    const seen = [];
    const { url } = startServer((helios) => {
      const api = helios.namespace('api');
      api.use('admin.*', (ctx, next) => {
        seen.push(ctx.method);
        return next();
      });
      api.method('admin.stats', () => 'stats');
      api.method('users.list', () => 'users');
      helios.method('admin.stats', () => 'root stats');
    });
    const client = await connect(url);
    await client.request('api.admin.stats');
    await client.request('api.users.list');
    expect((await client.request('admin.stats')).data).toBe('root stats');
    expect(seen).toEqual(['api.admin.stats']);
  });

  test('nested namespaces prefix with every level and their middleware nests', async () => {
    const order = [];
    const { url } = startServer((helios) => {
      const api = helios.namespace('api');
      const v1 = api.namespace('v1');
      expect(v1.prefix).toBe('api.v1');
      api.use('**', (ctx, next) => {
        order.push(`api:${ctx.method}`);
        return next();
      });
      v1.use('**', (ctx, next) => {
        order.push(`v1:${ctx.method}`);
        return next();
      });
      v1.register('users.get', (ctx) => ({ version: 1, id: ctx.payload }));
      api.register('health', () => 'ok');
    });
    const client = await connect(url);
    expect((await client.request('api.v1.users.get', 9)).data).toEqual({ version: 1, id: 9 });
    expect((await client.request('api.health')).data).toBe('ok');
    expect((await client.request('v1.users.get')).status).toBe(404);
    expect(order).toEqual(['api:api.v1.users.get', 'v1:api.v1.users.get', 'api:api.health']);
  });

  test('namespace patterns follow the specificity rules', async () => {
    const { url } = startServer((helios) => {
      const api = helios.namespace('api');
      api.method('**', () => 'catch-all');
      api.method('users.*', () => 'users');
    });
    const client = await connect(url);
    expect((await client.request('api.users.42')).data).toBe('users');
    expect((await client.request('api.other.thing')).data).toBe('catch-all');
  });

  test('an empty namespace name is refused', () => {
    const { helios } = startServer(() => {});
    expect(() => helios.namespace('')).toThrow(TypeError);
  });
});
