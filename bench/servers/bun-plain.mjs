// A plain Bun.serve WebSocket server doing the benchmark's work in JavaScript: what a Bun user would write
// instead of Helios. Same wire messages as Helios (the subset the benchmark uses):
//   request  → JSON.parse, look the method up, call its handler, JSON.stringify the response;
//   request 'helios.subscribe' {topic:'bench'} → ws.subscribe('bench') and a success response;
//   event 'bench:publish' → server.publish('bench', event) to every subscriber.
// PORT (default 0) and HOST (default 127.0.0.1); prints `listening <port>`. Run with `bun bench/servers/bun-plain.mjs`.
// TLS_CERT and TLS_KEY (paths to PEM files) make it serve wss://.
import './gc.mjs';

const methods = new Map([['echo', (payload) => ({ echo: payload, at: 'bun' })]]);
const rooms = new Set(['bench']);

const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: process.env.HOST ?? '127.0.0.1',
  tls: process.env.TLS_CERT ? { cert: Bun.file(process.env.TLS_CERT), key: Bun.file(process.env.TLS_KEY) } : undefined,
  fetch(req, server) {
    if (server.upgrade(req)) return;
    return new Response('websocket only', { status: 426 });
  },
  websocket: {
    message(ws, raw) {
      let msg;
      try {
        msg = JSON.parse(raw);
      } catch {
        ws.send(JSON.stringify({ type: 'error', error: { code: 'INVALID_JSON', message: 'not JSON' } }));
        return;
      }
      if (msg.type === 'request') {
        if (msg.method === 'helios.subscribe') {
          const topic = msg.payload?.topic;
          const ok = rooms.has(topic);
          if (ok) ws.subscribe(topic);
          const data = ok ? { success: true, topic } : { success: false, topic, error: 'undeclared topic' };
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
        server.publish('bench', JSON.stringify({ type: 'event', topic: 'bench', data: msg.data ?? null }));
      }
    },
  },
});
console.log(`listening ${server.port}`);

const shutdown = () => {
  server.stop(true);
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
