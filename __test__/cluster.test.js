// Several nodes as one system through Redis: broadcasts reach every node exactly once and in order,
// to(connectionId) reaches connections on other nodes, room queries gather every node's members, and a
// Redis restart leaves local traffic untouched and cross-node traffic resumed. Each test runs three
// Helios instances in this process against a private redis-server.

import { test, expect, beforeAll, afterAll } from 'bun:test';
import { useCleanup, startServer, connect, waitFor, quiet, Helios } from './helpers.js';
import { describeWithRedis, redisServer, startRedis, redisCommand, redisProxy } from './redis.js';

useCleanup();

let redis;
let prefixes = 0;

beforeAll(async () => {
  if (redisServer) redis = await startRedis();
});
afterAll(async () => {
  await redis?.remove();
});

/**
 * Three nodes of one cluster (a prefix of their own, as `node.prefix`), each with a public `lobby` and open
 * `chat:*` rooms; node `i` reaches Redis at `urls[i]` when given (through a proxy).
 */
async function cluster(count = 3, options = {}, urls = []) {
  prefixes += 1;
  const channelPrefix = `test${prefixes}`;
  const nodes = [];
  for (let i = 0; i < count; i++) {
    const node = startServer(
      {
        cluster: { redis: urls[i] ?? redis.url, channelPrefix, heartbeat: 100, ...options },
        healthCheck: { enabled: false },
      },
      (helios) => {
        helios.room('lobby', { type: 'public' });
        helios.room('chat:*', { validator: () => true });
      },
    );
    nodes.push({ ...node, prefix: channelPrefix });
  }
  await joined(nodes);
  return nodes;
}

/** Waits until every node is connected and sees all the others. */
function joined(nodes) {
  return waitFor(
    () => nodes.every(({ helios }) => {
      const { cluster } = helios.stats();
      return cluster.state === 'connected' && cluster.nodes === nodes.length;
    }),
    { message: 'every node connected and seeing the others', timeout: 5000 },
  );
}

/** Collects every event a client receives, as `[topic, data]`. */
function collect(starling) {
  const received = [];
  starling.on('**', (data, context) => received.push([context.topic, data]));
  return received;
}

/** A client of `node` in `rooms`, with what it receives. */
async function member(node, ...rooms) {
  const starling = await connect(node.url);
  for (const room of rooms) expect((await starling.subscribe(room)).success).toBe(true);
  return { starling, received: collect(starling) };
}

/** Resolves after `ms`. */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A Redis command's reply, e.g. `:1` for an integer, without its line end. */
async function redisReply(command) {
  return (await redisCommand(redis.port, command)).trimEnd();
}

/** Whether the directory has an entry for connection `id`. */
async function inDirectory(node, id) {
  return (await redisReply(`HEXISTS ${node.prefix}:conns ${id}`)) === ':1';
}

/** Waits (polling every 20 ms) until the directory has no entry for any of `ids`. */
function leftDirectory(node, ...ids) {
  return waitFor(async () => {
    await sleep(20);
    for (const id of ids) if (await inDirectory(node, id)) return false;
    return true;
  }, { message: `the directory to forget ${ids.join(', ')}` });
}

/** The server-side id of the only connection of `node` (the server hears of it just after the client). */
async function onlyConnectionId(node) {
  await waitFor(() => node.helios.connections.size === 1, { message: 'the connection on its node' });
  return [...node.helios.connections.keys()][0];
}

describeWithRedis('cluster', () => {
  test('broadcasts from every node reach every subscriber exactly once, in publish order per node', async () => {
    const nodes = await cluster();
    const members = [];
    for (const node of nodes) members.push(await member(node, 'lobby'), await member(node, 'lobby'));
    const perNode = 300;
    for (let n = 1; n <= perNode; n++) {
      nodes.forEach((node, from) => node.helios.broadcast('lobby', { from, n }));
      if (n % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const total = perNode * nodes.length;
    await waitFor(() => members.every(({ received }) => received.length >= total), {
      message: `${total} events at every member`,
      timeout: 10000,
    });
    // A little longer: nothing beyond exactly once may trickle in.
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (const { received } of members) {
      expect(received).toHaveLength(total);
      for (let from = 0; from < nodes.length; from++) {
        const sequence = received.filter(([, data]) => data.from === from).map(([, data]) => data.n);
        expect(sequence).toEqual(Array.from({ length: perNode }, (_, i) => i + 1));
      }
    }
    // The publishing node counts its local deliveries only; the rest went through Redis once per broadcast.
    expect(nodes[0].helios.broadcast('lobby', 'last')).toEqual({ targets: 2, sent: 2 });
  });

  test('a pattern broadcast reaches the matching rooms of every node, each under its own topic', async () => {
    const [a, b, c] = await cluster();
    const general = await member(b, 'chat:general');
    const random = await member(c, 'chat:random');
    const lobby = await member(c, 'lobby');
    a.helios.broadcast('chat:*', { hello: 'all chats' });
    await waitFor(() => general.received.length === 1 && random.received.length === 1, { message: 'both chats' });
    expect(general.received).toEqual([['chat:general', { hello: 'all chats' }]]);
    expect(random.received).toEqual([['chat:random', { hello: 'all chats' }]]);
    // Ordered after the pattern broadcast on the same node, so its arrival proves the lobby got nothing.
    a.helios.broadcast('lobby', 'marker');
    await waitFor(() => lobby.received.length === 1, { message: 'the marker' });
    expect(lobby.received).toEqual([['lobby', 'marker']]);
  });

  test('exclude skips the sender on its node while every other node delivers', async () => {
    const [a, b] = await cluster(2);
    const sender = await member(a, 'lobby');
    const neighbour = await member(a, 'lobby');
    const remote = await member(b, 'lobby');
    const senderConnection = [...a.helios.connections.values()].find((connection) =>
      connection.subscriptions.includes('lobby') && a.helios.rooms.getRoom('lobby').connections[0] === connection);
    const excluded = senderConnection;
    const result = a.helios.broadcast('lobby', 'hi', { exclude: excluded });
    expect(result).toEqual({ targets: 1, sent: 1 });
    await waitFor(() => remote.received.length === 1 && (neighbour.received.length + sender.received.length) === 1, {
      message: 'the neighbour and the remote member',
    });
    a.helios.broadcast('lobby', 'after');
    await waitFor(() => remote.received.length === 2, { message: 'the second broadcast' });
    const excludedGot = [sender, neighbour].find((client) => client.received.length === 1);
    expect(excludedGot.received).toEqual([['lobby', 'after']]);
  });

  test('to(id).emit and to(id).request reach a connection on another node; unknown ids reject at once', async () => {
    const [a, b] = await cluster(2);
    const client = await connect(b.url);
    client.method('whoami', (payload) => ({ node: 'b', echo: payload }));
    client.method('silent', () => new Promise(() => {}));
    const got = collect(client);
    const id = await onlyConnectionId(b);
    expect(a.helios.connections.has(id)).toBe(false);
    expect(await a.helios.to(id).emit('direct', { x: 1 })).toBe(true);
    await waitFor(() => got.length === 1, { message: 'the routed event' });
    expect(got).toEqual([['direct', { x: 1 }]]);
    const response = await a.helios.to(id).request('whoami', { q: 42 });
    expect(response.status).toBe(200);
    expect(response.data).toEqual({ node: 'b', echo: { q: 42 } });
    const started = Date.now();
    const unknown = a.helios.to('no-such-connection').request('whoami', null, { timeout: 5000 });
    await expect(unknown).rejects.toMatchObject({ code: 'UNKNOWN_CONNECTION' });
    expect(Date.now() - started).toBeLessThan(2000);
    await expect(a.helios.to('no-such-connection').emit('x', 1)).rejects.toMatchObject({ code: 'UNKNOWN_CONNECTION' });
    await expect(a.helios.to(id).request('silent', null, { timeout: 200 })).rejects.toMatchObject({
      code: 'REQUEST_TIMEOUT',
    });
    // The same API reaches a local connection directly.
    const local = await connect(a.url);
    local.method('whoami', () => 'local');
    expect((await a.helios.to(await onlyConnectionId(a)).request('whoami')).data).toBe('local');
  });

  test('a routed request rejects with CONNECTION_CLOSED when the connection closes before answering', async () => {
    const [a, b] = await cluster(2);
    const client = await connect(b.url);
    let asked;
    const arrived = new Promise((resolve) => (asked = resolve));
    client.method('slow', () => {
      asked();
      return new Promise(() => {});
    });
    const id = await onlyConnectionId(b);
    const started = Date.now();
    const failure = a.helios.to(id).request('slow', null, { timeout: 5000 }).then(() => null, (error) => error);
    await arrived;
    await client.close();
    expect(await failure).toMatchObject({ code: 'CONNECTION_CLOSED' });
    expect(Date.now() - started).toBeLessThan(3000);
  });

  test('to(id) after the connection closed on its node rejects with UNKNOWN_CONNECTION', async () => {
    const [a, b] = await cluster(2);
    const client = await connect(b.url);
    const id = await onlyConnectionId(b);
    await client.close();
    await waitFor(() => b.helios.connections.size === 0, { message: 'the close' });
    await waitFor(async () => {
      const outcome = await a.helios.to(id).emit('x', 1).then(() => 'delivered', (error) => error.code);
      return outcome === 'UNKNOWN_CONNECTION';
    }, { message: 'the directory to forget the connection' });
  });

  test('a routed emit rejects with UNKNOWN_CONNECTION when the node the directory names does not hold the connection', async () => {
    const [a, b] = await cluster(2);
    const client = await connect(b.url);
    const id = await onlyConnectionId(b);
    // A stale entry (the connection closed while its release was on its way): B is alive, but not holding it.
    await redisReply(`HSET ${a.prefix}:conns gone-${id} ${b.helios.stats().cluster.nodeId}`);
    await expect(a.helios.to(`gone-${id}`).emit('x', 1)).rejects.toMatchObject({ code: 'UNKNOWN_CONNECTION' });
    const got = collect(client);
    expect(await a.helios.to(id).emit('x', 2)).toBe(true);
    await waitFor(() => got.length === 1, { message: 'the routed event' });
  });

  test("a dead node's connections are unknown at once, and the node that reaps it removes their entries", async () => {
    const proxy = await redisProxy(redis.port);
    try {
      const [a, b] = await cluster(2, {}, [redis.url, proxy.url]);
      await connect(b.url);
      const id = await onlyConnectionId(b);
      await waitFor(() => inDirectory(a, id), { message: 'the directory entry' });
      const dead = b.helios.stats().cluster.nodeId;
      // B's host vanishes: its connections go silent, and Redis keeps its end open (B still subscribed).
      proxy.freeze('hang');
      await waitFor(() => a.helios.stats().cluster.nodes === 1, { message: 'B taken for dead' });
      await expect(a.helios.to(id).emit('x', 1)).rejects.toMatchObject({ code: 'UNKNOWN_CONNECTION' });
      const request = a.helios.to(id).request('m', null, { timeout: 5000 });
      await expect(request).rejects.toMatchObject({ code: 'UNKNOWN_CONNECTION' });
      await leftDirectory(a, id);
      expect(await redisReply(`EXISTS ${a.prefix}:conns:${dead}`)).toBe(':0');
    } finally {
      proxy.close();
    }
  });

  test('entries of connections that closed while Redis was away leave the directory once it is back', async () => {
    const proxy = await redisProxy(redis.port);
    try {
      // Heartbeats of a second: the outage is over long before A could take B for dead and reap it.
      const [a, b] = await cluster(2, { queueLimit: 5, heartbeat: 1000 }, [redis.url, proxy.url]);
      const clients = [await connect(b.url), await connect(b.url)];
      await waitFor(() => b.helios.connections.size === 2, { message: 'both connections' });
      const ids = [...b.helios.connections.keys()];
      await waitFor(async () => (await inDirectory(a, ids[0])) && (await inDirectory(a, ids[1])), {
        message: 'the directory entries',
      });
      proxy.cut();
      await waitFor(() => b.helios.stats().cluster.state === 'disconnected', { message: 'the loss' });
      // The bounded queue fills up, so the releases of the closing connections are refused.
      for (let n = 0; n < 10; n++) b.helios.broadcast('lobby', n);
      for (const client of clients) await client.close();
      await waitFor(() => b.helios.connections.size === 0, { message: 'the closes' });
      expect(b.helios.stats().cluster.dropped).toBeGreaterThanOrEqual(7);
      proxy.heal();
      await joined([a, b]);
      await leftDirectory(a, ...ids);
      await expect(a.helios.to(ids[0]).emit('x', 1)).rejects.toMatchObject({ code: 'UNKNOWN_CONNECTION' });
      // A connection that stayed is still there.
      const staying = await connect(b.url);
      const got = collect(staying);
      const id = await onlyConnectionId(b);
      await waitFor(() => inDirectory(a, id), { message: 'the new entry' });
      expect(await a.helios.to(id).emit('x', 2)).toBe(true);
      await waitFor(() => got.length === 1, { message: 'the routed event' });
    } finally {
      proxy.close();
    }
  }, 10000);

  test('connections whose registration the full queue refused are registered after the next beat', async () => {
    // Heartbeats of a second: a stalled Redis is not taken for a lost link, so no reconnection registers
    // the connections again; only the retry does.
    const [a, b] = await cluster(2, { queueLimit: 5, heartbeat: 1000 });
    // A script that keeps Redis busy for a second: B's commands wait and its queue fills up.
    const busy = "EVAL \"local t = redis.call('TIME') local start = t[1] * 1000000 + t[2] " +
      "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - start > 1000000 return 1\" 0";
    const stalled = redisCommand(redis.port, busy, 5000);
    await sleep(100);
    for (let n = 0; n < 20; n++) b.helios.broadcast('lobby', n);
    const clients = [];
    for (let n = 0; n < 8; n++) clients.push(await connect(b.url));
    await waitFor(() => b.helios.connections.size === 8, { message: 'the connections' });
    const ids = [...b.helios.connections.keys()];
    expect((await stalled).trimEnd()).toBe(':1');
    expect(b.helios.stats().cluster.dropped).toBeGreaterThanOrEqual(8);
    await waitFor(async () => {
      await sleep(50);
      for (const id of ids) if (!(await inDirectory(a, id))) return false;
      return true;
    }, { message: 'every connection in the directory', timeout: 5000 });
    for (const id of ids) expect(await a.helios.to(id).emit('x', 1)).toBe(true);
  }, 10000);

  test('a link to Redis that goes silent without closing is noticed and replaced', async () => {
    const proxy = await redisProxy(redis.port);
    try {
      const [a, b] = await cluster(2, {}, [redis.url, proxy.url]);
      const atA = await member(a, 'lobby');
      const atB = await member(b, 'lobby');
      a.helios.broadcast('lobby', 'before');
      await waitFor(() => atB.received.length === 1, { message: 'the first broadcast' });
      // Nothing closes: B can learn of the loss only from its pings going unanswered.
      proxy.freeze('pass');
      const heard = (client, from) => client.received.some(([, data]) => String(data).startsWith(from));
      let n = 0;
      await waitFor(async () => {
        a.helios.broadcast('lobby', `a${(n += 1)}`);
        await sleep(20);
        return heard(atB, 'a');
      }, { message: "B hearing A's broadcasts again", timeout: 4000 });
      await waitFor(async () => {
        b.helios.broadcast('lobby', `b${(n += 1)}`);
        await sleep(20);
        return heard(atA, 'b');
      }, { message: "A hearing B's broadcasts again", timeout: 4000 });
      expect(b.helios.stats().cluster.state).toBe('connected');
      expect(b.helios.stats().cluster.reconnects).toBeGreaterThanOrEqual(1);
    } finally {
      proxy.close();
    }
  }, 10000);

  test('getRoom({ cluster: true }) gathers the members of every node and says who answered', async () => {
    const nodes = await cluster();
    const [a, b, c] = nodes;
    await member(a, 'lobby');
    await member(b, 'lobby');
    await member(b, 'lobby');
    await member(c, 'chat:x');
    const room = await a.helios.rooms.getRoom('lobby', { cluster: true });
    expect(room.topic).toBe('lobby');
    expect(room.count).toBe(3);
    expect(new Set(room.connections)).toEqual(
      new Set([...a.helios.connections.keys(), ...b.helios.connections.keys()]),
    );
    expect(new Set(room.nodes)).toEqual(new Set(nodes.map(({ helios }) => helios.stats().cluster.nodeId)));
    expect(room.missing).toEqual([]);
    // The plain form is unchanged: this node's Connection objects.
    expect(a.helios.rooms.getRoom('lobby').connections).toHaveLength(1);
    const empty = await c.helios.rooms.getRoom('nobody', { cluster: true, timeout: 500 });
    expect(empty.count).toBe(0);
    // A JavaScript timer fires at once past 2^31 - 1 ms: the query would give up on every node.
    await expect(c.helios.rooms.getRoom('nobody', { cluster: true, timeout: 2 ** 31 })).rejects.toThrow(RangeError);
  });

  test('a stopped node leaves the cluster at once; a room query then waits for nobody', async () => {
    const nodes = await cluster();
    await nodes[2].helios.stop();
    await waitFor(() => nodes[0].helios.stats().cluster.nodes === 2, { message: 'the departure' });
    const started = Date.now();
    const room = await nodes[0].helios.rooms.getRoom('lobby', { cluster: true, timeout: 3000 });
    expect(room.nodes).toHaveLength(2);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test('Redis restarted mid-run: local delivery goes on, stats say so, cross-node traffic resumes', async () => {
    const logged = quiet('error');
    const [a, b] = await cluster(2);
    const local = await member(a, 'lobby');
    const remote = await member(b, 'lobby');
    a.helios.broadcast('lobby', 'before');
    await waitFor(() => remote.received.length === 1, { message: 'the first broadcast' });
    await redis.stop();
    await waitFor(() => a.helios.stats().cluster.state === 'disconnected', { message: 'the loss', timeout: 5000 });
    expect(a.helios.broadcast('lobby', 'during')).toEqual({ targets: 1, sent: 1 });
    await waitFor(() => local.received.length === 2, { message: 'the local delivery while Redis is down' });
    expect(local.received.map(([, data]) => data)).toEqual(['before', 'during']);
    await redis.start();
    await joined([a, b]);
    expect(a.helios.stats().cluster.reconnects).toBeGreaterThanOrEqual(1);
    a.helios.broadcast('lobby', 'after');
    await waitFor(() => remote.received.some(([, data]) => data === 'after'), {
      message: 'cross-node delivery after the restart',
      timeout: 5000,
    });
    // The restarted Redis kept nothing; the nodes told it again where their connections are.
    const remoteId = (await b.helios.rooms.getRoom('lobby')).connections[0].id;
    await waitFor(async () => (await a.helios.to(remoteId).emit('direct', 1).catch(() => false)) === true, {
      message: 'to() across nodes after the restart',
    });
    expect(logged).not.toHaveBeenCalled();
  });

  test('while Redis is away the cross-node queue stays bounded and counts what it refuses', async () => {
    const [a] = await cluster(1, { queueLimit: 5 });
    const local = await member(a, 'lobby');
    await redis.stop();
    try {
      await waitFor(() => a.helios.stats().cluster.state === 'disconnected', { message: 'the loss', timeout: 5000 });
      for (let n = 0; n < 50; n++) a.helios.broadcast('lobby', n);
      await waitFor(() => local.received.length === 50, { message: 'every local delivery' });
      const { cluster: stats } = a.helios.stats();
      expect(stats.queued).toBeLessThanOrEqual(5);
      expect(stats.dropped).toBeGreaterThanOrEqual(45);
    } finally {
      await redis.start();
    }
  });

  test('without the cluster option nothing connects to Redis and stats() has no cluster part', async () => {
    const clients = async () => Number(/connected_clients:(\d+)/.exec(await redisCommand(redis.port, 'INFO clients'))[1]);
    const before = await clients();
    const { helios, url } = startServer((server) => server.room('lobby', { type: 'public' }));
    const client = await member({ url }, 'lobby');
    helios.broadcast('lobby', 1);
    await waitFor(() => client.received.length === 1, { message: 'the local broadcast' });
    expect(helios.stats().cluster).toBeUndefined();
    expect(await clients()).toBe(before);
  });

  test('cluster options are checked when the server is created', () => {
    expect(() => new Helios({ cluster: {} })).toThrow("option 'cluster.redis' must be a Redis URL");
    expect(() => new Helios({ cluster: { redis: 'http://x' } })).toThrow("option 'cluster.redis'");
    expect(() => new Helios({ cluster: { redis: redis.url, channelPrefix: 'a b' } })).toThrow('cluster.channelPrefix');
    expect(() => new Helios({ cluster: { redis: redis.url, nope: 1 } })).toThrow("unknown option 'cluster.nope'");
    expect(() => new Helios({ cluster: { redis: redis.url, queueLimit: 0 } })).toThrow('cluster.queueLimit');
  });
});
