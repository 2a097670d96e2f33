/**
 * The incremental frame decoder: bytes in, frame events out.
 *
 * It never concatenates chunks: a header split across chunks is gathered in a 12-byte scratch array, and a
 * payload is handed on as views (`subarray`) of the chunks it arrived in, piece by piece, as soon as each piece
 * arrives. So a decoder holds at most one header's bytes, whatever the frame's announced length.
 * @module
 */
import { type FrameHeader, FrameType, HEADER_SIZE, PROTOCOL_VERSION, decodeHeader } from './frame.js';

/** Receives the decoder's events, in wire order. */
export interface FrameSink {
  /** A complete, valid header. For a Data frame, its payload follows through `onPayload`. */
  onHeader(header: FrameHeader): void;
  /** The next piece of the current frame's payload (a view into the input; copy it to keep it past the call). */
  onPayload(piece: Uint8Array): void;
  /** The current frame, header and payload, has fully arrived. */
  onFrameEnd(header: FrameHeader): void;
  /** The input is not valid yamux; the decoder has stopped. */
  onDecodeError(message: string): void;
}

/** Checks what the header alone can tell: version and type. Returns a description of the fault, or null. */
export function checkYamuxHeader(header: FrameHeader): string | null {
  if (header.version !== PROTOCOL_VERSION) return `unsupported protocol version ${header.version}`;
  if (header.type > FrameType.goAway) return `unknown frame type ${header.type}`;
  return null;
}

/** How many payload bytes follow a header: only Data frames carry a payload. */
export function yamuxPayloadLength(header: FrameHeader): number {
  return header.type === FrameType.data ? header.length : 0;
}

/** Decodes a byte stream of yamux frames. */
export class FrameDecoder {
  private readonly header: FrameHeader = { version: 0, type: 0, flags: 0, streamId: 0, length: 0 };
  private readonly scratch = new Uint8Array(HEADER_SIZE);
  private scratchFill = 0;
  private payloadLeft = 0;
  private inPayload = false;
  private stopped = false;

  constructor(private readonly sink: FrameSink) {}

  /** True once `stop()` was called or an error was found: further input is ignored. */
  get isStopped(): boolean {
    return this.stopped;
  }

  /** Bytes of a partial header held back waiting for the rest. */
  get pendingHeaderBytes(): number {
    return this.scratchFill;
  }

  /** Stops decoding for good (the session is ending). */
  stop(): void {
    this.stopped = true;
  }

  /** Feeds the next chunk of the byte stream. */
  push(chunk: Uint8Array): void {
    const sink = this.sink;
    const length = chunk.length;
    let offset = 0;
    while (offset < length && !this.stopped) {
      if (this.inPayload) {
        const take = Math.min(this.payloadLeft, length - offset);
        this.payloadLeft -= take;
        sink.onPayload(chunk.subarray(offset, offset + take));
        offset += take;
        if (this.payloadLeft === 0 && !this.stopped) {
          this.inPayload = false;
          sink.onFrameEnd(this.header);
        }
        continue;
      }
      if (this.scratchFill === 0 && length - offset >= HEADER_SIZE) {
        decodeHeader(chunk, offset, this.header);
        offset += HEADER_SIZE;
      } else {
        const take = Math.min(HEADER_SIZE - this.scratchFill, length - offset);
        this.scratch.set(chunk.subarray(offset, offset + take), this.scratchFill);
        this.scratchFill += take;
        offset += take;
        if (this.scratchFill < HEADER_SIZE) return;
        this.scratchFill = 0;
        decodeHeader(this.scratch, 0, this.header);
      }
      this.beginFrame();
    }
  }

  private beginFrame(): void {
    const header = this.header;
    const fault = checkYamuxHeader(header);
    if (fault !== null) {
      this.stopped = true;
      this.sink.onDecodeError(fault);
      return;
    }
    this.sink.onHeader(header);
    if (this.stopped) return;
    const payload = yamuxPayloadLength(header);
    if (payload > 0) {
      this.inPayload = true;
      this.payloadLeft = payload;
    } else {
      this.sink.onFrameEnd(header);
    }
  }
}
