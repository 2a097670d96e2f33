/**
 * `npm run bench:browser`: muxwire/web in Chromium against a Node server, beside raw WebSocket messages in
 * the same run. Figures: one channel's bulk throughput each way (against the same bytes as raw WebSocket
 * messages of 64 KiB, the sender honouring `bufferedAmount` the way muxwire's transport does), and channels
 * opened per second from the page (1,000 and 10,000 at once, each writing one byte and reading its echo).
 * Each bulk transfer also records CPU time: the Node process's (user + system, `process.cpuUsage()`) and the
 * page's main thread (Chrome DevTools protocol `Performance.getMetrics`, `TaskDuration`), per MiB moved. On a
 * shared, loaded machine the rates swing widely between runs; the CPU figures hardly do, so they tell whether
 * muxwire's own work or the waiting is what differs from raw WebSocket.
 * Rounds alternate muxwire and raw; medians are reported with the range. `--write` puts the table into
 * docs/browser.md between the `browser-bench` markers; `--rounds N` (default 5), `--mib N` (default 64),
 * `--bulk` (the bulk figures only); MUXWIRE_BENCH_OPTIONS (JSON) adds options to both sides' sessions.
 * `--variant JSON` adds, in every round, one more download whose page session gets those options too (for
 * example `'{"initialWindow":262144}'`, the window pages had before), so a change is compared within a run.
 * `--server-variant JSON` adds, in every round, one more upload to a second muxwire server whose sessions get
 * those options (for example `'{"initialWindow":262144}'`, the window the server gave uploads before).
 * `--control` adds a second raw WebSocket download to every round: raw against itself shows how far the
 * shared machine alone moves a ratio.
 * Each muxwire download also pings once half the bytes were read, and each upload once half were written: what
 * a message on another channel of the same session waits behind the transfer's bytes in flight.
 * @module
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { WebSocketServer } from 'ws';

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => {
  const index = args.indexOf(name);
  return index >= 0 ? Number(args[index + 1]) : fallback;
};
const PROFILE = args.includes('--profile');
const ROUNDS = PROFILE ? 0 : option('--rounds', 5);
const ONLY_BULK = args.includes('--bulk');
const MIB = option('--mib', 64);
const WRITE = args.includes('--write');
const CONTROL = args.includes('--control');
const variantIndex = args.indexOf('--variant');
/** Page-side session options of the extra download (`--variant`), or null. */
const VARIANT = variantIndex >= 0 ? (JSON.parse(args[variantIndex + 1] ?? '{}') as Record<string, unknown>) : null;
const serverVariantIndex = args.indexOf('--server-variant');
/** Server-side session options of the extra upload (`--server-variant`), or null. */
const SERVER_VARIANT =
  serverVariantIndex >= 0 ? (JSON.parse(args[serverVariantIndex + 1] ?? '{}') as Record<string, unknown>) : null;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(import.meta.url);

const muxwire = await import('muxwire');
const webEntry = require.resolve('muxwire/web');
const bundle = (
  await build({
    entryPoints: [webEntry],
    bundle: true,
    format: 'iife',
    globalName: 'muxwire',
    write: false,
    platform: 'browser',
    target: 'es2022',
    logLevel: 'silent',
  })
).outputFiles[0]!.contents;

/** Session (and transport) options for both sides, as JSON: MUXWIRE_BENCH_OPTIONS='{"initialWindow":16777216}'. */
const EXTRA = JSON.parse(process.env.MUXWIRE_BENCH_OPTIONS ?? '{}') as Record<string, unknown>;
const TOTAL = MIB * 1024 * 1024;
const PIECE = 64 * 1024;
const payload = Buffer.alloc(PIECE, 7);

// --- the servers: the page, a muxwire WebSocket server, a raw WebSocket server ---
const httpServer = http.createServer((request, response) => {
  if (request.url === '/muxwire.js') response.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
  else
    response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><script src="/muxwire.js"></script>');
});
/** The receive window the Node side had given the last muxwire upload's channel when it ended. */
let uploadWindow = Number.NaN;
const serveMux = (options: Record<string, unknown>) =>
  muxwire.createWebSocketServer(
    { port: 0, host: '127.0.0.1', keepAliveInterval: 0, ...EXTRA, ...options },
    (session) => {
      session.on('channel', (channel) => {
        channel.once('data', (first: Buffer) => {
          if (first[0] === 0x55 /* U: count, answer the total */) {
            let count = first.length - 1;
            channel.on('data', (chunk: Buffer) => {
              count += chunk.length;
            });
            channel.on('end', () => {
              uploadWindow = channel.receiveWindow;
              channel.end(String(count));
            });
          } else if (first[0] === 0x44 /* D: send TOTAL bytes */) {
            let sent = 0;
            const pump = (): void => {
              while (sent < TOTAL) {
                sent += PIECE;
                if (!channel.write(payload)) {
                  channel.once('drain', pump);
                  return;
                }
              }
              channel.end();
            };
            pump();
          } else {
            channel.write(first); // E: echo
            channel.pipe(channel);
          }
        });
      });
    },
  );
const muxServer = serveMux({});
/** The server of `--server-variant`'s uploads. */
const variantServer = serveMux(SERVER_VARIANT ?? {});

const rawServer = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
rawServer.on('connection', (socket) => {
  let count = 0;
  socket.on('message', (data: Buffer) => {
    if (data.length === 1 && data[0] === 0x44) {
      // Download: keep about 1 MiB in flight, as muxwire's transport does.
      let sent = 0;
      const pump = (): void => {
        while (sent < TOTAL && socket.bufferedAmount < 1024 * 1024) {
          sent += PIECE;
          socket.send(
            payload,
            sent >= TOTAL
              ? undefined
              : () => {
                  if (socket.bufferedAmount < 256 * 1024) pump();
                },
          );
        }
      };
      pump();
      return;
    }
    count += data.length;
    if (count >= TOTAL) socket.send(String(count));
  });
});
await Promise.all([
  new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve)),
  new Promise<void>((resolve) => muxServer.once('listening', () => resolve())),
  new Promise<void>((resolve) => variantServer.once('listening', () => resolve())),
  new Promise<void>((resolve) => rawServer.once('listening', () => resolve())),
]);
const muxUrl = `ws://127.0.0.1:${(muxServer.address() as AddressInfo).port}/`;
const variantUrl = `ws://127.0.0.1:${(variantServer.address() as AddressInfo).port}/`;
const rawUrl = `ws://127.0.0.1:${(rawServer.address() as AddressInfo).port}/`;

const profile = mkdtempSync(path.join(os.tmpdir(), 'muxwire-bench-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.MUXWIRE_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const page = await context.newPage();
const devtools = await context.newCDPSession(page);
await devtools.send('Performance.enable');
/** The page main thread's busy time so far, in ms (Chromium's `TaskDuration` metric, in seconds). */
async function pageTaskMs(): Promise<number> {
  const { metrics } = await devtools.send('Performance.getMetrics');
  return (metrics.find((metric) => metric.name === 'TaskDuration')?.value ?? Number.NaN) * 1000;
}
await page.goto(`http://127.0.0.1:${(httpServer.address() as AddressInfo).port}/`);

type Mux = typeof import('muxwire/web');
declare const window: { muxwire: Mux };

/** MB/s (10^6 bytes) of one transfer measured in the page. */
async function rawUpload(): Promise<number> {
  return page.evaluate(
    async ([url, total, piece]) => {
      const socket = new WebSocket(url);
      socket.binaryType = 'arraybuffer';
      await new Promise((resolve) => {
        socket.onopen = resolve;
      });
      const answered = new Promise((resolve) => {
        socket.onmessage = resolve;
      });
      const data = new Uint8Array(piece);
      const started = performance.now();
      for (let sent = 0; sent < total; sent += piece) {
        while (socket.bufferedAmount > 1024 * 1024) await new Promise((resolve) => setTimeout(resolve, 5));
        socket.send(data);
      }
      await answered;
      const ms = performance.now() - started;
      socket.close();
      return total / 1000 / ms;
    },
    [rawUrl, TOTAL, PIECE] as const,
  );
}

async function rawDownload(): Promise<number> {
  return page.evaluate(
    async ([url, total]) => {
      const socket = new WebSocket(url);
      socket.binaryType = 'arraybuffer';
      await new Promise((resolve) => {
        socket.onopen = resolve;
      });
      let received = 0;
      const started = performance.now();
      await new Promise<void>((resolve) => {
        socket.onmessage = (event) => {
          received += (event.data as ArrayBuffer).byteLength;
          if (received >= total) resolve();
        };
        socket.send(new Uint8Array([0x44]));
      });
      const ms = performance.now() - started;
      socket.close();
      return total / 1000 / ms;
    },
    [rawUrl, TOTAL] as const,
  );
}

/** The last muxwire upload's ping RTT (ms), sent once half the bytes were written. */
let uploadPing = Number.NaN;

async function muxUpload(url = muxUrl): Promise<number> {
  const { mbps, ping } = await page.evaluate(
    async ([url, total, piece, extra]) => {
      const session = await window.muxwire.connectWebSocket(url, { keepAliveInterval: 0, ...extra });
      const channel = session.dial();
      const writer = channel.writable.getWriter();
      const reader = channel.readable.getReader();
      const answer = reader.read();
      const started = performance.now();
      await writer.write(new Uint8Array([0x55]));
      // One array for every write, as the raw upload sends one: a write of more than 16 KiB resolves once its
      // bytes reached the transport, so the array may be reused then.
      const data = new Uint8Array(piece);
      // Under --profile: the peer's window and the channel's queue at each write.
      const probe = (globalThis as { uploadTrace?: { writes: number[][] } }).uploadTrace?.writes;
      let ping: Promise<number> | undefined;
      for (let sent = 0; sent < total; sent += piece) {
        if (ping === undefined && sent >= total / 2) ping = session.ping();
        if (probe !== undefined) {
          const stats = channel.stats();
          probe.push([performance.now(), stats.sendWindow, stats.queuedBytes]);
        }
        await writer.write(data);
      }
      await writer.close();
      const { value } = await answer;
      const ms = performance.now() - started;
      if (Number(new TextDecoder().decode(value)) !== total) throw new Error('the server counted other bytes');
      await reader.read();
      const pingMs = await ping!;
      await session.close();
      return { mbps: total / 1000 / ms, ping: pingMs };
    },
    [url, TOTAL, PIECE, EXTRA] as const,
  );
  uploadPing = ping;
  return mbps;
}

/** The last muxwire download's ping RTT (ms), sent once half the bytes were read. */
let downloadPing = Number.NaN;

async function muxDownload(pageOptions: Record<string, unknown> = {}): Promise<number> {
  const { mbps, ping } = await page.evaluate(
    async ([url, total, extra]) => {
      const session = await window.muxwire.connectWebSocket(url, { keepAliveInterval: 0, ...extra });
      const channel = session.dial();
      const writer = channel.writable.getWriter();
      const started = performance.now();
      await writer.write(new Uint8Array([0x44]));
      await writer.close();
      let received = 0;
      let ping: Promise<number> | undefined;
      const reader = channel.readable.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        received += value.length;
        if (ping === undefined && received >= total / 2) ping = session.ping();
      }
      const ms = performance.now() - started;
      if (received !== total) throw new Error(`received ${received}`);
      const pingMs = await ping!;
      await session.close();
      return { mbps: total / 1000 / ms, ping: pingMs };
    },
    [muxUrl, TOTAL, { ...EXTRA, ...pageOptions }] as const,
  );
  downloadPing = ping;
  return mbps;
}

/** Channels per second: `count` channels dialled at once, each writing one byte and reading its echo. */
async function muxOpen(count: number): Promise<number> {
  return page.evaluate(
    async ([url, n]) => {
      const session = await window.muxwire.connectWebSocket(url, {
        keepAliveInterval: 0,
        maxStreams: 100_000,
        acceptBacklog: 100_000,
        ackBacklog: 100_000,
      });
      const started = performance.now();
      await Promise.all(
        Array.from({ length: n }, async () => {
          const channel = session.dial();
          const writer = channel.writable.getWriter();
          await writer.write(new Uint8Array([0x45]));
          await writer.close();
          const reader = channel.readable.getReader();
          while (!(await reader.read()).done);
        }),
      );
      const ms = performance.now() - started;
      await session.close();
      return n / (ms / 1000);
    },
    [muxUrl, count] as const,
  );
}

/** What `--profile` records in the page during one transfer (kept on `globalThis.uploadTrace`). */
interface UploadTrace {
  sends: number[][];
  messages: number[];
  messageBytes: number;
  timers: number;
  delays: number[];
  writes: number[][];
}

/**
 * `--profile`: one raw and one muxwire upload (after one of each to warm up), each under the DevTools
 * protocol's CPU profiler (sampled every 50 µs) and with a timeline of the page's `WebSocket.send` calls
 * (time, bytes, `bufferedAmount` before the call) and of the messages it received (the server's Window
 * Updates). Prints, per upload, the functions with the most self time and where the page waited: the gaps
 * between sends, what ended each long one (a message from the server just before it, or nothing: a timer),
 * and how full the socket's buffer was at each send.
 */
async function profileUploads(): Promise<void> {
  await page.evaluate(() => {
    const trace: UploadTrace = { sends: [], messages: [], messageBytes: 0, timers: 0, delays: [], writes: [] };
    (globalThis as unknown as { uploadTrace: UploadTrace }).uploadTrace = trace;
    const prototype = WebSocket.prototype;
    const send = Object.getOwnPropertyDescriptor(prototype, 'send')!.value as (data: ArrayBufferView) => void;
    prototype.send = function (this: WebSocket, data) {
      trace.sends.push([performance.now(), (data as ArrayBufferView).byteLength, this.bufferedAmount]);
      send.call(this, data as ArrayBufferView);
    };
    const add = Object.getOwnPropertyDescriptor(EventTarget.prototype, 'addEventListener')!.value as (
      type: string,
      listener: unknown,
    ) => void;
    prototype.addEventListener = function (this: WebSocket, type: string, listener: unknown) {
      if (type === 'message') {
        add.call(this, type, (event: MessageEvent<ArrayBuffer>) => {
          trace.messages.push(performance.now());
          trace.messageBytes += event.data.byteLength;
        });
      }
      add.call(this, type, listener);
    };
    const setTimer = globalThis.setTimeout;
    globalThis.setTimeout = ((handler: () => void, ms?: number) => {
      trace.timers++;
      const asked = performance.now();
      return setTimer(() => {
        trace.delays.push(performance.now() - asked);
        handler();
      }, ms);
    }) as typeof setTimeout;
    const tasks = (
      globalThis as { scheduler?: { postTask: (task: () => void, options: { delay: number }) => unknown } }
    ).scheduler;
    if (tasks !== undefined) {
      const postTask = tasks.postTask.bind(tasks);
      tasks.postTask = (task, options) => {
        trace.timers++;
        const asked = performance.now();
        return postTask(() => {
          trace.delays.push(performance.now() - asked);
          task();
        }, options);
      };
    }
  });
  await devtools.send('Profiler.enable');
  await devtools.send('Profiler.setSamplingInterval', { interval: 50 });
  for (const [name, fn] of [
    ['raw WebSocket upload', rawUpload],
    ['muxwire upload', () => muxUpload()],
    ...(args.includes('--profile-downloads')
      ? ([
          ['raw WebSocket download', rawDownload],
          ['muxwire download', () => muxDownload()],
        ] as const)
      : []),
  ] as const) {
    await fn();
    await page.evaluate(() => {
      const trace = (globalThis as unknown as { uploadTrace: UploadTrace }).uploadTrace;
      trace.sends = [];
      trace.messages = [];
      trace.messageBytes = 0;
      trace.timers = 0;
      trace.delays = [];
      trace.writes = [];
    });
    const taskBefore = await pageTaskMs();
    await devtools.send('Profiler.start');
    const mbps = await fn();
    const { profile } = await devtools.send('Profiler.stop');
    const taskMs = (await pageTaskMs()) - taskBefore;
    const trace = await page.evaluate(() => (globalThis as unknown as { uploadTrace: UploadTrace }).uploadTrace);
    // Self time per function, from the samples.
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    const self = new Map<string, number>();
    let totalUs = 0;
    const deltas = profile.timeDeltas ?? [];
    (profile.samples ?? []).forEach((id, i) => {
      const frame = byId.get(id)!.callFrame;
      const file =
        frame.url === '' ? '' : ` ${frame.url.slice(frame.url.lastIndexOf('/') + 1)}:${frame.lineNumber + 1}`;
      const key = `${frame.functionName || '(anonymous)'}${file}`;
      const us = deltas[i + 1] ?? 0;
      self.set(key, (self.get(key) ?? 0) + us);
      totalUs += us;
    });
    console.log(`\n== ${name}: ${fmt(mbps)} MB/s, page main thread busy ${fmt(taskMs / MIB, 2)} ms per MiB`);
    if (name === 'muxwire upload')
      console.log(`the Node side's receive window at the end: ${fmt(uploadWindow / 1024)} KiB`);
    console.log(`self time, ms (of ${fmt(totalUs / 1000)} ms sampled):`);
    for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
      console.log(`  ${fmt(us / 1000, 1).padStart(8)}  ${key}`);
    }
    if (name.endsWith('download')) {
      // The timeline is the upload's; of a download, what came (muxwire's messages) and what the page sent.
      if (trace.messages.length > 0) {
        console.log(
          `messages received: ${trace.messages.length}, ${fmt(trace.messageBytes / trace.messages.length / 1024, 1)} KiB each on average; sends: ${trace.sends.length}`,
        );
      }
      continue;
    }
    const sends = trace.sends.filter((entry) => entry[1]! > 1024);
    const gaps = sends.slice(1).map((entry, i) => entry[0]! - sends[i]![0]!);
    const sorted = [...gaps].sort((a, b) => a - b);
    const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
    const long = gaps.map((gap, i) => ({ gap, end: sends[i + 1]![0]! })).filter(({ gap }) => gap > 0.5);
    const afterMessage = long.filter(({ end }) => trace.messages.some((t) => t <= end && end - t < 0.3));
    const buffered = sends.map((entry) => entry[2]!).sort((a, b) => a - b);
    const span = sends.at(-1)![0]! - sends[0]![0]!;
    console.log(
      `sends over 1 KiB: ${sends.length} (all sends ${trace.sends.length}) in ${fmt(span)} ms; gap median ${fmt(at(0.5), 3)} ms, ` +
        `p90 ${fmt(at(0.9), 3)}, max ${fmt(at(1), 1)}; gaps > 0.5 ms: ${long.length}, ${fmt(
          long.reduce((sum, { gap }) => sum + gap, 0),
        )} ms in all, ${afterMessage.length} of them ended within 0.3 ms of a message from the server`,
    );
    if (trace.writes.length > 0) {
      const windows = trace.writes.map((entry) => entry[1]!).sort((a, b) => a - b);
      console.log(
        `writes: ${trace.writes.length}; the peer's window at a write: median ${fmt(windows[windows.length >> 1]! / 1024)} KiB, ` +
          `p10 ${fmt(windows[Math.floor(windows.length / 10)]! / 1024)} KiB; writes that found it under 64 KiB: ` +
          `${windows.filter((w) => w < 65536).length}, with bytes already queued: ${trace.writes.filter((entry) => entry[2]! > 0).length}`,
      );
    }
    console.log(
      `messages from the server: ${trace.messages.length}; timers (setTimeout, scheduler.postTask): ${trace.timers}, fired after ` +
        `${fmt([...trace.delays].sort((a, b) => a - b)[trace.delays.length >> 1] ?? Number.NaN, 2)} ms (median); bufferedAmount at a send: ` +
        `median ${fmt(buffered[buffered.length >> 1]! / 1024)} KiB, p10 ${fmt(buffered[Math.floor(buffered.length / 10)]! / 1024)} KiB, ` +
        `sends with under 64 KiB buffered: ${buffered.filter((b) => b < 65536).length}`,
    );
  }
  await devtools.send('Profiler.disable');
}

const fmt = (value: number, digits = 0): string =>
  value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const figures: Record<string, number[]> = {
  rawUp: [],
  muxUp: [],
  rawDown: [],
  muxDown: [],
  variantDown: [],
  variantUp: [],
  controlDown: [],
  open1k: [],
  open10k: [],
};
/** Ping RTT (ms) in the middle of each muxwire download, and of each variant download. */
const pings: Record<string, number[]> = { muxDown: [], variantDown: [] };
/** Ping RTT (ms) in the middle of each muxwire upload, and of each server-variant upload. */
const upPings: Record<string, number[]> = { muxUp: [], variantUp: [] };
/** CPU ms per MiB of each bulk figure: the Node process's, and the page main thread's. */
const nodeCpu: Record<string, number[]> = {
  rawUp: [],
  muxUp: [],
  rawDown: [],
  muxDown: [],
  variantDown: [],
  variantUp: [],
};
const pageCpu: Record<string, number[]> = {
  rawUp: [],
  muxUp: [],
  rawDown: [],
  muxDown: [],
  variantDown: [],
  variantUp: [],
};
if (PROFILE) await profileUploads();
for (let round = 0; round < ROUNDS; round++) {
  // Alternate which goes first, so a drift of the shared machine touches both.
  const pairs: [string, () => Promise<number>][] = [
    ['rawUp', rawUpload],
    ['muxUp', () => muxUpload()],
    ...(SERVER_VARIANT === null ? [] : [['variantUp', () => muxUpload(variantUrl)] as [string, () => Promise<number>]]),
    ['rawDown', rawDownload],
    ['muxDown', () => muxDownload()],
    ...(VARIANT === null ? [] : [['variantDown', () => muxDownload(VARIANT)] as [string, () => Promise<number>]]),
    ...(CONTROL ? [['controlDown', rawDownload] as [string, () => Promise<number>]] : []),
  ];
  if (round % 2 === 1) pairs.reverse();
  for (const [name, fn] of pairs) {
    const pageBefore = await pageTaskMs();
    const nodeBefore = process.cpuUsage();
    figures[name]!.push(await fn());
    pings[name]?.push(downloadPing);
    upPings[name]?.push(uploadPing);
    const node = process.cpuUsage(nodeBefore);
    nodeCpu[name]?.push((node.user + node.system) / 1000 / MIB);
    pageCpu[name]?.push(((await pageTaskMs()) - pageBefore) / MIB);
  }
  if (!ONLY_BULK) {
    figures.open1k!.push(await muxOpen(1000));
    figures.open10k!.push(await muxOpen(10_000));
  }
  const last = (name: string): number => figures[name]!.at(-1)!;
  process.stderr.write(
    `round ${round + 1}/${ROUNDS} done: download muxwire/raw ${fmt(last('muxDown') / last('rawDown'), 2)}x` +
      (VARIANT === null ? '' : `, variant/raw ${fmt(last('variantDown') / last('rawDown'), 2)}x`) +
      (SERVER_VARIANT === null ? '' : `, upload variant/raw ${fmt(last('variantUp') / last('rawUp'), 2)}x`) +
      (CONTROL ? `, raw again/raw ${fmt(last('controlDown') / last('rawDown'), 2)}x` : '') +
      `, upload ${fmt(last('muxUp') / last('rawUp'), 2)}x\n`,
  );
}
const chromiumVersion = await page.evaluate(() => /Chrome\/([\d.]+)/.exec(navigator.userAgent)?.[1] ?? '?');
await context.close();
rmSync(profile, { recursive: true, force: true });
for (const server of [muxServer, variantServer]) {
  for (const client of server.clients) client.terminate();
  server.close();
}
rawServer.close();
httpServer.closeAllConnections();
httpServer.close();

if (!PROFILE) printTable();

function printTable(): void {
  const range2 = (values: number[]): string => `${fmt(Math.min(...values), 2)}–${fmt(Math.max(...values), 2)}`;
  const range1 = (values: number[]): string => `${fmt(Math.min(...values), 1)}–${fmt(Math.max(...values), 1)}`;
  const range = (values: number[]): string => `${fmt(Math.min(...values))}–${fmt(Math.max(...values))}`;
  const rows = [
    `| bulk upload, page → Node, ${MIB} MiB | MB/s | ${fmt(median(figures.muxUp!))} (${range(figures.muxUp!)}) | ${fmt(median(figures.rawUp!))} (${range(figures.rawUp!)}) | ${fmt(median(figures.muxUp!) / median(figures.rawUp!), 2)}x |`,
    `| bulk download, Node → page, ${MIB} MiB | MB/s | ${fmt(median(figures.muxDown!))} (${range(figures.muxDown!)}) | ${fmt(median(figures.rawDown!))} (${range(figures.rawDown!)}) | ${fmt(median(figures.muxDown!) / median(figures.rawDown!), 2)}x |`,
    ...(['Up', 'Down'] as const).map((way) => {
      const [mux, raw] = [`mux${way}`, `raw${way}`];
      const cpu = (values: Record<string, number[]>, name: string): string =>
        `${fmt(median(values[name]!), 2)} (${range2(values[name]!)})`;
      return `| CPU per MiB ${way === 'Up' ? 'uploaded' : 'downloaded'}: Node process / page main thread | ms | ${cpu(nodeCpu, mux)} / ${cpu(pageCpu, mux)} | ${cpu(nodeCpu, raw)} / ${cpu(pageCpu, raw)} | ${fmt(median(nodeCpu[mux]!) / median(nodeCpu[raw]!), 2)}x / ${fmt(median(pageCpu[mux]!) / median(pageCpu[raw]!), 2)}x |`;
    }),
    `| ping during the download (page → Node → page) | ms | ${fmt(median(pings.muxDown!), 1)} (${range1(pings.muxDown!)}) | | |`,
    `| ping during the upload (page → Node → page) | ms | ${fmt(median(upPings.muxUp!), 1)} (${range1(upPings.muxUp!)}) | | |`,
    ...(VARIANT === null
      ? []
      : [
          `| bulk download, page options \`${JSON.stringify(VARIANT)}\` | MB/s | ${fmt(median(figures.variantDown!))} (${range(figures.variantDown!)}) | ${fmt(median(figures.rawDown!))} (${range(figures.rawDown!)}) | ${fmt(median(figures.variantDown!) / median(figures.rawDown!), 2)}x |`,
          `| CPU per MiB downloaded, page options \`${JSON.stringify(VARIANT)}\`: Node process / page main thread | ms | ${fmt(median(nodeCpu.variantDown!), 2)} (${range2(nodeCpu.variantDown!)}) / ${fmt(median(pageCpu.variantDown!), 2)} (${range2(pageCpu.variantDown!)}) | | |`,
          `| ping during the download, page options \`${JSON.stringify(VARIANT)}\` | ms | ${fmt(median(pings.variantDown!), 1)} (${range1(pings.variantDown!)}) | | |`,
        ]),
    ...(SERVER_VARIANT === null
      ? []
      : [
          `| bulk upload, server options \`${JSON.stringify(SERVER_VARIANT)}\` | MB/s | ${fmt(median(figures.variantUp!))} (${range(figures.variantUp!)}) | ${fmt(median(figures.rawUp!))} (${range(figures.rawUp!)}) | ${fmt(median(figures.variantUp!) / median(figures.rawUp!), 2)}x |`,
          `| CPU per MiB uploaded, server options \`${JSON.stringify(SERVER_VARIANT)}\`: Node process / page main thread | ms | ${fmt(median(nodeCpu.variantUp!), 2)} (${range2(nodeCpu.variantUp!)}) / ${fmt(median(pageCpu.variantUp!), 2)} (${range2(pageCpu.variantUp!)}) | | |`,
          `| ping during the upload, server options \`${JSON.stringify(SERVER_VARIANT)}\` | ms | ${fmt(median(upPings.variantUp!), 1)} (${range1(upPings.variantUp!)}) | | |`,
        ]),
    ...(CONTROL
      ? [
          `| bulk download, raw WebSocket again (control) | MB/s | ${fmt(median(figures.controlDown!))} (${range(figures.controlDown!)}) | ${fmt(median(figures.rawDown!))} (${range(figures.rawDown!)}) | ${fmt(median(figures.controlDown!) / median(figures.rawDown!), 2)}x |`,
        ]
      : []),
    ...(ONLY_BULK
      ? []
      : [
          `| open 1,000 channels from the page | channels/s | ${fmt(median(figures.open1k!))} (${range(figures.open1k!)}) | | |`,
          `| open 10,000 channels from the page | channels/s | ${fmt(median(figures.open10k!))} (${range(figures.open10k!)}) | | |`,
        ]),
  ];
  const table = [
    `${ROUNDS} rounds, ${new Date().toISOString().slice(0, 10)}, Chromium ${chromiumVersion} (Debian), Node ${process.version}, ` +
      `${os.cpus().length} cores, load average ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' / ')} at the end; median (range):`,
    '',
    '| figure | unit | muxwire/web | raw WebSocket | muxwire / raw |',
    '|---|---|---:|---:|---:|',
    ...rows,
  ].join('\n');
  console.log(table);
  if (WRITE) {
    const file = path.join(root, 'docs/browser.md');
    const text = readFileSync(file, 'utf8');
    const start = text.indexOf('<!-- browser-bench -->');
    const end = text.indexOf('<!-- /browser-bench -->');
    if (start < 0 || end < start) throw new Error('docs/browser.md lacks the browser-bench markers');
    writeFileSync(file, `${text.slice(0, start)}<!-- browser-bench -->\n${table}\n${text.slice(end)}`);
    console.log('written to docs/browser.md');
  }
}
