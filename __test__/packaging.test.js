// Packaging: the per-platform packages under npm/ agree with what the napi CLI generates for the configured
// targets, the main package ships what users need, and a machine without a fitting binary gets an error
// naming the package to install. The install itself is checked by `npm run test:install`.
import { test, expect, describe, beforeAll, afterAll } from 'bun:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { runtimes } from './helpers.js';

const require = createRequire(import.meta.url);
const repo = path.resolve(import.meta.dir, '..');
const pkg = require('../package.json');
const { missingBindingError, suffixOfTriple } = require('../lib/platform.js');

const read = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));

describe('platform packages', () => {
  let generated;
  beforeAll(() => {
    // What `napi create-npm-dirs` makes from this package.json, in a scratch copy.
    generated = fs.mkdtempSync(path.join(os.tmpdir(), 'helios-npm-dirs-'));
    fs.copyFileSync(path.join(repo, 'package.json'), path.join(generated, 'package.json'));
    const result = Bun.spawnSync([path.join(repo, 'node_modules', '.bin', 'napi'), 'create-npm-dirs', '--cwd', generated]);
    expect(result.exitCode, result.stderr.toString()).toBe(0);
  });
  afterAll(() => fs.rmSync(generated, { recursive: true, force: true }));

  test('there is one directory per napi target, and no other', () => {
    const expected = pkg.napi.targets.map(suffixOfTriple).sort();
    expect(fs.readdirSync(path.join(repo, 'npm')).sort()).toEqual(expected);
    expect(fs.readdirSync(path.join(generated, 'npm')).sort()).toEqual(expected);
  });

  for (const triple of pkg.napi.targets) {
    const suffix = suffixOfTriple(triple);
    test(`${suffix}: name, version, os, cpu, libc, main and files match the napi CLI's`, () => {
      const ours = read(path.join(repo, 'npm', suffix, 'package.json'));
      const napi = read(path.join(generated, 'npm', suffix, 'package.json'));
      for (const field of ['name', 'version', 'os', 'cpu', 'libc', 'main', 'files', 'license', 'engines', 'repository']) {
        expect(ours[field], field).toEqual(napi[field]);
      }
      expect(ours.name).toBe(`${pkg.name}-${suffix}`);
      expect(ours.version).toBe(pkg.version);
      expect(ours.main).toBe(`${pkg.napi.binaryName}.${suffix}.node`);
      expect(ours.files).toEqual([ours.main]);
      if (suffix.startsWith('linux-')) expect(ours.libc).toEqual(['glibc']);
      expect(ours.publishConfig).toEqual({ access: 'public' });
    });
  }
});

describe('main package', () => {
  test('ships the JavaScript face, the loader and the client, not the sources or binaries', () => {
    expect(pkg.files).toEqual(
      expect.arrayContaining(['index.js', 'index.d.ts', 'native.js', 'native.d.ts', 'lib/', 'client/'])
    );
    for (const entry of pkg.files) expect(entry).not.toMatch(/\.node$|^(src|crates|__test__|npm|examples|bench)\b/);
  });

  test('optionalDependencies are written at release by napi prepublish, so npm ci needs no published binary', () => {
    expect(pkg.optionalDependencies).toBeUndefined();
    expect(pkg.scripts.prepublishOnly).toBe('napi prepublish -t npm');
    expect(pkg.scripts.version).toStartWith('napi version');
  });
});

describe('no native binary for this machine', () => {
  test('a machine whose package exists but is not installed is told its name and version', () => {
    const error = missingBindingError({ platform: 'linux', arch: 'arm64', libc: 'gnu' }, false, new Error('x'));
    expect(error.code).toBe('HELIOS_NATIVE_BINDING_MISSING');
    expect(error.message).toContain(`${pkg.name}-linux-arm64-gnu is not installed`);
    expect(error.message).toContain('platform linux, arch arm64, libc glibc');
    expect(error.message).toContain(`npm install ${pkg.name}-linux-arm64-gnu@${pkg.version}`);
  });

  test('a machine no package is built for is told which ones exist', () => {
    const error = missingBindingError({ platform: 'linux', arch: 'arm64', libc: 'musl' }, false, new Error('x'));
    expect(error.message).toContain(`there is no package ${pkg.name}-linux-arm64-musl`);
    expect(error.message).toContain('platform linux, arch arm64, libc musl');
    for (const triple of pkg.napi.targets) expect(error.message).toContain(suffixOfTriple(triple));
  });

  test('an installed package whose binary fails to load says why', () => {
    const cause = new Error('Cannot find native binding', { cause: [new Error('invalid ELF header')] });
    const error = missingBindingError({ platform: 'darwin', arch: 'arm64', libc: 'gnu' }, true, cause);
    expect(error.message).toContain(`${pkg.name}-darwin-arm64 is installed but its binary failed to load`);
    expect(error.message).toContain('invalid ELF header');
    expect(error.message).not.toContain('libc');
    expect(error.cause).toBe(cause);
  });

  describe('loading the package from a copy without the binary', () => {
    let dir;
    beforeAll(() => {
      // The shipped JavaScript alone, outside the repository: the generated loader finds neither a local
      // binary nor the platform package, exactly as after an install that skipped optional dependencies.
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'helios-nobinary-'));
      const copy = path.join(dir, 'node_modules', pkg.name);
      fs.mkdirSync(copy, { recursive: true });
      for (const entry of ['package.json', ...pkg.files]) {
        fs.cpSync(path.join(repo, entry), path.join(copy, entry), { recursive: true });
      }
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    for (const runtime of ['bun', 'node']) {
      test(`${runtime}: require() names the platform package this machine needs`, () => {
        const result = Bun.spawnSync([runtimes[runtime], '-e', `require(${JSON.stringify(pkg.name)})`], { cwd: dir });
        const stderr = result.stderr.toString();
        expect(result.exitCode).not.toBe(0);
        const { linuxLibc, wantedSuffix } = require('../lib/platform.js');
        const wanted = `${pkg.name}-${wantedSuffix({ platform: process.platform, arch: process.arch, libc: linuxLibc() })}`;
        expect(stderr).toContain(`${wanted} is not installed`);
        expect(stderr).toContain(`platform ${process.platform}, arch ${process.arch}`);
      });
    }
  });
});
