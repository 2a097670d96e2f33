/**
 * The tunnel's control protocol (docs/tunnel.md): the messages client and server exchange on top of the
 * muxwire session, how they are framed (a 2-byte big-endian length, then that many bytes of UTF-8 JSON),
 * and their validation. Anything malformed becomes a `TunnelError` with code `ERR_TUNNEL_PROTOCOL`.
 * @module
 */
import type { Readable } from 'node:stream';
import { HEADER_SIZE } from '../core/frame.js';
import { MERGE_LIMIT } from '../web/websocket-transport.js';
import { type SessionOptions, resolveOptions } from '../core/options.js';
import { MAX_FORWARDS, isHostText } from './args.js';
import { TunnelError, type TunnelErrorCode } from './errors.js';
import { afterPendingReads } from '../core/timers.js';

/** The protocol version in `hello` and `welcome`; a server refuses a client of another version. */
export const PROTOCOL_VERSION = 1;
/** Largest message accepted: a hello with hundreds of forwards fits; a runaway length does not allocate. */
export const MAX_MESSAGE_BYTES = 16 * 1024;
/** How long a new connection has to open its control channel and say hello. */
export const HELLO_TIMEOUT_MS = 10_000;

/**
 * Connections at once that have not finished their handshake (a wrong token holds one for a second).
 * Beyond it new connections are closed at once, so a flood of guesses costs the server a bounded amount.
 */
export const MAX_PENDING_HANDSHAKES = 256;
/**
 * Of those, at most this many from one client address: one host that opens connections and stays silent
 * cannot take every place. Clients behind one NAT each hold a place only while they connect.
 */
export const MAX_PENDING_HANDSHAKES_PER_ADDRESS = 32;
/**
 * Session options of both ends of a tunnel: keep-alive every 10 s so a dead peer is noticed within about
 * 20 s (the client then reconnects); an accept backlog large enough for a burst of connections that arrive
 * before the handshake's listener is installed; and room for resets. Every forwarded connection that ends
 * with an error (a browser cancelling, a load test's aborts) resets its channel, as fast as local programs
 * drop their connections: 4,000 aborted in 2 s ran through muxwire's default bound (1,000, then 1,000 a
 * second), which is for peers nobody vouched for, where a tunnel's peer holds the token.
 */
export const TUNNEL_SESSION_OPTIONS: SessionOptions = {
  keepAliveInterval: 10_000,
  keepAliveTimeout: 10_000,
  acceptBacklog: 1024,
  peerResetBurst: 100_000,
  peerResetRate: 100_000,
};

/**
 * Small writes of one turn joined into one WebSocket message stop at this many bytes; more go in the next.
 * The WebSocket transport's own limit, which muxwire's WebSocket servers take at the least.
 */
export const WS_JOIN_BYTES = MERGE_LIMIT;

/**
 * The largest WebSocket message either end of a `--ws` tunnel takes (the `ws` package's `maxPayload`; its own
 * default is 100 MiB). `ws` holds a message whole, its fragments included, before the session sees a byte, so
 * this is what a connection can make the other end hold before it has said a word of the tunnel's protocol.
 * An end with these session options never sends more in one message: each part of a session write is a
 * frame's payload (at most `maxFrameSize`) or its headers and small payloads copied together (at most 64 KiB),
 * and each goes as a message of its own (`ws`'s stream has no `writev`), or joined with the other small writes
 * of its turn up to {@link WS_JOIN_BYTES} (coalesce.ts); muxwire's own WebSocket transport joins up to the same
 * limit. A message announced larger, or fragments adding up to more, is refused at once with close code 1009.
 */
export const WS_MAX_MESSAGE_BYTES = Math.max(
  WS_JOIN_BYTES,
  resolveOptions(TUNNEL_SESSION_OPTIONS).maxFrameSize + HEADER_SIZE,
);

/** A forward as the client announces it in `hello`: what the server must allow (-L) or open (-R). */
export type AnnouncedForward = { kind: 'L'; host: string; port: number } | { kind: 'R'; bind: string; port: number };

/** The result of one announced forward in `welcome`: for -R, the port the server listens on. */
export type ForwardResult = { ok: true; port?: number } | { ok: false; code: TunnelErrorCode; message: string };

export interface Hello {
  type: 'hello';
  version: number;
  token: string;
  forwards: AnnouncedForward[];
}
export interface Welcome {
  type: 'welcome';
  version: number;
  results: ForwardResult[];
  /** The server answers `listen` requests (a server that does not leaves the field out). */
  listen?: true;
}
export interface Refusal {
  type: 'error';
  code: TunnelErrorCode;
  message: string;
}
/** First message on a channel the client opens for an -L connection. */
export interface ConnectRequest {
  type: 'connect';
  host: string;
  port: number;
}
/** First message on a channel the server opens for an -R connection: which announced forward it is. */
export interface RemoteRequest {
  type: 'remote';
  index: number;
}
/**
 * First message on a channel the client opens to ask again for an announced -R forward that the welcome
 * refused (its port in use): which one. Answered by `ok` with the port, or `error`.
 */
export interface ListenRequest {
  type: 'listen';
  index: number;
}
export interface Accepted {
  type: 'ok';
  /** In the answer to a `listen`: the port the server now listens on. */
  port?: number;
}

export type Message = Hello | Welcome | Refusal | ConnectRequest | RemoteRequest | ListenRequest | Accepted;

/** Encodes one message with its length prefix. */
export function encode(message: Message): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  if (body.length > MAX_MESSAGE_BYTES) throw new RangeError(`control message of ${body.length} bytes is too large`);
  const frame = Buffer.allocUnsafe(2 + body.length);
  frame.writeUInt16BE(body.length, 0);
  body.copy(frame, 2);
  return frame;
}

function protocolError(message: string): TunnelError {
  return new TunnelError('ERR_TUNNEL_PROTOCOL', `control protocol: ${message}`);
}

/**
 * Turns of the event loop a control message's timeout waits, once it passed, for what was already received (see
 * `readMessage`): the session reads a large backlog over several turns (its read time slice).
 */
const VERDICT_ROUNDS = 64;

/**
 * Reads exactly one message from the start of `stream` and puts back whatever followed it, so the stream
 * can then be piped as plain data. Rejects with a `TunnelError` when the stream ends or fails first, the
 * frame is malformed, or `timeoutMs` passes.
 */
export function readMessage(stream: Readable, timeoutMs: number): Promise<Message> {
  return new Promise<Message>((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    let finished = false;
    const finish = (error: Error | undefined, message?: Message): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onEnd);
      if (error !== undefined) reject(error);
      else resolve(message!);
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = stream.read() as Buffer | null) !== null) {
        buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
        if (buffered.length < 2) continue;
        const length = buffered.readUInt16BE(0);
        if (length > MAX_MESSAGE_BYTES) {
          finish(protocolError(`message of ${length} bytes exceeds ${MAX_MESSAGE_BYTES}`));
          return;
        }
        if (buffered.length < 2 + length) continue;
        const rest = buffered.subarray(2 + length);
        if (rest.length > 0) stream.unshift(rest);
        let message: Message;
        try {
          message = validate(JSON.parse(buffered.toString('utf8', 2, 2 + length)));
        } catch (error) {
          finish(error instanceof TunnelError ? error : protocolError('message is not JSON'));
          return;
        }
        finish(undefined, message);
        return;
      }
    };
    const onEnd = (): void => finish(protocolError('the channel ended before a complete message'));
    const onError = (error: Error): void => finish(error);
    // The verdict waits for what was received meanwhile to be read. A process that was stopped (SIGSTOP, a
    // laptop's sleep) or busy past the deadline runs the expired timer before it reads its sockets: the peer's
    // answer, already there, would be thrown away with the connection behind it (a forwarded connection reset
    // after the target had taken its request). So, as the session's own deadlines do, the verdict comes after
    // the pending reads, and after those the session's decoding and the channel's events brought on.
    const verdict = (rounds: number): void =>
      afterPendingReads(() => {
        if (finished) return;
        if (stream.readableLength > 0) onReadable();
        if (finished) return;
        if (rounds < VERDICT_ROUNDS) verdict(rounds + 1);
        else finish(new TunnelError('ERR_TUNNEL_TIMEOUT', 'control protocol: no message in time'));
      });
    const timer = setTimeout(() => verdict(1), timeoutMs);
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('error', onError);
    stream.once('close', onEnd);
    if (stream.readableEnded || stream.destroyed) onEnd();
    else onReadable();
  });
}

const CODES: ReadonlySet<string> = new Set<TunnelErrorCode>([
  'ERR_TUNNEL_TOKEN',
  'ERR_TUNNEL_AUTH',
  'ERR_TUNNEL_DENIED',
  'ERR_TUNNEL_CONNECT',
  'ERR_TUNNEL_LISTEN',
  'ERR_TUNNEL_UNREACHABLE',
  'ERR_TUNNEL_CERT',
  'ERR_TUNNEL_TLS',
  'ERR_TUNNEL_PROTOCOL',
  'ERR_TUNNEL_TIMEOUT',
]);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown, what: string, max = 1024): string {
  if (typeof value !== 'string' || value.length > max)
    throw protocolError(`${what} must be a string of at most ${max} characters`);
  return value;
}

/** A host or a bind address: written as one (see {@link isHostText}), never free text. */
function hostField(value: unknown, what: string): string {
  if (typeof value !== 'string' || !isHostText(value)) {
    throw protocolError(`${what} must be a host name or address (letters, digits and - . _ : %, at most 255)`);
  }
  return value;
}

function int(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw protocolError(`${what} must be an integer from ${min} to ${max}`);
  }
  return value;
}

function code(value: unknown): TunnelErrorCode {
  if (typeof value !== 'string' || !CODES.has(value)) throw protocolError('unknown error code');
  return value as TunnelErrorCode;
}

function forward(value: unknown): AnnouncedForward {
  if (!isRecord(value)) throw protocolError('a forward must be an object');
  if (value.kind === 'L')
    return { kind: 'L', host: hostField(value.host, 'host'), port: int(value.port, 'port', 1, 65535) };
  if (value.kind === 'R')
    return { kind: 'R', bind: hostField(value.bind, 'bind'), port: int(value.port, 'port', 0, 65535) };
  throw protocolError("a forward's kind must be L or R");
}

function result(value: unknown): ForwardResult {
  if (!isRecord(value) || typeof value.ok !== 'boolean') throw protocolError('a result must be an object with ok');
  if (value.ok) return value.port === undefined ? { ok: true } : { ok: true, port: int(value.port, 'port', 1, 65535) };
  return { ok: false, code: code(value.code), message: str(value.message, 'message') };
}

/** Checks a parsed message's shape field by field and returns a clean copy. */
export function validate(value: unknown): Message {
  if (!isRecord(value)) throw protocolError('a message must be an object');
  switch (value.type) {
    case 'hello': {
      if (!Array.isArray(value.forwards) || value.forwards.length > MAX_FORWARDS)
        throw protocolError(`forwards must be a list of at most ${MAX_FORWARDS}`);
      return {
        type: 'hello',
        version: int(value.version, 'version', 0, 1e6),
        token: str(value.token, 'token'),
        forwards: value.forwards.map(forward),
      };
    }
    case 'welcome': {
      if (!Array.isArray(value.results) || value.results.length > MAX_FORWARDS)
        throw protocolError(`results must be a list of at most ${MAX_FORWARDS}`);
      return {
        type: 'welcome',
        version: int(value.version, 'version', 0, 1e6),
        results: value.results.map(result),
        ...(value.listen === true ? { listen: true as const } : {}),
      };
    }
    case 'error':
      return { type: 'error', code: code(value.code), message: str(value.message, 'message') };
    case 'connect':
      return { type: 'connect', host: hostField(value.host, 'host'), port: int(value.port, 'port', 1, 65535) };
    case 'remote':
      return { type: 'remote', index: int(value.index, 'index', 0, 255) };
    case 'listen':
      return { type: 'listen', index: int(value.index, 'index', 0, 255) };
    case 'ok':
      return value.port === undefined ? { type: 'ok' } : { type: 'ok', port: int(value.port, 'port', 1, 65535) };
    default:
      throw protocolError(`unknown message type ${JSON.stringify(String(value.type)).slice(0, 40)}`);
  }
}

/** Reads one message and checks it is of one of the `expected` types (an `error` message becomes a rejection). */
export async function expectMessage<T extends Message['type']>(
  stream: Readable,
  timeoutMs: number,
  expected: T,
): Promise<Extract<Message, { type: T }>> {
  const message = await readMessage(stream, timeoutMs);
  if (message.type === 'error' && expected !== 'error') throw new TunnelError(message.code, message.message);
  if (message.type !== expected) throw protocolError(`expected ${expected}, got ${message.type}`);
  return message as Extract<Message, { type: T }>;
}
