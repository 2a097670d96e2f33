/**
 * muxwire/web in a real browser: Debian's Chromium, driven by playwright-core (no browser download), against
 * a Node server built on `createWebSocketServer`. Chromium is launched once for the file; each scenario runs
 * in the page (test/browser/page.ts, bundled by esbuild) and returns plain data for the assertions here.
 * Without /usr/bin/chromium the file skips with a note, except on CI (CI=true), where Chromium is required.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { BrowserContext, Page } from 'playwright-core';
import type { MuxWebSocketServer } from '../../src/index.js';
import { type Channel, ChannelResetError, type Session, createWebSocketServer } from '../../src/index.js';
import { WEB_SOCKET_INITIAL_WINDOW } from '../../src/web/websocket-transport.js';
import { CHROMIUM, chromiumAvailable, launchChromium } from '../support/chromium.js';
import { fillPattern } from './pattern.js';
import type { scenarios as PageScenarios } from './page.js';
import type { WorkerRequest, WorkerResult } from './worker.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const KiB = 1024;
const MiB = 1024 * KiB;

if (!chromiumAvailable()) {
  if (process.env.CI === 'true') {
    test('Chromium for the browser tests', () => {
      assert.fail(`${CHROMIUM} is missing; .ci/run installs Debian's chromium`);
    });
  } else {
    test('muxwire/web in Chromium', { skip: `${CHROMIUM} is missing (apt-get install chromium)` }, () => {});
  }
} else {
  registerTests();
}

/** Builds the Go WebSocket peer (test/interop/go/build-ws.sh); its path, or why it cannot be built. */
function buildGoPeer(): string | { error: string } {
  try {
    return execFileSync(path.join(root, 'test/interop/go/build-ws.sh'), {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch (error) {
    return { error: ((error as { stderr?: string }).stderr || (error as Error).message).trim() };
  }
}

type Scenarios = typeof PageScenarios;
type ScenarioName = keyof Scenarios;

/** Runs a page scenario by name and returns its result. */
function run<N extends ScenarioName>(page: Page, name: N, ...args: Parameters<Scenarios[N]>): ReturnType<Scenarios[N]> {
  return page.evaluate(
    ([scenario, params]) => {
      const fn = (window.scenarios as unknown as Record<string, (...a: unknown[]) => unknown>)[scenario as string]!;
      return fn(...(params as unknown[]));
    },
    [name, args] as const,
  ) as ReturnType<Scenarios[N]>;
}

/** What the 'hold' mode's server writer did. */
interface HoldStats {
  confirmed: number;
  maxQueued: number;
  heapBefore: number;
  heapPeak: number;
  done: boolean;
}

function registerTests(): void {
  describe('muxwire/web in Chromium', { timeout: 240_000 }, () => {
    let httpServer: http.Server;
    let wsServer: MuxWebSocketServer;
    let browser: { context: BrowserContext; close: () => Promise<void> };
    let page: Page;
    let base = '';
    let wsBase = '';
    /** Sessions by the `tag` query parameter of their WebSocket URL. */
    const sessions = new Map<string, Session>();
    const resetErrors: Error[] = [];
    let hold: HoldStats | undefined;

    before(async () => {
      const pageBundle = await build({
        entryPoints: [path.join(here, 'page.js')],
        bundle: true,
        format: 'iife',
        write: false,
        platform: 'browser',
        target: 'es2022',
        logLevel: 'silent',
      });
      const pageScript = pageBundle.outputFiles[0]!.contents;
      // The worker is an ES module (`new Worker(url, { type: 'module' })`), bundled as one.
      const workerBundle = await build({
        entryPoints: [path.join(here, 'worker.js')],
        bundle: true,
        format: 'esm',
        write: false,
        platform: 'browser',
        target: 'es2022',
        logLevel: 'silent',
      });
      const workerScript = workerBundle.outputFiles[0]!.contents;
      httpServer = http.createServer((request, response) => {
        if (request.url === '/page.js') {
          response.writeHead(200, { 'content-type': 'text/javascript' }).end(pageScript);
        } else if (request.url === '/worker.js') {
          response.writeHead(200, { 'content-type': 'text/javascript' }).end(workerScript);
        } else {
          response
            .writeHead(200, { 'content-type': 'text/html' })
            .end('<!doctype html><title>muxwire test</title><script src="/page.js"></script>');
        }
      });
      wsServer = createWebSocketServer(
        { server: httpServer, path: '/mux', keepAliveInterval: 0 },
        (session, request) => {
          const query = new URL(request.url!, 'http://x').searchParams;
          sessions.set(query.get('tag') ?? '', session);
          serveMode(session, query);
        },
      );
      await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
      const { port } = httpServer.address() as AddressInfo;
      base = `http://127.0.0.1:${port}`;
      wsBase = `ws://127.0.0.1:${port}/mux`;
      browser = await launchChromium();
      page = await browser.context.newPage();
      await page.goto(`${base}/`);
    });

    after(async () => {
      await browser?.close();
      for (const session of sessions.values()) session.destroy();
      for (const client of wsServer?.clients ?? []) client.terminate();
      wsServer?.close();
      httpServer?.closeAllConnections();
      await new Promise<void>((resolve) => (httpServer ? httpServer.close(() => resolve()) : resolve()));
    });

    /** How the server treats a session, by the `mode` query parameter. */
    function serveMode(session: Session, query: URLSearchParams): void {
      const mode = query.get('mode') ?? 'echo';
      session.on('channel', (channel: Channel) => {
        channel.on('error', (error) => {
          if (mode === 'resets') resetErrors.push(error);
        });
        if (mode !== 'resets') {
          channel.pipe(channel);
          return;
        }
        channel.once('data', (first: Buffer) => {
          // 1: one byte back (the page then knows the channel was taken), then a reset
          if (first[0] === 1) channel.write(Buffer.from([1]), () => channel.destroy());
          // 2: wait for the page to reset it (recorded above)
        });
      });
      if (mode === 'push') {
        const count = Number(query.get('count'));
        for (let i = 0; i < count; i++) session.dial().end(`push ${i}`);
      }
      if (mode === 'hold') holdWriter(session, Number(query.get('mib')) * MiB);
    }

    /** Dials a channel to the page and writes `total` bytes of the pattern into it, honouring backpressure. */
    function holdWriter(session: Session, total: number): void {
      const stats: HoldStats = {
        confirmed: 0,
        maxQueued: 0,
        heapBefore: process.memoryUsage().heapUsed,
        heapPeak: 0,
        done: false,
      };
      hold = stats;
      const channel = session.dial();
      channel.on('error', () => {});
      const state = { x: 12345 };
      let written = 0;
      const pump = (): void => {
        while (written < total) {
          const piece = Buffer.allocUnsafe(64 * KiB);
          fillPattern(state, piece);
          written += piece.length;
          const more = channel.write(piece, () => {
            stats.confirmed += piece.length;
          });
          stats.maxQueued = Math.max(stats.maxQueued, channel.writableLength);
          stats.heapPeak = Math.max(stats.heapPeak, process.memoryUsage().heapUsed);
          if (!more) {
            channel.once('drain', pump);
            return;
          }
        }
        channel.end(() => {
          stats.done = true;
        });
      };
      pump();
    }

    test('1,000 channels opened at once from the page each get their bytes echoed exactly (SHA-256 in the page)', async () => {
      const result = await run(page, 'echoMany', `${wsBase}?tag=many`, 1000);
      assert.equal(result.exact, 1000);
      assert.ok(result.bytes > 1000 * 4 * KiB, 'each channel carried kilobytes');
      await sessions.get('many')!.closed;
      assert.equal(sessions.get('many')!.channelCount, 0);
    });

    test('64 MiB each way on one channel arrive exactly (checked byte by byte in the page)', async () => {
      const result = await run(page, 'bulkEcho', `${wsBase}?tag=bulk`, 64);
      assert.equal(result.received, 64 * MiB);
      assert.equal(result.mismatches, 0);
      console.log(`  # 64 MiB each way in ${Math.round(result.ms)} ms in Chromium`);
    });

    test('channels the server pushes are accepted in the page by async iteration', async () => {
      const result = await run(page, 'acceptPushed', `${wsBase}?tag=push&mode=push&count=20`, 20);
      assert.deepEqual(result.texts, Array.from({ length: 20 }, (_, i) => `push ${i}`).sort());
      for (const id of result.ids) assert.equal(id % 2, 0, 'server-dialled ids are even');
    });

    test('a page reader that stops reading holds the server writer at the window, server memory bounded, then all 64 MiB arrive', async () => {
      const result = await run(page, 'holdPushed', `${wsBase}?tag=hold&mode=hold&mib=64`, WEB_SOCKET_INITIAL_WINDOW);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const stats = hold!;
      // A write is confirmed once it reached the WebSocket, which only the page's window allows.
      assert.equal(
        stats.confirmed,
        WEB_SOCKET_INITIAL_WINDOW,
        "the server sent exactly the page's 2 MiB initial window",
      );
      assert.equal(result.buffered, WEB_SOCKET_INITIAL_WINDOW, 'the page holds one window, unread');
      assert.ok(stats.maxQueued <= 128 * KiB, `the server's queue stayed at its high-water mark (${stats.maxQueued})`);
      const heapGrowth = stats.heapPeak - stats.heapBefore;
      assert.ok(
        heapGrowth < 16 * MiB,
        `server heap grew ${(heapGrowth / MiB).toFixed(1)} MiB while 64 MiB waited to be sent`,
      );
      const read = await run(page, 'readHeld');
      assert.equal(read.received, 64 * MiB);
      assert.equal(read.mismatches, 0);
      assert.equal(stats.done, true);
    });

    test('in a module Web Worker: muxwire/web connects, 100 dialled channels echo exactly (SHA-256), 5 pushed channels are accepted', async () => {
      const result = await page.evaluate(
        async (request) => {
          const worker = new Worker('/worker.js', { type: 'module' });
          try {
            return await new Promise<WorkerResult>((resolve, reject) => {
              worker.onmessage = (event: MessageEvent<WorkerResult>) => resolve(event.data);
              worker.onerror = (event) => reject(new Error(`worker error: ${event.message}`));
              setTimeout(() => reject(new Error('the worker did not answer within 60 s')), 60_000);
              worker.postMessage(request);
            });
          } finally {
            worker.terminate();
          }
        },
        { url: `${wsBase}?tag=worker&mode=push&count=5`, count: 100, pushed: 5 } satisfies WorkerRequest,
      );
      assert.equal(result.error, undefined);
      assert.equal(result.inWorker, true, 'the script ran in a worker scope (no document)');
      assert.equal(result.exact, 100);
      assert.deepEqual(
        result.pushedTexts,
        Array.from({ length: 5 }, (_, i) => `push ${i}`),
      );
      await sessions.get('worker')!.closed;
      assert.equal(sessions.get('worker')!.channelCount, 0);
    });

    test('resets both ways: the server reset fails the page read and write with ChannelResetError, the page reset fails the server channel', async () => {
      resetErrors.length = 0;
      const result = await run(page, 'resets', `${wsBase}?tag=resets&mode=resets`);
      for (const error of [result.read, result.write, result.failure]) {
        assert.deepEqual(error, {
          name: 'ChannelResetError',
          code: 'ERR_MUX_CHANNEL_RESET',
          muxError: true,
          reset: true,
        });
      }
      assert.equal(resetErrors.length, 1);
      assert.ok(resetErrors[0] instanceof ChannelResetError);
    });

    test("the server process killed: the page's pending reads, accept and closed settle with typed errors within keepAliveTimeout", async () => {
      const child: ChildProcess = spawn(process.execPath, [path.join(here, 'server-child.js')], {
        env: { ...process.env, MUXWIRE_WS_CHILD: '1' },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      try {
        const port = await new Promise<number>((resolve, reject) => {
          let output = '';
          child.stdout!.on('data', (chunk: Buffer) => {
            output += chunk.toString();
            const match = /PORT (\d+)/.exec(output);
            if (match) resolve(Number(match[1]));
          });
          child.once('exit', () => reject(new Error('the server child exited before listening')));
        });
        const keepAliveTimeout = 5000;
        const open = await run(page, 'openAndWait', `ws://127.0.0.1:${port}/mux`, 20, keepAliveTimeout);
        assert.equal(open, 20);
        const killedAt = performance.now();
        child.kill('SIGKILL');
        const settled = await run(page, 'pendingSettled');
        const elapsed = performance.now() - killedAt;
        assert.ok(elapsed < keepAliveTimeout, `settled ${Math.round(elapsed)} ms after the kill`);
        assert.equal(settled.settled, 22);
        for (const error of settled.errors) {
          assert.equal(error.muxError, true, `a typed error: ${JSON.stringify(error)}`);
          assert.equal(error.code, 'ERR_MUX_TRANSPORT_CLOSED');
        }
      } finally {
        child.kill('SIGKILL');
      }
    });

    test('the page closed: the server session ends and frees every channel', async () => {
      const second = await browser.context.newPage();
      await second.goto(`${base}/`);
      const open = await run(second, 'openAndWait', `${wsBase}?tag=closing`, 50, 10_000);
      assert.equal(open, 50);
      const session = sessions.get('closing')!;
      assert.equal(session.channelCount, 50);
      await second.close();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        session.closed.then(
          () => 'clean',
          (error: unknown) => (error as Error).name,
        ),
        new Promise((resolve) => (timer = setTimeout(() => resolve('still open'), 10_000))),
      ]).finally(() => clearTimeout(timer)); // (a timer left set kept the test process 10 s after its tests)
      assert.equal(outcome, 'TransportClosedError');
      assert.equal(session.channelCount, 0);
      assert.equal(session.bufferedBytes, 0);
    });

    test("origins: the page's own origin opens a session; a page of another origin (localhost for 127.0.0.1) is refused with 403 before any session, and its connectWebSocket rejects with a typed error", async () => {
      // A second endpoint on the same HTTP server, open to the test page's origin only (base is known once listening).
      const origins: (string | undefined)[] = [];
      const guarded = createWebSocketServer(
        {
          server: httpServer,
          path: '/guarded',
          keepAliveInterval: 0,
          origins: (origin) => {
            origins.push(origin);
            return origin === base;
          },
        },
        (session) => session.on('channel', (channel: Channel) => channel.pipe(channel)),
      );
      const other = await browser.context.newPage();
      try {
        const guardedUrl = wsBase.replace('/mux', '/guarded');
        assert.deepEqual(await run(page, 'echoOnce', guardedUrl), { echoed: `from ${base}` });
        const otherOrigin = base.replace('127.0.0.1', 'localhost');
        await other.goto(`${otherOrigin}/`);
        const refused = await run(other, 'echoOnce', guardedUrl);
        assert.ok('error' in refused, 'the page of another origin was refused');
        assert.equal(refused.error.muxError, true, JSON.stringify(refused.error));
        assert.match(refused.error.name, /WebSocketClosedError|TransportClosedError/);
        // What Chromium sent as Origin: each page's own.
        assert.deepEqual(origins, [base, otherOrigin]);
        assert.equal(guarded.clients.size, 0, 'no WebSocket left open');
      } finally {
        await other.close();
        await new Promise<void>((resolve) => guarded.close(() => resolve()));
      }
    });

    test("against Go hashicorp/yamux behind a gorilla WebSocket: 200 page channels echoed exactly, and the Go side's channel accepted", async (t) => {
      const peer = buildGoPeer();
      if (typeof peer !== 'string') {
        if (process.env.CI === 'true') assert.fail(`the Go WebSocket peer cannot be built on CI: ${peer.error}`);
        t.skip(peer.error.split('\n').pop() ?? peer.error);
        return;
      }
      const go = spawn(peer, ['-timeout', '60s'], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        let output = '';
        const port = await new Promise<number>((resolve, reject) => {
          go.stdout.on('data', (chunk: Buffer) => {
            output += chunk.toString();
            const match = /PORT (\d+)/.exec(output);
            if (match) resolve(Number(match[1]));
          });
          go.once('exit', () => reject(new Error(`the Go peer exited: ${output}`)));
        });
        const result = await run(page, 'againstGo', `ws://127.0.0.1:${port}/mux`, 200);
        assert.equal(result.exact, 200);
        assert.equal(result.greeting, 'hello from Go over a WebSocket');
        const line = await new Promise<string>((resolve) => {
          const check = (): void => {
            const match = /RESULT .*/.exec(output);
            if (match) resolve(match[0]);
          };
          go.stdout.on('data', check);
          check();
        });
        assert.equal(line, 'RESULT ok echoed=200 pushed=1');
      } finally {
        go.kill('SIGKILL');
      }
    });

    test('the README "In the browser" script runs as written and prints the echo', async () => {
      const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
      const match = /<!-- browser-example -->\s*```html\n([\s\S]*?)```/.exec(readme);
      assert.ok(match, 'README.md has the marked browser example');
      const esm = await build({
        entryPoints: [path.join(root, 'dist/src/web/index.js')],
        bundle: true,
        format: 'esm',
        write: false,
        platform: 'browser',
        target: 'es2022',
        logLevel: 'silent',
      });
      const example = match[1]!;
      // The README page is served by the demo server, which also serves the bundle at this path.
      const exampleServer = http.createServer((request, response) => {
        if (request.url === '/muxwire-web.js') {
          response.writeHead(200, { 'content-type': 'text/javascript' }).end(esm.outputFiles[0]!.contents);
        } else {
          response.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html>\n${example}`);
        }
      });
      const exampleWs = createWebSocketServer({ server: exampleServer, path: '/mux' }, (session) => {
        session.on('channel', (channel: Channel) => channel.pipe(channel));
      });
      await new Promise<void>((resolve) => exampleServer.listen(0, '127.0.0.1', resolve));
      const third = await browser.context.newPage();
      try {
        const logged = new Promise<string>((resolve) => third.on('console', (message) => resolve(message.text())));
        await third.goto(`http://127.0.0.1:${(exampleServer.address() as AddressInfo).port}/`);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const text = await Promise.race([
          logged,
          new Promise((resolve) => (timer = setTimeout(() => resolve('(nothing)'), 10_000))),
        ]).finally(() => clearTimeout(timer));
        assert.equal(text, 'hello');
      } finally {
        await third.close();
        exampleWs.close();
        exampleServer.closeAllConnections();
        await new Promise<void>((resolve) => exampleServer.close(() => resolve()));
      }
    });

    test('over an RTCDataChannel between two connections in the page: 400 channels dialled by both ends and 8 MiB each way echo exactly, no message above 64 KiB with 1 MiB frames, a closed connection ends the other session with a typed error and its own without a hang', async () => {
      const result = await run(page, 'dataChannels', 400, 8 * MiB);
      assert.equal(result.exact, 400);
      assert.equal(result.bulkExact, true);
      assert.ok(result.sctpMaxMessageSize > 0, 'the connection has an SCTP transport');
      // The default maxMessageSize (RFC 8841's 64 KiB) holds even for 1 MiB frames, which are cut to fit.
      assert.ok(
        result.largestMessage > 32 * KiB && result.largestMessage <= 64 * KiB,
        `largest message ${result.largestMessage}`,
      );
      // The peer's connection closed under an open channel: the transport failed (Chromium closes the data
      // channel with an error, "User-Initiated Abort"), or ended with the channel open; typed either way.
      assert.equal(result.closedByPeer?.code, 'ERR_MUX_TRANSPORT_CLOSED');
      // The end whose own connection closed settles too (the page's code closed it: no error is needed).
      assert.ok(result.closedHere === null || result.closedHere.muxError, JSON.stringify(result.closedHere));
    });

    test("a data channel's session keeps Chromium's send queue within 16 MiB (send() throws past it): 16 MiB frames with 32 MiB windows, and a 16 MiB highWaterMark with 1 MiB frames, each 40 MiB exact", async () => {
      for (const [frame, highWaterMark] of [
        [16 * MiB, undefined],
        [MiB, 16 * MiB],
      ] as const) {
        const result = await run(page, 'dataChannelQueue', frame, 32 * MiB, 40 * MiB, highWaterMark);
        assert.equal(result.wrote, 'ok', JSON.stringify(result));
        assert.equal(result.exact, true);
        assert.ok(result.mostQueued <= 16 * MiB, `queued ${result.mostQueued}`);
      }
    });
  });
}
