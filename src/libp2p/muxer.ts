/**
 * libp2p's `StreamMuxer` on a muxwire session: the session (the core's `MuxSession`) speaks yamux on the
 * connection libp2p gives it; this class keeps what libp2p asks of a muxer: the list of open streams, the
 * 'stream' event (holding early streams until a listener comes), the inbound and outbound stream limits,
 * and libp2p's close and abort.
 * @module
 */
import {
  type AbortOptions,
  type CreateStreamOptions,
  type Logger,
  type MessageStream,
  MuxerClosedError,
  type StreamMuxer,
  type StreamMuxerEvents,
  type StreamMuxerStatus,
  type StreamOptions,
  TimeoutError,
  TooManyOutboundProtocolStreamsError,
  TypedEventEmitter,
} from '@libp2p/interface';
import { MaxEarlyStreamsError } from '@libp2p/utils';
import { abortable } from '../core/abortable.js';
import type { ChannelState } from '../core/channel-state.js';
import { defer } from '../core/defer.js';
import { directWrites } from '../core/direct-write.js';
import { UpdateTurns } from '../core/update-turns.js';
import { logRecords } from '../core/observe.js';
import { MuxSession } from '../core/session.js';
import { toLibp2pError } from './errors.js';
import { type ResolvedMuxwireInit, signalOf } from './options.js';
import { MuxwireStream, type MuxwireStreamInit, type StreamPort } from './stream.js';
import { messageStreamTransport } from './transport.js';

/** The multistream-select protocol id: muxwire is yamux on the wire. */
export const YAMUX_PROTOCOL_ID = '/yamux/1.0.0';

/** The stream options given to `createStream()`, if any (most calls give none: their streams share one init). */
function streamOptionsOf(options: CreateStreamOptions): StreamOptions | undefined {
  let picked: StreamOptions | undefined;
  if (options.maxReadBufferLength !== undefined) (picked ??= {}).maxReadBufferLength = options.maxReadBufferLength;
  if (options.maxWriteBufferLength !== undefined) (picked ??= {}).maxWriteBufferLength = options.maxWriteBufferLength;
  if (options.inactivityTimeout !== undefined) (picked ??= {}).inactivityTimeout = options.inactivityTimeout;
  return picked;
}

/**
 * libp2p's `StreamMuxer` for one connection, made by the factory that `muxwire()` returns: libp2p calls
 * `createStream()` and listens for `'stream'`; `session` is the muxwire session underneath.
 */
export class MuxwireMuxer
  extends TypedEventEmitter<StreamMuxerEvents<MuxwireStream>>
  implements StreamMuxer<MuxwireStream>
{
  readonly protocol = YAMUX_PROTOCOL_ID;
  status: StreamMuxerStatus = 'open';
  /** The muxwire session under the streams (its `rtt`, `bufferedBytes`, `channelCount`...). */
  readonly session: MuxSession<MuxwireStream>;
  /** The open streams, oldest first (a set: a stream leaves it in constant time, whatever their number). */
  readonly #open = new Set<MuxwireStream>();
  /** How the next stream is made: set by `createStream()` around its `dial()`, inbound streams otherwise. */
  #nextInit: MuxwireStreamInit;
  readonly #inboundInit: MuxwireStreamInit;
  readonly #outboundInit: MuxwireStreamInit;
  readonly #init: ResolvedMuxwireInit;
  readonly #log: Logger;
  /** Inbound streams that arrived before any 'stream' listener. */
  #early: MuxwireStream[] = [];
  #inbound = 0;
  #outbound = 0;
  /** close() or abort() was called here: streams the peer opens from now on are refused. */
  #ending = false;
  #closing: Promise<void> | undefined;

  /**
   * @internal Made by the factory that `muxwire()` returns, for each connection libp2p upgrades. Tests may
   * give `firstChannelId` (the session's first outbound id) to reach the end of the id space.
   */
  constructor(connection: MessageStream, init: ResolvedMuxwireInit, testing: { firstChannelId?: number } = {}) {
    super();
    this.#init = init;
    this.#log = connection.log.newScope('muxwire');
    this.#inboundInit = this.#streamInit('inbound', {});
    this.#outboundInit = this.#streamInit('outbound', {});
    this.#nextInit = this.#inboundInit;
    // libp2p's yamux convention: the side that dialled the connection is the yamux client (odd ids).
    const role = connection.direction === 'outbound' ? 'client' : 'server';
    this.session = new MuxSession(
      messageStreamTransport(connection),
      role,
      init.session,
      (state, port) => this.#createStream(state, port),
      // Every part but the multiplex codec: libp2p's muxer speaks yamux only. Each Data frame is a message, as
      // in libp2p's yamux (libp2p's compliance suite reads a message for each one sent).
      {
        logRecords,
        directWrites,
        updateTurns: UpdateTurns,
        framesAsChunks: true,
        // libp2p hands out a connection whose muxer is closing until the close is done (its status is the
        // connection's), and each stream opened there meanwhile fails: the close ends once the peer answered
        // the ping after the Go Away (libp2p's yamux does not wait even for that), not 50 ms later.
        goAwayQuietMs: 0,
        firstChannelId: testing.firstChannelId,
      },
    );
    this.session.on('channel', (stream) => this.#onInbound(stream));
    // After the peer's Go Away no stream may be opened; libp2p checks the muxer's status before trying.
    this.session.on('goaway', () => {
      if (this.status === 'open') this.status = 'closing';
    });
    this.session.on('close', (error) => {
      if (error !== undefined) this.#log('session ended: %s', error.message);
      this.status = 'closed';
    });
  }

  /**
   * Opens a stream. Throws libp2p's `MuxerClosedError` once the muxer is closing or closed (or the peer
   * sent Go Away), and `TooManyOutboundProtocolStreamsError` at `maxOutboundStreams`.
   */
  async createStream(options: CreateStreamOptions = {}): Promise<MuxwireStream> {
    const signal = signalOf(options);
    if (this.status !== 'open' || this.#ending) throw new MuxerClosedError(`the muxer is ${this.status}`);
    signal?.throwIfAborted();
    if (this.#outbound >= this.#init.maxOutboundStreams) {
      throw new TooManyOutboundProtocolStreamsError(
        `maxOutboundStreams (${this.#init.maxOutboundStreams}) streams are open`,
      );
    }
    const streamOptions = streamOptionsOf(options);
    this.#nextInit = streamOptions === undefined ? this.#outboundInit : this.#streamInit('outbound', streamOptions);
    let stream: MuxwireStream;
    try {
      stream = this.session.dial();
    } catch (error) {
      throw toLibp2pError(error as Error);
    } finally {
      this.#nextInit = this.#inboundInit;
    }
    this.#track(stream);
    // That stream took the session's last id: the session is closing, and libp2p must open no more here.
    if (this.session.state !== 'open' && this.status === 'open') this.status = 'closing';
    return stream;
  }

  /** The open streams, oldest first. */
  get streams(): MuxwireStream[] {
    return [...this.#open];
  }

  /**
   * Closes gracefully, as libp2p's yamux does: every stream ends its writing (FIN after all its data), then
   * Go Away, then the connection is closed. Streams the peer had not finished writing on are reset then (they
   * end here without an error; the peer's side sees the reset). Streams whose data did not leave within the
   * session's `closeTimeout` are aborted with libp2p's `TimeoutError`. Rejects with the reason if `signal`
   * aborts first, after aborting the muxer.
   */
  close(options?: AbortOptions): Promise<void> {
    // A signal that is no AbortSignal is refused before closing begins (it would fail the close half-way).
    let signal: AbortSignal | undefined;
    try {
      signal = signalOf(options);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#closing !== undefined) return this.#closing;
    if (this.status === 'closed') return Promise.resolve();
    this.#ending = true;
    this.status = 'closing';
    this.#closing = this.#close(signal).catch((error: unknown) => {
      this.abort(error as Error);
      throw error;
    });
    return this.#closing;
  }

  async #close(signal: AbortSignal | undefined): Promise<void> {
    // The signal is raced once here, not handed to every stream (a listener each on one signal). A stream
    // still closing when the signal aborts settles when abort() resets it. Each stream is waited on through
    // writeFinished(), not close()'s promise: close() returns at once for a stream that the application is
    // already closing (its data still leaving), and its rejection is the application's to handle.
    const flushed = Promise.all(
      this.streams.map((stream) => {
        stream.close().catch(() => {});
        return stream.writeFinished();
      }),
    );
    const closeTimeout = this.#init.session.closeTimeout;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, closeTimeout);
    });
    try {
      await abortable(Promise.race([flushed, timeout]), signal);
    } finally {
      clearTimeout(timer);
    }
    for (const stream of [...this.streams]) {
      if (!stream.writeFlushed) {
        // Its data did not leave within closeTimeout: that loss is this side's, and an error.
        stream.abort(new TimeoutError(`the stream's data was not sent within closeTimeout (${closeTimeout} ms)`));
        continue;
      }
      // Reset on the wire (the session can then end); here the stream ends as libp2p's do when the
      // connection closes: without an error, after what a paused reader holds (kept for its resume()).
      stream.keepHeld();
      stream.onTransportClosed();
      stream.sendReset(new MuxerClosedError('the muxer closed before the peer finished this stream'));
    }
    // The resets leave in a batch of their own, before the Go Away: libp2p's yamux ends every stream without
    // an error on a Go Away, and would then drop the resets of streams it had already ended (unless the
    // connection is blocked, a batch goes out within the current turn).
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
    // The session's own end (Go Away, the peer's answer) has a closeTimeout of its own: on a slow link the last
    // data may leave just before the streams' deadline, and what was left of it would cut a graceful end short.
    await abortable(this.session.close(), signal);
    this.status = 'closed';
  }

  /** Ends at once: every stream is reset and fails with `error`; the connection is aborted. */
  abort(error: Error): void {
    if (this.status === 'closed') return;
    this.#ending = true;
    this.status = 'closing';
    // (A reason that is no Error, from JavaScript or close()'s signal: each stream's abort() and the session say
    // it in an Error of their own.)
    for (const stream of [...this.streams]) stream.abort(error);
    for (const stream of this.#early) stream.abort(error);
    this.#early = [];
    this.session.destroy(error);
    this.status = 'closed';
  }

  /** Sends a ping and resolves to the round-trip time in milliseconds. */
  async ping(options?: AbortOptions): Promise<number> {
    try {
      return await this.session.ping({ signal: options?.signal ?? undefined });
    } catch (error) {
      throw toLibp2pError(error as Error);
    }
  }

  /** Emits streams that arrived early once a 'stream' listener is added (from a microtask, as libp2p does). */
  override addEventListener(
    ...args: Parameters<TypedEventEmitter<StreamMuxerEvents<MuxwireStream>>['addEventListener']>
  ): void {
    super.addEventListener(...args);
    if (args[0] === 'stream' && this.#early.length > 0) {
      defer(() => {
        const early = this.#early;
        this.#early = [];
        for (const stream of early) this.safeDispatchEvent('stream', { detail: stream });
      });
    }
  }

  #onInbound(stream: MuxwireStream): void {
    if (this.#ending || this.#inbound >= this.#init.maxInboundStreams) {
      this.#log('refusing inbound stream %d (%s)', stream.streamId, this.#ending ? 'closing' : 'maxInboundStreams');
      stream.release(undefined);
      return;
    }
    this.#track(stream);
    if (this.listenerCount('stream') > 0) {
      this.safeDispatchEvent('stream', { detail: stream });
      return;
    }
    this.#early.push(stream);
    if (this.#early.length > this.#init.maxEarlyStreams) {
      this.abort(
        new MaxEarlyStreamsError(
          `more than maxEarlyStreams (${this.#init.maxEarlyStreams}) streams arrived before a 'stream' listener`,
        ),
      );
    }
  }

  /** The session's endpoint factory: each channel's endpoint is its libp2p stream, framing each write apart. */
  #createStream(state: ChannelState, port: StreamPort): MuxwireStream {
    // One libp2p send(), one message at the peer (libp2p's compliance suite checks it).
    state.frameEachWrite = true;
    return new MuxwireStream(state, port, this.#nextInit);
  }

  #streamInit(direction: 'inbound' | 'outbound', options: StreamOptions): MuxwireStreamInit {
    return {
      ...this.#init.streamOptions,
      ...options,
      direction,
      log: this.#log,
      onClose: direction === 'inbound' ? this.#onInboundClose : this.#onOutboundClose,
    };
  }

  readonly #onInboundClose = (stream: MuxwireStream): void => {
    if (this.#open.delete(stream)) this.#inbound--;
  };

  readonly #onOutboundClose = (stream: MuxwireStream): void => {
    if (this.#open.delete(stream)) this.#outbound--;
  };

  #track(stream: MuxwireStream): void {
    this.#open.add(stream);
    if (stream.direction === 'inbound') this.#inbound++;
    else this.#outbound++;
  }
}
