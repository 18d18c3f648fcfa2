// The chat example: a Helios server with a few public rooms, and a small static HTTP server for the page
// (index.html, app.js) and the bundled Starling client, which the browser loads as an ES module.
// Run it with `npm run example:chat`, then open the printed address in two browser windows.
// PORT (default 8080) is the page's port, WS_PORT (default 3000) the WebSocket port; 0 picks a free one.
import http from 'node:http';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Helios } from '@aionbuilders/helios';

const ROOMS = ['general', 'random', 'help'];
const MAX_TEXT = 500;

const helios = new Helios({ maxPayload: 16 * 1024 });
for (const room of ROOMS) helios.room(`chat:${room}`, { type: 'public' });

// A name first: rooms show who speaks.
helios.method('chat.setName', ({ payload, connection }) => {
  const name = typeof payload?.name === 'string' ? payload.name.trim() : '';
  if (name.length === 0 || name.length > 32) throw new Error('a name has 1 to 32 characters');
  connection.data.set('name', name);
  return { name };
});

helios.method('chat.send', (context) => {
  const { payload, connection } = context;
  const { room, text } = payload ?? {};
  const name = connection.data.get('name');
  if (!name) return context.createErrorResponse('choose a name first', 400);
  if (!connection.subscriptions.includes(`chat:${room}`)) return context.createErrorResponse(`join ${room} first`, 403);
  if (typeof text !== 'string' || text.trim().length === 0 || text.length > MAX_TEXT) {
    return context.createErrorResponse(`a message has 1 to ${MAX_TEXT} characters`, 400);
  }
  return helios.broadcast(`chat:${room}`, { room, name, text: text.trim(), at: Date.now() });
});

// Everyone in a room hears who comes and goes.
helios.events.on('room:subscribed', ({ connection, topic }) => {
  helios.broadcast(topic, { room: topic.slice(5), system: `${connection.data.get('name') ?? 'someone'} joined`, at: Date.now() });
});
helios.events.on('room:unsubscribed', ({ connection, topic }) => {
  helios.broadcast(topic, { room: topic.slice(5), system: `${connection.data.get('name') ?? 'someone'} left`, at: Date.now() });
});

const { port: wsPort } = helios.serve({ port: Number(process.env.WS_PORT ?? 3000), hostname: '127.0.0.1' });

// The page and the client library. Nothing else is served: no path reaches the file system.
const here = (file) => fileURLToPath(new URL(file, import.meta.url));
const files = {
  '/': { path: here('./public/index.html'), type: 'text/html; charset=utf-8' },
  '/app.js': { path: here('./public/app.js'), type: 'text/javascript; charset=utf-8' },
  '/starling.js': { path: fileURLToPath(import.meta.resolve('@aionbuilders/helios/client')), type: 'text/javascript; charset=utf-8' },
};
const web = http.createServer(async (request, response) => {
  const { pathname } = new URL(request.url, 'http://localhost');
  if (pathname === '/config.json') {
    // The page connects to the same host it was loaded from, on the WebSocket port.
    response.writeHead(200, { 'content-type': 'application/json' });
    return response.end(JSON.stringify({ wsPort, rooms: ROOMS }));
  }
  const file = files[pathname];
  if (!file || request.method !== 'GET') {
    response.writeHead(404, { 'content-type': 'text/plain' });
    return response.end('not found');
  }
  response.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-store' });
  response.end(await fs.readFile(file.path));
});
web.listen(Number(process.env.PORT ?? 8080), '127.0.0.1', () => {
  console.log(`[chat] open http://127.0.0.1:${web.address().port}/ (WebSocket on port ${wsPort})`);
});

const shutdown = async () => {
  web.close();
  web.closeAllConnections();
  await helios.stop();
  console.log('[chat] stopped');
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
