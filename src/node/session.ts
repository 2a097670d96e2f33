/**
 * Sessions over Node streams: `multiplexedClient` / `multiplexedServer` take any `stream.Duplex` of bytes.
 * @module
 */
import type { Duplex } from 'node:stream';
import type { ChannelPort } from '../core/channel-port.js';
import type { ChannelState } from '../core/channel-state.js';
import type { SessionOptions } from '../core/options.js';
import { MuxSession, type Role } from '../core/session.js';
import type { Transport } from '../core/transport.js';
import { LightSession } from '../core/light-channel.js';
import { Channel } from './channel.js';
import { duplexTransport } from './transport.js';

function createChannel(state: ChannelState, port: ChannelPort<MuxSession<Channel>>): Channel {
  return new Channel(state, port);
}

function nodeTransport(transport: Duplex): Transport {
  if (transport === null || typeof transport !== 'object' || typeof (transport as Duplex).write !== 'function'
    || typeof (transport as Duplex).on !== 'function') {
    throw new TypeError('muxwire: transport must be a Node duplex stream (for example a net.Socket)');
  }
  return duplexTransport(transport);
}

/**
 * A multiplexed session over a Node duplex stream. Channels are Node `Duplex` streams ({@link Channel}).
 * Events: `'channel'` (an inbound channel, accepted by being handed to the listener), `'goaway'` (the peer
 * sent Go Away), `'close'` (the session ended; the argument is the error, or undefined for a clean close).
 */
export class Session extends MuxSession<Channel> {
  /**
   * The Node stream the session runs over (a `net.Socket`, a `tls.TLSSocket`, a child's stdio...). Channels
   * read their `remoteAddress`, `localAddress` and ports from it when it has them.
   */
  readonly socket: Duplex;

  /** Wraps `transport`; `role` decides the channel id parity (client odd, server even). */
  constructor(transport: Duplex, role: Role, options?: SessionOptions) {
    super(nodeTransport(transport), role, options, createChannel);
    this.socket = transport;
  }
}

/** Starts the client end of a session over `transport` (the client dials odd channel ids). */
export function multiplexedClient(transport: Duplex, options?: SessionOptions): Session {
  return new Session(transport, 'client', options);
}

/** Starts the server end of a session over `transport` (the server dials even channel ids). */
export function multiplexedServer(transport: Duplex, options?: SessionOptions): Session {
  return new Session(transport, 'server', options);
}

/**
 * Starts the client end of a session over `transport` whose channels are {@link LightChannel}s (events and
 * async iteration, no Node streams): cheaper to open and to keep than `Channel`s, for sessions with very many
 * small channels.
 */
export function lightClient(transport: Duplex, options?: SessionOptions): LightSession {
  return new LightSession(nodeTransport(transport), 'client', options);
}

/** Starts the server end of a session over `transport` whose channels are {@link LightChannel}s. */
export function lightServer(transport: Duplex, options?: SessionOptions): LightSession {
  return new LightSession(nodeTransport(transport), 'server', options);
}
