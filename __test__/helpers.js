// Shared test helpers: real servers on 127.0.0.1 port 0, Starling and raw WebSocket clients, waiting on
// conditions instead of sleeping, and cleanup of everything a test opened.

import { afterEach, spyOn } from 'bun:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { Helios } from '../index.js';
import { Starling } from '../client/index.js';

export { Helios, Starling };

/** Everything opened by the current test, closed by `cleanup()`. */
const opened = { servers: new Set(), clients: new Set(), sockets: new Set(), spies: new Set(), tcp: new Set() };

/** Registers `cleanup` after every test of the calling file. Call once at the top of a test file. */
export function useCleanup() {
  afterEach(cleanup);
}

/** Closes every client and socket and stops every server opened through these helpers. */
export async function cleanup() {
  const clients = [...opened.clients];
  const sockets = [...opened.sockets];
  const servers = [...opened.servers];
  const spies = [...opened.spies];
  opened.spies.clear();
  opened.clients.clear();
  opened.sockets.clear();
  opened.servers.clear();
  for (const socket of opened.tcp) socket.destroy();
  opened.tcp.clear();
  for (const socket of sockets) {
    try {
      socket.ws.close();
    } catch {
      // already closed
    }
  }
  await Promise.all(clients.map((client) => client.close().catch(() => {})));
  await Promise.all(servers.map((helios) => helios.stop()));
  for (const spy of spies) spy.mockRestore();
}

/**
 * Silences `console[method]` for the rest of the test (the server logs handler failures there) and
 * returns the spy, so a test can also check what was logged.
 */
export function quiet(method = 'error') {
  const spy = spyOn(console, method).mockImplementation(() => {});
  opened.spies.add(spy);
  return spy;
}

/**
 * A Helios server serving on 127.0.0.1 port 0. `setup(helios)` registers handlers before serving.
 * Returns `{ helios, url, port }`.
 */
export function startServer(options, setup) {
  if (typeof options === 'function') return startServer(undefined, options);
  const helios = new Helios(options);
  if (setup) setup(helios);
  return serve(helios);
}

/** Serves an existing Helios on 127.0.0.1 port 0 and tracks it for cleanup. */
export function serve(helios) {
  const address = helios.serve({ port: 0, hostname: '127.0.0.1' });
  opened.servers.add(helios);
  return { helios, url: address.url, port: address.port };
}

/** Tracks a server created elsewhere (e.g. by a seed example) so it is stopped after the test. */
export function track(helios) {
  opened.servers.add(helios);
  return helios;
}

/** A connected Starling client. `path` is appended to the URL (e.g. `/?token=abc`). */
export async function connect(url, options = {}, path = '') {
  const starling = createClient(url + path, options);
  await starling.connect();
  return starling;
}

/** A Starling client that is not connected yet (to register methods first), closed after the test. */
export function createClient(url, options = {}) {
  const starling = new Starling({ url, requestTimeout: 3000, ...options });
  opened.clients.add(starling);
  return starling;
}

/**
 * Makes every `setTimeout(fn, delay)` with exactly `delay` ms wait `scaled` ms instead, for the rest of the
 * test: runs code written with long timers (e.g. the seed's 5 s auth timeout) quickly and unchanged.
 */
export function scaleTimers(delay, scaled) {
  const original = globalThis.setTimeout;
  const spy = spyOn(globalThis, 'setTimeout').mockImplementation((fn, ms, ...args) =>
    original(fn, ms === delay ? scaled : ms, ...args)
  );
  opened.spies.add(spy);
  return spy;
}

let uniquePaths = 0;

/** A path no other connection of this process uses, so its server-side Connection can be told apart. */
export function uniquePath() {
  uniquePaths += 1;
  return `/?client=${uniquePaths}`;
}

/**
 * Resolves with the server-side Connection whose URL is `path`. The server reports a connection shortly
 * after the client sees it open, so a plain "next connection event" could be another client's.
 */
export async function connectionAt(helios, path, timeout = 3000) {
  for (const connection of helios.connections.values()) if (connection.url === path) return connection;
  const { connection } = await nextEvent(helios.events, 'connection', ({ connection: c }) => c.url === path, timeout);
  return connection;
}

/**
 * Connects a Starling client and also returns the server-side Connection for it.
 * Returns `{ starling, connection }`. Without `path`, a unique one is used.
 */
export async function connectWithConnection(helios, url, options = {}, path = uniquePath()) {
  const connected = connectionAt(helios, path);
  connected.catch(() => {}); // reported by the await below, unless connect() failed first
  const starling = await connect(url, options, path);
  return { starling, connection: await connected };
}

/** Opens a raw socket and returns it with its server-side Connection: `{ raw, connection }`. */
export async function rawWithConnection(helios, url) {
  const path = uniquePath();
  const connected = connectionAt(helios, path);
  connected.catch(() => {}); // reported by the await below, unless the socket failed first
  const raw = await rawSocket(url + path);
  return { raw, connection: await connected };
}

/** Resolves with the next payload of `name` on an emitter (helios.events or starling.events) matching `filter`. */
export function nextEvent(emitter, name, filter = () => true, timeout = 3000) {
  return new Promise((resolve, reject) => {
    let off;
    const timer = setTimeout(() => {
      detach();
      reject(new Error(`timed out after ${timeout} ms waiting for event '${name}'`));
    }, timeout);
    const listener = (payload) => {
      if (!filter(payload)) return;
      clearTimeout(timer);
      detach();
      resolve(payload);
    };
    const detach = () => {
      if (typeof off === 'function') off();
      else emitter.off(name, listener);
    };
    const result = emitter.on(name, listener);
    if (typeof result === 'function') off = result;
  });
}

/** Resolves with `[data, context]` of the next server event the client receives under `topic`. */
export function nextTopic(starling, topic, timeout = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeout} ms waiting for topic '${topic}'`));
    }, timeout);
    const off = starling.on(topic, (data, context) => {
      clearTimeout(timer);
      off();
      resolve([data, context]);
    });
  });
}

/**
 * Waits until `predicate()` is truthy, checking after each turn of the event loop (so every socket event
 * gets a chance to land in between). Resolves with the predicate's value; rejects after `timeout` ms with
 * `message`.
 */
export async function waitFor(predicate, { timeout = 3000, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${message}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/**
 * A raw WebSocket (Bun's global WebSocket) that collects every frame it receives.
 * `frames`: received frames (strings are parsed as JSON when they can be: `{ raw, json }`).
 * `next(predicate)`: the next (or an already received, not yet taken) frame whose JSON matches.
 * `closed`: resolves with `{ code, reason }` once the socket has closed.
 */
export async function rawSocket(url, protocols) {
  const ws = protocols === undefined ? new WebSocket(url) : new WebSocket(url, protocols);
  ws.binaryType = 'arraybuffer';
  const frames = [];
  const waiters = new Set();
  let closeInfo = null;
  let markClosed;
  const closed = new Promise((resolve) => (markClosed = resolve));
  ws.addEventListener('message', (event) => {
    let json;
    if (typeof event.data === 'string') {
      try {
        json = JSON.parse(event.data);
      } catch {
        json = undefined;
      }
    }
    frames.push({ raw: event.data, json });
    for (const waiter of [...waiters]) waiter();
  });
  ws.addEventListener('close', (event) => {
    closeInfo = { code: event.code, reason: event.reason };
    markClosed(closeInfo);
    for (const waiter of [...waiters]) waiter();
  });
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true });
    ws.addEventListener('error', () => reject(new Error(`raw WebSocket to ${url} failed`)), { once: true });
  });
  const socket = {
    ws,
    frames,
    closed,
    get closeInfo() {
      return closeInfo;
    },
    /** Sends a string as is, or an object as JSON text. Binary data is sent as a binary frame. */
    send(message) {
      ws.send(typeof message === 'string' || message instanceof Uint8Array || message instanceof ArrayBuffer
        ? message
        : JSON.stringify(message));
    },
    /** Resolves with the parsed JSON of the first received frame matching `predicate`, removing it from the queue. */
    next(predicate = () => true, timeout = 3000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const index = frames.findIndex((frame) => frame.json !== undefined && !frame.taken && predicate(frame.json));
          if (index !== -1) {
            frames[index].taken = true;
            finish();
            resolve(frames[index].json);
          } else if (closeInfo) {
            finish();
            reject(new Error(`socket closed (${closeInfo.code}) before a matching frame arrived`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`timed out after ${timeout} ms waiting for a frame; got ${JSON.stringify(frames.map((f) => f.json ?? String(f.raw)))}`));
        }, timeout);
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    /** Sends a request and resolves with its response. */
    async request(id, method, payload) {
      socket.send({ type: 'request', id, method, payload });
      return socket.next((message) => message.type === 'response' && message.id === id);
    },
  };
  opened.sockets.add(socket);
  return socket;
}

/**
 * Sends the WebSocket upgrade on a connected `socket` (TCP or TLS) and resolves once the 101 has been read;
 * what the server sends after it is left unread.
 */
export async function upgradeByHand(socket) {
  socket.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  let head = Buffer.alloc(0);
  await new Promise((resolve) => {
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk]);
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      resolve();
    };
    socket.on('data', onData);
  });
  return socket;
}

/**
 * A WebSocket client written by hand over TCP, to send frames a WebSocket library refuses to send (and to
 * stop reading). `sendFrame(opcode, payload, { mask })` writes one final frame; `frames` collects the
 * server's frames as `{ opcode, payload }`; `nextFrame(opcode)` waits for one; `pause()` and `resume()`
 * stop and restart reading; `closeCode` resolves with
 * the code of the server's close frame (or null when the TCP connection ends without one); `head` is the
 * handshake response. `path` is the request path, `headers` extra request header lines.
 */
export async function tcpSocket(port, path = '/', headers = []) {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let buffer = Buffer.alloc(0);
  let upgraded = false;
  let resolveUpgrade;
  const upgrade = new Promise((resolve) => (resolveUpgrade = resolve));
  let resolveClose;
  const closeCode = new Promise((resolve) => (resolveClose = resolve));
  let received = 0;
  const frames = [];
  const frameWaiters = new Set();
  socket.on('data', (chunk) => {
    received += chunk.length;
    buffer = Buffer.concat([buffer, chunk]);
    if (!upgraded) {
      const end = buffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = buffer.subarray(0, end).toString();
      buffer = buffer.subarray(end + 4);
      upgraded = true;
      resolveUpgrade(head);
    }
    // Server frames are unmasked; look for a close frame (opcode 8).
    while (buffer.length >= 2) {
      let length = buffer[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffer.length < 4) return;
        length = buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffer.length < 10) return;
        length = Number(buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (buffer.length < offset + length) return;
      const opcode = buffer[0] & 0x0f;
      const payload = buffer.subarray(offset, offset + length);
      buffer = buffer.subarray(offset + length);
      frames.push({ opcode, payload });
      for (const waiter of [...frameWaiters]) waiter();
      if (opcode === 8) resolveClose(payload.length >= 2 ? payload.readUInt16BE(0) : 1005);
    }
  });
  socket.on('close', () => {
    resolveUpgrade(null);
    resolveClose(null);
  });
  socket.on('error', () => {});
  const key = randomBytes(16).toString('base64');
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
      headers.map((line) => `${line}\r\n`).join('') +
      '\r\n'
  );
  const head = await upgrade;
  if (head === null) throw new Error('WebSocket handshake unanswered: the server closed the connection');
  if (!head.startsWith('HTTP/1.1 101')) throw new Error(`WebSocket handshake refused: ${head}`);
  opened.tcp.add(socket);
  return {
    head,
    frames,
    closeCode,
    /** Resolves with the first received frame of `opcode` not taken yet. */
    nextFrame(opcode, timeout = 3000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const frame = frames.find((f) => f.opcode === opcode && !f.taken);
          if (!frame) return;
          frame.taken = true;
          clearTimeout(timer);
          frameWaiters.delete(check);
          resolve(frame);
        };
        const timer = setTimeout(() => {
          frameWaiters.delete(check);
          reject(new Error(`timed out after ${timeout} ms waiting for a frame with opcode ${opcode}`));
        }, timeout);
        frameWaiters.add(check);
        check();
      });
    },
    /** Bytes received so far, handshake included. */
    get received() {
      return received;
    },
    /** Stops reading from the socket: the server's writes back up. */
    pause() {
      socket.pause();
    },
    /** Reads from the socket again. */
    resume() {
      socket.resume();
    },
    sendFrame(opcode, payload, { mask = true } = {}) {
      const bytes = Buffer.from(payload);
      if (bytes.length > 125) throw new Error('keep test frames short');
      const header = Buffer.from([0x80 | opcode, (mask ? 0x80 : 0) | bytes.length]);
      if (!mask) return socket.write(Buffer.concat([header, bytes]));
      const maskKey = randomBytes(4);
      const masked = Buffer.from(bytes.map((b, i) => b ^ maskKey[i % 4]));
      socket.write(Buffer.concat([header, maskKey, masked]));
    },
    destroy() {
      socket.destroy();
    },
  };
}

/** A promise plus its resolve function, for handlers that must wait on the test. */
export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * A temporary directory where `@aionbuilders/helios` resolves to this repository (a symlink in its
 * node_modules), holding copies of the given `__test__/fixtures/` scripts. Returns `{ dir, remove() }`.
 */
export function packageSandbox(fixtures) {
  const repo = path.resolve(import.meta.dir, '..');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'helios-package-'));
  fs.mkdirSync(path.join(dir, 'node_modules', '@aionbuilders'), { recursive: true });
  fs.symlinkSync(repo, path.join(dir, 'node_modules', '@aionbuilders', 'helios'), 'dir');
  for (const name of fixtures) fs.copyFileSync(path.join(import.meta.dir, 'fixtures', name), path.join(dir, name));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** The runtimes scripts are run under: this Bun, and the `node` on PATH. */
export const runtimes = { bun: process.execPath, node: Bun.which('node') };

/**
 * Runs `script` in `cwd` under `runtime` and waits for it to exit by itself, killing it after `timeout` ms.
 * Resolves with `{ exitCode, stdout, stderr, elapsed, killed }`.
 */
export async function runScript(runtime, script, cwd, timeout = 10000) {
  const started = Date.now();
  const child = Bun.spawn([runtime, script], { cwd, stdout: 'pipe', stderr: 'pipe', env: { ...process.env } });
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill('SIGKILL');
  }, timeout);
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  clearTimeout(timer);
  return { exitCode, stdout, stderr, elapsed: Date.now() - started, killed };
}
