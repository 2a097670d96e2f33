/**
 * The session: the table of channels, the accept queue, the receive path, keep-alive, Go Away and shutdown.
 * It speaks to the transport through {@link Transport} and to channels through {@link ChannelEndpoint}, so it
 * imports nothing Node-only; adapters (src/node/) give it a Node stream and make channels Node `Duplex`es.
 * @module
 */
import type { ChannelPort } from './channel-port.js';
import { ChannelState, Pending, type ChannelEndpoint, type WriteDone } from './channel-state.js';
import type { CodecCapabilities, WireCodec } from './codec.js';
import { multiplexCodec } from './codecs/multiplex.js';
import { yamuxCodec } from './codecs/yamux.js';
import { FrameDecoder, type FrameSink } from './decoder.js';
import { defer } from './defer.js';
import { Emitter } from './emitter.js';
import {
  ChannelRefusedError, ChannelResetError, GoAwayCode, GoAwayError, MuxError, ProtocolError, SessionClosedError,
  StreamLimitError, TimeoutError, TransportClosedError,
} from './errors.js';
import { Flag, type FrameHeader, FrameType } from './frame.js';
import { SessionMemory } from './flow.js';
import { type ResolvedOptions, type SessionOptions, SPEC_INITIAL_WINDOW, checkNumberOption, resolveOptions } from './options.js';
import { copyBytes, FrameBatch, type SchedulerHooks, WriteScheduler } from './scheduler.js';
import type { Transport, TransportEvents } from './transport.js';
import { UpdateTurns } from './update-turns.js';

/** Which end of the session this is: the client dials odd channel ids, the server even ones. */
export type Role = 'client' | 'server';

/** The events of a session. */
export interface SessionEvents<C> {
  /** The peer opened a channel (it is accepted by being handed to this listener). */
  channel: (channel: C) => void;
  /** The peer sent Go Away: it takes no new channels (code 0), or is ending on an error (1, 2). */
  goaway: (code: number) => void;
  /** The session has ended: cleanly (`error` undefined) or not. Emitted once. */
  close: (error?: Error) => void;
}

/** The lifecycle of a session. */
export type SessionStatus = 'open' | 'closing' | 'closed';

/**
 * Makes the application-facing object for a channel (a Node `Duplex`, a Web stream pair...): it holds the
 * channel's state and the session's {@link ChannelPort}, through which it writes, ends, resets and reads.
 */
export type EndpointFactory<C extends ChannelEndpoint> = (state: ChannelState, port: ChannelPort<C>) => C;

/** Options of `accept()`. */
export interface AcceptOptions {
  /** Gives up waiting; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options of `dial()`. */
export interface DialOptions {
  /**
   * Gives up opening: until the peer acknowledges the channel, aborting resets it and fails it with the
   * signal's reason (dialling with an aborted signal throws that reason). Later aborts do nothing.
   */
  signal?: AbortSignal;
  /** This channel's open timeout in ms, instead of the session's `openTimeout` (0: no limit). */
  openTimeout?: number;
}

/** Options of `close()`. */
export interface CloseOptions {
  /** Milliseconds to wait for open channels to finish (default: the session's `closeTimeout`). */
  timeout?: number;
}

interface AcceptWaiter<C> {
  resolve(channel: C): void;
  reject(error: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface PendingPing {
  value: number;
  sentAt: number;
  resolve: ((rtt: number) => void)[];
  reject: ((error: Error) => void)[];
  timer: ReturnType<typeof setTimeout> | undefined;
}

const MAX_ID = 0xffff_ffff;
/** A batch stops growing at this many bytes; the transport decides whether more follow at once. */
const BATCH_LIMIT = 1024 * 1024;
/**
 * Frames scheduled while a flush is pending (scheduling calls, about two per dialled channel that writes at
 * once) after which the session writes at once instead of waiting for the microtask.
 */
const EARLY_FLUSH_AFTER = 256;
/** Small payload pieces of a large chunk are copied, so a few bytes do not pin the chunk's memory. */
const PIN_COPY_LIMIT = 1024;
/**
 * After the opening ping, two more pings measure the RTT, this many ms after the previous answer, before
 * keep-alive takes over. The opening ping often meets a peer that is still starting (its first answer on
 * loopback can take 3 ms where 0.1 ms is the truth); auto-tuning sizes windows by the smallest RTT seen, and
 * a window sized by a cold-start RTT is needlessly large, which queues more data ahead of other channels.
 */
const RTT_PROBE_DELAYS = [100, 1000];

/** Size of the scratch buffer a batch starts in (its bytes leave as one exact-size copy). */
const SCRATCH_STAGING = 2048;

/** Queued pong answers beyond this are dropped (a ping flood gets no more). */
const MAX_QUEUED_PONGS = 32;
/** Refusals (RST for unwanted SYNs) waiting beyond this mean the peer floods without reading: a protocol error. */
const MAX_QUEUED_SESSION_FRAMES = 4096;
/** After ending the transport, how long to wait for the peer to end its side before destroying it. */
const LINGER_MS = 2000;
/**
 * A session that stopped reading (memory bound, a full accept queue on the multiplex codec, a channel over its
 * buffer there) reads this many bytes at a time when it probes the transport for a cut: enough to reach an end
 * of file or a reset behind a little data, little enough to leave the bound nearly where it was.
 */
const PROBE_CHUNK = 64 * 1024;

const noop = (): void => {};

/**
 * Periodic timers (keep-alive) and the linger after closing do not keep a process alive on their own; timers
 * of a wait the application started (a ping, a close) do, until they settle.
 */
function unref(timer: ReturnType<typeof setTimeout>): ReturnType<typeof setTimeout> {
  (timer as { unref?: () => void }).unref?.();
  return timer;
}

/**
 * Dialled here and not acknowledged by the peer: its application never took it. (Not the state's name: a
 * channel half-closed before its ACK came is `local-closed` and still unacknowledged.)
 */
function isUnaccepted(channel: ChannelState): boolean {
  return channel.outbound && (channel.awaitingAck || channel.state === 'init');
}

function defaultAllocate(size: number): Uint8Array {
  return new Uint8Array(size);
}

/** A first-in first-out queue that does not shift arrays (dial backlogs can hold thousands). */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
  drain(): T[] {
    const rest = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return rest;
  }
}

/**
 * A multiplexed session over one transport. `C` is the channel type the adapter hands to the application.
 * Create one with `multiplexedClient` / `multiplexedServer` (Node) rather than directly.
 */
export class MuxSession<C extends ChannelEndpoint> extends Emitter<SessionEvents<C>> {
  /** The options in force, defaults applied. */
  readonly options: ResolvedOptions;
  /** `client` (dials odd ids) or `server` (dials even ids). */
  readonly role: Role;
  /** Settles when the session has ended: resolves on a clean close, rejects with the error otherwise. */
  readonly closed: Promise<void>;

  /** The wire format and what it can express. */
  private readonly codec: WireCodec;
  private readonly caps: CodecCapabilities;
  private readonly transport: Transport;
  private readonly createEndpoint: EndpointFactory<C>;
  /** What channels may ask of the session (one port for all of them). */
  private readonly port: ChannelPort<C>;
  private readonly decoder: FrameDecoder;
  private readonly scheduler: WriteScheduler;
  /** The batch being assembled, reused for every transport write (with its scratch staging buffer). */
  private readonly batch: FrameBatch;
  private readonly memory: SessionMemory;
  private readonly allocate: (size: number) => Uint8Array;
  private readonly streams = new Map<number, ChannelState>();
  private readonly acceptQueue = new Fifo<ChannelState>();
  private readonly acceptWaiters: AcceptWaiter<C>[] = [];
  private readonly dialBacklog = new Fifo<ChannelState>();
  private withheld: ChannelState[] = [];
  /** Channels over their buffer limit on a codec without windows (reading pauses while any is). */
  private overfull = 0;
  private nextId: number;
  private unacked = 0;
  private status: SessionStatus = 'open';
  private localGoAway = false;
  private remoteGoAway: number | undefined;
  private error: Error | undefined;
  private resolveClosed!: () => void;
  private rejectClosed!: (error: Error) => void;
  private closingPromise: Promise<void> | undefined;
  private finished = false;
  private closeTimer: ReturnType<typeof setTimeout> | undefined;
  private lingerTimer: ReturnType<typeof setTimeout> | undefined;
  private endWhenFlushed = false;
  private transportEnded = false;
  private transportClosed = false;
  private flushScheduled = false;
  /** Frames scheduled since the pending flush was: see {@link EARLY_FLUSH_AFTER}. */
  private scheduledSinceFlush = 0;
  /** Inside `writeBatches` (an early flush must not start another one from a hook or a write callback). */
  private writingBatches = false;
  private writeBlocked = false;
  /** Reading is paused for memory or the accept queue; see `updateReading`. */
  private readPaused = false;
  /**
   * Reading resumed while paused, to probe the transport: until the probe ping's answer arrives (yamux, bounded
   * by the window credit already granted), or for `probeBytes` more bytes (multiplex, no windows).
   */
  private probing = false;
  private probeBytes = 0;
  /** Bytes a multiplex session may still read while paused in this pause (see {@link PROBE_CHUNK}). */
  private probeBudget = 0;
  private probeTimer: ReturnType<typeof setTimeout> | undefined;
  /** The accept queue is full on a codec that cannot refuse: reading waits for the application to accept. */
  private acceptFull = false;
  /** When bytes last arrived from the peer (`performance.now()`), for the keep-alive deadline. */
  private lastHeard = 0;
  /** Ping value sent after this side's Go Away; its answer shows the peer has seen the Go Away. */
  private goAwayProbe = 0;
  /** The peer has seen this side's Go Away (or the wait for that ran out): a closing session may end. */
  private goAwaySeen = false;
  private goAwayTimer: ReturnType<typeof setTimeout> | undefined;
  /** This side ended its half of the transport: nothing more can be written. */
  private writeEnded = false;
  private pingInFlight: PendingPing | undefined;
  private nextPingValue = 1;
  private keepAliveTimer: ReturnType<typeof setTimeout> | undefined;
  /** Dialled channels waiting for their acknowledgement under an open timeout (settled ones drop out lazily). */
  private opening: ChannelState[] = [];
  private openingLive = 0;
  private openTimer: ReturnType<typeof setTimeout> | undefined;
  private openTimerAt = 0;
  /** RTT probes sent so far (of {@link RTT_PROBE_DELAYS}). */
  private rttProbes = 0;
  private lastRtt: number | undefined;
  /** The smallest RTT seen: the path's own delay, without the queueing that data adds to later pings. */
  private minRtt: number | undefined;
  /**
   * A reading channel sends a Window Update at least this often (a quarter of the keep-alive timeout), even
   * before half its window is read, so that a peer whose ping waits behind our data on a slow link keeps
   * hearing from us.
   */
  private readonly quietUpdateMs: number;
  // The frame being received: its channel, and whether its payload goes to that channel.
  private frameChannel: ChannelState | null = null;
  private payloadTarget: ChannelState | null = null;
  private readonly flushTask = (): void => this.flush();
  /** Holds Window Updates to the end of the event-loop turn where several channels receive. */
  private readonly updateTurns = new UpdateTurns(() => {
    if (this.status !== 'closed') this.scheduleFlush();
  });
  private readonly reserveGrowth = (extra: number): boolean => this.memory.reserveGrowth(extra);

  constructor(transport: Transport, role: Role, options: SessionOptions | undefined, createEndpoint: EndpointFactory<C>) {
    super();
    if (role !== 'client' && role !== 'server') throw new TypeError(`muxwire: role must be 'client' or 'server'`);
    this.options = resolveOptions(options);
    this.role = role;
    this.codec = this.options.protocol === 'multiplex' ? multiplexCodec : yamuxCodec;
    this.caps = this.codec.capabilities;
    this.nextId = this.codec.firstId(role);
    this.transport = transport;
    this.createEndpoint = createEndpoint;
    this.port = {
      session: this,
      highWaterMark: this.options.channelHighWaterMark,
      write: (channel, data, done) => this.writeChannel(channel, data, done),
      end: (channel) => this.endChannel(channel),
      closeRead: (channel) => this.closeChannelRead(channel),
      reset: (channel, error) => this.resetChannel(channel, error),
      readProgress: (channel) => this.readProgress(channel),
    };
    // The decoder's and the scheduler's callbacks stay private: they reach the session through these.
    const sink: FrameSink = {
      onHeader: (header) => this.onHeader(header),
      onPayload: (chunk, start, end) => this.onPayload(chunk, start, end),
      onFrameEnd: (header) => this.onFrameEnd(header),
      onDecodeError: (message) => this.protocolError(message),
    };
    const hooks: SchedulerHooks = { onFlagsSent: (channel, flags) => this.onFlagsSent(channel, flags) };
    this.decoder = new FrameDecoder(sink, this.codec);
    this.scheduler = new WriteScheduler(Math.min(this.options.maxFrameSize, this.codec.maxFragment), hooks);
    this.memory = new SessionMemory(this.options.maxSessionBuffered, this.options.memoryBudget);
    this.quietUpdateMs = Math.max(this.options.keepAliveTimeout / 4, 10);
    this.allocate = transport.allocate?.bind(transport) ?? defaultAllocate;
    this.batch = new FrameBatch(this.allocate, this.codec, new Uint8Array(SCRATCH_STAGING));
    this.closed = new Promise<void>((resolve, reject) => {
      this.resolveClosed = resolve;
      this.rejectClosed = reject;
    });
    this.closed.catch(noop); // whoever awaits `closed` sees the error; nobody else is bothered by it
    const events: TransportEvents = {
      data: (chunk) => this.onTransportData(chunk),
      drain: () => this.onTransportDrain(),
      end: () => this.onTransportEnd(),
      error: (error) => this.onTransportError(error),
      close: () => this.onTransportClose(),
    };
    transport.start(events);
    // An opening ping measures the round-trip time that window auto-tuning needs; keep-alive follows.
    if (this.status === 'open' && this.caps.ping) this.sendPing().resolve.push(() => this.armKeepAlive());
  }

  // ------------------------------------------------------------------ public API

  /** `open` until `close()` or `destroy()` starts, then `closing` and `closed`. */
  get state(): SessionStatus {
    return this.status;
  }

  /** Channels currently open (dialled or accepted, not yet fully closed or reset). */
  get channelCount(): number {
    return this.streams.size;
  }

  /** The last measured round-trip time in milliseconds, or undefined before the first ping answer. */
  get rtt(): number | undefined {
    return this.lastRtt;
  }

  /** Bytes received and not yet read by the application, across all channels. */
  get bufferedBytes(): number {
    return this.memory.buffered;
  }

  /** The error the session ended with, if it ended abnormally. */
  get closeError(): Error | undefined {
    return this.error;
  }

  /**
   * Opens a channel and returns it at once: it can be written to before the peer acknowledges it (the
   * first data frame carries the SYN). Throws `StreamLimitError` at `maxStreams`, `GoAwayError` after the
   * peer's Go Away, `SessionClosedError` once the session is closing or closed.
   */
  dial(options: DialOptions = {}): C {
    const { signal } = options;
    const openTimeout = options.openTimeout === undefined
      ? this.options.openTimeout : checkNumberOption('openTimeout', options.openTimeout);
    if (signal?.aborted) throw signal.reason;
    if (this.status !== 'open') throw this.error ?? new SessionClosedError(this.status === 'closing'
      ? 'session is closing: no new channels' : 'session is closed');
    if (this.remoteGoAway !== undefined) throw new GoAwayError(this.remoteGoAway);
    if (this.streams.size >= this.options.maxStreams) {
      throw new StreamLimitError(`maxStreams (${this.options.maxStreams}) channels are open`);
    }
    if (this.nextId > MAX_ID) {
      throw new StreamLimitError('channel ids are exhausted for this session; close it and connect again');
    }
    const channel = this.newChannel(this.nextId, true);
    this.nextId += 2;
    this.streams.set(channel.id, channel);
    channel.endpoint = this.createEndpoint(channel, this.port);
    if (this.caps.acknowledgements) {
      if (openTimeout > 0) this.watchOpen(channel, openTimeout);
      if (signal !== undefined) {
        const onAbort = (): void => this.abortOpen(channel, signal.reason);
        channel.openAbort = { signal, onAbort };
        signal.addEventListener('abort', onAbort, { once: true });
      }
    }
    if (!this.caps.acknowledgements || this.unacked < this.options.ackBacklog) this.sendSyn(channel);
    else this.dialBacklog.push(channel);
    return channel.endpoint as C;
  }

  /**
   * Waits for the next channel the peer opens. Rejects with `SessionClosedError` once the session closes or
   * starts closing, or with the session's error. (The peer's Go Away does not end accepting: a peer may still
   * open channels after its own Go Away, as hashicorp/yamux can.)
   */
  accept(options: AcceptOptions = {}): Promise<C> {
    const queued = this.takeQueued();
    if (queued !== undefined) return Promise.resolve(queued);
    const refusal = this.acceptRefusal();
    if (refusal !== undefined) return Promise.reject(refusal);
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<C>((resolve, reject) => {
      const waiter: AcceptWaiter<C> = { resolve, reject, signal, onAbort: undefined };
      if (signal !== undefined) {
        waiter.onAbort = () => {
          const index = this.acceptWaiters.indexOf(waiter);
          if (index >= 0) this.acceptWaiters.splice(index, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.acceptWaiters.push(waiter);
    });
  }

  /** Iterates over the channels the peer opens; ends when the session closes (throws if it failed). */
  async *[Symbol.asyncIterator](): AsyncGenerator<C, void, undefined> {
    for (;;) {
      let channel: C;
      try {
        channel = await this.accept();
      } catch (error) {
        if (error instanceof SessionClosedError || (error instanceof GoAwayError && error.goAwayCode === 0)) return;
        throw error;
      }
      yield channel;
    }
  }

  /**
   * Sends a ping and resolves to the round-trip time in milliseconds. Only one ping is in flight at a time:
   * calls made meanwhile share its answer. If keep-alive is on and no answer comes within
   * `keepAliveTimeout`, the session fails with `TimeoutError` (`ERR_MUX_KEEPALIVE_TIMEOUT`).
   */
  ping(): Promise<number> {
    if (this.status === 'closed') return Promise.reject(this.error ?? new SessionClosedError());
    if (!this.caps.ping) {
      return Promise.reject(new MuxError('ERR_MUX_UNSUPPORTED', `the ${this.codec.name} format has no ping`));
    }
    const ping = this.sendPing(true);
    return new Promise<number>((resolve, reject) => {
      ping.resolve.push(resolve);
      ping.reject.push(reject);
    });
  }

  /**
   * Closes gracefully: sends Go Away (the peer opens no new channels), refuses channels not yet accepted,
   * lets open channels finish both directions, then ends the transport. Resolves once the session is closed.
   * Channels still open after the timeout are reset, and the session ends with `TimeoutError`
   * (`ERR_MUX_CLOSE_TIMEOUT`) reported on `closed` and the `close` event.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.status === 'closed') return Promise.resolve();
    if (this.closingPromise !== undefined) return this.closingPromise;
    const timeout = options.timeout ?? this.options.closeTimeout;
    if (typeof timeout !== 'number' || !(timeout >= 0)) throw new RangeError('muxwire: close timeout must be a number >= 0');
    this.status = 'closing';
    this.closingPromise = this.closed.then(noop, noop);
    this.localGoAway = true;
    if (this.caps.goAway) this.scheduler.queueSessionFrame(FrameType.goAway, 0, 0, GoAwayCode.normal);
    this.awaitGoAwaySeen();
    for (const channel of this.acceptQueue.drain()) this.resetChannel(channel, undefined);
    if (this.acceptFull) {
      this.acceptFull = false;
      this.resumeReading();
    }
    this.rejectAcceptWaiters(new SessionClosedError());
    this.closeTimer = setTimeout(() => this.onCloseTimeout(timeout), timeout);
    this.scheduleFlush();
    this.checkCloseDone();
    return this.closingPromise;
  }

  /**
   * Ends the session at once: every channel is reset (its pending reads and writes fail with `error`, or with
   * `SessionClosedError`), pending `accept()` and `ping()` calls reject, and the transport is destroyed.
   */
  destroy(error?: Error): void {
    this.fail(error ?? new SessionClosedError('session was destroyed'));
  }

  // ------------------------------------------------------------------ channel side (used by endpoints)

  /** Queues bytes on a channel (see {@link ChannelPort.write}). */
  private writeChannel(channel: ChannelState, data: Uint8Array, done: WriteDone | null): void {
    if (!channel.live || channel.localFin) {
      done?.(this.writeRefusal(channel));
      return;
    }
    if (data.length === 0) {
      if (done !== null) defer(() => done(null));
      return;
    }
    channel.enqueue(data, done);
    if (channel.hasSendableData) {
      this.scheduler.scheduleData(channel);
      this.scheduleFlush();
    }
  }

  /** Half-closes a channel: FIN goes out after everything already queued on it. */
  private endChannel(channel: ChannelState): void {
    if (!channel.live || channel.localFin) return;
    channel.localFin = true;
    channel.pending |= Pending.fin;
    if (channel.state === 'init' && (channel.pending & Pending.syn) === 0) return; // waits in the dial backlog
    this.scheduler.scheduleControl(channel);
    this.scheduleFlush();
  }

  /**
   * The application reads no more of a channel: data that arrives from now on is discarded, and its window
   * credit goes back to the peer at once (yamux has no frame to ask a peer to stop sending; the peer learns
   * when the channel closes). The endpoint drops what it holds itself, which `readProgress` then credits.
   * Once the application also ended writing and let go of the channel, the channel stays in the session (its
   * FIN sent, waiting for the peer's) until the peer's FIN ends it, or its data draws a reset (`onPayload`).
   */
  private closeChannelRead(channel: ChannelState): void {
    if (!channel.live) return;
    channel.readClosed = true;
  }

  /** Aborts a channel from this side: RST to the peer, queued writes dropped. */
  private resetChannel(channel: ChannelState, error: Error | undefined, failEndpoint = false): void {
    if (!channel.live) return;
    const told = channel.state !== 'init' || (channel.pending & Pending.syn) !== 0;
    this.removeChannel(channel);
    channel.fail(error ?? new ChannelResetError(channel.id, `channel ${channel.id} was reset by this side`), failEndpoint);
    if (told) {
      channel.pending = Pending.rst | (channel.pending & Pending.ack); // an owed ACK leaves with the RST
      channel.pendingIncrement = 0;
      this.scheduler.scheduleControl(channel);
      this.scheduleFlush();
    }
  }

  /** The application read some of a channel's data: account for it and grant window when due. */
  private readProgress(channel: ChannelState): void {
    if (!channel.live) return;
    const fresh = channel.rx.consume(channel.delivered - channel.endpoint.bufferedBytes);
    if (fresh <= 0) return; // nothing newly read (Node asks `_read` for more before anything was read)
    this.memory.buffered -= fresh;
    if (!this.memory.underPressure) this.relieveMemory();
    this.grantIfDue(channel);
  }

  /** Sends a Window Update when one is due (or, without windows, resumes reading once a channel caught up). */
  private grantIfDue(channel: ChannelState): void {
    if (!this.caps.flowControl) {
      if (channel.overfull && channel.rx.buffered <= this.options.initialWindow) {
        channel.overfull = false;
        this.overfull--;
        if (this.overfull === 0 && !this.memory.underPressure) this.relieveMemory();
      }
    } else if (!channel.remoteFin) {
      const now = performance.now();
      channel.rx.notePace(now);
      if (channel.rx.updateDue || channel.rx.quietUpdateDue(now, this.quietUpdateMs)) this.grantWindow(channel, now);
    }
  }

  // ------------------------------------------------------------------ receive path (FrameSink)

  private onHeader(header: FrameHeader): void {
    this.frameChannel = null;
    this.payloadTarget = null;
    const type = header.type;
    if (type === FrameType.data || type === FrameType.windowUpdate) {
      this.onChannelHeader(header);
      return;
    }
    if (header.streamId !== 0) {
      this.protocolError(`${type === FrameType.ping ? 'Ping' : 'Go Away'} frame on channel ${header.streamId}; it must use 0`);
      return;
    }
    if (type === FrameType.ping) this.onPing(header.flags, header.length);
    else this.onGoAway(header.length);
  }

  private onPayload(chunk: Uint8Array, start: number, end: number): void {
    const channel = this.payloadTarget;
    if (channel === null || !channel.live) return;
    const length = end - start;
    if (channel.readClosed) {
      if (channel.endpoint.destroyed) {
        // The application has let go of a channel it closed for reading (and for writing, or the channel
        // would be gone): data that still comes is answered with a reset, as TCP answers data for a closed
        // socket, so the peer stops sending into nothing.
        this.resetChannel(channel, undefined);
        return;
      }
      // Discarded as it arrives: counted as delivered and read at once, so its credit goes back to the peer.
      channel.delivered += length;
      this.memory.buffered += length;
      this.readProgress(channel);
      return;
    }
    let data: Uint8Array;
    if (length <= PIN_COPY_LIMIT && chunk.buffer.byteLength > 8 * length) {
      data = this.allocate(length);
      copyBytes(data, 0, chunk, start, end);
    } else {
      data = start === 0 && end === chunk.length ? chunk : chunk.subarray(start, end);
    }
    channel.delivered += data.length;
    this.memory.buffered += data.length;
    channel.endpoint.deliver(data);
    this.readProgress(channel);
    // Without windows, the only backpressure is to stop reading while a channel holds more than a window.
    if (!this.caps.flowControl && !channel.overfull && channel.rx.buffered > this.options.initialWindow) {
      channel.overfull = true;
      this.overfull++;
    }
    if (this.memory.exhausted || this.overfull > 0) this.pauseReading();
  }

  private onFrameEnd(header: FrameHeader): void {
    const channel = this.frameChannel;
    this.frameChannel = null;
    this.payloadTarget = null;
    if (channel === null || !channel.live) return;
    if ((header.flags & Flag.rst) !== 0) this.onRemoteReset(channel);
    else if ((header.flags & Flag.fin) !== 0) this.onRemoteFin(channel);
  }

  /** A frame with these flags was packed for sending. */
  private onFlagsSent(channel: ChannelState, flags: number): void {
    if ((flags & Flag.syn) !== 0) {
      channel.markSynSent();
      if (!this.caps.acknowledgements) channel.markEstablished();
    }
    if ((flags & Flag.fin) !== 0) {
      channel.markFinSent();
      if (channel.bothClosed) this.removeChannel(channel);
    }
  }

  private onChannelHeader(header: FrameHeader): void {
    const id = header.streamId;
    const flags = header.flags;
    if (id === 0) {
      this.protocolError(`${header.type === FrameType.data ? 'Data' : 'Window Update'} frame on channel 0`);
      return;
    }
    let channel = this.streams.get(id);
    if ((flags & Flag.syn) !== 0) {
      if (channel !== undefined) {
        if (this.caps.strictOpen) {
          this.protocolError(`SYN for channel ${id}, which is already open`);
          return;
        }
        // (the original multiplex treats a repeated SYN as data for the open channel)
      } else {
        if ((id & 1) === (this.role === 'client' ? 1 : 0)) {
          this.protocolError(`the peer opened channel ${id}, an id of this side's parity`);
          return;
        }
        channel = this.openInbound(id);
        if (channel === undefined || !channel.live) return; // refused: its payload is discarded
      }
    } else if (channel === undefined) {
      return; // a late frame for a channel closed here (it crossed our RST or FIN): ignored
    }
    // Any frame on the channel shows the peer took it, even one without the ACK flag: the open timeout and
    // the dial's signal no longer apply.
    if (channel.openDeadline !== 0 || channel.openAbort !== null) this.openSettled(channel);
    if ((flags & Flag.ack) !== 0) this.onAck(channel);
    if (header.type === FrameType.data) {
      const length = header.length;
      if (length > 0) {
        if (channel.remoteFin) {
          this.protocolError(`data on channel ${id} after its FIN`);
          return;
        }
        if (!this.caps.flowControl) {
          channel.rx.received += length;
        } else if (!channel.rx.receive(length)) {
          this.protocolError(`channel ${id}: a ${length}-byte Data frame exceeds the receive window `
            + `(${channel.rx.credit} bytes left)`);
          return;
        }
        this.payloadTarget = channel;
      }
    } else if (header.length > 0) {
      channel.sendWindow += header.length;
      if (channel.queuedBytes > 0) {
        this.scheduler.scheduleData(channel);
        this.scheduleFlush();
      }
    }
    this.frameChannel = channel;
  }

  private openInbound(id: number): ChannelState | undefined {
    if (this.status !== 'open' || this.streams.size >= this.options.maxStreams
      || (this.caps.refusal && this.acceptQueue.length >= this.options.acceptBacklog)) {
      this.refuse(id);
      return undefined;
    }
    const channel = this.newChannel(id, false);
    this.streams.set(id, channel);
    channel.endpoint = this.createEndpoint(channel, this.port);
    const waiter = this.acceptWaiters.shift();
    if (waiter !== undefined) {
      this.acknowledge(channel);
      if (waiter.onAbort !== undefined) waiter.signal!.removeEventListener('abort', waiter.onAbort);
      waiter.resolve(channel.endpoint as C);
    } else if (this.listenerCount('channel') > 0) {
      this.acknowledge(channel);
      this.emit('channel', channel.endpoint as C);
    } else {
      this.acceptQueue.push(channel);
      if (!this.caps.refusal && this.acceptQueue.length >= this.options.acceptBacklog) {
        // This format cannot refuse (its RST is a close): slow the peer down instead, as the original does.
        this.acceptFull = true;
        this.pauseReading();
      }
    }
    return channel;
  }

  private refuse(id: number): void {
    if (this.writeEnded) return; // ended: the peer learns from the transport's end that nothing was accepted
    if (this.scheduler.sessionFrameCount >= MAX_QUEUED_SESSION_FRAMES) {
      // Many refusals from one read: send them now. Only a peer that does not read its refusals (the
      // transport stays blocked) makes them pile up.
      if (!this.writeBlocked) this.flush();
      if (this.scheduler.sessionFrameCount >= MAX_QUEUED_SESSION_FRAMES) {
        this.protocolError('the peer keeps opening channels that are refused while not reading the refusals');
        return;
      }
    }
    this.scheduler.queueSessionFrame(FrameType.windowUpdate, Flag.rst, id, 0);
    this.scheduleFlush();
  }

  private onAck(channel: ChannelState): void {
    if (channel.awaitingAck) {
      channel.awaitingAck = false;
      this.unacked--;
      this.releaseDialBacklog();
    }
    channel.markEstablished();
  }

  private onRemoteFin(channel: ChannelState): void {
    if (channel.remoteFin) return;
    if (channel.awaitingAck) this.onAck(channel); // a FIN answers the SYN as well
    channel.markRemoteFin();
    channel.endpoint.remoteEnded();
    if (!this.caps.halfClose && !channel.localFin) {
      // No half-close in this format: the peer's close ends both directions, and is answered once, in kind.
      if (channel.queuedBytes > 0) {
        channel.dropQueue(new MuxError('ERR_MUX_CHANNEL_CLOSED',
          `channel ${channel.id} was closed by the peer before this data was sent (the ${this.codec.name} format has no half-close)`));
      }
      channel.localFin = true;
      channel.pending |= Pending.fin;
      this.scheduler.scheduleControl(channel);
      this.scheduleFlush();
    }
    if (channel.bothClosed) this.removeChannel(channel);
  }

  private onRemoteReset(channel: ChannelState): void {
    let error: Error;
    if (!this.caps.refusal || !isUnaccepted(channel)) error = new ChannelResetError(channel.id);
    else if (this.remoteGoAway === undefined) error = new ChannelRefusedError(channel.id);
    else error = new ChannelRefusedError(channel.id, `channel ${channel.id} was refused: the peer is closing (Go Away)`);
    this.abandon(channel, error);
  }

  /** Ends a channel from the session's side without a frame: it fails with `error` (reads, writes, queue). */
  private abandon(channel: ChannelState, error: Error): void {
    this.removeChannel(channel);
    channel.fail(error);
  }

  private onPing(flags: number, value: number): void {
    if ((flags & Flag.syn) !== 0) {
      // Answers pile up only while the transport is blocked; beyond a few, a ping flood gets no more.
      if (this.scheduler.sessionFrameCount < MAX_QUEUED_PONGS) {
        this.scheduler.queueSessionFrame(FrameType.ping, Flag.ack, 0, value);
        this.scheduleFlush();
      }
      return;
    }
    if ((flags & Flag.ack) !== 0) {
      if (value === this.goAwayProbe && value !== 0) {
        this.goAwayProbe = 0;
        this.onGoAwaySeen();
        return;
      }
      const ping = this.pingInFlight;
      if (ping === undefined || ping.value !== value) return; // stale or unknown answer
      this.pingInFlight = undefined;
      if (this.probing) this.endProbe(); // the answer came: the peer is there
      if (ping.timer !== undefined) clearTimeout(ping.timer);
      const rtt = performance.now() - ping.sentAt;
      this.lastRtt = rtt;
      const first = this.minRtt === undefined;
      if (first || rtt < this.minRtt!) this.minRtt = rtt;
      if (first) this.tuneOnFirstRtt();
      for (const resolve of ping.resolve) resolve(rtt);
    }
  }

  private onGoAway(code: number): void {
    if (this.remoteGoAway !== undefined) return;
    this.remoteGoAway = code;
    const error = new GoAwayError(code);
    // Dials still waiting for the ACK backlog would be refused: fail them now.
    for (const channel of this.dialBacklog.drain()) this.abandon(channel, error);
    this.emit('goaway', code);
  }

  // ------------------------------------------------------------------ send path

  private sendSyn(channel: ChannelState): void {
    if (this.caps.acknowledgements) {
      this.unacked++;
      channel.awaitingAck = true;
    }
    channel.pending |= Pending.syn;
    this.announceWindow(channel);
    this.scheduler.scheduleControl(channel);
    this.scheduleFlush();
  }

  /** The application takes an inbound channel: ACK it (with the window announcement, if larger). */
  private acknowledge(channel: ChannelState): void {
    channel.markEstablished();
    if (!this.caps.acknowledgements) return;
    channel.pending |= Pending.ack;
    this.announceWindow(channel);
    this.scheduler.scheduleControl(channel);
    this.scheduleFlush();
  }

  private announceWindow(channel: ChannelState): void {
    if (!this.caps.flowControl) return;
    const now = performance.now();
    if (channel.rx.size > SPEC_INITIAL_WINDOW) channel.pendingIncrement += channel.rx.takeIncrement(now);
    else channel.rx.startEpoch(now);
  }

  private releaseDialBacklog(): void {
    while (this.unacked < this.options.ackBacklog && this.dialBacklog.length > 0) {
      const channel = this.dialBacklog.shift()!;
      if (!channel.live) continue;
      this.sendSyn(channel);
    }
  }

  private grantWindow(channel: ChannelState, now: number): void {
    let increment: number;
    if (this.memory.underPressure) {
      // Past the soft limit, a channel whose reader keeps up still flows, with no more than the initial
      // window outstanding; one that holds data gets nothing more until memory is relieved. Withholding from
      // every channel would let a few stalled readers starve all the others (smux v1's flaw).
      increment = channel.rx.takeIncrementWithin(now, this.options.initialWindow);
      if (increment === 0) {
        if (!channel.withheld) {
          channel.withheld = true;
          this.withheld.push(channel);
        }
        return;
      }
    } else {
      // A channel whose data is discarded gains nothing from a larger window.
      if (!channel.readClosed) this.autoTune(channel, now);
      increment = channel.rx.takeIncrement(now);
    }
    this.queueIncrement(channel, increment);
  }

  /**
   * Auto-tunes a channel's window (growth reserved from the session's memory, an undone growth released);
   * returns the change of size. The minimum RTT, not the last: on a slow link a ping waits behind queued
   * data, and a window sized by that inflated RTT would grow without end (and push window updates apart
   * beyond the keep-alive timeout). Before the first RTT, the opening ping's age stands in as a lower bound.
   */
  private autoTune(channel: ChannelState, now: number): number {
    const ping = this.minRtt === undefined ? this.pingInFlight : undefined;
    const resized = channel.rx.autoTune(now, this.minRtt, this.reserveGrowth, ping && now - ping.sentAt);
    if (resized < 0) this.memory.releaseGrowth(-resized);
    return resized;
  }

  /**
   * Queues a Window Update of `increment` bytes for the channel (nothing for 0). It leaves with the next flush,
   * which waits for the end of the event-loop turn where several channels receive (see `UpdateTurns`).
   */
  private queueIncrement(channel: ChannelState, increment: number): void {
    if (increment <= 0) return;
    channel.pendingIncrement += increment;
    this.scheduler.scheduleControl(channel);
    if (!this.updateTurns.hold(channel.id)) this.scheduleFlush();
  }

  /**
   * The session's first RTT: channels that read before it grew only as far as the opening ping's age (a lower
   * bound on the RTT) allowed, if at all. Grow those whose pace shows the window is the limit now, rather
   * than a round trip later at their next update (one whose growth is still on trial waits for its verdict).
   */
  private tuneOnFirstRtt(): void {
    if (!this.caps.flowControl || this.memory.underPressure) return;
    const now = performance.now();
    for (const channel of this.streams.values()) {
      if (channel.rx.pacedBeforeRtt && !channel.remoteFin && this.autoTune(channel, now) > 0) {
        this.queueIncrement(channel, channel.rx.takeIncrement(now));
      }
    }
  }

  /** Below the soft limit again: resume reading and grant the updates that were withheld. */
  private relieveMemory(): void {
    this.resumeReading();
    if (this.withheld.length === 0) return;
    const withheld = this.withheld;
    this.withheld = [];
    for (const channel of withheld) {
      channel.withheld = false;
      if (channel.live) this.grantIfDue(channel);
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) {
      // Much queued in one synchronous run (a loop dialling thousands of channels): send what is there now,
      // so the peer works on it while the loop goes on, rather than after it.
      if (++this.scheduledSinceFlush >= EARLY_FLUSH_AFTER && !this.writingBatches) {
        this.scheduledSinceFlush = 0;
        this.writeBatches(); // the pending flush still comes, for what is queued after this
      }
      return;
    }
    if (this.writeBlocked || this.transportClosed || this.writeEnded) return;
    this.flushScheduled = true;
    this.scheduledSinceFlush = 0;
    defer(this.flushTask);
  }

  private flush(): void {
    this.flushScheduled = false;
    this.writeBatches();
  }

  /** Writes batches until nothing is queued or the transport asks to wait. */
  private writeBatches(): void {
    this.writingBatches = true;
    try {
      while (!this.writeBlocked && !this.transportClosed && !this.writeEnded && !this.scheduler.idle) {
        const batch = this.batch;
        batch.reset();
        this.scheduler.fill(batch, BATCH_LIMIT);
        if (batch.bytes === 0) break;
        const done = batch.done;
        let accepted: boolean;
        try {
          accepted = this.transport.write(batch.finish(), done.length === 0 ? noop : (error) => {
            if (error) {
              // Fail the session first, so each channel records why before its write fails; and channels see a
              // typed error, never the socket's own (EPIPE, ECONNRESET), which becomes the `cause`.
              this.onTransportError(error);
              const failure = this.error ?? new TransportClosedError(`the transport failed: ${error.message}`, error);
              for (const callback of done) callback(failure);
            } else {
              for (const callback of done) callback(null);
            }
          });
        } catch (error) {
          this.onTransportError(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        if (!accepted) this.writeBlocked = true;
      }
      if (this.endWhenFlushed && !this.writeBlocked && this.scheduler.idle) this.endTransport();
    } finally {
      this.writingBatches = false;
    }
  }

  private sendPing(forUser = false): PendingPing {
    const inFlight = this.pingInFlight;
    if (inFlight !== undefined) {
      // A silent opening ping (keep-alive off) gets a deadline once the application waits on it too.
      if (forUser && inFlight.timer === undefined) {
        inFlight.timer = setTimeout(() => this.onPingTimeout(inFlight), this.options.keepAliveTimeout);
      }
      return inFlight;
    }
    const ping: PendingPing = { value: 0, sentAt: 0, resolve: [], reject: [], timer: undefined };
    if (this.options.keepAliveInterval > 0 || forUser) {
      ping.timer = setTimeout(() => this.onPingTimeout(ping), this.options.keepAliveTimeout);
    }
    this.pingInFlight = ping;
    this.writePing(ping);
    return ping;
  }

  /** Writes `ping` with a fresh value (an answer to an earlier value of it no longer counts). */
  private writePing(ping: PendingPing): void {
    ping.value = this.nextPingValue;
    ping.sentAt = performance.now();
    this.nextPingValue = this.nextPingValue === MAX_ID ? 1 : this.nextPingValue + 1;
    this.scheduler.queueSessionFrame(FrameType.ping, Flag.syn, 0, ping.value);
    this.scheduleFlush();
  }

  /**
   * A ping's deadline passed. The session fails once `keepAliveTimeout` has gone by with no byte from the peer
   * since the ping left: a peer whose bytes keep arriving is alive, just busy (its answer waits behind data), and
   * its deadline moves to one `keepAliveTimeout` after the last byte. A session that stopped reading hears
   * nothing, so it writes a fresh ping and reads until the answer comes (a probe): a frozen or vanished peer is
   * then noticed one `keepAliveTimeout` later, whatever the read state.
   */
  private onPingTimeout(ping: PendingPing): void {
    if (this.pingInFlight !== ping) return;
    const timeout = this.options.keepAliveTimeout;
    if (this.readPaused && !this.probing) {
      this.writePing(ping);
      this.startProbe(0);
      ping.timer = setTimeout(() => this.onPingTimeout(ping), timeout);
      return;
    }
    const quiet = performance.now() - Math.max(this.lastHeard, ping.sentAt);
    if (quiet < timeout) {
      ping.timer = setTimeout(() => this.onPingTimeout(ping), Math.max(1, timeout - quiet));
      return;
    }
    this.fail(new TimeoutError('ERR_MUX_KEEPALIVE_TIMEOUT',
      `the peer did not answer a ping within ${timeout} ms, and sent nothing meanwhile`));
  }

  /**
   * Schedules the next ping: first the RTT probes (see {@link RTT_PROBE_DELAYS}), then one every
   * `keepAliveInterval` (none if keep-alive is off), each once the previous one was answered.
   */
  private armKeepAlive(): void {
    if (this.status === 'closed') return;
    const interval = this.options.keepAliveInterval;
    let delay = interval;
    if (this.rttProbes < RTT_PROBE_DELAYS.length) {
      const probe = RTT_PROBE_DELAYS[this.rttProbes++]!;
      delay = interval > 0 ? Math.min(probe, interval) : probe;
    }
    if (delay <= 0) return;
    this.keepAliveTimer = unref(setTimeout(() => {
      this.keepAliveTimer = undefined;
      if (this.status === 'closed') return;
      this.sendPing().resolve.push(() => this.armKeepAlive());
    }, delay));
  }

  // ------------------------------------------------------------------ transport events

  private onTransportData(chunk: Uint8Array): void {
    if (this.status === 'closed') return;
    this.lastHeard = performance.now();
    try {
      this.decoder.push(chunk);
      if (this.probeBytes > 0 && (this.probeBytes -= chunk.length) <= 0 && this.probing) this.endProbe();
    } catch (error) {
      // A bug of ours or an endpoint's: end the session rather than leave it half-updated.
      this.fail(new MuxError('ERR_MUX_INTERNAL', `internal error: ${(error as Error)?.message ?? error}`,
        { cause: error }), GoAwayCode.internalError);
    }
  }

  private onTransportDrain(): void {
    this.writeBlocked = false;
    this.scheduleFlush();
  }

  private onTransportEnd(): void {
    this.transportEnded = true;
    if (this.status === 'closed') return;
    this.decoder.stop();
    const goAwayError = this.remoteGoAway !== undefined && this.remoteGoAway !== GoAwayCode.normal
      ? new GoAwayError(this.remoteGoAway) : undefined;
    if (this.streams.size === 0) {
      this.endTransport();
      this.finish(goAwayError);
      return;
    }
    this.loseTransport(goAwayError ?? new TransportClosedError('the transport ended with channels still open'));
  }

  private onTransportError(error: Error): void {
    if (this.status === 'closed') return;
    // With no channel open nothing is lost: a peer that resets an idle connection (as hashicorp/yamux's
    // Session.Close can) ends the session like a plain close.
    if (this.streams.size === 0 && this.acceptQueue.length === 0) {
      this.transport.destroy();
      this.finish(undefined);
      return;
    }
    this.loseTransport(new TransportClosedError(`the transport failed: ${error.message}`, error));
  }

  private onTransportClose(): void {
    this.transportClosed = true;
    if (this.lingerTimer !== undefined) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = undefined;
    }
    if (this.status === 'closed') return;
    if (this.streams.size === 0) this.finish(undefined);
    else this.loseTransport(new TransportClosedError('the transport closed with channels still open'));
  }

  /**
   * The transport ended or failed under open channels. After the peer's Go Away code 0, a channel it never
   * acknowledged was never seen by its application (a closing peer refuses every SYN until it has seen the
   * dialler's last one): it fails with `ChannelRefusedError`, safe to retry; if no other channel was open, the
   * session ends cleanly. Anything else fails the session with `error`.
   */
  private loseTransport(error: Error): void {
    if (this.remoteGoAway === GoAwayCode.normal) {
      for (const channel of [...this.streams.values()]) {
        if (isUnaccepted(channel)) {
          this.abandon(channel, new ChannelRefusedError(channel.id,
            `channel ${channel.id} was not accepted: the peer closed (Go Away) before taking it`));
        }
      }
      if (this.streams.size === 0) {
        if (!this.transportClosed) this.transport.destroy();
        this.finish(undefined);
        return;
      }
    }
    this.fail(error);
  }

  // ------------------------------------------------------------------ pausing and probing the transport

  /** Stops reading the transport (memory bound, a channel over its buffer, a full accept queue). */
  private pauseReading(): void {
    if (this.readPaused || this.status === 'closed') return;
    this.readPaused = true;
    this.probeBudget = Math.max(4 * PROBE_CHUNK, this.options.maxSessionBuffered / 4);
    if (!this.probing) this.transport.pause();
    this.armProbeTimer();
  }

  /** Reads again once nothing holds reading back (memory below its soft limit, no channel over, queue not full). */
  private resumeReading(): void {
    if (!this.readPaused || this.overfull > 0 || this.acceptFull || this.memory.underPressure
      || this.status === 'closed') return;
    this.readPaused = false;
    if (this.probeTimer !== undefined) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    const wasProbing = this.probing;
    this.probing = false;
    this.probeBytes = 0;
    if (!wasProbing) this.transport.resume();
  }

  /**
   * Reads while paused, to hear the peer: `bytes` more bytes (multiplex), or until the probe ping's answer (0;
   * yamux: the peer can send no more data than the window credit it already holds).
   */
  private startProbe(bytes: number): void {
    this.probing = true;
    this.probeBytes = bytes;
    this.transport.resume();
  }

  private endProbe(): void {
    this.probing = false;
    this.probeBytes = 0;
    if (!this.readPaused || this.status === 'closed') return;
    this.transport.pause();
    this.armProbeTimer();
  }

  /**
   * The multiplex format has no ping: a paused session reads {@link PROBE_CHUNK} bytes every `keepAliveTimeout`,
   * so a cut transport (its end of file or reset behind the data) is noticed; at most a quarter of
   * `maxSessionBuffered` in one pause, after which it waits for the application. (yamux probes with pings.)
   */
  private armProbeTimer(): void {
    if (this.caps.ping || this.probeTimer !== undefined || this.options.keepAliveInterval === 0) return;
    this.probeTimer = unref(setTimeout(() => {
      this.probeTimer = undefined;
      if (!this.readPaused || this.probing || this.status === 'closed' || this.probeBudget <= 0) return;
      const bytes = Math.min(PROBE_CHUNK, this.probeBudget);
      this.probeBudget -= bytes;
      this.startProbe(bytes);
    }, this.options.keepAliveTimeout));
  }

  // ------------------------------------------------------------------ shutdown

  /**
   * A closing session ends the transport only once the peer has seen its Go Away: a SYN sent before that would
   * otherwise meet a closed connection, and its dialler could not tell that it was never accepted. A ping sent
   * after the Go Away is answered only after it was read; until the answer (or `keepAliveTimeout`, or the
   * close timeout), late SYNs are refused.
   */
  private awaitGoAwaySeen(): void {
    if (!this.caps.goAway || !this.caps.ping || this.transportEnded || this.transportClosed) {
      this.goAwaySeen = true;
      return;
    }
    this.goAwayProbe = this.nextPingValue;
    this.nextPingValue = this.nextPingValue === MAX_ID ? 1 : this.nextPingValue + 1;
    this.scheduler.queueSessionFrame(FrameType.ping, Flag.syn, 0, this.goAwayProbe);
    this.goAwayTimer = unref(setTimeout(() => {
      this.goAwayTimer = undefined;
      this.onGoAwaySeen();
    }, this.options.keepAliveTimeout));
  }

  private onGoAwaySeen(): void {
    if (this.goAwaySeen) return;
    this.goAwaySeen = true;
    if (this.goAwayTimer !== undefined) clearTimeout(this.goAwayTimer);
    this.goAwayTimer = undefined;
    this.checkCloseDone();
  }

  private checkCloseDone(): void {
    if (this.status !== 'closing' || this.streams.size > 0 || this.endWhenFlushed || !this.goAwaySeen) return;
    this.endWhenFlushed = true;
    this.scheduleFlush();
    if (!this.flushScheduled && this.scheduler.idle && !this.writeBlocked) this.endTransport();
  }

  private endTransport(): void {
    this.endWhenFlushed = false;
    if (this.transportClosed) return;
    this.writeEnded = true;
    try {
      this.transport.end();
    } catch {
      // ending a transport that already failed: its close event finishes the session
    }
    this.linger();
    // If the peer already ended its side, nothing more is coming: the session is done.
    if (this.transportEnded && this.status === 'closing') this.finish(undefined);
  }

  private onCloseTimeout(timeout: number): void {
    this.closeTimer = undefined;
    if (this.status !== 'closing') return;
    if (this.streams.size === 0) {
      this.onGoAwaySeen(); // nothing left to wait for but the peer's answer to the Go Away: end now
      return;
    }
    this.fail(new TimeoutError('ERR_MUX_CLOSE_TIMEOUT',
      `close() timed out after ${timeout} ms with ${this.streams.size} channel(s) still open`), GoAwayCode.normal);
  }

  private protocolError(message: string): void {
    this.decoder.stop();
    this.fail(new ProtocolError(message), GoAwayCode.protocolError);
  }

  /**
   * Ends the session abnormally. With `goAwayCode`, tells the peer why (Go Away) before ending the
   * transport; without, destroys the transport at once.
   */
  private fail(error: Error, goAwayCode?: number): void {
    if (this.status === 'closed') return;
    this.status = 'closed';
    this.decoder.stop();
    this.failChannels(error, true);
    this.acceptQueue.drain();
    this.dialBacklog.drain();
    if (!this.transportClosed) {
      if (goAwayCode !== undefined && this.caps.goAway && !this.localGoAway && !this.transportEnded) {
        try {
          const goAway = this.allocate(this.codec.maxEncodedHeader);
          const length = this.codec.encode(goAway, 0, FrameType.goAway, 0, 0, goAwayCode);
          this.transport.write([goAway.subarray(0, length)], noop);
          this.transport.end();
          this.writeEnded = true;
          this.linger();
        } catch {
          this.transport.destroy();
        }
      } else {
        this.transport.destroy();
      }
    }
    this.finish(error);
  }

  /**
   * After ending the transport, waits {@link LINGER_MS} for the peer to end its side, then destroys it (the
   * transport's close event cancels the wait).
   */
  private linger(): void {
    if (this.lingerTimer !== undefined || this.transportClosed) return;
    this.lingerTimer = unref(setTimeout(() => {
      this.lingerTimer = undefined;
      this.transport.destroy();
    }, LINGER_MS));
  }

  /**
   * Fails every channel in the table with `error` (each with its own `TransportClosedError` when undefined) and
   * empties it, without a frame: the session is ending. `clearPending` drops the flags they still owed the peer.
   */
  private failChannels(error: Error | undefined, clearPending: boolean): void {
    for (const channel of this.streams.values()) {
      channel.live = false;
      if (clearPending) channel.pending = 0;
      channel.fail(error ?? new TransportClosedError());
    }
    this.streams.clear();
  }

  /** Marks the session closed, settles everything that waits on it, and reports the end, once. */
  private finish(error: Error | undefined): void {
    if (this.finished) return;
    this.finished = true;
    this.status = 'closed';
    this.error = error;
    this.decoder.stop();
    // Only reached with channels left when the transport closed under them.
    this.failChannels(error, false);
    this.memory.releaseAll();
    for (const channel of this.opening) this.openSettled(channel);
    this.opening = [];
    if (this.openTimer !== undefined) clearTimeout(this.openTimer);
    this.openTimer = undefined;
    if (this.closeTimer !== undefined) clearTimeout(this.closeTimer);
    if (this.keepAliveTimer !== undefined) clearTimeout(this.keepAliveTimer);
    if (this.probeTimer !== undefined) clearTimeout(this.probeTimer);
    if (this.goAwayTimer !== undefined) clearTimeout(this.goAwayTimer);
    this.closeTimer = undefined;
    this.keepAliveTimer = undefined;
    this.probeTimer = undefined;
    this.goAwayTimer = undefined;
    const ping = this.pingInFlight;
    this.pingInFlight = undefined;
    if (ping !== undefined) {
      if (ping.timer !== undefined) clearTimeout(ping.timer);
      const failure = error ?? new SessionClosedError();
      for (const reject of ping.reject) reject(failure);
    }
    this.rejectAcceptWaiters(error ?? new SessionClosedError());
    if (error === undefined) this.resolveClosed();
    else this.rejectClosed(error);
    this.emit('close', error);
  }

  // ------------------------------------------------------------------ helpers

  /**
   * Watches a dialled channel until the peer acknowledges it. One timer serves all of them: it fires at the
   * earliest deadline, fails what is due and re-arms; acknowledged channels drop out of the list lazily.
   */
  private watchOpen(channel: ChannelState, timeoutMs: number): void {
    const deadline = performance.now() + timeoutMs;
    channel.openDeadline = deadline;
    this.opening.push(channel);
    this.openingLive++;
    if (this.openTimer === undefined || deadline < this.openTimerAt) this.armOpenTimer(deadline);
  }

  private armOpenTimer(deadline: number): void {
    if (this.openTimer !== undefined) clearTimeout(this.openTimer);
    this.openTimerAt = deadline;
    this.openTimer = unref(setTimeout(() => this.sweepOpen(), Math.max(0, deadline - performance.now())));
  }

  /** The channel no longer waits for its acknowledgement (it came, or the channel ended): stop watching it. */
  private openSettled(channel: ChannelState): void {
    if (channel.openDeadline !== 0) {
      channel.openDeadline = 0;
      this.openingLive--;
      // Keep the list from filling with settled channels (each would stay reachable until the next sweep).
      if (this.openingLive === 0) {
        this.opening.length = 0;
      } else if (this.opening.length > 64 && this.opening.length > 4 * this.openingLive) {
        this.opening = this.opening.filter((c) => c.openDeadline !== 0);
      }
    }
    const abort = channel.openAbort;
    if (abort !== null) {
      channel.openAbort = null;
      abort.signal.removeEventListener('abort', abort.onAbort);
    }
  }

  private sweepOpen(): void {
    this.openTimer = undefined;
    if (this.status === 'closed') return;
    const now = performance.now();
    const due: ChannelState[] = [];
    const waiting: ChannelState[] = [];
    let next = Number.POSITIVE_INFINITY;
    for (const channel of this.opening) {
      if (channel.openDeadline === 0) continue;
      if (channel.openDeadline <= now) {
        due.push(channel);
      } else {
        waiting.push(channel);
        if (channel.openDeadline < next) next = channel.openDeadline;
      }
    }
    this.opening = waiting;
    for (const channel of due) {
      this.abortOpen(channel, new TimeoutError('ERR_MUX_OPEN_TIMEOUT',
        `the peer did not acknowledge channel ${channel.id} within its open timeout`));
    }
    if (next !== Number.POSITIVE_INFINITY && this.openTimer === undefined) this.armOpenTimer(next);
  }

  /** Gives up opening a channel: it fails with `error` and is reset (the peer may hold it in its backlog). */
  private abortOpen(channel: ChannelState, error: Error): void {
    this.resetChannel(channel, error, true); // its removal settles the open watch
  }

  /** Why a write on a channel that can no longer send fails. */
  private writeRefusal(channel: ChannelState): Error {
    if (channel.state === 'reset') return this.error ?? new ChannelResetError(channel.id, `channel ${channel.id} was reset`);
    if (channel.remoteFin && !this.caps.halfClose) {
      return new MuxError('ERR_MUX_WRITE_AFTER_END',
        `channel ${channel.id} was closed by the peer (the ${this.codec.name} format has no half-close)`);
    }
    return new MuxError('ERR_MUX_WRITE_AFTER_END', `channel ${channel.id} has ended its writing side`);
  }

  private newChannel(id: number, outbound: boolean): ChannelState {
    const channel = new ChannelState(id, outbound, this.options.initialWindow, this.options.maxWindow);
    if (!this.caps.flowControl) channel.sendWindow = Number.POSITIVE_INFINITY;
    return channel;
  }

  private takeQueued(): C | undefined {
    for (;;) {
      const channel = this.acceptQueue.shift();
      if (this.acceptFull && this.acceptQueue.length < this.options.acceptBacklog) {
        this.acceptFull = false;
        this.resumeReading();
      }
      if (channel === undefined) return undefined;
      if (!channel.live) continue;
      this.acknowledge(channel);
      return channel.endpoint as C;
    }
  }

  private acceptRefusal(): Error | undefined {
    if (this.status === 'closed') return this.error ?? new SessionClosedError();
    if (this.status === 'closing') return new SessionClosedError('session is closing: no new channels');
    return undefined;
  }

  private rejectAcceptWaiters(error: Error): void {
    const waiters = this.acceptWaiters.splice(0);
    for (const waiter of waiters) {
      if (waiter.onAbort !== undefined) waiter.signal!.removeEventListener('abort', waiter.onAbort);
      waiter.reject(error);
    }
  }

  private removeChannel(channel: ChannelState): void {
    if (!channel.live) return;
    channel.live = false;
    if (channel.openDeadline !== 0 || channel.openAbort !== null) this.openSettled(channel);
    this.streams.delete(channel.id);
    this.memory.buffered -= channel.delivered - channel.rx.consumed;
    this.memory.releaseGrowth(channel.rx.size - this.options.initialWindow);
    if (channel.overfull) {
      channel.overfull = false;
      this.overfull--;
    }
    if (channel.awaitingAck) {
      channel.awaitingAck = false;
      this.unacked--;
      this.releaseDialBacklog();
    }
    if (!this.memory.underPressure) this.relieveMemory();
    if (this.status === 'closing') this.checkCloseDone();
  }

  /** Drains queued inbound channels to a newly added `channel` listener. */
  protected override onListenerAdded(event: keyof SessionEvents<C>): void {
    if (event !== 'channel' || this.acceptQueue.length === 0) return;
    defer(() => {
      while (this.listenerCount('channel') > 0) {
        const channel = this.takeQueued();
        if (channel === undefined) return;
        this.emit('channel', channel);
      }
    });
  }
}
