import { test, expect, describe, beforeAll, afterAll } from 'bun:test';
import { packageSandbox, runScript, runtimes } from './helpers.js';

// A script that serves, connects a client, makes a call and calls helios.stop() must exit by itself:
// nothing the server started may keep the event loop alive once it has stopped.

let sandbox;
beforeAll(() => {
  sandbox = packageSandbox(['exit_esm.mjs', 'exit_cjs.cjs']);
});
afterAll(() => sandbox.remove());

const cases = [
  ['bun', 'exit_esm.mjs', 'esm result 42'],
  ['bun', 'exit_cjs.cjs', 'cjs result 42'],
  ['node', 'exit_esm.mjs', 'esm result 42'],
  ['node', 'exit_cjs.cjs', 'cjs result 42'],
];

describe('the process exits by itself after helios.stop()', () => {
  for (const [runtime, script, expected] of cases) {
    test(
      `${runtime} ${script}`,
      async () => {
        expect(runtimes[runtime]).toBeTruthy();
        const result = await runScript(runtimes[runtime], script, sandbox.dir, 10000);
        const report = `exit ${result.exitCode} after ${result.elapsed} ms${result.killed ? ' (killed: did not exit by itself)' : ''}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
        expect(result.killed, report).toBe(false);
        expect(result.stdout.trim(), report).toBe(expected);
        expect(result.exitCode, report).toBe(0);
      },
      15000
    );
  }
});
