/**
 * A virtual clock for the deterministic simulation. While installed it replaces the globals the core reads
 * time and arms timers through (`setTimeout`, `clearTimeout`, `setImmediate`, `clearImmediate`,
 * `performance.now`), so every timer of a session is an entry here that fires only when the simulation's
 * scheduler says so, in virtual time order, and time moves only when the scheduler advances it.
 *
 * Node's own machinery (the test runner, the real event loop the simulation yields to) imports its timers
 * from `node:timers`, not from `globalThis`, so it is not affected while a run holds the clock.
 *
 * muxwire takes `setImmediate` and `setTimeout` once, when it loads, for the work that moves data
 * (src/core/timers.ts: a user's fake timers must not stall it). So that this work is the clock's too, this
 * module puts forwarders in their place when it loads, before muxwire does (import it first; the simulation
 * checks it with `assertClockReaches`): they reach the installed clock, else Node's functions.
 */

let installedClock: VirtualClock | undefined;
type Schedule = (callback: () => void, delay?: number, ...args: unknown[]) => unknown;
const realSetImmediate = globalThis.setImmediate as (callback: () => void, ...args: unknown[]) => unknown;
const realSetTimeout = globalThis.setTimeout as Schedule;
globalThis.setImmediate = ((callback: unknown, ...args: unknown[]) =>
  installedClock !== undefined
    ? installedClock.arm(callback, 0, args, true, 4)
    : realSetImmediate(callback as () => void, ...args)) as typeof setImmediate;
globalThis.setTimeout = ((callback: unknown, delay?: unknown, ...args: unknown[]) =>
  installedClock !== undefined
    ? installedClock.arm(callback, delay, args, false, 4)
    : realSetTimeout(callback as () => void, delay as number, ...args)) as typeof setTimeout;
function holdClock(clock: VirtualClock | undefined): void {
  installedClock = clock;
}

/** One armed timer (or immediate). Shaped like Node's `Timeout` as far as the core uses it (`unref`). */
export class VirtualTimer {
  /** Whether it would keep a Node process alive: kept only to report what is left at the end of a run. */
  referenced = true;
  constructor(
    readonly seq: number,
    readonly at: number,
    readonly callback: () => void,
    /** An immediate (`setImmediate`): runs at the end of the current turn, before time moves. */
    readonly immediate: boolean,
    /** Where it was armed, for the report of a timer left behind. */
    readonly origin: string,
  ) {}
  unref(): this {
    this.referenced = false;
    return this;
  }
  ref(): this {
    this.referenced = true;
    return this;
  }
  hasRef(): boolean {
    return this.referenced;
  }
}

interface SavedGlobals {
  setTimeout: unknown;
  clearTimeout: unknown;
  setImmediate: unknown;
  clearImmediate: unknown;
  now: PropertyDescriptor | undefined;
}

/** The clock; at most one is installed at a time. */
export class VirtualClock {
  /** Virtual milliseconds since the start of the run. */
  now = 0;
  private seq = 0;
  private readonly timers = new Set<VirtualTimer>();
  private saved: SavedGlobals | undefined;
  /** Record where each timer was armed (a stack line), for the report of timers left; off by default (costly). */
  origins = false;

  /** Timers and immediates armed and not yet fired or cleared. */
  get pending(): number {
    return this.timers.size;
  }

  /** What is still armed, for a failure report. */
  describePending(): string[] {
    return [...this.timers].map(
      (t) => `${t.immediate ? 'immediate' : `timer at ${t.at} ms`}${t.origin ? ` from ${t.origin}` : ''}`,
    );
  }

  /** The next immediate to run (FIFO), if any. */
  nextImmediate(): VirtualTimer | undefined {
    let best: VirtualTimer | undefined;
    for (const t of this.timers) if (t.immediate && (best === undefined || t.seq < best.seq)) best = t;
    return best;
  }

  /** The timer that fires first (earliest time, then the order they were armed in), if any. */
  nextTimer(): VirtualTimer | undefined {
    let best: VirtualTimer | undefined;
    for (const t of this.timers) {
      if (t.immediate) continue;
      if (best === undefined || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }

  /** Runs one timer or immediate now (the scheduler chose it). */
  fire(timer: VirtualTimer): void {
    if (!this.timers.delete(timer)) return;
    if (timer.at > this.now) this.now = timer.at;
    timer.callback();
  }

  /** Moves time forward (never back). */
  advanceTo(at: number): void {
    if (at > this.now) this.now = at;
  }

  /** Forgets every timer (after a failed run, so the next run starts clean). */
  clear(): void {
    this.timers.clear();
  }

  /** Arms a timer (an immediate if `immediate`); `depth`: the stack frame that armed it, for `origins`. */
  arm(callback: unknown, delay: unknown, args: unknown[], immediate: boolean, depth = 3): VirtualTimer {
    if (typeof callback !== 'function') throw new TypeError('virtual clock: callback must be a function');
    const ms = immediate ? 0 : Math.max(1, Math.floor(Number(delay) || 0)); // Node's rule: under 1 is 1
    const origin = this.origins ? (new Error().stack?.split('\n')[depth]?.trim() ?? '') : '';
    const timer = new VirtualTimer(
      ++this.seq,
      this.now + ms,
      () => (callback as (...a: unknown[]) => void)(...args),
      immediate,
      origin,
    );
    this.timers.add(timer);
    return timer;
  }

  /** Replaces the globals; `uninstall()` puts the originals back. */
  install(): void {
    if (this.saved !== undefined) return;
    holdClock(this);
    const g = globalThis as Record<string, unknown>;
    this.saved = {
      setTimeout: g.setTimeout,
      clearTimeout: g.clearTimeout,
      setImmediate: g.setImmediate,
      clearImmediate: g.clearImmediate,
      now: Object.getOwnPropertyDescriptor(performance, 'now'),
    };
    const remove = (timer: unknown): void => {
      if (timer instanceof VirtualTimer) this.timers.delete(timer);
    };
    g.setTimeout = (callback: unknown, delay?: unknown, ...args: unknown[]) => this.arm(callback, delay, args, false);
    g.clearTimeout = remove;
    g.setImmediate = (callback: unknown, ...args: unknown[]) => this.arm(callback, 0, args, true);
    g.clearImmediate = remove;
    Object.defineProperty(performance, 'now', { value: () => this.now, configurable: true, writable: true });
  }

  uninstall(): void {
    const saved = this.saved;
    if (saved === undefined) return;
    this.saved = undefined;
    if (installedClock === this) holdClock(undefined);
    const g = globalThis as Record<string, unknown>;
    g.setTimeout = saved.setTimeout;
    g.clearTimeout = saved.clearTimeout;
    g.setImmediate = saved.setImmediate;
    g.clearImmediate = saved.clearImmediate;
    if (saved.now === undefined) delete (performance as unknown as Record<string, unknown>).now;
    else Object.defineProperty(performance, 'now', saved.now);
  }
}

/**
 * Throws unless `schedule` (one of muxwire's own schedulers, taken when it loaded) reaches an installed clock:
 * this module must load before muxwire for the simulation's runs to be deterministic.
 */
export function assertClockReaches(schedule: (task: () => void) => void): void {
  const clock = new VirtualClock();
  clock.install();
  try {
    schedule(() => {});
    if (clock.pending !== 1) {
      throw new Error('muxwire loaded before test/sim/clock.js: import the clock first, so its scheduling is virtual');
    }
  } finally {
    clock.uninstall();
  }
}
