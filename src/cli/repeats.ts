/**
 * Reports of an event that can repeat as fast as a peer or the system makes it (a client's channels refused
 * at its bound, a listener out of file descriptors): the first is reported at once, and those that follow are
 * counted and reported together at most once per {@link REPEAT_REPORT_INTERVAL_MS}, so that the log shows a
 * flood without being flooded by it.
 * @module
 */

/** The shortest time between two reports of the same repeating event. */
export const REPEAT_REPORT_INTERVAL_MS = 10_000;

/** One repeating event's reports: `report(count, first)` is called with how many happened since the last. */
export class RepeatedReport {
  readonly #report: (count: number, first: boolean) => void;
  readonly #intervalMs: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #pending = 0;
  #total = 0;

  constructor(report: (count: number, first: boolean) => void, intervalMs = REPEAT_REPORT_INTERVAL_MS) {
    this.#report = report;
    this.#intervalMs = intervalMs;
  }

  /** How many happened in all. */
  get total(): number {
    return this.#total;
  }

  /** One more: reported at once after a quiet interval, else counted for the next report. */
  add(): void {
    this.#total += 1;
    if (this.#timer !== undefined) {
      this.#pending += 1;
      return;
    }
    this.#report(1, this.#total === 1);
    this.#arm();
  }

  /** Reports what is counted and not yet reported, and stops the timer (the source is gone). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const pending = this.#pending;
    this.#pending = 0;
    if (pending > 0) this.#report(pending, false);
  }

  #arm(): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const pending = this.#pending;
      if (pending === 0) return;
      this.#pending = 0;
      this.#report(pending, false);
      this.#arm();
    }, this.#intervalMs);
    this.#timer.unref();
  }
}
