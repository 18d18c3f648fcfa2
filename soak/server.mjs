// The server of the soak test (soak/run.mjs starts it as a child process under Bun).
//
// Session recovery on; a public room 'soak'; methods `echo` (returns its payload) and `work` (async: waits a
// few ms, then answers); an event handler for `soak:publish` that numbers each publication with a global
// counter `g` and broadcasts `{ g, p, s }` to the room. It checks, per connection, that the publications
// (`s`) and the RPCs (`n`) it receives come in order and exactly once (state kept in `connection.data`, so it
// goes away with the connection and does not grow the heap). Control methods for the driver: `soak.final`
// (counters), `soak.gc` (`Bun.gc(true)`, then the RSS). Prints `listening <port>` once it serves.
import { Helios } from '@aionbuilders/helios';

const secret = process.env.SOAK_SECRET ?? 'soak-test-secret-0123456789abcdef-0123456789abcdef';

const helios = new Helios({
  requestTimeout: 10_000,
  sessionRecovery: {
    enabled: true,
    secret,
    ttl: 60_000,
    bufferSize: { messages: 5000, bytes: 4 * 1024 * 1024 },
  },
});

const counters = {
  g: 0, // publications broadcast
  published: 0, // soak:publish events received
  publishOutOfOrder: 0, // a connection's publication `s` was not the previous + 1
  rpc: 0, // echo + work calls run
  rpcOutOfOrder: 0, // a connection's RPC `n` was not greater than the previous one (a call ran twice?)
  recovered: 0,
  recoveredWithGap: 0,
  connections: 0,
  disconnections: 0,
  sessionsEnded: 0,
};

helios.room('soak', { type: 'public' });

function checkRpc(context) {
  counters.rpc++;
  const n = context.payload?.n;
  const data = context.connection.data;
  const last = data.get('rpcN') ?? 0;
  if (!(n > last)) counters.rpcOutOfOrder++;
  data.set('rpcN', n);
}

helios.method('echo', (context) => {
  checkRpc(context);
  return context.payload;
});

helios.method('work', async (context) => {
  checkRpc(context);
  const { n, ms = 5 } = context.payload ?? {};
  await Bun.sleep(ms);
  let sum = 0;
  for (let i = 0; i < 1000; i++) sum = (sum + i * n) % 1_000_003;
  return { n, sum };
});

helios.on('soak:publish', (data, context) => {
  counters.published++;
  const connectionData = context.connection.data;
  const last = connectionData.get('pubS') ?? 0;
  if (data?.s !== last + 1) counters.publishOutOfOrder++;
  connectionData.set('pubS', data?.s);
  counters.g++;
  helios.broadcast('soak', { g: counters.g, p: data?.p, s: data?.s });
});

helios.method('soak.final', () => ({
  ...counters,
  open: helios.connections.size,
  rooms: helios.rooms.count,
  members: helios.rooms.getRoom('soak').connections.length,
  stats: helios.stats(),
}));

helios.method('soak.gc', () => {
  Bun.gc(true);
  return { rss: process.memoryUsage().rss, heapUsed: process.memoryUsage().heapUsed };
});

helios.events.on('connection', () => counters.connections++);
helios.events.on('disconnection', ({ sessionEnded }) => {
  counters.disconnections++;
  if (sessionEnded) counters.sessionsEnded++;
});
helios.events.on('session:recovered', ({ session }) => {
  counters.recovered++;
  if (session.gap) counters.recoveredWithGap++;
});

const { port } = helios.serve({ port: Number(process.env.PORT ?? 0), hostname: '127.0.0.1' });
console.log(`listening ${port}`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await helios.stop();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
