// Sessions across nodes: a node killed mid-stream (SIGKILL, in its own process) and its clients resuming
// on another node with every buffered message replayed once and in order, their rooms and data back,
// including what was sent to them while no node held their socket; Redis refusing writes (out of memory);
// a node cut off from Redis while another takes its sessions over.

import { test, expect, beforeAll, afterAll } from 'bun:test';
import net from 'node:net';
import path from 'node:path';
import { useCleanup, startServer, rawSocket, waitFor, nextEvent, createClient } from './helpers.js';
import { describeWithRedis, redisCommand, redisServer, startRedis } from './redis.js';

useCleanup();

const SECRET = 'c'.repeat(32);
let redis;
let prefixes = 0;
const children = new Set();

beforeAll(async () => {
  if (redisServer) redis = await startRedis();
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await redis?.remove();
});

/** A node in a child process; resolves with `{ url, kill() }`. */
async function childNode(prefix) {
  const child = Bun.spawn([process.execPath, path.join(import.meta.dir, 'fixtures', 'cluster_node.mjs')], {
    env: { ...process.env, REDIS_URL: redis.url, PREFIX: prefix, SECRET },
    stdout: 'pipe',
    stderr: 'inherit',
  });
  children.add(child);
  const reader = child.stdout.getReader();
  let text = '';
  while (!text.includes('\n')) {
    const { value, done } = await reader.read();
    if (done) throw new Error('the child node exited before serving');
    text += new TextDecoder().decode(value);
  }
  const { url } = JSON.parse(text.split('\n')[0]);
  return {
    url,
    async kill() {
      child.kill('SIGKILL');
      await child.exited;
      children.delete(child);
    },
  };
}

/** A node in this process, with the public room `feed`. */
function localNode(prefix, cluster = {}) {
  return startServer(
    {
      cluster: { redis: redis.url, channelPrefix: prefix, heartbeat: 100, ...cluster },
      sessionRecovery: { secret: SECRET, ttl: 10000 },
      healthCheck: { enabled: false },
    },
    (helios) => helios.room('feed', { type: 'public' }),
  );
}

/** The counted messages a raw socket received (everything but session control), parsed. */
function counted(raw) {
  return raw.frames.filter((frame) => frame.json && frame.json.type !== 'session').map((frame) => frame.json);
}

/** The `n` of the feed events among `messages`. */
function feed(messages) {
  return messages.filter((message) => message.type === 'event' && message.topic === 'feed').map((message) => message.data.n);
}

function range(from, to) {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

async function publish(helios, from, to) {
  for (let n = from; n <= to; n++) {
    helios.broadcast('feed', { n });
    if (n % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/**
 * A TCP forwarder to the port `target()` names when each connection opens. `cut()` drops every connection
 * and refuses new ones until `heal()`. Returns `{ port, cut(), heal(), close() }`.
 */
async function forwarder(target) {
  const sockets = new Set();
  let down = false;
  const server = net.createServer((incoming) => {
    if (down) {
      incoming.destroy();
      return;
    }
    const outgoing = net.connect(target(), '127.0.0.1');
    for (const socket of [incoming, outgoing]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        incoming.destroy();
        outgoing.destroy();
        sockets.delete(socket);
      });
    }
    incoming.pipe(outgoing);
    outgoing.pipe(incoming);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const cut = () => {
    down = true;
    for (const socket of sockets) socket.destroy();
  };
  return {
    port: server.address().port,
    cut,
    heal() {
      down = false;
    },
    close() {
      cut();
      server.close();
    },
  };
}

/** A TCP load balancer in front of the nodes: each new connection goes to the port `target()` names. */
async function balancer(target) {
  const forward = await forwarder(target);
  return { url: `ws://127.0.0.1:${forward.port}`, close: forward.close };
}

/** A field of session `id`'s copy in Redis (under `prefix`), or null. */
async function copyField(prefix, id, field) {
  const reply = await redisCommand(redis.port, `HGET ${prefix}:session:${id} ${field}`);
  return reply.startsWith('$-1') ? null : reply.split('\r\n')[1];
}

/** Runs `during` while Redis refuses writes (out of memory: `maxmemory` 1 byte). */
async function outOfMemory(during) {
  expect(await redisCommand(redis.port, 'CONFIG SET maxmemory 1')).toStartWith('+OK');
  try {
    await during();
  } finally {
    await redisCommand(redis.port, 'CONFIG SET maxmemory 0');
  }
}

/**
 * A client of node `b`, which reaches Redis through a forwarder, subscribed to `feed` with 1..5 received;
 * then `b` is cut off from Redis until `a` takes the session over. Meanwhile `a` broadcasts 6..8, which it
 * keeps for the session (`b` never hears of them), and `b` sends its client the events `direct` 101..103.
 * Then `b` reaches Redis again. Resolves with the nodes, the client, its session and its count.
 */
async function partitioned() {
  prefixes += 1;
  const prefix = `sessions${prefixes}`;
  const proxy = await forwarder(() => redis.port);
  const a = localNode(prefix);
  const b = localNode(prefix, { redis: `redis://127.0.0.1:${proxy.port}` });
  await clusterOf(2, a, b);
  const client = await rawSocket(b.url);
  const { token, sessionId } = await client.next((m) => m.type === 'session' && m.event === 'created');
  expect((await client.request(1, 'helios.subscribe', { topic: 'feed' })).data.success).toBe(true);
  await publish(a.helios, 1, 5);
  await waitFor(() => feed(counted(client)).length === 5, { message: 'the first 5' });
  await waitFor(async () => (await copyField(prefix, sessionId, 'next')) === '7', { message: 'the copy of 6 messages' });
  proxy.cut();
  await waitFor(() => a.helios.connections.get(sessionId)?.state === 'SUSPENDED', {
    message: 'a taking the session over',
    timeout: 5000,
  });
  await publish(a.helios, 6, 8);
  // Events to the connection on b only (a broadcast would also reach a, once b's queue is sent).
  const held = b.helios.connections.get(sessionId);
  for (let n = 101; n <= 103; n++) held.emit('direct', { n });
  await waitFor(() => counted(client).length === 9, { message: "b's own messages" });
  // a has written what it keeps for the session: numbered 7 to 9, like b's 101..103 on the client.
  await waitFor(async () => (await copyField(prefix, sessionId, 'next')) === '10', { message: "a's copy" });
  proxy.heal();
  return { prefix, a, b, proxy, client, token, sessionId, count: counted(client).length };
}

/** Waits until every node sees `count` live nodes. */
function clusterOf(count, ...nodes) {
  return waitFor(() => nodes.every(({ helios }) => helios.stats().cluster.nodes === count), {
    message: `${count} live nodes`,
    timeout: 5000,
  });
}

/** Two nodes of a new cluster in this process, `cluster` options added, once each sees the other. */
async function twoNodes(cluster = {}) {
  prefixes += 1;
  const prefix = `sessions${prefixes}`;
  const a = localNode(prefix, cluster);
  const b = localNode(prefix, cluster);
  await clusterOf(2, a, b);
  return { prefix, a, b };
}

/**
 * Two nodes of a new cluster and a raw client of `a` subscribed to `feed`, with 1..5 received and in the
 * session's copy.
 */
async function feedOnTwoNodes() {
  const { prefix, a, b } = await twoNodes();
  const first = await rawSocket(a.url);
  const { token, sessionId } = await first.next((m) => m.type === 'session' && m.event === 'created');
  expect((await first.request(1, 'helios.subscribe', { topic: 'feed' })).data.success).toBe(true);
  await publish(a.helios, 1, 5);
  await waitFor(async () => (await copyField(prefix, sessionId, 'next')) === '7', { message: 'the copy of 1..5' });
  return { prefix, a, b, first, token, sessionId };
}

describeWithRedis('cluster sessions', () => {
  test('a client of a killed node resumes on another: buffered messages replayed once, in order, with rooms and data', async () => {
    prefixes += 1;
    const prefix = `sessions${prefixes}`;
    const dying = await childNode(prefix);
    const b = localNode(prefix);
    await clusterOf(2, b);
    const first = await rawSocket(`${dying.url}/?user=ada`);
    const { token, sessionId } = await first.next((m) => m.type === 'session' && m.event === 'created');
    expect((await first.request(1, 'helios.subscribe', { topic: 'feed' })).data.success).toBe(true);
    await publish(b.helios, 1, 100);
    await waitFor(() => feed(counted(first)).length === 100, { message: 'the first 100 through the dying node' });
    // Mid-stream: the client has processed only part of what it received when its node dies.
    const processed = 60;
    await new Promise((resolve) => setTimeout(resolve, 300)); // past the write-behind window
    const publishing = publish(b.helios, 101, 400);
    await dying.kill();
    await publishing;
    await first.closed;
    // The client comes back on another node, which reads its session from Redis.
    const recovered = nextEvent(b.helios.events, 'session:recovered');
    const opened = nextEvent(b.helios.events, 'connection', ({ connection }) => connection.id === sessionId);
    const second = await rawSocket(`${b.url}/?session_token=${token}&last_seq=${processed}`);
    const control = await second.next((m) => m.type === 'session');
    expect(control.event).toBe('recovered');
    expect(control.gap).toBe(false);
    const { connection } = await recovered;
    expect((await opened).restored).toBe(true);
    expect(connection.data.get('user')).toBe('ada');
    expect(connection.data.has('callback')).toBe(false);
    expect(connection.subscriptions).toEqual(['feed']);
    await publish(b.helios, 401, 410);
    await waitFor(() => feed(counted(second)).includes(410), { message: 'live events after the resume' });
    // Everything the dying node had counted for the client, after its count, came back exactly once and
    // in order; what it never had (sent while no node held the session) is the documented loss.
    const before = counted(first).slice(0, processed);
    const all = feed([...before, ...counted(second)]);
    expect(all.slice(0, 99)).toEqual(range(1, 99)); // 1 .. 100, the subscribe answer being message 1
    expect(all).toEqual([...new Set(all)].sort((x, y) => x - y));
    expect(all.slice(-10)).toEqual(range(401, 410));
    expect(second.frames.find((f) => f.json?.type === 'session').json.seq).toBeGreaterThanOrEqual(100);
  });

  test("a killed node's sessions are taken over: what is sent before the client returns is replayed", async () => {
    prefixes += 1;
    const prefix = `sessions${prefixes}`;
    const dying = await childNode(prefix);
    const b = localNode(prefix);
    const c = localNode(prefix);
    await clusterOf(3, b, c);
    const first = await rawSocket(`${dying.url}/?user=grace`);
    const { token, sessionId } = await first.next((m) => m.type === 'session' && m.event === 'created');
    expect((await first.request(1, 'helios.subscribe', { topic: 'feed' })).data.success).toBe(true);
    await publish(b.helios, 1, 50);
    await waitFor(() => feed(counted(first)).length === 50, { message: 'the first 50' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await dying.kill();
    // Once the dead node's heartbeat expires, one survivor takes its sessions over, suspended.
    const adopter = await waitFor(
      () => [b, c].find(({ helios }) => helios.connections.get(sessionId)?.state === 'SUSPENDED'),
      { message: 'a survivor holding the session', timeout: 5000 },
    );
    const other = adopter === b ? c : b;
    expect(adopter.helios.connections.get(sessionId).data.get('user')).toBe('grace');
    expect(adopter.helios.rooms.getRoom('feed').connections.map((conn) => conn.id)).toEqual([sessionId]);
    // Sent while the client is away: the adopter keeps it for the client.
    await publish(other.helios, 51, 80);
    await new Promise((resolve) => setTimeout(resolve, 300)); // past the write-behind window
    // The client comes back on the node that did not adopt: it reads the session from Redis and the
    // adopter drops its copy.
    const second = await rawSocket(`${other.url}/?session_token=${token}&last_seq=${counted(first).length}`);
    const control = await second.next((m) => m.type === 'session');
    expect(control.event).toBe('recovered');
    expect(control.gap).toBe(false);
    await waitFor(() => feed(counted(second)).includes(80), { message: 'the events sent while away' });
    expect(feed(counted(second))).toEqual(range(51, 80));
    await waitFor(() => !adopter.helios.connections.has(sessionId), { message: 'the adopter to drop its copy' });
    // The adopter hands the session over before the resume ends, so the application may hear of it later.
    await waitFor(() => other.helios.connections.get(sessionId)?.state === 'OPEN', { message: 'the session open on the other node' });
  });

  test('a token is good once across nodes: the same token on a second node is refused', async () => {
    const { a, b } = await twoNodes();
    const first = await rawSocket(a.url);
    const { token } = await first.next((m) => m.type === 'session' && m.event === 'created');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const second = await rawSocket(`${b.url}/?session_token=${token}&last_seq=0`);
    expect((await second.next((m) => m.type === 'session')).event).toBe('recovered');
    // The first node was told to drop its copy: its socket is closed as taken over.
    expect((await first.closed).code).toBe(4009);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const third = await rawSocket(`${a.url}/?session_token=${token}&last_seq=0`);
    const refused = await third.next((m) => m.type === 'session');
    expect(refused.event).toBe('recovery-failed');
    expect(refused.reason).toBe('token already used');
  });

  test("a resume on another node while the session's owner is alive gets every message the owner had not written yet, with no gap", async () => {
    // Sessions written every 2 s: the copy lags the session on purpose.
    const { prefix, a, b } = await twoNodes({ sessionFlush: 2000 });
    const first = await rawSocket(a.url);
    const { token, sessionId } = await first.next((m) => m.type === 'session' && m.event === 'created');
    expect((await first.request(1, 'helios.subscribe', { topic: 'feed' })).data.success).toBe(true);
    // The copy holds the subscribe answer (frame 1); what follows waits for the next round of writes.
    await waitFor(async () => (await copyField(prefix, sessionId, 'next')) === '2', { message: 'the first copy', timeout: 5000 });
    await publish(a.helios, 1, 10);
    await waitFor(() => feed(counted(first)).length === 10, { message: 'the first 10' });
    const count = counted(first).length;
    first.ws.close(4000);
    await first.closed;
    await waitFor(() => a.helios.connections.get(sessionId)?.state === 'SUSPENDED', { message: 'the session waiting on a' });
    // Kept by a for the session while its client is away.
    await publish(a.helios, 11, 20);
    expect(await copyField(prefix, sessionId, 'next')).toBe('2'); // still behind: a has 21 frames
    const second = await rawSocket(`${b.url}/?session_token=${token}&last_seq=${count}`);
    const control = await second.next((m) => m.type === 'session');
    expect(control).toMatchObject({ event: 'recovered', gap: false, replayed: 10, seq: 21 });
    expect(feed(counted(second))).toEqual(range(11, 20));
    // a handed the session over: it no longer holds it, and what is sent now reaches the client on b.
    await waitFor(() => a.helios.connections.get(sessionId) === undefined, { message: 'a letting the session go' });
    await publish(a.helios, 21, 25);
    await waitFor(() => feed(counted(second)).includes(25), { message: 'live events after the resume' });
    expect(feed(counted(second))).toEqual(range(11, 25));
  }, 15000);

  test('a resume has its session written to Redis right away, so another node refuses the used token', async () => {
    // Sessions written to Redis once a minute: only the write a resume asks for can tell b in time.
    const { a, b } = await twoNodes({ sessionFlush: 60_000 });
    const first = await rawSocket(a.url);
    const { token } = await first.next((m) => m.type === 'session' && m.event === 'created');
    first.ws.close(4000);
    await first.closed;
    const back = await rawSocket(`${a.url}/?session_token=${token}&last_seq=0`);
    expect((await back.next((m) => m.type === 'session')).event).toBe('recovered');
    // Far less than the minute the next round of writes would take.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const replayed = await rawSocket(`${b.url}/?session_token=${token}&last_seq=0`);
    expect(await replayed.next((m) => m.type === 'session')).toMatchObject({ event: 'recovery-failed', reason: 'token already used' });
    expect(back.closeInfo).toBeNull();
  });

  test('the Starling client behind a load balancer resumes on the surviving node by itself', async () => {
    prefixes += 1;
    const prefix = `sessions${prefixes}`;
    const dying = await childNode(prefix);
    const b = localNode(prefix);
    await clusterOf(2, b);
    let port = Number(new URL(dying.url).port);
    const front = await balancer(() => port);
    try {
      const starling = createClient(front.url, { sessionRecovery: true, reconnect: { initialDelay: 20, maxDelay: 200 } });
      await starling.connect();
      expect((await starling.subscribe('feed')).success).toBe(true);
      const received = [];
      starling.on('feed', (data) => received.push(data.n));
      await publish(b.helios, 1, 100);
      await waitFor(() => received.length === 100, { message: 'the first 100' });
      await new Promise((resolve) => setTimeout(resolve, 300)); // past the write-behind window
      const recovered = nextEvent(starling.events, 'session:recovered', () => true, 5000);
      port = Number(new URL(b.url).port);
      await dying.kill();
      const { session } = await recovered;
      expect(session.gap).toBe(false);
      // The server's application hears of the session just after the client does.
      await waitFor(() => b.helios.connections.has(session.sessionId), { message: 'the session on the surviving node' });
      await publish(b.helios, 101, 150);
      await waitFor(() => received.length === 150, { message: 'the next 50 through the surviving node' });
      expect(received).toEqual(range(1, 150));
      const [connection] = [...b.helios.connections.values()];
      expect(connection.subscriptions).toEqual(['feed']);
    } finally {
      front.close();
    }
  });

  test('Redis refusing writes for longer than a node ttl takes no live node for dead once it accepts them again', async () => {
    prefixes += 1;
    const prefix = `sessions${prefixes}`;
    const a = localNode(prefix);
    // Out of step with a, so that one node beats first once Redis is back.
    await new Promise((resolve) => setTimeout(resolve, 150));
    const b = localNode(prefix);
    await clusterOf(2, a, b);
    const clients = [await rawSocket(a.url), await rawSocket(b.url)];
    for (const client of clients) await client.next((m) => m.type === 'session');
    // Out of memory: every write refused, every node's key expires (heartbeat 100 ms, node ttl 300 ms).
    expect(await redisCommand(redis.port, 'CONFIG SET maxmemory 1')).toStartWith('+OK');
    try {
      await new Promise((resolve) => setTimeout(resolve, 1000));
    } finally {
      await redisCommand(redis.port, 'CONFIG SET maxmemory 0');
    }
    await clusterOf(2, a, b);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(clients.map((client) => client.closeInfo)).toEqual([null, null]);
    expect([a.helios.connections.size, b.helios.connections.size]).toEqual([1, 1]);
  });

  test('two resumes with one token at once on a node that does not hold the session: one resumes, one is refused', async () => {
    const { a, b } = await twoNodes();
    const first = await rawSocket(a.url);
    const { token } = await first.next((m) => m.type === 'session' && m.event === 'created');
    await new Promise((resolve) => setTimeout(resolve, 200)); // past the write-behind window
    const url = `${b.url}/?session_token=${token}&last_seq=0`;
    const racers = await Promise.all([rawSocket(url), rawSocket(url)]);
    const outcomes = await Promise.all(racers.map((racer) => racer.next((m) => m.type === 'session')));
    expect(outcomes.map((m) => m.event).sort()).toEqual(['recovered', 'recovery-failed']);
    expect(outcomes.find((m) => m.event === 'recovery-failed').reason).toBe('token already used');
    // The refused one got a session of its own beside the resumed one.
    await waitFor(() => b.helios.stats().connections === 2, { message: 'two connections on b' });
  });

  test('after a Redis restart the sessions are written again, and a client can still resume on another node', async () => {
    const { a, b } = await twoNodes();
    const first = await rawSocket(a.url);
    const { token } = await first.next((m) => m.type === 'session' && m.event === 'created');
    expect((await first.request(1, 'helios.subscribe', { topic: 'feed' })).data.success).toBe(true);
    await publish(b.helios, 1, 20);
    await waitFor(() => feed(counted(first)).length === 20, { message: 'the first 20' });
    // The restarted Redis has no copy of anything.
    await redis.stop();
    await redis.start();
    await waitFor(() => [a, b].every(({ helios }) => helios.stats().cluster.state === 'connected'), {
      message: 'both nodes back',
      timeout: 5000,
    });
    await clusterOf(2, a, b);
    await new Promise((resolve) => setTimeout(resolve, 300)); // past the write-behind window
    const processed = counted(first).length;
    first.ws.close(4000, 'network change');
    await first.closed;
    const second = await rawSocket(`${b.url}/?session_token=${token}&last_seq=${processed}`);
    const control = await second.next((m) => m.type === 'session');
    expect(control.event).toBe('recovered');
    await publish(b.helios, 21, 25);
    await waitFor(() => feed(counted(second)).length === 5, { message: 'live events on the other node' });
    expect(feed(counted(second))).toEqual(range(21, 25));
  });

  test('session writes Redis refuses are retried: a resume elsewhere afterwards replays every message, with the data', async () => {
    const { prefix, a, b, first, token, sessionId } = await feedOnTwoNodes();
    // Messages 6..10 go out, and a data entry is set, while Redis refuses every write of the session's copy.
    await outOfMemory(async () => {
      await publish(a.helios, 6, 10);
      a.helios.connections.get(sessionId).data.set('mood', 'patient');
      await new Promise((resolve) => setTimeout(resolve, 300));
    });
    await publish(a.helios, 11, 15);
    await waitFor(() => feed(counted(first)).length === 15, { message: 'the 15 messages' });
    await waitFor(async () => (await copyField(prefix, sessionId, 'next')) === '17', {
      message: 'the copy of 1..15',
      timeout: 5000,
    });
    // The client had processed up to 5 (the subscribe answer and 1..5) when its socket dropped.
    first.ws.close(4000, 'network change');
    await first.closed;
    const second = await rawSocket(`${b.url}/?session_token=${token}&last_seq=6`);
    const control = await second.next((m) => m.type === 'session');
    expect(control).toMatchObject({ event: 'recovered', gap: false, replayed: 10, seq: 16 });
    expect(feed(counted(second))).toEqual(range(6, 15));
    await waitFor(() => b.helios.connections.get(sessionId)?.data.get('mood') === 'patient', {
      message: 'the data entry set while Redis refused writes',
    });
  }, 10000);

  test('a resume elsewhere while Redis refuses writes reports a gap, and leaves the session on one node', async () => {
    const { prefix, a, b, first, token, sessionId } = await feedOnTwoNodes();
    await outOfMemory(async () => {
      // 6..10 never reach the copy; the client processed 1..5 only.
      await publish(a.helios, 6, 10);
      await waitFor(() => feed(counted(first)).length === 10, { message: '6..10 sent' });
      first.ws.close(4000, 'network change');
      await first.closed;
      const second = await rawSocket(`${b.url}/?session_token=${token}&last_seq=6`);
      const control = await second.next((m) => m.type === 'session');
      expect(control).toMatchObject({ event: 'recovered', gap: true, replayed: 0 });
    });
    // Redis could not record the resume, but a was told to drop its copy all the same; once Redis takes
    // writes again, b's copy is written.
    await waitFor(() => !a.helios.connections.has(sessionId), { message: 'a dropping its copy' });
    await waitFor(async () => (await copyField(prefix, sessionId, 'node')) === b.helios.stats().cluster.nodeId, {
      message: 'b owning the copy',
    });
    expect(b.helios.connections.get(sessionId).state).toBe('OPEN');
  }, 10000);

  test('a node cut off from Redis gives up the sessions taken over meanwhile; its client resumes on the survivor with everything kept', async () => {
    const { a, b, proxy, client, token, sessionId, count } = await partitioned();
    try {
      // b finds a owning the session: it closes its socket with 1012, and the client resumes.
      const { code } = await waitFor(() => client.closeInfo, { message: 'b closing its socket', timeout: 5000 });
      expect(code).toBe(1012);
      await waitFor(() => !b.helios.connections.has(sessionId), { message: 'b ending its copy' });
      const back = await rawSocket(`${a.url}/?session_token=${token}&last_seq=${count}`);
      const control = await back.next((m) => m.type === 'session');
      // 6..8 follow the client's count: none of them is skipped for numbers b used meanwhile.
      expect(control).toMatchObject({ event: 'recovered', gap: false, replayed: 3, seq: count + 3 });
      expect(feed(counted(back))).toEqual([6, 7, 8]);
      // The application hears of the resume just after the client does.
      await waitFor(() => a.helios.connections.get(sessionId).state === 'OPEN', { message: 'the session open on a' });
      // The directory names a: another node reaches the client there.
      expect(await b.helios.to(sessionId).emit('notice', { n: 9 })).toBe(true);
      expect(await back.next((m) => m.type === 'event' && m.topic === 'notice')).toMatchObject({ data: { n: 9 } });
    } finally {
      proxy.close();
    }
  }, 10000);

  test("a node cut off from Redis never overwrites the survivor's copy: the client resumes on it from that copy", async () => {
    const { prefix, a, b, proxy, client, token, sessionId, count } = await partitioned();
    try {
      const { code } = await waitFor(() => client.closeInfo, { message: 'b closing its socket', timeout: 5000 });
      expect(code).toBe(1012);
      await waitFor(() => !b.helios.connections.has(sessionId), { message: 'b ending its copy' });
      expect(await copyField(prefix, sessionId, 'node')).toBe(a.helios.stats().cluster.nodeId);
      expect(await copyField(prefix, sessionId, 'next')).toBe('10');
      // Back on b (a load balancer's choice), which reads the copy a wrote.
      const back = await rawSocket(`${b.url}/?session_token=${token}&last_seq=${count}`);
      const control = await back.next((m) => m.type === 'session');
      expect(control).toMatchObject({ event: 'recovered', gap: false, replayed: 3, seq: count + 3 });
      expect(feed(counted(back))).toEqual([6, 7, 8]);
      await waitFor(() => !a.helios.connections.has(sessionId), { message: 'a dropping its copy' });
    } finally {
      proxy.close();
    }
  }, 10000);

  test('a session its client resumed on the survivor and ended there is not written back by the node that was cut off', async () => {
    prefixes += 1;
    const prefix = `sessions${prefixes}`;
    const proxy = await forwarder(() => redis.port);
    try {
      const a = localNode(prefix);
      const b = localNode(prefix, { redis: `redis://127.0.0.1:${proxy.port}` });
      await clusterOf(2, a, b);
      const client = await rawSocket(b.url);
      const { token, sessionId } = await client.next((m) => m.type === 'session' && m.event === 'created');
      await waitFor(async () => (await copyField(prefix, sessionId, 'node')) !== null, { message: 'the first copy' });
      proxy.cut();
      await waitFor(() => a.helios.connections.get(sessionId)?.state === 'SUSPENDED', {
        message: 'a taking the session over',
        timeout: 5000,
      });
      // The client's socket on b drops (not a normal close, so b keeps the session waiting) ...
      client.ws.close(4000);
      await waitFor(() => b.helios.connections.get(sessionId)?.state === 'SUSPENDED', { message: 'b waiting' });
      // ... and it resumes on a, then ends the session there with a normal close.
      const back = await rawSocket(`${a.url}/?session_token=${token}&last_seq=1`);
      expect(await back.next((m) => m.type === 'session')).toMatchObject({ event: 'recovered' });
      back.ws.close(1000);
      await waitFor(async () => (await copyField(prefix, sessionId, 'node')) === null, { message: 'a forgetting it' });
      proxy.heal();
      await waitFor(() => !b.helios.connections.has(sessionId), { message: 'b giving its copy up', timeout: 5000 });
      expect(await copyField(prefix, sessionId, 'node')).toBeNull();
      // The token used on a stays used.
      const replayed = await rawSocket(`${b.url}/?session_token=${token}&last_seq=1`);
      expect(await replayed.next((m) => m.type === 'session')).toMatchObject({ event: 'recovery-failed', reason: 'unknown session' });
    } finally {
      proxy.close();
    }
  }, 15000);
});
