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

/** Where {@link RepeatedEvents} writes: the command's `Reporter`, or anything with its `event`. */
export interface EventSink {
  event(event: string, message: string, fields?: Record<string, unknown>): void;
}

/**
 * Events a peer can cause once per channel (a forward denied, a malformed request, a target that refuses): one
 * {@link RepeatedReport} per event and code, so that a client opening thousands of such channels a second
 * (one that holds the token, which is all it takes) makes a line, then one a {@link REPEAT_REPORT_INTERVAL_MS}
 * with how many more came and the latest of them, and not a line each. What is still counted is reported by
 * `flush()`.
 */
export class RepeatedEvents {
  readonly #sink: EventSink;
  readonly #intervalMs: number;
  readonly #kinds = new Map<string, { report: RepeatedReport; message: string; fields: Record<string, unknown> }>();

  constructor(sink: EventSink, intervalMs = REPEAT_REPORT_INTERVAL_MS) {
    this.#sink = sink;
    this.#intervalMs = intervalMs;
  }

  /** Reports `event` at once, or counts it with the others of its kind (`event` and `fields.code`) for later. */
  event(event: string, message: string, fields: Record<string, unknown> = {}): void {
    const key = `${event} ${String(fields.code)}`;
    let kind = this.#kinds.get(key);
    if (kind === undefined) {
      const made = {
        message,
        fields,
        report: new RepeatedReport((count) => {
          const seconds = this.#intervalMs / 1000;
          this.#sink.event(
            event,
            count === 1 ? made.message : `${count} more like this within ${seconds} s; the latest: ${made.message}`,
            { ...made.fields, count },
          );
        }, this.#intervalMs),
      };
      kind = made;
      this.#kinds.set(key, kind);
    }
    kind.message = message;
    kind.fields = fields;
    kind.report.add();
  }

  /** Reports what is counted and not yet reported (the command is stopping). */
  flush(): void {
    for (const kind of this.#kinds.values()) kind.report.flush();
  }
}
