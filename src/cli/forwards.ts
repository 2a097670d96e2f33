/**
 * Forwarded connections: the listeners of -L (client) and -R (server), the channel each accepted connection
 * becomes, the request that opens it and its answer, and the splice of socket and channel. Either side may
 * play either part: the end that accepted the TCP connection "carries" it (dials a channel with a request),
 * the other "answers" (checks the request, connects to the target, replies, splices).
 * @module
 */
import net from 'node:net';
import { type Channel, ChannelResetError, type Session } from '../index.js';
import { formatAddress } from './args.js';
import { TunnelError, describeSocketError } from './errors.js';
import {
  type ConnectRequest,
  type ForwardResult,
  type ListenRequest,
  type RemoteRequest,
  encode,
  expectMessage,
  readMessage,
} from './protocol.js';
import type { RepeatedEvents } from './repeats.js';
import type { Reporter, Traffic } from './status.js';

/** How long the answering side may take to connect to the target and reply. */
export const ANSWER_TIMEOUT_MS = 15_000;
/** How long the answering side waits for the request at the start of a channel. */
export const REQUEST_TIMEOUT_MS = 10_000;
/** How long a connection to a target may take before it counts as unreachable. */
export const TARGET_CONNECT_TIMEOUT_MS = 10_000;
/** How long a reset waits for a socket's pending FIN to leave before it closes the socket without a reset. */
export const RESET_FIN_WAIT_MS = 1_000;

/** What the answering side decides for a request: a target to connect to, or a refusal. */
export type Decision = { host: string; port: number } | TunnelError;

/** The server's answer to a client asking again for an -R forward (see `ListenRequest`). */
export type ListenHandler = (request: ListenRequest) => Promise<ForwardResult>;

/** Shared by every forwarded connection of one process. */
export interface ForwardContext {
  reporter: Reporter;
  /** Where the events a peer causes once per channel go (`denied`, `forward-failed`): bounded in number. */
  perChannel: RepeatedEvents;
  traffic: Traffic;
  sockets: ForwardedSockets;
}

/**
 * The forwarded sockets of this end that are still open (accepted on a forward's port, or connected to a
 * target), so that a shutdown can reset what its drain left instead of letting the process's exit close them
 * with a FIN, which would pass a stream cut short for a complete one.
 */
export class ForwardedSockets {
  readonly #open = new Set<net.Socket>();
  /** Set by `stopping()`: the sockets reset since then because their channel failed, for the stop's count. */
  #resetWhileStopping: number | undefined;

  /** A shutdown's drain begins: sockets reset from now on count in `resetUnfinished()`'s result. */
  stopping(): void {
    this.#resetWhileStopping ??= 0;
  }

  /** `socket` is being reset because its channel failed (the drain's deadline, a lost session). */
  resetting(socket: net.Socket): void {
    if (this.#resetWhileStopping !== undefined && this.#open.delete(socket)) this.#resetWhileStopping++;
  }

  /** Keeps `socket` until it closes. */
  add(socket: net.Socket): void {
    if (socket.destroyed || this.#open.has(socket)) return;
    this.#open.add(socket);
    socket.once('close', () => this.#open.delete(socket));
  }

  /**
   * Resets (TCP RST) every socket whose stream is unfinished; returns how many, with those reset since
   * `stopping()` because their channel failed (the drain's deadline). A socket that has handed all
   * its data to the kernel and was ended is left alone: the kernel delivers the data and the FIN after the
   * exit (closing the socket sends the FIN if its shutdown has not run yet), and a reset would throw away
   * what it still holds of a complete stream.
   */
  resetUnfinished(): number {
    let reset = this.#resetWhileStopping ?? 0;
    if (this.#resetWhileStopping !== undefined) this.#resetWhileStopping = 0;
    for (const socket of this.#open) {
      if (socket.destroyed || socket.writableFinished || endedAndWritten(socket)) continue;
      reset += 1;
      this.#open.delete(socket);
      // A socket still connecting has sent nothing: closing it is enough (a reset waits for the connection).
      if (socket.connecting) socket.destroy();
      else socket.resetAndDestroy();
    }
    return reset;
  }
}

/**
 * Whether `socket` was ended and everything written before the end is with the kernel: its shutdown (the
 * FIN) is then pending or about to be, until the next turn of the event loop. libuv refuses to reset a
 * socket while its shutdown is pending (EINVAL), and Node's `resetAndDestroy()` then drops the handle without
 * closing it (Node 20): no 'close', and the file descriptor stays open for good.
 */
function endedAndWritten(socket: net.Socket): boolean {
  return socket.writableEnded && !socket.writableFinished && socket.writableLength === 0;
}

/**
 * Resets `socket` (TCP RST) and destroys it. One whose FIN is pending is reset once the FIN is out: current
 * libuv sends it on the next turn of the event loop whatever the peer does (nothing is left to write before
 * it); an older one waits for room in the socket's send buffer, so after {@link RESET_FIN_WAIT_MS} the socket
 * is closed instead (its data and FIN still go, as after a complete stream).
 */
function resetSocket(socket: net.Socket): void {
  if (!endedAndWritten(socket)) {
    socket.resetAndDestroy();
    return;
  }
  const timer = setTimeout(() => socket.destroy(), RESET_FIN_WAIT_MS);
  socket.once('close', () => clearTimeout(timer));
  socket.once('finish', () => {
    clearTimeout(timer);
    if (!socket.destroyed) socket.resetAndDestroy();
  });
}

/**
 * Joins a forwarded socket and its channel both ways, half-close included (each FIN becomes the other's
 * end). A failure on either side aborts the other: a reset channel resets the socket (RST, so the program
 * on the far end sees the break at once rather than a clean end of data), a failed socket resets the channel.
 */
function splice(socket: net.Socket, channel: Channel, sockets: ForwardedSockets): void {
  channel.pipe(socket);
  socket.on('close', (hadError) => {
    if (hadError && !channel.destroyed) channel.resetAndDestroy();
  });
  channel.on('close', () => {
    if (channel.failure !== undefined && !socket.destroyed) {
      sockets.resetting(socket);
      resetSocket(socket);
    }
  });
}

/** Silences a stream's errors: the splice and the close handlers above deal with failures. */
function ignoreErrors(stream: NodeJS.EventEmitter): void {
  stream.on('error', () => {});
}

/**
 * Carries one accepted connection: dials a channel on `session`, sends `request`, and starts the socket's
 * data right after it (no round trip before the first bytes); once the answer is `ok`, the channel's data
 * flows back. A refusal or a timeout resets the socket and is reported with `label`.
 */
export async function carry(
  socket: net.Socket,
  session: Session,
  request: ConnectRequest | RemoteRequest,
  label: string,
  context: ForwardContext,
): Promise<void> {
  ignoreErrors(socket);
  context.sockets.add(socket);
  let channel: Channel;
  try {
    channel = session.dial();
  } catch (error) {
    context.perChannel.event('forward-failed', `${label}: no channel (${(error as Error).message}); connection reset`, {
      forward: label,
      code: (error as { code?: string }).code,
    });
    socket.resetAndDestroy();
    return;
  }
  ignoreErrors(channel);
  context.traffic.track(socket);
  channel.write(encode(request));
  socket.pipe(channel);
  /** The local program's connection failed (it reset it) before the answer: no failure of the tunnel's. */
  let droppedHere = false;
  socket.on('close', (hadError) => {
    if (hadError && !channel.destroyed) {
      droppedHere = true;
      channel.resetAndDestroy();
    }
  });
  try {
    await expectMessage(channel, ANSWER_TIMEOUT_MS, 'ok');
  } catch (error) {
    const e = error as TunnelError;
    if (droppedHere) return; // (its channel was reset, which the other end does not report either)
    context.perChannel.event('forward-failed', `${label}: ${e.message}; connection reset`, {
      forward: label,
      code: e.code,
    });
    if (!socket.destroyed) socket.resetAndDestroy();
    channel.resetAndDestroy();
    return;
  }
  if (socket.destroyed) {
    channel.resetAndDestroy();
    return;
  }
  splice(socket, channel, context.sockets);
}

/** Refuses a request: the reason goes back on the channel, whose further data is dropped. */
function refuse(channel: Channel, error: TunnelError): void {
  channel.end(encode({ type: 'error', code: error.code, message: error.message }));
  channel.closeRead();
}

/** Connects to a forward's target, with a bound on how long it may take. */
export function connectTarget(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true, noDelay: true });
    const fail = (error: unknown): void => {
      socket.destroy();
      reject(
        new TunnelError(
          'ERR_TUNNEL_CONNECT',
          `cannot connect to ${formatAddress(host, port)}: ${describeSocketError(error)}`,
        ),
      );
    };
    const timer = setTimeout(
      () => fail(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
      TARGET_CONNECT_TIMEOUT_MS,
    );
    socket.once('error', (error) => {
      clearTimeout(timer);
      fail(error);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

/**
 * Answers a channel the peer opened for a forwarded connection: reads its request, lets `decide` check it
 * (refusals go back to the peer and are reported here too), connects to the target, replies `ok` and splices.
 * With `listen` (the server's), a channel may instead ask again for an -R forward: its result goes back.
 */
export async function answer(
  channel: Channel,
  expected: 'connect' | 'remote',
  decide: (request: ConnectRequest | RemoteRequest) => Decision,
  context: ForwardContext,
  listen?: ListenHandler,
): Promise<void> {
  ignoreErrors(channel);
  let request: ConnectRequest | RemoteRequest;
  try {
    const message = await readMessage(channel, REQUEST_TIMEOUT_MS);
    if (message.type === 'listen' && listen !== undefined) {
      const result = await listen(message);
      if (result.ok) {
        channel.end(encode({ type: 'ok', port: result.port }));
        channel.resume(); // its end must be seen for the channel to close
      } else {
        refuse(channel, new TunnelError(result.code, result.message));
      }
      return;
    }
    if (message.type !== expected)
      throw new TunnelError('ERR_TUNNEL_PROTOCOL', `control protocol: expected ${expected}, got ${message.type}`);
    request = message;
  } catch (error) {
    channel.resetAndDestroy();
    // Reset before its request was complete: the connection it stood for went away at the other end (a
    // program that aborted it), which is no failure of the tunnel's.
    if (error instanceof ChannelResetError) return;
    const e = error as TunnelError;
    context.perChannel.event('forward-failed', `a forwarded channel failed: ${e.message}`, { code: e.code });
    return;
  }
  const decision = decide(request);
  if (decision instanceof TunnelError) {
    context.perChannel.event(decision.code === 'ERR_TUNNEL_DENIED' ? 'denied' : 'forward-failed', decision.message, {
      code: decision.code,
      ...request,
    });
    refuse(channel, decision);
    return;
  }
  let socket: net.Socket;
  try {
    socket = await connectTarget(decision.host, decision.port);
  } catch (error) {
    const e = error as TunnelError;
    context.perChannel.event('forward-failed', e.message, { code: e.code, host: decision.host, port: decision.port });
    refuse(channel, e);
    return;
  }
  ignoreErrors(socket);
  if (channel.destroyed) {
    socket.resetAndDestroy();
    return;
  }
  context.sockets.add(socket);
  context.traffic.track(socket);
  channel.write(encode({ type: 'ok' }));
  socket.pipe(channel);
  splice(socket, channel, context.sockets);
}

/**
 * Opens a TCP listener for a forward; a port in use (or any other failure) becomes `ERR_TUNNEL_LISTEN`
 * naming the forward. Sockets keep half-close (`allowHalfOpen`) so that a FIN crosses the tunnel as one.
 */
export function listenForward(
  bind: string,
  port: number,
  what: string,
  onConnection: (socket: net.Socket) => void,
): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, onConnection);
    server.once('error', (error) => {
      reject(
        new TunnelError(
          'ERR_TUNNEL_LISTEN',
          `cannot listen on ${formatAddress(bind, port)} for ${what}: ${describeSocketError(error)}`,
        ),
      );
    });
    server.listen({ host: bind, port, backlog: 1024 }, () => {
      server.removeAllListeners('error');
      server.on('error', () => {});
      resolve(server);
    });
  });
}

/** The port a listener got (the one asked for, or the OS's pick for port 0). */
export function boundPort(server: net.Server): number {
  return (server.address() as net.AddressInfo).port;
}
