/**
 * Channels the peer opens, from their SYN until the application takes them: handed to a waiting `accept()`,
 * to a `'channel'` listener, or queued (at most `acceptBacklog`). Past that, a codec that can refuse refuses
 * (the session's business, asking `full`); the multiplex format cannot, so reading stops until the
 * application accepts, as the original does. Taking a channel acknowledges it (ACK with its window).
 *
 * It owns the accept queue and the waiting `accept()` calls. It queues only ACKs, sets the {@link ReadGate}'s
 * accept-queue hold, emits the session's `'channel'` events and asks the session only why `accept()` may not
 * wait; it never creates, resets or removes a channel.
 * @module
 */
import { Pending, type ChannelEndpoint, type ChannelState } from './channel-state.js';
import type { CodecCapabilities } from './codec.js';
import type { Emitter } from './emitter.js';
import { abortable } from './abortable.js';
import { defer } from './defer.js';
import { Fifo } from './fifo.js';
import type { ResolvedOptions } from './options.js';
import type { ReadGate } from './read-gate.js';
import type { SessionEvents } from './session-api.js';
import type { WriteScheduler } from './scheduler.js';
import { type Waiter, Waiters } from './waiters.js';
import type { WindowGrants } from './window-grants.js';
import type { FrameWriter } from './writer.js';

/** The endpoint of a queued channel that left the session before it was accepted (see `Incoming.left`). */
const LEFT: ChannelEndpoint = { deliver() {}, remoteEnded() {}, fail() {}, bufferedBytes: 0, destroyed: true };

export class Incoming<C extends ChannelEndpoint> {
  readonly #queue = new Fifo<ChannelState>();
  /** Channels in the queue still waiting to be accepted (`awaitingAccept`): those that left it do not count. */
  #waiting = 0;
  readonly #waiters = new Waiters<C>();
  /** Channels queued for the waiting `accept()` calls, which `#serve` hands them from a microtask. */
  #reserved = 0;

  readonly #options: ResolvedOptions;
  readonly #caps: CodecCapabilities;
  readonly #scheduler: WriteScheduler;
  readonly #writer: FrameWriter;
  readonly #grants: WindowGrants;
  readonly #gate: ReadGate;
  readonly #events: Emitter<SessionEvents<C>>;
  readonly #acceptRefusal: () => Error | undefined;
  readonly #leaveIfClosed: (channel: ChannelState) => void;
  constructor(
    options: ResolvedOptions,
    caps: CodecCapabilities,
    scheduler: WriteScheduler,
    writer: FrameWriter,
    grants: WindowGrants,
    gate: ReadGate,
    /** The session, whose `'channel'` listeners take channels as they come. */
    events: Emitter<SessionEvents<C>>,
    /** Why `accept()` cannot wait now (the session is closing or closed), or undefined. */
    acceptRefusal: () => Error | undefined,
    /** Takes a channel closed both ways out of the table once nothing holds it there (the channel table's). */
    leaveIfClosed: (channel: ChannelState) => void,
  ) {
    this.#options = options;
    this.#caps = caps;
    this.#scheduler = scheduler;
    this.#writer = writer;
    this.#grants = grants;
    this.#gate = gate;
    this.#events = events;
    this.#acceptRefusal = acceptRefusal;
    this.#leaveIfClosed = leaveIfClosed;
  }

  /** Channels waiting to be accepted. */
  get queued(): number {
    return this.#waiting;
  }

  /** The queue is full and the codec can refuse: a new channel is refused. */
  get full(): boolean {
    return this.#caps.refusal && this.#waiting - this.#reserved >= this.#options.acceptBacklog;
  }

  /**
   * A queued channel left the session before it was accepted (the peer reset it): it no longer counts against
   * `acceptBacklog`, and once most of the queue is such channels, they are dropped from it. Its endpoint goes
   * at once: until then the entry holds {@link LEFT}, and not what the peer had sent it, which no longer counts
   * against `maxSessionBuffered` (a peer that fills channels and resets them while the application does not
   * accept would have the queue keep megabytes).
   */
  left(channel: ChannelState): void {
    if (!channel.awaitingAccept || channel.heldClosed) return;
    channel.awaitingAccept = false;
    channel.endpoint = LEFT;
    this.#waiting--;
    if (this.#queue.length > 64 && this.#queue.length > 2 * this.#waiting) {
      this.#queue.retain((queued) => queued.awaitingAccept);
    }
  }

  /** See `MuxSession.accept`. */
  accept(signal: AbortSignal | undefined): Promise<C> {
    // A signal already aborted takes nothing, even a channel that waits (a loop accepting until its signal
    // aborts stops there), and the channel stays for the next call.
    if (signal?.aborted) return Promise.reject(signal.reason);
    // (Calls already waiting come first: the channels queued for them are theirs.)
    const queued = this.#waiters.size === 0 ? this.take() : undefined;
    if (queued !== undefined) return Promise.resolve(queued);
    const refusal = this.#acceptRefusal();
    if (refusal !== undefined) return Promise.reject(refusal);
    let waiter!: Waiter<C>;
    const accepted = new Promise<C>((resolve, reject) => (waiter = this.#waiters.add(resolve, reject)));
    // False when the call is not waiting any more: a channel (or the session's end) came first, and it has that.
    return abortable(accepted, signal, () => this.#waiters.drop(waiter));
  }

  /** A new inbound channel: to a waiting `accept()`, to the `'channel'` listeners, or into the queue. */
  offer(channel: ChannelState): void {
    const forWaiter = this.#reserved < this.#waiters.size;
    if (!forWaiter && this.#events.listenerCount('channel') > 0) {
      this.#acknowledge(channel);
      this.#events.emit('channel', channel.endpoint as C);
    } else {
      channel.awaitingAccept = true;
      this.#waiting++;
      this.#queue.push(channel);
      if (forWaiter) {
        // Handed over from a microtask, once the frames read with its SYN were dispatched: a reset (or the
        // session's end) among them takes it out of the queue first, and the call waits on. Handed over at once,
        // the caller got a channel whose 'close' had come before it could listen.
        if (this.#reserved++ === 0) defer(this.#serve);
      } else if (!this.#caps.refusal && this.#waiting >= this.#options.acceptBacklog) {
        // This format cannot refuse (its RST is a close): slow the peer down instead, as the original does.
        this.#gate.acceptFull = true;
        this.#gate.pause();
      }
    }
  }

  /** Hands the queued channels to the waiting `accept()` calls, oldest first. */
  readonly #serve = (): void => {
    this.#serveWaiters();
    // Calls that gave up meanwhile leave their channels to the 'channel' listeners, if any.
    if (this.#waiting > 0) this.drainToListeners();
  };

  /**
   * The session is ending: the channels queued for waiting calls are theirs now (as if handed over at once, as
   * they were before the session failed them or refused its queue), unless they left meanwhile.
   */
  handOverReserved(): void {
    if (this.#reserved > 0) this.#serveWaiters();
  }

  #serveWaiters(): void {
    this.#reserved = 0;
    while (this.#waiters.size > 0) {
      const channel = this.take();
      if (channel === undefined) return;
      this.#waiters.shift()!(channel);
    }
  }

  /** Takes the oldest queued channel that is still live, acknowledging it; undefined when none waits. */
  take(): C | undefined {
    for (;;) {
      const channel = this.#queue.shift();
      if (channel === undefined) return undefined;
      // One that left the session while queued was already uncounted (see `left`).
      if (!channel.awaitingAccept) continue;
      channel.awaitingAccept = false;
      this.#waiting--;
      this.#resumeIfRoom();
      // Closed both ways and whole (multiplex): handed over even once the session has ended, to be read out.
      if (!channel.live) {
        if (channel.heldClosed) return channel.endpoint as C;
        continue;
      }
      this.#acknowledge(channel);
      // A channel its peer closed while it waited (without half-close, this side's close answered at once) was
      // kept for this: taken, it may leave the table once it holds nothing unread.
      this.#leaveIfClosed(channel);
      return channel.endpoint as C;
    }
  }

  /** A `'channel'` listener was added: hands it the queued channels, from a microtask. */
  drainToListeners(): void {
    while (this.#events.listenerCount('channel') > 0) {
      const channel = this.take();
      if (channel === undefined) return;
      this.#events.emit('channel', channel);
    }
  }

  /** Empties the queue, returning its channels (a closing session refuses them, a failing one fails them). */
  drainQueue(): ChannelState[] {
    this.handOverReserved();
    const drained: ChannelState[] = [];
    this.#waiting = 0;
    for (const channel of this.#queue.drain()) {
      if (!channel.awaitingAccept) continue;
      // A channel closed both ways (multiplex) is complete: it goes back, to be accepted and read.
      if (channel.heldClosed) {
        this.#queue.push(channel);
        this.#waiting++;
      } else {
        channel.awaitingAccept = false;
        drained.push(channel);
      }
    }
    return drained;
  }

  /** The session is closing: reading goes on (no queue to wait for), and waiting `accept()` calls fail. */
  close(error: Error): void {
    if (this.#gate.acceptFull) {
      this.#gate.acceptFull = false;
      this.#gate.resume();
    }
    this.rejectWaiters(error);
  }

  /** Fails every waiting `accept()` with `error`. */
  rejectWaiters(error: Error): void {
    this.#waiters.rejectAll(error);
  }

  /** Reading paused for a full queue (a format that cannot refuse) goes on once there is room. */
  #resumeIfRoom(): void {
    if (this.#gate.acceptFull && this.#waiting < this.#options.acceptBacklog) {
      this.#gate.acceptFull = false;
      this.#gate.resume();
    }
  }

  /** The application takes an inbound channel: ACK it (with the window announcement, if larger). */
  #acknowledge(channel: ChannelState): void {
    channel.markEstablished();
    if (!this.#caps.acknowledgements) return;
    channel.pending |= Pending.ack;
    this.#grants.announceWindow(channel);
    this.#scheduler.scheduleControl(channel);
    this.#writer.schedule();
  }
}
