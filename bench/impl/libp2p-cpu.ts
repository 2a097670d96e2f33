// CPU cost of the libp2p stream muxers, per operation, on libp2p's own stream API (no Duplex wrapper):
//
//   npm run build && npx tsc -p bench/tsconfig.json && node dist/bench/impl/libp2p-cpu.js [--rounds 5]
//     [--impls muxwire-libp2p,libp2p-yamux,libp2p-floor] [--workloads bulk,open,rr] [--size full|quick]
//     [--prof DIR]   (--cpu-prof of each child, written to DIR)
//     [--heap MB]    (each child first builds and keeps about MB MiB of small objects: see "Heap" below)
//   MUXWIRE_LIBP2P=/abs/path/dist/src/libp2p/index.js: measure that build of muxwire/libp2p instead, and
//   MUXWIRE_LIBP2P_BASE=... (impl muxwire-libp2p-base, not run by default): another build beside it
//
// Each (workload, implementation, round) runs in a fresh child process that holds both ends: two muxers over
// one loopback TCP connection, through the bench's libp2p glue (libp2p-glue.ts: the same connection class for
// all). The child reports wall-clock time and the process's CPU time (user + system, both ends together, from
// process.cpuUsage()) per operation. On a shared machine the CPU time per operation moves much less than the
// wall-clock figures, and the ratio between implementations in the same run is the figure to read. Rounds
// take turns (each round starts one implementation later), and the medians are printed.
//
// Workloads (full sizes; quick in brackets):
//   bulk  one stream, 64 KiB send()s, 512 MiB [64 MiB]: CPU µs per MiB, MB/s
//   open  10,000 [2,000] streams opened at once, each sends "hello", the other end echoes it and closes, the
//         opener reads the echo and closes: CPU µs per stream, streams/s
//   rr    one stream, 20,000 [5,000] sequential 64-byte round trips after 1,000 warm-up: CPU µs per round
//         trip, p50 / p99 µs (both ends in one process, so a round trip includes both ends' work)
// Heap: a bare child's heap is about 8 MiB, and V8 sizes its old-generation limit from it. In bulk, the socket's
// 64 KiB read buffers (outside the heap) make V8 collect the young generation often, and with so small an
// old-generation limit V8 then starts full collections over and over: how many depends on how little the muxer
// allocates on the heap (see docs/benchmarks.md, "libp2p muxers"). A libp2p node's heap is tens of MiB (its
// peer store, its protocols), so `--heap 32` gives each child a retained heap of that order before it starts.
// libp2p-floor and libp2p-null (libp2p-floor.ts) are yardsticks: libp2p's AbstractStream with framing only,
// and with no connection at all (streams paired in memory: the least any muxer on AbstractStream costs).
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { keepHeap, releaseHeap, socketConnectionClass } from './libp2p-glue.js';
import { floorMuxerFactory, nullMuxerFactory } from './libp2p-floor.js';

const MAX_WINDOW = 16 * 1024 * 1024;
const READ_BUFFER = 4 * MAX_WINDOW;
const IMPLS = ['muxwire-libp2p', 'libp2p-yamux', 'libp2p-floor', 'libp2p-null', 'muxwire-libp2p-base'] as const;
const WORKLOADS = ['bulk', 'open', 'rr'] as const;
type Impl = (typeof IMPLS)[number];
type Workload = (typeof WORKLOADS)[number];

interface Sizes {
  bulkBytes: number;
  streams: number;
  roundTrips: number;
}
const SIZES: Record<'full' | 'quick', Sizes> = {
  full: { bulkBytes: 512 * 1024 * 1024, streams: 10_000, roundTrips: 20_000 },
  quick: { bulkBytes: 64 * 1024 * 1024, streams: 2_000, roundTrips: 5_000 },
};

interface Result {
  /** Operations done: MiB (bulk), streams (open), round trips (rr). */
  ops: number;
  wallMs: number;
  cpuMs: number;
  p50?: number;
  p99?: number;
}

// ---- a stream and a muxer, as far as the workloads use them ----
interface MsgEvent extends Event {
  data: Uint8Array | { byteLength: number; subarray(): Uint8Array };
}
interface StreamLike {
  send(data: Uint8Array): boolean;
  close(): Promise<void>;
  addEventListener(type: string, listener: (event: Event) => void, options?: unknown): void;
  removeEventListener(type: string, listener: (event: Event) => void): void;
}
interface MuxerLike {
  createStream(): Promise<StreamLike>;
  addEventListener(type: 'stream', listener: (event: CustomEvent<StreamLike>) => void): void;
}
type Factory = () => { createStreamMuxer(connection: never): unknown };

async function loadFactory(impl: Impl, streams: number): Promise<Factory> {
  const limits = { maxInboundStreams: streams + 16, maxOutboundStreams: streams + 16 };
  const streamOptions = { maxStreamWindowSize: MAX_WINDOW, maxReadBufferLength: READ_BUFFER };
  if (impl === 'muxwire-libp2p' || impl === 'muxwire-libp2p-base') {
    // MUXWIRE_LIBP2P / MUXWIRE_LIBP2P_BASE: other builds of the entry (file paths), to compare versions in one run.
    const specifier =
      (impl === 'muxwire-libp2p' ? process.env.MUXWIRE_LIBP2P : process.env.MUXWIRE_LIBP2P_BASE) ?? 'muxwire/libp2p';
    const { muxwire } = (await import(specifier)) as typeof import('muxwire/libp2p');
    return muxwire({ ...limits, streamOptions, session: { ackBacklog: Math.max(256, streams) } });
  }
  if (impl === 'libp2p-yamux') {
    const { yamux } = await import('@chainsafe/libp2p-yamux');
    return yamux({ ...limits, streamOptions });
  }
  if (impl === 'libp2p-floor') return floorMuxerFactory();
  if (impl === 'libp2p-null') return nullMuxerFactory();
  throw new Error(`unknown implementation ${impl as string}`);
}

const byteLength = (event: Event): number => (event as MsgEvent).data.byteLength;

async function socketPair(): Promise<[Socket, Socket]> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  await once(client, 'connect');
  const [serverSocket] = await accepted;
  server.close();
  for (const s of [client, serverSocket]) s.setNoDelay(true);
  return [client, serverSocket];
}

async function bulk(client: MuxerLike, server: MuxerLike, total: number): Promise<void> {
  const received = new Promise<void>((resolve) => {
    server.addEventListener('stream', ({ detail: stream }) => {
      let got = 0;
      stream.addEventListener('message', (event) => {
        got += byteLength(event);
        if (got >= total) resolve();
      });
    });
  });
  const stream = await client.createStream();
  const chunk = new Uint8Array(64 * 1024).fill(7);
  const drain = (): Promise<void> =>
    new Promise((resolve) => stream.addEventListener('drain', () => resolve(), { once: true }));
  for (let sent = 0; sent < total; sent += chunk.byteLength) {
    if (!stream.send(chunk)) await drain();
  }
  await received;
}

async function open(client: MuxerLike, server: MuxerLike, count: number): Promise<void> {
  server.addEventListener('stream', ({ detail: stream }) => {
    stream.addEventListener('message', (event) => stream.send((event as MsgEvent).data as Uint8Array));
    stream.addEventListener('remoteCloseWrite', () => void stream.close());
  });
  const hello = new TextEncoder().encode('hello');
  const one = async (): Promise<void> => {
    const stream = await client.createStream();
    const echoed = new Promise<void>((resolve, reject) => {
      let got = 0;
      stream.addEventListener('message', (event) => {
        got += byteLength(event);
        if (got === hello.byteLength) resolve();
      });
      stream.addEventListener('close', (event) => {
        const error = (event as Event & { error?: Error }).error;
        if (error !== undefined) reject(error);
        else if (got < hello.byteLength) reject(new Error('closed before the echo'));
      });
    });
    const closed = new Promise((resolve) => stream.addEventListener('close', resolve, { once: true }));
    stream.send(hello);
    await stream.close();
    await echoed;
    await closed;
  };
  await Promise.all(Array.from({ length: count }, one));
}

async function rr(client: MuxerLike, server: MuxerLike, count: number): Promise<number[]> {
  server.addEventListener('stream', ({ detail: stream }) => {
    stream.addEventListener('message', (event) => stream.send((event as MsgEvent).data as Uint8Array));
  });
  const stream = await client.createStream();
  const request = new Uint8Array(64).fill(1);
  let want = 0;
  let wake: (() => void) | undefined;
  stream.addEventListener('message', (event) => {
    want -= byteLength(event);
    if (want <= 0) wake?.();
  });
  const once64 = (): Promise<void> =>
    new Promise((resolve) => {
      want = 64;
      wake = resolve;
      stream.send(request);
    });
  for (let i = 0; i < 1000; i++) await once64();
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = process.hrtime.bigint();
    await once64();
    times.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  return times;
}

async function child(impl: Impl, workload: Workload, sizes: Sizes, heapMiB: number): Promise<Result> {
  if (heapMiB > 0) keepHeap(heapMiB);
  const Conn = await socketConnectionClass();
  const factory = await loadFactory(impl, sizes.streams);
  const [clientSocket, serverSocket] = await socketPair();
  const muxer = (socket: Socket, direction: 'inbound' | 'outbound'): MuxerLike =>
    factory().createStreamMuxer(new Conn(socket, direction, READ_BUFFER) as never) as MuxerLike;
  const client = muxer(clientSocket, 'outbound');
  const server = muxer(serverSocket, 'inbound');
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let times: number[] | undefined;
  let ops: number;
  if (workload === 'bulk') {
    await bulk(client, server, sizes.bulkBytes);
    ops = sizes.bulkBytes / (1024 * 1024);
  } else if (workload === 'open') {
    await open(client, server, sizes.streams);
    ops = sizes.streams;
  } else {
    times = await rr(client, server, sizes.roundTrips);
    ops = sizes.roundTrips;
  }
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = process.cpuUsage(cpu0);
  const result: Result = { ops, wallMs, cpuMs: (cpu.user + cpu.system) / 1000 };
  if (times !== undefined) {
    times.sort((a, b) => a - b);
    result.p50 = times[Math.floor(times.length * 0.5)]!;
    result.p99 = times[Math.floor(times.length * 0.99)]!;
  }
  clientSocket.destroy();
  serverSocket.destroy();
  releaseHeap();
  return result;
}

// ---- the parent: rounds, children, medians ----
function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1]!;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function runChild(
  impl: Impl,
  workload: Workload,
  size: string,
  prof: string | undefined,
  heapMiB: number,
): Promise<Result> {
  const execArgv = [
    '--max-old-space-size=4096',
    ...(prof !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []),
  ];
  const proc = fork(fileURLToPath(import.meta.url), ['--child', impl, workload, size, String(heapMiB)], { execArgv });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill();
      reject(new Error(`${impl} ${workload}: timed out after 180 s`));
    }, 180_000);
    proc.once('message', (result) => {
      clearTimeout(timer);
      resolve(result as Result);
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${impl} ${workload}: child exited with ${code}`));
    });
  });
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    const [impl, workload, size, heap] = process.argv.slice(3) as [Impl, Workload, 'full' | 'quick', string?];
    process.once('disconnect', () => process.exit(1)); // the parent is gone: stop
    const result = await child(impl, workload, SIZES[size], Number(heap ?? '0'));
    // Run by hand (e.g. `node --trace-gc dist/bench/impl/libp2p-cpu.js --child muxwire-libp2p bulk full 0`), the
    // child has no parent to tell: it prints its result.
    if (process.send === undefined) {
      console.log(JSON.stringify(result));
      process.exit(0);
    }
    process.send(result, () => process.exit(0));
    return;
  }
  const rounds = Number(arg('rounds', '5'));
  const impls = arg('impls', IMPLS.slice(0, 4).join(',')).split(',') as Impl[];
  const workloads = arg('workloads', WORKLOADS.join(',')).split(',') as Workload[];
  const size = arg('size', 'full');
  const prof = process.argv.includes('--prof') ? arg('prof', '') : undefined;
  const heapMiB = Number(arg('heap', '0'));
  if (!(heapMiB >= 0 && heapMiB <= 1024)) throw new Error('--heap needs MiB between 0 and 1024');
  for (const workload of workloads) {
    const results = new Map<Impl, Result[]>(impls.map((impl) => [impl, []]));
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < impls.length; k++) {
        const impl = impls[(k + round) % impls.length]!;
        results.get(impl)!.push(await runChild(impl, workload, size, prof, heapMiB));
      }
    }
    const unit = { bulk: 'MiB', open: 'stream', rr: 'round trip' }[workload];
    console.log(
      `\n== ${workload} (${size}, ${rounds} rounds${heapMiB > 0 ? `, ${heapMiB} MiB heap kept` : ''}; medians, [min-max])`,
    );
    const base = median(results.get(impls[0]!)!.map((r) => r.cpuMs / r.ops));
    for (const impl of impls) {
      const rs = results.get(impl)!;
      const cpu = rs.map((r) => (r.cpuMs * 1000) / r.ops);
      const rate = rs.map((r) => (r.ops * 1000) / r.wallMs);
      const range = (xs: number[], digits: number): string =>
        `${median(xs).toFixed(digits)} [${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}]`;
      let line = `${impl.padEnd(15)} CPU µs/${unit}: ${range(cpu, 1)}  (${(median(cpu) / 1000 / base).toFixed(2)}x ${impls[0]})`;
      line +=
        workload === 'bulk'
          ? `  MB/s: ${range(
              rate.map((r) => r * 1.048576),
              0,
            )}`
          : `  ${unit}s/s: ${range(rate, 0)}`;
      if (workload === 'rr')
        line += `  p50 µs: ${range(
          rs.map((r) => r.p50!),
          1,
        )}  p99 µs: ${range(
          rs.map((r) => r.p99!),
          1,
        )}`;
      console.log(line);
    }
  }
}

await main();
