/**
 * A wire codec: how frames look on the wire, and which protocol features the format has. The session works
 * in yamux terms (frame types and flags of `frame.ts`); a codec translates its format to and from them.
 * @module
 */
import type { FrameHeader } from './frame.js';

/** What a wire format can express. The session degrades, as documented, where a feature is missing. */
export interface CodecCapabilities {
  /** Per-channel windows and Window Update frames. Without: backpressure pauses the transport. */
  flowControl: boolean;
  /** FIN closes one direction only. Without: a close ends both directions (and is answered in kind). */
  halfClose: boolean;
  /** The acceptor answers SYN with ACK. Without: a dialled channel counts as established at once. */
  acknowledgements: boolean;
  /** Ping frames (keep-alive, RTT). */
  ping: boolean;
  /** Go Away frames. */
  goAway: boolean;
  /** A SYN for an open id is a protocol error (yamux); without, it is taken as data (the original multiplex). */
  strictOpen: boolean;
  /**
   * A RST answering a SYN tells the dialler its channel was refused (yamux). Without (the original multiplex,
   * where RST is a close), a session never refuses a channel for a full accept queue: it stops reading the
   * transport until the application takes channels, so the peer is slowed down rather than refused.
   */
  refusal: boolean;
}

export interface WireCodec {
  /** The format's name, as given in the `protocol` option. */
  readonly name: 'yamux' | 'multiplex';
  readonly capabilities: CodecCapabilities;
  /** Bytes of one header on the wire. */
  readonly headerSize: number;
  /** Most bytes `encode` writes for one frame (a codec may need two headers for one yamux frame). */
  readonly maxEncodedHeader: number;
  /** Largest payload per Data frame this side sends, whatever `maxFrameSize` says (Infinity: no cap). */
  readonly maxFragment: number;
  /** The first channel id each role dials. */
  firstId(role: 'client' | 'server'): number;
  /** Decodes a header at `offset` into yamux terms. */
  decodeHeader(source: Uint8Array, offset: number, out: FrameHeader): void;
  /** Checks a decoded header; returns a description of the fault, or null. */
  checkHeader(header: FrameHeader): string | null;
  /** Payload bytes that follow the header. */
  payloadLength(header: FrameHeader): number;
  /**
   * Encodes the header(s) for a yamux frame (type, flags, id, payload length or value) at `offset`; returns the
   * bytes written (0 when the format has nothing to say for it, e.g. a window increment without windows).
   */
  encode(target: Uint8Array, offset: number, type: number, flags: number, streamId: number, length: number): number;
}
