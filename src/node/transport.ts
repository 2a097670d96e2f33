/**
 * Adapts any Node `stream.Duplex` of bytes (a `net.Socket`, a `tls.TLSSocket`, a child process's stdio joined
 * into a duplex, an in-memory pair) to the core's {@link Transport}.
 * @module
 */
import { type Duplex, finished } from 'node:stream';
import { defer } from '../core/defer.js';
import { ProtocolError } from '../core/errors.js';
import type { Transport, TransportEvents } from '../core/transport.js';

const ignore = (): void => {};

/**
 * An error of OpenSSL's (`ERR_SSL_…`): a TLS alert from the peer, or a record that does not decrypt. No peer
 * ends a working connection so, and under TLS 1.3 a server judges the client's certificate only after the
 * client's handshake is done: its refusal comes as such an alert on a connection that looked up.
 */
function isTlsFailure(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_SSL_');
}

/** What the transport reads of a `net.Socket` or a `tls.TLSSocket`, when the stream is one. */
interface SocketFacts {
  /** A `net.Socket` still connecting. */
  connecting?: boolean;
  /** A `tls.TLSSocket`. */
  encrypted?: boolean;
  /** A TLS socket's: undefined until the peer's Finished message came, the last of its handshake. */
  getPeerFinished?: () => unknown;
  setNoDelay?: (on: boolean) => void;
}

/**
 * Whether the connection under `stream` is up: not a socket still connecting, nor a TLS socket whose
 * handshake has not finished (handed over at once after `tls.connect()`). Any other duplex is.
 */
function isOpen(stream: Duplex & SocketFacts): boolean {
  if (stream.connecting === true) return false;
  return stream.encrypted !== true || typeof stream.getPeerFinished !== 'function' || !!stream.getPeerFinished();
}

/** Wraps a Node duplex stream as a session transport. */
export function duplexTransport(stream: Duplex): Transport {
  const socket = stream as Duplex & SocketFacts;
  let events: TransportEvents | undefined;
  /** The session heard the close: no more events go to it. */
  let closed = false;
  /**
   * The connection was up when the session started, or came up since. An error before that (a refused
   * connection, an untrusted certificate) fails the session even with nothing open: it never connected.
   */
  let opened = false;
  /** Takes `finished()`'s listeners off. */
  let unwatch = ignore;
  // A TLS socket emits 'secure' once its handshake is done (either side; a client's 'secureConnect' follows
  // from it); its own 'connect' says only that TCP is up.
  const openEvent = socket.encrypted === true ? 'secure' : 'connect';
  const onOpen = (): void => {
    // A TLS client's own 'secure' listener, added before this one, destroys a socket whose certificate it
    // refused: that connection never opened.
    if (opened) return; // (a TLS renegotiation emits 'secure' again)
    opened = !stream.destroyed;
    if (opened) events!.open?.();
  };
  const onData = (chunk: unknown): void => {
    // (Any realm's bytes: a test environment may bring its own Uint8Array.)
    if (chunk instanceof Uint8Array) events!.data(chunk);
    else if (ArrayBuffer.isView(chunk)) events!.data(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    // A string (`setEncoding()` called after the session started) or an object (an object-mode stream) is not
    // this protocol, which the session reports even with nothing open; it destroys the stream.
    else {
      const type = typeof chunk;
      events!.error(new ProtocolError(`the stream gave ${type === 'object' ? 'an' : 'a'} ${type}, not bytes`));
    }
  };
  const onError = (error: Error): void => events!.error(error, !opened || isTlsFailure(error));
  const onEnd = (): void => {
    if (closed) return;
    // An end before the connection was up is a failure to connect: a TLS client whose server closed during the
    // handshake says 'end' first (already destroyed, `errored` saying why), then 'error'.
    if (!opened) events!.error(stream.errored ?? new Error('the connection ended before it was up'), true);
    else events!.end();
  };
  const onDrain = (): void => events!.drain();
  const onClose = (): void => {
    if (closed) return;
    closed = true;
    stream.off('data', onData);
    stream.off('end', onEnd);
    stream.off('drain', onDrain);
    stream.off('error', onError);
    stream.off('close', onClose);
    stream.off(openEvent, onOpen);
    unwatch();
    // A late error from a closed stream must not become an uncaught exception.
    stream.on('error', ignore);
    // Done for the session, and let go: a stream can close early without being destroyed (an http2 stream the
    // peer aborted with writes still queued reports a premature close and holds its Http2Session open for ever).
    // From a later task: `http2Stream.close(code)` reports that close before it sends its RST_STREAM, which a
    // destroy now would cancel. One done both ways is left to close itself (an http2 stream would send a
    // needless RST_STREAM).
    if (!stream.destroyed && !(stream.readableEnded && stream.writableFinished)) {
      setImmediate(() => stream.destroyed || stream.destroy());
    }
    events!.close();
  };
  return {
    isConnecting() {
      return !opened && !closed;
    },
    start(sink) {
      events = sink;
      // The session batches frames itself; Nagle's algorithm would only add delay.
      socket.setNoDelay?.(true);
      stream.on('data', onData);
      stream.on('end', onEnd);
      stream.on('drain', onDrain);
      stream.on('error', onError);
      stream.on('close', onClose);
      if (stream.destroyed) {
        // Handed over dead: a stream destroyed with an error never worked for this session, which fails with
        // that error as the cause (its 'error' event, if still to come, says the same).
        defer(() => {
          if (stream.errored) onError(stream.errored);
          onClose();
        });
        return;
      }
      opened = isOpen(socket);
      if (!opened) stream.on(openEvent, onOpen);
      // A stream that emits no 'close' (`emitClose: false`) lets go of the listeners once it is done both ways.
      unwatch = finished(stream, onClose);
      // Its 'end' came before the session existed (a half-open socket whose peer had ended): no more is coming.
      if (stream.readableEnded) defer(onEnd);
      // A 'data' listener does not restart a stream paused by hand (`pauseOnConnect`, or paused to read a
      // preamble first): the session reads it from now on.
      else stream.resume();
    },
    write(parts, given) {
      // A failed write reports the stream's own error where it has one: Bun fails a write made before a TLS
      // handshake with "Socket is closed" while `errored` already holds why (the certificate refused), and only
      // then emits 'error'; the session takes the first error it hears as the cause.
      const done = (error?: Error | null): void => given(error && (stream.errored ?? error));
      const last = parts.length - 1;
      if (last === 0) return stream.write(parts[0], done);
      stream.cork();
      for (let i = 0; i < last; i++) stream.write(parts[i]);
      const accepted = stream.write(parts[last], done);
      stream.uncork();
      return accepted;
    },
    pause() {
      stream.pause();
    },
    resume() {
      stream.resume();
    },
    end() {
      stream.end();
    },
    destroy(error) {
      stream.destroy(error);
      // The session is done with the stream: its listeners go now, also from one that never emits 'close'.
      if (events !== undefined) defer(onClose);
    },
    allocate(size) {
      // Not from Node's shared pool (what `allocUnsafe` gives below 4 KiB): a payload copied so as not to pin a
      // large read would pin the pool's 8 KiB block while it waits unread.
      return Buffer.allocUnsafeSlow(size);
    },
  };
}
