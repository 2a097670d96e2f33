/**
 * What a retrying client can rely on when the other side shuts down or goes quiet (issue: shutdown and
 * keep-alive under races). Each scenario loops 100 runs over loopback TCP, muxwire on both sides; the same
 * scenarios against Go's hashicorp/yamux are in test/interop/go-yamux.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type Channel,
  ChannelRefusedError,
  ChannelResetError,
  GoAwayError,
  MuxError,
  SessionClosedError,
  TimeoutError,
  multiplexedClient,
  multiplexedServer,
} from '../src/index.js';
import { proxiedPair } from './support/pairs.js';
import { tcpPair, until } from './helpers.js';

const RUNS = 100;

interface DialOutcome {
  id: number;
  echoed: boolean;
  error: Error | undefined;
}

/** Dials `count` echo channels, `perMs` each millisecond; resolves with how each ended. */
async function dialEchoes(
  session: ReturnType<typeof multiplexedClient>,
  count: number,
  perMs: number,
): Promise<{ outcomes: DialOutcome[]; dialErrors: Error[] }> {
  const outcomes: Promise<DialOutcome>[] = [];
  const dialErrors: Error[] = [];
  for (let i = 0; i < count; i += perMs) {
    for (let j = i; j < Math.min(count, i + perMs); j++) {
      let channel: Channel;
      try {
        channel = session.dial();
      } catch (error) {
        dialErrors.push(error as Error);
        continue;
      }
      outcomes.push(
        new Promise<DialOutcome>((resolve) => {
          const chunks: Buffer[] = [];
          channel.on('data', (chunk: Buffer) => chunks.push(chunk));
          channel.on('error', () => {});
          channel.on('close', () =>
            resolve({
              id: channel.id,
              echoed: Buffer.concat(chunks).toString() === `hello ${j}`,
              error: channel.failure,
            }),
          );
          channel.end(`hello ${j}`);
        }),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return { outcomes: await Promise.all(outcomes), dialErrors };
}

/** One run: the server closes gracefully after accepting `closeAfter` channels of a client's 1,000 dials. */
async function gracefulCloseDuringDials(closeAfter: number): Promise<string[]> {
  const problems: string[] = [];
  const [a, b] = await tcpPair();
  const client = multiplexedClient(a, { keepAliveInterval: 0 });
  const server = multiplexedServer(b, { keepAliveInterval: 0 });
  const seen = new Set<number>();
  let closing: Promise<void> | undefined;
  if (closeAfter === 0) closing = server.close();
  server.on('channel', (channel: Channel) => {
    seen.add(channel.id);
    channel.on('error', () => {});
    channel.pipe(channel);
    if (seen.size === closeAfter) closing = server.close();
  });
  const { outcomes, dialErrors } = await dialEchoes(client, 1000, 5);
  const clientEnd = await client.closed.then(
    () => undefined,
    (error: unknown) => error as Error,
  );
  await closing;
  if (clientEnd !== undefined) problems.push(`client session ended with ${clientEnd.message}`);
  for (const error of dialErrors) {
    if (!(error instanceof GoAwayError) && !(error instanceof SessionClosedError)) {
      problems.push(`a dial threw ${error.name} (${(error as MuxError).code}): ${error.message}`);
    }
  }
  for (const outcome of outcomes) {
    if (outcome.echoed && outcome.error === undefined) continue;
    if (outcome.error instanceof ChannelRefusedError) {
      if (seen.has(outcome.id))
        problems.push(`channel ${outcome.id} reported refused, but the server's application took it`);
      continue;
    }
    problems.push(
      `channel ${outcome.id}: ${outcome.error ? `${(outcome.error as MuxError).code}: ${outcome.error.message}` : 'echo wrong'}`,
    );
  }
  const echoed = outcomes.filter((o) => o.echoed).length;
  if (echoed !== Math.min(seen.size, 1000)) problems.push(`${echoed} echoed, the server took ${seen.size}`);
  a.destroy();
  b.destroy();
  return problems;
}

describe('a server that closes gracefully while a client dials', () => {
  test(
    `after accepting 300 of 1,000 channels: each channel is echoed or refused (never seen), the client's session ends cleanly, later dials throw Go Away or closed (${RUNS} runs)`,
    { timeout: 300_000 },
    async () => {
      for (let run = 0; run < RUNS; run++) {
        const problems = await gracefulCloseDuringDials(300);
        assert.deepEqual(problems.slice(0, 5), [], `run ${run}: ${problems.length} problem(s)`);
      }
    },
  );

  test(
    `before any channel arrives: all 1,000 are refused or not dialled, none fails as a transport error (${RUNS / 4} runs)`,
    { timeout: 120_000 },
    async () => {
      for (let run = 0; run < RUNS / 4; run++) {
        const problems = await gracefulCloseDuringDials(0);
        assert.deepEqual(problems.slice(0, 5), [], `run ${run}: ${problems.length} problem(s)`);
      }
    },
  );
});

test(
  `a channel the server accepted, read and then reset is reported reset, not refused (${RUNS} runs)`,
  { timeout: 120_000 },
  async () => {
    const [a, b] = await tcpPair();
    const client = multiplexedClient(a, { keepAliveInterval: 0 });
    const server = multiplexedServer(b, { keepAliveInterval: 0 });
    server.on('channel', (channel: Channel) => {
      channel.on('error', () => {});
      channel.once('data', () => channel.destroy()); // the first data came with the SYN
    });
    try {
      for (let run = 0; run < RUNS; run++) {
        const channel = client.dial();
        channel.on('error', () => {});
        channel.write('request');
        await new Promise<void>((resolve) => channel.on('close', () => resolve()));
        assert.ok(channel.failure instanceof ChannelResetError, `run ${run}: ${channel.failure?.message}`);
        assert.ok(
          !(channel.failure instanceof ChannelRefusedError),
          `run ${run}: reported refused although the server's application took it`,
        );
      }
    } finally {
      client.destroy();
      server.destroy();
    }
  },
);

describe('keep-alive while reading is paused at the memory bound', () => {
  /** One run: four channels fill the server's bound, then the client is frozen (the proxy stalls both ways). */
  async function frozenPeerWhilePaused(): Promise<{ error: Error | undefined; pingError: unknown; afterMs: number }> {
    const keepAliveTimeout = 400;
    const pair = await proxiedPair({
      proxy: {},
      client: { keepAliveInterval: 0 },
      server: { maxSessionBuffered: 256 * 1024, keepAliveInterval: 100, keepAliveTimeout },
    });
    try {
      pair.server.on('channel', (channel: Channel) => channel.on('error', () => {})); // never read
      for (let i = 0; i < 4; i++) {
        const channel = pair.client.dial();
        channel.on('error', () => {});
        channel.write(Buffer.alloc(256 * 1024));
      }
      // At the bound the session pauses reading (the socket itself may be read briefly by a keep-alive probe).
      await until(() => pair.server.bufferedBytes >= 256 * 1024, 15_000, 'the server to reach its bound');
      pair.proxy!.stall('both');
      const stalledAt = performance.now();
      // A ping() shares the answer of one already in flight (sent before the freeze, maybe answered): it may
      // resolve; what it may not do is stay pending, or fail with anything but a typed error.
      const ping = pair.server.ping().then(
        (rtt) => rtt,
        (error: unknown) => error,
      );
      const error = await pair.server.closed.then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      return { error, pingError: await ping, afterMs: performance.now() - stalledAt };
    } finally {
      await pair.close();
    }
  }

  test(
    `a frozen peer fails the session with ERR_MUX_KEEPALIVE_TIMEOUT and a pending ping() settles (${RUNS} runs, 10 at a time)`,
    { timeout: 120_000 },
    async () => {
      for (let round = 0; round < RUNS / 10; round++) {
        const results = await Promise.all(Array.from({ length: 10 }, frozenPeerWhilePaused));
        for (const [i, { error, pingError, afterMs }] of results.entries()) {
          const run = round * 10 + i;
          assert.ok(
            error instanceof TimeoutError && error.code === 'ERR_MUX_KEEPALIVE_TIMEOUT',
            `run ${run}: the session ended with ${error?.message ?? 'no error'} after ${afterMs.toFixed(0)} ms`,
          );
          assert.ok(
            pingError instanceof MuxError || typeof pingError === 'number',
            `run ${run}: ping() settled with ${String(pingError)}`,
          );
          // A deadline that holds: a few keep-alive timeouts (400 ms) at most, never the unbounded wait of before.
          assert.ok(afterMs < 10_000, `run ${run}: detected after ${afterMs.toFixed(0)} ms`);
        }
      }
    },
  );
});
