/**
 * Dead peer: a peer that stops answering (the proxy stalls, both ways or one way) is detected by keep-alive
 * within the configured time, and every pending operation fails with the timeout; a peer that is merely slow
 * (a bandwidth cap under a large transfer, pings queued behind data) is never declared dead.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Channel, Session } from '../../src/index.js';
import { pseudoRandomBytes, until } from '../helpers.js';
import type { Directions } from '../support/fault-proxy.js';
import { proxiedPair } from '../support/pairs.js';
import { Rng } from '../support/random.js';
import { report, scaled } from '../support/soak.js';
import { exitWhenDone } from '../support/watchdog.js';

exitWhenDone();

const INTERVAL = 100;
const TIMEOUT = 300;
/**
 * The longest keep-alive may take: the next ping goes out within one interval; its answer is awaited for one
 * timeout, extended once more if the peer's bytes (its own pings, say) arrived meanwhile. On a busy shared
 * machine each of those three timers may also fire late by as much as the event loop was held up, so each
 * trial adds three times the worst event-loop delay it measured (`detectionBound`), on top of 150 ms for the
 * proxy and the sockets. Quiet, the delay is a few ms; a CI run once missed a fixed 850 ms bound.
 */
const PROTOCOL_BOUND = INTERVAL + 2 * TIMEOUT;
const detectionBound = (loopDelayMs: number): number => PROTOCOL_BOUND + 150 + 3 * loopDelayMs;
const STALL_TRIALS = scaled('MUXWIRE_STALL_TRIALS', 3, 20);
const SLOW_BYTES = scaled('MUXWIRE_SLOW_BYTES', 2 * 1024 * 1024, 8 * 1024 * 1024);
const SLOW_RATE = scaled('MUXWIRE_SLOW_RATE', 512 * 1024, 1024 * 1024);
const UPLOAD_SECONDS = scaled('MUXWIRE_UPLOAD_SECONDS', 6, 30);

const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** Resolves with the error the session closed with, and when. */
function closing(session: Session): Promise<{ error: Error | undefined; at: number }> {
  return new Promise((resolve) => session.once('close', (error) => resolve({ error, at: performance.now() })));
}

/** An echoing channel pair that carries a little traffic, so the stall hits a session in use. */
async function busyChannel(pair: Awaited<ReturnType<typeof proxiedPair>>): Promise<Channel> {
  pair.server.on('channel', (channel) => {
    channel.on('error', () => {});
    channel.pipe(channel);
  });
  const channel = pair.client.dial();
  channel.on('error', () => {});
  const echoed = new Promise<void>((resolve) => channel.once('data', () => resolve()));
  channel.write('are you there?');
  await echoed;
  return channel;
}

describe('a peer that stops answering is detected by keep-alive', () => {
  for (const directions of ['both', 'upstream', 'downstream'] as Directions[]) {
    test(
      `stall ${directions === 'both' ? 'both directions' : `${directions} only`}: ERR_MUX_KEEPALIVE_TIMEOUT within ${PROTOCOL_BOUND} ms plus margins`,
      { timeout: 30_000 + STALL_TRIALS * 5000 },
      async (t) => {
        const rng = new Rng(directions.length);
        let worst = 0;
        let worstLoopDelay = 0;
        for (let trial = 0; trial < STALL_TRIALS; trial++) {
          const keepAlive = { keepAliveInterval: INTERVAL, keepAliveTimeout: TIMEOUT };
          const pair = await proxiedPair({
            proxy: { seed: trial, both: { latencyMs: 2 } },
            client: keepAlive,
            server: keepAlive,
          });
          try {
            const channel = await busyChannel(pair);
            await new Promise((resolve) => setTimeout(resolve, rng.int(0, 2 * INTERVAL))); // stall at any phase of the ping cycle
            const clientClosed = closing(pair.client);
            const serverClosed = closing(pair.server);
            const pendingRead = new Promise<Error | undefined>((resolve) =>
              channel.once('close', () => resolve(channel.failure)),
            );
            const loopDelay = monitorEventLoopDelay({ resolution: 10 });
            loopDelay.enable();
            const stalledAt = performance.now();
            pair.proxy!.stall(directions);
            const client = await clientClosed;
            const server = await serverClosed;
            loopDelay.disable();
            // (the histogram's max is in ns and includes its own 10 ms sampling period)
            const loopDelayMs = Math.max(0, loopDelay.max / 1e6 - 10);
            worstLoopDelay = Math.max(worstLoopDelay, loopDelayMs);
            const bound = detectionBound(loopDelayMs);
            const clientMs = client.at - stalledAt;
            const serverMs = server.at - stalledAt;
            worst = Math.max(worst, clientMs, serverMs);
            // The side that hears nothing times out; the other may time out too, or see the transport close.
            const timedOut = [client, server].filter(
              (s) => (s.error as { code?: string } | undefined)?.code === 'ERR_MUX_KEEPALIVE_TIMEOUT',
            );
            assert.ok(
              timedOut.length >= 1,
              `a side detected the dead peer (${client.error?.message} / ${server.error?.message})`,
            );
            if (directions !== 'upstream')
              assert.equal((client.error as { code?: string }).code, 'ERR_MUX_KEEPALIVE_TIMEOUT');
            if (directions !== 'downstream')
              assert.equal((server.error as { code?: string }).code, 'ERR_MUX_KEEPALIVE_TIMEOUT');
            for (const side of [client, server]) assert.ok(side.error !== undefined && 'code' in side.error, 'typed');
            const margins = `bound ${bound.toFixed(0)} ms with the event loop held up to ${loopDelayMs.toFixed(0)} ms`;
            assert.ok(clientMs <= bound, `client detected after ${clientMs.toFixed(0)} ms (${margins})`);
            assert.ok(serverMs <= bound + 50, `server ended after ${serverMs.toFixed(0)} ms (${margins})`);
            // Ordering: no side gives up before a ping could have gone unanswered for a whole timeout.
            for (const [side, ms] of [
              ['client', clientMs],
              ['server', serverMs],
            ] as const) {
              const error = side === 'client' ? client.error : server.error;
              if ((error as { code?: string } | undefined)?.code === 'ERR_MUX_KEEPALIVE_TIMEOUT') {
                assert.ok(ms >= TIMEOUT - INTERVAL, `${side} declared the peer dead after only ${ms.toFixed(0)} ms`);
              }
            }
            const readError = await pendingRead;
            assert.ok(readError !== undefined && 'code' in readError, 'the pending read failed with a typed error');
          } finally {
            await pair.close();
          }
        }
        t.diagnostic(
          report(`dead peer, stall ${directions}`, {
            trials: STALL_TRIALS,
            worstDetectionMs: worst,
            protocolBoundMs: PROTOCOL_BOUND,
            worstLoopDelayMs: worstLoopDelay,
          }),
        );
      },
    );
  }
});

/**
 * A long upload through a bandwidth cap, the receiver reading as fast as the link allows; resolves to whether
 * either session failed, and figures.
 */
async function upload(options: { rate: number; seconds: number; timeout: number; maxWindow?: number }) {
  const keepAlive = {
    keepAliveInterval: 50,
    keepAliveTimeout: options.timeout,
    ...(options.maxWindow !== undefined ? { maxWindow: options.maxWindow } : {}),
  };
  const pair = await proxiedPair({
    proxy: { seed: 9, both: { bytesPerSecond: options.rate, latencyMs: 10 } },
    client: keepAlive,
    server: keepAlive,
  });
  try {
    let received = 0;
    let window = 0;
    // The largest the window ever was: a growth undone later still queued its bytes on the link meanwhile.
    let maxWindow = 0;
    pair.server.once('channel', (channel) => {
      channel.on('error', () => {});
      channel.on('data', (chunk: Buffer) => {
        received += chunk.length;
        window = channel.receiveWindow;
        maxWindow = Math.max(maxWindow, window);
      });
    });
    const channel = pair.client.dial();
    channel.on('error', () => {});
    const chunk = Buffer.alloc(64 * 1024, 1);
    const started = performance.now();
    const deadline = started + options.seconds * 1000;
    let maxRtt = 0;
    while (performance.now() < deadline && pair.client.state === 'open' && pair.server.state === 'open') {
      if (!channel.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            channel.off('drain', done);
            channel.off('close', done);
            resolve();
          };
          const timer = setTimeout(done, 100);
          channel.on('drain', done);
          channel.on('close', done);
        });
      }
      maxRtt = Math.max(maxRtt, pair.client.rtt ?? 0);
    }
    return {
      clientError: pair.client.closeError,
      serverError: pair.server.closeError,
      seconds: (performance.now() - started) / 1000,
      receivedMiB: received / (1024 * 1024),
      window,
      maxWindow,
      maxRttMs: maxRtt,
    };
  } finally {
    await pair.close();
  }
}

/**
 * The uploads' link and keep-alive timeout. A ping waits behind the data queued on the link, at most one
 * 256 KiB window: 250 ms at 1 MiB/s. The timeout is four times that: with 500 ms (twice), soaks measured
 * ping round trips up to 514 ms on the shared machine, answered only thanks to the extension for bytes
 * received. A window that grows beyond the link's need still fails the auto-tuned test: its window is
 * checked directly (a window of 1 MiB, the bug this test once caught, queues a full second).
 */
const UPLOAD_RATE = 1024 * 1024;
const UPLOAD_KEEPALIVE_TIMEOUT = 4 * Math.round((256 * 1024 * 1000) / UPLOAD_RATE);

describe('a slow peer is not declared dead', () => {
  test(
    `both directions saturated: ${(SLOW_BYTES / 1024).toFixed(0)} KiB each way through a ${(SLOW_RATE / 1024).toFixed(0)} KiB/s cap`,
    { timeout: 30_000 + (SLOW_BYTES / SLOW_RATE) * 3000 },
    async (t) => {
      // The keep-alive timeout must exceed the time one window spends queued on the link (window / rate: 0.5 s
      // in npm test, 0.25 s in the soak). At 1.5 times that, round trips measured 83% of the timeout on the
      // shared machine (the ping also waits behind the other direction's data); three times leaves room.
      const timeout = Math.ceil((3 * 256 * 1024 * 1000) / SLOW_RATE);
      const keepAlive = { keepAliveInterval: 50, keepAliveTimeout: timeout, maxWindow: 256 * 1024 };
      const pair = await proxiedPair({
        proxy: { seed: 5, both: { bytesPerSecond: SLOW_RATE, latencyMs: 20 } },
        client: keepAlive,
        server: keepAlive,
      });
      try {
        const upload = pseudoRandomBytes(SLOW_BYTES, 1);
        const download = pseudoRandomBytes(SLOW_BYTES, 2);
        const received = { server: [] as Buffer[], client: [] as Buffer[] };
        const serverDone = new Promise<void>((resolve, reject) => {
          pair.server.once('channel', (channel) => {
            channel.on('data', (chunk: Buffer) => received.server.push(chunk));
            channel.on('end', resolve);
            channel.on('error', reject);
            channel.end(download);
          });
        });
        const channel = pair.client.dial();
        const clientDone = new Promise<void>((resolve, reject) => {
          channel.on('data', (chunk: Buffer) => received.client.push(chunk));
          channel.on('end', resolve);
          channel.on('error', reject);
        });
        let maxRtt = 0;
        const sampler = setInterval(() => {
          maxRtt = Math.max(maxRtt, pair.client.rtt ?? 0, pair.server.rtt ?? 0);
        }, 20);
        const started = performance.now();
        channel.end(upload);
        try {
          await Promise.all([serverDone, clientDone]);
        } finally {
          clearInterval(sampler);
        }
        const elapsed = performance.now() - started;
        assert.equal(sha(Buffer.concat(received.server)), sha(upload));
        assert.equal(sha(Buffer.concat(received.client)), sha(download));
        assert.equal(pair.client.state, 'open', `client: ${pair.client.closeError?.message}`);
        assert.equal(pair.server.state, 'open', `server: ${pair.server.closeError?.message}`);
        assert.ok(
          elapsed > 2 * timeout,
          `the transfer (${elapsed.toFixed(0)} ms) outlasted several keep-alive timeouts`,
        );
        await until(() => pair.client.rtt !== undefined, 2000, 'a ping answered');
        t.diagnostic(
          report('slow peer, both ways', {
            bytesEachWay: SLOW_BYTES,
            rateBps: SLOW_RATE,
            keepAliveTimeoutMs: timeout,
            elapsedMs: elapsed,
            maxRttMs: maxRtt,
          }),
        );
      } finally {
        await pair.close();
      }
    },
  );

  test(
    `a ${UPLOAD_SECONDS} s upload at 1 MiB/s with a ${UPLOAD_KEEPALIVE_TIMEOUT} ms keep-alive timeout, windows capped at 256 KiB`,
    { timeout: 60_000 + UPLOAD_SECONDS * 2000 },
    async (t) => {
      const result = await upload({
        rate: UPLOAD_RATE,
        seconds: UPLOAD_SECONDS,
        timeout: UPLOAD_KEEPALIVE_TIMEOUT,
        maxWindow: 256 * 1024,
      });
      assert.equal(result.clientError, undefined, `client: ${result.clientError?.message}`);
      assert.equal(result.serverError, undefined, `server: ${result.serverError?.message}`);
      t.diagnostic(
        report('slow upload, windows capped', { ...result, clientError: undefined, serverError: undefined }),
      );
    },
  );

  test(
    `the same upload with default window auto-tuning is not declared dead either`,
    { timeout: 60_000 + UPLOAD_SECONDS * 2000 },
    async (t) => {
      const result = await upload({ rate: UPLOAD_RATE, seconds: UPLOAD_SECONDS, timeout: UPLOAD_KEEPALIVE_TIMEOUT });
      t.diagnostic(
        report('slow upload, auto-tuned windows', {
          ...result,
          clientError: result.clientError?.message,
          serverError: undefined,
        }),
      );
      // The link, not the window, limits this upload: auto-tuning must not grow the window (which would only
      // lengthen the queue on the link and the wait of every ping behind it), not even for a while.
      assert.ok(result.maxWindow <= 512 * 1024, `the window grew to ${result.maxWindow} (${result.window} at the end)`);
      assert.equal(
        result.clientError?.message,
        undefined,
        `client failed after ${result.seconds.toFixed(1)} s, window ${result.window}, at most ${result.maxWindow}`,
      );
      assert.equal(result.serverError?.message, undefined);
    },
  );
});
