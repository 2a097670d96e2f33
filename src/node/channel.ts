/**
 * A channel as a Node `stream.Duplex` of bytes: `write()`/`end()` (FIN, half-close), `destroy()` (RST),
 * `'end'` when the peer half-closes, `'error'` with a typed error when the channel is reset or its session
 * fails. Backpressure works as on any Node stream: `write()` returns false until `'drain'`.
 * @module
 */
import { Duplex } from 'node:stream';
import type { ChannelEndpoint, ChannelState, ChannelStateName } from '../core/channel-state.js';
import { MuxError } from '../core/errors.js';
import type { MuxSession } from '../core/session.js';

type WriteCallback = (error?: Error | null) => void;

/** Stands in for a channel's `emit` while `closeRead()` drops what the channel holds: no `'data'` gets out. */
function emitAllButData(this: Channel, event: string | symbol, ...args: unknown[]): boolean {
  return event === 'data' ? false : Duplex.prototype.emit.call(this, event, ...args);
}

export class Channel extends Duplex implements ChannelEndpoint {
  readonly #state: ChannelState;
  readonly #session: MuxSession<Channel>;
  #failure: Error | undefined;

  /** @internal Channels are made by their session (`dial()`, `accept()`), not by hand. */
  constructor(state: ChannelState, session: MuxSession<Channel>) {
    const highWaterMark = session.options.channelHighWaterMark;
    super({
      allowHalfOpen: true,
      readableHighWaterMark: highWaterMark,
      writableHighWaterMark: highWaterMark,
    });
    this.#state = state;
    this.#session = session;
    // Node's Readable schedules a tick after every push to call `_read` until the high-water mark is reached
    // (`maybeReadMore`). A channel's data arrives by itself, whether `_read` is called or not, so that tick
    // (an allocation and a task per chunk, a tenth of a request/response's garbage) does nothing useful.
    // Marking the read-more pass as already running keeps Node from scheduling it; flowing, 'readable',
    // pipe and async iteration are driven by their own paths.
    (this as unknown as { _readableState: { readingMore: boolean } })._readableState.readingMore = true;
  }

  /** The channel id on the wire (odd when the client dialled it, even when the server did). */
  get id(): number {
    return this.#state.id;
  }

  /** The session this channel belongs to. */
  get session(): MuxSession<Channel> {
    return this.#session;
  }

  /** The protocol state: `init`, `syn-sent`, `syn-received`, `established`, `local-closed`, `remote-closed`, `closed` or `reset`. */
  get protocolState(): ChannelStateName {
    return this.#state.state;
  }

  /** This side's current receive window in bytes: 256 KiB at first, grown by auto-tuning up to `maxWindow`. */
  get receiveWindow(): number {
    return this.#state.rx.size;
  }

  /** True if this side dialled the channel, false if the peer did. */
  get outbound(): boolean {
    return this.#state.outbound;
  }

  /**
   * Why the channel ended abnormally (reset by the peer, session failure), if it did. The same error is
   * emitted as `'error'` when the channel has an error listener; without one the channel just closes, so an
   * unobserved reset never crashes the process.
   */
  get failure(): Error | undefined {
    return this.#failure;
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
   * peer's FIN; data the peer still sends then draws a reset (the peer's writes fail with
   * `ChannelResetError`), as TCP answers data for a closed socket.
   */
  closeRead(): this {
    if (this.#state.readClosed || this.destroyed) return this;
    this.#session.closeChannelRead(this.#state);
    this.push(null); // (ignored when the peer's FIN already ended the readable side)
    // Read out what Node holds, so that 'end' follows; `read()` credits it to the peer as read.
    this.emit = emitAllButData;
    try {
      while (this.read() !== null);
    } finally {
      Reflect.deleteProperty(this, 'emit');
    }
    return this;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: WriteCallback): void {
    this.#session.writeChannel(this.#state, chunk, callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: WriteCallback): void {
    const last = chunks.length - 1;
    for (let i = 0; i < last; i++) this.#session.writeChannel(this.#state, chunks[i]!.chunk, null);
    this.#session.writeChannel(this.#state, chunks[last]!.chunk, callback);
  }

  override _final(callback: WriteCallback): void {
    this.#session.endChannel(this.#state);
    callback();
  }

  override _read(): void {
    this.#session.readProgress(this.#state);
  }

  // Node calls `_read` only now and then; every consumption of buffered data goes through `read()`
  // (flowing mode, pipe, async iteration, explicit reads), so window credit is accounted here.
  override read(size?: number): any {
    const chunk = super.read(size);
    if (chunk !== null) this.#session.readProgress(this.#state);
    return chunk;
  }

  override _destroy(error: Error | null, callback: WriteCallback): void {
    // A failed write can destroy the stream before the session reports the failure: keep the reason.
    if (error instanceof MuxError && this.#failure === undefined) this.#failure = error;
    const state = this.#state;
    // Both halves ended normally (autoDestroy after 'end' and 'finish'): the FINs close it, no RST. Closed
    // for reading, the channel waits in the session for the peer's FIN (its data would draw a reset).
    const finished = error === null && state.localFin && (state.remoteFin || state.readClosed);
    if (state.live && !finished) this.#session.resetChannel(state, error ?? undefined);
    callback(error);
  }

  /** @internal */
  deliver(data: Uint8Array): void {
    this.push(data);
  }

  /** @internal */
  remoteEnded(): void {
    this.push(null);
  }

  /** @internal */
  fail(error: Error): void {
    if (this.destroyed) return;
    this.#failure = error;
    if (this.listenerCount('error') > 0) this.destroy(error);
    else this.destroy();
  }

  /** @internal */
  get bufferedBytes(): number {
    return this.readableLength;
  }
}
