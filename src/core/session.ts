/**
 * The session: its public API (dial, accept, ping, close, destroy, events), channel ids, the transport's
 * events and shutdown (Go Away, a graceful close, failure). Everything else lives in parts it makes and owns,
 * one concern each (docs/design.md, "A map of the core"):
 * - `channels.ts`: the table of live channels and the {@link ChannelPort} their endpoints use;
 * - `receive.ts`: the receive dispatch (frames checked and handed to channels);
 * - `writer.ts`: flushing to the transport, batches, backpressure;
 * - `read-gate.ts`: pausing and probing the transport;
 * - `keepalive.ts`: pings, RTT, the keep-alive deadline;
 * - `window-grants.ts`: Window Updates, auto-tuning, memory relief;
 * - `outgoing.ts`: dialled channels until acknowledged (ACK backlog, open timeouts, abort signals);
 * - `incoming.ts`: channels the peer opens until accepted (accept queue, waiters);
 * - `go-away.ts`: a closing session's Go Away handshake (the peer has seen the Go Away, then gone quiet).
 * Its public types are in `session-api.ts`.
 * The parts reach the session only through the small host objects it gives them here. It speaks to the
 * transport through {@link Transport} and to channels through {@link ChannelEndpoint}, so it imports nothing
 * Node-only; adapters (src/node/) give it a Node stream and make channels Node `Duplex`es.
 * @module
 */
import type { ChannelEndpoint, ChannelState } from './channel-state.js';
import { abortable, callOptions, withCallOptions } from './abortable.js';
import { ChannelTable } from './channels.js';
import type { CodecCapabilities, WireCodec } from './codec.js';
import { yamuxCodec } from './codecs/yamux.js';
import { FrameDecoder } from './decoder.js';
import { TurnBudget } from './turn-budget.js';
import { defer } from './defer.js';
import type { DirectWriteRoute } from './direct-write.js';
import type { UpdateTurns } from './update-turns.js';
import { Emitter } from './emitter.js';
import {
  brokenWrite,
  ChannelRefusedError,
  GoAwayCode,
  GoAwayError,
  isError,
  MuxError,
  ProtocolError,
  shown,
  SessionClosedError,
  StreamLimitError,
  TimeoutError,
  TransportClosedError,
} from './errors.js';
import { FrameType } from './frame.js';
import { SessionMemory } from './flow.js';
import { Incoming } from './incoming.js';
import { KeepAlive } from './keepalive.js';
import { type ChannelStats, type LogRecordMaker, type SessionStats, Telemetry, channelStats } from './observe.js';
import {
  LOG_CLOSE_TIMEOUT,
  LOG_GOAWAY_RECEIVED,
  LOG_GOAWAY_SENT,
  LOG_KEEPALIVE_TIMEOUT,
  LOG_PROTOCOL_ERROR,
  LOG_REFUSED_IN,
  LOG_SESSION_CLOSE,
  LOG_SESSION_OPEN,
} from './log-codes.js';
import { type ResolvedOptions, type SessionOptions, checkNumberOption, resolveOptions } from './options.js';
import { Outgoing } from './outgoing.js';
import { ReadGate } from './read-gate.js';
import { Receiver } from './receive.js';
import { type SchedulerHooks, WriteScheduler } from './scheduler.js';
import { afterPendingReads, noop, unref } from './timers.js';
import type { Transport, TransportEvents } from './transport.js';
import { WindowGrants } from './window-grants.js';
import { FrameWriter } from './writer.js';
import { GoAwayHandshake } from './go-away.js';
import type {
  Role,
  SessionEvents,
  SessionStatus,
  EndpointFactory,
  AcceptOptions,
  DialOptions,
  CloseOptions,
  PingOptions,
} from './session-api.js';

export type {
  Role,
  SessionEvents,
  SessionStatus,
  EndpointFactory,
  AcceptOptions,
  DialOptions,
  CloseOptions,
  PingOptions,
} from './session-api.js';

const MAX_ID = 0xffff_ffff;
/** After ending the transport, how long to wait for the peer to end its side before destroying it. */
const LINGER_MS = 2000;

/** The options each call takes (any other name is a `TypeError`: see `callOptions`). */
const DIAL_OPTIONS: readonly string[] = ['signal', 'openTimeout'];
const SIGNAL_ONLY: readonly string[] = ['signal'];
const CLOSE_OPTIONS: readonly string[] = ['timeout', 'signal'];

function defaultAllocate(size: number): Uint8Array {
  return new Uint8Array(size);
}

/**
 * Parts a session's adapter passes in, each needed only by some sessions, so that a browser bundle that does
 * not import one leaves it out. The Node adapters and `LightSession` pass all four ({@link FULL_PARTS}).
 */
export interface SessionParts {
  /** The codec of the original multiplex format: needed only with `protocol: 'multiplex'`. */
  multiplexCodec?: WireCodec | undefined;
  /** Turns the session's reports into records for the `logger` option: needed only with a logger. */
  logRecords?: LogRecordMaker | undefined;
  /** Lets large writes skip the queue when nothing else waits (direct-write.ts). */
  directWrites?: DirectWriteRoute | undefined;
  /**
   * Holds Window Updates to the end of an event-loop turn where several channels receive (`UpdateTurns`,
   * update-turns.ts). A browser has no `setImmediate` to hold with, so a page's session goes without.
   */
  updateTurns?: typeof UpdateTurns | undefined;
  /**
   * Each Data frame's payload handed on as a chunk of its own, never joined with others of the same read
   * (libp2p's streams carry messages: its muxer tests and protocols read a chunk for each message sent).
   */
  framesAsChunks?: boolean | undefined;
  /**
   * How long a closing session waits, after the peer answered the ping that followed its Go Away, for the
   * peer to send no more SYNs, at least (ms; twice the RTT when longer). Default 50 (`GO_AWAY_QUIET_MS`): a
   * peer that answers pings out of band (hashicorp/yamux) may still be writing a SYN then. 0: no wait, the
   * session ends once the answer was read. The libp2p muxer passes 0: libp2p reuses a connection whose
   * muxer is closing until the close is done, and every stream opened there meanwhile fails.
   */
  goAwayQuietMs?: number | undefined;
  /**
   * @internal The id of this side's first dial, for tests of what happens when the ids run out (odd for a
   * client, even for a server). By default the codec's first id.
   */
  firstChannelId?: number | undefined;
}

/**
 * The codec `options` speak, and a check that the parts they need were given (the multiplex codec for its
 * protocol, the log records for a logger): `TypeError` otherwise. `connectWebSocket` checks before it connects.
 */
export function codecFor(options: ResolvedOptions, parts: SessionParts): WireCodec {
  const codec = options.protocol === 'multiplex' ? parts.multiplexCodec : yamuxCodec;
  if (codec === undefined)
    throw new TypeError(`muxwire: protocol 'multiplex' needs the multiplex codec (muxwire/web: option multiplexCodec)`);
  if (options.logger !== null && parts.logRecords === undefined)
    throw new TypeError(`muxwire: option logger needs logRecords (muxwire/web: option logRecords)`);
  return codec;
}

/** Why a ping cannot go once this side has ended its transport (a closing session waiting for the peer's end). */
const noPingAfterEnd = (): SessionClosedError =>
  new SessionClosedError('session is closing: its transport was ended, no ping can leave');

/**
 * Turns of the event loop a deadline's verdict waits at most for what the read time slice holds (see
 * `#afterReads`): a peer that keeps the session reading can put a verdict off by no more than this.
 */
const MAX_READ_ROUNDS = 64;

/**
 * A multiplexed session over one transport. `C` is the channel type the adapter hands to the application.
 * Create one with `multiplexedClient` / `multiplexedServer` (Node) rather than directly.
 */
export class MuxSession<C extends ChannelEndpoint> extends Emitter<SessionEvents<C>> {
  /** The options in force, defaults applied (frozen: they are read as the session was made). */
  declare readonly options: Readonly<ResolvedOptions>;
  /** `client` (dials odd ids) or `server` (dials even ids). */
  declare readonly role: Role;
  /**
   * Settles when the session has ended: resolves on a clean close (`close()`, or the peer's orderly end),
   * rejects with the error otherwise, `destroy()` without an error included (`SessionClosedError`).
   */
  declare readonly closed: Promise<void>;

  /** The wire format and what it can express. */
  readonly #codec: WireCodec;
  readonly #caps: CodecCapabilities;
  readonly #transport: Transport;
  readonly #decoder: FrameDecoder;
  /** This session's share of each turn of the event loop for reading (see `TurnBudget`). */
  readonly #turn: TurnBudget;
  /** The transport ended or failed: what it still hands on is decoded at once, whatever the turn's share. */
  #lastReads = false;
  /**
   * The transport's end, failure or close reported from inside the decoding of what it handed on before (a
   * transport that delivers at once, from a listener): taken up, in order, once that input is decoded.
   */
  readonly #lateEvents: (() => void)[] = [];
  #takingLateEvents = false;
  /**
   * Bytes the transport handed on from inside this session's own write to it (a transport that delivers at once,
   * whose peer answered in the same call) wait, held by the decoder, for a microtask, and its end, failure or
   * close after them. (Decoded at once, they ran the application's listeners inside a Node channel's `_writev`,
   * and Node drops a write made there.)
   */
  #heldInWrite = false;
  readonly #scheduler: WriteScheduler;
  readonly #memory: SessionMemory;
  readonly #allocate: (size: number) => Uint8Array;
  readonly #writer: FrameWriter;
  readonly #gate: ReadGate;
  readonly #keepAlive: KeepAlive;
  readonly #grants: WindowGrants;
  readonly #outgoing: Outgoing;
  readonly #incoming: Incoming<C>;
  /** The live channels, and the port their endpoints use. */
  readonly #streams: ChannelTable<C, MuxSession<C>>;
  readonly #receiver: Receiver<C, MuxSession<C>>;
  #nextId: number;
  #status: SessionStatus = 'open';
  #localGoAway = false;
  #remoteGoAway: number | undefined;
  #error: Error | undefined;
  #resolveClosed!: () => void;
  #rejectClosed!: (error: Error) => void;
  #closingPromise: Promise<void> | undefined;
  #finished = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the close timer fires (`performance.now()` time). */
  #closeDeadline = 0;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * The transport's connection is not up yet (`Transport.isConnecting()`): keep-alive starts when it is, and this
   * timer bounds the wait by `openTimeout`.
   */
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  /** A write with no application write in it failed: the session fails if the transport has not said so by then. */
  #writeFailureTimer: ReturnType<typeof setTimeout> | undefined;
  #transportEnded = false;
  /** After this side's Go Away: waits until the peer has seen it (`goAway.seen`) before the transport ends. */
  readonly #goAway: GoAwayHandshake;
  /** The counters of `stats()` and the `logger` option, shared with the parts that count. */
  readonly #telemetry: Telemetry;
  /** A `channelOpen` or `channelClose` listener was added once: only then are channel snapshots made. */
  #watchChannels = false;

  /**
   * Starts a session over `transport`. `createEndpoint` makes each channel's endpoint (the adapter's channel
   * class); `parts` are the optional parts an adapter passes in (see {@link SessionParts}). A `WebSession`
   * passes its options as `parts`: the two it may hold have the same names.
   */
  constructor(
    transport: Transport,
    role: Role,
    options: SessionOptions | undefined,
    createEndpoint: EndpointFactory<C>,
    parts: SessionParts = {},
  ) {
    super();
    if (role !== 'client' && role !== 'server') throw new TypeError(`muxwire: role must be 'client' or 'server'`);
    this.options = Object.freeze(resolveOptions(options));
    this.role = role;
    const codec = codecFor(this.options, parts);
    this.#codec = codec;
    this.#caps = this.#codec.capabilities;
    this.#nextId = parts.firstChannelId ?? this.#codec.firstId(role);
    this.#transport = transport;
    const logger = this.options.logger;
    const records = parts.logRecords;
    const telemetry = new Telemetry(logger === null ? null : records!(logger, this, role));
    this.#telemetry = telemetry;
    // The scheduler's callback reaches the channel table, made below (the table needs the scheduler).
    const hooks: SchedulerHooks = {
      onFlagsSent: (channel, flags) => this.#streams.onFlagsSent(channel, flags),
      onPingSent: (value) => this.#keepAlive.onPingSent(value),
      onWindowStall: (channel) => telemetry.onWindowStall(channel),
      // Found while a batch is being filled: the reset (which changes the scheduler's queues) comes after it.
      onBrokenWrite: (channel) => defer(() => this.#streams.reset(channel, brokenWrite(channel.id), true)),
    };
    this.#scheduler = new WriteScheduler(Math.min(this.options.maxFrameSize, this.#codec.maxFragment), hooks);
    this.#memory = new SessionMemory(this.options.maxSessionBuffered, this.options.memoryBudget);
    this.#allocate = transport.allocate?.bind(transport) ?? defaultAllocate;
    const isClosed = (): boolean => this.#status === 'closed';
    this.#writer = new FrameWriter(
      transport,
      this.#scheduler,
      this.#codec,
      this.#allocate,
      (error, now) => {
        if (now) return this.#onWriteFailed(error);
        this.#awaitTransportReport(error);
        return undefined;
      },
      () => this.#endTransport(),
      telemetry,
      (error) => this.#internalError(error),
    );
    this.#gate = new ReadGate(
      transport,
      this.options,
      this.#caps.ping ? () => this.#keepAlive.probe() : null,
      this.#memory,
      isClosed,
      () => {
        let credit = 0; // (none without windows: the multiplex format's probes are counted in bytes)
        if (this.#caps.flowControl) for (const channel of this.#streams.values()) credit += channel.rx.credit;
        return credit;
      },
    );
    this.#keepAlive = new KeepAlive(
      this.options,
      this.#scheduler,
      this.#writer,
      this.#gate,
      // Once this side ended its transport no ping can leave, so none may be sent or time out.
      () => this.#status === 'closed' || this.#writer.ended,
      (error) => {
        telemetry.log(LOG_KEEPALIVE_TIMEOUT, undefined, error);
        this.#fail(error);
      },
      () => this.#grants.tuneOnFirstRtt(this.#streams.values()),
      this.#afterReads,
    );
    this.#goAway = new GoAwayHandshake(
      this.#keepAlive,
      this.#scheduler,
      this.options.keepAliveTimeout,
      this.#afterReads,
      () => this.#checkCloseDone(),
      parts.goAwayQuietMs,
    );
    // A format without windows or half-close brings its own rules for those (the multiplex codec).
    const rules = codec.rules?.(this.options, this.#memory, this.#gate, this.#scheduler, this.#writer, () =>
      this.#grants.relieveMemory(),
    );
    this.#grants = new WindowGrants(
      this.options,
      this.#caps,
      this.#memory,
      this.#scheduler,
      this.#writer,
      this.#gate,
      this.#keepAlive,
      isClosed,
      rules,
      parts.updateTurns,
    );
    this.#outgoing = new Outgoing(
      this.options,
      this.#caps,
      this.#scheduler,
      this.#writer,
      this.#grants,
      isClosed,
      (channel, error) => this.#streams.reset(channel, error, true), // its removal settles the watch
      this.#afterReads,
    );
    this.#incoming = new Incoming<C>(
      this.options,
      this.#caps,
      this.#scheduler,
      this.#writer,
      this.#grants,
      this.#gate,
      this,
      () => this.#notOpenError() ?? this.#goneAwayError(),
      (channel) => this.#streams.leaveIfClosed(channel),
    );
    this.#streams = new ChannelTable<C, MuxSession<C>>(
      this,
      this.options,
      this.#codec,
      this.#memory,
      this.#scheduler,
      this.#writer,
      this.#grants,
      this.#outgoing,
      createEndpoint,
      () => this.#error,
      (channel) => {
        if (this.#watchChannels && this.listenerCount('channelOpen') > 0)
          this.emit('channelOpen', channelStats(channel));
      },
      (channel, error) => {
        // Its snapshot is taken first: the accept queue lets go of a channel that waited there (its endpoint).
        const snapshot = this.#watchChannels ? this.#closeSnapshot(channel, error) : undefined;
        this.#incoming.left(channel);
        if (snapshot !== undefined) this.emit('channelClose', snapshot, error);
        if (this.#status === 'closing') this.#checkCloseDone();
      },
      telemetry,
      parts.directWrites?.(this.#writer, this.#scheduler, codec, this.#allocate),
      rules,
    );
    this.#streams.onHeldClosed = () => {
      if (this.#status === 'closing') this.#checkCloseDone();
    };
    // The decoder hands frames to the receive dispatch; none of its callbacks is the session's API.
    this.#receiver = new Receiver<C, MuxSession<C>>(
      this.#streams,
      this.#codec,
      role === 'client',
      this.options,
      this.#memory,
      this.#allocate,
      this.#scheduler,
      this.#writer,
      this.#gate,
      this.#grants,
      this.#outgoing,
      this.#incoming,
      {
        protocolError: (message, channel) => this.#protocolError(message, channel),
        acceptsChannels: () => this.#status === 'open' && !this.#localGoAway,
        remoteGoAway: () => this.#remoteGoAway,
        onPing: (flags, value) => this.#onPing(flags, value),
        onGoAway: (code) => this.#onGoAway(code),
        onRefused: () => this.#goAway.onLateSyn(),
        turnSpent: () => this.#turnSpent(),
      },
      telemetry,
      rules,
      parts.framesAsChunks !== true,
    );
    this.#decoder = new FrameDecoder(this.#receiver, this.#codec);
    this.#turn = new TurnBudget(this.options.readTimeSlice, () => this.#readHeld());
    this.closed = new Promise<void>((resolve, reject) => {
      this.#resolveClosed = resolve;
      this.#rejectClosed = reject;
    });
    this.closed.catch(noop); // whoever awaits `closed` sees the error; nobody else is bothered by it
    const events: TransportEvents = {
      data: (chunk) => this.#onTransportData(chunk),
      drain: () => this.#writer.onDrain(),
      end: () => this.#afterDecoding(() => this.#onTransportEnd()),
      error: (error, failsIdle) => this.#afterDecoding(() => this.#onTransportError(error, failsIdle)),
      close: () => this.#afterDecoding(() => this.#onTransportClose()),
      open: () => this.#onTransportOpen(),
    };
    telemetry.log(LOG_SESSION_OPEN);
    transport.start(events);
    if (transport.isConnecting?.() === true) this.#awaitConnection();
    // An opening ping measures the round-trip time that window auto-tuning needs; keep-alive follows.
    else if (this.#status === 'open' && this.#caps.ping) this.#keepAlive.start();
  }

  // ------------------------------------------------------------------ public API

  /**
   * `open` until `close()` starts (`closing`, then `closed`) or the session ends at once (`closed`: `destroy()`,
   * a failure).
   */
  get state(): SessionStatus {
    return this.#status;
  }

  /**
   * The code of the Go Away the peer sent (0: normal), or `undefined` while the peer takes new channels. Once
   * set, `dial()` throws a `GoAwayError` though `state` may still be `open` (this side's channels go on): a
   * pool hands out a session for new channels only while this is `undefined`.
   */
  get peerGoAwayCode(): number | undefined {
    return this.#remoteGoAway;
  }

  /**
   * Channels currently open: dialled, or opened by the peer (accepted or still waiting to be), and not yet fully
   * closed or reset.
   */
  get channelCount(): number {
    return this.#streams.size;
  }

  /** The last measured round-trip time in milliseconds, or undefined before the first ping answer. */
  get rtt(): number | undefined {
    return this.#keepAlive.lastRtt;
  }

  /** Bytes received and not yet read by the application, across all channels. */
  get bufferedBytes(): number {
    return this.#memory.buffered;
  }

  /** The error the session ended with, if it ended abnormally. */
  get closeError(): Error | undefined {
    return this.#error;
  }

  /**
   * A snapshot of the session's counters since it started: bytes and frames each way, channels opened,
   * resets and refusals each way, window stalls, and the current figures (open channels, unread bytes, RTT).
   * A new object each call; counting costs nothing more when nobody calls it.
   */
  stats(): SessionStats {
    // The telemetry's own fields are its counters (its logger is ES-private): the spread copies just those.
    return {
      state: this.#status,
      // eslint-disable-next-line @typescript-eslint/no-misused-spread -- a plain copy of the counters is meant
      ...this.#telemetry,
      channelsOpen: this.#streams.size,
      inboundOpen: this.#streams.inboundOpen,
      outboundOpen: this.#streams.outboundOpen,
      bufferedBytes: this.#memory.buffered,
      rtt: this.#keepAlive.lastRtt,
    };
  }

  /** @internal The names of `dial()`'s options: a session whose channels take more adds them. */
  protected get dialOptionNames(): readonly string[] {
    return DIAL_OPTIONS;
  }

  /**
   * Opens a channel and returns it at once: it can be written to before the peer acknowledges it (the
   * first data frame carries the SYN). Throws `StreamLimitError` at `maxStreams` or `maxOutboundStreams` and
   * once this side's channel ids have run out, `GoAwayError` after the peer's Go Away, `SessionClosedError`
   * once the session is closing or closed cleanly, and the session's error once it failed. The dial that
   * takes the last id starts a graceful close with no deadline: the peer gets Go Away, open channels finish
   * however long they take (a later `close()` sets a deadline), and `closed` settles, so that the application
   * connects again. An option it does not take (`dial({ timeout })`) is a `TypeError`.
   */
  dial(given?: DialOptions): C {
    const options = callOptions(given, this.dialOptionNames, 'dial');
    const { signal } = options;
    const openTimeout =
      options.openTimeout === undefined
        ? this.options.openTimeout
        : checkNumberOption('openTimeout', options.openTimeout);
    if (signal?.aborted) throw signal.reason;
    if (this.#nextId > MAX_ID && this.#status !== 'closed') {
      throw new StreamLimitError('channel ids are exhausted for this session (it is closing): connect again');
    }
    const closed = this.#notOpenError();
    if (closed !== undefined) throw closed;
    if (this.#remoteGoAway !== undefined) throw new GoAwayError(this.#remoteGoAway);
    const streams = this.#streams;
    const limits = this.options;
    const limit =
      streams.size >= limits.maxStreams
        ? 'maxStreams'
        : streams.outboundOpen >= limits.maxOutboundStreams
          ? 'maxOutboundStreams'
          : undefined;
    if (limit !== undefined) throw new StreamLimitError(`${limit} (${limits[limit]}) channels are open`);
    // The id is taken before the channel is entered: a 'channelOpen' listener may dial too.
    const id = this.#nextId;
    this.#nextId += 2;
    const channel = streams.add(id, true);
    // That listener may have destroyed the session, failing the channel with it.
    if (!channel.live) throw this.#notOpenError() ?? new SessionClosedError();
    this.#outgoing.open(channel, openTimeout, signal);
    // That was the last id: go away gracefully, so that the application moves to a new session.
    // No deadline: the channels still open may run as long as they need; a later close() sets one.
    if (this.#nextId > MAX_ID) void this.#beginClose(undefined, false);
    return channel.endpoint as C;
  }

  /**
   * Waits for the next channel the peer opens. Rejects with `SessionClosedError` once the session closes or
   * starts closing, or with the session's error. (The peer's Go Away does not end accepting: a peer may still
   * open channels after its own Go Away, as hashicorp/yamux can.)
   */
  accept(options?: AcceptOptions): Promise<C> {
    return withCallOptions(options, SIGNAL_ONLY, 'accept', ({ signal }) => this.#incoming.accept(signal));
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
   * calls made meanwhile share its answer. If `keepAliveTimeout` passes with no answer and nothing else from the
   * peer either (keep-alive on or off: a silent peer is taken for gone), the session fails with `TimeoutError`
   * (`ERR_MUX_KEEPALIVE_TIMEOUT`). A peer whose bytes keep arriving is alive, and its answer may wait behind its
   * data, so the call waits as long as it keeps sending: give a `signal` to bound the wait. An abort of `signal`
   * rejects this call with its reason; the ping goes on, with its deadline.
   */
  ping(options?: PingOptions): Promise<number> {
    return withCallOptions(options, SIGNAL_ONLY, 'ping', ({ signal }) => this.#ping(signal));
  }

  #ping(signal: AbortSignal | undefined): Promise<number> {
    if (this.#status === 'closed') return Promise.reject(this.#error ?? new SessionClosedError());
    if (this.#writer.ended) return Promise.reject(noPingAfterEnd());
    if (!this.#caps.ping) {
      return Promise.reject(new MuxError('ERR_MUX_UNSUPPORTED', `the ${this.#codec.name} format has no ping`));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return this.#keepAlive.ping(signal);
  }

  /**
   * Closes gracefully: sends Go Away (the peer opens no new channels), refuses channels not yet accepted,
   * lets open channels finish both directions, then ends the transport. Resolves once the session is closed,
   * at the timeout too: there the transport is dropped, channels still open fail, and the session ends, with
   * `TimeoutError` (`ERR_MUX_CLOSE_TIMEOUT`), reported on `closed` (which rejects) and the `close` event.
   * Called again while closing, its `timeout` replaces the deadline if it ends sooner. An abort of `signal`
   * ends the wait at once: the session is destroyed with its reason, and this call rejects with it.
   */
  close(options?: CloseOptions): Promise<void> {
    return withCallOptions(options, CLOSE_OPTIONS, 'close', (checked) => this.#close(checked));
  }

  #close(options: CloseOptions): Promise<void> {
    // Misuse rejects, as every call that returns a promise, and changes nothing (the session stays open).
    if (options.timeout !== undefined) {
      try {
        checkNumberOption('closeTimeout', options.timeout);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    // Once the session has reported its end (a failed one tells its channels first: see `failAll`).
    if (this.#status === 'closed') return new Promise((resolve) => this.#streams.whenAllTold(resolve));
    let closing = this.#closingPromise;
    if (closing === undefined) closing = this.#beginClose(options.timeout, true);
    // Already closing: a deadline sooner than the one set (or the first, after the ids ran out) replaces it.
    else if (this.#closeTimer === undefined || options.timeout !== undefined) this.#armCloseTimer(options.timeout);
    const { signal } = options;
    // An abort after the session ended (from a 'close' listener, say) changes nothing: the close stands.
    return abortable(closing, signal, () => {
      if (this.#status === 'closed') return false;
      const reason: unknown = signal!.reason;
      // Kept as the session's error (typed Error): a reason that is not one is said by one.
      this.destroy(isError(reason) ? reason : new SessionClosedError(`close() was aborted: ${shown(reason)}`));
      return true;
    });
  }

  /**
   * Stops taking channels from the peer, without closing: sends Go Away (code 0), refuses the channels waiting
   * to be accepted and those the peer opens from now on, and ends `accept()` (it rejects with
   * `SessionClosedError`, so `for await` over the session ends). This side may still dial, and open channels
   * carry on without a deadline; `close()` or `destroy()` ends the session later. Does nothing once closing.
   * Throws `MuxError` (`ERR_MUX_UNSUPPORTED`) on a format without Go Away (the multiplex codec), in any state:
   * its peer could not tell a refused channel from one that ended empty.
   */
  goAway(): void {
    if (!this.#caps.goAway) {
      throw new MuxError('ERR_MUX_UNSUPPORTED', `the ${this.#codec.name} format has no Go Away`);
    }
    if (this.#status !== 'open' || this.#localGoAway) return;
    this.#stopAccepting();
    this.#writer.schedule();
  }

  /**
   * Go Away to the peer (once), and no more channels from it: those queued are refused, and `accept()` ends with
   * `error` (by default, the error of `goAway()`).
   */
  #stopAccepting(error?: Error): void {
    if (!this.#localGoAway) {
      this.#localGoAway = true;
      if (this.#caps.goAway) {
        this.#scheduler.queueSessionFrame(FrameType.goAway, 0, 0, GoAwayCode.normal);
        this.#telemetry.log(LOG_GOAWAY_SENT, undefined, undefined, GoAwayCode.normal);
      }
    }
    for (const channel of this.#incoming.drainQueue()) this.#streams.reset(channel, undefined, false, true);
    this.#incoming.close(error ?? this.#goneAwayError()!);
  }

  /** Starts closing; with `deadline`, the close timer too (`given` ms, or the closeTimeout option). */
  #beginClose(given: number | undefined, deadline: boolean): Promise<void> {
    // Checked before anything changes, so that a bad timeout leaves the session open.
    if (given !== undefined) checkNumberOption('closeTimeout', given);
    this.#status = 'closing';
    this.#closingPromise = this.closed.then(noop, noop);
    this.#stopAccepting(new SessionClosedError());
    // Channels the application let go of after closing them both ways here (a Node channel's `destroy()` after
    // `end()`, `closeRead()` and `end()`) whose FIN went out wait only for the peer's, which nobody here waits
    // for: reset now, as they would be at their linger's end, rather than hold the close. (One whose FIN still
    // waits behind its data is still sending; on a format whose close ends both ways, `readCut`, the close
    // waits for the peer's answer, which its rules keep the channel for.)
    for (const channel of [...this.#streams.values()]) {
      if (channel.readClosed && channel.finSent && !channel.remoteFin && !channel.readCut && channel.endpoint.destroyed)
        this.#streams.reset(channel, undefined);
    }
    this.#goAway.start(this.#caps.goAway && this.#caps.ping && !this.#transportEnded && !this.#writer.closed);
    if (deadline) this.#armCloseTimer(given);
    this.#writer.schedule();
    this.#checkCloseDone();
    return this.#closingPromise;
  }

  /** Sets the close deadline `given` ms from now (or closeTimeout's), unless one set before comes sooner. */
  #armCloseTimer(given: number | undefined): void {
    // Checked as the closeTimeout option is: a timer cannot wait longer (Node fires a longer one after 1 ms).
    const timeout = given === undefined ? this.options.closeTimeout : checkNumberOption('closeTimeout', given);
    const deadline = performance.now() + timeout;
    if (this.#closeTimer !== undefined) {
      if (deadline >= this.#closeDeadline) return;
      clearTimeout(this.#closeTimer);
    }
    this.#closeDeadline = deadline;
    this.#closeTimer = setTimeout(() => this.#onCloseTimeout(timeout), timeout);
  }

  /**
   * Ends the session at once: every channel fails (its pending reads and writes with `error`, or with
   * `SessionClosedError`), pending `accept()` and `ping()` calls reject, and the transport is destroyed (no
   * frame is sent: the peer learns from the transport's end). `closed` rejects with `error`, or with
   * `SessionClosedError` ("session was destroyed") when none is given; a second call does nothing.
   */
  destroy(error?: Error): void {
    // Kept as the session's error (typed Error): a value that is not one is said by one.
    this.#fail(
      error === undefined
        ? new SessionClosedError('session was destroyed')
        : isError(error)
          ? error
          : new SessionClosedError(`session was destroyed: ${shown(error)}`),
    );
  }

  #onPing(flags: number, value: number): void {
    if (!this.#goAway.onPing(flags, value)) this.#keepAlive.onPing(flags, value);
  }

  #onGoAway(code: number): void {
    // A second Go Away matters only when it brings an error code after a normal one (a peer that failed while
    // closing, as this session's own does): the session ends with that error then.
    const before = this.#remoteGoAway;
    if (before !== undefined) {
      if (before === GoAwayCode.normal && code !== GoAwayCode.normal) {
        this.#remoteGoAway = code;
        this.#telemetry.log(LOG_GOAWAY_RECEIVED, undefined, undefined, code);
      }
      return;
    }
    this.#remoteGoAway = code;
    const error = new GoAwayError(code);
    this.#telemetry.log(LOG_GOAWAY_RECEIVED, undefined, undefined, code);
    // Dials still waiting for the ACK backlog would be refused: fail them now. Their SYN never left, so the
    // peer's application never saw them: after a normal Go Away that is a refusal (safe to retry).
    for (const channel of this.#outgoing.drainBacklog()) {
      if (code !== GoAwayCode.normal) {
        this.#streams.abandon(channel, error);
        continue;
      }
      this.#refusedAtGoAway(channel, `channel ${channel.id} was not sent: the peer is closing (Go Away)`);
    }
    this.emit('goaway', code);
  }

  // ------------------------------------------------------------------ transport events

  #onTransportData(chunk: Uint8Array): void {
    if (this.#status === 'closed') return;
    const now = performance.now();
    this.#keepAlive.lastHeard = now;
    this.#telemetry.bytesIn += chunk.length;
    const decoder = this.#decoder;
    if (decoder.decoding || this.#writer.writing) {
      // From inside a hand-on of ours (it follows the input being decoded) or our own write (it waits for it,
      // however much it is: none of it is decoded inside the write).
      if (decoder.decoding) {
        decoder.push(chunk);
      } else {
        if (!decoder.holding) this.#holdInWrite();
        decoder.holdChunk(chunk);
      }
      this.#gate.onRead(chunk.length);
      return;
    }
    try {
      this.#turn.start(now);
      decoder.push(chunk);
      this.#gate.onRead(chunk.length);
      this.#afterReading();
    } catch (error) {
      this.#internalError(error);
    }
    if (this.#lateEvents.length > 0) this.#takeLateEvents();
  }

  /**
   * Runs `event` now, or, reported from inside the decoding of earlier input (or after input held from inside
   * a write), once that is done.
   */
  #afterDecoding(event: () => void): void {
    this.#lateEvents.push(event);
    if (this.#decoder.decoding || this.#heldInWrite) return;
    // From inside our write with input held (for the read time slice): decoded, and the event taken, after it.
    if (this.#writer.writing && this.#decoder.holdsInput) this.#holdInWrite();
    else this.#takeLateEvents();
  }

  /** Takes up what is held, and the transport's events after it, from a microtask once this write is over. */
  #holdInWrite(): void {
    this.#heldInWrite = true;
    defer(() => {
      this.#heldInWrite = false;
      if (this.#decoder.holding)
        this.#readHeld(); // (and the events after it)
      else this.#takeLateEvents();
    });
  }

  /** Runs the transport's events that waited for decoding, and any they set off, in order. */
  #takeLateEvents(): void {
    if (this.#takingLateEvents) return;
    this.#takingLateEvents = true;
    try {
      for (let event = this.#lateEvents.shift(); event !== undefined; event = this.#lateEvents.shift()) event();
    } finally {
      this.#takingLateEvents = false;
    }
  }

  /** This turn's share of the event loop is spent (never once the transport ended: then all is read at once). */
  #turnSpent(): boolean {
    return !this.#lastReads && this.#turn.spent();
  }

  /**
   * Once this turn's share of the event loop is spent (see `TurnBudget`), the transport waits and the decoder
   * holds the rest for a later turn.
   */
  #afterReading(): void {
    const decoder = this.#decoder;
    if (!decoder.holding && !decoder.isStopped && this.#turnSpent()) decoder.hold();
    if (decoder.holding && this.#status !== 'closed') {
      this.#gate.holdForTurn(decoder.overHalf);
      this.#turn.goOnLater();
    }
  }

  /** A later turn: the decoder goes on with what it held. */
  #readHeld(): void {
    if (this.#status === 'closed') return;
    // Bytes the peer sent are still being taken up: it is heard (keep-alive judges silence from here).
    this.#keepAlive.lastHeard = performance.now();
    try {
      this.#decoder.resume();
      if (this.#decoder.holding) this.#turn.goOnLater();
      else this.#gate.releaseTurn();
    } catch (error) {
      this.#internalError(error);
    }
    if (this.#lateEvents.length > 0) this.#takeLateEvents();
  }

  /**
   * The transport ended or failed: what the decoder held is decoded first, in one go (nothing may stay), then
   * the channel table hears that the transport is gone (`transportGone`: the format's rules may count channels
   * closed). Returns whether the session is still open or closing.
   */
  #readAllHeld(): boolean {
    // What the transport still hands on (a libp2p connection gives what it held for a paused reader when
    // resumed) is decoded at once too: its end follows.
    this.#lastReads = true;
    if (this.#decoder.holdsInput) {
      try {
        this.#decoder.resume(false);
        this.#gate.releaseTurn();
      } catch (error) {
        this.#internalError(error);
      }
    }
    if (this.#status === 'closed') return false;
    this.#streams.transportGone();
    return true;
  }

  /**
   * Runs `task` once the bytes already received have been read: after the pending reads (`afterPendingReads`),
   * and, while the read time slice holds some for later turns, once those are decoded and the transport was read
   * again (a pass of pending reads after the hold), for at most {@link MAX_READ_ROUNDS} turns. A deadline's verdict
   * waits so: the answer it waits for may have come.
   */
  readonly #afterReads = (task: () => void): void => {
    const round = (rounds: number, held: boolean): void =>
      afterPendingReads(() => {
        const holding = this.#decoder.holdsInput;
        if ((holding || held) && rounds < MAX_READ_ROUNDS && this.#status !== 'closed') round(rounds + 1, holding);
        else task();
      });
    round(0, false);
  };

  /** A bug of ours or an endpoint's: end the session rather than leave it half-updated. */
  #internalError(error: unknown): void {
    if (this.#status === 'closed') return;
    this.#fail(
      new MuxError('ERR_MUX_INTERNAL', `internal error: ${(error as Error)?.message ?? error}`, { cause: error }),
      GoAwayCode.internalError,
    );
  }

  #onTransportEnd(): void {
    this.#transportEnded = true;
    if (this.#status === 'closed') return;
    if (!this.#readAllHeld()) return;
    this.#decoder.stop();
    const goAwayError = this.#peerReportedError();
    if (this.#streams.stillOpen === 0) {
      this.#endTransport();
      this.#finish(goAwayError);
      return;
    }
    this.#loseTransport(goAwayError ?? this.#lostUnderChannels('ended'));
  }

  #onTransportError(error: Error, failsIdle?: boolean): void {
    if (this.#status === 'closed') return;
    if (!this.#readAllHeld()) return;
    // With no channel open nothing is lost: a peer that resets an idle connection (as hashicorp/yamux's
    // Session.Close can) ends the session like a plain close. A connection that never opened, or a TLS alert,
    // is a failure.
    if (!failsIdle && this.#streams.stillOpen === 0 && this.#incoming.queued === 0) {
      this.#transport.destroy();
      // Unless the transport was given what is not this protocol at all (a WebSocket's text message, a stream's
      // string: a `ProtocolError`): that is said even with nothing open.
      this.#finish(error instanceof ProtocolError ? error : this.#peerReportedError());
      return;
    }
    this.#loseTransport(this.#peerReportedError() ?? this.#failedUnderChannels(error));
  }

  /**
   * The transport's connection is still coming up (a socket handed over while it connects, a TLS handshake
   * not done): keep-alive waits for it, since its first ping cannot leave before (a connection slower than
   * `keepAliveTimeout` to come up was taken for a silent peer); the wait is bounded by `openTimeout`.
   */
  #awaitConnection(): void {
    const timeout = this.options.openTimeout;
    this.#keepAlive.connecting = true;
    if (timeout === 0 || this.#status === 'closed') return;
    this.#connectTimer = unref(
      setTimeout(() => {
        this.#connectTimer = undefined;
        this.#fail(new TransportClosedError(`the connection did not come up within ${timeout} ms (openTimeout)`));
      }, timeout),
    );
  }

  /**
   * A write with no application write in it failed (a SYN, Window Updates, pings). The transport should say so
   * itself, after what it still holds (a WebSocket closed by its peer hands on its last messages, then the
   * close, whose code is the session's to report; one that never opened says so just after failing its queued
   * writes): the session waits `keepAliveTimeout` for that, then fails with this error, so that a transport
   * that reports failure only through `write`'s callback (all the `Transport` contract promises) is heard too.
   */
  #awaitTransportReport(error: Error): void {
    if (this.#writeFailureTimer !== undefined || this.#status === 'closed') return;
    this.#writeFailureTimer = unref(
      setTimeout(() => {
        this.#writeFailureTimer = undefined;
        if (this.#status !== 'closed') this.#onWriteFailed(error);
      }, this.options.keepAliveTimeout),
    );
  }

  /**
   * A transport write failed: the session fails, and the error it fails with is returned (for the writes of
   * that batch). With input being decoded or held, the failure waits for it, as the transport's events do;
   * else it fails the session at once, while that write's channel is still open.
   */
  #onWriteFailed(error: Error): Error | undefined {
    if (this.#decoder.decoding || this.#decoder.holdsInput) {
      this.#afterDecoding(() => this.#onTransportError(error));
      return this.#error ?? this.#peerReportedError();
    }
    this.#onTransportError(error);
    return this.#error;
  }

  #onTransportOpen(): void {
    const keepAlive = this.#keepAlive;
    if (!keepAlive.connecting) return; // (once: a TLS renegotiation says 'secure' again)
    keepAlive.connecting = false;
    keepAlive.openedAt = performance.now();
    if (this.#connectTimer !== undefined) {
      clearTimeout(this.#connectTimer);
      this.#connectTimer = undefined;
    }
    if (this.#status !== 'closed' && this.#caps.ping) keepAlive.start();
  }

  #onTransportClose(): void {
    this.#writer.closed = true;
    if (this.#lingerTimer !== undefined) {
      clearTimeout(this.#lingerTimer);
      this.#lingerTimer = undefined;
    }
    if (this.#status === 'closed') return;
    if (!this.#readAllHeld()) return;
    if (this.#streams.stillOpen === 0) this.#finish(this.#peerReportedError());
    else this.#loseTransport(this.#peerReportedError() ?? this.#lostUnderChannels('closed'));
  }

  /**
   * The error of a transport that ended or closed under open channels. After the peer's Go Away, an end (its
   * FIN) most likely means that its graceful close ran out of time, which is no crash and is said so; a close
   * without one may be this side's own (a socket destroyed here), so it only says that a Go Away came first.
   */
  #lostUnderChannels(how: 'ended' | 'closed'): TransportClosedError {
    const goAway = this.#remoteGoAway !== undefined;
    return new TransportClosedError(
      how === 'ended' && goAway
        ? 'the peer ended the connection after its Go Away, with channels still open (its close timed out, or it was destroyed)'
        : `the transport ${how} with channels still open${goAway ? ", after the peer's Go Away" : ''}`,
    );
  }

  /**
   * The error of a transport that failed under open channels, after the peer's Go Away said so (the failure may be
   * this side's, or the peer's close that timed out: a connection dropped with data unread is reset).
   */
  #failedUnderChannels(error: Error): TransportClosedError {
    const failed = TransportClosedError.failed(error);
    if (this.#remoteGoAway === undefined) return failed;
    return new TransportClosedError(`${failed.message} (after the peer's Go Away, with channels still open)`, error);
  }

  /**
   * The peer's Go Away with an error code (it saw a protocol error, or failed itself), as the error that the
   * session ends with when the transport goes next, even with no channel open; undefined for none or code 0.
   */
  #peerReportedError(): GoAwayError | undefined {
    const code = this.#remoteGoAway;
    return code !== undefined && code !== GoAwayCode.normal ? new GoAwayError(code) : undefined;
  }

  /**
   * The transport ended or failed under open channels. After the peer's Go Away code 0, a channel it never
   * acknowledged was never seen by its application (a closing peer refuses every SYN until it has seen the
   * dialler's last one): it fails with `ChannelRefusedError`, safe to retry; if no other channel was open, the
   * session ends cleanly. Anything else fails the session with `error`. (A known limit: hashicorp/yamux takes a
   * stream whose FIN it read before its application accepted it without acknowledging it, so a channel
   * half-closed before its ACK that such a peer's application took and left unanswered is reported refused.
   * Calling those unknown instead failed graceful closes where the peer never read the channel's SYN.)
   */
  #loseTransport(error: Error): void {
    if (this.#remoteGoAway === GoAwayCode.normal) {
      for (const channel of [...this.#streams.values()]) {
        if (channel.unaccepted) {
          this.#refusedAtGoAway(
            channel,
            `channel ${channel.id} was not accepted: the peer closed (Go Away) before taking it`,
          );
        }
      }
      if (this.#streams.stillOpen === 0) {
        if (!this.#writer.closed) this.#transport.destroy();
        this.#finish(undefined);
        return;
      }
    }
    this.#fail(error);
  }

  /**
   * Fails a dialled channel the peer's application never saw, after its Go Away code 0: a refusal like one the
   * peer sends (safe to retry), counted and logged as one.
   */
  #refusedAtGoAway(channel: ChannelState, message: string): void {
    const refused = new ChannelRefusedError(channel.id, message);
    this.#telemetry.refusalsIn++;
    this.#telemetry.log(LOG_REFUSED_IN, channel.id, refused);
    this.#streams.abandon(channel, refused);
  }

  // ------------------------------------------------------------------ shutdown

  #checkCloseDone(): void {
    if (this.#status !== 'closing' || this.#streams.stillOpen > 0 || this.#writer.endPending || !this.#goAway.seen)
      return;
    this.#writer.endAfterFlush();
  }

  #endTransport(): void {
    this.#writer.endPending = false;
    if (this.#writer.closed) return;
    this.#writer.ended = true;
    this.#keepAlive.stop(noPingAfterEnd());
    try {
      this.#transport.end();
    } catch {
      // ending a transport that already failed: its close event finishes the session
    }
    this.#linger();
    // If the peer already ended its side, nothing more is coming: the session is done.
    if (this.#transportEnded && this.#status === 'closing') this.#finish(this.#peerReportedError());
  }

  #onCloseTimeout(timeout: number, confirmed = false): void {
    // A close() between the timer and its confirmed pass may have armed another: this verdict replaces it.
    if (confirmed) clearTimeout(this.#closeTimer);
    this.#closeTimer = undefined;
    if (this.#status !== 'closing') return;
    // The peer's last frames may be there, unread, after a busy event loop: judged once they were read.
    if (!confirmed) {
      this.#afterReads(() => this.#onCloseTimeout(timeout, true));
      return;
    }
    const open = this.#streams.stillOpen;
    if (open === 0) {
      this.#goAway.settle(); // nothing left to wait for but the peer's answer to the Go Away: end now
      // The writer flushes before it ends the transport (a microtask). Not ended by the next task, the last
      // frames wait for a peer that stopped reading: the transport is dropped, as with channels still open.
      // Ended, everything went: the session ends now, at its deadline, without waiting for the peer's end (the
      // linger still gives the peer that long to end its side before the transport is destroyed).
      this.#closeTimer = setTimeout(() => {
        this.#closeTimer = undefined;
        if (this.#status !== 'closing') return;
        if (this.#writer.ended) this.#finish(this.#peerReportedError());
        else this.#failClose(timeout, 0);
      }, 0);
      return;
    }
    this.#failClose(timeout, open);
  }

  #failClose(timeout: number, open: number): void {
    const error = new TimeoutError(
      'ERR_MUX_CLOSE_TIMEOUT',
      open > 0
        ? `close() timed out after ${timeout} ms with ${open} channel(s) still open`
        : `close() timed out after ${timeout} ms: the peer did not take the last frames`,
    );
    this.#telemetry.log(LOG_CLOSE_TIMEOUT, undefined, error);
    this.#fail(error, GoAwayCode.normal);
  }

  #protocolError(message: string, channel?: number): void {
    this.#decoder.stop();
    const error = new ProtocolError(message);
    this.#telemetry.log(LOG_PROTOCOL_ERROR, channel, error);
    this.#fail(error, GoAwayCode.protocolError);
  }

  /**
   * Ends the session abnormally. With `goAwayCode`, tells the peer why (Go Away) before ending the
   * transport; without, destroys the transport at once.
   */
  #fail(error: Error, goAwayCode?: number): void {
    if (this.#status === 'closed') return;
    this.#incoming.handOverReserved();
    this.#status = 'closed';
    // Known before any channel hears of it: a listener of the first ones may write to the others.
    this.#error = error;
    this.#decoder.stop();
    this.#streams.failAll(error, true);
    this.#incoming.drainQueue();
    this.#outgoing.drainBacklog();
    if (!this.#writer.closed) {
      // A normal Go Away already sent (goAway(), close()) is not repeated; an error code is news to the peer.
      // Nor is anything written once this side ended the transport (its linger waits for the peer's end).
      const sent = this.#localGoAway && goAwayCode === GoAwayCode.normal;
      if (goAwayCode !== undefined && this.#caps.goAway && !sent && !this.#transportEnded && !this.#writer.ended) {
        try {
          const goAway = this.#allocate(this.#codec.maxEncodedHeader);
          const length = this.#codec.encode(goAway, 0, FrameType.goAway, 0, 0, goAwayCode);
          const telemetry = this.#telemetry;
          telemetry.bytesOut += length;
          telemetry.framesOut++;
          telemetry.log(LOG_GOAWAY_SENT, undefined, error, goAwayCode);
          this.#transport.write([goAway.subarray(0, length)], noop);
          this.#transport.end();
          this.#writer.ended = true;
          this.#linger();
          // Read on to the peer's end, which answers the Go Away (what comes is dropped: the session is closed):
          // a transport left paused (a pause, a held turn) would not see it, and only the linger would end it.
          this.#transport.resume();
        } catch {
          this.#transport.destroy();
        }
      } else {
        this.#transport.destroy();
      }
    }
    this.#finish(error);
  }

  /**
   * After ending the transport, waits {@link LINGER_MS} for the peer to end its side, then destroys it (the
   * transport's close event cancels the wait).
   */
  #linger(): void {
    if (this.#lingerTimer !== undefined || this.#writer.closed) return;
    this.#lingerTimer = unref(
      setTimeout(() => {
        this.#lingerTimer = undefined;
        this.#transport.destroy();
      }, LINGER_MS),
    );
  }

  /** Marks the session closed, settles everything that waits on it, and reports the end, once. */
  #finish(error: Error | undefined): void {
    if (this.#finished) return;
    this.#incoming.handOverReserved();
    this.#finished = true;
    this.#status = 'closed';
    this.#error = error;
    this.#decoder.stop();
    // Only reached with channels left when the transport closed under them.
    this.#streams.failAll(error, false);
    this.#memory.releaseAll();
    // What still links channels to the session lets go of them: an application may keep an ended session.
    this.#scheduler.clear();
    this.#grants.stop();
    this.#receiver.stop();
    this.#outgoing.stop();
    clearTimeout(this.#closeTimer);
    this.#closeTimer = undefined;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    clearTimeout(this.#writeFailureTimer);
    this.#writeFailureTimer = undefined;
    this.#goAway.stop();
    this.#gate.stop();
    this.#keepAlive.stop(error ?? new SessionClosedError());
    this.#incoming.rejectWaiters(error ?? new SessionClosedError());
    // Reported once its channels heard of it: a session that had many tells them in turns (ending-channels.ts).
    this.#streams.whenAllTold(() => {
      if (error === undefined) this.#resolveClosed();
      else this.#rejectClosed(error);
      this.#telemetry.log(LOG_SESSION_CLOSE, undefined, error);
      this.emit('close', error);
    });
  }

  // ------------------------------------------------------------------ helpers

  /** After `goAway()`: why `accept()` has nothing more to wait for. */
  #goneAwayError(): Error | undefined {
    return this.#localGoAway ? new SessionClosedError('this side went away (goAway()): no new channels') : undefined;
  }

  /** Why no channel can open now, in either direction (closing or closed), or undefined while open. */
  #notOpenError(): Error | undefined {
    if (this.#status === 'closed') return this.#error ?? new SessionClosedError();
    if (this.#status === 'closing') return new SessionClosedError('session is closing: no new channels');
    return undefined;
  }

  /** A channel that left the session: its final figures, for the `channelClose` listeners (none: undefined). */
  #closeSnapshot(channel: ChannelState, error: Error | undefined): ChannelStats | undefined {
    if (this.listenerCount('channelClose') === 0) return undefined;
    const stats = channelStats(channel);
    if (error !== undefined) stats.state = 'reset'; // removed just before it is failed
    return stats;
  }

  /** Drains queued inbound channels to a newly added `channel` listener. */
  protected override onListenerAdded(event: keyof SessionEvents<C>): void {
    if (event === 'channelOpen' || event === 'channelClose') this.#watchChannels = true;
    if (event !== 'channel' || this.#incoming.queued === 0) return;
    defer(() => this.#incoming.drainToListeners());
  }
}
