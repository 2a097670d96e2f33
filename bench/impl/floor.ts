// The one-connection floor: a yardstick written for this bench, not a library and not a baseline. It is the
// least any multiplexer over one connection with Node `Duplex` channels has to do, so its figures bound what
// such a multiplexer can reach on this machine with this harness:
// - frames are an 8-byte header (channel id, payload length; length 0 ends the channel's writing) and payload;
// - a channel is a Node `Duplex` (as muxwire's `Channel`), high-water mark 64 KiB (muxwire's default);
// - a write goes to the socket at once, its header corked with it (Node queues and writev's them together
//   while the socket is backed up); its callback runs when the socket takes it, or at the socket's 'drain';
// - none of what a usable multiplexer needs: no flow control (a reader never holds the sender back), no
//   fairness between channels, no open handshake or refusals, no keep-alive, no checks on the peer's frames
//   beyond their framing.
// The report leaves it out of "the best other multiplexer"; it runs only where a target is missed (see index.ts).
import type { Socket } from 'node:net';
import { Duplex, type DuplexOptions } from 'node:stream';
import type { AdapterHooks, Channel, Implementation } from './types.js';

const HEADER = 8;
const HIGH_WATER_MARK = 64 * 1024;

type Callback = (error?: Error | null) => void;

/** How a connection makes its channels (the plain floor's or a variant's class). */
type ChannelClass = new (connection: FloorConnection, id: number) => FloorChannel;

class FloorConnection {
  private readonly channels = new Map<number, FloorChannel>();
  private blocked = false;
  private waiting: Callback[] = [];
  // The frame being received: its header's bytes so far, then its channel and the payload still to come.
  private readonly header = Buffer.alloc(HEADER);
  private headerFill = 0;
  private frameChannel: FloorChannel | null = null;
  private remaining = 0;

  constructor(
    readonly socket: Socket,
    private readonly onChannel: ((ch: Channel) => void) | null,
    private readonly hooks: AdapterHooks,
    private readonly ChannelType: ChannelClass = FloorChannel,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('drain', () => {
      this.blocked = false;
      const waiting = this.waiting;
      this.waiting = [];
      for (const callback of waiting) callback(null);
    });
    socket.on('error', (err) => hooks.onError(err));
    socket.on('close', () => {
      for (const ch of this.channels.values()) ch.destroy();
      this.channels.clear();
    });
  }

  open(id: number): FloorChannel {
    const ch = new this.ChannelType(this, id);
    this.channels.set(id, ch);
    return ch;
  }

  forget(id: number): void {
    this.channels.delete(id);
  }

  /** Writes one frame (payload null: the channel's end). */
  send(id: number, payload: Buffer | null, callback: Callback): void {
    const header = Buffer.allocUnsafe(HEADER);
    header.writeUInt32BE(id, 0);
    header.writeUInt32BE(payload === null ? 0 : payload.length, 4);
    const socket = this.socket;
    socket.cork();
    const headerAccepted = socket.write(header);
    const accepted = payload === null ? headerAccepted : socket.write(payload);
    socket.uncork();
    if (accepted && !this.blocked) {
      callback(null);
    } else {
      this.blocked = true;
      this.waiting.push(callback);
    }
  }

  private receive(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.frameChannel !== null) {
        const take = Math.min(this.remaining, chunk.length - at);
        this.frameChannel.push(chunk.subarray(at, at + take));
        at += take;
        this.remaining -= take;
        if (this.remaining === 0) this.frameChannel = null;
        continue;
      }
      const take = Math.min(HEADER - this.headerFill, chunk.length - at);
      chunk.copy(this.header, this.headerFill, at, at + take);
      this.headerFill += take;
      at += take;
      if (this.headerFill < HEADER) return;
      this.headerFill = 0;
      const id = this.header.readUInt32BE(0);
      const length = this.header.readUInt32BE(4);
      const ch = this.channelFor(id);
      if (length === 0) {
        ch.push(null);
      } else {
        this.frameChannel = ch;
        this.remaining = length;
      }
    }
  }

  private channelFor(id: number): FloorChannel {
    let ch = this.channels.get(id);
    if (ch === undefined) {
      if (this.onChannel === null) {
        this.hooks.onError(new Error(`floor: frame for unknown channel ${id}`));
        ch = this.open(id); // its data is dropped with it
        ch.destroy();
        return ch;
      }
      ch = this.open(id);
      this.onChannel(ch);
    }
    return ch;
  }
}

class FloorChannel extends Duplex {
  constructor(
    protected readonly connection: FloorConnection,
    protected readonly id: number,
    options: DuplexOptions = { allowHalfOpen: true, highWaterMark: HIGH_WATER_MARK },
  ) {
    super(options);
    if (new.target === FloorChannel) this.once('close', () => connection.forget(id));
  }

  override _read(): void {
    // Data arrives by itself; there is no flow control to resume.
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: Callback): void {
    this.connection.send(this.id, chunk, callback);
  }

  override _final(callback: Callback): void {
    this.connection.send(this.id, null, callback);
  }
}

// Issue 16's experiment: what a subclass can leave out of a short-lived Duplex channel. Node's constructor makes
// both stream states whole (a channel of open-10k uses both: it writes, reads and ends), so what is left to a
// subclass is its own per-instance work and the options.

/** `_read`/`_write`/`_final`/`_destroy` on the prototype, no closure or listener of its own per channel. */
class LeanFloorChannel extends FloorChannel {
  constructor(connection: FloorConnection, id: number, options: DuplexOptions = LEAN_OPTIONS) {
    super(connection, id, options);
  }

  override _destroy(error: Error | null, callback: Callback): void {
    this.connection.forget(this.id);
    callback(error);
  }
}
// One options object for all channels (Node reads it and keeps none of it): no object per channel.
const LEAN_OPTIONS: DuplexOptions = { allowHalfOpen: true, highWaterMark: HIGH_WATER_MARK };
const DEFAULT_MARK_OPTIONS: DuplexOptions = { allowHalfOpen: true };

/** The lean channel with Node's default high-water marks (16 KiB) instead of muxwire's 64 KiB. */
class DefaultMarkFloorChannel extends LeanFloorChannel {
  constructor(connection: FloorConnection, id: number) {
    super(connection, id, DEFAULT_MARK_OPTIONS);
  }
}

function floorImplementation(name: string, describe: string, ChannelType: ChannelClass): Implementation {
  return {
    name,
    describe,
    transport: 'shared',
    server(socket, onChannel, _opts, hooks) {
      new FloorConnection(socket, onChannel, hooks, ChannelType);
      return {
        async close() {
          socket.end();
        },
      };
    },
    async client(dialer, _opts, hooks) {
      const socket = await dialer.connect();
      const connection = new FloorConnection(socket, null, hooks, ChannelType);
      let nextId = 1;
      return {
        open: () => connection.open(nextId++),
        async close() {
          socket.end();
        },
      };
    },
  };
}

const VARIANTS = {
  'floor-lean': ['the floor, lean channels: no per-channel listener or closure, cleanup in _destroy', LeanFloorChannel],
  'floor-hwm': ["floor-lean with Node's default high-water marks (16 KiB)", DefaultMarkFloorChannel],
} as const satisfies Record<string, readonly [string, ChannelClass]>;

/** One of issue 16's variants of the floor, on both sides of the run (bench/README.md, "The floor"). */
export function floorVariant(name: keyof typeof VARIANTS): Implementation {
  const [describe, ChannelType] = VARIANTS[name];
  return floorImplementation(name, `${describe} (a yardstick written for this bench)`, ChannelType);
}

export default floorImplementation(
  'floor',
  'one-connection floor (written for this bench: framing only, no flow control; not a library)',
  FloorChannel,
);
