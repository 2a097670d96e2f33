/**
 * The yamux frame: constants named from the specification, and the 12-byte header's encoding.
 * See docs/protocol.md for the rules these constants take part in.
 * @module
 */

/** Size of a yamux frame header in bytes. */
export const HEADER_SIZE = 12;

/** The only protocol version. */
export const PROTOCOL_VERSION = 0;

// FrameType and Flag are `const enum`s: the compiler writes their numbers where the core uses them, so a
// browser bundle carries no `FrameType.windowUpdate` lookups (issue 15's budget). The public entries export
// them as plain objects of the same names and values (frame-constants.ts).

/** Frame types. */
export const enum FrameType {
  data = 0,
  windowUpdate = 1,
  ping = 2,
  goAway = 3,
}

/** Frame flags (a bit set). */
export const enum Flag {
  syn = 0x1,
  ack = 0x2,
  fin = 0x4,
  rst = 0x8,
}

/** A decoded frame header. The decoder reuses one instance, so copy fields out if you keep them. */
export interface FrameHeader {
  /** The protocol version (0). */
  version: number;
  /** Data, Window Update, Ping or Go Away ({@link FrameType}). */
  type: number;
  /** SYN, ACK, FIN and RST bits ({@link Flag}). */
  flags: number;
  /** The channel id (0 for the session's own Ping and Go Away). */
  streamId: number;
  /** Payload length (Data), window increment (Window Update), opaque value (Ping) or code (Go Away). */
  length: number;
}

/** Writes a header at `offset` of `target` (which must have 12 bytes there). */
export function encodeHeader(
  target: Uint8Array,
  offset: number,
  type: number,
  flags: number,
  streamId: number,
  length: number,
): void {
  target[offset] = PROTOCOL_VERSION;
  target[offset + 1] = type;
  target[offset + 2] = flags >>> 8;
  target[offset + 3] = flags & 0xff;
  target[offset + 4] = streamId >>> 24;
  target[offset + 5] = (streamId >>> 16) & 0xff;
  target[offset + 6] = (streamId >>> 8) & 0xff;
  target[offset + 7] = streamId & 0xff;
  target[offset + 8] = length >>> 24;
  target[offset + 9] = (length >>> 16) & 0xff;
  target[offset + 10] = (length >>> 8) & 0xff;
  target[offset + 11] = length & 0xff;
}

/** Reads a header from `source` at `offset` into `out`; no validation (the decoder does that). */
export function decodeHeader(source: Uint8Array, offset: number, out: FrameHeader): FrameHeader {
  out.version = source[offset]!;
  out.type = source[offset + 1]!;
  out.flags = (source[offset + 2]! << 8) | source[offset + 3]!;
  out.streamId =
    ((source[offset + 4]! << 24) | (source[offset + 5]! << 16) | (source[offset + 6]! << 8) | source[offset + 7]!) >>>
    0;
  out.length =
    ((source[offset + 8]! << 24) | (source[offset + 9]! << 16) | (source[offset + 10]! << 8) | source[offset + 11]!) >>>
    0;
  return out;
}

/** Encodes one header into a new 12-byte array (for tests and one-off frames). */
export function headerBytes(type: number, flags: number, streamId: number, length: number): Uint8Array {
  const bytes = new Uint8Array(HEADER_SIZE);
  encodeHeader(bytes, 0, type, flags, streamId, length);
  return bytes;
}
