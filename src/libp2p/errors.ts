/**
 * muxwire's typed errors as the libp2p errors that libp2p code branches on (by `name`). The muxwire error
 * stays reachable as `cause`, with its stable `code`.
 * @module
 */
import {
  ConnectionClosedError,
  MuxerClosedError,
  ProtocolError as Libp2pProtocolError,
  StreamAbortedError,
  StreamResetError,
  TimeoutError as Libp2pTimeoutError,
  TooManyOutboundProtocolStreamsError,
} from '@libp2p/interface';
import {
  ChannelResetError,
  GoAwayError,
  MuxError,
  ProtocolError,
  SessionClosedError,
  StreamLimitError,
  TimeoutError,
  TransportClosedError,
  shown,
} from '../core/errors.js';

function withCause<E extends Error>(error: E, cause: unknown): E {
  Object.defineProperty(error, 'cause', { value: cause, configurable: true, writable: true, enumerable: false });
  return error;
}

/**
 * The libp2p error for a muxwire error that ended a stream or refused to open one:
 * - the peer reset the stream (or refused it): `StreamResetError`;
 * - the session closed, this side's or the peer's Go Away: `MuxerClosedError`;
 * - `maxStreams` or the stream ids are exhausted: `TooManyOutboundProtocolStreamsError`;
 * - the connection ended or failed under open streams: `ConnectionClosedError`;
 * - a ping, an open or a close timed out: `TimeoutError`;
 * - the peer broke the yamux protocol: `ProtocolError`.
 * Anything else (an application's own error given to `abort()`, an abort signal's reason) is returned as is.
 */
export function toLibp2pError(error: Error): Error {
  if (!(error instanceof MuxError)) return error;
  if (error instanceof ChannelResetError) return withCause(new StreamResetError(error.message), error);
  if (error instanceof GoAwayError || error instanceof SessionClosedError) {
    return withCause(new MuxerClosedError(error.message), error);
  }
  if (error instanceof StreamLimitError)
    return withCause(new TooManyOutboundProtocolStreamsError(error.message), error);
  if (error instanceof TransportClosedError) return withCause(new ConnectionClosedError(error.message), error);
  if (error instanceof TimeoutError) return withCause(new Libp2pTimeoutError(error.message), error);
  if (error instanceof ProtocolError) return withCause(new Libp2pProtocolError(error.message), error);
  return error;
}

/**
 * The error for an abort whose reason is no `Error` (a string given to `abort()`, an abort signal's reason, none):
 * libp2p's `StreamAbortedError`, saying the reason, which is also its `cause`.
 */
export function abortedWith(reason: unknown): Error {
  if (reason === undefined) return new StreamAbortedError('The stream was aborted');
  return withCause(new StreamAbortedError(`The stream was aborted: ${shown(reason)}`), reason);
}
