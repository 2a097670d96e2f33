/**
 * The connection a tunnel's session runs over: TCP, TLS, or a WebSocket (ws:// or wss://, through HTTP
 * proxies and load balancers that speak HTTP only), opened by the client (`dialServer`) and accepted by the
 * server (`listenTunnel`). Either way the session gets a Node `Duplex` of bytes. Failures become
 * `TunnelError`s a person can act on: an unreachable server, an untrusted certificate, a port in use.
 * @module
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { WebSocket, WebSocketServer, createWebSocketStream } from 'ws';
import type { Address, ClientConfig, ServerConfig } from './args.js';
import { formatAddress } from './args.js';
import { TunnelError, describeSocketError } from './errors.js';
import { HandshakeSlots } from './handshake-slots.js';
import { HELLO_TIMEOUT_MS, WS_MAX_MESSAGE_BYTES } from './protocol.js';

/** How long connecting to the server (TCP and TLS handshake) may take. */
export const DIAL_TIMEOUT_MS = 10_000;

/** OpenSSL's verification codes that mean "this certificate is not to be trusted". */
const CERT_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new TunnelError('ERR_TUNNEL_TLS', `cannot read ${what} ${path}: ${(error as Error).message}`);
  }
}

/** Client side TLS options, read once at start (a missing file is an error before any connection). */
export function clientTlsOptions(config: ClientConfig): tls.ConnectionOptions | undefined {
  if (config.tls === undefined) return undefined;
  const host = config.server.host;
  const options: tls.ConnectionOptions = { host, servername: net.isIP(host) === 0 ? host : undefined };
  if (config.tls.ca !== undefined) options.ca = readPem(config.tls.ca, 'the CA certificate');
  // With a fingerprint the certificate is trusted for being that exact certificate, not for its chain, so
  // the chain check is off and the fingerprint is checked once the handshake is done (dialServer).
  if (config.tls.fingerprint !== undefined) options.rejectUnauthorized = false;
  return options;
}

function certificateError(where: string, error: NodeJS.ErrnoException): TunnelError | undefined {
  if (error.code === undefined || !CERT_CODES.has(error.code)) return undefined;
  return new TunnelError(
    'ERR_TUNNEL_CERT',
    `the server ${where} presented a certificate that is not trusted ` +
      `(${error.code}: ${error.message}); check --ca, or use --fingerprint`,
    { cause: error },
  );
}

function fingerprintError(where: string, socket: tls.TLSSocket, fingerprint: string): TunnelError | undefined {
  const actual = socket.getPeerCertificate().fingerprint256;
  if (actual === fingerprint) return undefined;
  return new TunnelError(
    'ERR_TUNNEL_CERT',
    `the server ${where} presented a certificate with SHA-256 ` +
      `fingerprint ${actual}, not the expected ${fingerprint}`,
  );
}

/**
 * Connects to the server: over a WebSocket when `ws` is given, else over TCP, or TLS when `tlsOptions` is
 * given; through an HTTP proxy's CONNECT tunnel when `proxy` is given. Resolves once the connection (and the
 * TLS and WebSocket handshakes) is complete.
 */
export async function dialServer(
  server: Address,
  tlsOptions: tls.ConnectionOptions | undefined,
  fingerprint: string | undefined,
  ws?: URL,
  proxy?: URL,
): Promise<Duplex> {
  const tunnel = proxy === undefined ? undefined : await proxyConnect(proxy, server);
  return ws === undefined
    ? dialSocket(server, tlsOptions, fingerprint, tunnel)
    : dialWebSocket(ws, tlsOptions, fingerprint, tunnel);
}

/**
 * Asks the HTTP proxy at `proxy` for a CONNECT tunnel to `target`; resolves to the socket that then carries
 * bytes to and from the target.
 */
export function proxyConnect(proxy: URL, target: Address): Promise<net.Socket> {
  const authority = formatAddress(target.host, target.port);
  const where = `the proxy ${proxy.host}`;
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: proxy.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: proxy.port === '' ? 80 : Number(proxy.port),
      method: 'CONNECT',
      path: authority,
      headers: { host: authority },
      agent: false,
    });
    const timer = setTimeout(() => {
      request.destroy();
      reject(
        new TunnelError(
          'ERR_TUNNEL_UNREACHABLE',
          `${where} did not answer CONNECT ${authority} in ${DIAL_TIMEOUT_MS / 1000} s`,
        ),
      );
    }, DIAL_TIMEOUT_MS);
    request.once('connect', (response, socket, head) => {
      clearTimeout(timer);
      if (response.statusCode !== 200) {
        socket.destroy();
        reject(
          new TunnelError(
            'ERR_TUNNEL_UNREACHABLE',
            `${where} refused CONNECT ${authority}: HTTP ${response.statusCode} ${response.statusMessage ?? ''}`.trim(),
          ),
        );
        return;
      }
      if (head.length > 0) socket.unshift(head);
      socket.setNoDelay(true);
      resolve(socket);
    });
    request.once('response', (response) => {
      clearTimeout(timer);
      response.resume();
      reject(
        new TunnelError('ERR_TUNNEL_UNREACHABLE', `${where} refused CONNECT ${authority}: HTTP ${response.statusCode}`),
      );
    });
    request.once('error', (error) => {
      clearTimeout(timer);
      reject(
        new TunnelError('ERR_TUNNEL_UNREACHABLE', `cannot reach ${where}: ${describeSocketError(error)}`, {
          cause: error,
        }),
      );
    });
    request.end();
  });
}

function dialSocket(
  server: Address,
  tlsOptions: tls.ConnectionOptions | undefined,
  fingerprint: string | undefined,
  tunnel: net.Socket | undefined,
): Promise<net.Socket> {
  const where = formatAddress(server.host, server.port);
  if (tunnel !== undefined && tlsOptions === undefined) return Promise.resolve(tunnel);
  return new Promise((resolve, reject) => {
    const socket: net.Socket =
      tlsOptions === undefined
        ? net.connect({ host: server.host, port: server.port, noDelay: true })
        : tls.connect({
            ...tlsOptions,
            port: server.port,
            host: server.host,
            ...(tunnel === undefined ? {} : { socket: tunnel }),
          });
    const fail = (error: TunnelError): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    const timer = setTimeout(() => {
      fail(
        new TunnelError(
          'ERR_TUNNEL_UNREACHABLE',
          `cannot reach the server ${where}: no answer in ${DIAL_TIMEOUT_MS / 1000} s`,
        ),
      );
    }, DIAL_TIMEOUT_MS);
    socket.once('error', (error: NodeJS.ErrnoException) => {
      const untrusted = certificateError(where, error);
      if (untrusted !== undefined) {
        fail(untrusted);
      } else if (tlsOptions !== undefined && (error.code ?? '').startsWith('ERR_SSL')) {
        const reason = (error as { reason?: string }).reason ?? error.message;
        const hint =
          error.code === 'ERR_SSL_WRONG_VERSION_NUMBER'
            ? ' (the server does not speak TLS there: drop --tls, or give the server --tls-cert)'
            : '';
        fail(
          new TunnelError('ERR_TUNNEL_TLS', `TLS with the server ${where} failed: ${reason}${hint}`, { cause: error }),
        );
      } else {
        fail(
          new TunnelError('ERR_TUNNEL_UNREACHABLE', `cannot reach the server ${where}: ${describeSocketError(error)}`, {
            cause: error,
          }),
        );
      }
    });
    socket.once(tlsOptions === undefined ? 'connect' : 'secureConnect', () => {
      const mismatch =
        fingerprint === undefined ? undefined : fingerprintError(where, socket as tls.TLSSocket, fingerprint);
      if (mismatch !== undefined) {
        fail(mismatch);
        return;
      }
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** Connects a WebSocket (binary messages, no compression: the bytes are the session's frames). */
function dialWebSocket(
  url: URL,
  tlsOptions: tls.ConnectionOptions | undefined,
  fingerprint: string | undefined,
  tunnel: net.Socket | undefined,
): Promise<Duplex> {
  const where = url.href;
  const tlsFields =
    tlsOptions === undefined
      ? {}
      : { ca: tlsOptions.ca, rejectUnauthorized: tlsOptions.rejectUnauthorized, servername: tlsOptions.servername };
  // Through a proxy the WebSocket runs over the CONNECT tunnel (wrapped in TLS for wss://). The certificate
  // is checked against the URL's host, as without a proxy: given only the socket, Node would check it against
  // the host that socket was opened to, the proxy's, which a proxy that answers TLS itself could hold a
  // certificate for. An IP address goes as `host` (Node then checks the certificate's IP addresses), a name
  // also as `servername` (clientTlsOptions).
  const overTunnel =
    tunnel === undefined
      ? {}
      : {
          createConnection: (() =>
            tlsOptions === undefined
              ? tunnel
              : tls.connect({
                  ...tlsFields,
                  host: tlsOptions.host,
                  socket: tunnel,
                })) as unknown as typeof net.createConnection,
        };
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      handshakeTimeout: DIAL_TIMEOUT_MS,
      maxPayload: WS_MAX_MESSAGE_BYTES,
      ...tlsFields,
      ...overTunnel,
    });
    let settled = false;
    const fail = (error: TunnelError): void => {
      if (settled) return;
      settled = true;
      ws.terminate();
      reject(error);
    };
    ws.once('upgrade', (response) => {
      const mismatch =
        fingerprint === undefined ? undefined : fingerprintError(where, response.socket as tls.TLSSocket, fingerprint);
      if (mismatch !== undefined) fail(mismatch);
    });
    ws.once('unexpected-response', (_request, response) => {
      fail(
        new TunnelError(
          'ERR_TUNNEL_UNREACHABLE',
          `the server ${where} answered HTTP ${response.statusCode}, not a WebSocket (check the URL's path)`,
        ),
      );
    });
    ws.once('error', (error: NodeJS.ErrnoException) => {
      fail(certificateError(where, error) ?? webSocketDialError(where, url.protocol === 'wss:', error));
    });
    ws.once('open', () => {
      if (settled) return;
      settled = true;
      ws.removeAllListeners('error');
      resolve(createWebSocketStream(ws));
    });
  });
}

/**
 * Why a WebSocket dial failed, with a hint where the ends are set up differently, as `dialSocket` says it: a
 * wss:// client at a server without TLS (OpenSSL's "wrong version number", which `ws` reports as `EPROTO`),
 * a ws:// client reset by a TLS server, or answered in something other than HTTP (a plain tunnel server).
 */
function webSocketDialError(where: string, secure: boolean, error: NodeJS.ErrnoException): TunnelError {
  const code = error.code ?? '';
  if (secure && (code === 'EPROTO' || code.startsWith('ERR_SSL'))) {
    const plain = /wrong version number/i.test(error.message) || code === 'ERR_SSL_WRONG_VERSION_NUMBER';
    const reason = plain
      ? 'the server does not speak TLS there: use ws://, or give the server --tls-cert'
      : ((error as { reason?: string }).reason ?? error.message);
    return new TunnelError('ERR_TUNNEL_TLS', `TLS with the server ${where} failed: ${reason}`, { cause: error });
  }
  const why = code.startsWith('HPE_')
    ? 'it did not answer in HTTP (a tunnel server without --ws? give the client --server HOST:PORT in place of --ws)'
    : `${describeSocketError(error)}${
        code === 'ECONNRESET' && !secure ? ' (a server with --tls-cert? its URL is wss://)' : ''
      }`;
  return new TunnelError('ERR_TUNNEL_UNREACHABLE', `cannot reach the server ${where}: ${why}`, { cause: error });
}

/** Called by the server once the tunnel's handshake on a connection is over (authenticated or failed). */
export type HandshakeOver = () => void;

/** What the listener tells of the connections it closes before the server sees them, and of its own failures. */
export interface ListenerReports {
  /** A TLS handshake failed: a client that does not trust the certificate, or not TLS at all. */
  tlsFailed(error: Error, remote: string): void;
  /**
   * A connection was closed by the listener: at once, for too many connections in their handshake, in all or
   * from the client's address (see {@link HandshakeSlots}); or for not finishing its TLS or WebSocket handshake
   * within {@link HELLO_TIMEOUT_MS} (`timedOut`).
   */
  refused(remote: string, why: string, timedOut: boolean): void;
  /**
   * The listener could not accept a connection: what Node is told of (`ENFILE`, `ENOMEM`, ..., and `EMFILE`
   * when libuv has no spare descriptor left: while it has one, libuv accepts and closes the connections it
   * has no descriptor for by itself, and Node hears nothing).
   */
  acceptFailed(error: Error): void;
}

/**
 * Listens for clients on `config.listen`: TCP or TLS, or with `--ws` WebSocket connections on an HTTP or
 * HTTPS server. `onConnection` gets each connection once it is ready (after the TLS and WebSocket
 * handshakes) with the client's address, and a function to call once the tunnel's own handshake is over.
 * `reports` hears of what the listener closed itself (TLS and WebSocket: see {@link boundHandshakes}; the
 * server counts plain TCP connections itself), each once, and of connections it could not accept.
 */
export function listenTunnel(
  config: ServerConfig,
  onConnection: (transport: Duplex, remote: string, handshakeOver: HandshakeOver) => void,
  reports: ListenerReports,
): Promise<net.Server> {
  const remoteOf = (socket: net.Socket): string => formatAddress(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
  const noop = (): void => {};
  let server: net.Server;
  let over: (remote: string) => HandshakeOver = () => noop;
  const ready = (transport: Duplex, remote: string): void => onConnection(transport, remote, over(remote));
  if (config.wsPath !== undefined) {
    server = webSocketServer(config, ready, remoteOf);
  } else if (config.tls === undefined) {
    server = net.createServer({ noDelay: true }, (socket) => onConnection(socket, remoteOf(socket), noop));
  } else {
    const cert = readPem(config.tls.certFile, 'the certificate');
    const key = readPem(config.tls.keyFile, 'the key');
    let secure: tls.Server;
    try {
      secure = tls.createServer({ cert, key, handshakeTimeout: HELLO_TIMEOUT_MS }, (socket) => {
        socket.setNoDelay(true);
        ready(socket, remoteOf(socket));
      });
    } catch (error) {
      throw new TunnelError('ERR_TUNNEL_TLS', `cannot use --tls-cert/--tls-key: ${(error as Error).message}`);
    }
    server = secure;
  }
  /**
   * Connections whose end was reported: one line each, whichever comes first of a failed TLS handshake and
   * the listener's own closing (its refusal, whose TLS socket then fails too, or its deadline, which the TLS
   * server's own handshake timeout may meet in the same turn).
   */
  const told = new WeakSet<net.Socket>();
  if (config.tls !== undefined) {
    // A client that rejects the certificate closes the connection, and by the time the failure is told the
    // socket has forgotten its peer: the address is taken as the connection arrives. The TLS socket's
    // `_parent` is that connection (Node has no public link between them); without it, what the TLS socket
    // still knows is used.
    const remotes = new WeakMap<net.Socket, string>();
    server.on('connection', (socket: net.Socket) => remotes.set(socket, remoteOf(socket)));
    server.on('tlsClientError', (error: Error, socket: tls.TLSSocket) => {
      const raw = (socket as unknown as { _parent?: net.Socket })._parent;
      if (raw !== undefined) {
        if (told.has(raw)) return;
        told.add(raw);
      }
      reports.tlsFailed(error, (raw === undefined ? undefined : remotes.get(raw)) ?? remoteOf(socket));
    });
  }
  if (config.tls !== undefined || config.wsPath !== undefined) {
    const what =
      config.wsPath === undefined
        ? 'TLS handshake'
        : config.tls === undefined
          ? 'WebSocket handshake'
          : 'TLS and WebSocket handshakes';
    over = boundHandshakes(server, remoteOf, what, (socket, remote, why, timedOut) => {
      if (told.has(socket)) return;
      told.add(socket);
      reports.refused(remote, why, timedOut);
    });
  }
  const where = formatAddress(config.listen.host, config.listen.port);
  return new Promise((resolve, reject) => {
    server.once('error', (error) => {
      reject(new TunnelError('ERR_TUNNEL_LISTEN', `cannot listen on ${where}: ${describeSocketError(error)}`));
    });
    server.listen({ host: config.listen.host, port: config.listen.port, backlog: 1024 }, () => {
      server.removeAllListeners('error');
      // Once listening, an error is a connection that could not be accepted (the server goes on listening).
      server.on('error', (error) => reports.acceptFailed(error));
      resolve(server);
    });
  });
}

/**
 * TLS and WebSocket connections have handshakes of their own before the tunnel's, on a connection the tunnel
 * server does not see yet: a client that stays silent there would escape its deadline and its count. So each
 * raw connection is bounded here from the moment it connects: it is closed if it is not ready (its TLS or
 * WebSocket handshake done, `what`) within {@link HELLO_TIMEOUT_MS}, after which the server's own deadline for
 * the hello runs; and it holds a place of {@link HandshakeSlots} until the tunnel's handshake is over (with no
 * place left, in all or for the client's address, new connections are closed at once). Either closing is
 * told to `onClosed`. A ready connection is matched to its raw one by the client's address and port. Called
 * as a connection is ready: ends its first deadline, and returns the function that frees its place once the
 * tunnel's handshake is over.
 */
function boundHandshakes(
  server: net.Server,
  remoteOf: (socket: net.Socket) => string,
  what: string,
  onClosed: (socket: net.Socket, remote: string, why: string, timedOut: boolean) => void,
): (remote: string) => HandshakeOver {
  const slots = new HandshakeSlots();
  interface Waiting {
    timer: ReturnType<typeof setTimeout>;
    /** Its place was given back (each connection gives back its own once, whatever the map holds). */
    given: boolean;
  }
  // A connection reset before it was accepted has no address ('?:0'): such entries share a key, so the map
  // only matches a ready connection to its raw one; the places are counted per entry.
  const waiting = new Map<string, Waiting>();
  const free = (remote: string, entry: Waiting): void => {
    if (entry.given) return;
    entry.given = true;
    slots.give(remote);
    if (waiting.get(remote) === entry) waiting.delete(remote);
  };
  server.on('connection', (socket: net.Socket) => {
    const remote = remoteOf(socket);
    const full = slots.take(remote);
    if (full !== undefined) {
      socket.destroy();
      onClosed(socket, remote, full, false);
      return;
    }
    const deadline = (): void => {
      socket.destroy();
      onClosed(socket, remote, `its ${what} did not finish within ${HELLO_TIMEOUT_MS / 1000} s`, true);
    };
    const entry: Waiting = { timer: setTimeout(deadline, HELLO_TIMEOUT_MS), given: false };
    waiting.set(remote, entry);
    socket.once('close', () => {
      clearTimeout(entry.timer);
      free(remote, entry);
    });
  });
  return (remote) => {
    const entry = waiting.get(remote);
    if (entry !== undefined) clearTimeout(entry.timer);
    return () => {
      if (entry !== undefined) free(remote, entry);
    };
  };
}

/**
 * The path of a request's target: what precedes its query, compared as it is (no decoding, no `..`), as the
 * `ws` package compares it with its `path` for an upgrade, so both answers agree. Never parsed as a URL: Node
 * takes targets that `new URL()` refuses (`GET http://a:99999/ HTTP/1.1`), and one request must not be able to
 * throw from the server's handler and end the process.
 */
export function requestPath(target: string | undefined): string {
  if (target === undefined) return '/';
  const query = target.indexOf('?');
  return query < 0 ? target : target.slice(0, query);
}

/**
 * An HTTP (or, with --tls-cert, HTTPS) server whose only resource is the WebSocket on `--ws PATH`; any other
 * request gets 426 (or 404 for another path), so the port says what it is to a browser or a probe. The `ws`
 * package answers an upgrade to another path with 400 (the same comparison: {@link requestPath}).
 */
function webSocketServer(
  config: ServerConfig,
  onConnection: (transport: Duplex, remote: string) => void,
  remoteOf: (socket: net.Socket) => string,
): net.Server {
  const onRequest = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    const found = requestPath(request.url) === config.wsPath;
    response.writeHead(found ? 426 : 404, { 'content-type': 'text/plain', ...(found ? { upgrade: 'websocket' } : {}) });
    response.end(found ? 'muxwire tunnel: connect with a WebSocket client\n' : 'not found\n');
  };
  let server: http.Server;
  if (config.tls === undefined) {
    server = http.createServer(onRequest);
  } else {
    const cert = readPem(config.tls.certFile, 'the certificate');
    const key = readPem(config.tls.keyFile, 'the key');
    try {
      server = https.createServer({ cert, key }, onRequest);
    } catch (error) {
      throw new TunnelError('ERR_TUNNEL_TLS', `cannot use --tls-cert/--tls-key: ${(error as Error).message}`);
    }
  }
  server.on('connection', (socket: net.Socket) => socket.setNoDelay(true));
  const wss = new WebSocketServer({
    server,
    path: config.wsPath,
    perMessageDeflate: false,
    maxPayload: WS_MAX_MESSAGE_BYTES,
  });
  wss.on('connection', (ws, request) => {
    onConnection(createWebSocketStream(ws), remoteOf(request.socket));
  });
  wss.on('error', () => {}); // the HTTP server's own errors are reported by listen()
  return server;
}
