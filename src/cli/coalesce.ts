/**
 * The session's transport for the tunnel: muxwire's Node adapter for the connection between the two ends,
 * with the writes of one event-loop turn gathered into one system call.
 *
 * The session already packs the frames queued in one synchronous run into one write. But a tunnel's frames
 * come from many sockets: each forwarded socket that becomes readable is its own I/O callback, and the
 * session flushes after each (from a microtask), so 50 redis clients whose requests are read in one poll
 * of the event loop became 50 writes to the session's socket, 50 wake-ups of the other end. Here the writes
 * are held from the first one of a turn until `setImmediate` (which runs once the poll phase has handled
 * every ready socket), and then all of it leaves at once:
 * - over TCP and TLS (streams that take several chunks in one `writev`) by corking the socket;
 * - over a WebSocket stream, which would make each chunk a message of its own, by joining the held writes
 *   into one buffer, sent as one message.
 *
 * A large write (bulk data, at least {@link DIRECT_WRITE_BYTES}) is not held: it leaves at once, after
 * whatever small writes were held before it, so bulk throughput pays no extra delay.
 * @module
 */
import type { Duplex } from 'node:stream';
import type { Transport } from '../core/transport.js';
import { duplexTransport } from '../node/transport.js';
import { eachMessage } from '../web/websocket-transport.js';
import { WS_JOIN_BYTES } from './protocol.js';

/** Writes of at least this many bytes go out at once (with what was held before them). */
export const DIRECT_WRITE_BYTES = 16 * 1024;

type Done = (error?: Error | null) => void;

/** Wraps `stream` (the tunnel's TCP, TLS or WebSocket stream) as a session transport that coalesces writes. */
export function coalescingTransport(stream: Duplex): Transport {
  const base = duplexTransport(stream);
  const hold =
    typeof (stream as { _writev?: unknown })._writev === 'function' ? corking(stream, base) : joining(stream, base);
  return {
    ...base,
    write(parts, done) {
      let bytes = 0;
      for (const part of parts) bytes += part.byteLength;
      return bytes >= DIRECT_WRITE_BYTES ? hold.writeNow(parts, done) : hold.write(parts, done);
    },
    end() {
      hold.release();
      base.end();
    },
  };
}

/** Holds small writes until the end of the turn; `release()` sends what is held now. */
interface Holder {
  write(parts: Uint8Array[], done: Done): boolean;
  /** Writes at once, after what is held. */
  writeNow(parts: Uint8Array[], done: Done): boolean;
  release(): void;
}

/** A stream with `writev`: cork it for the turn; uncorking hands every chunk to the kernel in one call. */
function corking(stream: Duplex, base: Transport): Holder {
  let corked = false;
  const release = (): void => {
    if (!corked) return;
    corked = false;
    stream.uncork();
  };
  return {
    write(parts, done) {
      if (!corked && !stream.destroyed) {
        corked = true;
        stream.cork();
        setImmediate(release);
      }
      return base.write(parts, done);
    },
    writeNow(parts, done) {
      const accepted = base.write(parts, done); // into the corked stream: one writev with what is held
      release();
      return accepted;
    },
    release,
  };
}

/**
 * A stream without `writev` (the WebSocket's): keep the parts, then write them joined, as one chunk per
 * {@link WS_JOIN_BYTES} (the other end takes messages up to a frame's size, not a whole turn's writes). The
 * held bytes are at most one turn's small writes; the answer to each write is whether the stream itself
 * still has room, so the session stops when the stream asks it to and resumes on its `'drain'`.
 */
function joining(stream: Duplex, base: Transport): Holder {
  let held: Uint8Array[] = [];
  let waiting: Done[] = [];
  let scheduled = false;
  const release = (): void => {
    scheduled = false;
    if (held.length === 0) return;
    const parts = held;
    const dones = waiting;
    held = [];
    waiting = [];
    base.write(joinUpTo(parts, WS_JOIN_BYTES), (error) => {
      for (const done of dones) done(error);
    });
  };
  return {
    write(parts, done) {
      for (const part of parts) held.push(part);
      waiting.push(done);
      if (!scheduled) {
        scheduled = true;
        setImmediate(release);
      }
      return !stream.writableNeedDrain;
    },
    writeNow(parts, done) {
      release();
      return base.write(parts, done);
    },
    release,
  };
}

/**
 * `parts` as chunks of at most `limit` bytes each, a run of parts joined into one (a part larger than `limit`
 * stays a chunk of its own), in order: the WebSocket transport's cut, each joined run in a fresh array.
 */
export function joinUpTo(parts: Uint8Array[], limit: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  eachMessage(parts, false, (chunk) => chunks.push(chunk), limit);
  return chunks;
}
