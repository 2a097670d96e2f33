/**
 * A transport driven by hand, for fuzzing whole sessions fast: the test feeds bytes (`feed`), ends and closes
 * it, and reads back every byte the session wrote. Writes complete on the next microtask; `blocked` makes
 * writes report backpressure until `drain()`.
 */
import type { Transport, TransportEvents } from '../../src/core/transport.js';

export class FakeTransport implements Transport {
  events: TransportEvents | undefined;
  readonly written: Uint8Array[] = [];
  writtenBytes = 0;
  /** Calls of `write` (each is one batch, as one system call on a socket). */
  writes = 0;
  paused = false;
  ended = false;
  destroyed = false;
  blocked = false;
  private closedFlag = false;

  start(events: TransportEvents): void {
    this.events = events;
  }

  write(parts: Uint8Array[], done: (error?: Error | null) => void): boolean {
    this.writes++;
    for (const part of parts) {
      this.written.push(Uint8Array.from(part)); // the session may reuse its buffers after `done`
      this.writtenBytes += part.length;
    }
    queueMicrotask(() => done(null));
    return !this.blocked;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  end(): void {
    this.ended = true;
  }

  destroy(): void {
    this.destroyed = true;
    this.close();
  }

  /** Delivers bytes from the peer. */
  feed(chunk: Uint8Array): void {
    if (!this.closedFlag) this.events!.data(chunk);
  }

  /** The peer ended its side. */
  peerEnd(): void {
    if (!this.closedFlag) this.events!.end();
  }

  /** Both directions are closed. */
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    queueMicrotask(() => this.events!.close());
  }

  drain(): void {
    this.blocked = false;
    this.events!.drain();
  }

  /** Everything written, as one buffer. */
  output(): Buffer {
    return Buffer.concat(this.written);
  }
}
