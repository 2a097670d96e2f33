/**
 * The incremental frame decoder: bytes in, frame events out, for any {@link WireCodec}.
 *
 * It never concatenates chunks: a header split across chunks is gathered in a small scratch array, and a
 * payload is handed on as ranges of the chunks it arrived in, piece by piece, as soon as each piece arrives. So
 * a decoder holds at most one header's bytes, whatever the frame's announced length.
 * @module
 */
import type { WireCodec } from './codec.js';
import { yamuxCodec } from './codecs/yamux.js';
import type { FrameHeader } from './frame.js';

/** Receives the decoder's events, in wire order. */
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
  /** @internal The chunk given to `push()` was decoded (to its end, or to where decoding stopped). */
  onChunkEnd?(): void;
}

/** Decodes a byte stream of frames. */
export class FrameDecoder {
  readonly #header: FrameHeader = { version: 0, type: 0, flags: 0, streamId: 0, length: 0 };
  readonly #scratch: Uint8Array;
  readonly #headerSize: number;
  #scratchFill = 0;
  #payloadLeft = 0;
  #inPayload = false;
  #stopped = false;

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

  /** Stops decoding for good (the session is ending). */
  stop(): void {
    this.#stopped = true;
  }

  /** Feeds the next chunk of the byte stream. */
  push(chunk: Uint8Array): void {
    const sink = this.#sink;
    const length = chunk.length;
    let offset = 0;
    while (offset < length && !this.#stopped) {
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
      this.#beginFrame();
    }
    sink.onChunkEnd?.();
  }

  #beginFrame(): void {
    const header = this.#header;
    const fault = this.#codec.checkHeader(header);
    if (fault !== null) {
      this.#stopped = true;
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
