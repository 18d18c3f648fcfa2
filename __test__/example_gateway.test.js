// The gateway example (examples/gateway): the gateway and two services in their own processes, driven
// through a client socket; and `run.js`, the one command the README shows.
import { test, expect, describe, beforeAll, afterAll } from 'bun:test';
import { Starling } from '../client/index.js';
import { tcpSocket, runScript, runtimes } from './helpers.js';
import { startExample, stopExamples } from './example_process.js';
import path from 'node:path';

const SERVICE_KEY = 'a-key-for-this-test';

describe('gateway with two service processes', () => {
  let gateway;
  let users;
  let orders;
  let port;
  let client;
  beforeAll(async () => {
    gateway = startExample('gateway/gateway.js', { PORT: '0', SERVICE_KEY });
    [, port] = await gateway.waitForLine(/listening on port (\d+)/);
    const env = { GATEWAY_URL: `ws://127.0.0.1:${port}`, SERVICE_KEY };
    users = startExample('gateway/service.js', env, ['users']);
    orders = startExample('gateway/service.js', env, ['orders']);
    await gateway.waitForLine(/service users connected/);
    await gateway.waitForLine(/service orders connected/);
    client = new Starling({ url: `ws://127.0.0.1:${port}`, requestTimeout: 5000 });
    await client.connect();
  });
  afterAll(async () => {
    await client?.close();
    await stopExamples();
  });

  test('a call is answered by the service process it names, status and data forwarded as is', async () => {
    const user = await client.request('gateway.users.get', { id: 2 });
    expect(user.status).toBe(200);
    expect(user.data).toEqual({ id: '2', name: 'Bob' });
    const missing = await client.request('gateway.users.get', { id: 9 });
    expect(missing.status).toBe(500);
    expect(missing.error.message).toBe('no user 9');
    const order = await client.request('gateway.orders.create', { userId: '2', item: 'lens' });
    expect(order.data).toMatchObject({ id: 1, userId: '2', item: 'lens', by: `orders service, pid ${orders.child.pid}` });
    expect((await client.request('gateway.orders.list', { userId: '2' })).data).toHaveLength(1);
  });

  test('an unknown service is 503; a service without the key is refused at the upgrade', async () => {
    const response = await client.request('gateway.billing.charge', {});
    expect(response.status).toBe(503);
    expect(response.error.message).toBe('Service unavailable');
    await expect(tcpSocket(Number(port), '/?service=users&key=wrong')).rejects.toThrow(/403/);
    expect(gateway.lines.filter((line) => line.includes('service users connected'))).toHaveLength(1);
  });

  test('when a service process stops, its calls get 503 and the other service still answers', async () => {
    expect(await orders.stop()).toBe(0);
    await gateway.waitForLine(/service orders disconnected/);
    expect((await client.request('gateway.orders.list', { userId: '2' })).status).toBe(503);
    expect((await client.request('gateway.users.list')).data).toHaveLength(2);
  });
});

test('run.js starts the gateway and both services, makes the calls and stops them', async () => {
  const result = await runScript(runtimes.bun, path.join('examples', 'gateway', 'run.js'), path.resolve(import.meta.dir, '..'), 20000);
  expect(result.exitCode, result.stderr).toBe(0);
  expect(result.stdout).toContain('[client] gateway.users.get 1 → 200 {"id":"1","name":"Alice"}');
  expect(result.stdout).toContain('[client] gateway.billing.charge → 503 "Service unavailable"');
  expect(result.stdout).toContain('[gateway] stopped');
}, 30000);
