/**
 * Adapts any Node `stream.Duplex` of bytes (a `net.Socket`, a `tls.TLSSocket`, a child process's stdio joined
 * into a duplex, an in-memory pair) to the core's {@link Transport}.
 * @module
 */
import type { Duplex } from 'node:stream';
import type { Transport, TransportEvents } from '../core/transport.js';

const ignore = (): void => {};

/** Wraps a Node duplex stream as a session transport. */
export function duplexTransport(stream: Duplex): Transport {
  let events: TransportEvents | undefined;
  const onClose = (): void => {
    stream.off('data', events!.data);
    stream.off('end', events!.end);
    stream.off('drain', events!.drain);
    stream.off('error', events!.error);
    stream.off('close', onClose);
    // A late error from a closed stream must not become an uncaught exception.
    stream.on('error', ignore);
    events!.close();
  };
  return {
    start(sink) {
      events = sink;
      // The session batches frames itself; Nagle's algorithm would only add delay.
      (stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
      stream.on('data', sink.data);
      stream.on('end', sink.end);
      stream.on('drain', sink.drain);
      stream.on('error', sink.error);
      stream.on('close', onClose);
      if (stream.destroyed) queueMicrotask(onClose);
      // A 'data' listener does not restart a stream paused by hand (`pauseOnConnect`, or paused to read a
      // preamble first): the session reads it from now on.
      else stream.resume();
    },
    write(parts, done) {
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
    },
    allocate(size) {
      return Buffer.allocUnsafe(size);
    },
  };
}
