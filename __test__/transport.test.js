import { test, expect, describe } from 'bun:test';
import { useCleanup, startServer, rawSocket, tcpSocket, connect } from './helpers.js';

useCleanup();

describe('transport', () => {
  test("the server selects the 'helios.v1' subprotocol when the client offers it", async () => {
    const { url } = startServer(() => {});
    const offered = await rawSocket(url, ['helios.v1']);
    expect(offered.ws.protocol).toBe('helios.v1');
    const among = await rawSocket(url, ['chat', 'helios.v1']);
    expect(among.ws.protocol).toBe('helios.v1');
  });

  test('a client offering no subprotocol is accepted and speaks version 1', async () => {
    const { url } = startServer((helios) => helios.method('ok', () => 'ok'));
    const raw = await rawSocket(url);
    expect(raw.ws.protocol).toBe('');
    expect((await raw.request(1, 'ok')).data).toBe('ok');
  });

  test('Starling offers helios.v1 and gets it', async () => {
    const { url } = startServer(() => {});
    const client = await connect(url);
    expect(client.websocket.protocol).toBe('helios.v1');
  });

  test('any path is accepted', async () => {
    const { url } = startServer((helios) => helios.method('ok', () => 'ok'));
    const raw = await rawSocket(`${url}/some/deep/path?with=query`);
    expect((await raw.request(1, 'ok')).data).toBe('ok');
  });

  test('the server answers a ping with a pong carrying the same payload', async () => {
    const { port } = startServer(() => {});
    const tcp = await tcpSocket(port);
    tcp.sendFrame(0x9, 'are you there');
    const pong = await tcp.nextFrame(0xa);
    expect(pong.payload.toString()).toBe('are you there');
  });

  test('the handshake response names the subprotocol only when offered', async () => {
    const { port } = startServer(() => {});
    const plain = await tcpSocket(port);
    expect(plain.head.toLowerCase()).not.toContain('sec-websocket-protocol');
    const offered = await tcpSocket(port, '/', ['Sec-WebSocket-Protocol: other, helios.v1']);
    expect(offered.head.toLowerCase()).toContain('sec-websocket-protocol: helios.v1');
  });

  test('a plain HTTP request (no upgrade) does not disturb the server', async () => {
    const { url, port } = startServer((helios) => helios.method('ok', () => 'ok'));
    const answer = await fetch(`http://127.0.0.1:${port}/`).then(
      (response) => response.status,
      () => 'refused'
    );
    expect(answer === 'refused' || answer >= 400).toBe(true);
    const raw = await rawSocket(url);
    expect((await raw.request(1, 'ok')).data).toBe('ok');
  });
});
