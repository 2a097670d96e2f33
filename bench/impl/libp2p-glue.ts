// Minimal glue to run a libp2p stream muxer (@libp2p/utils 7.x AbstractStreamMuxer) over a plain Node
// socket, and to present each of its message streams as a Node Duplex.
//
// Facts this relies on (@libp2p/utils 7.4.1, @libp2p/interface 3.3.0, Node 20):
// - The packages call Promise.withResolvers (ES2024), which Node 20 lacks; the polyfill must be
//   installed before they are loaded, so adapters load them with a dynamic import after
//   installPromiseWithResolvers().
// - A muxer runs on a MultiaddrConnection; AbstractMultiaddrConnection is the base class: we feed it
//   socket bytes with onData(), it calls sendData() with a Uint8ArrayList to write.
// - The stream onDrain() promise is created once and never renewed (after the first drain it is
//   always resolved), so writers wait on the 'drain' event instead.
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { Channel, Implementation } from './types.js';

export function installPromiseWithResolvers(): void {
  const P = Promise as unknown as { withResolvers?: unknown };
  if (typeof P.withResolvers === 'function') return;
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers<T>() {
      let resolve!: (value: T | PromiseLike<T>) => void;
      let reject!: (reason?: unknown) => void;
      const promise = new Promise<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}

// A disabled logger that satisfies @libp2p/interface's Logger (callable, with error/trace/newScope).
export interface SilentLogger {
  (formatter: unknown, ...args: unknown[]): void;
  error(formatter: unknown, ...args: unknown[]): void;
  trace(formatter: unknown, ...args: unknown[]): void;
  enabled: boolean;
  newScope(name: string): SilentLogger;
}

export function silentLogger(): SilentLogger {
  const log = (() => {}) as unknown as SilentLogger;
  log.error = () => {};
  log.trace = () => {};
  log.enabled = false;
  log.newScope = () => log;
  return log;
}

// Structural view of the parts of a libp2p message stream the Duplex wrapper uses.
interface MessageEventLike extends Event {
  data: Uint8Array | Iterable<Uint8Array>;
}
interface CloseEventLike extends Event {
  error?: Error;
}
export interface Libp2pStream {
  readStatus: string;
  writeStatus: string;
  send(data: Uint8Array): boolean;
  close(options?: unknown): Promise<void>;
  abort(err: Error): void;
  pause(): void;
  resume(): void;
  addEventListener(type: string, listener: (evt: Event) => void, options?: unknown): void;
  removeEventListener(type: string, listener: (evt: Event) => void): void;
}

function toBuffer(u8: Uint8Array): Buffer {
  return Buffer.isBuffer(u8) ? u8 : Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

/** Measured heap cost of one Libp2pStreamDuplex and its listeners (Node 20, 100,000 instances). */
export const GLUE_BYTES_PER_CHANNEL = 1100;

/** Presents a libp2p stream (possibly still being created) as a Node Duplex. */
export class Libp2pStreamDuplex extends Duplex {
  private stream: Libp2pStream | undefined;
  private readonly ready: Promise<Libp2pStream>;

  constructor(stream: Libp2pStream | Promise<Libp2pStream>) {
    super({ allowHalfOpen: true });
    this.ready = Promise.resolve(stream);
    this.ready.then(
      (s) => this.attach(s),
      (err: unknown) => this.destroy(err as Error),
    );
  }

  private attach(s: Libp2pStream): void {
    if (this.destroyed) {
      s.abort(new Error('destroyed before open'));
      return;
    }
    this.stream = s;
    s.addEventListener('message', (evt) => {
      const data = (evt as MessageEventLike).data;
      let more = true;
      if (data instanceof Uint8Array) more = this.push(toBuffer(data));
      else for (const chunk of data) more = this.push(toBuffer(chunk));
      if (!more && s.readStatus === 'readable') s.pause();
    });
    s.addEventListener('end', () => this.push(null));
    s.addEventListener('close', (evt) => {
      const err = (evt as CloseEventLike).error;
      if (err != null && !this.destroyed) this.destroy(err);
    });
  }

  override _read(): void {
    const s = this.stream;
    if (s?.readStatus === 'paused') s.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const s = this.stream;
    if (!s) {
      this.ready.then(
        () => this._write(chunk, _enc, cb),
        (err: unknown) => cb(err as Error),
      );
      return;
    }
    let ok: boolean;
    try {
      ok = s.send(chunk);
    } catch (err) {
      cb(err as Error);
      return;
    }
    if (ok) {
      cb();
      return;
    }
    // Wait for 'drain' (not onDrain(), see the header comment) or for the stream to close.
    const done = (evt: Event): void => {
      s.removeEventListener('drain', done);
      s.removeEventListener('close', done);
      const err = (evt as CloseEventLike).error;
      cb(evt.type === 'close' ? (err ?? new Error('stream closed while writing')) : null);
    };
    s.addEventListener('drain', done);
    s.addEventListener('close', done);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.ready.then(
      (s) =>
        s.close().then(
          () => cb(),
          (err: unknown) => cb(err as Error),
        ),
      (err: unknown) => cb(err as Error),
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const s = this.stream;
    if (s && s.writeStatus !== 'closed') {
      try {
        s.abort(err ?? new Error('channel destroyed'));
      } catch {
        // already gone
      }
    }
    cb(err);
  }
}

export function asChannel(stream: Libp2pStream | Promise<Libp2pStream>): Channel {
  return new Libp2pStreamDuplex(stream);
}

export interface ListLike {
  byteLength: number;
  [Symbol.iterator](): Iterator<Uint8Array>;
}

/**
 * Builds a MultiaddrConnection class over a Node socket. The base class comes from the dynamically
 * loaded @libp2p/utils (so the polyfill is in place first).
 */
export async function socketConnectionClass() {
  installPromiseWithResolvers();
  const utils = await import('@libp2p/utils');
  const { multiaddr } = await import('@multiformats/multiaddr');

  class SocketMultiaddrConnection extends utils.AbstractMultiaddrConnection {
    private readonly socket: Socket;

    constructor(socket: Socket, direction: 'inbound' | 'outbound', maxReadBufferLength: number) {
      super({
        remoteAddr: multiaddr(`/ip4/127.0.0.1/tcp/${socket.remotePort ?? 0}`),
        direction,
        log: silentLogger() as never,
        maxReadBufferLength,
      });
      this.socket = socket;
      socket.on('data', (buf: Buffer) => this.onData(buf));
      socket.on('drain', () => this.safeDispatchEvent('drain'));
      socket.on('end', () => this.onRemoteCloseWrite());
      socket.on('error', (err) => this.abort(err));
      socket.on('close', () => this.onTransportClosed());
    }

    sendData(data: ListLike) {
      const socket = this.socket;
      let canSendMore = true;
      let n = 0;
      for (const _ of data) if (++n > 1) break;
      if (n > 1) socket.cork();
      for (const chunk of data) canSendMore = socket.write(chunk);
      if (n > 1) socket.uncork();
      return { sentBytes: data.byteLength, canSendMore };
    }

    sendReset(): void {
      this.socket.resetAndDestroy();
    }

    sendPause(): void {
      this.socket.pause();
    }

    sendResume(): void {
      this.socket.resume();
    }

    async sendClose(): Promise<void> {
      await new Promise<void>((resolve) => this.socket.end(() => resolve()));
    }
  }

  return SocketMultiaddrConnection;
}

/** Objects kept by {@link keepHeap} for the life of the process. */
let kept: unknown[] = [];

/**
 * Grows the retained heap by about `mib` MiB of small long-lived objects (each round of 10,000 adds about 2 MiB),
 * a stand-in for a libp2p node's own (its peer store, its protocols). A bench process's bare heap is about
 * 8 MiB, and V8 sizes its old-generation limit from it: in bulk transfers that limit makes V8 repeat full
 * collections for the muxer that allocates least (docs/benchmarks.md, "libp2p muxers").
 */
export function keepHeap(mib: number): void {
  const target = process.memoryUsage().heapUsed + mib * 1024 * 1024;
  for (let round = 0; round < mib && process.memoryUsage().heapUsed < target; round++) {
    for (let i = 0; i < 10_000; i++) kept.push({ id: i, name: `peer-${round}-${i}`, addrs: [round, i] });
  }
}

/** Lets the objects of {@link keepHeap} go. */
export function releaseHeap(): void {
  kept = [];
}

/** `MUXWIRE_BENCH_LIBP2P_HEAP=MB`: each bench process running a libp2p muxer first keeps about MB MiB (once). */
let heapKept = false;
function keepHeapOnce(): void {
  if (heapKept) return;
  heapKept = true;
  const mib = Number(process.env.MUXWIRE_BENCH_LIBP2P_HEAP ?? '0');
  if (mib > 0 && mib <= 1024) keepHeap(mib);
}

/** What the adapters use of a libp2p stream muxer. */
interface MuxerLike {
  createStream(): Promise<Libp2pStream>;
  addEventListener(type: 'stream', listener: (evt: CustomEvent<Libp2pStream>) => void): void;
  close(): Promise<void>;
}

/** A libp2p muxer package as the bench uses it: a factory of muxer factories, by channel count. */
export type MuxerFactoryLoader = () => Promise<
  (maxChannels: number) => { createStreamMuxer(connection: never): unknown }
>;

/**
 * A bench implementation of a libp2p stream muxer over a Node socket (the glue above): server and client
 * differ only in the muxer package, its options and the socket connection's read buffer limit.
 */
export function libp2pImplementation(
  info: { name: string; describe: string; readBuffer: number },
  loadFactory: MuxerFactoryLoader,
): Implementation {
  // Loaded once per process, after the Promise.withResolvers polyfill (socketConnectionClass installs it).
  const loaded = socketConnectionClass().then(async (Conn) => ({ Conn, factory: await loadFactory() }));
  const muxerOn = (
    { Conn, factory }: Awaited<typeof loaded>,
    socket: Socket,
    direction: 'inbound' | 'outbound',
    maxChannels: number,
  ): MuxerLike => {
    const conn = new Conn(socket, direction, info.readBuffer);
    return factory(maxChannels).createStreamMuxer(conn as never) as MuxerLike;
  };
  return {
    name: info.name,
    describe: info.describe,
    transport: 'shared',
    glueBytesPerChannel: GLUE_BYTES_PER_CHANNEL,
    // The server listens once the libraries are loaded, as muxwire's does: no loading inside a measured part.
    ready: () =>
      loaded.then(
        () => {},
        () => {},
      ),
    server(socket, onChannel, opts, hooks) {
      keepHeapOnce();
      let muxer: MuxerLike | undefined;
      loaded.then(
        (lib) => {
          muxer = muxerOn(lib, socket, 'inbound', opts.maxChannels);
          muxer.addEventListener('stream', (evt) => onChannel(asChannel(evt.detail)));
        },
        (err: unknown) => hooks.onError(err as Error),
      );
      return { close: async () => muxer?.close() };
    },
    async client(dialer, opts) {
      keepHeapOnce();
      const lib = await loaded;
      const muxer = muxerOn(lib, await dialer.connect(), 'outbound', opts.maxChannels);
      return { open: (): Channel => asChannel(muxer.createStream()), close: () => muxer.close() };
    },
  };
}
