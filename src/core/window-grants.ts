/**
 * Receive-side credit: when a channel's reading earns the peer a Window Update, how large (auto-tuning, on top
 * of `flow.ts`'s `ReceiveWindow`), and what the session's memory allows: past its soft limit, updates are
 * withheld from channels that hold data and granted again once memory is relieved. On a codec without
 * windows the codec's rules ({@link FormatRules}) decide when a channel that held too much lets reading resume.
 *
 * It owns the withheld list, the held-back Window Updates of a turn (`UpdateTurns`, where the adapter gave
 * the session it) and the memory counts of
 * what was read. It queues only Window Updates (through a channel's `pendingIncrement`), reads the RTT from
 * the keep-alive, and asks the {@link ReadGate} to resume; it never opens, closes or fails a channel.
 * @module
 */
import type { ChannelState } from './channel-state.js';
import type { CodecCapabilities, FormatRules } from './codec.js';
import { CHUNK_COST, type SessionMemory } from './flow.js';
import type { KeepAlive } from './keepalive.js';
import { type ResolvedOptions, SPEC_INITIAL_WINDOW } from './options.js';
import type { ReadGate } from './read-gate.js';
import type { WriteScheduler } from './scheduler.js';
import type { UpdateTurns } from './update-turns.js';
import type { FrameWriter } from './writer.js';

export class WindowGrants {
  /** Channels owed a Window Update that memory pressure holds back (each leaves it as it leaves the session). */
  #withheld = new Set<ChannelState>();
  /**
   * A reading channel sends a Window Update at least this often (a quarter of the keep-alive timeout), even
   * before half its window is read, so that a peer whose ping waits behind our data on a slow link keeps
   * hearing from us.
   */
  readonly #quietUpdateMs: number;
  /** Holds Window Updates to the end of the event-loop turn where several channels receive. */
  /** Holds Window Updates to the end of a turn, where the adapter gave the session `UpdateTurns` (Node's). */
  readonly #updateTurns: UpdateTurns | undefined;
  readonly #reserveGrowth = (extra: number): boolean => this.#memory.reserveGrowth(extra);

  readonly #options: ResolvedOptions;
  readonly #caps: CodecCapabilities;
  readonly #memory: SessionMemory;
  readonly #scheduler: WriteScheduler;
  readonly #writer: FrameWriter;
  readonly #gate: ReadGate;
  readonly #keepAlive: KeepAlive;
  readonly #rules: FormatRules | undefined;
  constructor(
    options: ResolvedOptions,
    caps: CodecCapabilities,
    memory: SessionMemory,
    scheduler: WriteScheduler,
    writer: FrameWriter,
    gate: ReadGate,
    keepAlive: KeepAlive,
    isClosed: () => boolean,
    rules: FormatRules | undefined,
    turns: typeof UpdateTurns | undefined,
  ) {
    this.#rules = rules;
    this.#options = options;
    this.#caps = caps;
    this.#memory = memory;
    this.#scheduler = scheduler;
    this.#writer = writer;
    this.#gate = gate;
    this.#keepAlive = keepAlive;
    this.#quietUpdateMs = Math.max(options.keepAliveTimeout / 4, 10);
    this.#updateTurns =
      turns &&
      new turns(() => {
        if (!isClosed()) writer.schedule();
      });
  }

  /**
   * The application read some of a channel's data: account for it and grant window when due. `wanted` (a Node
   * channel's `read(n)` that found less than n) is how many bytes its reader waits for: see {@link #meetDemand}.
   */
  readProgress(channel: ChannelState, wanted = 0): void {
    if (!channel.live) return;
    const unread = channel.endpoint.bufferedBytes;
    // The chunks read to their end are gone (a reader of records that never line up with the chunks seldom
    // reads empty: their cost must go as each is read, or it piles up until the session pauses at its bound).
    const held = channel.held;
    let freed = 0;
    if (held !== null) {
      const read = channel.delivered - unread;
      while (held.length > 0 && held.peek()! <= read) {
        held.shift();
        freed += CHUNK_COST;
      }
      if (held.length === 0) channel.held = null;
      this.#memory.held -= freed;
    }
    const fresh = channel.rx.consume(channel.delivered - unread);
    if (fresh > 0) {
      this.#memory.buffered -= fresh;
      if (!this.#memory.underPressure) this.relieveMemory();
      this.#grantIfDue(channel);
    } else if (freed > 0 && !this.#memory.underPressure) {
      // Nothing newly read (Node asks `_read` for more before anything was read); the chunks' cost is gone.
      this.relieveMemory();
    }
    if (wanted > 0) this.#meetDemand(channel, wanted);
  }

  /**
   * The reader waits until `wanted` bytes are buffered before it reads again (a Node `read(n)`). Only bytes
   * read earn the peer credit, and an update waits until half a window was read: when what is buffered and
   * what the peer may still send fall short of `wanted`, the reader would wait for the peer and the peer for
   * credit. The window grows to `wanted` (up to `maxWindow`, as memory allows) and what was read goes back to
   * the peer now. Without windows, the format's rules let reading go on while the channel holds less.
   */
  #meetDemand(channel: ChannelState, wanted: number): void {
    if (!this.#caps.flowControl) {
      this.#rules?.read(channel, wanted);
      return;
    }
    const rx = channel.rx;
    if (channel.remoteFin || !channel.live || rx.granted - rx.consumed >= wanted) return;
    const now = performance.now();
    // Under pressure, the usual rule: a channel that holds data gets nothing until memory is relieved.
    if (this.#memory.underPressure) {
      this.#grantWindow(channel, now);
      return;
    }
    // A growth on trial is judged first (it may be undone, shrinking the window), then the window covers what
    // the reader waits for.
    if (!channel.readClosed) this.#autoTune(channel, now);
    // (Whole bytes: a Node `read(n)` takes a fraction, as Node's own does, and windows and budgets count bytes.)
    const size = Math.min(Math.floor(wanted), rx.maxSize);
    if (size > rx.size && this.#memory.reserveGrowth(size - rx.size)) rx.resize(size);
    this.#queueIncrement(channel, rx.takeIncrement(now));
  }

  /**
   * Announces a new channel's window (on its SYN or ACK): the increment beyond the spec's 256 KiB, if its
   * window starts larger, or the start of its first measuring epoch.
   */
  announceWindow(channel: ChannelState): void {
    if (!this.#caps.flowControl) return;
    const now = performance.now();
    if (channel.rx.size > SPEC_INITIAL_WINDOW) channel.pendingIncrement += channel.rx.takeIncrement(now);
    else channel.rx.startEpoch(now);
  }

  /**
   * The peer's FIN: no byte more can come, so the window's growth goes back to the session's memory now, not when
   * the channel leaves (a channel read to its end may stay open a long time for its reply).
   */
  remoteFinished(channel: ChannelState): void {
    const growth = channel.rx.size - this.#options.initialWindow;
    if (growth <= 0 || !this.#caps.flowControl) return;
    this.#memory.releaseGrowth(growth);
    channel.rx.resize(this.#options.initialWindow);
  }

  /** The channel left the session: its unread bytes and its window's growth go back to the session's memory. */
  release(channel: ChannelState): void {
    this.#memory.buffered -= channel.delivered - channel.rx.consumed;
    if (channel.held !== null) this.#memory.held -= channel.held.length * CHUNK_COST;
    channel.held = null;
    if (channel.withheld) {
      channel.withheld = false;
      this.#withheld.delete(channel);
    }
    this.#memory.releaseGrowth(channel.rx.size - this.#options.initialWindow);
    this.#rules?.released(channel);
  }

  /** The session ended: the channels whose updates were withheld are let go of (none will be granted). */
  stop(): void {
    for (const channel of this.#withheld) channel.withheld = false;
    this.#withheld.clear();
  }

  /** Below the soft limit again: resume reading and grant the updates that were withheld. */
  relieveMemory(): void {
    this.#gate.resume();
    if (this.#withheld.size === 0) return;
    const withheld = this.#withheld;
    this.#withheld = new Set();
    // Each was owed an update when it was withheld (due, or asked for by a waiting reader): it goes now.
    const now = performance.now();
    for (const channel of withheld) {
      channel.withheld = false;
      if (channel.live && !channel.remoteFin) this.#grantWindow(channel, now);
    }
  }

  /**
   * The session's first RTT: channels that read before it grew only as far as the opening ping's age (a lower
   * bound on the RTT) allowed, if at all. Grow those whose pace shows the window is the limit now, rather
   * than a round trip later at their next update (one whose growth is still on trial waits for its verdict).
   */
  tuneOnFirstRtt(channels: Iterable<ChannelState>): void {
    if (!this.#caps.flowControl || this.#memory.underPressure) return;
    const now = performance.now();
    for (const channel of channels) {
      if (channel.rx.pacedBeforeRtt && !channel.remoteFin && this.#autoTune(channel, now) > 0) {
        this.#queueIncrement(channel, channel.rx.takeIncrement(now));
      }
    }
  }

  /** Sends a Window Update when one is due (or, without windows, resumes reading once a channel caught up). */
  #grantIfDue(channel: ChannelState): void {
    if (!this.#caps.flowControl) {
      this.#rules?.read(channel);
    } else if (!channel.remoteFin) {
      const now = performance.now();
      channel.rx.notePace(now);
      if (channel.rx.updateDue || channel.rx.quietUpdateDue(now, this.#quietUpdateMs)) this.#grantWindow(channel, now);
    }
  }

  #grantWindow(channel: ChannelState, now: number): void {
    let increment: number;
    if (this.#memory.underPressure) {
      // Past the soft limit, a channel whose reader keeps up still flows, with no more than the initial
      // window outstanding; one that holds data gets nothing more until memory is relieved. Withholding from
      // every channel would let a few stalled readers starve all the others (smux v1's flaw).
      increment = channel.rx.takeIncrementWithin(now, this.#options.initialWindow);
      if (increment === 0) {
        if (!channel.withheld) {
          channel.withheld = true;
          this.#withheld.add(channel);
        }
        return;
      }
    } else {
      // A channel whose data is discarded gains nothing from a larger window.
      if (!channel.readClosed) this.#autoTune(channel, now);
      increment = channel.rx.takeIncrement(now);
    }
    this.#queueIncrement(channel, increment);
  }

  /**
   * Auto-tunes a channel's window (growth reserved from the session's memory, an undone growth released);
   * returns the change of size. The minimum RTT, not the last: on a slow link a ping waits behind queued
   * data, and a window sized by that inflated RTT would grow without end (and push window updates apart
   * beyond the keep-alive timeout). Before the first RTT, the opening ping's age stands in as a lower bound.
   */
  #autoTune(channel: ChannelState, now: number): number {
    const resized = channel.rx.autoTune(
      now,
      this.#keepAlive.minRtt,
      this.#reserveGrowth,
      this.#keepAlive.openingPingAge(now),
    );
    if (resized < 0) this.#memory.releaseGrowth(-resized);
    return resized;
  }

  /**
   * Queues a Window Update of `increment` bytes for the channel (nothing for 0). It leaves with the next flush,
   * which waits for the end of the event-loop turn where several channels receive (see `UpdateTurns`; only in
   * the sessions given it, which a page's are not: a browser has no `setImmediate` to wait with).
   */
  #queueIncrement(channel: ChannelState, increment: number): void {
    if (increment <= 0) return;
    channel.pendingIncrement += increment;
    this.#scheduler.scheduleControl(channel);
    if (!this.#updateTurns?.hold(channel.id)) this.#writer.schedule();
  }
}
