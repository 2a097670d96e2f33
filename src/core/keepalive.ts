/**
 * Pings: the opening ping and the RTT probes that measure the round-trip time for window auto-tuning, the
 * keep-alive pings that follow, `ping()` from the application, answers to the peer's pings, and the deadline
 * that fails a session whose peer went silent.
 *
 * It owns the ping in flight, the ping values, the RTT figures and the keep-alive timer. It queues only Ping
 * frames; it reads the {@link ReadGate} to probe a paused transport, and reaches the rest of the session only
 * through the functions it is given (failing it on a timeout, telling it the first RTT).
 * @module
 */
import { abortable } from './abortable.js';
import { TimeoutError } from './errors.js';
import { Flag, FrameType } from './frame.js';
import type { ResolvedOptions } from './options.js';
import type { ReadGate } from './read-gate.js';
import type { WriteScheduler } from './scheduler.js';
import { noop, unref } from './timers.js';
import { type Waiter, Waiters } from './waiters.js';
import type { FrameWriter } from './writer.js';

const MAX_ID = 0xffff_ffff;
/**
 * After the opening ping, two more pings measure the RTT, this many ms after the previous answer, before
 * keep-alive takes over. The opening ping often meets a peer that is still starting (its first answer on
 * loopback can take 3 ms where 0.1 ms is the truth); auto-tuning sizes windows by the smallest RTT seen, and
 * a window sized by a cold-start RTT is needlessly large, which queues more data ahead of other channels.
 */
const RTT_PROBE_DELAYS = [100, 1000];
/** A ping whose answer came after a pause in reading goes again at most this many times (see `onPing`). */
const MAX_RESENDS = 3;
/** Answers to pings that wait while the transport is blocked; beyond this many, a ping flood gets no more. */
const MAX_QUEUED_PONGS = 32;
/**
 * While the transport takes writes, answers waiting for the next flush are written at once when this many
 * wait: many pings in one read (a peer's concurrent pings) are each answered, a flood in writes of 12 KiB.
 */
const PONG_BATCH = 1024;

/** The one ping in flight, and who waits for its answer. */
export interface PendingPing {
  value: number;
  sentAt: number;
  /** `ping()` calls and the session's own next step, waiting for its answer (aborted calls let go at once). */
  waiters: Waiters<number>;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Times it went again because its answer came after a pause in reading (see `onPing`). */
  resends: number;
  /** `ping()` calls waiting on it (not aborted): while any does, its deadline keeps the process alive. */
  users: number;
}

function pendingPing(users: number): PendingPing {
  return { value: 0, sentAt: 0, waiters: new Waiters(), timer: undefined, resends: 0, users };
}

export class KeepAlive {
  /** The last measured round-trip time (ms). */
  declare lastRtt: number | undefined;
  /** The smallest RTT seen: the path's own delay, without the queueing that data adds to later pings. */
  declare minRtt: number | undefined;
  /** When bytes last arrived from the peer (`performance.now()`), for the keep-alive deadline. */
  lastHeard = 0;
  /**
   * The transport's connection is still coming up (`Transport.isConnecting()`): a ping's deadline waits for it
   * (a `ping()` asked for meanwhile leaves into the transport's queue, not to the peer).
   */
  connecting = false;
  /** When the connection came up (`performance.now()`), for one that was still connecting at the start. */
  openedAt = 0;
  #inFlight: PendingPing | undefined;
  #nextValue = 1;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** RTT probes sent so far (of {@link RTT_PROBE_DELAYS}). */
  #rttProbes = 0;

  readonly #options: ResolvedOptions;
  readonly #scheduler: WriteScheduler;
  readonly #writer: FrameWriter;
  readonly #gate: ReadGate;
  readonly #isClosed: () => boolean;
  readonly #fail: (error: Error) => void;
  readonly #onFirstRtt: () => void;
  readonly #afterReads: (task: () => void) => void;
  constructor(
    options: ResolvedOptions,
    scheduler: WriteScheduler,
    writer: FrameWriter,
    gate: ReadGate,
    isClosed: () => boolean,
    /** The peer is silent past its deadline: end the session with `error`. */
    fail: (error: Error) => void,
    /** The first RTT was measured (auto-tuning may now grow windows that waited for it). */
    onFirstRtt: () => void,
    /** Runs a task once what was received has been read (the session's, see `afterPendingReads`). */
    afterReads: (task: () => void) => void,
  ) {
    this.#afterReads = afterReads;
    this.#options = options;
    this.#scheduler = scheduler;
    this.#writer = writer;
    this.#gate = gate;
    this.#isClosed = isClosed;
    this.#fail = fail;
    this.#onFirstRtt = onFirstRtt;
  }

  /** Sends the opening ping (it measures the RTT that window auto-tuning needs); keep-alive follows. */
  start(): void {
    this.#send().waiters.add(() => this.#arm(), noop);
  }

  /**
   * A ping for the application: resolves to the RTT, or rejects when the session ends first, or with `signal`'s
   * reason when it aborts (the ping goes on with its deadline, which keeps the process alive only while some
   * call still waits).
   */
  ping(signal: AbortSignal | undefined): Promise<number> {
    const ping = this.#send(true);
    let waiter!: Waiter<number>;
    const answer = new Promise<number>((resolve, reject) => (waiter = ping.waiters.add(resolve, reject)));
    return abortable(answer, signal, () => {
      // False when the answer (or the session's end) came first: the call has that.
      if (!ping.waiters.drop(waiter)) return false;
      if (--ping.users === 0 && ping.timer !== undefined) unref(ping.timer);
      return true;
    });
  }

  /** Takes a ping value for a ping of the session's own (the answer to it is not an RTT). */
  takeValue(): number {
    const value = this.#nextValue;
    this.#nextValue = this.#nextValue === MAX_ID ? 1 : this.#nextValue + 1;
    return value;
  }

  /**
   * Before the first RTT, the opening ping's age (ms): a lower bound on the RTT that auto-tuning may use.
   * Undefined once an RTT is known, or with no ping in flight.
   */
  openingPingAge(now: number): number | undefined {
    const ping = this.minRtt === undefined ? this.#inFlight : undefined;
    return ping && now - ping.sentAt;
  }

  /** A Ping frame arrived: answer the peer's, or take the answer to ours. */
  onPing(flags: number, value: number): void {
    if ((flags & Flag.syn) !== 0) {
      // Answers leave with the next flush, or at once once a batch of them waits; while the transport is
      // blocked, only a few wait.
      const scheduler = this.#scheduler;
      const writer = this.#writer;
      if (scheduler.queuedPongs >= PONG_BATCH && writer.ready) writer.flush();
      if (scheduler.queuedPongs < (writer.blocked ? MAX_QUEUED_PONGS : PONG_BATCH)) {
        scheduler.queueSessionFrame(FrameType.ping, Flag.ack, 0, value);
        writer.schedule();
      }
      return;
    }
    if ((flags & Flag.ack) === 0) return;
    const ping = this.#inFlight;
    if (ping?.value !== value) return; // stale or unknown answer
    // An answer that may have waited unread while reading was paused measures the pause, not the RTT: the same
    // ping goes again (a few times at most, as reading may keep pausing), and its next answer is the RTT.
    const measured = ping.sentAt >= this.#gate.readingSince && ping.sentAt >= this.openedAt;
    if (!measured && ping.resends < MAX_RESENDS && !this.#isClosed()) {
      ping.resends++;
      this.#write(ping);
      return;
    }
    this.#inFlight = undefined;
    if (this.#gate.probing) this.#gate.endProbe(); // the answer came: the peer is there
    clearTimeout(ping.timer);
    const rtt = performance.now() - ping.sentAt;
    if (measured) {
      this.lastRtt = rtt;
      const first = this.minRtt === undefined;
      if (first || rtt < this.minRtt!) this.minRtt = rtt;
      if (first) this.#onFirstRtt();
    }
    ping.waiters.resolveAll(rtt);
  }

  /** The session has ended: stop the timers; a pending ping rejects with `error`. */
  stop(error: Error): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const ping = this.#inFlight;
    this.#inFlight = undefined;
    if (ping !== undefined) {
      clearTimeout(ping.timer);
      ping.waiters.rejectAll(error);
    }
  }

  /**
   * A paused session's probe: a ping whose answer the read gate reads up to. A ping in flight that left before
   * the probe began goes again, so that its answer measures the RTT and not the pause.
   */
  probe(): void {
    const inFlight = this.#inFlight;
    if (inFlight !== undefined && inFlight.sentAt < this.#gate.readingSince && !this.#isClosed()) this.#write(inFlight);
    else this.#send();
  }

  #send(forUser = false): PendingPing {
    // Nothing can be written any more: a ping that is never sent, and never times out.
    if (this.#isClosed()) return pendingPing(0);
    const inFlight = this.#inFlight;
    if (inFlight !== undefined) {
      if (forUser && inFlight.users++ === 0) {
        // The application waits on it too: its deadline now keeps the process alive (a silent opening ping,
        // with keep-alive off, gets one only now).
        if (inFlight.timer === undefined) this.#armDeadline(inFlight, this.#options.keepAliveTimeout);
        else (inFlight.timer as { ref?: () => void }).ref?.();
      }
      return inFlight;
    }
    const ping = pendingPing(forUser ? 1 : 0);
    if (this.#options.keepAliveInterval > 0 || forUser) this.#armDeadline(ping, this.#options.keepAliveTimeout);
    this.#inFlight = ping;
    this.#write(ping);
    return ping;
  }

  /**
   * Sets `ping`'s deadline. The session's own pings do not keep the process alive (the transport does, while it
   * is open); a ping the application waits on does, until it settles.
   */
  #armDeadline(ping: PendingPing, delay: number): void {
    const timer = setTimeout(() => this.#onTimeout(ping), delay);
    ping.timer = ping.users > 0 ? timer : unref(timer);
  }

  /** Writes `ping` with a fresh value (an answer to an earlier value of it no longer counts). */
  #write(ping: PendingPing): void {
    ping.value = this.takeValue();
    ping.sentAt = performance.now();
    this.#scheduler.queueSessionFrame(FrameType.ping, Flag.syn, 0, ping.value);
    this.#writer.schedule();
  }

  /**
   * The ping with `value` was packed into a write to the transport: its age counts from now (see `sentAt`). It
   * leaves with the flush after the synchronous work of the turn that queued it: an application busy for longer
   * than `keepAliveTimeout` in that turn (a thousand dials, a large parse) had its live peer taken for dead, and
   * the RTT measured the work. One that cannot leave (the transport blocked) keeps its age from when it was
   * queued, so a peer that stopped reading is still found.
   */
  onPingSent(value: number): void {
    if (this.#inFlight?.value === value) this.#inFlight.sentAt = performance.now();
  }

  /**
   * A ping's deadline passed. The session fails once `keepAliveTimeout` has gone by with no byte from the peer
   * since the ping left: a peer whose bytes keep arriving is alive, just busy (its answer waits behind data), and
   * its deadline moves to one `keepAliveTimeout` after the last byte. A session that stopped reading hears
   * nothing, so it writes a fresh ping and reads until the answer comes (a probe): a frozen or vanished peer is
   * then noticed one `keepAliveTimeout` later, whatever the read state. The verdict waits for the bytes
   * already received (`confirmed`): after a busy event loop, the answer may be there, unread.
   */
  #onTimeout(ping: PendingPing, confirmed = false): void {
    if (this.#inFlight !== ping) return;
    const timeout = this.#options.keepAliveTimeout;
    // Paused: a fresh ping, and reading until its answer; unless the probes' share of this pause is spent, when
    // the verdict below comes as for a peer that sent nothing (nothing more can be read to hear it).
    if (this.#gate.paused && !this.#gate.probing && this.#gate.startProbe(0)) {
      this.#write(ping);
      this.#armDeadline(ping, timeout);
      return;
    }
    if (this.connecting) {
      this.#armDeadline(ping, timeout); // (the session bounds the wait for the connection: `openTimeout`)
      return;
    }
    const quiet = performance.now() - Math.max(this.lastHeard, ping.sentAt, this.#gate.resumedAt, this.openedAt);
    if (quiet < timeout) {
      this.#armDeadline(ping, Math.max(1, timeout - quiet));
      return;
    }
    if (!confirmed) {
      this.#afterReads(() => this.#onTimeout(ping, true));
      return;
    }
    this.#fail(
      new TimeoutError(
        'ERR_MUX_KEEPALIVE_TIMEOUT',
        this.#gate.probeSpent
          ? `no answer to a ping could be read within ${timeout} ms: reading stopped at maxSessionBuffered, and ` +
              "the peer's frames ahead of the answer were too small to hold (read the channels, or raise the bound)"
          : `the peer did not answer a ping within ${timeout} ms, and sent nothing meanwhile`,
      ),
    );
  }

  /**
   * Schedules the next ping: first the RTT probes (see {@link RTT_PROBE_DELAYS}), then one every
   * `keepAliveInterval` (none if keep-alive is off), each once the previous one was answered.
   */
  #arm(): void {
    if (this.#isClosed()) return;
    const interval = this.#options.keepAliveInterval;
    let delay = interval;
    if (this.#rttProbes < RTT_PROBE_DELAYS.length) {
      const probe = RTT_PROBE_DELAYS[this.#rttProbes++]!;
      delay = interval > 0 ? Math.min(probe, interval) : probe;
    }
    if (delay <= 0) return;
    this.#timer = unref(
      setTimeout(() => {
        this.#timer = undefined;
        if (this.#isClosed()) return;
        this.#send().waiters.add(() => this.#arm(), noop);
      }, delay),
    );
  }
}
