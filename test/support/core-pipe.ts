/**
 * Two connected core `Transport`s in memory, written against the core's interface alone (no Node stream,
 * no `Buffer`): what a browser adapter (a WebSocket, a WHATWG stream pair) has to provide. Bytes written on
 * one end arrive at the other on a later macrotask, copied, so a session cannot rely on sharing buffers.
 */
import type { Transport, TransportEvents } from '../../src/core/transport.js';

/** Macrotask scheduling available in browsers and Node alike. */
const later = (task: () => void): void => {
  setTimeout(task, 0);
};

class CorePipeEnd implements Transport {
  peer!: CorePipeEnd;
  private events: TransportEvents | undefined;
  /** Chunks that arrived before `start()` or while paused. */
  private inbox: Uint8Array[] = [];
  private paused = false;
  private ended = false;
  private peerEnded = false;
  /** The peer's end was delivered to the session. */
  private endSeen = false;
  private closed = false;
  /** Bytes this end has written (to check that sessions really used it). */
  bytesWritten = 0;

  start(events: TransportEvents): void {
    this.events = events;
    this.deliver();
  }

  write(parts: Uint8Array[], done: (error?: Error | null) => void): boolean {
    if (this.closed || this.ended) {
      later(() => done(new Error('write after the core pipe ended')));
      return false;
    }
    let length = 0;
    for (const part of parts) length += part.length;
    const copy = new Uint8Array(length);
    let offset = 0;
    for (const part of parts) {
      copy.set(part, offset);
      offset += part.length;
    }
    this.bytesWritten += length;
    const peer = this.peer;
    later(() => {
      peer.receive(copy);
      done(null);
    });
    return true;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.deliver();
  }

  end(): void {
    if (this.ended || this.closed) return;
    this.ended = true;
    const peer = this.peer;
    later(() => peer.receiveEnd()); // after every write made before it
    this.closeIfDone();
  }

  destroy(): void {
    this.close();
    const peer = this.peer;
    later(() => peer.close());
  }

  private receive(chunk: Uint8Array): void {
    if (this.closed) return;
    this.inbox.push(chunk);
    this.deliver();
  }

  private receiveEnd(): void {
    if (this.closed) return;
    this.peerEnded = true;
    this.deliver();
  }

  private deliver(): void {
    const events = this.events;
    if (events === undefined || this.closed) return;
    while (!this.paused && this.inbox.length > 0) events.data(this.inbox.shift()!);
    if (!this.paused && this.inbox.length === 0 && this.peerEnded) {
      this.peerEnded = false;
      this.endSeen = true;
      events.end();
      this.closeIfDone();
    }
  }

  /** Both directions ended: closed, as a socket is once each side has sent its FIN. */
  private closeIfDone(): void {
    if (this.ended && this.endSeen) this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.inbox = [];
    const events = this.events;
    if (events !== undefined) later(() => events.close());
  }
}

/** A connected pair of core transports. */
export function corePipe(): [CorePipeEnd, CorePipeEnd] {
  const a = new CorePipeEnd();
  const b = new CorePipeEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
