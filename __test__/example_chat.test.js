// The chat example (examples/chat): started as `npm run example:chat` starts it, then driven through its
// HTTP server and WebSocket port, and in a real headless Chromium where one is installed.
import { test, expect, describe, beforeAll, afterAll } from 'bun:test';
import fs from 'node:fs';
import path from 'node:path';
import { Starling } from '../client/index.js';
import { startExample } from './example_process.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = path.resolve(import.meta.dir, '..', 'artifacts');

let example;
let pageUrl;
let wsUrl;
beforeAll(async () => {
  example = startExample('chat/server.js', { PORT: '0', WS_PORT: '0' });
  const [, url, wsPort] = await example.waitForLine(/open (http:\/\/\S+) \(WebSocket on port (\d+)\)/);
  pageUrl = url;
  wsUrl = `ws://127.0.0.1:${wsPort}`;
});
afterAll(async () => {
  expect(await example.stop()).toBe(0); // SIGTERM stops it cleanly
  expect(example.lines).toContain('[chat] stopped');
});

describe('chat example over HTTP and WebSocket', () => {
  test('serves the page, its script and the bundled client as JavaScript, and nothing else', async () => {
    const page = await fetch(pageUrl);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('<script type="module" src="/app.js">');
    const client = await fetch(new URL('/starling.js', pageUrl));
    expect(client.headers.get('content-type')).toContain('text/javascript');
    expect(await client.text()).toBe(fs.readFileSync(path.resolve(import.meta.dir, '..', 'client', 'index.js'), 'utf8'));
    expect((await fetch(new URL('/../package.json', pageUrl))).status).toBe(404);
    expect((await fetch(new URL('/public/app.js', pageUrl))).status).toBe(404);
  });

  test('a message reaches the others in the room, with the sender name; unnamed or unjoined senders are refused', async () => {
    const alice = new Starling({ url: wsUrl });
    const bob = new Starling({ url: wsUrl });
    try {
      await Promise.all([alice.connect(), bob.connect()]);
      expect((await alice.request('chat.send', { room: 'general', text: 'too soon' })).status).toBe(400);
      await alice.request('chat.setName', { name: 'alice' }, { throwOnError: true });
      await bob.request('chat.setName', { name: 'bob' }, { throwOnError: true });
      expect((await alice.request('chat.send', { room: 'general', text: 'not joined' })).status).toBe(403);
      expect((await alice.subscribe('chat:general')).success).toBe(true);
      expect((await bob.subscribe('chat:general')).success).toBe(true);
      expect((await bob.subscribe('chat:secret')).success).toBe(false); // only the declared rooms exist
      const heard = new Promise((resolve) => bob.on('chat:general', (data) => data.text && resolve(data)));
      expect((await alice.request('chat.send', { room: 'general', text: ' hi bob ' })).data).toEqual({ targets: 2, sent: 2 });
      expect(await heard).toMatchObject({ room: 'general', name: 'alice', text: 'hi bob' });
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
  });
});

const hasChromium = fs.existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(`\n  SKIPPED: the chat browser test needs Chromium at ${CHROMIUM} (Debian: apt-get install chromium)\n`);
}

describe.skipIf(!hasChromium)('chat example in headless Chromium', () => {
  let browser;
  beforeAll(async () => {
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
        '--disable-background-networking', '--disable-extensions', '--disable-sync'],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });

  /** A page in its own browser context (its own cookies and storage), joined to `room` as `name`. */
  async function join(name, room, errors) {
    const page = await (await browser.newContext({ viewport: { width: 800, height: 600 } })).newPage();
    page.on('pageerror', (error) => errors.push(`${name}: ${error.message}`));
    await page.goto(pageUrl);
    await page.fill('#join input[name="name"]', name);
    await page.selectOption('#join select[name="room"]', room);
    await page.click('#join button');
    await page.waitForSelector('#status[data-state="joined"]', { timeout: 10000 });
    return page;
  }

  test('two pages join a room; what one sends, the other shows', async () => {
    const errors = [];
    const alice = await join('alice', 'general', errors);
    const bob = await join('bob', 'general', errors);
    const carol = await join('carol', 'random', errors);
    await alice.locator('#messages li.system', { hasText: 'bob joined' }).waitFor({ timeout: 10000 });

    await alice.fill('#send input[name="text"]', 'Hello from Alice <b>not bold</b>');
    await alice.click('#send button');
    const received = bob.locator('#messages li.message', { hasText: 'Hello from Alice' });
    await received.waitFor({ timeout: 10000 });
    expect(await received.locator('.name').textContent()).toBe('alice');
    expect(await received.locator('b').count()).toBe(0); // shown as text, not parsed as HTML
    await alice.locator('#messages li.message', { hasText: 'Hello from Alice' }).waitFor({ timeout: 10000 });
    expect(await alice.inputValue('#send input[name="text"]')).toBe(''); // cleared once sent

    // carol's room got nothing: by the time alice saw her own message, the broadcast to #general was done.
    expect(await carol.locator('#messages li.message').count()).toBe(0);

    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await bob.screenshot({ path: path.join(ARTIFACTS, 'chat.png') });
    expect(fs.statSync(path.join(ARTIFACTS, 'chat.png')).size).toBeGreaterThan(1000);
    expect(errors).toEqual([]);
  }, 60000);
});
