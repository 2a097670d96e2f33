/**
 * The codes of the session's log reports. This module imports nothing, so that a bundler inlines the codes
 * as numbers where the parts report (esbuild does so only from modules without imports).
 * @module
 */

/**
 * What the session's parts report, each as a small number: a log call then carries no event name or level,
 * so a page that never logs pays for no string of them (muxwire/web's budget, issue 15). The names, the
 * directions and the levels are `logRecords`'s (observe.ts), which a session is given where a logger may be.
 * @internal
 */
export const LOG_SESSION_OPEN = 0;
/** @internal */
export const LOG_SESSION_CLOSE = 1;
/** @internal */
export const LOG_GOAWAY_SENT = 2;
/** @internal */
export const LOG_GOAWAY_RECEIVED = 3;
/** @internal */
export const LOG_KEEPALIVE_TIMEOUT = 4;
/** @internal */
export const LOG_CLOSE_TIMEOUT = 5;
/** @internal */
export const LOG_PROTOCOL_ERROR = 6;
/** The peer refused this side's channel. @internal */
export const LOG_REFUSED_IN = 7;
/** This side refused the peer's channel. @internal */
export const LOG_REFUSED_OUT = 8;
/** The peer reset a channel. @internal */
export const LOG_RESET_IN = 9;
/** This side reset a channel. @internal */
export const LOG_RESET_OUT = 10;
/** @internal */
export const LOG_WINDOW_STALL = 11;
