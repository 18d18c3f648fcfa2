// One Helios node of the 3-node fan-out benchmark: `bench/servers/helios.mjs`'s fan-out part, plus the
// cluster option. REDIS_URL (required), PORT (default 0) and HOST (default 127.0.0.1); prints `listening <port>`.
//   room 'bench': public, joined with the built-in 'helios.subscribe';
//   event 'bench:publish': broadcasts its data to 'bench' on every node.
import { Helios } from '../../index.js';

const helios = new Helios({ cluster: { redis: process.env.REDIS_URL, channelPrefix: 'bench' } });
helios.room('bench', { type: 'public' });
helios.on('bench:publish', (data) => {
  helios.broadcast('bench', data);
});

const { port } = helios.serve({ port: Number(process.env.PORT ?? 0), hostname: process.env.HOST ?? '127.0.0.1' });
console.log(`listening ${port}`);

const shutdown = async () => {
  await helios.stop();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
