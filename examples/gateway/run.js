// Starts the gateway and its two services (users, orders) as three processes, then a client that calls
// both services through the gateway and prints what comes back; stops everything at the end.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Starling } from '@aionbuilders/helios/client';

const env = { ...process.env, PORT: '0', SERVICE_KEY: randomBytes(16).toString('hex') };
const children = [];

/** Starts `script` with `args` and echoes its output; `waitFor(regex)` resolves with the first matching line's match. */
function start(script, args) {
  const child = spawn(process.execPath, [fileURLToPath(new URL(script, import.meta.url)), ...args], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  children.push({ child, exited });
  let output = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    output += chunk;
  });
  const waitFor = (regex) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const match = regex.exec(output);
        if (!match) return;
        child.stdout.off('data', check);
        resolve(match);
      };
      child.stdout.on('data', check);
      exited.then((code) => reject(new Error(`${script} ${args.join(' ')} exited with ${code}`)));
      check();
    });
  return { child, exited, waitFor };
}

const gateway = start('./gateway.js', []);
const [, port] = await gateway.waitFor(/listening on port (\d+)/);
env.GATEWAY_URL = `ws://127.0.0.1:${port}`;
start('./service.js', ['users']);
start('./service.js', ['orders']);
// Ready once the gateway has registered both (the service side sees its socket open slightly earlier).
await Promise.all([gateway.waitFor(/service users connected/), gateway.waitFor(/service orders connected/)]);

const client = new Starling({ url: env.GATEWAY_URL });
await client.connect();
const show = (call, response) =>
  console.log(`[client] ${call} → ${response.status} ${JSON.stringify(response.isError() ? response.error.message : response.data)}`);

show('gateway.users.get 1', await client.request('gateway.users.get', { id: 1 }));
show('gateway.users.get 9', await client.request('gateway.users.get', { id: 9 }));
show('gateway.orders.create', await client.request('gateway.orders.create', { userId: '1', item: 'telescope' }));
show('gateway.orders.list', await client.request('gateway.orders.list', { userId: '1' }));
show('gateway.billing.charge', await client.request('gateway.billing.charge', { amount: 10 }));

await client.close();
for (const { child, exited } of children.reverse()) {
  child.kill('SIGTERM');
  await exited;
}
console.log('[gateway example] done');
