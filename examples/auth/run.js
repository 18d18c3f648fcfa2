// Starts the auth server with a fresh secret, then shows what tokens open: a socket without a valid token
// is refused at the upgrade; users join only the protected rooms their validators allow.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Starling } from '@aionbuilders/helios/client';
import { issueToken } from './tokens.js';

const secret = randomBytes(32).toString('hex');
const server = spawn(process.execPath, [fileURLToPath(new URL('./server.js', import.meta.url))], {
  env: { ...process.env, PORT: '0', AUTH_SECRET: secret },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const port = await new Promise((resolve, reject) => {
  server.once('exit', (code) => reject(new Error(`auth server exited with ${code}`)));
  server.stdout.setEncoding('utf8');
  server.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    const match = /listening on port (\d+)/.exec(chunk);
    if (match) resolve(Number(match[1]));
  });
});
const url = (token) => `ws://127.0.0.1:${port}/?token=${encodeURIComponent(token)}`;

for (const [what, token] of [
  ['no token', ''],
  ['a forged token', issueToken('not-the-secret-not-the-secret-not-the-secret', 'alice')],
  ['an expired token', issueToken(secret, 'alice', -1000)],
]) {
  const intruder = new Starling({ url: url(token) });
  const outcome = await intruder.connect().then(() => 'connected (!)', (error) => `refused (${error.message.replace(/^.*failed: /, '')})`);
  console.log(`[client] ${what}: ${outcome}`);
}

const alice = new Starling({ url: url(issueToken(secret, 'alice')) });
const bob = new Starling({ url: url(issueToken(secret, 'bob')) });
await Promise.all([alice.connect(), bob.connect()]);
console.log('[alice] me →', JSON.stringify((await alice.request('me')).data));

const join = async (who, client, topic) => {
  const result = await client.subscribe(topic);
  console.log(`[${who}] subscribe ${topic} → ${result.success ? 'joined' : result.error}`);
};
await join('bob', bob, 'user:bob');
await join('bob', bob, 'user:alice');
await join('bob', bob, 'project:apollo');
await join('bob', bob, 'project:zeus');
await join('bob', bob, 'audit:apollo:posts');
await join('alice', alice, 'project:apollo');
await join('alice', alice, 'audit:apollo:posts');

const inbox = new Promise((resolve) => bob.on('user:bob', resolve));
const post = new Promise((resolve) => bob.on('project:apollo', resolve));
const audit = new Promise((resolve) => alice.on('audit:apollo:posts', resolve));
await alice.request('user.notify', { userId: 'bob', text: 'review please' });
await alice.request('project.post', { projectId: 'apollo', text: 'launch at noon' });
console.log('[bob] user:bob →', JSON.stringify(await inbox));
console.log('[bob] project:apollo →', JSON.stringify(await post));
console.log('[alice] audit:apollo:posts →', JSON.stringify(await audit));

await Promise.all([alice.close(), bob.close()]);
server.removeAllListeners('exit'); // the early-exit check above
const exited = new Promise((resolve) => server.once('exit', resolve));
server.kill('SIGTERM');
await exited;
console.log('[auth example] done');
