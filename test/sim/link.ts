/**
 * An in-memory transport pair for the deterministic simulation: two {@link SimEnd}s implementing the core's
 * `Transport`, joined by a link whose every event (a piece of bytes arriving, a write's callback, `drain`,
 * end of file, a reset, `close`) is a step that the simulation's scheduler picks when it is due. Nothing
 * here happens by itself: {@link SimLink.candidates} lists what may happen now, and the scheduler runs one.
 *
 * The model follows a TCP socket behind Node's stream, as `duplexTransport` sees one:
 * - bytes arrive in write order, cut into pieces of any size, each write after a drawn delay;
 * - a write's callback comes after the write, in order; a write may report backpressure, `drain` follows
 *   once its callbacks have come;
 * - `end()` sends end of file after the data; `close` comes once this side ended and the peer's end of file
 *   arrived (or at once after `destroy`, or after an error);
 * - a paused side receives no data and no end of file (as a paused Node stream emits neither) but does see a
 *   reset;
 * - `destroy()` sends either end of file after the data in flight or a reset that drops it (drawn);
 * - data arriving at a closed side draws a reset back, as TCP answers data for a closed socket.
 * Faults the scheduler can inject: a reset of the connection, a black hole (one side fails and the other
 * hears nothing, ever: only keep-alive can tell), and the transport's end of file without the session asking.
 */
import type { Transport, TransportEvents } from '../../src/core/transport.js';
import type { Rng } from '../support/random.js';
import type { VirtualClock } from './clock.js';

/** One thing the scheduler may run now. */
export interface Step {
  label: string;
  run(): void;
}

/** How a link behaves, drawn per run. */
export interface LinkModel {
  /** Fixed one-way delay in virtual ms, plus a jitter drawn from 0 to `jitterMs` per write. */
  latencyMs: number;
  jitterMs: number;
  /** Probability that a write reports backpressure (returns false, `drain` follows). */
  blockChance: number;
  /** Probability that a delivery hands over only part of the bytes at the head. */
  splitChance: number;
  /** Probability that `destroy()` sends a reset (dropping data in flight) rather than end of file. */
  resetOnDestroyChance: number;
  /** As a `net.Socket` with `allowHalfOpen`: false ends this side's writing when the peer's end of file arrives. */
  allowHalfOpen: boolean;
  /** Test hook: the byte at this offset of the client's stream arrives flipped (proves the checks can fail). */
  corruptAt?: number;
}

type Segment =
  { kind: 'data'; bytes: Uint8Array; at: number } | { kind: 'fin'; at: number } | { kind: 'rst'; at: number };

interface LocalTask {
  label: string;
  run(): void;
  /** A write's callback, and the error it reports if the side failed before it ran. */
  callback?: (error?: Error | null) => void;
  error?: Error;
}

/** The error a side sees when its connection is reset. */
export class SimResetError extends Error {
  readonly code = 'ECONNRESET';
  constructor(message = 'simulated connection reset') {
    super(message);
  }
}

/** One side of the link: the session's transport. */
export class SimEnd implements Transport {
  peer!: SimEnd;
  events: TransportEvents | undefined;
  /** Bytes and signals on their way to the peer, in order. */
  readonly outbound: Segment[] = [];
  /** Events due to this side's session (write callbacks, error, close), in order. */
  readonly local: LocalTask[] = [];
  private pendingCallbacks = 0;
  private lastArrival = 0;
  needDrain = false;
  paused = false;
  writeEnded = false;
  readEnded = false;
  destroyed = false;
  /** `close` was queued (it may not have been delivered yet). */
  closing = false;
  /** `close` was delivered: no more events. */
  closed = false;
  /** Hears nothing and answers nothing (the black hole's far side, seen from here). */
  silent = false;
  bytesWritten = 0;
  /** Times the session paused reading (memory bound, full accept queue): reported in the run's figures. */
  pauses = 0;
  /** Called when the session pauses reading (the simulation may freeze the peer then: issue 17's case 3). */
  onPause: (() => void) | undefined;
  bytesDelivered = 0;
  /** The session called `end()` or `destroy()` (after which it must not write). */
  private endedBySession = false;
  /** Virtual time of the session's first `end()`: the linger that follows bounds its wait for the peer's end. */
  endedAt: number | undefined;
  /**
   * The session destroyed its transport before the peer's end of file arrived (its linger after ending ran out,
   * or it failed): a reset for the peer, which may then fail as after a broken connection.
   */
  abortedEarly = false;
  /** Breaches of the transport contract by the session, reported by the simulation as violations. */
  readonly misuse: string[] = [];

  constructor(
    readonly name: string,
    private readonly clock: VirtualClock,
    private readonly rng: Rng,
    private readonly model: LinkModel,
  ) {}

  start(events: TransportEvents): void {
    if (this.events !== undefined) throw new Error(`${this.name}: transport started twice`);
    this.events = events;
  }

  write(parts: Uint8Array[], done: (error?: Error | null) => void): boolean {
    if (this.endedBySession)
      this.misuse.push(`${this.name}: the session wrote after ending or destroying its transport`);
    if (this.destroyed || this.writeEnded) {
      const error = new Error(this.destroyed ? 'write after destroy' : 'write after end');
      this.queueCallback(done, error);
      if (!this.destroyed) this.failLocal(error, 'rst');
      return false;
    }
    let length = 0;
    for (const part of parts) length += part.length;
    const bytes = new Uint8Array(length);
    let offset = 0;
    for (const part of parts) {
      bytes.set(part, offset);
      offset += part.length;
    }
    this.bytesWritten += length;
    if (length > 0) this.send({ kind: 'data', bytes, at: 0 });
    this.queueCallback(done, undefined);
    if (this.rng.chance(this.model.blockChance)) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  private queueCallback(done: (error?: Error | null) => void, error: Error | undefined): void {
    this.pendingCallbacks++;
    const task: LocalTask = {
      label: `${this.name} write callback`,
      callback: done,
      error,
      run: () => {
        this.pendingCallbacks--;
        done(task.error ?? null);
        this.maybeClose();
      },
    };
    this.local.push(task);
  }

  pause(): void {
    if (!this.paused) {
      this.pauses++;
      this.onPause?.();
    }
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  end(): void {
    this.endedBySession = true;
    this.endedAt ??= this.clock.now;
    if (this.writeEnded || this.destroyed) return;
    this.writeEnded = true;
    this.send({ kind: 'fin', at: 0 });
    this.maybeClose();
  }

  destroy(error?: Error): void {
    this.endedBySession = true;
    if (this.destroyed || this.closed) return;
    if (!this.readEnded) this.abortedEarly = true;
    const reset = this.rng.chance(this.model.resetOnDestroyChance);
    this.failLocal(error, reset ? 'rst' : 'fin');
  }

  // ------------------------------------------------------------------ faults injected by the scheduler

  /** The connection is reset: this side fails at once, the peer sees the reset after the link's delay. */
  injectReset(): void {
    if (this.destroyed || this.closed) return;
    this.failLocal(new SimResetError('simulated connection reset (injected)'), 'rst', true);
  }

  /** This side fails and the peer never hears of it, nor of anything this side had in flight. */
  injectBlackHole(): void {
    if (this.destroyed || this.closed) return;
    this.outbound.length = 0;
    this.peer.silent = true;
    this.failLocal(new SimResetError('simulated network failure (injected)'), 'none', true);
  }

  /** The transport ends this side's writing by itself (the peer gets end of file; later writes fail). */
  injectEnd(): void {
    if (this.writeEnded || this.destroyed) return;
    this.writeEnded = true;
    this.send({ kind: 'fin', at: 0 });
  }

  // ------------------------------------------------------------------ inside

  /** Fails or destroys this side: callbacks fail, `error` (if any) then `close`; the peer gets `signal`. */
  private failLocal(error: Error | undefined, signal: 'fin' | 'rst' | 'none', emitError = error !== undefined): void {
    this.destroyed = true;
    if (signal === 'rst') {
      this.outbound.length = 0;
      this.send({ kind: 'rst', at: 0 });
    } else if (signal === 'fin' && !this.writeEnded) {
      this.send({ kind: 'fin', at: 0 });
    }
    this.writeEnded = true;
    this.needDrain = false;
    // Callbacks not yet called report the failure (their bytes are in flight or dropped: nobody can tell).
    const failure = error ?? new Error('transport destroyed');
    for (const task of this.local) if (task.callback !== undefined) task.error ??= failure;
    if (emitError && error !== undefined) {
      this.local.push({ label: `${this.name} transport error`, run: () => this.events?.error(error) });
    }
    this.queueClose();
  }

  private send(segment: Segment): void {
    const delay = this.model.latencyMs + (this.model.jitterMs > 0 ? this.rng.int(0, this.model.jitterMs) : 0);
    const at = Math.max(this.lastArrival, this.clock.now + delay);
    this.lastArrival = at;
    segment.at = at;
    this.outbound.push(segment);
  }

  private queueClose(): void {
    if (this.closing) return;
    this.closing = true;
    this.local.push({
      label: `${this.name} transport close`,
      run: () => {
        this.closed = true;
        this.events?.close();
      },
    });
  }

  /** A side closes once it ended writing (and its writes were flushed) and the peer's end of file arrived. */
  maybeClose(): void {
    if (this.closing || !this.writeEnded || !this.readEnded || this.pendingCallbacks > 0) return;
    this.queueClose();
  }

  /** The head of `outbound` arrives at the peer. */
  private deliver(): void {
    const segment = this.outbound[0]!;
    const peer = this.peer;
    if (segment.kind === 'rst') {
      this.outbound.shift();
      if (peer.closing || peer.destroyed) return;
      peer.outbound.length = 0;
      peer.failLocal(new SimResetError(), 'none');
      return;
    }
    if (peer.destroyed || peer.closing) {
      // Data for a closed socket draws a reset, unless this side is gone too (or the path is a black hole).
      this.outbound.shift();
      if (segment.kind === 'data' && !this.destroyed && !this.silent && !peer.silent) {
        this.outbound.length = 0;
        peer.send({ kind: 'rst', at: 0 });
      }
      return;
    }
    if (segment.kind === 'fin') {
      this.outbound.shift();
      peer.readEnded = true;
      peer.events?.end();
      if (!this.model.allowHalfOpen) peer.end();
      peer.maybeClose();
      return;
    }
    let bytes = segment.bytes;
    if (bytes.length > 1 && this.rng.chance(this.model.splitChance)) {
      const piece = this.rng.int(1, bytes.length - 1);
      segment.bytes = bytes.subarray(piece);
      bytes = bytes.subarray(0, piece);
    } else {
      this.outbound.shift();
    }
    const corrupt = this.model.corruptAt;
    if (
      corrupt !== undefined &&
      this.name === 'client' &&
      corrupt >= peer.bytesDelivered &&
      corrupt < peer.bytesDelivered + bytes.length
    ) {
      bytes = Uint8Array.from(bytes);
      const at = corrupt - peer.bytesDelivered;
      bytes[at] = bytes[at]! ^ 0xff;
    }
    peer.bytesDelivered += bytes.length;
    peer.events?.data(bytes);
  }

  /** What this side may do now: deliver its head segment, run its next local event, or `drain`. */
  candidates(now: number, out: Step[]): void {
    const head = this.outbound[0];
    if (head !== undefined && head.at <= now && !this.peer.silent) {
      const blocked = head.kind !== 'rst' && this.peer.paused && !this.peer.destroyed && !this.peer.closing;
      if (!blocked) out.push({ label: `${this.name} -> ${this.peer.name} ${head.kind}`, run: () => this.deliver() });
    }
    if (head !== undefined && this.peer.silent) this.outbound.length = 0;
    if (this.local.length > 0) {
      out.push({ label: this.local[0]!.label, run: () => this.local.shift()!.run() });
    }
    if (this.needDrain && this.pendingCallbacks === 0 && !this.destroyed && !this.closed) {
      out.push({
        label: `${this.name} drain`,
        run: () => {
          this.needDrain = false;
          this.events?.drain();
        },
      });
    }
  }

  /** When the next segment arrives, if one is on its way and not yet due. */
  nextArrival(now: number): number | undefined {
    const head = this.outbound[0];
    return head !== undefined && head.at > now && !this.peer.silent ? head.at : undefined;
  }

  /** Nothing left to do on this side. */
  get idle(): boolean {
    return (this.outbound.length === 0 || this.peer.silent) && this.local.length === 0;
  }
}

/** The two ends of one simulated connection. */
export class SimLink {
  readonly client: SimEnd;
  readonly server: SimEnd;

  constructor(clock: VirtualClock, rng: Rng, model: LinkModel) {
    this.client = new SimEnd('client', clock, rng.fork(), model);
    this.server = new SimEnd('server', clock, rng.fork(), model);
    this.client.peer = this.server;
    this.server.peer = this.client;
  }

  candidates(now: number, out: Step[]): void {
    this.client.candidates(now, out);
    this.server.candidates(now, out);
  }

  nextArrival(now: number): number | undefined {
    const a = this.client.nextArrival(now);
    const b = this.server.nextArrival(now);
    return a === undefined ? b : b === undefined ? a : Math.min(a, b);
  }
}
