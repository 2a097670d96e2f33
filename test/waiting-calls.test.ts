/**
 * Many calls waiting at once: `accept()` calls, `ping()` calls sharing the ping in flight, and dials waiting for
 * their acknowledgement under open timeouts. What one of them costs (given up, answered, timed out) must not
 * grow with how many others wait, and a call given up must not stay reachable while the others wait on.
 *
 * The costs are compared at n and at 4n in the same run, never against a clock: by counting what the session
 * reads where it can be counted (the open-timeout sweep, under a virtual clock), else by the ratio of two
 * timings, each the best of three, against a factor far from both answers (4 for a linear cost, 16 for a
 * quadratic one).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as realImmediate } from 'node:timers/promises';
// The clock first: it puts its forwarders in place before muxwire takes its schedulers (see sim/clock.ts).
import { VirtualClock, assertClockReaches } from './sim/clock.js';
import { ChannelState } from '../src/core/channel-state.js';
import { Flag, FrameType } from '../src/core/frame.js';
import { LightSession, type LightChannel } from '../src/core/light-channel.js';
import { FakeTransport } from './support/fake-transport.js';
import { collectGarbage } from './support/resources.js';
import { nextTask } from '../src/core/timers.js';
import { frame, parseFrames } from './helpers.js';

assertClockReaches(nextTask);

const noop = (): void => {};

/**
 * Stands in for an `AbortSignal` (the session uses `aborted`, `reason` and the `'abort'` listener): Node's
 * `abort()` costs about 9 µs in event dispatch, which would drown the session's own cost in the timings.
 */
class CheapSignal {
  aborted = false;
  reason: unknown;
  #listener: (() => void) | undefined;
  addEventListener(_type: string, listener: () => void): void {
    this.#listener = listener;
  }
  removeEventListener(): void {
    this.#listener = undefined;
  }
  abort(reason: unknown): void {
    this.aborted = true;
    this.reason = reason;
    const listener = this.#listener;
    this.#listener = undefined;
    listener?.();
  }
  get signal(): AbortSignal {
    return this as unknown as AbortSignal;
  }
}

/**
 * `n` accept() calls wait; three in four are given up (oldest first), and the peer's SYNs answer the others.
 * The milliseconds that took; the calls must have ended as they should.
 */
async function acceptCost(n: number): Promise<number> {
  const transport = new FakeTransport();
  const session = new LightSession(transport, 'server', { keepAliveInterval: 0, maxStreams: n });
  try {
    const signals: CheapSignal[] = [];
    const calls: Promise<LightChannel | string>[] = [];
    for (let i = 0; i < n; i++) {
      const signal = new CheapSignal();
      signals.push(signal);
      calls.push(session.accept({ signal: signal.signal }).catch((error: unknown) => String(error)));
    }
    const syns = Buffer.concat(
      Array.from({ length: n / 4 }, (_, k) => frame(FrameType.windowUpdate, Flag.syn, 2 * k + 1, 0)),
    );
    // CPU time, not the wall clock: on a busy machine a 3 ms run often goes without being preempted where a
    // 60 ms one never does, and the wall-clock ratio then passed 16 for code that is linear.
    const started = process.cpuUsage();
    for (let i = 0; i < n; i++) if (i % 4 !== 3) signals[i]!.abort('given up');
    transport.feed(syns);
    const used = process.cpuUsage(started);
    const ms = (used.user + used.system) / 1000;
    const results = await Promise.all(calls);
    for (let i = 0; i < n; i++) {
      // The k-th SYN (id 2k + 1) went to the oldest call still waiting: the one at 4k + 3.
      const result = results[i]!;
      const expected = i % 4 === 3 ? (i - 1) / 2 : 'given up';
      assert.equal(typeof result === 'string' ? result : result.id, expected, `call ${i}`);
    }
    return ms;
  } finally {
    session.destroy();
  }
}

test('accept() calls given up, and those a channel answers, cost the same however many calls wait', async () => {
  const n = 10_000;
  const best = { n: Infinity, n4: Infinity };
  for (let round = 0; round < 5; round++) {
    best.n = Math.min(best.n, await acceptCost(n));
    best.n4 = Math.min(best.n4, await acceptCost(4 * n));
  }
  // Before: each abort looked its call up in an array and spliced it out, each channel shift()ed the array:
  // quadratic, 4n cost 16 times n or more (about 50 times here).
  assert.ok(
    best.n4 < 16 * best.n,
    `${n} calls: ${best.n.toFixed(1)} ms, ${4 * n}: ${best.n4.toFixed(1)} ms (best of five each)`,
  );
});

test('ping() calls given up keep nothing reachable while the ping they shared is still unanswered', async () => {
  const transport = new FakeTransport();
  // The peer never answers (until the end): the ping stays in flight, with its deadline a minute away.
  const session = new LightSession(transport, 'client', { keepAliveInterval: 0, keepAliveTimeout: 60_000 });
  try {
    const first = session.ping();
    first.catch(noop); // heard if the test fails before its answer
    const given = 2000;
    const reasons: WeakRef<object>[] = [];
    for (let i = 0; i < given; i++) {
      const controller = new AbortController();
      const reason = new Error(`given up ${i}`);
      reasons.push(new WeakRef(reason));
      session.ping({ signal: controller.signal }).catch(noop);
      controller.abort(reason);
    }
    const last = session.ping();
    last.catch(noop);
    for (let i = 0; i < 5; i++) {
      await realImmediate();
      collectGarbage();
    }
    const gone = reasons.filter((ref) => ref.deref() === undefined).length;
    // Before: every call given up kept its handlers, its signal and its reason in the ping's lists (0 of 2,000).
    assert.ok(gone >= given / 2, `${gone} of ${given} calls given up were collected`);
    assert.equal(session.state, 'open');
    // The calls that still wait get the answer.
    const pings = parseFrames(transport.output()).filter(
      (f) => f.type === FrameType.ping && (f.flags & Flag.syn) !== 0,
    );
    assert.equal(pings.length, 1, 'one ping in flight, shared');
    transport.feed(frame(FrameType.ping, Flag.ack, 0, pings[0]!.length));
    const rtts = await Promise.all([first, last]);
    assert.ok(rtts.every((rtt) => rtt >= 0));
  } finally {
    session.destroy();
  }
});

/**
 * `pending` dials wait for an acknowledgement an hour away, and `due` more time out 1 ms apart (each its own
 * `openTimeout`, dialled in shuffled order), under a virtual clock: how many times the session read a dial's
 * deadline while those time out. The dials must have failed at their deadlines, in order, and no other.
 */
async function sweepReads(pending: number, due: number): Promise<number> {
  const clock = new VirtualClock();
  const descriptor = Object.getOwnPropertyDescriptor(ChannelState.prototype, 'openDeadline')!;
  let reads = 0;
  clock.install();
  const transport = new FakeTransport();
  const session = new LightSession(transport, 'client', { keepAliveInterval: 0, maxStreams: pending + due });
  try {
    for (let i = 0; i < pending; i++) session.dial({ openTimeout: 3_600_000 }).on('error', noop);
    const failed: [timeout: number, at: number][] = [];
    const timeouts = Array.from({ length: due }, (_, i) => 100 + i);
    for (let i = due - 1; i > 0; i -= 3) [timeouts[i], timeouts[i - 1]] = [timeouts[i - 1]!, timeouts[i]!];
    for (const timeout of timeouts) {
      session.dial({ openTimeout: timeout }).on('error', (error: Error & { code?: string }) => {
        assert.equal(error.code, 'ERR_MUX_OPEN_TIMEOUT');
        failed.push([timeout, clock.now]);
      });
    }
    Object.defineProperty(ChannelState.prototype, 'openDeadline', {
      ...descriptor,
      get(this: ChannelState) {
        reads++;
        return descriptor.get!.call(this) as number;
      },
    });
    // Fire the timers in virtual time order (immediates first, as a turn of the event loop runs them).
    while (failed.length < due) {
      const timer = clock.nextImmediate() ?? clock.nextTimer();
      assert.ok(timer !== undefined && timer.at < 100 + due + 50, `${failed.length} of ${due} dials failed`);
      clock.fire(timer);
      await Promise.resolve(); // the session's own microtasks (a failure may be reported from one)
      await Promise.resolve();
    }
    Object.defineProperty(ChannelState.prototype, 'openDeadline', descriptor);
    assert.deepEqual(
      failed,
      [...timeouts].sort((a, b) => a - b).map((timeout) => [timeout, timeout]),
      'each dial failed at its deadline, in order',
    );
    assert.equal(session.channelCount, pending, 'the dials due in an hour wait on');
    return reads;
  } finally {
    Object.defineProperty(ChannelState.prototype, 'openDeadline', descriptor);
    session.destroy();
    clock.uninstall();
  }
}

test('the open-timeout sweep looks only at the dials that are due, however many wait', async () => {
  const due = 50;
  const few = await sweepReads(1000, due);
  const many = await sweepReads(4000, due);
  // Before: every sweep read the deadline of every waiting dial (about 3 reads each), once per deadline.
  assert.ok(
    many < 2 * few,
    `deadlines read while ${due} dials timed out: ${few} with 1,000 waiting, ${many} with 4,000`,
  );
  assert.ok(few < 20 * due, `${few} reads for ${due} dials due`);
});
