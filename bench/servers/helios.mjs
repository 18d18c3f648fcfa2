// Helios under benchmark. Runs on Bun or Node: `bun bench/servers/helios.mjs` / `node bench/servers/helios.mjs`.
// PORT (default 0: a free port) and HOST (default 127.0.0.1) pick the address; prints `listening <port>`.
//
// - method 'echo': returns an object built from the request's payload (the RPC scenario);
// - room 'bench': public, clients join it with the built-in 'helios.subscribe' (the fan-out scenario);
// - event 'bench:publish': broadcasts its data to the room 'bench' (the publisher of the fan-out scenario).
// SESSIONS=1 turns session recovery on (the session recovery scenario), with a random secret and a 60 s ttl;
// REDIS_URL makes it a node of a cluster (the 3-node fan-out of bench/cluster); the other scenarios run with
// default options. TLS_CERT and TLS_KEY (paths to PEM files) make it serve wss:// (the TLS runs of the load
// generator).
import './gc.mjs';
import { randomBytes } from 'node:crypto';
import { Helios } from '@aionbuilders/helios';

const options = {};
if (process.env.SESSIONS === '1') options.sessionRecovery = { secret: randomBytes(32).toString('hex'), ttl: 60_000 };
if (process.env.REDIS_URL) options.cluster = { redis: process.env.REDIS_URL, channelPrefix: 'bench' };
const helios = new Helios(options);

helios.method('echo', (context) => ({ echo: context.payload, at: 'helios' }));

helios.room('bench', { type: 'public' });
helios.on('bench:publish', (data) => {
  helios.broadcast('bench', data);
});

const tls = process.env.TLS_CERT ? { cert: process.env.TLS_CERT, key: process.env.TLS_KEY } : undefined;
const { port } = helios.serve({ port: Number(process.env.PORT ?? 0), hostname: process.env.HOST ?? '127.0.0.1', tls });
console.log(`listening ${port}`);

const shutdown = async () => {
  await helios.stop();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
