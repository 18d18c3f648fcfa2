import { test, expect, describe } from 'bun:test';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const root = path.resolve(import.meta.dir, '..');

/**
 * The value exports a declaration file declares (classes, functions, consts, enums, and names in
 * `export { ... }` lists that are not `type`-only); interfaces and type aliases exist only for the compiler.
 */
function declaredValueExports(file) {
  const text = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const names = new Set();
  const declaration =
    /^\s*export\s+(?:declare\s+)?(?:default\s+)?(?:abstract\s+)?(?:class|function|const|let|var|enum|namespace)\s+([A-Za-z_$][\w$]*)/gm;
  for (const match of text.matchAll(declaration)) names.add(match[1]);
  for (const match of text.matchAll(/^\s*export\s+(?:declare\s+)?\{([^}]*)\}/gm)) {
    for (const part of match[1].split(',')) {
      const item = part.trim();
      if (!item || item.startsWith('type ')) continue;
      names.add(item.split(/\s+as\s+/).pop().trim());
    }
  }
  return [...names].sort();
}

describe('every export declared in index.d.ts exists at runtime', () => {
  const file = path.join(root, 'index.d.ts');

  test('index.d.ts exists and declares the main classes', () => {
    expect(fs.existsSync(file)).toBe(true);
    const declared = declaredValueExports(file);
    for (const name of ['Helios', 'Connection', 'Response']) expect(declared).toContain(name);
  });

  test('each declared value export is defined by index.js (require and import)', async () => {
    const declared = declaredValueExports(file);
    const cjs = require('../index.js');
    const esm = await import('../index.js');
    const missing = declared.filter((name) => cjs[name] === undefined || esm[name] === undefined);
    expect(missing).toEqual([]);
  });

  test('declared classes are constructors at runtime', () => {
    const text = fs.readFileSync(file, 'utf8');
    const classes = [...text.matchAll(/^\s*export\s+(?:declare\s+)?(?:abstract\s+)?class\s+(\w+)/gm)].map((m) => m[1]);
    const cjs = require('../index.js');
    for (const name of classes) expect(typeof cjs[name], name).toBe('function');
  });

  test('index.js exports nothing undeclared', () => {
    const declared = declaredValueExports(file);
    const extra = Object.keys(require('../index.js')).filter((name) => !declared.includes(name));
    expect(extra).toEqual([]);
  });
});

describe('every export declared in client/index.d.ts exists at runtime', () => {
  const file = path.join(root, 'client', 'index.d.ts');

  test('each declared value export is defined by client/index.js', async () => {
    const declared = declaredValueExports(file);
    expect(declared).toContain('Starling');
    const client = await import('../client/index.js');
    expect(declared.filter((name) => client[name] === undefined)).toEqual([]);
  });

  test('client/index.js exports nothing undeclared', async () => {
    const declared = declaredValueExports(file);
    const client = await import('../client/index.js');
    expect(Object.keys(client).filter((name) => !declared.includes(name))).toEqual([]);
  });
});
