// One Socket.IO 4 node of the 3-node fan-out benchmark, with the official Redis adapter: what a Socket.IO user
// runs to scale out. `bench/servers/socketio-node.mjs`'s fan-out part (WebSocket transport only, no
// compression), the adapter added. REDIS_URL (required), PORT (default 0), HOST (default 127.0.0.1); prints
// `listening <port>`. Run with `node bench/cluster/socketio-node.mjs` after `npm install` in bench/cluster.
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';

const pubClient = createClient({ url: process.env.REDIS_URL });
const subClient = pubClient.duplicate();
await Promise.all([pubClient.connect(), subClient.connect()]);

const httpServer = createServer();
const io = new Server(httpServer, {
  transports: ['websocket'],
  perMessageDeflate: false,
  serveClient: false,
  adapter: createAdapter(pubClient, subClient),
});

io.on('connection', (socket) => {
  socket.on('subscribe', (topic, ack) => {
    const ok = topic === 'bench';
    if (ok) socket.join(topic);
    if (typeof ack === 'function') ack(ok ? { success: true, topic } : { success: false, topic, error: 'undeclared topic' });
  });
  socket.on('bench:publish', (data) => {
    io.to('bench').emit('bench', data);
  });
});

httpServer.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  console.log(`listening ${httpServer.address().port}`);
});

const shutdown = () => {
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
