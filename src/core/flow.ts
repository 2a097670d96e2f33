/**
 * Flow control as pure state: no I/O, no timers, so every rule is unit-tested on its own.
 *
 * - {@link ReceiveWindow}: one channel's receive side. It counts what the peer was granted, what arrived and
 *   what the application read, decides when a Window Update is worth sending and how large, and grows the
 *   window (auto-tuning) when the window rather than the reader or the link limits throughput.
 * - {@link SessionMemory}: the session's bound on bytes received and not yet read, which window growth must
 *   fit under (and the {@link MemoryBudget} shared with other sessions, if any) and which decides when updates
 *   are limited and when reading the transport pauses.
 * @module
 */
import type { MemoryBudget } from './budget.js';
import { SPEC_INITIAL_WINDOW } from './options.js';

/** A growth of the window on trial: kept only if the read rate rose with it. */
interface GrowthTrial {
  /** The size before the growth, restored if the growth does not pay. */
  readonly fromSize: number;
  /**
   * The read rate (bytes/ms) at the size before the growth: a bold growth's rate to beat; for a doubling in a
   * ramp, the most its baseline may ask.
   */
  readonly rateBefore: number;
  /** When the growth was granted, and `received` then. */
  readonly grownAt: number;
  readonly receivedAtGrowth: number;
  /**
   * For a doubling, the session's RTT when the growth was made (NaN while it has none yet); 0 for a bold
   * growth. A doubling's measurements start one RTT after it (only then do bytes sent under the grown window
   * arrive) and last at least an RTT.
   */
  rttMs: number;
  /** When the next measurement may start: at the growth (bold), an RTT after it (a doubling; NaN without one). */
  startAt: number;
  /**
   * A doubling's rate to beat, measured in the round trip between the growth and its first measurement: the
   * rate at which the bytes sent under the former window were read. NaN until then.
   */
  baseline: number;
  /**
   * Where the current measurement of the rate after the growth started (time, `received` then; NaN until it
   * starts): it counts only the bytes read beyond those (what was already buffered would be read at memory
   * speed, not the link's).
   */
  measuredFrom: number;
  receivedAtMeasure: number;
  /** The doubling was made where a bold growth was allowed (the channel's first epochs, or a ramp). */
  readonly inRamp: boolean;
  /** Measurements that showed the gain so far, and how many in a row the growth needs to pay. */
  gains: number;
  readonly gainsNeeded: number;
}

/**
 * What auto-tuning learned from the window's growths. Made at its first growth: a channel whose window never
 * grows (most are idle or short) does without the fields (test/reliability/idle-light.test.ts counts them).
 */
interface GrowthHistory {
  /** The growth on trial, if one is. */
  trial: GrowthTrial | undefined;
  /** The read rate (bytes/ms) measured at the current size by the last trial (NaN before any). */
  rateAtSize: number;
  failedTrials: number;
  /**
   * Growth may be tried again once `consumed` and the time reach these, after a failed trial (the time in
   * whole milliseconds, the back-off a shift: integers, as the fields start).
   */
  retryAtConsumed: number;
  retryAtMs: number;
  /** The most a growth in the epochs after a paid one may multiply the window by: twice that growth's factor. */
  rampLimit: number;
}

/**
 * A doubled window must raise the read rate by at least this factor to be kept. Where the window limits
 * throughput, doubling it comes close to doubling the rate; where the link does, the rate stays put.
 */
const GROWTH_MUST_GAIN = 1.25;
/**
 * How many measurements in a row must show a doubling's gain (see {@link ReceiveWindow.autoTune}). A
 * backlog that waited in the socket while the whole process was busy is read at memory speed and can make
 * one measurement look fast; it cannot make two in a row look fast, as the one after it sees the link's pace.
 */
const CAUTIOUS_GAINS = 2;
/**
 * A channel's first epochs: its opening (at the spec's window, or with the update announcing a larger one)
 * and its first two Window Updates. Growth decided in them may be large on the strength of one burst (the
 * peer's first window, sent at once, read as it arrives: on a long link the ramp depends on it); later, only
 * once a growth has paid.
 */
const YOUNG_EPOCHS = 3;
/**
 * The least rate a doubling's trial is held to beat (by `GROWTH_MUST_GAIN`), as a share of what the former
 * window carries per round trip, whatever its baseline says: a whole process held up in the round trip after
 * the growth reads little then, and a baseline that low would let the link's own pace pass for a gain.
 */
const BASELINE_FLOOR = 0.5;
/** A trial's rate is measured over at least this long (on a fast link a window is read in microseconds). */
const MIN_TRIAL_MS = 20;
/**
 * After a failed trial, growth is tried again once this many windows were read and this long has passed,
 * both doubling with each failure (up to 2^6 times).
 */
const RETRY_WINDOWS = 8;
const RETRY_MS = 1000;
/**
 * An update is due once half the window was read, or this much for windows larger than 8 MiB. With
 * half-window updates the peer's data in flight swings between half and all of the window; smaller steps keep
 * it near the whole. Measured through a 50 ms RTT proxy with a 64 MiB window: 436–591 MB/s at half-window
 * steps, 637–661 at 4 MiB (one run of eight at 486), for one 12-byte frame per 4 MiB.
 */
const UPDATE_STEP = 4 * 1024 * 1024;
/**
 * The most one growth may multiply a window by. On a 50 ms link a reader drains the spec's 256 KiB in well
 * under a millisecond: the window is far too small, and 32x gets from 256 KiB to 64 MiB in two trials (about
 * 0.25 s) where 8x took three or four. A growth that does not pay is undone by its trial.
 */
const MAX_GROWTH_FACTOR = 32;
/** The largest pace sample (smaller windows sample half the window). */
const PACE_SAMPLE = 1024 * 1024;

/** What a window of `size` bytes carries per round trip (bytes/ms): the rate to beat before any measurement. */
function ratePerRtt(size: number, rttMs: number): number {
  return size / Math.max(rttMs, 0.001);
}

/**
 * One channel's receive window. All counters are totals since the channel opened (safe past 2^32).
 * @hidden (internal: `muxwire/core` exports it at run time only, for the micro-benchmarks)
 */
export class ReceiveWindow {
  /** The window this side aims to keep open for the peer; auto-tuning grows it up to {@link ceiling}. */
  size: number;
  /** Total payload bytes the peer may send: the spec's 256 KiB plus every increment sent. */
  granted = SPEC_INITIAL_WINDOW;
  /** Total payload bytes received. */
  received = 0;
  /** Total payload bytes the application has read. */
  consumed = 0;
  /**
   * How large auto-tuning may make the window: `maxSize`, except after a growth failed to raise the read rate
   * (the link, not the window, is the limit): then the size that growth started from, for a while.
   */
  ceiling: number;
  /** When the current auto-tuning epoch started (time of the last update), in ms. */
  #epochStart = NaN;
  /**
   * `received` when the current epoch started: its pace counts only bytes read beyond those, the bytes that
   * arrived during the epoch (see {@link notePace}).
   */
  #epochReceived = 0;
  /** Null until the first growth. */
  #history: GrowthHistory | null = null;
  /** The fastest pace (ms per byte read) of the epochs and samples since the window last changed size. */
  #fastestPace = Infinity;
  /** Where the current pace sample started (time, `received`); NaN before the first read. */
  #sampleAt = NaN;
  #sampleReceived = 0;
  /** A pace was measured while the session had no RTT yet, and no growth decision has used it. */
  #pacedWithoutRtt = false;
  /** Epochs started so far, counted up to YOUNG_EPOCHS. */
  #epochs = 0;
  /** The fastest pace was seen in the channel's first epochs (a growth on it may be bold, even if decided later). */
  #fastestWhenYoung = false;

  constructor(
    initialSize: number,
    readonly maxSize: number,
  ) {
    this.size = initialSize;
    this.ceiling = maxSize;
  }

  /** True when the reader's pace was seen before the session knew its RTT, and no growth has used it yet. */
  get pacedBeforeRtt(): boolean {
    return this.#pacedWithoutRtt;
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

  /**
   * Samples the reader's pace as it reads (call after `consume`): every `min(size / 2, 1 MiB)` bytes, the
   * time they took, from the end of the previous sample. For windows up to 2 MiB a sample is as long as an
   * epoch (update to update). In a larger window, whose updates come every 4 MiB, a sample read from a burst
   * shows the link's rate even where every epoch also spans a wait for the peer's next data; samples that
   * span such a wait are slower and lose to it. (Samples of a quarter window were tried: on a slow link whose
   * bytes arrive in pairs of 64 KiB pieces, a one-piece sample timed the gap inside a pair and grew a
   * 256 KiB window to 8 MiB.)
   *
   * A sample counts only the bytes that arrived after it started: those read beyond what was received then.
   * A reader held up for a moment (a busy machine) finds the link's bytes waiting and reads them at memory
   * speed; timed as the link's pace, that backlog grew a 256 KiB window on a 1 MiB/s link to 8 MiB at once,
   * and every ping then waited seconds behind the queued data. A reader that keeps up has little buffered
   * when a sample starts, so this costs it little.
   */
  notePace(nowMs: number): void {
    const trial = this.#history?.trial;
    if (trial !== undefined && Number.isNaN(trial.measuredFrom) && nowMs >= trial.startAt) {
      if (trial.gainsNeeded > 1 && Number.isNaN(trial.baseline) && nowMs > trial.grownAt) {
        trial.baseline = (this.consumed - trial.receivedAtGrowth) / (nowMs - trial.grownAt);
      }
      trial.measuredFrom = nowMs;
      trial.receivedAtMeasure = this.received;
    }
    const read = this.consumed - this.#sampleReceived;
    if (Number.isNaN(this.#sampleAt)) {
      this.#sampleAt = nowMs; // the first sample starts at the first read
      this.#sampleReceived = this.received;
      return;
    }
    if (read < Math.min(this.size / 2, PACE_SAMPLE)) return;
    this.#notePaceOf((nowMs - this.#sampleAt) / read);
    this.#sampleAt = nowMs;
    this.#sampleReceived = this.received;
  }

  /** Keeps a pace (ms per byte) if the fastest at this size, and whether it was seen in the first epochs. */
  #notePaceOf(pace: number): void {
    if (pace >= this.#fastestPace) return;
    this.#fastestPace = pace;
    this.#fastestWhenYoung = this.#epochs < YOUNG_EPOCHS;
  }

  /**
   * Records that the application has read up to `totalConsumed` bytes; returns how many are newly read. The
   * total only rises: bytes an application puts back (a Node stream's `unshift()`) were counted as read once
   * and are not counted again when read anew.
   */
  consume(totalConsumed: number): number {
    if (totalConsumed <= this.consumed) return 0;
    const fresh = totalConsumed - this.consumed;
    this.consumed = totalConsumed;
    return fresh;
  }

  /** The increment that would bring the peer's credit back to the full window. */
  get pendingIncrement(): number {
    return this.consumed + this.size - this.granted;
  }

  /**
   * True when an update is worth a frame: at least half the window (at most {@link UPDATE_STEP}) has been
   * read since the last one.
   */
  get updateDue(): boolean {
    return this.pendingIncrement >= Math.min(this.size / 2, UPDATE_STEP);
  }

  /**
   * True when an update is due by time: anything was read and the last update is `quietMs` old. On a slow
   * link half a window can take longer to arrive than the peer's keep-alive waits; an update at least every
   * `quietMs` while data flows shows the peer that this side is alive and reading.
   */
  quietUpdateDue(nowMs: number, quietMs: number): boolean {
    return this.pendingIncrement > 0 && nowMs - this.#epochStart >= quietMs;
  }

  /**
   * Auto-tuning, called before each update. Grows the window when the last epoch shows the window, not the
   * reader, is the bottleneck: at the epoch's pace the reader drains a whole window in less than two round
   * trips. The further below, the larger the growth (x2 up to `MAX_GROWTH_FACTOR`). Each growth is then on
   * trial: the read rate since the growth (measured for at least `MIN_TRIAL_MS`) must beat by
   * `GROWTH_MUST_GAIN` the rate measured at the former size (before any measurement: the former window per
   * RTT). A growth that pays shows it after half a grown window, so a long link ramps up quickly; one that
   * does not is judged after a whole grown window and undone: the window goes back, and growth waits
   * (`RETRY_WINDOWS`, `RETRY_MS`). On a slow link data queues and every ping waits behind it, so the RTT
   * looks long and the time test alone would grow the window without end, only lengthening the queue; the
   * trials undo that.
   *
   * A growth grants the peer its credit at once, and no verdict takes that back: the peer may queue the whole
   * grown window on the link, and every ping then waits behind it. So a growth is bold (more than a
   * doubling) only on a pace seen in the channel's first epochs (`YOUNG_EPOCHS`), or in a ramp: the trial of
   * a growth that paid and the epochs after it, by up to twice that growth's factor. Any other growth doubles,
   * and a doubling's trial is cautious: measured from one round trip after the growth (the first bytes sent
   * under the grown window arrive no sooner), over at least a round trip, counting only bytes that arrived
   * after the measurement started, and paying only when two such measurements in a row (the second starting
   * a while after the first) beat by `GROWTH_MUST_GAIN` the baseline: the rate at which the former window's
   * bytes were read in the round trip after the growth (at least half the former window per RTT; in a ramp,
   * at most the rate its last paid growth measured). A
   * whole process held up for a moment (a busy machine) finds the link's bytes waiting in the socket, after
   * any sample or measurement began, and reads them at memory speed: a single fast pace sample must not grow
   * a 256 KiB window on a 1 MiB/s link to 8 MiB (8 s of queue before every ping), nor a backlog unlock that.
   *
   * `rttMs` is the session's minimum RTT, undefined before its first. `rttAtLeastMs`, given then, is a lower
   * bound on it (the opening ping's age): growth is sized by the bound, and its trial waits for the RTT.
   * `reserve(extra)` asks the session's memory bound for extra bytes and may refuse. Returns the change of
   * size: positive after a growth (reserved), negative after a failed trial (for the caller to release).
   */
  autoTune(
    nowMs: number,
    rttMs: number | undefined,
    reserve: (extra: number) => boolean,
    rttAtLeastMs?: number,
  ): number {
    if (Number.isNaN(this.#epochStart)) return 0;
    // The pace of the epoch ending now (if it read enough to tell), kept if the fastest at this size.
    const readInEpoch = this.consumed - this.#epochReceived;
    if (readInEpoch >= Math.min(this.size / 2, UPDATE_STEP) / 2) {
      this.#notePaceOf((nowMs - this.#epochStart) / readInEpoch);
    }
    const history = this.#history;
    const trial = history?.trial;
    if (trial !== undefined) {
      const verdict = this.#judge(history!, trial, nowMs, rttMs);
      if (verdict !== undefined) return verdict;
    }
    // Before the session's first RTT, the age of its first ping is a lower bound on it: growth sized by the
    // bound is never larger than the RTT would make it, and the first RTT may grow the window further (see
    // `pacedWithoutRtt`).
    const rttOrBound = rttMs ?? rttAtLeastMs;
    this.#pacedWithoutRtt = rttMs === undefined && this.#fastestPace !== Infinity;
    if (rttOrBound === undefined) return 0;
    if (this.size >= this.ceiling) {
      // (the ceiling is below the maximum only after a failed trial: there is a history)
      if (this.ceiling >= this.maxSize || this.consumed < history!.retryAtConsumed || nowMs < history!.retryAtMs) {
        return 0;
      }
      this.ceiling = this.maxSize;
    }
    // The time the reader would take to drain a whole window at the fastest pace seen at this size. Where
    // the window limits throughput, an epoch that starts with waiting for the peer's next data lasts a round
    // trip, while one read from a burst shows the link's rate; the fastest is the one that tells.
    const drainMs = this.#fastestPace * this.size;
    // A window drained in under two round trips means a larger one would have let the sender go faster.
    if (drainMs >= 2 * rttOrBound) return 0;
    // Far below that the link has much more room: grow faster, as slow start would (by the factor that
    // brings the drain time near two round trips, at most MAX_GROWTH_FACTOR).
    let factor = 2;
    const limit = this.#fastestWhenYoung ? (history?.rampLimit ?? MAX_GROWTH_FACTOR) : 2;
    while (factor < limit && drainMs < (2 * rttOrBound) / (factor * 2)) factor *= 2;
    // Memory may not cover the whole growth: then as large a part of it as it does (down to a doubling).
    let grown = Math.min(this.size * factor, this.ceiling) - this.size;
    while (!reserve(grown)) {
      factor /= 2;
      if (factor < 2) return 0;
      grown = Math.min(this.size * factor, this.ceiling) - this.size;
    }
    // The rate to beat: the one measured at this size (by the trial that grew it to this size, or the
    // one that failed from it); before any measurement, what this window can carry per round trip (a
    // rate taken in the first epoch would be one burst's), left unknown (NaN) until the RTT is. Not that
    // bound once measured: a large window moves less than size/RTT (updates and the peer's scheduling take
    // their share), and holding a growth to 1.25x of the bound kept 64 MiB from ever beating 32 MiB on a
    // link that carried more with it.
    const record = (this.#history ??= {
      trial: undefined,
      rateAtSize: NaN,
      failedTrials: 0,
      retryAtConsumed: 0,
      retryAtMs: 0,
      rampLimit: MAX_GROWTH_FACTOR,
    });
    let rateBefore = record.rateAtSize;
    if (Number.isNaN(rateBefore) && rttMs !== undefined) rateBefore = ratePerRtt(this.size, rttMs);
    const cautious = factor === 2;
    record.trial = {
      fromSize: this.size,
      rateBefore,
      grownAt: nowMs,
      receivedAtGrowth: this.received,
      startAt: cautious ? nowMs + (rttMs ?? NaN) : nowMs,
      baseline: NaN,
      rttMs: cautious ? (rttMs ?? NaN) : 0,
      measuredFrom: cautious ? NaN : nowMs,
      receivedAtMeasure: this.received,
      gains: 0,
      inRamp: limit > 2,
      gainsNeeded: cautious ? CAUTIOUS_GAINS : 1,
    };
    this.size += grown;
    this.#fastestPace = Infinity; // measured afresh at the new size
    return grown;
  }

  /**
   * Judges the growth on trial: undefined once it has paid (auto-tuning may go on growing), otherwise the
   * change of size (0 while the verdict is pending, negative when the growth is undone).
   */
  #judge(history: GrowthHistory, trial: GrowthTrial, nowMs: number, rttMs: number | undefined): number | undefined {
    // A bold growth is measured from the growth itself: the time includes the round trip before the first
    // bytes sent under the grown window arrive, and the bytes include those sent under the old one, a
    // conservative rate that shows a growth that pays quickly. A doubling is measured from a round trip after
    // (once the RTT is known, for a growth made before it) over at least a round trip, twice, against its
    // baseline: measured from the growth, the round trip would weigh too much for a doubling to show a gain.
    if (Number.isNaN(trial.measuredFrom)) {
      if (Number.isNaN(trial.rttMs) && rttMs !== undefined) {
        trial.rttMs = rttMs;
        trial.startAt = trial.grownAt + rttMs;
      }
      return 0;
    }
    const elapsed = nowMs - trial.measuredFrom;
    if (elapsed < Math.max(MIN_TRIAL_MS, trial.rttMs)) return 0;
    // A bold growth made before the first RTT is judged against what the former window carries per round
    // trip once the RTT is known; until then the verdict waits.
    let rateBefore = trial.rateBefore;
    // A doubling's own bar, before a ramp's cap: a doubling that beats only the cap keeps its growth but opens
    // no ramp (paces read from backlogs would otherwise grow the window boldly from there, ramp after ramp).
    let ownBar = 0;
    if (trial.gainsNeeded > 1) {
      rateBefore = ownBar = Math.max(trial.baseline, BASELINE_FLOOR * ratePerRtt(trial.fromSize, trial.rttMs));
      // In a ramp, no more than the rate its last paid growth measured (or, in the channel's first epochs, the
      // former window per RTT): near the link's capacity a doubling gains little over the baseline, and
      // holding it to that undid 32 -> 16 MiB on the long-fat bench in 7 runs of 9.
      if (trial.inRamp && !Number.isNaN(trial.rateBefore)) rateBefore = Math.min(rateBefore, trial.rateBefore);
    } else if (Number.isNaN(rateBefore)) {
      if (rttMs === undefined) return 0;
      rateBefore = ratePerRtt(trial.fromSize, rttMs);
    }
    const read = this.consumed - trial.receivedAtMeasure;
    const rate = read / elapsed;
    const paid = rate >= GROWTH_MUST_GAIN * rateBefore;
    if (paid && read >= this.size / 2) {
      if (++trial.gains < trial.gainsNeeded) {
        // The next measurement starts a while later: a backlog read when the process resumed is read at once,
        // and one that the last measurement ended in must not start the next one too.
        trial.measuredFrom = NaN;
        trial.startAt = nowMs + Math.max(MIN_TRIAL_MS, trial.rttMs);
        return 0;
      }
      history.trial = undefined;
      history.rateAtSize = rate;
      // A growth that paid starts a ramp (unless it beat only a ramp's cap, above): the paces of its trial and
      // of the next epochs may grow the window boldly again, by up to twice this growth's factor.
      const ramps = rate >= GROWTH_MUST_GAIN * ownBar;
      this.#setRamp(ramps);
      if (ramps) history.rampLimit = Math.min(MAX_GROWTH_FACTOR, 2 * Math.round(this.size / trial.fromSize));
      return undefined;
    }
    if (read < this.size) return 0;
    history.trial = undefined;
    const shrunk = trial.fromSize - this.size;
    this.size = trial.fromSize;
    this.#fastestPace = Infinity;
    this.ceiling = trial.fromSize;
    history.rateAtSize = Math.max(rateBefore, rate);
    this.#setRamp(false);
    // A link's rate may change, and one measurement may be unlucky: try again later, less often each time.
    const backoff = 1 << Math.min(history.failedTrials, 6); // (a shift: an integer; `**` gives a heap double)
    history.retryAtConsumed = this.consumed + trial.fromSize * RETRY_WINDOWS * backoff;
    history.retryAtMs = Math.ceil(nowMs) + RETRY_MS * backoff;
    history.failedTrials++;
    return shrunk;
  }

  /**
   * Opens a ramp (the paces seen from now on, until `YOUNG_EPOCHS` epochs have passed, may size a bold growth,
   * as in a channel's first epochs; those of the paid trial too) or ends any (growth doubles from now on).
   */
  #setRamp(open: boolean): void {
    this.#epochs = open ? 0 : YOUNG_EPOCHS;
    this.#fastestWhenYoung = open;
  }

  /**
   * Makes the window `size` bytes (larger), outside auto-tuning: a reader waits for that many bytes buffered.
   * The growth is reserved by the caller; a trial under way still judges its own growth.
   */
  resize(size: number): void {
    this.size = size;
    this.#fastestPace = Infinity; // measured afresh at the new size
  }

  /** Takes the pending increment as sent (starting a new epoch) and returns it. */
  takeIncrement(nowMs: number): number {
    const increment = this.pendingIncrement;
    if (increment <= 0) return 0;
    this.granted += increment;
    this.startEpoch(nowMs);
    return increment;
  }

  /**
   * Under memory pressure: the increment that brings what this channel may hold (buffered plus the peer's
   * credit) up to `limit` (the initial window), taken as sent; 0 when that would be less than half of
   * `limit`, so a channel that holds data gets nothing, and one that keeps up gets a few large updates rather
   * than one per read.
   */
  takeIncrementWithin(nowMs: number, limit: number): number {
    const increment = this.consumed + Math.min(limit, this.size) - this.granted;
    if (increment < limit / 2) return 0;
    this.granted += increment;
    this.startEpoch(nowMs);
    return increment;
  }

  /** Starts an epoch: at every update, and without sending anything when a channel opens at the spec's window. */
  startEpoch(nowMs: number): void {
    if (this.#epochs < YOUNG_EPOCHS) this.#epochs++;
    this.#epochStart = nowMs;
    this.#epochReceived = this.received;
  }
}

/**
 * The memory a chunk waiting to be read takes beyond its bytes, as counted against `maxSessionBuffered`: a
 * `Uint8Array` and its place in the endpoint's list (a Node stream's buffer list, an array). Measured in V8:
 * 115-120 bytes for a view of a larger buffer (a slice of Node's pool), 195-220 for a chunk with its own
 * `ArrayBuffer` (a `WebChannel`'s, a Node session's copies, made with `Buffer.allocUnsafeSlow`, or any session
 * whose transport has no `allocate`); the larger, rounded up.
 */
export const CHUNK_COST = 224;

/** What {@link SessionMemory.beyondCeiling} allows beyond four times the bound: reads already under way. */
const CEILING_SLACK = 16 * 1024 * 1024;

/**
 * The session's bound on buffered memory. Below half the limit everything flows; from half the limit on,
 * windows stop growing and a channel gets Window Updates only while it holds less than its initial window
 * (so readers that keep up go on, and those that hold data get nothing more); at the limit, the session stops
 * reading the transport until readers catch up below half again.
 * @hidden (internal: `muxwire/core` exports it at run time only, for the micro-benchmarks)
 */
export class SessionMemory {
  /** Bytes received and not yet read, across all channels. */
  buffered = 0;
  /**
   * What the chunks waiting to be read cost beyond their bytes (each is an object, with a place in a list:
   * {@link CHUNK_COST} apiece), counted against the limit with `buffered`: a peer that sends its window in
   * one-byte frames makes a chunk per byte, and their bytes alone would let the heap grow a hundredfold.
   */
  held = 0;
  /** Window bytes granted beyond each channel's initial window, across all channels (promised memory). */
  grown = 0;

  /**
   * @param limit The session's bound (`maxSessionBuffered`).
   * @param budget The budget shared with other sessions that growth is also reserved from (null: none).
   */
  constructor(
    readonly limit: number,
    readonly budget: MemoryBudget | null = null,
  ) {}

  /**
   * Less than an eighth of the limit is held: a payload may stay a view of a buffer up to 8 times its charge (see
   * the receive path's `PIN_RATIO`). Beyond it, payloads are copied unless they are their whole buffer, so the
   * buffers that views keep alive add at most the limit again to what is counted.
   */
  get holdsLittle(): boolean {
    return this.buffered + this.held < this.limit / 8;
  }

  /** Soft limit reached: withhold Window Updates, do not grow windows. */
  get underPressure(): boolean {
    return this.buffered + this.held >= this.limit / 2;
  }

  /** Hard limit reached: stop reading the transport. */
  get exhausted(): boolean {
    return this.buffered + this.held >= this.limit;
  }

  /**
   * Beyond anything a peer can make the session hold over a transport that stops when asked. With windows
   * (`flowControl`), the bytes are bounded by the credit granted (the bound, and each channel's window: the
   * README's "bound plus each channel's `initialWindow`"), so only the chunks' own cost counts: the bound at the
   * pause, and what the probes may read (their share stops at twice the bound in chunk costs). Without windows
   * (the multiplex format), bytes and costs both: the bound, and the probes' quarter of it a pause. Asked only for
   * a transport that cannot pause (`Transport.cannotPause`: a browser's WebSocket), whose peer sends what the
   * session cannot hold: the session then fails. (A libp2p connection, not paused between turns, decodes up to
   * 4 MiB of held input after its pause: one-byte frames within the windows cost more than this there.)
   */
  beyondCeiling(flowControl: boolean): boolean {
    return this.ceilingCount(flowControl) > 4 * this.limit + CEILING_SLACK;
  }

  /** What {@link beyondCeiling} counts: the waiting chunks' cost, and without windows their bytes too. */
  ceilingCount(flowControl: boolean): number {
    return flowControl ? this.held : this.buffered + this.held;
  }

  /**
   * Reserves `extra` window bytes for growth if buffered plus promised memory stays within half the limit
   * (and the shared budget agrees). Half: readers that stop after their windows grew can then hold at most
   * half the bound in grown windows, which puts the session under pressure but never, by itself, at the
   * bound where reading the transport stops for every channel.
   */
  reserveGrowth(extra: number): boolean {
    if (this.buffered + this.held + this.grown + extra > this.limit / 2) return false;
    if (this.budget !== null && !this.budget.tryReserve(extra)) return false;
    this.grown += extra;
    return true;
  }

  /** Gives back growth: a window shrunk, or a channel closed. */
  releaseGrowth(extra: number): void {
    if (extra <= 0) return;
    this.grown -= extra;
    this.budget?.release(extra);
  }

  /**
   * Gives back all growth and forgets what was buffered (the session ended: its channels failed and dropped
   * their data, so nothing is held any more).
   */
  releaseAll(): void {
    this.budget?.release(this.grown);
    this.grown = 0;
    this.buffered = 0;
    this.held = 0;
  }
}
