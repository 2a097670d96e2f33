/**
 * The integrity workload: many channels, each carrying a random payload each way, written in random pieces
 * with backpressure, and checked byte for byte at the other end.
 *
 * It works for every codec, including ones without half-close (where `end()` closes both directions): each
 * side ends a channel only once it has written everything and received everything it expects.
 */
import { type Channel, type Session } from '../../src/index.js';
import { pseudoRandomBytes } from '../helpers.js';
import type { Rng } from './random.js';

export interface ChannelPlan {
  /** Bytes the client sends (after a 4-byte prelude naming the plan entry). */
  up: Buffer;
  /** Bytes the server sends back. */
  down: Buffer;
}

export interface ExchangePlan {
  channels: ChannelPlan[];
  /** Largest single write; writes are cut at random sizes up to it. */
  maxWrite: number;
}

/** A plan of `count` channels with payload sizes up to `maxSize` each way (log-uniform, so many small, some large). */
export function makePlan(rng: Rng, count: number, maxSize: number, maxWrite = 64 * 1024): ExchangePlan {
  const channels: ChannelPlan[] = [];
  for (let i = 0; i < count; i++) {
    channels.push({
      up: pseudoRandomBytes(rng.size(maxSize), rng.next() | 1),
      down: pseudoRandomBytes(rng.size(maxSize), rng.next() | 1),
    });
  }
  return { channels, maxWrite };
}

export interface ExchangeResult {
  channels: number;
  bytesUp: number;
  bytesDown: number;
  elapsedMs: number;
}

const PRELUDE = 4;

/** Writes `data` in random pieces, waiting for 'drain' when the channel asks; stops if the channel dies. */
async function writeAll(channel: Channel, data: Buffer, rng: Rng, maxWrite: number): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    if (channel.destroyed) throw channel.failure ?? new Error(`channel ${channel.id} closed while writing`);
    const size = Math.min(data.length - offset, rng.int(1, maxWrite));
    const more = channel.write(data.subarray(offset, offset + size));
    offset += size;
    if (!more) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          channel.off('drain', done);
          channel.off('close', done);
          resolve();
        };
        channel.on('drain', done);
        channel.on('close', done);
      });
    }
  }
}

function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

/** Receives exactly `expected.length` bytes (or, for the server, a prelude first), then waits for the end. */
class Receiver {
  private readonly chunks: Buffer[] = [];
  received = 0;
  constructor(readonly channel: Channel) {
    channel.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.received += chunk.length;
      this.onData?.();
    });
  }
  onData: (() => void) | undefined;
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Settles when the channel has closed: resolves after a clean end, rejects with its failure otherwise. */
function closed(channel: Channel): Promise<void> {
  return new Promise((resolve, reject) => {
    const finish = (): void => {
      if (channel.failure !== undefined) reject(channel.failure);
      else resolve();
    };
    if (channel.closed) finish();
    else channel.once('close', finish);
  });
}

/**
 * Runs the plan over a session pair: the client dials every channel (at most `concurrency` at once), both sides
 * write and read, and every byte is compared. Rejects on the first mismatch or channel error, or on timeout.
 */
export async function runExchange(
  client: Session,
  server: Session,
  plan: ExchangePlan,
  rng: Rng,
  options: { concurrency?: number; timeoutMs?: number } = {},
): Promise<ExchangeResult> {
  const started = performance.now();
  const serverRng = rng.fork();
  const failures: Error[] = [];
  const serverDone: Promise<void>[] = [];
  const onChannel = (channel: Channel): void => {
    channel.on('error', () => {});
    serverDone.push(
      serveChannel(channel, plan, serverRng).catch((error: unknown) => {
        failures.push(error as Error);
      }),
    );
  };
  server.on('channel', onChannel);
  const concurrency = Math.max(1, options.concurrency ?? plan.channels.length);
  let next = 0;
  let completed = 0;
  const worker = async (): Promise<void> => {
    while (next < plan.channels.length && failures.length === 0) {
      const index = next++;
      await dialChannel(client, plan, index, rng);
      completed++;
    }
  };
  const timeoutMs = options.timeoutMs ?? 60_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(`exchange timed out after ${timeoutMs} ms: ${completed} of ${plan.channels.length} channels done`),
        ),
      timeoutMs,
    );
  });
  try {
    await Promise.race([
      Promise.all(Array.from({ length: Math.min(concurrency, plan.channels.length) }, worker)),
      timeout,
    ]);
    await Promise.race([Promise.all(serverDone), timeout]);
  } finally {
    clearTimeout(timer);
    server.off('channel', onChannel);
  }
  if (failures.length > 0) throw failures[0]!;
  let bytesUp = 0;
  let bytesDown = 0;
  for (const channel of plan.channels) {
    bytesUp += channel.up.length;
    bytesDown += channel.down.length;
  }
  return { channels: plan.channels.length, bytesUp, bytesDown, elapsedMs: performance.now() - started };
}

async function dialChannel(client: Session, plan: ExchangePlan, index: number, rng: Rng): Promise<void> {
  const entry = plan.channels[index]!;
  const channel = client.dial();
  channel.on('error', () => {});
  const receiver = new Receiver(channel);
  const whenClosed = closed(channel);
  whenClosed.catch(() => {}); // awaited below, unless writing fails first
  const received = new Promise<void>((resolve, reject) => {
    const check = (): void => {
      if (receiver.received >= entry.down.length) resolve();
    };
    receiver.onData = check;
    check();
    channel.once('close', () => reject(channel.failure ?? new Error(`channel ${index} closed early`)));
  });
  received.catch(() => {});
  const prelude = Buffer.alloc(PRELUDE);
  prelude.writeUInt32BE(index);
  channel.write(prelude);
  await writeAll(channel, entry.up, rng.fork(), plan.maxWrite);
  await received;
  channel.end();
  await whenClosed.catch((error: unknown) => {
    throw new Error(`channel ${index} (client side) failed: ${(error as Error).message}`, { cause: error });
  });
  const got = receiver.bytes();
  if (!got.equals(entry.down)) {
    throw new Error(
      `channel ${index}: client received ${got.length} of ${entry.down.length} bytes, ` +
        `first difference at byte ${firstDifference(got, entry.down)}`,
    );
  }
}

async function serveChannel(channel: Channel, plan: ExchangePlan, rng: Rng): Promise<void> {
  const receiver = new Receiver(channel);
  const whenClosed = closed(channel);
  whenClosed.catch(() => {}); // awaited below, unless an earlier step fails first
  const prelude = await new Promise<number>((resolve, reject) => {
    const check = (): void => {
      if (receiver.received >= PRELUDE) {
        receiver.onData = undefined;
        resolve(receiver.bytes().readUInt32BE(0));
      }
    };
    receiver.onData = check;
    channel.once('close', () =>
      reject(channel.failure ?? new Error(`channel ${channel.id} closed before its prelude`)),
    );
    check();
  });
  const entry = plan.channels[prelude];
  if (entry === undefined)
    throw new Error(`server: channel ${channel.id} named plan entry ${prelude}, which does not exist`);
  const received = new Promise<void>((resolve, reject) => {
    const check = (): void => {
      if (receiver.received >= PRELUDE + entry.up.length) resolve();
    };
    receiver.onData = check;
    check();
    channel.once('close', () => reject(channel.failure ?? new Error(`channel ${prelude} closed early (server side)`)));
  });
  received.catch(() => {});
  await writeAll(channel, entry.down, rng.fork(), plan.maxWrite);
  await received;
  channel.end();
  await whenClosed.catch((error: unknown) => {
    throw new Error(`channel ${prelude} (server side) failed: ${(error as Error).message}`, { cause: error });
  });
  const got = receiver.bytes().subarray(PRELUDE);
  if (!got.equals(entry.up)) {
    throw new Error(
      `channel ${prelude}: server received ${got.length} of ${entry.up.length} bytes, ` +
        `first difference at byte ${firstDifference(got, entry.up)}`,
    );
  }
}
