/**
 * Just enough glue to run libp2p's TypeScript yamux (`@chainsafe/libp2p-yamux` 8.0.1 on `@libp2p/utils`
 * 7.4.1) over a plain Node socket in the test process, and to use its streams as Node duplexes.
 *
 * What it has to work around (details in /work/shared/docs/wire-yamux.md):
 * - the packages call `Promise.withResolvers`, which Node 20 lacks: it is provided before they are loaded
 *   (so they are loaded with a dynamic `import()`);
 * - a muxer runs over a libp2p "multiaddr connection": `AbstractMultiaddrConnection` is subclassed to feed it
 *   socket bytes (`onData`) and to write what it sends (`sendData`);
 * - a stream's `onDrain()` promise is made once and never renewed, so writers wait for the 'drain' event.
 */
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';

/** Provides `Promise.withResolvers` (ES2024) when the runtime lacks it (libp2p's packages call it). */
export function provideWithResolvers(): void {
  const promise = Promise as unknown as { withResolvers?: unknown };
  if (typeof promise.withResolvers === 'function') return;
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value<T>() {
      const out = {} as { promise: Promise<T>; resolve: (value: T) => void; reject: (reason?: unknown) => void };
      out.promise = new Promise<T>((resolve, reject) => {
        out.resolve = resolve;
        out.reject = reject;
      });
      return out;
    },
  });
}

/** What the tests use of a libp2p yamux stream (structural, so no libp2p types leak into the tests). */
export interface Libp2pStream {
  readonly streamId: number;
  status: string;
  readStatus: string;
  writeStatus: string;
  remoteWriteStatus: string;
  readonly readBufferLength: number;
  send(data: Uint8Array): boolean;
  close(): Promise<void>;
  abort(error: Error): void;
  pause(): void;
  resume(): void;
  addEventListener(type: string, listener: (event: Event) => void, options?: unknown): void;
  removeEventListener(type: string, listener: (event: Event) => void): void;
}

/** What the tests use of a libp2p yamux muxer. */
export interface Libp2pMuxer {
  status: string;
  /** The code of the Go Away the peer sent, once one came (the muxer's own record; undefined before). */
  readonly remoteGoAway: number | undefined;
  readonly streams: Libp2pStream[];
  createStream(): Promise<Libp2pStream>;
  ping(): Promise<number>;
  close(): Promise<void>;
  abort(error: Error): void;
  addEventListener(type: 'stream', listener: (event: CustomEvent<Libp2pStream>) => void): void;
}

/** Options passed to `yamux()`: the package's own config shape. */
export interface Libp2pYamuxConfig {
  enableKeepAlive?: boolean;
  keepAliveInterval?: number;
  maxInboundStreams?: number;
  maxOutboundStreams?: number;
  streamOptions?: { initialStreamWindowSize?: number; maxStreamWindowSize?: number; maxReadBufferLength?: number };
}

/** A libp2p muxer on a socket, with what went wrong on its side. */
export interface Libp2pEnd {
  muxer: Libp2pMuxer;
  /** Errors thrown while the muxer handled incoming frames (a protocol violation by muxwire lands here). */
  frameErrors: Error[];
  /** Messages the muxer and its streams logged as errors (resets and aborts included). */
  errorLog: string[];
}

interface Logger {
  (...args: unknown[]): void;
  enabled: boolean;
  trace(...args: unknown[]): void;
  error(...args: unknown[]): void;
  newScope(name: string): Logger;
}

/** A silent logger that keeps what is logged as an error. */
function recordingLogger(errors: string[]): Logger {
  const log = ((): void => {}) as Logger;
  log.enabled = false;
  log.trace = () => {};
  log.error = (format: unknown, ...args: unknown[]) => {
    errors.push([format, ...args.map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : String(a)))].join(' '));
  };
  log.newScope = () => log;
  return log;
}

interface ChunkList {
  byteLength: number;
  [Symbol.iterator](): Iterator<Uint8Array>;
}

async function load() {
  provideWithResolvers();
  const { AbstractMultiaddrConnection } = await import('@libp2p/utils');
  const { multiaddr } = await import('@multiformats/multiaddr');
  const { yamux } = await import('@chainsafe/libp2p-yamux');

  /** The libp2p connection over a Node socket. */
  class SocketConnection extends AbstractMultiaddrConnection {
    constructor(
      private readonly socket: Socket,
      direction: 'inbound' | 'outbound',
      log: Logger,
    ) {
      super({
        remoteAddr: multiaddr(`/ip4/127.0.0.1/tcp/${socket.remotePort ?? 0}`),
        direction,
        log: log as never,
        maxReadBufferLength: 256 * 1024 * 1024,
      });
      // libp2p writes a frame's header and payload separately: without this, Nagle delays small frames.
      socket.setNoDelay(true);
      socket.on('data', (chunk: Buffer) => this.onData(chunk));
      socket.on('drain', () => this.safeDispatchEvent('drain'));
      socket.on('end', () => this.onRemoteCloseWrite());
      socket.on('error', (error) => this.abort(error));
      socket.on('close', () => this.onTransportClosed());
    }

    sendData(data: ChunkList): { sentBytes: number; canSendMore: boolean } {
      let canSendMore = true;
      this.socket.cork();
      for (const chunk of data) canSendMore = this.socket.write(chunk);
      this.socket.uncork();
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
      await new Promise<void>((resolve) => this.socket.end(resolve));
    }
  }

  return { SocketConnection, yamux };
}

let loaded: ReturnType<typeof load> | undefined;

/**
 * Runs a libp2p yamux muxer on `socket`. `role` is the yamux role: the client dials odd stream ids (libp2p
 * derives it from the connection's direction: outbound = client).
 */
export async function libp2pYamux(
  socket: Socket,
  role: 'client' | 'server',
  config: Libp2pYamuxConfig = {},
): Promise<Libp2pEnd> {
  loaded ??= load();
  const { SocketConnection, yamux } = await loaded;
  const errorLog: string[] = [];
  const frameErrors: Error[] = [];
  const connection = new SocketConnection(
    socket,
    role === 'client' ? 'outbound' : 'inbound',
    recordingLogger(errorLog),
  );
  const muxer = yamux(config)().createStreamMuxer(connection) as unknown as Libp2pMuxer;
  // Record what the muxer throws on incoming frames (it then aborts itself with Go Away).
  const withHandler = muxer as unknown as { onData(data: unknown): void };
  const handle = withHandler.onData.bind(muxer);
  withHandler.onData = (data: unknown) => {
    try {
      handle(data);
    } catch (error) {
      frameErrors.push(error as Error);
      throw error;
    }
  };
  return { muxer, frameErrors, errorLog };
}

/**
 * A libp2p stream as a Node `Duplex`: `end()` half-closes (FIN), `destroy()` aborts (RST), 'end' on the peer's
 * FIN, 'error' when the stream is reset or aborted. Reading applies backpressure by pausing the libp2p stream,
 * which then withholds its window updates.
 */
export class Libp2pChannel extends Duplex {
  constructor(readonly stream: Libp2pStream) {
    super({ allowHalfOpen: true, readableHighWaterMark: 256 * 1024 });
    stream.addEventListener('message', (event) => {
      const data = (event as Event & { data: Uint8Array | Iterable<Uint8Array> }).data;
      let more = true;
      for (const chunk of data instanceof Uint8Array ? [data] : data) {
        more = this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      }
      // Pause after this frame is fully handled: libp2p sends a stream's ACK with the first window update
      // after its first Data frame, and a stream paused before that never sends the ACK.
      if (!more) {
        queueMicrotask(() => {
          if (stream.readStatus === 'readable' && this.readableLength >= this.readableHighWaterMark) stream.pause();
        });
      }
    });
    stream.addEventListener('end', () => this.push(null));
    stream.addEventListener('close', (event) => {
      const error = (event as Event & { error?: Error }).error;
      if (error !== undefined && !this.destroyed) this.destroy(error);
    });
  }

  override _read(): void {
    if (this.stream.readStatus === 'paused') this.stream.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const stream = this.stream;
    let accepted: boolean;
    try {
      accepted = stream.send(chunk);
    } catch (error) {
      callback(error as Error);
      return;
    }
    if (accepted) {
      callback();
      return;
    }
    const settle = (event: Event): void => {
      stream.removeEventListener('drain', settle);
      stream.removeEventListener('close', settle);
      const error = (event as Event & { error?: Error }).error;
      callback(event.type === 'close' ? (error ?? new Error('the stream closed while writing')) : null);
    };
    stream.addEventListener('drain', settle);
    stream.addEventListener('close', settle);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.stream.close().then(
      () => callback(),
      (error: unknown) => callback(error as Error),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const stream = this.stream;
    const finished = stream.writeStatus === 'closed' && stream.remoteWriteStatus === 'closed';
    if (stream.status === 'open' && (error !== null || !finished)) {
      try {
        stream.abort(error ?? new Error('channel destroyed'));
      } catch {
        // already gone
      }
    }
    callback(error);
  }
}
