/**
 * Every error muxwire raises is one of these classes, each with a stable `code` to branch on.
 * A normal, clean close is never an error.
 * @module
 */

/** Go Away codes from the yamux specification. */
export const GoAwayCode = { normal: 0, protocolError: 1, internalError: 2 } as const;

/** The codes a {@link ChannelResetError} carries. */
export type ChannelResetCode = 'ERR_MUX_CHANNEL_RESET' | 'ERR_MUX_CHANNEL_ABORTED' | 'ERR_MUX_CHANNEL_REFUSED';
/** The codes a {@link TimeoutError} carries. */
export type TimeoutCode = 'ERR_MUX_KEEPALIVE_TIMEOUT' | 'ERR_MUX_CLOSE_TIMEOUT' | 'ERR_MUX_OPEN_TIMEOUT';

/**
 * The base class of all muxwire errors. Raised as itself (no subclass) with these codes: `ERR_MUX_WRITE_AFTER_END`
 * (a `LightChannel`'s write after `end()`, a `WebChannel`'s after `closeWrite()`, a write to a channel dialled
 * without `allowHalfOpen` once the peer ended, or on the multiplex format to a channel its peer closed; a Node
 * `Channel`'s own write after `end()` is Node's `ERR_STREAM_WRITE_AFTER_END`, as on a socket), `ERR_MUX_UNSUPPORTED`
 * (`ping()` or `goAway()` on the multiplex format), `ERR_MUX_CHANNEL_CLOSED` (data still queued when a multiplex
 * peer closed the channel) and `ERR_MUX_INTERNAL` (a bug in muxwire, which ends the session).
 */
export class MuxError extends Error {
  // Fields the constructor assigns are `declare`d (here and in the session's parts): a class field would also be
  // defined, empty, before the constructor runs, and say its name once more in a page's bundle.
  /** A stable identifier such as `ERR_MUX_PROTOCOL`. */
  declare readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    // An own `name` (in JSON and spreads, as it always was): muxwire's classes give theirs in words (below),
    // a subclass of the application's its class name.
    const proto = new.target.prototype as { name: string };
    this.name = Object.hasOwn(proto, 'name') ? proto.name : new.target.name;
  }
  // Each class names itself in words (its prototype's `name`): a minifier renames the classes of a page's bundle,
  // so a name taken from the class (`new.target.name`) printed as `l: ...`.
  static {
    this.prototype.name = 'MuxError';
  }
}

/**
 * A write to a channel its peer closed on a format without half-close (multiplex), where the peer's close
 * ends both directions: the same error from the session's refusal and from each kind of channel. With
 * `notHalfOpen`, a write after a Node channel without `allowHalfOpen` ended its writing with its reading.
 */
export function writeAfterPeerClose(id: number, notHalfOpen = false): MuxError {
  return new MuxError(
    'ERR_MUX_WRITE_AFTER_END',
    notHalfOpen
      ? `channel ${id} ended its writing when its reading ended (allowHalfOpen is false)`
      : `channel ${id} was closed by the peer (the multiplex format has no half-close)`,
  );
}

/**
 * A write whose array no longer held its bytes when they were to be sent: detached (its buffer transferred) or
 * shrunk (a resizable buffer's view). Writes are not copied; the channel is reset with this error.
 */
export function brokenWrite(id: number | string): TypeError {
  return new TypeError(`muxwire: channel ${id} reset: a write's array was detached or shrunk before it was sent`);
}

/**
 * The peer broke the wire protocol; the session answered with Go Away code 1 and ended. (Also, with no Go Away
 * and with no channel open, a Node stream in object mode that gave the session something other than bytes: with
 * channels open, that is the `cause` of their `TransportClosedError`.)
 */
export class ProtocolError extends MuxError {
  static {
    this.prototype.name = 'ProtocolError';
  }
  // (`declare`: types only. Each class says its codes, so that `error.code` narrows and a misspelt code is an error.)
  declare readonly code: 'ERR_MUX_PROTOCOL';
  /** The Go Away code this session sent to the peer (when it broke the protocol). */
  readonly goAwayCode = GoAwayCode.protocolError;
  constructor(message: string) {
    super('ERR_MUX_PROTOCOL', message);
  }
}

/** The session is closed (or closing), so the operation cannot proceed. */
export class SessionClosedError extends MuxError {
  static {
    this.prototype.name = 'SessionClosedError';
  }
  declare readonly code: 'ERR_MUX_SESSION_CLOSED';
  constructor(message = 'session is closed') {
    super('ERR_MUX_SESSION_CLOSED', message);
  }
}

/** The peer sent Go Away: it takes no new channels. With a non-zero code it is also ending the session. */
export class GoAwayError extends MuxError {
  static {
    this.prototype.name = 'GoAwayError';
  }
  declare readonly code: 'ERR_MUX_GO_AWAY';
  /** The code the peer sent: 0 normal, 1 protocol error, 2 internal error. */
  declare readonly goAwayCode: number;
  constructor(goAwayCode: number, message?: string) {
    super('ERR_MUX_GO_AWAY', message ?? `peer sent Go Away (code ${goAwayCode}${goAwayName(goAwayCode)})`);
    this.goAwayCode = goAwayCode;
  }
}

/** The names of the codes in {@link GoAwayCode}, by code. */
const GO_AWAY_NAMES = [': normal', ': protocol error', ': internal error'];

function goAwayName(code: number): string {
  return GO_AWAY_NAMES[code] ?? '';
}

/**
 * A channel was reset: by the peer (`ERR_MUX_CHANNEL_RESET`), by this side (`ERR_MUX_CHANNEL_ABORTED`:
 * `destroy()` with an error, `reset()`, a cancelled readable or aborted writable), or refused by the peer
 * (`ERR_MUX_CHANNEL_REFUSED`, as its subclass {@link ChannelRefusedError}).
 */
export class ChannelResetError extends MuxError {
  static {
    this.prototype.name = 'ChannelResetError';
  }
  /**
   * `ERR_MUX_CHANNEL_RESET` (the peer reset it), `ERR_MUX_CHANNEL_ABORTED` (this side did), or
   * `ERR_MUX_CHANNEL_REFUSED` (a {@link ChannelRefusedError}).
   */
  declare readonly code: ChannelResetCode;
  /** The id of the channel that was reset. */
  declare readonly channelId: number;
  constructor(channelId: number, message?: string, code: ChannelResetCode = 'ERR_MUX_CHANNEL_RESET') {
    super(code, message ?? `channel ${channelId} was reset by the peer`);
    this.channelId = channelId;
  }
}

/**
 * Why this side reset a channel: `reason` itself when it is an `Error` (an `AbortSignal`'s default reason is
 * one), else a `ChannelResetError` (`ERR_MUX_CHANNEL_ABORTED`) that says it, for the places typed `Error`
 * (`failure`, `'error'`).
 */
export function resetHere(channelId: number, reason: unknown): Error {
  return isError(reason)
    ? reason
    : new ChannelResetError(
        channelId,
        `channel ${channelId} was reset by this side${reason === undefined ? '' : `: ${shown(reason)}`}`,
        'ERR_MUX_CHANNEL_ABORTED',
      );
}

/** The codes a {@link MuxError} carries as itself, no subclass. */
export type BaseMuxErrorCode =
  'ERR_MUX_WRITE_AFTER_END' | 'ERR_MUX_UNSUPPORTED' | 'ERR_MUX_CHANNEL_CLOSED' | 'ERR_MUX_INTERNAL';

/**
 * Any error muxwire raises, as a union on `code`: where a value is one (an `instanceof MuxError` test, or
 * {@link isMuxError} for errors of another copy of muxwire), `switch (error.code)` narrows it to its class,
 * with the fields of that class (`goAwayCode`, `channelId`), and a misspelt code is a type error.
 */
export type AnyMuxError =
  | ProtocolError
  | SessionClosedError
  | GoAwayError
  | ChannelResetError
  | ChannelRefusedError
  | StreamLimitError
  | TimeoutError
  | TransportClosedError
  | (MuxError & { readonly code: BaseMuxErrorCode });

/** Every code of muxwire's errors. */
export type MuxErrorCode = AnyMuxError['code'];

/** Every code of this version's errors (the type makes the list whole, and holds no other). */
const MUX_ERROR_CODES: Readonly<Record<MuxErrorCode, true>> = {
  ERR_MUX_PROTOCOL: true,
  ERR_MUX_SESSION_CLOSED: true,
  ERR_MUX_GO_AWAY: true,
  ERR_MUX_CHANNEL_RESET: true,
  ERR_MUX_CHANNEL_ABORTED: true,
  ERR_MUX_CHANNEL_REFUSED: true,
  ERR_MUX_STREAM_LIMIT: true,
  ERR_MUX_KEEPALIVE_TIMEOUT: true,
  ERR_MUX_CLOSE_TIMEOUT: true,
  ERR_MUX_OPEN_TIMEOUT: true,
  ERR_MUX_TRANSPORT_CLOSED: true,
  ERR_MUX_WRITE_AFTER_END: true,
  ERR_MUX_UNSUPPORTED: true,
  ERR_MUX_CHANNEL_CLOSED: true,
  ERR_MUX_INTERNAL: true,
};

/**
 * Whether `value` is an error muxwire raised, told by its `code`, one of this version's: of this copy, or of
 * another installed copy of muxwire (a library that depends on another version: `instanceof` is false there).
 * A `MuxError` with a code of its own (an application's, or one a later version added) is not: {@link AnyMuxError}
 * would not type it. Types the value as {@link AnyMuxError}, so that its `code` narrows.
 */
export function isMuxError(value: unknown): value is AnyMuxError {
  if (!isError(value)) return false; // (it cannot throw: a revoked Proxy is no error)
  try {
    const code = (value as { code?: unknown }).code;
    return typeof code === 'string' && Object.hasOwn(MUX_ERROR_CODES, code);
  } catch {
    return false; // (a `code` getter that throws)
  }
}

/**
 * Whether `value` is an error, of any realm: an `AbortSignal`'s default reason is Node's `DOMException`, which a
 * test runner's sandbox (Jest, Vitest's jsdom) does not count as one of its own `Error`s, though it is one. One
 * of another realm is told by its built-in type and a `message`.
 */
export function isError(value: unknown): value is Error {
  try {
    if (value instanceof Error) return true;
    const tag = Object.prototype.toString.call(value);
    return (
      (tag === '[object Error]' || tag === '[object DOMException]') && typeof (value as Error).message === 'string'
    );
  } catch {
    return false; // (a revoked Proxy, a Symbol.toStringTag getter that throws: no error of ours to keep)
  }
}

/** A value as a message shows it; one that cannot become a string (`Object.create(null)`) by its kind. */
export function shown(value: unknown): string {
  try {
    return String(value);
  } catch {
    try {
      return Object.prototype.toString.call(value);
    } catch {
      return typeof value; // (a Symbol.toStringTag getter that throws)
    }
  }
}

/**
 * The peer refused a channel this side dialled: its application never saw it (backlog full, stream limit, or
 * the peer closing), so a request sent on it can be retried elsewhere.
 */
export class ChannelRefusedError extends ChannelResetError {
  static {
    this.prototype.name = 'ChannelRefusedError';
  }
  declare readonly code: 'ERR_MUX_CHANNEL_REFUSED';
  constructor(channelId: number, message?: string) {
    super(
      channelId,
      message ?? `channel ${channelId} was refused by the peer (accept backlog full or stream limit)`,
      'ERR_MUX_CHANNEL_REFUSED',
    );
  }
}

/**
 * A local limit stopped a new channel: `maxStreams` or `maxOutboundStreams` channels are open, or this side's
 * channel ids ran out (the session is then closing).
 */
export class StreamLimitError extends MuxError {
  static {
    this.prototype.name = 'StreamLimitError';
  }
  declare readonly code: 'ERR_MUX_STREAM_LIMIT';
  constructor(message: string) {
    super('ERR_MUX_STREAM_LIMIT', message);
  }
}

/**
 * Something did not happen in time. `code` tells what: `ERR_MUX_KEEPALIVE_TIMEOUT` (a ping went unanswered),
 * `ERR_MUX_CLOSE_TIMEOUT` (`close()` ran out of time) or `ERR_MUX_OPEN_TIMEOUT` (the peer did not acknowledge
 * a dialled channel within `openTimeout`).
 */
export class TimeoutError extends MuxError {
  static {
    this.prototype.name = 'TimeoutError';
  }
  declare readonly code: TimeoutCode;
  // Not useless: it narrows the codes a TimeoutError may carry.
  // eslint-disable-next-line @typescript-eslint/no-useless-constructor
  constructor(code: TimeoutCode, message: string) {
    super(code, message);
  }
}

/**
 * The transport ended or failed while channels were still open, or failed before its connection was up, with
 * or without channels. `cause` holds the transport's own error.
 */
export class TransportClosedError extends MuxError {
  static {
    this.prototype.name = 'TransportClosedError';
  }
  declare readonly code: 'ERR_MUX_TRANSPORT_CLOSED';
  constructor(message = 'the transport closed with channels still open', cause?: unknown) {
    super('ERR_MUX_TRANSPORT_CLOSED', message, cause === undefined ? undefined : { cause });
  }

  /**
   * @internal The transport failed with `error`, its `cause`. Said once: a session over a channel of another
   * session (a libp2p relayed connection) gets that session's error, which already says it.
   */
  static failed(error: Error): TransportClosedError {
    // (A stream may fail with what is no Error: a string, an object without a message.)
    const text = String((error as Partial<Error> | null | undefined)?.message ?? error);
    return new TransportClosedError(text.startsWith(TRANSPORT_FAILED) ? text : TRANSPORT_FAILED + text, error);
  }
}

const TRANSPORT_FAILED = 'the transport failed: ';
