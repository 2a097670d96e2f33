/** Test utilities: in-memory and loopback TCP transports, raw frames, readers. */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Flag, FrameType, HEADER_SIZE, decodeHeader, headerBytes, type FrameHeader } from '../src/core/frame.js';
import { type Channel, type Session, type SessionOptions, multiplexedClient, multiplexedServer } from '../src/index.js';

/** One end of an in-memory pipe; `delayMs` delays every chunk (a crude link with latency). */
class PipeEnd extends Duplex {
  other!: PipeEnd;
  writes = 0;
  private random: number;
  /** `splitSeed` cuts every write into pieces of random sizes (deterministic for a seed). */
  constructor(
    private readonly delayMs: number,
    splitSeed = 0,
  ) {
    super({ allowHalfOpen: true });
    this.random = splitSeed >>> 0;
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writes++;
    const copy = Buffer.from(chunk); // the writer may reuse its buffer once called back
    const pieces: Buffer[] = [];
    if (this.random === 0) pieces.push(copy);
    else {
      for (let offset = 0; offset < copy.length;) {
        this.random = (Math.imul(this.random, 1103515245) + 12345) >>> 0;
        const size = 1 + ((this.random >>> 8) % 3000);
        pieces.push(copy.subarray(offset, offset + size));
        offset += size;
      }
    }
    for (const piece of pieces) {
      if (this.delayMs > 0) setTimeout(() => this.other.push(piece), this.delayMs);
      else this.other.push(piece);
    }
    callback();
  }
  override _final(callback: (error?: Error | null) => void): void {
    if (this.delayMs > 0) setTimeout(() => this.other.push(null), this.delayMs);
    else this.other.push(null);
    callback();
  }
  override _read(): void {}
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.other.destroyed) setImmediate(() => this.other.destroy());
    callback(error);
  }
}

/** Two connected in-memory duplex streams. */
export function memoryPipe(delayMs = 0, splitSeed = 0): [PipeEnd, PipeEnd] {
  const a = new PipeEnd(delayMs, splitSeed);
  const b = new PipeEnd(delayMs, splitSeed === 0 ? 0 : splitSeed + 1);
  a.other = b;
  b.other = a;
  return [a, b];
}

/** Two connected loopback TCP sockets. */
export async function tcpPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const accepted = once(server, 'connection');
  const client = net.connect(port, '127.0.0.1');
  await once(client, 'connect');
  const [serverSocket] = (await accepted) as [net.Socket];
  server.close();
  return [client, serverSocket];
}

/** A client and a server session over an in-memory pipe or loopback TCP. */
export async function sessionPair(
  options: { transport?: 'memory' | 'tcp'; client?: SessionOptions; server?: SessionOptions; delayMs?: number } = {},
): Promise<{ client: Session; server: Session; close(): Promise<void> }> {
  const [a, b] = options.transport === 'tcp' ? await tcpPair() : memoryPipe(options.delayMs ?? 0);
  const client = multiplexedClient(a, { keepAliveInterval: 0, ...options.client });
  const server = multiplexedServer(b, { keepAliveInterval: 0, ...options.server });
  return {
    client,
    server,
    async close() {
      client.destroy();
      server.destroy();
      a.destroy();
      b.destroy();
    },
  };
}

/** Reads a channel to its end; resolves to every byte, rejects on error. */
export function readAll(channel: Channel): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    channel.on('data', (chunk: Buffer) => chunks.push(chunk));
    channel.on('end', () => resolve(Buffer.concat(chunks)));
    channel.on('error', reject);
  });
}

/** Settles as `promise` does, or rejects naming `what` once `ms` passed (so a hang fails the test instead of stalling it). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Resolves once `predicate` is true, polling; rejects after `timeoutMs`. */
export async function until(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/**
 * Opens a WebSocket to `127.0.0.1:port` at `path` by hand and announces one binary message of `length` bytes
 * (a masked frame's header with a 64-bit length, and not one byte of the payload). Resolves to the close
 * code of the server's close frame (1009 when the message is over its limit), or rejects after `timeoutMs`
 * if none came. The server's earlier frames (its session's first ping) are skipped.
 */
export async function announceWebSocketMessage(
  port: number,
  path: string,
  length: number,
  timeoutMs = 5000,
): Promise<number> {
  const socket = net.connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    const key = randomBytes(16).toString('base64');
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
    await until(() => received.includes('\r\n\r\n'), timeoutMs, 'the upgrade response');
    if (!received.toString('latin1').startsWith('HTTP/1.1 101 ')) {
      throw new Error(`no upgrade: ${received.toString('latin1').split('\r\n')[0]}`);
    }
    const upgraded = received.indexOf('\r\n\r\n') + 4;
    const header = Buffer.alloc(14);
    header[0] = 0x82; // final, binary
    header[1] = 0x80 | 127; // masked, 64-bit length
    header.writeBigUInt64BE(BigInt(length), 2);
    randomBytes(4).copy(header, 10);
    socket.write(header);
    // The server's frames are unmasked: find the close frame (opcode 8) and read its status code.
    const closeCode = (): number | undefined => {
      for (let at = upgraded; at + 2 <= received.length;) {
        let size = received[at + 1]! & 0x7f;
        let start = at + 2;
        if (size === 126) [size, start] = [received.readUInt16BE(at + 2), at + 4];
        else if (size === 127) [size, start] = [Number(received.readBigUInt64BE(at + 2)), at + 10];
        if (start + size > received.length) return undefined;
        if ((received[at]! & 0x0f) === 0x8) return received.readUInt16BE(start);
        at = start + size;
      }
      return undefined;
    };
    await until(() => closeCode() !== undefined, timeoutMs, "the server's close frame");
    return closeCode()!;
  } finally {
    socket.destroy();
  }
}

/** Bytes of a whole frame: header plus payload. */
export function frame(type: number, flags: number, streamId: number, lengthOrPayload: number | Uint8Array): Buffer {
  if (typeof lengthOrPayload === 'number') return Buffer.from(headerBytes(type, flags, streamId, lengthOrPayload));
  return Buffer.concat([headerBytes(type, flags, streamId, lengthOrPayload.length), lengthOrPayload]);
}

export interface RawFrame extends FrameHeader {
  payload: Buffer;
}

/** Parses a byte string into frames (for checking what muxwire put on the wire). */
export function parseFrames(bytes: Buffer): RawFrame[] {
  const frames: RawFrame[] = [];
  let offset = 0;
  while (bytes.length - offset >= HEADER_SIZE) {
    const header = decodeHeader(bytes, offset, { version: 0, type: 0, flags: 0, streamId: 0, length: 0 });
    const payloadLength = header.type === FrameType.data ? header.length : 0;
    if (bytes.length - offset - HEADER_SIZE < payloadLength) break;
    frames.push({ ...header, payload: bytes.subarray(offset + HEADER_SIZE, offset + HEADER_SIZE + payloadLength) });
    offset += HEADER_SIZE + payloadLength;
  }
  return frames;
}

/**
 * A raw yamux peer on a socket: collects every frame muxwire sends, answers pings unless told not to.
 */
export class RawPeer {
  received = Buffer.alloc(0);
  ended = false;
  constructor(
    readonly socket: net.Socket | Duplex,
    answerPings = true,
  ) {
    socket.on('data', (chunk: Buffer) => {
      const before = parseFrames(this.received).length;
      this.received = Buffer.concat([this.received, chunk]);
      if (!answerPings) return;
      for (const f of parseFrames(this.received).slice(before)) {
        if (f.type === FrameType.ping && (f.flags & Flag.syn) !== 0) {
          socket.write(frame(FrameType.ping, Flag.ack, 0, f.length));
        }
      }
    });
    socket.on('end', () => {
      this.ended = true;
    });
    socket.on('error', () => {});
  }
  get frames(): RawFrame[] {
    return parseFrames(this.received);
  }
  send(...frames: Buffer[]): void {
    this.socket.write(Buffer.concat(frames));
  }
  /** The Go Away code muxwire sent, if any. */
  get goAwayCode(): number | undefined {
    return this.frames.find((f) => f.type === FrameType.goAway)?.length;
  }
}

/** Deterministic pseudo-random bytes. */
export function pseudoRandomBytes(length: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** Resolves once the channel has emitted 'close' (at once if it already has). */
export function whenClosed(channel: Channel): Promise<void> {
  if (channel.closed) return Promise.resolve();
  return new Promise((resolve) => channel.once('close', () => resolve()));
}

/**
 * A TCP port on 127.0.0.1 where a connection is refused, and stays refused: it lies below the kernel's
 * ephemeral range, where no listener on port 0 (every other test's) and no outgoing connection's own port
 * can land, and nothing answered on it when asked. A port found by listening on port 0 and closing is free
 * only at the time of asking: another test's listener may take it before the refusal is tried.
 */
export async function refusedPort(): Promise<number> {
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {
    // not Linux: the IANA range's start is below the usual ranges' starts
  }
  const from = Math.max(1024, low - 12000);
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = from + Math.floor(Math.random() * (low - from));
    const refused = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
    });
    if (refused) return port;
  }
  throw new Error(`no refusing port found below ${low} in 20 tries`);
}
