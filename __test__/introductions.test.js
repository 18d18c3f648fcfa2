// When JavaScript hears of a connection. With nobody listening for `connection` or `disconnection` (and
// without sessions or a cluster), the core introduces a connection with the first call about it; a
// connection that stays silent costs JavaScript nothing. Everything the application can see must stay the
// same: these tests go through real sockets with no lifecycle listener registered first.
import { test, expect, describe } from 'bun:test';
import { useCleanup, startServer, connect, nextEvent, waitFor } from './helpers.js';

useCleanup();

/** Waits until the core counts `count` open connections, without asking JavaScript about any of them. */
function opened(helios, count) {
  return waitFor(() => helios.stats().connections === count, { message: `${count} open connections` });
}

describe('a connection JavaScript hears of with its first call', () => {
  test("a handler's connection has its id, url, address and upgrade data, and is the same object each call", async () => {
    const seen = [];
    const { helios, url } = startServer(
      { upgrade: ({ query }) => ({ data: { user: query.user } }) },
      (server) => {
        server.method('who', (context) => {
          const { connection } = context;
          seen.push(connection);
          connection.data.set('calls', (connection.data.get('calls') ?? 0) + 1);
          return { id: connection.id, url: connection.url, user: connection.data.get('user'), calls: connection.data.get('calls') };
        });
      }
    );
    const client = await connect(url, {}, '/app?user=ann');
    const first = await client.request('who');
    const second = await client.request('who');
    expect(first.data).toMatchObject({ url: '/app?user=ann', user: 'ann', calls: 1 });
    expect(second.data).toEqual({ ...first.data, calls: 2 });
    expect(seen[0]).toBe(seen[1]);
    expect(seen[0].remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(helios.connections.get(first.data.id)).toBe(seen[0]);
  });

  test('helios.connections lists connections that never sent anything, and not once they close', async () => {
    const { helios, url } = startServer(() => {});
    const clients = await Promise.all([1, 2, 3].map((n) => connect(url, {}, `/?n=${n}`)));
    await opened(helios, 3);
    const urls = [...helios.connections.values()].map((connection) => connection.url).sort();
    expect(urls).toEqual(['/?n=1', '/?n=2', '/?n=3']);
    clients[0].close();
    await waitFor(() => helios.connections.size === 2, { message: 'the close reported' });
    expect([...helios.connections.values()].every((connection) => connection.state === 'OPEN')).toBe(true);
  });

  test('a disconnection listener added later hears the closes of connections that were silent', async () => {
    const { helios, url } = startServer(() => {});
    const clients = await Promise.all([1, 2].map((n) => connect(url, {}, `/?silent=${n}`)));
    await opened(helios, 2);
    const closed = [];
    helios.events.on('disconnection', ({ connection, code }) => closed.push([connection.url, code, connection.state]));
    for (const client of clients) client.close();
    await waitFor(() => closed.length === 2, { message: 'two disconnection events' });
    expect(closed.sort()).toEqual([
      ['/?silent=1', 1000, 'CLOSED'],
      ['/?silent=2', 1000, 'CLOSED'],
    ]);
  });

  test('a connection listener added later hears only the connections that open after it', async () => {
    const { helios, url } = startServer(() => {});
    await connect(url, {}, '/?when=before');
    await opened(helios, 1);
    const heard = [];
    helios.events.on('connection', ({ connection }) => heard.push(connection.url));
    const { connection } = await Promise.all([
      nextEvent(helios.events, 'connection'),
      connect(url, {}, '/?when=after'),
    ]).then(([event]) => event);
    expect(connection.url).toBe('/?when=after');
    expect(heard).toEqual(['/?when=after']);
    expect([...helios.connections.values()].map((c) => c.url).sort()).toEqual(['/?when=after', '/?when=before']);
  });

  test('a silent connection that closes is counted by the core and is not listed', async () => {
    const { helios, url } = startServer(() => {});
    const client = await connect(url);
    await opened(helios, 1);
    client.close();
    await opened(helios, 0);
    expect(helios.stats().closed).toEqual({ 1000: 1 });
    expect(helios.connections.size).toBe(0);
  });
});
