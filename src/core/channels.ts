/**
 * The session's table of live channels, and the {@link ChannelPort} their endpoints use: what a channel asks
 * (write, end, closeRead, reset, readProgress) and how a channel enters and leaves the table (created,
 * removed once both FINs went by or it was reset, failed with the session).
 *
 * It owns the table and each channel's send-side requests (queueing data, FIN and RST on the scheduler). A
 * channel's leaving is told to the parts that count it (window grants, the dial backlog and open watches);
 * the session's state (its error, whether it is closing) comes through the functions it is given. It reads no
 * frames and writes nothing to the transport itself.
 * @module
 */
import type { ChannelPort } from './channel-port.js';
import { ChannelState, Pending, type ChannelEndpoint, type WriteDone } from './channel-state.js';
import type { FormatRules, WireCodec } from './codec.js';
import { callBack, defer } from './defer.js';
import { EndingChannels } from './ending-channels.js';
import { ChannelResetError, MuxError, TransportClosedError } from './errors.js';
import { Flag } from './frame.js';
import type { SessionMemory } from './flow.js';
import type { Telemetry } from './observe.js';
import { LOG_REFUSED_OUT, LOG_RESET_OUT } from './log-codes.js';
import type { ResolvedOptions } from './options.js';
import type { Outgoing } from './outgoing.js';
import type { WriteScheduler } from './scheduler.js';
import type { WindowGrants } from './window-grants.js';
import type { DirectWrite } from './direct-write.js';
import type { FrameWriter } from './writer.js';

/** Makes a channel's endpoint, given its state and the port (see `EndpointFactory` in session.ts). */
export type MakeEndpoint<C extends ChannelEndpoint, S> = (state: ChannelState, port: ChannelPort<S>) => C;

/**
 * Writes of at least this many bytes may take the direct route (direct-write.ts), where the session has it: one
 * transport write of their own at once, as a socket's write would be. Smaller ones wait for the flush, so that
 * the small writes of one synchronous run (a request's parts, many channels' messages) share a transport write.
 */
export const DIRECT_WRITE_MIN = 16 * 1024;

/** `C` is the adapter's channel type, `S` the session's type as the application sees it. */
export class ChannelTable<C extends ChannelEndpoint, S> implements ChannelPort<S> {
  declare readonly highWaterMark: number;
  readonly #streams = new Map<number, ChannelState>();
  /** Live channels this side dialled. */
  #outboundOpen = 0;
  /** The completions `end()` was given, of channels whose FIN has not been packed yet. */
  readonly #finishing = new Map<ChannelState, WriteDone>();
  /** Live channels closed both ways and kept until read (see `leaveIfClosed`). */
  #heldClosed = 0;
  /** Channels the session's end took out of the table, whose endpoints are still to hear of it. */
  readonly #ending: EndingChannels;

  readonly #options: ResolvedOptions;
  readonly #codec: WireCodec;
  readonly #memory: SessionMemory;
  readonly #scheduler: WriteScheduler;
  readonly #writer: FrameWriter;
  readonly #grants: WindowGrants;
  readonly #outgoing: Outgoing;
  readonly #createEndpoint: MakeEndpoint<C, S>;
  readonly #sessionError: () => Error | undefined;
  readonly #onAdded: (channel: ChannelState) => void;
  readonly #onRemoved: (channel: ChannelState, error: Error | undefined) => void;
  readonly #telemetry: Telemetry;
  readonly #direct: DirectWrite | undefined;
  /** The format's rules where it lacks windows or half-close (none for yamux). */
  readonly #rules: FormatRules | undefined;
  constructor(
    readonly session: S,
    options: ResolvedOptions,
    codec: WireCodec,
    memory: SessionMemory,
    scheduler: WriteScheduler,
    writer: FrameWriter,
    grants: WindowGrants,
    outgoing: Outgoing,
    createEndpoint: MakeEndpoint<C, S>,
    /** The error the session ended with, if any (a write on a channel reset by it fails with it). */
    sessionError: () => Error | undefined,
    /** A channel entered the table (its endpoint is made). */
    onAdded: (channel: ChannelState) => void,
    /**
     * A channel left the table (a closing session may be done); `error` when it was reset or failed. Also
     * called for each channel when the session ends under them (`failAll`).
     */
    onRemoved: (channel: ChannelState, error: Error | undefined) => void,
    telemetry: Telemetry,
    /** The direct route of large writes, where the adapter gave the session one (direct-write.ts). */
    direct: DirectWrite | undefined,
    rules: FormatRules | undefined,
  ) {
    this.#options = options;
    this.#codec = codec;
    this.#memory = memory;
    this.#scheduler = scheduler;
    this.#writer = writer;
    this.#grants = grants;
    this.#outgoing = outgoing;
    this.#createEndpoint = createEndpoint;
    this.#sessionError = sessionError;
    this.#onAdded = onAdded;
    this.#onRemoved = onRemoved;
    this.#telemetry = telemetry;
    this.#direct = direct;
    this.#rules = rules;
    this.highWaterMark = options.channelHighWaterMark;
    this.#ending = new EndingChannels(options.readTimeSlice, this.#tellEnded);
  }

  /** Live channels. */
  get size(): number {
    return this.#streams.size;
  }

  /** Live channels this side dialled (`maxOutboundStreams` bounds them). */
  get outboundOpen(): number {
    return this.#outboundOpen;
  }

  /** Live channels the peer opened (`maxInboundStreams` bounds them). */
  get inboundOpen(): number {
    return this.#streams.size - this.#outboundOpen;
  }

  get(id: number): ChannelState | undefined {
    return this.#streams.get(id);
  }

  values(): IterableIterator<ChannelState> {
    return this.#streams.values();
  }

  /** Creates a channel, enters it in the table and gives it its endpoint. */
  add(id: number, outbound: boolean): ChannelState {
    const channel = new ChannelState(id, outbound, this.#options.initialWindow, this.#options.maxWindow);
    if (outbound) {
      this.#telemetry.outboundChannels++;
      this.#outboundOpen++;
    } else this.#telemetry.inboundChannels++;
    if (!this.#codec.capabilities.flowControl) channel.sendWindow = Infinity;
    this.#streams.set(id, channel);
    channel.endpoint = this.#createEndpoint(channel, this);
    this.#onAdded(channel);
    return channel;
  }

  // ------------------------------------------------------------------ ChannelPort

  write(channel: ChannelState, data: Uint8Array, done: WriteDone | null): void {
    if (!channel.live || channel.localFin) {
      // Its session ended and it was not told yet (see `failAll`): told now, it meets the end as a told one does.
      // An endpoint that keeps the channel to be read takes the write (it goes nowhere, as the writes queued
      // when it was told); any other is refused.
      if (this.#ending.has(channel) && this.#ending.tellNow(channel) === true) {
        done?.(null);
        return;
      }
      done?.(this.#writeRefusal(channel));
      return;
    }
    if (data.length === 0) {
      if (done !== null) defer(() => callBack(done, null));
      return;
    }
    if (
      data.length >= DIRECT_WRITE_MIN &&
      this.#direct !== undefined &&
      channel.queuedBytes === 0 &&
      channel.pending === 0 &&
      channel.state !== 'init'
    ) {
      // A large write on an open channel with nothing queued (a bulk transfer's every write): framed and
      // written at once when the writer has nothing else to send (docs/design.md, "The send path").
      const sent = this.#direct(channel, data, done);
      if (sent === data.length) return;
      if (sent > 0) data = data.subarray(sent); // beyond the peer's window or one batch: queued
    }
    channel.enqueue(data, done);
    // The peer's window was already spent: these bytes wait for its Window Update (a stall begins).
    if (channel.sendWindow === 0 && channel.queuedBytes === data.length) this.#telemetry.onWindowStall(channel);
    if (channel.hasSendableData) {
      this.#scheduler.scheduleData(channel);
      this.#writer.schedule();
    }
  }

  end(channel: ChannelState, done?: WriteDone): void {
    if (!channel.live || channel.localFin) {
      // Its session ended and it was not told yet (see `failAll`): no FIN goes. Told now, an endpoint that keeps
      // the channel to be read holds its end until it fails (a Node stream's `end()` fails with it).
      const untold = this.#ending.has(channel);
      if (untold && this.#ending.tellNow(channel) === true) return;
      // Gone with both FINs: done. Reset, or told of its session's end just now: no FIN went, and none can.
      if (done !== undefined) {
        const refusal = untold || channel.state === 'reset' ? this.#writeRefusal(channel) : undefined;
        defer(() => callBack(done, refusal));
      }
      return;
    }
    if (done !== undefined) this.#finishing.set(channel, done);
    channel.localFin = true;
    channel.pending |= Pending.fin;
    if (channel.state === 'init' && (channel.pending & Pending.syn) === 0) return; // waits in the dial backlog
    this.#scheduler.scheduleControl(channel);
    this.#writer.schedule();
  }

  /**
   * Data that arrives from now on is discarded, and its window credit goes back to the peer at once (yamux
   * has no frame to ask a peer to stop sending; the peer learns when the channel closes). Once the
   * application also ended writing and let go of the channel, the channel stays in the table (its FIN sent,
   * waiting for the peer's) until the peer's FIN ends it, or its data (beyond a few small writes) draws a reset
   * (see the receive path).
   */
  closeRead(channel: ChannelState): void {
    if (!channel.live) {
      this.catchUp(channel);
      return;
    }
    channel.readClosed = true;
  }

  /**
   * Aborts a channel from this side: RST to the peer (unless its SYN never left: the peer never heard of it),
   * queued writes dropped; `failEndpoint` fails the endpoint too (the session's own resets, not the
   * application's). `neverTaken`: a channel of the peer's the application never took, refused from the accept
   * queue (its state may have moved on with the peer's FIN while it waited there).
   */
  reset(channel: ChannelState, error: Error | undefined, failEndpoint = false, neverTaken = false): void {
    if (!channel.live) return;
    // Its SYN left once it was packed (the state moves then); a SYN only pending has not, and is dropped below.
    // Without half-close, this side's close is already a RST: the peer has forgotten the channel, and a second
    // one would be for an id it does not know (the original ends its whole session on that).
    const told = channel.state !== 'init' && (this.#codec.capabilities.halfClose || !channel.finSent);
    // An inbound channel the application never took (still `syn-received`): the peer sees a refusal.
    const refusal = neverTaken || (!channel.outbound && channel.state === 'syn-received');
    const failure =
      error ??
      new ChannelResetError(channel.id, `channel ${channel.id} was reset by this side`, 'ERR_MUX_CHANNEL_ABORTED');
    this.remove(channel, failure);
    channel.fail(failure, failEndpoint);
    if (told) {
      const telemetry = this.#telemetry;
      if (refusal) {
        telemetry.refusalsOut++;
        telemetry.log(LOG_REFUSED_OUT, channel.id, undefined, 'closing');
      } else {
        telemetry.resetsOut++;
        telemetry.log(LOG_RESET_OUT, channel.id, failure);
      }
      channel.pending = Pending.rst | (channel.pending & Pending.ack); // an owed ACK leaves with the RST
      channel.pendingIncrement = 0;
      if (!channel.outbound) this.#scheduler.inboundResetsOwed++;
      this.#scheduler.scheduleControl(channel);
      this.#writer.schedule();
    } else {
      // Nothing goes (a window's increment neither): a RST for a channel it never heard of ends a multiplex peer's
      // session.
      channel.pending = 0;
      channel.pendingIncrement = 0;
      // A dial that timed out before its SYN left (the ACK backlog full: a sign of overload) is logged all the
      // same, as open timeouts are; no reset is counted.
      if ((failure as { code?: string }).code === 'ERR_MUX_OPEN_TIMEOUT')
        this.#telemetry.log(LOG_RESET_OUT, channel.id, failure);
    }
  }

  release(channel: ChannelState, error: Error | undefined): void {
    if (!channel.live) return;
    if (error !== undefined || !channel.finishedCleanly) this.reset(channel, error);
    else if (channel.bothClosed) this.remove(channel);
    else this.#grants.readProgress(channel); // it waits for the peer's end: what its endpoint dropped is read
  }

  readProgress(channel: ChannelState, wanted?: number): void {
    this.#grants.readProgress(channel, wanted);
    if (channel.heldClosed) this.leaveIfClosed(channel); // one bit on the read path; only a kept channel may go
  }

  /**
   * Takes a channel closed both ways out of the table, unless the format's rules keep it. With half-close
   * nothing does: each side's FIN came from its application. Without (the multiplex format), this side's close
   * answered the peer's at once, so a channel the application has not taken yet, or not read to the end, stays:
   * it is handed over and read as any other, and its unread bytes still count against the session's bound.
   */
  leaveIfClosed(channel: ChannelState): void {
    if (!channel.live || !channel.bothClosed) return;
    if (this.#rules?.keepsClosed(channel) !== true) {
      this.remove(channel);
    } else if (!channel.heldClosed) {
      channel.heldClosed = true;
      this.#heldClosed++;
      this.onHeldClosed?.();
    }
  }

  /** The transport ended or failed: channels the format's rules count as closed both ways now leave or are kept. */
  transportGone(): void {
    this.#rules?.transportGone(this.#streams.values(), (channel) => {
      // Its own close, asked for and not packed yet, counts as gone with the rest: its `end()` is done.
      const done = this.#finishing.size === 0 ? undefined : this.#finishing.get(channel);
      if (done !== undefined) {
        this.#finishing.delete(channel);
        defer(() => callBack(done, undefined));
      }
      this.leaveIfClosed(channel);
    });
  }

  /** Called when a channel is kept closed (`stillOpen` went down without a removal): a closing session looks again. */
  onHeldClosed: (() => void) | undefined;

  /** Live channels not yet closed both ways on the wire: those a closing session waits for. */
  get stillOpen(): number {
    return this.#streams.size - this.#heldClosed;
  }

  // ------------------------------------------------------------------ leaving the table

  /** A frame with these flags was packed for sending (the scheduler's hook): SYN and FIN move the state. */
  onFlagsSent(channel: ChannelState, flags: number): WriteDone | undefined {
    if ((flags & Flag.syn) !== 0) {
      channel.markSynSent();
      if (!this.#codec.capabilities.acknowledgements) channel.markEstablished();
    }
    if ((flags & Flag.fin) === 0) return undefined;
    const finishing = this.#finishing;
    const done = finishing.size === 0 ? undefined : finishing.get(channel);
    if (done !== undefined) finishing.delete(channel);
    channel.markFinSent();
    if (channel.openDeadline !== 0) this.#outgoing.untimed(channel); // (see `untimed`)
    this.#rules?.localClosed(channel);
    this.leaveIfClosed(channel);
    return done;
  }

  /** Ends a channel from the session's side without a frame: it fails with `error` (reads, writes, queue). */
  abandon(channel: ChannelState, error: Error): void {
    this.remove(channel, error);
    channel.fail(error);
  }

  /**
   * Takes a channel out of the table: what it held goes back to the session's counts. `error`: why, when it
   * ends abnormally (it is failed right after).
   */
  remove(channel: ChannelState, error?: Error): void {
    if (!channel.live) return;
    channel.live = false;
    if (channel.openDeadline !== 0 || channel.openAbort !== null) this.#outgoing.settled(channel);
    this.#streams.delete(channel.id);
    // A FIN not packed yet is not going: the channel fails (reset), and its endpoint hears of that instead.
    if (this.#finishing.size !== 0) this.#finishing.delete(channel);
    if (channel.outbound) this.#outboundOpen--;
    if (channel.heldClosed) this.#heldClosed--;
    this.#grants.release(channel);
    this.#outgoing.acknowledged(channel);
    if (!this.#memory.underPressure) this.#grants.relieveMemory();
    this.#onRemoved(channel, error);
  }

  /**
   * Fails every channel with `error` (each with its own `TransportClosedError` when undefined) and empties the
   * table, without a frame: the session is ending. `clearPending` drops the flags they still owed the peer.
   * Their books close at once; their endpoints hear of it a batch a turn when there are many (see
   * `EndingChannels`), and `whenAllTold` waits for the last.
   */
  failAll(error: Error | undefined, clearPending: boolean): void {
    const ending = this.#ending;
    for (const channel of this.#streams.values()) {
      channel.live = false;
      // Closed both ways, all of it here (heldClosed): it is read to its end as any closed channel, and does not fail.
      if (!channel.heldClosed) {
        if (clearPending) channel.pending = 0;
        // Its open deadline and the listener on its dial's signal go too (a channel without a deadline is on
        // no list that the outgoing part's stop() would sweep).
        if (channel.openDeadline !== 0 || channel.openAbort !== null) this.#outgoing.settled(channel);
        // Reset already, though told later: a write meanwhile fails with the session's error.
        channel.state = 'reset';
      }
      ending.add(channel, error);
    }
    this.#streams.clear();
    this.#finishing.clear();
    this.#outboundOpen = 0;
    this.#heldClosed = 0;
    ending.start();
  }

  catchUp(channel: ChannelState): void {
    if (this.#ending.has(channel)) this.#ending.tellNow(channel);
  }

  /** Calls `then` once every channel `failAll` took has been told (at once when none waits). */
  whenAllTold(then: () => void): void {
    this.#ending.whenTold(then);
  }

  /** Tells one channel of the session's end; true when its endpoint keeps it to be read (`ChannelEndpoint.fail`). */
  readonly #tellEnded = (channel: ChannelState, error: Error | undefined): boolean => {
    if (channel.heldClosed) {
      this.#onRemoved(channel, undefined);
      return false;
    }
    const failure = error ?? new TransportClosedError();
    const kept = channel.fail(failure, true, true);
    this.#onRemoved(channel, failure);
    return kept;
  };

  /** Why a write on a channel that can no longer send fails. */
  #writeRefusal(channel: ChannelState): Error {
    if (channel.state === 'reset') {
      return this.#sessionError() ?? new ChannelResetError(channel.id, `channel ${channel.id} was reset`);
    }
    return (
      this.#rules?.writeRefusal(channel) ??
      new MuxError('ERR_MUX_WRITE_AFTER_END', `channel ${channel.id} has ended its writing side`)
    );
  }
}
