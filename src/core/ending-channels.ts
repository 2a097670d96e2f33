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
 * set off included) to take about `readTimeSlice`. The session reports its own end after the last batch.
 * @module
 */
import type { ChannelState } from './channel-state.js';
import { nextTask } from './timers.js';

/**
 * Channels told in the turn the session fails: with `pipeline`s at 0.13 ms each, about the 8 ms of the default
 * `readTimeSlice`. A session with no more channels than this ends within the turn, as it always did.
 */
const FIRST_BATCH = 64;

/** The least a later batch tells, however dear the last one was (other work of the turn counts in it too). */
const MIN_BATCH = 16;

export class EndingChannels {
  /** Channel, error, channel, error...: those still to be told from `#next`, in the order they were added. */
  #items: (ChannelState | Error | undefined)[] = [];
  #next = 0;
  #batch = FIRST_BATCH;
  #batchStart = 0;
  #batchSize = 0;
  #queued = false;
  #telling = false;
  #after: (() => void)[] = [];
  readonly #slice: number;
  readonly #tell: (channel: ChannelState, error: Error | undefined) => void;

  /**
   * `slice`: the milliseconds a turn's batch may take (0: every channel told at once). `tell` tells one
   * channel's endpoint, with the error the session's end gave (undefined: each its own).
   */
  constructor(slice: number, tell: (channel: ChannelState, error: Error | undefined) => void) {
    this.#slice = slice;
    this.#tell = tell;
  }

  /** A channel taken out of the session's table at its end, to be told with `error`. */
  add(channel: ChannelState, error: Error | undefined): void {
    this.#items.push(channel, error);
  }

  /** Tells a first batch of those added now, the rest in later turns (all of them now without a slice). */
  start(): void {
    // Already at it: those added follow (a channel's listener may end another session part, never this table).
    if (this.#telling || this.#queued) return;
    this.#tellBatch(this.#slice === 0 ? Infinity : FIRST_BATCH);
  }

  /** Calls `then` once every channel added has been told: at once when none waits. */
  whenTold(then: () => void): void {
    if (this.#next === this.#items.length) then();
    else this.#after.push(then);
  }

  #tellBatch(size: number): void {
    this.#batchStart = performance.now();
    const items = this.#items;
    const from = this.#next;
    const end = Math.min(items.length, from + 2 * size);
    this.#telling = true;
    try {
      while (this.#next < end) {
        const i = this.#next;
        this.#next = i + 2;
        this.#tell(items[i] as ChannelState, items[i + 1] as Error | undefined);
      }
    } finally {
      this.#telling = false;
      this.#batchSize = (this.#next - from) / 2;
      if (this.#next < this.#items.length) {
        this.#queued = true;
        nextTask(this.#goOn);
      } else {
        this.#items = [];
        this.#next = 0;
        const after = this.#after;
        this.#after = [];
        for (const then of after) then();
      }
    }
  }

  readonly #goOn = (): void => {
    this.#queued = false;
    // What the last batch cost, with what it set off after its calls returned (a Node stream's teardown runs in
    // the ticks that follow its destroy()): the next one is sized to fit the slice, growing at most twofold.
    const perChannel = (performance.now() - this.#batchStart) / Math.max(1, this.#batchSize);
    this.#batch = Math.max(MIN_BATCH, Math.min(Math.floor(this.#slice / perChannel), 2 * this.#batch));
    this.#tellBatch(this.#batch);
  };
}
