// The demo server: methods with middleware and a namespace, client events, and a server-to-client request.
// Run it alone with `bun examples/demo/server.js` (PORT=3000 by default).
import { Helios } from '@aionbuilders/helios';

const helios = new Helios();
const users = new Map([[1, { id: 1, name: 'Alice' }], [2, { id: 2, name: 'Bob' }]]);

helios.use('**', async (context, next) => {
  const start = performance.now();
  const result = await next();
  console.log(`[server] ${context.method} took ${(performance.now() - start).toFixed(2)} ms`);
  return result;
});

helios.method('user.get', (context) => {
  const user = users.get(context.payload.userId);
  return user ?? context.createErrorResponse(`No user ${context.payload.userId}`, 404);
});

const math = helios.namespace('math');
math.register('add', ({ payload }) => payload.a + payload.b);

helios.on('chat:*', async (data, context) => {
  console.log(`[server] ${context.topic} from ${context.clientId.slice(0, 8)}: ${data.text}`);
  // Ask the client something back, then echo its answer as an event.
  const answer = await context.connection.request('client.whoami', {});
  context.connection.emit('chat:echo', { text: data.text, to: answer.data });
});

helios.events.on('connection', ({ connection }) => console.log(`[server] connected ${connection.id.slice(0, 8)}`));
helios.events.on('disconnection', ({ connection, code }) => console.log(`[server] disconnected ${connection.id.slice(0, 8)} (${code})`));

const { port } = helios.serve({ port: Number(process.env.PORT ?? 3000), hostname: '127.0.0.1' });
console.log(`[server] listening on port ${port}`);

const shutdown = async () => {
  await helios.stop();
  console.log('[server] stopped');
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
