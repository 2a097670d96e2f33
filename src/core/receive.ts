/**
 * The receive dispatch: the decoder's frames, checked and handed on. Data goes to its channel's endpoint
 * (within the channel's receive window), Window Updates open a channel's send window, SYNs open inbound
 * channels or are refused, FIN and RST end channels, Ping and Go Away go to the session.
 *
 * It owns only the frame being received (its channel, where its payload goes). It checks what the peer may
 * send (ids, parity, windows) and reports violations as protocol errors through {@link ReceiverHost}; it
 * never writes to the transport, and queues only the frames a received frame calls for (a refusal, the FIN
 * that answers a close on a format without half-close, a send-window's data).
 * @module
 */
import type { ChannelEndpoint, ChannelState } from './channel-state.js';
import type { ChannelTable } from './channels.js';
import type { CodecCapabilities, FormatRules, WireCodec } from './codec.js';
import { FRAMES_PER_ASK, type FrameSink } from './decoder.js';
import { ChannelRefusedError, ChannelResetError } from './errors.js';
import { Flag, type FrameHeader, FrameType } from './frame.js';
import { CHUNK_COST, type SessionMemory } from './flow.js';
import { Fifo } from './fifo.js';
import type { Incoming } from './incoming.js';
import type { RefusalReason, Telemetry } from './observe.js';
import { LOG_REFUSED_IN, LOG_REFUSED_OUT, LOG_RESET_IN } from './log-codes.js';
import type { ResolvedOptions } from './options.js';
import type { Outgoing } from './outgoing.js';
import type { ReadGate } from './read-gate.js';
import { copyBytes, type WriteScheduler } from './scheduler.js';
import type { WindowGrants } from './window-grants.js';
import type { FrameWriter } from './writer.js';

/**
 * A payload is copied out of its chunk when the chunk's buffer is more than this many times what the payload
 * is charged (its bytes and {@link CHUNK_COST}): a few bytes must not pin a large buffer (a WebSocket message
 * of up to `maxMessageSize`, a socket's 64 KiB read) outside the session's bound. Only while the session holds
 * little (`SessionMemory.holdsLittle`, an eighth of the bound): beyond that, a payload that is not its whole
 * buffer is copied, or a peer that puts one unread payload of just over an eighth in each read would pin 8
 * times the bound.
 */
const PIN_RATIO = 8;
/**
 * Payloads of at most this many bytes are joined with the same channel's other payloads of one transport read
 * before they are handed on: a peer that sends its data in one-byte frames would otherwise make each byte a
 * chunk of its own (some 150 bytes of heap each, again in the send queue of an application that echoes them).
 */
const JOIN_LIMIT = 1024;

/**
 * The largest payload taken for a peer's last words after the application let go of a channel it closed (see
 * `#discard`): larger data is a peer still sending a body, and draws a reset at once.
 */
const LATE_WRITE_MAX = 1024;

/** Refusals (RST for unwanted SYNs) waiting beyond this mean the peer floods without reading: a protocol error. */
const MAX_QUEUED_SESSION_FRAMES = 4096;

/**
 * The share of a `peerResetBurst` token that the peer's reset of a channel still in the accept queue takes
 * (see `#onRemoteReset`): a burst of 4,000 such dials given up, or 4,000 a second, at `peerResetBurst`'s and
 * `peerResetRate`'s defaults.
 */
const QUEUED_RESET_COST = 0.25;

/** What the receive dispatch asks of the session. */
export interface ReceiverHost {
  /** The peer broke the protocol (on `channel`, when the broken rule is one channel's). */
  protocolError(message: string, channel?: number): void;
  /** The session takes new inbound channels (it is open: not closing, not closed). */
  acceptsChannels(): boolean;
  /** The code of the peer's Go Away, if it sent one. */
  remoteGoAway(): number | undefined;
  onPing(flags: number, value: number): void;
  onGoAway(code: number): void;
  /** A SYN was refused (a closing session waits for the peer to go quiet before it ends). */
  onRefused(): void;
  /** This turn's share of the event loop is spent: the decoder holds the rest (see `TurnBudget`). */
  turnSpent(): boolean;
}

/** `C` is the adapter's channel type, `S` the session's type as the application sees it. */
export class Receiver<C extends ChannelEndpoint, S> implements FrameSink {
  // The frame being received: its channel, and whether its payload goes to that channel.
  #frameChannel: ChannelState | null = null;
  #payloadTarget: ChannelState | null = null;
  readonly #caps: CodecCapabilities;
  /** This side is the client (it dials odd ids; the peer must open even ones). */
  readonly #client: boolean;

  readonly #table: ChannelTable<C, S>;
  readonly #options: ResolvedOptions;
  readonly #memory: SessionMemory;
  readonly #allocate: (size: number) => Uint8Array;
  readonly #scheduler: WriteScheduler;
  readonly #writer: FrameWriter;
  readonly #gate: ReadGate;
  readonly #grants: WindowGrants;
  readonly #outgoing: Outgoing;
  readonly #incoming: Incoming<C>;
  readonly #host: ReceiverHost;
  readonly #telemetry: Telemetry;
  /** The format's rules where it lacks windows or half-close (none for yamux). */
  readonly #rules: FormatRules | undefined;
  /**
   * Resets the peer may still send for channels it opened (a token bucket: `peerResetBurst`, `peerResetRate`),
   * and when they were counted (`performance.now()`). An object of its own: its fields turn from small
   * integers into doubles, which changes its hidden class, and no optimised code of the receive path reads it.
   */
  readonly #resets: { tokens: number; at: number };
  /** The small payloads of the current read not handed on yet, by channel: one view, or views to join. */
  readonly #joins = new Map<ChannelState, Uint8Array | Uint8Array[]>();
  /** Payloads up to this length are joined ({@link JOIN_LIMIT}), or -1: none is. */
  readonly #joinLimit: number;
  constructor(
    table: ChannelTable<C, S>,
    codec: WireCodec,
    client: boolean,
    options: ResolvedOptions,
    memory: SessionMemory,
    allocate: (size: number) => Uint8Array,
    scheduler: WriteScheduler,
    writer: FrameWriter,
    gate: ReadGate,
    grants: WindowGrants,
    outgoing: Outgoing,
    incoming: Incoming<C>,
    host: ReceiverHost,
    telemetry: Telemetry,
    rules: FormatRules | undefined,
    /** Small payloads of one read are joined per channel (see {@link JOIN_LIMIT}). */
    join: boolean,
  ) {
    this.#joinLimit = join ? JOIN_LIMIT : -1;
    this.#rules = rules;
    this.#table = table;
    this.#options = options;
    this.#memory = memory;
    this.#allocate = allocate;
    this.#scheduler = scheduler;
    this.#writer = writer;
    this.#gate = gate;
    this.#grants = grants;
    this.#outgoing = outgoing;
    this.#incoming = incoming;
    this.#host = host;
    this.#telemetry = telemetry;
    this.#caps = codec.capabilities;
    this.#client = client;
    this.#resets = { tokens: options.peerResetBurst, at: 0 };
  }

  onHeader(header: FrameHeader): void {
    // The peer's first Go Away may end channels (or the session): what arrived before it is handed on first.
    if (header.type === FrameType.goAway && this.#host.remoteGoAway() === undefined) this.#handOnJoined();
    this.#frameChannel = null;
    this.#payloadTarget = null;
    this.#telemetry.framesIn++;
    const type = header.type;
    if (type === FrameType.data || type === FrameType.windowUpdate) {
      this.#onChannelHeader(header);
      return;
    }
    if (header.streamId !== 0) {
      this.#protocolError(
        `${type === FrameType.ping ? 'Ping' : 'Go Away'} frame on channel ${header.streamId}; it must use 0`,
        header.streamId,
      );
      return;
    }
    if (type === FrameType.ping) this.#host.onPing(header.flags, header.length);
    else this.#host.onGoAway(header.length);
  }

  onPayload(chunk: Uint8Array, start: number, end: number): void {
    this.#telemetry.dataBytesIn += end - start;
    const channel = this.#payloadTarget;
    if (!channel?.live) return;
    const length = end - start;
    if (channel.dropsData) {
      this.#discard(channel, length);
      return;
    }
    const joins = this.#joins;
    // A small payload for a channel whose reader keeps up (nothing of it waits unread) is handed on at the end
    // of the read (or before anything else the application sees, or what ends the channel), joined with the
    // channel's other small payloads of the read. A channel whose data waits unread takes each payload as it
    // comes, charged as a chunk of its own. (One that ends the read, with nothing held, goes at once.)
    if (length <= this.#joinLimit && channel.endpoint.bufferedBytes === 0 && (end < chunk.length || joins.size > 0)) {
      const view = chunk.subarray(start, end);
      const parts = joins.get(channel);
      if (parts === undefined) joins.set(channel, view);
      else if (Array.isArray(parts)) parts.push(view);
      else joins.set(channel, [parts, view]);
      return;
    }
    if (joins.size > 0) {
      // What came before it, on every channel, first: the application sees the read in its order.
      this.#handOnJoined();
      if (!channel.live || channel.dropsData) {
        if (channel.live) this.#discard(channel, length);
        return; // (a listener let go of it, or closed it for reading, on what was handed on)
      }
    }
    this.#handOn(channel, this.#unpinned(chunk, start, end));
  }

  /**
   * The decoder's input chunk is done: the small payloads of this read are handed on; with `mayHold`, only as
   * long as this turn's share lasts (true: some are left for `resume()`).
   */
  onChunkEnd(mayHold: boolean): boolean {
    return this.#handOnJoined(mayHold);
  }

  turnSpent(): boolean {
    return this.#host.turnSpent();
  }

  /**
   * Before a frame that hands on every join of the read first (a SYN, the first Go Away, a larger payload or one
   * for a channel whose data waits unread), the joins are handed on within this turn's share: true leaves the
   * frame for a later turn, with the rest. (The read's joins cost little until handed on, so the decoder's asks
   * every 64 frames do not see them: one read of one-byte frames joins thousands.)
   */
  beforeFrame(header: FrameHeader): boolean {
    return this.#joins.size > 0 && this.#flushesJoins(header) && this.#handOnJoined(true);
  }

  #flushesJoins(header: FrameHeader): boolean {
    if ((header.flags & Flag.syn) !== 0) return true;
    if (header.type === FrameType.goAway) return this.#host.remoteGoAway() === undefined;
    if (header.type !== FrameType.data) return false;
    if (header.length > this.#joinLimit) return true;
    return (this.#table.get(header.streamId)?.endpoint.bufferedBytes ?? 0) > 0;
  }

  /** Bytes `start` to `end` of `chunk`: a view, or a copy when the view would pin a much larger buffer. */
  #unpinned(chunk: Uint8Array, start: number, end: number): Uint8Array {
    const length = end - start;
    const ratio = this.#memory.holdsLittle ? PIN_RATIO : 1;
    if (chunk.buffer.byteLength > ratio * (length + CHUNK_COST)) {
      const data = this.#allocate(length);
      copyBytes(data, 0, chunk, start, end);
      return data;
    }
    return start === 0 && end === chunk.length ? chunk : chunk.subarray(start, end);
  }

  /**
   * Hands on the small payloads held for this read, joined per channel. `sliced`: asks every {@link FRAMES_PER_ASK} channels whether
   * this turn's share is spent, and if so stops, leaving the rest (true); a channel's later data joins what it has
   * left, and a SYN, a larger payload or a Go Away hands on everything first, so each channel's order holds.
   */
  #handOnJoined(sliced = false): boolean {
    const joins = this.#joins;
    if (joins.size === 0) return false;
    let count = 0;
    for (const channel of joins.keys()) {
      this.#handOnJoinedFor(channel);
      if (sliced && ++count % FRAMES_PER_ASK === 0 && joins.size > 0 && this.#host.turnSpent()) return true;
    }
    return false;
  }

  /** Hands on the small payloads of `channel` held for this read, joined, in the order they came. */
  #handOnJoinedFor(channel: ChannelState): void {
    const parts = this.#joins.get(channel);
    if (parts === undefined) return;
    this.#joins.delete(channel);
    if (channel.live) {
      let data: Uint8Array;
      if (Array.isArray(parts)) {
        let total = 0;
        for (const part of parts) total += part.length;
        data = this.#allocate(total);
        let at = 0;
        for (const part of parts) {
          copyBytes(data, at, part, 0, part.length);
          at += part.length;
        }
      } else {
        data = this.#unpinned(parts, 0, parts.length);
      }
      if (channel.dropsData) this.#discard(channel, data.length);
      else this.#handOn(channel, data);
    }
  }

  /** Data for a channel that drops what comes (`closeRead()`, or this side's close where it ends reading too). */
  #discard(channel: ChannelState, length: number): void {
    // (Not after this side's close on a format whose close is a RST: the peer was told, and answers.)
    if (channel.endpoint.destroyed && !channel.readCut) {
      // The application has let go of a channel it closed for reading (and for writing, or the channel
      // would be gone): data that still comes is answered with a reset, as TCP answers data for a closed
      // socket, so the peer stops sending into nothing. Not a peer's last few small writes, sent before it
      // heard of the close (a TLS close_notify, a protocol's goodbye): a reset would fail its channel for them.
      const drops = channel.lateDrops;
      if (length > LATE_WRITE_MAX || drops === 3) {
        this.#table.reset(channel, undefined);
        return;
      }
      channel.lateDrops = drops + 1;
    }
    // Discarded as it arrives: counted as delivered and read at once, so its credit goes back to the peer.
    channel.delivered += length;
    this.#memory.buffered += length;
    this.#grants.readProgress(channel);
  }

  /** Hands `data` to the channel's endpoint, counting it as delivered. */
  #handOn(channel: ChannelState, data: Uint8Array): void {
    channel.delivered += data.length;
    this.#memory.buffered += data.length;
    channel.endpoint.deliver(data);
    // Left waiting (not read at once): its cost beyond its bytes counts too, until it is read (see readProgress).
    if (channel.endpoint.bufferedBytes > 0) {
      (channel.held ??= new Fifo()).push(channel.delivered);
      this.#memory.held += CHUNK_COST;
    }
    this.#grants.readProgress(channel);
    this.#rules?.delivered(channel); // without windows: may hold reading (gate.overfull)
    const gate = this.#gate;
    if (this.#memory.exhausted || gate.overfull > 0) {
      gate.pause();
      if (gate.cannotPause && this.#memory.beyondCeiling(this.#caps.flowControl)) {
        // The transport went on though asked to pause, and the peer sends more than the session can hold.
        const mib = this.#memory.ceilingCount(this.#caps.flowControl) / 1048576;
        this.#protocolError(
          `the peer sent more than the session can hold while the transport could not pause: ${
            this.#caps.flowControl ? 'its chunks waiting unread cost' : 'unread'
          } ${mib.toFixed(1)} MiB, over four times maxSessionBuffered`,
        );
        return;
      }
    }
    if (gate.probing && gate.probeSpent) gate.endProbe(); // tiny frames while paused: see ReadGate.probeSpent
  }

  onFrameEnd(header: FrameHeader): void {
    const channel = this.#frameChannel;
    // The channel's data before its end (the end's events come later, after the read: other channels' data
    // still comes first).
    if ((header.flags & (Flag.rst | Flag.fin)) !== 0 && channel !== null) this.#handOnJoinedFor(channel);
    this.#frameChannel = null;
    this.#payloadTarget = null;
    if (!channel?.live) return;
    if ((header.flags & Flag.rst) !== 0) this.#onRemoteReset(channel);
    else if ((header.flags & Flag.fin) !== 0) this.#onRemoteFin(channel);
  }

  #onChannelHeader(header: FrameHeader): void {
    const id = header.streamId;
    const flags = header.flags;
    if (id === 0) {
      this.#protocolError(`${header.type === FrameType.data ? 'Data' : 'Window Update'} frame on channel 0`);
      return;
    }
    let channel = this.#table.get(id);
    if ((flags & Flag.syn) !== 0) {
      if (channel !== undefined) {
        if (this.#caps.strictOpen) {
          this.#protocolError(`SYN for channel ${id}, which is already open`, id);
          return;
        }
        // (the original multiplex treats a repeated SYN as data for the open channel)
      } else {
        if ((id & 1) === (this.#client ? 1 : 0)) {
          this.#protocolError(`the peer opened channel ${id}, an id of this side's parity`, id);
          return;
        }
        channel = this.#openInbound(id);
        if (!channel?.live) return; // refused: its payload is discarded
      }
    } else if (channel === undefined) {
      return; // a late frame for a channel closed here (it crossed our RST or FIN): ignored
    }
    // Any frame on the channel shows the peer took it, even one without the ACK flag: the open timeout and
    // the dial's signal no longer apply.
    if (channel.openDeadline !== 0 || channel.openAbort !== null) this.#outgoing.settled(channel);
    // So the first frame that is not a refusal (RST) acknowledges it, ACK flag or not (a FIN does as well).
    if ((flags & Flag.ack) !== 0 || (channel.awaitingAck && (flags & Flag.rst) === 0)) this.#onAck(channel);
    if (header.type === FrameType.data) {
      const length = header.length;
      if (length > 0) {
        if (!this.#caps.flowControl) {
          if (!channel.remoteFin) channel.rx.received += length; // (else dropped: see below)
        } else if (!channel.rx.receive(length)) {
          this.#protocolError(
            `channel ${id}: a ${length}-byte Data frame exceeds the receive window ` +
              `(${channel.rx.credit} bytes left)`,
            id,
          );
          return;
        }
        // Data after the peer's close: its writer raced its own close. Go's yamux checks a stream's state and
        // then queues the frame, with no lock between, so a Close() from elsewhere can get its FIN out first;
        // the original multiplex's Write races its Close (a RST) the same way. Nothing can be read past the
        // end: the payload is dropped, within the window, and the channel and the session go on. Its flags count
        // (a RST on it resets the channel).
        if (!channel.remoteFin) this.#payloadTarget = channel;
      }
    } else if (header.length > 0) {
      channel.sendWindow += header.length;
      if (channel.queuedBytes > 0) {
        this.#scheduler.scheduleData(channel);
        this.#writer.schedule();
      }
    }
    this.#frameChannel = channel;
  }

  #openInbound(id: number): ChannelState | undefined {
    this.#handOnJoined(); // the data before the SYN first: its listeners may act on it
    // What this side owes the peer for its earlier channels (refusals; RSTs of those this side reset, such as
    // an application that lets go of the channels it does not want, each waiting with its channel's record)
    // leaves as the peer reads: a peer that opens channel after channel and reads nothing made them pile up
    // without end (330 bytes a reset channel: 172 MiB in 12 s).
    if (this.#owedTooMuch()) {
      this.#protocolError('the peer keeps opening channels while not reading the refusals and resets of earlier ones');
      return undefined;
    }
    const refusal: RefusalReason | undefined = !this.#host.acceptsChannels()
      ? 'closing'
      : this.#table.size >= this.#options.maxStreams
        ? 'max-streams'
        : this.#table.inboundOpen >= this.#options.maxInboundStreams
          ? 'max-inbound-streams'
          : this.#incoming.full
            ? 'accept-backlog'
            : undefined;
    if (refusal !== undefined) {
      this.#refuse(id, refusal);
      return undefined;
    }
    const channel = this.#table.add(id, false);
    // A 'channelOpen' listener may have closed the session or sent Go Away: refused as those queued were.
    if (!this.#host.acceptsChannels()) {
      this.#table.reset(channel, undefined);
      return undefined;
    }
    this.#incoming.offer(channel);
    return channel;
  }

  #refuse(id: number, reason: RefusalReason): void {
    if (this.#writer.ended) return; // ended: the peer learns from the transport's end that nothing was accepted
    this.#host.onRefused();
    const telemetry = this.#telemetry;
    telemetry.refusalsOut++;
    telemetry.log(LOG_REFUSED_OUT, id, undefined, reason);
    this.#scheduler.queueSessionFrame(FrameType.windowUpdate, Flag.rst, id, 0);
    this.#writer.schedule();
  }

  /**
   * The frames owed to the peer (session frames such as refusals, RSTs of its channels) reached
   * {@link MAX_QUEUED_SESSION_FRAMES} and stay there once what can be was sent: many from one read are sent
   * now, and only a peer that does not read them (the transport stays blocked) makes them pile up.
   */
  #owedTooMuch(): boolean {
    if (this.#scheduler.framesOwed < MAX_QUEUED_SESSION_FRAMES) return false;
    if (!this.#writer.blocked) this.#writer.flush();
    return this.#scheduler.framesOwed >= MAX_QUEUED_SESSION_FRAMES;
  }

  #onAck(channel: ChannelState): void {
    this.#outgoing.acknowledged(channel);
    channel.markEstablished();
  }

  #onRemoteFin(channel: ChannelState): void {
    if (channel.remoteFin) return;
    if (channel.awaitingAck) this.#onAck(channel); // a FIN answers the SYN as well
    channel.markRemoteFin();
    this.#grants.remoteFinished(channel);
    channel.endpoint.remoteEnded();
    this.#rules?.remoteClosed(channel); // without half-close: this side's direction ends too
    this.#table.leaveIfClosed(channel);
  }

  #onRemoteReset(channel: ChannelState): void {
    if (!channel.outbound) {
      // A channel still waiting in the accept queue takes a quarter of a token: the application started no work
      // for it (its endpoint and this error are made all the same, so not nothing), and a dialler whose dials
      // time out or are aborted while this side's application does not accept resets every one of them.
      const cost = channel.awaitingAccept ? QUEUED_RESET_COST : 1;
      const { peerResetBurst, peerResetRate } = this.#options;
      const resets = this.#resets;
      const now = performance.now();
      const tokens = Math.min(peerResetBurst, resets.tokens + ((now - resets.at) * peerResetRate) / 1000);
      resets.at = now;
      if (tokens < cost) {
        this.#protocolError('the peer resets channels it opened faster than peerResetBurst/peerResetRate allow');
        return;
      }
      resets.tokens = tokens - cost;
    }
    let error: Error;
    if (!this.#caps.refusal || !channel.unaccepted) error = new ChannelResetError(channel.id);
    else if (this.#host.remoteGoAway() === undefined) error = new ChannelRefusedError(channel.id);
    else
      error = new ChannelRefusedError(channel.id, `channel ${channel.id} was refused: the peer is closing (Go Away)`);
    const telemetry = this.#telemetry;
    const refused = error instanceof ChannelRefusedError;
    if (refused) telemetry.refusalsIn++;
    else telemetry.resetsIn++;
    telemetry.log(refused ? LOG_REFUSED_IN : LOG_RESET_IN, channel.id, error);
    this.#table.abandon(channel, error);
  }

  /**
   * The session ended: small payloads still held to be joined (a read the time slice cut short) go nowhere now
   * (their channels failed with the session), and the channels and the read they view are let go of.
   */
  stop(): void {
    this.#joins.clear();
  }

  onDecodeError(message: string): void {
    this.#protocolError(message);
  }

  /** The peer broke the protocol: the data that came before the break is handed on first. */
  #protocolError(message: string, channel?: number): void {
    this.#handOnJoined();
    this.#host.protocolError(message, channel);
  }
}
