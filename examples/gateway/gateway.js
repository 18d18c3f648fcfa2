// The gateway: clients call `gateway.<service>.<method>`; the gateway forwards each call to the service's
// own connection and hands its Response back unchanged (the seed's "Microservices Gateway").
// Services connect like any client, with `?service=<name>&key=<SERVICE_KEY>`; the upgrade hook checks the
// key and stamps `serviceType` into connection.data. PORT defaults to 3000 (0 picks a free one).
import { timingSafeEqual } from 'node:crypto';
import { Helios } from '@aionbuilders/helios';

const SERVICE_KEY = process.env.SERVICE_KEY ?? 'dev-service-key';

function sameKey(given) {
  const a = Buffer.from(String(given ?? ''));
  const b = Buffer.from(SERVICE_KEY);
  return a.length === b.length && timingSafeEqual(a, b);
}

const helios = new Helios({
  upgrade: ({ query }) => {
    if (query.service === undefined) return true; // an ordinary client
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(query.service) || !sameKey(query.key)) {
      return { status: 403, reason: 'Unknown service' };
    }
    return { data: { serviceType: query.service } };
  },
});

// Service connections
const services = new Map();

helios.events.on('connection', ({ connection }) => {
  const serviceType = connection.data.get('serviceType');
  if (serviceType) {
    services.set(serviceType, connection);
    console.log(`[gateway] service ${serviceType} connected`);
  }
});

helios.events.on('disconnection', ({ connection }) => {
  const serviceType = connection.data.get('serviceType');
  if (serviceType && services.get(serviceType) === connection) {
    services.delete(serviceType);
    console.log(`[gateway] service ${serviceType} disconnected`);
  }
});

// Route to services
helios.method('gateway.**', async (context) => {
  const [, serviceName] = context.method.split('.');
  const service = services.get(serviceName);

  if (!service) {
    return context.createErrorResponse('Service unavailable', 503);
  }

  return await service.request(context.method, context.payload);
});

const { port } = helios.serve({ port: Number(process.env.PORT ?? 3000), hostname: '127.0.0.1' });
console.log(`[gateway] listening on port ${port}`);

const shutdown = async () => {
  await helios.stop();
  console.log('[gateway] stopped');
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
