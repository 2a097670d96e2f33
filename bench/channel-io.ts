// Small helpers over a channel (a Node Duplex): exact-length reads and backpressure-aware writes.
import type { Channel } from './impl/types.js';

/** Collects a channel's bytes and hands them out in exact-length reads. */
export class ChunkReader {
  private chunks: Buffer[] = [];
  private length = 0;
  private want = 0;
  private resolve: ((b: Buffer) => void) | null = null;
  private reject: ((e: Error) => void) | null = null;
  private failure: Error | null = null;
  ended = false;

  constructor(private readonly ch: Channel) {
    ch.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.length += c.length;
      this.settle();
    });
    ch.on('end', () => {
      this.ended = true;
      this.settle();
    });
    ch.on('error', (err: Error) => {
      this.failure ??= err;
      this.settle();
    });
    ch.on('close', () => {
      if (!this.ended) this.failure ??= new Error('channel closed before its data was read');
      this.settle();
    });
  }

  get buffered(): number {
    return this.length;
  }

  /** Resolves with exactly n bytes, or rejects if the channel ends or fails first. */
  read(n: number): Promise<Buffer> {
    if (this.resolve) return Promise.reject(new Error('concurrent read'));
    this.want = n;
    return new Promise<Buffer>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      this.settle();
    });
  }

  private settle(): void {
    const resolve = this.resolve;
    if (!resolve) return;
    if (this.length >= this.want) {
      this.resolve = this.reject = null;
      resolve(this.take(this.want));
      return;
    }
    if (this.failure || this.ended) {
      const reject = this.reject!;
      this.resolve = this.reject = null;
      reject(this.failure ?? new Error(`channel ended after ${this.length} of the ${this.want} bytes awaited`));
    }
  }

  private take(n: number): Buffer {
    if (this.chunks.length === 1 && this.chunks[0]!.length === n) {
      this.length = 0;
      return this.chunks.pop()!;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.length -= n;
    return out;
  }
}

/** Writes and, when the channel asks for it, waits for 'drain' (or fails on error/close). */
export function write(ch: Channel, buf: Buffer): Promise<void> | null {
  if (ch.write(buf)) return null;
  return drained(ch);
}

export function drained(ch: Channel): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      ch.off('drain', onDrain);
      ch.off('error', onError);
      ch.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onError = (err: Error): void => done(err);
    const onClose = (): void => done(new Error('channel closed while writing'));
    ch.on('drain', onDrain);
    ch.on('error', onError);
    ch.on('close', onClose);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Lets I/O callbacks run. A writer whose writes complete synchronously (the kernel keeps accepting
 * them, so 'drain' comes on the next tick) would otherwise never return to the event loop and would
 * starve every other socket of the process: a harness artefact, not a property of the multiplexer.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Blocks written between two yields to the event loop by bulk writers (256 KiB). */
export const BLOCKS_PER_YIELD = 4;

/** Rejects when the promise has not settled after ms, with the message from what(). */
export function within<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(what())), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
