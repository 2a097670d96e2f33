/**
 * When Window Updates may wait for the end of the event-loop turn.
 *
 * A receiver that only reads sends nothing but Window Updates, and each flush is one transport write (on a
 * socket, a system call that also wakes the peer). Flushed as soon as each is due, a session receiving
 * 100 bulk channels wrote once per 64 KiB read. Where updates come for different channels one after
 * another, several channels receive, and the peer's credit on the others keeps the link busy: an update can
 * wait for the end of the turn (Node's `setImmediate`, after the pending reads), and the turn's updates leave
 * in one write. An update for the same channel as the one before goes at once: that channel may be the only
 * one receiving, and its peer may be waiting for it. Where there is no `setImmediate` (browsers), updates are
 * never held.
 *
 * (A first version counted the channels that received data per turn. Under load a turn often held one read,
 * so the count said "one channel" for 100 interleaved ones, and most updates went out alone.)
 * @module
 */
import { afterIo } from './timers.js';

export class UpdateTurns {
  /** The channel of the last update queued (-1 before any). */
  #lastChannel = -1;
  #endScheduled = false;

  readonly #release: () => void;
  /** @param release Called at the end of a turn in which updates were held (to flush them). */
  constructor(release: () => void) {
    this.#release = release;
  }

  /**
   * True when a Window Update just queued for `channelId` may wait for the end of the turn (then it is released
   * with it): the update before it was for another channel.
   */
  hold(channelId: number): boolean {
    const another = this.#lastChannel !== channelId && this.#lastChannel !== -1;
    this.#lastChannel = channelId;
    if (!another) return false;
    if (this.#endScheduled) return true;
    if (!afterIo(this.#endTurn)) return false;
    this.#endScheduled = true;
    return true;
  }

  readonly #endTurn = (): void => {
    this.#endScheduled = false;
    this.#release();
  };
}
