// A service behind the gateway: a Starling client that answers the gateway's requests for its methods.
// `bun examples/gateway/service.js users` or `... orders`; GATEWAY_URL and SERVICE_KEY come from the
// environment (run.js sets them).
import { Starling } from '@aionbuilders/helios/client';

const services = {
  users: (starling) => {
    const users = new Map([['1', { id: '1', name: 'Alice' }], ['2', { id: '2', name: 'Bob' }]]);
    starling.method('gateway.users.get', ({ id }) => {
      const user = users.get(String(id));
      if (!user) throw new Error(`no user ${id}`);
      return user;
    });
    starling.method('gateway.users.list', () => [...users.values()]);
  },
  orders: (starling) => {
    const orders = [];
    starling.method('gateway.orders.create', ({ userId, item }) => {
      if (typeof item !== 'string' || item.length === 0) throw new Error('an order needs an item');
      const order = { id: orders.length + 1, userId, item, by: `orders service, pid ${process.pid}` };
      orders.push(order);
      return order;
    });
    starling.method('gateway.orders.list', ({ userId }) => orders.filter((order) => order.userId === userId));
  },
};

const name = process.argv[2];
if (!services[name]) {
  console.error(`usage: service.js ${Object.keys(services).join('|')}`);
  process.exit(2);
}

const WebSocket = globalThis.WebSocket ?? (await import('ws')).WebSocket; // Node 20 has no global one
const url = new URL(process.env.GATEWAY_URL ?? 'ws://127.0.0.1:3000');
url.searchParams.set('service', name);
url.searchParams.set('key', process.env.SERVICE_KEY ?? 'dev-service-key');

const starling = new Starling({ url: url.href, WebSocket });
services[name](starling);
await starling.connect();
console.log(`[${name}] connected to the gateway`);

const shutdown = async () => {
  await starling.close();
  console.log(`[${name}] stopped`);
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
