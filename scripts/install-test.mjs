// Install test: packs @aionbuilders/helios as a release would publish it (optionalDependencies written in, as
// `napi prepublish` does) plus the linux-x64-gnu binary package, installs both tarballs into empty directories
// outside the repository with `npm install` and with `bun add`, and runs a server + client round trip under
// Node and Bun, as ESM and as CommonJS. Also checks that an install without optional dependencies fails with
// an error naming the missing platform package.
//
// Usage: node scripts/install-test.mjs [--keep]   (run `npm run build` first; `npm run test:install` does both)

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNapiConfig } from '@napi-rs/cli';

const root = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
const keep = process.argv.includes('--keep');
const started = Date.now();
const bun = path.join(root, 'node_modules', '.bin', 'bun');
const PLATFORM = 'linux-x64-gnu';

function log(message) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${message}`);
}

function fail(message) {
  log(`FAILED: ${message}`);
  process.exitCode = 1;
  throw new Error(message);
}

/** Runs a command, printing it; throws with its output when it fails (unless `allowFailure`). */
function run(command, args, { cwd, env = cleanEnv(), allowFailure = false } = {}) {
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: 300_000 });
  const shown = [path.basename(command), ...args.map((a) => (a.startsWith(work) ? `<tmp>${a.slice(work.length)}` : a))];
  if (!allowFailure && result.status !== 0) {
    fail(`${shown.join(' ')} exited with ${result.status ?? result.signal}\n${result.stdout}\n${result.stderr}`);
  }
  return result;
}

/** The environment with nothing that could point module resolution back at the repository. */
function cleanEnv() {
  const env = { ...process.env };
  delete env.NODE_PATH;
  delete env.NODE_OPTIONS;
  for (const name of Object.keys(env)) if (name.startsWith('npm_')) delete env[name];
  return env;
}

const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const binary = path.join(root, `helios.${PLATFORM}.node`);
if (`${process.platform}-${process.arch}` !== 'linux-x64') {
  console.log(`install test: skipped, it packs the ${PLATFORM} binary and this machine is ${process.platform}-${process.arch}`);
  process.exit(0);
}
if (!fs.existsSync(binary) || !fs.existsSync(path.join(root, 'native.js'))) {
  console.error(`install test: ${path.basename(binary)} or native.js is missing; run \`npm run build\` first`);
  process.exit(1);
}

const work = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'helios-install-')));
if (work.startsWith(root + path.sep)) fail(`temporary directory ${work} is inside the repository`);

try {
  log(`working in ${work} (outside the repository)`);

  // 1. The main package, as `napi prepublish` leaves it before `npm publish` packs it.
  log('npm pack: main package');
  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], { cwd: root }).stdout)[0];
  const files = packed.files.map((f) => f.path);
  for (const needed of ['index.js', 'index.d.ts', 'native.js', 'lib/native.js', 'client/index.js', 'client/package.json', 'package.json']) {
    if (!files.includes(needed)) fail(`the main tarball lacks ${needed}`);
  }
  const unwanted = files.filter((f) => /^(__test__|crates|src|bench|soak|examples|target|npm|scripts)\/|\.node$/.test(f));
  if (unwanted.length > 0) fail(`the main tarball ships files users do not need: ${unwanted.join(', ')}`);
  log(`  ${files.length} files, ${(packed.size / 1024).toFixed(0)} KiB packed`);

  const { targets, packageName } = await readNapiConfig(path.join(root, 'package.json'));
  const optionalDependencies = Object.fromEntries(targets.map((t) => [`${packageName}-${t.platformArchABI}`, pkg.version]));
  const stage = path.join(work, 'stage');
  fs.mkdirSync(stage);
  run('tar', ['xzf', path.join(work, packed.filename), '-C', stage]);
  const manifestPath = path.join(stage, 'package', 'package.json');
  const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
  manifest.optionalDependencies = optionalDependencies;
  fs.writeFileSync(manifestPath, JSON.stringify(manifest, null, 2));
  fs.rmSync(path.join(work, packed.filename));
  const mainTarball = path.join(work, JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], { cwd: path.join(stage, 'package') }).stdout)[0].filename);
  log(`  optionalDependencies: ${Object.keys(optionalDependencies).join(', ')} @ ${pkg.version} (none of them published)`);

  // 2. The linux-x64-gnu package with the release binary just built.
  log(`npm pack: ${packageName}-${PLATFORM} with the release binary`);
  const platformDir = path.join(stage, PLATFORM);
  fs.cpSync(path.join(root, 'npm', PLATFORM), platformDir, { recursive: true });
  fs.copyFileSync(binary, path.join(platformDir, path.basename(binary)));
  const platformPacked = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], { cwd: platformDir }).stdout)[0];
  if (!platformPacked.files.some((f) => f.path === path.basename(binary))) fail('the platform tarball lacks the binary');
  const platformTarball = path.join(work, platformPacked.filename);
  log(`  ${(platformPacked.size / 1024).toFixed(0)} KiB packed`);

  fs.copyFileSync(path.join(root, 'scripts', 'install-smoke.mjs'), path.join(work, 'smoke.mjs'));
  fs.copyFileSync(path.join(root, 'scripts', 'install-smoke.cjs'), path.join(work, 'smoke.cjs'));

  // 3. Install both tarballs (and `ws`, the WebSocket class Node 20 needs) with each package manager.
  const installers = {
    npm: (dir) => run('npm', ['install', '--no-audit', '--no-fund', mainTarball, platformTarball, 'ws@^8'], { cwd: dir }),
    bun: (dir) => run(bun, ['add', mainTarball, platformTarball, 'ws@^8'], { cwd: dir }),
  };
  for (const [installer, install] of Object.entries(installers)) {
    const app = path.join(work, `app-${installer}`);
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: `app-${installer}`, private: true }));
    log(`${installer}: installing both tarballs into an empty directory`);
    install(app);
    const installed = JSON.parse(fs.readFileSync(path.join(app, 'node_modules', packageName, 'package.json'), 'utf8'));
    if (JSON.stringify(installed.optionalDependencies) !== JSON.stringify(optionalDependencies)) {
      fail(`${installer} installed a main package without the release optionalDependencies`);
    }
    const others = targets.map((t) => `${packageName}-${t.platformArchABI}`).filter((n) => !n.endsWith(PLATFORM));
    for (const name of others) {
      if (fs.existsSync(path.join(app, 'node_modules', name))) fail(`${installer} installed ${name}, which is not for this machine`);
    }
    log(`  installed; the unpublished optional packages of other platforms were skipped`);
    for (const script of ['smoke.mjs', 'smoke.cjs']) {
      fs.copyFileSync(path.join(work, script), path.join(app, script));
      for (const [runtime, exe] of [['node', process.execPath], ['bun', bun]]) {
        const result = run(exe, [script], { cwd: app });
        const seen = JSON.parse(result.stdout.trim().split('\n').pop());
        if (seen.sum !== 42 || seen.news?.headline !== 'installed') fail(`unexpected round trip: ${result.stdout}`);
        const outside = Object.entries(seen.resolved).filter(([, file]) => !file.startsWith(app + path.sep));
        if (outside.length > 0) fail(`resolved outside ${app}: ${JSON.stringify(outside)}`);
        log(`  ${runtime} ${script.endsWith('.mjs') ? 'ESM' : 'CommonJS'}: request → ${seen.sum}, room broadcast received; ` +
          `binary ${path.relative(app, seen.resolved.binary)}`);
      }
    }
  }

  // 4. Without its optional dependency, loading names the package to install.
  const bare = path.join(work, 'app-omit-optional');
  fs.mkdirSync(bare);
  fs.writeFileSync(path.join(bare, 'package.json'), JSON.stringify({ name: 'app-omit-optional', private: true }));
  log('npm install --omit=optional: the main package alone');
  run('npm', ['install', '--no-audit', '--no-fund', '--omit=optional', mainTarball], { cwd: bare });
  for (const [runtime, exe] of [['node', process.execPath], ['bun', bun]]) {
    const result = run(exe, ['-e', `require('${packageName}')`], { cwd: bare, allowFailure: true });
    const wanted = `${packageName}-${PLATFORM} is not installed`;
    if (result.status === 0 || !result.stderr.includes(wanted)) {
      fail(`${runtime}: expected a failure naming ${packageName}-${PLATFORM}, got exit ${result.status}:\n${result.stderr}`);
    }
    log(`  ${runtime}: fails with "${wanted}…"`);
  }
  log('install test passed');
} finally {
  if (keep) log(`kept ${work}`);
  else fs.rmSync(work, { recursive: true, force: true });
}
