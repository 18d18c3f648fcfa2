// The type definitions: the README's examples compile under `tsc --strict`, and every misuse marked with
// @ts-expect-error in types/ is caught (an unused directive is itself an error).

import { test, expect } from 'bun:test';
import path from 'node:path';

const root = path.join(import.meta.dir, '..');

test('types/ compiles with tsc --strict, misuse included', () => {
  const tsc = Bun.spawnSync([path.join(root, 'node_modules/.bin/tsc'), '-p', path.join(root, 'types')], { cwd: root });
  const output = tsc.stdout.toString() + tsc.stderr.toString();
  expect(output).toBe('');
  expect(tsc.exitCode).toBe(0);
}, 60000);
