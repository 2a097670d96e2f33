/**
 * How long one session may read at a stretch before the event loop goes to other work.
 *
 * One read of a socket brings up to 64 KiB, and Node reads a ready socket up to 32 times in a row: 64 KiB of
 * frames that each open a channel (5,461 of them) took 0.2-0.3 s to handle, during which no other session,
 * timer or socket of the process had a turn (another session's round trip waited half a second). The session
 * measures the time its reading takes (decoding, and what the frames set off, an application's listeners
 * included); once a turn's share is spent it stops reading the transport, keeps what it has not decoded, and
 * goes on after the loop's pending work (see `nextTask`). The share is the option `readTimeSlice`.
 * @module
 */
import { nextTask } from './timers.js';

/**
 * Time spent beyond which the count starts again at the turn's end (a task after the pending reads): below it,
 * turns that each take a little add up, a task for every turn being dearer than what it would save.
 */
const RECOUNT_AFTER_MS = 1;

export class TurnBudget {
  #spent = 0;
  #since = 0;
  #recountQueued = false;
  #goOnQueued = false;
  readonly #slice: number;
  readonly #goOn: () => void;

  /**
   * `slice`: the milliseconds of a turn reading may take (0: no limit). `goOn` is called once the loop's pending
   * work has had its turn, after `goOnLater()`.
   */
  constructor(slice: number, goOn: () => void) {
    this.#slice = slice;
    this.#goOn = goOn;
  }

  /** Reading starts (a chunk came, or held input is taken up) at `now`: the time from there counts. */
  start(now = performance.now()): void {
    this.#since = now;
  }

  /** Counts the time since `start()` (or the last call) as spent; true once this turn's share is. */
  spent(): boolean {
    if (this.#slice === 0) return false;
    const now = performance.now();
    this.#spent += now - this.#since;
    this.#since = now;
    if (this.#spent >= RECOUNT_AFTER_MS && !this.#recountQueued) {
      this.#recountQueued = true;
      nextTask(this.#recount);
    }
    return this.#spent >= this.#slice;
  }

  /** Calls `goOn` in a later turn (once, however often asked before it runs), with the count started again. */
  goOnLater(): void {
    if (this.#goOnQueued) return;
    this.#goOnQueued = true;
    nextTask(this.#next);
  }

  readonly #recount = (): void => {
    this.#recountQueued = false;
    this.#spent = 0;
  };

  readonly #next = (): void => {
    this.#goOnQueued = false;
    this.#spent = 0;
    this.#since = performance.now();
    this.#goOn();
  };
}
