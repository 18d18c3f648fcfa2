// The rooms examples of the original product README ("With Rooms", "Rooms",
// "Chat Room") run as written; "Events (Pub/Sub)" is in seed_examples.test.js. Same conventions: changes
// are marked `// seed:`, helper functions the README leaves undefined get small local implementations,
// and anything a test needs besides (setting user data, subscribing, reading results) is outside the
// example's code.

import { test, expect, describe } from 'bun:test';
import { Helios } from '@aionbuilders/helios';
import { useCleanup, track, connect, nextTopic, waitFor } from './helpers.js';

useCleanup();

/** Serves on 127.0.0.1 port 0 and returns the ws:// URL. */
function serveLocally(helios) {
  helios.serve({ port: 0, hostname: '127.0.0.1' });
  track(helios);
  return helios.address.url;
}

/** Outside the examples: a client says who it is in its URL (`/?user=42`). */
function userFromUrl(helios) {
  helios.events.on('connection', ({ connection }) => {
    const user = new URL(connection.url, 'ws://localhost').searchParams.get('user');
    if (user) {
      connection.data.set('userId', user);
      connection.data.set('user', { username: `user-${user}` });
    }
  });
}

describe('seed README rooms examples', () => {
  test('With Rooms (Broadcast)', async () => {
    const helios = new Helios();
    userFromUrl(helios);

    // Declare rooms with validators
    helios.room('lobby', { type: 'public' });

    helios.room('user:*', {
      validator: async (connection, captures) => {
        const [userId] = captures;
        return connection.data.get('userId') === userId;
      }
    });

    const url = serveLocally(helios);
    const alice = await connect(url, {}, '/?user=42');
    expect(await alice.subscribe('lobby')).toEqual({ success: true, topic: 'lobby' });
    expect(await alice.subscribe('user:42')).toEqual({ success: true, topic: 'user:42' });
    expect(await alice.subscribe('user:7')).toEqual({ success: false, topic: 'user:7', error: 'permission denied' });
    const announcement = nextTopic(alice, 'lobby');

    // Broadcast to room
    helios.broadcast('lobby', {
      type: 'announcement',
      message: 'Welcome!'
    });

    expect((await announcement)[0]).toEqual({ type: 'announcement', message: 'Welcome!' });
  });

  test('Rooms', async () => {
    const helios = new Helios();
    userFromUrl(helios);
    // seed: undefined in the README; user 42 may read document 1 only
    const checkDocumentAccess = async (userId, docId) => userId === '42' && docId === '1';

    // Public room
    helios.room('lobby', { type: 'public' });

    // Protected room with pattern
    helios.room('document:*', {
      validator: async (connection, captures, data) => {
        const [docId] = captures;
        return await checkDocumentAccess(
          connection.data.get('userId'),
          docId
        );
      }
    });

    // Clients subscribe via RPC
    // Built-in method: helios.subscribe

    const url = serveLocally(helios);
    const reader = await connect(url, {}, '/?user=42');
    const stranger = await connect(url, {}, '/?user=7');
    expect((await reader.subscribe('lobby')).success).toBe(true);
    expect((await stranger.subscribe('lobby')).success).toBe(true);
    expect((await reader.subscribe('document:1')).success).toBe(true);
    expect((await reader.subscribe('document:2')).error).toBe('permission denied');
    expect((await stranger.subscribe('document:1')).error).toBe('permission denied');
    expect(helios.rooms.getRoom('lobby').connections.length).toBe(2);
    expect(helios.rooms.getRoom('document:1').connections.length).toBe(1);
  });

  test('Chat Room', async () => {
    const helios = new Helios();
    userFromUrl(helios);
    // seed: undefined in the README; every user but 7 may enter every room
    const hasRoomAccess = async (userId, roomId) => userId !== '7';

    // Declare room
    helios.room('chat:*', {
      validator: async (connection, captures) => {
        const [roomId] = captures;
        // Check if user has access to room
        return await hasRoomAccess(
          connection.data.get('userId'),
          roomId
        );
      }
    });

    // Handle messages
    helios.on('chat:message', async (data, context) => {
      const user = context.connection.data.get('user');

      // Broadcast to room
      helios.broadcast(context.topic, {
        from: user.username,
        text: data.text,
        timestamp: Date.now()
      });
    });

    const url = serveLocally(helios);
    const alice = await connect(url, {}, '/?user=1');
    const bob = await connect(url, {}, '/?user=2');
    const banned = await connect(url, {}, '/?user=7');
    expect((await alice.subscribe('chat:message')).success).toBe(true);
    expect((await bob.subscribe('chat:message')).success).toBe(true);
    expect((await banned.subscribe('chat:message')).success).toBe(false);
    const bannedGot = [];
    banned.on('chat:message', (data) => bannedGot.push(data));
    const toBob = nextTopic(bob, 'chat:message');
    const toAlice = nextTopic(alice, 'chat:message');
    await alice.emit('chat:message', { text: 'hello' });
    const [message] = await toBob;
    expect(message).toMatchObject({ from: 'user-1', text: 'hello' });
    expect(typeof message.timestamp).toBe('number');
    expect((await toAlice)[0]).toEqual(message);
    await banned.request('helios.unsubscribe', { topic: 'chat:message' }); // a round trip after the broadcast
    expect(bannedGot).toEqual([]);
  });
});
