// muxwire beside Go's hashicorp/yamux (users-asks row 24): the same three workloads over loopback TCP, in one
// run, for Go on both ends (the reference), muxwire on both ends, the two interop pairs, and plain TCP from Go
// and from Node as yardsticks.
//
//   npm run bench:go                          # full sizes, 5 rounds; Markdown tables on stdout
//   npm run bench:go -- --quick               # smaller sizes, 1 round
//   npm run bench:go -- --repeats 3 --markdown out.md --json out.json
//   npm run bench:go -- --pairs go-go,muxwire-muxwire --workloads bulk --go-window 16777216
//   npm run bench:go -- --workloads bulk --bulk-mib 32 --rtt 50   # through a proxy adding 25 ms each way
//
// Workloads (client -> server), each in fresh processes, the pairs taking turns round by round:
//   bulk  one channel; the client writes 256 MiB in 64 KiB writes of the same buffer and ends its writing side;
//         the server counts the bytes to EOF and answers with the count (8 bytes, big-endian); MB/s from the
//         first write to the answer;
//   rr    one channel; 20,000 round trips of 64 bytes after 1,000 not measured; p50, p99, round trips/s;
//   open  10,000 channels, at most 256 in flight; each writes "hello", the server echoes it and closes, the
//         client reads it and closes; channels/s.
// The protocol is in bench/go/yamux-bench/main.go's comment: every channel starts with a byte naming its
// workload ('B', 'R', 'O'), so any client works with any server. CPU time (user + system) of both processes
// over the measured part is reported per MB, per round trip and per channel.
//
// The Go side is bench/go/yamux-bench (built by bench/go/build.sh with Debian's Go and hashicorp/yamux). The
// Node side is this script in a child mode (--child server|client). Not part of `npm test`.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ChunkReader } from './channel-io.js';
import type { ProxyConfig } from './ipc.js';
import { median, percentile } from './stats.js';

const HERE = dirname(fileURLToPath(import.meta.url)); // dist/bench
const REPO = join(HERE, '..', '..');
const SELF = fileURLToPath(import.meta.url);
const YAMUX_DIR = '/usr/share/gocode/src/github.com/hashicorp/yamux';
const INSTALL_HINT = 'apt-get install -y golang-go golang-github-hashicorp-yamux-dev';
const MB = 1e6;

type Workload = 'bulk' | 'rr' | 'open';
const WORKLOADS: Workload[] = ['bulk', 'rr', 'open'];

interface Sizes {
  bytes: number;
  writeSize: number;
  rrCount: number;
  rrWarmup: number;
  msgSize: number;
  openCount: number;
  inflight: number;
}
const FULL: Sizes = {
  bytes: 256 * 2 ** 20,
  writeSize: 64 * 1024,
  rrCount: 20_000,
  rrWarmup: 1_000,
  msgSize: 64,
  openCount: 10_000,
  inflight: 256,
};
const QUICK: Sizes = { ...FULL, bytes: 32 * 2 ** 20, rrCount: 2_000, rrWarmup: 200, openCount: 1_000 };

// ---------------------------------------------------------------------------------------------------------
// The Node children: the same protocol as the Go program, over muxwire Channels or plain sockets.

interface MuxSession {
  dial(): Duplex;
  close(): Promise<void>;
  on(event: 'channel', listener: (ch: Duplex) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
}
interface MuxwireModule {
  multiplexedServer(socket: net.Socket, options?: Record<string, unknown>): MuxSession;
  multiplexedClient(socket: net.Socket, options?: Record<string, unknown>): MuxSession;
}

/** muxwire from its build output, through the package's own name (dist/src/index.js), as the bench loads it. */
async function loadMuxwire(): Promise<MuxwireModule> {
  const specifier = 'muxwire';
  return (await import(specifier)) as MuxwireModule;
}

/**
 * Session options: the bench's (bench/impl/muxwire.ts) for workloads with at most 1,000 channels at once,
 * that is muxwire's defaults plus whatever MUXWIRE_BENCH_OPTIONS (JSON) adds.
 */
function muxwireOptions(): Record<string, unknown> {
  return JSON.parse(process.env.MUXWIRE_BENCH_OPTIONS ?? '{}') as Record<string, unknown>;
}

function say(line: string): void {
  process.stdout.write(line + '\n');
}

function childFail(message: string): never {
  say(`FAIL ${message}`);
  process.exit(1);
}

/** stdin lines for a child: `go` for the client, `cpu` for the server; the server exits when stdin closes. */
function stdinLines(onLine: (line: string) => void, onEnd: () => void): void {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', onLine);
  rl.on('close', onEnd);
}

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

async function childServer(transport: string): Promise<void> {
  let channels = 0;
  let failures = 0;
  const fault = (what: string, err: unknown): void => {
    failures++;
    process.stderr.write(`go-yamux server: ${what}: ${String(err)}\n`);
  };
  const serve = (ch: Duplex): void => {
    channels++;
    let kind = 0;
    let count = 0;
    let hello: Buffer[] = [];
    let helloBytes = 0;
    let answered = false;
    ch.on('error', (err) => fault('channel', err));
    ch.on('data', (data: Buffer) => {
      let chunk = data;
      if (kind === 0) {
        kind = chunk[0]!;
        chunk = chunk.subarray(1);
      }
      if (kind === 0x42 /* B */) {
        count += chunk.length;
      } else if (kind === 0x52 /* R */) {
        if (chunk.length > 0) ch.write(chunk);
      } else if (kind === 0x4f /* O */) {
        if (answered || chunk.length === 0) return;
        hello.push(chunk);
        helloBytes += chunk.length;
        if (helloBytes >= 5) {
          answered = true;
          ch.end(Buffer.concat(hello).subarray(0, 5));
          hello = [];
        }
      } else {
        fault('channel', `unknown workload byte ${kind}`);
        ch.destroy();
      }
    });
    ch.on('end', () => {
      if (kind === 0x42) {
        const answer = Buffer.alloc(8);
        answer.writeBigUInt64BE(BigInt(count));
        ch.end(answer);
      } else if (kind === 0x52) {
        ch.end();
      } else if (!answered) {
        fault('channel', 'EOF before hello');
        ch.end();
      }
    });
  };
  let onSocket: (socket: net.Socket) => void;
  if (transport === 'muxwire') {
    const mw = await loadMuxwire();
    onSocket = (socket) => {
      const session = mw.multiplexedServer(socket, muxwireOptions());
      session.on('error', (err) => fault('session', err));
      session.on('channel', serve);
    };
  } else {
    onSocket = (socket) => {
      socket.setNoDelay(true);
      serve(socket);
    };
  }
  const server = net.createServer({ allowHalfOpen: true }, onSocket);
  server.on('error', (err) => childFail(`listen: ${err.message}`));
  server.listen(0, '127.0.0.1', () => {
    const address = server.address() as net.AddressInfo;
    say(`LISTENING ${address.port}`);
  });
  stdinLines(
    (line) => {
      if (line === 'cpu') say(`CPU ${cpuMicros()} ${channels} ${failures}`);
    },
    () => process.exit(0),
  );
}

async function writeBulk(ch: Duplex, buf: Buffer, total: number): Promise<void> {
  let sent = 0;
  while (sent < total) {
    const n = Math.min(buf.length, total - sent);
    const more = ch.write(n === buf.length ? buf : buf.subarray(0, n));
    sent += n;
    if (!more) await once(ch, 'drain');
  }
}

async function childClient(transport: string, addr: string, workload: Workload, sizes: Sizes): Promise<void> {
  const [host, portText] = addr.split(':');
  const port = Number(portText);
  if (host !== '127.0.0.1') childFail('--addr must be 127.0.0.1:PORT');
  if (!WORKLOADS.includes(workload)) childFail('--workload must be bulk, rr or open');
  let open: () => Duplex;
  if (transport === 'muxwire') {
    const mw = await loadMuxwire();
    const socket = net.connect({ host, port });
    await once(socket, 'connect');
    const s = mw.multiplexedClient(socket, muxwireOptions());
    s.on('error', (err) => childFail(`session: ${err.message}`));
    open = () => s.dial();
  } else {
    open = () => net.connect({ host: '127.0.0.1', port, allowHalfOpen: true, noDelay: true });
  }
  let go: (() => void) | undefined;
  let goSeen = false;
  stdinLines(
    (line) => {
      if (line !== 'go') return;
      goSeen = true;
      go?.();
    },
    // The runner closes stdin once it has read the server's figures: the client stays until then, so that
    // closing its session cannot touch the server's count of failed channels.
    () => process.exit(0),
  );
  const waitForGo = (): Promise<void> => {
    say('READY');
    if (goSeen) return Promise.resolve();
    return new Promise((resolve) => (go = resolve));
  };

  let result: Record<string, number>;
  if (workload === 'bulk') {
    await waitForGo();
    const buf = Buffer.alloc(sizes.writeSize, 0x61);
    const cpu0 = cpuMicros();
    const t0 = process.hrtime.bigint();
    const ch = open();
    const reader = new ChunkReader(ch);
    ch.write('B');
    await writeBulk(ch, buf, sizes.bytes);
    ch.end();
    const answer = await reader.read(8);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpuUs = cpuMicros() - cpu0;
    const counted = Number(answer.readBigUInt64BE(0));
    if (counted !== sizes.bytes) childFail(`server counted ${counted} bytes, ${sizes.bytes} sent`);
    result = { bytes: sizes.bytes, seconds, cpuUs };
  } else if (workload === 'rr') {
    const ch = open();
    const reader = new ChunkReader(ch);
    ch.write('R');
    const trip = async (i: number): Promise<void> => {
      const req = Buffer.alloc(sizes.msgSize);
      req.writeBigUInt64BE(BigInt(i));
      req[req.length - 1] = i & 0xff;
      ch.write(req);
      const resp = await reader.read(sizes.msgSize);
      if (!resp.equals(req)) childFail(`round trip ${i}: the echo differs`);
    };
    for (let i = 0; i < sizes.rrWarmup; i++) await trip(i);
    await waitForGo();
    const samples = new Float64Array(sizes.rrCount);
    const cpu0 = cpuMicros();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < sizes.rrCount; i++) {
      const s = process.hrtime.bigint();
      await trip(sizes.rrWarmup + i);
      samples[i] = Number(process.hrtime.bigint() - s) / 1e3;
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpuUs = cpuMicros() - cpu0;
    ch.end();
    samples.sort();
    result = {
      count: sizes.rrCount,
      seconds,
      cpuUs,
      p50Us: percentile(samples, 0.5),
      p99Us: percentile(samples, 0.99),
    };
  } else {
    await waitForGo();
    let next = 0;
    let done = 0;
    const cpu0 = cpuMicros();
    const t0 = process.hrtime.bigint();
    const worker = async (): Promise<void> => {
      while (next < sizes.openCount) {
        next++;
        const ch = open();
        const reader = new ChunkReader(ch);
        ch.write('Ohello');
        const got = await reader.read(5);
        if (got.toString('latin1') !== 'hello') throw new Error('the echo is not hello');
        ch.end();
        done++;
      }
    };
    const workers = Math.min(sizes.inflight, sizes.openCount);
    await Promise.all(Array.from({ length: workers }, worker)).catch((err: unknown) =>
      childFail(`open: ${String(err)} (${done} channels done)`),
    );
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    result = { count: done, seconds, cpuUs: cpuMicros() - cpu0 };
  }
  say(`RESULT ${JSON.stringify(result)}`);
}

// ---------------------------------------------------------------------------------------------------------
// The runner.

interface Side {
  lang: 'go' | 'node';
  transport: 'mux' | 'tcp';
  /** Go only: MaxStreamWindowSize (0: the default 256 KiB). */
  window: number;
}
interface Pair {
  id: string;
  label: string;
  client: Side;
  server: Side;
  workloads: Workload[];
}

interface Round {
  /** bulk: MB/s; rr: round trips/s; open: channels/s */
  rate: number;
  p50Us?: number;
  p99Us?: number;
  /** CPU µs of both processes per MB, per round trip or per channel */
  cpu: number;
  cpuClientUs: number;
  cpuServerUs: number;
  seconds: number;
}
interface Outcome {
  pair: string;
  workload: Workload;
  status: 'ok' | 'failed';
  reason?: string;
  rounds: Round[];
}

const { values: args } = parseArgs({
  options: {
    child: { type: 'string' },
    transport: { type: 'string' },
    addr: { type: 'string' },
    workload: { type: 'string' },
    quick: { type: 'boolean', default: false },
    repeats: { type: 'string' },
    'bulk-mib': { type: 'string' },
    'write-kib': { type: 'string' },
    'rr-count': { type: 'string' },
    'rr-warmup': { type: 'string' },
    'msg-size': { type: 'string' },
    'open-count': { type: 'string' },
    inflight: { type: 'string' },
    bytes: { type: 'string' },
    'write-size': { type: 'string' },
    count: { type: 'string' },
    warmup: { type: 'string' },
    'go-window': { type: 'string' },
    'wide-window': { type: 'string' },
    rtt: { type: 'string' },
    pairs: { type: 'string' },
    workloads: { type: 'string' },
    cap: { type: 'string' },
    markdown: { type: 'string' },
    json: { type: 'string' },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

function num(text: string | undefined, fallback: number, name: string): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) {
    console.error(`go-yamux: --${name} needs a non-negative number, not ${text}`);
    process.exit(2);
  }
  return n;
}

const base = args.quick ? QUICK : FULL;
const sizes: Sizes = {
  bytes: Math.round(num(args['bulk-mib'], base.bytes / 2 ** 20, 'bulk-mib') * 2 ** 20),
  writeSize: Math.round(num(args['write-kib'], base.writeSize / 1024, 'write-kib') * 1024),
  rrCount: num(args['rr-count'], base.rrCount, 'rr-count'),
  rrWarmup: num(args['rr-warmup'], base.rrWarmup, 'rr-warmup'),
  msgSize: num(args['msg-size'], base.msgSize, 'msg-size'),
  openCount: num(args['open-count'], base.openCount, 'open-count'),
  inflight: num(args.inflight, base.inflight, 'inflight'),
};
const capSeconds = num(args.cap, 120, 'cap');
const repeats = Math.max(1, Math.round(num(args.repeats, args.quick ? 1 : 5, 'repeats')));
const goWindow = num(args['go-window'], 0, 'go-window');
const wideWindow = num(args['wide-window'], 16 * 2 ** 20, 'wide-window');
/**
 * `--rtt MS`: every connection goes through bench/proxy.ts, which holds each byte MS/2 ms in each direction
 * (the long-fat workload's proxy, 32 MiB held at most per direction), so a window smaller than the
 * bandwidth-delay product shows. 0: client and server connect directly.
 */
const rttMs = num(args.rtt, 0, 'rtt');
const PROXY_BUFFER = 32 * 2 ** 20;

function windowText(bytes: number): string {
  if (bytes === 0) return '256 KiB (default)';
  return bytes % 2 ** 20 === 0 ? `${bytes / 2 ** 20} MiB` : bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} B`;
}

function allPairs(): Pair[] {
  const go = (transport: Side['transport'], window = goWindow): Side => ({ lang: 'go', transport, window });
  const node = (transport: Side['transport']): Side => ({ lang: 'node', transport, window: 0 });
  const pairs: Pair[] = [
    { id: 'go-go', label: 'go → go', client: go('mux'), server: go('mux'), workloads: WORKLOADS },
    {
      id: 'muxwire-muxwire',
      label: 'muxwire → muxwire',
      client: node('mux'),
      server: node('mux'),
      workloads: WORKLOADS,
    },
    { id: 'muxwire-go', label: 'muxwire → go', client: node('mux'), server: go('mux'), workloads: WORKLOADS },
    { id: 'go-muxwire', label: 'go → muxwire', client: go('mux'), server: node('mux'), workloads: WORKLOADS },
    { id: 'tcp-go', label: 'raw TCP (Go)', client: go('tcp'), server: go('tcp'), workloads: WORKLOADS },
    { id: 'tcp-node', label: 'raw TCP (Node)', client: node('tcp'), server: node('tcp'), workloads: WORKLOADS },
  ];
  if (wideWindow > 0 && wideWindow !== goWindow) {
    const w = windowText(wideWindow);
    pairs.push(
      {
        id: 'go-go-wide',
        label: `go → go, Go window ${w}`,
        client: go('mux', wideWindow),
        server: go('mux', wideWindow),
        workloads: ['bulk'],
      },
      {
        id: 'muxwire-go-wide',
        label: `muxwire → go, Go window ${w}`,
        client: node('mux'),
        server: go('mux', wideWindow),
        workloads: ['bulk'],
      },
    );
  }
  return pairs;
}

// ---- children of the runner ----

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    for (const c of live) c.kill('SIGKILL');
    process.exit(130);
  });
}

class Child {
  readonly proc: ChildProcess;
  #lines: string[] = [];
  #waiter: (() => void) | undefined;
  #exited: string | undefined;
  #stderr: string[] = [];

  constructor(
    readonly name: string,
    command: string,
    argv: string[],
  ) {
    this.proc = spawn(command, argv, { stdio: ['pipe', 'pipe', 'pipe'], cwd: REPO });
    live.add(this.proc);
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      if (args.verbose) console.error(`[${name}] ${line}`);
      this.#lines.push(line);
      this.#waiter?.();
    });
    createInterface({ input: this.proc.stderr! }).on('line', (line) => {
      if (args.verbose) console.error(`[${name} stderr] ${line}`);
      this.#stderr.push(line);
      if (this.#stderr.length > 5) this.#stderr.shift();
    });
    this.proc.stdin!.on('error', () => {}); // a child that died is reported by its exit
    this.proc.on('error', (err) => {
      this.#exited = `could not start: ${err.message}`;
      this.#waiter?.();
    });
    this.proc.on('exit', (code, signal) => {
      live.delete(this.proc);
      this.#exited = `exited (${signal ?? `code ${code}`})`;
      setTimeout(() => this.#waiter?.(), 50); // let the last lines arrive
    });
  }

  /** The next stdout line starting with `prefix`; rejects on FAIL, on exit or at `deadline` (ms since epoch). */
  async expect(prefix: string, deadline: number): Promise<string> {
    for (;;) {
      while (this.#lines.length > 0) {
        const line = this.#lines.shift()!;
        if (line.startsWith(prefix + ' ') || line === prefix) return line.slice(prefix.length).trim();
        if (line.startsWith('FAIL ')) throw new Error(`${this.name}: ${line.slice(5)}`);
      }
      if (this.#exited !== undefined) throw new Error(`${this.name} ${this.#exited}${this.#tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout after ${capSeconds} s waiting for ${this.name}'s ${prefix}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = undefined;
    }
  }

  #tail(): string {
    return this.#stderr.length > 0 ? `: ${this.#stderr.join(' | ')}` : '';
  }

  send(line: string): void {
    this.proc.stdin!.write(line + '\n');
  }

  stderrTail(): string[] {
    return [...this.#stderr];
  }

  /** Closes stdin (a server exits), then kills; resolves once the process is gone (2 s at most). */
  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.stdin!.end();
      this.proc.kill('SIGKILL');
      await Promise.race([once(this.proc, 'exit'), new Promise((r) => setTimeout(r, 2000))]);
    }
    live.delete(this.proc);
  }
}

let goBinary = '';

function command(side: Side, role: 'server' | 'client', extra: Record<string, string>): [string, string[]] {
  const flags = Object.entries({ transport: side.transport, ...extra });
  if (side.lang === 'go') {
    const argv = ['-role', role];
    for (const [k, v] of flags) argv.push(`-${k}`, k === 'transport' ? (v === 'mux' ? 'yamux' : 'tcp') : v);
    argv.push('-window', String(side.window), '-timeout', `${capSeconds}s`);
    return [goBinary, argv];
  }
  const argv = [SELF, '--child', role];
  for (const [k, v] of flags) argv.push(`--${k}`, k === 'transport' ? (v === 'mux' ? 'muxwire' : 'tcp') : v);
  argv.push('--cap', String(capSeconds));
  return [process.execPath, argv];
}

function clientFlags(workload: Workload, port: number): Record<string, string> {
  const common = { addr: `127.0.0.1:${port}`, workload };
  if (workload === 'bulk') return { ...common, bytes: String(sizes.bytes), 'write-size': String(sizes.writeSize) };
  if (workload === 'rr') {
    return {
      ...common,
      count: String(sizes.rrCount),
      warmup: String(sizes.rrWarmup),
      'msg-size': String(sizes.msgSize),
    };
  }
  return { ...common, count: String(sizes.openCount), inflight: String(sizes.inflight) };
}

function parseCpu(text: string): { us: number; channels: number; failures: number } {
  const [us, channels, failures] = text.split(' ').map(Number);
  return { us: us ?? NaN, channels: channels ?? NaN, failures: failures ?? NaN };
}

/** Starts bench/proxy.ts in front of `targetPort` (see `--rtt`); resolves with it and the port it listens on. */
async function startProxy(targetPort: number, deadline: number): Promise<{ proc: ChildProcess; port: number }> {
  const config: ProxyConfig = { targetPort, delayMs: rttMs / 2, maxBufferedBytes: PROXY_BUFFER };
  const proc = spawn(process.execPath, [join(HERE, 'proxy.js'), JSON.stringify(config)], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  live.add(proc);
  proc.on('exit', () => live.delete(proc));
  // The proxy is not yet the caller's to stop: if it never reports its port, it is killed here.
  const port = await new Promise<number>((resolve, giveUp) => {
    const reject = (error: Error): void => {
      proc.kill('SIGKILL');
      giveUp(error);
    };
    const timer = setTimeout(() => reject(new Error('the proxy did not listen in time')), deadline - Date.now());
    proc.on('message', (message: { type?: string; port?: number; message?: string }) => {
      clearTimeout(timer);
      if (message.type === 'listening' && message.port !== undefined) resolve(message.port);
      else reject(new Error(message.message ?? `proxy: ${JSON.stringify(message)}`));
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the proxy exited (code ${code})`));
    });
  });
  return { proc, port };
}

async function runOnce(pair: Pair, workload: Workload): Promise<Round> {
  const deadline = Date.now() + capSeconds * 1000;
  const server = new Child('server', ...command(pair.server, 'server', {}));
  let client: Child | undefined;
  let proxy: ChildProcess | undefined;
  try {
    let port = Number(await server.expect('LISTENING', deadline));
    if (rttMs > 0) ({ proc: proxy, port } = await startProxy(port, deadline));
    client = new Child('client', ...command(pair.client, 'client', clientFlags(workload, port)));
    await client.expect('READY', deadline);
    server.send('cpu');
    const s0 = parseCpu(await server.expect('CPU', deadline));
    client.send('go');
    const r = JSON.parse(await client.expect('RESULT', deadline)) as Record<string, number | undefined>;
    server.send('cpu');
    const s1 = parseCpu(await server.expect('CPU', deadline));
    if (s1.failures > 0)
      throw new Error(`server: ${s1.failures} channel(s) failed: ${server.stderrTail().join(' | ')}`);
    const seconds = r.seconds ?? NaN;
    const clientUs = r.cpuUs ?? NaN;
    const serverUs = s1.us - s0.us;
    const channels = s1.channels - s0.channels;
    const units = workload === 'bulk' ? (r.bytes ?? NaN) / MB : (r.count ?? NaN);
    if (workload === 'bulk' && r.bytes !== sizes.bytes) throw new Error(`client sent ${r.bytes} bytes`);
    if (workload === 'rr' && r.count !== sizes.rrCount) throw new Error(`client made ${r.count} round trips`);
    if (workload === 'open' && (r.count !== sizes.openCount || channels !== sizes.openCount)) {
      throw new Error(`client finished ${r.count} channels, server saw ${channels} (of ${sizes.openCount})`);
    }
    if (workload === 'bulk' && channels !== 1) throw new Error(`server saw ${channels} channels during bulk`);
    return {
      rate: units / seconds,
      ...(workload === 'rr' ? { p50Us: r.p50Us, p99Us: r.p99Us } : {}),
      cpu: (clientUs + serverUs) / units,
      cpuClientUs: clientUs,
      cpuServerUs: serverUs,
      seconds,
    };
  } finally {
    await Promise.all([client?.stop(), server.stop()]);
    proxy?.kill('SIGKILL');
  }
}

// ---- figures and tables ----

const fmt = (digits: number) => (x: number) =>
  Number.isFinite(x)
    ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : '-';

interface Column {
  head: string;
  workload: Workload;
  get(r: Round): number | undefined;
  digits: number;
  better: 'higher' | 'lower';
}
const WALL: Column[] = [
  { head: 'bulk MB/s', workload: 'bulk', get: (r) => r.rate, digits: 0, better: 'higher' },
  { head: 'rr p50 µs', workload: 'rr', get: (r) => r.p50Us, digits: 1, better: 'lower' },
  { head: 'rr p99 µs', workload: 'rr', get: (r) => r.p99Us, digits: 1, better: 'lower' },
  { head: 'rr round trips/s', workload: 'rr', get: (r) => r.rate, digits: 0, better: 'higher' },
  { head: 'open channels/s', workload: 'open', get: (r) => r.rate, digits: 0, better: 'higher' },
];
const CPU: Column[] = [
  { head: 'bulk CPU µs/MB', workload: 'bulk', get: (r) => r.cpu, digits: 0, better: 'lower' },
  { head: 'rr CPU µs/round trip', workload: 'rr', get: (r) => r.cpu, digits: 1, better: 'lower' },
  { head: 'open CPU µs/channel', workload: 'open', get: (r) => r.cpu, digits: 1, better: 'lower' },
];

function values(outcome: Outcome | undefined, col: Column): number[] {
  if (outcome?.status !== 'ok') return [];
  return outcome.rounds.map((r) => col.get(r)).filter((x): x is number => x !== undefined && Number.isFinite(x));
}

function cell(outcome: Outcome | undefined, col: Column): string {
  if (!outcome) return '—';
  if (outcome.status !== 'ok') return 'failed';
  const v = values(outcome, col);
  if (v.length === 0) return '-';
  const f = fmt(col.digits);
  const m = f(median(v));
  return v.length === 1 ? m : `${m} [${f(Math.min(...v))}–${f(Math.max(...v))}]`;
}

function ratio(outcome: Outcome | undefined, reference: Outcome | undefined, col: Column): string {
  const a = median(values(outcome, col));
  const b = median(values(reference, col));
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : '-';
}

/** A Markdown table; the first column left-aligned, the others right-aligned unless `left`. */
function table(head: string[], rows: string[][], left = false): string {
  const line = (r: string[]): string => `| ${r.join(' | ')} |`.replace(/ {2}/g, ' ');
  const align = `|${head.map((_, i) => (i === 0 || left ? '---' : '---:')).join('|')}|`;
  return [line(head), align, ...rows.map(line)].join('\n');
}

function render(pairs: Pair[], outcomes: Outcome[], meta: Record<string, string>): string {
  const find = (pair: string, w: Workload) => outcomes.find((o) => o.pair === pair && o.workload === w);
  const goRef = (w: Workload) => find('go-go', w);
  const nodeRef = (w: Workload) => find('tcp-node', w);
  const lines: string[] = [];
  lines.push("## muxwire beside Go's hashicorp/yamux", '');
  lines.push(table(['', ''], Object.entries(meta), true), '');
  lines.push(
    `Wall clock: median [range] over ${repeats} round(s), each in fresh processes, the pairs taking turns. ` +
      'Pairs are client → server.',
    '',
  );
  lines.push(
    table(
      ['pair', ...WALL.map((c) => c.head)],
      pairs.map((p) => [p.label, ...WALL.map((c) => cell(find(p.id, c.workload), c))]),
    ),
    '',
  );
  lines.push(
    'CPU time (user + system) of the client and the server together over the measured part: median [range].',
    '',
  );
  lines.push(
    table(
      ['pair', ...CPU.map((c) => c.head)],
      pairs.map((p) => [p.label, ...CPU.map((c) => cell(find(p.id, c.workload), c))]),
    ),
    '',
  );
  lines.push(
    'Ratios of medians: to `go → go`, then to `raw TCP (Node)`, in the same run ' +
      '(for MB/s, round trips/s and channels/s higher is better; for µs, lower is better).',
    '',
  );
  const cols = [...WALL, ...CPU];
  lines.push(
    table(
      ['pair', ...cols.map((c) => c.head)],
      pairs.map((p) => [
        p.label,
        ...cols.map((c) => {
          const o = find(p.id, c.workload);
          if (!o) return '—';
          return `${ratio(o, goRef(c.workload), c)} / ${ratio(o, nodeRef(c.workload), c)}`;
        }),
      ]),
    ),
  );
  const failed = outcomes.filter((o) => o.status !== 'ok');
  if (failed.length > 0) {
    lines.push('');
    for (const o of failed) {
      const label = pairs.find((p) => p.id === o.pair)?.label ?? o.pair;
      lines.push(`- failed: ${label}, ${o.workload}: ${o.reason ?? '?'}`);
    }
  }
  return lines.join('\n') + '\n';
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp.${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

function machine(): string {
  const cpus = os.cpus();
  let distro = '';
  try {
    distro = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '';
  } catch {
    // not Linux, or no os-release
  }
  return `${cpus[0]?.model.trim() ?? '?'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${distro ? distro + ', ' : ''}${os.type()} ${os.release()}`;
}

function loadAverage(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' / ');
}

function toolVersions(): { go: string; yamux: string } {
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  const dpkg = spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'golang-github-hashicorp-yamux-dev'], {
    encoding: 'utf8',
  });
  return {
    go: go.status === 0 ? go.stdout.trim().replace(/^go version /, '') : '?',
    yamux: dpkg.status === 0 && dpkg.stdout ? `Debian golang-github-hashicorp-yamux-dev ${dpkg.stdout.trim()}` : '?',
  };
}

function sizesText(): string {
  const n = fmt(0);
  return (
    `bulk ${n(sizes.bytes / 2 ** 20)} MiB in ${n(sizes.writeSize / 1024)} KiB writes; ` +
    `rr ${n(sizes.rrCount)} round trips of ${sizes.msgSize} B after ${n(sizes.rrWarmup)} not measured; ` +
    `open ${n(sizes.openCount)} channels, at most ${sizes.inflight} in flight`
  );
}

async function runner(): Promise<void> {
  if (args.help) {
    const head = readFileSync(SELF, 'utf8').split('\n');
    console.log(
      head
        .slice(
          0,
          head.findIndex((l) => !l.startsWith('//')),
        )
        .join('\n'),
    );
    return;
  }
  const goPath = spawnSync('go', ['version']);
  if (goPath.error || goPath.status !== 0 || !existsSync(join(YAMUX_DIR, 'session.go'))) {
    console.error(`go-yamux: needs Go and hashicorp/yamux; install them with: ${INSTALL_HINT}`);
    process.exit(1);
  }
  if (!existsSync(join(REPO, 'dist', 'src', 'index.js'))) {
    console.error('go-yamux: muxwire is not built (dist/src/index.js); run npm run build first');
    process.exit(1);
  }
  const build = spawnSync(join(REPO, 'bench', 'go', 'build.sh'), [], { encoding: 'utf8', timeout: 180_000 });
  if (build.status !== 0) {
    console.error(`go-yamux: bench/go/build.sh failed: ${build.stderr.trim() || String(build.error)}`);
    process.exit(1);
  }
  goBinary = build.stdout.trim().split('\n').pop() ?? '';

  let pairs = allPairs();
  if (args.pairs) {
    const wanted = args.pairs.split(',');
    const unknown = wanted.filter((id) => !pairs.some((p) => p.id === id));
    if (unknown.length > 0) {
      console.error(`go-yamux: unknown pair(s) ${unknown.join(', ')}; known: ${pairs.map((p) => p.id).join(', ')}`);
      process.exit(2);
    }
    pairs = pairs.filter((p) => wanted.includes(p.id));
  }
  let workloads = WORKLOADS;
  if (args.workloads) {
    const wanted = args.workloads.split(',');
    if (wanted.some((w) => !WORKLOADS.includes(w as Workload))) {
      console.error(`go-yamux: --workloads takes ${WORKLOADS.join(', ')}`);
      process.exit(2);
    }
    workloads = WORKLOADS.filter((w) => wanted.includes(w));
  }

  const versions = toolVersions();
  const started = Date.now();
  const load0 = loadAverage();
  const outcomes: Outcome[] = [];
  for (const workload of workloads) {
    const these = pairs.filter((p) => p.workloads.includes(workload));
    const byPair = new Map<string, Outcome>();
    for (const p of these) {
      const o: Outcome = { pair: p.id, workload, status: 'ok', rounds: [] };
      byPair.set(p.id, o);
      outcomes.push(o);
    }
    for (let round = 0; round < repeats; round++) {
      for (let i = 0; i < these.length; i++) {
        const pair = these[(i + round) % these.length]!;
        const o = byPair.get(pair.id)!;
        if (o.status !== 'ok') continue; // a failed pair is not run again
        try {
          const r = await runOnce(pair, workload);
          o.rounds.push(r);
          const extra = r.p50Us !== undefined ? ` p50 ${fmt(1)(r.p50Us)} µs p99 ${fmt(1)(r.p99Us ?? NaN)} µs` : '';
          console.error(
            `go-yamux: ${workload} round ${round + 1}/${repeats} ${pair.label}: ${fmt(0)(r.rate)}/s${extra}, CPU ${fmt(1)(r.cpu)} µs/unit`,
          );
        } catch (err) {
          o.status = 'failed';
          o.reason = `round ${round + 1}: ${(err as Error).message}`;
          console.error(`go-yamux: ${workload} round ${round + 1}/${repeats} ${pair.label}: failed: ${o.reason}`);
        }
      }
    }
  }
  const seconds = Math.round((Date.now() - started) / 1000);
  const command = `npm run bench:go${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`;
  const goConfig =
    'yamux.DefaultConfig() (AcceptBacklog 256, keep-alive every 30 s, ConnectionWriteTimeout 10 s), ' +
    `MaxStreamWindowSize ${windowText(goWindow)}` +
    (pairs.some((p) => p.id.endsWith('-wide')) ? `, and ${windowText(wideWindow)} in the rows that say so` : '');
  const meta: Record<string, string> = {
    date: new Date(started).toISOString(),
    command: `\`${command}\``,
    Node: process.version,
    Go: versions.go,
    'hashicorp/yamux': versions.yamux,
    machine: machine(),
    'load average (1/5/15 min)': `${load0} at the start, ${loadAverage()} at the end`,
    duration: `${Math.floor(seconds / 60)} min ${seconds % 60} s`,
    sizes: sizesText(),
    'Go config': goConfig,
    'muxwire config':
      "the bench's session options (defaults: window auto-tuned from 256 KiB up to 64 MiB, keep-alive every 30 s)" +
      (process.env.MUXWIRE_BENCH_OPTIONS ? ` plus MUXWIRE_BENCH_OPTIONS=${process.env.MUXWIRE_BENCH_OPTIONS}` : ''),
    setup:
      'client and server in two processes over 127.0.0.1; raw TCP opens one connection per channel (TCP_NODELAY on both sides); ' +
      'CPU time from getrusage (Go) and process.cpuUsage() (Node)' +
      (rttMs > 0
        ? `; every connection through bench/proxy.ts, ${rttMs / 2} ms each way (RTT ${rttMs} ms), at most 32 MiB held per direction`
        : ''),
  };
  const markdown = render(pairs, outcomes, meta);
  process.stdout.write(markdown);
  if (args.markdown) writeAtomic(args.markdown, markdown);
  if (args.json) {
    const json = {
      meta: { ...meta, command, repeats, sizes },
      pairs,
      results: outcomes.map((o) => {
        const medians: Record<string, number> = {};
        for (const c of [...WALL, ...CPU].filter((c) => c.workload === o.workload)) {
          medians[c.head] = median(values(o, c));
        }
        return { ...o, medians };
      }),
    };
    writeAtomic(args.json, JSON.stringify(json, null, 2) + '\n');
  }
  if (outcomes.some((o) => o.status !== 'ok')) process.exitCode = 1;
}

// ---------------------------------------------------------------------------------------------------------

function childSizes(): Sizes {
  return {
    ...FULL,
    bytes: num(args.bytes, FULL.bytes, 'bytes'),
    writeSize: num(args['write-size'], FULL.writeSize, 'write-size'),
    rrCount: num(args.count, FULL.rrCount, 'count'),
    rrWarmup: num(args.warmup, FULL.rrWarmup, 'warmup'),
    msgSize: num(args['msg-size'], FULL.msgSize, 'msg-size'),
    openCount: num(args.count, FULL.openCount, 'count'),
    inflight: num(args.inflight, FULL.inflight, 'inflight'),
  };
}

if (args.child !== undefined) {
  // A child ends itself after the cap, in case the runner is gone.
  setTimeout(() => childFail(`timeout after ${capSeconds} s`), capSeconds * 1000).unref();
  const transport = args.transport ?? 'muxwire';
  if (transport !== 'muxwire' && transport !== 'tcp') childFail('--transport must be muxwire or tcp');
  const started =
    args.child === 'server'
      ? childServer(transport)
      : childClient(transport, args.addr ?? '', (args.workload ?? '') as Workload, childSizes());
  started.catch((err: unknown) => childFail(String(err)));
} else {
  await runner();
}
