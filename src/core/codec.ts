/**
 * A wire codec: how frames look on the wire, and which protocol features the format has. The session works
 * in yamux terms (frame types and flags of `frame.ts`); a codec translates its format to and from them.
 * @module
 */
import type { ChannelState } from './channel-state.js';
import type { SessionMemory } from './flow.js';
import type { FrameHeader } from './frame.js';
import type { ResolvedOptions } from './options.js';
import type { ReadGate } from './read-gate.js';
import type { WriteScheduler } from './scheduler.js';
import type { FrameWriter } from './writer.js';

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

/**
 * What a session does instead where its format has no windows and no half-close: the multiplex format's
 * rules (`codecs/multiplex-rules.ts`), one set per session, made by the codec's `rules`. yamux has both and
 * no rules, so a bundle that speaks only yamux leaves them out. @internal
 */
export interface FormatRules {
  /** Data was handed to `channel`'s endpoint (without windows, reading may have to stop). */
  delivered(channel: ChannelState): void;
  /**
   * The application read from `channel`, or waits for `wanted` bytes buffered (a Node `read(n)`): reading may
   * resume.
   */
  read(channel: ChannelState, wanted?: number): void;
  /** `channel` left the session. */
  released(channel: ChannelState): void;
  /** The peer closed `channel` (without half-close, this side's direction ends too). */
  remoteClosed(channel: ChannelState): void;
  /** This side's close of `channel` left (without half-close, the peer's direction ends too). */
  localClosed(channel: ChannelState): void;
  /** Why a write on `channel`, whose writing side has ended, fails, if the format's rules ended it. */
  writeRefusal(channel: ChannelState): Error | undefined;
  /**
   * `channel` is closed both ways, and must stay in the session until the application has taken it and read
   * it (this side's close answered the peer's at once, not the application's `end()`).
   */
  keepsClosed(channel: ChannelState): boolean;
  /**
   * The transport ended or failed: of `channels`, those whose state the format's rules decide are closed both
   * ways now are handed to `closed` (without half-close: the peer closed them and only this side's answer had
   * not gone, which a peer that is gone does not need).
   */
  transportGone(channels: Iterable<ChannelState>, closed: (channel: ChannelState) => void): void;
}

/** Makes a session's {@link FormatRules} from the parts they act on; `relieveMemory` is the grants'. @internal */
export type FormatRulesFactory = (
  options: ResolvedOptions,
  memory: SessionMemory,
  gate: ReadGate,
  scheduler: WriteScheduler,
  writer: FrameWriter,
  relieveMemory: () => void,
) => FormatRules;

/**
 * A wire format: how frames are written and read. The session speaks yamux's terms; a codec maps them to its
 * format. `yamuxCodec` is built in; `multiplexCodec` is passed in where a page's bundle should carry it only
 * when used (`WebSession`'s `multiplexCodec` option).
 */
export interface WireCodec {
  /** The format's name, as given in the `protocol` option. */
  readonly name: 'yamux' | 'multiplex';
  /** What the format can express (windows, half-close, ping, Go Away...). */
  readonly capabilities: CodecCapabilities;
  /** The format's own rules where it lacks windows or half-close (none for yamux). @internal */
  readonly rules?: FormatRulesFactory;
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
