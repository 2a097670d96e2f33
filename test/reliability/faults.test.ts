/**
 * Faults: randomized trials in which the transport is cut at a random byte mid-transfer. Every pending read,
 * write, dial, accept and ping settles within 1 s with a typed error; each side received an exact prefix of
 * what the other sent; nothing (timer, socket, server, listener) is left behind; the process can exit.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Channel, SessionOptions } from '../../src/index.js';
import { until } from '../helpers.js';
import { runChild } from '../support/child.js';
import { CODECS } from '../support/codecs.js';
import { runFaultTrial } from '../support/fault-trial.js';
import { proxiedPair } from '../support/pairs.js';
import { resourceCounts, settleResources } from '../support/resources.js';
import { report, scaled } from '../support/soak.js';
import { exitWhenDone } from '../support/watchdog.js';

exitWhenDone();

const TRIALS = scaled('MUXWIRE_FAULT_TRIALS', 50, 300);
const FIRST_SEED = scaled('MUXWIRE_FAULT_SEED', 1000, 1000);

let baseline: Map<string, number>;
before(() => {
  baseline = resourceCounts();
});
after(async () => {
  assert.deepEqual(await settleResources(baseline, 5000), {}, 'no timer, socket or server left after the trials');
});

/** Violations of once-known bugs the trials saw (checked by the tests of 'known bugs seen by the trials' below). */
const knownBugs: string[] = [];
/** Trials run so far: the checks of the known bugs mean nothing without them. */
let trialsRun = 0;
/** Fails a check of the trials' findings that would otherwise pass on no trial at all (the test run alone). */
function assertTrialsRan(): void {
  assert.ok(trialsRun > 0, 'no trial ran before this check: run it with the trials (a name pattern that matches both)');
}

for (const codec of CODECS) {
  // Codecs without flow control pause the whole transport for a reader that does not read: their trials keep
  // every reader reading (the paused case has its own tests below, 'a session that stopped reading ...').
  const flowControl = codec.name === 'yamux';
  const trials = flowControl ? TRIALS : Math.ceil(TRIALS / 2);
  describe(`transport cut at a random byte (${codec.name})`, () => {
    test(
      `${trials} randomized trials: everything settles within 1 s, typed, with exact prefixes`,
      { timeout: trials * 20_000 },
      async (t) => {
        const problems: string[] = [];
        const codes: Record<string, number> = {};
        let operations = 0;
        let worstSettle = 0;
        let byByte = 0;
        for (let seed = FIRST_SEED; seed < FIRST_SEED + trials; seed++) {
          const outcome = await runFaultTrial(seed, { codec, pausedReaders: flowControl });
          trialsRun++;
          operations += outcome.operations.length;
          worstSettle = Math.max(worstSettle, outcome.settleMs);
          if (outcome.cut?.reason === 'byte') byByte++;
          for (const [code, n] of Object.entries(outcome.codes)) codes[code] = (codes[code] ?? 0) + n;
          for (const bug of outcome.knownBugs) knownBugs.push(`${codec.name} seed ${seed}: ${bug}`);
          for (const problem of outcome.problems) {
            problems.push(
              `seed ${seed} (cut ${outcome.cutDirection} at byte ${outcome.cutAtByte}, ${outcome.cutMode}): ${problem}`,
            );
          }
        }
        t.diagnostic(
          report(`faults ${codec.name}`, {
            trials,
            cutAtByte: byByte,
            cutByHand: trials - byByte,
            operations,
            worstSettleMs: worstSettle,
            codes: JSON.stringify(codes),
            knownBugViolations: knownBugs.length,
          }),
        );
        assert.deepEqual(problems.slice(0, 20), [], `${problems.length} problem(s)`);
      },
    );
  });
}

test('a process that ran fault trials exits by itself', { timeout: 60_000 }, async () => {
  const child = await runChild('fault-trials', { MUXWIRE_CHILD_SEED: '7', MUXWIRE_CHILD_TRIALS: '3' });
  assert.equal(child.signal, null, `the child had to be killed: ${child.stderr}`);
  assert.equal(child.code, 0, child.stderr);
  assert.deepEqual((JSON.parse(child.stdout.trim().split('\n').pop()!) as { problems: unknown }).problems, []);
});

describe('a session that stopped reading its transport still notices when it is cut', () => {
  for (const codec of CODECS) {
    const how =
      codec.name === 'yamux' ? 'at its memory bound (maxSessionBuffered)' : 'for a channel that does not read';
    test(`${codec.name}: paused ${how}, the transport cut: every pending operation settles`, async () => {
      // yamux probes with a ping at its deadline; multiplex (no ping) reads 64 KiB every keepAliveTimeout, and
      // hears the reset only behind what was in flight before it. Without windows, that is whatever the client
      // wrote beyond the pause, up to the kernel's socket buffers (which Linux grows with the reading rate, so
      // it varies from run to run); so the multiplex client writes 2 x 320 KiB: the pause comes after one
      // channel holds more than 256 KiB (initialWindow), leaving at most ~380 KiB unread, within the probes'
      // budget for one pause (a quarter of maxSessionBuffered: 512 KiB here).
      const flowControl = codec.name === 'yamux';
      const server: SessionOptions = {
        maxSessionBuffered: flowControl ? 256 * 1024 : 2 * 1024 * 1024,
        ...codec.options,
        keepAliveInterval: 100,
        keepAliveTimeout: 300,
      };
      const perChannel = flowControl ? 1024 * 1024 : 320 * 1024;
      const pair = await proxiedPair({ proxy: {}, client: codec.options, server });
      try {
        const inbound: Channel[] = [];
        pair.server.on('channel', (channel) => {
          channel.on('error', () => {});
          inbound.push(channel); // never read
        });
        for (let i = 0; i < 2; i++) {
          const channel = pair.client.dial();
          channel.on('error', () => {});
          channel.write(Buffer.alloc(perChannel));
        }
        await until(() => pair.serverSocket.isPaused(), 3000, 'the server paused reading');
        pair.proxy!.cut('reset');
        await until(() => pair.server.state === 'closed', 5000, 'the server session noticed the cut').catch(() => {});
        assert.equal(pair.server.state, 'closed', 'the server session ended within 5 s of the cut');
        // Each channel keeps what arrived until it is read (README, "Closing"): read, they close with the error.
        for (const channel of inbound) channel.resume();
        await until(() => inbound.every((channel) => channel.closed), 5000, 'its channels closed once read');
        assert.ok(inbound.every((channel) => channel.failure !== undefined));
      } finally {
        await pair.close();
      }
    });
  }
});

describe('known bugs seen by the trials', () => {
  test('no raw transport error (EPIPE, ECONNRESET) reaches a channel: only MuxErrors', () => {
    assertTrialsRan();
    const raw = knownBugs.filter((bug) => bug.includes('raw'));
    assert.deepEqual(raw.slice(0, 10), [], `${raw.length} violation(s)`);
  });

  test('channel.failure is set on every channel that failed', () => {
    assertTrialsRan();
    const unset = knownBugs.filter((bug) => bug.includes('failure unset'));
    assert.deepEqual(unset.slice(0, 10), [], `${unset.length} violation(s)`);
  });
});

describe('channels without an error listener', () => {
  for (const scenario of ['unobserved-reset-with-pending-write', 'unobserved-session-failure-with-pending-write']) {
    test(`${scenario}: the channel closes, keeps its failure, and the process does not crash`, async () => {
      const child = await runChild(scenario);
      assert.equal(child.code, 0, `the process crashed:\n${child.stderr.split('\n').slice(0, 6).join('\n')}`);
      const result = JSON.parse(child.stdout.trim()) as { closed: unknown; failure: unknown };
      assert.equal(result.closed, true);
      assert.notEqual(result.failure, null, 'channel.failure holds the reason');
    });
  }
});
