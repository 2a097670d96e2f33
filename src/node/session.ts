/**
 * Sessions over Node streams: `multiplexedClient` / `multiplexedServer` take any `stream.Duplex` of bytes, or
 * any core `Transport` (a WebSocket through `webSocketTransport`, for one).
 * @module
 */
import type { Duplex } from 'node:stream';
import type { ChannelPort } from '../core/channel-port.js';
import type { ChannelState } from '../core/channel-state.js';
import type { SessionOptions } from '../core/options.js';
import { MuxSession, type DialOptions, type Role, type SessionEvents } from '../core/session.js';
import type { Transport } from '../core/transport.js';
import { FULL_PARTS } from '../core/full-parts.js';
import { type NodeEmitterMethods, withNodeEmitterMethods } from '../core/emitter.js';
import { LightSession } from '../core/light-channel.js';
import { Channel } from './channel.js';
import { announceSession, withNodeLogging } from './diagnostics.js';
import { duplexTransport } from './transport.js';

/** What a Node `Session`'s `dial()` takes: a `Channel` may also end on the peer's FIN. */
const CHANNEL_DIAL_OPTIONS: readonly string[] = ['signal', 'openTimeout', 'allowHalfOpen'];

function createChannel(state: ChannelState, port: ChannelPort<MuxSession<Channel>>): Channel {
  return new Channel(state, port);
}

/** A core transport (it has `start`, which no Node stream has), e.g. `webSocketTransport(ws)`. */
function isCoreTransport(transport: unknown): transport is Transport {
  return (
    transport !== null &&
    typeof transport === 'object' &&
    typeof (transport as Transport).start === 'function' &&
    typeof (transport as Duplex).on !== 'function'
  );
}

/** Streams a session reads: a second session over one would take the first's frames for its own. */
const carried = new WeakSet();

/** `transport` now carries a session (marked once the session was made: one refused for its options does not). */
function carry(transport: Duplex | Transport): void {
  if (!isCoreTransport(transport)) carried.add(transport);
}

function nodeTransport(transport: Duplex | Transport): Transport {
  if (isCoreTransport(transport)) return transport;
  if (
    transport === null ||
    typeof transport !== 'object' ||
    typeof transport.write !== 'function' ||
    typeof transport.on !== 'function'
  ) {
    throw new TypeError(
      'muxwire: transport must be a Node duplex stream (for example a net.Socket) or a core Transport',
    );
  }
  if (transport.listenerCount('readable') > 0) {
    // A stream with a 'readable' listener does not flow: the session would never read it.
    throw new TypeError("muxwire: remove the stream's 'readable' listeners before a session reads it");
  }
  if (transport.readableEncoding !== null && transport.readableEncoding !== undefined) {
    // It would hand the session strings: bytes decoded as text are no longer the frames the peer sent.
    throw new TypeError(
      `muxwire: the stream decodes what it reads as ${transport.readableEncoding} (setEncoding()): a session reads bytes`,
    );
  }
  if (carried.has(transport)) throw new TypeError('muxwire: the stream already carries a session (one per stream)');
  return duplexTransport(transport);
}

/** Options of a Node session's `dial()`: those of every session's, and how the `Channel` ends. */
export interface ChannelDialOptions extends DialOptions {
  /**
   * `false`: once the peer's FIN has been read (`'end'`), the channel ends its own writing and then closes, as a
   * socket from `net.connect` does. Give it to a channel handed to a library written for sockets (a database or
   * cache client, an http `Agent`): such a library learns from `'close'` that the server ended the connection,
   * and a half-open channel never closes. Writing ends on the tick after `'end'` (on yamux, `'end'` listeners may
   * still write); a write after that fails the channel with `ERR_MUX_WRITE_AFTER_END` (an `'error'` only for a
   * listener). Default `true`: the channel stays writable after the peer's FIN (half-close), as
   * `channel.allowHalfOpen` says.
   */
  allowHalfOpen?: boolean | undefined;
}

/**
 * A multiplexed session over a Node duplex stream, or a core `Transport` (such as `webSocketTransport(ws)`).
 * Channels are Node `Duplex` streams ({@link Channel}).
 * Events: `'channel'` (an inbound channel, accepted by being handed to the listener), `'goaway'` (the peer
 * sent Go Away), `'close'` (the session ended; the argument is the error, or undefined for a clean close),
 * `'channelOpen'` / `'channelClose'` (any channel entering and leaving the session, with its figures: see
 * `SessionEvents` and docs/observability.md).
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- the interface below declares the methods withNodeEmitterMethods installs
export class Session extends MuxSession<Channel> {
  /**
   * The Node stream the session runs over (a `net.Socket`, a `tls.TLSSocket`, a child's stdio...), or undefined
   * over a core `Transport`. Channels read their `remoteAddress`, `localAddress` and ports from it when it has them.
   */
  readonly socket: Duplex | undefined;

  /** Wraps `transport`; `role` decides the channel id parity (client odd, server even). */
  constructor(transport: Duplex | Transport, role: Role, options?: SessionOptions) {
    super(nodeTransport(transport), role, withNodeLogging(options), createChannel, FULL_PARTS);
    this.socket = isCoreTransport(transport) ? undefined : transport;
    carry(transport);
    announceSession(this);
  }

  /** @internal */
  protected override get dialOptionNames(): readonly string[] {
    return CHANNEL_DIAL_OPTIONS;
  }

  /**
   * Opens a channel and returns it at once, as every session's `dial()` does (see there for what it throws);
   * `allowHalfOpen: false` makes it end and close on the peer's FIN, as a socket does.
   */
  override dial(options?: ChannelDialOptions): Channel {
    const allowHalfOpen = options?.allowHalfOpen;
    if (allowHalfOpen !== undefined && typeof allowHalfOpen !== 'boolean') {
      throw new TypeError(`muxwire: allowHalfOpen must be true or false, got ${String(allowHalfOpen)}`);
    }
    const channel = super.dial(options);
    if (allowHalfOpen === false) channel.allowHalfOpen = false;
    return channel;
  }
}
// Node's whole EventEmitter interface (prependListener, listeners...), which the browser's session leaves out.
withNodeEmitterMethods(Session);
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type -- declares the installed methods
export interface Session extends NodeEmitterMethods<SessionEvents<Channel>> {}

/** Starts the client end of a session over `transport` (the client dials odd channel ids). */
export function multiplexedClient(transport: Duplex | Transport, options?: SessionOptions): Session {
  return new Session(transport, 'client', options);
}

/** Starts the server end of a session over `transport` (the server dials even channel ids). */
export function multiplexedServer(transport: Duplex | Transport, options?: SessionOptions): Session {
  return new Session(transport, 'server', options);
}

/**
 * Starts the client end of a session over `transport` whose channels are {@link LightChannel}s (events and
 * async iteration, no Node streams): cheaper to open and to keep than `Channel`s, for sessions with very many
 * small channels.
 */
export function lightClient(transport: Duplex | Transport, options?: SessionOptions): LightSession {
  const session = new LightSession(nodeTransport(transport), 'client', withNodeLogging(options));
  carry(transport);
  announceSession(session);
  return session;
}

/** Starts the server end of a session over `transport` whose channels are {@link LightChannel}s. */
export function lightServer(transport: Duplex | Transport, options?: SessionOptions): LightSession {
  const session = new LightSession(nodeTransport(transport), 'server', withNodeLogging(options));
  carry(transport);
  announceSession(session);
  return session;
}
