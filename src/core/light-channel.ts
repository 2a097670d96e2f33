/**
 * `LightChannel`, a channel without Node streams (see the class), and `LightSession`, whose channels they are.
 * @module
 */
import { asUint8Array, lostBytes } from './bytes.js';
import { type ChannelFacts, installChannelFacts } from './channel-facts.js';
import type { ChannelPort } from './channel-port.js';
import type { ChannelEndpoint, ChannelState, ChannelStateName } from './channel-state.js';
import { CHUNK_COST } from './flow.js';
import { FULL_PARTS } from './full-parts.js';
import { defer } from './defer.js';
import { Fifo } from './fifo.js';
import { afterTime } from './timers.js';
import { NodeEmitter, type NodeEmitterMethods, withNodeEmitterMethods } from './emitter.js';
import { MuxError, resetHere, writeAfterPeerClose } from './errors.js';
import { type ChannelStats, channelStats } from './observe.js';
import type { SessionOptions } from './options.js';
import { type DialOptions, MuxSession, type Role, type SessionEvents } from './session.js';
import type { Transport } from './transport.js';

/** The events of a {@link LightChannel}. */
export interface LightChannelEvents {
  /** Data from the peer. The array is the channel's to give: keep it or not, it is not reused. */
  data: (chunk: Uint8Array) => void;
  /** The peer half-closed and everything it sent was read. */
  end: () => void;
  /** Fewer than `channelHighWaterMark` bytes wait to be sent: writing may go on. */
  drain: () => void;
  /** After `end()`: everything written has reached the transport, and the FIN follows it. */
  finish: () => void;
  /** The channel was reset or its session failed (emitted only when the channel has an `'error'` listener). */
  error: (error: Error) => void;
  /** The channel is over: both halves ended, or it was destroyed or failed. The last event. */
  close: () => void;
}

/** Why a waiting read of the async iterator settles. */
interface PendingRead {
  resolve: (result: IteratorResult<Uint8Array>) => void;
  reject: (error: Error) => void;
}

const DONE: IteratorResult<Uint8Array> = { value: undefined, done: true };

// The bits of a LightChannel's #flags.
/** 'data' events flow; off before the first consumer and while paused. */
const FLOWING = 1 << 0;
/** Paused by hand (`pause()`): a new 'data' listener does not start the flow. */
const PAUSED = 1 << 1;
/** An async iterator reads the channel. */
const ITERATING = 1 << 2;
/** The peer's FIN arrived (or reading was closed here). */
const REMOTE_ENDED = 1 << 3;
/** write() returned false: 'drain' is owed. */
const NEED_DRAIN = 1 << 4;
/** end() was called. */
const WRITE_ENDED = 1 << 5;
/** 'finish' was emitted. */
const FINISHED = 1 << 6;
/** The channel is over ('close' emitted or due). */
const CLOSED = 1 << 7;
/** 'end' is due (emitted from a microtask). */
const END_DUE = 1 << 8;
/** 'end' was emitted. */
const END_EMITTED = 1 << 9;
/**
 * The session failed: what arrived is read, then the channel fails (`failure`): after 'end' when the peer's FIN
 * came, at once when the buffer empties otherwise.
 */
const FAIL_AT_END = 1 << 10;
/** Writing was ended by the peer's close (multiplex: no half-close), not by the application's `end()`. */
const ENDED_BY_PEER = 1 << 11;
/** The FIN reached the transport (or could not go, the channel having left the session cleanly). */
const FIN_SENT = 1 << 12;
/**
 * Destroyed here without an error before its reading was over (data dropped, or the peer's end never read): a
 * read waiting or still to come rejects (`ERR_MUX_CHANNEL_ABORTED`) rather than ending as if the data were whole,
 * as a Node stream's iterator throws `ERR_STREAM_PREMATURE_CLOSE`. `failure` stays unset: no 'error'.
 */
const CUT_SHORT = 1 << 13;

/** What `write()` and `end()` say when given a callback, as a Node stream's take one. */
const NO_CALLBACK =
  "muxwire: LightChannel's write() and end() take no callback: wait for 'drain' after a write() that returned " +
  "false, and for 'finish' after end()";

/**
 * A channel without Node streams: `write()` / `end()` / `destroy()`, `'data'` events or `for await`, and the
 * same backpressure, half-close and errors as the Node `Channel`. It needs nothing but the core, so it runs
 * anywhere (a page's sessions give Web Streams channels instead: `WebChannel`, from `muxwire/web`); in Node it
 * suits sessions with very many small channels, where a `Duplex` per
 * channel costs time to set up and memory to keep (see `docs/design.md`).
 *
 * Reading starts when a `'data'` listener is added (or `resume()` is called, or an async iterator reads) and
 * stops while `pause()`d; until then data waits in the channel, within its receive window, and the peer gets
 * no more credit than was read. Writing: `write()` returns false once `channelHighWaterMark` bytes wait to be
 * sent; `'drain'` says when to go on.
 *
 * Events, in order: `'data'` (a `Uint8Array`), `'end'` (the peer half-closed and all its data was read),
 * `'drain'`, `'finish'` (after `end()`, once everything written and the FIN reached the transport), `'error'` (the
 * channel was reset or its session failed; only when there is an `'error'` listener, so an unobserved reset
 * never crashes), and `'close'` last (both halves ended, or the channel was destroyed or failed).
 */
export class LightChannel
  extends NodeEmitter<LightChannelEvents>
  implements ChannelEndpoint, ChannelFacts<LightSession>
{
  readonly #state: ChannelState;
  readonly #port: ChannelPort<MuxSession<LightChannel>>;
  // --- reading ---
  /** Data delivered and not yet read (null while none waits: most channels never hold any). */
  #buffer: Fifo<Uint8Array> | null = null;
  #buffered = 0;
  /**
   * The channel's yes/no facts and where its 'end' is (not yet due, `END_DUE`, `END_EMITTED`), one bit each:
   * one number instead of nine fields keeps an idle channel 64 bytes lighter.
   */
  #flags = 0;
  #pendingRead: PendingRead | null = null;
  // --- writing ---
  /** Bytes written and not yet handed to the transport. */
  #writing = 0;
  /** The writes those bytes came in (each costs {@link CHUNK_COST} beyond its bytes: see `#writeCost`). */
  #writes = 0;
  // --- life ---
  #failure: Error | undefined;

  /** Channels are made by their session (`dial()`, `accept()`), not by hand. */
  constructor(state: ChannelState, port: ChannelPort<MuxSession<LightChannel>>) {
    super();
    this.#state = state;
    this.#port = port;
  }

  // id, session, protocolState, receiveWindow, outbound: defined once for every kind of channel (channel-facts.ts).
  static {
    installChannelFacts(
      LightChannel.prototype,
      (channel) => channel.#state,
      (channel) => channel.#port.session,
    );
  }

  // Their documentation is ChannelFacts' (editors and TypeDoc take it from the interface this class implements).
  declare readonly id: number;
  declare readonly session: LightSession;
  declare readonly protocolState: ChannelStateName;
  declare readonly receiveWindow: number;
  declare readonly outbound: boolean;

  /** A snapshot of this channel's figures: bytes each way, queued and unread bytes, both windows, stalled or not. */
  stats(): ChannelStats {
    return channelStats(this.#state);
  }

  /** Why the channel ended abnormally (reset by the peer, session failure, `destroy(error)`), if it did. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** True once the channel is over (`'close'` is emitted or about to be): nothing more is read or written. */
  get destroyed(): boolean {
    return (this.#flags & CLOSED) !== 0;
  }

  /** Bytes written and not yet handed to the transport. */
  get writableLength(): number {
    return this.#writing;
  }

  /** Bytes received and not yet read. */
  get readableLength(): number {
    return this.#buffered;
  }

  /**
   * True while no `'data'` listener or `resume()` keeps data flowing: after `pause()`, before anything reads,
   * and while only an async iterator reads (it takes data a chunk at a time, as on a Node `Readable`).
   */
  isPaused(): boolean {
    return (this.#flags & FLOWING) === 0;
  }

  /**
   * Queues `data` to be sent (it is not copied: do not change it until `writableLength` is 0 or `'finish'`
   * came; `'drain'` comes once what waits, counted as below, is under `channelHighWaterMark`, with earlier
   * writes still queued). Returns false once what waits to be sent reaches `channelHighWaterMark`: its bytes, and 224
   * bytes for each write among them (what a queued write costs beyond its bytes, so that writes of a few bytes
   * each stop at a bounded memory too): wait for `'drain'` before writing more. A channel that
   * was reset, failed or closed takes no more data: `write()` returns false and no `'drain'` follows (the
   * reason came as `'error'` and `failure`; a writer waiting for `'drain'` waits for `'close'` too), except one left to
   * be read to its end after its session failed: it takes writes and drops them, saying wait (false) with a
   * `'drain'` on a later turn, until its failure follows the read; writing after `end()` throws `ERR_MUX_WRITE_AFTER_END`.
   */
  write(data: Uint8Array): boolean {
    if (!this.#state.live) this.#port.catchUp(this.#state); // (see `ChannelPort.catchUp`)
    // A Node stream's `write(data, callback)` moved over as it was: its callback would never be called.
    if (arguments.length > 1) throw new TypeError(NO_CALLBACK);
    // Its bytes as the built-ins see them, of any realm (a test runner's sandbox, a vm context). (An array whose
    // buffer was transferred or shrunk before the call, which reads empty: the bytes meant are gone, which is no
    // empty write; asked of the array given.)
    const bytes = asUint8Array(data);
    if ((bytes === undefined || bytes.length === 0) && lostBytes(data)) {
      throw new TypeError('muxwire: write() was given a detached array');
    }
    if (bytes === undefined) throw new TypeError('muxwire: write() takes a Uint8Array');
    if ((this.#flags & WRITE_ENDED) !== 0) {
      // Ended for the peer's close, not by the application: the write fails the channel as one made just before
      // would (below), or, once it closed, is refused as on any closed channel; it never throws.
      if ((this.#flags & ENDED_BY_PEER) === 0)
        throw new MuxError('ERR_MUX_WRITE_AFTER_END', `channel ${this.id}: write() after end()`);
      if ((this.#flags & CLOSED) === 0) this.destroy(writeAfterPeerClose(this.id));
      return false;
    }
    // Closed: nothing can go.
    if ((this.#flags & CLOSED) !== 0) return false;
    // Left only to be read to its end (its session failed): taken, and going nowhere, as bytes a socket took
    // before its connection was reset; the channel fails once what arrived is read. It says wait, and 'drain'
    // comes on a later turn of the event loop, whatever is read: a writer that never reads goes on a write a
    // turn. (Always false with no 'drain' left an echo that pauses waiting for ever; always true let a writer
    // that does not read spin without giving the event loop a turn; a bound by what was read held readers
    // that write more than they read.)
    if ((this.#flags & FAIL_AT_END) !== 0) {
      if ((this.#flags & NEED_DRAIN) === 0) this.#drainLater();
      return false;
    }
    if (this.#state.localFin) {
      // Writing ended before end(): the peer closed the channel both ways (multiplex) and takes nothing more.
      // The channel fails as a reset does ('error' only for a listener), as a Node channel's write does.
      this.destroy(writeAfterPeerClose(this.id));
      return false;
    }
    const length = bytes.length;
    if (length > 0) {
      this.#writing += length;
      this.#writes++;
      this.#port.write(this.#state, bytes, (error) => this.#written(length, error));
      // The session failed within this write (a transport write that failed at once): as any write after it.
      if ((this.#flags & (FAIL_AT_END | CLOSED)) !== 0) {
        if ((this.#flags & (NEED_DRAIN | CLOSED)) === 0) this.#drainLater();
        return false;
      }
    }
    if (this.#writeCost() >= this.#port.highWaterMark) {
      this.#flags |= NEED_DRAIN;
      return false;
    }
    return true;
  }

  /** Half-closes: sends FIN after `data` (if given) and everything already written. Reading goes on. */
  end(data?: Uint8Array): this {
    if (!this.#state.live) this.#port.catchUp(this.#state);
    if (typeof data === 'function' || arguments.length > 1) throw new TypeError(NO_CALLBACK);
    if ((this.#flags & (WRITE_ENDED | CLOSED)) !== 0) {
      // Data given after end() is refused as a write() of it would be (not dropped in silence).
      if (data !== undefined) this.write(data);
      return this;
    }
    if ((this.#flags & FAIL_AT_END) !== 0) {
      // No FIN can go; what the peer sent is still read to its 'end', and the channel then fails.
      this.#flags |= WRITE_ENDED;
      return this;
    }
    if (data !== undefined) this.write(data);
    this.#flags |= WRITE_ENDED;
    // The session may have failed within that write: no FIN goes then.
    if ((this.#flags & (FAIL_AT_END | CLOSED)) !== 0) return this;
    // 'finish' waits for the FIN too, as a socket's waits for its shutdown: a transport ended (or a session
    // destroyed) in a 'finish' listener still sends it.
    this.#port.end(this.#state, (error) => {
      if (!error) this.#flags |= FIN_SENT;
      this.#written(0, error);
    });
    return this;
  }

  /** Same as `end()`. */
  closeWrite(): this {
    return this.end();
  }

  /**
   * Stops reading: data still buffered is dropped, data that arrives later is discarded as it comes (its
   * credit going back to the peer at once, so the peer's writes never stall on this channel), and `'end'`
   * follows. Writing goes on. As with the Node `Channel`, the peer is not told; once writing has ended too,
   * the channel waits for the peer's FIN, and data the peer still sends then (beyond a few small writes, a
   * peer's last words before it heard of the close) draws a reset.
   */
  closeRead(): this {
    if (this.#state.readClosed || (this.#flags & CLOSED) !== 0) return this;
    this.#port.closeRead(this.#state);
    this.#buffer = null;
    this.#buffered = 0;
    this.#port.readProgress(this.#state);
    this.#flags |= REMOTE_ENDED | FLOWING; // nothing more will be read: 'end' comes now
    // A read waiting (an async iteration) ends with the reading.
    const pending = this.#pendingRead;
    this.#pendingRead = null;
    pending?.resolve(DONE);
    this.#scheduleEnd();
    return this;
  }

  /** Stops `'data'` events; data waits in the channel (within its window) until `resume()`. */
  pause(): this {
    this.#flags = (this.#flags | PAUSED) & ~FLOWING;
    return this;
  }

  /** Starts or restarts `'data'` events; buffered data comes first, from a microtask. */
  resume(): this {
    this.#flags &= ~PAUSED;
    if ((this.#flags & (FLOWING | ITERATING | CLOSED)) !== 0) return this;
    this.#flags |= FLOWING;
    // (a channel kept after its session failed may have been read out while paused: its error is due)
    if (this.#buffered > 0 || (this.#flags & (REMOTE_ENDED | FAIL_AT_END)) !== 0) defer(() => this.#flow());
    return this;
  }

  /**
   * Ends the channel at once: a reset (RST) goes to the peer unless both halves had already ended normally,
   * queued writes are dropped, and `'close'` follows (after `'error'` when `error` is given and listened to). A
   * value that is not an `Error` is said by a `ChannelResetError` (`ERR_MUX_CHANNEL_ABORTED`); null is none.
   */
  destroy(given?: Error): this {
    if ((this.#flags & CLOSED) !== 0) return this;
    const state = this.#state;
    // A value that is not an Error is said by one (`failure` and `'error'` are typed Error), as a WebChannel's reset;
    // null is none, as for a Node stream.
    const error = given === undefined || given === null ? undefined : resetHere(this.id, given);
    this.#close(error); // first: the writes the reset fails then find the channel closed
    this.#port.release(state, error);
    return this;
  }

  /** Reads the channel chunk by chunk; the loop ends at the peer's FIN. Leaving the loop early destroys it. */
  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array> {
    this.#flags = (this.#flags | ITERATING) & ~FLOWING;
    const iterator: AsyncIterableIterator<Uint8Array> = {
      next: () => this.#nextChunk(),
      return: async () => {
        if ((this.#flags & (END_DUE | END_EMITTED)) === 0) this.destroy();
        return DONE;
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  // ------------------------------------------------------------------ ChannelEndpoint (for the session)

  /** @internal */
  deliver(data: Uint8Array): void {
    const pending = this.#pendingRead;
    if (pending !== null) {
      this.#pendingRead = null;
      pending.resolve({ value: data, done: false });
      return;
    }
    if ((this.#flags & FLOWING) !== 0 && this.#buffered === 0) {
      this.emit('data', data);
      return;
    }
    (this.#buffer ??= new Fifo()).push(data);
    this.#buffered += data.length;
  }

  /**
   * @internal The peer's close ended this side's writing too (the multiplex format): as a socket without
   * `allowHalfOpen`, it ends once the reading side has (`'end'`), and the channel then closes.
   */
  writingEnded(): void {
    const end = (): void => {
      if ((this.#flags & (WRITE_ENDED | CLOSED)) !== 0) return;
      this.#flags |= ENDED_BY_PEER;
      this.end();
    };
    if ((this.#flags & END_EMITTED) !== 0) end();
    else this.once('end', end);
  }

  /** @internal */
  remoteEnded(): void {
    this.#flags |= REMOTE_ENDED;
    const pending = this.#pendingRead;
    if (pending !== null) {
      this.#pendingRead = null;
      this.#scheduleEnd();
      pending.resolve(DONE);
      return;
    }
    if ((this.#flags & FLOWING) !== 0 && this.#buffered === 0) this.#scheduleEnd();
  }

  /**
   * @internal The channel failed. When its session failed (not a reset), what arrived is still read
   * (users-asks row 26), whatever this side still had to write if something reads it: those writes (and a FIN
   * not sent) go nowhere, and the channel's error says so after the read. After the peer's FIN what arrived is
   * whole: it is read to `'end'`, and the channel fails only then (a peer that answered an upload still under
   * way with a reply, its FIN and the connection's end loses nothing). Without the FIN it may be cut short:
   * once the last of it is read, the channel fails, with no `'end'`.
   */
  fail(error: Error, sessionEnded = false): void {
    if ((this.#flags & CLOSED) !== 0) return;
    const ended = this.#flags & (REMOTE_ENDED | END_EMITTED);
    // With writes of its own still waiting, kept only while something reads it (a 'data' listener, an
    // iterator): an upload nobody reads would wait for ever for a read that never comes.
    const reading = this.#writing === 0 || (this.#flags & ITERATING) !== 0 || this.listenerCount('data') > 0;
    if (sessionEnded && reading && (ended === REMOTE_ENDED || (ended === 0 && this.#buffered > 0))) {
      this.#failure = error;
      this.#flags |= FAIL_AT_END;
      // A writer told to wait before the failure hears 'drain' as later writers do (see `write`): an echo that
      // waits for it before reading on would otherwise never read to the end.
      if ((this.#flags & NEED_DRAIN) !== 0) this.#drainLater();
      return;
    }
    this.#close(error);
  }

  /** 'drain' from a timer (a channel left only to be read: see `write`). */
  #drainLater(): void {
    this.#flags |= NEED_DRAIN;
    afterTime(() => {
      if ((this.#flags & (NEED_DRAIN | CLOSED)) !== NEED_DRAIN) return;
      this.#flags &= ~NEED_DRAIN;
      this.emit('drain');
    }, 0);
  }

  /** @internal */
  get bufferedBytes(): number {
    return this.destroyed ? 0 : this.#buffered; // (destroyed: dropped)
  }

  // ------------------------------------------------------------------ inside

  #written(length: number, error: Error | null | undefined): void {
    this.#writing -= length;
    if (length > 0) this.#writes--; // (0: the FIN's, which was not counted)
    if ((this.#flags & CLOSED) !== 0) return;
    if (error) {
      // Left to be read to its end (see `fail`): its writes fail with the session, and the read decides.
      if ((this.#flags & FAIL_AT_END) !== 0) return;
      // A live channel is failed by its session before its writes fail. One the session no longer holds (both
      // FINs exchanged while its last bytes, or its FIN, were still in the transport's hands) hears of the
      // failure only here, and must still end: with the error, once what the peer sent and this side has not
      // read yet was read (as when its session fails under it); at once when nothing waits to be read.
      // (Decided once the last write in the transport's hands has failed too, whatever their number.)
      if (!this.#state.live && this.#writing === 0) {
        if (this.#buffered > 0) this.fail(error, true);
        else this.#close(error);
      }
      return;
    }
    if ((this.#flags & NEED_DRAIN) !== 0 && this.#writeCost() < this.#port.highWaterMark) {
      this.#flags &= ~NEED_DRAIN;
      this.emit('drain');
    }
    if ((this.#flags & (WRITE_ENDED | FIN_SENT)) === (WRITE_ENDED | FIN_SENT) && this.#writing === 0) this.#finish();
  }

  /** What the writes waiting to reach the transport hold: their bytes, and each write's own objects. */
  #writeCost(): number {
    return this.#writing + this.#writes * CHUNK_COST;
  }

  #finish(): void {
    if ((this.#flags & (FINISHED | CLOSED)) !== 0) return;
    this.#flags |= FINISHED;
    this.emit('finish');
    if ((this.#flags & END_EMITTED) !== 0) this.#close(undefined, false);
  }

  /** Emits what the buffer holds while flowing, then 'end' if the peer has ended. */
  #flow(): void {
    const buffer = this.#buffer;
    if (buffer !== null) {
      // A 'data' listener's closeRead() or destroy() lets go of the buffer: what is left in it was dropped.
      while (
        (this.#flags & FLOWING) !== 0 &&
        buffer.length > 0 &&
        (this.#flags & CLOSED) === 0 &&
        this.#buffer === buffer
      ) {
        const chunk = buffer.shift()!;
        this.#buffered -= chunk.length;
        this.emit('data', chunk);
      }
      if (this.#buffer === buffer) {
        if (buffer.length === 0) this.#buffer = null;
        this.#port.readProgress(this.#state);
      }
    }
    if ((this.#flags & FLOWING) !== 0 && this.#buffered === 0) {
      if ((this.#flags & REMOTE_ENDED) !== 0) this.#scheduleEnd();
      else if ((this.#flags & (FAIL_AT_END | CLOSED)) === FAIL_AT_END) this.#close(this.#failure); // read out, no FIN
    }
  }

  #nextChunk(): Promise<IteratorResult<Uint8Array>> {
    const buffer = this.#buffer;
    if (buffer !== null && buffer.length > 0) {
      const chunk = buffer.shift()!;
      this.#buffered -= chunk.length;
      if (buffer.length === 0) this.#buffer = null;
      this.#port.readProgress(this.#state);
      return Promise.resolve({ value: chunk, done: false });
    }
    if (this.#failure !== undefined && (this.#flags & (FAIL_AT_END | REMOTE_ENDED)) !== (FAIL_AT_END | REMOTE_ENDED)) {
      // Failed; or, with no FIN to read up to, what arrived has been read: the error.
      if ((this.#flags & CLOSED) === 0) this.#close(this.#failure);
      return Promise.reject(this.#failure);
    }
    if ((this.#flags & CUT_SHORT) !== 0) return Promise.reject(resetHere(this.id, undefined));
    if ((this.#flags & (REMOTE_ENDED | CLOSED)) !== 0) {
      this.#scheduleEnd();
      return Promise.resolve(DONE);
    }
    if (this.#pendingRead !== null) return Promise.reject(new TypeError('muxwire: one read at a time'));
    return new Promise((resolve, reject) => {
      this.#pendingRead = { resolve, reject };
    });
  }

  #scheduleEnd(): void {
    if ((this.#flags & (END_DUE | END_EMITTED | CLOSED)) !== 0) return;
    this.#flags |= END_DUE;
    defer(() => {
      if ((this.#flags & CLOSED) !== 0) return;
      this.#flags |= END_EMITTED;
      this.emit('end');
      if ((this.#flags & FINISHED) !== 0) this.#close(undefined, false);
      else if ((this.#flags & FAIL_AT_END) !== 0) this.#close(this.#failure, false);
    });
  }

  /**
   * Ends the channel. Its last events come from a microtask when `later` (the caller is the application or the
   * session), at once otherwise (the caller is already one of the channel's own deferred steps).
   */
  #close(error: Error | undefined, later = true): void {
    // (An 'end' or 'finish' listener may have destroyed the channel before the step that called this.)
    if ((this.#flags & CLOSED) !== 0) return;
    this.#flags |= CLOSED;
    if (error !== undefined) this.#failure = error;
    else if ((this.#flags & END_EMITTED) === 0 && (this.#buffered > 0 || (this.#flags & REMOTE_ENDED) === 0)) {
      this.#flags |= CUT_SHORT;
    }
    this.#buffer = null;
    this.#buffered = 0;
    const pending = this.#pendingRead;
    this.#pendingRead = null;
    if (pending !== null) {
      if (error !== undefined) pending.reject(error);
      else if ((this.#flags & CUT_SHORT) !== 0) pending.reject(resetHere(this.id, undefined));
      else pending.resolve(DONE);
    }
    if (later) defer(() => this.#emitClose(error));
    else this.#emitClose(error);
  }

  #emitClose(error: Error | undefined): void {
    if (error !== undefined && this.listenerCount('error') > 0) this.emit('error', error);
    this.emit('close');
  }

  /** A `'data'` listener starts the flow, as on a Node stream (unless paused by hand). */
  protected override onListenerAdded(event: keyof LightChannelEvents): void {
    if (event === 'data' && (this.#flags & PAUSED) === 0) this.resume();
  }
}

function createLightChannel(state: ChannelState, port: ChannelPort<MuxSession<LightChannel>>): LightChannel {
  return new LightChannel(state, port);
}

/**
 * A session whose channels are {@link LightChannel}s, over any core {@link Transport} (a WebSocket or a
 * WHATWG stream pair adapted to it, or, in Node, `duplexTransport(socket)`; `lightClient` / `lightServer`
 * do that for a Node duplex).
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- the interface below declares the methods withNodeEmitterMethods installs
export class LightSession extends MuxSession<LightChannel> {
  constructor(transport: Transport, role: Role, options?: SessionOptions) {
    super(transport, role, options, createLightChannel, FULL_PARTS);
  }

  /**
   * Opens a channel and returns it at once, as every session's `dial()` does. A light channel stays writable
   * after the peer's FIN: `allowHalfOpen`, a Node `Session`'s option, throws `TypeError` here rather than be
   * ignored (the channel would never end by itself).
   */
  override dial(options?: DialOptions): LightChannel {
    if ((options as { allowHalfOpen?: unknown } | undefined)?.allowHalfOpen !== undefined) {
      throw new TypeError(
        "muxwire: allowHalfOpen is an option of a Node Session's dial(): a LightChannel stays writable after the peer's FIN (end() it then)",
      );
    }
    return super.dial(options);
  }
}
withNodeEmitterMethods(LightSession);
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type -- declares the installed methods
export interface LightSession extends NodeEmitterMethods<SessionEvents<LightChannel>> {}
