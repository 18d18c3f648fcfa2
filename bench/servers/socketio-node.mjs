// Socket.IO 4 on Node doing the benchmark's work the Socket.IO way: what a Node user would pick instead of Helios.
// WebSocket transport only (no long-polling), no compression, so it does the same work as the other servers:
//   event 'echo' with an ack → the ack returns an object built from the payload (RPC);
//   event 'subscribe' with an ack → socket.join('bench') (fan-out subscribers);
//   event 'bench:publish' → io.to('bench').emit('bench', data) (the fan-out publisher).
// Socket.IO encodes a room broadcast once and writes the same frame to every member.
// SESSIONS=1 turns on connectionStateRecovery (the session recovery scenario): a client that drops comes back
// with its id, rooms and the broadcasts it missed, for up to 60 s.
// PORT (default 0) and HOST (default 127.0.0.1); prints `listening <port>`. Run with `node bench/servers/socketio-node.mjs`.
import './gc.mjs';
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const rooms = new Set(['bench']);
const httpServer = createServer();
const io = new Server(httpServer, {
  transports: ['websocket'],
  perMessageDeflate: false,
  serveClient: false,
  ...(process.env.SESSIONS === '1' ? { connectionStateRecovery: { maxDisconnectionDuration: 60_000 } } : {}),
});

io.on('connection', (socket) => {
  socket.on('echo', (payload, ack) => {
    if (typeof ack === 'function') ack({ echo: payload, at: 'socket.io' });
  });
  socket.on('subscribe', (topic, ack) => {
    const ok = rooms.has(topic);
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
