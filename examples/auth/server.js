// The auth example: a token checked before the WebSocket exists (the `upgrade` hook), and protected rooms
// whose validators decide from the pattern's captures and what the upgrade put in connection.data.
// AUTH_SECRET signs tokens (32+ random bytes in production; never in the code). PORT defaults to 3000.
import { Helios } from '@aionbuilders/helios';
import { verifyToken } from './tokens.js';

const secret = process.env.AUTH_SECRET;
if (!secret || Buffer.byteLength(secret) < 32) {
  console.error('[auth] set AUTH_SECRET to at least 32 random bytes (run.js makes one)');
  process.exit(1);
}

// Stand-ins for a database.
const users = new Map([
  ['alice', { name: 'Alice', role: 'admin' }],
  ['bob', { name: 'Bob', role: 'member' }],
  ['carol', { name: 'Carol', role: 'member' }],
]);
const projects = new Map([
  ['apollo', { members: ['alice', 'bob'] }],
  ['zeus', { members: ['alice', 'carol'] }],
]);

const helios = new Helios({
  // No valid token, no socket: the refusal is an HTTP answer and no connection ever exists.
  upgrade: ({ query }) => {
    const userId = verifyToken(secret, query.token);
    const user = userId && users.get(userId);
    if (!user) return { status: 401, reason: 'Unauthorized' };
    return { data: { userId, role: user.role } };
  },
});

// Private inbox: 'user:bob' → captures ['bob']; only bob himself.
helios.room('user:*', {
  validator: (connection, [userId]) => connection.data.get('userId') === userId,
});

// Project rooms: members of the project only.
helios.room('project:*', {
  validator: (connection, [projectId]) => projects.get(projectId)?.members.includes(connection.data.get('userId')) === true,
});

// Audit rooms of any project, any depth ('audit:apollo:deploys'): admins only.
helios.room('audit:**', {
  validator: (connection, captures) => connection.data.get('role') === 'admin' && projects.has(captures[0]?.split(':')[0]),
});

helios.method('me', ({ connection }) => ({ userId: connection.data.get('userId'), role: connection.data.get('role') }));

helios.method('project.post', (context) => {
  const { projectId, text } = context.payload ?? {};
  const topic = `project:${projectId}`;
  if (!context.connection.subscriptions.includes(topic)) return context.createErrorResponse(`join ${topic} first`, 403);
  const from = context.connection.data.get('userId');
  helios.broadcast(`audit:${projectId}:posts`, { projectId, from, length: String(text).length });
  return helios.broadcast(topic, { projectId, from, text: String(text) }, { exclude: context.connection });
});

helios.method('user.notify', (context) => {
  const { userId, text } = context.payload ?? {};
  if (!users.has(userId)) return context.createErrorResponse(`no user ${userId}`, 404);
  return helios.broadcast(`user:${userId}`, { from: context.connection.data.get('userId'), text: String(text) });
});

helios.events.on('connection', ({ connection }) => console.log(`[auth] ${connection.data.get('userId')} connected`));

const { port } = helios.serve({ port: Number(process.env.PORT ?? 3000), hostname: '127.0.0.1' });
console.log(`[auth] listening on port ${port}`);

const shutdown = async () => {
  await helios.stop();
  console.log('[auth] stopped');
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
