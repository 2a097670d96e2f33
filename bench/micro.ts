// `npm run bench:micro [-- options]`: micro-benchmarks of muxwire's pure pieces, in one process, no sockets:
// header encoding, batch packing, the write scheduler (small writes, large writes, round-robin over 1,000
// channels) and the frame decoder (whole buffers and small chunks). Each case checks its output, warms up,
// then takes several timed samples and reports the median.
//
// The core is loaded at run time from the build output through the package's own name ('muxwire/core'
// resolves to dist/src/core/index.js), as impl/muxwire.ts does: compiling bench/ never compiles src/.
import { writeFileSync } from 'node:fs';

// ---- the slice of muxwire/core used here ----

interface FrameHeader {
  version: number;
  type: number;
  flags: number;
  streamId: number;
  length: number;
}
interface FrameSink {
  onHeader(header: FrameHeader): void;
  onPayload(chunk: Uint8Array, start: number, end: number): void;
  onFrameEnd(header: FrameHeader): void;
  onDecodeError(message: string): void;
}
interface FrameDecoder {
  push(chunk: Uint8Array): void;
  readonly isStopped: boolean;
}
interface FrameBatch {
  readonly bytes: number;
  readonly done: unknown[];
  header(type: number, flags: number, streamId: number, length: number): void;
  payload(data: Uint8Array): void;
  finish(): Uint8Array[];
}
interface ChannelState {
  state: string;
  sendWindow: number;
  queuedBytes: number;
  enqueue(data: Uint8Array, done: ((error?: Error | null) => void) | null): void;
}
interface WriteScheduler {
  readonly idle: boolean;
  scheduleData(channel: ChannelState): void;
  fill(batch: FrameBatch, limit: number): void;
}
interface Core {
  HEADER_SIZE: number;
  FrameType: { data: number; windowUpdate: number };
  encodeHeader(target: Uint8Array, offset: number, type: number, flags: number, streamId: number, length: number): void;
  FrameDecoder: new (sink: FrameSink) => FrameDecoder;
  FrameBatch: new (allocate: (size: number) => Uint8Array) => FrameBatch;
  WriteScheduler: new (
    maxFrameSize: number,
    hooks: { onFlagsSent(channel: ChannelState, flags: number): void },
  ) => WriteScheduler;
  ChannelState: new (id: number, outbound: boolean, initialWindow: number, maxWindow: number) => ChannelState;
}

const SPECIFIER = 'muxwire/core';

async function loadCore(): Promise<Core> {
  let mod: Partial<Core>;
  try {
    mod = (await import(SPECIFIER)) as Partial<Core>;
  } catch (err) {
    throw new Error(`cannot load ${SPECIFIER} (run \`npm run build\` first): ${(err as Error).message}`, {
      cause: err,
    });
  }
  const needed = ['encodeHeader', 'FrameDecoder', 'FrameBatch', 'WriteScheduler', 'ChannelState'] as const;
  const missing = needed.filter((k) => typeof mod[k] !== 'function');
  if (missing.length || typeof mod.HEADER_SIZE !== 'number' || !mod.FrameType) {
    throw new Error(
      `${SPECIFIER} lacks ${missing.join(', ') || 'HEADER_SIZE/FrameType'}; the micro-benchmarks need updating`,
    );
  }
  return mod as Core;
}

// ---- options ----

interface Options {
  filter?: RegExp;
  reps: number;
  sampleMs: number;
  warmupMs: number;
  json?: string;
}

const USAGE = `usage: npm run bench:micro -- [--filter REGEX] [--reps N] [--ms SAMPLE_MS] [--warmup MS] [--json FILE]
  defaults: 7 samples of >= 200 ms each after >= 300 ms of warm-up, per case; the median is reported`;

function parseArgs(argv: string[]): Options {
  const o: Options = { reps: 7, sampleMs: 200, warmupMs: 300 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const positive = (v: string): number => {
      const n = Number(v);
      if (!(n > 0)) throw new Error(`${a} needs a positive number`);
      return n;
    };
    switch (a) {
      case '--filter':
        o.filter = new RegExp(value(), 'i');
        break;
      case '--reps':
        o.reps = Math.round(positive(value()));
        break;
      case '--ms':
        o.sampleMs = positive(value());
        break;
      case '--warmup':
        o.warmupMs = positive(value());
        break;
      case '--json':
        o.json = value();
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a}\n${USAGE}`);
    }
  }
  return o;
}

// ---- cases ----

interface Case {
  name: string;
  /** what one op is */
  op: string;
  /** ops and bytes in one call of run() */
  ops: number;
  bytes: number;
  /** one unit of work; throws if the output is wrong */
  run(this: void): void;
  /** a fuller, untimed check of the output, run once first */
  check?(): void;
}

const KiB = 1024;
/** The session's batch limit (src/core/session.ts BATCH_LIMIT): the scheduler fills batches up to this. */
const BATCH_LIMIT = 1024 * KiB;
const allocate = (size: number): Uint8Array => Buffer.allocUnsafe(size);
const noop = (): void => {};

function fail(what: string): never {
  throw new Error(`micro-benchmark output check failed: ${what}`);
}

function fillPattern(n: number, seed: number): Uint8Array {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/** A stream of frames: `count` Data frames of `payload` bytes on ids 1, 3, 5, ...; every `wuEvery`th a Window Update. */
function frameStream(
  core: Core,
  count: number,
  payload: number,
  wuEvery: number,
): { buf: Uint8Array; frames: number; payloadBytes: number; idSum: number } {
  const H = core.HEADER_SIZE;
  let size = 0;
  for (let i = 0; i < count; i++) size += H + (wuEvery > 0 && i % wuEvery === wuEvery - 1 ? 0 : payload);
  const buf = Buffer.allocUnsafe(size);
  const body = fillPattern(payload, 7);
  let off = 0;
  let payloadBytes = 0;
  let idSum = 0;
  for (let i = 0; i < count; i++) {
    const id = 1 + 2 * (i % 100);
    idSum += id;
    if (wuEvery > 0 && i % wuEvery === wuEvery - 1) {
      core.encodeHeader(buf, off, core.FrameType.windowUpdate, 0, id, 64 * KiB);
      off += H;
    } else {
      core.encodeHeader(buf, off, core.FrameType.data, 0, id, payload);
      buf.set(body, off + H);
      off += H + payload;
      payloadBytes += payload;
    }
  }
  return { buf, frames: count, payloadBytes, idSum };
}

function chunks(buf: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, Math.min(buf.length, i + size)));
  return out;
}

/** A decoder over a counting sink, checked after each pass. */
function decodeCase(core: Core, name: string, stream: ReturnType<typeof frameStream>, pieces: Uint8Array[]): Case {
  const seen = { frames: 0, ends: 0, payload: 0, idSum: 0, error: '' };
  const sink: FrameSink = {
    onHeader(h) {
      seen.frames++;
      seen.idSum += h.streamId;
    },
    onPayload(_chunk, start, end) {
      seen.payload += end - start;
    },
    onFrameEnd() {
      seen.ends++;
    },
    onDecodeError(message) {
      seen.error = message;
    },
  };
  return {
    name,
    op: 'frame',
    ops: stream.frames,
    bytes: stream.buf.length,
    run() {
      seen.frames = seen.ends = seen.payload = seen.idSum = 0;
      const decoder = new core.FrameDecoder(sink);
      // eslint-disable-next-line @typescript-eslint/prefer-for-of -- the timed loop stays as earlier runs measured it
      for (let i = 0; i < pieces.length; i++) decoder.push(pieces[i]!);
      if (seen.error) fail(`${name}: ${seen.error}`);
      if (
        seen.frames !== stream.frames ||
        seen.ends !== stream.frames ||
        seen.payload !== stream.payloadBytes ||
        seen.idSum !== stream.idSum
      ) {
        fail(
          `${name}: decoded ${seen.frames} frames / ${seen.payload} payload bytes, expected ${stream.frames} / ${stream.payloadBytes}`,
        );
      }
    },
  };
}

/** Channels ready to send, with a scheduler; `writes` writes of `size` bytes queued on each per run. */
function schedulerCase(
  core: Core,
  name: string,
  channels: number,
  writes: number,
  size: number,
  maxFrameSize: number,
): Case & { record: number[] | null } {
  const scheduler = new core.WriteScheduler(maxFrameSize, { onFlagsSent: noop });
  const list: ChannelState[] = [];
  for (let i = 0; i < channels; i++) {
    const ch = new core.ChannelState(1 + 2 * i, true, 256 * KiB, 256 * KiB);
    ch.state = 'established';
    list.push(ch);
  }
  const data = fillPattern(size, 3);
  const totalBytes = channels * writes * size;
  const framesPerChannel = Math.ceil((writes * size) / maxFrameSize);
  const c: Case & { record: number[] | null } = {
    name,
    op: writes * size > maxFrameSize ? 'frame' : 'write',
    ops: writes * size > maxFrameSize ? channels * framesPerChannel : channels * writes,
    bytes: totalBytes,
    record: null,
    run() {
      for (let i = 0; i < channels; i++) {
        const ch = list[i]!;
        ch.sendWindow = 1 << 30;
        for (let w = 0; w < writes; w++) ch.enqueue(data, noop);
        scheduler.scheduleData(ch);
      }
      let bytes = 0;
      while (!scheduler.idle) {
        const batch = new core.FrameBatch(allocate);
        scheduler.fill(batch, BATCH_LIMIT);
        const parts = batch.finish();
        if (batch.bytes === 0 || parts.length === 0) fail(`${name}: empty batch`);
        bytes += batch.bytes;
        if (c.record) c.record.push(...headerIds(core, parts));
      }
      const expected = totalBytes + channels * framesPerChannel * core.HEADER_SIZE;
      if (bytes !== expected) fail(`${name}: packed ${bytes} bytes, expected ${expected}`);
    },
  };
  return c;
}

/** The stream ids of a batch's frames, in order (decoded from the bytes). */
function headerIds(core: Core, parts: Uint8Array[]): number[] {
  const ids: number[] = [];
  const decoder = new core.FrameDecoder({
    onHeader: (h) => void ids.push(h.streamId),
    onPayload: noop,
    onFrameEnd: noop,
    onDecodeError: (m) => fail(`batch does not decode: ${m}`),
  });
  for (const p of parts) decoder.push(p);
  return ids;
}

function buildCases(core: Core): Case[] {
  const H = core.HEADER_SIZE;
  const cases: Case[] = [];

  // Encoding: headers alone, then batches of frames (headers + payloads).
  {
    const n = 100_000;
    const target = Buffer.alloc(H * 1024);
    cases.push({
      name: 'encodeHeader',
      op: 'header',
      ops: n,
      bytes: n * H,
      run() {
        for (let i = 0; i < n; i++) core.encodeHeader(target, (i & 1023) * H, i & 1, 0, i, i * 7);
        const last = n - 1;
        const at = (last & 1023) * H;
        if (target.readUInt32BE(at + 4) !== last || target.readUInt32BE(at + 8) !== last * 7)
          fail('encodeHeader wrote wrong bytes');
      },
    });
  }
  for (const [size, count] of [
    [64, 10_000],
    [64 * KiB, 64],
  ] as const) {
    const payload = fillPattern(size, 1);
    const label = size >= KiB ? `${size / KiB} KiB` : `${size} B`;
    cases.push({
      name: `FrameBatch: ${count.toLocaleString('en-US')} x ${label} frames (${size <= 2048 ? 'copied' : 'referenced'})`,
      op: 'frame',
      ops: count,
      bytes: count * (H + size),
      run() {
        let batch = new core.FrameBatch(allocate);
        let parts = 0;
        for (let i = 0; i < count; i++) {
          batch.header(core.FrameType.data, 0, 1 + 2 * (i & 255), size);
          batch.payload(payload);
          if (batch.bytes >= BATCH_LIMIT) {
            parts += batch.finish().length;
            batch = new core.FrameBatch(allocate);
          }
        }
        parts += batch.finish().length;
        if (parts === 0) fail('FrameBatch produced nothing');
      },
    });
  }

  // The scheduler: many small writes (coalesced into a frame per channel), large writes, round-robin.
  cases.push(schedulerCase(core, 'WriteScheduler: 100 channels x 10 x 64 B writes', 100, 10, 64, 64 * KiB));
  cases.push(schedulerCase(core, 'WriteScheduler: 1 channel x 64 x 64 KiB writes', 1, 64, 64 * KiB, 64 * KiB));
  {
    const rr = schedulerCase(core, 'WriteScheduler: round-robin, 1,000 channels x 4 frames', 1000, 1, 4 * KiB, KiB);
    rr.check = () => {
      const ids: number[] = [];
      rr.record = ids;
      rr.run();
      rr.record = null;
      // One frame per channel per turn: ids 1, 3, ..., 1999, then again, four times.
      if (ids.length !== 4000) fail(`round-robin: ${ids.length} frames, expected 4,000`);
      for (let i = 0; i < ids.length; i++) {
        if (ids[i] !== 1 + 2 * (i % 1000))
          fail(`round-robin: frame ${i} is on channel ${ids[i]}, expected ${1 + 2 * (i % 1000)}`);
      }
    };
    cases.push(rr);
  }

  // Decoding: small frames whole, in 1,500-byte and 7-byte chunks; 64 KiB frames in 64 KiB reads (misaligned).
  const small = frameStream(core, 10_000, 64, 10);
  cases.push(decodeCase(core, 'FrameDecoder: 10,000 x 64 B frames, 1 buffer', small, [small.buf]));
  cases.push(decodeCase(core, 'FrameDecoder: 10,000 x 64 B frames, 1,500 B chunks', small, chunks(small.buf, 1500)));
  cases.push(decodeCase(core, 'FrameDecoder: 10,000 x 64 B frames, 7 B chunks', small, chunks(small.buf, 7)));
  const large = frameStream(core, 64, 64 * KiB, 0);
  cases.push(decodeCase(core, 'FrameDecoder: 64 x 64 KiB frames, 64 KiB chunks', large, chunks(large.buf, 64 * KiB)));
  return cases;
}

// ---- timing ----

interface Result {
  name: string;
  op: string;
  opsPerSec: number;
  MBps: number;
  nsPerOp: number;
  /** (max - min) / median of the samples' ops/s */
  spread: number;
  samples: number[];
}

const gc = (globalThis as { gc?: () => void }).gc ?? noop;

function timeRuns(run: () => void, iterations: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) run();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function measure(c: Case, o: Options): Result {
  c.check?.();
  c.run();
  // Warm up (and learn how many runs fill a sample).
  let iterations = 1;
  let spent = 0;
  const warmStart = Date.now();
  while (Date.now() - warmStart < o.warmupMs) {
    spent = timeRuns(c.run, iterations);
    if (spent < o.sampleMs / 1000 / 4) iterations *= 2;
  }
  const perRun = spent / iterations;
  iterations = Math.max(1, Math.ceil(o.sampleMs / 1000 / Math.max(perRun, 1e-9)));
  const samples: number[] = [];
  for (let r = 0; r < o.reps; r++) {
    gc();
    const seconds = timeRuns(c.run, iterations);
    samples.push((iterations * c.ops) / seconds);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  return {
    name: c.name,
    op: c.op,
    opsPerSec: median,
    MBps: (median * c.bytes) / c.ops / 1e6,
    nsPerOp: 1e9 / median,
    spread: (sorted[sorted.length - 1]! - sorted[0]!) / median,
    samples,
  };
}

function fmt(v: number, digits = 0): string {
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function table(results: Result[]): string {
  const header = ['case', 'op', 'ops/s', 'MB/s', 'ns/op', 'spread'];
  const body = results.map((r) => [
    r.name,
    r.op,
    fmt(r.opsPerSec),
    fmt(r.MBps, r.MBps < 100 ? 1 : 0),
    fmt(r.nsPerOp, r.nsPerOp < 10 ? 2 : r.nsPerOp < 100 ? 1 : 0),
    `±${fmt((r.spread * 100) / 2, 0)}%`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const core = await loadCore();
  const cases = buildCases(core).filter((c) => !o.filter || o.filter.test(c.name));
  if (cases.length === 0) throw new Error('no case matches --filter');
  if (!(globalThis as { gc?: unknown }).gc)
    console.warn('note: run with --expose-gc to collect garbage between samples');
  console.log(
    `muxwire micro-benchmarks on Node ${process.version}: median of ${o.reps} samples of >= ${o.sampleMs} ms after >= ${o.warmupMs} ms warm-up`,
  );
  console.log(
    '(MB/s counts the bytes encoded, packed or decoded, headers included; spread is half the min-max range of the samples)\n',
  );
  const results: Result[] = [];
  const tty = process.stderr.isTTY;
  for (const c of cases) {
    if (tty) process.stderr.write(`  ${c.name} ...\r`);
    results.push(measure(c, o));
    if (tty) process.stderr.write('\x1b[2K');
  }
  console.log(table(results));
  if (o.json) {
    writeFileSync(
      o.json,
      JSON.stringify(
        {
          date: new Date().toISOString(),
          node: process.version,
          options: { reps: o.reps, sampleMs: o.sampleMs, warmupMs: o.warmupMs },
          results,
        },
        null,
        2,
      ) + '\n',
    );
    console.log(`\nJSON written to ${o.json}`);
  }
}

main().catch((err: unknown) => {
  console.error((err as Error).message);
  process.exit(1);
});
