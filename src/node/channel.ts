/**
 * The Node `Channel`: a channel as a `stream.Duplex` with a socket's parts (see the class).
 * @module
 */
import { AsyncResource } from 'node:async_hooks';
import { Duplex } from 'node:stream';
import { type ChannelFacts, installChannelFacts } from '../core/channel-facts.js';
import type { ChannelPort } from '../core/channel-port.js';
import type { ChannelEndpoint, ChannelState, ChannelStateName } from '../core/channel-state.js';
import { callBack, rethrowLater } from '../core/defer.js';
import { asUint8Array, lostBytes } from '../core/bytes.js';
import { brokenWrite, isError, writeAfterPeerClose } from '../core/errors.js';
import { CHUNK_COST } from '../core/flow.js';
import { type ChannelStats, channelStats } from '../core/observe.js';
import type { MuxSession } from '../core/session.js';
import { EncodedCount } from './encoded-count.js';
// Types only: session.ts makes the channels, so a value import here would be a cycle.
import type { Session } from './session.js';

/** A write's callback: called once, without an error when its bytes reached the transport, with one if they never will. */
export type WriteCallback = (error?: Error | null) => void;

/**
 * A write's completion, to run in the async context of the call that made the write, as a socket's does (its
 * `WriteWrap`). The session writes every channel's bytes of a turn together, from the context that started the
 * turn: without this, one request's `AsyncLocalStorage` store (a trace's span) was seen in the write callbacks,
 * `end()` callbacks and `'finish'` of every other channel written in the same turn.
 */
function inWritersContext(callback: WriteCallback, channel?: Channel): WriteCallback {
  const context = new AsyncResource('MUXWIRE_WRITE');
  return (error) => {
    if (error && channel?.failsAfterEnd(() => context.runInAsyncScope(callback, null, error))) return;
    context.runInAsyncScope(callback, null, error);
  };
}
/**
 * A write's own callback, kept from breaking the channel when it throws. Node's `Writable` calls it in the middle
 * of its completion of a write that finished later than the call, and a throw skips the rest: `end()` then never
 * finishes (no FIN, the channel open until its session's close times out), as on a socket whose write waited. A
 * channel's writes always complete later. The exception still surfaces as uncaught, a microtask later.
 */
function guarded(callback: WriteCallback): WriteCallback {
  return (error) => callBack(callback, error);
}
/** How long a channel closed by `destroy()` as a socket (see `#closeAsSocket`) waits for the peer's FIN. */
const CLOSE_LINGER_MS = 2000;
/** The `'error'` listener a failing channel with none of its own gets (see `#destroyFailed`). */
const ignoreError = (): void => {};

/**
 * The fields of Node's `WritableState` read or set here (not public API; test/node-internals.test.ts): the
 * flag `write()` sets, and the count of writes the stream still holds for `_write`.
 */
interface WritableInternals {
  _writableState: { needDrain: boolean; bufferedRequestCount: number };
}

/** The address fields of a `net.Socket`, which a session's transport has when it is one (or a TLS socket). */
interface SocketAddresses {
  remoteAddress?: string;
  remotePort?: number;
  remoteFamily?: string;
  localAddress?: string;
  localPort?: number;
}

/**
 * A channel's idle timer (`setTimeout`), made only for channels that ask for one. One timer per channel, not
 * re-armed on every byte: activity only stamps the time, and the timer, when it fires early, waits out the
 * rest (as Node's own socket timeouts do).
 */
class IdleTimer {
  /** When bytes last moved (`performance.now()`): set through `touch()`. */
  last = performance.now();
  /** No timer is armed: 'timeout' came and nothing moved since (the next activity arms it again). */
  #sleeping = false;
  /** `last` as it was when 'timeout' was last emitted: one 'timeout' per idle period, as on a socket. */
  #firedFor = -1;
  #timer: ReturnType<typeof setTimeout>;
  #stopped = false;
  /** The channel's queued bytes when the timer last looked. */
  #queuedWhenLooked = 0;

  constructor(
    readonly ms: number,
    private readonly onIdle: () => void,
    /** Bytes written to the channel and not yet sent (its `queuedBytes`). */
    private readonly queued: () => number,
  ) {
    this.#queuedWhenLooked = queued();
    this.#timer = this.#arm(ms);
    // A write made just before (in this turn) usually leaves within it: looked at again once it had the chance,
    // its leaving counts as activity then, not at the first look a whole period later (a 'timeout' after 2 ms).
    if (this.#queuedWhenLooked > 0) setImmediate(() => this.#look());
  }

  /**
   * One large write leaving bit by bit as the peer's window allows is activity too, though no new write or data
   * stamped it: as a socket compares its write queue's size, a queue that moved since the last look counts as a
   * byte sent now.
   */
  #look(): void {
    const queued = this.queued();
    if (queued !== this.#queuedWhenLooked) {
      this.#queuedWhenLooked = queued;
      this.last = performance.now();
    }
  }

  #arm(delay: number): ReturnType<typeof setTimeout> {
    // unref'd as a net.Socket's: a timeout on a channel never keeps the process alive by itself.
    return setTimeout(() => {
      this.#look();
      const idle = performance.now() - this.last;
      if (idle + 1 >= this.ms && this.#firedFor !== this.last) {
        this.#firedFor = this.last;
        try {
          this.onIdle();
        } catch (error) {
          rethrowLater(error); // uncaught, as from a socket's 'timeout' listener; the timer still goes on below
        }
        // The listener may have destroyed the channel or set another timeout: this timer is then done.
        if (this.#stopped) return;
      }
      // 'timeout' does not close the channel. As on a socket, it comes again only after activity and another
      // idle period: a channel that stays idle arms no timer until bytes move (`touch()`). Only one with a
      // write still queued keeps looking, every `ms`, since nothing touches it when that write moves on.
      if (this.#firedFor === this.last && this.queued() === 0) {
        this.#sleeping = true;
        return;
      }
      const wait = this.#firedFor === this.last ? this.ms : this.ms - (performance.now() - this.last);
      this.#timer = this.#arm(Math.max(1, wait));
    }, delay).unref();
  }

  /** Bytes moved now; a timer asleep since the last 'timeout' is armed again. */
  touch(): void {
    this.last = performance.now();
    if (this.#sleeping && !this.#stopped) {
      this.#sleeping = false;
      this.#queuedWhenLooked = this.queued();
      this.#timer = this.#arm(this.ms);
    }
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }
}

/** A failed channel left to be read: what it waits for, and what waits on it. */
interface KeptToRead {
  /** Callbacks of `end()` made meanwhile: called with the failure once the channel is destroyed. */
  held: WriteCallback[];
  /** No FIN came: the channel fails once what arrived is read (with the FIN it fails after 'end'). */
  failWhenRead: boolean;
  /** A check for that is due on the next tick. */
  checkDue: boolean;
  /** The last read asked for more bytes than are left (`read(n)`): with no more to come, it never gets them. */
  askedTooMuch: boolean;
}

/** Stands in for a channel's `emit` while `closeRead()` drops what the channel holds: no `'data'` gets out. */
function emitAllButData(this: Channel, event: string | symbol, ...args: unknown[]): boolean {
  return event === 'data' ? false : Duplex.prototype.emit.call(this, event, ...args);
}

/**
 * A channel as a Node `stream.Duplex` of bytes: `write()`/`end()` (FIN, half-close), `destroy()` (RST),
 * `'end'` when the peer half-closes, `'error'` with a typed error when the channel is reset or its session
 * fails. Backpressure works as on any Node stream: `write()` returns false until `'drain'`.
 *
 * It also has the parts of `net.Socket` that Node's http client and server and libraries such as undici
 * touch (`setTimeout` and `'timeout'`, `setKeepAlive`, `setNoDelay`, `ref`, `unref`, addresses, byte
 * counts), so a channel can stand where they expect a socket.
 */
export class Channel extends Duplex implements ChannelEndpoint, ChannelFacts<Session> {
  readonly #state: ChannelState;
  readonly #port: ChannelPort<MuxSession<Channel>>;
  #failure: Error | undefined;
  #bytesRead = 0;
  #bytesWritten = 0;
  /** Writes Node's `Writable` holds for `_write`/`_writev` (see `write()`); below 0 after `end(data)`, harmless. */
  #waitingWrites = 0;
  /**
   * With an encoding set (`setEncoding()`), the bytes behind what waits: `readableLength` counts the decoded
   * characters then, which are fewer (UTF-8 text) or more (hex) than the bytes the window credits.
   */
  #encoded: EncodedCount | undefined;
  /** The idle timer; 0 once `setTimeout(0)` turned it off (the `timeout` a socket reports then), in one slot. */
  #idle: IdleTimer | 0 | undefined;
  /** Set only while a failed channel is left to be read (see `fail`): one field, so other channels pay one slot. */
  #kept: KeptToRead | undefined;
  /** The last `read(n)` found fewer than n bytes (a parser waits for the rest). */
  #shortRead = false;

  /**
   * A dialled channel's async context: that of the `dial()` call, as a socket's events run in the context of
   * `net.connect()`. What the session tells the channel (data, the peer's end, a failure) runs in it, not in
   * the context that read the transport (the session's: one request's, when the first request made it). An
   * accepted channel has none: its events run in the transport's context, as an accepted socket's do.
   */
  readonly #context: AsyncResource | undefined;

  /** Channels are made by their session (`dial()`, `accept()`), not by hand. */
  constructor(state: ChannelState, port: ChannelPort<MuxSession<Channel>>) {
    const highWaterMark = port.highWaterMark;
    super({ allowHalfOpen: true, readableHighWaterMark: highWaterMark, writableHighWaterMark: highWaterMark });
    this.#state = state;
    this.#port = port;
    this.#context = state.outbound ? new AsyncResource('MUXWIRE_CHANNEL') : undefined;
    // Node's Readable schedules a tick after every push to call `_read` until the high-water mark is reached
    // (`maybeReadMore`). A channel's data arrives by itself, whether `_read` is called or not, so that tick
    // (an allocation and a task per chunk, a tenth of a request/response's garbage) does nothing useful.
    // Marking the read-more pass as already running keeps Node from scheduling it; flowing, 'readable',
    // pipe and async iteration are driven by their own paths. Not public API, kept for its figure: ~300 bytes
    // less garbage per request/response on rr-1 (measured when it was added, commit eec3eb2). Node has no
    // public switch for it; test/node-internals.test.ts fails if a Node release renames or ignores the field.
    (this as unknown as { _readableState: { readingMore: boolean } })._readableState.readingMore = true;
  }

  // id, session, protocolState, receiveWindow, outbound: defined once for every kind of channel (channel-facts.ts).
  static {
    installChannelFacts(
      Channel.prototype,
      (channel) => channel.#state,
      (channel) => channel.#port.session,
    );
  }

  // Their documentation is ChannelFacts' (editors and TypeDoc take it from the interface this class implements).
  declare readonly id: number;
  declare readonly session: Session;
  declare readonly protocolState: ChannelStateName;
  declare readonly receiveWindow: number;
  declare readonly outbound: boolean;

  /** A snapshot of this channel's figures: bytes each way, queued and unread bytes, both windows, stalled or not. */
  stats(): ChannelStats {
    return channelStats(this.#state);
  }

  /**
   * Why the channel ended abnormally (reset by the peer, session failure, `destroy(error)` here), if it did. The same error is
   * emitted as `'error'` when the channel has an error listener; without one the channel just closes, so an
   * unobserved reset never crashes the process.
   */
  get failure(): Error | undefined {
    return this.#failure;
  }

  // ------------------------------------------------- what Node's http, undici and other socket users touch

  /** Payload bytes received on this channel (as `net.Socket#bytesRead`). */
  get bytesRead(): number {
    return this.#bytesRead;
  }

  /**
   * Payload bytes this channel has handed to its session to send (as `net.Socket#bytesWritten`): those the
   * session still queues (behind the peer's window or other channels) and those already sent. Bytes still in
   * the stream's own buffer (`writableLength`, beyond the high-water mark) are not yet counted.
   */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  #addresses(): SocketAddresses {
    return (this.#port.session as { socket?: SocketAddresses }).socket ?? {};
  }

  /** The peer's address, from the session's transport when it is a TCP or TLS socket; otherwise undefined. */
  get remoteAddress(): string | undefined {
    return this.#addresses().remoteAddress;
  }

  /** The peer's port, from the session's transport when it is a TCP or TLS socket. */
  get remotePort(): number | undefined {
    return this.#addresses().remotePort;
  }

  /** `'IPv4'` or `'IPv6'`, from the session's transport when it is a TCP or TLS socket. */
  get remoteFamily(): string | undefined {
    return this.#addresses().remoteFamily;
  }

  /** This side's address, from the session's transport when it is a TCP or TLS socket. */
  get localAddress(): string | undefined {
    return this.#addresses().localAddress;
  }

  /** This side's port, from the session's transport when it is a TCP or TLS socket. */
  get localPort(): number | undefined {
    return this.#addresses().localPort;
  }

  /** False: a channel is usable as soon as it is returned (present because http checks it on sockets). */
  // A getter on the prototype, not a field: a field would cost memory in every channel.
  // eslint-disable-next-line @typescript-eslint/class-literal-property-style
  get connecting(): boolean {
    return false;
  }

  /** False while the channel is open (it never waits to connect), true once destroyed, as `net.Socket#pending`. */
  get pending(): boolean {
    return this.destroyed;
  }

  /**
   * As `net.Socket#readyState`: `'open'` while both directions are, `'readOnly'` once writing ended,
   * `'writeOnly'` once reading ended, `'closed'` when neither is left.
   */
  get readyState(): 'open' | 'readOnly' | 'writeOnly' | 'closed' {
    if (this.readable) return this.writable ? 'open' : 'readOnly';
    return this.writable ? 'writeOnly' : 'closed';
  }

  /**
   * This side's address as `net.Socket#address()` gives it (`{ address, family, port }`), from the session's
   * transport when it is a TCP or TLS socket; otherwise, and once destroyed, `{}`, as a socket without a
   * connection.
   */
  address(): { address?: string; family?: string; port?: number } {
    const socket = (this.#port.session as { socket?: { address?: () => object } }).socket;
    return typeof socket?.address === 'function' && !this.destroyed ? socket.address() : {};
  }

  /**
   * Ends writing (FIN after everything written, none of it cut short), as `net.Socket#destroySoon()` does
   * before it closes; Node's http client and server call it after a connection's last response. The channel
   * then closes as after `end()`: once the peer's FIN has come and what arrived was read. Unlike a socket, it
   * does not drop what still arrives: a channel answers such data with a reset, which would fail the peer's
   * channel before it read this side's last bytes (an early reply to an upload, say).
   */
  destroySoon(): void {
    if (!this.destroyed && this.writable) this.end();
  }

  /**
   * Resets the channel (RST) and destroys it, as `net.Socket#resetAndDestroy()` does to a TCP connection: the
   * peer's reads and writes on it fail with `ChannelResetError`, even after `end()`, where `destroy()` without
   * an error closes without a reset once nothing would be lost (see `#closeAsSocket`). Code that means an abort
   * should call this one.
   */
  resetAndDestroy(): this {
    this.destroy();
    this.#port.reset(this.#state, undefined); // (a no-op when `destroy()` reset it, or it had left the session)
    return this;
  }

  /** The idle timeout set by `setTimeout`, in ms (0 once turned off), or undefined if never set (as `net.Socket#timeout`). */
  get timeout(): number | undefined {
    const idle = this.#idle;
    return idle === undefined || idle === 0 ? idle : idle.ms;
  }

  /**
   * Emits `'timeout'` after `ms` milliseconds without bytes in either direction, and again after each further
   * idle period; 0 turns it off. As on a socket, the channel stays open: the listener decides (Node's http
   * server and keep-alive agent destroy idle sockets this way). `callback` is added as a one-time `'timeout'`
   * listener (`once`), as a socket adds it; `setTimeout(0, callback)` removes it.
   */
  setTimeout(ms: number, callback?: () => void): this {
    if (typeof ms !== 'number') throw new TypeError(`muxwire: channel timeout must be a number, got ${typeof ms}`);
    if (!(ms >= 0)) throw new RangeError(`muxwire: channel timeout must be a number of ms, 0 or more, got ${ms}`);
    // As a socket does (Node's http server asks for keepAliveTimeout + 1 s): longer than a timer can wait
    // is the longest it can wait.
    if (ms > 0x7fff_ffff) ms = 0x7fff_ffff;
    // A destroyed socket takes no timeout and no listener either.
    if (this.destroyed) return this;
    if (this.#idle) this.#idle.stop();
    this.#idle =
      ms > 0
        ? new IdleTimer(
            ms,
            () => this.emit('timeout'),
            () => this.#state.queuedBytes,
          )
        : 0;
    if (callback !== undefined) {
      if (ms > 0) this.once('timeout', callback);
      else this.off('timeout', callback);
    }
    return this;
  }

  /**
   * Accepted for socket compatibility; does nothing: the session's keep-alive pings watch the whole
   * connection (options `keepAliveInterval`, `keepAliveTimeout`), so one channel needs no probes of its own.
   */
  setKeepAlive(_enable?: boolean, _initialDelay?: number): this {
    return this;
  }

  /**
   * Accepted for socket compatibility; does nothing: the session already sends what is written within the
   * same event-loop turn, with Nagle's algorithm off on its socket, so there is no delay to turn off.
   */
  setNoDelay(_noDelay?: boolean): this {
    return this;
  }

  /**
   * Accepted for socket compatibility; does nothing: a channel holds no event-loop handle (its idle timer is
   * unref'd). What keeps the process alive is the session's transport: `ref`/`unref` that socket instead.
   */
  ref(): this {
    return this;
  }

  /** See `ref()`: a channel never keeps the process alive by itself; the session's socket does. */
  unref(): this {
    return this;
  }

  /** Half-closes: sends FIN after the data already written; reading goes on until the peer's FIN. Same as `end()`. */
  closeWrite(): this {
    this.end();
    return this;
  }

  /**
   * Stops reading: data still buffered is dropped (no `'data'` event sees it), data that arrives later is
   * discarded as it comes, its window credit going back to the peer at once so the peer's writes never stall
   * on this channel, and the readable side ends (`'end'`). Writing goes on. The peer is not told (yamux has
   * no frame for it). Once writing has ended too and the channel has closed here, the session waits for the
   * peer's FIN; data the peer still sends then, beyond a few small writes (a peer's last words before it heard
   * of the close), draws a reset (the peer's writes fail with `ChannelResetError`), as TCP answers data for a
   * closed socket.
   */
  closeRead(): this {
    if (this.#state.readClosed || this.destroyed) return this;
    this.#port.closeRead(this.#state);
    if (!this.#state.remoteFin) this.#watchHalfOpen(); // (else the peer's FIN did)
    this.push(null); // (ignored when the peer's FIN already ended the readable side)
    // Read out what Node holds, so that 'end' follows; `read()` credits it to the peer as read. Node has no
    // public way to drop a readable's buffer unseen, and `read()` emits 'data' for each chunk: an own `emit`
    // that swallows 'data' for the length of this loop keeps them from the application (removing and
    // re-adding the 'data' listeners instead would reorder them and touch the flowing state).
    // test/node-internals.test.ts fails if `read()` stops emitting through the instance's `emit`.
    this.emit = emitAllButData;
    try {
      while (this.read() !== null);
    } finally {
      Reflect.deleteProperty(this, 'emit');
    }
    return this;
  }

  /**
   * Node's `write()`, with a cost for each write that waits: besides its bytes, a write held in the stream's
   * buffer is an object or two, so a writer of a few bytes at a time (an echo of a peer's one-byte frames) would
   * hold tens of times the high-water mark in memory before `write()` said false. Here a waiting write counts
   * 224 bytes beside its own (the session's figure for a chunk waiting unread, `CHUNK_COST`): `write()` returns
   * false once they reach the high-water mark, and `'drain'` comes, as always, once everything written has left.
   */
  override write(chunk: unknown, encoding?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean {
    // Told of its session's end before Node counts this write as waiting (see `ChannelPort.catchUp`).
    if (!this.#state.live) this.#port.catchUp(this.#state);
    // Node refuses (with an error) a write after end() or destroy(): nothing waits then.
    const taken = !this.writableEnded && !this.destroyed;
    if (typeof encoding === 'function') encoding = guarded(encoding);
    else if (typeof callback === 'function') callback = guarded(callback);
    const ok = super.write(chunk, encoding as BufferEncoding, callback);
    if (!taken) return ok;
    // (When nothing was in flight, `_write` took it within the call and counted it taken.)
    const waiting = ++this.#waitingWrites;
    if (ok && waiting > 0 && this.writableLength + waiting * CHUNK_COST >= this.writableHighWaterMark) {
      // Node's own flag: its 'drain' comes when the buffer empties (test/node-internals.test.ts checks it).
      (this as unknown as WritableInternals)._writableState.needDrain = true;
      return false;
    }
    return ok;
  }

  /** Node's `end()`, told of its session's end first as `write()` is (its data is written without `write()`). */
  override end(chunk?: unknown, encoding?: unknown, callback?: unknown): this {
    if (!this.#state.live) this.#port.catchUp(this.#state);
    return super.end(chunk as never, encoding as BufferEncoding, callback as () => void);
  }

  /** @hidden Node's `Duplex` calls it. */
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: WriteCallback): void {
    this.#waitingWrites--;
    if (this.#refuseWrite(callback)) return;
    // Its bytes as the built-ins see them: the frame's length and the bytes the socket sends are then the same,
    // whatever an own `length` property says. Transferred (to a worker) or shrunk while it waited in the stream's
    // buffer: its bytes are gone (Node counted them: a Buffer's length is fixed, so it reads 0).
    const bytes = asUint8Array(chunk)!;
    if (bytes.length === 0 && lostBytes(chunk)) {
      callback(brokenWrite(this.id));
      return;
    }
    this.#bytesWritten += bytes.length;
    if (this.#idle) this.#idle.touch();
    this.#port.write(this.#state, bytes, inWritersContext(callback, this));
  }

  /** @hidden Node's `Duplex` calls it. */
  override _writev(chunks: { chunk: Buffer }[], callback: WriteCallback): void {
    this.#waitingWrites -= chunks.length;
    if (this.#refuseWrite(callback)) return;
    // Each chunk's bytes as the built-ins see them, and none that lost its bytes, as in _write.
    const views: Uint8Array[] = [];
    for (const { chunk } of chunks) {
      const bytes = asUint8Array(chunk)!;
      if (bytes.length === 0 && lostBytes(chunk)) {
        callback(brokenWrite(this.id));
        return;
      }
      views.push(bytes);
    }
    // The callback goes with the last bytes: an empty chunk's write is done at once, and would tell Node the
    // whole batch had left while the chunks before it still wait for window.
    let last = views.length - 1;
    while (last > 0 && views[last]!.length === 0) last--;
    for (let i = 0; i < last; i++) {
      const bytes = views[i]!;
      if (bytes.length === 0) continue;
      this.#bytesWritten += bytes.length;
      this.#port.write(this.#state, bytes, null);
    }
    this.#bytesWritten += views[last]!.length;
    if (this.#idle) this.#idle.touch();
    this.#port.write(this.#state, views[last]!, inWritersContext(callback, this));
  }

  /**
   * A channel whose session failed is left open only for its peer's data to be read to the end (see `fail`):
   * a write then fails it, as a failed channel (an `'error'` only for a listener; Node would otherwise emit
   * the write's error with nobody listening, which ends the process). True when the write was refused.
   */
  #refuseWrite(callback: WriteCallback): boolean {
    const failure = this.#failure;
    if (failure === undefined) {
      // Writing ended before the application's end() (which comes after every write): the peer closed the
      // channel both ways (the multiplex format has no half-close), and takes nothing more. The write fails the
      // channel as a reset would, with an 'error' only for a listener: an echo that answers a peer which wrote
      // and closed at once must not end the process.
      if (!this.#state.localFin) return false;
      callback(this.#failAfterPeerClose());
      return true;
    }
    if (this.#kept !== undefined) {
      // Left to be read to its end: the write is taken and goes nowhere (its session is gone), as bytes a
      // socket took before its connection was reset; the channel's failure says so once the peer's data was
      // read. Its callback comes on the next turn of the event loop: held until the failure, it kept an echo
      // (`pipe`, `pipeline`) waiting for a 'drain' that never came, and a bound by what was read held readers
      // that write more than they read; called at once, it let a writer that does not read spin without
      // giving the event loop a turn. A timer, not setImmediate: a writer that never reads goes on a high-water
      // mark a millisecond or so, not at the full speed of the loop (a core kept busy writing into nowhere).
      setTimeout(callback, 0);
      return true;
    }
    this.#destroyFailed(failure);
    callback(failure);
    return true;
  }

  /**
   * Fails the channel for a write its peer's close refused (a closed one only says why); returns the error.
   * `notHalfOpen`: writing ended with reading because `allowHalfOpen` is false (else: the multiplex format's close).
   */
  #failAfterPeerClose(notHalfOpen = false): Error {
    if (this.destroyed) return this.#failure ?? writeAfterPeerClose(this.id, notHalfOpen);
    const error = (this.#failure ??= writeAfterPeerClose(this.id, notHalfOpen));
    this.#destroyFailed(error);
    return error;
  }

  /** A write after the peer's close ended writing (see `writingEnded`): fails the channel, calls `callback` later. */
  #refuseAfterPeerClose(encoding: unknown, callback: unknown, notHalfOpen: boolean): false {
    const done = (typeof encoding === 'function' ? encoding : callback) as WriteCallback | undefined;
    const error = this.#failAfterPeerClose(notHalfOpen);
    if (done !== undefined) process.nextTick(done, error);
    return false;
  }

  /** @hidden Node's `Duplex` calls it. */
  override _final(callback: WriteCallback): void {
    // The session failed under a channel left to be read (see `fail`): this side's FIN cannot go. What the
    // peer sent is still read to 'end', after which the channel fails; otherwise it fails now, as a failed one
    // (an 'error' only for a listener).
    if (this.#failure !== undefined) {
      if (this.#kept !== undefined) this.#kept.held.push(callback);
      else this.#destroyFailed(this.#failure);
      return;
    }
    // 'finish' once the FIN reached the transport, as a socket's comes after its shutdown: ending the transport
    // (or destroying the session) from a 'finish' listener still sends it.
    this.#port.end(
      this.#state,
      inWritersContext((error) => {
        if (!error) {
          callback();
          return;
        }
        // The FIN's write failed. A channel still in its session was failed by it first; one that had left it
        // (both FINs exchanged) hears only here: what the peer sent and this side has not read yet is still read to
        // its end, then it fails, as when its session fails under it; with nothing to read, it fails now, with an
        // 'error' only for a listener (never Node's own unhandled one).
        if (this.#failure === undefined && !this.destroyed) {
          if (this.readableLength > 0) this.fail(error, true);
          else {
            this.#failure = error;
            this.#destroyFailed(error);
          }
        }
        // (On a stream already destroyed, Node only hands the error on to `end()`'s callback and `finished()`.)
        if (this.#kept !== undefined) this.#kept.held.push(callback);
        else callback(error);
      }),
    );
  }

  /**
   * Reads chunk by chunk to the peer's FIN (`for await`, and `stream/consumers`, which reads so). Reading to the
   * end leaves the channel open for writing, as an http2 stream and a `LightChannel` do: a request read whole,
   * then its reply (`await text(channel); channel.end(reply)`). (`iterator()`, Node's own, destroys the channel
   * at the end, which resets the reply: on Node 20 and 22 a socket's iterator does the same.) Leaving the loop
   * before it saw the end (`break`, `return`, an exception, also after the last chunk) destroys the channel,
   * as Node's does.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as Readable's: strings after setEncoding()
  override [Symbol.asyncIterator](): NodeJS.AsyncIterator<any> {
    const chunks = this.iterator({ destroyOnReturn: false });
    // Whether the loop saw the end: the channel's 'end' comes a tick after its last chunk was taken, so a loop
    // that throws (or awaits, then breaks) on that chunk would otherwise count as read to the end.
    let sawEnd = false;
    return {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as above
      next: async (): Promise<IteratorResult<any>> => {
        const result = await chunks.next();
        if (result.done === true) sawEnd = true;
        return result;
      },
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as above
      return: async (value?: unknown): Promise<IteratorResult<any>> => {
        // Decided now: Node queues this return behind a read still waiting, which the peer's FIN may yet end.
        const leftEarly = !sawEnd;
        const result = await chunks.return!(value);
        if (leftEarly) this.destroy();
        return result;
      },
      throw: (error?: unknown) => chunks.throw!(error),
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  /** @hidden Node's `Duplex` calls it. */
  override _read(): void {
    this.#port.readProgress(this.#state);
  }

  // Node calls `_read` only now and then; every consumption of buffered data goes through `read()`
  // (flowing mode, pipe, async iteration, explicit reads), so window credit is accounted here.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Readable#read returns any
  override read(size?: number): any {
    const encoded = this.#encoded;
    encoded?.readStarted();
    const chunk: unknown = super.read(size);
    // What this call took, by its own length: a 'data' listener (called within it) may read or unshift too.
    encoded?.readEnded(chunk === null ? 0 : (chunk as { length: number }).length, this.readableLength === 0);
    // (Node's own read(0) calls ask for nothing.)
    this.#shortRead = chunk === null && size !== undefined && size > 0;
    if (chunk !== null) this.#port.readProgress(this.#state);
    // A `read(n)` that waits for more than is buffered (a parser's record): only bytes read earn the peer
    // credit, so the session makes sure n bytes can arrive (the window grows to n, credit for what was read
    // goes back now). With an encoding, n counts characters: up to 4 bytes each.
    else if (size !== undefined && size > this.readableLength) {
      const wanted = encoded === undefined ? size : encoded.bytes + (size - this.readableLength) * 4;
      this.#port.readProgress(this.#state, wanted);
    }
    // The session failed before the peer's FIN: once what arrived has been read (or a read asked for more than
    // is left), the error follows, as 'end' would (on the next tick: a parser may unshift part of the last chunk).
    const kept = this.#kept;
    if (kept?.failWhenRead) {
      kept.askedTooMuch = this.#shortRead;
      if (this.readableLength === 0 || kept.askedTooMuch) this.#failSoon(kept);
    }
    return chunk;
  }

  #failSoon(kept: KeptToRead): void {
    if (kept.checkDue) return;
    kept.checkDue = true;
    process.nextTick(() => {
      kept.checkDue = false;
      // Still nothing left, or the last read wanted more than is left (no more can come): the error.
      if (!this.destroyed && (this.readableLength === 0 || kept.askedTooMuch)) this.#destroyFailed(this.#failure!);
    });
  }

  /** @hidden Node's `Duplex` calls it. */
  override _destroy(error: Error | null, callback: WriteCallback): void {
    // A failed write can destroy the stream before the session reports the failure: keep the reason.
    // A local destroy(error) too, as a LightChannel keeps it.
    if (isError(error) && this.#failure === undefined) this.#failure = error;
    if (this.#idle) this.#idle.stop(); // (kept stopped: `timeout` still says what was set, as a socket's)
    if (error == null) this.#closeAsSocket();
    // Both halves ended normally (autoDestroy after 'end' and 'finish'): the FINs close it, no RST.
    this.#port.release(this.#state, error ?? undefined);
    callback(error);
    const kept = this.#kept;
    this.#kept = undefined;
    if (kept !== undefined) for (const write of kept.held) callBack(write, this.#failure); // `fail` set it, keeping it
  }

  /**
   * A `destroy()` without an error closes as a socket's close does where that loses nothing: writing ended
   * (`end()` called, every write handed to the session: the FIN goes after them) and nothing left unread. No
   * RST then: the channel drops what still comes, and the session keeps it until the peer's FIN (data draws a
   * reset then, beyond a peer's last few small writes, as TCP answers data for a closed socket), for at most
   * {@link CLOSE_LINGER_MS} once its FIN left. Node's TLS wrapper of a stream destroys it as soon as its own
   * close went out, and the http client right after ending a `Connection: close` exchange: a RST there cut off
   * the peer's last reads (an https response). Anything else is an abort: a RST (`release`).
   */
  #closeAsSocket(): void {
    const state = this.#state;
    if (!state.live || this.readableLength > 0 || !this.writableEnded) return;
    if ((this as unknown as WritableInternals)._writableState.bufferedRequestCount > 0) return; // not all sent
    if (!state.localFin) this.#port.end(state); // (end() called, its _final not run yet)
    if (state.remoteFin) return;
    this.#port.closeRead(state);
    // Not for ever: a peer that keeps its side open past the linger, counted from when the FIN left (what was
    // written before it still goes out first), gets a RST, which frees the channel's place (its stream limits,
    // a closing session's wait), as TCP drops a closed socket the peer never answers.
    // The timer holds the channel weakly: once the peer's answer took it out of the session, what the
    // application hung on it goes with it, not 2 s later (a client ending 1,000 requests a second held 2,000).
    const port = this.#port;
    const held = new WeakRef(state);
    const linger = (): void => {
      const state = held.deref();
      if (!state?.live) return;
      if (!state.finSent) setTimeout(linger, CLOSE_LINGER_MS).unref();
      // (Not on a format whose close ends both ways: its rules keep the channel until the peer answers.)
      else if (!state.readCut) port.reset(state, undefined);
    };
    setTimeout(linger, CLOSE_LINGER_MS).unref();
  }

  /** @internal */
  deliver(data: Uint8Array): void {
    const context = this.#context;
    if (context === undefined) this.#deliver(data);
    else context.runInAsyncScope(this.#deliver, this, data);
  }

  #deliver(data: Uint8Array): void {
    this.#bytesRead += data.length;
    if (this.#idle) this.#idle.touch();
    const encoded = this.#encoded;
    if (encoded === undefined) {
      this.#push(data);
      return;
    }
    const waiting = this.readableLength;
    this.#push(data);
    // (Nothing waits when a 'data' listener took it at once.)
    if (this.readableLength === 0) encoded.clear();
    else encoded.added(this.readableLength - waiting, data.length);
  }

  /**
   * `push()`, which runs the 'data' listeners of a flowing channel: one that throws surfaces as an uncaught
   * exception, as from a socket's, instead of inside the session, which took it for its own failure and ended
   * every channel with `ERR_MUX_INTERNAL`.
   */
  #push(data: Uint8Array): void {
    try {
      this.push(data);
    } catch (error) {
      rethrowLater(error);
    }
  }

  override setEncoding(encoding: BufferEncoding): this {
    // What waits is decoded now and counted in characters from here on: its bytes are kept beside.
    const bytes = this.#encoded?.bytes ?? this.readableLength;
    super.setEncoding(encoding);
    const encoded = (this.#encoded = new EncodedCount(this.readableEncoding ?? encoding));
    encoded.added(this.readableLength, bytes);
    return this;
  }

  /**
   * Node's `unshift()`: puts `chunk` back in front of what waits to be read (a parser that read past the end
   * of its message).
   */
  override unshift(chunk: unknown, encoding?: BufferEncoding): void {
    const encoded = this.#encoded;
    const waiting = this.readableLength;
    super.unshift(chunk, encoding);
    if (encoded === undefined || chunk === null || chunk === undefined) return;
    const bytes =
      typeof chunk === 'string'
        ? Buffer.byteLength(chunk, encoding ?? this.readableEncoding ?? 'utf8')
        : (chunk as Uint8Array).length;
    encoded.putBack(this.readableLength - waiting, bytes);
  }

  /**
   * @internal A write failed (its transport closed under it) after the peer's FIN arrived and before a reader
   * reached it: Node destroys a stream whose write fails, and the channel's `'end'` was lost though every byte
   * before it was here (a WebSocket peer that closed right after its last messages). The failure waits for
   * `'end'`, as a session's failure does (see `fail`); true if it waits. Either way the failure is an
   * `'error'` only for a listener.
   */
  failsAfterEnd(fail: () => void): boolean {
    // Node destroys the channel with the write's error (a write failing before its session told the channel of
    // its end had ended the process without a listener).
    this.#errorOnlyForListener();
    if (!this.#state.remoteFin || this.readableEnded || this.destroyed) return false;
    if (this.readableFlowing !== true && this.listenerCount('readable') === 0) return false; // no reader: now
    this.prependOnceListener('end', () => process.nextTick(fail));
    return true;
  }

  /** A failure of the channel is an `'error'` only for a listener: without one, it just closes. */
  #errorOnlyForListener(): void {
    if (this.listenerCount('error') === 0) this.once('error', ignoreError);
  }

  /** @internal */
  remoteEnded(): void {
    const context = this.#context;
    if (context === undefined) this.#pushEnd();
    else context.runInAsyncScope(this.#pushEnd, this);
  }

  /** `push(null)`, whose `'readable'` listeners run at once: one that throws surfaces as `#push`'s do. */
  #pushEnd(): void {
    this.#watchHalfOpen();
    try {
      this.push(null);
    } catch (error) {
      rethrowLater(error);
    }
  }

  /**
   * @internal The peer's close ended this side's writing too (the multiplex format). As on a socket without
   * `allowHalfOpen`, the writing side ends once the reading side has (`'end'`), and the channel then closes.
   */
  writingEnded(): void {
    const context = this.#context;
    if (context === undefined) this.#writingEnded();
    else context.runInAsyncScope(this.#writingEnded, this);
  }

  /**
   * Reading is about to end (the peer's FIN, or `closeRead()`). Without `allowHalfOpen` (decided at `'end'`, as a
   * socket decides: it may be set until then), Node's Duplex ends writing on the tick after `'end'`, its
   * listeners (and what they defer to that tick) still writing, as on a socket; a write after that fails the
   * channel with a typed error, an `'error'` only for a listener, where Node's own would end the process.
   */
  #watchHalfOpen(): void {
    this.prependOnceListener('end', () => {
      if (!this.allowHalfOpen && !this.writableEnded) this.#refuseWritesOnceEnded(true);
    });
  }

  #writingEnded(): void {
    const end = (): void => {
      if (this.writableEnded || this.destroyed) return;
      this.end();
      this.#refuseWritesOnceEnded(false);
    };
    if (this.readableEnded) end();
    // (First among the 'end' listeners: one of the application's that throws would skip those after it.)
    else this.prependOnceListener('end', end);
  }

  /**
   * Node's Writable would answer a write (or `end(data)`) after its writing ended with its own untyped `'error'`,
   * emitted with or without a listener, until the channel closes (while earlier writes wait for the transport).
   * Here such a write fails the channel as a reset does, with an `'error'` only for a listener (see
   * `#refuseAfterPeerClose`); until writing ends, the class's own `write()` and `end()` (their count of waiting
   * writes, the session's end caught up). Only such channels carry these two own properties, as a socket that
   * ended for its peer's FIN does. `notHalfOpen`: see `#failAfterPeerClose`.
   */
  #refuseWritesOnceEnded(notHalfOpen: boolean): void {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- each called with .call(this) below
    const { write, end } = Object.getPrototypeOf(this) as this;
    Object.assign(this, {
      write: (chunk: unknown, encoding?: unknown, callback?: unknown): boolean =>
        this.writableEnded
          ? this.#refuseAfterPeerClose(encoding, callback, notHalfOpen)
          : write.call(this, chunk, encoding as BufferEncoding, callback as WriteCallback),
      end: (chunk?: unknown, encoding?: unknown, callback?: unknown): Channel => {
        if (!this.writableEnded || chunk === undefined || chunk === null || typeof chunk === 'function') {
          return end.call(this, chunk, encoding as BufferEncoding, callback as () => void);
        }
        this.#refuseAfterPeerClose(encoding, callback, notHalfOpen);
        return this;
      },
    });
  }

  /**
   * @internal The channel failed. When its session failed (not a reset) and nothing written here waits, what
   * arrived is still read (users-asks row 26: a peer that sends and drops the connection must not lose what
   * this side received). After the peer's FIN it is whole: the application reads it to `'end'`, and the
   * channel fails only then. Without the FIN the data may be cut short: the channel fails once the last of it
   * was read, with the error instead of `'end'`.
   */
  fail(error: Error, sessionEnded = false): boolean {
    const context = this.#context;
    if (context === undefined) return this.#fail(error, sessionEnded);
    return context.runInAsyncScope(this.#fail, this, error, sessionEnded);
  }

  #fail(error: Error, sessionEnded: boolean): boolean {
    if (this.destroyed) return false;
    this.#failure = error;
    const failWhenRead = !this.#state.remoteFin;
    // Kept to be read: its session failed (not a reset), and the peer's FIN or unread data is there to read.
    // With writes of its own still waiting, only while something reads it (a 'data' or 'readable' listener:
    // a pipe, `for await`, a parser): an upload nobody reads would wait for ever for a read that never comes,
    // its end() held until then.
    const keep =
      sessionEnded &&
      !this.readableEnded &&
      (!failWhenRead || this.readableLength > 0) &&
      (this.writableLength === 0 || this.listenerCount('data') > 0 || this.listenerCount('readable') > 0);
    if (!keep) {
      this.#destroyFailed(error);
      return false;
    }
    // After 'end' has reached every listener: a consumer's own 'error' listener may go with its 'end'
    // (events.once, readline), and the error must not come to a channel nobody listens on any more.
    // (First among the 'end' listeners: one of the application's that throws would skip those after it, and the
    // channel would never fail, close or call back its held end().)
    if (!failWhenRead) {
      this.prependOnceListener('end', () => process.nextTick(() => this.destroyed || this.#destroyFailed(error)));
    }
    // Writes and end() from now on wait here, and fail with the channel (Node would end it at once). A write
    // the session still held is taken (see `#refuseWrite`): failing it would fail the whole Node stream, and
    // a reply that arrived while an upload waited for window would be lost. A `read(n)` made before that
    // asked for more than is left: no more comes, so the error follows (see `read`).
    const kept: KeptToRead = { held: [], failWhenRead, checkDue: false, askedTooMuch: this.#shortRead };
    this.#kept = kept;
    if (failWhenRead && kept.askedTooMuch) this.#failSoon(kept);
    return true;
  }

  /**
   * Destroys the channel with its failure. With nobody listening for `'error'`, Node would throw the one it
   * emits (ending the process for a peer's reset): a listener of the channel's own takes it then, so that the
   * stream is still errored for consumers that come later (`for await`, `stream/consumers`, `pipeline`,
   * `finished`: the typed error, not Node's `ERR_STREAM_PREMATURE_CLOSE`).
   */
  #destroyFailed(error: Error): void {
    this.#errorOnlyForListener();
    this.destroy(error);
  }

  /** @internal */
  get bufferedBytes(): number {
    if (this.destroyed) return 0; // what it held is dropped (Node keeps it in the buffer)
    return this.#encoded === undefined || this.readableLength === 0 ? this.readableLength : this.#encoded.bytes;
  }
}
