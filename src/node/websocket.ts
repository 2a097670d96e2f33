/**
 * Sessions over WebSocket on the Node side, built on the `ws` package: `createWebSocketServer()` accepts
 * WebSocket connections (from pages using `muxwire/web`, or from Node through `webSocketTransport` and a
 * `ws` client) and makes each an ordinary server `Session` whose channels are Node `Duplex` streams.
 * @module
 */
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Server as HttpsServer } from 'node:https';
import { createRequire } from 'node:module';
import type { WebSocketServer as WsServer } from 'ws';
import { DEFAULT_OPTIONS, type SessionOptions, resolveOptions } from '../core/options.js';
import { HEADER_SIZE } from '../core/frame.js';
import {
  MERGE_LIMIT,
  type WebSocketTransportOptions,
  resolveTransportOptions,
  webSocketTransport,
  withWebSocketWindow,
} from '../web/websocket-transport.js';
import { Session } from './session.js';
import { attachToHttpServer } from './websocket-attach.js';

// `ws` is loaded on the first createWebSocketServer() call, not when 'muxwire' is imported: importing a
// CommonJS package from ES modules scans and compiles its files (~40 ms of CPU, most of what importing
// 'muxwire' cost), a cost every program paid even if it never serves WebSockets (issue 16, cold start).
let ws: { WebSocketServer: typeof WsServer } | undefined;
function loadWs(): { WebSocketServer: typeof WsServer } {
  if (ws !== undefined) return ws;
  // `ws` is found from this module's own place, which a CommonJS bundle of it does not have (its
  // `import.meta` is empty): say so, rather than Node's "The argument 'filename' must be a file URL".
  const here = import.meta.url as string | undefined;
  if (typeof here !== 'string') {
    throw new TypeError(
      "muxwire: createWebSocketServer() loads the 'ws' package from muxwire's own module URL (import.meta.url), " +
        'and this build has none: a CommonJS bundle. Bundle the program as ES modules (esbuild --format=esm), ' +
        'or keep muxwire out of the bundle (--external:muxwire)',
    );
  }
  const loaded = createRequire(here)('ws') as Partial<{ WebSocketServer: typeof WsServer }>;
  // A test runner that resolves packages for a browser (Jest's jsdom environment) gives `ws`'s browser build,
  // which has no server: say so, rather than "is not a constructor".
  if (typeof loaded.WebSocketServer !== 'function') {
    throw new TypeError(
      "muxwire: createWebSocketServer() needs the 'ws' package's Node build, and got its browser build " +
        "(a test runner resolving packages for a browser: under Jest's jsdom environment, set " +
        "testEnvironmentOptions: { customExportConditions: ['node', 'node-addons'] })",
    );
  }
  return (ws = loaded as { WebSocketServer: typeof WsServer });
}

/**
 * Options of {@link createWebSocketServer}: where to listen (an HTTP(S) `server` to attach to, or a `port` of
 * its own: exactly one of them), and any session option or transport water mark.
 */
export type WebSocketServerOptions = WebSocketServerOnServer | WebSocketServerOnPort;

/** What the two shapes of {@link WebSocketServerOptions} share. */
export interface WebSocketServerCommonOptions extends SessionOptions, WebSocketTransportOptions {
  /**
   * Only upgrade requests for this path, compared without the query string (`/mux?token=…` is `/mux`;
   * default: any path). With `port`, requests for other paths are answered with 400; with `server`, see there.
   */
  path?: string | undefined;
  /**
   * The largest WebSocket message a client may send, in bytes (default: `maxWindow` plus a frame header, 64
   * MiB + 12 with the default options). `ws` holds a whole message before it hands it on, outside the
   * session's `maxSessionBuffered` and `memoryBudget`, so this is what one connection can make the server
   * hold at once. A client that announces a larger message is disconnected with close code 1009 as soon as
   * the message's header arrives (its open channels fail with `TransportClosedError`). What a muxwire peer
   * sends fits: messages of at most 256 KiB, or one frame's payload, which the receive window bounds; a yamux
   * peer writing frames as messages fits as well. From 256 KiB to 2,147,483,647 (2^31 − 1, the most `ws`
   * takes; the default is capped there when `maxWindow` is larger).
   */
  maxMessageSize?: number | undefined;
  /**
   * Which web pages may open sessions, by the `Origin` header a browser sends with its upgrade request: a list
   * of origins (`'https://app.example.com'`, `'http://localhost:5173'`: scheme, host and a port other than the
   * scheme's own, as `new URL(...).origin` writes them, which each entry is checked and normalised with), or a
   * function of the header's value (and the request) that returns whether to take it (true, or a promise of
   * true: nothing else admits). A request refused is answered with 403 before any session exists; a function
   * that throws, or whose promise rejects, refuses it with 500. Entries of other schemes than http(s) name
   * them as a browser sends them (`chrome-extension://ID`); a `ws:`/`wss:` entry throws (a page's origin is
   * its own, not the WebSocket's URL).
   *
   * A browser lets any page open a WebSocket to any server, and sends the cookies it holds for that server:
   * a server that relies on cookies, or on being reachable only from this machine or this network, is open to
   * every site its users visit unless it checks the origin (cross-site WebSocket hijacking). Requests without
   * an `Origin` header do not come from pages (Node, Go, curl: anyone can send any header, so the check
   * authenticates nobody): a list lets them through, a function gets `undefined`. Default: every origin.
   */
  origins?:
    | readonly string[]
    | ((origin: string | undefined, request: IncomingMessage) => boolean | PromiseLike<boolean>)
    | undefined;
}

/** {@link WebSocketServerOptions} attached to an HTTP(S) server of the application's. */
export interface WebSocketServerOnServer extends WebSocketServerCommonOptions {
  /**
   * An HTTP(S) server to attach to. Its upgrade requests for `path` (every one without `path`) become
   * sessions; the rest are left to its other `'upgrade'` listeners (another WebSocket server, say, in ws's
   * `noServer` pattern), which must in turn leave `path`'s requests alone (not destroy their sockets). One
   * that no other listener is there to take (every `'upgrade'` listener is a `createWebSocketServer`'s, and
   * none has its path) is answered with 400. Plain HTTP requests are never touched. With a listener of your
   * own there too, a request neither takes is yours to answer (say, `socket.destroy()` for a path that is
   * neither yours nor `path`): Node answers no upgrade by itself.
   */
  server: HttpServer | HttpsServer;
  /** Not with `server`. */
  port?: undefined;
  /** Not with `server` (it listens where that server does). */
  host?: undefined;
}

/** {@link WebSocketServerOptions} listening with a server of its own. */
export interface WebSocketServerOnPort extends WebSocketServerCommonOptions {
  /** A port to listen on with a server of its own (0: any free port; see `address()`). */
  port: number;
  /** The address to listen on (default: every address). */
  host?: string | undefined;
  /** Not with `port`. */
  server?: undefined;
}

const SERVER_KEYS = ['server', 'port', 'host', 'path', 'maxMessageSize', 'origins'];
const TRANSPORT_KEYS = ['highWaterMark', 'lowWaterMark', 'pollInterval', 'maxSendSize'];

/**
 * The largest `maxPayload` `ws` takes: it reads the option as a 32-bit signed integer, so 2^31 and more became a
 * limit of none (negative) or of a few bytes (wrapped past 2^32: every connection closed at its first message).
 */
const MAX_WS_PAYLOAD = 0x7fff_ffff;

/**
 * What {@link createWebSocketServer} returns: the `ws` package's `WebSocketServer`, typed by the members muxwire
 * documents and as the `EventEmitter` it is (so `events.once(server, 'listening')` type-checks), so the
 * package's types need no `@types/ws` (cast it for the rest of `ws`'s API).
 */
export interface MuxWebSocketServer extends EventEmitter {
  /**
   * Stops accepting connections (open sessions go on until they end), and takes its listeners off `server`;
   * `callback` once it has closed.
   */
  close(callback?: (error?: Error) => void): void;
  /** The address it listens on (after `'listening'`; with `server`, that server's), null once closed. */
  address(): AddressInfo | string | null;
  /** The connected WebSockets: `terminate()` them to drop every session at once on shutdown. */
  readonly clients: Set<{ terminate(): void; close(code?: number, reason?: string): void }>;
  /** `'listening'` and `'error'`: its own server's with `port`; with `server`, that server's, emitted again here. */
  on(event: 'listening', listener: () => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  on(event: string | symbol, listener: (...args: unknown[]) => void): this;
  once(event: 'listening', listener: () => void): this;
  once(event: 'error', listener: (error: Error) => void): this;
  once(event: string | symbol, listener: (...args: unknown[]) => void): this;
}

/**
 * Creates a WebSocket server whose every connection becomes a server {@link Session}, handed to `onSession`
 * with the upgrade request. `close()` the result to stop; with `port`, wait for its `'listening'` event and
 * read `address()`. Channels start with a 2 MiB receive window, as `connectWebSocket`'s do, unless
 * `initialWindow` (or a smaller `maxWindow`) is given.
 */
export function createWebSocketServer(
  options: WebSocketServerOptions,
  onSession: (session: Session, request: IncomingMessage) => void,
): MuxWebSocketServer {
  if (options === null || typeof options !== 'object')
    throw new TypeError('muxwire: createWebSocketServer needs options');
  if (typeof onSession !== 'function')
    throw new TypeError('muxwire: createWebSocketServer needs an onSession function');
  // The types say so; JavaScript callers hear it here.
  if ((options.server === undefined) === (options.port === undefined)) {
    throw new TypeError('muxwire: createWebSocketServer needs exactly one of server and port');
  }
  const sessionOptions: Record<string, unknown> = {};
  const transportOptions: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (TRANSPORT_KEYS.includes(key)) transportOptions[key] = value;
    else if (!SERVER_KEYS.includes(key) || Object.hasOwn(DEFAULT_OPTIONS, key)) sessionOptions[key] = value;
  }
  // A bad option throws here, not on the first connection.
  const { maxWindow } = resolveOptions(sessionOptions);
  resolveTransportOptions(transportOptions);
  // By default a frame as large as the window with its header (a peer may send both as one message), up to
  // what `ws` takes. At least what muxwire's own transport joins into one message.
  const { maxMessageSize = Math.min(maxWindow + HEADER_SIZE, MAX_WS_PAYLOAD) } = options;
  if (!Number.isSafeInteger(maxMessageSize) || maxMessageSize < MERGE_LIMIT || maxMessageSize > MAX_WS_PAYLOAD) {
    throw new RangeError(
      `muxwire: maxMessageSize must be an integer from ${MERGE_LIMIT} to ${MAX_WS_PAYLOAD} (the most ws takes), got ${String(maxMessageSize)}`,
    );
  }
  const verifyClient = originCheck(options.origins);
  const server = new (loadWs().WebSocketServer)({
    // With `server`, ws's own 'upgrade' listener would answer every other path with 400, also the requests
    // another listener had taken: muxwire's own hands it only the requests for `path` (websocket-attach.ts).
    noServer: options.server !== undefined,
    port: options.port,
    host: options.host,
    path: options.path,
    // Compression would cost CPU on every frame for data that is often already compressed; yamux frames
    // are binary and the page's bytes are its own business.
    perMessageDeflate: false,
    maxPayload: maxMessageSize,
    // (`ws` calls it with the request before it answers the upgrade, also for `handleUpgrade` with `noServer`.)
    ...(verifyClient !== undefined && { verifyClient }),
  });
  if (options.server !== undefined) attachToHttpServer(server, options.server);
  server.on('connection', (socket, request) => {
    // The transport listens at once: a page's first frames may already be here.
    const transport = webSocketTransport(socket, transportOptions);
    let session: Session;
    try {
      // Channels start with the 2 MiB window a page's do: this side's Window Updates reach a page's upload
      // through the browser's network process, milliseconds away (docs/browser.md, Benchmarks).
      session = new Session(transport, 'server', withWebSocketWindow(sessionOptions as SessionOptions));
    } catch {
      socket.terminate();
      return;
    }
    onSession(session, request);
  });
  return server;
}

/** What `ws` calls to verify an upgrade request (its two-argument form, which can say which status to answer). */
type VerifyClient = (
  info: { origin: string | undefined; req: IncomingMessage },
  callback: (verified: boolean, code?: number, message?: string) => void,
) => void;

/** `origins` as `ws`'s `verifyClient` (undefined: every origin); a list is checked and normalised here. */
function originCheck(origins: WebSocketServerCommonOptions['origins']): VerifyClient | undefined {
  if (origins === undefined) return undefined;
  let allowed: (origin: string | undefined, request: IncomingMessage) => boolean | PromiseLike<boolean>;
  if (typeof origins === 'function') {
    allowed = origins;
  } else if (Array.isArray(origins)) {
    const list = new Set(origins.map(normalOrigin));
    allowed = (origin) => origin === undefined || list.has(origin);
  } else {
    throw new TypeError('muxwire: origins must be an array of origins or a function');
  }
  return (info, callback) => {
    // Only true lets a page in (a truthy value that is not true, such as a promise, must not open the server
    // to every page); a function may answer with a promise, and one that fails refuses with 500.
    const answer = (verdict: unknown): void => {
      if (verdict === true) callback(true);
      else callback(false, 403, 'Forbidden');
    };
    const failed = (): void => callback(false, 500, 'Internal Server Error');
    let verdict: unknown;
    let then: unknown;
    try {
      verdict = allowed(info.origin, info.req);
      then = (verdict as { then?: unknown } | null)?.then; // (a getter of the application's may throw too)
    } catch {
      failed();
      return;
    }
    if (typeof then === 'function') Promise.resolve(verdict).then(answer, failed);
    else answer(verdict);
  };
}

/**
 * An entry of `origins` as a browser writes its `Origin` header, or a TypeError: `new URL(entry).origin` for
 * http(s) and the other special schemes; for the others, which a browser sends as written (an extension's
 * `chrome-extension://ID`, an app's `capacitor://localhost`), `scheme://host`. A `ws:`/`wss:` entry is refused:
 * the page's origin is its own (http or https), never the WebSocket's URL.
 */
function normalOrigin(entry: unknown): string {
  let url: URL | undefined;
  try {
    if (typeof entry === 'string') url = new URL(entry);
  } catch {
    // (said below)
  }
  if (url !== undefined && (url.protocol === 'ws:' || url.protocol === 'wss:')) {
    throw new TypeError(
      `muxwire: origins takes the origins of pages (http:// or https://), not WebSocket URLs: got ${JSON.stringify(entry)}`,
    );
  }
  // A URL without a host (file:, data:) has no origin a list could name: a function can take their 'null'.
  const origin =
    url === undefined || url.host === ''
      ? undefined
      : url.origin === 'null'
        ? `${url.protocol}//${url.host}`
        : url.origin;
  if (origin === undefined) {
    throw new TypeError(
      `muxwire: origins takes origins such as 'https://app.example.com', got ${JSON.stringify(entry)}`,
    );
  }
  return origin;
}
