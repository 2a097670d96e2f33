/**
 * A memory budget shared by sessions: the bound on window growth across all of them.
 *
 * Each session bounds its own buffered bytes (`maxSessionBuffered`), but a server with a thousand sessions
 * would then promise a thousand times that. Window growth beyond a channel's initial window is the memory a
 * peer can make this side hold; every session reserves it from its budget as well as from its own bound, and
 * gives it back when the window shrinks, the channel closes or the session ends. When the budget is spent,
 * windows stop growing (channels keep their initial windows and go on flowing): throughput degrades,
 * nothing fails.
 * @module
 */

/** A bound on window growth shared by the sessions given it (option `memoryBudget`). */
export class MemoryBudget {
  #reservedBytes = 0;

  /** @param limit Bytes of window growth the sessions sharing this budget may hold together. */
  constructor(readonly limit: number) {
    checkBytes("a memory budget's limit", limit);
  }

  /** Bytes reserved now, across all sessions sharing the budget. */
  get reserved(): number {
    return this.#reservedBytes;
  }

  /** Bytes that may still be reserved. */
  get available(): number {
    return this.limit - this.#reservedBytes;
  }

  /**
   * Reserves `bytes` if they fit; false (and nothing reserved) if not.
   * @throws TypeError if `bytes` is no number; RangeError if it is no non-negative integer (nothing reserved).
   */
  tryReserve(bytes: number): boolean {
    checkBytes('bytes reserved', bytes);
    if (bytes > this.limit - this.#reservedBytes) return false;
    this.#reservedBytes += bytes;
    return true;
  }

  /**
   * Gives back `bytes` reserved earlier (more than is reserved gives back all of it).
   * @throws TypeError if `bytes` is no number; RangeError if it is no non-negative integer (nothing given back).
   */
  release(bytes: number): void {
    checkBytes('bytes released', bytes);
    this.#reservedBytes = Math.max(0, this.#reservedBytes - bytes);
  }
}

/**
 * A count of bytes, checked before it changes a budget: one `NaN` would turn a budget shared by every session
 * into no bound at all, and a negative count would make room that is not there.
 */
function checkBytes(what: string, bytes: number): void {
  if (typeof bytes !== 'number') throw new TypeError(`muxwire: ${what} must be a number, got ${typeof bytes}`);
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new RangeError(`muxwire: ${what} must be a non-negative integer, got ${bytes}`);
  }
}

/**
 * The budget every session uses unless given another (or `null`): 256 MiB of window growth per process (per
 * page in a browser): four channels at the default 64 MiB `maxWindow`, sixteen at 16 MiB.
 */
export const sharedMemoryBudget = new MemoryBudget(256 * 1024 * 1024);
