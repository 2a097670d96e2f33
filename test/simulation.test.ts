/**
 * Deterministic simulation (issue 17): two sessions over a simulated transport whose every delivery, delay,
 * backpressure, end, reset and timer is chosen by a seeded scheduler on a virtual clock (test/sim/). Each run
 * draws its parameters and an application's operations from its seed, and checks the invariants of
 * docs/reliability.md › "Deterministic simulation" once nothing is left to happen.
 *
 * `npm test` runs the named regression seeds and four passes (yamux and multiplex with LightChannels, yamux and multiplex with
 * the Node adapter's Channels), each a fixed set of seeds plus one taken from the clock (printed).
 * `npm run soak` (MUXWIRE_SOAK=1) runs many more from a clock-derived base. Replay any run with the line its
 * failure prints, e.g.:
 *   MUXWIRE_SIM_SEED=<seed> node --test dist/test/simulation.test.js
 * (MUXWIRE_SIM_PROTOCOL=multiplex, MUXWIRE_SIM_CHANNELS=node for the other passes; with MUXWIRE_SIM_RUNS=<n>,
 * the n seeds from <seed> on).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from './sim/clock.js';
import { runSimulation, type SimLimits, type SimOutcome } from './sim/world.js';
import { report, scaled, SOAK } from './support/soak.js';
import { exitWhenDone } from './support/watchdog.js';

exitWhenDone();

/**
 * Seeds that once broke an invariant, each with what it found (docs/reliability.md lists them). A seed stands for
 * the run the harness draws from it today; if the harness changes what it draws, a seed may stop reaching its
 * case (it still runs and must still pass), so re-derive them as docs/reliability.md says.
 */
const REGRESSIONS: { seed: number; found: string }[] = [
  { seed: 16, found: 'issue 17 case 1: after a graceful close, later dials threw TransportClosedError (15dfafc)' },
  {
    seed: 143,
    found: 'issue 17 case 1: the same, and a channel never taken failed with TransportClosedError (15dfafc)',
  },
  {
    seed: 49,
    found:
      'issue 17 case 1: a channel never taken failed with TransportClosedError when the closing peer reset the connection (15dfafc)',
  },
  { seed: 52, found: 'issue 17 case 2: a channel accepted, read and reset was reported refused (15dfafc)' },
  { seed: 67, found: 'issue 17 case 2: the same (15dfafc)' },
  {
    seed: 4860,
    found: 'issue 17 case 3: a session paused at its memory bound missed its keep-alive deadline (15dfafc)',
  },
  { seed: 6424, found: 'issue 17 case 3: the same, with keepAliveTimeout 50 ms (15dfafc)' },
  { seed: 256, found: 'a channel half-closed before its ACK failed with TransportClosedError after Go Away (73bedd2)' },
  { seed: 603, found: 'the same, client side (73bedd2)' },
  {
    seed: 1,
    found: 'a session that ended with unread data kept reporting it in bufferedBytes (SessionMemory.releaseAll)',
  },
  { seed: 701_280, found: 'a LightChannel whose last write failed after both FINs were exchanged never emitted close' },
  { seed: 709_974, found: 'the same, with the transport ended under the session (no half-open)' },
  {
    seed: 746_819,
    found: 'a session declared its live peer dead when its ping deadline came just as it resumed reading',
  },
  {
    seed: 20_261_228,
    found:
      "a light channel kept to be read after its session failed emitted 'close' twice when a 'data' listener destroyed it",
  },
];

const FIXED_BASE = 20_261_203;
const chosenSeed = process.env.MUXWIRE_SIM_SEED;
const replaying = chosenSeed !== undefined && chosenSeed !== '';
/** Set with MUXWIRE_SIM_SEED to replay a run of the multiplex codec (its failure report says so). */
const chosenProtocol = process.env.MUXWIRE_SIM_PROTOCOL;
if (
  chosenProtocol !== undefined &&
  chosenProtocol !== '' &&
  chosenProtocol !== 'yamux' &&
  chosenProtocol !== 'multiplex'
) {
  throw new RangeError(`MUXWIRE_SIM_PROTOCOL must be yamux or multiplex, got ${chosenProtocol}`);
}
const RUNS = scaled('MUXWIRE_SIM_RUNS', replaying ? 1 : 1_000, 50_000);
const MULTIPLEX_RUNS = scaled('MUXWIRE_SIM_MULTIPLEX_RUNS', replaying ? 1 : 300, 10_000);
const NODE_RUNS = scaled('MUXWIRE_SIM_NODE_RUNS', replaying ? 1 : 300, 10_000);
/** Set with MUXWIRE_SIM_SEED to replay a run whose channels were the Node adapter's streams. */
const chosenChannels = process.env.MUXWIRE_SIM_CHANNELS || 'light';
if (chosenChannels !== 'light' && chosenChannels !== 'node') {
  throw new RangeError(`MUXWIRE_SIM_CHANNELS must be light or node, got ${chosenChannels}`);
}

function parseSeed(raw: string): number {
  const seed = Number(raw);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff)
    throw new RangeError(`MUXWIRE_SIM_SEED must be a 32-bit unsigned integer, got ${raw}`);
  return seed;
}

function explain(outcome: SimOutcome): string {
  return [
    `simulation seed ${outcome.seed} (${outcome.protocol}, ${outcome.channels} channels) broke ${outcome.violations.length} invariant(s) after ${outcome.steps} steps,` +
      ` ${outcome.virtualMs} virtual ms:`,
    ...outcome.violations.map((v) => `  - ${v}`),
    `replay: ${outcome.protocol === 'yamux' ? '' : `MUXWIRE_SIM_PROTOCOL=${outcome.protocol} `}` +
      `${outcome.channels === 'light' ? '' : `MUXWIRE_SIM_CHANNELS=${outcome.channels} `}MUXWIRE_SIM_SEED=${outcome.seed} node --test dist/test/simulation.test.js`,
    'parameters:',
    ...outcome.params.split('\n').map((line) => `  ${line}`),
    'last steps (virtual ms, step):',
    ...outcome.trace.map((line) => `  ${line}`),
  ].join('\n');
}

/** Runs `seeds` in order and fails on the first broken invariant, naming its seed. */
async function runAll(
  seeds: number[],
  protocol: SimLimits['protocol'] = 'yamux',
  channels: SimLimits['channels'] = 'light',
): Promise<{ steps: number; virtualMs: number; stats: Record<string, number> }> {
  let steps = 0;
  let virtualMs = 0;
  const stats: Record<string, number> = {};
  for (const seed of seeds) {
    const outcome = await runSimulation(seed, { protocol, channels, timerOrigins: replaying });
    if (outcome.violations.length > 0) assert.fail(explain(outcome));
    steps += outcome.steps;
    virtualMs += outcome.virtualMs;
    for (const [key, value] of Object.entries(outcome.stats)) stats[key] = (stats[key] ?? 0) + value;
  }
  return { steps, virtualMs, stats };
}

test('simulation: the same seed replays the same run step for step', async () => {
  for (const seed of [1, 2, 3, FIXED_BASE]) {
    const first = await runSimulation(seed);
    const second = await runSimulation(seed);
    assert.equal(second.digest, first.digest, `seed ${seed}: the two runs took different steps`);
    assert.equal(second.steps, first.steps);
    assert.ok(first.steps > 10, `seed ${seed}: a run of only ${first.steps} steps`);
  }
});

test('simulation: the virtual clock takes over the timers only for the run, even one that throws', async () => {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- kept to compare, never called
  const real = { setTimeout, clearTimeout, setImmediate, clearImmediate, now: performance.now };
  const clock = new VirtualClock();
  clock.install();
  try {
    const fired: number[] = [];
    globalThis.setTimeout(() => fired.push(clock.now), 250);
    const cleared = globalThis.setTimeout(() => fired.push(-1), 100);
    globalThis.clearTimeout(cleared);
    assert.equal(performance.now(), 0);
    assert.equal(clock.pending, 1);
    const timer = clock.nextTimer()!;
    clock.fire(timer);
    assert.deepEqual(fired, [250]);
    assert.equal(performance.now(), 250);
  } finally {
    clock.uninstall();
  }
  assert.equal(globalThis.setTimeout, real.setTimeout);
  assert.equal(globalThis.clearTimeout, real.clearTimeout);
  assert.equal(globalThis.setImmediate, real.setImmediate);
  assert.equal(globalThis.clearImmediate, real.clearImmediate);
  // eslint-disable-next-line @typescript-eslint/unbound-method -- compares the functions themselves
  assert.equal(performance.now, real.now);
  assert.ok(performance.now() > 0 && performance.now() !== 250);
  await runSimulation(3);
  assert.equal(globalThis.setTimeout, real.setTimeout);
  await assert.rejects(runSimulation(4, { protocol: 'nonsense' as 'yamux' }), /protocol/);
  assert.equal(globalThis.setTimeout, real.setTimeout, 'restored after a run that threw');
  assert.equal(globalThis.setImmediate, real.setImmediate);
});

test('simulation: a byte corrupted in transit is reported with its seed', async () => {
  // The invariant checks must be able to fail: flip one byte of the client's stream and expect a report.
  let caught = 0;
  for (let seed = 1; seed <= 40 && caught === 0; seed++) {
    const outcome = await runSimulation(seed, { maxSteps: 400_000, windDownMs: 600_000, corruptAt: 200 });
    if (outcome.violations.some((v) => v.includes('received a wrong byte'))) caught = seed;
  }
  assert.ok(caught > 0, 'no run noticed a corrupted byte');
});

test('simulation: regression seeds keep every invariant', async () => {
  await runAll(REGRESSIONS.map((r) => r.seed));
});

/**
 * A session paused at its memory bound reads (and answers) its peer's pings only when it probes, every half its own
 * keepAliveTimeout; its probe pings are what the peer hears from it meanwhile. So its peer never takes it for dead
 * when the peer's keepAliveTimeout is longer than half the paused side's plus two round trips (the rule in
 * docs/reliability.md and the README's keep-alive notes). Every run checks that rule; these seeds are runs where a
 * peer paused and the other side's keepAliveTimeout was within the rule, so the check had something to hold;
 * 3243, 14998 and 19709 failed when a paused session did not probe. Which runs pause moves with any change of the
 * sessions' timing (71 stopped pausing when close({ timeout }) ended at its deadline, 166 and 19 with the joining
 * of small payloads): the test runs all of these and, should fewer than PAUSED_RUNS_WANTED of them pause, looks
 * further (seeds 1 up), so a change of timing costs a search, not a failure; it prints the seeds that paused, to
 * put here.
 */
const PAUSED_PEER_SEEDS = [12, 225, 312, 508, 3243, 14998, 19709];
const PAUSED_RUNS_WANTED = 5;
/** Seeds 1 to this many are searched when the list above falls short (about one run in a hundred pauses). */
const PAUSED_SEARCH_LIMIT = 2_000;

test('simulation: a peer paused at its memory bound is not declared dead by a side whose keepAliveTimeout exceeds half its own', async (t) => {
  const paused: number[] = [];
  const tried = new Set<number>();
  const candidates = [...PAUSED_PEER_SEEDS, ...Array.from({ length: PAUSED_SEARCH_LIMIT }, (_, i) => i + 1)];
  for (const seed of candidates) {
    // Every listed seed runs (some fail where a paused session does not probe); the search only makes up a shortfall.
    if (tried.size >= PAUSED_PEER_SEEDS.length && paused.length >= PAUSED_RUNS_WANTED) break;
    if (tried.has(seed)) continue;
    tried.add(seed);
    const outcome = await runSimulation(seed);
    if (outcome.violations.length > 0) assert.fail(explain(outcome));
    if ((outcome.stats.livenessWithPausedPeer ?? 0) > 0) paused.push(seed);
  }
  const listed = paused.filter((seed) => PAUSED_PEER_SEEDS.includes(seed)).length;
  t.diagnostic(`runs with a paused peer: seeds ${paused.join(', ')} (${tried.size} tried; ${listed} from the list)`);
  assert.ok(
    paused.length >= PAUSED_RUNS_WANTED,
    `only ${paused.length} of ${tried.size} runs had a paused peer to check against (seeds ${paused.join(', ')})`,
  );
});

/** The seeds of a pass: from MUXWIRE_SIM_SEED, else fixed (a clock-derived base in the soak), plus one from the clock. */
function seedsOf(runs: number): { seeds: number[]; note: string } {
  const base = replaying ? parseSeed(chosenSeed) : SOAK ? Date.now() % 0x1_0000_0000 : FIXED_BASE;
  const seeds = Array.from({ length: runs }, (_, i) => (base + i) >>> 0);
  // One more seed from the clock in every `npm test`, so that each run explores something new.
  const fresh = (Date.now() * 7919) % 0x1_0000_0000;
  if (!replaying) seeds.push(fresh);
  return {
    seeds,
    note: `seeds ${base}..${(base + runs - 1) >>> 0}${replaying ? '' : ` and ${fresh} (from the clock)`}`,
  };
}

const PASSES = [
  { protocol: 'yamux', channels: 'light', runs: RUNS },
  { protocol: 'multiplex', channels: 'light', runs: MULTIPLEX_RUNS },
  // The Node adapter's `Channel` streams (Duplex) on the same sessions: what most Node applications use.
  { protocol: 'yamux', channels: 'node', runs: NODE_RUNS },
  // The multiplex format with the Node adapter's channels (its writing ends when the peer closes).
  { protocol: 'multiplex', channels: 'node', runs: NODE_RUNS },
] as const;

for (const { protocol, channels, runs } of PASSES) {
  const name = channels === 'light' ? protocol : `${protocol}, Node channels`;
  const chosen = (chosenProtocol || 'yamux') === protocol && chosenChannels === channels;
  const skip = replaying && !chosen ? 'replaying a seed of another pass' : false;
  test(`simulation (${name}): random interleavings keep every invariant (seeds printed)`, { skip }, async (t) => {
    const started = performance.now();
    const { seeds, note } = seedsOf(runs);
    t.diagnostic(note);
    const totals = await runAll(seeds, protocol, channels);
    const elapsedMs = performance.now() - started;
    t.diagnostic(
      report(`simulation ${name}`, {
        runs: seeds.length,
        first: seeds[0],
        steps: totals.steps,
        virtualSeconds: totals.virtualMs / 1000,
        elapsedMs,
        stepsPerSecond: totals.steps / (elapsedMs / 1000),
        ...totals.stats,
      }),
    );
  });
}
