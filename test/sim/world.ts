/**
 * One run of the deterministic simulation: two sessions (client and server; their channels `LightChannel`s, or
 * the Node adapter's `Channel` streams) over a {@link SimLink}, every timer on a {@link VirtualClock}, and an
 * application on each side that dials, accepts, writes, ends, resets, closes for reading, pauses, pings,
 * closes and destroys at drawn virtual times, while faults of the transport are injected. Everything drawn comes from one seed, so a run replays exactly from it.
 *
 * The scheduler: after draining microtasks (promises, `queueMicrotask`, the core's `defer()`), it lists what
 * may happen now (a piece of bytes arriving, a write callback, `drain`, an end of file or reset, an
 * immediate, a due timer, a due application action) and runs one, drawn; only when nothing is runnable does
 * virtual time move, to the next timer, arrival or action.
 *
 * After the application's last action, both sides wind down (resume reading, end every channel, `close()`)
 * and the run goes on until nothing is left to happen; then the invariants are checked (see
 * {@link checkInvariants} and docs/reliability.md).
 */
import { getEventListeners } from 'node:events';
import { setImmediate as realSetImmediate } from 'node:timers';
// The clock first: it puts its forwarders in place before muxwire takes its schedulers (see clock.ts).
import { VirtualClock, assertClockReaches } from './clock.js';
import {
  type ChannelState,
  ChannelRefusedError,
  GoAwayError,
  LightChannel,
  LightSession,
  MemoryBudget,
  MuxError,
  MuxSession,
  type SessionOptions,
  TransportClosedError,
} from '../../src/core/index.js';
import { Channel } from '../../src/node/channel.js';
import type { ChannelPort } from '../../src/core/channel-port.js';
import { FULL_PARTS } from '../../src/core/full-parts.js';
import { nextTask } from '../../src/core/timers.js';
import { Rng } from '../support/random.js';
import { type LinkModel, SimEnd, SimLink, type Step } from './link.js';

assertClockReaches(nextTask);

/** Steps kept for the failure report (MUXWIRE_SIM_TRACE sets another count). */
const TRACE_LENGTH = Number(process.env.MUXWIRE_SIM_TRACE ?? 80);

type SideName = 'client' | 'server';

/**
 * What the application uses of a channel: `LightChannel` and the Node adapter's `Channel` (a `Duplex`) alike.
 * (A test of the Node adapter: the core never imports it.)
 */
interface AppChannel {
  readonly id: number;
  readonly outbound: boolean;
  readonly destroyed: boolean;
  readonly failure: Error | undefined;
  readonly protocolState: string;
  write(data: Uint8Array): boolean;
  end(data?: Uint8Array): unknown;
  destroy(error?: Error): unknown;
  closeRead(): unknown;
  pause(): unknown;
  resume(): unknown;
  on(event: string, listener: (...args: any[]) => void): unknown;
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array>;
}

/** What a run is set to, beyond what its seed draws. */
export interface SimLimits {
  /** The wire format of both sessions (the seed draws everything else). */
  protocol: 'yamux' | 'multiplex';
  /** The channels' kind: the core's `LightChannel`, or the Node adapter's `Channel` stream. */
  channels: 'light' | 'node';
  /** Steps before the run is declared stuck. */
  maxSteps: number;
  /** Virtual ms after the wind-down starts before the run is declared stuck. */
  windDownMs: number;
  /** Record where each timer was armed, so a timer left behind is reported with its origin (slower). */
  timerOrigins?: boolean;
  /** Test hook: flip one byte of the stream client -> server at this delivered offset (to prove a check fails). */
  corruptAt?: number;
}

export const DEFAULT_LIMITS: SimLimits = {
  protocol: 'yamux',
  channels: 'light',
  maxSteps: 400_000,
  windDownMs: 10 * 60_000,
};

/** The outcome of one run. */
export interface SimOutcome {
  seed: number;
  protocol: SimLimits['protocol'];
  channels: SimLimits['channels'];
  steps: number;
  virtualMs: number;
  /** Broken invariants; empty when the run passed. */
  violations: string[];
  /** The drawn parameters, for the failure report. */
  params: string;
  /** The last steps run, for the failure report. */
  trace: string[];
  /** A digest of every step's label: equal for two runs of one seed (determinism). */
  digest: number;
  stats: Record<string, number>;
}

/** A pending call of the application (accept, ping, close, `closed`), and how often it settled. */
interface Call {
  label: string;
  settled: number;
  error?: unknown;
  /** The channel a `for await` read, if this call is one. */
  record?: ChannelRecord;
}

/**
 * Node's own errors for a stream its application destroyed: leaving `for await` early destroys it with an
 * `AbortError`, and a `for await` over a stream destroyed meanwhile ends with `ERR_STREAM_PREMATURE_CLOSE`.
 * They are not the session's to type; they are accepted on a Node `Channel` the application reset itself.
 */
function nodeOwnAbort(error: unknown, record: ChannelRecord | undefined): boolean {
  if (record === undefined || !record.reset || !(record.channel instanceof Channel)) return false;
  const { name, code } = error as { name?: string; code?: string };
  return name === 'AbortError' || code === 'ERR_STREAM_PREMATURE_CLOSE';
}

/** A channel as the application on one side saw it. */
interface ChannelRecord {
  side: SideName;
  id: number;
  channel: AppChannel;
  sent: number;
  ended: boolean;
  received: number;
  readClosed: boolean;
  paused: boolean;
  /** The application reset it (`destroy()`, or leaving a `for await` loop early). */
  reset: boolean;
  /** Read with `for await` rather than 'data' events (pause and resume do not apply). */
  iterating: boolean;
  endEvents: number;
  /** This application had ended the channel when its 'end' came (on multiplex its own end closes both ways). */
  endedBeforeEnd: boolean;
  finishEvents: number;
  errorEvents: number;
  closeEvents: number;
  signal?: AbortSignal;
}

interface Side {
  name: SideName;
  index: number;
  session: MuxSession<LightChannel> | MuxSession<Channel>;
  end: SimEnd;
  mode: 'listener' | 'accept';
  options: SessionOptions;
  channels: Map<number, ChannelRecord>;
  closeEvents: number;
  closeArgument: unknown;
  /** Virtual time of the session's 'close' event. */
  closedAt: number;
  /** The scheduler's step at which the session's 'close' came (orders two closes at the same virtual time). */
  closedStep: number;
  /** When the peer fell into a black hole (this side hears nothing from then on), if it did. */
  silentSince?: number;
  closedCall: Call;
}

type ActionKind =
  'dial' | 'write' | 'end' | 'reset' | 'closeRead' | 'pause' | 'accept' | 'ping' | 'close' | 'destroy' | 'fault';

const ACTION_WEIGHTS: [ActionKind, number][] = [
  ['dial', 20],
  ['write', 22],
  ['end', 10],
  ['reset', 4],
  ['closeRead', 2],
  ['pause', 5],
  ['accept', 8],
  ['ping', 4],
  ['close', 2],
  ['destroy', 1],
  ['fault', 1],
];

interface Action {
  at: number;
  seq: number;
  label: string;
  run(): void;
}

/**
 * What a side sends on a channel is a window into one fixed pseudo-random table of a prime length, starting at
 * a point set by the channel and the side: any loss, duplication or reordering changes what arrives (a shift
 * by a multiple of the table's length aside), and both filling and checking are native copies and compares.
 */
/** How long a session waits for the peer's end after ending its transport (`LINGER_MS` in core/session.ts). */
const LINGER_MS = 2000;
const PATTERN_LENGTH = 65_521;
const PATTERN = (() => {
  const rng = new Rng(0x5eed);
  const table = new Uint8Array(2 * PATTERN_LENGTH); // twice, so a window never wraps within one piece
  for (let i = 0; i < PATTERN_LENGTH; i++) table[i] = table[i + PATTERN_LENGTH] = rng.next() & 255;
  return table;
})();

/** Fills `target` (or checks it, returning the index of the first wrong byte, or -1) from `offset` on. */
function pattern(sender: number, id: number, offset: number, target: Uint8Array, check: boolean): number {
  let start = (offset + id * 29 + sender * 101) % PATTERN_LENGTH;
  for (let done = 0; done < target.length;) {
    const length = Math.min(target.length - done, PATTERN_LENGTH);
    const expected = PATTERN.subarray(start, start + length);
    if (check) {
      const piece = target.subarray(done, done + length);
      if (Buffer.compare(piece, expected) !== 0) {
        for (let i = 0; i < length; i++) if (piece[i] !== expected[i]) return done + i;
      }
    } else {
      target.set(expected, done);
    }
    done += length;
    start = (start + length) % PATTERN_LENGTH;
  }
  return -1;
}

function draw<T>(rng: Rng, weighted: readonly [T, number][]): T {
  let total = 0;
  for (const [, w] of weighted) total += w;
  let r = rng.float() * total;
  for (const [item, w] of weighted) {
    if ((r -= w) < 0) return item;
  }
  return weighted[weighted.length - 1]![0];
}

const describe = (error: unknown): string =>
  error instanceof MuxError ? `${error.constructor.name}(${error.code}): ${error.message}` : String(error);

/** Runs the simulation for `seed`. The virtual clock is installed for the run and removed after it. */
export async function runSimulation(seed: number, settings: Partial<SimLimits> = {}): Promise<SimOutcome> {
  const limits = { ...DEFAULT_LIMITS, ...settings };
  const clock = new VirtualClock();
  clock.origins = limits.timerOrigins === true;
  clock.install();
  try {
    return await new World(seed >>> 0, clock, limits).run();
  } finally {
    clock.uninstall();
  }
}

/** Lets every queued microtask (and what they queue) run, by yielding one real macrotask. */
const drainMicrotasks = (): Promise<void> => new Promise((resolve) => realSetImmediate(resolve));

class World {
  private readonly rng: Rng;
  private readonly appRng: Rng;
  private readonly link: SimLink;
  private readonly sides: Side[] = [];
  private readonly calls: Call[] = [];
  private readonly signals: AbortSignal[] = [];
  private readonly violations: string[] = [];
  private readonly actions: Action[] = [];
  private readonly budget = new MemoryBudget(64 * 1024 * 1024);
  private readonly trace: string[] = [];
  private readonly params: string[] = [];
  private actionSeq = 0;
  private digest = 0x811c9dc5;
  private steps = 0;
  private horizon: number;
  private maxWrite: number;
  private faults = 0;
  private sessionDestroys = 0;
  private windingDown = false;
  /** The longest a round trip can take on this run's link (no bandwidth limit: only latency and jitter). */
  private readonly roundTripMs: number;
  /** Dials that threw `TransportClosedError` (wrong after a graceful close: see checkInvariants). */
  private readonly dialsThrewTransportClosed: string[] = [];
  private readonly stats: Record<string, number> = {
    dials: 0,
    accepted: 0,
    bytes: 0,
    refused: 0,
    resets: 0,
    faults: 0,
    pings: 0,
    livenessWithPausedPeer: 0,
  };
  /** Reactions of an application to its channels, drawn per run. */
  private readonly react: {
    reply: number;
    endAtOnce: number;
    destroyOnData: number;
    slowReader: number;
    iterate: number;
  };

  constructor(
    private readonly seed: number,
    private readonly clock: VirtualClock,
    private readonly limits: SimLimits,
  ) {
    this.rng = new Rng(seed);
    const model: LinkModel = {
      latencyMs: this.rng.pick([0, 1, 5, 50]),
      jitterMs: this.rng.pick([0, 2, 20]),
      blockChance: this.rng.pick([0, 0.1, 0.5]),
      splitChance: this.rng.pick([0, 0.3, 0.8]),
      resetOnDestroyChance: this.rng.pick([0, 0.5, 1]),
      allowHalfOpen: this.rng.chance(0.5),
      corruptAt: limits.corruptAt,
    };
    this.params.push(`link ${JSON.stringify(model)}`);
    this.roundTripMs = 2 * (model.latencyMs + model.jitterMs);
    this.link = new SimLink(clock, this.rng.fork(), model);
    this.appRng = this.rng.fork();
    this.horizon = this.rng.pick([20, 200, 2_000, 20_000]);
    this.maxWrite = this.rng.pick([64, 4096, 70_000, 300_000]);
    this.react = {
      reply: this.rng.pick([0, 0.5, 1]),
      endAtOnce: this.rng.pick([0, 0.3]),
      destroyOnData: this.rng.pick([0, 0, 0.2]),
      iterate: this.rng.pick([0, 0, 0.3, 1]),
      slowReader: this.rng.pick([0, 0.3, 0.6, 1]),
    };
    this.params.push(`horizon ${this.horizon} ms, maxWrite ${this.maxWrite}, react ${JSON.stringify(this.react)}`);
    for (const name of ['client', 'server'] as const) this.sides.push(this.makeSide(name));
    // Issue 17's case 3: the peer of a session that paused reading at its memory bound freezes.
    const freezeOnPause = this.rng.pick([0, 0, 0.5]);
    this.params.push(`freezeOnPause ${freezeOnPause}`);
    for (const side of this.sides) {
      side.end.onPause = () => {
        if (this.faults > 0 || this.windingDown || !this.appRng.chance(freezeOnPause)) return;
        const peer = this.peerOf(side);
        this.schedule(this.clock.now + this.appRng.int(0, 300), `${peer.name} freezes (black hole)`, () =>
          this.inject(peer, 'blackHole'),
        );
      };
    }
    this.planActions();
  }

  private drawOptions(): SessionOptions {
    const r = this.rng;
    const keepAliveTimeout = r.pick([50, 1_000, 10_000]);
    return {
      keepAliveInterval: r.pick([0, 200, 5_000, 30_000]),
      keepAliveTimeout,
      acceptBacklog: r.pick([1, 2, 4, 256]),
      ackBacklog: r.pick([1, 4, 256]),
      maxStreams: r.pick([3, 16, 65_536]),
      maxSessionBuffered: r.pick([256 * 1024, 256 * 1024, 512 * 1024, 128 * 1024 * 1024]),
      maxFrameSize: r.pick([1024, 16_384, 65_536]),
      closeTimeout: r.pick([100, 3_000, 30_000]),
      openTimeout: r.pick([0, 300, 75_000]),
      channelHighWaterMark: r.pick([1024, 65_536]),
      memoryBudget: this.budget,
      protocol: this.limits.protocol,
    };
  }

  private makeSide(name: SideName): Side {
    const options = this.drawOptions();
    const mode = this.rng.chance(0.5) ? 'listener' : 'accept';
    const { memoryBudget: _budget, ...shown } = options;
    this.params.push(`${name} ${mode} ${JSON.stringify(shown)}`);
    const end = name === 'client' ? this.link.client : this.link.server;
    const session =
      this.limits.channels === 'node'
        ? new MuxSession<Channel>(
            end,
            name,
            options,
            (state: ChannelState, port: ChannelPort<MuxSession<Channel>>) => new Channel(state, port),
            FULL_PARTS, // the Node session's parts, as `Session` passes them (the multiplex codec among them)
          )
        : new LightSession(end, name, options);
    const side: Side = {
      name,
      index: name === 'client' ? 0 : 1,
      session,
      end,
      mode,
      options,
      channels: new Map(),
      closeEvents: 0,
      closeArgument: undefined,
      closedAt: -1,
      closedStep: -1,
      closedCall: { label: `${name} closed`, settled: 0 },
    };
    this.calls.push(side.closedCall);
    session.closed.then(
      () => {
        side.closedCall.settled++;
      },
      (error: unknown) => {
        side.closedCall.settled++;
        side.closedCall.error = error;
      },
    );
    session.on('close', (error) => {
      side.closeEvents++;
      side.closeArgument = error;
      side.closedAt = this.clock.now;
      side.closedStep = this.steps;
    });
    session.on('goaway', () => {
      this.stats.goaways = (this.stats.goaways ?? 0) + 1;
    });
    if (mode === 'listener') session.on('channel', (channel) => this.adopt(side, channel));
    return side;
  }

  private peerOf(side: Side): Side {
    return this.sides[1 - side.index]!;
  }

  // ------------------------------------------------------------------ the application

  private planActions(): void {
    const count = this.rng.int(3, 60);
    for (let i = 0; i < count; i++) {
      const kind = draw(this.rng, ACTION_WEIGHTS);
      const side = this.rng.chance(0.5) ? 0 : 1;
      this.schedule(this.rng.int(0, this.horizon), `${this.sides[side]!.name} ${kind}`, () =>
        this.act(kind, this.sides[side]!),
      );
    }
    for (const side of this.sides) {
      // Most accepting applications start with an accept() waiting (a server's accept loop).
      // Some take channels with `for await (const channel of session)` instead.
      if (side.mode !== 'accept') continue;
      const style = this.rng.pick(['accept', 'accept', 'accept', 'iterate', 'none'] as const);
      if (style === 'accept') this.schedule(0, `${side.name} accept`, () => this.accept(side));
      else if (style === 'iterate') this.schedule(0, `${side.name} for await session`, () => void this.acceptAll(side));
    }
    this.schedule(this.horizon, 'wind down', () => this.windDown());
  }

  private schedule(at: number, label: string, run: () => void): void {
    const action: Action = { at, seq: ++this.actionSeq, label, run };
    let i = this.actions.length;
    while (i > 0 && this.actions[i - 1]!.at > at) i--;
    this.actions.splice(i, 0, action);
  }

  /** A channel the application holds: listen to everything, count every event, check every byte. */
  private adopt(side: Side, channel: AppChannel): ChannelRecord {
    const record: ChannelRecord = {
      side: side.name,
      id: channel.id,
      channel,
      sent: 0,
      ended: false,
      received: 0,
      readClosed: false,
      paused: false,
      reset: false,
      iterating: false,
      endEvents: 0,
      endedBeforeEnd: false,
      finishEvents: 0,
      errorEvents: 0,
      closeEvents: 0,
    };
    if (side.channels.has(channel.id))
      this.violate(`${side.name}: channel ${channel.id} handed to the application twice`);
    side.channels.set(channel.id, record);
    const sender = 1 - side.index;
    let reacted = false;
    const iterate = this.appRng.chance(this.react.iterate);
    if (iterate) {
      record.iterating = true;
      void this.iterate(record, sender);
    } else {
      channel.on('data', (chunk: Uint8Array) => {
        this.received(record, sender, chunk);
        if (!reacted && !channel.outbound && this.appRng.chance(this.react.destroyOnData)) {
          reacted = true; // the issue's case 2: read the first data, then reset
          this.resetChannel(record);
        }
      });
    }
    channel.on('end', () => {
      record.endEvents++;
      record.endedBeforeEnd = record.ended || record.reset;
    });
    channel.on('finish', () => {
      record.finishEvents++;
    });
    channel.on('error', (error) => {
      record.errorEvents++;
      if ((!(error instanceof MuxError) || error.code === 'ERR_MUX_INTERNAL') && !nodeOwnAbort(error, record)) {
        this.violate(
          `${side.name}: channel ${channel.id} failed with an untyped or internal error: ${describe(error)}`,
        );
      }
    });
    channel.on('close', () => {
      record.closeEvents++;
    });
    if (!iterate && this.appRng.chance(this.react.slowReader)) {
      channel.pause();
      record.paused = true;
    }
    return record;
  }

  /** Checks bytes that arrived on a channel against what its peer sends. */
  private received(record: ChannelRecord, sender: number, chunk: Uint8Array): void {
    const wrong = pattern(sender, record.id, record.received, chunk, true);
    if (wrong >= 0)
      this.violate(`${record.side}: channel ${record.id} received a wrong byte at offset ${record.received + wrong}`);
    record.received += chunk.length;
  }

  /** Reads a channel with `for await`; sometimes leaves the loop early, which resets the channel. */
  private async iterate(record: ChannelRecord, sender: number): Promise<void> {
    const call: Call = { label: `${record.side}: channel ${record.id} for await`, settled: 0, record };
    this.calls.push(call);
    const leaveAfter = this.appRng.chance(0.2) ? this.appRng.int(0, 3) : -1;
    // Reading to the end leaves either kind of channel open for writing; leaving early resets it.
    let chunks = 0;
    try {
      for await (const chunk of record.channel) {
        this.received(record, sender, chunk);
        if (leaveAfter >= 0 && ++chunks > leaveAfter) {
          record.reset = true;
          break;
        }
      }
      call.settled++;
    } catch (error) {
      call.settled++;
      call.error = error;
    }
  }

  /** An inbound channel reached the application (listener or accept). */
  private takeInbound(side: Side, channel: AppChannel): void {
    this.stats.accepted!++;
    const record = this.adopt(side, channel);
    if (this.appRng.chance(this.react.reply)) this.write(record);
    if (this.appRng.chance(this.react.endAtOnce)) this.endChannel(record);
  }

  private live(side: Side, filter: (record: ChannelRecord) => boolean): ChannelRecord | undefined {
    const candidates = [...side.channels.values()].filter((r) => !r.channel.destroyed && filter(r));
    return candidates.length === 0 ? undefined : this.appRng.pick(candidates);
  }

  private write(record: ChannelRecord): void {
    if (record.ended || record.channel.destroyed) return;
    if (this.appRng.chance(0.03)) {
      record.channel.write(new Uint8Array(0)); // an empty write must change nothing
      return;
    }
    record.channel.write(this.nextData(record));
  }

  /** The next bytes this side sends on a channel (counted as sent). */
  private nextData(record: ChannelRecord): Uint8Array {
    // Now and then a bulk write, enough to fill a window and press on the session's memory bound.
    const size = this.appRng.chance(0.15)
      ? this.appRng.int(32 * 1024, 400 * 1024)
      : Math.max(1, this.appRng.size(this.maxWrite));
    const data = new Uint8Array(size); // fresh each time: a LightChannel does not copy what it is given
    const sender = record.side === 'client' ? 0 : 1;
    pattern(sender, record.id, record.sent, data, false);
    record.sent += size;
    this.stats.bytes! += size;
    return data;
  }

  private endChannel(record: ChannelRecord): void {
    if (record.ended || record.channel.destroyed) return;
    record.ended = true;
    if (this.appRng.chance(0.2))
      record.channel.end(this.nextData(record)); // the last bytes with the end
    else record.channel.end();
  }

  private resetChannel(record: ChannelRecord): void {
    if (record.channel.destroyed) return;
    record.reset = true;
    this.stats.resets!++;
    record.channel.destroy();
  }

  private track(label: string, promise: Promise<unknown>, onValue?: (value: unknown) => void): void {
    const call: Call = { label, settled: 0 };
    this.calls.push(call);
    promise.then(
      (value) => {
        call.settled++;
        onValue?.(value);
      },
      (error: unknown) => {
        call.settled++;
        call.error = error;
      },
    );
  }

  private act(kind: ActionKind, side: Side): void {
    const { session } = side;
    const rng = this.appRng;
    switch (kind) {
      case 'dial': {
        let signal: AbortSignal | undefined;
        let controller: AbortController | undefined;
        if (rng.chance(0.15)) {
          controller = new AbortController();
          signal = controller.signal;
          this.signals.push(signal);
        }
        const openTimeout = rng.chance(0.1) ? rng.pick([1, 50, 0]) : undefined;
        let channel: AppChannel;
        try {
          channel = session.dial({ signal, openTimeout });
        } catch (error) {
          if (!(error instanceof MuxError))
            this.violate(`${side.name}: dial threw an untyped error: ${describe(error)}`);
          if (error instanceof TransportClosedError)
            this.dialsThrewTransportClosed.push(`${side.name} at ${this.clock.now} ms`);
          return;
        }
        this.stats.dials!++;
        const record = this.adopt(side, channel);
        record.signal = signal;
        if (rng.chance(0.7)) this.write(record);
        if (rng.chance(0.3)) this.endChannel(record);
        if (controller !== undefined) {
          const abortAt = this.clock.now + rng.int(0, 100);
          this.schedule(abortAt, `${side.name} abort dial ${channel.id}`, () =>
            controller.abort(new MuxError('ERR_SIM_ABORTED', 'the simulated application gave up')),
          );
        }
        return;
      }
      case 'write': {
        const record = this.live(side, (r) => !r.ended);
        if (record !== undefined) this.write(record);
        return;
      }
      case 'end': {
        const record = this.live(side, (r) => !r.ended);
        if (record !== undefined) this.endChannel(record);
        return;
      }
      case 'reset': {
        const record = this.live(side, () => true);
        if (record !== undefined) this.resetChannel(record);
        return;
      }
      case 'closeRead': {
        const record = this.live(side, (r) => !r.readClosed);
        if (record !== undefined) {
          record.readClosed = true;
          record.channel.closeRead();
        }
        return;
      }
      case 'pause': {
        const record = this.live(side, (r) => !r.iterating);
        if (record === undefined) return;
        if (record.paused) record.channel.resume();
        else record.channel.pause();
        record.paused = !record.paused;
        return;
      }
      case 'accept': {
        if (side.mode === 'listener') {
          this.act('dial', side);
          return;
        }
        this.accept(side);
        return;
      }
      case 'ping':
        this.stats.pings!++;
        this.track(`${side.name} ping`, session.ping());
        return;
      case 'close':
        this.track(
          `${side.name} close`,
          session.close({ timeout: rng.pick<number | undefined>([0, 50, 1_000, undefined]) }),
        );
        return;
      case 'destroy':
        this.sessionDestroys++;
        session.destroy(
          rng.chance(0.5) ? new MuxError('ERR_SIM_DESTROYED', 'the simulated application destroyed it') : undefined,
        );
        return;
      case 'fault': {
        this.inject(side, rng.pick(['reset', 'blackHole', 'end'] as const));
        return;
      }
    }
  }

  /** Injects a fault of the transport at `side`. */
  private inject(side: Side, fault: 'reset' | 'blackHole' | 'end'): void {
    this.faults++;
    this.stats.faults!++;
    if (fault === 'reset') {
      side.end.injectReset();
    } else if (fault === 'blackHole') {
      const peer = this.peerOf(side);
      if (!side.end.closing && !peer.end.closing) peer.silentSince ??= this.clock.now;
      side.end.injectBlackHole();
    } else {
      side.end.injectEnd();
    }
  }

  /** One `accept()`; on success the application may accept again at once (a standing accept loop). */
  private accept(side: Side): void {
    let signal: AbortSignal | undefined;
    if (this.appRng.chance(0.1)) {
      const controller = new AbortController();
      signal = controller.signal;
      this.signals.push(signal);
      this.schedule(this.clock.now + this.appRng.int(0, 200), `${side.name} abort accept`, () =>
        controller.abort(new MuxError('ERR_SIM_ABORTED', 'the simulated application gave up')),
      );
    }
    this.track(`${side.name} accept`, side.session.accept({ signal }), (channel) => {
      this.takeInbound(side, channel as AppChannel);
      if (!this.windingDown && this.appRng.chance(0.7)) this.accept(side);
    });
  }

  /** Takes every inbound channel with the session's async iterator, which ends when the session closes. */
  private async acceptAll(side: Side): Promise<void> {
    const call: Call = { label: `${side.name}: for await (session)`, settled: 0 };
    this.calls.push(call);
    try {
      for await (const channel of side.session) this.takeInbound(side, channel);
      call.settled++;
    } catch (error) {
      call.settled++;
      call.error = error;
    }
  }

  /** After the last action: read everything, end every channel, close both sessions. */
  private windDown(): void {
    this.windingDown = true;
    for (const side of this.sides) {
      for (const record of side.channels.values()) {
        if (record.channel.destroyed) continue;
        if (record.paused) {
          record.paused = false;
          record.channel.resume();
        }
        this.endChannel(record);
      }
      if (side.session.state !== 'closed') this.track(`${side.name} final close`, side.session.close());
    }
  }

  // ------------------------------------------------------------------ the scheduler

  async run(): Promise<SimOutcome> {
    const steps: Step[] = [];
    let windDownAt = Number.POSITIVE_INFINITY;
    for (;;) {
      await drainMicrotasks();
      if (this.windingDown && windDownAt === Number.POSITIVE_INFINITY) windDownAt = this.clock.now;
      steps.length = 0;
      const now = this.clock.now;
      const immediate = this.clock.nextImmediate();
      if (immediate !== undefined) steps.push({ label: 'immediate', run: () => this.clock.fire(immediate) });
      const timer = this.clock.nextTimer();
      if (timer !== undefined && timer.at <= now)
        steps.push({ label: `timer@${timer.at}`, run: () => this.clock.fire(timer) });
      this.link.candidates(now, steps);
      const action = this.actions[0];
      if (action !== undefined && action.at <= now) {
        steps.push({
          label: action.label,
          run: () => {
            this.actions.shift();
            action.run();
          },
        });
      }
      if (steps.length === 0) {
        let next = Number.POSITIVE_INFINITY;
        if (timer !== undefined) next = Math.min(next, timer.at);
        if (action !== undefined) next = Math.min(next, action.at);
        const arrival = this.link.nextArrival(now);
        if (arrival !== undefined) next = Math.min(next, arrival);
        if (next === Number.POSITIVE_INFINITY) break; // nothing left to happen
        if (next - windDownAt > this.limits.windDownMs) {
          this.violate(
            `still running ${this.limits.windDownMs} virtual ms after the wind-down began` +
              ` (next event at ${next} ms: ${timer?.at === next ? 'a timer' : 'the network'})`,
          );
          break;
        }
        this.clock.advanceTo(next);
        continue;
      }
      if (++this.steps > this.limits.maxSteps) {
        this.violate(`more than ${this.limits.maxSteps} steps`);
        break;
      }
      const step = steps.length === 1 ? steps[0]! : steps[this.rng.int(0, steps.length - 1)]!;
      this.record(`${now} ${step.label}`);
      try {
        step.run();
      } catch (error) {
        this.violate(`step "${step.label}" threw: ${describe(error)}`);
        break;
      }
    }
    await drainMicrotasks();
    this.stats.pausedReading = this.link.client.pauses + this.link.server.pauses;
    for (const side of this.sides) {
      const error = side.session.closeError;
      const key = error === undefined ? 'cleanCloses' : `closed_${error instanceof MuxError ? error.code : 'untyped'}`;
      this.stats[key] = (this.stats[key] ?? 0) + 1;
    }
    this.stats.blackHoles = this.sides.filter((side) => side.silentSince !== undefined).length;
    this.stats.pausedBlackHoles = this.sides.filter(
      (side) => side.silentSince !== undefined && side.end.pauses > 0,
    ).length;
    this.checkInvariants();
    this.clock.clear();
    return {
      seed: this.seed,
      protocol: this.limits.protocol,
      channels: this.limits.channels,
      steps: this.steps,
      virtualMs: this.clock.now,
      violations: this.violations,
      params: this.params.join('\n'),
      trace: this.trace,
      digest: this.digest >>> 0,
      stats: this.stats,
    };
  }

  private record(label: string): void {
    for (let i = 0; i < label.length; i++) this.digest = Math.imul(this.digest ^ label.charCodeAt(i), 0x01000193);
    this.trace.push(label);
    if (this.trace.length > TRACE_LENGTH) this.trace.shift();
  }

  private violate(message: string): void {
    if (this.violations.length < 20) this.violations.push(message);
  }

  // ------------------------------------------------------------------ the invariants

  /**
   * Checked once nothing is left to happen: every pending call settled exactly once, with a typed error when
   * it failed; bytes exact and in order (checked as they arrive) and complete where the channel ended
   * cleanly; a channel reported refused never reached the peer's application; no timer, listener or memory
   * left; both sessions and both transports closed.
   */
  private checkInvariants(): void {
    for (const call of this.calls) {
      if (call.settled !== 1) this.violate(`${call.label}: settled ${call.settled} times`);
      if (
        call.error !== undefined &&
        (!(call.error instanceof MuxError) || call.error.code === 'ERR_MUX_INTERNAL') &&
        !nodeOwnAbort(call.error, call.record)
      ) {
        this.violate(`${call.label}: failed with an untyped or internal error: ${describe(call.error)}`);
      }
    }
    const clean = this.faults === 0 && this.sessionDestroys === 0;
    // Nothing broke the connection: no fault, no destroy, no keep-alive failure (a short keepAliveTimeout on a
    // slow simulated link may time out for real), no close() that ran out of time (it drops the connection
    // under open channels), no transport destroyed before the peer's end arrived (a closing session whose
    // linger ran out while the peer, paused at its memory bound with keep-alive off, never read the Go Away).
    // Then every end of the transport came from a graceful close, after a Go Away, and a channel the peer
    // never took must fail as not accepted (safe to retry).
    const yamux = this.limits.protocol === 'yamux';
    // (multiplex has no Go Away: a channel the peer never took cannot be told from one it did.)
    const graceful =
      yamux &&
      clean &&
      !this.link.client.abortedEarly &&
      !this.link.server.abortedEarly &&
      this.sides.every((side) => {
        const code = side.session.closeError instanceof MuxError ? side.session.closeError.code : undefined;
        return code !== 'ERR_MUX_KEEPALIVE_TIMEOUT' && code !== 'ERR_MUX_CLOSE_TIMEOUT';
      });
    // A live peer is never declared dead: without faults or destroys, every ping can be answered within the
    // link's round trip, so a keep-alive timeout longer than that must not fire. A peer paused at its memory
    // bound reads (and answers) pings only when it probes, every half its own keepAliveTimeout, and its probe
    // pings are bytes this side hears at that pace: there the bound is half the peer's keepAliveTimeout plus
    // a round trip more (the documented rule, docs/reliability.md).
    for (const side of this.sides) {
      const error = side.session.closeError;
      const peer = this.peerOf(side);
      const peerPaused = peer.end.pauses > 0;
      // (A peer whose session had already ended, its close() out of time, say, was not alive.)
      const peerAlive = peer.closedStep < 0 || peer.closedStep > side.closedStep;
      const timeout = side.options.keepAliveTimeout ?? 0;
      const bound = this.roundTripMs + (peerPaused ? (peer.options.keepAliveTimeout ?? 0) / 2 + this.roundTripMs : 0);
      if (clean && peerAlive && peerPaused && timeout > bound) this.stats.livenessWithPausedPeer!++;
      if (
        clean &&
        peerAlive &&
        error instanceof MuxError &&
        error.code === 'ERR_MUX_KEEPALIVE_TIMEOUT' &&
        timeout > bound
      ) {
        this.violate(
          `${side.name}: a live peer was declared dead (keepAliveTimeout ${timeout} ms, round trip at most` +
            ` ${this.roundTripMs} ms${peerPaused ? `, the peer paused with keepAliveTimeout ${peer.options.keepAliveTimeout} ms` : ''}): ${error.message}`,
        );
      }
    }
    for (const side of this.sides) {
      if (graceful && side.session.closeError instanceof TransportClosedError) {
        this.violate(
          `${side.name}: the session failed as if the transport broke, though nothing broke it: ${describe(side.session.closeError)}`,
        );
      }
    }
    if (graceful && this.dialsThrewTransportClosed.length > 0) {
      this.violate(
        `dial threw TransportClosedError though nothing broke the connection (${this.dialsThrewTransportClosed.join(', ')})`,
      );
    }
    for (const side of this.sides) {
      const { session, name } = side;
      if (session.state !== 'closed') this.violate(`${name}: session is ${session.state} at the end`);
      if (side.closeEvents !== 1) this.violate(`${name}: 'close' emitted ${side.closeEvents} times`);
      if (side.closeArgument !== session.closeError) this.violate(`${name}: 'close' and closeError disagree`);
      const error = session.closeError;
      if (error !== undefined && (!(error instanceof MuxError) || error.code === 'ERR_MUX_INTERNAL')) {
        this.violate(`${name}: session ended with an untyped or internal error: ${describe(error)}`);
      }
      if (session.channelCount !== 0) this.violate(`${name}: channelCount ${session.channelCount} at the end`);
      if (session.bufferedBytes !== 0) this.violate(`${name}: bufferedBytes ${session.bufferedBytes} at the end`);
      if (!side.end.closed) this.violate(`${name}: the transport was never closed`);
      // Keep-alive: a peer that vanished is noticed within one interval (the next ping) and the ping's timeout;
      // twice the timeout when reading is paused (the first timeout sends a fresh ping and reads for its
      // answer: docs/design.md). A close() may end the session sooner; never later.
      const { keepAliveInterval = 0, keepAliveTimeout = 0 } = side.options;
      if (yamux && side.silentSince !== undefined && keepAliveInterval > 0) {
        // (multiplex has no ping)
        let deadline = side.silentSince + keepAliveInterval + 2 * keepAliveTimeout + 1;
        // A session that ended its transport meanwhile stops keep-alive: the 2 s linger then bounds its wait
        // for the peer's end instead.
        if (side.end.endedAt !== undefined && side.end.endedAt < deadline) {
          deadline = Math.max(deadline, side.end.endedAt + LINGER_MS + 1);
        }
        if (side.closedAt > deadline) {
          this.violate(
            `${name}: the peer vanished at ${side.silentSince} ms and was noticed only at ${side.closedAt} ms` +
              ` (keepAliveInterval ${keepAliveInterval}, keepAliveTimeout ${keepAliveTimeout}: due by ${deadline} ms)`,
          );
        }
      }
      const peer = this.peerOf(side);
      for (const record of side.channels.values()) {
        const { channel, id } = record;
        const label = `${name}: channel ${id}`;
        if (record.closeEvents !== 1) {
          this.violate(
            `${label}: 'close' emitted ${record.closeEvents} times (state ${channel.protocolState}, destroyed ${channel.destroyed}, failure ${describe(channel.failure)}, ended ${record.ended}, got end ${record.endEvents}, finish ${record.finishEvents}, paused ${record.paused}, received ${record.received})`,
          );
        }
        if (record.endEvents > 1 || record.finishEvents > 1 || record.errorEvents > 1) {
          this.violate(
            `${label}: 'end' ${record.endEvents}, 'finish' ${record.finishEvents}, 'error' ${record.errorEvents} times`,
          );
        }
        const failure = channel.failure;
        const notAccepted =
          failure instanceof ChannelRefusedError || (failure instanceof GoAwayError && failure.goAwayCode === 0);
        if (notAccepted) {
          this.stats.refused!++;
          if (!channel.outbound) this.violate(`${label}: an inbound channel reported as not accepted`);
          if (peer.channels.has(id)) {
            this.violate(
              `${label}: reported as not accepted (${describe(failure)}), yet the peer's application had it`,
            );
          }
        }
        if (graceful && channel.outbound && !peer.channels.has(id) && failure instanceof TransportClosedError) {
          this.violate(`${label}: never taken by the peer, yet failed as if the transport broke: ${describe(failure)}`);
        }
        const from = peer.channels.get(id);
        const sent = from?.sent ?? 0;
        if (record.received > sent) this.violate(`${label}: received ${record.received} bytes of ${sent} sent`);
        // On multiplex the end of a channel is a RST either way: complete only when the sender ended it
        // (not destroyed) and this side had not closed it first.
        const complete =
          yamux ||
          (from !== undefined &&
            from.ended &&
            !from.reset &&
            from.channel.failure === undefined &&
            !record.endedBeforeEnd);
        if (record.endEvents === 1 && !record.readClosed && complete && record.received !== sent) {
          this.violate(`${label}: the peer's end arrived after ${record.received} of ${sent} bytes`);
        }
        // A channel neither application reset or cut short, in a run without faults, between two sessions
        // that both closed cleanly, must have finished both ways.
        if (
          clean &&
          from !== undefined &&
          session.closeError === undefined &&
          peer.session.closeError === undefined &&
          !record.reset &&
          !from.reset &&
          !record.readClosed &&
          failure === undefined &&
          from.channel.failure === undefined &&
          record.endEvents !== 1
        ) {
          this.violate(`${label}: never got the peer's end though both sessions closed cleanly`);
        }
      }
    }
    for (const side of this.sides) for (const misuse of side.end.misuse.slice(0, 3)) this.violate(misuse);
    if (this.budget.reserved !== 0) this.violate(`memory budget: ${this.budget.reserved} bytes still reserved`);
    for (const signal of this.signals) {
      const left = getEventListeners(signal, 'abort').length;
      if (left !== 0) this.violate(`an AbortSignal kept ${left} listener(s)`);
    }
    if (this.clock.pending !== 0) this.violate(`timers left: ${this.clock.describePending().join('; ')}`);
  }
}
