/**
 * Adapts a WHATWG byte stream pair (`{ readable, writable }`: a WebTransport bidirectional stream, a
 * `Deno.connect` connection, a `TransformStream` pair in tests) to the core's {@link Transport}.
 * Reading is a loop of `reader.read()` that stops while the session pauses (real backpressure, unlike a
 * WebSocket); each batch of writes is copied into one array of its own and written once (a pair such as a
 * `TransformStream` hands the very array to the reader, while the session and its callers reuse theirs once
 * a write is done); a write is done when the writable's sink took it, and drain is reported when the writer's
 * `ready` settles.
 * @module
 */
import { TransportClosedError } from '../core/errors.js';
import type { Transport, TransportEvents } from '../core/transport.js';

/** A readable and a writable stream of bytes, as WebTransport's `WebTransportBidirectionalStream` has. */
export interface StreamPair {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
}

function asError(reason: unknown, what: string): Error {
  return new TransportClosedError(`the ${what} stream failed: ${(reason as Error)?.message ?? String(reason)}`, reason);
}

/** Wraps a Web Streams byte pair as a session transport. Both streams are locked by it. */
export function streamTransport(pair: StreamPair): Transport {
  if (
    pair === null ||
    typeof pair !== 'object' ||
    typeof pair.readable?.getReader !== 'function' ||
    typeof pair.writable?.getWriter !== 'function'
  ) {
    throw new TypeError('muxwire: streamTransport needs { readable, writable } Web Streams');
  }
  const reader = pair.readable.getReader();
  const writer = pair.writable.getWriter();
  let events: TransportEvents | undefined;
  let paused = false;
  let wake: (() => void) | undefined;
  let readDone = false;
  let writeDone = false;
  let closed = false;
  let waitingReady = false;

  const closeIfDone = (): void => {
    if (closed || !readDone || !writeDone) return;
    closed = true;
    events?.close();
  };

  const fail = (error: Error): void => {
    if (closed) return;
    closed = true;
    readDone = writeDone = true;
    reader.cancel(error).catch(() => {});
    writer.abort(error).catch(() => {});
    events?.error(error);
    events?.close();
  };

  async function readLoop(): Promise<void> {
    for (;;) {
      // A loop: a resume() and a pause() in one turn leave it paused when it wakes.
      while (paused && !closed)
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      if (closed) return;
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (error) {
        fail(asError(error, 'readable'));
        return;
      }
      if (closed) return;
      if (result.done) {
        readDone = true;
        events?.end();
        closeIfDone();
        return;
      }
      const value = result.value;
      if (!(value instanceof Uint8Array)) {
        fail(new TransportClosedError('the readable stream gave something other than a Uint8Array'));
        return;
      }
      events?.data(value);
    }
  }

  return {
    start(sink) {
      events = sink;
      void readLoop();
    },
    write(parts, done) {
      if (closed || writeDone) {
        queueMicrotask(() => done(new TransportClosedError('the writable stream is closed')));
        return false;
      }
      let bytes = 0;
      for (const part of parts) bytes += part.length;
      const batch = new Uint8Array(bytes);
      for (let i = 0, offset = 0; i < parts.length; offset += parts[i++]!.length) batch.set(parts[i]!, offset);
      writer.write(batch).then(
        () => done(null),
        (error: unknown) => {
          const failure = asError(error, 'writable');
          done(failure);
          fail(failure);
        },
      );
      if ((writer.desiredSize ?? 0) > 0) return true;
      if (!waitingReady) {
        waitingReady = true;
        writer.ready.then(
          () => {
            waitingReady = false;
            if (!closed) events?.drain();
          },
          () => {
            waitingReady = false;
          },
        );
      }
      return false;
    },
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      const resolve = wake;
      wake = undefined;
      resolve?.();
    },
    end() {
      if (writeDone || closed) return;
      writeDone = true;
      writer.close().then(closeIfDone, (error: unknown) => fail(asError(error, 'writable')));
    },
    destroy(error) {
      if (closed) return;
      fail(error ?? new TransportClosedError('the transport was destroyed'));
      const resolve = wake;
      wake = undefined;
      resolve?.();
    },
  };
}
