// Fan-out across a cluster of 3 nodes: Helios (cluster through Redis) against Socket.IO 4 with its Redis
// adapter, driven by one harness. Run with Bun (it uses Bun's WebSocket client) after `npm install` here:
//
//   bun bench/cluster/run.mjs [--servers helios,socketio] [--subscribers 300] [--window 8] [--duration 5]
//                             [--warmup 1] [--rounds 3] [--out FILE]
//
// Each run starts its own redis-server (no persistence) and three server processes, spreads the subscribers
// over the three nodes (round robin), and connects one publisher to the first node. The publisher keeps
// `window` broadcasts in flight, publishing the next one as soon as one has reached every subscriber, so two
// thirds of every broadcast's deliveries cross Redis. It reports deliveries per second (frames read by
// subscribers) and the publish → delivery latency (p50, p99) under that load, and checks that no subscriber
// got a broadcast twice. The harness runs in this process, on the same machine: compare servers with each
// other, not with other machines.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const here = import.meta.dir;
const root = path.resolve(here, '..', '..');

const defaults = { servers: 'helios,socketio', subscribers: 300, window: 8, duration: 5, warmup: 1, rounds: 3, out: '' };
const options = { ...defaults };
for (let i = 2; i < process.argv.length; i++) {
  const match = /^--([a-z]+)(?:=(.*))?$/.exec(process.argv[i]);
  if (!match || !(match[1] in defaults)) throw new Error(`unknown option ${process.argv[i]}`);
  const value = match[2] ?? process.argv[++i];
  options[match[1]] = typeof defaults[match[1]] === 'number' ? Number(value) : value;
}

const NODES = 3;
const SERVERS = {
  helios: { label: 'Helios on Bun, cluster', cmd: process.execPath, file: '../servers/helios.mjs', protocol: 'helios' },
  socketio: { label: 'Socket.IO 4 on Node, redis-adapter', cmd: 'node', file: 'socketio-node.mjs', protocol: 'socketio' },
};

const redisServer = spawnSync('which', ['redis-server']).stdout?.toString().trim();
if (!redisServer) {
  console.error('redis-server is not installed (apt-get install redis-server)');
  process.exit(1);
}

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function startRedis() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'helios-bench-redis-'));
  const child = spawn(redisServer, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    cwd: dir,
    stdio: 'ignore',
  });
  for (let i = 0; i < 250; i++) {
    const up = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.end();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (up) break;
    await sleep(20);
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    stop() {
      child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function startNode(server, redisUrl) {
  const child = spawn(server.cmd, [path.join(here, server.file)], {
    cwd: root,
    env: { ...process.env, REDIS_URL: redisUrl, PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (chunk) => {
      text += chunk;
      const match = /listening (\d+)/.exec(text);
      if (match) resolve({ child, port: Number(match[1]) });
    });
    child.on('exit', (code) => reject(new Error(`${server.file} exited (${code}) before listening`)));
  });
}

/** A client speaking `protocol`, with `onBench(seqText)` called for every broadcast it reads. */
function client(protocol, port, onBench) {
  const url = protocol === 'socketio'
    ? `ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`
    : `ws://127.0.0.1:${port}/`;
  const ws = new WebSocket(url);
  let ready;
  let subscribed;
  const opened = new Promise((resolve) => (ready = resolve));
  const joined = new Promise((resolve) => (subscribed = resolve));
  ws.onmessage = ({ data }) => {
    if (protocol === 'socketio') {
      if (data === '2') return ws.send('3');
      if (data.startsWith('0')) return ws.send('40');
      if (data.startsWith('40')) return ready();
      if (data.startsWith('431')) return subscribed();
      if (data.startsWith('42["bench"')) return onBench(data);
      return;
    }
    if (data.startsWith('{"type":"event","topic":"bench"')) return onBench(data);
    if (data.startsWith('{"type":"response"')) return subscribed();
  };
  if (protocol !== 'socketio') ws.onopen = () => ready();
  ws.onerror = () => {};
  return {
    ws,
    async subscribe() {
      await opened;
      if (protocol === 'socketio') ws.send('421["subscribe","bench"]');
      else ws.send('{"type":"request","id":1,"method":"helios.subscribe","payload":{"topic":"bench"}}');
      await joined;
    },
    async open() {
      await opened;
    },
    publish(seq, t) {
      const data = `{"seq":${seq},"t":${t}}`;
      ws.send(protocol === 'socketio'
        ? `42["bench:publish",${data}]`
        : `{"type":"event","topic":"bench:publish","data":${data}}`);
    },
  };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function run(name) {
  const server = SERVERS[name];
  const redis = await startRedis();
  const nodes = [];
  const sockets = [];
  try {
    for (let i = 0; i < NODES; i++) nodes.push(await startNode(server, redis.url));
    // Helios nodes find each other through heartbeats; give them one before measuring.
    await sleep(1500);
    const counts = new Map();
    const sent = new Map();
    let duplicates = 0;
    let delivered = 0;
    let measuring = false;
    const latencies = [];
    let inFlight = 0;
    let next = 1;
    let publisher;
    const publish = () => {
      const seq = next++;
      counts.set(seq, 0);
      const t = performance.now();
      sent.set(seq, t);
      inFlight += 1;
      publisher.publish(seq, t);
    };
    const onBench = (text) => {
      const match = /"seq":(\d+)/.exec(text);
      if (!match) return;
      const seq = Number(match[1]);
      const count = counts.get(seq);
      if (count === undefined) return;
      if (measuring) {
        delivered += 1;
        if ((delivered & 15) === 0) latencies.push(performance.now() - sent.get(seq));
      }
      if (count + 1 > options.subscribers) duplicates += 1;
      counts.set(seq, count + 1);
      if (count + 1 === options.subscribers) {
        inFlight -= 1;
        publish();
      }
    };
    for (let i = 0; i < options.subscribers; i++) {
      const subscriber = client(server.protocol, nodes[i % NODES].port, onBench);
      sockets.push(subscriber);
      await subscriber.subscribe();
    }
    publisher = client(server.protocol, nodes[0].port, () => {});
    sockets.push(publisher);
    await publisher.open();
    for (let i = 0; i < options.window; i++) publish();
    await sleep(options.warmup * 1000);
    measuring = true;
    const started = performance.now();
    const before = next;
    await sleep(options.duration * 1000);
    measuring = false;
    const seconds = (performance.now() - started) / 1000;
    const complete = next - before;
    latencies.sort((a, b) => a - b);
    const stalled = complete === 0;
    return {
      server: name,
      deliveriesPerSecond: Math.round(delivered / seconds),
      broadcastsPerSecond: Math.round(complete / seconds),
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      duplicates,
      stalled,
    };
  } finally {
    for (const socket of sockets) socket.ws.close();
    for (const { child } of nodes) child.kill('SIGTERM');
    await sleep(300);
    for (const { child } of nodes) child.kill('SIGKILL');
    redis.stop();
  }
}

const names = options.servers.split(',');
for (const name of names) if (!SERVERS[name]) throw new Error(`unknown server ${name}; use ${Object.keys(SERVERS).join(',')}`);
const runs = [];
for (let round = 1; round <= options.rounds; round++) {
  for (const name of names) {
    const result = await run(name);
    runs.push({ round, ...result });
    console.log(
      `round ${round} ${SERVERS[name].label}: ${result.deliveriesPerSecond} deliveries/s, ` +
        `p50 ${result.p50?.toFixed(1)} ms, p99 ${result.p99?.toFixed(1)} ms, duplicates ${result.duplicates}` +
        (result.stalled ? ' (STALLED: a broadcast never reached every subscriber)' : ''),
    );
  }
}
const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
console.log(`\n3 nodes, ${options.subscribers} subscribers (${options.subscribers / NODES} per node), window ${options.window}, ${options.duration} s, median of ${options.rounds}`);
console.log('| server | deliveries/s | p50 ms | p99 ms |');
console.log('|---|---:|---:|---:|');
for (const name of names) {
  const mine = runs.filter((r) => r.server === name);
  console.log(
    `| ${SERVERS[name].label} | ${median(mine.map((r) => r.deliveriesPerSecond))} | ` +
      `${median(mine.map((r) => r.p50 ?? NaN)).toFixed(1)} | ${median(mine.map((r) => r.p99 ?? NaN)).toFixed(1)} |`,
  );
}
const machine = { cores: os.cpus().length, cpu: os.cpus()[0]?.model, bun: Bun.version, node: spawnSync('node', ['--version']).stdout.toString().trim() };
console.log(`machine: ${machine.cores} cores, ${machine.cpu}, Bun ${machine.bun}, Node ${machine.node}`);
if (options.out) fs.writeFileSync(options.out, JSON.stringify({ options, machine, runs }, null, 2));
process.exit(0);
