/**
 * The facts every kind of channel shows about itself (its id, session, protocol state, receive window and
 * direction), read from its {@link ChannelState} and its session. Written once here and installed on each
 * channel class's prototype, so the Node `Channel` and the `LightChannel` cannot drift apart, and a channel
 * holds nothing more for them.
 * @module
 */
import type { ChannelState, ChannelStateName } from './channel-state.js';

/** What every kind of channel tells of itself: its id, session, protocol state, receive window and direction. */
export interface ChannelFacts<Session> {
  /** The channel id on the wire (odd when the client dialled it, even when the server did). */
  readonly id: number;
  /** The session this channel belongs to. */
  readonly session: Session;
  /** The protocol state: `init`, `syn-sent`, `syn-received`, `established`, `local-closed`, `remote-closed`, `closed` or `reset`. */
  readonly protocolState: ChannelStateName;
  /**
   * This side's current receive window in bytes: `initialWindow` at first, grown by auto-tuning up to `maxWindow`,
   * and `initialWindow` again from the peer's FIN (its growth given back to the memory budget).
   */
  readonly receiveWindow: number;
  /** True if this side dialled the channel, false if the peer did. */
  readonly outbound: boolean;
}

/**
 * Defines the {@link ChannelFacts} getters on a channel class's prototype. `stateOf` and `sessionOf` read the
 * class's own (private) fields: a class calls this from a static block, where its private names are in scope.
 */
export function installChannelFacts<C>(
  prototype: C,
  stateOf: (channel: C) => ChannelState,
  sessionOf: (channel: C) => unknown,
): void {
  const getters: { [K in keyof ChannelFacts<unknown>]: (this: C) => ChannelFacts<unknown>[K] } = {
    id() {
      return stateOf(this).id;
    },
    session() {
      return sessionOf(this);
    },
    protocolState() {
      return stateOf(this).state;
    },
    receiveWindow() {
      return stateOf(this).rx.size;
    },
    outbound() {
      return stateOf(this).outbound;
    },
  };
  for (const [name, get] of Object.entries(getters)) {
    Object.defineProperty(prototype, name, { get, configurable: true }); // not enumerable: the default
  }
}
