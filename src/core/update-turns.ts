/**
 * When Window Updates may wait for the end of the event-loop turn.
 *
 * A receiver that only reads sends nothing but Window Updates, and each flush is one transport write (on a
 * socket, a system call that also wakes the peer). Flushed as soon as each is due, a session receiving
 * 100 bulk channels wrote once per 64 KiB read. While several channels receive at once, the peer's credit
 * on the others keeps the link busy, so an update can wait for the end of the turn (Node's `setImmediate`,
 * after the pending reads), and the turn's updates leave in one write. With one channel receiving, its
 * update goes at once: its peer may be waiting for it. Where there is no `setImmediate` (browsers), updates
 * are never held.
 * @module
 */

type Later = (task: () => void) => unknown;

/** Node's `setImmediate` when present: it runs after the I/O callbacks of the current turn. */
const runAfterIo: Later | undefined = (globalThis as { setImmediate?: Later }).setImmediate;

export class UpdateTurns {
  /**
   * The current turn's number; a channel remembers the last turn it received data in. Only turns in which an
   * update was held are ended explicitly (a task scheduled per turn would cost every workload, updates or
   * not); otherwise a "turn" runs on until then, and counts the channels that received data meanwhile.
   */
  private turn = 1;
  /** Channels that received data in the current turn. */
  private receiving = 0;
  /** The last turn that ended had at least two channels receiving. */
  private busy = false;
  private endScheduled = false;
  private held = false;

  /** @param release Called at the end of a turn in which updates were held (to flush them). */
  constructor(private readonly release: () => void) {}

  /**
   * A Data frame arrived for a channel whose last receiving turn is `lastTurn`; returns the turn to remember.
   */
  noteData(lastTurn: number): number {
    if (lastTurn !== this.turn) this.receiving++;
    return this.turn;
  }

  /**
   * True when a Window Update just queued may wait for the end of the turn (then it is released with it):
   * at least two channels receive, in this turn or the last one.
   */
  hold(): boolean {
    if (runAfterIo === undefined || !(this.busy || this.receiving >= 2)) return false;
    this.held = true;
    this.scheduleEnd();
    return true;
  }

  private scheduleEnd(): void {
    if (this.endScheduled) return;
    this.endScheduled = true;
    runAfterIo!(this.endTurn);
  }

  private readonly endTurn = (): void => {
    this.endScheduled = false;
    this.busy = this.receiving >= 2;
    this.receiving = 0;
    this.turn++;
    if (this.held) {
      this.held = false;
      this.release();
    }
  };
}
