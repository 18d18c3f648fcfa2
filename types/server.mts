// Compiles the README's server examples against index.d.ts; every @ts-expect-error proves a misuse is caught.
import { Helios, Response, type Connection, type RequestContext } from '@aionbuilders/helios';

const helios = new Helios({
  requestTimeout: 5000,
  parseMode: 'strict',
  healthCheck: { interval: 30000 },
  sessionRecovery: { enabled: true, secret: 'x'.repeat(32), ttl: 300000 },
  rateLimit: { messagesPerSecond: 100 },
  upgrade: async ({ query }) => (query.token ? { data: { userId: query.token } } : { status: 401, reason: 'Unauthorized' }),
});

helios.method<{ userId: number }, { id: number; name: string }>('user.get', async (context) => ({
  id: context.payload.userId,
  name: 'Alice',
}));

helios.use('**', async (context: RequestContext, next) => {
  const start = Date.now();
  const result = await next();
  console.log(context.method, Date.now() - start);
  return result;
});

const api = helios.namespace('api');
api.use('**', async (context, next) => {
  if (!context.connection.data.get('token')) return context.createErrorResponse('Unauthorized', 401);
  return await next();
});
api.register('users.list', async () => ({ users: [] as string[] }));

helios.on<{ text: string }>('chat:message', async (data, context) => {
  helios.broadcast('chat:room', { from: context.clientId, message: data.text }, { exclude: context.connection });
});

helios.room('lobby', { type: 'public' });
helios.room('user:*', { validator: async (connection: Connection, captures: string[]) => connection.data.get('userId') === captures[0] });

helios.events.on('connection', async ({ connection }) => {
  const response: Response = await connection.request('client.info', {}, { timeout: 2000 });
  if (response.isSuccess()) connection.data.set('info', response.data);
  await connection.emit('welcome', { message: 'Hello!' });
});
helios.events.on('disconnection', ({ connection, code, reason, sessionEnded }) => {
  console.log(connection.id, code, reason, sessionEnded);
});
helios.events.on('session:recovered', ({ session }) => console.log(session.sessionId, session.gap));
helios.events.on('ping-timeout', ({ connection }) => console.log(connection.id));

const address = helios.serve({ port: 0, hostname: '127.0.0.1' });
const port: number = address.port;
const stats = helios.stats();
const dropped: number = stats.dropped;
void helios.stop({ grace: 1000 });
console.log(port, dropped);

const node = new Helios({
  cluster: { redis: 'redis://127.0.0.1:6379', channelPrefix: 'app', heartbeat: 500 },
  sessionRecovery: { secret: 'x'.repeat(32) },
});
const clusterStats = node.stats().cluster;
if (clusterStats) console.log(clusterStats.state === 'connected', clusterStats.nodes, clusterStats.dropped);
void node.to('some-id').emit('notice', { text: 'hi' }).then((delivered: boolean) => delivered);
void node.to('some-id').request<{ ok: boolean }>('client.ping', null, { timeout: 1000 }).then((r) => r.data?.ok);
void node.rooms.getRoom('lobby', { cluster: true }).then((room) => console.log(room.count, room.nodes, room.missing));
const localRoom = node.rooms.getRoom('lobby');
console.log(localRoom.connections.length);

// @ts-expect-error the cluster needs a Redis URL
new Helios({ cluster: { channelPrefix: 'x' } });
// @ts-expect-error parseMode has two values
new Helios({ parseMode: 'lenient' });
// @ts-expect-error options are checked by name
new Helios({ requestTimeOut: 5 });
// @ts-expect-error serve takes an object
helios.serve(3000);
// @ts-expect-error a handler receives a context, not a string
helios.method('x', (context: string) => context);
// @ts-expect-error the disconnection payload has no `error`
helios.events.on('disconnection', ({ error }) => error);
// @ts-expect-error a room validator returns a boolean
helios.room('doc:*', { validator: () => 'yes' });
// @ts-expect-error broadcast's exclude is a Connection
helios.broadcast('lobby', {}, { exclude: 'me' });
