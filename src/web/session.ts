/**
 * Sessions without Node: {@link WebSession} over any core transport, and {@link connectWebSocket}, which
 * opens a WebSocket and resolves to the client session once it is open.
 * @module
 */
import { callOptions, whenAborted } from '../core/abortable.js';
import { type SessionOptions, resolveOptions } from '../core/options.js';
import { MuxSession, type Role, codecFor } from '../core/session.js';
import type { Transport } from '../core/transport.js';
import type { WireCodec } from '../core/codec.js';
import type { LogRecordMaker } from '../core/observe.js';
import { afterTime } from '../core/timers.js';
import { WebChannel } from './channel.js';
import {
  WebSocketClosedError,
  type WebSocketLike,
  type WebSocketTransportOptions,
  closeCodeOf,
  errorOfEvent,
  resolveTransportOptions,
  webSocketTransport,
  withWebSocketWindow,
} from './websocket-transport.js';

/**
 * A multiplexed session whose channels are {@link WebChannel}s (Web Streams). It has the API of every
 * muxwire session: `dial()`, `accept({ signal })`, `for await (const channel of session)`, `ping()`,
 * `goAway()`, `close()`, `destroy()`, `closed`, the `'channel'` / `'goaway'` / `'close'` and `'channelOpen'` /
 * `'channelClose'` events, the same options and the same typed errors.
 */
export class WebSession extends MuxSession<WebChannel> {
  /**
   * Starts a session over `transport` (from {@link webSocketTransport} or `streamTransport`); `role` decides
   * the channel id parity (client odd, server even), so the two ends must differ.
   */
  constructor(transport: Transport, role: Role, options?: WebSessionOptions) {
    const given = callOptions(options);
    const { multiplexCodec: _codec, logRecords: _records, ...sessionOptions } = given;
    // The options hold the parts a page may pass in, by the same names (`multiplexCodec`, `logRecords`).
    super(transport, role, sessionOptions, (state, port) => new WebChannel(state, port), given);
  }
}

/**
 * Options of {@link WebSession}: the session options, and what `protocol: 'multiplex'` and `logger` need
 * (each left out of a bundle that does not import it).
 */
export interface WebSessionOptions extends SessionOptions {
  /**
   * With `protocol: 'multiplex'` (the original Go multiplex format), pass the `multiplexCodec` this entry
   * exports: it is left out of a bundle that does not import it.
   */
  multiplexCodec?: WireCodec | undefined;
  /**
   * With a `logger`, pass the `logRecords` this entry exports: it makes the log records of the session's
   * reports (`{ logger, logRecords }`).
   */
  logRecords?: LogRecordMaker | undefined;
}

/** A WebSocket constructor: the global one, or for example the `ws` package's in Node 20. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Options of {@link connectWebSocket}: any session option, the transport's water marks, and these. */
export interface ConnectWebSocketOptions extends WebSessionOptions, WebSocketTransportOptions {
  /** WebSocket subprotocols to offer. */
  protocols?: string | string[] | undefined;
  /** Gives up connecting; the promise rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** The WebSocket class to use (default: `globalThis.WebSocket`; Node 20 has none: pass `ws`'s). */
  WebSocket?: WebSocketConstructor | undefined;
}

/**
 * Opens a WebSocket to `url` and resolves to the client session once it is open. Rejects with a
 * `WebSocketClosedError` (a `TransportClosedError`) when the connection fails, with the signal's reason
 * when aborted, and with `TypeError` / `RangeError` for bad options. Its channels start with a 2 MiB receive
 * window unless `initialWindow` (or a smaller `maxWindow`) is given: a browser's Window Updates take
 * milliseconds to reach the server, more than the idle RTT that auto-tuning goes by.
 */
export function connectWebSocket(url: string | URL, options?: ConnectWebSocketOptions): Promise<WebSession> {
  return new Promise<WebSession>((resolve, reject) => {
    // A bad option rejects before any socket exists.
    const {
      protocols,
      signal,
      WebSocket: given,
      highWaterMark,
      lowWaterMark,
      pollInterval,
      maxSendSize,
      ...webOptions
    } = callOptions(options);
    const transportOptions = { highWaterMark, lowWaterMark, pollInterval, maxSendSize };
    const Socket = given ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    const { multiplexCodec: _codec, logRecords: _records, ...sessionOptions } = webOptions;
    codecFor(resolveOptions(sessionOptions), webOptions);
    resolveTransportOptions(transportOptions);
    if (typeof Socket !== 'function') {
      throw new TypeError(
        "muxwire: no global WebSocket here; pass one as the WebSocket option (in Node 20, the ws package's)",
      );
    }
    if (signal?.aborted) throw signal.reason;
    const socket = new Socket(String(url), protocols);
    // The transport listens from now on, so that nothing the server sends with its 'open' is lost.
    const transport = webSocketTransport(socket, transportOptions);
    let settled = false;
    const cleanup = (): void => {
      settled = true;
      socket.removeEventListener('open', onOpen);
      socket.removeEventListener('close', onClose);
      socket.removeEventListener('error', onError);
      unwatch?.();
    };
    const onOpen = (): void => {
      cleanup();
      try {
        resolve(new WebSession(transport, 'client', withWebSocketWindow(webOptions)));
      } catch (error) {
        transport.destroy();
        reject(error);
      }
    };
    // Why it failed, where the WebSocket says (`ws`, Deno's and Bun's: a refused connection, an HTTP status
    // instead of the upgrade, a certificate not trusted; Node 22's gives a generic text, Node 24's and a
    // browser's nothing).
    let failure: unknown;
    const onClose = (event: { code?: number; reason?: string }): void => {
      cleanup();
      const message = (failure as { message?: unknown } | undefined)?.message;
      const detail = typeof message === 'string' && message !== '' ? message : undefined;
      // (Bun's own text names the URL already.)
      const what = detail?.includes(String(url)) ? 'the WebSocket' : `the WebSocket to ${String(url)}`;
      reject(
        new WebSocketClosedError(
          closeCodeOf(event?.code, 1006),
          event?.reason || `${what} could not be opened${detail ? `: ${detail}` : ''}`,
          failure,
        ),
      );
    };
    // A socket that fails before opening may fire no 'close' (Node 22's: see the transport's 'error').
    const onError = (event: unknown): void => {
      failure ??= errorOfEvent(event);
      afterTime(() => settled || onClose({ code: 1006 }), 0);
    };
    socket.addEventListener('open', onOpen);
    socket.addEventListener('close', onClose);
    socket.addEventListener('error', onError);
    const unwatch =
      signal === undefined
        ? undefined
        : whenAborted(signal, () => {
            cleanup();
            transport.destroy();
            reject(signal.reason);
          });
  });
}
