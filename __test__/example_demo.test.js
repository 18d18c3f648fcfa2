// The demo (examples/demo): the main job the README's set-up runs (`npm run demo`), a server in its own process
// and a client that calls it, run as the README shows it and checked line by line.
import { test, expect } from 'bun:test';
import path from 'node:path';
import { runScript, runtimes } from './helpers.js';

test('the demo runs its server and client to the end and prints every answer', async () => {
  const root = path.resolve(import.meta.dir, '..');
  const result = await runScript(runtimes.bun, path.join('examples', 'demo', 'run.js'), root, 20000);
  expect(result.exitCode, result.stderr).toBe(0);
  for (const line of [
    '[client] user.get 1 → 200 {"id":1,"name":"Alice"}',
    '[client] user.get 9 → 404 {"code":"NOT_FOUND","message":"No user 9"}',
    '[client] math.add → 42',
    '[client] no.such.method → 404 METHOD_NOT_FOUND',
    '[client] chat:echo → {"text":"hello, Helios","to":"demo-client"}',
    '[server] stopped',
    '[demo] done',
  ]) {
    expect(result.stdout).toContain(line);
  }
}, 30000);
