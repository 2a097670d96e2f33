/**
 * A fault-injecting TCP proxy for tests, in user space and in-process (kernel netem is not available):
 * latency each way, a bandwidth cap, writes split and delayed at random (seeded) boundaries, stalls (one or
 * both directions), a cut of the connection at a chosen byte, and byte rewriting for fuzzing.
 *
 * Memory is bounded: each direction holds at most `highWaterMark` bytes (plus one socket read) waiting for
 * their delivery time; beyond that the proxy stops reading its source, so TCP backpressure reaches the
 * sender instead of the proxy buffering without limit. It listens on loopback only.
 *
 * ```ts
 * const proxy = await FaultProxy.start({ target: { port }, seed: 7, both: { latencyMs: [10, 30] } });
 * const socket = net.connect(proxy.port, '127.0.0.1');
 * proxy.stall('downstream'); proxy.resume(); proxy.cut();
 * await proxy.close();
 * ```
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { Rng } from './random.js';

/** `upstream`: from the client that connected to the proxy towards the target; `downstream`: back. */
export type Direction = 'upstream' | 'downstream';
export type Directions = Direction | 'both';

/** How a cut ends the connection: `reset` sends RST both ways (data in flight is lost), `end` sends FIN. */
export type CutMode = 'reset' | 'end';

/** The faults of one direction. Every field can be changed while connections run (`configure`). */
export interface LinkFaults {
  /** One-way delay in ms, fixed or drawn per piece from [min, max] (order is kept: a piece never overtakes). */
  latencyMs?: number | readonly [number, number];
  /** Bandwidth cap in bytes per second (0 or undefined: unlimited). */
  bytesPerSecond?: number;
  /** Cut every write into pieces of random size in [minPiece, maxPiece], each delayed by up to `maxDelayMs`. */
  split?: { minPiece?: number; maxPiece: number; maxDelayMs?: number };
  /** After forwarding this many bytes in this direction, cut the connection (see `cutMode`). */
  cutAtByte?: number;
  /** How a cut at `cutAtByte` ends the connection (default: the proxy's `cutMode`). */
  cutMode?: CutMode;
  /** Rewrites bytes as they arrive: gets each chunk and the stream offset of its first byte. */
  rewrite?: (chunk: Buffer, offset: number) => Uint8Array;
}

export interface FaultProxyOptions {
  /** Where to forward: a loopback port. */
  target: { port: number; host?: string };
  /** The address to listen on: '127.0.0.1' (default) or '::1'. */
  host?: '127.0.0.1' | '::1';
  /** Seed of every random choice (splits, latency jitter). */
  seed?: number;
  /** Faults applied to both directions unless a direction overrides them. */
  both?: LinkFaults;
  upstream?: LinkFaults;
  downstream?: LinkFaults;
  /** Bytes a direction may hold before it stops reading its source (default 256 KiB). */
  highWaterMark?: number;
  /** How cuts end the connection by default (default `reset`). */
  cutMode?: CutMode;
}

/** Counters of one direction of one connection. */
export interface LinkStats {
  /** Bytes read from the source. */
  received: number;
  /** Bytes handed to the destination socket. */
  forwarded: number;
  /** Bytes waiting now. */
  queued: number;
  /** Most bytes ever waiting at once (checks the memory bound). */
  maxQueued: number;
  /** Times the source was paused because the queue was full. */
  pauses: number;
  /** Writes to the destination (one per piece). */
  pieces: number;
  /** The largest of them, in bytes. */
  maxPiece: number;
}

/** Reported by the `cut` event. */
export interface CutInfo {
  connection: ProxyConnection;
  /** Why: `byte` (a `cutAtByte` was reached) or `manual` (`cut()` was called). */
  reason: 'byte' | 'manual';
  direction: Direction | undefined;
  mode: CutMode;
  /** `performance.now()` when the sockets were cut. */
  at: number;
}

interface Piece {
  data: Buffer;
  due: number;
}

const DEFAULT_HIGH_WATER_MARK = 256 * 1024;

/** One direction of one proxied connection. */
class Link {
  readonly stats: LinkStats = { received: 0, forwarded: 0, queued: 0, maxQueued: 0, pauses: 0, pieces: 0, maxPiece: 0 };
  stalled = false;
  private readonly queue: Piece[] = [];
  private head = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private immediate: ReturnType<typeof setImmediate> | undefined;
  private waitingDrain = false;
  private pausedSource = false;
  private sourceEnded = false;
  private cutPending = false;
  private cutWriteIssued = false;
  private closed = false;
  /** When the modelled link is free to serialize the next piece (bandwidth cap). */
  private linkFreeAt = 0;
  private lastDue = 0;
  private accepted = 0;

  constructor(
    private readonly connection: ProxyConnection,
    readonly direction: Direction,
    private readonly source: net.Socket,
    private readonly destination: net.Socket,
    private readonly faults: () => LinkFaults,
    private readonly rng: Rng,
    private readonly highWaterMark: number,
  ) {
    source.on('data', (chunk: Buffer) => this.onData(chunk));
    source.on('end', () => {
      this.sourceEnded = true;
      this.pump();
    });
    destination.on('drain', () => {
      if (!this.waitingDrain) return;
      this.waitingDrain = false;
      this.pump();
    });
  }

  private onData(chunk: Buffer): void {
    if (this.closed || this.cutPending) return;
    const faults = this.faults();
    const offset = this.stats.received;
    this.stats.received += chunk.length;
    let data = chunk;
    if (faults.rewrite !== undefined) {
      const rewritten = faults.rewrite(chunk, offset);
      data = Buffer.isBuffer(rewritten)
        ? rewritten
        : Buffer.from(rewritten.buffer, rewritten.byteOffset, rewritten.length);
    }
    if (faults.cutAtByte !== undefined) {
      const room = Math.max(0, faults.cutAtByte - this.accepted);
      if (data.length >= room) {
        data = data.subarray(0, room);
        this.cutPending = true;
      }
    }
    this.accepted += data.length;
    this.enqueue(data, faults);
    if (this.stats.queued >= this.highWaterMark && !this.pausedSource) {
      this.pausedSource = true;
      this.stats.pauses++;
      this.source.pause();
    }
    this.pump();
  }

  private enqueue(data: Buffer, faults: LinkFaults): void {
    if (data.length === 0) return;
    const now = performance.now();
    const split = faults.split;
    let offset = 0;
    while (offset < data.length) {
      let size = data.length - offset;
      let extraDelay = 0;
      if (split !== undefined) {
        const min = Math.max(1, split.minPiece ?? 1);
        size = Math.min(size, this.rng.int(min, Math.max(min, split.maxPiece)));
        if (split.maxDelayMs !== undefined && split.maxDelayMs > 0) extraDelay = this.rng.float() * split.maxDelayMs;
      }
      const piece = data.subarray(offset, offset + size);
      offset += size;
      let ready = now;
      const rate = faults.bytesPerSecond ?? 0;
      if (rate > 0) {
        const start = Math.max(now, this.linkFreeAt);
        this.linkFreeAt = start + (piece.length * 1000) / rate;
        ready = this.linkFreeAt;
      }
      const due = Math.max(ready + this.latency(faults) + extraDelay, this.lastDue);
      this.lastDue = due;
      this.queue.push({ data: piece, due });
      this.stats.queued += piece.length;
    }
    if (this.stats.queued > this.stats.maxQueued) this.stats.maxQueued = this.stats.queued;
  }

  private latency(faults: LinkFaults): number {
    const latency = faults.latencyMs;
    if (latency === undefined) return 0;
    if (typeof latency === 'number') return latency;
    return latency[0] + this.rng.float() * (latency[1] - latency[0]);
  }

  /** Delivers what is due; arms one timer for the next piece. */
  pump(): void {
    if (this.closed) return;
    const split = this.faults().split !== undefined;
    let wrote = false;
    while (this.head < this.queue.length && !this.stalled && !this.waitingDrain) {
      const piece = this.queue[this.head]!;
      const wait = piece.due - performance.now();
      if (wait > 0.5) {
        this.arm(wait);
        return;
      }
      // With splitting on, one piece per turn of the event loop, so the receiver really reads them apart.
      if (split && wrote) {
        this.immediate ??= setImmediate(() => {
          this.immediate = undefined;
          this.pump();
        });
        return;
      }
      this.queue[this.head++] = undefined as unknown as Piece;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      this.stats.queued -= piece.data.length;
      this.stats.forwarded += piece.data.length;
      this.stats.pieces++;
      if (piece.data.length > this.stats.maxPiece) this.stats.maxPiece = piece.data.length;
      wrote = true;
      const last = this.cutPending && this.head === this.queue.length;
      if (last) this.cutWriteIssued = true;
      const accepted = this.destination.write(
        piece.data,
        last ? () => this.connection.cutNow('byte', this.direction) : undefined,
      );
      if (!accepted) this.waitingDrain = true;
      if (this.pausedSource && this.stats.queued < this.highWaterMark / 2) {
        this.pausedSource = false;
        this.source.resume();
      }
    }
    if (this.head < this.queue.length || this.stalled) return;
    if (this.cutPending && !this.cutWriteIssued) {
      // nothing was left to write when the cut point arrived (or it is 0)
      this.connection.cutNow('byte', this.direction);
      return;
    }
    if (this.sourceEnded && !this.cutPending && !this.destination.writableEnded) this.destination.end();
  }

  private arm(wait: number): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.pump();
      },
      Math.max(1, Math.ceil(wait)),
    );
  }

  /** Starts or stops forwarding (queued bytes stay, up to the high-water mark). */
  setStalled(stalled: boolean): void {
    this.stalled = stalled;
    if (stalled) {
      this.clearTimers();
    } else {
      this.pump();
    }
  }

  private clearTimers(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }

  /** Drops everything queued and stops for good. */
  close(): void {
    this.closed = true;
    this.clearTimers();
    this.queue.length = 0;
    this.head = 0;
    this.stats.queued = 0;
  }
}

/** One proxied connection: the client's socket, the socket to the target, and a link each way. */
export class ProxyConnection {
  readonly upstream: Link;
  readonly downstream: Link;
  private done = false;
  private cut = false;

  constructor(
    private readonly proxy: FaultProxy,
    readonly client: net.Socket,
    readonly server: net.Socket,
    rng: Rng,
    highWaterMark: number,
  ) {
    this.upstream = new Link(
      this,
      'upstream',
      client,
      server,
      () => proxy.faultsOf('upstream'),
      rng.fork(),
      highWaterMark,
    );
    this.downstream = new Link(
      this,
      'downstream',
      server,
      client,
      () => proxy.faultsOf('downstream'),
      rng.fork(),
      highWaterMark,
    );
    for (const socket of [client, server]) {
      socket.setNoDelay(true);
      socket.on('error', () => {});
      socket.on('close', (hadError) => this.onSocketClose(socket, hadError));
    }
  }

  link(direction: Direction): Link {
    return direction === 'upstream' ? this.upstream : this.downstream;
  }

  private onSocketClose(socket: net.Socket, hadError: boolean): void {
    const other = socket === this.client ? this.server : this.client;
    // The link towards a closed socket can deliver nothing more.
    (socket === this.client ? this.downstream : this.upstream).close();
    if (hadError && !other.destroyed) destroySocket(other, 'reset');
    if (this.client.destroyed && this.server.destroyed) this.finish();
  }

  /** Cuts this connection now. */
  cutNow(reason: 'byte' | 'manual', direction?: Direction, mode?: CutMode): void {
    if (this.done || this.cut) return;
    this.cut = true;
    const cutMode =
      mode ?? (direction !== undefined ? this.proxy.faultsOf(direction).cutMode : undefined) ?? this.proxy.cutMode;
    this.upstream.close();
    this.downstream.close();
    for (const socket of [this.client, this.server]) {
      socket.resume(); // what still arrives is discarded
      destroySocket(socket, cutMode);
    }
    this.proxy.emit('cut', {
      connection: this,
      reason,
      direction,
      mode: cutMode,
      at: performance.now(),
    } satisfies CutInfo);
  }

  /** Closes both sockets at once (test teardown). */
  destroy(): void {
    this.upstream.close();
    this.downstream.close();
    this.client.destroy();
    this.server.destroy();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.upstream.close();
    this.downstream.close();
    this.proxy.forget(this);
  }
}

function destroySocket(socket: net.Socket, mode: CutMode): void {
  if (socket.destroyed) return;
  if (mode === 'end') {
    socket.end();
    // the FIN is out; whatever the peer does next, the socket goes once it answered or after a grace period
    socket.once('finish', () => socket.destroy());
    return;
  }
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

/**
 * The proxy. Events: `connection` (a `ProxyConnection` is up, both sockets connected) and `cut` (`CutInfo`).
 */
export class FaultProxy extends EventEmitter {
  readonly connections = new Set<ProxyConnection>();
  cutMode: CutMode;
  private readonly server: net.Server;
  private readonly rng: Rng;
  private readonly options: FaultProxyOptions;
  private readonly faults: Record<Direction, LinkFaults>;
  private readonly stalledDirections = new Set<Direction>();
  private readonly pendingSockets = new Set<net.Socket>();
  private portNumber = 0;

  private constructor(options: FaultProxyOptions) {
    super();
    this.options = options;
    this.rng = new Rng(options.seed ?? 1);
    this.cutMode = options.cutMode ?? 'reset';
    this.faults = {
      upstream: { ...options.both, ...options.upstream },
      downstream: { ...options.both, ...options.downstream },
    };
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.onClient(socket));
  }

  /** Starts a proxy listening on an ephemeral loopback port. */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const proxy = new FaultProxy(options);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, options.host ?? '127.0.0.1', () => {
        proxy.server.off('error', reject);
        resolve();
      });
    });
    proxy.portNumber = (proxy.server.address() as net.AddressInfo).port;
    return proxy;
  }

  get port(): number {
    return this.portNumber;
  }

  get host(): string {
    return this.options.host ?? '127.0.0.1';
  }

  /** The faults in force for a direction. */
  faultsOf(direction: Direction): LinkFaults {
    return this.faults[direction];
  }

  /** Changes the faults of a direction (or both) for every connection, from now on. */
  configure(directions: Directions, faults: LinkFaults): void {
    for (const direction of expand(directions)) this.faults[direction] = { ...this.faults[direction], ...faults };
  }

  /** Stops forwarding in a direction (or both); bytes keep queueing up to the high-water mark, then the source waits. */
  stall(directions: Directions = 'both'): void {
    for (const direction of expand(directions)) {
      this.stalledDirections.add(direction);
      for (const connection of this.connections) connection.link(direction).setStalled(true);
    }
  }

  /** Forwards again after `stall`. */
  resume(directions: Directions = 'both'): void {
    for (const direction of expand(directions)) {
      this.stalledDirections.delete(direction);
      for (const connection of this.connections) connection.link(direction).setStalled(false);
    }
  }

  /** Cuts every live connection now. */
  cut(mode?: CutMode): void {
    for (const connection of [...this.connections]) connection.cutNow('manual', undefined, mode ?? this.cutMode);
  }

  /** Counters summed over every connection so far (closed and live), per direction. */
  get totals(): Record<Direction, LinkStats> {
    const sum = (direction: Direction): LinkStats => {
      const total = { ...this.totalsOf[direction] };
      for (const connection of this.connections) {
        const stats = connection.link(direction).stats;
        total.received += stats.received;
        total.forwarded += stats.forwarded;
        total.queued += stats.queued;
        total.maxQueued = Math.max(total.maxQueued, stats.maxQueued);
        total.pauses += stats.pauses;
        total.pieces += stats.pieces;
        total.maxPiece = Math.max(total.maxPiece, stats.maxPiece);
      }
      return total;
    };
    return { upstream: sum('upstream'), downstream: sum('downstream') };
  }

  private readonly totalsOf: Record<Direction, LinkStats> = {
    upstream: { received: 0, forwarded: 0, queued: 0, maxQueued: 0, pauses: 0, pieces: 0, maxPiece: 0 },
    downstream: { received: 0, forwarded: 0, queued: 0, maxQueued: 0, pauses: 0, pieces: 0, maxPiece: 0 },
  };

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    for (const socket of this.pendingSockets) socket.destroy();
    for (const connection of [...this.connections]) connection.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    // sockets close on the next turns; wait until they did, so a test that checks for leaks sees none
    const deadline = Date.now() + 2000;
    while (this.connections.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  }

  /** @internal */
  forget(connection: ProxyConnection): void {
    if (!this.connections.delete(connection)) return;
    for (const direction of ['upstream', 'downstream'] as const) {
      const stats = connection.link(direction).stats;
      const total = this.totalsOf[direction];
      total.received += stats.received;
      total.forwarded += stats.forwarded;
      total.maxQueued = Math.max(total.maxQueued, stats.maxQueued);
      total.pauses += stats.pauses;
      total.pieces += stats.pieces;
      total.maxPiece = Math.max(total.maxPiece, stats.maxPiece);
    }
  }

  private onClient(client: net.Socket): void {
    this.pendingSockets.add(client);
    client.on('error', () => {});
    const target = net.connect({
      port: this.options.target.port,
      host: this.options.target.host ?? '127.0.0.1',
      allowHalfOpen: true,
    });
    target.pause();
    this.pendingSockets.add(target);
    target.on('error', () => client.destroy());
    client.once('close', () => target.destroy());
    target.once('connect', () => {
      this.pendingSockets.delete(client);
      this.pendingSockets.delete(target);
      if (client.destroyed) {
        target.destroy();
        return;
      }
      const connection = new ProxyConnection(
        this,
        client,
        target,
        this.rng.fork(),
        this.options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK,
      );
      this.connections.add(connection);
      for (const direction of this.stalledDirections) connection.link(direction).setStalled(true);
      client.resume();
      target.resume();
      this.emit('connection', connection);
    });
  }
}

function expand(directions: Directions): Direction[] {
  return directions === 'both' ? ['upstream', 'downstream'] : [directions];
}

/** A `rewrite` that flips random bits: each byte is changed with probability `rate` (seeded). */
export function flipBits(seed: number, rate: number, fromOffset = 0): (chunk: Buffer, offset: number) => Uint8Array {
  const rng = new Rng(seed);
  return (chunk, offset) => {
    const out = Buffer.from(chunk);
    for (let i = Math.max(0, fromOffset - offset); i < out.length; i++) {
      if (rng.chance(rate)) out[i] = out[i]! ^ (1 << rng.int(0, 7));
    }
    return out;
  };
}
