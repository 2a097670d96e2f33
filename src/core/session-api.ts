/**
 * The types of the session's public API: its events, its options per call, its role and status, and the
 * endpoint factory an adapter gives it. Types only, so that `session.ts` holds the session's behaviour and a
 * reader of the API finds its shapes in one place.
 * @module
 */
import type { ChannelPort } from './channel-port.js';
import type { ChannelEndpoint, ChannelState } from './channel-state.js';
import type { ChannelStats } from './observe.js';
import type { MuxSession } from './session.js';

/** Which end of the session this is: the client dials odd channel ids, the server even ones. */
export type Role = 'client' | 'server';

/** The events of a session. */
export interface SessionEvents<C> {
  /** The peer opened a channel (it is accepted by being handed to this listener). */
  channel: (channel: C) => void;
  /** The peer sent Go Away: it takes no new channels (code 0), or is ending on an error (1, 2). */
  goaway: (code: number) => void;
  /** The session has ended: cleanly (`error` undefined) or not. Emitted once. */
  close: (error?: Error) => void;
  /**
   * A channel entered the session: dialled here, or opened by the peer (before it is accepted; a channel the
   * session refuses at once never enters). For counting and tracing: the figures, not the channel itself.
   */
  channelOpen: (stats: ChannelStats) => void;
  /**
   * A channel left the session: both sides ended it, it was reset (either way) or it failed with the session
   * (`error` says why, as `channel.failure` does). `stats` holds its final figures.
   */
  channelClose: (stats: ChannelStats, error?: Error) => void;
}

/** The lifecycle of a session. */
export type SessionStatus = 'open' | 'closing' | 'closed';

/**
 * Makes the application-facing object for a channel (a Node `Duplex`, a Web stream pair...): it holds the
 * channel's state and the session's {@link ChannelPort}, through which it writes, ends, resets and reads.
 */
export type EndpointFactory<C extends ChannelEndpoint> = (state: ChannelState, port: ChannelPort<MuxSession<C>>) => C;

/** Options of `accept()`. */
export interface AcceptOptions {
  /** Gives up waiting; the promise rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
}

/** Options of `dial()`. */
export interface DialOptions {
  /**
   * Gives up opening: until the peer acknowledges the channel, aborting resets it and fails it with the
   * signal's reason (a reason that is not an `Error` is said by a `ChannelResetError`, `ERR_MUX_CHANNEL_ABORTED`;
   * dialling with an aborted signal throws the reason as it is). Later aborts do nothing.
   */
  signal?: AbortSignal | undefined;
  /** This channel's open timeout in ms, instead of the session's `openTimeout` (0: no limit). */
  openTimeout?: number | undefined;
}

/** Options of `close()`. */
export interface CloseOptions {
  /**
   * Milliseconds to wait for open channels to finish (default: the session's `closeTimeout`): an integer from 0
   * to 2,147,483,647, as that option is.
   */
  timeout?: number | undefined;
  /**
   * Ends the wait for open channels: when it aborts before the session is closed, the session is destroyed
   * with the signal's reason (channels still open fail with it; a reason that is not an `Error` is said by a
   * `SessionClosedError` there) and this call's promise rejects with the reason itself. Other
   * calls of `close()` resolve, as they do after a timeout.
   */
  signal?: AbortSignal | undefined;
}

/** Options of `ping()`. */
export interface PingOptions {
  /** Gives up waiting for the answer; the promise rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
}
