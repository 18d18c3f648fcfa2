// Run by scripts/install-test.mjs inside a fresh install: a server + client round trip through the package
// names, as an ES module. Prints one JSON line: what came back and where every module was resolved from.
import { createRequire } from 'node:module';
import { Helios } from '@aionbuilders/helios';
import { Starling } from '@aionbuilders/helios/client';

const require = createRequire(import.meta.url);
setTimeout(() => {
  console.error('smoke: no answer within 20 s');
  process.exit(2);
}, 20_000).unref();

const WebSocket = globalThis.WebSocket ?? (await import('ws')).WebSocket; // Node 20 has no global WebSocket

const helios = new Helios();
helios.method('math.add', ({ payload }) => payload.a + payload.b);
helios.room('news', { type: 'public' });
const { port } = helios.serve({ port: 0, hostname: '127.0.0.1' });

const client = new Starling({ url: `ws://127.0.0.1:${port}`, WebSocket });
await client.connect();
const sum = await client.request('math.add', { a: 2, b: 40 });
await client.subscribe('news');
const news = new Promise((resolve) => client.on('news', resolve));
helios.broadcast('news', { headline: 'installed' });

const main = require.resolve('@aionbuilders/helios');
const loaded = process.report?.getReport?.().sharedObjects?.find((file) => file.endsWith('.node'));
console.log(JSON.stringify({
  sum: sum.data,
  news: await news,
  resolved: {
    main,
    client: require.resolve('@aionbuilders/helios/client'),
    binary: loaded ?? createRequire(main).resolve('@aionbuilders/helios-linux-x64-gnu'),
  },
}));
await client.close();
await helios.stop();
