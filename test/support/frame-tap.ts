/**
 * A tap that counts the yamux frames arriving on a stream, by type and flags, as the bytes come. It only
 * watches (one more 'data' listener; Data payloads are skipped, not kept), so it can sit on a session's own
 * transport: what the peer sent is counted in the same event that delivers it to the session.
 */
import type { Readable } from 'node:stream';
import { FrameType, HEADER_SIZE, decodeHeader } from '../../src/core/frame.js';

export class FrameTap {
  /** Frames seen, by `type:flags`. */
  readonly #counts = new Map<string, number>();
  #pending = Buffer.alloc(0);
  #payloadLeft = 0;

  constructor(stream: Readable) {
    stream.on('data', (chunk: Buffer) => this.#feed(chunk));
  }

  /** Frames seen of this type with all of `flags` set. */
  count(type: number, flags = 0): number {
    let n = 0;
    for (const [key, value] of this.#counts) {
      const [t, f] = key.split(':').map(Number) as [number, number];
      if (t === type && (f & flags) === flags) n += value;
    }
    return n;
  }

  #feed(chunk: Buffer): void {
    let data = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    for (;;) {
      if (this.#payloadLeft > 0) {
        const skip = Math.min(this.#payloadLeft, data.length);
        this.#payloadLeft -= skip;
        data = data.subarray(skip);
        if (this.#payloadLeft > 0) break;
      }
      if (data.length < HEADER_SIZE) break;
      const header = decodeHeader(data, 0, { version: 0, type: 0, flags: 0, streamId: 0, length: 0 });
      data = data.subarray(HEADER_SIZE);
      if (header.type === FrameType.data) this.#payloadLeft = header.length;
      const key = `${header.type}:${header.flags}`;
      this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
    }
    this.#pending = Buffer.from(data);
  }
}
