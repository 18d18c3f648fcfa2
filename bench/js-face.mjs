// The JavaScript face's CPU per RPC request, without sockets: `lib/` is loaded with the native addon replaced by
// a stub, then fed batches of calls as the core writes them (145 requests to 50 connections each), and its
// replies are handed to the stub's `apply`. What the server's JavaScript thread spends on top is native (the
// batches crossing napi, applying the replies) and waiting.
//
//   bun bench/js-face.mjs [--against ROOT] [--slices N]
//
// With --against, the `lib/` of another checkout (ROOT/lib, for example a `git worktree` of an older commit)
// runs too, in alternating slices in the same process, so that the machine's changes of pace fall on both alike;
// compare the medians; both must read the request calls in the shape written below (the core's since the
// commonest request call comes bare, its five values in the batch itself). Prints microseconds per request.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
};
if (args.includes('--help')) {
  console.log('usage: bun bench/js-face.mjs [--against ROOT] [--slices N]');
  process.exit(0);
}
const roots = [resolve(import.meta.dirname, '..'), option('--against')].filter(Boolean).map((root) => resolve(root));
const slices = Number(option('--slices', 60));
const REQUESTS = 145;
const CONNECTIONS = 50;
const BATCHES_PER_SLICE = 200;
const PAYLOAD = '{"name":"bench","n":42,"tags":["a","b"],"ok":true}';

// What lib/ asks of the addon on this path; `apply` flattens the replies' text as napi's conversion does.
const STUB = `
class NativeServer {
  constructor() {}
  addMethod() {} reportOpens() {} reportPongs() {} beginTurn() {} endTurn() {}
  listen(hostname, port, tls, onBatch) { NativeServer.onBatch = onBatch; return 1; }
  apply(text) { NativeServer.applied += Buffer.byteLength(text); }
  takeCalls() { return null; }
  introduceAll() { return '[]'; }
}
NativeServer.applied = 0;
module.exports = { NativeServer };
`;

/** Loads ROOT/lib over the stub in a copy of its own; returns a function that runs one batch. */
function load(root, scratch) {
  const copy = mkdtempSync(join(scratch, 'lib-'));
  cpSync(join(root, 'lib'), join(copy, 'lib'), { recursive: true });
  cpSync(join(root, 'package.json'), join(copy, 'package.json'));
  writeFileSync(join(copy, 'native.js'), STUB);
  const require = createRequire(join(copy, 'lib', 'helios.js'));
  const { Helios } = require('./helios.js');
  const { NativeServer } = require('../native.js');
  const helios = new Helios();
  helios.method('echo', (context) => ({ echo: context.payload, at: 'helios' }));
  helios.serve({ port: 0 });
  const deliver = NativeServer.onBatch;
  const opens = [];
  for (let key = 1; key <= CONNECTIONS; key++) opens.push(`[0,${key},"c${key}","/","127.0.0.1:${40000 + key}",null]`);
  deliver(`[${opens.join(',')}]`);
  let id = 0;
  const batches = Array.from({ length: 16 }, () => {
    const calls = [];
    for (let i = 0; i < REQUESTS; i++) calls.push(`2,${(i % CONNECTIONS) + 1},${id++},0,${PAYLOAD}`);
    return `[${calls.join(',')}]`;
  });
  let next = 0;
  return () => deliver(batches[next++ & 15]);
}

const scratch = mkdtempSync(join(tmpdir(), 'helios-js-face-'));
try {
  const runs = roots.map((root) => ({ root, batch: load(root, scratch), perRequest: [] }));
  for (const run of runs) for (let i = 0; i < 3000; i++) run.batch();
  for (let slice = 0; slice < slices; slice++) {
    for (const run of runs) {
      const start = performance.now();
      for (let i = 0; i < BATCHES_PER_SLICE; i++) run.batch();
      run.perRequest.push(((performance.now() - start) * 1000) / (BATCHES_PER_SLICE * REQUESTS));
    }
  }
  for (const { root, perRequest } of runs) {
    perRequest.sort((a, b) => a - b);
    const at = (q) => perRequest[Math.min(perRequest.length - 1, Math.floor(q * perRequest.length))].toFixed(3);
    console.log(`${root}: median ${at(0.5)} µs per request (p10 ${at(0.1)}, p90 ${at(0.9)}; ${slices} slices)`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
