// TLS: serve({ tls }) speaks wss:// with a certificate made here by openssl; the client verifies it
// against that certificate as its CA. Also: frames sent together share TLS records, and a client that stops
// reading, over TLS and plain TCP.

import { test, expect, describe, afterAll } from 'bun:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { Helios } from '../index.js';
import { useCleanup, track, Starling, upgradeByHand, nextEvent, waitFor } from './helpers.js';

useCleanup();

/** A self-signed certificate for 127.0.0.1 and localhost, as files and as PEM text. */
function selfSigned() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'helios-tls-'));
  const certPath = path.join(dir, 'cert.pem');
  const keyPath = path.join(dir, 'key.pem');
  const made = Bun.spawnSync([
    'openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  if (made.exitCode !== 0) throw new Error(`openssl failed: ${made.stderr}`);
  return { dir, certPath, keyPath, cert: fs.readFileSync(certPath, 'utf8'), key: fs.readFileSync(keyPath, 'utf8') };
}

const identity = selfSigned();
afterAll(() => fs.rmSync(identity.dir, { recursive: true, force: true }));

/** A WebSocket class that trusts the test certificate, for Starling. */
class TrustingWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, { protocols, tls: { ca: identity.cert } });
  }
}

function tlsServer(tls) {
  const helios = new Helios();
  helios.method('echo', (context) => context.payload);
  const address = helios.serve({ port: 0, hostname: '127.0.0.1', tls });
  track(helios);
  return { helios, address };
}

describe('TLS', () => {
  test('a wss round trip with the certificate given as file paths', async () => {
    const { address } = tlsServer({ cert: identity.certPath, key: identity.keyPath });
    expect(address.url).toStartWith('wss://127.0.0.1:');
    const client = new Starling({ url: address.url, WebSocket: TrustingWebSocket });
    await client.connect();
    expect((await client.request('echo', { secure: true })).data).toEqual({ secure: true });
    await client.close();
  });

  test('a wss round trip with the certificate given as PEM text', async () => {
    const { address } = tlsServer({ cert: identity.cert, key: Buffer.from(identity.key) });
    const client = new Starling({ url: address.url, WebSocket: TrustingWebSocket });
    await client.connect();
    expect((await client.request('echo', 'pem')).data).toBe('pem');
    await client.close();
  });

  test('a plain ws client cannot talk to a TLS server, and the server keeps serving', async () => {
    const { address } = tlsServer({ cert: identity.cert, key: identity.key });
    const plain = new Starling({ url: `ws://127.0.0.1:${address.port}`, timeout: 2000 });
    await expect(plain.connect()).rejects.toThrow();
    const client = new Starling({ url: address.url, WebSocket: TrustingWebSocket });
    await client.connect();
    expect((await client.request('echo', 1)).data).toBe(1);
    await client.close();
  });

  test('an unusable certificate or key is refused by serve() with a clear error', () => {
    const helios = new Helios();
    expect(() => helios.serve({ port: 0, tls: { cert: '-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n', key: identity.key } })).toThrow(/certificate/i);
    expect(() => helios.serve({ port: 0, tls: { cert: identity.cert, key: '/no/such/key.pem' } })).toThrow(/tls.key/);
    expect(() => helios.serve({ port: 0, tls: { cert: identity.cert } })).toThrow(/tls.key/);
    expect(helios.address).toBeNull();
  });
});

/**
 * A TCP proxy to `port` that counts the TLS application-data records (content type 23) the server sends
 * through it; `records` is the count so far.
 */
async function recordCountingProxy(port) {
  const sockets = new Set();
  const proxy = {
    records: 0,
    port: 0,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
    }
    // Bytes from the server not yet counted as whole records (a record's header: type, version, length).
    let unread = Buffer.alloc(0);
    upstream.on('data', (chunk) => {
      unread = Buffer.concat([unread, chunk]);
      while (unread.length >= 5 && unread.length >= 5 + unread.readUInt16BE(3)) {
        if (unread[0] === 23) proxy.records += 1;
        unread = unread.subarray(5 + unread.readUInt16BE(3));
      }
      client.write(chunk);
    });
    client.on('data', (chunk) => upstream.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.port = server.address().port;
  return proxy;
}

test('frames sent in one turn leave over TLS in a few records, not in a record each', async () => {
  const { helios, address } = tlsServer({ cert: identity.cert, key: identity.key });
  helios.method('burst', (context) => {
    for (let n = 0; n < 50; n++) context.connection.emit('tick', n);
    return 'sent';
  });
  const proxy = await recordCountingProxy(address.port);
  try {
    const client = new Starling({ url: `wss://127.0.0.1:${proxy.port}`, WebSocket: TrustingWebSocket });
    await client.connect();
    const ticks = [];
    client.on('tick', (n) => ticks.push(n));
    const before = proxy.records;
    expect((await client.request('burst')).data).toBe('sent');
    await waitFor(() => ticks.length === 50);
    expect(ticks).toEqual([...Array(50).keys()]);
    // 51 frames: written one by one they would be 51 records. Together they fit one; a few allow for the
    // socket's task starting on them while the handler is still sending.
    expect(proxy.records - before).toBeLessThanOrEqual(5);
    await client.close();
  } finally {
    proxy.close();
  }
});

describe('a client that stops reading while frames wait for it', () => {
  for (const secure of [false, true]) {
    test(`is dropped within the health check's limits (ping-timeout), over ${secure ? 'TLS' : 'plain TCP'}`, async () => {
      // Far more than the sockets' buffers hold, far less than the outbound limit: the frames wait at the server.
      const helios = new Helios({ maxBackpressure: 256 * 1024 * 1024, healthCheck: { interval: 300, timeout: 300, maxMissed: 1 } });
      track(helios);
      const opened = nextEvent(helios.events, 'connection');
      const tlsOption = secure ? { tls: { cert: identity.cert, key: identity.key } } : {};
      const { port } = helios.serve({ port: 0, hostname: '127.0.0.1', ...tlsOption });
      const socket = secure
        ? tls.connect({ port, host: '127.0.0.1', ca: identity.cert, servername: 'localhost' })
        : net.connect(port, '127.0.0.1');
      await new Promise((resolve) => socket.once(secure ? 'secureConnect' : 'connect', resolve));
      socket.on('error', () => {});
      await upgradeByHand(socket);
      socket.pause();
      const { connection } = await opened;
      const timedOut = nextEvent(helios.events, 'ping-timeout', () => true, 8000);
      const disconnected = nextEvent(helios.events, 'disconnection', () => true, 8000);
      const chunk = 'x'.repeat(64 * 1024);
      for (let n = 0; n < 512; n++) connection.emit('fill', chunk);
      const started = Date.now();
      expect((await timedOut).connection.id).toBe(connection.id);
      expect((await disconnected).code).toBe(1006);
      expect(Date.now() - started).toBeLessThan(5000);
      socket.destroy();
    }, 15000);
  }
});
