import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners, once } from 'node:events';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import http2 from 'node:http2';
import net from 'node:net';
import readline from 'node:readline';
import tls from 'node:tls';
import { Duplex, Readable, Writable, addAbortSignal, pipeline as streamPipeline } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { text } from 'node:stream/consumers';
import {
  type Channel,
  ChannelRefusedError,
  ChannelResetError,
  GoAwayCode,
  GoAwayError,
  LightSession,
  type LightChannel,
  MuxError,
  ProtocolError,
  SessionClosedError,
  type SessionOptions,
  StreamLimitError,
  MemoryBudget,
  type LogRecord,
  type Session,
  TimeoutError,
  TransportClosedError,
  connect,
  createServer,
  multiplexedClient,
  multiplexedServer,
  lightClient,
  lightServer,
  sharedMemoryBudget,
} from '../src/index.js';
import { Flag, FrameType } from '../src/core/frame.js';
import { MuxSession } from '../src/core/session.js';
import { directWrites } from '../src/core/direct-write.js';
import { UpdateTurns } from '../src/core/update-turns.js';
import { Channel as ChannelClass } from '../src/node/channel.js';
import { duplexTransport } from '../src/node/transport.js';
import { FULL_PARTS } from '../src/core/full-parts.js';
import type { Transport, TransportEvents } from '../src/core/transport.js';
import { FakeTransport } from './support/fake-transport.js';
import { collectGarbage, resourceCounts, settleResources } from './support/resources.js';
import { selfSignedCertificate } from './support/self-signed.js';
import {
  RawPeer,
  frame,
  memoryPipe,
  parseFrames,
  pseudoRandomBytes,
  readAll,
  refusedPort,
  sessionPair,
  tcpPair,
  until,
  whenClosed,
  within,
} from './helpers.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Echoes every inbound channel of `session` and half-closes after the peer's FIN. */
function echo(session: ReturnType<typeof multiplexedServer>): void {
  session.on('channel', (channel) => {
    channel.on('error', () => {});
    channel.pipe(channel);
  });
}

for (const transport of ['memory', 'tcp'] as const) {
  describe(`echo over ${transport}`, () => {
    test('payloads of many sizes echo exactly, concurrently', async () => {
      const pair = await sessionPair({ transport });
      echo(pair.server);
      const sizes = [0, 1, 1023, 1024, 1025, 65535, 65536, 262144, 262145, 1048576];
      await Promise.all(
        sizes.map(async (size, i) => {
          const payload = pseudoRandomBytes(size, i + 1);
          const channel = pair.client.dial();
          const reply = readAll(channel);
          channel.end(payload);
          assert.equal(sha(await reply), sha(payload), `size ${size}`);
        }),
      );
      await pair.client.close();
      await pair.server.closed;
      assert.equal(pair.client.state, 'closed');
      assert.equal(pair.server.state, 'closed');
    });
  });
}

test('dial() returns a channel that is writable at once: SYN rides on the first data frame', async () => {
  const [a, b] = memoryPipe();
  const client = multiplexedClient(a, { keepAliveInterval: 0 });
  const server = multiplexedServer(b, { keepAliveInterval: 0 });
  echo(server);
  let sent = Buffer.alloc(0);
  b.on('data', (chunk: Buffer) => (sent = Buffer.concat([sent, chunk]))); // what the client wrote
  const channel = client.dial();
  assert.equal(channel.protocolState, 'init');
  assert.equal(channel.id, 1);
  const reply = readAll(channel);
  channel.end('hi');
  assert.equal((await reply).toString(), 'hi');
  const first = parseFrames(sent).find((f) => f.streamId === channel.id);
  assert.ok(first !== undefined, 'the channel sent a frame');
  assert.equal(first.type, FrameType.data, 'its first frame is a Data frame');
  assert.ok((first.flags & Flag.syn) !== 0, 'with the SYN flag');
  assert.equal(first.payload.toString(), 'hi');
  assert.equal(client.dial().id, 3, 'client ids are odd and never reused');
  const pushed = server.dial();
  assert.equal(pushed.id, 2, 'server ids are even');
  client.destroy();
  server.destroy();
});

test('channel states: init, syn-sent, established, local-closed, closed', async () => {
  const pair = await sessionPair();
  const channel = pair.client.dial();
  assert.equal(channel.protocolState, 'init');
  channel.write('x');
  await until(() => channel.protocolState === 'syn-sent', 1000, 'syn-sent');
  await until(() => pair.server.channelCount === 1, 1000, 'inbound arrives');
  assert.equal(channel.protocolState, 'syn-sent', 'no ACK before the server accepts');
  const inbound = await pair.server.accept();
  assert.equal(inbound.protocolState, 'established');
  await until(() => channel.protocolState === 'established', 1000, 'established');
  channel.end();
  await until(() => channel.protocolState === 'local-closed', 1000, 'local-closed');
  inbound.resume();
  await once(inbound, 'end');
  assert.equal(inbound.protocolState, 'remote-closed');
  inbound.end();
  await until(() => inbound.protocolState === 'closed' && channel.protocolState === 'closed', 1000, 'closed');
  channel.resume();
  await whenClosed(channel);
  assert.equal(pair.client.channelCount, 0);
  assert.equal(pair.server.channelCount, 0);
  await pair.close();
});

test('inbound channel waits in syn-received until accepted', async () => {
  const pair = await sessionPair();
  pair.client.dial().write('x');
  await until(() => pair.server.channelCount === 1, 1000, 'inbound');
  const inbound = await pair.server.accept();
  assert.equal(inbound.protocolState, 'established');
  await pair.close();
});

describe('half-close', () => {
  test('client ends first, server keeps writing, then ends', async () => {
    const pair = await sessionPair({ transport: 'tcp' });
    const inboundP = pair.server.accept();
    const channel = pair.client.dial();
    channel.end('request');
    const inbound = await inboundP;
    const request = await readAll(inbound);
    assert.equal(request.toString(), 'request');
    const reply = readAll(channel);
    const big = pseudoRandomBytes(300_000, 9);
    inbound.write('part one, ');
    inbound.end(big);
    assert.equal(sha(await reply), sha(Buffer.concat([Buffer.from('part one, '), big])));
    await whenClosed(channel);
    await pair.close();
  });

  test('server ends first, client keeps writing, then ends', async () => {
    const pair = await sessionPair({ transport: 'tcp' });
    const inboundP = pair.server.accept();
    const channel = pair.client.dial();
    channel.write('hello');
    const inbound = await inboundP;
    const fromClient = readAll(inbound);
    inbound.end('bye');
    assert.equal((await readAll(channel)).toString(), 'bye');
    channel.write(' more');
    channel.end(' and done');
    assert.equal((await fromClient).toString(), 'hello more and done');
    await pair.close();
  });

  test('closeRead(): buffered data is dropped unseen, later data discarded and credited, the writer never stalls; writing goes on', async () => {
    const pair = await sessionPair({ transport: 'tcp' });
    const inboundP = pair.server.accept();
    const channel = pair.client.dial();
    channel.write(pseudoRandomBytes(200_000, 3));
    const inbound = await inboundP;
    await until(() => inbound.readableLength === 200_000, 3000, 'the first bytes are buffered');
    let seen = 0;
    inbound.on('data', (chunk: Buffer) => (seen += chunk.length));
    inbound.pause(); // a listener that is not being fed: closeRead must not feed it either
    const ended = once(inbound, 'end');
    const bufferedBefore = pair.server.bufferedBytes;
    assert.equal(inbound.closeRead(), inbound, 'chainable');
    await ended;
    assert.equal(inbound.readableLength, 0);
    assert.ok(pair.server.bufferedBytes <= bufferedBefore - 200_000, 'the session no longer counts the dropped bytes');
    // 4 MiB more, sixteen times the spec's window: only returned credit lets the writer finish.
    const more = pseudoRandomBytes(4 << 20, 4);
    await new Promise<void>((resolve, reject) => {
      channel.once('error', reject);
      channel.end(more, resolve);
    });
    // The client's FIN comes behind the discarded bytes. (Had the server let go of the channel before, data
    // still on the way would have drawn a reset: the next test.)
    await until(() => inbound.protocolState === 'remote-closed', 3000, "the client's FIN");
    const reply = readAll(channel);
    inbound.end('still writing');
    assert.equal((await reply).toString(), 'still writing');
    await whenClosed(channel);
    await whenClosed(inbound);
    assert.equal(seen, 0, 'no data event after closeRead()');
    assert.ok(inbound.receiveWindow <= 256 * 1024, `discarded data grows no window (${inbound.receiveWindow})`);
    assert.equal(channel.protocolState, 'closed');
    assert.equal(inbound.protocolState, 'closed');
    assert.equal(channel.failure, undefined);
    assert.equal(inbound.failure, undefined);
    assert.equal(pair.server.bufferedBytes, 0);
    await pair.close();
  });

  test('closed for reading and writing, a channel that still receives data resets the peer', async () => {
    const pair = await sessionPair({ transport: 'tcp' });
    const inboundP = pair.server.accept();
    const channel = pair.client.dial();
    const failed = new Promise<Error>((resolve) => channel.once('error', resolve));
    channel.write('first');
    const inbound = await inboundP;
    let serverErrors = 0;
    inbound.on('error', () => serverErrors++);
    inbound.closeRead();
    inbound.end();
    // The FIN arrives; the peer keeps writing all the same: a few small writes (a peer's last words before it
    // heard of the close) are dropped, more draws a reset.
    await until(() => channel.protocolState === 'remote-closed', 3000, "the server's FIN");
    channel.write('last');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(channel.failure, undefined, 'a small write is dropped without a reset');
    channel.write(Buffer.alloc(4096));
    const error = await within(failed, 5000, 'the reset');
    assert.ok(error instanceof ChannelResetError, String(error));
    await whenClosed(inbound);
    assert.equal(inbound.protocolState, 'reset');
    assert.equal(serverErrors, 0, 'the side that closed sees no error');
    await pair.close();
  });

  test("closeRead() after the peer's FIN drops what is buffered and closes cleanly", async () => {
    const pair = await sessionPair({ transport: 'tcp' });
    const inboundP = pair.server.accept();
    const channel = pair.client.dial();
    channel.end('a request nobody reads');
    const inbound = await inboundP;
    await until(() => inbound.readableLength > 0 && inbound.protocolState === 'remote-closed', 3000, 'data and FIN');
    let ends = 0;
    inbound.on('end', () => ends++);
    inbound.closeRead();
    inbound.closeRead(); // twice: nothing more
    const reply = readAll(channel);
    inbound.end('done');
    assert.equal((await reply).toString(), 'done');
    await whenClosed(inbound);
    assert.equal(ends, 1);
    assert.equal(inbound.protocolState, 'closed');
    assert.equal(inbound.failure, undefined);
    await pair.close();
  });
});

describe('reset', () => {
  test("a write pending when this side destroys its channel fails with ERR_MUX_CHANNEL_ABORTED; the peer's side with ERR_MUX_CHANNEL_RESET", async () => {
    const pair = await sessionPair();
    const inboundP = pair.server.accept();
    const channel = pair.client.dial();
    channel.write('x');
    const inbound = await inboundP;
    const peerError = once(inbound, 'error');
    // Beyond the peer's 256 KiB window, nobody reading: the write waits.
    const written = new Promise<Error | null | undefined>((resolve) =>
      channel.write(Buffer.alloc(512 * 1024), resolve),
    );
    await until(() => channel.stats().stalled, 2000, 'the write waiting for window');
    channel.destroy();
    const local = (await written) as MuxError;
    assert.ok(local instanceof ChannelResetError);
    assert.equal(local.code, 'ERR_MUX_CHANNEL_ABORTED');
    const [remote] = (await peerError) as [MuxError];
    assert.equal(remote.code, 'ERR_MUX_CHANNEL_RESET');
    await pair.close();
  });

  test('client destroy() resets the server side with ChannelResetError', async () => {
    const pair = await sessionPair();
    const inboundP = pair.server.accept();
    const channel = pair.client.dial();
    channel.write('x');
    const inbound = await inboundP;
    const error = once(inbound, 'error');
    channel.destroy();
    const [e] = (await error) as [Error];
    assert.ok(e instanceof ChannelResetError);
    assert.equal(e.code, 'ERR_MUX_CHANNEL_RESET');
    assert.equal(inbound.protocolState, 'reset');
    await until(() => pair.client.channelCount === 0 && pair.server.channelCount === 0, 1000, 'both removed');
    await pair.close();
  });

  test('server destroy() resets the client side; pending writes fail', async () => {
    const pair = await sessionPair();
    const inboundP = pair.server.accept();
    const channel = pair.client.dial();
    channel.write('x');
    const inbound = await inboundP;
    const error = once(channel, 'error');
    inbound.destroy();
    const [e] = (await error) as [Error];
    assert.ok(e instanceof ChannelResetError);
    assert.ok(!(e instanceof ChannelRefusedError));
    await pair.close();
  });

  test('an unobserved reset does not crash: the channel closes and keeps the reason in .failure', async () => {
    const pair = await sessionPair();
    const inboundP = pair.server.accept();
    const channel = pair.client.dial();
    channel.write('x');
    const inbound = await inboundP;
    channel.destroy();
    await whenClosed(inbound);
    assert.ok(inbound.failure instanceof ChannelResetError);
    await pair.close();
  });

  test('other channels are unaffected by a reset', async () => {
    const pair = await sessionPair();
    echo(pair.server);
    const doomed = pair.client.dial();
    doomed.on('error', () => {});
    doomed.write('x');
    const fine = pair.client.dial();
    const reply = readAll(fine);
    doomed.destroy();
    fine.end('still here');
    assert.equal((await reply).toString(), 'still here');
    await pair.close();
  });
});

describe('flow control', () => {
  test('a slow reader stops its writer at the window while other channels keep flowing', async () => {
    const pair = await sessionPair({ transport: 'tcp' });
    const inbound: Channel[] = [];
    pair.server.on('channel', (c) => inbound.push(c));
    const slow = pair.client.dial();
    const payload = pseudoRandomBytes(2 * 1024 * 1024, 3);
    let writeDone = false;
    slow.write(payload, () => {
      writeDone = true;
    });
    await until(() => inbound.length === 1 && inbound[0]!.readableLength >= 262144, 5000, 'window filled');
    const stalled = inbound[0]!;
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(stalled.readableLength, 262144, 'exactly one window buffered at the slow reader');
    assert.equal(writeDone, false, 'the writer is held back');
    // Another channel flows both ways meanwhile.
    const other = pair.client.dial();
    await until(() => inbound.length === 2, 2000, 'second channel');
    inbound[1]!.pipe(inbound[1]!);
    const reply = readAll(other);
    other.end('unaffected');
    assert.equal((await reply).toString(), 'unaffected');
    // The slow reader reads: everything arrives, exactly.
    const all = readAll(stalled);
    slow.end();
    assert.equal(sha(await all), sha(payload));
    assert.ok(writeDone);
    await pair.close();
  });

  test('both sides write ten windows at once without reading first: no deadlock', async () => {
    const pair = await sessionPair({ transport: 'tcp' });
    const size = 10 * 262144;
    const a = pseudoRandomBytes(size, 1);
    const b = pseudoRandomBytes(size, 2);
    const inboundP = pair.server.accept();
    const channel = pair.client.dial();
    channel.end(a);
    const inbound = await inboundP;
    inbound.end(b);
    const [atServer, atClient] = await Promise.all([readAll(inbound), readAll(channel)]);
    assert.equal(sha(atServer), sha(a));
    assert.equal(sha(atClient), sha(b));
    await pair.close();
  });

  test('windows grow by auto-tuning on a link with latency, up to maxWindow', async () => {
    const pair = await sessionPair({ delayMs: 10, server: { maxWindow: 4 * 1024 * 1024 } });
    await pair.server.ping();
    const inboundP = pair.server.accept();
    const channel = pair.client.dial();
    const payload = pseudoRandomBytes(16 * 1024 * 1024, 5);
    channel.end(payload);
    const inbound = await inboundP;
    let largest = 0;
    inbound.on('data', () => (largest = Math.max(largest, inbound.receiveWindow)));
    const received = await readAll(inbound);
    assert.equal(sha(received), sha(payload));
    assert.ok(largest > 262144, `window grew to ${largest}`);
    assert.ok(largest <= 4 * 1024 * 1024);
    assert.equal(inbound.receiveWindow, 262144, "the growth given back at the peer's FIN");
    await pair.close();
  });

  test('a channel read before the session knows its RTT grows at once, sized by the age of the opening ping', async () => {
    // 30 ms each way. The client dials at once and sends exactly the spec's window; the server reads it all
    // (at ~30 ms) before its opening ping is answered (~60 ms). The ping has then been out ~30 ms, so the RTT
    // is at least that: a window read in about a millisecond is far too small, and grows on that bound.
    const pair = await sessionPair({ delayMs: 30 });
    const inboundP = pair.server.accept();
    pair.client.dial().write(pseudoRandomBytes(262144, 7));
    const inbound = await inboundP;
    let read = 0;
    let rttWhenRead: number | undefined = -1;
    let windowWhenRead = 0;
    inbound.on('data', (chunk: Buffer) => {
      read += chunk.length;
      if (read === 262144) {
        rttWhenRead = pair.server.rtt;
        windowWhenRead = inbound.receiveWindow;
      }
    });
    await until(() => read === 262144, 2000, 'the first window read');
    assert.equal(rttWhenRead, undefined, 'read before the first RTT');
    assert.ok(windowWhenRead > 262144, `grew before the first RTT: ${windowWhenRead}`);
    assert.ok(windowWhenRead <= 32 * 262144, `at most x32 in one growth: ${windowWhenRead}`);
    // The growth is on trial; with no more data its verdict waits, and the first RTT does not undo it.
    await until(() => pair.server.rtt !== undefined, 2000, 'the first RTT');
    assert.equal(inbound.receiveWindow, windowWhenRead);
    await pair.close();
  });

  test('a memory budget shared by sessions caps their window growth and is given back when they end', async () => {
    const budget = new MemoryBudget(1024 * 1024);
    const pairs = [
      await sessionPair({ delayMs: 10, server: { maxWindow: 4 * 1024 * 1024, memoryBudget: budget } }),
      await sessionPair({ delayMs: 10, server: { maxWindow: 4 * 1024 * 1024, memoryBudget: budget } }),
    ];
    const transfers = pairs.map(async (pair, i) => {
      await pair.server.ping();
      const inboundP = pair.server.accept();
      const payload = pseudoRandomBytes(8 * 1024 * 1024, 10 + i);
      const dialled = pair.client.dial();
      dialled.write(payload); // no FIN yet: the peer's FIN gives the growth back (below)
      const inbound = await inboundP;
      const chunks: Buffer[] = [];
      let length = 0;
      await new Promise<void>((resolve) =>
        inbound.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          length += chunk.length;
          if (length === payload.length) resolve();
        }),
      );
      assert.equal(sha(Buffer.concat(chunks)), sha(payload));
      return { inbound, dialled };
    });
    const opened = await Promise.all(transfers);
    const inbound = opened.map((o) => o.inbound);
    const growth = inbound.map((c) => c.receiveWindow - 262144);
    assert.ok(growth[0]! + growth[1]! > 0, `windows grew: ${growth.join(',')}`);
    assert.ok(growth[0]! + growth[1]! <= budget.limit, `growth ${growth.join(',')} within the shared budget`);
    assert.equal(budget.reserved, growth[0]! + growth[1]!, "the budget holds exactly the open channels' growth");
    // One session ends cleanly, the other has its transport cut: both give their growth back, the first at its
    // peer's FIN already (no byte more can come), before its channel closes.
    opened[0]!.dialled.end();
    await until(() => budget.reserved === growth[1], 2000, "the first channel's growth back at its peer's FIN");
    assert.equal(pairs[0]!.server.channelCount, 1, 'still open for its reply');
    inbound[0]!.end();
    await until(() => pairs[0]!.server.channelCount === 0, 2000, 'first channel closed');
    assert.equal(budget.reserved, growth[1]);
    await pairs[1]!.close();
    await until(() => pairs[1]!.server.state === 'closed', 2000, 'second session ended');
    assert.equal(budget.reserved, 0);
    await pairs[0]!.close();
  });

  test('window growth goes back to the budget however a channel ends: FIN both ways, RST from either side', async () => {
    const budget = new MemoryBudget(64 * 1024 * 1024);
    const pair = await sessionPair({ delayMs: 10, server: { memoryBudget: budget } });
    await pair.server.ping();
    const inbound: Channel[] = [];
    pair.server.on('channel', (c) => inbound.push(c));
    // Four channels each send 4 MiB to a fast reader over a 20 ms RTT: their windows grow.
    const dialled = [0, 1, 2, 3].map((i) => {
      const c = pair.client.dial();
      c.on('error', () => {});
      c.write(pseudoRandomBytes(4 * 1024 * 1024, 20 + i));
      return c;
    });
    await until(() => inbound.length === 4, 2000, 'four channels');
    const read = inbound.map(() => 0);
    inbound.forEach((c, i) => {
      c.on('error', () => {});
      c.on('data', (chunk: Buffer) => (read[i]! += chunk.length));
    });
    await until(() => read.every((n) => n === 4 * 1024 * 1024), 5000, 'all read');
    const grown = () => inbound.reduce((sum, c) => sum + (c.destroyed ? 0 : c.receiveWindow - 262144), 0);
    assert.ok(budget.reserved > 0 && budget.reserved === grown(), `reserved ${budget.reserved}, grown ${grown()}`);
    // Channel 0 ends cleanly both ways; 1 is reset by the dialler, 2 by the acceptor; 3 stays open.
    dialled[0]!.end();
    inbound[0]!.end();
    dialled[1]!.destroy();
    inbound[2]!.destroy();
    await until(() => pair.server.channelCount === 1, 2000, 'three channels gone');
    assert.equal(budget.reserved, inbound[3]!.receiveWindow - 262144, 'only the open channel holds growth');
    pair.server.destroy();
    assert.equal(budget.reserved, 0, 'a destroyed session gives back the rest at once');
    await pair.close();
  });

  test('the session memory bound caps buffered bytes when readers do not read', async () => {
    const limit = 512 * 1024;
    const pair = await sessionPair({ transport: 'tcp', server: { maxSessionBuffered: limit } });
    const inbound: Channel[] = [];
    pair.server.on('channel', (c) => inbound.push(c));
    const payloads = [1, 2, 3, 4].map((i) => pseudoRandomBytes(400 * 1024, i));
    const channels = payloads.map((p) => {
      const c = pair.client.dial();
      c.end(p);
      return c;
    });
    await until(() => pair.server.bufferedBytes >= limit, 5000, 'buffers fill');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(pair.server.bufferedBytes <= limit + 64 * 1024, `buffered ${pair.server.bufferedBytes}`);
    const received = await Promise.all(inbound.map(readAll));
    received.forEach((r, i) => assert.equal(sha(r), sha(payloads[i]!)));
    // The writers were held back, not failed: each finished its write side once the readers caught up.
    await until(() => channels.every((c) => c.writableFinished), 5000, 'every writer finished');
    for (const c of channels) assert.equal(c.failure, undefined);
    await pair.close();
  });

  test('stalled readers holding half the memory bound do not starve a channel whose reader keeps up', async () => {
    // Windows of 1 MiB and a 4 MiB bound: two stalled readers fill their windows, which puts the session at
    // its soft limit (half the bound). A third channel, read as fast as it arrives, must still get updates.
    const window = 1024 * 1024;
    const pair = await sessionPair({
      transport: 'tcp',
      server: { initialWindow: window, maxWindow: window, maxSessionBuffered: 4 * window },
    });
    const inbound: Channel[] = [];
    pair.server.on('channel', (c) => inbound.push(c));
    const stalledPayloads = [1, 2].map((seed) => pseudoRandomBytes(2 * window, seed));
    for (const payload of stalledPayloads) pair.client.dial().end(payload);
    await until(() => pair.server.bufferedBytes >= 2 * window, 5000, 'the stalled readers fill their windows');
    const active = pair.client.dial();
    const payload = pseudoRandomBytes(8 * window, 3);
    active.end(payload);
    await until(() => inbound.length === 3, 2000, 'third channel');
    let starved: ReturnType<typeof setTimeout> | undefined;
    const received = await Promise.race([
      readAll(inbound[2]!),
      new Promise<never>((_, reject) => {
        starved = setTimeout(() => reject(new Error('the active channel starved')), 5000);
      }),
    ]).finally(() => clearTimeout(starved));
    assert.equal(sha(received), sha(payload));
    assert.ok(pair.server.bufferedBytes <= 3 * window, `buffered ${pair.server.bufferedBytes}`);
    // The stalled readers read at last: their data is exact.
    const late = await Promise.all(inbound.slice(0, 2).map(readAll));
    late.forEach((r, i) => assert.equal(sha(r), sha(stalledPayloads[i]!)));
    await pair.close();
  });

  /**
   * Over a transport driven by hand (no socket, so no timing): a server session receives `turns` rounds of
   * 64 KiB Data frames on each of `channels` channels, every round's frames delivered as separate reads in
   * one event-loop turn (as a busy receiver reads what piled up in its socket); windows fixed at 256 KiB, so an update is due every
   * 128 KiB read. Returns the Window Updates the session wrote, the transport writes that carried them, and
   * how many updates were already written before the turn that made them due had ended.
   */
  async function receiverWrites(channels: number, turns: number) {
    const transport = new FakeTransport();
    const window = 256 * 1024;
    const session = new MuxSession<Channel>(
      transport,
      'server',
      { keepAliveInterval: 0, initialWindow: window, maxWindow: window, memoryBudget: null },
      (state, s) => new ChannelClass(state, s),
      { directWrites, updateTurns: UpdateTurns }, // as the Node session has them: holding the turn's updates is what is measured
    );
    const received = new Array<number>(channels).fill(0);
    session.on('channel', (channel) => {
      const slot = (channel.id - 1) / 2;
      channel.on('data', (chunk: Buffer) => {
        received[slot]! += chunk.length;
      });
    });
    const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    const updates = (): number =>
      parseFrames(transport.output()).filter((f) => f.type === FrameType.windowUpdate && f.flags === 0).length;
    const chunk = Buffer.alloc(64 * 1024, 7);
    try {
      for (let i = 0; i < channels; i++) transport.feed(frame(FrameType.windowUpdate, Flag.syn, 2 * i + 1, 0));
      await nextTurn();
      const writesBefore = transport.writes;
      let sentInTurn = 0;
      for (let turn = 0; turn < turns; turn++) {
        const before = updates();
        // One read per channel, each followed by its microtasks and ticks, as Node runs I/O callbacks; all
        // before the end of the turn (setImmediate).
        for (let i = 0; i < channels; i++) {
          transport.feed(frame(FrameType.data, 0, 2 * i + 1, chunk));
          for (let j = 0; j < 5; j++) await new Promise<void>((resolve) => process.nextTick(resolve));
        }
        sentInTurn += updates() - before;
        await nextTurn();
      }
      assert.equal(session.state, 'open', session.closeError?.message);
      return { updates: updates(), writes: transport.writes - writesBefore, sentInTurn, received };
    } finally {
      session.destroy();
    }
  }

  test('a receiver of many channels at once sends their Window Updates in few transport writes', async () => {
    // 20 channels x 16 rounds of 64 KiB: 160 updates. Updates for one channel after another wait for the end
    // of the event-loop turn and leave together: one write for the first of a turn, one for the rest.
    const { updates, writes, received } = await receiverWrites(20, 16);
    assert.deepEqual(received, new Array(20).fill(16 * 64 * 1024));
    assert.equal(updates, 160);
    assert.ok(writes <= 2 * 8, `${writes} transport writes for ${updates} Window Updates in 8 turns that had any`);
  });

  test('a lone receiving channel gets each Window Update at once, not held for the end of the turn', async () => {
    // One channel, 32 rounds of 64 KiB: 16 updates, each written within the turn its data arrived in (its
    // sender may be waiting for it), one write each.
    const { updates, writes, sentInTurn, received } = await receiverWrites(1, 32);
    assert.deepEqual(received, [32 * 64 * 1024]);
    assert.equal(updates, 16);
    assert.equal(sentInTurn, 16, 'every update left before the end of its turn');
    assert.equal(writes, 16);
  });
});

describe('limits', () => {
  test('accept backlog overflow is refused with RST: ChannelRefusedError on the dialler', async () => {
    const pair = await sessionPair({ server: { acceptBacklog: 2 } });
    const channels = [0, 1, 2, 3, 4].map(() => {
      const c = pair.client.dial();
      c.write('x');
      return c;
    });
    const errors = await Promise.all(channels.slice(2).map((c) => once(c, 'error').then(([e]) => e as Error)));
    for (const e of errors) {
      assert.ok(e instanceof ChannelRefusedError);
      assert.equal(e.code, 'ERR_MUX_CHANNEL_REFUSED');
    }
    const first = await pair.server.accept();
    assert.equal(first.id, 1);
    await pair.close();
  });

  test('maxStreams: dial beyond it throws StreamLimitError; inbound beyond it is refused', async () => {
    const pair = await sessionPair({ client: { maxStreams: 2 }, server: { maxStreams: 1 } });
    pair.server.on('channel', () => {});
    const a = pair.client.dial();
    const b = pair.client.dial();
    assert.throws(() => pair.client.dial(), StreamLimitError);
    a.write('a');
    b.write('b');
    const [e] = (await once(b, 'error')) as [Error];
    assert.ok(e instanceof ChannelRefusedError);
    await pair.close();
  });

  test("maxInboundStreams: the peer's channels beyond it are refused, and this side can still dial (users-asks row 13)", async () => {
    const records: LogRecord[] = [];
    const pair = await sessionPair({
      server: { maxStreams: 10, maxInboundStreams: 2, logger: (record) => records.push(record) },
    });
    const accepted: Channel[] = [];
    pair.server.on('channel', (channel) => accepted.push(channel));
    const [a, b, c] = [pair.client.dial(), pair.client.dial(), pair.client.dial()];
    for (const channel of [a, b, c]) channel.write('x');
    const [refusal] = (await once(c, 'error')) as [Error];
    assert.ok(refusal instanceof ChannelRefusedError, String(refusal));
    assert.equal(accepted.length, 2);
    assert.equal(pair.server.stats().refusalsOut, 1);
    assert.deepEqual([pair.server.stats().inboundOpen, pair.server.stats().outboundOpen], [2, 0]);
    const refused = records.find((r) => r.event === 'channel-refused');
    assert.equal(refused?.reason, 'max-inbound-streams');
    assert.equal(refused?.channel, c.id);
    // The server's own dials are not held by the peer's channels.
    const pushed = pair.server.dial();
    pushed.end('pushed');
    const [fromServer] = (await once(pair.client, 'channel')) as [Channel];
    assert.equal((await readAll(fromServer)).toString(), 'pushed');
    assert.equal(pair.client.stats().inboundOpen, 1, "the server's push, ended by the server only");
    // Once one of the peer's channels has ended both ways, the peer may open another.
    a.on('error', () => {});
    a.end();
    accepted[0]!.resume();
    accepted[0]!.end();
    await until(() => pair.server.channelCount === 2, 2000, "the first channel leaves the server's table");
    const d = pair.client.dial();
    d.write('y');
    await until(() => accepted.length === 3, 2000, 'a fourth channel accepted');
    await pair.close();
  });

  test('maxInboundStreams 0 refuses every channel the peer opens', async () => {
    const pair = await sessionPair({ server: { maxInboundStreams: 0 } });
    let accepted = 0;
    pair.server.on('channel', () => accepted++);
    const channel = pair.client.dial();
    channel.write('x');
    const [error] = (await once(channel, 'error')) as [Error];
    assert.ok(error instanceof ChannelRefusedError, String(error));
    assert.equal(accepted, 0);
    await pair.close();
  });

  test("maxOutboundStreams: a dial beyond it throws StreamLimitError; the peer's channels do not count", async () => {
    const pair = await sessionPair({ client: { maxOutboundStreams: 2 } });
    echo(pair.server);
    const inbound: Channel[] = [];
    pair.client.on('channel', (channel) => inbound.push(channel));
    for (let i = 0; i < 3; i++) pair.server.dial().write('from the server');
    await until(() => inbound.length === 3, 2000, "the server's three channels");
    const a = pair.client.dial();
    pair.client.dial().on('error', () => {});
    assert.throws(
      () => pair.client.dial(),
      (e) =>
        e instanceof StreamLimitError &&
        e.code === 'ERR_MUX_STREAM_LIMIT' &&
        e.message.includes('maxOutboundStreams (2)'),
    );
    // A dialled channel that ended both ways makes room.
    a.end('bye');
    assert.equal((await readAll(a)).toString(), 'bye');
    await until(() => pair.client.channelCount === 4, 2000, 'the first dial leaves the table');
    const c = pair.client.dial();
    c.end('again');
    assert.equal((await readAll(c)).toString(), 'again');
    await pair.close();
  });

  test('ids running out: the dial that takes the last id sends Go Away, later dials throw, open channels finish with no deadline (users-asks row 13)', async () => {
    const [a, b] = memoryPipe();
    const client = new MuxSession<ChannelClass>(
      duplexTransport(a),
      'client',
      { keepAliveInterval: 0, closeTimeout: 30 },
      (state, s) => new ChannelClass(state, s),
      { ...FULL_PARTS, firstChannelId: 0xffff_fffd },
    );
    const server = multiplexedServer(b, { keepAliveInterval: 0 });
    echo(server);
    const goAway = once(server, 'goaway');
    const first = client.dial();
    assert.equal(first.id, 0xffff_fffd);
    assert.equal(client.state, 'open');
    const last = client.dial();
    assert.equal(last.id, 0xffff_ffff);
    assert.equal(client.state, 'closing', 'the last id starts a graceful close');
    assert.throws(
      () => client.dial(),
      (e) => e instanceof StreamLimitError && e.message.includes('channel ids are exhausted'),
    );
    assert.deepEqual(await goAway, [GoAwayCode.normal]);
    // Well past closeTimeout: no deadline applies to a close the ids started.
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.equal(client.state, 'closing');
    // Both channels still carry their data both ways, and the session then closes cleanly.
    const payload = pseudoRandomBytes(300_000, 13);
    first.end(payload);
    last.end('the last one');
    assert.equal(sha(await readAll(first)), sha(payload));
    assert.equal((await readAll(last)).toString(), 'the last one');
    await client.closed;
    assert.equal(client.state, 'closed');
    assert.throws(() => client.dial(), SessionClosedError);
    await server.closed;
  });

  test('ids running out, then close(): the call sets the deadline the exhaustion left out', async () => {
    const [a, b] = memoryPipe();
    const client = new MuxSession<ChannelClass>(
      duplexTransport(a),
      'client',
      { keepAliveInterval: 0 },
      (state, s) => new ChannelClass(state, s),
      { ...FULL_PARTS, firstChannelId: 0xffff_ffff },
    );
    const server = multiplexedServer(b, { keepAliveInterval: 0 });
    const serverSide = server.accept();
    const last = client.dial();
    last.write('held open');
    await serverSide;
    assert.equal(client.state, 'closing');
    const failed = once(last, 'error');
    const started = performance.now();
    await client.close({ timeout: 40 });
    assert.ok(performance.now() - started < 2000, 'close() ended at its own deadline');
    const [error] = (await failed) as [TimeoutError];
    assert.ok(error instanceof TimeoutError);
    assert.equal(error.code, 'ERR_MUX_CLOSE_TIMEOUT');
    server.destroy();
  });

  test('the ACK backlog holds further SYNs until the peer accepts', async () => {
    const pair = await sessionPair({ client: { ackBacklog: 2 } });
    const channels = [0, 1, 2, 3].map(() => pair.client.dial());
    for (const c of channels) c.write('x');
    await until(() => pair.server.channelCount === 2, 1000, 'two inbound');
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(pair.server.channelCount, 2, 'no more than the backlog is opened before acceptance');
    assert.equal(channels[3]!.protocolState, 'init');
    const accepted = [await pair.server.accept(), await pair.server.accept()];
    await until(() => pair.server.channelCount === 4, 1000, 'remaining opened after ACKs');
    assert.deepEqual(
      accepted.map((c) => c.id),
      [1, 3],
    );
    await pair.close();
  });
});

describe('opening', () => {
  // Over TCP: the open timer does not keep the process alive by itself (like keep-alive's); a socket does.
  /** Resolves with the channel's failure once it closes. */
  const failureOf = (channel: Channel): Promise<Error | undefined> =>
    new Promise((resolve) => channel.once('close', () => resolve(channel.failure)));

  test('a channel the peer never acknowledges fails with ERR_MUX_OPEN_TIMEOUT and is reset', async () => {
    // 300 ms: room for the check below that the SYN arrived, on a busy machine, before the timeout resets it.
    const pair = await sessionPair({ transport: 'tcp', client: { openTimeout: 300 } });
    // The server application never accepts: the SYN waits in its accept queue, unacknowledged.
    const started = performance.now(); // the open timeout counts from dial()
    const channel = pair.client.dial();
    const failed = failureOf(channel);
    channel.on('error', () => {});
    channel.write('hello');
    await until(() => pair.server.channelCount === 1, 1000, 'the SYN arrived');
    const failure = await failed;
    const waited = performance.now() - started;
    assert.equal((failure as { code?: string } | undefined)?.code, 'ERR_MUX_OPEN_TIMEOUT');
    assert.ok(failure instanceof TimeoutError);
    assert.ok(waited >= 300 && waited < 1300, `failed after ${waited.toFixed(0)} ms`);
    assert.equal(channel.protocolState, 'reset');
    // The RST reached the server, whose queued channel is gone: accept() does not hand it out.
    await until(() => pair.server.channelCount === 0, 1000, 'the server dropped the channel');
    const controller = new AbortController();
    const accepting = pair.server.accept({ signal: controller.signal });
    setTimeout(() => controller.abort(new Error('nothing to accept')), 50);
    await assert.rejects(accepting, /nothing to accept/);
    await pair.close();
  });

  test('an acknowledged channel is not timed out; a per-dial openTimeout of 0 waits without limit', async () => {
    const pair = await sessionPair({ transport: 'tcp', client: { openTimeout: 50 } });
    pair.server.on('channel', (channel) => channel.on('error', () => {}).pipe(channel));
    const acknowledged = pair.client.dial();
    const echoed = new Promise((resolve) => acknowledged.once('data', resolve));
    acknowledged.write('ping');
    await echoed;
    const patient = pair.client.dial({ openTimeout: 0 });
    pair.server.removeAllListeners('channel'); // from now on the server does not accept
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(acknowledged.protocolState, 'established');
    assert.equal(acknowledged.destroyed, false);
    assert.equal(patient.destroyed, false, 'no open timeout for this dial');
    assert.equal(patient.protocolState, 'syn-sent');
    await pair.close();
  });

  test('a peer that answers without the ACK flag (a window update, data) has still taken the channel: no open timeout', async () => {
    const [ours, theirs] = await tcpPair();
    const client = multiplexedClient(ours, { keepAliveInterval: 0, openTimeout: 100 });
    const peer = new RawPeer(theirs);
    try {
      const channel = client.dial();
      channel.write('hi');
      await until(() => peer.frames.some((f) => f.streamId === 1), 1000, 'the SYN arrived');
      peer.send(frame(FrameType.windowUpdate, 0, 1, 0), frame(FrameType.data, 0, 1, Buffer.from('yo')));
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(channel.destroyed, false, `failed: ${channel.failure?.message}`);
    } finally {
      client.destroy();
      ours.destroy();
      theirs.destroy();
    }
  });

  test('dial({ signal }): aborting before the acknowledgement resets the channel; after it, nothing; no listener is left', async () => {
    const pair = await sessionPair({ transport: 'tcp' });
    const early = new AbortController();
    const channel = pair.client.dial({ signal: early.signal });
    channel.on('error', () => {});
    await until(() => pair.server.channelCount === 1, 1000, 'the SYN arrived');
    const failure = failureOf(channel);
    early.abort(new Error('no longer needed'));
    assert.match((await failure)?.message ?? '', /no longer needed/);
    await until(() => pair.server.channelCount === 0, 1000, 'the server dropped the channel');
    assert.equal(getEventListeners(early.signal, 'abort').length, 0);

    pair.server.on('channel', (inbound) => inbound.on('error', () => {}).pipe(inbound));
    const late = new AbortController();
    const kept = pair.client.dial({ signal: late.signal });
    const echoed = new Promise((resolve) => kept.once('data', resolve));
    kept.write('still here');
    await echoed;
    assert.equal(getEventListeners(late.signal, 'abort').length, 0, 'the listener went with the acknowledgement');
    late.abort(new Error('too late'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(kept.destroyed, false);
    assert.equal(kept.protocolState, 'established');

    const aborted = AbortSignal.abort(new Error('already aborted'));
    assert.throws(() => pair.client.dial({ signal: aborted }), /already aborted/);
    assert.throws(() => pair.client.dial({ openTimeout: -1 }), RangeError);
    await pair.close();
  });

  test('accept({ signal }) with a signal already aborted rejects with its reason even while a channel waits, which the next accept() takes', async () => {
    const pair = await sessionPair({ transport: 'tcp' });
    try {
      const channel = pair.client.dial();
      channel.write('waiting');
      await until(() => pair.server.channelCount === 1, 1000, 'the SYN arrived');
      const aborted = AbortSignal.abort(new Error('shutting down'));
      await assert.rejects(pair.server.accept({ signal: aborted }), /shutting down/);
      const taken = await within(pair.server.accept(), 1000, 'the waiting channel');
      assert.equal(taken.id, channel.id);
    } finally {
      await pair.close();
    }
  });

  test('one signal shared by many waiting calls (connects, dials, pings, accepts) holds one listener of the session, Node gives no leak warning, and an abort settles each call', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => void warnings.push(`${warning.name}: ${warning.message}`);
    process.on('warning', onWarning);
    // A peer that answers nothing: the dials wait for their ACKs, the pings for their answers.
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => void sockets.push(socket));
    const sessions: Session[] = [];
    try {
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const { port } = silent.address() as net.AddressInfo;
      const controller = new AbortController();
      const { signal } = controller;
      const options = { host: '127.0.0.1', port, signal, keepAliveInterval: 0, openTimeout: 60_000 };
      sessions.push(...(await Promise.all(Array.from({ length: 20 }, () => connect(options)))));
      assert.equal(getEventListeners(signal, 'abort').length, 0, 'connected: no listener left');
      const client = sessions[0]!;
      const dials = Array.from({ length: 30 }, () => {
        const channel = client.dial({ signal });
        channel.on('error', () => {});
        return failureOf(channel);
      });
      const pings = Array.from({ length: 30 }, () => client.ping({ signal }).then(String, (error: unknown) => error));
      const accepts = Array.from({ length: 30 }, () => client.accept({ signal }).then(String, (e: unknown) => e));
      const connecting = connect(options).then(String, (error: unknown) => error);
      assert.equal(getEventListeners(signal, 'abort').length, 1, 'one listener for 91 waiting calls');
      const reason = new Error('shut down');
      controller.abort(reason);
      for (const outcome of await Promise.all([...dials, ...pings, ...accepts, connecting])) {
        assert.equal(outcome, reason);
      }
      assert.equal(getEventListeners(signal, 'abort').length, 0);
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(warnings, [], 'no MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  test("a dial whose signal a 'channelOpen' listener aborts (a shutdown tripped at a limit) is reset with the signal's reason, and no listener stays", async () => {
    for (const openTimeout of [0, 60_000]) {
      const session = new LightSession(new FakeTransport(), 'client', { keepAliveInterval: 0 });
      try {
        const controller = new AbortController();
        const reason = new Error('shutting down');
        session.on('channelOpen', () => controller.abort(reason));
        const channel = session.dial({ signal: controller.signal, openTimeout });
        const failure = new Promise<unknown>((resolve) => channel.on('error', resolve));
        assert.equal(await within(failure, 2000, `the reset (openTimeout ${openTimeout})`), reason);
        assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
      } finally {
        session.destroy();
      }
    }
  });

  test('a session closed with dials pending fails them and leaves no abort listener', async () => {
    const pair = await sessionPair({ transport: 'tcp', client: { openTimeout: 60_000 } });
    try {
      const controller = new AbortController();
      const failures = Array.from({ length: 3 }, () => {
        const channel = pair.client.dial({ signal: controller.signal });
        channel.on('error', () => {});
        return failureOf(channel);
      });
      assert.equal(getEventListeners(controller.signal, 'abort').length, 1, 'one listener for the three dials');
      pair.client.destroy();
      for (const failure of await Promise.all(failures)) {
        assert.equal((failure as { code?: string } | undefined)?.code, 'ERR_MUX_SESSION_CLOSED');
      }
      assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
    } finally {
      await pair.close();
    }
  });
});

test("Node's stream.addAbortSignal on a channel: an abort destroys it with AbortError and resets the peer's channel", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    const peerFailure = new Promise<Error>((resolve) =>
      pair.server.on('channel', (inbound) => inbound.on('error', resolve)),
    );
    const controller = new AbortController();
    const channel = addAbortSignal(controller.signal, pair.client.dial());
    const failure = new Promise<Error>((resolve) => channel.on('error', resolve));
    channel.write('x');
    await until(() => pair.server.channelCount === 1, 2000, 'the channel accepted');
    controller.abort();
    assert.equal((await failure).name, 'AbortError');
    assert.ok((await peerFailure) instanceof ChannelResetError);
    await until(() => pair.client.channelCount === 0, 1000, 'the channel gone');
  } finally {
    await pair.close();
  }
});

describe('small payloads joined per read', () => {
  const D = FrameType.data;

  test('one-byte frames spread over many channels in one read reach each channel as one chunk, in order (an echo queues one write per read, not one a byte)', () => {
    const transport = new FakeTransport();
    // (No read time slice: 5,000 frames of cold code can take more than one, and the read would be cut.)
    const session = new LightSession(transport, 'server', { keepAliveInterval: 0, readTimeSlice: 0 });
    const chunks = new Map<number, string[]>();
    session.on('channel', (channel) => {
      const list: string[] = [];
      chunks.set(channel.id, list);
      channel.on('data', (data) => list.push(Buffer.from(data).toString()));
    });
    const opens = Array.from({ length: 100 }, (_, i) => frame(FrameType.windowUpdate, Flag.syn, 1 + 2 * i, 0));
    transport.feed(Buffer.concat(opens));
    const frames: Buffer[] = [];
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 100; i++) frames.push(frame(D, 0, 1 + 2 * i, Buffer.from(String(round % 10))));
    }
    transport.feed(Buffer.concat(frames)); // one read
    const expected = Array.from({ length: 50 }, (_, round) => String(round % 10)).join('');
    assert.equal(chunks.size, 100);
    for (const [id, list] of chunks) assert.deepEqual(list, [expected], `channel ${id}`);
    session.destroy();
  });

  test('a read that ends inside the next frame header still hands on what it brought, at once', () => {
    const transport = new FakeTransport();
    const session = new LightSession(transport, 'server', { keepAliveInterval: 0 });
    const seen: string[] = [];
    session.on('channel', (channel) => channel.on('data', (data) => seen.push(Buffer.from(data).toString())));
    const ping = frame(FrameType.ping, Flag.syn, 0, 7);
    transport.feed(
      Buffer.concat([
        frame(D, Flag.syn, 1, Buffer.from('he')),
        frame(D, 0, 1, Buffer.from('llo')),
        ping.subarray(0, 4),
      ]),
    );
    assert.deepEqual(seen, ['hello']);
    transport.feed(ping.subarray(4));
    assert.deepEqual(seen, ['hello']);
    session.destroy();
  });

  test("what a read brings before a SYN reaches its channel before the new channel's listeners run", () => {
    const transport = new FakeTransport();
    const session = new LightSession(transport, 'server', { keepAliveInterval: 0 });
    const events: string[] = [];
    session.on('channel', (channel) => {
      events.push(`channel ${channel.id}`);
      channel.on('data', (data) => events.push(`data ${channel.id} ${Buffer.from(data).toString()}`));
    });
    transport.feed(frame(FrameType.windowUpdate, Flag.syn, 1, 0));
    transport.feed(Buffer.concat([frame(D, 0, 1, Buffer.from('x')), frame(D, Flag.syn, 3, Buffer.from('y'))]));
    assert.deepEqual(events, ['channel 1', 'data 1 x', 'channel 3', 'data 3 y']);
    session.destroy();
  });
});

describe('accepting', () => {
  test('accept(), async iteration and the channel event share one queue, in order', async () => {
    const pair = await sessionPair();
    for (let i = 0; i < 3; i++) pair.client.dial().write(String(i));
    await until(() => pair.server.channelCount === 3, 1000, 'queued');
    const first = await pair.server.accept();
    const ids: number[] = [first.id];
    for await (const channel of pair.server) {
      ids.push(channel.id);
      if (ids.length === 2) break;
    }
    const third = await new Promise<Channel>((resolve) => pair.server.on('channel', resolve));
    ids.push(third.id);
    assert.deepEqual(ids, [1, 3, 5]);
    await pair.close();
  });

  test('accept() honours an AbortSignal and leaves no listener; the next channel goes to the next accept()', async () => {
    const pair = await sessionPair();
    const controller = new AbortController();
    const pending = pair.server.accept({ signal: controller.signal });
    controller.abort(new Error('gave up'));
    await assert.rejects(pending, /gave up/);
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
    // The aborted call left the queue: the peer's next channel is not handed to it (and lost) but to the
    // next accept().
    const dialled = pair.client.dial();
    dialled.write('x');
    const giveUp = new AbortController();
    const timer = setTimeout(() => giveUp.abort(new Error('the channel never reached the next accept()')), 2000);
    try {
      const inbound = await pair.server.accept({ signal: giveUp.signal });
      assert.equal(inbound.id, dialled.id);
    } finally {
      clearTimeout(timer);
      await pair.close();
    }
  });

  test("a channel the peer reset in the same read as its SYN is not handed to a waiting accept(): its 'close' came before the caller could listen; the call gets the next channel", async () => {
    for (const kind of ['Channel', 'LightChannel'] as const) {
      const transport = new FakeTransport();
      const options = { keepAliveInterval: 0 };
      const session =
        kind === 'Channel'
          ? new MuxSession<ChannelClass>(transport, 'server', options, (state, s) => new ChannelClass(state, s))
          : new LightSession(transport, 'server', options);
      const accepting = session.accept();
      // Its SYN, data and RST in one read (a busy loop, a slow link), then the next channel's SYN.
      transport.feed(
        Buffer.concat([
          frame(FrameType.data, Flag.syn, 1, Buffer.from('gone')),
          frame(FrameType.windowUpdate, Flag.rst, 1, 0),
        ]),
      );
      transport.feed(frame(FrameType.data, Flag.syn, 3, Buffer.from('next')));
      const channel = await accepting;
      assert.equal(channel.id, 3, kind);
      assert.equal(channel.destroyed, false, kind);
      const closed = new Promise<void>((resolve) => channel.once('close', () => resolve()));
      transport.feed(frame(FrameType.windowUpdate, Flag.rst, 3, 0));
      await closed; // a listener added as the call returned hears the channel's end
      session.destroy();
    }
  });

  test("a waiting accept() that gives up in the same task as its channel's SYN leaves the channel to the 'channel' listener, in order", async () => {
    const transport = new FakeTransport();
    const session = new LightSession(transport, 'server', { keepAliveInterval: 0 });
    const got: number[] = [];
    session.on('channel', (channel) => got.push(channel.id));
    const giveUp = new AbortController();
    const accepting = session.accept({ signal: giveUp.signal });
    transport.feed(frame(FrameType.data, Flag.syn, 1, Buffer.from('a')));
    giveUp.abort();
    await assert.rejects(accepting, { name: 'AbortError' });
    transport.feed(frame(FrameType.data, Flag.syn, 3, Buffer.from('b')));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(got, [1, 3]);
    const acknowledged = parseFrames(transport.output())
      .filter((f) => (f.flags & Flag.ack) !== 0)
      .map((f) => f.streamId);
    assert.deepEqual(acknowledged, [1, 3]);
    session.destroy();
  });

  test('a channel whose SYN came for a waiting accept() is still handed to it when the session closes or fails in the same task (multiplex: a complete request)', async () => {
    const multiplexFrame = (id: number, flags: number, payload = Buffer.alloc(0)): Buffer =>
      Buffer.concat([
        Buffer.from([id >>> 24, (id >> 16) & 0xff, (id >> 8) & 0xff, id & 0xff, flags]),
        Buffer.from([payload.length >> 16, (payload.length >> 8) & 0xff, payload.length & 0xff]),
        payload,
      ]);
    for (const ending of ['close()', "the peer's end"] as const) {
      const transport = new FakeTransport();
      const session = new LightSession(transport, 'server', { protocol: 'multiplex', keepAliveInterval: 0 });
      const accepting = session.accept();
      // open, data, close: the original's whole request, then the session's end, all in one task
      transport.feed(
        Buffer.concat([multiplexFrame(3, 1), multiplexFrame(3, 0, Buffer.from('request')), multiplexFrame(3, 2)]),
      );
      if (ending === 'close()') void session.close({ timeout: 200 }).catch(() => {});
      else transport.peerEnd();
      const channel = await within(accepting, 2000, `${ending}: the accept()`);
      const chunks: Buffer[] = [];
      for await (const chunk of channel) chunks.push(Buffer.from(chunk));
      assert.equal(Buffer.concat(chunks).toString(), 'request', ending);
      session.destroy();
    }
  });

  test('a burst of SYNs in one read goes to as many waiting accept() calls, none refused for the accept backlog', async () => {
    const transport = new FakeTransport();
    const session = new LightSession(transport, 'server', { keepAliveInterval: 0, acceptBacklog: 2 });
    const accepting = Array.from({ length: 8 }, () => session.accept());
    transport.feed(
      Buffer.concat(Array.from({ length: 8 }, (_, i) => frame(FrameType.data, Flag.syn, 1 + 2 * i, Buffer.from('x')))),
    );
    const ids = (await Promise.all(accepting)).map((channel) => channel.id);
    assert.deepEqual(ids, [1, 3, 5, 7, 9, 11, 13, 15]);
    await new Promise((resolve) => setImmediate(resolve));
    const resets = parseFrames(transport.output()).filter((f) => (f.flags & Flag.rst) !== 0);
    assert.equal(resets.length, 0);
    session.destroy();
  });

  test('pending accepts settle when the session closes; iteration ends cleanly', async () => {
    const pair = await sessionPair();
    const pending = pair.server.accept();
    const iterated: Channel[] = [];
    const iteration = (async () => {
      for await (const c of pair.client) iterated.push(c);
    })();
    // The pending accept() rejects as close() starts, long before the close completes (the peer must answer
    // the Go Away's ping first): handle it from the start, as an application's accept loop does.
    const rejected = assert.rejects(pending, SessionClosedError);
    await pair.server.close();
    await rejected;
    await iteration;
    assert.equal(iterated.length, 0);
  });
});

describe('go away and close', () => {
  test('goAway(): the peer gets Go Away, queued and new inbound channels are refused, accept() ends; this side still dials and open channels carry on (users-asks row 11)', async () => {
    const records: LogRecord[] = [];
    const pair = await sessionPair({ server: { logger: (record) => records.push(record) } });
    const { client, server } = pair;
    echo(client);
    const goaway = once(client, 'goaway');
    // Two channels the server took, and a third still waiting in its accept queue.
    const [first, second] = [client.dial(), client.dial()];
    first.write('first');
    second.write('second');
    const firstAtServer = await server.accept();
    const secondAtServer = await server.accept();
    assert.deepEqual([firstAtServer.id, secondAtServer.id], [first.id, second.id]);
    const third = client.dial();
    third.on('error', () => {});
    third.write('third');
    await until(() => server.stats().inboundChannels === 3, 2000, 'the third channel queued at the server');

    assert.equal(client.peerGoAwayCode, undefined);
    server.goAway();
    server.goAway(); // a second call does nothing
    assert.deepEqual(await goaway, [GoAwayCode.normal]);
    assert.equal(client.peerGoAwayCode, GoAwayCode.normal, "a pool's test: the peer takes no new channels");
    assert.equal(client.state, 'open');
    assert.equal(server.peerGoAwayCode, undefined, "its own Go Away is not the peer's");
    const [refused] = (await once(third, 'error')) as [Error];
    assert.ok(refused instanceof ChannelRefusedError, String(refused));
    await assert.rejects(server.accept(), (e) => e instanceof SessionClosedError && e.message.includes('goAway()'));
    assert.throws(() => client.dial(), GoAwayError, "the peer's dials throw once its Go Away arrived");
    assert.equal(server.state, 'open');
    assert.equal(server.stats().refusalsOut, 1);

    // This side still dials, and the channels opened before carry data both ways.
    const pushed = server.dial();
    pushed.end('pushed after goAway()');
    assert.equal((await readAll(pushed)).toString(), 'pushed after goAway()');
    firstAtServer.end('reply');
    first.end();
    assert.equal((await readAll(first)).toString(), 'reply');
    assert.equal((await readAll(firstAtServer)).toString(), 'first');

    // close() later ends cleanly once the rest is done, without a second Go Away.
    const closing = server.close({ timeout: 2000 });
    secondAtServer.resume();
    secondAtServer.end();
    second.end();
    await closing;
    assert.equal(records.filter((r) => r.event === 'goaway-sent').length, 1);
    await pair.close();
  });

  test("a peer whose close() ran out of time: this side's open channels fail with a TransportClosedError that names the peer's Go Away, not a plain lost connection", async () => {
    // (Over TCP: the peer's end arrives as its FIN. A transport that only closes, as the memory pipe does, may be
    // this side's own doing, and is said with the Go Away named but not blamed.)
    const pair = await sessionPair({ transport: 'tcp' });
    const { client, server } = pair;
    const channel = client.dial();
    channel.write('a request the server never answers');
    await server.accept();
    const failed = once(channel, 'error') as Promise<[Error]>;
    await server.close({ timeout: 100 }).catch(() => {});
    const [error] = await failed;
    assert.ok(error instanceof TransportClosedError, String(error));
    // Its FIN, mostly: "the peer ended the connection after its Go Away, ..."; or, when this side wrote after the
    // peer's socket closed, the kernel's reset: "the transport failed: write ECONNRESET (after the peer's Go Away, ...)".
    assert.match(error.message, /after (its|the peer's) Go Away, with channels still open/);
    assert.equal(client.peerGoAwayCode, GoAwayCode.normal);
    await pair.close();
  });

  test('goAway(): an accept() already waiting rejects with its error; a channel whose SYN crosses the Go Away is refused', async () => {
    const [a, b] = memoryPipe(20);
    const client = multiplexedClient(a, { keepAliveInterval: 0 });
    const server = multiplexedServer(b, { keepAliveInterval: 0 });
    const waiting = server.accept();
    const crossing = client.dial();
    crossing.write('sent before the Go Away arrived');
    server.goAway(); // in the same tick: the SYN is still on its way
    await assert.rejects(waiting, (e) => e instanceof SessionClosedError && e.message.includes('goAway()'));
    const [refused] = (await once(crossing, 'error')) as [Error];
    assert.ok(refused instanceof ChannelRefusedError, String(refused));
    assert.equal(server.stats().refusalsOut, 1);
    assert.equal(server.channelCount, 0);
    client.destroy();
    server.destroy();
  });

  for (const closer of ['client', 'server'] as const) {
    test(`graceful close from the ${closer}: Go Away, open channels finish, then both sessions close`, async () => {
      const pair = await sessionPair({ transport: 'tcp' });
      const [closing, other] = closer === 'client' ? [pair.client, pair.server] : [pair.server, pair.client];
      const inboundP = other.accept();
      const channel = closing.dial();
      channel.write('before close');
      const inbound = await inboundP;
      const goaway = new Promise<number>((resolve) => other.once('goaway', resolve));
      const closed = closing.close();
      const code = await goaway;
      assert.equal(code, 0);
      assert.throws(() => other.dial(), GoAwayError);
      assert.throws(() => closing.dial(), SessionClosedError);
      // The open channel still works both ways.
      const fromCloser = readAll(inbound);
      channel.end(' and after');
      assert.equal((await fromCloser).toString(), 'before close and after');
      const toCloser = readAll(channel);
      inbound.end('reply');
      assert.equal((await toCloser).toString(), 'reply');
      await closed;
      await other.closed;
      assert.equal(closing.state, 'closed');
      assert.equal(other.state, 'closed');
      assert.equal(closing.closeError, undefined);
      assert.equal(other.closeError, undefined);
    });
  }

  test('close() times out: remaining channels fail with ERR_MUX_CLOSE_TIMEOUT', async () => {
    const pair = await sessionPair();
    const channel = pair.client.dial();
    channel.write('x');
    await pair.server.accept();
    const error = once(channel, 'error');
    await pair.client.close({ timeout: 50 });
    const [e] = (await error) as [MuxError];
    assert.equal(e.code, 'ERR_MUX_CLOSE_TIMEOUT');
    await assert.rejects(pair.client.closed, { code: 'ERR_MUX_CLOSE_TIMEOUT' });
    await pair.close();
  });

  test("close({ timeout }) is checked as the closeTimeout option is, and rejects as every call that returns a promise: TypeError for a non-number, RangeError past a timer's reach (Infinity would fire after 1 ms), the session left open", async () => {
    const pair = await sessionPair();
    await assert.rejects(pair.client.close({ timeout: '50' as never }), TypeError);
    for (const timeout of [-1, 1.5, Infinity, 2 ** 31])
      await assert.rejects(pair.client.close({ timeout }), RangeError);
    assert.equal(pair.client.state, 'open');
    // A LightSession's close() and one on a session that already ended say so too.
    const light = new LightSession(new FakeTransport(), 'client', { keepAliveInterval: 0 });
    await assert.rejects(light.close({ timeout: -1 }), RangeError);
    light.destroy();
    await assert.rejects(light.close({ timeout: -1 }), RangeError);
    await pair.close();
  });

  test('destroy() fails every channel and pending accept', async () => {
    const pair = await sessionPair();
    const channel = pair.client.dial();
    const error = once(channel, 'error');
    const accepting = pair.client.accept();
    const boom = new Error('boom');
    pair.client.destroy(boom);
    assert.equal((await error)[0], boom);
    await assert.rejects(accepting, /boom/);
    await assert.rejects(pair.client.closed, /boom/);
    await pair.close();
  });

  test('close({ signal }): an abort ends the wait, resets the channels still open with its reason and rejects that call; other close() calls resolve; the listener goes', async () => {
    const pair = await sessionPair();
    const channel = pair.client.dial();
    channel.write('x');
    await pair.server.accept();
    const failure = once(channel, 'error');
    const controller = new AbortController();
    const reason = new Error('no more waiting');
    const closing = pair.client.close({ signal: controller.signal });
    const plain = pair.client.close();
    assert.equal(getEventListeners(controller.signal, 'abort').length, 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(pair.client.state, 'closing', 'the open channel holds the close');
    controller.abort(reason);
    await assert.rejects(closing, (error) => error === reason);
    await plain;
    assert.equal((await failure)[0], reason);
    await assert.rejects(pair.client.closed, (error) => error === reason);
    assert.equal(pair.client.state, 'closed');
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
    await pair.close();
  });

  test("an abort reason that is not an Error (abort('gone'), abort(42)) reaches failure, 'error', closeError and closed as a typed Error that says it", async () => {
    const pair = await sessionPair({ transport: 'tcp' });
    try {
      const dialAbort = new AbortController();
      const dialled = pair.client.dial({ signal: dialAbort.signal });
      const failed = once(dialled, 'error');
      dialAbort.abort('gone');
      const [error] = (await failed) as [MuxError];
      assert.ok(error instanceof ChannelResetError, String(error));
      assert.equal(error.code, 'ERR_MUX_CHANNEL_ABORTED');
      assert.match(error.message, /gone/);
      assert.equal(dialled.failure, error);
      const channel = pair.client.dial();
      channel.write('x');
      channel.on('error', () => {});
      await pair.server.accept();
      const controller = new AbortController();
      const closing = pair.client.close({ signal: controller.signal });
      const closeEvent = new Promise<unknown>((resolve) => pair.client.once('close', resolve));
      controller.abort(42);
      await assert.rejects(
        closing,
        (reason) => reason === 42,
        'the call itself rejects with the reason, as fetch() does',
      );
      const closeError = pair.client.closeError;
      assert.ok(closeError instanceof SessionClosedError, String(closeError));
      assert.match(closeError.message, /42/);
      assert.equal(await closeEvent, closeError);
      await assert.rejects(pair.client.closed, (error) => error === closeError);
      assert.ok(channel.failure instanceof Error);
    } finally {
      await pair.close();
    }
    // A reason that cannot become a string at all.
    const odd = await sessionPair({ transport: 'tcp' });
    try {
      const controller = new AbortController();
      const channel = odd.client.dial({ signal: controller.signal });
      const failed = once(channel, 'error');
      controller.abort(Object.create(null));
      const [error] = (await failed) as [MuxError];
      assert.equal(error.code, 'ERR_MUX_CHANNEL_ABORTED');
      assert.match(error.message, /\[object Object\]/);
      const closing = new AbortController();
      const closed = odd.client.close({ signal: closing.signal }).catch((reason: unknown) => reason);
      closing.abort(Object.create(null));
      await within(closed, 2000, 'close() to settle');
      assert.equal(odd.client.state, 'closed');
    } finally {
      await odd.close();
    }
    // Nor even a type tag (a getter that throws).
    const hostile = await sessionPair({ transport: 'tcp' });
    try {
      const reason = Object.create(null) as object;
      Object.defineProperty(reason, Symbol.toStringTag, {
        get() {
          throw new Error('no tag');
        },
      });
      const controller = new AbortController();
      const channel = hostile.client.dial({ signal: controller.signal });
      const failed = once(channel, 'error');
      controller.abort(reason);
      const [error] = (await failed) as [MuxError];
      assert.equal(error.code, 'ERR_MUX_CHANNEL_ABORTED');
    } finally {
      await hostile.close();
    }
    // A light channel's dial.
    const [a, b] = await tcpPair();
    const client = lightClient(a, { keepAliveInterval: 0 });
    const server = lightServer(b, { keepAliveInterval: 0 });
    try {
      const controller = new AbortController();
      const channel = client.dial({ signal: controller.signal });
      const failed = new Promise<unknown>((resolve) => channel.on('error', resolve));
      controller.abort('nope');
      const error = (await failed) as MuxError;
      assert.ok(error instanceof ChannelResetError, String(error));
      assert.equal(error.code, 'ERR_MUX_CHANNEL_ABORTED');
    } finally {
      client.destroy();
      server.destroy();
      a.destroy();
      b.destroy();
    }
  });

  test('close({ signal }) that completes before an abort resolves and leaves no listener; an aborted signal destroys at once', async () => {
    const pair = await sessionPair();
    const controller = new AbortController();
    await pair.client.close({ signal: controller.signal });
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
    controller.abort();
    assert.equal(pair.client.closeError, undefined, 'a later abort changes nothing');

    const other = await sessionPair();
    const channel = other.client.dial();
    const failure = once(channel, 'error');
    const reason = new Error('aborted before');
    await assert.rejects(other.client.close({ signal: AbortSignal.abort(reason) }), (error) => error === reason);
    assert.equal(other.client.state, 'closed');
    assert.equal((await failure)[0], reason);
    await pair.close();
    await other.close();
  });

  test('close event fires once with undefined on a clean close', async () => {
    const pair = await sessionPair();
    const events: unknown[] = [];
    pair.client.on('close', (e) => events.push(e));
    await pair.client.close();
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(events, [undefined]);
    await pair.close();
  });
});

test("the session's own pings do not keep the process alive; a ping() the application waits on does", async () => {
  // A peer that takes the connection and never answers; the child's socket is unref'd, so only timers can hold it.
  const silent = net.createServer((socket) => socket.on('data', () => {}));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as net.AddressInfo).port;
  const entry = new URL('../src/index.js', import.meta.url).href;
  /** Runs a child that connects and unrefs its socket; resolves to how long it lived (ms) and what it printed. */
  const lifetime = (userPing: boolean): Promise<{ ms: number; out: string }> => {
    const code = `
      import net from 'node:net';
      import { multiplexedClient } from ${JSON.stringify(entry)};
      const socket = net.connect(${port}, '127.0.0.1', () => {
        socket.unref();
        const session = multiplexedClient(socket, { keepAliveInterval: 30000, keepAliveTimeout: 2000 });
        if (${userPing}) session.ping().catch((e) => console.log(e.code));
      });`;
    const started = performance.now();
    return new Promise((resolve, reject) =>
      execFile(process.execPath, ['--input-type=module', '-e', code], { timeout: 20_000 }, (error, stdout) =>
        error === null
          ? resolve({ ms: performance.now() - started, out: stdout.trim() })
          : reject(new Error(error.message)),
      ),
    );
  };
  try {
    const [quiet, waiting] = await Promise.all([lifetime(false), lifetime(true)]);
    assert.ok(quiet.ms < waiting.ms - 1000, `the opening ping held the process ${Math.round(quiet.ms)} ms`);
    assert.equal(quiet.out, '');
    assert.equal(waiting.out, 'ERR_MUX_KEEPALIVE_TIMEOUT', 'ping() kept the process alive to its deadline');
  } finally {
    silent.close();
  }
});

test('ping resolves to the round-trip time', async () => {
  const pair = await sessionPair({ delayMs: 5 });
  const rtt = await pair.client.ping();
  assert.ok(rtt >= 9 && rtt < 1000, `rtt ${rtt}`);
  assert.equal(pair.client.rtt, rtt);
  await pair.close();
});

test('a ping answered while reading was paused reports the round-trip time, not the pause', async () => {
  // The server stops reading at its memory bound; the answer to its ping then waits unread for ~600 ms. Counted
  // from the ping's departure, that wait would be reported as the RTT (and would size auto-tuned windows).
  const pair = await sessionPair({ delayMs: 5, server: { maxSessionBuffered: 262144 } });
  await pair.server.ping();
  const inboundP = pair.server.accept();
  pair.client.dial().end(pseudoRandomBytes(262144, 11));
  const inbound = await inboundP;
  await until(() => pair.server.bufferedBytes >= 262144, 2000, 'the server at its memory bound');
  const rttP = pair.server.ping();
  await new Promise((resolve) => setTimeout(resolve, 600));
  const read = readAll(inbound);
  const rtt = await rttP;
  assert.equal((await read).length, 262144);
  assert.ok(rtt >= 9 && rtt < 400, `ping() after the pause: ${rtt} ms`);
  assert.equal(pair.server.rtt, rtt);
  await pair.close();
});

test("a paused session's probe measures the round-trip time, not the time since its ping first left", async () => {
  // Paused at its memory bound and never read again, the server reads only when it probes (every half
  // keepAliveTimeout): the ping sent while paused goes again with the probe, so its answer is an RTT.
  const pair = await sessionPair({ delayMs: 5, server: { maxSessionBuffered: 262144, keepAliveTimeout: 1200 } });
  await pair.server.ping();
  const inboundP = pair.server.accept();
  pair.client.dial().write(pseudoRandomBytes(262144, 12));
  await inboundP;
  await until(() => pair.server.bufferedBytes >= 262144, 2000, 'the server at its memory bound');
  const rtt = await pair.server.ping();
  assert.ok(rtt >= 9 && rtt < 300, `ping() answered at the probe: ${rtt} ms`);
  assert.equal(pair.server.state, 'open');
  await pair.close();
});

test('a slow consumer of many small messages stays reachable: its probes read them on, and neither side takes the other for dead', async () => {
  // 16 channels of 100-byte messages, not read for 3 s, past a 1 MiB bound: each unread chunk costs 224 bytes
  // besides its own, so the probes must read well past a quarter of the bound to reach the peer's pings.
  const [a, b] = await tcpPair();
  const keepAlive = { keepAliveInterval: 200, keepAliveTimeout: 1000 };
  const client = lightClient(a, keepAlive);
  const server = lightServer(b, { ...keepAlive, maxSessionBuffered: 1 << 20 });
  try {
    const held: LightChannel[] = [];
    server.on('channel', (channel) => {
      channel.pause();
      held.push(channel);
    });
    const channels = Array.from({ length: 16 }, () => client.dial());
    const message = new Uint8Array(100).fill(7);
    for (let round = 0; round < 500; round++) {
      for (const channel of channels) channel.write(message); // 8,000 messages in all
      await new Promise((resolve) => setImmediate(resolve));
    }
    await new Promise((resolve) => setTimeout(resolve, 3000));
    assert.equal(client.state, 'open', `client: ${client.closeError?.message}`);
    assert.equal(server.state, 'open', `server: ${server.closeError?.message}`);
    let read = 0;
    for (const channel of held) {
      channel.on('data', (chunk: Uint8Array) => (read += chunk.length));
      channel.resume();
    }
    await until(() => read === 800_000, 5000, 'every message read');
  } finally {
    client.destroy();
    server.destroy();
  }
});

describe('a session that fails after the peer ended its channel (users-asks row 26)', () => {
  /** A client channel whose peer sends `data` with its FIN, then cuts the connection; read once the session failed. */
  async function sentThenCut(data: Buffer): Promise<{ channel: Channel; close: () => Promise<void> }> {
    const pair = await sessionPair({ transport: 'tcp' });
    pair.server.on('channel', (inbound) => {
      inbound.on('error', () => {});
      inbound.end(data, () => setTimeout(() => pair.server.destroy(), 20));
    });
    const channel = pair.client.dial();
    channel.write('request, and this side keeps writing open');
    channel.pause();
    await until(() => pair.client.state === 'closed', 5000, 'the client session to fail');
    return { channel, close: () => pair.close() };
  }

  test("what the peer sent before its FIN is read whole, then 'end', then the session's error", async () => {
    const data = pseudoRandomBytes(200 * 1024, 26);
    const { channel, close } = await sentThenCut(data);
    try {
      assert.equal(channel.destroyed, false, 'the channel waits to be read');
      assert.equal((channel.failure as MuxError | undefined)?.code, 'ERR_MUX_TRANSPORT_CLOSED');
      const events: string[] = [];
      channel.on('end', () => events.push('end'));
      const failed = once(channel, 'error');
      const read = readAll(channel);
      channel.resume(); // paused by hand above, so a 'data' listener alone does not start it
      assert.ok((await read).equals(data), 'every byte, in order');
      const [error] = (await failed) as [MuxError];
      events.push('error');
      assert.equal(error.code, 'ERR_MUX_TRANSPORT_CLOSED');
      assert.deepEqual(events, ['end', 'error']);
      await until(() => channel.destroyed, 1000, 'the channel to close');
    } finally {
      await close();
    }
  });

  test("a consumer that listens for 'error' only until 'end' (events.once, readline) reads it all, and no 'error' comes unheard", async () => {
    for (const consumer of ['events.once', 'readline'] as const) {
      const { channel, close } = await sentThenCut(Buffer.from('hello\nworld\n'));
      const uncaught: unknown[] = [];
      const onUncaught = (error: unknown): number => uncaught.push(error);
      process.on('uncaughtException', onUncaught);
      try {
        assert.equal(channel.listenerCount('error'), 0, 'attached only after the failure');
        if (consumer === 'events.once') {
          let bytes = 0;
          channel.on('data', (chunk: Buffer) => (bytes += chunk.length));
          channel.resume();
          await within(once(channel, 'end'), 2000, "'end'"); // listens for 'error' too, until 'end'
          assert.equal(bytes, 12);
        } else {
          const lines: string[] = [];
          const reader = readline.createInterface({ input: channel });
          reader.on('line', (line) => lines.push(line));
          await within(once(reader, 'close'), 2000, "readline's close"); // lets go of the channel at 'end'
          assert.deepEqual(lines, ['hello', 'world']);
        }
        await until(() => channel.destroyed, 1000, `${consumer}: the channel to close`);
        await new Promise((resolve) => setTimeout(resolve, 20));
        assert.deepEqual(uncaught, [], `${consumer}: no 'error' emitted to a channel nobody listens on`);
        assert.equal((channel.failure as MuxError | undefined)?.code, 'ERR_MUX_TRANSPORT_CLOSED', 'still reported');
      } finally {
        process.off('uncaughtException', onUncaught);
        await close();
      }
    }
  });

  test('without an error listener it closes quietly once read; end() before reading waits and fails with it, a write is taken at once and goes nowhere', async () => {
    const data = pseudoRandomBytes(64 * 1024, 27);
    const first = await sentThenCut(data);
    try {
      const chunks: Buffer[] = [];
      first.channel.on('data', (chunk: Buffer) => chunks.push(chunk));
      first.channel.resume();
      // (not `events.once`, which listens for 'error' too)
      await new Promise((resolve) => first.channel.on('close', resolve));
      assert.equal(first.channel.listenerCount('error'), 0);
      assert.ok(Buffer.concat(chunks).equals(data));
    } finally {
      await first.close();
    }
    for (const before of ['end', 'closeWrite', 'write'] as const) {
      // README's own order (end the writing side, then read): what the peer sent is still read whole.
      const second = await sentThenCut(data);
      try {
        const failed = once(second.channel, 'error');
        let callbackError: Error | null | undefined;
        const called = new Promise<void>((resolve) => {
          const done = (error?: Error | null): void => {
            callbackError = error;
            resolve();
          };
          if (before === 'end') second.channel.end(done);
          else if (before === 'write') second.channel.write('more', done);
          else {
            second.channel.closeWrite();
            resolve();
          }
        });
        await new Promise((resolve) => setTimeout(resolve, 20));
        assert.equal(second.channel.destroyed, false, `${before}() left the channel to be read`);
        const read = readAll(second.channel);
        second.channel.resume();
        assert.ok((await read).equals(data), `${before}(): every byte, in order`);
        assert.equal(((await failed)[0] as MuxError).code, 'ERR_MUX_TRANSPORT_CLOSED');
        await called;
        if (before === 'end') assert.equal((callbackError as MuxError | undefined)?.code, 'ERR_MUX_TRANSPORT_CLOSED');
        // A write is taken at once (its bytes go nowhere, as a socket's taken before a reset): one left waiting
        // held an echo at its high-water mark for a 'drain' that never came (see the next test).
        if (before === 'write') assert.equal(callbackError ?? null, null);
        assert.equal(second.channel.destroyed, true);
      } finally {
        await second.close();
      }
    }
  });

  test('an echo (pipe, pipeline) of a channel kept with 400 small chunks unread reads them all and gets the error: its writes never hold it at the high-water mark', async () => {
    for (const how of ['pipe', 'pipeline'] as const) {
      for (const fin of [true, false]) {
        const pair = await sessionPair({ transport: 'tcp' });
        try {
          const sent = new Promise<void>((resolve) => {
            pair.server.on('channel', (inbound) => {
              inbound.on('error', () => {});
              void (async () => {
                // One small frame per turn: each arrives as a chunk of its own.
                for (let i = 0; i < 400; i++) {
                  inbound.write(Buffer.alloc(10, i));
                  await new Promise((next) => setTimeout(next, 0));
                }
                if (fin) inbound.end();
                await until(() => inbound.writableLength === 0, 5000, 'the chunks sent');
                setTimeout(resolve, 50);
              })();
            });
          });
          const channel = pair.client.dial();
          channel.write('request');
          channel.pause();
          await sent;
          await until(() => channel.readableLength === 4000, 5000, 'every chunk here');
          pair.server.destroy(); // the client's session fails under the channel
          await until(() => pair.client.state === 'closed', 5000, 'the client session to fail');
          let errorCode: string | undefined;
          channel.on('error', (error: MuxError) => (errorCode = error.code));
          let echoed = 0;
          const write = channel.write.bind(channel);
          channel.write = (chunk: Buffer, ...rest: never[]) => {
            echoed += chunk.length;
            return write(chunk, ...rest);
          };
          if (how === 'pipe') channel.pipe(channel);
          else streamPipeline(channel, channel, () => {});
          await until(() => channel.destroyed, 3000, `${how}, FIN ${fin}: the channel to fail once read`);
          assert.equal(echoed, 4000, `${how}, FIN ${fin}: every chunk read and echoed`);
          assert.equal(errorCode, 'ERR_MUX_TRANSPORT_CLOSED');
        } finally {
          await pair.close();
        }
      }
    }
  });

  test("a writer that does not read a kept channel gives the event loop its turns (its writes' callbacks come a turn later), and reading brings the data, then the error", async () => {
    const data = pseudoRandomBytes(200 * 1024, 31);
    const { channel, close } = await sentThenCut(data);
    try {
      const piece = Buffer.alloc(16 * 1024, 7);
      let taken = 0;
      let timersRan = 0;
      const ticker = setInterval(() => timersRan++, 10);
      const writing = (async () => {
        const started = performance.now();
        while (!channel.destroyed && performance.now() - started < 300) {
          if (channel.write(piece, () => (taken += piece.length))) continue;
          await Promise.race([once(channel, 'drain'), new Promise((resolve) => setTimeout(resolve, 300))]);
        }
      })();
      await writing;
      clearInterval(ticker);
      assert.ok(timersRan >= 10, `the event loop went on (${timersRan} timer ticks in 300 ms)`);
      assert.ok(taken > 0, 'the writes were taken (they go nowhere)');
      // Reading makes room: the held write is let go; then the data is read to its end and the error follows.
      const failed = once(channel, 'error');
      const read = readAll(channel);
      channel.resume();
      assert.ok((await read).equals(data), 'every byte, in order');
      assert.equal(((await failed)[0] as MuxError).code, 'ERR_MUX_TRANSPORT_CLOSED');
    } finally {
      await close();
    }
  });

  test('a reader of a kept channel that answers each chunk with ten times its bytes, pausing for drain, and one that echoes UTF-8 text read as characters, both read to the error', async () => {
    for (const how of ['reply-10x', 'utf8-echo'] as const) {
      const data = Buffer.from('€'.repeat(20_000)); // 60,000 bytes, 20,000 characters
      const { channel, close } = await sentThenCut(data);
      try {
        let errorCode: string | undefined;
        channel.on('error', (error: MuxError) => (errorCode = error.code));
        let read = 0;
        if (how === 'utf8-echo') channel.setEncoding('utf8');
        channel.on('data', (chunk: Buffer | string) => {
          read += Buffer.byteLength(chunk);
          const answer = how === 'reply-10x' ? Buffer.alloc(10 * chunk.length, 1) : chunk;
          if (!channel.write(answer)) {
            channel.pause();
            channel.once('drain', () => channel.resume());
          }
        });
        channel.resume();
        await until(() => channel.destroyed, 3000, `${how}: the channel to fail once read`);
        assert.equal(read, data.length, `${how}: every byte read`);
        assert.equal(errorCode, 'ERR_MUX_TRANSPORT_CLOSED');
      } finally {
        await close();
      }
    }
  });

  test("a channel whose peer had not ended keeps what arrived: it is read, then the error comes instead of 'end'", async () => {
    const pair = await sessionPair({ transport: 'tcp' });
    const data = pseudoRandomBytes(64 * 1024, 29);
    try {
      pair.server.on('channel', (inbound) => {
        inbound.on('error', () => {});
        inbound.write(data, () => setTimeout(() => pair.server.destroy(), 20));
      });
      const channel = pair.client.dial();
      channel.write('request');
      channel.pause();
      await until(() => pair.client.state === 'closed', 5000, 'the client session to fail');
      assert.equal(channel.destroyed, false, 'kept to be read');
      assert.equal((channel.failure as MuxError | undefined)?.code, 'ERR_MUX_TRANSPORT_CLOSED');
      const chunks: Buffer[] = [];
      let ended = false;
      channel.on('data', (chunk: Buffer) => chunks.push(chunk));
      channel.on('end', () => (ended = true));
      const failed = once(channel, 'error');
      channel.resume(); // paused by hand above
      const [error] = (await failed) as [MuxError];
      assert.equal(error.code, 'ERR_MUX_TRANSPORT_CLOSED');
      assert.ok(Buffer.concat(chunks).equals(data), 'every byte that arrived, in order, before the error');
      assert.equal(ended, false, "no 'end': the data may be cut short");
      assert.equal(channel.destroyed, true);
    } finally {
      await pair.close();
    }
  });

  test('kept without a FIN: a reader of fixed-size records gets the error when what is left is too short; data unshifted is kept', async () => {
    for (const mode of ['records', 'unshift'] as const) {
      const pair = await sessionPair({ transport: 'tcp' });
      try {
        pair.server.on('channel', (inbound) => {
          inbound.on('error', () => {});
          inbound.write(Buffer.from('abcdef'), () => setTimeout(() => pair.server.destroy(), 20));
        });
        const channel = pair.client.dial();
        channel.write('request');
        channel.pause();
        await until(() => pair.client.state === 'closed', 5000, 'the client session to fail');
        const failed = once(channel, 'error');
        const got: string[] = [];
        if (mode === 'records') {
          // read(4) in paused mode: 'abcd', then 2 bytes that no record can complete.
          const take = (): void => {
            for (
              let record = channel.read(4) as Buffer | null;
              record !== null;
              record = channel.read(4) as Buffer | null
            )
              got.push(record.toString());
          };
          channel.on('readable', take);
          take();
        } else {
          // A parser takes the whole chunk, keeps 2 bytes and gives the rest back; it reads that later.
          const chunk = channel.read() as Buffer;
          got.push(chunk.subarray(0, 2).toString());
          channel.unshift(chunk.subarray(2));
          await new Promise((resolve) => setTimeout(resolve, 20));
          assert.equal(channel.destroyed, false, 'the unshifted bytes are still there to read');
          got.push((channel.read() as Buffer).toString());
        }
        const [error] = (await failed) as [MuxError];
        assert.equal(error.code, 'ERR_MUX_TRANSPORT_CLOSED');
        assert.deepEqual(got, mode === 'records' ? ['abcd'] : ['ab', 'cdef']);
      } finally {
        await pair.close();
      }
    }
  });

  test('a channel that had nothing unread when its session failed fails at once', async () => {
    const pair = await sessionPair({ transport: 'tcp' });
    try {
      pair.server.on('channel', (inbound) => {
        inbound.on('error', () => {});
        inbound.resume();
        setTimeout(() => pair.server.destroy(), 20);
      });
      const channel = pair.client.dial();
      channel.on('error', () => {});
      channel.write('request');
      await until(() => pair.client.state === 'closed', 5000, 'the client session to fail');
      assert.equal(channel.destroyed, true);
    } finally {
      await pair.close();
    }
  });
});

test('ping({ signal }): an abort rejects with its reason while the answer is awaited; a settled ping leaves no listener; an aborted signal sends no ping', async () => {
  const [ours, theirs] = await tcpPair();
  const client = multiplexedClient(ours, { keepAliveInterval: 0 });
  const peer = new RawPeer(theirs, false);
  try {
    // The opening ping goes unanswered too: wait for it, then count.
    await until(() => peer.frames.some((f) => f.type === FrameType.ping), 1000, 'the opening ping');
    const pings = (): number => peer.frames.filter((f) => f.type === FrameType.ping).length;
    const before = pings();
    const reason = new Error('ping abandoned');
    await assert.rejects(client.ping({ signal: AbortSignal.abort(reason) }), (error) => error === reason);
    const controller = new AbortController();
    const pending = client.ping({ signal: controller.signal });
    assert.equal(getEventListeners(controller.signal, 'abort').length, 1);
    controller.abort(reason);
    await assert.rejects(pending, (error) => error === reason);
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(pings(), before, 'no ping of its own: the one in flight is shared');
    assert.equal(client.state, 'open', 'an abandoned ping leaves the session as it was');
  } finally {
    client.destroy();
    ours.destroy();
    theirs.destroy();
  }
  const pair = await sessionPair();
  const controller = new AbortController();
  const rtt = await pair.client.ping({ signal: controller.signal });
  assert.ok(rtt >= 0);
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0, 'the listener went with the answer');
  await pair.close();
});

test('the transport destroyed mid-transfer: every channel errors promptly with TransportClosedError', async () => {
  const [a, b] = await tcpPair();
  const client = multiplexedClient(a, { keepAliveInterval: 0 });
  const server = multiplexedServer(b, { keepAliveInterval: 0 });
  server.on('channel', (c) => c.resume());
  const channels = [1, 2, 3].map(() => client.dial());
  const errors = channels.map((c) => once(c, 'error').then(([e]) => e as Error));
  for (const c of channels) c.write(pseudoRandomBytes(4 * 1024 * 1024, 1));
  await until(() => server.channelCount === 3, 2000, 'channels open');
  b.destroy();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settled = await Promise.race([
    Promise.all(errors),
    new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), 1000))),
  ]);
  clearTimeout(timer);
  assert.notEqual(settled, 'timeout');
  for (const e of settled as Error[]) assert.ok(e instanceof TransportClosedError, String(e));
  await assert.rejects(client.closed, TransportClosedError);
});

test('pipeline() works end to end through a channel', async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  pair.server.on('channel', (c) => {
    pipeline(c, c).catch(() => {});
  });
  const channel = pair.client.dial();
  const payload = pseudoRandomBytes(1_000_000, 77);
  const reply = readAll(channel);
  await pipeline(async function* () {
    for (let i = 0; i < payload.length; i += 65536) yield payload.subarray(i, i + 65536);
  }, channel);
  assert.equal(sha(await reply), sha(payload));
  await pair.close();
});

test('frames queued in one tick leave in one transport write', async () => {
  const [a, b] = memoryPipe();
  const client = multiplexedClient(a, { keepAliveInterval: 0 });
  const server = multiplexedServer(b, { keepAliveInterval: 0 });
  server.on('channel', () => {});
  await new Promise((resolve) => setTimeout(resolve, 5));
  // Each write of the client's end of the pipe reaches the other end as one chunk. The frames of the first
  // write are counted, not the writes made over some milliseconds: on a busy machine those also held the
  // sessions' RTT probes and their answers.
  const writes: Buffer[] = [];
  b.on('data', (chunk: Buffer) => writes.push(chunk));
  for (let i = 0; i < 100; i++) client.dial().write('hello');
  await new Promise((resolve) => setImmediate(resolve));
  const first = parseFrames(writes[0] ?? Buffer.alloc(0));
  assert.equal(first.length, 100, 'every frame of the tick in the first write');
  assert.ok(first.every((f) => f.type === FrameType.data && (f.flags & Flag.syn) !== 0 && f.length === 5));
  client.destroy();
  server.destroy();
});

test('a closed session leaves no timer behind', async () => {
  // Most of the session's timers are unref'd, and process.getActiveResourcesInfo() does not list those: every
  // timer muxwire makes while the test runs is tracked from setTimeout() until it fires or is cleared. One
  // left behind is still pending after the close, or fires after it (most would, harmlessly: the first RTT
  // probe comes 100 ms after the opening ping's answer); either is reported.
  const realSetTimeout = globalThis.setTimeout;
  const realClearTimeout = globalThis.clearTimeout;
  const sources = new URL('../src/', import.meta.url).href;
  const pending = new Map<unknown, string>();
  const firedAfterClose: string[] = [];
  let closed = false;
  globalThis.setTimeout = ((callback: (...args: unknown[]) => void, delay?: number, ...args: unknown[]) => {
    const timer = realSetTimeout(
      (...values: unknown[]) => {
        const made = pending.get(timer);
        pending.delete(timer);
        if (closed && made !== undefined) firedAfterClose.push(made);
        callback(...values);
      },
      delay,
      ...args,
    );
    const stack = new Error().stack ?? '';
    if (stack.includes(sources)) pending.set(timer, `${delay} ms, made at ${stack.split('\n').slice(2, 5).join(' <')}`);
    return timer;
  }) as unknown as typeof setTimeout;
  globalThis.clearTimeout = (timer?: Parameters<typeof clearTimeout>[0]) => {
    pending.delete(timer);
    realClearTimeout(timer);
  };
  try {
    const options = { keepAliveInterval: 60_000 };
    const pair = await sessionPair({ client: options, server: options });
    assert.ok(pending.size > 0, 'the sessions made timers');
    await pair.client.close();
    await pair.server.closed;
    closed = true;
    await new Promise((resolve) => realSetTimeout(resolve, 150));
    assert.deepEqual([...pending.values()], [], 'timers neither fired nor cleared');
    assert.deepEqual(firedAfterClose, [], 'timers that fired after the close');
  } finally {
    globalThis.setTimeout = realSetTimeout;
    globalThis.clearTimeout = realClearTimeout;
  }
});

test('a closed session leaves no listener on its transport', async () => {
  const [a, b] = await tcpPair();
  const before = ['data', 'end', 'drain', 'close'].map((e) => a.listenerCount(e));
  const socketClosed = Promise.all([once(a, 'close'), once(b, 'close')]); // listening before the session does
  const client = multiplexedClient(a, { keepAliveInterval: 0 });
  const server = multiplexedServer(b, { keepAliveInterval: 0 });
  assert.ok(a.listenerCount('data') > before[0]!);
  await client.close();
  await server.closed;
  await socketClosed; // the session's own 'close' listener ran right after ours: it lets go of its listeners there
  assert.deepEqual(
    ['data', 'end', 'drain', 'close'].map((e) => a.listenerCount(e)),
    before,
  );
});

test('a transport reset while no channel is open ends the session cleanly; with channels it is an error', async () => {
  {
    const [a, b] = await tcpPair();
    const client = multiplexedClient(a, { keepAliveInterval: 0 });
    await new Promise((resolve) => setTimeout(resolve, 10));
    b.resetAndDestroy();
    await client.closed;
    assert.equal(client.closeError, undefined);
  }
  {
    const [a, b] = await tcpPair();
    const client = multiplexedClient(a, { keepAliveInterval: 0 });
    const server = multiplexedServer(b, { keepAliveInterval: 0 });
    const channel = client.dial();
    channel.on('error', () => {});
    channel.write('x');
    await until(() => server.channelCount === 1, 1000, 'open');
    b.resetAndDestroy();
    await assert.rejects(client.closed, TransportClosedError);
  }
});

test('a loop dialling thousands of channels sends their SYNs while it runs, not only after it', async () => {
  const [a, b] = memoryPipe();
  const writesDuringLoop: number[] = [];
  let transportWrites = 0;
  const write = a.write.bind(a);
  a.write = ((...args: Parameters<typeof a.write>) => {
    transportWrites++;
    return write(...args);
  }) as typeof a.write;
  const client = multiplexedClient(a, { keepAliveInterval: 0, ackBacklog: 5000 });
  const server = multiplexedServer(b, { keepAliveInterval: 0, acceptBacklog: 5000 });
  let accepted = 0;
  server.on('channel', (channel) => {
    accepted++;
    channel.resume();
    channel.on('end', () => channel.end());
  });
  try {
    const before = transportWrites;
    const channels = [];
    for (let i = 0; i < 2000; i++) {
      const channel = client.dial();
      channel.on('error', () => {});
      channel.resume();
      channel.end('hi');
      channels.push(channel);
      if (i % 500 === 499) writesDuringLoop.push(transportWrites - before);
    }
    // Still inside the synchronous loop's turn: no microtask has run.
    assert.ok(writesDuringLoop[0]! > 0, `no transport write before 500 dials (${writesDuringLoop.join(', ')})`);
    assert.ok(
      writesDuringLoop[3]! > writesDuringLoop[0]!,
      `writes kept going during the loop (${writesDuringLoop.join(', ')})`,
    );
    await until(() => accepted === 2000, 5000, 'every channel accepted');
    await Promise.all(channels.map((channel) => whenClosed(channel)));
  } finally {
    client.destroy();
    server.destroy();
  }
});

describe('options and entry points', () => {
  test("channelHighWaterMark is each Channel's readable and writable high-water mark", async () => {
    const pair = await sessionPair({ client: { channelHighWaterMark: 1024 } });
    try {
      const channel = pair.client.dial();
      assert.equal(channel.readableHighWaterMark, 1024);
      assert.equal(channel.writableHighWaterMark, 1024);
      assert.equal(channel.write(Buffer.alloc(1023)), true, 'under the mark');
      assert.equal(channel.write(Buffer.alloc(1)), false, 'at the mark');
      await once(channel, 'drain');
      const other = pair.server.dial();
      assert.equal(other.writableHighWaterMark, 64 * 1024, 'the default elsewhere');
    } finally {
      await pair.close();
    }
  });

  test("memoryBudget: null grows windows from the session's own bound only, reserving nothing from sharedMemoryBudget", async () => {
    // The same growth as the MemoryBudget test above (four fast readers over a 20 ms RTT), once with the
    // default budget (it must reserve, or this test proves nothing) and once with none.
    for (const memoryBudget of [undefined, null]) {
      const before = sharedMemoryBudget.reserved;
      const pair = await sessionPair({ delayMs: 10, server: memoryBudget === null ? { memoryBudget } : {} });
      try {
        await pair.server.ping();
        const inbound: Channel[] = [];
        pair.server.on('channel', (c) => inbound.push(c));
        for (let i = 0; i < 4; i++) {
          const c = pair.client.dial();
          c.on('error', () => {});
          c.write(pseudoRandomBytes(4 * 1024 * 1024, 40 + i));
        }
        await until(() => inbound.length === 4, 2000, 'four channels');
        const read = inbound.map(() => 0);
        inbound.forEach((c, i) => c.on('data', (chunk: Buffer) => (read[i]! += chunk.length)));
        await until(() => read.every((n) => n === 4 * 1024 * 1024), 5000, 'all read');
        const grown = inbound.reduce((sum, c) => sum + c.receiveWindow - 262144, 0);
        assert.ok(grown > 0, 'the windows grew');
        const reserved = sharedMemoryBudget.reserved - before;
        if (memoryBudget === null) assert.equal(reserved, 0, 'nothing reserved from the shared budget');
        else assert.equal(reserved, grown, 'the default budget holds the growth');
      } finally {
        await pair.close();
      }
    }
  });

  test('connect() to a refused port or a name that does not resolve rejects with TransportClosedError, the socket error as cause (typed as every failure)', async () => {
    const port = await refusedPort();
    // (A machine without a name server answers EAI_AGAIN for the name.)
    for (const [host, code] of [
      ['127.0.0.1', 'ECONNREFUSED'],
      ['muxwire.invalid', 'ENOTFOUND|EAI_AGAIN'],
    ] as const) {
      const error = await within(
        connect({ host, port, keepAliveInterval: 0 }).then(
          () => assert.fail('connected'),
          (e: unknown) => e,
        ),
        10_000,
        `connect() to ${host}`,
      );
      assert.ok(error instanceof TransportClosedError, String(error));
      assert.equal(error.code, 'ERR_MUX_TRANSPORT_CLOSED');
      assert.match(String((error.cause as NodeJS.ErrnoException).code), new RegExp(`^(${code})$`));
      assert.match(error.message, new RegExp(`could not connect: .*(${code})`));
    }
  });

  test('connect({ signal }): an abort before the connection is up rejects with its reason and leaves no socket or listener', async () => {
    const server = createServer((session) => session.on('channel', (channel) => channel.pipe(channel)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const baseline = resourceCounts();
    try {
      const reason = new Error('gave up');
      await assert.rejects(
        connect({ host: '127.0.0.1', port, signal: AbortSignal.abort(reason) }),
        (e) => e === reason,
      );
      // Aborted while connecting (connecting takes at least one turn of the event loop).
      const controller = new AbortController();
      const pending = connect({ host: '127.0.0.1', port, signal: controller.signal });
      controller.abort(reason);
      await assert.rejects(pending, (e) => e === reason);
      assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
      // Connected: the listener is gone, and a later abort does not touch the session.
      const later = new AbortController();
      const session = await connect({ host: '127.0.0.1', port, signal: later.signal, keepAliveInterval: 0 });
      assert.equal(getEventListeners(later.signal, 'abort').length, 0);
      later.abort();
      const channel = session.dial();
      channel.end('still here');
      assert.equal((await readAll(channel)).toString(), 'still here');
      await session.close();
      assert.deepEqual(await settleResources(baseline), {}, 'no socket left: the aborted connections were destroyed');
    } finally {
      server.close();
    }
  });

  test('a stream paused by hand is read by its session: pauseOnConnect, or paused to read a preamble first', async () => {
    const sessions: Session[] = [];
    const server = createServer({ keepAliveInterval: 0, pauseOnConnect: true }, (session) => {
      sessions.push(session);
      session.on('channel', (channel) => channel.pipe(channel));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    try {
      const session = await connect({ host: '127.0.0.1', port, keepAliveInterval: 0 });
      sessions.push(session);
      const channel = session.dial();
      channel.end('echo me');
      assert.equal((await within(readAll(channel), 2000, 'the echo (pauseOnConnect)')).toString(), 'echo me');
    } finally {
      for (const session of sessions) session.destroy();
      server.close();
    }
    // An application reads its own preamble, pauses, puts back what followed it, and hands the socket over.
    const [raw, socket] = await tcpPair();
    const client = multiplexedClient(raw, { keepAliveInterval: 0 });
    try {
      raw.write('HELLO\n');
      const first = new Promise<Buffer>((resolve) => socket.once('data', resolve));
      const preamble = await first;
      socket.pause();
      assert.ok(preamble.toString().startsWith('HELLO\n'));
      socket.unshift(preamble.subarray(6));
      const server2 = multiplexedServer(socket, { keepAliveInterval: 0 });
      server2.on('channel', (channel: Channel) => channel.pipe(channel));
      const channel = client.dial();
      channel.end('after the preamble');
      assert.equal((await within(readAll(channel), 2000, 'the echo (paused socket)')).toString(), 'after the preamble');
      server2.destroy();
    } finally {
      client.destroy();
      raw.destroy();
      socket.destroy();
    }
  });

  test("an idle session whose transport fails ends cleanly, whatever the error's class (undici says TypeError('terminated')); not this protocol at all (ProtocolError) is said", async () => {
    for (const [error, clean] of [
      [new TypeError('terminated'), true],
      [new Error('read ECONNRESET'), true],
      [new ProtocolError('the readable stream gave a string, not bytes'), false],
    ] as const) {
      const transport = new FakeTransport();
      const session = new MuxSession<ChannelClass>(
        transport,
        'client',
        { keepAliveInterval: 0 },
        (state, s) => new ChannelClass(state, s),
        FULL_PARTS,
      );
      transport.events!.error(error);
      transport.events!.close();
      if (clean) await within(session.closed, 2000, `${error.message}: a clean close`);
      else await assert.rejects(session.closed, (e) => e === error);
    }
  });

  test("a stream with a 'readable' listener (which keeps it from flowing) is refused with TypeError, not left unread", async () => {
    const [raw, socket] = await tcpPair();
    try {
      const onReadable = (): void => {};
      socket.on('readable', onReadable);
      assert.throws(() => multiplexedServer(socket, { keepAliveInterval: 0 }), TypeError);
      socket.off('readable', onReadable);
      const session = multiplexedServer(socket, { keepAliveInterval: 0 });
      session.destroy();
    } finally {
      raw.destroy();
      socket.destroy();
    }
  });

  test("muxwire's errors carry their name as an own property; a subclass of the application's has its own name", () => {
    class AppTimeout extends TimeoutError {}
    const mine = new AppTimeout('ERR_MUX_OPEN_TIMEOUT', 'late');
    assert.equal(mine.name, 'AppTimeout');
    assert.match(String(mine), /^AppTimeout: late/);
    const ours = new TimeoutError('ERR_MUX_OPEN_TIMEOUT', 'late');
    assert.equal(ours.name, 'TimeoutError');
    assert.deepEqual(JSON.parse(JSON.stringify(ours)), { code: 'ERR_MUX_OPEN_TIMEOUT', name: 'TimeoutError' });
    assert.equal(new ChannelRefusedError(3).name, 'ChannelRefusedError');
  });

  test('connect({ onread }) rejects with TypeError: Node would hand the bytes to the callback, not the session', async () => {
    const onread = { buffer: Buffer.alloc(1024), callback: () => true };
    // @ts-expect-error -- not in ConnectOptions' type either
    await assert.rejects(connect({ host: '127.0.0.1', port: 9, onread }), TypeError);
  });

  test('connect() with a bad session option rejects with RangeError before it connects', async () => {
    const sessions: Session[] = [];
    const server = createServer({ keepAliveInterval: 0 }, (session) => {
      sessions.push(session);
      session.on('channel', (channel) => channel.resume());
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    try {
      await assert.rejects(connect({ host: '127.0.0.1', port, maxStreams: 0 }), (e) => {
        assert.ok(e instanceof RangeError && e.message.includes('maxStreams'), String(e));
        return true;
      });
      // A good connection after it: the server sees it, and it is the only one it saw.
      const session = await connect({ host: '127.0.0.1', port, keepAliveInterval: 0 });
      await until(() => sessions.length >= 1, 5000, 'the good connection arrived');
      await session.close();
      assert.equal(sessions.length, 1, 'the rejected connect() made no connection');
    } finally {
      for (const session of sessions) session.destroy();
      server.close();
    }
  });

  /**
   * A client with one open channel whose raw peer acknowledges it and sends Go Away with `code`; resolves to what
   * the client's 'goaway' event reported.
   */
  async function channelThenGoAway(
    code: number,
  ): Promise<{ raw: net.Socket; client: Session; channel: Channel; reported: number }> {
    const [raw, socket] = await tcpPair();
    const client = multiplexedClient(socket, { keepAliveInterval: 0 });
    const peer = new RawPeer(raw);
    const channel = client.dial();
    channel.on('error', () => {});
    channel.write('open before');
    await until(() => peer.frames.some((f) => (f.flags & Flag.syn) !== 0), 2000, 'the SYN');
    const goaway = new Promise<number>((resolve) => client.once('goaway', resolve));
    peer.send(frame(FrameType.windowUpdate, Flag.ack, channel.id, 0), frame(FrameType.goAway, 0, 0, code));
    return { raw, client, channel, reported: await goaway };
  }

  test("Go Away code 1 from the peer: 'goaway' reports 1, dial() throws it, and the end of the transport fails open channels with it", async () => {
    const { raw, client, channel, reported } = await channelThenGoAway(GoAwayCode.protocolError);
    assert.equal(reported, 1);
    assert.throws(
      () => client.dial(),
      (e) => e instanceof GoAwayError && e.goAwayCode === 1,
    );
    raw.end();
    await assert.rejects(client.closed, (e) => e instanceof GoAwayError && e.goAwayCode === 1);
    assert.ok(channel.failure instanceof GoAwayError && channel.failure.goAwayCode === 1, String(channel.failure));
    raw.destroy();
  });

  for (const cut of ['end', 'reset'] as const) {
    test(`Go Away code 1 from the peer while this side closes with no channel open, then the peer's ${cut}: closed rejects with it`, async () => {
      const [raw, socket] = await tcpPair();
      const client = multiplexedClient(socket, { keepAliveInterval: 0 });
      const peer = new RawPeer(raw);
      const closing = client.close();
      await until(() => peer.frames.some((f) => f.type === FrameType.goAway), 2000, "the client's Go Away");
      peer.send(frame(FrameType.goAway, 0, 0, GoAwayCode.protocolError));
      if (cut === 'end') raw.end();
      else raw.resetAndDestroy();
      await assert.rejects(client.closed, (e) => e instanceof GoAwayError && e.goAwayCode === 1);
      await closing;
      assert.ok(client.closeError instanceof GoAwayError, String(client.closeError));
      raw.destroy();
    });
  }

  test('Go Away code 2 from the peer, then its reset under an open channel: the channel and the session fail with that GoAwayError', async () => {
    const { raw, client, channel, reported } = await channelThenGoAway(GoAwayCode.internalError);
    assert.equal(reported, 2);
    raw.resetAndDestroy();
    await assert.rejects(client.closed, (e) => e instanceof GoAwayError && e.goAwayCode === 2);
    assert.ok(channel.failure instanceof GoAwayError && channel.failure.goAwayCode === 2, String(channel.failure));
  });

  test('an internal error (an endpoint that throws while taking data) ends the session with ERR_MUX_INTERNAL and Go Away code 2', async () => {
    // The application cannot cause this (listeners' exceptions are not the session's); a faulty endpoint
    // stands in for a bug of muxwire's own.
    class FaultyChannel extends ChannelClass {
      override deliver(): void {
        throw new Error('endpoint bug');
      }
    }
    const transport = new FakeTransport();
    const session = new MuxSession<ChannelClass>(
      transport,
      'server',
      { keepAliveInterval: 0 },
      (state, s) => new FaultyChannel(state, s),
    );
    session.on('channel', (c) => c.on('error', () => {}));
    transport.feed(frame(FrameType.data, Flag.syn, 1, Buffer.from('data')));
    await assert.rejects(
      session.closed,
      (e) => e instanceof MuxError && e.code === 'ERR_MUX_INTERNAL' && e.message.includes('endpoint bug'),
    );
    await new Promise((resolve) => setImmediate(resolve));
    const goAway = parseFrames(transport.output()).find((f) => f.type === FrameType.goAway);
    assert.equal(goAway?.length, GoAwayCode.internalError);
    assert.equal(GoAwayCode.internalError, 2);
  });
});

describe('closing: what a review found', () => {
  /** A transport driven by hand that answers every ping muxwire sends, and never ends its own side. */
  class AnsweringTransport extends FakeTransport {
    override write(parts: Uint8Array[], done: (error?: Error | null) => void): boolean {
      const result = super.write(parts, done);
      for (const f of parseFrames(Buffer.concat(parts))) {
        if (f.type === FrameType.ping && (f.flags & Flag.syn) !== 0) {
          queueMicrotask(() => this.feed(frame(FrameType.ping, Flag.ack, 0, f.length)));
        }
      }
      return result;
    }
  }

  const lightSession = (transport: FakeTransport, options: SessionOptions): LightSession =>
    new LightSession(transport, 'client', options);

  test('close({ timeout }) ends at its timeout when the peer stopped reading and no channel is left: the last frames cannot leave, so the transport is dropped', async () => {
    const transport = new FakeTransport();
    transport.blocked = true; // every write asks to wait, and no drain comes
    const session = lightSession(transport, { keepAliveInterval: 0 });
    const started = performance.now();
    await session.close({ timeout: 100 });
    assert.ok(performance.now() - started < 1500, 'close() ended near its timeout');
    assert.equal(session.state, 'closed');
    await assert.rejects(session.closed, { code: 'ERR_MUX_CLOSE_TIMEOUT', message: /did not take the last frames/ });
    assert.ok(transport.destroyed);
  });

  test('close({ timeout }) with no channel left and a peer that took the last frames but never ends its side resolves at the timeout, cleanly; the transport is dropped after the linger', async () => {
    const transport = new FakeTransport(); // takes every write; never answers the Go Away's ping, never ends
    const session = lightSession(transport, { keepAliveInterval: 0 });
    const started = performance.now();
    await session.close({ timeout: 100 });
    const took = performance.now() - started;
    assert.ok(took < 1000, `close() took ${took.toFixed(0)} ms (it waited out the 2 s linger after its timeout)`);
    await session.closed;
    assert.equal(session.state, 'closed');
    assert.ok(transport.ended, 'the transport was ended');
    await until(() => transport.destroyed, 4000, 'the transport destroyed after the linger');
  });

  test('close() again while closing: a sooner timeout replaces the deadline, a later one does not, a bad one rejects and changes nothing', async () => {
    const pair = await sessionPair();
    const channel = pair.client.dial();
    channel.on('error', () => {});
    channel.write('held open');
    await pair.server.accept();
    const started = performance.now();
    void pair.client.close(); // closeTimeout: 30 s
    void pair.client.close({ timeout: 60_000 });
    await assert.rejects(pair.client.close({ timeout: -5 }), RangeError);
    await pair.client.close({ timeout: 50 });
    assert.ok(performance.now() - started < 2000, 'ended at the sooner deadline');
    await assert.rejects(pair.client.closed, { code: 'ERR_MUX_CLOSE_TIMEOUT', message: /after 50 ms/ });
    await pair.close();
  });

  test("an abort of close()'s signal once the session has closed (from a 'close' listener) changes nothing: close() resolves", async () => {
    const pair = await sessionPair();
    const controller = new AbortController();
    pair.client.on('close', () => controller.abort(new Error('clean-up')));
    await pair.client.close({ signal: controller.signal });
    assert.equal(pair.client.closeError, undefined);
    await pair.client.closed;
    await pair.close();
  });

  test('after this side ended its transport, keep-alive sends nothing and cannot fail the session; ping() rejects with SessionClosedError', async () => {
    const transport = new AnsweringTransport();
    const session = lightSession(transport, { keepAliveInterval: 100, keepAliveTimeout: 150 });
    const closing = session.close({ timeout: 5000 });
    await until(() => transport.ended, 3000, 'the transport to be ended');
    await assert.rejects(session.ping(), SessionClosedError);
    const pingsBefore = parseFrames(transport.output()).filter((f) => f.type === FrameType.ping).length;
    // The peer holds its side open: the session lingers (2 s) for it, far past keepAliveTimeout.
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(session.state, 'closing', 'still lingering, not failed by keep-alive');
    const pingsAfter = parseFrames(transport.output()).filter((f) => f.type === FrameType.ping).length;
    assert.equal(pingsAfter, pingsBefore, 'no ping written after the end');
    transport.peerEnd();
    await closing;
    assert.equal(session.closeError, undefined);
  });

  test("dial({ signal }) with openTimeout 0 leaves no listener on the signal once the session ends before the peer's ACK", async () => {
    const transport = new FakeTransport();
    const session = lightSession(transport, { keepAliveInterval: 0 });
    const controller = new AbortController();
    for (let i = 0; i < 3; i++) session.dial({ signal: controller.signal, openTimeout: 0 }).on('error', () => {});
    assert.equal(getEventListeners(controller.signal, 'abort').length, 1, 'one listener for the three dials');
    session.destroy();
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
  });

  test('a protocol error while the session lingers after ending its transport writes nothing more (no Go Away after the end)', async () => {
    const transport = new AnsweringTransport();
    const session = lightSession(transport, { keepAliveInterval: 0 });
    void session.close({ timeout: 5000 });
    await until(() => transport.ended, 3000, 'the transport to be ended');
    const bytesAtEnd = transport.writtenBytes;
    transport.feed(Buffer.from('090100010000000100000000', 'hex')); // version 9
    await assert.rejects(session.closed, ProtocolError);
    assert.equal(transport.writtenBytes, bytesAtEnd, 'nothing written after end()');
  });
});

test('a transport whose write() throws fails the session, and the channel writes of that batch hear of it', async () => {
  let events: TransportEvents | undefined;
  const transport: Transport = {
    start(sink) {
      events = sink;
    },
    write() {
      throw new Error('this transport cannot write');
    },
    pause() {},
    resume() {},
    end() {},
    destroy() {
      queueMicrotask(() => events?.close());
    },
  };
  const session = new MuxSession<ChannelClass>(
    transport,
    'client',
    { keepAliveInterval: 0 },
    (state, s) => new ChannelClass(state, s),
    FULL_PARTS,
  );
  const channel = session.dial();
  channel.on('error', () => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await new Promise<Error | null | undefined>((resolve) => {
    channel.write(Buffer.alloc(64 * 1024), (error) => resolve(error));
    timer = setTimeout(() => resolve(undefined), 2000);
  }).finally(() => clearTimeout(timer));
  assert.ok(outcome instanceof Error, `the write's callback heard: ${String(outcome)}`);
  await assert.rejects(session.closed);
});

describe('sessions over Node transports: what a review of them found', () => {
  /** A loopback port nobody listens on (a server's, closed again). */
  /** The error `session.closed` rejected with (undefined for a clean close), within 5 s. */
  function closeError(session: { closed: Promise<void> }): Promise<unknown> {
    return within(
      session.closed.then(
        () => undefined,
        (error: unknown) => error,
      ),
      5000,
      'the session to end',
    );
  }

  /** Whether `error` is a TransportClosedError whose cause has `code`. */
  function causedBy(error: unknown, code: RegExp): boolean {
    return error instanceof TransportClosedError && code.test(String((error.cause as { code?: string })?.code));
  }

  test('a TLS socket whose server ends the connection during the handshake fails the session (it never connected), a ping() with it', async () => {
    // Node's TLS client says 'end' first there (then 'error'): taken as the peer's end, an idle session had
    // ended cleanly, as if it had worked.
    const server = net.createServer((socket) => {
      socket.on('error', () => {});
      setTimeout(() => socket.end(), 50);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as net.AddressInfo;
      const session = multiplexedClient(tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }));
      const ping = session.ping().then(
        () => 'answered',
        (error: unknown) => (error as { code?: string }).code,
      );
      const error = await within(
        session.closed.then(
          () => undefined,
          (failure: unknown) => failure as Error,
        ),
        3000,
        'the session to end',
      );
      assert.ok(
        error instanceof TransportClosedError,
        `the session ${error === undefined ? 'ended cleanly' : `failed: ${error.message}`}`,
      );
      assert.ok((error as Error).cause instanceof Error);
      assert.equal(await ping, 'ERR_MUX_TRANSPORT_CLOSED');
    } finally {
      server.close();
    }
  });

  test('a socket that never connects (refused, or a TLS certificate not trusted) fails an idle session with its error as cause; once connected, an idle reset still ends it cleanly', async () => {
    const port = await refusedPort();
    for (const start of [multiplexedClient, lightClient]) {
      const session = start(net.connect(port, '127.0.0.1'), { keepAliveInterval: 0 });
      let heard: unknown = 'no close event';
      session.on('close', (error) => (heard = error));
      const error = await closeError(session);
      assert.ok(causedBy(error, /^ECONNREFUSED$/), `${start.name}: ${String(error)}`);
      assert.equal(heard, error, "the 'close' event's error");
      assert.equal(session.closeError, error);
      assert.throws(
        () => session.dial(),
        (e) => e === error,
      );
      await assert.rejects(session.accept(), (e) => e === error);
    }

    const { key, cert } = selfSignedCertificate();
    const server = tls.createServer({ key, cert }, (socket) => socket.on('error', () => {}));
    server.on('tlsClientError', () => {});
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port: tlsPort } = server.address() as net.AddressInfo;
    try {
      // Not trusted: the handshake fails after TCP connected.
      const untrusted = multiplexedClient(tls.connect({ port: tlsPort, host: '127.0.0.1' }), { keepAliveInterval: 0 });
      const error = await closeError(untrusted);
      assert.ok(causedBy(error, /SELF_SIGNED|UNABLE_TO_VERIFY/), String(error));

      // Handed over while connecting, then up: an error after that is an idle connection's, a clean end.
      const trusted = tls.connect({ port: tlsPort, host: '127.0.0.1', ca: cert, servername: 'localhost' });
      const overTls = multiplexedClient(trusted, { keepAliveInterval: 0 });
      await once(trusted, 'secureConnect');
      trusted.destroy(new Error('reset (test)'));
      assert.equal(await closeError(overTls), undefined, 'an established TLS connection reset while idle');
    } finally {
      server.close();
    }
    const plain = net.createServer((socket) => socket.on('error', () => {}).resume());
    plain.listen(0, '127.0.0.1');
    await once(plain, 'listening');
    try {
      const socket = net.connect((plain.address() as net.AddressInfo).port, '127.0.0.1');
      const session = multiplexedClient(socket, { keepAliveInterval: 0 });
      await once(socket, 'connect');
      socket.destroy(new Error('reset (test)'));
      assert.equal(await closeError(session), undefined, 'an established TCP connection reset while idle');
    } finally {
      plain.close();
    }
  });

  test("a TLS 1.3 server that refuses the client's certificate after the client's handshake fails an idle session with the alert as cause, not a clean end", async () => {
    // Under TLS 1.3 the client's handshake is done ('secureConnect') before the server judges its certificate:
    // the server's alert then came on a connection that looked up, and an idle session ended as after a reset,
    // its pending ping() and later dial() told only "session is closed".
    const { key, cert } = selfSignedCertificate();
    const server = tls.createServer({ key, cert, ca: cert, requestCert: true, rejectUnauthorized: true }, (socket) =>
      socket.on('error', () => {}),
    );
    server.on('tlsClientError', () => {});
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as net.AddressInfo;
      for (const start of [multiplexedClient, lightClient]) {
        const socket = tls.connect({
          port,
          host: '127.0.0.1',
          ca: cert,
          servername: 'localhost',
          minVersion: 'TLSv1.3',
        });
        const session = start(socket);
        let handshakeDone = false;
        socket.once('secureConnect', () => (handshakeDone = true));
        const ping = session.ping().then(
          () => 'answered',
          (error: unknown) => error,
        );
        const error = await closeError(session);
        assert.ok(handshakeDone, `${start.name}: the client's handshake finished first (the case under test)`);
        assert.ok(causedBy(error, /^ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED$/), `${start.name}: ${String(error)}`);
        assert.equal(await ping, error, `${start.name}: the pending ping()`);
        assert.throws(
          () => session.dial(),
          (e) => e === error,
        );
      }
    } finally {
      server.close();
    }
  });

  test('a socket destroyed with an error before its session started: the session fails with that error as cause, idle or with a channel dialled', async () => {
    for (const dial of [false, true]) {
      const [a, b] = await tcpPair();
      const gone = new Error('gone before the session (test)');
      a.on('error', () => {});
      const closed = new Promise((resolve) => a.on('close', resolve));
      a.destroy(gone);
      await closed;
      const session = multiplexedClient(a, { keepAliveInterval: 0 });
      const channelError = dial
        ? new Promise((resolve) => session.dial().on('error', resolve).write('x'))
        : Promise.resolve(undefined);
      const error = await closeError(session);
      assert.ok(error instanceof TransportClosedError, String(error));
      assert.equal(error.cause, gone);
      if (dial) assert.equal(((await channelError) as Error).cause, gone, "the channel's error");
      b.destroy();
    }
  });

  test("a half-open socket whose 'end' came before its session: the session hears the end at once (with keep-alive off it waited for ever)", async () => {
    const server = net.createServer({ allowHalfOpen: true }, (socket) => socket.resume().end());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      for (const dial of [false, true]) {
        const socket = net.connect({
          port: (server.address() as net.AddressInfo).port,
          host: '127.0.0.1',
          allowHalfOpen: true,
        });
        socket.resume();
        await once(socket, 'end');
        socket.pause();
        const session = multiplexedClient(socket, { keepAliveInterval: 0 });
        if (dial) {
          const channel = session.dial();
          const failed = new Promise((resolve) => channel.on('error', resolve));
          channel.write('x');
          assert.ok((await within(failed, 2000, 'the channel to fail')) instanceof TransportClosedError);
          assert.ok((await closeError(session)) instanceof TransportClosedError);
        } else {
          assert.equal(await closeError(session), undefined, 'an idle session ends cleanly');
        }
        socket.destroy();
      }
    } finally {
      server.close();
    }
  });

  test("a stream that already carries a session is refused for a second one (it would read the first one's frames); a session refused for its options leaves it free", async () => {
    const [a, b] = await tcpPair();
    try {
      assert.throws(() => multiplexedClient(a, { maxFrameSize: -1 }), RangeError);
      const first = multiplexedClient(a, { keepAliveInterval: 0 });
      assert.throws(() => multiplexedClient(a), { name: 'TypeError', message: /already carries a session/ });
      assert.throws(() => lightClient(a), { name: 'TypeError', message: /already carries a session/ });
      assert.equal(first.state, 'open');
      first.destroy();
      const [c, d] = await tcpPair();
      lightServer(c, { keepAliveInterval: 0 }).destroy();
      assert.throws(() => multiplexedServer(c), { name: 'TypeError', message: /already carries a session/ });
      d.destroy();
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  test('a stream that decodes to strings is refused at once; one that gives objects fails the session with ProtocolError; an object-mode stream of bytes works', async () => {
    const [a, b] = await tcpPair();
    try {
      a.setEncoding('utf8');
      assert.throws(() => multiplexedClient(a), TypeError);
      assert.throws(() => lightClient(a), TypeError);
    } finally {
      a.destroy();
      b.destroy();
    }

    for (const dial of [false, true]) {
      const stream = new Duplex({
        readableObjectMode: true,
        read() {},
        write(_chunk, _encoding, callback) {
          callback();
        },
      });
      const session = multiplexedClient(stream, { keepAliveInterval: 0 });
      const failed = dial ? new Promise((resolve) => session.dial().on('error', resolve)) : undefined;
      stream.push({ bytes: 'not really' });
      const error = await closeError(session);
      const said = (e: unknown): boolean =>
        e instanceof ProtocolError && e.message.includes('gave an object, not bytes');
      // With a channel open the transport's failure is a TransportClosedError that holds it; idle, it is itself.
      assert.ok(dial ? error instanceof TransportClosedError && said(error.cause) : said(error), String(error));
      if (dial) assert.ok((await within(failed!, 2000, 'the channel to fail')) instanceof TransportClosedError);
      assert.equal(session.stats().bytesIn, 0);
    }

    // Duplex.fromWeb({ objectMode: true }) over Web Streams carries Uint8Arrays: that is bytes.
    const ab = new TransformStream<Uint8Array, Uint8Array>();
    const ba = new TransformStream<Uint8Array, Uint8Array>();
    type WebPair = Parameters<typeof Duplex.fromWeb>[0]; // node:stream/web's types, not the DOM's
    const overWeb = (pair: { readable: unknown; writable: unknown }): Duplex =>
      Duplex.fromWeb(pair as WebPair, { objectMode: true });
    const client = multiplexedClient(overWeb({ readable: ba.readable, writable: ab.writable }), {
      keepAliveInterval: 0,
    });
    const server = multiplexedServer(overWeb({ readable: ab.readable, writable: ba.writable }), {
      keepAliveInterval: 0,
    });
    try {
      server.on('channel', (channel: Channel) => void pipeline(channel, channel).catch(() => {}));
      const channel = client.dial();
      channel.end('over an object-mode pair');
      assert.equal((await within(readAll(channel), 2000, 'the echo')).toString(), 'over an object-mode pair');
    } finally {
      client.destroy();
      server.destroy();
    }
  });

  test("a stream that never emits 'close' (emitClose: false) keeps no listener of the session once it ended, cleanly or destroyed", async () => {
    /** Two connected duplexes that emit no 'close'. */
    function quietPair(): [Duplex, Duplex] {
      const ends: Duplex[] = [];
      for (const other of [1, 0]) {
        ends.push(
          new Duplex({
            emitClose: false,
            read() {},
            write(chunk: Buffer, _encoding, callback) {
              ends[other]!.push(chunk);
              callback();
            },
            final(callback) {
              ends[other]!.push(null);
              callback();
            },
          }),
        );
      }
      return [ends[0]!, ends[1]!];
    }
    const events = ['data', 'end', 'drain', 'close', 'finish', 'error'];
    const counts = (stream: Duplex): number[] => events.map((event) => stream.listenerCount(event));
    for (const how of ['close', 'destroy'] as const) {
      const [a, b] = quietPair();
      const before = [counts(a), counts(b)];
      const client = multiplexedClient(a, { keepAliveInterval: 0 });
      const server = multiplexedServer(b, { keepAliveInterval: 0 });
      if (how === 'close') {
        await within(client.close(), 2000, 'the close');
        assert.equal(await closeError(server), undefined);
      } else {
        client.destroy();
        server.destroy();
      }
      await new Promise((resolve) => setImmediate(resolve));
      // What is left: one listener that keeps a late 'error' from crashing the process.
      for (const [i, stream] of [a, b].entries()) {
        const after = counts(stream);
        assert.deepEqual(after.slice(0, -1), before[i]!.slice(0, -1), `${how}: listeners on end ${i}`);
        assert.ok(after.at(-1)! <= before[i]!.at(-1)! + 1, `${how}: 'error' listeners on end ${i}`);
      }
    }
  });
  test('a session over an http2 CONNECT stream that the peer aborts mid-transfer fails typed and destroys its stream, so the Http2Session and its server close', async () => {
    const h2server = http2.createServer();
    const served = new Promise<http2.ServerHttp2Stream>((resolve) =>
      h2server.on('stream', (stream) => {
        stream.respond({ ':status': 200 });
        resolve(stream);
      }),
    );
    await new Promise<void>((resolve) => h2server.listen(0, '127.0.0.1', resolve));
    const h2client = http2.connect(`http://127.0.0.1:${(h2server.address() as net.AddressInfo).port}`);
    h2client.on('error', () => {});
    try {
      const request = h2client.request({ ':method': 'CONNECT', ':authority': 'muxwire.invalid:1' });
      await once(request, 'response');
      const stream = await served;
      const client = multiplexedClient(request, { keepAliveInterval: 0 });
      const server = multiplexedServer(stream, { keepAliveInterval: 0 });
      // Bulk both ways, so that writes are queued in the http2 stream when the peer aborts.
      const block = Buffer.alloc(64 * 1024, 7);
      const pump = (channel: Channel): void => {
        channel.on('error', () => {});
        channel.resume();
        const write = (): void => {
          while (channel.writable && channel.write(block));
          if (channel.writable) channel.once('drain', write);
        };
        write();
      };
      server.on('channel', pump);
      for (let i = 0; i < 4; i++) pump(client.dial());
      await until(() => client.stats().dataBytesIn > 4 * 1024 * 1024, 5000, 'bulk data both ways');
      server.destroy();
      const error = await closeError(client);
      assert.ok(error instanceof TransportClosedError, String(error));
      await until(() => request.destroyed, 2000, "the client's CONNECT stream destroyed");
      await within(
        new Promise<void>((resolve) => h2client.close(resolve)),
        3000,
        'the Http2Session to close (it waits for its streams)',
      );
    } finally {
      h2client.destroy();
      await new Promise((resolve) => h2server.close(resolve));
    }
  });

  test('an http2 stream that its application closes with a code (RST_STREAM CANCEL) under a session still sends its reset: the peer session fails typed and its server closes', async () => {
    const h2server = http2.createServer();
    const sessions: Promise<unknown>[] = [];
    h2server.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      const session = multiplexedServer(stream, { keepAliveInterval: 0 });
      session.on('channel', (channel: Channel) => {
        channel.on('error', () => {});
        channel.resume();
      });
      sessions.push(closeError(session));
    });
    await new Promise<void>((resolve) => h2server.listen(0, '127.0.0.1', resolve));
    const h2client = http2.connect(`http://127.0.0.1:${(h2server.address() as net.AddressInfo).port}`);
    h2client.on('error', () => {});
    try {
      const request = h2client.request({ ':method': 'POST', ':path': '/' });
      const client = multiplexedClient(request, { keepAliveInterval: 0 });
      const channel = client.dial();
      channel.on('error', () => {});
      await new Promise<void>((resolve) =>
        channel.write(Buffer.alloc(1024 * 1024, 5), () => {
          request.close(http2.constants.NGHTTP2_CANCEL);
          resolve();
        }),
      );
      await until(() => sessions.length === 1, 2000, 'the server session');
      const error = await sessions[0];
      assert.ok(error instanceof TransportClosedError, String(error));
      h2client.close();
      await within(new Promise((resolve) => h2server.close(resolve)), 3000, 'the http2 server to close');
    } finally {
      h2client.destroy();
      h2server.close();
    }
  });

  test("a failed write reports the stream's own error when it has one (Bun fails a write before a TLS handshake with 'Socket is closed', and holds why in errored)", async () => {
    const why = Object.assign(new Error('self signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    class RefusedTls extends Duplex {
      override _read(): void {}
      override _write(_chunk: unknown, _encoding: string, callback: (error?: Error) => void): void {
        callback(Object.assign(new Error('Socket is closed'), { code: 'ERR_SOCKET_CLOSED' }));
      }
    }
    const stream = new RefusedTls();
    Object.defineProperty(stream, 'errored', { get: () => why });
    stream.on('error', () => {});
    const session = multiplexedClient(stream, { keepAliveInterval: 0 });
    const channel = session.dial();
    channel.on('error', () => {});
    channel.write('hello');
    const error = await closeError(session);
    assert.ok(error instanceof TransportClosedError, String(error));
    assert.equal(error.cause, why);
  });
});

test("a channel reset by its peer before anyone read it (no 'error' listener) gives consumers that come later the ChannelResetError, not Node's premature close", async () => {
  const pair = await sessionPair();
  const { client, server } = pair;
  try {
    const accepted: Channel[] = [];
    server.on('channel', (channel: Channel) => accepted.push(channel)); // read later (an auth lookup first)
    const dialled: Channel[] = [];
    for (let i = 0; i < 4; i++) {
      const channel = client.dial();
      channel.write('hello');
      dialled.push(channel);
    }
    await until(() => accepted.length === 4, 2000, 'four channels at the server');
    for (const channel of dialled) channel.resetAndDestroy();
    await until(() => accepted.every((channel) => channel.destroyed), 2000, 'the resets');
    await new Promise((resolve) => setImmediate(resolve));
    const [first, second, third, fourth] = accepted as [Channel, Channel, Channel, Channel];
    assert.equal((first.errored as MuxError | null)?.code, 'ERR_MUX_CHANNEL_RESET');
    await assert.rejects(text(first), ChannelResetError);
    await assert.rejects(
      (async () => {
        for await (const chunk of second) assert.fail(`no data should come: ${String(chunk)}`);
      })(),
      ChannelResetError,
    );
    await assert.rejects(
      pipeline(third, new Writable({ write: (_chunk, _encoding, callback) => callback() })),
      ChannelResetError,
    );
    await assert.rejects(finished(fourth), ChannelResetError);
  } finally {
    await pair.close();
  }
});

test("a Channel still uploading while it reads, whose peer replied, ended and dropped the connection, reads the whole reply, then 'end', then the error; its waiting write is taken", async () => {
  const [a, b] = await tcpPair();
  const client = multiplexedClient(a, { keepAliveInterval: 0 });
  const server = multiplexedServer(b, { keepAliveInterval: 0 });
  try {
    const reply = pseudoRandomBytes(5000, 413);
    // The server never reads the upload (it answers it at once, as an HTTP server's 413 does).
    server.on('channel', (channel: Channel) => {
      channel.end(reply);
      // Once the upload's first window arrived and was read by the session (no unread bytes: a FIN, not a RST).
      channel.on('finish', () => setTimeout(() => b.destroy(), 50));
    });
    const channel = client.dial();
    const failed = once(channel, 'error');
    // More than the server's window: the rest waits for credit that never comes.
    let writeError: Error | null | undefined;
    const written = new Promise<void>((resolve) =>
      channel.write(Buffer.alloc(600 * 1024), (error) => {
        writeError = error;
        resolve();
      }),
    );
    const events: string[] = [];
    channel.on('end', () => events.push('end'));
    channel.on('close', () => events.push('close'));
    // A reader is there (a client reads the response as it uploads), held back for now: the reply waits unread.
    const chunks: Buffer[] = [];
    channel.on('data', (chunk: Buffer) => chunks.push(chunk));
    channel.pause();
    await until(() => client.state === 'closed', 5000, 'the session failed');
    assert.equal(channel.destroyed, false, 'kept to be read');
    channel.resume();
    await until(() => events.includes('end'), 2000, "'end'");
    assert.ok(Buffer.concat(chunks).equals(reply), 'the whole reply, in order');
    await written;
    assert.equal(writeError ?? null, null, 'the waiting write was taken (its bytes go nowhere)');
    assert.equal(((await failed)[0] as MuxError).code, 'ERR_MUX_TRANSPORT_CLOSED');
    await until(() => events.includes('close'), 1000, "'close'");
    assert.deepEqual(events, ['end', 'close']);
  } finally {
    client.destroy();
    server.destroy();
    a.destroy();
    b.destroy();
  }
});

test("an upload that never reads its channel (pipeline from a file) fails when its session does, though the peer's reply and FIN came: it is not kept for a read that never comes", async () => {
  const [a, b] = await tcpPair();
  const client = multiplexedClient(a, { keepAliveInterval: 0 });
  const server = multiplexedServer(b, { keepAliveInterval: 0 });
  try {
    server.on('channel', (channel: Channel) => {
      channel.end('413 too large');
      channel.on('finish', () => setTimeout(() => b.destroy(), 50));
    });
    const channel = client.dial();
    const file = Readable.from(
      (function* () {
        for (let i = 0; i < 64; i++) yield Buffer.alloc(32 * 1024, i);
      })(),
    );
    await assert.rejects(within(pipeline(file, channel), 5000, 'the upload to settle'), TransportClosedError);
  } finally {
    client.destroy();
    server.destroy();
    a.destroy();
    b.destroy();
  }
});

test('a parser waiting on read(n) for more than arrived gets the error when its session fails without the FIN', async () => {
  const pair = await sessionPair();
  const { client, server } = pair;
  try {
    const accepted = new Promise<Channel>((resolve) => server.once('channel', resolve));
    const dialled = client.dial();
    dialled.write('12345');
    const channel = await accepted;
    await until(() => channel.readableLength === 5, 2000, 'the five bytes');
    assert.equal(channel.read(100), null, 'a record of 100 bytes is not there yet');
    const failed = once(channel, 'error');
    server.destroy(new Error('the peer went away'));
    const [error] = (await within(failed, 2000, "the channel's error")) as [Error];
    assert.match(error.message, /went away/);
  } finally {
    await pair.close();
  }
});

test('a dial destroyed before its SYN left puts nothing on the wire, its window larger than the spec default or not', async () => {
  for (const initialWindow of [256 * 1024, 1024 * 1024]) {
    const transport = new FakeTransport();
    const session = new LightSession(transport, 'client', { keepAliveInterval: 0, initialWindow });
    try {
      const dropped = session.dial();
      dropped.on('error', () => {});
      dropped.destroy(); // in the same task: its SYN never left
      const kept = session.dial();
      kept.write(new Uint8Array([1]));
      await until(() => parseFrames(transport.output()).some((f) => f.streamId === kept.id), 2000, 'the kept dial');
      await new Promise((resolve) => setTimeout(resolve, 20));
      const frames = parseFrames(transport.output()).filter((f) => f.streamId === dropped.id);
      assert.deepEqual(
        frames.map((f) => `type ${f.type} flags ${f.flags} length ${f.length}`),
        [],
        `initialWindow ${initialWindow}: nothing for channel ${dropped.id}`,
      );
    } finally {
      session.destroy();
    }
  }
});

test('a transport write that fails carrying no application write (a SYN, Window Updates) still fails the session', async () => {
  class FailingLater extends FakeTransport {
    failing = false;
    override write(parts: Uint8Array[], done: (error?: Error | null) => void): boolean {
      if (!this.failing) return super.write(parts, done);
      queueMicrotask(() => done(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })));
      return true;
    }
  }
  const transport = new FailingLater();
  // Keep-alive off: the session hears of the failure only from the failed write, once the transport has had
  // keepAliveTimeout to report it itself (it never does here).
  const session = new LightSession(transport, 'client', { keepAliveInterval: 0, keepAliveTimeout: 300 });
  try {
    await new Promise((resolve) => setTimeout(resolve, 10));
    transport.failing = true;
    session.dial().on('error', () => {}); // its SYN goes in a write of the session's own, with no callback
    const error = await within(
      session.closed.then(
        () => undefined,
        (failure: unknown) => failure as Error,
      ),
      2000,
      'the session to fail',
    );
    // Before: nobody heard the failure; the dial waited for its open timeout, the session stayed open.
    assert.equal((error as { code?: string } | undefined)?.code, 'ERR_MUX_TRANSPORT_CLOSED', String(error));
  } finally {
    session.destroy();
  }
});

test("a session over a channel of another session whose transport fails says 'the transport failed' once", async () => {
  const [a, b] = memoryPipe();
  const outerClient = multiplexedClient(a, { keepAliveInterval: 0 });
  const outerServer = multiplexedServer(b, { keepAliveInterval: 0 });
  try {
    const carrier = outerClient.dial();
    carrier.write('x'); // the SYN leaves with a byte, so the server's accept() takes it
    const carried = await outerServer.accept();
    carried.read();
    const inner = multiplexedClient(carrier, { keepAliveInterval: 0 });
    multiplexedServer(carried, { keepAliveInterval: 0 });
    const channel = inner.dial();
    const failed = new Promise<Error>((resolve) => channel.once('error', resolve));
    channel.write('hello');
    a.destroy(new Error('read ECONNRESET'));
    const error = await within(failed, 5000, "the inner channel's error");
    // Before: "the transport failed: the transport failed: read ECONNRESET".
    assert.match(error.message, /^the transport failed: read ECONNRESET/);
    assert.doesNotMatch(error.message, /the transport failed: the transport failed/);
  } finally {
    outerClient.destroy();
    outerServer.destroy();
  }
});

test('a transport that fails with what is no Error (a string, an object) fails the session with TransportClosedError saying it', async () => {
  for (const [given, said] of [
    ['boom', 'boom'],
    [{ code: 'EBOOM' }, '[object Object]'],
  ] as const) {
    const [a, b] = await tcpPair();
    const client = multiplexedClient(a, { keepAliveInterval: 0 });
    const server = multiplexedServer(b, { keepAliveInterval: 0 });
    try {
      const channel = client.dial();
      const failed = new Promise<Error>((resolve) => channel.once('error', resolve));
      channel.write('hello');
      await until(() => server.channelCount === 1, 5000, 'the channel at the server');
      a.destroy(given as unknown as Error);
      const error = (await within(failed, 5000, "the channel's error")) as MuxError;
      // Before (674602d's helper read `error.message` of each): a TypeError from the transport's 'error'
      // listener, uncaught.
      assert.equal(error.code, 'ERR_MUX_TRANSPORT_CLOSED');
      assert.equal(error.message, `the transport failed: ${said}`);
      assert.equal(error.cause, given);
    } finally {
      client.destroy();
      server.destroy();
    }
  }
});

/** Channels of `refs` still reachable after a few rounds of garbage collection. */
async function stillReachable(refs: WeakRef<object>[]): Promise<number> {
  let alive = refs.length;
  for (let i = 0; i < 20 && alive > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    collectGarbage();
    alive = refs.filter((ref) => ref.deref() !== undefined).length;
  }
  return alive;
}

/** Destroys and forgets `channels` (in a function of its own: a loop's last channel would stay in the caller's frame). */
function destroyAll(channels: Channel[]): void {
  for (const channel of channels) channel.destroy();
  channels.length = 0;
}

describe('a session that ended lets go of its channels', () => {
  for (const kind of ['Channel', 'LightChannel'] as const) {
    test(`ended while its transport was full, it keeps none of the ${kind}s that waited to send (an application may keep the session)`, async () => {
      const [socket, peer] = await tcpPair();
      peer.pause(); // the peer reads nothing: the kernel's buffers fill, and the rest waits in the session
      const kept = {
        session: (kind === 'Channel' ? multiplexedClient : lightClient)(socket, { keepAliveInterval: 0 }),
      };
      kept.session.closed.catch(() => {});
      const channels: WeakRef<object>[] = [];
      (() => {
        for (let i = 0; i < 300; i++) {
          const channel = kept.session.dial();
          channel.on('error', () => {});
          channel.write(new Uint8Array(64 * 1024).fill(i));
          channels.push(new WeakRef(channel));
        }
      })();
      try {
        await until(() => socket.writableLength > 0, 5_000, 'the transport never filled');
        kept.session.destroy();
        await kept.session.closed.catch(() => {});
        const alive = await stillReachable(channels);
        // Before: those still on the send ring (192 of 1,000 in the review) stayed, with all they held.
        assert.equal(alive, 0, `${alive} of ${channels.length} channels still reachable from the ended session`);
        assert.equal(kept.session.state, 'closed');
      } finally {
        peer.destroy();
      }
    });
  }
});

describe('a session that ended lets go of its channels, whatever held them', () => {
  test('dials an open timeout failed while they waited for an ACK-backlog place, the session then ended cleanly', async () => {
    const [socket, peer] = await tcpPair();
    peer.resume(); // reads everything, answers nothing
    const kept = { session: multiplexedClient(socket, { keepAliveInterval: 0, ackBacklog: 1, openTimeout: 100 }) };
    kept.session.closed.catch(() => {});
    const refs: WeakRef<object>[] = [];
    let timedOut = 0;
    (() => {
      for (let i = 0; i < 50; i++) {
        const channel = kept.session.dial();
        channel.on('error', (error: Error & { code?: string }) => {
          if (error.code === 'ERR_MUX_OPEN_TIMEOUT') timedOut++;
        });
        refs.push(new WeakRef(channel));
      }
    })();
    try {
      await until(() => timedOut === 50, 10_000, 'the open timeouts');
      peer.end(); // the peer ends the connection: the session ends
      await kept.session.closed.catch(() => {});
      // Before: the dials failed past their half-way point stayed in the backlog's list (49 of 50).
      assert.equal(await stillReachable(refs), 0);
    } finally {
      peer.destroy();
    }
  });

  test('channels whose window updates memory pressure withheld, when the session ends', async () => {
    const [a, b] = await tcpPair();
    const server = multiplexedServer(b, { keepAliveInterval: 0 });
    server.closed.catch(() => {});
    const kept = {
      session: multiplexedClient(a, { keepAliveInterval: 0, keepAliveTimeout: 100, maxSessionBuffered: 1 << 20 }),
    };
    kept.session.closed.catch(() => {});
    const channels: Channel[] = [];
    const refs: WeakRef<object>[] = [];
    kept.session.on('channel', (channel: Channel) => {
      channel.on('error', () => {});
      channels.push(channel);
      refs.push(new WeakRef(channel));
    });
    for (let i = 0; i < 8; i++)
      server
        .dial()
        .on('error', () => {})
        .write(Buffer.alloc(256 * 1024, i));
    try {
      await until(() => kept.session.bufferedBytes > 1.8 * 1024 * 1024, 5_000, 'the windows filled');
      await new Promise((resolve) => setTimeout(resolve, 100)); // past the quiet time of an update
      // (In functions of their own: a loop's last channel would stay in this one's frame.)
      (() => {
        for (const channel of channels) channel.read(1000); // each is owed an update, withheld under pressure
      })();
      kept.session.destroy();
      await kept.session.closed.catch(() => {});
      destroyAll(channels);
      // Before: the set of channels owed an update kept them (8 of 8), with what they held.
      assert.equal(await stillReachable(refs), 0);
    } finally {
      server.destroy();
    }
  });

  test("channels whose small payloads waited to be joined when a cut read's session was destroyed", async () => {
    const [socket, peer] = await tcpPair();
    peer.resume();
    const kept = { session: multiplexedClient(socket, { keepAliveInterval: 0, readTimeSlice: 1 }) };
    kept.session.closed.catch(() => {});
    const channels: Channel[] = [];
    const refs: WeakRef<object>[] = [];
    let delivered = 0;
    kept.session.on('channel', (channel: Channel) => {
      channel.on('error', () => {});
      channel.on('data', () => {
        if (delivered++ === 0) setImmediate(() => kept.session.destroy());
      });
      const until = performance.now() + 0.05; // an application's work per channel: the read is cut in slices
      while (performance.now() < until);
      channels.push(channel);
      refs.push(new WeakRef(channel));
    });
    const count = 3000;
    const syns: Buffer[] = [];
    const data: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      syns.push(frame(FrameType.windowUpdate, Flag.syn, 2 + 2 * i, 0));
      data.push(frame(FrameType.data, 0, 2 + 2 * i, Buffer.alloc(10, 65)));
    }
    peer.write(Buffer.concat(syns));
    try {
      await until(() => channels.length === count, 10_000, 'the channels');
      peer.write(Buffer.concat(data));
      await kept.session.closed.catch(() => {});
      destroyAll(channels);
      // Before: the payloads held to be joined kept their channels (and the read they view) from the session.
      assert.equal(await stillReachable(refs), 0);
    } finally {
      peer.destroy();
    }
  });
});

test('read(n) with a fraction of a byte waits for n as Node does (no RangeError from the memory budget)', async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    pair.server.on('channel', (channel: Channel) => channel.write(Buffer.alloc(100)));
    const channel = pair.client.dial();
    channel.write('hi');
    await once(channel, 'readable');
    // Before: the window's growth toward n reserved 37,856.5 bytes from the budget, which refuses a fraction.
    assert.equal(channel.read(300_000.5), null);
    assert.equal(pair.client.state, 'open');
    assert.equal((channel.read(100) as Buffer | null)?.length, 100);
    channel.destroy();
  } finally {
    await pair.close();
  }
});

test('a Channel destroyed before the peer FIN (an http or TLS client done with its reply) is let go of once the FIN took it out of the session', async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    pair.server.on('channel', (channel: Channel) => {
      channel.on('error', () => {});
      channel.once('data', () => {
        channel.write('reply');
        setTimeout(() => channel.end(), 50); // its FIN comes after the client let go of the channel
      });
    });
    const refs: WeakRef<object>[] = [];
    await (async () => {
      const replies: Promise<unknown>[] = [];
      for (let i = 0; i < 100; i++) {
        const channel = pair.client.dial();
        channel.on('error', () => {});
        channel.end('request');
        replies.push(once(channel, 'data').then(() => channel.destroy())); // done: closed as a socket is
        refs.push(new WeakRef(channel));
      }
      await within(Promise.all(replies), 5000, 'the replies');
    })();
    await until(() => pair.client.channelCount === 0, 5000, 'the FINs');
    // Before: its linger timer (2 s, for a peer that never answers) held each channel and all hung on it.
    assert.equal(await stillReachable(refs), 0);
  } finally {
    await pair.close();
  }
});
