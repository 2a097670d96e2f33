/**
 * A WebRTC data channel (`RTCDataChannel`) as a session transport: muxwire between two pages, or a page and a
 * peer, with no server carrying the bytes. A data channel has a WebSocket's shape (`send`, `bufferedAmount`,
 * `binaryType`, `'open'`/`'message'`/`'close'`/`'error'`), and the WebSocket transport carries it, with three
 * differences handled here: its `readyState` is a name (`'open'`), not a number; a close has no code (any close
 * that no failure came before is the peer's clean end); and a message may be no larger than the connection's
 * SCTP limit (`RTCPeerConnection.sctp.maxMessageSize`), which the browser enforces by throwing from `send()`.
 * @module
 */
import { callOptions } from '../core/abortable.js';
import { Fifo } from '../core/fifo.js';
import type { Transport } from '../core/transport.js';
import {
  isMessageSocket,
  messageTransport,
  resolveTransportOptions,
  type SendableBytes,
  type WebSocketLike,
  type WebSocketTransportOptions,
} from './websocket-transport.js';

/**
 * The message size every WebRTC endpoint takes when the peer's offer names none (RFC 8841): the default of
 * `maxSendSize` here. Chromium's and Firefox's connections state more (`sctp.maxMessageSize`: 256 KiB and
 * 1 GiB), but Firefox delivered no message of 9 MiB: larger messages than 256 KiB are not worth the risk.
 */
export const DATA_CHANNEL_MESSAGE_SIZE = 64 * 1024;

/**
 * What a data channel's `bufferedAmount` is never taken past: Chromium's `send()` throws ("send queue is full")
 * and closes the channel beyond 16 MiB, which a large `maxFrameSize` or `highWaterMark` reached in one write.
 * Messages that would pass it are held back (see `asWebSocket`).
 */
const SEND_QUEUE_LIMIT = 16 * 1024 * 1024;

/** The parts of the WHATWG `RTCDataChannel` interface the transport uses. */
export interface DataChannelLike {
  /** `'connecting'`, `'open'`, `'closing'` or `'closed'`. */
  readonly readyState: string;
  /** Bytes given to `send()` and not yet sent: what the water marks are judged on. */
  readonly bufferedAmount: number;
  /** Set to `'arraybuffer'` by the transport. */
  binaryType: string;
  /** Must be true: muxwire's frames must arrive in order. */
  readonly ordered: boolean;
  /** Must be null (a reliable channel): a channel that may drop messages would lose frames. */
  readonly maxRetransmits: number | null;
  /** Must be null (a reliable channel), as `maxRetransmits`. */
  readonly maxPacketLifeTime: number | null;
  /** `bufferedAmount` at or below which `'bufferedamountlow'` fires: set by the transport while it holds messages back. */
  bufferedAmountLowThreshold: number;
  /** Sends one binary message. */
  send(data: SendableBytes): void;
  /** Closes the channel. */
  close(): void;
  /** Listens for `'open'`, `'message'`, `'close'`, `'error'` and `'bufferedamountlow'`. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  addEventListener(type: string, listener: (event: any) => void): void;
  /** Removes a listener added with `addEventListener`. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  removeEventListener(type: string, listener: (event: any) => void): void;
}

/**
 * Wraps an ordered, reliable `RTCDataChannel` (the default of `createDataChannel`) as a session transport.
 * Call it as soon as the channel exists (from `createDataChannel`, or in `ondatachannel`): from then on no
 * message is lost. Options are the WebSocket transport's; `maxSendSize` defaults to
 * {@link DATA_CHANNEL_MESSAGE_SIZE} (up to 256 KiB works in Chromium and Firefox). Both ends
 * of one data channel make one session each, with different roles (`'client'` and `'server'`).
 */
export function dataChannelTransport(channel: DataChannelLike, options?: WebSocketTransportOptions): Transport {
  if (!isMessageSocket(channel) || typeof channel.readyState !== 'string') {
    throw new TypeError(
      'muxwire: dataChannelTransport needs an RTCDataChannel (for a WebSocket, use webSocketTransport)',
    );
  }
  if (
    (channel as { ordered?: boolean }).ordered === false ||
    channel.maxRetransmits != null ||
    channel.maxPacketLifeTime != null
  ) {
    throw new TypeError(
      'muxwire: dataChannelTransport needs an ordered, reliable data channel (createDataChannel with neither ordered: false, maxRetransmits nor maxPacketLifeTime): frames lost or out of order break the session',
    );
  }
  const resolved = resolveTransportOptions(callOptions(options), DATA_CHANNEL_MESSAGE_SIZE);
  return messageTransport(asWebSocket(channel), resolved, true);
}

/** An RTCDataChannel's `readyState`s, numbered as a WebSocket's. */
const STATES: Record<string, number> = { connecting: 0, open: 1, closing: 2, closed: 3 };

/**
 * `channel` as the WebSocket transport sees a socket: its `readyState` a number; and messages that would take its
 * `bufferedAmount` past {@link SEND_QUEUE_LIMIT} held back, as copies (the transport may reuse the array it
 * joined them in), and counted in `bufferedAmount`, so that the transport holds the session's writes as for a
 * full socket. They are sent as the channel's queue falls (`'bufferedamountlow'`, and each look at
 * `bufferedAmount`, which the transport's drain polls take); a close waits for them, as a data channel's own
 * close sends what its queue holds first; `terminate()` (the transport's `destroy()` and failures) drops them.
 */
function asWebSocket(channel: DataChannelLike): WebSocketLike & { terminate(): void } {
  const held = new Fifo<Uint8Array>();
  let heldBytes = 0;
  let closeAfterHeld = false;
  /** A message of `size` bytes may go now (one always may when nothing is queued). */
  const fits = (size: number): boolean =>
    channel.bufferedAmount === 0 || channel.bufferedAmount + size <= SEND_QUEUE_LIMIT;
  const sendHeld = (): void => {
    try {
      while (held.length > 0 && fits(held.peek()!.length)) {
        const message = held.shift()!;
        heldBytes -= message.length;
        channel.send(message as SendableBytes);
      }
    } catch {
      // The channel closed or failed meanwhile: its own 'close' or 'error' tells the transport.
      return;
    }
    if (held.length > 0) watchFor(held.peek()!.length);
    else if (closeAfterHeld) {
      closeAfterHeld = false;
      channel.close();
    }
  };
  /**
   * Asks for `'bufferedamountlow'` once the queue has room for the oldest held message (of `size` bytes). The
   * event fires only as the queue falls past the threshold, so the threshold is where that message fits: a
   * fixed one below which it still did not fit (a message over half the limit) would never fire again.
   */
  const watchFor = (size: number): void => {
    channel.bufferedAmountLowThreshold = Math.max(0, SEND_QUEUE_LIMIT - size);
  };
  channel.addEventListener('bufferedamountlow', sendHeld);
  return {
    get readyState() {
      return STATES[channel.readyState] ?? 3;
    },
    get bufferedAmount() {
      if (held.length > 0) sendHeld();
      return channel.bufferedAmount + heldBytes;
    },
    get binaryType() {
      return channel.binaryType;
    },
    set binaryType(type) {
      channel.binaryType = type;
    },
    send(data) {
      if (held.length === 0 && fits(data.length)) {
        channel.send(data);
        return;
      }
      held.push(data.slice());
      heldBytes += data.length;
      if (held.length === 1) watchFor(data.length);
    },
    close() {
      if (held.length > 0) closeAfterHeld = true;
      else channel.close();
    },
    // The transport's abort (`destroy()`, a failure): what is held is dropped, and the channel closed at once
    // (a peer that stopped reading would otherwise keep it open, and the held copies, for good).
    terminate() {
      held.drain();
      heldBytes = 0;
      closeAfterHeld = false;
      channel.close();
    },
    addEventListener: (type, listener) => channel.addEventListener(type, listener),
    removeEventListener: (type, listener) => channel.removeEventListener(type, listener),
  };
}
