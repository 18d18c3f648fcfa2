// The benchmark suite: `npm run bench` (builds the addon and the load generator, then runs this file).
//
//   node bench/run.mjs [--scenario rpc|fanout|all] [--servers helios-bun,helios-node,bun-plain,ws-node,socketio-node]
//                      [--rounds 3] [--duration 5] [--warmup 1] [--connections 50] [--inflight 10]
//                      [--subscribers 1000] [--window 8] [--latency-duration 2] [--threads 1] [--idle-wait 60]
//                      [--retries 2] [--out FILE]
//
// Every run starts a fresh server process, drives it with the Rust load generator (bench/loadgen) and stops it.
// Servers are interleaved (A B C D, A B C D, ...) for --rounds rounds so that a machine that gets slower or
// faster during the suite affects every server alike; the table shows each server's median over its rounds and
// its ratio to plain Bun.serve (the median of the per-round ratios). Results (every run, the medians, the machine)
// go to bench/results/<time>.json. Before each run it waits (up to --idle-wait seconds) for the machine to be idle,
// and a run during which other processes used the CPU is repeated (up to --retries times).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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
  threads: 1,
  'idle-wait': 60,
  retries: 2,
  out: '',
};

function parseArgs(argv) {
  const options = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(0, 14).join('\n'));
      process.exit(0);
    }
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match || !(match[1] in defaults)) throw new Error(`unknown option ${arg} (try --help)`);
    const value = match[2] ?? argv[++i];
    if (value === undefined) throw new Error(`${arg} needs a value`);
    options[match[1]] = typeof defaults[match[1]] === 'number' ? Number(value) : value;
    if (Number.isNaN(options[match[1]])) throw new Error(`${arg}: not a number: ${value}`);
  }
  if (!['rpc', 'fanout', 'all'].includes(options.scenario)) throw new Error(`--scenario must be rpc, fanout or all`);
  return options;
}

// ---------------------------------------------------------------------------------------------------------------
// Servers and tools

const localBun = path.join(root, 'node_modules', '.bin', 'bun');
const bun = existsSync(localBun) ? localBun : 'bun';
const node = process.execPath;
const loadgen = path.join(here, 'loadgen', 'target', 'release', process.platform === 'win32' ? 'loadgen.exe' : 'loadgen');

const SERVERS = {
  'helios-bun': { label: 'Helios on Bun', cmd: bun, args: ['servers/helios.mjs'], protocol: 'helios' },
  'helios-node': { label: 'Helios on Node', cmd: node, args: ['servers/helios.mjs'], protocol: 'helios' },
  'bun-plain': { label: 'Bun.serve (JS)', cmd: bun, args: ['servers/bun-plain.mjs'], protocol: 'plain' },
  'ws-node': { label: 'ws on Node (JS)', cmd: node, args: ['servers/ws-node.mjs'], protocol: 'plain' },
  'socketio-node': { label: 'Socket.IO 4 on Node', cmd: node, args: ['servers/socketio-node.mjs'], protocol: 'socketio' },
};
const BASELINE = 'bun-plain';

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

async function startServer(name, o) {
  const spec = SERVERS[name];
  const child = spawn(spec.cmd, spec.args, {
    cwd: here,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start in 20 s\n${stderr}`)), 20_000);
    child.once('error', (e) => reject(new Error(`${name}: ${e.message}`)));
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code} before listening\n${stderr}`)));
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      const match = /listening (\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
  });
  child.removeAllListeners('exit');
  return { child, port, stderr: () => stderr };
}

async function stopServer({ child }) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

function runLoadgen(args, o) {
  return new Promise((resolve, reject) => {
    const child = spawn(loadgen, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.once('error', reject);
    child.once('exit', () => {
      const line = out.trim().split('\n').pop();
      try {
        resolve(JSON.parse(line));
      } catch {
        reject(new Error(`loadgen printed no result: ${err || out}`));
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios

function loadgenArgs(scenario, url, protocol, o) {
  const common = ['--url', url, '--protocol', protocol, '--duration', o.duration, '--warmup', o.warmup, '--threads', o.threads];
  if (scenario === 'rpc') return ['rpc', ...common, '--connections', o.connections, '--inflight', o.inflight].map(String);
  return [
    'fanout', ...common,
    '--subscribers', o.subscribers, '--window', o.window, '--latency-duration', o['latency-duration'],
  ].map(String);
}

async function runOnce(scenario, name, o) {
  const server = await startServer(name, o);
  const url = `ws://127.0.0.1:${server.port}/`;
  const wallStart = performance.now();
  const cpuStart = cpuSeconds(server.child.pid);
  const machineStart = machineCpu();
  let result;
  try {
    result = await runLoadgen(loadgenArgs(scenario, url, SERVERS[name].protocol, o), o);
  } catch (e) {
    result = { fatal: e.message };
  }
  const cpuEnd = cpuSeconds(server.child.pid);
  const machineEnd = machineCpu();
  const wall = (performance.now() - wallStart) / 1000;
  result.server_cpu_cores = cpuStart === null || cpuEnd === null ? null : round((cpuEnd - cpuStart) / wall, 2);
  // CPU used by everything else on the machine during the run: high values mean the run was disturbed.
  if (machineStart && machineEnd && result.server_cpu_cores !== null && typeof result.loadgen_cpu_cores === 'number') {
    const machine = (machineEnd.busy - machineStart.busy) / wall;
    result.other_cpu_cores = round(Math.max(0, machine - result.server_cpu_cores - result.loadgen_cpu_cores), 2);
  }
  result.server_peak_rss_mib = peakRssMiB(server.child.pid);
  if (server.child.exitCode !== null) result.fatal ??= `server exited with ${server.child.exitCode}: ${server.stderr()}`;
  await stopServer(server);
  return result;
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
const fmtRatio = (x) => (x === null ? '—' : `${x.toFixed(2)}×`);
const fmtNum = (x, d = 2) => (x === null ? '—' : x.toFixed(d));

function summarize(scenario, runs, serverNames) {
  const rows = serverNames.map((name) => {
    const mine = runs.filter((r) => r.scenario === scenario && r.server === name && !r.result.fatal);
    const failed = runs.filter((r) => r.scenario === scenario && r.server === name && r.result.fatal).length;
    const pick = (key) => median(mine.map((r) => r.result[key]));
    return {
      server: name,
      label: SERVERS[name].label,
      runs: mine.length,
      failed,
      throughput: pick('throughput'),
      p50_us: pick('p50_us'),
      p99_us: pick('p99_us'),
      latency_p50_us: pick('latency_p50_us'),
      latency_p99_us: pick('latency_p99_us'),
      errors: mine.reduce((sum, r) => sum + (r.result.errors ?? 0), 0),
      server_cpu_cores: pick('server_cpu_cores'),
      loadgen_cpu_cores: pick('loadgen_cpu_cores'),
      other_cpu_cores: pick('other_cpu_cores'),
      server_peak_rss_mib: pick('server_peak_rss_mib'),
      disturbed: mine.filter((r) => r.result.disturbed).length,
    };
  });
  // Ratios are paired: each round's throughput over the baseline's in the same round, then the median of those,
  // so a round that ran while the machine was slower counts against every server alike.
  for (const row of rows) {
    const ratios = [];
    for (const run of runs) {
      if (run.scenario !== scenario || run.server !== row.server || run.result.fatal) continue;
      const base = runs.find((b) => b.scenario === scenario && b.server === BASELINE && b.round === run.round);
      if (base && !base.result.fatal && base.result.throughput > 0) ratios.push(run.result.throughput / base.result.throughput);
    }
    row.vs_bun_plain = round(median(ratios), 2);
  }
  return rows;
}

function printTable(scenario, title, rows) {
  const rpc = scenario === 'rpc';
  const head = rpc
    ? ['server', 'round trips/s', 'vs Bun.serve', 'p50 ms', 'p99 ms', 'errors', 'server CPU', 'loadgen CPU', 'other CPU', 'RSS MiB']
    : ['server', 'deliveries/s', 'vs Bun.serve', 'p99 ms loaded', 'p50 ms 1-by-1', 'p99 ms 1-by-1', 'errors', 'server CPU', 'loadgen CPU', 'other CPU', 'RSS MiB'];
  const body = rows.map((r) => [
    r.label + (r.failed ? ` (${r.failed} failed)` : '') + (r.disturbed ? ` (${r.disturbed} disturbed)` : ''),
    fmtInt(r.throughput),
    fmtRatio(r.vs_bun_plain),
    ...(rpc ? [fmtMs(r.p50_us), fmtMs(r.p99_us)] : [fmtMs(r.p99_us), fmtMs(r.latency_p50_us), fmtMs(r.latency_p99_us)]),
    String(r.errors),
    fmtNum(r.server_cpu_cores),
    fmtNum(r.loadgen_cpu_cores),
    fmtNum(r.other_cpu_cores),
    r.server_peak_rss_mib === null ? '—' : String(r.server_peak_rss_mib),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => '| ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ') + ' |';
  console.log(`\n${title}`);
  console.log(line(head));
  console.log('|' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|');
  for (const b of body) console.log(line(b));
}

// ---------------------------------------------------------------------------------------------------------------

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const serverNames = o.servers.split(',').map((s) => s.trim()).filter(Boolean);
  for (const name of serverNames) {
    if (!SERVERS[name]) throw new Error(`unknown server '${name}'; known: ${Object.keys(SERVERS).join(', ')}`);
  }
  if (!existsSync(loadgen)) {
    throw new Error(`no load generator at ${loadgen}: run \`cargo build --release\` in bench/loadgen (npm run bench does)`);
  }
  const scenarios = o.scenario === 'all' ? ['rpc', 'fanout'] : [o.scenario];

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
  };
  console.log(`machine: ${machine.cores} cores, ${machine.cpu}, ${machine.memory_gib} GiB, ${machine.os}`);
  console.log(`runtimes: node ${machine.node}, bun ${machine.bun}; load generator: ${o.threads} thread(s)`);
  console.log(`helios: commit ${machine.helios_commit ?? '?'}, addon ${machine.addon ? `${machine.addon.file} (${machine.addon.mib} MiB)` : 'not built'}`);
  if (machine.addon?.build !== 'release' && serverNames.some((n) => n.startsWith('helios'))) {
    console.log('warning: the addon looks like a debug build; `npm run build` makes the release build the numbers are for');
  }
  console.log(
    `plan: ${scenarios.join(' + ')} × ${serverNames.join(', ')} × ${o.rounds} round(s), ` +
      `${o.warmup} s warm-up + ${o.duration} s per run`,
  );

  const runs = [];
  const started = new Date();
  for (const scenario of scenarios) {
    const desc =
      scenario === 'rpc'
        ? `rpc: ${o.connections} connections × ${o.inflight} in flight, echo of a small JSON object`
        : `fanout: ${o.subscribers} subscribers in one room, one publisher; ${o.window} broadcasts in flight, ` +
          `then ${o['latency-duration']} s of one at a time`;
    console.log(`\n${desc}`);
    for (let r = 1; r <= o.rounds; r++) {
      for (const name of serverNames) {
        const tag = `  [${scenario} ${r}/${o.rounds}] ${SERVERS[name].label.padEnd(19)}`;
        let result;
        for (let attempt = 0; ; attempt++) {
          await waitForIdle(o['idle-wait'], tag);
          process.stdout.write(`${tag} `);
          result = await runOnce(scenario, name, o);
          result.attempts = attempt + 1;
          result.disturbed = result.other_cpu_cores > DISTURBED;
          if (!result.disturbed || result.fatal || attempt >= o.retries) break;
          console.log(`disturbed: other processes used ${fmtNum(result.other_cpu_cores)} cores; running it again`);
        }
        runs.push({ scenario, round: r, server: name, result });
        if (result.fatal) {
          console.log(`FAILED: ${result.fatal.split('\n')[0]}`);
        } else {
          const latency =
            scenario === 'rpc'
              ? `p50 ${fmtMs(result.p50_us)} ms, p99 ${fmtMs(result.p99_us)} ms`
              : `p99 loaded ${fmtMs(result.p99_us)} ms, 1-by-1 p50 ${fmtMs(result.latency_p50_us)} ms p99 ${fmtMs(result.latency_p99_us)} ms`;
          console.log(
            `${fmtInt(result.throughput).padStart(9)} ${scenario === 'rpc' ? 'round trips/s' : 'deliveries/s'}, ${latency}` +
              `${result.errors ? `, ${result.errors} errors (${result.first_error})` : ''}` +
              `, server CPU ${fmtNum(result.server_cpu_cores)}` +
              (result.disturbed ? `, DISTURBED: other processes used ${fmtNum(result.other_cpu_cores)} cores` : ''),
          );
        }
      }
    }
  }

  const summary = {};
  console.log(`\nmedians over ${o.rounds} round(s); machine: ${machine.cores} cores (${machine.cpu})`);
  const disturbed = runs.filter((r) => r.result.disturbed).length;
  if (disturbed) console.log(`warning: ${disturbed} run(s) stayed disturbed by other processes (see "other CPU")`);
  for (const scenario of scenarios) {
    summary[scenario] = summarize(scenario, runs, serverNames);
    const title =
      scenario === 'rpc'
        ? `RPC round trips (${o.connections} connections × ${o.inflight} in flight)`
        : `Fan-out (${o.subscribers} subscribers; deliveries/s and "loaded" latency with ${o.window} broadcasts in flight, ` +
          `"1-by-1" latency with one broadcast at a time)`;
    printTable(scenario, title, summary[scenario]);
  }
  console.log(
    `CPU columns: cores busy during the run (1.00 = one core; the machine has ${machine.cores}); ` +
      `"other" is everything else on the machine, which should be near 0.`,
  );

  const out = o.out || path.join(here, 'results', `${started.toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ started: started.toISOString(), machine, options: o, summary, runs }, null, 2) + '\n');
  console.log(`\nwrote ${path.relative(process.cwd(), out)}`);
}

main().catch((e) => {
  console.error(`bench: ${e.message}`);
  process.exit(1);
});
