// A client worker of the soak test (soak/run.mjs starts a few, as child processes under Bun).
//
//   bun soak/worker.mjs <url> <workerIndex> <clients> <seed>
//
// Runs <clients> client slots. Each slot connects a Starling with session recovery, lives 5–30 s, then
// closes normally (1000) and starts again (connect/disconnect churn). While alive, a client makes RPCs
// (`echo`, `work`; at most 3 in flight, ~8/s), may be a subscriber of the room 'soak' (and sometimes
// leaves and joins again), may be a publisher (emits `soak:publish` { p, s } with s = 1, 2, 3, … ~2/s), and
// now and then drops its socket (closes the underlying WebSocket with 4000: the client reconnects and
// resumes its session by itself).
//
// What it checks (and reports to the driver as JSON lines on stdout):
// - every RPC resolves exactly once with status 200 and its own `n` back; no response frame arrives twice;
// - in every subscription (from `subscribe` to the end of `unsubscribe`, across session resumes), the
//   broadcast numbers `g` arrive consecutively: no gap, no duplicate, no reordering; subscriptions still
//   open at the end reach the final `g` the driver sends;
// - no 'soak' event outside a subscription, no server `error` message, no failed resume or resume with a gap.
// Commands on stdin (JSON lines): { cmd: 'stop' } → stop starting anything, let everything settle, report
// 'stopped'; { cmd: 'final', g } → wait for the subscriptions to reach g, close every client, report 'result'.
import { Starling } from '@aionbuilders/helios/client';
import { createInterface } from 'node:readline';

const [url, workerArg, clientsArg, seedArg] = process.argv.slice(2);
const WORKER = Number(workerArg);
const CLIENTS = Number(clientsArg);

// A small seeded PRNG (mulberry32), so a run's choices can be replayed.
let seed = Number(seedArg) >>> 0 || 1;
function random() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const between = (a, b) => a + random() * (b - a);

const TICK_MS = 100;
const MAX_IN_FLIGHT = 3;
const P_RPC = 0.8; // per tick: ~8 RPCs/s per client when the answers keep up
const P_PUBLISH = 0.2; // per tick, publishers only: ~2/s
const P_TOGGLE = 0.004; // per tick, subscribers: leave (or join again) every ~25 s
const P_DROP = 0.005; // per tick: a session drop every ~20 s per client
const LIFETIME_MS = [5_000, 30_000];
const REQUEST_TIMEOUT = 15_000;

const totals = {
  incarnations: 0,
  connectFailures: 0,
  rpcSent: 0,
  rpcOk: 0,
  rpcBadAnswer: 0, // status >= 400, or not its own n back
  rpcRejected: 0, // timeout or connection closed: no answer
  duplicateResponses: 0, // a response frame for an id already answered
  published: 0, // soak:publish emits that went out (emit resolved true)
  publishNotSent: 0, // emit resolved false (not open); retried later with the same s
  delivered: 0, // 'soak' events received in subscriptions
  subscriptions: 0,
  subscriptionsClosed: 0,
  subscribeFailed: 0,
  gaps: 0, // broadcasts missing inside a subscription
  duplicates: 0, // a g received again (or out of order) inside a subscription
  strayEvents: 0, // 'soak' events outside any subscription
  tailMissing: 0, // at the end: broadcasts an open subscription never received
  silentSubscriptions: 0, // subscriptions open 5 s or more while publishing went on, that received nothing
  drops: 0,
  resumed: 0,
  resumedWithGap: 0,
  recoveryFailed: 0,
  reconnectFailed: 0,
  serverErrors: 0,
  clientErrors: 0, // socket errors, and throws in the handlers of this worker
  unexpectedCloses: 0, // closes with a code we did not cause (not 1000/4000)
  replayed: 0,
};
const failures = []; // the first few anomalies, described
const fail = (what) => {
  if (failures.length < 20) failures.push(`[w${WORKER}] ${what}`);
};

let stopping = false;
let stoppedAt = null; // when the driver said stop: publishing ends then
const slots = [];

/** Ends a subscription: it is silent if it was open 5 s or more while publishing went on and got nothing. */
function endSubscription(state, sub) {
  if (!sub.open) return;
  sub.open = false;
  totals.subscriptionsClosed++;
  const end = stoppedAt === null ? Date.now() : Math.min(Date.now(), stoppedAt);
  if (sub.received === 0 && end - sub.openedAt >= 5000) {
    totals.silentSubscriptions++;
    fail(`${state.tag}: subscription open ${((end - sub.openedAt) / 1000).toFixed(1)} s received nothing`);
  }
}

class Slot {
  constructor(index) {
    this.index = index;
    this.incarnation = 0;
    this.client = null;
    this.done = this.run();
  }

  async run() {
    while (!stopping) {
      await this.live();
      if (!stopping) await Bun.sleep(between(0, 500));
    }
  }

  /** One client, from connect to a normal close. */
  async live() {
    this.incarnation++;
    totals.incarnations++;
    const tag = `${WORKER}.${this.index}.${this.incarnation}`;
    const client = new Starling({
      url,
      requestTimeout: REQUEST_TIMEOUT,
      sessionRecovery: { enabled: true },
      // Up to ~0.5 s away on the first attempt, so that messages pile up for the replay.
      reconnect: { initialDelay: 500, maxDelay: 2000, maxAttempts: 20 },
    });
    this.client = client;
    const state = {
      tag,
      client,
      ws: null,
      dropping: false, // between our close(4000) and the session's recovery
      closing: false,
      inFlight: 0, // RPCs, subscribes and unsubscribes not settled yet
      n: 0, // the last RPC number
      s: 0, // the last publication number sent
      publisher: random() < 0.3,
      subscriber: random() < 0.6,
      sub: null, // the current subscription: { open, last, pendingUnsubscribe }
      answered: new Set(), // response ids seen
      settled: null,
    };
    this.state = state;

    client.events.on('open', ({ websocket }) => (state.ws = websocket));
    client.events.on('message', ({ data }) => {
      if (typeof data !== 'string') return;
      let message;
      try {
        message = JSON.parse(data);
      } catch {
        return;
      }
      if (!message || message.type !== 'response') return;
      if (state.answered.has(message.id)) {
        totals.duplicateResponses++;
        fail(`${tag}: response id ${message.id} arrived twice`);
      }
      state.answered.add(message.id);
    });
    client.events.on('error', ({ error }) => {
      // Server `error` messages are plain { code, message }; socket errors are coded Errors.
      if (error && !(error instanceof Error)) {
        totals.serverErrors++;
        fail(`${tag}: server error message ${JSON.stringify(error)}`);
      } else {
        // A socket error, or a throw in one of our handlers (a malformed broadcast, say).
        totals.clientErrors++;
        fail(`${tag}: client error: ${error?.code ?? ''} ${error?.message ?? error}`);
      }
    });
    client.events.on('close', ({ code }) => {
      if (code !== 1000 && code !== 4000) {
        totals.unexpectedCloses++;
        fail(`${tag}: socket closed with ${code}`);
      }
    });
    client.events.on('session:recovered', ({ session }) => {
      totals.resumed++;
      totals.replayed += session.replayed;
      if (session.gap) {
        totals.resumedWithGap++;
        fail(`${tag}: resumed with a gap`);
      }
      state.dropping = false;
    });
    client.events.on('session:recovery-failed', ({ reason }) => {
      totals.recoveryFailed++;
      fail(`${tag}: recovery failed: ${reason}`);
      state.dropping = false;
      if (state.sub) endSubscription(state, state.sub); // the rooms are gone with the session
      state.sub = null;
    });
    client.events.on('reconnect-failed', ({ attempts }) => {
      totals.reconnectFailed++;
      fail(`${tag}: gave up reconnecting after ${attempts} attempts`);
      state.dropping = false;
    });
    client.on('soak', (data) => this.onBroadcast(state, data));

    try {
      await client.connect();
    } catch (error) {
      totals.connectFailures++;
      fail(`${tag}: connect failed: ${error.message}`);
      await Bun.sleep(500);
      return;
    }

    if (state.subscriber) this.subscribe(state);
    const lifetime = between(...LIFETIME_MS);
    const started = Date.now();
    while (!stopping && Date.now() - started < lifetime) {
      await Bun.sleep(TICK_MS * between(0.5, 1.5));
      this.tick(state);
    }
    // Let what is in flight settle (and a drop recover) before closing, so that nothing is cut off.
    state.closing = true;
    await this.settle(state);
    if (stopping) return; // the driver's 'final' closes it, after checking the subscriptions' tails
    await this.close(state);
  }

  tick(state) {
    if (state.closing || state.dropping || stopping) return;
    if (state.client.state !== 'OPEN') return;
    if (random() < P_DROP) {
      this.drop(state);
      return;
    }
    if (state.inFlight < MAX_IN_FLIGHT && random() < P_RPC) this.rpc(state);
    if (state.publisher && random() < P_PUBLISH) this.publish(state);
    if (state.subscriber && random() < P_TOGGLE && state.inFlight === 0) {
      if (state.sub && state.sub.open && !state.sub.pendingUnsubscribe) this.unsubscribe(state);
      else if (!state.sub) this.subscribe(state);
    }
  }

  drop(state) {
    const ws = state.ws;
    if (!ws || ws.readyState !== 1) return;
    state.dropping = true;
    totals.drops++;
    ws.close(4000, 'soak drop');
  }

  track(promise, state) {
    state.inFlight++;
    return promise.finally(() => {
      state.inFlight--;
    });
  }

  rpc(state) {
    const n = ++state.n;
    const method = random() < 0.5 ? 'echo' : 'work';
    const payload = method === 'echo' ? { n, pad: 'x'.repeat(Math.floor(between(0, 200))) } : { n, ms: Math.floor(between(0, 20)) };
    totals.rpcSent++;
    this.track(state.client.request(method, payload), state).then(
      (response) => {
        const back = response.data && response.data.n;
        if (response.status === 200 && back === n) totals.rpcOk++;
        else {
          totals.rpcBadAnswer++;
          fail(`${state.tag}: ${method} n=${n} answered ${response.status} ${JSON.stringify(response.data ?? response.error)}`);
        }
      },
      (error) => {
        totals.rpcRejected++;
        fail(`${state.tag}: ${method} n=${n} got no answer: ${error.name}: ${error.message}`);
      }
    );
  }

  async publish(state) {
    const s = state.s + 1;
    const sent = await state.client.emit('soak:publish', { p: state.tag, s });
    if (sent) {
      state.s = s;
      totals.published++;
    } else totals.publishNotSent++;
  }

  subscribe(state) {
    const sub = { open: true, last: null, pendingUnsubscribe: false, received: 0, openedAt: Date.now() };
    state.sub = sub;
    totals.subscriptions++;
    this.track(state.client.subscribe('soak'), state).then(
      (result) => {
        if (!result || result.success !== true) {
          totals.subscribeFailed++;
          fail(`${state.tag}: subscribe refused: ${JSON.stringify(result)}`);
          sub.open = false; // not a subscription at all
          if (state.sub === sub) state.sub = null;
        }
      },
      (error) => {
        totals.subscribeFailed++;
        fail(`${state.tag}: subscribe got no answer: ${error.message}`);
      }
    );
  }

  unsubscribe(state) {
    const sub = state.sub;
    sub.pendingUnsubscribe = true;
    this.track(state.client.unsubscribe('soak'), state).then(
      (result) => {
        if (!result || result.success !== true) fail(`${state.tag}: unsubscribe refused: ${JSON.stringify(result)}`);
        endSubscription(state, sub);
        if (state.sub === sub) state.sub = null;
      },
      (error) => {
        totals.rpcRejected++;
        fail(`${state.tag}: unsubscribe got no answer: ${error.message}`);
      }
    );
  }

  onBroadcast(state, data) {
    const sub = state.sub;
    if (!sub || !sub.open) {
      totals.strayEvents++;
      fail(`${state.tag}: 'soak' event g=${data?.g} outside a subscription`);
      return;
    }
    totals.delivered++;
    sub.received++;
    const g = data.g;
    if (sub.last !== null) {
      if (g === sub.last + 1) {
        // in order
      } else if (g <= sub.last) {
        totals.duplicates++;
        fail(`${state.tag}: g=${g} after g=${sub.last} (duplicate or out of order)`);
        return;
      } else {
        totals.gaps += g - sub.last - 1;
        fail(`${state.tag}: g=${g} after g=${sub.last}: ${g - sub.last - 1} missing`);
      }
    }
    sub.last = g;
  }

  /** Waits until nothing is in flight and no drop is being recovered (at most 20 s). */
  async settle(state) {
    const deadline = Date.now() + 20_000;
    while ((state.inFlight > 0 || state.dropping) && Date.now() < deadline) await Bun.sleep(20);
    if (state.inFlight > 0 || state.dropping) fail(`${state.tag}: still ${state.inFlight} in flight / dropping=${state.dropping} after 20 s`);
  }

  async close(state) {
    if (state.closed) return;
    state.closed = true;
    if (state.sub) endSubscription(state, state.sub);
    try {
      await state.client.close(1000);
    } catch (error) {
      fail(`${state.tag}: close failed: ${error.message}`);
    }
  }
}

function send(message) {
  process.stdout.write(JSON.stringify(message) + '\n');
}

function snapshot() {
  let connected = 0;
  let subscribed = 0;
  for (const slot of slots) {
    if (slot.client && slot.client.state === 'OPEN') connected++;
    if (slot.state && slot.state.sub && slot.state.sub.open) subscribed++;
  }
  return { ...totals, connected, subscribed, failureCount: failures.length };
}

for (let i = 0; i < CLIENTS; i++) slots.push(new Slot(i));
const progress = setInterval(() => send({ type: 'progress', worker: WORKER, totals: snapshot() }), 2000);

const lines = createInterface({ input: process.stdin });
lines.on('line', async (line) => {
  let command;
  try {
    command = JSON.parse(line);
  } catch {
    return;
  }
  if (command.cmd === 'stop') {
    stopping = true;
    stoppedAt = Date.now();
    await Promise.all(slots.map((slot) => slot.done));
    // Each slot's last client is settled (its live() settles before returning when stopping).
    send({ type: 'stopped', worker: WORKER, totals: snapshot() });
  } else if (command.cmd === 'final') {
    const G = command.g;
    // Subscriptions still open: each must reach the last broadcast. (One that received nothing was opened
    // after the last publication, or is caught as silent when it ends.)
    const open = () => slots.map((slot) => slot.state).filter((s) => s && s.sub && s.sub.open && s.sub.last !== null);
    const deadline = Date.now() + 10_000;
    while (open().some((s) => s.sub.last < G) && Date.now() < deadline) await Bun.sleep(50);
    let reachedEnd = 0;
    for (const s of open()) {
      const last = s.sub.last;
      if (last === G) reachedEnd++;
      else {
        totals.tailMissing += G - last;
        fail(`${s.tag}: subscription ended at g=${last}, the last broadcast was g=${G}`);
      }
    }
    await Promise.all(slots.map((slot) => slot.state && slot.close(slot.state)));
    clearInterval(progress);
    send({ type: 'result', worker: WORKER, totals: snapshot(), reachedEnd, failures });
    lines.close();
    setTimeout(() => process.exit(0), 100);
  }
});
