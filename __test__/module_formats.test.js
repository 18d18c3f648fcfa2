import { test, expect, describe, beforeAll, afterAll } from 'bun:test';
import { createRequire } from 'node:module';
import * as esm from '../index.js';
import * as client from '../client/index.js';
import { packageSandbox, runScript, runtimes } from './helpers.js';

const require = createRequire(import.meta.url);
const EXPECTED = ['Connection', 'Emitter', 'EventContext', 'Helios', 'Namespace', 'RequestContext', 'Response'];

let sandbox;
beforeAll(() => {
  sandbox = packageSandbox(['formats_esm.mjs', 'formats_cjs.cjs']);
});
afterAll(() => sandbox.remove());

describe('in this process', () => {
  test('require and import give the same classes', () => {
    const cjs = require('../index.js');
    for (const name of EXPECTED) {
      expect(typeof cjs[name]).toBe('function');
      expect(esm[name]).toBe(cjs[name]);
    }
  });

  test('the client is an ES module with Starling and Response', () => {
    expect(typeof client.Starling).toBe('function');
    expect(typeof client.Response).toBe('function');
    expect(require('../client/package.json').type).toBe('module');
  });

  test('package.json exports map the root, the client and package.json', () => {
    const pkg = require('../package.json');
    expect(pkg.name).toBe('@aionbuilders/helios');
    expect(pkg.exports['.'].default).toBe('./index.js');
    expect(pkg.exports['./client'].default).toBe('./client/index.js');
    for (const file of ['index.js', 'index.d.ts', 'native.js', 'client/']) expect(pkg.files).toContain(file);
  });
});

describe('through the package name, in a separate process', () => {
  for (const runtime of ['bun', 'node']) {
    test(`${runtime}: ESM named imports, default import and the client`, async () => {
      const result = await runScript(runtimes[runtime], 'formats_esm.mjs', sandbox.dir);
      expect(result.exitCode, result.stderr).toBe(0);
      const seen = JSON.parse(result.stdout);
      for (const name of EXPECTED) expect(seen.named).toContain(name);
      expect(seen.sameAsRequire).toBe(true);
      expect(seen.defaultIsExports).toBe(true);
      expect(seen.client).toContain('Starling');
      expect(seen.version).toBe(require('../package.json').version);
    }, 15000);

    test(`${runtime}: CommonJS require`, async () => {
      const result = await runScript(runtimes[runtime], 'formats_cjs.cjs', sandbox.dir);
      expect(result.exitCode, result.stderr).toBe(0);
      const seen = JSON.parse(result.stdout);
      expect(seen.named).toEqual(EXPECTED);
      expect(seen.helios).toBe('function');
    }, 15000);
  }
});
