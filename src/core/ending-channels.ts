/**
 * Telling the channels of an ending session that it failed under them, a turn of the event loop at a time.
 *
 * A session that fails (its peer vanished, a protocol error, a keep-alive timeout) fails every channel it
 * holds, and most of what that costs is what the failure sets off in the application: a Node stream's
 * teardown, a `pipeline`'s cleanup, the `'error'` and `'close'` listeners; about 0.13 ms a channel for an echo
 * through `pipeline` on Node 20. All in one turn, 65,536 such channels held the event loop for 8 to 10 s, every
 * other session, timer and socket of the process waiting meanwhile (and a peer can open that many and then
 * disconnect, again and again). So the session takes its channels off its books at once (none is live once
 * it ended) and tells their endpoints in batches, one a turn, each sized from what the one before cost (what it
 * set off included) to take about `readTimeSlice`. The session reports its own end after the last batch. A
 * channel whose application reaches the session first (a write, an end) is told then, out of turn, so that
 * it never meets the session's end untold.
 * @module
 */
import type { ChannelState } from './channel-state.js';
import { defer } from './defer.js';
import { nextTask } from './timers.js';

/**
 * Channels told in the turn the session fails: with `pipeline`s at 0.13 ms each, about the 8 ms of the default
 * `readTimeSlice`. A session with no more channels than this ends within the turn, as it always did.
 */
const FIRST_BATCH = 64;

/** The least a later batch tells, however dear the last one was (other work of the turn counts in it too). */
const MIN_BATCH = 16;

export class EndingChannels {
  /** Those still to be told, in the order they were added (a `Map` keeps it), with the error for each. */
  readonly #untold = new Map<ChannelState, Error | undefined>();
  #batch = FIRST_BATCH;
  #batchStart = 0;
  #batchSize = 0;
  /** What the last batch cost, with what it set off in the ticks right after it. */
  #batchCost = 0;
  #queued = false;
  #telling = false;
  #after: (() => void)[] = [];
  readonly #slice: number;
  readonly #tell: (channel: ChannelState, error: Error | undefined) => unknown;

  /**
   * `slice`: the milliseconds a turn's batch may take (0: every channel told at once). `tell` tells one
   * channel's endpoint, with the error the session's end gave (undefined: each its own), and returns what the
   * endpoint answered (`ChannelEndpoint.fail`).
   */
  constructor(slice: number, tell: (channel: ChannelState, error: Error | undefined) => unknown) {
    this.#slice = slice;
    this.#tell = tell;
  }

  /** A channel taken out of the session's table at its end, to be told with `error`. */
  add(channel: ChannelState, error: Error | undefined): void {
    this.#untold.set(channel, error);
  }

  /** Tells a first batch of those added now, the rest in later turns (all of them now without a slice). */
  start(): void {
    // Already at it: those added follow (a channel's listener may end another session part, never this table).
    if (this.#telling || this.#queued) return;
    this.#tellBatch(this.#slice === 0 ? Infinity : FIRST_BATCH);
  }

  /** True while `channel` waits to be told. */
  has(channel: ChannelState): boolean {
    return this.#untold.size !== 0 && this.#untold.has(channel);
  }

  /**
   * Tells `channel` now, out of turn: its application reached the session (a write, an end) before its batch
   * did, and must meet the channel as told. Returns the endpoint's answer.
   */
  tellNow(channel: ChannelState): unknown {
    const error = this.#untold.get(channel);
    this.#untold.delete(channel);
    const answer = this.#tell(channel, error);
    // The session's end is reported from a microtask, not within the application's call that got here.
    if (this.#untold.size === 0 && !this.#telling) defer(this.#done);
    return answer;
  }

  /** Calls `then` once every channel added has been told: at once when none waits. */
  whenTold(then: () => void): void {
    if (this.#untold.size === 0) then();
    else this.#after.push(then);
  }

  #tellBatch(size: number): void {
    this.#batchStart = performance.now();
    const untold = this.#untold;
    let told = 0;
    this.#telling = true;
    try {
      for (const [channel, error] of untold) {
        if (told >= size) break;
        untold.delete(channel);
        told++;
        this.#tell(channel, error);
      }
    } finally {
      this.#telling = false;
      this.#batchSize = told;
      if (untold.size !== 0) {
        if (!this.#queued) {
          this.#queued = true;
          // Measured once the ticks its calls set off have run (Node runs them before promise jobs), not at the
          // next turn, which also holds the loop's other work: a busy process would get ever smaller batches.
          this.#batchCost = Infinity;
          defer(this.#measure);
          nextTask(this.#goOn);
        }
      } else this.#done();
    }
  }

  readonly #done = (): void => {
    const after = this.#after;
    this.#after = [];
    for (const then of after) then();
  };

  readonly #measure = (): void => {
    this.#batchCost = performance.now() - this.#batchStart;
  };

  readonly #goOn = (): void => {
    this.#queued = false;
    if (this.#untold.size === 0) return; // told out of turn meanwhile (`tellNow`)
    // The next batch is sized to fit the slice, growing at most twofold.
    const cost = Math.min(this.#batchCost, performance.now() - this.#batchStart);
    const perChannel = cost / Math.max(1, this.#batchSize);
    this.#batch = Math.max(MIN_BATCH, Math.min(Math.floor(this.#slice / perChannel), 2 * this.#batch));
    this.#tellBatch(this.#batch);
  };
}
