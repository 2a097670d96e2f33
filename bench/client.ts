// Child process: the client side of one run. Connects to the server (or the long-fat proxy), runs one
// workload through the implementation, verifies what came back and reports figures to the runner.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { findImpl } from './impl/index.js';
import type { Channel, ClientSession, Dialer } from './impl/types.js';
import { BLOCKS_PER_YIELD, ChunkReader, drained, sleep, within, write, yieldToEventLoop } from './channel-io.js';
import {
  ACK_FINAL,
  ACK_LENGTH,
  BLOCK,
  RR_SIZE,
  UNBOUNDED,
  COUNT_OK,
  blockTemplate,
  decodeAck,
  encodeCountPreamble,
  encodePreamble,
  makeBlock,
  makeRequest,
} from './protocol.js';
import {
  cpuSince,
  errorText,
  measureMemory,
  reportCrashes,
  send,
  type ClientConfig,
  type ClientResult,
  type CpuSample,
} from './ipc.js';
import { percentile } from './stats.js';

reportCrashes('client');

const config = JSON.parse(process.argv[2] ?? '{}') as ClientConfig;
const params = config.params;

let progressText = '';
let progressSent = '';
function progress(text: string): void {
  progressText = text;
}
setInterval(() => {
  if (progressText !== progressSent) {
    progressSent = progressText;
    send({ type: 'progress', text: progressText });
  }
}, 250).unref();

// bulk-cold keeps Node's default sockets (Nagle on), as a user's first benchmark would.
const noDelay = config.workload !== 'bulk-cold';

const dialer: Dialer = {
  dial() {
    const s = net.connect({ host: '127.0.0.1', port: config.port, noDelay });
    if (noDelay) s.setNoDelay(true);
    return s;
  },
  connect() {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: config.port, noDelay });
      if (noDelay) s.setNoDelay(true);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
  },
};

let failSession: (err: Error) => void = () => {};
const sessionFailed = new Promise<never>((_, reject) => {
  failSession = reject;
});
sessionFailed.catch(() => {});

const now = (): number => performance.now();
const MB = 1e6;

// ---- CPU cost: the measured part of a workload, marked for the server too (through the runner) ----

let cpuMark: CpuSample | undefined;
let cpuUsed: CpuSample | undefined;
/**
 * The CPU the harness spent making fresh blocks inside the measured part (a 64 KiB allocation and copy each),
 * reported beside the client's figure, not taken out of it: what it measures includes the collections that an
 * allocation happens to run, which collect the whole process's garbage, so it differs by implementation (284
 * to 556 µs per MB in one run's bulk-1) and taking it out would move each implementation's figure by a
 * different amount (bench/README.md, "CPU cost").
 */
let harnessCpu: CpuSample = { userUs: 0, systemUs: 0 };

/** The measured part starts: this process's CPU clock, and the server's through the runner. */
function markStart(): void {
  send({ type: 'mark', phase: 'start' });
  harnessCpu = { userUs: 0, systemUs: 0 };
  cpuMark = cpuSince();
}

/** The measured part ends. */
function markEnd(): void {
  cpuUsed = cpuSince(cpuMark);
  send({ type: 'mark', phase: 'end' });
}

/** A fresh block, its making counted in {@link harnessCpu} while a measured part runs. */
function freshBlock(template: Buffer, tag: number, index: number): Buffer {
  if (cpuMark === undefined || cpuUsed !== undefined) return makeBlock(template, tag, index);
  const before = process.cpuUsage();
  const block = makeBlock(template, tag, index);
  const spent = process.cpuUsage(before);
  harnessCpu.userUs += spent.user;
  harnessCpu.systemUs += spent.system;
  return block;
}

/** The cost part of a result: this process's CPU over the marks, and the work done then in cost units. */
function costOf(units: number): ClientResult['cost'] {
  if (!cpuUsed) throw new Error('no measured part was marked');
  return { client: cpuUsed, units, harness: harnessCpu };
}

// ---- bulk (bulk-1, bulk-100, long-fat) ----

interface SinkOutcome {
  bytes: number; // acknowledged by the server
  endAt: number; // when the last counted acknowledgement arrived
  complete: boolean;
}

let blocksWritten = 0;
let acksSeen = 0;

async function runSink(session: ClientSession, tag: number, blocks: number, deadlineAt: number): Promise<SinkOutcome> {
  const ch = session.open();
  const reader = new ChunkReader(ch);
  const template = blockTemplate();
  const outcome: SinkOutcome = { bytes: 0, endAt: now(), complete: false };
  let stopped = false;

  const acks = (async () => {
    for (;;) {
      const ack = decodeAck(await reader.read(ACK_LENGTH));
      if (ack.stampErrors !== 0)
        throw new Error(`server found ${ack.stampErrors} corrupt block stamps on channel ${tag}`);
      outcome.bytes = ack.bytes;
      outcome.endAt = now();
      acksSeen++;
      if (ack.kind === ACK_FINAL) {
        if (ack.bytes !== blocks * BLOCK)
          throw new Error(`server acknowledged ${ack.bytes} bytes, sent ${blocks * BLOCK}`);
        if (ack.stampsChecked !== blocks * 2)
          throw new Error(`server checked ${ack.stampsChecked} stamps, expected ${blocks * 2}`);
        outcome.complete = true;
        return;
      }
      if (stopped) return;
    }
  })();
  acks.catch(() => {});

  const writer = (async () => {
    await write(ch, encodePreamble({ tag, blocks, ackEveryBlocks: params.ackEveryBlocks }));
    for (let b = 0; b < blocks; b++) {
      if (ch.destroyed) throw new Error(`channel ${tag} destroyed after ${b} blocks`);
      if (deadlineAt && (b & 15) === 0 && now() > deadlineAt) {
        stopped = true;
        return;
      }
      const p = write(ch, freshBlock(template, tag, b));
      if (p) await p;
      if (b % BLOCKS_PER_YIELD === BLOCKS_PER_YIELD - 1) await yieldToEventLoop();
      if ((++blocksWritten & 255) === 0) progress(`written ${blocksWritten / 16} MiB in all, ${acksSeen} acks`);
    }
    ch.end();
  })();

  // The deadline (long-fat) is enforced even while a write waits for 'drain'.
  const never = new Promise<never>(() => {});
  const timeUp = deadlineAt ? sleep(Math.max(0, deadlineAt - now())).then(() => 'deadline' as const) : never;
  const first = await Promise.race([writer.then(() => 'written' as const), acks.then(() => 'acked' as const), timeUp]);
  if (first === 'deadline') {
    stopped = true;
    return outcome; // what the server acknowledged by now
  }
  await Promise.race([writer, timeUp]);
  await Promise.race([acks, timeUp]);
  return outcome;
}

async function bulk(session: ClientSession): Promise<ClientResult> {
  markStart();
  const start = now();
  const deadlineAt = params.deadlineMs ? start + params.deadlineMs : 0;
  let done = 0;
  const outcomes = await Promise.all(
    Array.from({ length: params.channels }, (_, i) =>
      runSink(session, i + 1, params.blocks, deadlineAt).then((o) => {
        done++;
        progress(`${done}/${params.channels} channels acknowledged`);
        return o;
      }),
    ),
  );
  markEnd();
  const bytes = outcomes.reduce((s, o) => s + o.bytes, 0);
  const end = Math.max(...outcomes.map((o) => o.endAt));
  const complete = outcomes.every((o) => o.complete);
  if (!deadlineAt && !complete) throw new Error('a channel finished without its final acknowledgement');
  if (bytes === 0) throw new Error('no bytes acknowledged');
  const seconds = (end - start) / 1000;
  const notes: string[] = [];
  if (!complete)
    notes.push(`stopped at the ${params.deadlineMs / 1000} s deadline after ${(bytes / 2 ** 20).toFixed(0)} MiB`);
  return {
    figures: { MBps: bytes / MB / seconds, MiB: bytes / 2 ** 20, seconds },
    notes,
    cost: costOf(bytes / MB),
    expect: { sinkChannels: params.channels },
  };
}

/**
 * bulk-cold: the same 64 KiB Buffer written again and again, waiting for 'drain' whenever write() returns
 * false, then the server's "ok"; timed from the first write to the "ok".
 */
async function bulkCold(session: ClientSession): Promise<ClientResult> {
  const total = params.blocks * BLOCK;
  const ch = session.open();
  const reader = new ChunkReader(ch);
  const buf = Buffer.alloc(BLOCK, 0x61);
  markStart();
  const start = now();
  ch.write(encodeCountPreamble(total));
  for (let b = 0; b < params.blocks; b++) {
    if (!ch.write(buf)) await drained(ch);
    if ((b & 255) === 255) progress(`written ${(b + 1) / 16} MiB`);
  }
  const answer = await reader.read(COUNT_OK.length);
  const seconds = (now() - start) / 1000;
  markEnd();
  if (answer.toString('latin1') !== COUNT_OK)
    throw new Error(`server answered ${JSON.stringify(answer.toString('latin1'))}, not "ok"`);
  ch.end();
  return {
    figures: { MBps: total / MB / seconds, MiB: total / 2 ** 20, seconds },
    notes: [],
    cost: costOf(total / MB),
  };
}

// ---- open-10k ----

const CLOSE_WAIT_MS = 5000;

/**
 * One round of the README example: n channels opened at once, each writes "hello", reads the echo and ends.
 * Resolves with the round's duration in seconds (until the last echo), and whether every channel then closed
 * within {@link CLOSE_WAIT_MS}.
 */
async function openRound(
  session: ClientSession,
  n: number,
  round: number,
  onLastEcho: () => void = () => {},
): Promise<{ seconds: number; allClosed: boolean }> {
  const hello = Buffer.from('hello');
  let echoed = 0;
  let opened = 0;
  const start = now();
  const all: Promise<void>[] = [];
  // Counted in the 'close' listener each channel has anyway, so waiting for closes adds nothing to the timing.
  let closes = 0;
  let allClosed: () => void = () => {};
  const closed = new Promise<void>((resolve) => (allClosed = resolve));
  for (let i = 0; i < n; i++) {
    const ch = session.open();
    opened++;
    all.push(
      new Promise<void>((resolve, reject) => {
        let got: Buffer = Buffer.alloc(0);
        ch.on('error', reject);
        ch.on('close', () => {
          if (++closes === n) allClosed();
          reject(new Error(`channel closed after ${got.length} of 5 echoed bytes`)); // ignored once echoed
        });
        ch.on('data', (c: Buffer) => {
          got = got.length ? Buffer.concat([got, c]) : c;
          if (got.length < hello.length) return;
          if (!got.equals(hello)) {
            reject(new Error(`echo mismatch: ${JSON.stringify(got.toString('latin1'))}`));
            return;
          }
          echoed++;
          if ((echoed & 255) === 0) progress(`round ${round}: opened ${opened}/${n}, echoed ${echoed}`);
          ch.end();
          resolve();
        });
        ch.write(hello);
      }),
    );
  }
  progress(`round ${round}: opened ${opened}/${n}, echoed ${echoed}`);
  await Promise.all(all);
  const seconds = (now() - start) / 1000;
  onLastEcho();
  // Untimed: every channel fully closed (sockets and stream slots freed) before the next round; some
  // implementations (npm multiplex) never emit 'close' after both ends ended, so the wait is bounded.
  let timer: NodeJS.Timeout | undefined;
  const everyClosed = await Promise.race([
    closed.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), CLOSE_WAIT_MS))),
  ]);
  clearTimeout(timer);
  return { seconds, allClosed: everyClosed };
}

// The first round runs in fresh processes, as the README example does (the target's figure); the second, on
// the same session once the code is warm, shows what a long-running process sees.
async function openMany(session: ClientSession): Promise<ClientResult> {
  const n = params.channels;
  markStart();
  // The measured part, its CPU as its time, ends at the last echo: the closes that follow are outside it (their
  // wait is bounded by a timeout for implementations that never emit 'close', which CPU would count).
  const cold = await openRound(session, n, 1, markEnd);
  const warm = await openRound(session, n, 2);
  const notes = cold.allClosed
    ? []
    : [`channels of the first round did not all emit 'close' within ${CLOSE_WAIT_MS / 1000} s after ending`];
  return {
    figures: { perSec: n / cold.seconds, channels: n, seconds: cold.seconds, warmPerSec: n / warm.seconds },
    notes,
    cost: costOf(n),
    expect: { echoChannels: 2 * n },
  };
}

// ---- rr-1, rr-100, fairness ----

const STALL_MS = 5000;

async function roundTrips(
  reader: ChunkReader,
  ch: Channel,
  tag: number,
  count: number,
  samples: Float64Array | null,
  at: number,
) {
  for (let i = 0; i < count; i++) {
    const req = makeRequest(tag, at + i);
    const t0 = now();
    const p = write(ch, req);
    if (p) await p;
    const resp = await within(
      reader.read(RR_SIZE),
      STALL_MS,
      () =>
        `channel ${tag}: no response to request ${at + i} within ${STALL_MS / 1000} s (${reader.buffered} bytes buffered)`,
    );
    const t1 = now();
    if (!resp.equals(req)) throw new Error(`channel ${tag}: response ${at + i} differs from its request`);
    if (samples) samples[i] = (t1 - t0) * 1000; // µs
  }
}

/** Unmeasured round trips: at least params.warmup of them and for at least params.warmupMs. Returns the count. */
async function warmUp(reader: ChunkReader, ch: Channel, tag: number): Promise<number> {
  const until = now() + params.warmupMs;
  let done = 0;
  for (let round = 0; round < 10_000 && (done < params.warmup || now() < until); round++) {
    const k = Math.max(1, Math.min(100, params.warmup));
    await roundTrips(reader, ch, tag, k, null, done);
    done += k;
  }
  return done;
}

async function rr(session: ClientSession): Promise<ClientResult> {
  const n = params.channels;
  const chans = Array.from({ length: n }, () => {
    const ch = session.open();
    return { ch, reader: new ChunkReader(ch) };
  });
  const warmed = await Promise.all(chans.map((c, i) => warmUp(c.reader, c.ch, i + 1)));
  progress('warm-up done');
  const samples = chans.map(() => new Float64Array(params.rounds));
  markStart();
  const start = now();
  await Promise.all(chans.map((c, i) => roundTrips(c.reader, c.ch, i + 1, params.rounds, samples[i]!, warmed[i]!)));
  const seconds = (now() - start) / 1000;
  markEnd();
  for (const c of chans) c.ch.end();
  const all = new Float64Array(n * params.rounds);
  samples.forEach((s, i) => all.set(s, i * params.rounds));
  all.sort();
  return {
    figures: {
      p50: percentile(all, 0.5),
      p99: percentile(all, 0.99),
      max: all[all.length - 1]!,
      rtPerSec: all.length / seconds,
    },
    notes: [],
    cost: costOf(all.length),
    expect: { echoChannels: n },
  };
}

async function fairness(session: ClientSession): Promise<ClientResult> {
  const rrCh = session.open();
  const rrReader = new ChunkReader(rrCh);
  const warmed = await warmUp(rrReader, rrCh, 1);
  const idle = new Float64Array(params.baselineRounds);
  await roundTrips(rrReader, rrCh, 1, params.baselineRounds, idle, warmed);
  idle.sort();
  progress('baseline done, starting bulk');

  // The bulk channel: unbounded SINK with progress acks every MiB.
  const bulkCh = session.open();
  const bulkReader = new ChunkReader(bulkCh);
  let acked = 0;
  let stop = false;
  let firstAck!: () => void;
  const flowing = new Promise<void>((r) => (firstAck = r));
  const acks = (async () => {
    while (!stop) {
      const ack = decodeAck(await bulkReader.read(ACK_LENGTH));
      if (ack.stampErrors) throw new Error(`bulk channel: ${ack.stampErrors} corrupt block stamps`);
      acked = ack.bytes;
      firstAck();
    }
  })();
  acks.catch(() => {});
  const writer = (async () => {
    const template = blockTemplate();
    await write(bulkCh, encodePreamble({ tag: 2, blocks: UNBOUNDED, ackEveryBlocks: params.ackEveryBlocks }));
    for (let b = 0; !stop && b < 0x7fffffff; b++) {
      if (bulkCh.destroyed) throw new Error('bulk channel destroyed');
      const p = write(bulkCh, makeBlock(template, 2, b));
      if (p) await p;
      if (b % BLOCKS_PER_YIELD === BLOCKS_PER_YIELD - 1) await yieldToEventLoop();
    }
  })();
  writer.catch(() => {});
  await Promise.race([
    flowing,
    writer,
    acks,
    sleep(5000).then(() => Promise.reject(new Error('bulk channel made no progress in 5 s'))),
  ]);

  const during = new Float64Array(params.rounds);
  const ackedBefore = acked;
  const start = now();
  await Promise.race([
    roundTrips(rrReader, rrCh, 1, params.rounds, during, warmed + params.baselineRounds),
    writer.then(() => Promise.reject(new Error('bulk writer stopped early'))),
    acks.then(() => Promise.reject(new Error('bulk ack reader stopped early'))),
  ]);
  const seconds = (now() - start) / 1000;
  const bulkBytes = acked - ackedBefore;
  stop = true;
  rrCh.end();
  during.sort();
  const p99Bulk = percentile(during, 0.99);
  const p99Idle = percentile(idle, 0.99);
  const notes: string[] = [];
  if (bulkBytes === 0) throw new Error('bulk channel delivered nothing while round trips ran (starved)');
  return {
    figures: {
      p50Bulk: percentile(during, 0.5),
      p99Bulk,
      p99Idle,
      p99Factor: p99Bulk / p99Idle,
      bulkMBps: bulkBytes / MB / seconds,
    },
    notes,
  };
}

// ---- idle ----

let retained: unknown = null;
export const retainedForMeasurement = (): unknown => retained;

async function idle(
  session: ClientSession,
  base: Awaited<ReturnType<typeof measureMemory>>,
  glue: number,
): Promise<ClientResult> {
  const n = params.channels;
  const batch = params.batch || n;
  const channels = new Array<Channel>(n);
  const ping = Buffer.from('i');
  let errors = 0;
  let lastError = '';
  const onError = (err: Error): void => {
    errors++;
    lastError = errorText(err);
  };
  for (let off = 0; off < n; off += batch) {
    const size = Math.min(batch, n - off);
    await new Promise<void>((resolve, reject) => {
      let pending = size;
      const finish = (err?: Error): void => {
        clearInterval(check);
        if (err) reject(err);
        else resolve();
      };
      // Channel errors are polled rather than wired per channel (keeps per-channel state minimal).
      const check = setInterval(() => {
        if (errors) finish(new Error(`${errors} channel errors, last: ${lastError}`));
      }, 100);
      const onEcho = (c: Buffer): void => {
        if (c.length !== 1 || c[0] !== ping[0]) finish(new Error('idle echo mismatch'));
        else if (--pending === 0) finish();
      };
      for (let i = 0; i < size; i++) {
        const ch = session.open();
        ch.on('error', onError);
        ch.once('data', onEcho);
        ch.write(ping);
        channels[off + i] = ch;
      }
    });
    progress(`${off + size}/${n} idle channels open`);
  }
  retained = channels; // keep every channel reachable while memory is measured
  const after = await measureMemory();
  if (errors) throw new Error(`${errors} channel errors, last: ${lastError}`);
  return {
    figures: {
      channels: n,
      clientHeapB: (after.heapUsed - base.heapUsed) / n,
      clientRssB: (after.rss - base.rss) / n,
      clientExternalB: (after.external - base.external) / n,
    },
    notes: glue
      ? [`heap figures include about ${glue} B/channel of harness glue (a Duplex wrapper per channel, on each side)`]
      : [],
    expect: { echoChannels: n },
  };
}

// ---- main ----

async function main(): Promise<void> {
  const impl = await findImpl(config.impl).load();
  const base = await measureMemory();
  const hooks = { onError: (err: Error) => failSession(new Error(`client session: ${errorText(err)}`)) };
  progress('connecting');
  const session = await impl.client(dialer, { maxChannels: config.maxChannels }, hooks);
  progress('connected');
  let run: Promise<ClientResult>;
  switch (config.workload) {
    case 'bulk-1':
    case 'bulk-100':
    case 'long-fat':
      run = bulk(session);
      break;
    case 'bulk-cold':
      run = bulkCold(session);
      break;
    case 'open-10k':
      run = openMany(session);
      break;
    case 'rr-1':
    case 'rr-100':
      run = rr(session);
      break;
    case 'fairness':
      run = fairness(session);
      break;
    case 'idle':
      run = idle(session, base, impl.glueBytesPerChannel ?? 0);
      break;
    default:
      throw new Error(`unknown workload ${String(config.workload)}`);
  }
  const result = await Promise.race([run, sessionFailed]);
  send({ type: 'result', result });
}

main().catch((err: unknown) => {
  send({ type: 'error', message: errorText(err) });
  setTimeout(() => process.exit(1), 50).unref();
});
