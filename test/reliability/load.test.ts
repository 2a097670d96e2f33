/**
 * Load and leaks: many concurrent channels on one session; a long sequence of channels opened, used and closed
 * with heap and RSS flat at the end; and (the soak) minutes of mixed traffic over several transports at once.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Channel, Session } from '../../src/index.js';
import { memoryPipe, pseudoRandomBytes } from '../helpers.js';
import { multiplexedClient, multiplexedServer, sharedMemoryBudget } from '../../src/index.js';
import { CODECS } from '../support/codecs.js';
import { makePlan, runExchange } from '../support/exchange.js';
import { type ProxiedPair, proxiedPair } from '../support/pairs.js';
import { Rng } from '../support/random.js';
import { MiB, mib, settledMemory } from '../support/resources.js';
import { selfSignedCertificate } from '../support/self-signed.js';
import { SOAK, report, scaled } from '../support/soak.js';
import { exitWhenDone } from '../support/watchdog.js';

exitWhenDone();

const CONCURRENT = scaled('MUXWIRE_CONCURRENT_CHANNELS', 20_000, 100_000);
const SEQUENTIAL = scaled('MUXWIRE_SEQUENTIAL_CHANNELS', 20_000, 1_000_000);
const MIXED_SECONDS = scaled('MUXWIRE_MIXED_SECONDS', 4, 600);

const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** Reads a channel to its end. */
function readAll(channel: Channel): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    channel.on('data', (chunk: Buffer) => chunks.push(chunk));
    channel.once('end', () => resolve(Buffer.concat(chunks)));
    channel.once('error', reject);
  });
}

function echoServer(session: Session): void {
  session.on('channel', (channel) => {
    channel.on('error', () => {});
    channel.pipe(channel);
  });
}

describe('load', () => {
  test(
    'an idle channel costs about a kilobyte of heap on each side (at most 1.5 KiB: docs/targets.md)',
    { timeout: 120_000 },
    async (t) => {
      // README: "an idle channel costs about a kilobyte". Both sessions live in this process, so the heap they
      // add is both ends of every channel: half of it per side. 10,000 channels average out the noise of
      // the collector; the bench measures the same per process (docs/benchmarks.md, idle).
      const count = 10_000;
      const options = { maxStreams: count + 16, acceptBacklog: count + 16, keepAliveInterval: 0 };
      const pair = await proxiedPair({ proxy: false, client: options, server: options });
      try {
        const inbound: Channel[] = [];
        pair.server.on('channel', (channel) => {
          channel.on('error', () => {});
          inbound.push(channel);
        });
        const channels: Channel[] = [];
        const before = await settledMemory();
        for (let i = 0; i < count; i++) {
          const channel = pair.client.dial();
          channel.on('error', () => {});
          channels.push(channel);
        }
        const deadline = performance.now() + 60_000;
        while (inbound.length < count && pair.server.state === 'open' && performance.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        assert.equal(inbound.length, count, 'every channel open at both ends');
        const during = await settledMemory();
        const perSideKiB = (during.heapUsed - before.heapUsed) / count / 2 / 1024;
        t.diagnostic(report('idle channels', { channels: count, heapPerChannelPerSideKiB: perSideKiB }));
        assert.ok(perSideKiB > 0.2, `${perSideKiB.toFixed(2)} KiB per side: the measure saw the channels`);
        assert.ok(perSideKiB <= 1.5, `${perSideKiB.toFixed(2)} KiB of heap per idle channel on each side`);
        for (const channel of channels) channel.destroy(); // (also keeps them referenced until measured)
      } finally {
        await pair.close();
      }
    },
  );

  test(
    `${CONCURRENT} concurrent channels on one session, all open at once, each echoing`,
    { timeout: 600_000 },
    async (t) => {
      const options = { maxStreams: CONCURRENT + 16, acceptBacklog: 4096 };
      const pair = await proxiedPair({ proxy: false, client: options, server: options });
      try {
        const inbound: Channel[] = [];
        pair.server.on('channel', (channel) => {
          channel.on('error', () => {});
          inbound.push(channel);
        });
        const before = await settledMemory();
        const started = performance.now();
        const channels: Channel[] = [];
        for (let i = 0; i < CONCURRENT; i++) {
          const channel = pair.client.dial();
          channel.on('error', () => {});
          channel.write(`channel ${i};`);
          channels.push(channel);
        }
        // Every channel arrives while all the others are still open.
        while (inbound.length < CONCURRENT && pair.server.state === 'open' && performance.now() - started < 300_000) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        const opened = performance.now() - started;
        assert.equal(inbound.length, CONCURRENT);
        assert.equal(pair.client.channelCount, CONCURRENT);
        assert.equal(pair.server.channelCount, CONCURRENT);
        const during = await settledMemory();
        // Each answers on its own channel, then both sides close it.
        const replies = channels.map((channel) => readAll(channel));
        for (const channel of inbound) {
          channel.once('data', (chunk: Buffer) => channel.end(Buffer.concat([Buffer.from('echo '), chunk])));
        }
        for (const channel of channels) channel.end();
        const texts = await Promise.all(replies);
        texts.forEach((text, i) => assert.equal(text.toString(), `echo channel ${i};`));
        while (
          (pair.client.channelCount > 0 || pair.server.channelCount > 0) &&
          performance.now() - started < 300_000
        ) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        const elapsed = performance.now() - started;
        assert.equal(pair.client.channelCount, 0);
        assert.equal(pair.server.channelCount, 0);
        assert.equal(pair.client.bufferedBytes + pair.server.bufferedBytes, 0);
        const perChannel = (during.heapUsed - before.heapUsed) / CONCURRENT;
        t.diagnostic(
          report('concurrent channels', {
            channels: CONCURRENT,
            allOpenAfterMs: opened,
            totalMs: elapsed,
            heapPerOpenChannelKiB: perChannel / 1024,
            heapWithAllOpenMiB: mib(during.heapUsed),
            rssWithAllOpenMiB: mib(during.rss),
          }),
        );
      } finally {
        await pair.close();
      }
    },
  );

  test(
    `${SEQUENTIAL} channels opened, used and closed in sequence: heap and RSS flat`,
    { timeout: 3_600_000 },
    async (t) => {
      const pair = await proxiedPair({ proxy: false });
      try {
        echoServer(pair.server);
        const inFlight = 64;
        const samples: { done: number; heapMiB: number; rssMiB: number }[] = [];
        const checkpoints = new Set([0.1, 0.2, 0.4, 0.6, 0.8, 1].map((f) => Math.floor(SEQUENTIAL * f)));
        let next = 0;
        let done = 0;
        let warm = { heapUsed: 0, rss: 0 };
        const started = performance.now();
        const worker = async (): Promise<void> => {
          while (next < SEQUENTIAL) {
            const i = next++;
            const channel = pair.client.dial();
            const message = `message ${i}`;
            const reply = readAll(channel);
            channel.end(message);
            assert.equal((await reply).toString(), message);
            await new Promise<void>((resolve) => (channel.closed ? resolve() : channel.once('close', () => resolve())));
            done++;
            if (checkpoints.has(done)) {
              checkpoints.delete(done);
              const memory = await settledMemory();
              samples.push({ done, heapMiB: mib(memory.heapUsed), rssMiB: mib(memory.rss) });
              if (samples.length === 1) warm = memory;
            }
          }
        };
        await Promise.all(Array.from({ length: inFlight }, worker));
        const elapsed = performance.now() - started;
        // The server may forget its last channels a moment after the client: wait for that, within bounds.
        const settleBy = performance.now() + 10_000;
        while (pair.server.channelCount > 0 && performance.now() < settleBy) {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        const end = await settledMemory();
        assert.equal(pair.client.channelCount, 0);
        assert.equal(pair.server.channelCount, 0);
        assert.equal(pair.client.bufferedBytes, 0);
        assert.equal(pair.server.bufferedBytes, 0);
        const heapGrowth = end.heapUsed - warm.heapUsed;
        const rssGrowth = end.rss - warm.rss;
        t.diagnostic(
          report('sequential channels', {
            channels: SEQUENTIAL,
            elapsedMs: elapsed,
            channelsPerSecond: SEQUENTIAL / (elapsed / 1000),
            heapAt10PercentMiB: mib(warm.heapUsed),
            heapAtEndMiB: mib(end.heapUsed),
            heapGrowthMiB: mib(heapGrowth),
            rssAt10PercentMiB: mib(warm.rss),
            rssAtEndMiB: mib(end.rss),
            rssGrowthMiB: mib(rssGrowth),
            samples: JSON.stringify(samples),
          }),
        );
        assert.ok(heapGrowth < 8 * MiB, `heap grew by ${mib(heapGrowth)} MiB after the first 10%`);
        assert.ok(rssGrowth < 64 * MiB, `RSS grew by ${mib(rssGrowth)} MiB after the first 10%`);
      } finally {
        await pair.close();
      }
    },
  );
});

// ----------------------------------------------------------------- mixed traffic

interface MixedStats {
  rpc: number;
  bulk: number;
  bulkBytes: number;
  resets: number;
  slowReads: number;
  pushes: number;
  pings: number;
  exchanges: number;
}

/** One pair's worker: picks operations at random until the deadline; every result is checked. */
async function mixedWorker(
  pair: { client: Session; server: Session },
  rng: Rng,
  deadline: number,
  stats: MixedStats,
): Promise<void> {
  while (performance.now() < deadline) {
    const roll = rng.float();
    if (roll < 0.5) {
      const request = pseudoRandomBytes(rng.int(1, 2000), rng.next() | 1);
      const channel = pair.client.dial();
      const reply = readAll(channel);
      channel.end(request);
      assert.ok((await reply).equals(request), 'rpc echo exact');
      stats.rpc++;
    } else if (roll < 0.6) {
      const payload = pseudoRandomBytes(rng.int(256 * 1024, 4 * MiB), rng.next() | 1);
      const channel = pair.client.dial();
      const reply = readAll(channel);
      for (let offset = 0; offset < payload.length; offset += 65536) {
        if (!channel.write(payload.subarray(offset, offset + 65536)))
          await new Promise((resolve) => channel.once('drain', resolve));
      }
      channel.end();
      assert.equal(sha(await reply), sha(payload), 'bulk echo exact');
      stats.bulk++;
      stats.bulkBytes += payload.length;
    } else if (roll < 0.75) {
      const channel = pair.client.dial();
      channel.on('error', () => {});
      channel.write(pseudoRandomBytes(rng.int(0, 300_000), 5));
      await new Promise((resolve) => setTimeout(resolve, rng.int(0, 5)));
      channel.destroy();
      stats.resets++;
    } else if (roll < 0.85) {
      const payload = pseudoRandomBytes(rng.int(300_000, 1_000_000), rng.next() | 1);
      const channel = pair.client.dial();
      channel.end(payload);
      const chunks: Buffer[] = [];
      for await (const chunk of channel) {
        chunks.push(chunk as Buffer);
        if (rng.chance(0.3)) await new Promise((resolve) => setTimeout(resolve, 1)); // a slow reader
      }
      assert.ok(Buffer.concat(chunks).equals(payload), 'slow reader got everything');
      stats.slowReads++;
    } else if (roll < 0.95) {
      const size = rng.int(0, 100_000);
      const seed = rng.next() | 1;
      const accepted = pair.client.accept();
      const pushed = pair.server.dial();
      const header = Buffer.alloc(8);
      header.writeUInt32BE(size);
      header.writeUInt32BE(seed >>> 0, 4);
      pushed.end(Buffer.concat([header, pseudoRandomBytes(size, seed)]));
      pushed.resume();
      const channel = await accepted;
      const received = await readAll(channel);
      channel.end(); // half-closed by the server; this side closes too
      assert.ok(
        received.subarray(8).equals(pseudoRandomBytes(received.readUInt32BE(0), received.readUInt32BE(4))),
        'push exact',
      );
      stats.pushes++;
    } else {
      await pair.client.ping();
      stats.pings++;
    }
  }
}

test(
  `mixed traffic for ${MIXED_SECONDS} s over memory, TCP, a faulty proxy and TLS at once, memory flat`,
  { timeout: (MIXED_SECONDS + 300) * 1000 },
  async (t) => {
    const material = selfSignedCertificate();
    const [a, b] = memoryPipe();
    const memory = {
      client: multiplexedClient(a, { keepAliveInterval: 1000 }),
      server: multiplexedServer(b, { keepAliveInterval: 1000 }),
    };
    const keepAlive = { keepAliveInterval: 1000, keepAliveTimeout: 10_000 };
    const pairs: ProxiedPair[] = [
      await proxiedPair({ proxy: false, client: keepAlive, server: keepAlive }),
      await proxiedPair({
        proxy: { seed: 77, both: { latencyMs: [1, 20], split: { maxPiece: 8192 } } },
        client: keepAlive,
        server: keepAlive,
      }),
      await proxiedPair({
        proxy: { seed: 78, both: { latencyMs: 5 } },
        tls: material,
        client: keepAlive,
        server: keepAlive,
      }),
    ];
    const exchangeCodecs = CODECS.filter((codec) => codec.name !== 'yamux');
    const exchangePairs = await Promise.all(
      exchangeCodecs.map((codec) =>
        proxiedPair({
          proxy: { seed: 79, both: { latencyMs: [1, 10], split: { maxPiece: 4096 } } },
          client: codec.options,
          server: codec.options,
        }),
      ),
    );
    const sessions = [memory, ...pairs];
    try {
      // Servers echo what clients open; what servers push, the client workers accept.
      for (const pair of sessions) echoServer(pair.server);
      const stats: MixedStats = {
        rpc: 0,
        bulk: 0,
        bulkBytes: 0,
        resets: 0,
        slowReads: 0,
        pushes: 0,
        pings: 0,
        exchanges: 0,
      };
      const seed = SOAK ? Date.now() % 1_000_000_007 : 4242;
      const rng = new Rng(seed);
      const samples: { seconds: number; heapMiB: number; rssMiB: number }[] = [];
      const started = performance.now();
      const deadline = started + MIXED_SECONDS * 1000;
      let baseline: Awaited<ReturnType<typeof settledMemory>> | undefined;
      const warmUntil = started + Math.min(30_000, (MIXED_SECONDS * 1000) / 4);
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          await new Promise((resolve) => setTimeout(resolve, Math.max(500, Math.min(30_000, MIXED_SECONDS * 100))));
          if (!sampling) break;
          const figures = await settledMemory();
          samples.push({
            seconds: Math.round((performance.now() - started) / 1000),
            heapMiB: mib(figures.heapUsed),
            rssMiB: mib(figures.rss),
          });
          if (baseline === undefined && performance.now() > warmUntil) baseline = figures;
        }
      })();
      try {
        const workers: Promise<void>[] = [];
        for (const pair of sessions)
          for (let w = 0; w < 4; w++) workers.push(mixedWorker(pair, rng.fork(), deadline, stats));
        for (const pair of exchangePairs) {
          workers.push(
            (async () => {
              const exchangeRng = rng.fork();
              while (performance.now() < deadline) {
                await runExchange(pair.client, pair.server, makePlan(exchangeRng, 50, 64 * 1024), exchangeRng, {
                  timeoutMs: 60_000,
                });
                stats.exchanges++;
              }
            })(),
          );
        }
        await Promise.all(workers);
      } finally {
        sampling = false;
        await sampler;
      }
      for (const pair of [...sessions, ...exchangePairs]) {
        assert.equal(pair.client.state, 'open', `client: ${pair.client.closeError?.message}`);
        assert.equal(pair.server.state, 'open', `server: ${pair.server.closeError?.message}`);
      }
      // Let resets and closes finish, then every table is empty.
      const settleBy = performance.now() + 5000;
      while (sessions.some((p) => p.client.channelCount + p.server.channelCount > 0) && performance.now() < settleBy) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      for (const pair of sessions) {
        assert.equal(pair.client.channelCount + pair.server.channelCount, 0, 'no channel left open');
        assert.equal(pair.client.bufferedBytes + pair.server.bufferedBytes, 0, 'nothing left buffered');
      }
      const end = await settledMemory();
      const reference = baseline ?? end;
      const heapGrowth = end.heapUsed - reference.heapUsed;
      t.diagnostic(
        report('mixed traffic', {
          seconds: MIXED_SECONDS,
          seed,
          ...stats,
          bulkMiB: mib(stats.bulkBytes),
          heapAfterWarmupMiB: mib(reference.heapUsed),
          heapAtEndMiB: mib(end.heapUsed),
          heapGrowthMiB: mib(heapGrowth),
          rssAfterWarmupMiB: mib(reference.rss),
          rssAtEndMiB: mib(end.rss),
          samples: JSON.stringify(
            samples.length > 24 ? samples.filter((_, i) => i % Math.ceil(samples.length / 24) === 0) : samples,
          ),
        }),
      );
      assert.ok(heapGrowth < 32 * MiB, `heap grew by ${mib(heapGrowth)} MiB after warm-up`);
    } finally {
      memory.client.destroy();
      memory.server.destroy();
      for (const pair of [...pairs, ...exchangePairs]) await pair.close();
    }
    // Every session gave its window growth back to the process's budget (a leak would stop growth for good).
    const settleBy = performance.now() + 5000;
    while (sharedMemoryBudget.reserved !== 0 && performance.now() < settleBy) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(sharedMemoryBudget.reserved, 0, 'the shared memory budget is whole again');
  },
);
