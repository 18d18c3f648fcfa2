// TLS: serve({ tls }) speaks wss:// with a certificate made here by openssl; the client verifies it
// against that certificate as its CA.

import { test, expect, describe } from 'bun:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Helios } from '../index.js';
import { useCleanup, track, Starling } from './helpers.js';

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
  return { certPath, keyPath, cert: fs.readFileSync(certPath, 'utf8'), key: fs.readFileSync(keyPath, 'utf8') };
}

const identity = selfSigned();

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
