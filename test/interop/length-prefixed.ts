/**
 * The application protocol the interop peers speak on each channel (the Go peer's, see README-go.md): an
 * 8-byte big-endian length N, then N payload bytes; the echo side sends the same 8 + N bytes back. Plus the
 * small tools the interop tests share: a by-length reader over any Node readable, SHA-256, payload sizes and
 * bounded waits.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { within } from '../helpers.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;

/** The sizes every echo run starts with: around 1 KiB, 64 KiB, the 256 KiB initial window and 1 MiB. */
export const EDGE_SIZES = [0, 1, 1023, 1024, 1025, 65535, 65536, 262144, 262145, 1048576];

export const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** `count` payload sizes: the edge sizes first, then seeded pseudo-random sizes from 0 to 1 MiB. */
export function payloadSizes(count: number, seed: number): number[] {
  let x = seed >>> 0 || 1;
  const next = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  const sizes: number[] = [];
  for (let i = 0; i < count; i++) sizes.push(i < EDGE_SIZES.length ? EDGE_SIZES[i]! : next() % (MiB + 1));
  return sizes;
}

/** A random payload of `size` bytes. */
export const payload = (size: number): Buffer => randomBytes(size);

/** The 8-byte big-endian length header. */
export function lengthHeader(size: number): Buffer {
  const header = Buffer.alloc(8);
  header.writeBigUInt64BE(BigInt(size));
  return header;
}

/** Header and payload as one message. */
export const message = (data: Buffer): Buffer => Buffer.concat([lengthHeader(data.length), data]);

export { within };

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `predicate` every few ms; rejects after `ms`. */
export async function waitUntil(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(3);
  }
}

/**
 * Reads a Node readable by length. It consumes the stream in flowing mode (so the channel grants window as
 * data arrives) and hands out exactly the bytes asked for; the end of the stream and errors are remembered.
 */
export class ByteReader {
  private chunks: Buffer[] = [];
  private length = 0;
  private waiter: (() => void) | undefined;
  /** True once the stream emitted 'end' (the peer's FIN). */
  ended = false;
  /** The stream's error, if it emitted one. */
  error: Error | undefined;
  /** Every byte taken or still buffered so far. */
  total = 0;

  constructor(readonly stream: Duplex) {
    stream.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.total += chunk.length;
      this.wake();
    });
    stream.on('end', () => {
      this.ended = true;
      this.wake();
    });
    stream.on('error', (error: Error) => {
      this.error = error;
      this.wake();
    });
    stream.on('close', () => this.wake());
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  private async waitFor(done: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done()) {
      if (this.error !== undefined) throw this.error;
      if (this.ended || this.stream.destroyed)
        throw new Error(`${what}: the stream ended with ${this.length} bytes buffered`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms: ${what} (${this.length} bytes buffered)`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Exactly `n` bytes. */
  async read(n: number, ms = 15_000): Promise<Buffer> {
    await this.waitFor(() => this.length >= n, ms, `reading ${n} bytes`);
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
    return out;
  }

  /** One message: the length header and that many bytes. */
  async readMessage(ms = 15_000): Promise<Buffer> {
    const header = await this.read(8, ms);
    const size = Number(header.readBigUInt64BE());
    if (size > 64 * MiB) throw new Error(`length header ${size} is implausible`);
    return this.read(size, ms);
  }

  /** Waits for the end of the stream; fails if any byte arrives first. */
  async expectEnd(ms = 15_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.ended) {
      if (this.length > 0) throw new Error(`${this.length} unexpected bytes before the end of the stream`);
      if (this.error !== undefined) throw this.error;
      if (this.stream.destroyed) throw new Error('the stream was destroyed before its end');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for the end of the stream`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    if (this.length > 0) throw new Error(`${this.length} unexpected bytes before the end of the stream`);
  }

  /** Waits for the stream to fail; resolves to its error. */
  async expectError(ms = 15_000): Promise<Error> {
    const deadline = Date.now() + ms;
    while (this.error === undefined) {
      if (this.ended) throw new Error('the stream ended cleanly; an error was expected');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for the stream to fail`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 20));
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.error;
  }
}

/** Resolves once the stream has emitted 'close' (at once if it already has); rejects after `ms`. */
export function closedWithin(stream: Duplex, ms: number, what = 'the channel to close'): Promise<void> {
  if (stream.closed) return Promise.resolve();
  return within(new Promise<void>((resolve) => stream.once('close', () => resolve())), ms, what);
}

/**
 * The opener's side of one echo: sends header + payload (and FIN right after when `finFirst`), reads the
 * echo by length and compares it by SHA-256, then expects the peer's FIN (and sends its own after it when
 * not `finFirst`). Resolves to the payload size.
 */
export async function openEcho(channel: Duplex, size: number, finFirst: boolean, ms = 20_000): Promise<number> {
  const reader = new ByteReader(channel);
  const data = payload(size);
  channel.write(message(data));
  if (finFirst) channel.end();
  const echo = await reader.readMessage(ms);
  if (echo.length !== size) throw new Error(`echo length ${echo.length}, sent ${size}`);
  if (sha256(echo) !== sha256(data)) throw new Error(`echo of ${size} bytes differs (SHA-256)`);
  if (!finFirst) channel.end();
  await reader.expectEnd(ms);
  return size;
}

/** The echo side of one channel: reads one message, writes it back and half-closes. Resolves to its size. */
export async function serveEcho(channel: Duplex, ms = 20_000): Promise<number> {
  const reader = new ByteReader(channel);
  const data = await reader.readMessage(ms);
  channel.end(message(data));
  await reader.expectEnd(ms);
  return data.length;
}
