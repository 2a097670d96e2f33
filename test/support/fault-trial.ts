/**
 * One randomized fault trial: a session pair runs channels both ways through the fault proxy, with reads,
 * writes, dials, accepts and a ping pending, and the proxy cuts the transport at a random byte. It records
 * when and how every pending operation settled and what each side received, and checks: everything settles
 * within a bound after the cut, with a typed error; each side received an exact prefix of what the other
 * sent; no listener or socket is left behind.
 */
import { getEventListeners } from 'node:events';
import { type Channel, MuxError, type SessionOptions } from '../../src/index.js';
import { pseudoRandomBytes } from '../helpers.js';
import { type CutInfo, type CutMode, type Direction } from './fault-proxy.js';
import type { CodecUnderTest } from './codecs.js';
import { proxiedPair } from './pairs.js';
import { Rng } from './random.js';

/** One pending operation and how it settled. */
export interface Operation {
  kind: 'read' | 'write' | 'dial' | 'accept' | 'ping' | 'session';
  side: 'client' | 'server';
  /** `performance.now()` when it settled, or undefined while pending. */
  settledAt: number | undefined;
  /** The error it settled with, if any. */
  error: unknown;
}

/** One direction of one channel: what its writer sent and what its reader got. */
interface Flow {
  label: string;
  sent: Buffer;
  received: Buffer[];
  /** The reader never reads (its window fills; the writer's later writes stay pending). */
  paused: boolean;
}

export interface TrialOutcome {
  seed: number;
  /** The cut, if it happened (at the chosen byte, or by hand once the traffic settled first). */
  cut: CutInfo | undefined;
  cutDirection: Direction;
  cutAtByte: number;
  cutMode: CutMode;
  operations: Operation[];
  /** What the trial found wrong; empty when every property held. */
  problems: string[];
  /**
   * Violations that are known muxwire bugs, kept apart so the trial still checks everything else: raw transport
   * errors (EPIPE, ECONNRESET) reaching channels instead of a MuxError, and `channel.failure` left unset.
   */
  knownBugs: string[];
  /** How many operations settled with each error code. */
  codes: Record<string, number>;
  /** Milliseconds from the cut to the last operation settling. */
  settleMs: number;
}

export interface TrialOptions {
  /** Bound on settling after the cut, in ms (default 1000). */
  settleBoundMs?: number;
  /** Attach an 'error' listener to every channel, as careful applications do (default true). */
  errorListeners?: boolean;
  /** Session options selecting the codec (default: yamux). */
  codec?: CodecUnderTest;
  /**
   * Let some readers never read (default true). Off for codecs without flow control, where one such reader
   * pauses the whole transport (see the todo tests on paused sessions in faults.test.ts).
   */
  pausedReaders?: boolean;
}

/** The codes a cut transport may legitimately produce. */
const EXPECTED_CODES = new Set([
  'ERR_MUX_TRANSPORT_CLOSED',
  'ERR_MUX_SESSION_CLOSED',
  'ERR_MUX_CHANNEL_RESET',
  'ERR_MUX_KEEPALIVE_TIMEOUT',
]);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs one trial with every choice drawn from `seed`. */
export async function runFaultTrial(seed: number, options: TrialOptions = {}): Promise<TrialOutcome> {
  const rng = new Rng(seed);
  const bound = options.settleBoundMs ?? 1000;
  const errorListeners = options.errorListeners ?? true;
  const problems: string[] = [];
  const knownBugs: string[] = [];
  const operations: Operation[] = [];
  const track = (kind: Operation['kind'], side: Operation['side'], promise: Promise<unknown>): void => {
    const op: Operation = { kind, side, settledAt: undefined, error: undefined };
    operations.push(op);
    promise.then(
      () => {
        op.settledAt = performance.now();
      },
      (error: unknown) => {
        op.settledAt = performance.now();
        op.error = error;
      },
    );
  };

  // ---- the plan
  const clientChannels = rng.int(1, 6);
  const serverChannels = rng.int(0, 3);
  const maxPayload = rng.pick([2_000, 100_000, 600_000]);
  const payload = (): Buffer => pseudoRandomBytes(rng.size(maxPayload), rng.next() | 1);
  const up = Array.from({ length: clientChannels }, payload);
  const down = Array.from({ length: clientChannels }, payload);
  const pushed = Array.from({ length: serverChannels }, payload);
  const pushedBack = Array.from({ length: serverChannels }, payload);
  const sum = (list: Buffer[]): number => list.reduce((n, b) => n + b.length, 0);
  const cutDirection: Direction = rng.chance(0.5) ? 'upstream' : 'downstream';
  const estimate = (cutDirection === 'upstream' ? sum(up) + sum(pushedBack) : sum(down) + sum(pushed)) + 12 * 40;
  const cutAtByte = rng.int(0, Math.floor(estimate * 0.9));
  const cutMode: CutMode = rng.chance(0.5) ? 'reset' : 'end';
  const keepAlive: SessionOptions = rng.chance(0.3)
    ? { keepAliveInterval: rng.int(20, 200), keepAliveTimeout: 5000 }
    : { keepAliveInterval: 0 };
  const codec = options.codec;
  const pausedShare = (options.pausedReaders ?? true) ? 0.2 : 0;
  const pings = codec === undefined || codec.name === 'yamux';
  const sessionOptions: SessionOptions = {
    ...(pings ? keepAlive : {}),
    ackBacklog: rng.int(1, 4),
    maxFrameSize: rng.pick([1024, 4096, 16384]),
    ...codec?.options,
  };
  const split = rng.chance(0.5) ? { split: { maxPiece: rng.int(1, 3000) } } : {};
  const latency = rng.chance(0.5) ? ([0, 3] as const) : 0;

  const pair = await proxiedPair({
    proxy: {
      seed,
      both: { ...split, latencyMs: latency },
      [cutDirection]: { ...split, latencyMs: latency, cutAtByte, cutMode },
    },
    client: sessionOptions,
    server: sessionOptions,
  });
  const { client, server } = pair;
  const proxy = pair.proxy!;
  let cut: CutInfo | undefined;
  proxy.on('cut', (info: CutInfo) => {
    cut ??= info;
  });

  const flows: Flow[] = [];
  // A dial is pending until the peer acknowledges the channel (or it fails): watched by polling its state.
  const dialWatch = new Set<{ channel: Channel; resolve: () => void }>();
  const poller = setInterval(() => {
    for (const watch of dialWatch) {
      if (watch.channel.protocolState !== 'init' && watch.channel.protocolState !== 'syn-sent') {
        dialWatch.delete(watch);
        watch.resolve();
      }
    }
  }, 5);
  /** The error a closed channel reports: `failure`, else what its 'error' event carried (a known bug). */
  const emitted = new WeakMap<Channel, Error>();
  const failureOf = (channel: Channel, label: string): Error => {
    if (channel.failure !== undefined) return channel.failure;
    const error = emitted.get(channel);
    if (error !== undefined) {
      knownBugs.push(`${label}: channel.failure unset after it failed with ${(error as { code?: string }).code}`);
      return error;
    }
    return new Error(`${label}: closed with no failure recorded`);
  };
  const listen = (channel: Channel): void => {
    if (!errorListeners || emitted.has(channel)) return;
    channel.on('error', (error: Error) => {
      if (!emitted.has(channel)) emitted.set(channel, error);
    });
  };
  const trackDial = (side: Operation['side'], channel: Channel, label: string): void => {
    listen(channel);
    track(
      'dial',
      side,
      new Promise<void>((resolve, reject) => {
        dialWatch.add({ channel, resolve });
        channel.once('close', () => reject(failureOf(channel, label)));
      }),
    );
  };

  /** Reads `incoming` (unless its reader is paused) and writes `outgoing` in random pieces, tracking both. */
  const drive = (channel: Channel, side: Operation['side'], label: string, outgoing: Buffer, incoming: Flow): void => {
    listen(channel);
    track(
      'read',
      side,
      new Promise<void>((resolve, reject) => {
        channel.once('end', resolve);
        channel.once('close', () => (channel.readableEnded ? resolve() : reject(failureOf(channel, label))));
      }),
    );
    const read = (): void => void channel.on('data', (chunk: Buffer) => incoming.received.push(chunk));
    // A paused reader is an application not reading for now: it comes back to read once the session has
    // ended, and gets what arrived, then the error (README, "Closing": a failed session's channels keep it).
    if (!incoming.paused) read();
    else if (channel.session.state === 'closed') setImmediate(read);
    else channel.session.once('close', () => setImmediate(read));
    const writeRng = rng.fork();
    for (let offset = 0; offset < outgoing.length && !channel.destroyed;) {
      const size = Math.min(outgoing.length - offset, writeRng.int(1, 80_000));
      const piece = outgoing.subarray(offset, offset + size);
      offset += size;
      track(
        'write',
        side,
        new Promise<void>((resolve, reject) => {
          channel.write(piece, (error) => (error ? reject(error) : resolve()));
        }),
      );
    }
  };

  // ---- the client dials; the server accepts some channels and leaves the rest waiting (pending dials)
  const dialled = new Map<number, { i: number; toServer: Flow }>();
  for (let i = 0; i < clientChannels; i++) {
    const channel = client.dial();
    const toServer: Flow = {
      label: `client channel ${i} up`,
      sent: up[i]!,
      received: [],
      paused: rng.chance(pausedShare),
    };
    const toClient: Flow = {
      label: `client channel ${i} down`,
      sent: down[i]!,
      received: [],
      paused: rng.chance(pausedShare),
    };
    flows.push(toServer, toClient);
    dialled.set(channel.id, { i, toServer });
    trackDial('client', channel, `client dial ${i}`);
    drive(channel, 'client', `client channel ${i}`, up[i]!, toClient);
  }
  const drawn = rng.int(0, clientChannels);
  // (channels left unaccepted are unread too: with pausedReaders off, every channel is accepted)
  const accepting = pausedShare > 0 ? drawn : clientChannels;
  for (let n = 0; n < accepting; n++) {
    const accepted = server.accept();
    track('accept', 'server', accepted);
    accepted.then(
      (channel) => {
        const entry = dialled.get(channel.id);
        if (entry === undefined) problems.push(`server accepted unknown channel ${channel.id}`);
        else drive(channel, 'server', `server side of channel ${entry.i}`, down[entry.i]!, entry.toServer);
      },
      () => {},
    );
  }
  if (accepting === clientChannels) track('accept', 'server', server.accept()); // pending until the cut

  // ---- the server pushes channels; the client accepts them, plus one accept that stays pending
  const pushedChannels = new Map<number, { j: number; toClient: Flow }>();
  for (let j = 0; j < serverChannels; j++) {
    const channel = server.dial();
    const toClient: Flow = {
      label: `pushed channel ${j} down`,
      sent: pushed[j]!,
      received: [],
      paused: rng.chance(pausedShare),
    };
    const toServer: Flow = {
      label: `pushed channel ${j} up`,
      sent: pushedBack[j]!,
      received: [],
      paused: rng.chance(pausedShare),
    };
    flows.push(toClient, toServer);
    pushedChannels.set(channel.id, { j, toClient });
    trackDial('server', channel, `server dial ${j}`);
    drive(channel, 'server', `pushed channel ${j}`, pushed[j]!, toServer);
  }
  const abort = new AbortController();
  for (let j = 0; j <= serverChannels; j++) {
    const accepted = client.accept({ signal: abort.signal });
    track('accept', 'client', accepted);
    accepted.then(
      (channel) => {
        const entry = pushedChannels.get(channel.id);
        if (entry === undefined) problems.push(`client accepted unknown channel ${channel.id}`);
        else drive(channel, 'client', `client side of pushed channel ${entry.j}`, pushedBack[entry.j]!, entry.toClient);
      },
      () => {},
    );
  }
  if (pings) track('ping', 'client', client.ping());
  track('session', 'client', client.closed);
  track('session', 'server', server.closed);

  // ---- wait for the cut; if the traffic settles first (the cut byte lay beyond it), cut by hand
  const started = performance.now();
  // Quiet: under 100 bytes in 60 ms (keep-alive pings alone never stop the counter).
  let windowStart = { at: started, forwarded: 0 };
  while (cut === undefined && performance.now() - started < 15_000) {
    await sleep(10);
    const totals = proxy.totals;
    const forwarded = totals.upstream.forwarded + totals.downstream.forwarded;
    const now = performance.now();
    if (now - windowStart.at < 60) continue;
    if (forwarded - windowStart.forwarded < 100) proxy.cut(cutMode);
    else windowStart = { at: now, forwarded };
  }
  if (cut === undefined) {
    proxy.cut(cutMode);
    problems.push('the traffic did not settle within 15 s; cut by hand');
  }
  const cutAt = cut?.at ?? performance.now();
  const deadline = cutAt + bound + 500; // wait past the bound, to report how late the late ones are
  while (operations.some((op) => op.settledAt === undefined) && performance.now() < deadline) await sleep(5);
  clearInterval(poller);

  // ---- checks
  let settleMs = 0;
  const codes: Record<string, number> = {};
  for (const op of operations) {
    if (op.settledAt === undefined) {
      problems.push(`${op.side} ${op.kind} still pending ${(performance.now() - cutAt).toFixed(0)} ms after the cut`);
      continue;
    }
    const late = op.settledAt - cutAt;
    settleMs = Math.max(settleMs, late);
    if (late > bound) problems.push(`${op.side} ${op.kind} settled ${late.toFixed(0)} ms after the cut`);
    if (op.error === undefined) continue;
    const error = op.error as { code?: unknown; message?: string };
    const code = typeof error.code === 'string' ? error.code : 'untyped';
    codes[code] = (codes[code] ?? 0) + 1;
    if (!(op.error instanceof MuxError) && (code === 'EPIPE' || code === 'ECONNRESET')) {
      knownBugs.push(`${op.side} ${op.kind} settled with the transport's raw ${code} instead of a MuxError`);
    } else if (!(op.error instanceof MuxError)) {
      problems.push(`${op.side} ${op.kind} settled with an error that is not a MuxError: ${code}: ${error.message}`);
    } else if (!EXPECTED_CODES.has(op.error.code)) {
      problems.push(`${op.side} ${op.kind} settled with unexpected ${op.error.code}: ${op.error.message}`);
    }
  }
  for (const flow of flows) {
    const got = Buffer.concat(flow.received);
    if (got.length > flow.sent.length || !flow.sent.subarray(0, got.length).equals(got)) {
      problems.push(`${flow.label}: the ${got.length} bytes received are not a prefix of the ${flow.sent.length} sent`);
    }
  }
  for (const [side, session] of [
    ['client', client],
    ['server', server],
  ] as const) {
    if (session.state !== 'closed') problems.push(`${side} session is ${session.state} after the cut`);
    try {
      session.dial();
      problems.push(`${side}: dial() after the cut did not throw`);
    } catch (error) {
      if (!(error instanceof MuxError))
        problems.push(`${side}: dial() after the cut threw ${String(error)}, not a MuxError`);
    }
  }
  if (getEventListeners(abort.signal, 'abort').length !== 0)
    problems.push('accept() left a listener on its AbortSignal');
  // A socket is `destroyed` at once, but its 'close' (where the session's transport lets go of its listeners)
  // comes only once the handle has closed: wait for both, within the bound.
  const socketsBy = performance.now() + bound;
  const released = (socket: typeof pair.clientSocket): boolean =>
    socket.destroyed && socket.listenerCount('data') === 0;
  while ((!released(pair.clientSocket) || !released(pair.serverSocket)) && performance.now() < socketsBy)
    await sleep(5);
  for (const [side, socket] of [
    ['client', pair.clientSocket],
    ['server', pair.serverSocket],
  ] as const) {
    if (!socket.destroyed) problems.push(`${side} socket not destroyed after its session failed`);
    if (socket.listenerCount('data') !== 0) problems.push(`${side} socket still has a data listener`);
  }
  await pair.close();
  return { seed, cut, cutDirection, cutAtByte, cutMode, operations, problems, knownBugs, codes, settleMs };
}
