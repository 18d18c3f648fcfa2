// Draws the benchmark chart (SVG) from a results file of bench/run.mjs:
//
//   node bench/chart.mjs bench/results/<time>.json [more.json ...] [--note TEXT] > bench/chart.svg
//
// With several files, each scenario is taken from the last file that has it (for example a clean rerun of one
// scenario); the machine line names every commit and date. --note adds TEXT to that line (for example that the
// machine was shared with other work).
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const noteAt = args.indexOf('--note');
const note = noteAt >= 0 ? args[noteAt + 1] ?? '' : '';
const files = noteAt >= 0 ? [...args.slice(0, noteAt), ...args.slice(noteAt + 2)] : args;
if (files.length === 0 || files.some((f) => f.startsWith('-'))) {
  const help = files.includes('--help') || files.includes('-h');
  (help ? console.log : console.error)('usage: node bench/chart.mjs <results.json> [more.json ...] [--note TEXT] > chart.svg');
  process.exit(help ? 0 : 2);
}
const loaded = files.map((f) => JSON.parse(readFileSync(f, 'utf8')));
const summary = {};
const options = {};
for (const r of loaded) {
  Object.assign(summary, r.summary);
  if (r.summary.resume) options['resume-clients'] = r.options?.['resume-clients'];
}
const results = { options, started: loaded[0].started };
const { machine } = loaded[0];

const COLORS = {
  'helios-bun': '#e8590c',
  'helios-node': '#f59f00',
  'bun-plain': '#1c7ed6',
  'ws-node': '#5c940d',
  'socketio-node': '#862e9c',
};
const FALLBACK = ['#495057', '#c2255c', '#0b7285', '#5f3dc4'];

// The servers in the order of the run, with their labels.
const servers = [];
for (const rows of Object.values(summary)) {
  for (const row of rows) {
    if (!servers.some((s) => s.server === row.server)) servers.push({ server: row.server, label: row.label });
  }
}
servers.forEach((s, i) => (s.color = COLORS[s.server] ?? FALLBACK[i % FALLBACK.length]));

const compact = (x) => {
  if (x >= 1e6) return `${(x / 1e6).toFixed(x >= 1e7 ? 0 : 1)}M`;
  if (x >= 1e4) return `${Math.round(x / 1e3)}k`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)}k`;
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
};
const thousands = (n) => (n % 1000 === 0 ? `${n / 1000}k` : n.toLocaleString('en-US'));

/** A panel: groups of bars, one bar per server. */
function panel(title, note, groups, format = compact) {
  return { title, note, groups, format };
}

const idleKeys = Object.keys(summary).filter((k) => k.startsWith('idle-'));
const groupOf = (key, label, pick) => ({
  label,
  bars: servers.map((s) => {
    const row = summary[key]?.find((r) => r.server === s.server);
    const value = row ? pick(row) : null;
    return { ...s, value: typeof value === 'number' && Number.isFinite(value) ? value : null };
  }),
});

const panels = [];
if (summary.rpc) panels.push(panel('RPC round trips/s', 'higher is better', [groupOf('rpc', '', (r) => r.throughput)]));
if (summary.fanout) {
  panels.push(panel('Fan-out deliveries/s', 'higher is better', [groupOf('fanout', '', (r) => r.throughput)]));
}
if (idleKeys.length) {
  const sized = (pick) =>
    idleKeys
      .filter((k) => summary[k].some((r) => typeof pick(r) === 'number'))
      .map((k) => groupOf(k, `${thousands(Number(k.slice(5)))} conns`, pick));
  panels.push(panel('KiB RSS per idle connection', 'lower is better', sized((r) => r.rss_per_connection_kib)));
  panels.push(panel('Connects/s (handshake incl.)', 'higher is better', sized((r) => r.connect_rate)));
}
if (summary.resume) {
  const clients = results.options?.['resume-clients'];
  const group = groupOf('resume', '', (r) => r.resume_s);
  group.bars = group.bars.filter((b) => b.value !== null);
  // A server that did not resume every session gets its figure marked, with what it lost.
  for (const bar of group.bars) {
    const row = summary.resume.find((r) => r.server === bar.server);
    if (clients && row.resumed < clients) bar.mark = `${row.resumed}/${clients} resumed`;
    if (row.lost) bar.mark = `${bar.mark ? `${bar.mark}, ` : ''}${compact(row.lost)} lost`;
  }
  panels.push(
    panel(
      `Seconds to resume ${clients ? clients.toLocaleString('en-US') : 'all'} sessions`,
      'lower is better; messages lost must be 0',
      [group],
      (x) => x.toFixed(x < 1 ? 2 : 1),
    ),
  );
}

// Layout: panels side by side, each as wide as its bars need.
const BAR = 26;
const GAP = 4;
const GROUP_GAP = 18;
const PAD = 16;
const TOP = 64;
const PLOT = 190;
const width = (p) => Math.max(150, p.title.length * 6.6 + 24, p.groups.reduce((w, g) => w + g.bars.length * (BAR + GAP) - GAP + GROUP_GAP, -GROUP_GAP) + 2 * PAD);
const widths = panels.map(width);
const totalWidth = widths.reduce((a, b) => a + b, 0) + 20 * (panels.length + 1);
const legendY = 22;
const height = TOP + PLOT + 78;

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const out = [];
out.push(
  `<svg xmlns="http://www.w3.org/2000/svg" width="${totalWidth}" height="${height}" viewBox="0 0 ${totalWidth} ${height}" ` +
    `font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="11">`,
);
out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);

// Legend.
let lx = 20;
for (const s of servers) {
  out.push(`<rect x="${lx}" y="${legendY - 9}" width="11" height="11" fill="${s.color}"/>`);
  out.push(`<text x="${lx + 15}" y="${legendY}" fill="#212529">${esc(s.label)}</text>`);
  lx += 22 + s.label.length * 6.3;
}

let x = 20;
panels.forEach((p, i) => {
  const w = widths[i];
  const max = Math.max(0, ...p.groups.flatMap((g) => g.bars.map((b) => b.value ?? 0))) || 1;
  const base = TOP + PLOT;
  out.push(`<g>`);
  out.push(`<rect x="${x}" y="${TOP - 28}" width="${w}" height="${PLOT + 70}" fill="#f8f9fa" rx="4"/>`);
  out.push(`<text x="${x + w / 2}" y="${TOP - 13}" text-anchor="middle" font-weight="600" fill="#212529">${esc(p.title)}</text>`);
  out.push(`<text x="${x + w / 2}" y="${TOP}" text-anchor="middle" fill="#868e96" font-size="10">${esc(p.note)}</text>`);
  out.push(`<line x1="${x + PAD - 4}" y1="${base}" x2="${x + w - PAD + 4}" y2="${base}" stroke="#adb5bd"/>`);
  const inner = p.groups.reduce((s, g) => s + g.bars.length * (BAR + GAP) - GAP + GROUP_GAP, -GROUP_GAP);
  let bx = x + (w - inner) / 2;
  for (const g of p.groups) {
    const gx = bx;
    for (const b of g.bars) {
      if (b.value === null) {
        out.push(`<text x="${bx + BAR / 2}" y="${base - 4}" text-anchor="middle" fill="#adb5bd">—</text>`);
      } else {
        const h = Math.max(1, (b.value / max) * (PLOT - 24));
        out.push(
          `<rect x="${bx}" y="${(base - h).toFixed(1)}" width="${BAR}" height="${h.toFixed(1)}" fill="${b.color}">` +
            `<title>${esc(`${b.label}${g.label ? `, ${g.label}` : ''}: ${b.value}`)}</title></rect>`,
        );
        out.push(
          `<text x="${bx + BAR / 2}" y="${(base - h - 4).toFixed(1)}" text-anchor="middle" fill="#343a40" font-size="10">${esc(p.format(b.value))}</text>`,
        );
        if (b.mark) {
          // Written up the bar, so that it fits whatever its width.
          const y = base - 6;
          out.push(
            `<text x="${bx + BAR / 2 + 4}" y="${y}" transform="rotate(-90 ${bx + BAR / 2 + 4} ${y})" fill="#ffffff" font-size="10" font-weight="600">${esc(b.mark)}</text>`,
          );
        }
      }
      bx += BAR + GAP;
    }
    const gw = bx - GAP - gx;
    if (g.label) out.push(`<text x="${gx + gw / 2}" y="${base + 15}" text-anchor="middle" fill="#495057">${esc(g.label)}</text>`);
    bx += GROUP_GAP - GAP;
  }
  out.push(`</g>`);
  x += w + 20;
});

const distinct = (values) => [...new Set(values.filter(Boolean))].join(', ');
const rounds = distinct(loaded.map((r) => String(r.options?.rounds ?? '?')));
const speeds = distinct(loaded.map((r) => r.machine.core_speed_us?.start));
const machineLine =
  `${machine.cores} cores (${machine.cpu}), ${machine.memory_gib} GiB, ${machine.os}; Node ${machine.node}, Bun ${machine.bun}; ` +
  `Helios ${distinct(loaded.map((r) => r.machine.helios_commit ?? '?'))}; ${distinct(loaded.map((r) => (r.started ?? '').slice(0, 10)))}; ` +
  `median of ${rounds} round(s)` +
  (speeds ? `; core speed ${speeds} µs per unit` : '') +
  (note ? `; ${note}` : '');
out.push(`<text x="20" y="${height - 12}" fill="#495057" font-size="10.5">${esc(machineLine)}</text>`);
out.push('</svg>');
console.log(out.join('\n'));
