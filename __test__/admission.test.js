// Admission: the upgrade hook, allowed origins, the connection limit, plain HTTP requests, the health
// endpoint, and stats(). Refusals are real HTTP answers read off real sockets.

import { test, expect, describe } from 'bun:test';
import net from 'node:net';
import { Helios } from '../index.js';
import { useCleanup, startServer, connect, nextEvent, tcpSocket, waitFor } from './helpers.js';

useCleanup();

/** Sends `request` as raw HTTP and resolves with the whole answer once the server closes. */
function rawHttp(port, request) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

describe('upgrade hook', () => {
  test('receives url, headers, remoteAddress and query, and its data is in place for the connection event', async () => {
    let seen;
    const { helios, port } = startServer({
      upgrade: async (request) => {
        seen = request;
        return { data: { userId: request.query.user, role: 'admin' } };
      },
    });
    const opened = nextEvent(helios.events, 'connection');
    let atConnection;
    helios.events.on('connection', ({ connection }) => (atConnection = connection.data.get('userId')));
    await tcpSocket(port, '/chat?user=42', ['X-Token: abc']);
    const { connection } = await opened;
    expect(atConnection).toBe('42');
    expect(connection.data.get('role')).toBe('admin');
    expect(seen.url).toBe('/chat?user=42');
    expect(seen.query).toEqual({ user: '42' });
    expect(seen.headers['x-token']).toBe('abc');
    expect(seen.remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  test('a refusal answers the HTTP status and reason; the server keeps serving others', async () => {
    const { helios, port, url } = startServer({
      upgrade: ({ query }) => (query.token === 'good' ? true : { status: 401, reason: 'Bad token' }),
    });
    helios.method('ping', () => 'pong');
    const refused = await rawHttp(
      port,
      'GET /?token=bad HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    expect(refused).toStartWith('HTTP/1.1 401 Unauthorized');
    expect(refused).toEndWith('\r\n\r\nBad token');
    const client = await connect(`${url}/?token=good`);
    expect((await client.request('ping')).data).toBe('pong');
  });

  test('false refuses with 403, and a hook that throws refuses with 500 and logs', async () => {
    const { port: refusing } = startServer({ upgrade: () => false });
    await expect(tcpSocket(refusing, '/')).rejects.toThrow(/HTTP\/1.1 403/);
    const errors = [];
    const original = console.error;
    console.error = (...args) => errors.push(args.join(' '));
    try {
      const { port: throwing } = startServer({
        upgrade: () => {
          throw new Error('hook broke');
        },
      });
      await expect(tcpSocket(throwing, '/')).rejects.toThrow(/HTTP\/1.1 500/);
    } finally {
      console.error = original;
    }
    expect(errors.join('\n')).toContain('hook broke');
  });
});

describe('allowed origins', () => {
  test('a listed origin connects, another is refused with 403 before the upgrade', async () => {
    const { port, helios } = startServer({ allowedOrigins: ['https://app.example'] });
    await tcpSocket(port, '/', ['Origin: https://app.example']);
    await expect(tcpSocket(port, '/', ['Origin: https://evil.example'])).rejects.toThrow(/HTTP\/1.1 403/);
    await expect(tcpSocket(port, '/')).rejects.toThrow(/HTTP\/1.1 403/);
    await waitFor(() => helios.connections.size === 1, { message: 'one connection' });
  });
});

describe('connection limit', () => {
  test('beyond maxConnections upgrades get 503; a freed place is taken again', async () => {
    const { helios, port } = startServer({ maxConnections: 2 });
    const first = await tcpSocket(port, '/1');
    await tcpSocket(port, '/2');
    await expect(tcpSocket(port, '/3')).rejects.toThrow(/HTTP\/1.1 503/);
    const closed = nextEvent(helios.events, 'disconnection');
    first.destroy();
    await closed;
    await tcpSocket(port, '/4');
  });
});

describe('plain HTTP', () => {
  test('a plain request gets a short 426 answer', async () => {
    const { port } = startServer();
    const answer = await rawHttp(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(answer).toStartWith('HTTP/1.1 426 Upgrade Required');
    expect(answer.toLowerCase()).toContain('upgrade: websocket');
  });

  test('healthPath answers 200 with the stats as JSON', async () => {
    const { port, url } = startServer({ healthPath: '/health' });
    await connect(url);
    const answer = await rawHttp(port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(answer).toStartWith('HTTP/1.1 200 OK');
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
    expect(body.connections).toBe(1);
    expect(body).toHaveProperty('messagesIn');
  });

  test('a complete request head is allowed 16 KiB, blank line included, and no byte more: 431', async () => {
    const { port } = startServer();
    // What tcpSocket writes around the padding header (its key is 24 characters of base64).
    const head = (pad) =>
      `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${'k'.repeat(24)}\r\nSec-WebSocket-Version: 13\r\nX-Pad: ${'a'.repeat(pad)}\r\n\r\n`;
    const fits = 16 * 1024 - head(0).length;
    await tcpSocket(port, '/', [`X-Pad: ${'a'.repeat(fits)}`]);
    await expect(tcpSocket(port, '/', [`X-Pad: ${'a'.repeat(fits + 1)}`])).rejects.toThrow(/HTTP\/1.1 431/);
  });

  test('a request head that never ends is not read forever', async () => {
    const { port } = startServer();
    const answer = await rawHttp(port, 'GET / HTTP/1.1\r\n' + 'X-Filler: aaaaaaaaaaaaaaaa\r\n'.repeat(1000));
    expect(answer).toStartWith('HTTP/1.1 431');
  });
});

describe('stats', () => {
  test('counts connections, rooms, messages and bytes, and closes by code', async () => {
    const { helios, url } = startServer((server) => {
      server.method('echo', (context) => context.payload);
      server.room('lobby', { type: 'public' });
    });
    const client = await connect(url);
    await client.request('echo', 'hello');
    await client.subscribe('lobby');
    const stats = helios.stats();
    expect(stats.connections).toBe(1);
    expect(stats.rooms).toBe(1);
    expect(stats.messagesIn).toBe(2);
    expect(stats.messagesOut).toBe(2);
    expect(stats.bytesIn).toBeGreaterThan(40);
    expect(stats.bytesOut).toBeGreaterThan(40);
    expect(stats.dropped).toBe(0);
    const closed = nextEvent(helios.events, 'disconnection');
    await client.close(4000, 'bye');
    await closed;
    expect(helios.stats().closed).toEqual({ 4000: 1 });
    expect(helios.stats().connections).toBe(0);
  });
});

describe('admission options', () => {
  test('are checked at construction', () => {
    expect(() => new Helios({ allowedOrigins: 'https://a.example' })).toThrow(/allowedOrigins/);
    expect(() => new Helios({ allowedOrigins: [''] })).toThrow(/allowedOrigins/);
    expect(() => new Helios({ maxConnections: 0 })).toThrow(/maxConnections/);
    expect(() => new Helios({ healthPath: 'health' })).toThrow(/healthPath/);
    expect(() => new Helios({ upgrade: 'yes' })).toThrow(/upgrade/);
  });
});
