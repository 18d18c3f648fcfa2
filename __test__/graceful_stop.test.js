// stop({ grace }): clients hear of the shutdown first, running handlers finish, new work is refused, then
// every connection closes with 1001.

import { test, expect, describe } from 'bun:test';
import { useCleanup, startServer, connect, nextTopic, deferred } from './helpers.js';

useCleanup();

describe('stop({ grace })', () => {
  test('with 100 clients and handlers in flight: notice, handlers finish, new requests get 503, then 1001', async () => {
    const release = deferred();
    let started = 0;
    const { helios, url, port } = startServer((server) => {
      server.method('slow', async () => {
        started += 1;
        await release.promise;
        return 'finished';
      });
      server.method('fast', () => 'fast');
    });
    const clients = await Promise.all(Array.from({ length: 100 }, () => connect(url)));
    const notices = clients.map((client) => nextTopic(client, 'server:shutdown'));
    const closes = clients.map(
      (client) => new Promise((resolve) => client.events.on('close', ({ code }) => resolve(code))),
    );
    const answers = clients.slice(0, 10).map((client) => client.request('slow', null, { timeout: 5000 }));
    while (started < 10) await new Promise((resolve) => setTimeout(resolve, 5));

    const stopped = helios.stop({ grace: 3000 });
    const [notice] = await notices[0];
    expect(notice).toEqual({ grace: 3000 });
    await Promise.all(notices);
    const refused = await clients[50].request('fast');
    expect(refused.status).toBe(503);
    expect(refused.error.code).toBe('SHUTTING_DOWN');
    await expect(connect(`ws://127.0.0.1:${port}`)).rejects.toThrow();

    release.resolve();
    const results = await Promise.all(answers);
    expect(results.map((r) => r.data)).toEqual(Array(10).fill('finished'));
    await stopped;
    expect(await Promise.all(closes)).toEqual(Array(100).fill(1001));
  }, 15000);

  test('a handler that never finishes is cut off when the grace ends', async () => {
    const { helios, url } = startServer((server) => server.method('forever', () => new Promise(() => {})));
    const client = await connect(url);
    const pending = client.request('forever', null, { timeout: 10000 }).catch((error) => error);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const began = Date.now();
    await helios.stop({ grace: 200 });
    const elapsed = Date.now() - began;
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(3000);
    expect((await pending).name).toBe('ConnectionClosedError');
  });

  test('grace must be a non-negative number', async () => {
    const { helios } = startServer();
    await expect(helios.stop({ grace: -1 })).rejects.toThrow(RangeError);
  });
});
