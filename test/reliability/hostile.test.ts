/**
 * Hostile peers: a raw socket sends crafted frames. Each attack is answered with the right error or RST, stays
 * bounded in memory, and leaves another session in the same process (a bystander echoing 16 KiB messages)
 * working, with every echo exact. test/bad-input.test.ts checks the error of each malformed frame; these
 * tests add floods, memory bounds and the bystander.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Flag, FrameType } from '../../src/core/frame.js';
import {
  type Channel,
  ChannelResetError,
  GoAwayError,
  type MuxError,
  ProtocolError,
  type Session,
  multiplexedClient,
} from '../../src/index.js';
import { frame, pseudoRandomBytes, sessionPair, tcpPair, until } from '../helpers.js';
import { type BystanderReport, HostilePeer, hostilePair, startBystander } from '../support/hostile.js';
import { MiB, mib, settledMemory } from '../support/resources.js';
import { report, scaled } from '../support/soak.js';
import { exitWhenDone } from '../support/watchdog.js';

exitWhenDone();

const D = FrameType.data;
const W = FrameType.windowUpdate;
const PING = FrameType.ping;
const WINDOW = 256 * 1024;
const FLOOD = scaled('MUXWIRE_FLOOD_FRAMES', 200_000, 2_000_000);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with the error a session closes with. */
function closing(session: Session): Promise<Error | undefined> {
  return new Promise((resolve) => session.once('close', resolve));
}

/** Runs `attack` while a bystander session echoes; checks the bystander was unaffected. */
// An attack that reports no figures returns Promise<void>, hence `| void`.
// eslint-disable-next-line @typescript-eslint/no-invalid-void-type
async function withBystander(name: string, attack: () => Promise<Record<string, unknown> | void>): Promise<string> {
  const bystander = await startBystander();
  // eslint-disable-next-line @typescript-eslint/no-invalid-void-type
  let figures: Record<string, unknown> | void;
  let result: BystanderReport;
  try {
    figures = await attack();
    await sleep(30); // the bystander runs on after the attack too
  } finally {
    result = await bystander.stop();
  }
  assert.equal(result.error, undefined, `bystander session failed: ${result.error?.message}`);
  assert.equal(result.corrupted, 0, 'bystander echoes exact');
  assert.ok(result.roundTrips >= 3, `bystander kept going (${result.roundTrips} round trips)`);
  assert.ok(
    result.maxLatencyMs < 1000,
    `bystander round trips stayed under 1 s (worst ${result.maxLatencyMs.toFixed(0)} ms)`,
  );
  return report(`hostile: ${name}`, {
    ...figures,
    bystanderRoundTrips: result.roundTrips,
    bystanderWorstMs: result.maxLatencyMs,
  });
}

/** Heap plus array buffers, after garbage collection. */
async function memoryNow(): Promise<number> {
  const figures = await settledMemory();
  return figures.heapUsed + figures.arrayBuffers;
}

describe('window overrun', () => {
  test('exactly the window is taken and held unread; one byte more is a protocol error, before it is stored', async (t) => {
    t.diagnostic(
      await withBystander('window overrun', async () => {
        const { session, peer, close } = await hostilePair();
        try {
          const inbound: Channel[] = [];
          session.on('channel', (channel) => {
            channel.on('error', () => {});
            inbound.push(channel); // never read
          });
          await peer.send(frame(D, Flag.syn, 1, Buffer.alloc(WINDOW, 1)));
          await until(() => session.bufferedBytes === WINDOW, 3000, 'a full window buffered');
          assert.equal(session.state, 'open');
          const ended = closing(session);
          await peer.send(frame(D, 0, 1, Buffer.alloc(1)));
          const error = await ended;
          assert.ok(error instanceof ProtocolError);
          assert.match(error.message, /exceeds the receive window \(0 bytes left\)/);
          await until(() => peer.goAwayCode === 1, 3000, 'Go Away code 1');
          assert.equal(inbound[0]!.failure, error, 'the channel fails with the session error');
          return { buffered: WINDOW };
        } finally {
          close();
        }
      }),
    );
  });
});

/**
 * SYNs for new channels, 20,000 at a time, until the session ends (up to a bound far beyond what the kernel's
 * buffers hold); resolves to how many were sent, once the session is closed.
 */
async function synsUntilCutOff(session: Session, peer: HostilePeer): Promise<number> {
  const limit = Math.max(FLOOD, 8_000_000);
  let sent = 0;
  while (sent < limit && session.state === 'open') {
    sent += await peer.flood(20_000, (i) => frame(W, Flag.syn, 2 * (sent + i) + 1, 0));
  }
  await until(() => session.state === 'closed', 5000, 'the session cut off');
  return sent;
}

describe('SYN floods', () => {
  test('beyond maxStreams with an application that takes every channel: the excess is refused with RST', async (t) => {
    const syns = Math.min(FLOOD, 50_000);
    const burst = 1000;
    t.diagnostic(
      await withBystander('SYN flood beyond maxStreams', async () => {
        const { session, peer, close } = await hostilePair({ maxStreams: 64, acceptBacklog: 1000 });
        try {
          const kept: Channel[] = [];
          session.on('channel', (channel) => kept.push(channel));
          const before = await memoryNow();
          // In bursts of 1,000 SYNs, each sent once the refusals of the last have arrived (a peer that never reads its refusals is the third test of this group).
          for (let sent = 0; sent < syns; sent += burst) {
            await peer.flood(burst, (i) => frame(W, Flag.syn, 2 * (sent + i) + 1, 0), burst);
            await until(
              () => peer.count(Flag.rst) >= Math.max(0, sent + burst - 64) || session.state !== 'open',
              5000,
              'refusals',
            );
          }
          assert.equal(session.state, 'open', session.closeError?.message);
          assert.equal(peer.count(Flag.rst), syns - 64, 'every excess SYN refused');
          assert.equal(session.channelCount, 64);
          assert.equal(kept.length, 64);
          const grown = (await memoryNow()) - before;
          assert.ok(grown < 16 * MiB, `memory grew by ${mib(grown)} MiB`);
          return { syns, refused: peer.count(Flag.rst), memoryGrowthMiB: mib(grown) };
        } finally {
          close();
        }
      }),
    );
  });

  test('a burst of 4,200 SYNs in one write, from a peer that reads: refused with RST, the session stays open', async () => {
    const { session, peer, close } = await hostilePair({ maxStreams: 64, acceptBacklog: 1000 });
    try {
      session.on('channel', () => {});
      await peer.send(...Array.from({ length: 4200 }, (_, i) => frame(W, Flag.syn, 2 * i + 1, 0)));
      await until(() => peer.count(Flag.rst) === 4200 - 64 || session.state !== 'open', 3000, 'refusals');
      assert.equal(session.state, 'open', session.closeError?.message);
      assert.equal(peer.count(Flag.rst), 4200 - 64);
    } finally {
      close();
    }
  });

  test('an application that resets every channel it is given, and a peer that opens channels and never reads the resets: cut off with a protocol error, memory bounded', async (t) => {
    // Each SYN makes a Channel that the application destroys (tens of µs), and a read of 64 KiB brings 5,461 of
    // them: the read time slice lets the bystander's round trips through between slices.
    t.diagnostic(
      await withBystander('SYN flood, resets unread', async () => {
        const { session, peer, close } = await hostilePair({ acceptBacklog: 16 });
        try {
          // An application that lets go of what it does not want: each RST waits with its channel's record.
          let given = 0;
          session.on('channel', (channel) => {
            given++;
            channel.on('error', () => {});
            channel.destroy();
          });
          peer.stopReading();
          const ended = closing(session);
          const before = await memoryNow();
          // The resets fill the kernel's buffers first, so the flood goes on until muxwire gives up on the peer.
          const sent = await synsUntilCutOff(session, peer);
          const outcome = await ended;
          const grown = (await memoryNow()) - before;
          assert.ok(outcome instanceof ProtocolError, String(outcome));
          assert.match(outcome.message, /keeps opening channels/);
          assert.ok(grown < 16 * MiB, `memory grew by ${mib(grown)} MiB over ${given} channels reset`);
          return { sent, given, memoryGrowthMiB: mib(grown) };
        } finally {
          close();
        }
      }),
    );
  });

  test('beyond the accept backlog from a peer that never reads the refusals: cut off with a protocol error, at most the high-water mark and one batch of refusals queued in the socket', async (t) => {
    t.diagnostic(
      await withBystander('SYN flood, refusals unread', async () => {
        const { session, peer, socket, close } = await hostilePair({ acceptBacklog: 16, maxStreams: 64 });
        try {
          peer.stopReading();
          const ended = closing(session);
          const before = await memoryNow();
          // The queue is read after every write muxwire makes to its socket, so no peak goes unseen.
          let maxQueued = 0;
          const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
          (socket as { write: (...args: unknown[]) => boolean }).write = (...args: unknown[]) => {
            const accepted = write(...args);
            maxQueued = Math.max(maxQueued, socket.writableLength);
            return accepted;
          };
          // Refusals fill the kernel's buffers first (tens of MiB on loopback with autotuning), so the flood goes
          // on until muxwire gives up on the peer.
          const sent = await synsUntilCutOff(session, peer);
          const outcome = await ended;
          const grown = (await memoryNow()) - before;
          assert.ok(outcome instanceof ProtocolError, String(outcome));
          assert.match(outcome.message, /keeps opening channels/);
          // Writing stops once the socket's buffer reaches its high-water mark (16 KiB before Node 22, 64 KiB
          // since); the batch that crossed it holds at most the 4,096 owed frames of 12 bytes (48 KiB).
          const bound = socket.writableHighWaterMark + 48 * 1024;
          assert.ok(maxQueued <= bound, `${maxQueued} bytes of refusals waited in the socket (bound ${bound})`);
          assert.ok(session.channelCount <= 16, `${session.channelCount} channels held`);
          assert.ok(grown < 16 * MiB, `memory grew by ${mib(grown)} MiB`);
          return { sent, maxSocketQueue: maxQueued, memoryGrowthMiB: mib(grown), outcome: outcome.message };
        } finally {
          close();
        }
      }),
    );
  });
});

describe('open-and-reset churn (rapid reset)', () => {
  test(`${FLOOD} channels opened and reset at once by the peer, while the application takes each: cut off with a protocol error after peerResetBurst (1,000) and its refill`, async (t) => {
    t.diagnostic(
      await withBystander('rapid reset', async () => {
        const { session, peer, close } = await hostilePair();
        try {
          let taken = 0;
          session.on('channel', (channel) => {
            taken++;
            channel.on('error', () => {});
            channel.pipe(channel); // work started for each channel, as a server does
          });
          const started = performance.now();
          // Each channel opened and reset in one frame: SYN and RST together, as a peer's cancel right after its open.
          const sent = await peer.flood(FLOOD, (i) => frame(W, Flag.syn | Flag.rst, 2 * i + 1, 0), 500);
          await until(() => session.state === 'closed', 5000, 'the session to fail');
          const error = session.closeError as MuxError;
          const seconds = (performance.now() - started) / 1000;
          assert.equal(error.code, 'ERR_MUX_PROTOCOL');
          assert.match(error.message, /peerResetBurst/);
          await until(() => peer.goAwayCode !== undefined, 2000, 'the Go Away');
          assert.equal(peer.goAwayCode, 1, 'Go Away with the protocol-error code');
          // The burst, and what 1,000 a second gave back while the flood ran.
          assert.ok(
            taken >= 1000 && taken <= 1001 + Math.ceil(1000 * seconds),
            `${taken} channels taken in ${seconds} s`,
          );
          return { sent, taken, seconds: Number(seconds.toFixed(2)) };
        } finally {
          close();
        }
      }),
    );
  });

  test('resets within the rate are taken: a burst of peerResetBurst, then one reset for each token the rate gives back', async () => {
    const { session, peer, close } = await hostilePair({ peerResetBurst: 5, peerResetRate: 200 });
    try {
      let taken = 0;
      session.on('channel', (channel) => {
        taken++;
        channel.on('error', () => {});
      });
      let id = 1;
      const openAndReset = (): Buffer => frame(W, Flag.syn | Flag.rst, (id += 2), 0);
      await peer.send(...Array.from({ length: 5 }, openAndReset));
      await until(() => taken === 5, 2000, 'the burst');
      // 200 a second: one token every 5 ms. One reset every 10 ms stays within it.
      for (let i = 0; i < 40; i++) {
        await sleep(10);
        await peer.send(openAndReset());
      }
      await until(() => taken === 45, 2000, 'the paced resets');
      assert.equal(session.state, 'open', session.closeError?.message);
      // Six at once: the tokens the pause gave back (at most five), then one more than is left.
      await sleep(50);
      await peer.send(...Array.from({ length: 6 }, openAndReset));
      await until(() => session.state === 'closed', 2000, 'the session to fail');
      assert.equal((session.closeError as MuxError | undefined)?.code, 'ERR_MUX_PROTOCOL');
    } finally {
      close();
    }
  });

  test("the peer's resets of channels still waiting in the accept queue take a quarter of a token (its dials given up while this side's application does not accept); of channels taken, a whole one", async () => {
    {
      const { session, peer, close } = await hostilePair({ peerResetBurst: 30, peerResetRate: 0 });
      try {
        // The application accepts nothing: 120 channels opened, queued, then reset by their dialler (its open
        // timeouts or abort signals), a quarter of a token each. Before: each took a whole one, and a dialler's
        // burst of 1,500 dials given up against a stalled server ended the session at peerResetBurst's default.
        for (let i = 0; i < 120; i++) {
          await peer.send(frame(W, Flag.syn, 2 * i + 1, 0), frame(W, Flag.rst, 2 * i + 1, 0));
        }
        await until(() => session.stats().resetsIn === 120, 2000, 'the 120 resets');
        assert.equal(session.state, 'open', session.closeError?.message);
        assert.equal(session.stats().channelsOpen, 0);
        // The burst is spent: one more is one too many (a flood of them is still cut off).
        await peer.send(frame(W, Flag.syn | Flag.rst, 1001, 0));
        await until(() => session.state === 'closed', 2000, 'the session to fail');
        assert.equal((session.closeError as MuxError | undefined)?.code, 'ERR_MUX_PROTOCOL');
      } finally {
        close();
      }
    }
    {
      const { session, peer, close } = await hostilePair({ peerResetBurst: 2, peerResetRate: 0 });
      try {
        // Channels the application takes cost a whole token: the third reset is one too many.
        session.on('channel', (channel) => channel.on('error', () => {}));
        await peer.send(...[1, 3, 5].map((id) => frame(W, Flag.syn | Flag.rst, id, 0)));
        await until(() => session.state === 'closed', 2000, 'the session to fail');
        assert.equal((session.closeError as MuxError | undefined)?.code, 'ERR_MUX_PROTOCOL');
      } finally {
        close();
      }
    }
  });

  test("the peer's resets of channels this side opened do not count: 50 dials reset by a peer allowed 2", async () => {
    const { session, peer, close } = await hostilePair({ peerResetBurst: 2, peerResetRate: 0 });
    try {
      const failures: Promise<unknown>[] = [];
      for (let i = 0; i < 50; i++) {
        const channel = session.dial();
        failures.push(new Promise((resolve) => channel.on('error', resolve)));
        channel.write('x');
      }
      await until(() => peer.count(Flag.syn, D) === 50, 2000, 'the SYNs');
      await peer.send(
        ...peer.frames
          .filter((f) => f.type === D && (f.flags & Flag.syn) !== 0)
          .map((f) => frame(W, Flag.rst, f.streamId, 0)),
      );
      const errors = (await Promise.all(failures)) as MuxError[];
      assert.ok(errors.every((e) => e.code === 'ERR_MUX_CHANNEL_REFUSED' || e.code === 'ERR_MUX_CHANNEL_RESET'));
      assert.equal(session.state, 'open', session.closeError?.message);
    } finally {
      close();
    }
  });
});

describe('channels that never read', () => {
  test('64 channels of 1 MiB never read: buffered bytes stay under maxSessionBuffered; nothing is lost when reading starts', async (t) => {
    const limit = 2 * MiB;
    const payloads = Array.from({ length: 64 }, (_, i) => pseudoRandomBytes(MiB, i + 1));
    t.diagnostic(
      await withBystander('never-reading channels', async () => {
        const pair = await sessionPair({ transport: 'tcp', server: { maxSessionBuffered: limit } });
        try {
          // Nobody reads until `reading` is set; then every channel, present or still to come, is read to its end.
          let reading = false;
          const inbound: Channel[] = [];
          const results: Promise<{ id: number; bytes: Buffer }>[] = [];
          const read = (channel: Channel): void => {
            results.push(
              (async () => {
                const chunks: Buffer[] = [];
                for await (const chunk of channel) chunks.push(chunk as Buffer);
                return { id: channel.id, bytes: Buffer.concat(chunks) };
              })(),
            );
          };
          pair.server.on('channel', (channel) => {
            inbound.push(channel);
            if (reading) read(channel);
          });
          const before = await memoryNow();
          const writes = payloads.map((payload) => {
            const channel = pair.client.dial();
            channel.on('error', () => {});
            return new Promise<void>((resolve) => channel.end(payload, () => resolve()));
          });
          let maxBuffered = 0;
          const sampler = setInterval(() => {
            maxBuffered = Math.max(maxBuffered, pair.server.bufferedBytes);
          }, 2);
          await sleep(1000);
          clearInterval(sampler);
          const grown = (await memoryNow()) - before;
          // At the bound the session stops reading the transport, so later channels wait in the TCP stream.
          const arrivedWhileBlocked = inbound.length;
          assert.ok(arrivedWhileBlocked >= 1);
          assert.ok(maxBuffered <= limit + 64 * 1024, `buffered at most ${maxBuffered} bytes (limit ${limit})`);
          assert.ok(maxBuffered >= limit / 2, 'the readers really did fall behind');
          assert.ok(grown < limit + 24 * MiB, `memory grew by ${mib(grown)} MiB`);
          assert.equal(pair.client.state, 'open');
          assert.equal(pair.server.state, 'open');
          reading = true;
          for (const channel of inbound) read(channel);
          await until(() => results.length === 64, 20_000, 'every channel arrived once reading resumed');
          const received = await Promise.all(results);
          await Promise.all(writes);
          for (const { id, bytes } of received) assert.ok(bytes.equals(payloads[(id - 1) / 2]!), `channel ${id} exact`);
          assert.equal(pair.server.bufferedBytes, 0);
          return { maxBuffered, limit, arrivedWhileBlocked, memoryGrowthMiB: mib(grown) };
        } finally {
          await pair.close();
        }
      }),
    );
  });
});

describe('ping flood', () => {
  test(`${FLOOD} pings from a peer that never reads the answers: answered only as far as the socket takes them, never queued`, async (t) => {
    t.diagnostic(
      await withBystander('ping flood, answers unread', async () => {
        const { session, peer, socket, close } = await hostilePair();
        try {
          peer.stopReading();
          const before = await memoryNow();
          let maxQueued = 0;
          const sampler = setInterval(() => {
            maxQueued = Math.max(maxQueued, socket.writableLength);
          }, 2);
          const sent = await peer.flood(FLOOD, (i) => frame(PING, Flag.syn, 0, i));
          await sleep(100);
          clearInterval(sampler);
          const grown = (await memoryNow()) - before;
          assert.equal(session.state, 'open', 'a ping flood is tolerated');
          assert.ok(maxQueued <= 512 * 1024, `at most ${maxQueued} bytes of answers waited in the socket`);
          assert.ok(grown < 16 * MiB, `memory grew by ${mib(grown)} MiB`);
          peer.startReading();
          await sleep(200);
          // As many answers as the socket's buffers took before it blocked (the kernel's hold megabytes on
          // loopback); the rest were dropped, as the bound on the socket's queue above shows.
          const answers = peer.count(Flag.ack, PING);
          assert.ok(answers <= sent, `${answers} answers for ${sent} pings`);
          return { pings: sent, answers, maxSocketQueue: maxQueued, memoryGrowthMiB: mib(grown) };
        } finally {
          close();
        }
      }),
    );
  });
});

describe('floods of frames that ask for nothing', () => {
  // Unsolicited answers, credit, empty data, and resets or ends of channels that do not exist: none needs an
  // answer or a place to stay, so each is taken at no cost beyond reading it, and the session goes on.
  const kinds: [string, (i: number) => Buffer][] = [
    ['Ping answers no ping asked for', (i) => frame(PING, Flag.ack, 0, i)],
    ['Window Updates of +0 on an open channel', () => frame(W, 0, 1, 0)],
    ['Window Updates of +1 on an open channel', () => frame(W, 0, 1, 1)],
    ['Window Updates on channels never opened', (i) => frame(W, 0, 1001 + 2 * (i % 50_000), 65_536)],
    ['empty Data frames on an open channel', () => frame(D, 0, 1, Buffer.alloc(0))],
    ['RSTs of channels never opened', (i) => frame(W, Flag.rst, 1001 + 2 * (i % 50_000), 0)],
    ['FINs of channels never opened', (i) => frame(W, Flag.fin, 1001 + 2 * (i % 50_000), 0)],
  ];
  for (const [name, make] of kinds) {
    test(`${FLOOD} ${name}: taken without answer or growth; the session and its channel go on`, async (t) => {
      const { session, peer, close } = await hostilePair();
      try {
        // The application echoes channel 1, opened before the flood.
        session.on('channel', (channel: Channel) => channel.on('data', (chunk: Buffer) => channel.write(chunk)));
        await peer.send(frame(W, Flag.syn, 1, 0));
        await until(() => peer.count(Flag.ack, W) > 0, 3000, 'channel 1 acknowledged');
        const framesBefore = peer.frames.length;
        const before = await memoryNow();
        const sent = await peer.flood(FLOOD, make);
        await peer.send(frame(D, 0, 1, Buffer.from('after the flood')));
        await until(() => peer.count(0, D) > 0, 5000, 'the echo after the flood');
        const grown = (await memoryNow()) - before;
        assert.equal(sent, FLOOD);
        assert.equal(session.state, 'open');
        assert.equal(await session.ping().then(() => 'answered'), 'answered');
        assert.ok(grown < 16 * MiB, `memory grew by ${mib(grown)} MiB`);
        // Nothing was answered but the echo and the ping: no RST, no Window Update, no Go Away.
        const answered = peer.frames.slice(framesBefore).filter((f) => f.type !== PING);
        assert.deepEqual(
          answered.map((f) => `${f.type}:${f.flags}:${f.streamId}`),
          [`${D}:0:1`],
        );
        t.diagnostic(`${sent} frames, memory growth ${mib(grown)} MiB`);
      } finally {
        close();
      }
    });
  }
});

describe('a 4 GiB length field', () => {
  test('on a SYN: refused from the header alone, without allocating', async (t) => {
    t.diagnostic(
      await withBystander('4 GiB length on a SYN', async () => {
        const { session, peer, close } = await hostilePair();
        try {
          const before = await memoryNow();
          const ended = closing(session);
          await peer.send(frame(D, Flag.syn, 1, 0xffff_ffff), Buffer.alloc(1000));
          const error = await ended;
          assert.ok(error instanceof ProtocolError);
          const grown = (await memoryNow()) - before;
          assert.ok(grown < 4 * MiB, `memory grew by ${mib(grown)} MiB`);
          return { memoryGrowthMiB: mib(grown) };
        } finally {
          close();
        }
      }),
    );
  });

  test('on an unknown channel: the payload is skipped as it streams, never stored', async (t) => {
    const junk = scaled('MUXWIRE_JUNK_BYTES', 64 * MiB, 512 * MiB);
    t.diagnostic(
      await withBystander('4 GiB length on an unknown channel', async () => {
        const { session, peer, close } = await hostilePair();
        try {
          const before = await memoryNow();
          await peer.send(frame(D, 0, 41, 0xffff_ffff));
          const piece = Buffer.alloc(64 * 1024, 7);
          for (let sent = 0; sent < junk; sent += piece.length) await peer.send(piece);
          await sleep(50);
          const grown = (await memoryNow()) - before;
          assert.equal(session.state, 'open');
          assert.equal(session.bufferedBytes, 0);
          assert.ok(grown < 8 * MiB, `memory grew by ${mib(grown)} MiB while ${mib(junk)} MiB were skipped`);
          return { skippedMiB: mib(junk), memoryGrowthMiB: mib(grown) };
        } finally {
          close();
        }
      }),
    );
  });

  test('as window increments: credit far beyond 4 GiB does not break the channel', async () => {
    const { session, peer, close } = await hostilePair();
    try {
      const accepted = session.accept();
      await peer.send(frame(W, Flag.syn, 1, 0));
      const channel = await accepted;
      for (let i = 0; i < 10; i++) await peer.send(frame(W, 0, 1, 0xffff_ffff));
      channel.write(Buffer.alloc(300 * 1024, 3)); // more than the spec window: the credit lets it go
      await until(() => peer.count(0, D) > 0 && peer.bytesReceived > 300 * 1024, 3000, 'data sent on the huge credit');
      assert.equal(session.state, 'open');
    } finally {
      close();
    }
  });
});

describe('frames split one byte at a time', () => {
  test('a 16 KiB Data frame, a Ping and a FIN, each byte in its own TCP segment', async (t) => {
    t.diagnostic(
      await withBystander('one byte at a time', async () => {
        const { session, peer, close } = await hostilePair({}, { answerPings: false });
        try {
          const payload = pseudoRandomBytes(16 * 1024, 11);
          const bytes = Buffer.concat([
            frame(D, Flag.syn, 1, payload),
            frame(PING, Flag.syn, 0, 4242),
            frame(W, Flag.fin, 1, 0),
          ]);
          const accepted = session.accept();
          for (let i = 0; i < bytes.length; i++) {
            peer.socket.write(bytes.subarray(i, i + 1));
            if (i % 4 === 0) await new Promise((resolve) => setImmediate(resolve));
          }
          const channel = await accepted;
          const chunks: Buffer[] = [];
          for await (const chunk of channel) chunks.push(chunk as Buffer);
          assert.ok(Buffer.concat(chunks).equals(payload));
          await until(
            () => peer.frames.some((f) => f.type === PING && f.flags === Flag.ack && f.length === 4242),
            2000,
            'pong',
          );
          assert.equal(session.state, 'open');
          return { bytes: bytes.length, reads: chunks.length };
        } finally {
          close();
        }
      }),
    );
  });
});

describe('Go Away from the peer, then more frames', () => {
  test('channels open before the Go Away keep working both ways', async (t) => {
    t.diagnostic(
      await withBystander('Go Away, open channels continue', async () => {
        const [raw, socket] = await tcpPair();
        const client = multiplexedClient(socket, { keepAliveInterval: 0 });
        const peer = new HostilePeer(raw);
        try {
          const inbound = client.accept();
          await peer.send(frame(D, Flag.syn, 2, Buffer.from('before')));
          const channel = await inbound;
          await peer.send(frame(FrameType.goAway, 0, 0, 0), frame(D, 0, 2, Buffer.from(' and after')));
          const chunks: Buffer[] = [];
          channel.on('data', (chunk: Buffer) => chunks.push(chunk));
          await until(() => Buffer.concat(chunks).toString() === 'before and after', 2000, 'data after Go Away');
          channel.write('reply');
          await until(
            () => peer.frames.some((f) => f.type === D && f.streamId === 2 && f.length === 5),
            2000,
            'reply sent',
          );
          assert.throws(() => client.dial(), GoAwayError);
          assert.equal(client.state, 'open');
        } finally {
          client.destroy();
          raw.destroy();
        }
      }),
    );
  });

  test('Go Away with an error code, then the transport ends: open channels fail with that GoAwayError', async () => {
    const [raw, socket] = await tcpPair();
    const client = multiplexedClient(socket, { keepAliveInterval: 0 });
    const peer = new HostilePeer(raw);
    const inbound = client.accept();
    await peer.send(frame(W, Flag.syn, 2, 0));
    const channel = await inbound;
    channel.on('error', () => {});
    await peer.send(frame(FrameType.goAway, 0, 0, 2));
    raw.end();
    await until(() => channel.closed, 2000, 'channel closed');
    assert.ok(channel.failure instanceof GoAwayError);
    assert.equal(channel.failure.goAwayCode, 2);
    await assert.rejects(client.closed, GoAwayError);
    raw.destroy();
  });

  test("after the peer's Go Away, a SYN from it is still taken (hashicorp/yamux may open after its own Go Away)", async () => {
    const [raw, socket] = await tcpPair();
    const client = multiplexedClient(socket, { keepAliveInterval: 0 });
    const peer = new HostilePeer(raw);
    try {
      const goaway = new Promise<number>((resolve) => client.once('goaway', resolve));
      await peer.send(frame(FrameType.goAway, 0, 0, 0));
      assert.equal(await goaway, 0);
      assert.throws(() => client.dial(), GoAwayError);
      const accepted = client.accept();
      await peer.send(frame(D, Flag.syn, 2, Buffer.from('after go away')));
      const channel = await accepted;
      const data = await new Promise<Buffer>((resolve) => channel.once('data', resolve));
      assert.equal(data.toString(), 'after go away');
      await until(() => peer.frames.some((f) => f.streamId === 2 && (f.flags & Flag.ack) !== 0), 2000, 'ACK');
    } finally {
      client.destroy();
      raw.destroy();
    }
  });
});

describe('data after RST and after FIN', () => {
  test("after the peer's RST: further data on that channel is skipped, not stored", async (t) => {
    t.diagnostic(
      await withBystander("data after the peer's RST", async () => {
        const { session, peer, close } = await hostilePair();
        try {
          const accepted = session.accept();
          await peer.send(frame(D, Flag.syn, 1, Buffer.alloc(1000, 1)));
          const channel = await accepted;
          channel.on('error', () => {});
          await peer.send(frame(W, Flag.rst, 1, 0));
          await until(() => channel.closed, 2000, 'channel reset');
          assert.ok(channel.failure instanceof ChannelResetError);
          const before = await memoryNow();
          for (let i = 0; i < 100; i++) await peer.send(frame(D, 0, 1, Buffer.alloc(200 * 1024, 2)));
          await sleep(50);
          const grown = (await memoryNow()) - before;
          assert.equal(session.state, 'open');
          assert.equal(session.bufferedBytes, 0);
          assert.equal(session.channelCount, 0);
          assert.ok(grown < 8 * MiB, `memory grew by ${mib(grown)} MiB for 20 MB of late data`);
          return { lateBytes: 100 * 200 * 1024, memoryGrowthMiB: mib(grown) };
        } finally {
          close();
        }
      }),
    );
  });

  test("after this side's RST: data the peer sent before seeing it is skipped", async () => {
    const { session, peer, close } = await hostilePair();
    try {
      const accepted = session.accept();
      await peer.send(frame(D, Flag.syn, 1, Buffer.from('x')));
      const channel = await accepted;
      channel.destroy();
      await until(() => peer.frames.some((f) => f.streamId === 1 && (f.flags & Flag.rst) !== 0), 2000, 'RST sent');
      await peer.send(frame(D, 0, 1, Buffer.alloc(WINDOW - 1, 5)), frame(W, 0, 1, 1000));
      await sleep(50);
      assert.equal(session.state, 'open');
      assert.equal(session.bufferedBytes, 0);
    } finally {
      close();
    }
  });

  test("after the peer's FIN on an established channel: data within the window is dropped (a write that raced the close); empty frames are tolerated", async (t) => {
    t.diagnostic(
      await withBystander('data after FIN', async () => {
        const { session, peer, close } = await hostilePair();
        try {
          const accepted = session.accept();
          await peer.send(frame(D, Flag.syn, 1, Buffer.from('request')));
          const channel = await accepted;
          channel.on('error', () => {});
          channel.resume();
          await peer.send(frame(W, Flag.fin, 1, 0), frame(D, 0, 1, Buffer.alloc(0)), frame(W, 0, 1, 4096));
          await sleep(50);
          assert.equal(session.state, 'open', 'an empty Data frame and a Window Update after FIN are tolerated');
          await peer.send(frame(D, 0, 1, Buffer.from('more')));
          await sleep(50);
          assert.equal(session.state, 'open', 'data after FIN is dropped, not a protocol error');
          assert.equal(channel.bytesRead, 'request'.length, 'nothing read past the FIN');
          // Beyond the window it still is one: 262,144 bytes of credit, 11 of them used.
          const ended = closing(session);
          await peer.send(frame(D, 0, 1, Buffer.alloc(256 * 1024 - 10)));
          const error = await ended;
          assert.ok(error instanceof ProtocolError);
          assert.match(error.message, /exceeds the receive window/);
          await until(() => peer.goAwayCode === 1, 2000, 'Go Away code 1');
        } finally {
          close();
        }
      }),
    );
  });
});
