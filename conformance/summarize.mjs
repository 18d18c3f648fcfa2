// Summarizes an Autobahn|Testsuite fuzzingclient report (index.json): counts per behavior, the cases that
// are not OK with what the report says about them, written as Markdown to --out and printed. Exits 1 when
// any case FAILED (its behavior or its closing behavior) or fewer cases than --expect were reported, 2 on bad
// input.
//
//   bun conformance/summarize.mjs --index conformance/reports/index.json --out docs/conformance.md
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
if (!args.index) {
  console.error('usage: summarize.mjs --index <index.json> [--out <file.md>] [--command <cmd>] [--seconds <n>]');
  process.exit(2);
}

const BEHAVIORS = ['OK', 'NON-STRICT', 'INFORMATIONAL', 'UNIMPLEMENTED', 'FAILED'];
const index = JSON.parse(readFileSync(args.index, 'utf8'));
const agents = Object.keys(index);
if (agents.length !== 1) {
  console.error(`expected one agent in ${args.index}, found ${agents.length}`);
  process.exit(2);
}
const agent = agents[0];
const byId = (a, b) => {
  const x = a.split('.').map(Number), y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? -1) !== (y[i] ?? -1)) return (x[i] ?? -1) - (y[i] ?? -1);
  return 0;
};
const cases = Object.entries(index[agent]).sort(([a], [b]) => byId(a, b));
if (cases.length === 0) {
  console.error('the report has no cases');
  process.exit(2);
}

// A case's overall outcome: the worse of its behavior and its closing behavior.
const rank = (b) => ({ OK: 0, INFORMATIONAL: 1, 'NON-STRICT': 2, UNIMPLEMENTED: 3, FAILED: 4 })[b] ?? 4;
const counts = Object.fromEntries(BEHAVIORS.map((b) => [b, 0]));
const closeCounts = Object.fromEntries(BEHAVIORS.map((b) => [b, 0]));
const sections = new Map();
const notOk = [];
for (const [id, c] of cases) {
  counts[c.behavior] = (counts[c.behavior] ?? 0) + 1;
  closeCounts[c.behaviorClose] = (closeCounts[c.behaviorClose] ?? 0) + 1;
  const section = id.split('.')[0];
  const s = sections.get(section) ?? Object.fromEntries(BEHAVIORS.map((b) => [b, 0]));
  const overall = rank(c.behaviorClose) > rank(c.behavior) ? c.behaviorClose : c.behavior;
  s[overall] = (s[overall] ?? 0) + 1;
  sections.set(section, s);
  if (c.behavior !== 'OK' || c.behaviorClose !== 'OK') {
    let detail = {};
    const file = c.reportfile && join(dirname(args.index), c.reportfile);
    if (file && existsSync(file)) {
      try {
        const r = JSON.parse(readFileSync(file, 'utf8'));
        detail = { description: r.description, expectation: r.expectation, result: r.result, resultClose: r.resultClose,
          expected: r.expected, received: r.received, localCloseCode: r.localCloseCode, remoteCloseCode: r.remoteCloseCode };
      } catch {}
    }
    notOk.push({ id, behavior: c.behavior, behaviorClose: c.behaviorClose, remoteCloseCode: c.remoteCloseCode, duration: c.duration, ...detail });
  }
}
const failed = notOk.filter((c) => c.behavior === 'FAILED' || c.behaviorClose === 'FAILED');
// Cases wstest meant to run but did not report (it stopped early): they count as failures.
const expected = Number(args.expect ?? 0);
const missing = expected > cases.length ? expected - cases.length : 0;

const oneLine = (v, max = 300) => {
  const s = (typeof v === 'string' ? v : JSON.stringify(v) ?? '').replace(/\s+/g, ' ').replace(/\|/g, '\\|');
  return s.length > max ? s.slice(0, max) + '…' : s;
};
const stripHtml = (text) => String(text ?? '').replace(/<br\s*\/?>/gi, ' ').replace(/<[^>]+>/g, '');
const md = [];
md.push('# WebSocket conformance (Autobahn|Testsuite)', '');
md.push(`Run on ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} with \`${args.command ?? 'npm run conformance'}\` ` +
  `(\`conformance/run.sh\`): \`wstest -m fuzzingclient\`${args.wstest ? ` (autobahntestsuite ${args.wstest})` : ''} against ` +
  `\`conformance/echo-server.mjs\` — Helios with \`echo: true\`, which sends every text and binary message back as ` +
  `it came, so only the WebSocket layer of the Rust core is tested — under Bun${args.bun ? ` ${args.bun}` : ''}.` +
  (args.seconds ? ` The suite took ${args.seconds} s.` : ''), '');
md.push('Sections 1–10 are run (framing, pings/pongs, reserved bits, opcodes, fragmentation, UTF-8, close handling, ' +
  'limits and performance, auto-fragmentation). Sections 12–13 (permessage-deflate) are **not run**: Helios does not ' +
  'support compression and does not negotiate it.', '');
md.push(`## ${cases.length} cases`, '');
md.push('| behavior | cases | closing behavior |', '|---|---:|---:|');
for (const b of BEHAVIORS) md.push(`| ${b} | ${counts[b]} | ${closeCounts[b]} |`);
for (const b of Object.keys(counts)) if (!BEHAVIORS.includes(b)) md.push(`| ${b} | ${counts[b]} | ${closeCounts[b] ?? 0} |`);
md.push('');
md.push('By section (a case counts under the worse of its behavior and its closing behavior):', '');
md.push('| section | ' + BEHAVIORS.join(' | ') + ' |', '|---|' + BEHAVIORS.map(() => '---:').join('|') + '|');
for (const [s, c] of sections) md.push(`| ${s} | ` + BEHAVIORS.map((b) => c[b]).join(' | ') + ' |');
md.push('');
md.push(failed.length ? `**${failed.length} case(s) FAILED.**` : '**No case FAILED.**', '');
if (missing) md.push(`**${missing} case(s) were to run but are missing from the report.**`, '');
if (notOk.length) {
  md.push('## Cases not OK', '');
  md.push('| case | behavior | closing | close code | expected for OK | received | what the report says |', '|---|---|---|---:|---|---|---|');
  for (const c of notOk) {
    const says = [c.result, c.behaviorClose !== 'OK' ? c.resultClose : null].filter(Boolean).join(' / ');
    const expected = c.expected && c.expected.OK !== undefined ? c.expected.OK : c.expected;
    md.push(`| ${c.id} | ${c.behavior} | ${c.behaviorClose} | ${c.remoteCloseCode ?? ''} | \`${oneLine(expected, 120)}\` | \`${oneLine(c.received, 120)}\` | ${oneLine(says)} |`);
  }
  md.push('');
  md.push('Descriptions (from the suite):', '');
  for (const c of notOk) md.push(`- **${c.id}** — ${oneLine(stripHtml(c.description), 400)}`);
  md.push('');
}
md.push('For reference, a plain `Bun.serve` echo server measured on the same kind of machine got 294 OK, 4 NON-STRICT ' +
  '(6.4.1–6.4.4) and 3 INFORMATIONAL (7.1.6, 7.13.1, 7.13.2), 0 FAILED, on the same 301 cases.', '');
md.push('The full HTML report is written to `conformance/reports/` (not committed).', '');
const text = md.join('\n');
if (args.out) writeFileSync(args.out, text);

// The console: a compact table.
console.log(`agent ${agent}: ${cases.length} cases`);
console.log('  behavior        cases  closing');
for (const b of BEHAVIORS) console.log(`  ${b.padEnd(14)} ${String(counts[b]).padStart(6)} ${String(closeCounts[b]).padStart(8)}`);
if (notOk.length) {
  console.log('not OK:');
  for (const c of notOk) {
    const expected = c.expected && c.expected.OK !== undefined ? c.expected.OK : c.expected;
    console.log(`  ${c.id.padEnd(8)} ${`${c.behavior}/${c.behaviorClose}`.padEnd(27)} close=${c.remoteCloseCode ?? '-'}  expected(OK) ${oneLine(expected, 60)}  received ${oneLine(c.received, 60)}`);
  }
}
if (failed.length) {
  console.log(`\nFAILED (${failed.length}):`);
  for (const c of failed) {
    console.log(`  ${c.id}: ${oneLine(stripHtml(c.description), 200)}`);
    console.log(`    behavior ${c.behavior}, closing ${c.behaviorClose}: ${oneLine(c.result, 300)}${c.behaviorClose !== 'OK' ? ' / ' + oneLine(c.resultClose, 300) : ''}`);
    if (c.expected !== undefined) console.log(`    expected: ${oneLine(c.expected, 300)}`);
    if (c.received !== undefined) console.log(`    received: ${oneLine(c.received, 300)}`);
  }
}
if (missing) console.log(`\n${missing} case(s) were to run (wstest said ${expected}) but are missing from the report`);
if (args.out) console.log(`written to ${args.out}`);
process.exit(failed.length || missing ? 1 : 0);
