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
import { isArrayBuffer } from '../core/bytes.js';
import { defer } from '../core/defer.js';
import { ProtocolError, TransportClosedError } from '../core/errors.js';
import type { Transport, TransportEvents } from '../core/transport.js';

/**
 * A readable and a writable stream of bytes, as WebTransport's `WebTransportBidirectionalStream` has. Typed by
 * what the transport uses of them, so that Node's `Duplex.toWeb()` and `Readable.toWeb()` / `Writable.toWeb()`
 * (typed by `node:stream/web`, not the DOM) fit as the DOM's streams do.
 */
export interface StreamPair {
  /** The bytes from the peer; the transport reads it with one reader to its end. */
  readable: {
    readonly locked: boolean;
    getReader(): {
      read(): Promise<{ done: boolean; value?: ArrayBuffer | ArrayBufferView | undefined }>;
      cancel(reason?: unknown): Promise<void>;
    };
  };
  /** The bytes to the peer; the transport writes with one writer and waits on its `ready`. */
  writable: {
    readonly locked: boolean;
    getWriter(): {
      write(chunk: Uint8Array): Promise<void>;
      close(): Promise<void>;
      abort(reason?: unknown): Promise<void>;
      readonly desiredSize: number | null;
      readonly ready: Promise<void>;
    };
  };
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
  if (pair.readable.locked || pair.writable.locked) {
    throw new TypeError('muxwire: streamTransport needs streams no one else reads or writes (one is locked)');
  }
  // Both are locked from start(): a session that refused its options leaves the streams free for another try.
  let reader: ReturnType<StreamPair['readable']['getReader']> | undefined;
  let writer: ReturnType<StreamPair['writable']['getWriter']> | undefined;
  let events: TransportEvents | undefined;
  let paused = false;
  let wake: (() => void) | undefined;
  let readDone = false;
  let writeDone = false;
  let closed = false;
  /** The writer's `ready` promise already watched for drain. */
  let watchedReady: Promise<void> | undefined;
  /** Owed once a write returned false; reported by whichever of `ready` and that write settles first. */
  let drainOwed = false;
  const drained = (): void => {
    if (!drainOwed || closed) return;
    drainOwed = false;
    events?.drain();
  };

  const closeIfDone = (): void => {
    if (closed || !readDone || !writeDone) return;
    closed = true;
    events?.close();
  };

  const fail = (error: Error): void => {
    if (closed) return;
    closed = true;
    readDone = writeDone = true;
    // (Not started, nothing was taken: the streams stay as they were.)
    reader?.cancel(error).catch(() => {});
    writer?.abort(error).catch(() => {});
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
      let result: { done: boolean; value?: unknown }; // (checked below: JavaScript callers may give anything)
      try {
        result = await reader!.read(); // (the loop starts in start(), once there is a reader)
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
      // Bytes in any binary shape (an ArrayBuffer, a DataView, another typed array) are taken as they are.
      if (value instanceof Uint8Array) events?.data(value);
      else if (isArrayBuffer(value)) events?.data(new Uint8Array(value));
      else if (ArrayBuffer.isView(value))
        events?.data(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      else {
        // Not bytes (a string, say): not this protocol, which the session reports even with no channel open (a
        // transport's failure would end an idle session cleanly).
        fail(new ProtocolError(`the readable stream gave a ${typeof value}, not bytes`));
        return;
      }
    }
  }

  return {
    start(sink) {
      events = sink;
      if (closed) {
        // Destroyed before the session started: nothing taken, and the session hears the close.
        defer(() => sink.close());
        return;
      }
      reader = pair.readable.getReader();
      writer = pair.writable.getWriter();
      void readLoop();
    },
    write(parts, done) {
      if (closed || writeDone) {
        defer(() => done(new TransportClosedError('the writable stream is closed')));
        return false;
      }
      let bytes = 0;
      for (const part of parts) bytes += part.length;
      const batch = new Uint8Array(bytes);
      for (let i = 0, offset = 0; i < parts.length; offset += parts[i++]!.length) batch.set(parts[i]!, offset);
      // (Writes come after start(), which took the writer.)
      const written = writer!.write(batch).then(
        () => done(null),
        (error: unknown) => {
          const failure = asError(error, 'writable');
          done(failure);
          fail(failure);
        },
      );
      if ((writer!.desiredSize ?? 0) > 0) return true;
      // Drain when the writer is ready again, or once this write was taken: a writable whose high-water mark is
      // 0 (a `TransformStream` made so, a socket with `writableHighWaterMark: 0`) is never "ready", and its one
      // `ready` promise is watched once (a reaction added per write would be kept until the session ends).
      drainOwed = true;
      const ready = writer!.ready;
      if (ready !== watchedReady) {
        watchedReady = ready;
        ready.then(drained, () => {});
      }
      written.then(drained, () => {});
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
      if (writer === undefined) return; // (not started: nothing to end)
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
