// Compiles the client README's examples against client/index.d.ts.
import { Starling, ConnectionClosedError } from '@aionbuilders/helios/client';

const starling = new Starling({
  url: 'ws://localhost:3000',
  sessionRecovery: { enabled: true, autoRecover: true, autoRefresh: true },
});
await starling.connect();
const response = await starling.request<{ id: number }>('user.get', { userId: 123 }, { timeout: 10000, throwOnError: true });
if (response.isSuccess()) console.log(response.data?.id);
starling.on('chat:**', (data, context) => console.log(context.topic, data));
await starling.emit('chat:message', { text: 'Hello world!' });
await starling.subscribe('user:123', { token: 'auth-token' });
starling.method('client.info', () => ({ version: '1.0.0' }));
starling.events.on('session:recovered', ({ session }) => console.log(session.sessionId));
try {
  await starling.request('method', {});
} catch (error) {
  if (error instanceof ConnectionClosedError) console.log('closed');
}
const state: 'CLOSED' | 'CONNECTING' | 'OPEN' | 'CLOSING' = starling.state;
console.log(state);

// @ts-expect-error url is required
new Starling({});
// @ts-expect-error request options are checked
await starling.request('x', {}, { timout: 5 });
