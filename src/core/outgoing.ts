/**
 * Channels this side dials, from `dial()` until the peer acknowledges them: the ACK backlog (at most
 * `ackBacklog` SYNs unacknowledged; later dials wait in a queue), the open timeouts (one timer for all), and
 * the dial's abort signal.
 *
 * It owns the dial backlog, the count of unacknowledged SYNs and the open watches. It queues only SYNs (with
 * their window announcement); a channel that times out or is aborted is reset by the session, through
 * the `abortOpen` it is given. It never reads frames: the session tells it of ACKs and of channels that left.
 * @module
 */
import { whenAborted } from './abortable.js';
import { Pending, type ChannelState } from './channel-state.js';
import type { CodecCapabilities } from './codec.js';
import { DeadlineHeap } from './deadline-heap.js';
import { TimeoutError, resetHere } from './errors.js';
import { Fifo } from './fifo.js';
import type { ResolvedOptions } from './options.js';
import type { WriteScheduler } from './scheduler.js';
import { unref } from './timers.js';
import type { WindowGrants } from './window-grants.js';
import type { FrameWriter } from './writer.js';

/** A dial waiting for a place in the ACK backlog. */
interface Waiting {
  channel: ChannelState;
  /** Half way through its open timeout (`performance.now()`; Infinity without one): see `#releaseBacklog`. */
  halfway: number;
}

export class Outgoing {
  /** Dials waiting for the ACK backlog to have room (those that left meanwhile are skipped when their turn comes). */
  readonly #backlog = new Fifo<Waiting>();
  /** The backlog's length past which the dials that left it are dropped (see `open`). */
  #compactAt = 64;
  /** SYNs sent and not yet acknowledged. */
  #unacked = 0;
  /** Dials awaiting their acknowledgement under an open timeout, by deadline (settled ones drop out lazily). */
  readonly #opening = new DeadlineHeap<ChannelState>();
  #openingLive = 0;
  #openTimer: ReturnType<typeof setTimeout> | undefined;
  #openTimerAt = 0;
  /** A sweep is failing the dials due: the places they free wait for its end (see `#releaseBacklog`). */
  #sweeping = false;
  /** A dial came to the backlog during the sweep. */
  #queuedInSweep = false;

  readonly #options: ResolvedOptions;
  readonly #caps: CodecCapabilities;
  readonly #scheduler: WriteScheduler;
  readonly #writer: FrameWriter;
  readonly #grants: WindowGrants;
  readonly #isClosed: () => boolean;
  readonly #abortOpen: (channel: ChannelState, error: Error) => void;
  readonly #afterReads: (task: () => void) => void;
  constructor(
    options: ResolvedOptions,
    caps: CodecCapabilities,
    scheduler: WriteScheduler,
    writer: FrameWriter,
    grants: WindowGrants,
    isClosed: () => boolean,
    /** Gives up opening a channel: it fails with `error` and is reset (the peer may hold it in its backlog). */
    abortOpen: (channel: ChannelState, error: Error) => void,
    /** Runs a task once what was received has been read (the session's, see `afterPendingReads`). */
    afterReads: (task: () => void) => void,
  ) {
    this.#afterReads = afterReads;
    this.#options = options;
    this.#caps = caps;
    this.#scheduler = scheduler;
    this.#writer = writer;
    this.#grants = grants;
    this.#isClosed = isClosed;
    this.#abortOpen = abortOpen;
  }

  /**
   * Starts opening a dialled channel: watches its open timeout and `signal` (on a codec with acknowledgements),
   * and sends its SYN, or queues it while `ackBacklog` SYNs are unacknowledged.
   */
  open(channel: ChannelState, openTimeout: number, signal: AbortSignal | undefined): void {
    if (this.#caps.acknowledgements) {
      if (openTimeout > 0) this.#watch(channel, openTimeout);
      if (signal !== undefined) {
        channel.openAbort = whenAborted(signal, () => this.#abortOpen(channel, resetHere(channel.id, signal.reason)));
      }
    }
    // (A dial from a listener of a sweep's failures waits its turn behind the dials waiting already.)
    if (!this.#caps.acknowledgements || (this.#unacked < this.#options.ackBacklog && !this.#sweeping)) {
      this.#sendSyn(channel);
      return;
    }
    this.#backlog.push({ channel, halfway: openTimeout > 0 ? performance.now() + openTimeout / 2 : Infinity });
    if (this.#sweeping) this.#queuedInSweep = true;
    // Dials destroyed, aborted or timed out while they wait stay in the backlog until their turn, which never
    // comes while the peer acknowledges nothing: a client retrying against a stalled peer would grow without
    // bound. Once the backlog doubles, those are dropped (amortized: at most half of it is ever gone).
    if (this.#backlog.length > this.#compactAt) {
      this.#backlog.retain((waiting) => waiting.channel.live);
      this.#compactAt = Math.max(64, 2 * this.#backlog.length);
    }
  }

  /** The channel's SYN was answered (an ACK, or a FIN), or it left the session: it frees its backlog place. */
  acknowledged(channel: ChannelState): void {
    if (!channel.awaitingAck) return;
    channel.awaitingAck = false;
    this.#unacked--;
    this.#releaseBacklog();
  }

  /** The channel no longer waits for its acknowledgement (it came, or the channel ended): stop watching it. */
  settled(channel: ChannelState): void {
    this.untimed(channel);
    const unwatch = channel.openAbort;
    if (unwatch !== null) {
      channel.openAbort = null;
      unwatch();
    }
  }

  /**
   * The open timeout stops watching the channel (its signal still resets it until the acknowledgement). So once
   * this side's FIN left before the acknowledgement came: a Go yamux peer takes a channel whose FIN it read
   * first without acknowledging it (its first reply does), so the deadline would reset a request its
   * application holds.
   */
  untimed(channel: ChannelState): void {
    if (channel.openDeadline === 0) return;
    channel.openDeadline = 0;
    this.#openingLive--;
    // Keep the heap from filling with settled channels (each would stay reachable until its deadline).
    if (this.#openingLive === 0) {
      this.#opening.drain();
    } else if (this.#opening.length > 64 && this.#opening.length > 4 * this.#openingLive) {
      this.#opening.retain((c) => c.openDeadline !== 0);
    }
  }

  /** Empties the dial backlog, returning the channels still waiting in it (the session fails them). */
  drainBacklog(): ChannelState[] {
    const waiting: ChannelState[] = [];
    for (const { channel } of this.#backlog.drain()) if (channel.live) waiting.push(channel);
    return waiting;
  }

  /**
   * The session has ended: every watch is settled, the timer stopped, and the dials still waiting for a place
   * let go of (those an open timeout failed stay listed until a place comes: a session that ended cleanly
   * would keep them, and all the application hung on them, for as long as it is kept).
   */
  stop(): void {
    this.#backlog.drain();
    for (const channel of this.#opening.drain()) this.settled(channel);
    clearTimeout(this.#openTimer);
    this.#openTimer = undefined;
  }

  #sendSyn(channel: ChannelState): void {
    if (this.#caps.acknowledgements) {
      this.#unacked++;
      channel.awaitingAck = true;
    }
    channel.pending |= Pending.syn;
    this.#grants.announceWindow(channel);
    this.#scheduler.scheduleControl(channel);
    this.#writer.schedule();
  }

  /**
   * Gives the places free to the dials waiting longest, skipping those past their open timeout (they fail
   * unsent, in the sweep under way or the next). Places that open timeouts freed (`afterTimeouts`) go only to
   * dials less than half way through their own open timeout: the peer left a SYN unanswered for a whole one, and
   * the dials waiting behind it, made in the same burst, would reach it only to be reset a moment later. A burst
   * of such resets reads as churn (`peerResetBurst`) to the peer, which ends the session: dials sweep after sweep
   * had reached a stalled peer, ~1,100 resets from 1,500 dials. The dials passed over keep their turn for the
   * places that acknowledgements free.
   */
  #releaseBacklog(afterTimeouts = false): void {
    if (this.#sweeping) return; // (the sweep releases once it has failed every channel due)
    const backlog = this.#backlog;
    let passedOver: Waiting[] | undefined;
    let now = 0;
    while (this.#unacked < this.#options.ackBacklog && backlog.length > 0) {
      const waiting = backlog.shift()!;
      const channel = waiting.channel;
      if (!channel.live) continue;
      if (channel.openDeadline !== 0) {
        now ||= performance.now();
        if (channel.openDeadline <= now) continue;
        if (afterTimeouts && waiting.halfway <= now) {
          (passedOver ??= []).push(waiting);
          continue;
        }
      }
      this.#sendSyn(channel);
    }
    if (passedOver !== undefined) {
      // Back at the front, in their order.
      const rest = backlog.drain();
      for (const waiting of passedOver) backlog.push(waiting);
      for (const waiting of rest) backlog.push(waiting);
    }
  }

  /**
   * Watches a dialled channel until the peer acknowledges it. One timer serves all of them: it fires at the
   * earliest deadline, takes what is due out of the heap, fails it and re-arms; acknowledged channels drop out
   * lazily (as they reach the heap's front, or as it is compacted). Channels are failed only once the bytes
   * already received were read (`confirmed`): after a busy event loop, their ACKs may be there, unread.
   */
  #watch(channel: ChannelState, timeoutMs: number): void {
    const deadline = performance.now() + timeoutMs;
    channel.openDeadline = deadline;
    this.#opening.push(channel, deadline);
    this.#openingLive++;
    if (this.#openTimer === undefined || deadline < this.#openTimerAt) this.#armTimer(deadline);
  }

  #armTimer(deadline: number): void {
    clearTimeout(this.#openTimer);
    this.#openTimerAt = deadline;
    this.#openTimer = unref(setTimeout(() => this.#sweep(), Math.max(0, deadline - performance.now())));
  }

  #sweep(confirmed = false): void {
    // A dial between the timer and its confirmed pass may have armed another: this pass re-arms as needed.
    if (confirmed) clearTimeout(this.#openTimer);
    this.#openTimer = undefined;
    if (this.#isClosed()) return;
    if (!confirmed) {
      this.#afterReads(() => this.#sweep(true));
      return;
    }
    const now = performance.now();
    const opening = this.#opening;
    // Each error is made before any channel fails, and the places they free are given once all have failed.
    const due: [ChannelState, TimeoutError][] = [];
    while (opening.first <= now) {
      const channel = opening.pop()!;
      if (channel.openDeadline !== 0) due.push([channel, this.#openTimedOut(channel)]);
    }
    const unacked = this.#unacked;
    this.#sweeping = true;
    try {
      for (const [channel, error] of due) this.#abortOpen(channel, error);
    } finally {
      this.#sweeping = false;
    }
    // Only if places came free, or dials came meanwhile: else the dials waiting were all passed over before.
    if (this.#unacked < unacked || this.#queuedInSweep) this.#releaseBacklog(true);
    this.#queuedInSweep = false;
    // Settled channels at the front would wake the timer for nothing.
    while (opening.top?.openDeadline === 0) opening.pop();
    const next = opening.first;
    // A dial from a listener the failures ran may have armed the timer for its own, later, deadline.
    if (next !== Infinity && (this.#openTimer === undefined || next < this.#openTimerAt)) this.#armTimer(next);
  }

  /**
   * Why `channel` failed to open in time: the peer never answered its SYN, or never got it (it waited for a place
   * in the ACK backlog, or behind writes the transport did not take: still `init`, never packed into a write).
   */
  #openTimedOut(channel: ChannelState): TimeoutError {
    const id = channel.id;
    return new TimeoutError(
      'ERR_MUX_OPEN_TIMEOUT',
      channel.awaitingAck && channel.state !== 'init'
        ? `the peer did not acknowledge channel ${id} within its open timeout`
        : `channel ${id} was not opened within its open timeout: its SYN ` +
            (channel.awaitingAck
              ? 'waited behind writes the transport did not take'
              : `waited for a place in the ACK backlog (ackBacklog: ${this.#options.ackBacklog})`) +
            ' and never left, so the peer never heard of it (safe to retry)',
    );
  }
}
