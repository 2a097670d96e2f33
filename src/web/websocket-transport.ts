/**
 * Adapts a WHATWG `WebSocket` (a browser's, Deno's, Bun's, Node 22's global, or the `ws` package's client or
 * server socket) to the core's {@link Transport}. A WebSocket differs from a byte stream in ways that each
 * broke a naive adapter, so each is handled here:
 * - Messages can arrive in the same tick as `'open'` (the `ws` package emits them synchronously after it),
 *   so listeners are attached when the transport is created, not when the session starts; what arrives
 *   in between is kept and delivered first.
 * - `send()` throws while the socket is connecting: writes wait in order until `'open'`.
 * - A server-side socket is already open and never fires `'open'`: `readyState` decides.
 * - There is no `'drain'`, only `bufferedAmount`: a write returns false above a high-water mark, and drain
 *   is reported once `bufferedAmount` falls to a low-water mark. A `ws` socket reports each send complete,
 *   and that is when it is checked; it is polled only while no send of its is still to report (a WHATWG
 *   socket, which reports nothing, always).
 * - A browser WebSocket cannot be paused: while the session asks for a pause, messages are held here (the
 *   `ws` package's socket has `pause()`/`resume()`, which stop reading its TCP socket, and those are used), up
 *   to {@link HOLD_BYTES}; beyond that they go to the session all the same, whose windows then bound what it
 *   keeps (a peer sending beyond them breaks the protocol), rather than this transport holding without bound.
 * - A message is one chunk of up to the peer's choosing (`maxMessageSize` on a server): the session gets at
 *   most {@link TURN_BYTES} a turn, the rest in later turns, so that one large message of cheap frames cannot
 *   hold the event loop (and every other session on it) for seconds.
 * - Binary messages only, as `ArrayBuffer`s (`binaryType` is set); a text message is a protocol error.
 * - Close codes: 1000 (and 1005, no code) end the transport cleanly; any other close, or an `'error'`
 *   event, fails it with a {@link WebSocketClosedError} holding the code and reason. A socket that closes
 *   before it opened (nothing listening, an upgrade refused) is reported as such: a failure of the session
 *   even with no channel open.
 * @module
 */
import { callOptions } from '../core/abortable.js';
import { isArrayBuffer } from '../core/bytes.js';
import { defer } from '../core/defer.js';
import { Fifo } from '../core/fifo.js';
import { afterTime, laterTask } from '../core/timers.js';
import { CHUNK_COST } from '../core/flow.js';
import { ProtocolError, TransportClosedError } from '../core/errors.js';
import type { Transport, TransportEvents } from '../core/transport.js';

/**
 * Received bytes handed to the session in one turn (one task, up to its microtasks' end); the rest waits for a
 * later task. muxwire's own messages are at most {@link MERGE_LIMIT}: they are never cut.
 */
const TURN_BYTES = 256 * 1024;
/**
 * What may be held while the session is paused, in received bytes and {@link CHUNK_COST} for each message (a
 * million one-byte messages are about 190 MiB of heap, not 1 MiB); beyond this, they are handed to it all the same.
 */
const HOLD_BYTES = 1024 * 1024;

/** A `Uint8Array` over an `ArrayBuffer`: what a WebSocket's `send()` takes. */
export type SendableBytes = ReturnType<Uint8Array['slice']>;

/** The parts of the WHATWG `WebSocket` interface the transport uses (any implementation has them). */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed, as the standard numbers them. */
  readonly readyState: number;
  /** Bytes given to `send()` and not yet handed to the network: what the water marks are judged on. */
  readonly bufferedAmount: number;
  /** Set to `'arraybuffer'` by the transport (a `Blob` would need an asynchronous read per message). */
  binaryType: string;
  /**
   * Sends one binary message: bytes over an `ArrayBuffer`, never a `SharedArrayBuffer` (the transport copies
   * those first). Typed as what `Uint8Array`'s `slice()` returns, which is that on TypeScript 5.7 and later,
   * where the DOM's `send()` takes only such views, and a plain `Uint8Array` before.
   */
  send(data: SendableBytes): void;
  /** Starts the closing handshake with a close code and reason. */
  close(code?: number, reason?: string): void;
  // `any`: the browser's WebSocket and ws's each type their events their own way, and both must fit.
  /** Listens for `'open'`, `'message'`, `'close'` and `'error'`. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  addEventListener(type: string, listener: (event: any) => void): void;
  /** Removes a listener added with `addEventListener`. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  removeEventListener(type: string, listener: (event: any) => void): void;
}

/** Options of {@link webSocketTransport}. */
export interface WebSocketTransportOptions {
  /** `write()` returns false once `bufferedAmount` exceeds this many bytes (default 1 MiB). */
  highWaterMark?: number | undefined;
  /** After that, drain is reported once `bufferedAmount` is at most this many bytes (default 256 KiB). */
  lowWaterMark?: number | undefined;
  /**
   * How often `bufferedAmount` is polled while waiting for drain, in ms (default 1); while it does not fall, the
   * polls back off, doubling up to 32 intervals apart. Polls use
   * `scheduler.postTask` where there is one (Chromium, Firefox), since browsers stretch a chain of
   * `setTimeout`s to 4 ms after five. At 5 ms, a page's upload ran at about 0.6x raw WebSocket; at 1 ms, 1.1x.
   */
  pollInterval?: number | undefined;
  /**
   * No message sent is larger than this many bytes (default 64 KiB; not to be confused with the WebSocket
   * server's `maxMessageSize`, the largest message it takes). Frames are joined into messages of up to this
   * size (at most 256 KiB) and cut to fit (the peer reads messages as one byte stream). 64 KiB because Firefox
   * moves larger messages at a third of the speed; lower it where something on the way refuses smaller ones
   * (a gateway's message limit); `Infinity` joins up to 256 KiB and sends a larger frame alone.
   */
  maxSendSize?: number | undefined;
}

/** The WebSocket closed abnormally (a close code other than 1000 or 1005, or after an `'error'` event). */
export class WebSocketClosedError extends TransportClosedError {
  static {
    this.prototype.name = 'WebSocketClosedError';
  }
  /** The close code (1006 when the connection dropped without a closing handshake). */
  declare readonly closeCode: number;
  /** The close reason the peer gave, if any. */
  declare readonly reason: string;
  constructor(closeCode: number, reason: string, cause?: unknown) {
    super(`the WebSocket closed with code ${closeCode}${reason === '' ? '' : ` (${reason})`}`, cause);
    this.closeCode = closeCode;
    this.reason = reason;
  }
}

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;

/**
 * The receive window a channel of `connectWebSocket` (and of `createWebSocketServer`) starts with unless
 * `initialWindow` is given: 2 MiB, not the spec's 256 KiB. A page's Window Update goes from its renderer
 * through the browser's network process to the server, and the bytes it allows come back the same way; with
 * Chromium and a Node server on a loaded machine an update alone took 0.3–6.7 ms (median, by run) to
 * arrive. Auto-tuning goes by the smallest ping RTT seen, taken while the link was idle, so it kept 256 KiB
 * and the server spent most of a download waiting for updates; a page's upload waited the same way for the
 * server's. The cost is latency: what is sent on other channels during a bulk transfer waits behind up to a
 * window of it (docs/browser.md, Benchmarks, has both sides).
 * @internal
 */
export const WEB_SOCKET_INITIAL_WINDOW = 2 * 1024 * 1024;

/**
 * @internal `options` with {@link WEB_SOCKET_INITIAL_WINDOW} as `initialWindow` when none is given (at most
 * `maxWindow`). Call it on options already validated.
 */
export function withWebSocketWindow<T extends { initialWindow?: number; maxWindow?: number }>(options: T): T {
  if (options.initialWindow !== undefined) return options;
  return { ...options, initialWindow: Math.min(WEB_SOCKET_INITIAL_WINDOW, options.maxWindow ?? Infinity) };
}

/**
 * @internal The default of `maxSendSize` for a WebSocket: 64 KiB. Firefox (153 ESR) sends and receives a
 * message of more than 64 KiB at a fraction of the speed (a page's `send()` of 65,548 bytes cost 12–18 ms per
 * MiB against 0.4–1.5 at 65,536; a muxwire channel moved a third of raw WebSocket's bytes either way with
 * messages of up to 256 KiB, 0.8–1.0x with 64 KiB); Chromium (four alternating runs) and WebKit showed no
 * difference that outlasted the noise (docs/browser.md).
 */
export const WEB_SOCKET_MESSAGE_SIZE = 64 * 1024;

/**
 * @internal Batches up to this size leave as one message (one copy, one WebSocket frame); larger parts go
 * alone. The Node server's `maxMessageSize` is at least this, so such a message always gets through.
 */
export const MERGE_LIMIT = 256 * 1024;

interface QueuedWrite {
  data: Uint8Array;
  done: ((error?: Error | null) => void) | null;
  inPlace: boolean;
}

function checkMark(name: string, value: unknown, fallback: number, max = Infinity): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw new TypeError(`muxwire: ${name} must be a number, got ${typeof value}`);
  if (!Number.isFinite(value) || value < 0 || value > max) {
    const range = max === Infinity ? '>= 0' : `from 0 to ${max}`;
    throw new RangeError(`muxwire: ${name} must be a number ${range}, got ${value}`);
  }
  return value;
}

/** The longest delay a timer takes (2^31 − 1 ms): Node fires a longer one after 1 ms, with a warning. */
const MAX_DELAY = 0x7fff_ffff;

/** @internal Validates the water marks (a bad one throws `RangeError`), defaults applied. */
export function resolveTransportOptions(
  options: WebSocketTransportOptions,
  defaultMaxSendSize = WEB_SOCKET_MESSAGE_SIZE,
): Required<WebSocketTransportOptions> {
  const highWaterMark = checkMark('highWaterMark', options.highWaterMark, 1024 * 1024);
  const given: unknown = options.maxSendSize;
  if (given !== undefined && typeof given !== 'number')
    throw new TypeError(`muxwire: maxSendSize must be a number, got ${given === null ? 'null' : typeof given}`);
  const maxSendSize = given ?? defaultMaxSendSize;
  if (!(maxSendSize >= 1) || (maxSendSize !== Infinity && !Number.isInteger(maxSendSize)))
    throw new RangeError(`muxwire: maxSendSize must be a whole number >= 1 or Infinity, got ${maxSendSize}`);
  return {
    highWaterMark,
    lowWaterMark: Math.min(checkMark('lowWaterMark', options.lowWaterMark, 256 * 1024), highWaterMark),
    pollInterval: checkMark('pollInterval', options.pollInterval, 1, MAX_DELAY),
    maxSendSize,
  };
}

/** @internal `parts`, with each part larger than `limit` cut into pieces of at most `limit` (the same array when none is). */
export function cutParts(parts: Uint8Array[], limit: number): Uint8Array[] {
  let i = 0;
  while (i < parts.length && parts[i]!.length <= limit) i++;
  if (i === parts.length) return parts;
  const cut = parts.slice(0, i);
  for (; i < parts.length; i++) {
    const part = parts[i]!;
    for (let at = 0; at < part.length; at += limit) cut.push(part.subarray(at, Math.min(at + limit, part.length)));
  }
  return cut;
}

/**
 * Where parts are joined for a WHATWG socket's `send()`, which copies what it is given before it returns (a
 * write is done once `send()` returned, see `send`): one array for every transport, grown to the largest
 * join (at most {@link MERGE_LIMIT}) and reused. A page uploading in 64 KiB writes had spent more of its main thread
 * allocating and collecting a fresh array per message than copying into it (docs/browser.md, Benchmarks).
 */
let scratch = new Uint8Array(0);

/**
 * @internal The error a WebSocket's `'error'` event carries, where it has one (`ws`, Node's, Deno's and Bun's put
 * it in `error`; a listener of `ws`'s own events gets the Error itself); a browser's carries none.
 */
export function errorOfEvent(event: unknown): unknown {
  return (event as { error?: unknown } | undefined)?.error ?? (event instanceof Error ? event : undefined);
}

/**
 * @internal A close event's code, `missing` when it has none; one outside 1000-4999 is 1006 (a connection that
 * closed abnormally): Deno gives 0 for a connection that failed.
 */
export function closeCodeOf(code: number | undefined, missing: number): number {
  return code === undefined ? missing : code >= 1000 && code <= 4999 ? code : 1006;
}

/**
 * @internal Cuts `parts` into messages and hands each to `emit`: a run of parts up to `limit` bytes (this
 * transport's {@link MERGE_LIMIT}) is joined (into {@link scratch} when `reuse`, else into a fresh array), a
 * part that stands alone is the message itself unless `copyAlone`. Returns whether any message was one of the
 * caller's arrays rather than a copy. The tunnel's WebSocket stream joins its writes with it too.
 */
export function eachMessage(
  parts: Uint8Array[],
  reuse: boolean,
  emit: (message: Uint8Array) => void,
  limit: number,
  copyAlone = false,
): boolean {
  let inPlace = false;
  let start = 0;
  let bytes = 0;
  const cut = (end: number): void => {
    // A part alone goes as it is, unless a SharedArrayBuffer holds it: a browser's `send()` refuses those.
    if (end - start === 1 && !copyAlone && parts[start]!.buffer instanceof ArrayBuffer) {
      emit(parts[start]!);
      inPlace = true;
    } else if (end > start) {
      const joined = reuse
        ? (scratch.length < bytes ? (scratch = new Uint8Array(bytes)) : scratch).subarray(0, bytes)
        : new Uint8Array(bytes);
      for (let i = start, offset = 0; i < end; offset += parts[i++]!.length) joined.set(parts[i]!, offset);
      emit(joined);
    }
    start = end;
    bytes = 0;
  };
  for (let i = 0; i < parts.length; i++) {
    if (bytes + parts[i]!.length > limit) cut(i);
    bytes += parts[i]!.length;
  }
  cut(parts.length);
  return inPlace;
}

/**
 * Wraps a WebSocket as a session transport. Call it as soon as the socket exists (before it opens, or, on a
 * server, in the connection handler): from then on no message is lost. The socket's `binaryType` becomes
 * `'arraybuffer'`.
 */
export function webSocketTransport(socket: WebSocketLike, options?: WebSocketTransportOptions): Transport {
  // (An RTCDataChannel has the shape but names its `readyState`s: taken as a WebSocket, it would never drain.)
  if (!isMessageSocket(socket) || typeof socket.readyState !== 'number')
    throw new TypeError('muxwire: webSocketTransport needs a WebSocket (for an RTCDataChannel, dataChannelTransport)');
  return messageTransport(socket, resolveTransportOptions(callOptions(options)), false);
}

/** @internal Whether `socket` has what a message socket needs to be used at all (`send`, `addEventListener`). */
export function isMessageSocket(socket: unknown): socket is { readyState: unknown } {
  return (
    socket !== null &&
    typeof socket === 'object' &&
    typeof (socket as WebSocketLike).send === 'function' &&
    typeof (socket as WebSocketLike).addEventListener === 'function'
  );
}

/**
 * @internal The transport over a socket of messages: a WebSocket, or (`dataChannel`) an RTCDataChannel seen
 * through a WebSocket's numbered `readyState`s, whose close has no code and whose failures are said as a data
 * channel's.
 */
export function messageTransport(
  socket: WebSocketLike,
  { highWaterMark, lowWaterMark, pollInterval, maxSendSize }: Required<WebSocketTransportOptions>,
  dataChannel: boolean,
): Transport {
  const noun = dataChannel ? 'data channel' : 'WebSocket';
  /** What closes the transport: a WebSocket's code and reason, or a data channel's failure (it has no code). */
  const closedError = (code: number, reason: string, cause?: unknown): TransportClosedError =>
    dataChannel ? new TransportClosedError(reason, cause) : new WebSocketClosedError(code, reason, cause);
  const mergeLimit = Math.min(MERGE_LIMIT, maxSendSize);
  socket.binaryType = 'arraybuffer';
  // The `ws` package's `send(data, callback)` says when its bytes reached the TCP socket (until then it holds
  // them by reference); a WHATWG socket copies at `send()`, so its writes are done at once. Not jsdom's (Jest's
  // jsdom environment): it reads them a tick after `send()` returned, so each message is an array of its own.
  const sendWithCallback = socket.send.length >= 2;
  const readsAfterSend =
    !sendWithCallback && Object.getOwnPropertySymbols(socket).some((s) => s.description === 'impl');
  const pausable = socket as unknown as { pause?: () => void; resume?: () => void; terminate?: () => void };

  let events: TransportEvents | undefined;
  /** Messages that came before `start()`, while paused, or beyond this turn's share (after `current`). */
  let held = new Fifo<Uint8Array>();
  /** What is left of the message being handed on, when a turn's share ended inside it. */
  let current: Uint8Array | null = null;
  /** Bytes in `held` and `current`. */
  let heldBytes = 0;
  /** What `held` and `current` cost against {@link HOLD_BYTES}: their bytes, and each message's own cost. */
  const heldCost = (): number => heldBytes + CHUNK_COST * (held.length + (current === null ? 0 : 1));
  /** Bytes handed to the session in this turn (set back to 0 by a microtask at its end). */
  let turnBytes = 0;
  /** A later task will go on handing held messages on. */
  let turnPending = false;
  /** Inside `deliver()`: a message that comes meanwhile is held, and the loop takes it. */
  let delivering = false;
  /** A `ws` socket paused by this transport (more than {@link HOLD_BYTES} held), not by the session. */
  let throttled = false;
  let paused = false;
  let deliverScheduled = false;
  /** Writes made while connecting. */
  let queued: QueuedWrite[] = [];
  let endRequested = false;
  /** `end()` was called: the socket is closing, nothing more may be sent. */
  let endCalled = false;
  let needDrain = false;
  /** A drain poll is pending. */
  let polling = false;
  /** The next poll's delay: `pollInterval` while `bufferedAmount` falls, doubled (up to 32 of them) while not. */
  let pollDelay = pollInterval;
  /** `bufferedAmount` at the last poll (Infinity when no poll has run since the last drain). */
  let polledAmount = Infinity;
  /** `ws` sends whose callback has not come yet: each checks for drain when it comes. */
  let sending = 0;
  /**
   * Writes whose `ws` send failed because the socket was closing, before anything said why, and writes made
   * after the close while messages that came before it still wait to be handed on: they fail with what the
   * close says (its code and reason, or the failure that closed it), once the session has heard it. (Failed at
   * once, a reply to the last messages had failed the session before it read them: their data, and the FINs
   * among them, were lost.)
   */
  const failedAtClose: ((error?: Error | null) => void)[] = [];
  let failure: Error | undefined;
  let closed = false;
  /** Set when the close event came before `start()`: reported from `start()`. */
  let closeEvent: { code: number; reason: string } | undefined;
  let destroyed = false;
  /**
   * It opened (a server's socket is open from the start): a failure before that fails even an idle session. One
   * handed over already closed counts as never opened: the session never had it.
   */
  let opened = socket.readyState === OPEN;

  const onMessage = (event: { data: unknown }): void => {
    // (`ws` goes on emitting what it already read after `terminate()`: nothing more counts once failed.)
    if (failure !== undefined || destroyed) return;
    const data = event.data;
    let chunk: Uint8Array;
    if (isArrayBuffer(data)) chunk = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) chunk = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else {
      failure ??= new ProtocolError(`the ${noun} received a text message; muxwire sends binary messages only`);
      abort();
      return;
    }
    held.push(chunk);
    heldBytes += chunk.length;
    // Beyond the bound, a `ws` socket stops reading its TCP socket until the turns caught up.
    if (heldCost() > HOLD_BYTES && !throttled && pausable.pause !== undefined) {
      throttled = true;
      pausable.pause();
    }
    deliver();
    // A message is a wake-up no timer gives in a hidden tab: Chromium runs its timers, the drain polls among
    // them, once a minute after five minutes hidden, while the socket's buffer empties meanwhile. Writing
    // (the answers to the peer's pings with it) waited that long, and the peer's keep-alive failed the session.
    if (needDrain) checkDrain();
  };

  const endTurn = (): void => {
    turnBytes = 0;
  };

  /**
   * Hands held messages to the session, oldest first, while it is not paused (or holds more than
   * {@link HOLD_BYTES}), up to {@link TURN_BYTES} a turn; then the close, if it came and nothing is left.
   */
  const deliver = (): void => {
    if (events === undefined || destroyed || delivering || (turnPending && !flooded())) return;
    delivering = true;
    try {
      while ((current !== null || held.length > 0) && (!paused || heldCost() > HOLD_BYTES)) {
        // Messages that keep coming faster than the turns take them (a flood, not one large message) are handed
        // on at once, the transport then reading no faster than the session decodes.
        current ??= held.shift()!; // (the message being handed on, cut or not)
        const flood = flooded();
        if (turnBytes >= TURN_BYTES && !flood) {
          if (!turnPending) {
            turnPending = true;
            laterTask(() => {
              turnPending = false;
              deliver();
            }, 0);
          }
          return;
        }
        let chunk = current;
        current = null;
        const room = flood ? chunk.length : TURN_BYTES - turnBytes;
        if (chunk.length > room) {
          current = chunk.subarray(room);
          chunk = chunk.subarray(0, room);
        }
        heldBytes -= chunk.length;
        if (turnBytes === 0) defer(endTurn);
        turnBytes += chunk.length;
        events.data(chunk);
        if (events === undefined || destroyed) return;
      }
    } finally {
      delivering = false;
      if (throttled && heldCost() <= HOLD_BYTES && !destroyed) {
        throttled = false;
        if (!paused) pausable.resume?.();
      }
    }
    if (current === null && held.length === 0 && closeEvent !== undefined) reportClose();
  };

  /**
   * More than {@link HOLD_BYTES} waits behind the message being cut, on a socket that cannot pause (a `ws`
   * socket stops reading instead: see `throttled`).
   */
  const flooded = (): boolean =>
    pausable.pause === undefined &&
    held.length > (current === null ? 1 : 0) &&
    heldCost() - (current === null ? 0 : current.length + CHUNK_COST) > HOLD_BYTES;

  const deliverHeld = (): void => {
    deliverScheduled = false;
    deliver();
  };

  const scheduleDeliver = (): void => {
    if (deliverScheduled) return;
    deliverScheduled = true;
    defer(deliverHeld);
  };

  const onOpen = (): void => {
    opened = true;
    events?.open?.();
    const writes = queued;
    queued = [];
    for (const write of writes) send(write.data, write.done, write.inPlace);
    if (endRequested) socket.close(1000);
    else checkDrain();
  };

  /** The failure an `'error'` event recorded: the close event that follows may tell its code. */
  let errorFailure: TransportClosedError | undefined;
  const onError = (event: unknown): void => {
    // Browsers give no detail and always follow with 'close'.
    const cause = errorOfEvent(event);
    const detail = (cause as Error | undefined)?.message;
    failure ??= errorFailure = closedError(
      1006,
      dataChannel
        ? `the data channel failed${detail ? `: ${detail}` : ''}`
        : detail
          ? `WebSocket error: ${detail}`
          : 'WebSocket error',
      cause,
    );
    // One that fails before it opens is closed at once, by the standard; Node 22's (undici 6) fires no 'close'
    // then and stays CONNECTING for good: its close is taken as said once the turn has passed without one.
    if (!opened) afterTime(() => closed || onClose({ code: 1006 }), 0);
  };

  const onClose = (event: { code?: number; reason?: string }): void => {
    closed = true;
    for (const type in listeners) socket.removeEventListener(type, listeners[type as keyof typeof listeners]);
    const failed = closedError(1006, `the ${noun} closed before it opened`);
    for (const write of queued.splice(0)) write.done?.(failure ?? failed);
    closeEvent = { code: closeCodeOf(event?.code, 1005), reason: event?.reason ?? '' };
    // After an error, a close with a code of its own says more (`ws` closes with 1009 for a message over
    // its limit, 1002 or 1007 for a bad frame): that code goes with the failure.
    if (
      failure === errorFailure &&
      errorFailure instanceof WebSocketClosedError &&
      closeEvent.code !== 1006 &&
      closeEvent.code !== 1005
    ) {
      failure = new WebSocketClosedError(closeEvent.code, closeEvent.reason || errorFailure.reason, errorFailure.cause);
    }
    // Held messages go first; the close is reported after them.
    if (events !== undefined && current === null && held.length === 0) reportClose();
    else if (events !== undefined && !paused) scheduleDeliver();
    else if (events === undefined) failWritesAtClose(failure ?? closedError(closeEvent.code, closeEvent.reason));
  };

  function reportClose(): void {
    const sink = events!;
    const { code, reason } = closeEvent!;
    closeEvent = undefined;
    events = undefined;
    const error = failure ?? closedError(code, reason);
    if (!destroyed) {
      if (failure === undefined && (code === 1000 || code === 1005)) sink.end();
      else sink.error(error, !opened);
    }
    failWritesAtClose(error);
    sink.close();
  }

  /** Closed, and the close not yet told to the session: messages that came before it still wait. */
  function closeUnreported(): boolean {
    return closed && closeEvent !== undefined && events !== undefined && !destroyed;
  }

  function failWritesAtClose(error: Error): void {
    for (const done of failedAtClose.splice(0)) done(error);
  }

  /**
   * Sends one message; `done` (if any) is told once the caller's bytes are no longer needed. `inPlace`: the
   * message may be the caller's own array, which the `ws` package keeps by reference until its bytes are in
   * the socket, so `done` waits for its send callback. A joined copy is the transport's own, so `done` is
   * told at once (from a microtask, by the core's `defer`), as with a WHATWG socket: the session's writer then goes on within the
   * same turn, up to `highWaterMark` buffered, instead of waiting one event-loop turn per message. A Node →
   * Chromium download's messages had come every 1.1–1.3 ms against raw WebSocket's 0.6; with this change it
   * ran at 68 and 54 MB/s against 64 and 44 before, in two interleaved runs (docs/browser.md, Benchmarks).
   */
  function send(data: Uint8Array, done: ((error?: Error | null) => void) | null, inPlace: boolean): void {
    if (sendWithCallback) {
      sending++;
      (socket.send as (data: Uint8Array, callback: (error?: Error) => void) => void)(data, (error) => {
        sending--;
        if (inPlace && done !== null) {
          // `ws` says only that the socket is not open: why it closed (a text message, the peer's close code)
          // is the transport's to say, and the session's error is the first one it hears.
          if (!error) done(null);
          else if (failure !== undefined) done(failure);
          else if (closed ? closeUnreported() : socket.readyState > OPEN) failedAtClose.push(done);
          else done(error);
        }
        if (needDrain) checkDrain();
      });
      if (!inPlace && done !== null) defer(() => done(null));
      return;
    }
    try {
      socket.send(data as SendableBytes);
    } catch (error) {
      sendFailed(error);
      if (done !== null) defer(() => done(failure));
      return;
    }
    if (done !== null) defer(() => done(null));
  }

  function checkDrain(): void {
    if (!needDrain || closed) return;
    if (socket.readyState === OPEN && socket.bufferedAmount <= lowWaterMark) {
      needDrain = false;
      pollDelay = pollInterval;
      polledAmount = Infinity;
      events?.drain();
      return;
    }
    // While a `ws` send is still to report, its callback checks again: a poll would only spin (a peer that
    // stopped reading had a blocked server poll every 1 ms, 4% of a core per connection, for as long as it
    // stayed so). With every send reported, what is left in `bufferedAmount` is what `ws` wrote on its own
    // (pongs, say), which reports nothing: that is polled, as a WHATWG socket always is.
    if (!polling && socket.readyState === OPEN && sending === 0) {
      polling = true;
      // `scheduler.postTask` where there is one (Chromium, Firefox), else `setTimeout`. The polls are a chain
      // of timers each set from the one before (or from the writes that followed its drain), and browsers
      // stretch such a chain of `setTimeout`s to at least 4 ms once it is five deep (the HTML standard's
      // nesting clamp); `postTask`'s delays are not stretched. In Chromium, a chain of 1 ms timers fired every
      // 4.2 ms with `setTimeout` and every 1.2 ms with `postTask`; in a page's upload the poll had fired 5–6
      // ms after it was set, the socket's buffer running dry meanwhile (docs/browser.md, Benchmarks).
      laterTask(poll, pollDelay);
    }
  }

  /**
   * A poll is not cancelled: one that fires after drain, a close or `destroy()` finds nothing to do. While
   * `bufferedAmount` does not fall (a peer or network that stopped), the polls back off to 32 intervals apart:
   * a page whose server stopped polled about 830 times a second until keep-alive failed the session.
   */
  function poll(): void {
    polling = false;
    const amount = socket.bufferedAmount;
    pollDelay = amount < polledAmount ? pollInterval : Math.min(pollDelay * 2, pollInterval * 32, MAX_DELAY);
    polledAmount = amount;
    checkDrain();
  }

  /** `send()` threw: nothing more can be trusted to go out in order, so the transport fails. */
  function sendFailed(error: unknown): void {
    failure ??= new TransportClosedError(`the ${noun}'s send() failed: ${(error as Error)?.message ?? error}`, error);
    abort();
  }

  function abort(): void {
    try {
      if (typeof pausable.terminate === 'function') pausable.terminate();
      else socket.close(1000);
    } catch {
      // (a socket whose close() throws is closed for the session all the same, below)
    }
    // A WHATWG socket's close() waits for the peer's answer (a browser gives a peer that is gone a minute or
    // more), and so would the session's close deadline; and some sockets never say they closed (workerd's, when
    // the Worker never called accept(): every send() throws, and the session ran on until keep-alive, or for
    // good). The transport is closed for the session now, and the handshake ends, or not, without it.
    // (A data channel's `terminate()` is the view's own, which says nothing either.)
    if (typeof pausable.terminate !== 'function' || dataChannel) defer(() => closed || onClose({ code: 1006 }));
  }

  /**
   * The socket says it closed. Still CLOSING, it has not answered the peer's Close frame (workerd's server
   * sockets before its 2026-04-07 compatibility date): answered here, or the peer waits for it (a Node client's
   * graceful close took 2 s and ended with 1006 instead of 60 ms). Browsers say so only once CLOSED.
   */
  const onCloseEvent = (event: { code?: number; reason?: string }): void => {
    if (socket.readyState === CLOSING) {
      const code = event?.code;
      try {
        socket.close(code !== undefined && code >= 3000 && code <= 4999 ? code : 1000);
      } catch {
        // (closed meanwhile)
      }
    }
    onClose(event);
  };

  // Listening starts now, before the session exists: see the module comment.
  const listeners = { message: onMessage, open: onOpen, error: onError, close: onCloseEvent };
  for (const type in listeners) socket.addEventListener(type, listeners[type as keyof typeof listeners]);
  if (socket.readyState > OPEN) {
    // Already closing or closed: no close event may come any more.
    closed = true;
    closeEvent = { code: 1006, reason: `the ${noun} was already closed` };
    failure = closedError(1006, closeEvent.reason);
  }

  return {
    isConnecting() {
      return !opened && !closed;
    },
    // A WHATWG socket has no pause: past its hold, messages go to the session all the same (see the module comment).
    cannotPause: pausable.pause === undefined,
    start(sink) {
      events = sink;
      if (current !== null || held.length > 0 || closeEvent !== undefined) scheduleDeliver();
    },
    write(parts, done) {
      if (closeUnreported() && failure === undefined) {
        failedAtClose.push(done); // after what came before the close (see `failedAtClose`)
        return false;
      }
      if (closed || endCalled) {
        // As a Node stream fails a write after end(): the bytes cannot go (a browser would only warn).
        defer(() =>
          done(
            failure ?? closedError(1006, closed ? `the ${noun} is closed` : 'the transport was ended: no more writes'),
          ),
        );
        return false;
      }
      const connecting = socket.readyState === CONNECTING;
      // An open WHATWG socket copies at `send()`: its messages go at once, joined in the shared array. Queued
      // ones, and those `ws` holds by reference until sent, are joined into arrays of their own.
      const now = !connecting && !sendWithCallback;
      const messages: Uint8Array[] = [];
      let inPlace: boolean;
      try {
        inPlace = eachMessage(
          maxSendSize === Infinity ? parts : cutParts(parts, maxSendSize),
          now && !readsAfterSend,
          now ? (message) => socket.send(message as SendableBytes) : (message) => messages.push(message),
          mergeLimit,
          readsAfterSend,
        );
      } catch (error) {
        sendFailed(error);
        defer(() => done(failure));
        return false;
      }
      const last = messages.length - 1;
      if (connecting) {
        for (let i = 0; i <= last; i++) queued.push({ data: messages[i]!, done: i === last ? done : null, inPlace });
        needDrain = true;
        return false;
      }
      for (let i = 0; i <= last; i++) send(messages[i]!, i === last ? done : null, inPlace);
      if (now) defer(() => done(null));
      if (socket.bufferedAmount > highWaterMark) {
        needDrain = true;
        checkDrain();
        return false;
      }
      return true;
    },
    pause() {
      paused = true;
      pausable.pause?.();
    },
    resume() {
      paused = false;
      if (!throttled) pausable.resume?.();
      if (current !== null || held.length > 0 || closeEvent !== undefined) scheduleDeliver();
    },
    end() {
      endCalled = true;
      if (closed) return;
      if (socket.readyState === CONNECTING) endRequested = true;
      else socket.close(1000);
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      held = new Fifo();
      current = null;
      heldBytes = 0;
      if (closed) {
        // Writes held for the close's report fail now: the session let go of the transport before it.
        failWritesAtClose(
          failure ?? closedError(closeEvent?.code ?? 1006, closeEvent?.reason ?? `the ${noun} is closed`),
        );
        return;
      }
      // Still connecting: the connection is given up (nothing written meanwhile may reach the peer later), and
      // the writes waiting for it fail.
      const waiting = queued;
      queued = [];
      const gone = failure ?? closedError(1006, `the transport was destroyed before the ${noun} opened`);
      for (const write of waiting) write.done?.(gone);
      abort();
    },
  };
}
