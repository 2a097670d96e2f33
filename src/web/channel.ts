/**
 * A channel as Web Streams, shaped like WebTransport's bidirectional stream: `readable` (a
 * `ReadableStream` of Uint8Arrays, each on an `ArrayBuffer`) and `writable` (a `WritableStream<Uint8Array>`),
 * plus `id`, `closeWrite()` (FIN) and `reset(reason)` (RST).
 *
 * Backpressure is end to end. The readable has a high-water mark of zero: a chunk leaves the channel only
 * when the page's reader asks for one, and the peer is credited (Window Update) only for what was handed to
 * the reader; what waits meanwhile stays here, within the receive window, so a reader that stops holds the
 * peer's writer at the window. The writable's `write()` (and `writer.ready`) waits while
 * `channelHighWaterMark` bytes are queued and not yet sent, which is while the peer's window is spent.
 *
 * Everything the channel asks of its session goes through the core's narrow {@link ChannelPort}, as the Node
 * `Channel` and `LightChannel` do: `write` (queue bytes; `done` when they reached the transport), `end`
 * (FIN after the queued bytes), `reset` (RST), `readProgress` (the reader took bytes: the session reads
 * `bufferedBytes` and credits) and `highWaterMark` (the write queue bound). The session calls back through
 * the core's `ChannelEndpoint` (`deliver`, `remoteEnded`, `fail`, `bufferedBytes`, `destroyed`).
 * @module
 */
import { asUint8Array, byteLengthOf, lostBytes } from '../core/bytes.js';
import { type ChannelFacts, installChannelFacts } from '../core/channel-facts.js';
import type { ChannelEndpoint, ChannelState, ChannelStateName } from '../core/channel-state.js';
import { MuxError, brokenWrite, resetHere } from '../core/errors.js';
import type { ChannelPort } from '../core/channel-port.js';
import type { MuxSession } from '../core/session.js';
// Types only: session.ts makes the channels, so a value import here would be a cycle.
import type { WebSession } from './session.js';
import { type ChannelStats, channelStats } from '../core/observe.js';
import { Fifo } from '../core/fifo.js';
import { CHUNK_COST } from '../core/flow.js';

/** Writes up to this size are copied and resolve at once (while under the high-water mark). */
const COPY_LIMIT = 16 * 1024;

/**
 * A Uint8Array on an `ArrayBuffer` (not a `SharedArrayBuffer`), what the readable gives: since TypeScript 5.7
 * that is `Uint8Array<ArrayBuffer>`, which `TextDecoderStream`, `Blob`, `Response` and `crypto.subtle` take
 * where a plain `Uint8Array` (`Uint8Array<ArrayBufferLike>`) does not compile; before 5.7, `Uint8Array`.
 * Written as the return type of `slice()`, which names it in both.
 */
type Bytes = ReturnType<Uint8Array['slice']>;

/** A multiplexed channel as a pair of Web Streams. Made by `WebSession.dial()` / `accept()`. */
export class WebChannel implements ChannelEndpoint, ChannelFacts<WebSession> {
  /**
   * Bytes from the peer, as the reader pulls them, each chunk a Uint8Array on an `ArrayBuffer` (so
   * `readable.pipeThrough(new TextDecoderStream())` type-checks). Cancelling it resets the channel.
   */
  declare readonly readable: ReadableStream<ReturnType<Uint8Array['slice']>>;
  /** Bytes to the peer. Closing it sends FIN; aborting it resets the channel. */
  declare readonly writable: WritableStream<Uint8Array>;

  readonly #state: ChannelState;
  readonly #port: ChannelPort<MuxSession<WebChannel>>;
  #readController!: ReadableStreamDefaultController<Bytes>;
  #writeController!: WritableStreamDefaultController;
  /** Delivered and not yet pulled (a `Fifo`: an array's `shift()` copies the rest in V8, so many small chunks waiting made reading quadratic). */
  #buffer = new Fifo<Bytes>();
  #buffered = 0;
  /** The reader waits for a chunk (pull() found nothing). */
  #pullWaiting = false;
  /**
   * Bytes of a chunk that `deliver` handed to the readable for a read that was gone (its reader released while
   * the read was pending): it waits in the readable's own queue, uncredited, until the next pull shows it read.
   */
  #unclaimed = 0;
  #remoteEnded = false;
  #readableDone = false;
  // --- writing ---
  /**
   * Bytes handed to the session and not yet in the transport, and {@link CHUNK_COST} for each write among them
   * (its own objects, beyond its bytes): writes of a few bytes each stop at a bounded memory too.
   */
  #writing = 0;
  /** A sink write waiting for `#writing` to fall below the high-water mark. */
  #writeWaiter: { resolve: () => void; reject: (error: Error) => void } | null = null;
  /** A sink close waiting for the FIN, behind the last bytes, to reach the transport. */
  #closeWaiter: { resolve: () => void; reject: (error: Error) => void } | null = null;
  #writeEnded = false;
  /** The FIN reached the transport (or could not go, the channel having left the session cleanly). */
  #finGone = false;
  /** The FIN's write failed after the channel had left its session. */
  #finFailure: Error | undefined;
  #writableDone = false;
  #failure: Error | undefined;
  /** `writer.write()` calls so far, counted by the writable's size(), which runs within each call, in call order. */
  #writes = 0;
  /**
   * Each write's length when `writer.write()` took it (noted by size(), in call order; the sink takes them in
   * the same order): a chunk waits in the writable's own queue, where its buffer may be transferred or resized.
   */
  #writtenLengths = new Fifo<number>();
  /** Writes the sink has taken (in the same order), those it refused too. */
  #sinkWrites = 0;
  /** `closeWrite()` with a writer holding the writable: the FIN goes once the sink took this many writes. */
  #finAt = -1;
  /** `closeWrite()` while a writer holds the writable: settles once the FIN went (or the channel failed). */
  #finWaiter: { resolve: () => void; reject: (error: Error) => void } | null = null;
  #finPending: Promise<void> | undefined;

  // id, session, protocolState, receiveWindow, outbound: defined once for every kind of channel (channel-facts.ts).
  static {
    installChannelFacts(
      WebChannel.prototype,
      (channel) => channel.#state,
      (channel) => channel.#port.session,
    );
  }

  // Their documentation is ChannelFacts' (editors and TypeDoc take it from the interface this class implements).
  declare readonly id: number;
  declare readonly session: WebSession;
  declare readonly protocolState: ChannelStateName;
  declare readonly receiveWindow: number;
  declare readonly outbound: boolean;

  /** @internal Made by the session. */
  constructor(state: ChannelState, port: ChannelPort<MuxSession<WebChannel>>) {
    this.#state = state;
    this.#port = port;
    this.readable = new ReadableStream<Bytes>(
      {
        start: (controller) => {
          this.#readController = controller;
        },
        pull: () => this.#pull(),
        cancel: (reason) => {
          this.#readableDone = true;
          this.#buffer = new Fifo();
          this.#buffered = 0;
          this.#unclaimed = 0;
          // After the peer's FIN nothing more can come: dropping what waits is enough (writing goes on).
          if (this.#remoteEnded) this.#port.readProgress(this.#state);
          else this.#resetFromHere(reason);
        },
      },
      { highWaterMark: 0 },
    );
    this.writable = new WritableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#writeController = controller;
          // The sink's abort() comes only once a write in flight settled, and that write may be waiting for
          // window the peer never grants: the writer's abort() resets from its signal, at once.
          controller.signal?.addEventListener('abort', () => {
            this.#writableDone = true;
            this.#resetFromHere(controller.signal.reason);
          });
        },
        write: (chunk) => {
          // Every write the sink takes counts towards closeWrite()'s, an empty one too.
          this.#sinkWrites++;
          const pending = this.#write(chunk, this.#writtenLengths.shift() ?? 0);
          this.#finIfDue();
          return pending;
        },
        close: () => this.#close(),
        abort: (reason) => {
          this.#writableDone = true;
          this.#resetFromHere(reason);
        },
      },
      // The default strategy (one chunk; every chunk counts 1), its size() also counting the writes for
      // closeWrite(): the Streams standard calls it within each `writer.write()`, in call order.
      {
        highWaterMark: 1,
        size: (chunk) => {
          this.#writes++;
          // (-1: it had already lost its bytes, detached or out of bounds; 0 for what is no typed array.)
          const length = byteLengthOf(chunk) ?? 0;
          this.#writtenLengths.push(length === 0 && lostBytes(chunk) ? -1 : length);
          return 1;
        },
      },
    );
  }

  /** A snapshot of this channel's figures: bytes each way, queued and unread bytes, both windows, stalled or not. */
  stats(): ChannelStats {
    return channelStats(this.#state);
  }

  /** Why the channel failed (reset by the peer or here, or its session failed), if it did. */
  get failure(): Error | undefined {
    return this.#failure ?? this.#finFailure;
  }

  /**
   * Half-closes: FIN goes after the bytes already written; reading goes on. When the writable is not locked
   * this is `writable.close()`. When a writer holds it, the FIN follows every write the writer made before
   * this call (those still queued in the writable too), and later writes fail with `ERR_MUX_WRITE_AFTER_END`
   * (the first to reach the sink errors the writable with it); it then resolves once the FIN is queued behind
   * them. The writer's `close()` resolves when no write followed this call, once the FIN reached the
   * transport; after one, the writable is errored and it rejects.
   * Rejects with the channel's error if it fails first; resolves again once the FIN went.
   */
  closeWrite(): Promise<void> {
    // (A FIN asked for but not yet sent when the channel failed never goes: the failure is the answer.)
    if (this.#failure !== undefined && !this.#state.finSent) return Promise.reject(this.#failure);
    if (this.#finFailure !== undefined) return Promise.reject(this.#finFailure);
    if (this.#writeEnded) return this.#finPending ?? Promise.resolve();
    if (!this.writable.locked) return this.writable.close();
    if (this.#writableDone) return Promise.resolve();
    return (this.#finPending ??= new Promise<void>((resolve, reject) => {
      this.#finWaiter = { resolve, reject };
      this.#finAt = this.#writes;
      this.#finIfDue();
    }));
  }

  /**
   * Aborts the channel: RST to the peer (whose reads and writes fail with `ChannelResetError`); here the
   * readable and writable fail with `reason` (by default a `ChannelResetError`).
   */
  reset(reason?: unknown): void {
    this.#resetFromHere(reason);
  }

  // ------------------------------------------------------------------ ChannelEndpoint (for the session)

  /** @internal */
  deliver(chunk: Uint8Array): void {
    if (this.#readableDone) return;
    // Each chunk the readable gives owns its ArrayBuffer, as a fetch() body's do: a view into a larger buffer
    // (a WebSocket message holds frames of many channels) is copied, since a page that transfers a chunk's
    // buffer (postMessage to a worker) would detach the other channels' bytes with it, and a copy of it would
    // carry them along; so is a view of a SharedArrayBuffer (TextDecoder and Blob refuse one).
    const data = (
      chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength && chunk.buffer instanceof ArrayBuffer
        ? chunk
        : new Uint8Array(chunk)
    ) as Bytes; // (a copy, a plain Uint8Array: a Node Buffer's slice() would be a view)
    if (this.#pullWaiting && this.#buffered === 0) {
      // The reader is waiting: the chunk is read now (the session credits it right after this call).
      this.#pullWaiting = false;
      this.#readController.enqueue(data);
      // With no read left to take it (the reader was released), the chunk waits in the readable's queue.
      if (this.#readController.desiredSize! < 0) {
        this.#unclaimed = data.length;
        this.#buffered += data.length;
      }
      return;
    }
    this.#buffer.push(data);
    this.#buffered += data.length;
  }

  /** @internal */
  remoteEnded(): void {
    this.#remoteEnded = true;
    if (this.#pullWaiting && this.#buffered === 0) this.#endReadable();
  }

  /**
   * @internal The channel failed. When its session failed (not a reset), what arrived is still read
   * (users-asks row 26). After the peer's FIN it is whole: the readable gives the rest of it and closes, and
   * only the writable fails. Without the FIN it may be cut short: the readable fails once it was read.
   */
  fail(error: Error, sessionEnded = false): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    // The readable is left to be read (`readProgress` ignores a channel its session no longer holds); after a
    // reset, what was delivered goes with the error.
    if (!(sessionEnded && (this.#remoteEnded || this.#buffered > 0)) && !this.#readableDone) {
      this.#buffer = new Fifo();
      this.#buffered = 0;
      this.#unclaimed = 0;
      this.#readableDone = true;
      this.#readController.error(error);
    }
    if (!this.#writableDone) {
      this.#writableDone = true;
      this.#writeController.error(error);
    }
    const waiter = this.#writeWaiter;
    this.#writeWaiter = null;
    waiter?.reject(error);
    const closer = this.#closeWaiter;
    this.#closeWaiter = null;
    closer?.reject(error);
    const fin = this.#finWaiter;
    this.#finWaiter = null;
    fin?.reject(error);
  }

  /** @internal */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** True once the page let go of both halves, or the channel failed. */
  get destroyed(): boolean {
    return this.#failure !== undefined || (this.#readableDone && this.#writableDone);
  }

  // ------------------------------------------------------------------ inside

  #pull(): void {
    if (this.#unclaimed > 0) {
      // A pull comes only once the readable's queue is empty: the chunk that waited there was read.
      this.#buffered -= this.#unclaimed;
      this.#unclaimed = 0;
      if (this.#buffer.length === 0) this.#port.readProgress(this.#state);
    }
    const chunk = this.#buffer.shift();
    if (chunk !== undefined) {
      this.#buffered -= chunk.length;
      this.#readController.enqueue(chunk);
      this.#port.readProgress(this.#state);
      return;
    }
    if (this.#remoteEnded) {
      this.#endReadable();
      return;
    }
    if (this.#failure !== undefined) {
      // The session failed before the peer's FIN, and what arrived has been read: the error follows.
      this.#readableDone = true;
      this.#readController.error(this.#failure);
      return;
    }
    // Nothing to give yet: the read stays pending and `deliver` answers it (no pull comes meanwhile).
    this.#pullWaiting = true;
  }

  #endReadable(): void {
    if (this.#readableDone) return;
    this.#readableDone = true;
    this.#pullWaiting = false;
    this.#readController.close();
  }

  #write(given: Uint8Array, written: number): Promise<void> | void {
    const chunk = asUint8Array(given); // (one made in another realm too: a test runner's sandbox, a vm context)
    if (chunk === undefined) {
      const error = new TypeError('muxwire: a WebChannel writes Uint8Arrays');
      this.#resetFromHere(error);
      throw error;
    }
    if (this.#failure !== undefined) throw this.#failure;
    // Made after closeWrite(), whose FIN went: refused, and the writable fails with this error.
    if (this.#writeEnded) throw new MuxError('ERR_MUX_WRITE_AFTER_END', `channel ${this.id}: closeWrite() was called`);
    // Transferred (to a worker) or shrunk, before its write() (-1) or while it waited in the writable's queue:
    // its bytes are gone. Grown (a view that follows a resizable buffer): what it held when written is sent.
    const now = chunk.length; // (a view made by the built-ins: no own property can say otherwise)
    if (written < 0 || now < written) {
      const error = brokenWrite(this.id);
      this.#resetFromHere(error);
      throw error;
    }
    const length = written;
    if (length === 0) return;
    // A small chunk is copied so its write can resolve now (the caller may reuse the array once it does);
    // a large one is sent in place, and its write resolves once it reached the transport.
    const copied = length <= COPY_LIMIT;
    const held = now === length ? chunk : chunk.subarray(0, length);
    const data = copied ? held.slice() : held;
    // Counted with what the write costs beyond its bytes (a copy, a queued write: see `#writing`).
    const cost = length + CHUNK_COST;
    this.#writing += cost;
    let resolveWrite: (() => void) | undefined;
    let rejectWrite: ((error: Error) => void) | undefined;
    const promise = copied
      ? undefined
      : new Promise<void>((resolve, reject) => {
          resolveWrite = resolve;
          rejectWrite = reject;
        });
    this.#port.write(this.#state, data, (error) => {
      this.#writing -= cost;
      if (error) {
        this.fail(error);
        // Still in the session (a multiplex channel kept after both closes until it is read): out of it now.
        // No frame goes once this side's close has.
        if (this.#state.live) this.#port.reset(this.#state, error);
        rejectWrite?.(error);
        return;
      }
      resolveWrite?.();
      this.#wroteSome();
    });
    // Refused at once (the peer closed the channel both ways, on the multiplex format): the write failed the
    // channel just now; a copied write rejects too rather than resolve as if taken.
    const refused = copied ? this.failure : undefined;
    if (refused !== undefined) throw refused;
    const pending =
      promise ??
      (this.#writing < this.#port.highWaterMark
        ? undefined
        : new Promise<void>((resolve, reject) => {
            this.#writeWaiter = { resolve, reject };
          }));
    return pending;
  }

  /**
   * For `closeWrite()` with a writer holding the writable: once the sink has taken every write made before
   * the call (the writable hands them on in that order), the FIN goes, behind their bytes. The next write
   * the sink gets is refused.
   */
  #finIfDue(): void {
    if (this.#sinkWrites === this.#finAt && this.#finWaiter !== null) this.#end();
  }

  #wroteSome(): void {
    const waiter = this.#writeWaiter;
    if (waiter !== null && this.#writing < this.#port.highWaterMark) {
      this.#writeWaiter = null;
      waiter.resolve();
    }
  }

  #close(): Promise<void> | void {
    this.#writableDone = true;
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#finFailure !== undefined) throw this.#finFailure;
    // This also settles a closeWrite() that waits for writes made after the writer's close() (the writable
    // refused those, so the sink never takes them).
    this.#end();
    if (this.#finGone) return;
    return new Promise<void>((resolve, reject) => {
      this.#closeWaiter = { resolve, reject };
    });
  }

  /**
   * FIN, once, after the bytes queued; a waiting `closeWrite()` resolves. The writable's close resolves once the
   * FIN reached the transport (a transport ended, or a session destroyed, right after still sends it), and
   * rejects if the channel fails first.
   */
  #end(): void {
    if (!this.#writeEnded) {
      this.#writeEnded = true;
      this.#port.end(this.#state, (error) => {
        if (error) {
          // A live channel was failed by its session first, which settled the close. One that had left its
          // session (both FINs exchanged) hears only here: the writable's close fails, now or when it comes, and
          // so does `closeWrite()`; the readable keeps what came.
          this.#finFailure = error;
          const closer = this.#closeWaiter;
          this.#closeWaiter = null;
          closer?.reject(error);
          return;
        }
        this.#finGone = true;
        const closer = this.#closeWaiter;
        this.#closeWaiter = null;
        closer?.resolve();
      });
    }
    this.#finWaiter?.resolve();
    this.#finWaiter = null;
  }

  #resetFromHere(reason: unknown): void {
    if (this.#failure !== undefined) return;
    const error = resetHere(this.id, reason);
    // Record first: the session fails the queued writes with `error` and those callbacks see it recorded.
    this.fail(error);
    this.#port.reset(this.#state, error);
  }
}
