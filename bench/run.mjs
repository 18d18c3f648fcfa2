// The benchmark suite: `npm run bench` (builds the addon and the load generator, then runs this file).
// `node bench/run.mjs --help` lists the scenarios and options.
//
// Every run starts a fresh server process, drives it with the Rust load generator (bench/loadgen) and stops it.
// Servers are interleaved for --rounds rounds, every other round in reverse order (A B C D, D C B A, ...), so
// that a machine that gets slower or faster during the suite affects every server alike, whichever runs first
// in a round; the table shows each server's median over its rounds and
// its ratio to plain Bun.serve (the median of the per-round ratios). Results (every run, the medians, the machine)
// go to bench/results/<time>.json; bench/chart.mjs draws the chart from that file. Before each run it waits (up
// to --idle-wait seconds) for the machine to be idle, and a run during which other processes used the CPU is
// repeated (up to --retries times).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');

// ---------------------------------------------------------------------------------------------------------------
// Options

const defaults = {
  scenario: 'all',
  servers: 'helios-bun,helios-node,bun-plain,ws-node,socketio-node',
  rounds: 3,
  duration: 5,
  warmup: 1,
  connections: 50,
  inflight: 10,
  subscribers: 1000,
  window: 8,
  'latency-duration': 2,
  'idle-connections': '10000,50000',
  'connect-concurrency': 500,
  'source-addresses': 0,
  settle: 3,
  'resume-clients': 1000,
  'resume-interval': 20,
  'resume-away': 2,
  threads: 1,
  'idle-wait': 60,
  retries: 2,
  out: '',
  'addon-b': '',
};

/** What --quick changes: a smoke run of every scenario in about two minutes; later options still apply. */
const QUICK = {
  rounds: 1,
  duration: 2,
  warmup: 0.5,
  'latency-duration': 1,
  'idle-connections': '1000',
  settle: 1,
  'resume-clients': 100,
  'resume-away': 1,
  'idle-wait': 10,
  retries: 0,
};

const SCENARIOS = ['rpc', 'fanout', 'idle', 'resume'];

const HELP = `usage: node bench/run.mjs [options]        (npm run bench -- [options] builds first)

Runs every scenario on every server (fresh server process per run, servers interleaved round by round), prints a
table per scenario and writes the JSON that bench/chart.mjs draws. Scenarios:
  rpc     round trips: --connections × --inflight requests in flight; round trips/s, p50/p99 latency
  fanout  --subscribers in one room, one publisher; deliveries/s, p99 delivery latency
  idle    --idle-connections idle WebSocket connections (each size a separate run); server RSS per connection
          ((RSS with N open − RSS before) / N, each read after a full GC) and connect rate (handshakes included)
  resume  Helios and Socket.IO: --resume-clients sessions in one room drop at once and resume at once while broadcasts
          go on; time until all resumed, messages lost and duplicated (checked per client by sequence number)

options (default in brackets):
  --scenario LIST          rpc, fanout, idle, resume, comma-separated, or all [${defaults.scenario}]
  --servers LIST           which servers, in the order they run (reversed every other round)
                           [${defaults.servers}]
  --rounds N               rounds; each runs every server once [${defaults.rounds}]
  --quick                  smoke run: ${Object.entries(QUICK).map(([k, v]) => `--${k} ${v}`).join(' ')}
  --tls                    every scenario over TLS (wss://, a self-signed ECDSA P-256 certificate made with openssl),
                           on the servers that serve it here: Helios (rustls) and Bun.serve (BoringSSL)
  rpc and fanout:
  --duration S             measured seconds per run [${defaults.duration}]
  --warmup S               seconds of load before measuring [${defaults.warmup}]
  --connections N          rpc connections [${defaults.connections}]
  --inflight N             rpc requests in flight per connection [${defaults.inflight}]
  --subscribers N          fanout room size [${defaults.subscribers}]
  --window N               fanout broadcasts in flight (throughput phase) [${defaults.window}]
  --latency-duration S     fanout seconds of one broadcast at a time (latency phase) [${defaults['latency-duration']}]
  --threads N              load generator threads [${defaults.threads}]
  idle:
  --idle-connections LIST  connection counts, one run each [${defaults['idle-connections']}]; a count above the open-file
                           hard limit (ulimit -Hn) minus 100 is skipped with a message
  --connect-concurrency N  handshakes in flight while connecting, for every server (idle and resume) [${defaults['connect-concurrency']}]
  --source-addresses N     client source addresses 127.0.0.2 .. (N+1); 0: one per 10,000 connections [${defaults['source-addresses']}]
  --settle S               seconds to wait once all are open, before the GC and the RSS reading [${defaults.settle}]
  resume:
  --resume-clients N       sessions that drop and resume [${defaults['resume-clients']}]
  --resume-interval MS     one broadcast every MS milliseconds, before, during and after the drop [${defaults['resume-interval']}]
  --resume-away S          seconds between the drop and the reconnect [${defaults['resume-away']}]
  machine:
  --idle-wait S            before each run, wait up to S seconds for the machine to be idle [${defaults['idle-wait']}]
  --retries N              run again a run that other processes disturbed, up to N times [${defaults.retries}]
  --out FILE               where the JSON goes [bench/results/<time>.json]
  comparing two builds of Helios:
  --addon-b FILE           another build of the addon (a .node file), run as the servers helios-bun-b and
                           helios-node-b; each table is then followed by the per-round ratios of A over B
  --help                   this text`;

function parseArgs(argv) {
  const flags = { quick: argv.includes('--quick'), tls: argv.includes('--tls') };
  const options = { ...defaults, ...(flags.quick ? QUICK : {}), ...flags };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      console.log(HELP);
      process.exit(0);
    }
    if (arg === '--quick' || arg === '--tls') continue;
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match || !(match[1] in defaults)) throw new Error(`unknown option ${arg} (try --help)`);
    const value = match[2] ?? argv[++i];
    if (value === undefined) throw new Error(`${arg} needs a value`);
    options[match[1]] = typeof defaults[match[1]] === 'number' ? Number(value) : value;
    if (Number.isNaN(options[match[1]])) throw new Error(`${arg}: not a number: ${value}`);
  }
  const scenarios = options.scenario === 'all' ? SCENARIOS : options.scenario.split(',').map((x) => x.trim());
  for (const scenario of scenarios) {
    if (!SCENARIOS.includes(scenario)) throw new Error(`--scenario: unknown scenario '${scenario}' (${SCENARIOS.join(', ')} or all)`);
  }
  options.scenarios = scenarios;
  options.idleSizes = String(options['idle-connections']).split(',').map(Number);
  if (options.idleSizes.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error('--idle-connections: positive integers');
  return options;
}

// ---------------------------------------------------------------------------------------------------------------
// Servers and tools

const localBun = path.join(root, 'node_modules', '.bin', 'bun');
const bun = existsSync(localBun) ? localBun : 'bun';
const node = process.execPath;
const loadgen = path.join(here, 'loadgen', 'target', 'release', process.platform === 'win32' ? 'loadgen.exe' : 'loadgen');

// Node servers get --expose-gc so that the idle scenario can ask every server for a full GC (servers/gc.mjs).
// `resume`: the server can resume sessions (Helios's session recovery, Socket.IO's connectionStateRecovery).
// `tls`: the server serves wss:// given TLS_CERT and TLS_KEY (--tls).
const SERVERS = {
  'helios-bun': { label: 'Helios on Bun', cmd: bun, args: ['servers/helios.mjs'], protocol: 'helios', resume: true, tls: true },
  'helios-node': { label: 'Helios on Node', cmd: node, args: ['--expose-gc', 'servers/helios.mjs'], protocol: 'helios', resume: true, tls: true },
  'bun-plain': { label: 'Bun.serve (JS)', cmd: bun, args: ['servers/bun-plain.mjs'], protocol: 'plain', tls: true },
  'ws-node': { label: 'ws on Node (JS)', cmd: node, args: ['--expose-gc', 'servers/ws-node.mjs'], protocol: 'plain' },
  'socketio-node': { label: 'Socket.IO 4 on Node', cmd: node, args: ['--expose-gc', 'servers/socketio-node.mjs'], protocol: 'socketio', resume: true },
};
const BASELINE = 'bun-plain';
/** What RPC and fan-out are also compared with (the "vs Socket.IO" column). */
const SOCKETIO = 'socketio-node';

/** Adds helios-bun-b and helios-node-b: the same servers on the addon in `file`, through the override the napi
 * loader reads (NAPI_RS_NATIVE_LIBRARY_PATH). */
function addBuildB(file) {
  const addon = path.resolve(file);
  if (!existsSync(addon)) throw new Error(`--addon-b: no such file ${addon}`);
  for (const a of ['helios-bun', 'helios-node']) {
    SERVERS[`${a}-b`] = { ...SERVERS[a], label: `${SERVERS[a].label} (B)`, env: { NAPI_RS_NATIVE_LIBRARY_PATH: addon } };
  }
  return addon;
}

/** Each round's `measure` of `a` over `b`'s in the same round; by default throughput (connects/s for idle). */
function pairedRatios(job, runs, a, b, measure = (result) => result.throughput) {
  const ratios = [];
  for (const run of runs) {
    if (run.job !== job.key || run.server !== a || run.result.fatal || !(measure(run.result) > 0)) continue;
    const other = runs.find((x) => x.job === job.key && x.server === b && x.round === run.round);
    if (other && !other.result.fatal && measure(other.result) > 0) ratios.push(measure(run.result) / measure(other.result));
  }
  return ratios;
}

/** Server CPU per operation (round trip, delivery, connect), in µs: a change in cost, as against in waiting. */
const cpuPerOp = (result) => (result.server_cpu_cores > 0 && result.throughput > 0 ? (result.server_cpu_cores / result.throughput) * 1e6 : null);

function version(cmd) {
  return new Promise((resolve) => {
    const child = spawn(cmd, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', () => resolve(null));
    child.on('exit', () => resolve(out.trim() || null));
  });
}

/** The commit the suite runs from, with `-dirty` when the work tree has changes; null outside git. */
function gitDescribe() {
  try {
    const run = (args) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return run(['rev-parse', '--short', 'HEAD']) + (run(['status', '--porcelain']) ? '-dirty' : '');
  } catch {
    return null;
  }
}

/** The native addon Helios loads: its file and size (a release build is ~2 MB, a debug build ~40 MB). */
function addonInfo() {
  try {
    const file = readdirSync(root).find((f) => f.startsWith('helios.') && f.endsWith('.node'));
    if (!file) return null;
    const mib = statSync(path.join(root, file)).size / 2 ** 20;
    return { file, mib: round(mib, 1), build: mib > 10 ? 'debug?' : 'release' };
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc; null elsewhere. */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100 on Linux)
  } catch {
    return null;
  }
}

/**
 * CPU seconds a process's live threads have used so far, to the nanosecond (each thread's schedstat under /proc/<pid>/task):
 * fine enough for phases of a second, where `cpuSeconds` counts in steps of 10 ms. Null elsewhere.
 */
function threadsCpuSeconds(pid) {
  try {
    let ns = 0;
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
      } catch {} // the thread ended meanwhile
    }
    return ns / 1e9;
  } catch {
    return null;
  }
}

/**
 * CPU the server and the load generator spend while connections open, summed over the phases between
 * `start()` and `stop()`; `perConnection(n)` gives each one's µs per connection.
 */
function connectingMeter(serverPid, loadgenPid) {
  const spent = { server: 0, loadgen: 0 };
  let from = null;
  const read = () => ({ server: threadsCpuSeconds(serverPid), loadgen: threadsCpuSeconds(loadgenPid) });
  const us = (seconds, n) => (seconds > 0 && n > 0 ? round((seconds / n) * 1e6, 1) : null);
  return {
    start: () => (from = read()),
    stop: () => {
      const to = read();
      for (const who of ['server', 'loadgen']) {
        const known = spent[who] !== null && from?.[who] != null && to[who] !== null;
        spent[who] = known ? spent[who] + to[who] - from[who] : null;
      }
      from = null;
    },
    perConnection: (n) => ({ server_us_per_connect: us(spent.server, n), loadgen_us_per_connect: us(spent.loadgen, n) }),
  };
}

/** Busy and total CPU time of the whole machine so far, in seconds, from /proc/stat; null elsewhere. */
function machineCpu() {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0); // user..steal (guest time is inside user)
    const idle = fields[3] + fields[4]; // idle + iowait
    return { busy: (total - idle) / 100, total: total / 100 };
  } catch {
    return null;
  }
}

/** Cores used by other processes above which a run counts as disturbed (and the machine as busy). */
const DISTURBED = 0.25;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits (at most `seconds`) until the machine is nearly idle (under 0.25 cores busy over one second), so that a
 * build or test run elsewhere does not land in the middle of a measurement. Returns the seconds waited.
 */
async function waitForIdle(seconds, tag) {
  if (!(seconds > 0) || machineCpu() === null) return 0;
  const started = performance.now();
  let warned = false;
  for (;;) {
    const a = machineCpu();
    await sleep(1000);
    const b = machineCpu();
    const busyCores = b.busy - a.busy;
    const waited = (performance.now() - started) / 1000;
    if (busyCores < DISTURBED || waited >= seconds) {
      if (warned) console.log(waited >= seconds ? 'still busy; going on' : `idle after ${Math.round(waited)} s`);
      return waited;
    }
    if (!warned) process.stdout.write(`${tag} machine busy (${busyCores.toFixed(2)} cores), waiting... `);
    warned = true;
  }
}

/** Peak resident memory of a process in MiB, from /proc; null elsewhere. */
function peakRssMiB(pid) {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Math.round(Number(match[1]) / 1024) : null;
  } catch {
    return null;
  }
}

/** Resident memory of a process now, in KiB (VmRSS from /proc); null elsewhere. */
function rssKiB(pid) {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/**
 * How fast one core of the machine is right now: the time one unit of fixed JavaScript work takes (a JSON text
 * of 40 requests parsed and each request written back), the best of 60 short slices, in µs. A VM's speed can
 * move by 2× between runs a few hours apart, and not every ratio moves with it the same way, so each run records
 * it at its start and end: runs are comparable only at a similar speed.
 */
function coreSpeed() {
  const text = JSON.stringify(
    Array.from({ length: 40 }, (_, id) => ({ type: 'request', id, method: 'echo', payload: { name: 'bench', n: id, tags: ['a', 'b'], ok: true } })),
  );
  let best = Infinity;
  // The first slices warm the JIT up; the best of many keeps out what else the machine did meanwhile.
  for (let slice = 0; slice < 60; slice++) {
    const units = 100;
    const start = performance.now();
    for (let unit = 0; unit < units; unit++) {
      for (const request of JSON.parse(text)) JSON.stringify({ echo: request.payload, at: 'bench' });
    }
    best = Math.min(best, ((performance.now() - start) * 1000) / units);
  }
  return round(best, 1);
}

/** The open-file hard limit (`ulimit -Hn`) servers and the load generator can raise themselves to; null if unknown. */
function fdHardLimit() {
  try {
    const out = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
    return out === 'unlimited' ? Infinity : Number(out);
  } catch {
    return null;
  }
}

// Servers start through a shell that raises the open-file soft limit to the hard limit (every connection is a
// file descriptor), then `exec`s the runtime, so the pid is the server's own.
const RAISE_FDS = 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"';

async function startServer(name, o, env = {}) {
  const spec = SERVERS[name];
  const child = spawn('sh', ['-c', RAISE_FDS, spec.cmd, ...spec.args], {
    cwd: here,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', ...spec.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  const watchers = new Set();
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    stdout = (stdout + d).slice(-4000);
    for (const watch of watchers) watch(d);
  });
  /** Resolves with the match once what the server prints from now on (after `seen`) matches, or null after `ms`. */
  const waitFor = (pattern, ms, seen = '') =>
    new Promise((resolve) => {
      let text = seen;
      let timer = null;
      const check = (chunk) => {
        text = (text + chunk).slice(-4000);
        const match = pattern.exec(text);
        if (!match) return false;
        watchers.delete(check);
        clearTimeout(timer);
        resolve(match);
        return true;
      };
      if (check('')) return;
      watchers.add(check);
      timer = setTimeout(() => {
        watchers.delete(check);
        resolve(null);
      }, ms);
    });
  const port = await new Promise((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`${name}: ${e.message}`)));
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code} before listening\n${stderr}`)));
    waitFor(/listening (\d+)/, 20_000, stdout).then((match) =>
      match ? resolve(Number(match[1])) : reject(new Error(`${name} did not start in 20 s\n${stderr}`)),
    );
  });
  child.removeAllListeners('exit');
  /** Asks the server for a full GC (servers/gc.mjs) and waits for it: true when done. */
  const gc = async () => {
    child.kill('SIGUSR2');
    const match = await waitFor(/gc (done|unavailable)/, 10_000);
    return match?.[1] === 'done';
  };
  return { child, port, stderr: () => stderr, gc };
}

async function stopServer({ child }) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Runs the load generator. Its stderr lines `progress ...` go to `progress`; a stdout JSON line with an `event`
 * goes to `onEvent`; the last stdout line is the result. `stdin` stays open (for the idle scenario's hold) and is
 * ended by `release()`.
 */
function startLoadgen(args, { progress = () => {}, onEvent = () => {} } = {}) {
  const child = spawn(loadgen, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let pendingErr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    const start = out.length;
    out += d;
    const complete = out.slice(0, out.lastIndexOf('\n') + 1);
    for (const line of complete.slice(start > 0 ? out.lastIndexOf('\n', start - 1) + 1 : 0).split('\n')) {
      if (line.startsWith('{"') && line.includes('"event":')) {
        try {
          onEvent(JSON.parse(line));
        } catch {}
      }
    }
  });
  child.stderr.on('data', (d) => {
    err = (err + d).slice(-4000);
    pendingErr += d;
    const lines = pendingErr.split('\n');
    pendingErr = lines.pop();
    for (const line of lines) if (line.startsWith('progress ')) progress(line.slice('progress '.length));
  });
  child.stdin.on('error', () => {});
  const result = new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', () => {
      const line = out.trim().split('\n').pop();
      try {
        const value = JSON.parse(line);
        if (value.event) throw new Error('no final result');
        resolve(value);
      } catch {
        reject(new Error(`loadgen printed no result: ${err || out}`));
      }
    });
  });
  return { child, result, release: () => child.stdin.end() };
}

const runLoadgen = (args, hooks) => startLoadgen(args, hooks).result;

// ---------------------------------------------------------------------------------------------------------------
// Scenarios

function loadgenArgs(scenario, url, protocol, o) {
  const common = ['--url', url, '--protocol', protocol, '--threads', o.threads];
  const timed = [...common, '--duration', o.duration, '--warmup', o.warmup];
  if (scenario === 'rpc') return ['rpc', ...timed, '--connections', o.connections, '--inflight', o.inflight].map(String);
  if (scenario === 'resume') {
    return [
      'resume', ...common, '--clients', o['resume-clients'], '--interval-ms', o['resume-interval'],
      '--away', o['resume-away'], '--connect-concurrency', o['connect-concurrency'],
    ].map(String);
  }
  return [
    'fanout', ...timed,
    '--subscribers', o.subscribers, '--window', o.window, '--latency-duration', o['latency-duration'],
  ].map(String);
}

/**
 * Measures a run's CPU: the server's, the load generator's (it reports its own) and everyone else's ("other"),
 * and the server's peak RSS. `finish(result)` fills them in.
 */
function cpuMeter(pid) {
  const wallStart = performance.now();
  const cpuStart = cpuSeconds(pid);
  const machineStart = machineCpu();
  return (result) => {
    const cpuEnd = cpuSeconds(pid);
    const machineEnd = machineCpu();
    const wall = (performance.now() - wallStart) / 1000;
    result.server_cpu_cores = cpuStart === null || cpuEnd === null ? null : round((cpuEnd - cpuStart) / wall, 2);
    // CPU used by everything else on the machine during the run: high values mean the run was disturbed.
    if (machineStart && machineEnd && result.server_cpu_cores !== null && typeof result.loadgen_cpu_cores === 'number') {
      const machine = (machineEnd.busy - machineStart.busy) / wall;
      result.other_cpu_cores = round(Math.max(0, machine - result.server_cpu_cores - result.loadgen_cpu_cores), 2);
    }
    result.server_peak_rss_mib = peakRssMiB(pid);
  };
}

/** A self-signed certificate for 127.0.0.1 in a new temporary folder (--tls): the PEM files' paths. */
function makeCertificate() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'helios-bench-tls-'));
  const files = { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    // Not a CA's: rustls refuses a CA's certificate as a server's own.
    '-addext', 'basicConstraints=critical,CA:FALSE',
    '-keyout', files.key, '-out', files.cert,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  return files;
}

/** With --tls: the servers' certificate and key, and the load generator's trust in them. */
const tlsEnv = (o) => (o.certificate ? { TLS_CERT: o.certificate.cert, TLS_KEY: o.certificate.key } : {});
const tlsArgs = (o) => (o.certificate ? ['--ca', o.certificate.cert] : []);
const serverUrl = (server, o) => `${o.certificate ? 'wss' : 'ws'}://127.0.0.1:${server.port}/`;

async function runOnce(job, name, o, progress) {
  if (job.scenario === 'idle') return runIdle(job, name, o, progress);
  const server = await startServer(name, o, { ...(job.scenario === 'resume' ? { SESSIONS: '1' } : {}), ...tlsEnv(o) });
  const url = serverUrl(server, o);
  const finish = cpuMeter(server.child.pid);
  let result;
  try {
    result = await runLoadgen([...loadgenArgs(job.scenario, url, SERVERS[name].protocol, o), ...tlsArgs(o)], { progress });
  } catch (e) {
    result = { fatal: e.message };
  }
  finish(result);
  if (job.scenario === 'resume' && !result.fatal) result.throughput = null;
  if (server.child.exitCode !== null) result.fatal ??= `server exited with ${server.child.exitCode}: ${server.stderr()}`;
  await stopServer(server);
  return result;
}

/**
 * Connection scale: the server's RSS after a full GC, before connecting and again with `job.connections` idle
 * connections open and settled; RSS per connection is the difference over the connections still open. The
 * same is read at half the connections, for the second half's cost per connection (the marginal cost). Every
 * server gets the same treatment: start, 1 s, GC, read; connect half; --settle s, GC, 1 s, read; connect the
 * rest; --settle s, GC, 1 s, read.
 */
async function runIdle(job, name, o, progress) {
  const server = await startServer(name, o, tlsEnv(o));
  const url = serverUrl(server, o);
  const pid = server.child.pid;
  let result;
  try {
    await sleep(1000);
    const gcBase = await server.gc();
    await sleep(500);
    const baseKiB = rssKiB(pid);
    const finish = cpuMeter(pid);
    const events = { paused: deferred(), connected: deferred() };
    const half = Math.floor(job.connections / 2);
    const args = [
      'idle', '--url', url, '--protocol', SERVERS[name].protocol, '--threads', o.threads,
      '--connections', job.connections, '--connect-concurrency', o['connect-concurrency'],
      '--source-addresses', o['source-addresses'], '--pause-at', half, ...tlsArgs(o),
    ].map(String);
    const lg = startLoadgen(args, { progress, onEvent: (e) => events[e.event]?.resolve(e) });
    const connecting = connectingMeter(pid, lg.child.pid);
    connecting.start();
    const early = lg.result.then((r) => ({ early: r }));
    // Memory at half the connections too: the second half's cost per connection leaves out what the first
    // connections cost once (code paged in, pools, tables), so it is what each further connection costs.
    const paused = half > 0 ? await Promise.race([events.paused.promise, early]) : {};
    let mid = null;
    if (paused.early) {
      result = paused.early;
    } else {
      if (half > 0) {
        connecting.stop();
        progress(`${fmtInt(paused.connected)} open; settling ${o.settle} s, then GC and RSS`);
        mid = { open: paused.connected, ...(await settledRss(server, pid, o.settle)) };
        connecting.start();
        lg.child.stdin.write('\n');
      }
      const first = await Promise.race([events.connected.promise, early]);
      if (!first.early) connecting.stop();
      if (first.early) {
        result = first.early;
      } else {
        progress(`all open; settling ${o.settle} s, then GC and RSS`);
        const { beforeGcKiB, gc: gcOpen, kib: openKiB } = await settledRss(server, pid, o.settle);
        lg.release();
        result = await lg.result;
        finish(result);
        const open = result.open ?? 0;
        const perConnection = (from, fromOpen) =>
          open > fromOpen && from !== null && openKiB !== null ? round((openKiB - from) / (open - fromOpen), 2) : null;
        const marginal = mid && mid.gc ? perConnection(mid.kib, mid.open) : null;
        Object.assign(result, {
          gc: gcBase && gcOpen,
          rss_base_kib: baseKiB,
          rss_open_before_gc_kib: beforeGcKiB,
          rss_open_kib: openKiB,
          rss_per_connection_kib: perConnection(baseKiB, 0),
          connections_mid: mid?.open ?? null,
          rss_mid_kib: mid?.kib ?? null,
          rss_marginal_kib: marginal,
          // At 50,000 connections, with every connection past this run's costing the marginal figure.
          rss_at_50k_kib:
            marginal !== null && open < 50_000 && baseKiB !== null
              ? round((openKiB - baseKiB + (50_000 - open) * marginal) / 50_000, 2)
              : null,
          throughput: result.connect_rate,
          // What each side spends per handshake: the connect rate is the slower side's, this is each one's cost.
          ...connecting.perConnection(result.connected),
        });
      }
    }
  } catch (e) {
    result = { fatal: e.message };
  }
  if (server.child.exitCode !== null) result.fatal ??= `server exited with ${server.child.exitCode}: ${server.stderr()}`;
  await stopServer(server);
  return result;
}

/** Waits `settle` seconds, asks for a full GC, waits 1 s and reads the RSS. */
async function settledRss(server, pid, settle) {
  await sleep(settle * 1000);
  const beforeGcKiB = rssKiB(pid);
  const gc = await server.gc();
  await sleep(1000);
  return { beforeGcKiB, gc, kib: rssKiB(pid) };
}

function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

// ---------------------------------------------------------------------------------------------------------------
// Reporting

const round = (x, digits = 0) => (x === null || x === undefined ? null : Number(x.toFixed(digits)));

function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

const fmtInt = (x) => (x === null ? '—' : Math.round(x).toLocaleString('en-US'));
const fmtMs = (us) => (us === null ? '—' : (us / 1000).toFixed(us < 10_000 ? 2 : 1));
const fmtRatio = (x, digits = 2) => (x === null || x === undefined ? '—' : `${x.toFixed(digits)}×`);
const fmtNum = (x, d = 2) => (x === null ? '—' : x.toFixed(d));

/** One table of the suite: a scenario, and for `idle` one connection count. */
function jobsOf(o) {
  const jobs = [];
  for (const scenario of o.scenarios) {
    if (scenario === 'idle') {
      for (const connections of o.idleSizes) jobs.push({ key: `idle-${connections}`, scenario, connections });
    } else {
      jobs.push({ key: scenario, scenario });
    }
  }
  return jobs;
}

function describe(job, o) {
  switch (job.scenario) {
    case 'rpc':
      return `rpc: ${o.connections} connections × ${o.inflight} in flight, echo of a small JSON object`;
    case 'fanout':
      return (
        `fanout: ${o.subscribers} subscribers in one room, one publisher; ${o.window} broadcasts in flight, ` +
        `then ${o['latency-duration']} s of one at a time`
      );
    case 'idle':
      return (
        `idle: ${fmtInt(job.connections)} idle connections, ${o['connect-concurrency']} handshakes in flight; ` +
        `RSS per connection after a GC, connect rate`
      );
    default:
      return (
        `resume: ${o['resume-clients']} sessions in one room, a broadcast every ${o['resume-interval']} ms; ` +
        `all drop at once, ${o['resume-away']} s away, all resume at once`
      );
  }
}

function summarize(job, runs, serverNames) {
  const rows = serverNames.map((name) => {
    const all = runs.filter((r) => r.job === job.key && r.server === name);
    const mine = all.filter((r) => !r.result.fatal && !r.result.skipped);
    const pick = (key) => median(mine.map((r) => r.result[key]));
    const sum = (key) => (mine.length ? mine.reduce((total, r) => total + (r.result[key] ?? 0), 0) : null);
    return {
      server: name,
      label: SERVERS[name].label,
      runs: mine.length,
      failed: all.filter((r) => r.result.fatal).length,
      skipped: all.find((r) => r.result.skipped)?.result.skipped ?? null,
      throughput: pick('throughput'),
      p50_us: pick('p50_us'),
      p99_us: pick('p99_us'),
      latency_p50_us: pick('latency_p50_us'),
      latency_p99_us: pick('latency_p99_us'),
      errors: sum('errors'),
      server_cpu_cores: pick('server_cpu_cores'),
      loadgen_cpu_cores: pick('loadgen_cpu_cores'),
      other_cpu_cores: pick('other_cpu_cores'),
      server_peak_rss_mib: pick('server_peak_rss_mib'),
      disturbed: mine.filter((r) => r.result.disturbed).length,
      // idle
      connections: job.connections ?? null,
      open: pick('open'),
      connect_rate: pick('connect_rate'),
      connect_p99_us: pick('connect_p99_us'),
      server_us_per_connect: pick('server_us_per_connect'),
      loadgen_us_per_connect: pick('loadgen_us_per_connect'),
      rss_base_kib: pick('rss_base_kib'),
      rss_open_kib: pick('rss_open_kib'),
      rss_per_connection_kib: pick('rss_per_connection_kib'),
      rss_marginal_kib: pick('rss_marginal_kib'),
      rss_at_50k_kib: pick('rss_at_50k_kib'),
      // resume
      resume_s: pick('resume_s'),
      resume_p50_us: pick('resume_p50_us'),
      resumed: pick('resumed'),
      lost: sum('lost'),
      duplicated: sum('duplicated'),
      out_of_order: sum('out_of_order'),
      gaps: sum('gaps'),
      recovery_failed: sum('recovery_failed'),
      replayed: pick('replayed'),
      broadcasts: pick('broadcasts'),
    };
  });
  // Ratios are paired: each round's throughput over the baseline's in the same round, then the median of those,
  // so a round that ran while the machine was slower counts against every server alike.
  for (const row of rows) {
    row.vs_bun_plain_rounds = pairedRatios(job, runs, row.server, BASELINE).map((x) => round(x, 2));
    row.vs_bun_plain = round(median(row.vs_bun_plain_rounds), 2);
  }
  // The second yardstick of RPC and fan-out: the server Node users pick most.
  if (job.scenario === 'rpc' || job.scenario === 'fanout') {
    for (const row of rows) {
      row.vs_socketio_rounds = pairedRatios(job, runs, row.server, SOCKETIO).map((x) => round(x, 1));
      row.vs_socketio = round(median(row.vs_socketio_rounds), 1);
    }
  }
  if (job.scenario === 'rpc') {
    const p99 = (result) => result.p99_us;
    for (const row of rows) row.p99_vs_bun_plain_rounds = pairedRatios(job, runs, row.server, BASELINE, p99).map((x) => round(x, 2));
  }
  return rows;
}

/** What each goal compares, round by round: a ratio of Helios over the other server that must be at least the
 * goal, or at most it (`most`); `wanted` says so in the printed line. */
const ASPECTS = {
  vs_bun_plain: { name: 'vs Bun.serve', digits: 2, wanted: (goal) => `≥ ${goal.toFixed(1)}×` },
  vs_socketio: { name: 'vs Socket.IO', digits: 1, wanted: (goal) => `≥ ${goal}×` },
  p99_vs_bun_plain: { name: "p99 over Bun.serve's", digits: 2, most: true, wanted: () => "at most Bun.serve's" },
};

/**
 * Helios's goals against the other servers, as ratios in the same round: RPC and fan-out at least Bun.serve's
 * and 10× and 5× Socket.IO's, RPC's p99 at most Bun.serve's, connects at least Bun.serve's rate.
 */
const GOALS = {
  rpc: { vs_bun_plain: 1, vs_socketio: 10, p99_vs_bun_plain: 1 },
  fanout: { vs_bun_plain: 1, vs_socketio: 5 },
  idle: { vs_bun_plain: 1 },
};

/** Under a table of several rounds: each Helios server's per-round ratios, and in how many rounds each goal held. */
function printRounds(job, rows) {
  for (const row of rows) {
    if (!row.server.startsWith('helios')) continue;
    const parts = [];
    for (const [key, goal] of Object.entries(GOALS[job.scenario] ?? {})) {
      const ratios = row[`${key}_rounds`];
      if (!ratios || ratios.length < 2) continue;
      const { name, digits, most, wanted } = ASPECTS[key];
      const met = ratios.filter((x) => (most ? x <= goal : x >= goal)).length;
      parts.push(`${name} ${ratios.map((x) => fmtRatio(x, digits)).join(' ')} (${wanted(goal)} in ${met} of ${ratios.length})`);
    }
    if (parts.length) console.log(`  ${row.label}, per round: ${parts.join('; ')}`);
  }
}

function printTable(job, title, rows) {
  const columns = {
    rpc: [
      ['round trips/s', (r) => fmtInt(r.throughput)],
      ['vs Bun.serve', (r) => fmtRatio(r.vs_bun_plain)],
      ['vs Socket.IO', (r) => fmtRatio(r.vs_socketio, 1)],
      ['p50 ms', (r) => fmtMs(r.p50_us)],
      ['p99 ms', (r) => fmtMs(r.p99_us)],
    ],
    fanout: [
      ['deliveries/s', (r) => fmtInt(r.throughput)],
      ['vs Bun.serve', (r) => fmtRatio(r.vs_bun_plain)],
      ['vs Socket.IO', (r) => fmtRatio(r.vs_socketio, 1)],
      ['p99 ms loaded', (r) => fmtMs(r.p99_us)],
      ['p50 ms 1-by-1', (r) => fmtMs(r.latency_p50_us)],
      ['p99 ms 1-by-1', (r) => fmtMs(r.latency_p99_us)],
    ],
    idle: [
      ['open', (r) => fmtInt(r.open)],
      ['KiB RSS per conn', (r) => fmtNum(r.rss_per_connection_kib)],
      ['KiB 2nd half', (r) => fmtNum(r.rss_marginal_kib)],
      ['KiB est. 50k', (r) => fmtNum(r.rss_at_50k_kib)],
      ['RSS MiB before', (r) => (r.rss_base_kib === null ? '—' : (r.rss_base_kib / 1024).toFixed(0))],
      ['RSS MiB open', (r) => (r.rss_open_kib === null ? '—' : (r.rss_open_kib / 1024).toFixed(0))],
      ['connects/s', (r) => fmtInt(r.connect_rate)],
      ['vs Bun.serve', (r) => fmtRatio(r.vs_bun_plain)],
      ['p99 ms connect', (r) => fmtMs(r.connect_p99_us)],
      ['server µs/connect', (r) => fmtNum(r.server_us_per_connect, 1)],
      ['loadgen µs/connect', (r) => fmtNum(r.loadgen_us_per_connect, 1)],
    ],
    resume: [
      ['resumed', (r) => fmtInt(r.resumed)],
      ['all resumed s', (r) => fmtNum(r.resume_s)],
      ['p50 ms', (r) => fmtMs(r.resume_p50_us)],
      ['lost', (r) => fmtInt(r.lost)],
      ['duplicated', (r) => fmtInt(r.duplicated)],
      ['gaps', (r) => fmtInt(r.gaps)],
      ['replayed/client', (r) => (r.replayed === null || !r.resumed ? '—' : (r.replayed / r.resumed).toFixed(0))],
    ],
  }[job.scenario];
  const head = ['server', ...columns.map(([h]) => h), 'errors', 'server CPU', 'loadgen CPU', 'other CPU', 'peak RSS MiB'];
  const body = rows
    .filter((r) => !r.skipped || r.runs)
    .map((r) => [
      r.label + (r.failed ? ` (${r.failed} failed)` : '') + (r.disturbed ? ` (${r.disturbed} disturbed)` : ''),
      ...columns.map(([, cell]) => cell(r)),
      r.errors === null ? '—' : String(r.errors),
      fmtNum(r.server_cpu_cores),
      fmtNum(r.loadgen_cpu_cores),
      fmtNum(r.other_cpu_cores),
      r.server_peak_rss_mib === null ? '—' : String(r.server_peak_rss_mib),
    ]);
  const skipped = rows.filter((r) => r.skipped && !r.runs);
  console.log(`\n${title}`);
  if (body.length) {
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
    const line = (cells) => '| ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ') + ' |';
    console.log(line(head));
    console.log('|' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|');
    for (const b of body) console.log(line(b));
  }
  for (const r of skipped) console.log(`  ${r.label}: skipped (${r.skipped})`);
}

const clock = (ms) => {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};

/** Why `name` cannot run `job` on this machine, or null. */
function skipReason(job, name, fdLimit, o) {
  if (o.tls && !SERVERS[name].tls) return 'not served over TLS by this suite';
  if (job.scenario === 'resume' && !SERVERS[name].resume) return 'no session recovery: a new connection starts from scratch';
  if (job.scenario === 'idle' && fdLimit !== null && job.connections + 100 > fdLimit) {
    return `${fmtInt(job.connections)} connections need about ${fmtInt(job.connections + 100)} open files per process; the hard limit (ulimit -Hn) is ${fmtInt(fdLimit)}`;
  }
  return null;
}

/** The one-line summary of a finished run. */
function resultLine(job, result) {
  const errors = `${result.errors ? `, ${result.errors} errors (${result.first_error})` : ''}`;
  const disturbed = result.disturbed ? `, DISTURBED: other processes used ${fmtNum(result.other_cpu_cores)} cores` : '';
  switch (job.scenario) {
    case 'rpc':
    case 'fanout': {
      const latency =
        job.scenario === 'rpc'
          ? `p50 ${fmtMs(result.p50_us)} ms, p99 ${fmtMs(result.p99_us)} ms`
          : `p99 loaded ${fmtMs(result.p99_us)} ms, 1-by-1 p50 ${fmtMs(result.latency_p50_us)} ms p99 ${fmtMs(result.latency_p99_us)} ms`;
      return (
        `${fmtInt(result.throughput).padStart(9)} ${job.scenario === 'rpc' ? 'round trips/s' : 'deliveries/s'}, ${latency}` +
        `${errors}, server CPU ${fmtNum(result.server_cpu_cores)}${disturbed}`
      );
    }
    case 'idle':
      return (
        `${fmtInt(result.open)} open, ${fmtNum(result.rss_per_connection_kib)} KiB RSS per connection ` +
        `(${fmtInt(result.rss_base_kib / 1024)} → ${fmtInt(result.rss_open_kib / 1024)} MiB${result.gc ? ', after GC' : ', NO GC'}; ` +
        `second half ${fmtNum(result.rss_marginal_kib)} KiB each), ` +
        `${fmtInt(result.connect_rate)} connects/s${errors}${disturbed}`
      );
    default:
      return (
        `${result.resumed}/${result['clients'] ?? '?'} resumed in ${fmtNum(result.resume_s)} s, ` +
        `lost ${result.lost}, duplicated ${result.duplicated}, gaps ${result.gaps}, ` +
        `replayed ${result.replayed} in all${errors}${disturbed}`
      );
  }
}

/** With --addon-b: prints and returns, per runtime, the per-round ratios of build A over build B. */
function compareBuilds(job, runs, serverNames) {
  let compared = null;
  for (const a of ['helios-bun', 'helios-node']) {
    if (!serverNames.includes(a) || !serverNames.includes(`${a}-b`)) continue;
    const ratios = pairedRatios(job, runs, a, `${a}-b`);
    if (!ratios.length) continue;
    const cpu = pairedRatios(job, runs, a, `${a}-b`, cpuPerOp);
    (compared ??= {})[a] = {
      ratios: ratios.map((x) => round(x, 3)),
      median: round(median(ratios), 3),
      cpu_per_op_ratios: cpu.map((x) => round(x, 3)),
      cpu_per_op_median: round(median(cpu), 3),
    };
    const list = (xs) => xs.map((x) => `${x.toFixed(2)}×`).join(', ');
    console.log(
      `${SERVERS[a].label}, A over B per round: ${list(ratios)} (median ${median(ratios).toFixed(2)}×, ahead in ` +
        `${ratios.filter((x) => x > 1).length} of ${ratios.length}); server CPU per operation ${list(cpu)} ` +
        `(median ${median(cpu).toFixed(2)}×)`,
    );
  }
  return compared;
}

// ---------------------------------------------------------------------------------------------------------------

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const addonB = o['addon-b'] ? addBuildB(o['addon-b']) : null;
  const serverNames = o.servers.split(',').map((s) => s.trim()).filter(Boolean);
  for (const name of serverNames) {
    if (!SERVERS[name]) throw new Error(`unknown server '${name}'; known: ${Object.keys(SERVERS).join(', ')}`);
  }
  if (!existsSync(loadgen)) {
    throw new Error(`no load generator at ${loadgen}: run \`cargo build --release\` in bench/loadgen (npm run bench does)`);
  }
  const jobs = jobsOf(o);
  const fdLimit = fdHardLimit();
  if (o.tls) o.certificate = makeCertificate();

  const cpus = os.cpus();
  const machine = {
    cores: cpus.length,
    cpu: cpus[0]?.model?.trim() ?? 'unknown',
    memory_gib: round(os.totalmem() / 2 ** 30, 1),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    bun: await version(bun),
    helios_commit: gitDescribe(),
    addon: addonInfo(),
    addon_b: addonB,
    fd_hard_limit: fdLimit === Infinity ? 'unlimited' : fdLimit,
    core_speed_us: { start: coreSpeed(), end: null },
  };
  console.log(`machine: ${machine.cores} cores, ${machine.cpu}, ${machine.memory_gib} GiB, ${machine.os}`);
  console.log(`runtimes: node ${machine.node}, bun ${machine.bun}; load generator: ${o.threads} thread(s); open files: ${machine.fd_hard_limit}`);
  console.log(`core speed: ${machine.core_speed_us.start} µs per unit of fixed JSON work (lower is faster; compare runs at a similar speed)`);
  console.log(`helios: commit ${machine.helios_commit ?? '?'}, addon ${machine.addon ? `${machine.addon.file} (${machine.addon.mib} MiB)` : 'not built'}`);
  if (addonB) console.log(`helios B: addon ${addonB}`);
  if (machine.addon?.build !== 'release' && serverNames.some((n) => n.startsWith('helios'))) {
    console.log('warning: the addon looks like a debug build; `npm run build` makes the release build the numbers are for');
  }
  console.log(
    `plan: ${jobs.map((j) => j.key).join(' + ')} × ${serverNames.join(', ')} × ${o.rounds} round(s)` +
      (o.tls ? ' over TLS' : '') +
      (o.quick ? ' (--quick)' : ''),
  );

  const runs = [];
  const started = new Date();
  const t0 = performance.now();
  for (const [index, job] of jobs.entries()) {
    console.log(`\n[${clock(performance.now() - t0)}] ${index + 1}/${jobs.length} ${describe(job, o)}`);
    for (let r = 1; r <= o.rounds; r++) {
      for (const name of r % 2 === 1 ? serverNames : [...serverNames].reverse()) {
        const skipped = skipReason(job, name, fdLimit, o);
        if (skipped) {
          if (r === 1) console.log(`  [${job.key}] ${SERVERS[name].label}: skipped (${skipped})`);
          runs.push({ job: job.key, scenario: job.scenario, round: r, server: name, result: { skipped } });
          continue;
        }
        const tag = `  [${job.key} ${r}/${o.rounds}] ${SERVERS[name].label.padEnd(19)}`;
        let result;
        for (let attempt = 0; ; attempt++) {
          await waitForIdle(o['idle-wait'], tag);
          const runStart = performance.now();
          process.stdout.write(`${tag} [${clock(runStart - t0)}] `);
          // Progress lines from the load generator, and a heartbeat when it has been quiet for 5 s.
          let lineOpen = true;
          let quietSince = performance.now();
          const say = (text) => {
            if (lineOpen) process.stdout.write('\n');
            lineOpen = false;
            console.log(`      ${((performance.now() - runStart) / 1000).toFixed(1).padStart(5)} s  ${text}`);
            quietSince = performance.now();
          };
          const heartbeat = setInterval(() => {
            if (performance.now() - quietSince >= 5000) say('running');
          }, 1000);
          try {
            result = await runOnce(job, name, o, say);
          } finally {
            clearInterval(heartbeat);
          }
          if (!lineOpen) process.stdout.write(`${tag} `);
          result.attempts = attempt + 1;
          result.disturbed = result.other_cpu_cores > DISTURBED;
          if (!result.disturbed || result.fatal || attempt >= o.retries) break;
          console.log(`disturbed: other processes used ${fmtNum(result.other_cpu_cores)} cores; running it again`);
        }
        runs.push({ job: job.key, scenario: job.scenario, round: r, server: name, result });
        console.log(result.fatal ? `FAILED: ${result.fatal.split('\n')[0]}` : resultLine(job, result));
      }
    }
  }

  machine.core_speed_us.end = coreSpeed();
  const summary = {};
  // Build A over build B, per scenario and runtime (with --addon-b).
  const ab = {};
  const speed = machine.core_speed_us;
  console.log(
    `\nmedians over ${o.rounds} round(s); machine: ${machine.cores} cores (${machine.cpu}), core speed ${speed.start} → ` +
      `${speed.end} µs per unit; suite took ${clock(performance.now() - t0)}`,
  );
  const disturbed = runs.filter((r) => r.result.disturbed).length;
  if (disturbed) console.log(`warning: ${disturbed} run(s) stayed disturbed by other processes (see "other CPU")`);
  for (const job of jobs) {
    summary[job.key] = summarize(job, runs, serverNames);
    const title = {
      rpc: `RPC round trips (${o.connections} connections × ${o.inflight} in flight)`,
      fanout:
        `Fan-out (${o.subscribers} subscribers; deliveries/s and "loaded" latency with ${o.window} broadcasts in flight, ` +
        `"1-by-1" latency with one broadcast at a time)`,
      idle: `Connection scale (${fmtInt(job.connections)} idle connections, ${o['connect-concurrency']} handshakes in flight)`,
      resume:
        `Session recovery (${o['resume-clients']} sessions drop at once and resume at once; a broadcast every ` +
        `${o['resume-interval']} ms, ${o['resume-away']} s away; lost and duplicated summed over rounds)`,
    }[job.scenario];
    printTable(job, o.tls ? `${title}, over TLS` : title, summary[job.key]);
    printRounds(job, summary[job.key]);
    const compared = compareBuilds(job, runs, serverNames);
    if (compared) ab[job.key] = compared;
  }
  console.log(
    `CPU columns: cores busy during the run (1.00 = one core; the machine has ${machine.cores}); ` +
      `"other" is everything else on the machine, which should be near 0.`,
  );

  const out = o.out || path.join(here, 'results', `${started.toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ started: started.toISOString(), machine, options: { ...o, certificate: undefined }, jobs, summary, ab, runs }, null, 2) + '\n');
  console.log(`\nwrote ${path.relative(process.cwd(), out)}`);
  if (o.certificate) rmSync(path.dirname(o.certificate.cert), { recursive: true, force: true });
}

main().catch((e) => {
  console.error(`bench: ${e.message}`);
  process.exit(1);
});
