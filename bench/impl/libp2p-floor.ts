// A yardstick for the libp2p muxers, not a muxer anyone should use: the least a libp2p stream muxer built on
// libp2p's AbstractStream / AbstractStreamMuxer (@libp2p/utils 7) has to do. Each send() becomes one frame
// (a 9-byte header: kind, stream id, length) handed to the connection with the payload, not copied; frames
// are parsed from the connection's bytes and handed to the stream's onData(). It has no flow control, no
// windows, no keep-alive, no Go Away and no checks beyond the framing, so what it costs is, nearly all,
// libp2p's own per-stream and per-message work (AbstractStream, AbstractStreamMuxer, the connection class).
// bench/impl/libp2p-cpu.ts measures muxwire/libp2p and @chainsafe/libp2p-yamux against it.
//
// `nullMuxerFactory()` is a second yardstick, lower still: no connection at all. The two muxers of a pair find
// each other in memory, and a stream's send() reaches its peer stream's onData() from a microtask, its close
// the peer's onRemoteCloseWrite(). What it costs is libp2p's stream work and the workload's own, nothing else:
// a muxer on AbstractStream cannot cost less than it (per stream opened, per message).
//
// The classes come from the dynamically loaded @libp2p/utils (after the Promise.withResolvers polyfill),
// hence the factory functions.

const OPEN = 0;
const DATA = 1;
const FIN = 2;
const RST = 3;
const HEADER = 9;

function header(kind: number, id: number, length: number): Uint8Array {
  const h = new Uint8Array(HEADER);
  const view = new DataView(h.buffer);
  h[0] = kind;
  view.setUint32(1, id);
  view.setUint32(5, length);
  return h;
}

/** What the bench needs of a muxer factory: `createStreamMuxer(connection)`. */
export interface FloorFactory {
  protocol: string;
  createStreamMuxer(connection: never): unknown;
}

/** Loads @libp2p/utils and uint8arraylist (the polyfill must be installed) and returns the floor's factory. */
export async function floorMuxerFactory(): Promise<() => FloorFactory> {
  const utils = await import('@libp2p/utils');
  const { Uint8ArrayList } = await import('uint8arraylist');
  type Init = ConstructorParameters<typeof utils.AbstractStream>[0];
  /** The byte list of the uint8arraylist version @libp2p/utils itself uses. */
  type ByteList = Parameters<InstanceType<typeof utils.AbstractStream>['sendData']>[0];

  class FloorStream extends utils.AbstractStream {
    constructor(
      private readonly muxer: FloorMuxer,
      readonly streamId: number,
      init: Init,
    ) {
      super(init);
    }

    sendData(data: ByteList) {
      this.muxer.send(new Uint8ArrayList(header(DATA, this.streamId, data.byteLength), data as never) as never);
      return { sentBytes: data.byteLength, canSendMore: true };
    }

    sendReset(): void {
      this.muxer.send(header(RST, this.streamId, 0));
    }

    async sendCloseWrite(): Promise<void> {
      this.muxer.send(header(FIN, this.streamId, 0));
    }

    async sendCloseRead(): Promise<void> {}

    sendPause(): void {}

    sendResume(): void {}
  }

  class FloorMuxer extends utils.AbstractStreamMuxer<FloorStream> {
    private nextId: number;
    private readonly byId = new Map<number, FloorStream>();
    private readonly buffer = new Uint8ArrayList();

    constructor(connection: ConstructorParameters<typeof utils.AbstractStreamMuxer>[0]) {
      super(connection, { protocol: '/floor/1.0.0', name: 'floor' });
      this.nextId = connection.direction === 'outbound' ? 1 : 2;
    }

    private track(id: number, direction: 'inbound' | 'outbound'): FloorStream {
      const stream = new FloorStream(this, id, {
        id: String(id),
        direction,
        log: this.log,
        maxReadBufferLength: 64 * 1024 * 1024,
      });
      this.byId.set(id, stream);
      stream.addEventListener('close', () => this.byId.delete(id), { once: true });
      return stream;
    }

    onCreateStream(): FloorStream {
      const id = this.nextId;
      this.nextId += 2;
      this.send(header(OPEN, id, 0));
      return this.track(id, 'outbound');
    }

    onData(data: Uint8Array | ByteList): void {
      const buffer = this.buffer;
      buffer.append(data as never);
      while (buffer.byteLength >= HEADER) {
        const kind = buffer.get(0);
        const id = buffer.getUint32(1);
        const length = buffer.getUint32(5);
        if (buffer.byteLength < HEADER + length) return;
        const payload = length > 0 ? (buffer.sublist(HEADER, HEADER + length) as unknown as ByteList) : undefined;
        buffer.consume(HEADER + length);
        if (kind === OPEN) {
          this.onRemoteStream(this.track(id, 'inbound'));
          continue;
        }
        const stream = this.byId.get(id);
        if (stream === undefined) continue;
        if (kind === DATA && payload !== undefined) stream.onData(payload);
        else if (kind === FIN) stream.onRemoteCloseWrite();
        else if (kind === RST) stream.onRemoteReset();
      }
    }
  }

  return () => ({ protocol: '/floor/1.0.0', createStreamMuxer: (connection: never) => new FloorMuxer(connection) });
}

/**
 * Loads @libp2p/utils (the polyfill must be installed) and returns the null muxer's factory: each two muxers
 * made in a row are a pair (the bench's child makes the client's, then the server's), and ignore their
 * connection.
 */
export async function nullMuxerFactory(): Promise<() => FloorFactory> {
  const utils = await import('@libp2p/utils');
  type ByteList = Parameters<InstanceType<typeof utils.AbstractStream>['sendData']>[0];

  class NullStream extends utils.AbstractStream {
    peer: NullStream | undefined;

    sendData(data: ByteList) {
      const peer = this.peer!;
      queueMicrotask(() => peer.onData(data));
      return { sentBytes: data.byteLength, canSendMore: true };
    }

    sendReset(): void {
      const peer = this.peer!;
      queueMicrotask(() => peer.onRemoteReset());
    }

    async sendCloseWrite(): Promise<void> {
      const peer = this.peer!;
      queueMicrotask(() => peer.onRemoteCloseWrite());
    }

    async sendCloseRead(): Promise<void> {}

    sendPause(): void {}

    sendResume(): void {}
  }

  class NullMuxer extends utils.AbstractStreamMuxer<NullStream> {
    peer: NullMuxer | undefined;
    private nextId = 1;

    constructor(connection: ConstructorParameters<typeof utils.AbstractStreamMuxer>[0]) {
      super(connection, { protocol: '/null/1.0.0', name: 'null' });
    }

    private make(id: number, direction: 'inbound' | 'outbound'): NullStream {
      return new NullStream({ id: String(id), direction, log: this.log, maxReadBufferLength: 64 * 1024 * 1024 });
    }

    onCreateStream(): NullStream {
      const id = this.nextId++;
      const local = this.make(id, 'outbound');
      const remote = this.make(id, 'inbound');
      local.peer = remote;
      remote.peer = local;
      this.peer!.onRemoteStream(remote);
      return local;
    }

    onData(): void {}
  }

  let waiting: NullMuxer | undefined;
  return () => ({
    protocol: '/null/1.0.0',
    createStreamMuxer: (connection: never) => {
      const muxer = new NullMuxer(connection);
      if (waiting === undefined) {
        waiting = muxer;
      } else {
        muxer.peer = waiting;
        waiting.peer = muxer;
        waiting = undefined;
      }
      return muxer;
    },
  });
}
