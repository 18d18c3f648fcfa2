// Starts the demo server in its own process, then a client that makes calls and prints the results.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Starling } from '@aionbuilders/helios/client';

const server = spawn(process.execPath, [fileURLToPath(new URL('./server.js', import.meta.url))], {
  env: { ...process.env, PORT: '0' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const port = await new Promise((resolve, reject) => {
  server.once('exit', (code) => reject(new Error(`demo server exited with ${code}`)));
  server.stdout.setEncoding('utf8');
  server.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    const match = /listening on port (\d+)/.exec(chunk);
    if (match) resolve(Number(match[1]));
  });
});

const client = new Starling({ url: `ws://127.0.0.1:${port}` });
await client.connect();
console.log('[client] connected');

const user = await client.request('user.get', { userId: 1 });
console.log('[client] user.get 1 →', user.status, JSON.stringify(user.data));

const missing = await client.request('user.get', { userId: 9 });
console.log('[client] user.get 9 →', missing.status, JSON.stringify(missing.error));

const sum = await client.request('math.add', { a: 2, b: 40 });
console.log('[client] math.add →', sum.data);

const unknown = await client.request('no.such.method');
console.log('[client] no.such.method →', unknown.status, unknown.error.code);

client.method('client.whoami', () => 'demo-client');
const echoed = new Promise((resolve) => client.on('chat:echo', resolve));
await client.emit('chat:general', { text: 'hello, Helios' });
console.log('[client] chat:echo →', JSON.stringify(await echoed));

await client.close();
server.kill('SIGTERM');
await new Promise((resolve) => server.once('exit', resolve));
console.log('[demo] done');
