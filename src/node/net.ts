/**
 * Convenience over `node:net`: `connect()` a client session, `createServer()` for server sessions.
 * @module
 */
import net from 'node:net';
import { checkSignal, whenAborted } from '../core/abortable.js';
import { TransportClosedError } from '../core/errors.js';
import { DEFAULT_OPTIONS, type SessionOptions, resolveOptions } from '../core/options.js';
import { Session } from './session.js';

/** Options of `connect()`: where to connect (as for `net.connect`) plus any session option. */
export type ConnectOptions = Omit<net.TcpNetConnectOpts, 'onread'> &
  SessionOptions & {
    /** Gives up connecting: the socket is destroyed and `connect()` rejects with the signal's reason. Once the session is made it does nothing. */
    signal?: AbortSignal | undefined;
  };

/** Options of `createServer()`: `net.createServer` options plus any session option. */
export type ServerOptions = net.ServerOpts & SessionOptions;

const SESSION_KEYS = Object.keys(DEFAULT_OPTIONS);

/** Edits (insertions, deletions, substitutions) between `a` and `b`, letter case aside. */
function editDistance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length]!;
}

/**
 * Session options apart from the rest (for `node:net`). A name that is not a session option but nearly is one
 * (letter case aside, up to two edits: `keepaliveInterval`, `maxInboundStream`) throws `TypeError`: passed to
 * `node:net`, which ignores what it does not know, the typo would leave a bound unset without a word. No
 * option of `net.connect` or `net.createServer` is that near a session option (the nearest, `backlog`, is
 * three edits from `ackBacklog`).
 */
function splitOptions(options: unknown): { session: SessionOptions; rest: Record<string, unknown> } {
  if (typeof options !== 'object' || options === null) throw new TypeError('muxwire: options must be an object');
  const session: Record<string, unknown> = {};
  const rest: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (Object.hasOwn(DEFAULT_OPTIONS, key)) {
      session[key] = value;
      continue;
    }
    const near = SESSION_KEYS.find((name) => editDistance(key, name) <= 2);
    if (near !== undefined) throw new TypeError(`muxwire: unknown option ${key} (did you mean ${near}?)`);
    rest[key] = value;
  }
  return { session, rest };
}

/**
 * Connects over TCP and resolves to the client session once the connection is up. A bad session option
 * rejects with `TypeError` or `RangeError` before any connection is made; names that are not session options
 * go to `net.connect`. A connection that fails rejects with `TransportClosedError` ("could not connect: ..."),
 * whose `cause` is the socket's error (`ECONNREFUSED`, `ENOTFOUND`, ...); an aborted `signal` rejects with
 * its reason.
 */
export function connect(options: ConnectOptions): Promise<Session> {
  return new Promise<Session>((resolve, reject) => {
    // A bad option rejects here, before a connection is made only to be dropped.
    const { session: sessionOptions, rest } = splitOptions(options);
    const signal = options.signal;
    delete rest.signal;
    checkSignal(signal);
    resolveOptions(sessionOptions);
    if (rest.onread !== undefined) {
      // Node would hand every byte to the callback and none to the session.
      throw new TypeError('muxwire: connect() takes no onread option: the session reads the socket');
    }
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const socket = net.connect(rest as unknown as net.TcpNetConnectOpts);
    const unwatch =
      signal === undefined
        ? undefined
        : whenAborted(signal, () => {
            socket.destroy();
            reject(signal.reason);
          });
    const onError = (error: Error): void => {
      unwatch?.();
      // Typed as a session over a socket that never connects fails: the socket's error (ECONNREFUSED,
      // ENOTFOUND...) is the cause.
      reject(new TransportClosedError(`could not connect: ${error.message}`, error));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      unwatch?.();
      socket.off('error', onError);
      try {
        resolve(new Session(socket, 'client', sessionOptions));
      } catch (error) {
        socket.destroy();
        reject(error);
      }
    });
  });
}

/**
 * Creates a TCP server whose every connection becomes a server session, handed to `onSession`.
 * Call `listen()` on the result as with any `net.Server`.
 */
export function createServer(onSession: (session: Session) => void): net.Server;
export function createServer(options: ServerOptions, onSession: (session: Session) => void): net.Server;
export function createServer(
  optionsOrHandler: ServerOptions | ((session: Session) => void),
  handler?: (session: Session) => void,
): net.Server {
  const onSession = typeof optionsOrHandler === 'function' ? optionsOrHandler : handler;
  if (typeof onSession !== 'function') throw new TypeError('muxwire: createServer needs an onSession function');
  const { session: sessionOptions, rest } = splitOptions(
    typeof optionsOrHandler === 'function' ? {} : optionsOrHandler,
  );
  resolveOptions(sessionOptions); // a bad option throws here, not on the first connection
  return net.createServer(rest as net.ServerOpts, (socket) => {
    onSession(new Session(socket, 'server', sessionOptions));
  });
}
