// The examples of the original product README run as written. Changes, each marked
// `// seed:` below: fixed ports become port 0; helper functions the README leaves undefined
// (validateToken, authenticateUser, newUserId) get small local implementations; the `...` placeholders
// of object/array literals spread local values; the Connection example's listener is made async.
// Anything else a test needs (setting a token, reading the result) is outside the example's code.

import { test, expect, describe } from 'bun:test';
import { Helios } from '@aionbuilders/helios';
import {
  useCleanup,
  track,
  connect,
  createClient,
  connectWithConnection,
  nextEvent,
  nextTopic,
  quiet,
  scaleTimers,
  waitFor,
} from './helpers.js';

useCleanup();

/** ws:// URL of a server the example started with `helios.serve({ port: 0 })` (on all interfaces). */
function urlOf(helios) {
  return `ws://127.0.0.1:${helios.address.port}`;
}

describe('seed README examples', () => {
  test('Basic Server', async () => {
    const log = quiet('log');

    const helios = new Helios();

    // Register a method
    helios.method('user.get', async (context) => {
      return {
        id: context.payload.userId,
        name: "Alice"
      };
    });

    // Listen to events
    helios.on('chat:message', async (data, context) => {
      console.log('Message:', data);
    });

    // Start server
    helios.serve({ port: 0 }); // seed: port 3000
    console.log('✨ Helios running on port 3000');

    track(helios);
    const client = await connect(urlOf(helios));
    const response = await client.request('user.get', { userId: 42 });
    expect(response.status).toBe(200);
    expect(response.data).toEqual({ id: 42, name: 'Alice' });

    await client.emit('chat:message', { text: 'hello' });
    await waitFor(() => log.mock.calls.some(([label]) => label === 'Message:'), { message: "the 'Message:' log" });
    expect(log.mock.calls.find(([label]) => label === 'Message:')).toEqual(['Message:', { text: 'hello' }]);
  });

  test('With Middleware', async () => {
    const log = quiet('log');
    const helios = new Helios();
    // Outside the example: a client passes its token in the URL (`/?token=...`).
    helios.events.on('connection', ({ connection }) => {
      const token = new URL(connection.url, 'ws://localhost').searchParams.get('token');
      if (token) connection.data.set('token', token);
    });
    const someUsers = [{ id: 1, name: 'Alice' }, { id: 2, name: 'Bob' }];

    // Global middleware
    helios.use('**', async (context, next) => {
      console.log('Request:', context.method);
      const start = Date.now();

      const result = await next();

      console.log('Duration:', Date.now() - start, 'ms');
      return result;
    });

    // Namespace middleware
    const api = helios.namespace('api');
    api.use('**', async (context, next) => {
      // Auth check
      const token = context.connection.data.get('token');
      if (!token) {
        return context.createErrorResponse('Unauthorized', 401);
      }
      return await next();
    });

    api.register('users.list', async (context) => {
      return { users: [...someUsers] }; // seed: [...]
    });

    helios.serve({ port: 0 });
    track(helios);

    const anonymous = await connect(urlOf(helios));
    const denied = await anonymous.request('api.users.list');
    expect(denied.status).toBe(401);
    expect(denied.error.message).toBe('Unauthorized');

    const member = await connect(urlOf(helios), {}, '/?token=secret');
    const allowed = await member.request('api.users.list');
    expect(allowed.status).toBe(200);
    expect(allowed.data).toEqual({ users: someUsers });

    const requests = log.mock.calls.filter(([label]) => label === 'Request:');
    expect(requests).toEqual([
      ['Request:', 'api.users.list'],
      ['Request:', 'api.users.list'],
    ]);
    const durations = log.mock.calls.filter(([label]) => label === 'Duration:');
    expect(durations.length).toBe(2);
    for (const [, ms, unit] of durations) {
      expect(ms).toBeGreaterThanOrEqual(0);
      expect(unit).toBe('ms');
    }
  });

  test('Connection', async () => {
    const helios = new Helios();
    const logged = quiet('error'); // a failing listener would be reported here
    const callPayload = { task: 'sync' };

    helios.events.on('connection', async ({ connection }) => { // seed: async added
      // Store user data
      connection.data.set('user', { id: 123, role: 'admin' });

      // Send messages
      connection.emit('welcome', { message: 'Hello!' });

      // Make requests
      const response = await connection.request('service.call', { ...callPayload }); // seed: { ... }
    });

    // Outside the example: a method to read what the listener stored.
    helios.method('me', (context) => context.connection.data.get('user'));
    helios.serve({ port: 0 });
    track(helios);

    const client = createClient(urlOf(helios));
    const called = new Promise((resolve) => client.method('service.call', (payload) => {
      resolve(payload);
      return { done: true };
    }));
    const welcome = nextTopic(client, 'welcome');
    await client.connect();

    expect((await welcome)[0]).toEqual({ message: 'Hello!' });
    expect(await called).toEqual({ task: 'sync' });
    expect((await client.request('me')).data).toEqual({ id: 123, role: 'admin' });
    expect(logged).not.toHaveBeenCalled();
  });

  test('Methods (RPC)', async () => {
    const helios = new Helios();
    const newUserId = 'user-7'; // seed: undefined in the README
    helios.events.on('connection', ({ connection }) => connection.data.set('userId', 'creator-1'));
    let creator;

    helios.method('user.create', async (context) => {
      const { username, email } = context.payload;

      // Access connection
      const userId = context.connection.data.get('userId');
      creator = userId; // outside the example: observe what the handler read

      // Return response
      return { id: newUserId, username };
    });

    helios.serve({ port: 0 });
    track(helios);
    const client = await connect(urlOf(helios));
    const response = await client.request('user.create', { username: 'ada', email: 'ada@example.com' });
    expect(response.status).toBe(200);
    expect(response.data).toEqual({ id: 'user-7', username: 'ada' });
    expect(creator).toBe('creator-1');
  });

  test('Events (Pub/Sub): the handler broadcasts to the chat:room room', async () => {
    const helios = new Helios();

    helios.on('chat:message', async (data, context) => {
      // data = event payload
      // context = EventContext with connection info

      // Broadcast to others
      helios.broadcast('chat:room', {
        from: context.clientId,
        message: data.text
      });
    });

    // Outside the example: rooms are declared (deny by default), here as a public room (README "Rooms").
    helios.room('chat:room', { type: 'public' });

    helios.serve({ port: 0 });
    track(helios);
    const listener = await connect(urlOf(helios));
    // Joining a room is the client's helios.subscribe (README "Rooms").
    expect(await listener.subscribe('chat:room')).toEqual({ success: true, topic: 'chat:room' });
    const received = nextTopic(listener, 'chat:room');
    const { starling: sender, connection } = await connectWithConnection(helios, urlOf(helios));
    const senderErrors = [];
    sender.events.on('error', ({ error }) => senderErrors.push(error));
    await sender.emit('chat:message', { text: 'hello room' });
    const [data] = await received;
    expect(data).toEqual({ from: connection.id, message: 'hello room' });
    expect(senderErrors).toEqual([]);
  });

  describe('Authentication', () => {
    /** The README's example on a fresh server; the 5 s auth timeout runs in 50 ms. */
    function authenticationServer() {
      scaleTimers(5000, 50);
      const helios = new Helios();
      const issued = new Map();
      // seed: helper functions the README leaves undefined
      const authenticateUser = async (username, password) => {
        if (password !== 'correct horse') throw new Error('Invalid credentials');
        const token = `token-${username}`;
        issued.set(token, { username });
        return token;
      };
      const validateToken = (token) => issued.get(token) ?? null;

      helios.events.on('connection', async ({ connection }) => {
        // Wait for auth
        const timeout = setTimeout(() => {
          connection.ws.close(4001, 'Auth timeout');
        }, 5000);

        helios.events.once(`auth:${connection.id}`, ({ token }) => {
          clearTimeout(timeout);
          const user = validateToken(token);
          connection.data.set('user', user);
        });
      });

      helios.method('auth.login', async (context) => {
        const { username, password } = context.payload;
        const token = await authenticateUser(username, password);

        helios.events.emit(`auth:${context.connection.id}`, { token });

        return { success: true, token };
      });

      // Outside the example: read the user the example stored.
      helios.method('me', (context) => context.connection.data.get('user') ?? null);
      helios.serve({ port: 0 });
      track(helios);
      return helios;
    }

    test('a client that logs in is authenticated and stays connected', async () => {
      const helios = authenticationServer();
      const client = await connect(urlOf(helios));
      const closed = [];
      client.events.on('close', (event) => closed.push(event.code));
      const response = await client.request('auth.login', { username: 'ada', password: 'correct horse' });
      expect(response.data).toEqual({ success: true, token: 'token-ada' });
      expect((await client.request('me')).data).toEqual({ username: 'ada' });
      // A timer of the same (scaled) length started now fires after the auth timer would have.
      await new Promise((resolve) => setTimeout(resolve, 5000));
      // A round trip after it: a close the server started would arrive before this answer.
      expect((await client.request('me')).data).toEqual({ username: 'ada' });
      expect(closed).toEqual([]);
      expect(client.state).toBe('OPEN');
    });

    test("a client that does not log in is closed with 4001 'Auth timeout'", async () => {
      const helios = authenticationServer();
      const client = await connect(urlOf(helios));
      const { code, reason } = await nextEvent(client.events, 'close');
      expect(code).toBe(4001);
      expect(reason).toBe('Auth timeout');
    });

    test('wrong credentials answer 500 with the message and leave the client unauthenticated', async () => {
      quiet();
      const helios = authenticationServer();
      const client = await connect(urlOf(helios));
      const response = await client.request('auth.login', { username: 'ada', password: 'wrong' });
      expect(response.status).toBe(500);
      expect(response.error.message).toBe('Invalid credentials');
      expect((await client.request('me')).data).toBeNull();
    });
  });

  test('Microservices Gateway', async () => {
    // Outside the example, registered first: a service says what it is in its URL (`/?service=billing`).
    const setServiceType = ({ connection }) => {
      const service = new URL(connection.url, 'ws://localhost').searchParams.get('service');
      if (service) connection.data.set('serviceType', service);
    };

    const helios = new Helios();
    helios.events.on('connection', setServiceType);

    // Service connections
    const services = new Map();

    helios.events.on('connection', ({ connection }) => {
      const serviceType = connection.data.get('serviceType');
      if (serviceType) {
        services.set(serviceType, connection);
      }
    });

    // Route to services
    helios.method('gateway.**', async (context) => {
      const [, serviceName] = context.method.split('.');
      const service = services.get(serviceName);

      if (!service) {
        return context.createErrorResponse('Service unavailable', 503);
      }

      return await service.request(context.method, context.payload);
    });

    helios.serve({ port: 0 });
    track(helios);

    const billing = createClient(`${urlOf(helios)}/?service=billing`);
    billing.method('gateway.billing.invoice', (payload) => ({ invoice: `INV-${payload.orderId}`, amount: 99 }));
    billing.method('gateway.billing.refund', () => {
      throw new Error('Refunds are closed');
    });
    await billing.connect();
    await waitFor(() => services.has('billing'), { message: 'the billing service to register' });

    const user = await connect(urlOf(helios));
    const invoice = await user.request('gateway.billing.invoice', { orderId: 17 });
    expect(invoice.status).toBe(200);
    expect(invoice.data).toEqual({ invoice: 'INV-17', amount: 99 });

    const refund = await user.request('gateway.billing.refund', {});
    expect(refund.status).toBe(500);
    expect(refund.error.message).toBe('Refunds are closed');

    const unknown = await user.request('gateway.unknown.x');
    expect(unknown.status).toBe(503);
    expect(unknown.error.message).toBe('Service unavailable');
  });
});
