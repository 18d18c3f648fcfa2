import { test, expect, describe } from 'bun:test';
import net from 'node:net';
import { Helios } from '../index.js';
import { useCleanup, startServer, serve, connect, track } from './helpers.js';

useCleanup();

describe('constructor options', () => {
  test('defaults are filled in', () => {
    const helios = new Helios();
    expect(helios.options).toEqual({
      requestTimeout: 5000,
      parseMode: 'strict',
      maxPayload: 1024 * 1024,
      maxBackpressure: 1024 * 1024,
      healthCheck: { enabled: true, interval: 30000, timeout: 10000, maxMissed: 2 },
      allowedOrigins: null,
      maxConnections: null,
      healthPath: null,
      upgrade: null,
      rateLimit: null,
      idleTimeout: null,
      sessionRecovery: null,
      cluster: null,
      echo: false,
      maxSubscriptions: 100,
      maxPendingRequests: 1000,
      handshakeTimeout: 10000,
      handlerTimeout: 30000,
      debug: false,
    });
    expect(new Helios({}).options.parseMode).toBe('strict');
    expect(new Helios({ requestTimeout: 250, parseMode: 'permissive' }).options).toMatchObject({
      requestTimeout: 250,
      parseMode: 'permissive',
    });
  });

  test.each([
    [{ requestTimeout: -1 }, /requestTimeout/],
    [{ requestTimeout: 0 }, /requestTimeout/],
    [{ requestTimeout: '1000' }, /requestTimeout/],
    [{ requestTimeout: NaN }, /requestTimeout/],
    [{ requestTimeout: Infinity }, /requestTimeout/],
    [{ parseMode: 'foo' }, /parseMode.*'strict' or 'permissive'.*'foo'/],
    [{ parseMode: 1 }, /parseMode/],
    [{ maxPayload: 0 }, /maxPayload/],
    [{ maxPayload: 1.5 }, /maxPayload/],
    [{ maxBackpressure: -5 }, /maxBackpressure/],
    [{ prot: 3000 }, /unknown option 'prot'/],
    [{ requestTimeut: 100 }, /unknown option 'requestTimeut'/],
  ])('new Helios(%j) throws a clear message', (options, message) => {
    expect(() => new Helios(options)).toThrow(message);
  });

  test('options must be an object', () => {
    expect(() => new Helios('strict')).toThrow(/options must be an object/);
    expect(() => new Helios(null)).toThrow(/options must be an object/);
  });

  test('requestTimeout sets the default of connection.request (checked in server_requests too)', () => {
    expect(new Helios({ requestTimeout: 1234 }).options.requestTimeout).toBe(1234);
  });
});

describe('serve()', () => {
  test('port 0 returns the real port, hostname and url', async () => {
    const helios = track(new Helios());
    helios.method('ping', () => 'pong');
    const address = helios.serve({ port: 0, hostname: '127.0.0.1' });
    expect(address.port).toBeGreaterThan(0);
    expect(address.hostname).toBe('127.0.0.1');
    expect(address.url).toBe(`ws://127.0.0.1:${address.port}`);
    expect(helios.address).toEqual(address);
    const client = await connect(address.url);
    expect((await client.request('ping')).data).toBe('pong');
  });

  test('two servers on port 0 get different ports', () => {
    const a = startServer(() => {});
    const b = startServer(() => {});
    expect(a.port).not.toBe(b.port);
  });

  test('a port in use makes serve throw a clear error mentioning the port', async () => {
    const blocker = net.createServer();
    await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address();
    try {
      const helios = new Helios();
      let error;
      try {
        helios.serve({ port, hostname: '127.0.0.1' });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(Error);
      expect(error.message).toContain(String(port));
      expect(helios.address).toBeNull();
      await helios.stop();
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  test('a port used by another Helios makes serve throw; the first keeps working', async () => {
    const first = startServer((helios) => helios.method('who', () => 'first'));
    const second = new Helios();
    expect(() => second.serve({ port: first.port, hostname: '127.0.0.1' })).toThrow(String(first.port));
    const client = await connect(first.url);
    expect((await client.request('who')).data).toBe('first');
  });

  test('serving twice throws', () => {
    const { helios, port } = startServer(() => {});
    expect(() => helios.serve({ port: 0, hostname: '127.0.0.1' })).toThrow(/already serving/);
    expect(helios.address.port).toBe(port);
  });

  test.each([
    [{ port: -1 }, /port/],
    [{ port: 70000 }, /port/],
    [{ port: '80' }, /port/],
    [{ port: 1.5 }, /port/],
    [{ hostname: '' }, /hostname/],
    [{ port: 0, host: '127.0.0.1' }, /unknown serve option 'host'/],
  ])('serve(%j) throws a clear message', (options, message) => {
    const helios = new Helios();
    expect(() => helios.serve(options)).toThrow(message);
    expect(helios.address).toBeNull();
  });

  test('an unknown hostname makes serve throw', async () => {
    const helios = new Helios();
    expect(() => helios.serve({ port: 0, hostname: 'no-such-host.invalid' })).toThrow();
    expect(helios.address).toBeNull();
  });

  test('serve after a failed serve works', async () => {
    const first = startServer(() => {});
    const helios = new Helios();
    helios.method('ok', () => 'ok');
    expect(() => helios.serve({ port: first.port, hostname: '127.0.0.1' })).toThrow();
    const { url } = serve(helios);
    const client = await connect(url);
    expect((await client.request('ok')).data).toBe('ok');
  });

  test('methods registered after serve are callable', async () => {
    const { helios, url } = startServer(() => {});
    const client = await connect(url);
    expect((await client.request('late')).status).toBe(404);
    helios.method('late', () => 'registered late');
    expect((await client.request('late')).data).toBe('registered late');
  });
});
