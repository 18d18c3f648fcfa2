// Soak test: a Helios server with session recovery under bounded churn for a while, then checks.
//
//   npm run soak                      (5 minutes; tests the addon as built: 'npm run build' first)
//   npm run soak -- --duration 60     (seconds)
//   bun soak/run.mjs --duration 60 [--clients 48] [--workers 3] [--seed 1]
//
// Starts soak/server.mjs in a child process and soak/worker.mjs in a few more (the clients: connect and
// disconnect cycles, subscribes, RPCs, sequenced broadcasts, session drops and resumes; see worker.mjs),
// all on 127.0.0.1. After the duration the workers stop, let everything settle and check their side; then it
// asserts:
// - every RPC got exactly one answer (status 200, its own number back; no response frame twice; the server
//   ran each call once, in order);
// - every publication the clients sent reached the server in order, and every broadcast was delivered exactly
//   once and in order to every subscriber that stayed subscribed, across session resumes, up to the last one;
// - no resume failed or lost messages (no gap);
// - the server's RSS after the run (clients gone, a short settle, a full GC) is within 10% of its warmed-up
//   level (measured at 20% of the duration, after a full GC too).
// Prints progress every ~10 s and a summary; exits 1 when an assertion fails.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Starling } from '@aionbuilders/helios/client';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
function option(name, fallback) {
  const i = args.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const value = Number(args[i + 1]);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`soak: --${name} needs a positive number`);
    process.exit(2);
  }
  return value;
}
const DURATION_S = option('duration', 300);
const CLIENTS = Math.floor(option('clients', 48));
const WORKERS = Math.floor(option('workers', 3));
const SEED = Math.floor(option('seed', Date.now() % 1_000_000));
const RSS_TOLERANCE = 0.1;
const PROGRESS_MS = 10_000;

const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s`;
const log = (line) => console.log(`[${elapsed()}] ${line}`);
const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

function vmRss(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** Lines of a child's stdout, one callback each. */
async function readLines(stream, onLine) {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline;
    while ((newline = buffer.indexOf('\n')) !== -1) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line) onLine(line);
    }
  }
  if (buffer) onLine(buffer);
}

const children = [];
function cleanup() {
  for (const child of children) {
    try {
      child.kill();
    } catch {}
  }
}
process.on('exit', cleanup);
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

// ---------------------------------------------------------------------------------------------------------
// server
// ---------------------------------------------------------------------------------------------------------
log(`soak: ${DURATION_S} s, ${CLIENTS} clients in ${WORKERS} workers, seed ${SEED}`);
// The soak tests the addon as built (CI builds it in 'npm test' just before); say which one.
const root = join(here, '..');
for (const name of readdirSync(root).filter((file) => /^helios\..*\.node$/.test(file))) {
  log(`addon: ${name}, built ${statSync(join(root, name)).mtime.toISOString()}`);
}
const server = Bun.spawn([process.execPath, join(here, 'server.mjs')], { stdout: 'pipe', stderr: 'inherit', stdin: 'ignore' });
children.push(server);
const port = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('the server did not print "listening <port>" within 10 s')), 10_000);
  readLines(server.stdout, (line) => {
    const match = /^listening (\d+)$/.exec(line);
    if (match) {
      clearTimeout(timer);
      resolve(Number(match[1]));
    } else console.log(`[server] ${line}`);
  });
  server.exited.then((code) => reject(new Error(`the server exited with ${code} before listening`)));
});
const url = `ws://127.0.0.1:${port}`;
log(`server pid ${server.pid} on ${url}`);
let serverExited = null;
server.exited.then((code) => (serverExited = code));

const control = new Starling({ url, requestTimeout: 30_000 });
await control.connect();
const call = async (method) => {
  const response = await control.request(method);
  if (!response.isSuccess()) throw new Error(`${method}: ${response.status} ${JSON.stringify(response.error)}`);
  return response.data;
};
const baseRss = vmRss(server.pid);
log(`server RSS at start ${mib(baseRss)}`);

// ---------------------------------------------------------------------------------------------------------
// workers
// ---------------------------------------------------------------------------------------------------------
const workers = [];
for (let w = 0; w < WORKERS; w++) {
  const clients = Math.floor(CLIENTS / WORKERS) + (w < CLIENTS % WORKERS ? 1 : 0);
  const child = Bun.spawn([process.execPath, join(here, 'worker.mjs'), url, String(w), String(clients), String(SEED * 100 + w)], {
    stdout: 'pipe',
    stderr: 'inherit',
    stdin: 'pipe',
  });
  children.push(child);
  const worker = { index: w, child, latest: null, stopped: null, result: null, exited: null, eof: false };
  child.exited.then((code) => (worker.exited = code));
  readLines(child.stdout, (line) => {
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      console.log(`[worker ${w}] ${line}`);
      return;
    }
    worker.latest = message.totals;
    if (message.type === 'stopped') worker.stopped = message;
    if (message.type === 'result') worker.result = message;
  }).finally(() => (worker.eof = true));
  workers.push(worker);
}
const tell = (worker, command) => {
  worker.child.stdin.write(JSON.stringify(command) + '\n');
  worker.child.stdin.flush();
};
/** A worker that exits before its result is a failure of the harness (or a crash): stop at once. */
function checkWorkers() {
  for (const worker of workers) {
    if (worker.exited !== null && worker.eof && !worker.result) throw new Error(`worker ${worker.index} exited with ${worker.exited} before reporting`);
  }
  if (serverExited !== null) throw new Error(`the server exited with ${serverExited}`);
}
const waitFor = async (predicate, what, ms) => {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    checkWorkers();
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
};
const sum = (field) => workers.reduce((total, worker) => total + ((worker.result ?? worker.stopped ?? { totals: worker.latest }).totals?.[field] ?? 0), 0);

// ---------------------------------------------------------------------------------------------------------
// the run
// ---------------------------------------------------------------------------------------------------------
const warmAt = t0 + DURATION_S * 200; // 20% of the duration
const endAt = t0 + DURATION_S * 1000;
let warm = null;
let peakRss = 0;
let nextProgress = Date.now() + PROGRESS_MS;
while (Date.now() < endAt) {
  await Bun.sleep(250);
  checkWorkers();
  const rss = vmRss(server.pid);
  peakRss = Math.max(peakRss, rss);
  if (!warm && Date.now() >= warmAt) {
    const gc = await call('soak.gc');
    await Bun.sleep(200);
    warm = { rss: vmRss(server.pid), heapUsed: gc.heapUsed, at: elapsed() };
    log(`warmed up: server RSS ${mib(warm.rss)} after a full GC (JS heap ${mib(gc.heapUsed)})`);
  }
  if (Date.now() >= nextProgress) {
    nextProgress += PROGRESS_MS;
    const f = await call('soak.final');
    log(
      `clients ${sum('connected')}/${CLIENTS} (${sum('incarnations')} so far) | rpc ${sum('rpcOk')}/${sum('rpcSent')} ok | ` +
        `published ${sum('published')} → delivered ${sum('delivered')} (${sum('subscribed')} subscribed) | ` +
        `drops ${sum('drops')} resumed ${sum('resumed')} | server: ${f.open - 1} conns, RSS ${mib(rss)} | ` +
        `problems ${sum('failureCount')}`
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// wind down and check
// ---------------------------------------------------------------------------------------------------------
log('stopping the clients: no new action; waiting for everything in flight to settle');
for (const worker of workers) tell(worker, { cmd: 'stop' });
await waitFor(() => workers.every((w) => w.stopped), "the workers' 'stopped'", 60_000);
await Bun.sleep(500);
const final = await call('soak.final');
log(`last broadcast g=${final.g}; checking the subscriptions' tails and closing every client`);
for (const worker of workers) tell(worker, { cmd: 'final', g: final.g });
await waitFor(() => workers.every((w) => w.result), "the workers' results", 60_000);
await Promise.all(workers.map((w) => w.child.exited));

log('clients gone; settling 3 s');
await Bun.sleep(3000);
const after = await call('soak.final');
await call('soak.gc');
await Bun.sleep(1000);
const gcAfter = await call('soak.gc');
await Bun.sleep(500);
const endRss = vmRss(server.pid);
await control.close();
server.kill('SIGTERM');
const serverCode = await Promise.race([server.exited, Bun.sleep(10_000).then(() => 'timeout')]);

// ---------------------------------------------------------------------------------------------------------
// summary
// ---------------------------------------------------------------------------------------------------------
const t = (field) => workers.reduce((total, w) => total + (w.result.totals[field] ?? 0), 0);
const failuresSeen = workers.flatMap((w) => w.result.failures);
const checks = [];
const check = (ok, what) => checks.push({ ok, what });

check(t('rpcSent') > 0 && t('rpcOk') === t('rpcSent'), `every RPC answered once with its own result: ${t('rpcOk')}/${t('rpcSent')} ok, ${t('rpcBadAnswer')} wrong, ${t('rpcRejected')} unanswered`);
check(t('duplicateResponses') === 0, `no response frame twice: ${t('duplicateResponses')}`);
check(final.rpcOutOfOrder === 0, `the server ran each call once, in order: ${final.rpc} calls run, ${final.rpcOutOfOrder} out of order`);
check(final.rpc === t('rpcSent'), `calls run by the server = RPCs sent: ${final.rpc} / ${t('rpcSent')}`);
check(t('published') > 0 && final.published === t('published') && final.g === t('published'), `every publication reached the server: sent ${t('published')}, received ${final.published}, broadcast ${final.g}`);
check(final.publishOutOfOrder === 0, `publications arrived in order per publisher: ${final.publishOutOfOrder} out of order`);
check(t('gaps') === 0 && t('duplicates') === 0 && t('strayEvents') === 0, `broadcasts delivered exactly once, in order, in ${t('subscriptions')} subscriptions: ${t('delivered')} delivered, ${t('gaps')} missing, ${t('duplicates')} duplicate/out of order, ${t('strayEvents')} outside a subscription`);
check(t('silentSubscriptions') === 0, `no subscription open 5 s or more went without broadcasts: ${t('silentSubscriptions')}`);
check(t('tailMissing') === 0, `subscriptions open at the end got every broadcast up to g=${final.g}: ${workers.reduce((n, w) => n + w.result.reachedEnd, 0)} did, ${t('tailMissing')} missing`);
check(t('drops') > 0 && t('resumed') === t('drops') && t('recoveryFailed') === 0 && t('reconnectFailed') === 0 && t('resumedWithGap') === 0, `every session drop resumed without a gap: ${t('drops')} drops, ${t('resumed')} resumed (${t('replayed')} messages replayed), ${t('recoveryFailed')} failed, ${t('resumedWithGap')} with a gap`);
check(
  t('subscribeFailed') === 0 && t('serverErrors') === 0 && t('clientErrors') === 0 && t('unexpectedCloses') === 0 && t('connectFailures') === 0,
  `no refused subscribe, server error message, client error, unexpected close or failed connect: ${t('subscribeFailed')}, ${t('serverErrors')}, ${t('clientErrors')}, ${t('unexpectedCloses')}, ${t('connectFailures')}`
);
check(after.open === 1 && after.members === 0, `every client connection is gone from the server: ${after.open - 1} left (besides the control client), ${after.members} in the room`);
const ratio = warm ? endRss / warm.rss : NaN;
check(warm !== null && ratio <= 1 + RSS_TOLERANCE, `server RSS back within 10% of its warmed-up level: warm ${warm ? mib(warm.rss) : '?'} (at ${warm?.at.trim()}), end ${mib(endRss)} (${((ratio - 1) * 100).toFixed(1)}%), peak ${mib(peakRss)}, start ${mib(baseRss)}`);
check(serverCode === 0, `the server stopped cleanly: exit ${serverCode}`);

console.log('');
console.log(`== soak summary (${DURATION_S} s, ${CLIENTS} clients, ${WORKERS} workers, seed ${SEED}; ${elapsed().trim()} in all) ==`);
console.log(`clients: ${t('incarnations')} connections made (connect/disconnect churn), ${t('drops')} session drops, ${t('resumed')} resumes, ${after.recovered} resumes seen by the server`);
console.log(`rpc: ${t('rpcSent')} sent, ${t('rpcOk')} answered ok (${(t('rpcSent') / DURATION_S).toFixed(0)}/s)`);
console.log(`broadcasts: ${final.g} published, ${t('delivered')} deliveries in ${t('subscriptions')} subscriptions`);
console.log(`server: ${after.connections} connections accepted, messages in ${after.stats.messagesIn}, out ${after.stats.messagesOut}, dropped ${after.stats.dropped}, closes ${JSON.stringify(after.stats.closed)}`);
console.log(`server RSS: start ${mib(baseRss)}, warm ${warm ? mib(warm.rss) : '?'}, peak ${mib(peakRss)}, end ${mib(endRss)}; JS heap after GC ${mib(gcAfter.heapUsed)} (warm ${warm ? mib(warm.heapUsed) : '?'})`);
for (const { ok, what } of checks) console.log(`${ok ? 'PASS' : 'FAIL'}  ${what}`);
if (failuresSeen.length) {
  console.log('first problems seen:');
  for (const line of failuresSeen.slice(0, 30)) console.log(`  ${line}`);
}
const failed = checks.filter((c) => !c.ok).length;
console.log(failed ? `soak: ${failed} check(s) FAILED` : 'soak: all checks passed');
process.exit(failed ? 1 : 0);
