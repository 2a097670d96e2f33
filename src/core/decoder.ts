/**
 * The incremental frame decoder: bytes in, frame events out, for any {@link WireCodec}.
 *
 * It never concatenates chunks: a header split across chunks is gathered in a small scratch array, and a
 * payload is handed on as ranges of the chunks it arrived in, piece by piece, as soon as each piece arrives. So
 * a decoder holds at most one header's bytes, whatever the frame's announced length.
 *
 * Every {@link FRAMES_PER_ASK} frames it asks its sink whether to go on in this turn of the event loop; told
 * to stop, it keeps the rest of its input (views of the chunks, not copies) until `resume()`, so that a chunk of
 * thousands of cheap frames (each opening a channel) does not hold the loop, and every other session on it,
 * for the whole chunk.
 * @module
 */
import type { WireCodec } from './codec.js';
import { yamuxCodec } from './codecs/yamux.js';
import { Fifo } from './fifo.js';
import { CHUNK_COST } from './flow.js';
import type { FrameHeader } from './frame.js';

/**
 * Receives the decoder's events, in wire order.
 * @hidden (internal: `muxwire/core` exports it at run time only, for the micro-benchmarks)
 */
export interface FrameSink {
  /** @internal A complete, valid header. For a Data frame, its payload follows through `onPayload`. */
  onHeader(header: FrameHeader): void;
  /**
   * @internal
   * The next piece of the current frame's payload: bytes `start` to `end` of `chunk`, the input as pushed
   * (copy them, or take a view, to keep them past the call). No view is made for the sink, which may copy.
   */
  onPayload(chunk: Uint8Array, start: number, end: number): void;
  /** @internal The current frame, header and payload, has fully arrived. */
  onFrameEnd(header: FrameHeader): void;
  /** @internal The input is not valid in the codec's format; the decoder has stopped. */
  onDecodeError(message: string): void;
  /**
   * @internal
   * The chunk given to `push()` was decoded (to its end, or to where decoding stopped or held); also called as
   * `resume()` begins. May answer true when `mayHold` and this turn's share ran out before its own work for the
   * read did (what it hands on at a read's end): the decoder then holds, and calls it again from `resume()`.
   */
  onChunkEnd?(mayHold: boolean): boolean;
  /**
   * @internal
   * Called with each header before its frame begins, while the decoder may hold: work the frame needs done
   * first (handing on the small payloads a read joined, before a SYN or a larger payload) is done within this
   * turn's share, and true holds the frame, and the rest of the input, until `resume()`.
   */
  beforeFrame?(header: FrameHeader): boolean;
  /**
   * @internal
   * Asked every {@link FRAMES_PER_ASK} frames, at a frame's end: true holds the rest of the input until
   * `resume()`.
   */
  turnSpent?(): boolean;
}

/** Frames decoded between the decoder's asks whether to go on ({@link FrameSink.turnSpent}). */
export const FRAMES_PER_ASK = 64;
/**
 * What may be held for a later turn (bytes, and {@link CHUNK_COST} for each chunk) beyond which the decoder takes
 * what comes at once, whatever the turn's share: from a transport that cannot pause (a browser's WebSocket hands
 * on what it holds beyond 1 MiB) the held input would otherwise grow without bound. (A transport that may drop
 * what a paused reader holds, see `Transport.dropsPausedData`, is paused from half of it: see `overHalf`.)
 */
export const MAX_HELD_BYTES = 8 * 1024 * 1024;

/**
 * Decodes a byte stream of frames.
 * @hidden (internal: `muxwire/core` exports it at run time only, for the micro-benchmarks)
 */
export class FrameDecoder {
  readonly #header: FrameHeader = { version: 0, type: 0, flags: 0, streamId: 0, length: 0 };
  readonly #scratch: Uint8Array;
  readonly #headerSize: number;
  #scratchFill = 0;
  #payloadLeft = 0;
  #inPayload = false;
  #stopped = false;
  /** What is left of a chunk cut at a frame's end by a hold: decoded first by `resume()`. */
  #rest: Uint8Array | null = null;
  /** Chunks that came while holding, after `#rest`. */
  #queue = new Fifo<Uint8Array>();
  #heldBytes = 0;
  /** `#heldBytes` and {@link CHUNK_COST} for each chunk held, against {@link MAX_HELD_BYTES}. */
  #heldCost = 0;
  #holding = false;
  /** The header in `#header` was read, its frame not begun: `resume()` begins it (see `FrameSink.beforeFrame`). */
  #headerPending = false;
  /** Frames until the next ask. */
  #untilAsk = FRAMES_PER_ASK;
  /** Inside `push()` or `resume()`: a chunk pushed now comes from the sink's own work, and waits its turn. */
  #decoding = false;

  readonly #sink: FrameSink;
  readonly #codec: WireCodec;
  constructor(sink: FrameSink, codec: WireCodec = yamuxCodec) {
    this.#sink = sink;
    this.#codec = codec;
    this.#headerSize = codec.headerSize;
    this.#scratch = new Uint8Array(codec.headerSize);
  }

  /** True once `stop()` was called or an error was found: further input is ignored. */
  get isStopped(): boolean {
    return this.#stopped;
  }

  /** Bytes of a partial header held back waiting for the rest. */
  get pendingHeaderBytes(): number {
    return this.#scratchFill;
  }

  /** Input waits for `resume()` (the sink said the turn's share was spent, or `hold()` was called). */
  get holding(): boolean {
    return this.#holding;
  }

  /**
   * Input waits: the decoder holds, or has held input left while it decodes what it held (a transport's end
   * may come from what that sets off).
   */
  get holdsInput(): boolean {
    return this.#holding || this.#heldBytes > 0;
  }

  /**
   * Inside `push()` or `resume()`: what the transport reports now comes from inside the sink's work (a transport
   * that delivers at once, from a listener), so it follows the input being decoded.
   */
  get decoding(): boolean {
    return this.#decoding;
  }

  /** Bytes held for `resume()`. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** What is held has reached half of {@link MAX_HELD_BYTES}. */
  get overHalf(): boolean {
    return this.#heldCost >= MAX_HELD_BYTES / 2;
  }

  /** Stops decoding for good (the session is ending); what was held is dropped. */
  stop(): void {
    this.#stopped = true;
    this.#rest = null;
    this.#queue = new Fifo();
    this.#heldBytes = this.#heldCost = 0;
    this.#holding = this.#headerPending = false;
  }

  /**
   * Holds `chunk`, and what comes after it, until `resume()`, whatever is held already: the session takes it up
   * later (it came from inside the session's own write to the transport).
   */
  holdChunk(chunk: Uint8Array): void {
    if (this.#stopped) return;
    this.#holding = true;
    this.#queueChunk(chunk);
  }

  /** Puts `chunk` behind what is held, counted. */
  #queueChunk(chunk: Uint8Array): void {
    this.#queue.push(chunk);
    this.#heldBytes += chunk.length;
    this.#heldCost += chunk.length + CHUNK_COST;
  }

  /** Holds what comes next until `resume()` (this turn's share was spent between chunks). */
  hold(): void {
    if (!this.#stopped) this.#holding = true;
  }

  /**
   * Feeds the next chunk of the byte stream (held, in order, while the decoder holds). A chunk pushed from inside
   * the sink's own work (a transport that delivers at once, fed from a listener) is decoded once the input
   * before it was, whatever was cut where.
   */
  push(chunk: Uint8Array): void {
    if (this.#stopped) return;
    // (What is held comes first, a frame waiting with its header read too: this chunk may come from what
    // decoding them set off.)
    if (this.#decoding || this.#holding || this.#headerPending || this.#rest !== null || this.#queue.length > 0) {
      this.#queueChunk(chunk);
      if (this.#decoding) return; // (the decoding under way takes it up, or holds it)
      this.#decoding = true;
      try {
        // Beyond the bound, the oldest held input is decoded, whatever the turn's share, until back within it.
        while (this.#heldCost > MAX_HELD_BYTES && !this.#stopped) {
          if (this.#headerPending) {
            this.#headerPending = false; // (the sink does what the frame needs first at once: not asked to hold)
            this.#beginFrame();
          } else {
            this.#decode(this.#takeHeld()!, false);
          }
        }
      } finally {
        this.#decoding = false;
      }
      return;
    }
    this.#decoding = true;
    try {
      this.#decode(chunk, true);
      // Chunks pushed from inside that, unless it held.
      while (this.#queue.length > 0 && !this.#holding && !this.#headerPending && !this.#stopped) {
        this.#decode(this.#takeHeld()!, true);
      }
    } finally {
      this.#decoding = false;
    }
  }

  /**
   * Decodes what was held, oldest first, until it is done or the sink says this turn's share is spent again
   * (`holding` then); with `mayHold` false, all of it, asking nothing (the transport ended: nothing may stay).
   */
  resume(mayHold = true): void {
    this.#holding = false;
    if (this.#stopped) return;
    const outermost = !this.#decoding;
    this.#decoding = true;
    try {
      this.#resume(mayHold);
    } finally {
      this.#decoding = !outermost;
    }
  }

  #resume(mayHold: boolean): void {
    // What the sink had left of the last read's work first.
    if (this.#sink.onChunkEnd?.(mayHold) === true) {
      this.#holding = true;
      return;
    }
    if (this.#headerPending) {
      // The frame whose header was read when the sink asked to hold before it.
      if (mayHold && this.#sink.beforeFrame?.(this.#header) === true) {
        this.#holding = true;
        return;
      }
      this.#headerPending = false;
      this.#beginFrame();
    }
    while (!this.#holding && !this.#stopped) {
      const chunk = this.#takeHeld();
      if (chunk === undefined) break;
      this.#decode(chunk, mayHold);
    }
  }

  /** Holds from `offset` of `chunk` on. (Nothing else is held: a chunk is decoded only once all before it was.) */
  #holdRest(chunk: Uint8Array, offset: number): void {
    this.#holding = true;
    if (offset === chunk.length) return;
    this.#rest = chunk.subarray(offset);
    this.#heldBytes += chunk.length - offset;
    this.#heldCost += chunk.length - offset;
  }

  /** The oldest held input, taken out of what is held. */
  #takeHeld(): Uint8Array | undefined {
    let chunk = this.#rest;
    if (chunk !== null) {
      this.#rest = null;
    } else {
      chunk = this.#queue.shift() ?? null;
      if (chunk === null) return undefined;
      this.#heldCost -= CHUNK_COST;
    }
    this.#heldBytes -= chunk.length;
    this.#heldCost -= chunk.length;
    return chunk;
  }

  #decode(chunk: Uint8Array, mayHold: boolean): void {
    const sink = this.#sink;
    const length = chunk.length;
    let offset = 0;
    while (offset < length && !this.#stopped) {
      if (this.#untilAsk <= 0 && !this.#inPayload && this.#scratchFill === 0) {
        this.#untilAsk = FRAMES_PER_ASK;
        if (mayHold && sink.turnSpent?.() === true) {
          this.#holdRest(chunk, offset);
          break;
        }
      }
      if (this.#inPayload) {
        const take = Math.min(this.#payloadLeft, length - offset);
        this.#payloadLeft -= take;
        sink.onPayload(chunk, offset, offset + take);
        offset += take;
        if (this.#payloadLeft === 0 && !this.#stopped) {
          this.#inPayload = false;
          sink.onFrameEnd(this.#header);
        }
        continue;
      }
      const headerSize = this.#headerSize;
      if (this.#scratchFill === 0 && length - offset >= headerSize) {
        this.#codec.decodeHeader(chunk, offset, this.#header);
        offset += headerSize;
      } else {
        const take = Math.min(headerSize - this.#scratchFill, length - offset);
        this.#scratch.set(chunk.subarray(offset, offset + take), this.#scratchFill);
        this.#scratchFill += take;
        offset += take;
        if (this.#scratchFill < headerSize) break; // (the rest of the header comes with the next chunk)
        this.#scratchFill = 0;
        this.#codec.decodeHeader(this.#scratch, 0, this.#header);
      }
      if (mayHold && sink.beforeFrame?.(this.#header) === true) {
        // The sink's work before this frame outlasted the turn: the frame waits, its header read.
        this.#headerPending = true;
        this.#holdRest(chunk, offset);
        break;
      }
      this.#beginFrame();
    }
    if (sink.onChunkEnd?.(mayHold) === true && !this.#stopped) this.#holding = true;
  }

  #beginFrame(): void {
    this.#untilAsk--;
    const header = this.#header;
    const fault = this.#codec.checkHeader(header);
    if (fault !== null) {
      this.stop();
      this.#sink.onDecodeError(fault);
      return;
    }
    this.#sink.onHeader(header);
    if (this.#stopped) return;
    const payload = this.#codec.payloadLength(header);
    if (payload > 0) {
      this.#inPayload = true;
      this.#payloadLeft = payload;
    } else {
      this.#sink.onFrameEnd(header);
    }
  }
}
