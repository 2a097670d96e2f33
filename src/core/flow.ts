/**
 * Flow control as pure state: no I/O, no timers, so every rule is unit-tested on its own.
 *
 * - {@link ReceiveWindow}: one channel's receive side. It counts what the peer was granted, what arrived and
 *   what the application read, decides when a Window Update is worth sending and how large, and grows the
 *   window (auto-tuning) when the window rather than the reader limits throughput.
 * - {@link SessionMemory}: the session's bound on bytes received and not yet read, which window growth must
 *   fit under and which decides when updates are withheld and when reading the transport pauses.
 * @module
 */
import { SPEC_INITIAL_WINDOW } from './options.js';

/** One channel's receive window. All counters are totals since the channel opened (safe past 2^32). */
export class ReceiveWindow {
  /** The window this side aims to keep open for the peer; auto-tuning doubles it up to `maxSize`. */
  size: number;
  /** Total payload bytes the peer may send: the spec's 256 KiB plus every increment sent. */
  granted = SPEC_INITIAL_WINDOW;
  /** Total payload bytes received. */
  received = 0;
  /** Total payload bytes the application has read. */
  consumed = 0;
  /** When the current auto-tuning epoch started (time of the last update), in ms. */
  private epochStart = Number.NaN;
  /** `consumed` when the current epoch started. */
  private epochConsumed = 0;

  constructor(initialSize: number, readonly maxSize: number) {
    this.size = initialSize;
  }

  /** Bytes the peer may still send before it must wait for an update. */
  get credit(): number {
    return this.granted - this.received;
  }

  /** Bytes received and not yet read. */
  get buffered(): number {
    return this.received - this.consumed;
  }

  /** Records `n` received bytes; false means the peer overran the window (a protocol error). */
  receive(n: number): boolean {
    if (n > this.granted - this.received) return false;
    this.received += n;
    return true;
  }

  /** Records that the application has read up to `totalConsumed` bytes; returns how many are newly read. */
  consume(totalConsumed: number): number {
    const fresh = totalConsumed - this.consumed;
    this.consumed = totalConsumed;
    return fresh;
  }

  /** The increment that would bring the peer's credit back to the full window. */
  get pendingIncrement(): number {
    return this.consumed + this.size - this.granted;
  }

  /** True when an update is worth a frame: at least half the window has been read since the last one. */
  get updateDue(): boolean {
    return this.pendingIncrement >= this.size / 2;
  }

  /**
   * Grows the window when the last epoch shows the window, not the reader, is the bottleneck: the reader got
   * through its share of the window in less than about two round trips. `reserve(extra)` asks the session's
   * memory bound for the extra bytes and may refuse. Returns the bytes the window grew by.
   */
  autoTune(nowMs: number, rttMs: number | undefined, reserve: (extra: number) => boolean): number {
    if (rttMs === undefined || this.size >= this.maxSize || Number.isNaN(this.epochStart)) return 0;
    const readInEpoch = this.consumed - this.epochConsumed;
    if (readInEpoch <= 0) return 0;
    const elapsed = nowMs - this.epochStart;
    // The reader drains `readInEpoch / size` of a window in `elapsed`; a full window in under 2 RTTs means a
    // larger window would have let the sender go faster.
    const threshold = 2 * rttMs * (readInEpoch / this.size);
    if (elapsed >= threshold) return 0;
    // Far below the threshold the link has much more room: grow faster, as slow start would.
    const factor = elapsed < threshold / 4 ? 4 : 2;
    const grown = Math.min(this.size * factor, this.maxSize) - this.size;
    if (!reserve(grown)) return 0;
    this.size += grown;
    return grown;
  }

  /** Takes the pending increment as sent (starting a new epoch) and returns it. */
  takeIncrement(nowMs: number): number {
    const increment = this.pendingIncrement;
    if (increment <= 0) return 0;
    this.granted += increment;
    this.epochStart = nowMs;
    this.epochConsumed = this.consumed;
    return increment;
  }

  /** Starts the first epoch without sending anything (when the channel opens at the spec's window). */
  startEpoch(nowMs: number): void {
    this.epochStart = nowMs;
    this.epochConsumed = this.consumed;
  }
}

/**
 * The session's bound on buffered memory. Below half the limit everything flows; from half the limit on,
 * Window Updates are withheld and windows stop growing; at the limit, the session stops reading the transport
 * until readers catch up below half again.
 */
export class SessionMemory {
  /** Bytes received and not yet read, across all channels. */
  buffered = 0;
  /** Window bytes granted beyond each channel's initial window, across all channels (promised memory). */
  grown = 0;

  constructor(readonly limit: number) {}

  /** Soft limit reached: withhold Window Updates, do not grow windows. */
  get underPressure(): boolean {
    return this.buffered >= this.limit / 2;
  }

  /** Hard limit reached: stop reading the transport. */
  get exhausted(): boolean {
    return this.buffered >= this.limit;
  }

  /** Reserves `extra` window bytes for growth if buffered plus promised memory stays within the limit. */
  reserveGrowth(extra: number): boolean {
    if (this.underPressure || this.buffered + this.grown + extra > this.limit) return false;
    this.grown += extra;
    return true;
  }

  /** Gives back a closed channel's growth. */
  releaseGrowth(extra: number): void {
    this.grown -= extra;
  }
}
