/**
 * Adapts libp2p's connection (a `MessageStream`: the encrypted connection libp2p hands a stream muxer) to the
 * core's {@link Transport}, so that a muxwire session runs on it.
 * @module
 */
import type { MessageStream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface';
import { Uint8ArrayList } from 'uint8arraylist';
import { asUint8Array } from '../core/bytes.js';
import { defer } from '../core/defer.js';
import type { Transport, TransportEvents } from '../core/transport.js';

type Done = (error?: Error | null) => void;

/**
 * Wraps `connection` as a session transport. A batch goes out as one `send()`: its parts as one
 * `Uint8ArrayList`, not copied, which the connection hands on in one piece (a corked socket writes them in
 * one system call; sent apart, a frame's header and payload took two). Lists of different `uint8arraylist`
 * versions interoperate (they recognise each other by a registered symbol), so the peer dependency takes 2.x
 * or 3.x. `send()` returning false is libp2p's backpressure: the batch is queued in the connection, and its
 * `done` waits for `'drain'`, so the channels that wrote it stay over their high-water mark until the
 * connection has taken their bytes.
 */
export function messageStreamTransport(connection: MessageStream): Transport {
  let events: TransportEvents | undefined;
  /** Callbacks of batches the connection queued while it needed a drain. */
  let waiting: Done[] = [];
  let closed = false;

  const settleWaiting = (error?: Error): void => {
    const settled = waiting;
    waiting = [];
    for (const done of settled) done(error ?? null);
  };
  const onMessage = (event: StreamMessageEvent): void => {
    const data = event.data;
    const bytes = asUint8Array(data); // (one made in another realm too: iterated, it would give numbers)
    if (bytes !== undefined) {
      events!.data(bytes);
      return;
    }
    for (const chunk of data as Exclude<typeof data, Uint8Array>) events!.data(chunk);
  };
  const onDrain = (): void => {
    settleWaiting();
    events!.drain();
  };
  // The peer ended its side (a TCP FIN): the session learns that no more bytes come.
  const onRemoteCloseWrite = (): void => events!.end();
  const onClose = (event: StreamCloseEvent): void => {
    finish(event.error);
  };
  const finish = (error: Error | undefined): void => {
    if (closed) return;
    closed = true;
    connection.removeEventListener('message', onMessage);
    connection.removeEventListener('drain', onDrain);
    connection.removeEventListener('remoteCloseWrite', onRemoteCloseWrite);
    connection.removeEventListener('close', onClose);
    settleWaiting(error ?? new Error('the connection closed'));
    if (error !== undefined) events!.error(error);
    events!.close();
  };

  return {
    // What a paused connection holds is dropped at its close: the session does not pause it between its turns.
    dropsPausedData: true,
    start(sink) {
      events = sink;
      connection.addEventListener('message', onMessage);
      connection.addEventListener('drain', onDrain);
      connection.addEventListener('remoteCloseWrite', onRemoteCloseWrite);
      connection.addEventListener('close', onClose);
      // A connection that ended before the session started: the session ends at once, cleanly.
      if (connection.status !== 'open') defer(() => finish(undefined));
    },
    write(parts, done) {
      if (closed) {
        defer(() => done(new Error('the connection is closed')));
        return false;
      }
      let accepted: boolean;
      try {
        accepted = connection.send(parts.length === 1 ? parts[0]! : (new Uint8ArrayList(...parts) as never));
      } catch (error) {
        // A connection that is closing takes nothing more; its 'close' event ends the session.
        defer(() => done(error as Error));
        return false;
      }
      // Completion from a microtask, as a socket's write callback comes later too (one per batch: the core's
      // cheap microtask).
      if (accepted) defer(done);
      else waiting.push(done);
      return accepted;
    },
    // Pausing a connection that is closing throws; there is nothing left to pause then.
    pause() {
      try {
        connection.pause();
      } catch {
        // closing
      }
    },
    resume() {
      try {
        connection.resume();
      } catch {
        // closing
      }
    },
    end() {
      // libp2p connections have no half-close: closing flushes what was sent, then ends both directions.
      connection.close().catch((error: unknown) => connection.abort(error as Error));
    },
    destroy(error) {
      connection.abort(error ?? new Error('the muxwire session was destroyed'));
    },
  };
}
