// A server on the `ws` package (Node) doing the benchmark's work in JavaScript: what a Node user would write
// instead of Helios. Same wire messages as Helios (the subset the benchmark uses):
//   request  → JSON.parse, look the method up, call its handler, JSON.stringify the response;
//   request 'helios.subscribe' {topic:'bench'} → the socket joins a Set for the room, success response;
//   event 'bench:publish' → the event is encoded once and sent to every socket in the room.
// PORT (default 0) and HOST (default 127.0.0.1); prints `listening <port>`. Run with `node bench/servers/ws-node.mjs`.
import './gc.mjs';
import { WebSocketServer } from 'ws';

const methods = new Map([['echo', (payload) => ({ echo: payload, at: 'ws' })]]);
const rooms = new Map([['bench', new Set()]]);

const wss = new WebSocketServer({
  port: Number(process.env.PORT ?? 0),
  host: process.env.HOST ?? '127.0.0.1',
  perMessageDeflate: false,
});

wss.on('connection', (ws) => {
  const joined = new Set();
  ws.on('message', (raw, isBinary) => {
    let msg;
    try {
      msg = JSON.parse(isBinary ? raw : raw.toString());
    } catch {
      ws.send(JSON.stringify({ type: 'error', error: { code: 'INVALID_JSON', message: 'not JSON' } }));
      return;
    }
    if (msg.type === 'request') {
      if (msg.method === 'helios.subscribe') {
        const topic = msg.payload?.topic;
        const room = rooms.get(topic);
        if (room) {
          room.add(ws);
          joined.add(room);
        }
        const data = room ? { success: true, topic } : { success: false, topic, error: 'undeclared topic' };
        ws.send(JSON.stringify({ type: 'response', id: msg.id, status: 200, data }));
        return;
      }
      const handler = methods.get(msg.method);
      if (!handler) {
        const error = { code: 'METHOD_NOT_FOUND', message: `Method '${msg.method}' not found` };
        ws.send(JSON.stringify({ type: 'response', id: msg.id, status: 404, error }));
        return;
      }
      let reply;
      try {
        reply = { type: 'response', id: msg.id, status: 200, data: handler(msg.payload ?? null) ?? null };
      } catch (e) {
        reply = { type: 'response', id: msg.id, status: 500, error: { code: 'HANDLER_ERROR', message: String(e?.message ?? e) } };
      }
      ws.send(JSON.stringify(reply));
    } else if (msg.type === 'event' && msg.topic === 'bench:publish') {
      // Encoded once; every member gets the same bytes as a text frame.
      const frame = Buffer.from(JSON.stringify({ type: 'event', topic: 'bench', data: msg.data ?? null }));
      for (const member of rooms.get('bench')) {
        if (member.readyState === 1) member.send(frame, { binary: false });
      }
    }
  });
  ws.on('close', () => {
    for (const room of joined) room.delete(ws);
  });
});

wss.on('listening', () => console.log(`listening ${wss.address().port}`));

const shutdown = () => {
  for (const client of wss.clients) client.terminate();
  wss.close(() => process.exit(0));
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
