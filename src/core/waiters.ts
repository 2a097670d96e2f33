/**
 * Calls waiting for something the session hands out (`accept()` calls for channels, `ping()` calls for an
 * answer), oldest first, one record per call. A call given up (its signal aborted) lets go of its handlers at
 * once, so that it keeps nothing reachable, and its record is skipped when its turn comes; once such records
 * outnumber the live ones, they are dropped. Giving up and handing out cost the same however many calls wait.
 * @module
 */
import { Fifo } from './fifo.js';

/** One waiting call: its handlers, null once it was settled or given up. */
export interface Waiter<T> {
  resolve: ((value: T) => void) | null;
  reject: ((error: Error) => void) | null;
}

export class Waiters<T> {
  readonly #queue = new Fifo<Waiter<T>>();
  /** Records in the queue whose call gave up. */
  #dead = 0;

  /** Calls still waiting. */
  get size(): number {
    return this.#queue.length - this.#dead;
  }

  add(resolve: (value: T) => void, reject: (error: Error) => void): Waiter<T> {
    const waiter: Waiter<T> = { resolve, reject };
    this.#queue.push(waiter);
    return waiter;
  }

  /** `waiter`'s call gives up: false if it was already settled (that outcome stands). */
  drop(waiter: Waiter<T>): boolean {
    if (waiter.resolve === null) return false;
    waiter.resolve = waiter.reject = null;
    const length = this.#queue.length;
    if (++this.#dead * 2 > length && length > 64) {
      this.#queue.retain((queued) => queued.resolve !== null);
      this.#dead = 0;
    }
    return true;
  }

  /** Takes out the oldest call still waiting, settled from here on: its `resolve`, or undefined if none waits. */
  shift(): ((value: T) => void) | undefined {
    for (;;) {
      const waiter = this.#queue.shift();
      if (waiter === undefined) return undefined;
      const resolve = waiter.resolve;
      if (resolve !== null) {
        waiter.resolve = waiter.reject = null;
        return resolve;
      }
      this.#dead--;
    }
  }

  /** Resolves every waiting call with `value`, oldest first. */
  resolveAll(value: T): void {
    this.#settleAll((resolve) => resolve(value));
  }

  /** Rejects every waiting call with `error`, oldest first. */
  rejectAll(error: Error): void {
    this.#settleAll((_, reject) => reject(error));
  }

  /** Empties the queue, calling `settle` with the handlers of each call still waiting, oldest first. */
  #settleAll(settle: (resolve: (value: T) => void, reject: (error: Error) => void) => void): void {
    this.#dead = 0;
    for (const waiter of this.#queue.drain()) {
      const { resolve, reject } = waiter;
      if (resolve === null) continue;
      waiter.resolve = waiter.reject = null;
      settle(resolve, reject!);
    }
  }
}
