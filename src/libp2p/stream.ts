/**
 * A libp2p `Stream` that is itself a muxwire channel's endpoint. libp2p's `AbstractStream` (`@libp2p/utils`)
 * keeps the stream's libp2p-side state (statuses, read and write buffers, 'message'/'drain'/'close' events,
 * the async iterator), exactly as every libp2p muxer's streams do; the session under it does the yamux part:
 * windows, fragments, half-close, resets. The stream talks to the session through the core's channel port,
 * with no channel object between the two: a `LightChannel` there would be a second set of events, buffers
 * and per-stream listeners, for nothing libp2p uses (measured in `docs/libp2p.md`, "Speed").
 * @module
 */
import {
  type AbortOptions,
  type Logger,
  type MessageStreamDirection,
  StreamBufferError,
  StreamMessageEvent,
  type StreamOptions,
  StreamResetError,
  StreamStateError,
} from '@libp2p/interface';
import { AbstractStream, type SendResult, StreamClosedError } from '@libp2p/utils';
import type { ChannelPort } from '../core/channel-port.js';
import type { ChannelEndpoint, ChannelState } from '../core/channel-state.js';
import { abortable } from '../core/abortable.js';
import { asUint8Array, byteLengthOf, isUint8Array, lostBytes } from '../core/bytes.js';
import { defer } from '../core/defer.js';
import { ChannelResetError, brokenWrite, isError } from '../core/errors.js';
import { Fifo } from '../core/fifo.js';
import { CHUNK_COST } from '../core/flow.js';
import type { MuxSession } from '../core/session.js';
import { abortedWith, toLibp2pError } from './errors.js';
import { signalOf } from './options.js';

/** libp2p's byte list (from the `uint8arraylist` version that `@libp2p/utils` itself uses). */
type ByteList = Parameters<AbstractStream['sendData']>[0];
/** What `send()` takes. */
type SendData = Parameters<AbstractStream['send']>[0];

/** The port a stream's session hands it. */
export type StreamPort = ChannelPort<MuxSession<MuxwireStream>>;

/** What a {@link MuxwireStream} is made with. */
export interface MuxwireStreamInit extends StreamOptions {
  direction: MessageStreamDirection;
  log: Logger;
  /** Called once, as the stream dispatches its `'close'` event (before the listeners): the muxer's books. */
  onClose?: (stream: MuxwireStream) => void;
}

/**
 * A close that runs to its end whatever `signal` does, its caller released (with the signal's reason) when the
 * signal aborts first; the caller so released does not hear how the close ended.
 */
function released(closing: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return closing;
  closing.catch(() => {});
  return abortable(closing, signal);
}

/**
 * What `send()` was given, copied, a list's parts joined; null when a part lost its bytes (its buffer transferred
 * or shrunk). libp2p's `send()` has no moment at which the caller learns that its array was taken (libp2p's yamux
 * frames the bytes into the connection within the call), so an application may refill one array after each
 * `true`, while muxwire's session frames the bytes later (at the end of the turn, when the peer's window opens)
 * and the connection may hold them longer still. And a list goes as one write, so the peer gets one message, as
 * from yamux.
 */
function copyOfSend(data: SendData): Uint8Array | null {
  // A Uint8Array, of any realm (iterated, one of another realm would give numbers), or a Uint8ArrayList. Each
  // part's bytes as the built-ins see them, whatever its realm or own properties claim.
  if (isUint8Array(data)) {
    const bytes = asUint8Array(data)!;
    return bytes.length === 0 && lostBytes(data) ? null : bytes.slice();
  }
  let length = 0;
  for (const part of data) {
    const partLength = byteLengthOf(part) ?? 0;
    if (partLength === 0 && lostBytes(part)) return null;
    length += partLength;
  }
  const copy = new Uint8Array(length);
  let at = 0;
  for (const part of data) {
    const bytes = asUint8Array(part) ?? new Uint8Array(0);
    copy.set(bytes.subarray(0, length - at), at);
    at += bytes.length;
    if (at >= length) break;
  }
  return copy;
}

export class MuxwireStream extends AbstractStream implements ChannelEndpoint {
  /** The yamux stream id (odd when the client opened it, even when the server did). */
  readonly streamId: number;
  readonly #state: ChannelState;
  readonly #port: StreamPort;
  #onClose: ((stream: MuxwireStream) => void) | undefined;
  /**
   * Bytes handed to the session and not yet taken by the connection, and {@link CHUNK_COST} for each write among
   * them (its own objects, beyond its bytes).
   */
  #writing = 0;
  /** The wake-ups of the stream's `for await` loops waiting for data (see `[Symbol.asyncIterator]`). */
  #readers: Set<() => void> | undefined;
  /** `sendData` said "wait": 'drain' is due once `#writing` is under the high-water mark. */
  #needDrain = false;
  /** `sendCloseWrite` was called: FIN follows the queued data. */
  #writeEnded = false;
  /**
   * Settles `sendCloseWrite` once the queued data reached the connection; rejects it if the stream is reset or
   * fails first (that data is lost, and `close()` must say so).
   */
  #finished: { resolve: () => void; reject: (error: Error) => void } | null = null;
  /** The FIN is queued and every byte written before it reached the connection. */
  #flushed = false;
  /** While libp2p reports the peer's reset: muxwire's error, the cause of libp2p's. */
  #resetCause: Error | undefined;
  /** The peer's FIN was passed on before its reset: everything it sent arrived (for the iterator's end). */
  #finBeforeReset = false;
  /** Waiters of {@link writeFinished} (the muxer's `close()`). */
  #onFlushed: (() => void)[] | null = null;
  /** Why the stream was let go of (reset by either side, or the session failed), as libp2p's error. */
  #failure: Error | undefined;
  /**
   * Data that arrived while the stream was paused, kept here rather than in `AbstractStream`'s read buffer: it
   * is the session's "unread" data, so its window is not refilled and the peer stops. It counts against
   * `maxReadBufferLength` with the read buffer, as it would in the read buffer of libp2p's yamux.
   */
  #paused: Fifo<Uint8Array> | null = null;
  /** Bytes in `#paused`: what the session counts as delivered and not read. */
  #held = 0;
  /**
   * Bytes this stream's async iterators were handed and their readers have not taken yet (each iterator queues
   * every message): unread too, so a reader that iterates slowly holds the peer at the window, as a paused one.
   */
  #iterating = 0;
  /** `sendResume` is handing `#paused` on (a listener's `resume()` meanwhile leaves the work to it). */
  #handingOn = false;
  /** The peer's FIN came while paused data waited: it takes effect once that data is handed on. */
  #endAfterPaused = false;
  /** This side let go of the channel (reset) or the session failed it. */
  #destroyed = false;

  /** @internal Streams are made by the muxer's session (`createStream()`, or when the peer opens one). */
  constructor(state: ChannelState, port: StreamPort, init: MuxwireStreamInit) {
    super({ ...init, id: String(state.id) });
    this.streamId = state.id;
    this.#state = state;
    this.#port = port;
    this.#onClose = init.onClose;
  }

  // ------------------------------------------------------------------ libp2p's side

  /**
   * As `AbstractStream`'s `send()`, with a shortcut: while nothing waits in the stream's write buffer and the
   * session takes more, the data goes straight to the session (not through the write buffer and its copy of
   * the list), and `'idle'`, which the buffer's emptying fires, goes to its listeners as it would. A
   * `maxMessageSize` set on the stream keeps the buffer's path, which cuts writes to it (libp2p's compliance
   * suite sets it to make data wait in the buffer).
   */
  override send(data: SendData): boolean {
    if (
      this.writeStatus !== 'writable' ||
      this.writableNeedsDrain ||
      this.sendingData ||
      this.writeBuffer.byteLength > 0 ||
      this.maxMessageSize !== undefined
    ) {
      return super.send(data);
    }
    const canSendMore = this.#write(data);
    if (!canSendMore) this.writableNeedsDrain = true;
    if (this.listenerCount('idle') > 0) this.safeDispatchEvent('idle');
    return canSendMore;
  }

  /**
   * libp2p's `onDrain()`: while `send()` says to wait, resolves at the next `'drain'` (rejects if the stream
   * closes first, with its error, or with the signal's reason); otherwise at once. `AbstractStream`'s keeps the
   * promise of its first wait, and once that settled every later call resolved at once, so a writer that waits
   * on it after each `false` wrote on without bound to a peer that reads nothing.
   */
  override async onDrain(options?: AbortOptions): Promise<void> {
    const signal = signalOf(options);
    if (!this.writableNeedsDrain) return;
    let stopWaiting = (): void => {};
    const drained = new Promise<void>((resolve, reject) => {
      const onDrain = (): void => {
        stopWaiting();
        resolve();
      };
      const onClose = (event: Event): void => {
        stopWaiting();
        const { error } = event as Event & { error?: unknown };
        reject(isError(error) ? error : new StreamClosedError('The stream closed before it drained'));
      };
      stopWaiting = () => {
        this.removeEventListener('drain', onDrain);
        this.removeEventListener('close', onClose);
      };
      this.addEventListener('drain', onDrain);
      this.addEventListener('close', onClose);
    });
    return abortable(drained, signal, () => {
      stopWaiting();
      return true;
    });
  }

  /**
   * libp2p's `close()`. `AbstractStream` marks the stream closing before it waits (for its buffer to empty, then
   * for the bytes to leave), so a close that gave up half-way would leave it closing for good, its FIN never
   * sent. So the signal is checked first (an aborted one gives up before anything changed; null is none), the
   * close itself runs to its end without it, and an abort releases only the caller, with the signal's reason.
   */
  override async close(options?: AbortOptions): Promise<void> {
    const signal = signalOf(options);
    // Already closing or closed: libp2p's close() returns at once, and so does this one, whatever the signal.
    if (this.writeStatus !== 'writable') return super.close();
    signal?.throwIfAborted();
    return released(
      super.close().catch((reason: unknown) => {
        throw this.#closeFailure(reason);
      }),
      signal,
    );
  }

  /** libp2p's `closeRead()`, in the same way as `close()` (it drops the read buffer before the hook). */
  override async closeRead(options?: AbortOptions): Promise<void> {
    const signal = signalOf(options);
    if (this.readStatus === 'closing' || this.readStatus === 'closed') return super.closeRead();
    signal?.throwIfAborted();
    return released(super.closeRead(), signal);
  }

  /**
   * Why a close failed. `AbstractStream`'s close waits for its buffer to drain and rejects with the stream's
   * `'close'` event when the stream ends first (aborted, reset): an `Event`, with no message or stack. The
   * caller gets the reason the stream ended instead, as an `Error` (libp2p's `StreamStateError` if none is
   * known).
   */
  #closeFailure(reason: unknown): unknown {
    if (!(reason instanceof Event) || reason.type !== 'close') return reason;
    const { error } = reason as Event & { error?: unknown };
    return (
      this.#failure ?? (isError(error) ? error : new StreamStateError('The stream closed before its data was sent'))
    );
  }

  /**
   * Reads the stream's messages until its end. libp2p's own iterator ends at the peer's FIN (`'remoteCloseWrite'`),
   * which can come before the data that waited for a reader is handed on: a reader that started after the FIN
   * got that data and then waited for ever, and one whose stream was paused with data held lost what was held.
   * This one ends at the stream's `'end'` (everything handed on, no more to come) or `'close'` (with its error),
   * and at once when the stream had already ended.
   */
  override async *[Symbol.asyncIterator](): AsyncGenerator<StreamMessageEvent['data']> {
    if (this.readStatus !== 'readable' && this.readStatus !== 'paused') return;
    const queue = new Fifo<StreamMessageEvent['data']>();
    let ended = false;
    // The stream's 'close' came (before this reader, if it is reset or aborted now), and the error to end with
    // once what it still holds was handed on: none when the peer's FIN came before its reset (all arrived).
    let closed = this.status === 'reset' || this.status === 'aborted';
    let failure: unknown = closed && !this.#finBeforeReset ? (this.#failure ?? new StreamResetError()) : undefined;
    let wake: (() => void) | undefined;
    // Bytes queued here for the reader; `direct`: the first in the queue came while the reader waited for it,
    // and goes to it at once (read, as a 'message' listener's would be).
    let queued = 0;
    let direct = false;
    const onMessage = (event: StreamMessageEvent): void => {
      if (wake !== undefined && queue.length === 0) direct = true;
      else {
        queued += event.data.byteLength;
        this.#iterating += event.data.byteLength;
      }
      queue.push(event.data);
      wake?.();
    };
    const onEnd = (): void => {
      // (An abort or a reset ends the readable side too, just before its 'close' says why.)
      if (!closed && (this.status === 'aborted' || this.status === 'reset')) return;
      ended = true;
      wake?.();
    };
    // Closed before its end (a reset, an abort, the connection lost): its error, after what came before it. One
    // that closes after its end ends as read. Data still held to be handed on (muxwire keeps what a paused reader
    // had not taken, after a reset too) comes first: 'end' follows it.
    const onClose = (event: Event): void => {
      closed = true;
      const error = (event as Event & { error?: unknown }).error;
      if (error !== undefined && !this.#finBeforeReset) failure = error;
      if (ended || this.readBuffer.byteLength > 0) return;
      ended = true;
      wake?.();
    };
    this.addEventListener('message', onMessage);
    this.addEventListener('end', onEnd);
    this.addEventListener('close', onClose);
    // `closeRead()` drops what waits without an event: a loop whose 'end' came before it looks again then.
    const wakeReader = (): void => wake?.();
    (this.#readers ??= new Set()).add(wakeReader);
    // Ended before this reader came, with nothing left to hand on: no 'end' comes again.
    if (this.remoteWriteStatus === 'closed' && this.readBuffer.byteLength === 0 && this.#paused === null) ended = true;
    try {
      for (;;) {
        while (queue.length > 0) {
          const data = queue.shift()!;
          if (direct) direct = false;
          else {
            queued -= data.byteLength;
            this.#taken(data.byteLength);
          }
          yield data;
        }
        // An end that came before this reader, with data put back in the read buffer since (libp2p's protocol
        // negotiation reads ahead and `unshift()`s what it read past its own messages): no 'end' comes again,
        // so the end is once that data was handed on.
        if (!ended && this.readableEnded && this.readBuffer.byteLength === 0 && this.#paused === null) ended = true;
        if (ended) {
          if (failure !== undefined) throw failure as Error;
          return;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      this.removeEventListener('message', onMessage);
      this.removeEventListener('end', onEnd);
      this.removeEventListener('close', onClose);
      this.#readers?.delete(wakeReader);
      this.#taken(queued); // (a reader that stops early lets go of the rest)
    }
  }

  /** An iterator's reader took `bytes` (or let go of them): read, so the peer may be credited. */
  #taken(bytes: number): void {
    this.#iterating -= bytes;
    if (bytes > 0 && !this.#destroyed) this.#port.readProgress(this.#state);
  }

  /**
   * libp2p's `abort()`. A reason that is no `Error` (JavaScript callers may give anything, or nothing) becomes
   * libp2p's `StreamAbortedError`, which says it: the stream's `'close'` event, its readers and its `close()`
   * all get an `Error`.
   */
  override abort(error: Error): void {
    super.abort(isError(error) ? error : abortedWith(error));
  }

  /**
   * The peer's FIN. libp2p hands data buffered before a `'message'` listener came (a `for await` that starts
   * after the data arrived) in a microtask after that listener was added; an end that came first ended the
   * iteration, and the data was dropped without a word. What is buffered goes to the listeners first.
   */
  override onRemoteCloseWrite(): void {
    if (this.readBuffer.byteLength > 0 && this.readStatus === 'readable' && this.listenerCount('message') > 0) {
      this.dispatchReadBuffer();
    }
    super.onRemoteCloseWrite();
  }

  /** The session's 'close' bookkeeping runs first, as the muxer's own listener did (it was added first). */
  override dispatchEvent(event: Event): boolean {
    const cause = this.#resetCause;
    const error = (event as { error?: unknown }).error;
    if (cause !== undefined && error instanceof Error && error.cause === undefined) error.cause = cause;
    if (event.type === 'close') {
      const onClose = this.#onClose;
      this.#onClose = undefined;
      onClose?.(this);
      this.#settleFlushed();
    }
    return super.dispatchEvent(event);
  }

  // The six hooks below implement AbstractStream's abstract members, so they stay in the published declarations
  // (stripInternal would leave the class looking abstract to every project that checks libraries).

  /** libp2p's hook: queues bytes on the channel; 'drain' follows once it is under its high-water mark again. */
  sendData(data: ByteList): SendResult {
    return { sentBytes: data.byteLength, canSendMore: this.#write(data) };
  }

  /** libp2p's hook: RST to the peer; queued bytes are dropped. */
  sendReset(error: Error): void {
    this.release(error);
  }

  /**
   * libp2p's hook: FIN after everything written; resolves once those bytes reached the connection. Rejects if
   * the stream was reset or failed before (or while) they left: they are lost. The peer's FIN, if it waits
   * behind paused data, is passed on then (with this side's end, the stream can close: see `#endHeld`).
   */
  async sendCloseWrite(): Promise<void> {
    // (No signal here, as in libp2p's yamux: `close()` marked the stream closing before this hook, so giving up
    // now would leave it closing for good; an aborted signal is refused by `close()` before that.)
    if (this.#destroyed) throw this.#failure ?? new StreamResetError('the stream was reset');
    if (this.#writeEnded) return;
    this.#writeEnded = true;
    // Settled once the bytes written before reached the connection, with the FIN queued behind them (as libp2p's
    // yamux, whose close resolves once its FIN is written to the connection, and no later: libp2p's compliance
    // suite reads the peer's messages one by one after a close, and a close that also waited for the FIN's
    // write let them arrive first, to be read as one).
    this.#port.end(this.#state);
    if (this.#writing === 0) {
      this.#settleFinished();
    } else {
      await new Promise<void>((resolve, reject) => {
        this.#finished = { resolve, reject };
      });
    }
    if (this.#endAfterPaused) this.#endHeld();
  }

  /**
   * libp2p's hook: yamux has no frame that asks the peer to stop sending: as with libp2p's yamux, nothing is sent,
   * and what still arrives is credited and dropped. Held data is dropped too, and the peer's FIN that waited
   * behind it is passed on (nobody will read up to it now): with this side's end, the stream closes.
   */
  async sendCloseRead(): Promise<void> {
    this.#paused = null;
    this.#held = 0;
    // (libp2p's `closeRead()` emptied the read buffer before this: what it held is read too.)
    if (!this.#destroyed) this.#port.readProgress(this.#state);
    if (this.#endAfterPaused) {
      this.#endAfterPaused = false;
      this.onRemoteCloseWrite();
    }
    if (this.#readers !== undefined) for (const wakeReader of this.#readers) wakeReader();
  }

  /** libp2p's hook: data arriving from now on waits in `#paused`; the window, no longer refilled, stops the peer. */
  sendPause(): void {}

  /**
   * libp2p's hook: hands on what arrived while paused (after the read buffer, which `resume()` emptied first),
   * oldest first, each chunk leaving `#held` as it goes; the session credits the peer for those once they are
   * handed on. A 'message' listener that pauses again leaves the rest waiting where it is, still unread (its
   * window not refilled), and data that arrives meanwhile waits behind it.
   */
  sendResume(): void {
    const paused = this.#paused;
    if (paused === null || this.#handingOn) return;
    this.#handingOn = true;
    try {
      while (this.#paused === paused && this.readStatus !== 'paused' && paused.length > 0) {
        const chunk = paused.shift()!;
        this.#held -= chunk.byteLength;
        this.onData(chunk);
      }
    } finally {
      this.#handingOn = false;
    }
    // A listener may have let go of the rest (closeRead, a reset) or moved it to the read buffer (`#endHeld`).
    if (this.#paused !== paused) return;
    this.#port.readProgress(this.#state);
    if (paused.length > 0) return; // paused again: the rest waits
    this.#paused = null;
    if (this.#endAfterPaused) {
      this.#endAfterPaused = false;
      this.onRemoteCloseWrite();
    }
  }

  // ------------------------------------------------------------------ the session's side (ChannelEndpoint)

  /**
   * @internal Data from the peer. While nothing waits in the read buffer and someone listens, it becomes one
   * 'message' event at once, its bytes as they came (a `Uint8Array`, which the event's type allows): what
   * `onData()` would do, without passing through the read buffer (a list appended, a sublist made, consumed).
   */
  deliver(data: Uint8Array): void {
    if (this.readStatus === 'paused' || this.#paused !== null) {
      (this.#paused ??= new Fifo()).push(data);
      this.#held += data.byteLength;
      // As libp2p's yamux, whose paused data waits in the read buffer and is held to its limit: only a window
      // larger than maxReadBufferLength (auto-tuned up to maxStreamWindowSize) lets this much arrive.
      const buffered = this.#held + this.readBuffer.byteLength;
      if (buffered > this.maxReadBufferLength) {
        this.abort(
          new StreamBufferError(
            `Read buffer length of ${buffered} exceeded limit of ${this.maxReadBufferLength}, read status is ${this.readStatus}`,
          ),
        );
      }
      return;
    }
    if (this.readStatus === 'readable' && this.readBuffer.byteLength === 0 && this.listenerCount('message') > 0) {
      this.dispatchEvent(new StreamMessageEvent(data));
      return;
    }
    this.onData(data);
  }

  /**
   * @internal The peer's FIN, after all its data (from a microtask: the session is still in its receive step).
   * While paused data waits, the FIN waits behind it, unless this side has ended its writing: the stream can
   * then close at once, the held data staying readable in the read buffer (as with libp2p's yamux).
   */
  remoteEnded(): void {
    defer(() => {
      if (this.#paused === null) this.onRemoteCloseWrite();
      else {
        this.#endAfterPaused = true;
        if (this.writeStatus === 'closed') this.#endHeld();
      }
    });
  }

  /**
   * @internal The peer reset the stream, or the session failed: the stream ends with libp2p's error. Data held
   * while paused survives a peer's reset in the read buffer, as the read buffer's own data does (libp2p's
   * yamux keeps both: a peer's graceful close resets streams after their data and FIN).
   */
  fail(error: Error): void {
    if (this.#destroyed) return;
    let ended = false;
    if (this.#paused !== null && error instanceof ChannelResetError) {
      // Moved now, before a FIN delivered in the same receive step is passed on (from a microtask).
      ended = this.#endAfterPaused;
      this.keepHeld();
    }
    this.#endAfterPaused = false;
    this.#letGo(toLibp2pError(error));
    defer(() => this.#failed(error, ended));
  }

  /**
   * @internal The stream is about to end without the rest of the peer's data (the muxer's own `close()`): data
   * held while paused moves to the read buffer, where a later `resume()` or reader still finds it, and no
   * `'end'` comes before it is handed on.
   */
  keepHeld(): void {
    const paused = this.#paused;
    if (paused === null) return;
    this.#paused = null;
    this.#held = 0;
    for (const chunk of paused.drain()) this.readBuffer.append(chunk);
  }

  /**
   * @internal Settles once this side's FIN is queued behind data that all reached the connection, or the stream
   * ended (the muxer's `close()` waits on it: `close()` itself returns at once for a stream already closing).
   */
  writeFinished(): Promise<void> {
    if (this.#flushed || this.#destroyed || this.status !== 'open') return Promise.resolve();
    return new Promise((resolve) => (this.#onFlushed ??= []).push(resolve));
  }

  /** @internal True once this side's FIN is queued behind data that all reached the connection. */
  get writeFlushed(): boolean {
    return this.#flushed;
  }

  /**
   * @internal Bytes delivered and not read yet: held while paused, waiting in libp2p's read buffer for a
   * `'message'` listener, or queued in an async iterator for its reader. Counted so, the peer gets no more
   * credit until they are taken (counting the held ones alone, streams nobody listened to yet took 500 MB of
   * 16 KB frames, or 690 MiB of heap in one-byte frames, under a 1 MiB `maxSessionBuffered`).
   */
  get bufferedBytes(): number {
    return this.#held + this.readBuffer.byteLength + this.#iterating;
  }

  /** libp2p's own: hands its read buffer to the `'message'` listeners. What they took is read: the peer's credit. */
  protected override dispatchReadBuffer(): void {
    const before = this.readBuffer.byteLength;
    super.dispatchReadBuffer();
    if (this.readBuffer.byteLength < before && !this.#destroyed) this.#port.readProgress(this.#state);
  }

  /** True once the stream was reset (by this side or the peer), or the session failed it. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /**
   * @internal Lets go of the channel: RST to the peer unless `error` is undefined and both sides had ended
   * cleanly (the muxer also refuses an inbound stream so). Queued bytes are dropped.
   */
  release(error: Error | undefined): void {
    if (this.#destroyed) return;
    this.#letGo(error === undefined ? undefined : toLibp2pError(error));
    this.#port.release(this.#state, error);
  }

  // ------------------------------------------------------------------ inside

  /**
   * Hands a copy of the data to the session (see {@link copyOfSend}); false once what waits unsent reaches
   * `channelHighWaterMark` (see `#writing`).
   */
  #write(data: SendData): boolean {
    if (this.#destroyed) return false;
    const port = this.#port;
    const bytes = copyOfSend(data);
    if (bytes === null) {
      // Transferred (to a worker) or shrunk while it waited in libp2p's own write buffer, or before `send()`:
      // its bytes are gone. The stream is aborted, after this hook returns, rather than end as if they went.
      const error = brokenWrite(this.id);
      defer(() => this.abort(error));
    } else if (bytes.length > 0) {
      // Counted with what a queued write costs beyond its bytes: writes of a few bytes each stop at a bound too.
      const cost = bytes.length + CHUNK_COST;
      this.#writing += cost;
      port.write(this.#state, bytes, (error) => this.#written(cost, error));
    }
    if (this.#writing >= port.highWaterMark) {
      this.#needDrain = true;
      return false;
    }
    return true;
  }

  #written(cost: number, error: Error | null | undefined): void {
    this.#writing -= cost;
    if (this.#destroyed) return;
    if (error) {
      // A live channel is failed by its session before its writes fail. One the session no longer holds (both
      // FINs exchanged while its last bytes were still in the connection's hands) hears of it only here.
      if (!this.#state.live) this.fail(error);
      return;
    }
    if (this.#needDrain && this.#writing < this.#port.highWaterMark) {
      this.#needDrain = false;
      this.onMuxerDrain();
    }
    if (this.#writing === 0 && this.#writeEnded) this.#settleFinished();
  }

  /** The FIN and everything before it reached the connection: `sendCloseWrite` resolves. */
  #settleFinished(): void {
    this.#flushed = true;
    const finished = this.#finished;
    this.#finished = null;
    finished?.resolve();
    this.#settleFlushed();
  }

  #settleFlushed(): void {
    const waiters = this.#onFlushed;
    this.#onFlushed = null;
    if (waiters !== null) for (const resolve of waiters) resolve();
  }

  /** The stream is gone (`failure`: why, as libp2p's error): a pending `sendCloseWrite` rejects, its data lost. */
  #letGo(failure: Error | undefined): void {
    this.#destroyed = true;
    this.#failure = failure;
    // No 'drain' comes any more: a close() that would wait for one goes on to `sendCloseWrite`, which fails with
    // `failure`. (`abort()` empties libp2p's write buffer and fires 'idle' before 'close': a close() waiting for
    // 'idle' then waited for 'drain' after 'close' had come, and never settled.)
    this.writableNeedsDrain = false;
    this.#paused = null;
    this.#held = 0;
    const finished = this.#finished;
    this.#finished = null;
    finished?.reject(failure ?? new StreamResetError('the stream was reset before its data was sent'));
    this.#settleFlushed();
  }

  /**
   * The peer's FIN waited behind paused data, and this side's writing has ended: the held data moves to the
   * read buffer (a later `resume()` still hands it on, after the stream closed) and the FIN is passed on.
   */
  #endHeld(): void {
    this.#endAfterPaused = false;
    if (this.#paused !== null) {
      this.keepHeld();
      this.#port.readProgress(this.#state);
    }
    this.onRemoteCloseWrite();
  }

  /**
   * Reports a failure as libp2p does: a peer's reset, or the connection failing under the stream. On a reset,
   * the peer's FIN that waited behind paused data (`ended`: the data is in the read buffer now) is passed on
   * first.
   */
  #failed(error: Error, ended: boolean): void {
    if (this.status !== 'open') return; // this side aborted it (the reason is already reported)
    if (error instanceof ChannelResetError) {
      if (ended) {
        this.onRemoteCloseWrite();
        if (this.status !== 'open') return; // both sides had ended: the stream closed cleanly
      }
      this.#finBeforeReset = this.remoteWriteStatus === 'closed';
      // libp2p makes its StreamResetError itself: muxwire's error goes with it as its cause (see dispatchEvent).
      this.#resetCause = error;
      try {
        this.onRemoteReset();
      } finally {
        this.#resetCause = undefined;
      }
    } else {
      this.onTransportClosed(toLibp2pError(error));
    }
  }
}
