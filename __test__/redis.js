// A private redis-server for the cluster tests: started on a free port in a temporary directory, with no
// persistence, and stopped (or restarted on the same port) by the test. Without the binary the cluster
// tests are skipped with a visible message.

import { describe } from 'bun:test';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** The redis-server binary, or null. */
export const redisServer = Bun.which('redis-server');

/** `describe`, or `describe.skip` with a message saying why, when redis-server is not installed. */
export function describeWithRedis(name, body) {
  if (redisServer) return describe(name, body);
  console.warn(`[cluster tests] SKIPPED '${name}': redis-server is not installed (apt-get install redis-server)`);
  return describe.skip(name, body);
}

/** A TCP port nobody listens on right now. */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Sends one inline command and resolves with the reply text (enough for PING, INFO, CLIENT LIST). */
export function redisCommand(port, command, timeout = 1000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`redis '${command}' timed out`));
    }, timeout);
    socket.on('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk) => {
      reply += chunk;
      // A bulk reply is complete once its announced length has arrived.
      const bulk = /^\$(\d+)\r\n/.exec(reply);
      if (bulk ? reply.length >= bulk[0].length + Number(bulk[1]) + 2 : reply.endsWith('\r\n')) {
        clearTimeout(timer);
        socket.end();
        resolve(reply);
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/**
 * Starts a redis-server and resolves once it answers PING. Returns `{ url, port, stop(), start() }`:
 * `stop()` kills it (SIGKILL, like a crash), `start()` starts it again on the same port.
 */
export async function startRedis() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'helios-redis-'));
  let child = null;
  const redis = {
    url: `redis://127.0.0.1:${port}`,
    port,
    async start() {
      child = Bun.spawn([redisServer, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
        cwd: dir,
        stdout: 'ignore',
        stderr: 'ignore',
      });
      const deadline = Date.now() + 5000;
      for (;;) {
        try {
          if ((await redisCommand(port, 'PING')).startsWith('+PONG')) return;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async stop() {
      if (!child) return;
      child.kill('SIGKILL');
      await child.exited;
      child = null;
    },
    async remove() {
      await redis.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await redis.start();
  return redis;
}

/**
 * A TCP proxy in front of the Redis on `redisPort`, for one node, that fails the ways a network does:
 * `freeze(later)` makes every connection through it go silent without closing (a half-open link: bytes
 * are lost both ways and neither end hears of it, not even of a close, as when Redis's host vanishes);
 * `cut()` resets every connection. Connections made afterwards get through (`later` 'pass', the default
 * after `freeze`; or after `heal()`), are accepted and never answered ('hang'), or are refused ('refuse',
 * after `cut`). `close()` ends everything.
 */
export async function redisProxy(redisPort) {
  const port = await freePort();
  const pairs = new Set();
  let later = 'pass';
  const server = net.createServer((client) => {
    client.on('error', () => {});
    if (later === 'refuse') return void client.destroy();
    const pair = { client, upstream: null, frozen: later === 'hang' };
    pairs.add(pair);
    if (pair.frozen) return;
    const upstream = net.connect(redisPort, '127.0.0.1');
    pair.upstream = upstream;
    upstream.on('error', () => {});
    client.on('data', (chunk) => pair.frozen || upstream.write(chunk));
    upstream.on('data', (chunk) => pair.frozen || client.write(chunk));
    const end = () => {
      if (pair.frozen) return;
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('close', end);
    upstream.on('close', end);
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const destroy = (pair) => {
    pair.client.destroy();
    pair.upstream?.destroy();
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    freeze(next = 'pass') {
      later = next;
      for (const pair of pairs) pair.frozen = true;
    },
    cut() {
      later = 'refuse';
      for (const pair of pairs) destroy(pair);
      pairs.clear();
    },
    heal() {
      later = 'pass';
    },
    close() {
      later = 'refuse';
      for (const pair of pairs) destroy(pair);
      pairs.clear();
      server.close();
    },
  };
}
