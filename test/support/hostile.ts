/**
 * Tools for hostile-peer tests: a raw peer that parses what muxwire sends incrementally (so floods of
 * hundreds of thousands of frames stay linear), can stop reading, and floods with its own backpressure; and a
 * bystander session pair that keeps an echo going in the same process, to show other sessions unaffected.
 */
import type net from 'node:net';
import { Flag, FrameType, HEADER_SIZE, decodeHeader } from '../../src/core/frame.js';
import { type Session, type SessionOptions, multiplexedServer } from '../../src/index.js';
import { frame, pseudoRandomBytes, sessionPair, tcpPair } from '../helpers.js';

export interface SeenFrame {
  type: number;
  flags: number;
  streamId: number;
  length: number;
}

/** A raw yamux peer on a socket, parsing muxwire's frames as they come. */
export class HostilePeer {
  /** The first `keep` frames received (headers only). */
  readonly frames: SeenFrame[] = [];
  /** Frames received, by `type:flags` (e.g. `2:2` for a Ping answer). */
  readonly counts = new Map<string, number>();
  bytesReceived = 0;
  ended = false;
  answerPings: boolean;
  private pending = Buffer.alloc(0);
  private payloadLeft = 0;

  constructor(
    readonly socket: net.Socket,
    options: { answerPings?: boolean; keep?: number } = {},
  ) {
    this.answerPings = options.answerPings ?? true;
    const keep = options.keep ?? 10_000;
    socket.on('data', (chunk: Buffer) => {
      this.bytesReceived += chunk.length;
      let data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
      for (;;) {
        if (this.payloadLeft > 0) {
          const skip = Math.min(this.payloadLeft, data.length);
          this.payloadLeft -= skip;
          data = data.subarray(skip);
          if (this.payloadLeft > 0) break;
        }
        if (data.length < HEADER_SIZE) break;
        const header = decodeHeader(data, 0, { version: 0, type: 0, flags: 0, streamId: 0, length: 0 });
        data = data.subarray(HEADER_SIZE);
        if (header.type === FrameType.data) this.payloadLeft = header.length;
        const key = `${header.type}:${header.flags}`;
        this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
        if (this.frames.length < keep) {
          this.frames.push({
            type: header.type,
            flags: header.flags,
            streamId: header.streamId,
            length: header.length,
          });
        }
        if (this.answerPings && header.type === FrameType.ping && (header.flags & Flag.syn) !== 0) {
          socket.write(frame(FrameType.ping, Flag.ack, 0, header.length));
        }
      }
      this.pending = Buffer.from(data);
    });
    socket.on('end', () => {
      this.ended = true;
    });
    socket.on('error', () => {});
  }

  /** Frames received with these flags set, of this type (any type if omitted). */
  count(flags: number, type?: number): number {
    let n = 0;
    for (const [key, value] of this.counts) {
      const [t, f] = key.split(':').map(Number) as [number, number];
      if ((f & flags) === flags && (type === undefined || t === type)) n += value;
    }
    return n;
  }

  /** The Go Away code received, if any. */
  get goAwayCode(): number | undefined {
    return this.frames.find((f) => f.type === FrameType.goAway)?.length;
  }

  /** Stops reading the socket: what muxwire sends piles up in the kernel, then in muxwire's own buffers. */
  stopReading(): void {
    this.socket.pause();
  }

  startReading(): void {
    this.socket.resume();
  }

  /** Writes, waiting for the socket to drain when it asks to. */
  async send(...buffers: Buffer[]): Promise<void> {
    if (this.socket.destroyed) return;
    if (!this.socket.write(Buffer.concat(buffers))) await drained(this.socket);
  }

  /** Sends `count` frames made by `make(i)`, in batches, with backpressure; stops early if the socket closes. */
  async flood(count: number, make: (i: number) => Buffer, batch = 1000): Promise<number> {
    let sent = 0;
    while (sent < count && !this.socket.destroyed && !this.socket.writableEnded) {
      const n = Math.min(batch, count - sent);
      const frames: Buffer[] = [];
      for (let i = 0; i < n; i++) frames.push(make(sent + i));
      sent += n;
      await this.send(...frames);
    }
    return sent;
  }
}

function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/** A muxwire server session on loopback TCP whose client end is a raw hostile peer. */
export async function hostilePair(
  options: SessionOptions = {},
  peer: { answerPings?: boolean } = {},
): Promise<{ session: Session; peer: HostilePeer; socket: net.Socket; close: () => void }> {
  const [raw, socket] = await tcpPair();
  const session = multiplexedServer(socket, { keepAliveInterval: 0, ...options });
  const hostile = new HostilePeer(raw, peer);
  return {
    session,
    peer: hostile,
    socket,
    close() {
      session.destroy();
      raw.destroy();
      socket.destroy();
    },
  };
}

export interface BystanderReport {
  roundTrips: number;
  bytes: number;
  /** The slowest round trip, in ms: the event loop and this session kept moving. */
  maxLatencyMs: number;
  /** Echoes that came back different from what was sent (must be 0). */
  corrupted: number;
  /** The bystander's session error, if it failed (must be undefined). */
  error: Error | undefined;
}

/**
 * A session pair in the same process that echoes 16 KiB messages, one after another, until stopped; each echo
 * is compared with what was sent.
 */
export async function startBystander(): Promise<{ stop(): Promise<BystanderReport>; session: Session }> {
  const pair = await sessionPair({ transport: 'tcp' });
  pair.server.on('channel', (channel) => {
    channel.on('error', () => {});
    channel.pipe(channel);
  });
  const channel = pair.client.dial();
  channel.on('error', () => {});
  let stopped = false;
  const stats: BystanderReport = { roundTrips: 0, bytes: 0, maxLatencyMs: 0, corrupted: 0, error: undefined };
  let buffered: Buffer[] = [];
  let bufferedLength = 0;
  let waiter: (() => void) | undefined;
  channel.on('data', (chunk: Buffer) => {
    buffered.push(chunk);
    bufferedLength += chunk.length;
    waiter?.();
  });
  channel.on('close', () => waiter?.());
  const loop = (async () => {
    for (let i = 1; !stopped; i++) {
      const message = pseudoRandomBytes(16 * 1024, i);
      const started = performance.now();
      channel.write(message);
      while (bufferedLength < message.length && !channel.destroyed) {
        await new Promise<void>((resolve) => {
          waiter = resolve;
        });
        waiter = undefined;
      }
      if (channel.destroyed) break;
      const all = Buffer.concat(buffered);
      const echo = all.subarray(0, message.length);
      buffered = [all.subarray(message.length)];
      bufferedLength -= message.length;
      if (!echo.equals(message)) stats.corrupted++;
      stats.roundTrips++;
      stats.bytes += message.length;
      stats.maxLatencyMs = Math.max(stats.maxLatencyMs, performance.now() - started);
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  return {
    session: pair.client,
    async stop() {
      stopped = true;
      await loop;
      stats.error = pair.client.closeError ?? pair.server.closeError ?? channel.failure;
      await pair.close();
      return stats;
    },
  };
}
