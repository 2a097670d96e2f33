/**
 * The session's transport for the tunnel: muxwire's Node adapter for the connection between the two ends,
 * with the writes of one event-loop turn gathered into one system call.
 *
 * The session already packs the frames queued in one synchronous run into one write. But a tunnel's frames
 * come from many sockets: each forwarded socket that becomes readable is its own I/O callback, and the
 * session flushes after each (from a microtask), so 50 redis clients whose requests are read in one poll
 * of the event loop became 50 writes to the session's socket, 50 wake-ups of the other end. Here the
 * socket stays corked from the first write of a turn until `setImmediate` (which runs once the poll phase
 * has handled every ready socket), and then all of it leaves in one `writev`.
 *
 * A large write (bulk data, at least {@link DIRECT_WRITE_BYTES}) is not held: it uncorks at once, with
 * whatever small writes were gathered before it, so bulk throughput pays no extra delay.
 * @module
 */
import type { Duplex } from 'node:stream';
import type { Transport } from '../core/transport.js';
import { duplexTransport } from '../node/transport.js';

/** Writes of at least this many bytes go out at once (with what was gathered before them). */
export const DIRECT_WRITE_BYTES = 16 * 1024;

/** Wraps `stream` (the tunnel's TCP, TLS or WebSocket stream) as a session transport that coalesces writes. */
export function coalescingTransport(stream: Duplex): Transport {
  const base = duplexTransport(stream);
  let corked = false;
  const uncork = (): void => {
    if (!corked) return;
    corked = false;
    stream.uncork();
  };
  return {
    ...base,
    write(parts, done) {
      let bytes = 0;
      for (const part of parts) bytes += part.byteLength;
      if (bytes >= DIRECT_WRITE_BYTES) {
        const accepted = base.write(parts, done);
        uncork();
        return accepted;
      }
      if (!corked && !stream.destroyed) {
        corked = true;
        stream.cork();
        setImmediate(uncork);
      }
      return base.write(parts, done);
    },
    end() {
      uncork();
      base.end();
    },
  };
}
