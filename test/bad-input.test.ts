/**
 * A raw peer sends crafted frames; muxwire must answer each violation with Go Away code 1, end the session
 * with a ProtocolError naming the fault, and never crash or hang.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Flag, FrameType } from '../src/core/frame.js';
import {
  GoAwayCode,
  LightSession,
  ProtocolError,
  type Session,
  TimeoutError,
  lightClient,
  lightServer,
  multiplexedServer,
  multiplexedClient,
} from '../src/index.js';
import { MuxSession } from '../src/core/session.js';
import { Channel } from '../src/node/channel.js';
import {
  RawPeer,
  frame,
  parseFrames,
  pseudoRandomBytes,
  readAll,
  sessionPair,
  tcpPair,
  until,
  within,
} from './helpers.js';
import { FakeTransport } from './support/fake-transport.js';
import { MiB, collectGarbage, mib, settledMemory } from './support/resources.js';

const D = FrameType.data;
const W = FrameType.windowUpdate;

/** SYNs for `channels` channels, each followed by `perChannel` Data frames of one byte (zero). */
function oneByteFlood(channels: number, perChannel: number): Buffer {
  const frames = Buffer.alloc(channels * (12 + perChannel * 13));
  let at = 0;
  for (let c = 0; c < channels; c++) {
    const id = 1 + 2 * c;
    frame(W, Flag.syn, id, 0).copy(frames, at);
    at += 12;
    for (let i = 0; i < perChannel; i++, at += 13) {
      frames.writeUInt8(D, at + 1);
      frames.writeUInt32BE(id, at + 4);
      frames.writeUInt32BE(1, at + 8);
    }
  }
  return frames;
}

async function rawAgainstServer(answerPings = true, options = {}): Promise<{ peer: RawPeer; session: Session }> {
  const [raw, socket] = await tcpPair();
  const session = multiplexedServer(socket, { keepAliveInterval: 0, ...options });
  return { peer: new RawPeer(raw, answerPings), session };
}

const cases: [string, Buffer[], RegExp][] = [
  ['wrong version', [Buffer.from('010000010000000100000000', 'hex')], /unsupported protocol version 1/],
  [
    'text on the stream (a console.log on the stdout it uses)',
    [Buffer.from('hello world\n')],
    /unsupported protocol version 104 \("h": text, e\.g\. console\.log on it\?\)$/,
  ],
  [
    'a CSV line on the stream (its quote is shown escaped)',
    [Buffer.from('"name","id"\n')],
    /unsupported protocol version 34 \("\\"": text, e\.g\. console\.log on it\?\)$/,
  ],
  ['unknown frame type', [Buffer.from('000700000000000000000000', 'hex')], /unknown frame type 7/],
  ['window overrun in one frame', [frame(D, Flag.syn, 1, Buffer.alloc(262145))], /exceeds the receive window/],
  [
    'window overrun across frames',
    [frame(D, Flag.syn, 1, Buffer.alloc(200000)), frame(D, 0, 1, Buffer.alloc(62145))],
    /exceeds the receive window \(62144 bytes left\)/,
  ],
  ['a 4 GiB length', [frame(D, Flag.syn, 1, 0xffffffff)], /4294967295-byte Data frame exceeds the receive window/],
  [
    'SYN on a live id',
    [frame(W, Flag.syn, 1, 0), frame(W, Flag.syn, 1, 0)],
    /SYN for channel 1, which is already open/,
  ],
  ['non-zero id on Ping', [frame(FrameType.ping, Flag.syn, 5, 1)], /Ping frame on channel 5/],
  ['non-zero id on Go Away', [frame(FrameType.goAway, 0, 3, 0)], /Go Away frame on channel 3/],
  ['Data on channel 0', [frame(D, 0, 0, Buffer.from('x'))], /Data frame on channel 0/],
  ['a client opening an even (server) id', [frame(W, Flag.syn, 2, 0)], /id of this side's parity/],
];

describe('bad input is a protocol error answered with Go Away code 1', () => {
  for (const [name, frames, message] of cases) {
    test(name, async () => {
      const { peer, session } = await rawAgainstServer();
      const channelErrors: Error[] = [];
      session.on('channel', (c) => c.on('error', (e) => channelErrors.push(e)));
      const ended = new Promise<Error | undefined>((resolve) => session.on('close', resolve));
      peer.send(...frames);
      const error = await ended;
      assert.ok(error instanceof ProtocolError, String(error));
      assert.equal(error.code, 'ERR_MUX_PROTOCOL');
      assert.match(error.message, message);
      await assert.rejects(session.closed, ProtocolError);
      await until(() => peer.ended, 3000, 'transport ended');
      assert.equal(peer.goAwayCode, GoAwayCode.protocolError);
      for (const e of channelErrors) assert.equal(e, error, 'every channel sees the session error');
    });
  }

  test('after goAway(), a protocol error still sends Go Away code 1 (the first Go Away said only "no new channels")', async () => {
    const { peer, session } = await rawAgainstServer();
    session.goAway();
    await until(() => peer.goAwayCode === GoAwayCode.normal, 3000, 'the Go Away of goAway()');
    const ended = new Promise<Error | undefined>((resolve) => session.on('close', resolve));
    peer.send(frame(FrameType.ping, Flag.syn, 5, 1));
    assert.ok((await ended) instanceof ProtocolError);
    await until(() => peer.ended, 3000, 'transport ended');
    const codes = peer.frames.filter((f) => f.type === FrameType.goAway).map((f) => f.length);
    assert.deepEqual(codes, [GoAwayCode.normal, GoAwayCode.protocolError]);
  });

  test('frames split one byte at a time still decode', async () => {
    // (no ping answers: they would land between the bytes of the split frames)
    const { peer, session } = await rawAgainstServer(false);
    const bytes = Buffer.concat([frame(D, Flag.syn, 1, Buffer.from('hello')), frame(W, Flag.fin, 1, 0)]);
    const accepted = session.accept();
    for (const byte of bytes) {
      peer.send(Buffer.of(byte));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const channel = await accepted;
    const chunks: Buffer[] = [];
    for await (const chunk of channel) chunks.push(chunk as Buffer);
    assert.equal(Buffer.concat(chunks).toString(), 'hello');
    session.destroy();
  });
});

describe('tolerated input', () => {
  test('late frames for unknown or closed channels are ignored', async () => {
    const { peer, session } = await rawAgainstServer();
    // Channel 1 is opened and closed both ways, and forgotten.
    const accepted = session.accept();
    peer.send(frame(W, Flag.syn, 1, 0));
    const closed = await accepted;
    closed.resume();
    closed.end();
    peer.send(frame(W, Flag.fin, 1, 0));
    await until(() => session.channelCount === 0, 2000, 'channel 1 closed and forgotten');
    peer.send(frame(D, 0, 1, Buffer.from('late data')), frame(W, 0, 1, 1000), frame(W, Flag.rst, 1, 0));
    peer.send(frame(D, 0, 41, Buffer.from('late data')), frame(W, Flag.rst, 43, 0), frame(W, 0, 45, 1000));
    peer.send(frame(FrameType.ping, Flag.syn, 0, 77));
    await until(
      () => peer.frames.some((f) => f.type === FrameType.ping && f.flags === Flag.ack && f.length === 77),
      2000,
      'pong',
    );
    assert.equal(session.state, 'open');
    session.destroy();
  });

  test("data after the peer's FIN (its write raced its own close, as Go's yamux can send) is dropped: the channel's reply still goes, the session lives", async () => {
    const { peer, session } = await rawAgainstServer();
    try {
      const accepted = session.accept();
      peer.send(
        frame(D, Flag.syn, 1, Buffer.from('request')),
        frame(W, Flag.fin, 1, 0),
        frame(D, 0, 1, Buffer.from('late')),
      );
      const channel = await accepted;
      const errors: Error[] = [];
      channel.on('error', (error: Error) => errors.push(error));
      const chunks: Buffer[] = [];
      channel.on('data', (chunk: Buffer) => chunks.push(chunk));
      await within(once(channel, 'end'), 2000, "the channel's end");
      await new Promise((resolve) => setTimeout(resolve, 50)); // (the late data has arrived by now)
      assert.equal(Buffer.concat(chunks).toString(), 'request', 'what came before the FIN, and nothing after');
      channel.end('reply');
      await until(
        () => peer.frames.some((f) => f.streamId === 1 && (f.flags & Flag.fin) !== 0),
        2000,
        'the reply and its FIN',
      );
      const reply = peer.frames.filter((f) => f.streamId === 1 && f.type === D && f.payload.length > 0);
      assert.equal(Buffer.concat(reply.map((f) => f.payload)).toString(), 'reply');
      assert.equal(session.state, 'open');
      assert.deepEqual(errors, []);
      // Past the window, data after FIN is still the peer's error.
      const ended = new Promise<Error | undefined>((resolve) => session.on('close', resolve));
      peer.send(
        frame(D, Flag.syn, 3, Buffer.alloc(0)),
        frame(W, Flag.fin, 3, 0),
        frame(D, 0, 3, Buffer.alloc(256 * 1024 + 1)),
      );
      const error = await within(ended, 2000, 'the session to fail');
      assert.match(String(error), /exceeds the receive window/);
    } finally {
      session.destroy();
    }
  });

  test("a RST on a Data frame with a payload after the peer's FIN resets the channel, as one on an empty frame does", async () => {
    const { peer, session } = await rawAgainstServer();
    try {
      for (const [id, payload] of [
        [1, Buffer.alloc(0)],
        [3, Buffer.from('x')],
      ] as const) {
        const accepted = session.accept();
        peer.send(frame(D, Flag.syn, id, Buffer.from('hi')), frame(W, Flag.fin, id, 0));
        const channel = await within(accepted, 2000, `channel ${id}`);
        const failed = new Promise<Error>((resolve) => channel.on('error', resolve));
        channel.resume();
        await within(once(channel, 'end'), 2000, `channel ${id}'s end`);
        peer.send(frame(D, Flag.rst, id, payload));
        const error = await within(failed, 2000, `channel ${id}'s reset (${payload.length}-byte payload)`);
        assert.equal((error as { code?: string }).code, 'ERR_MUX_CHANNEL_RESET');
        await until(() => session.channelCount === 0, 2000, `channel ${id} gone`);
      }
      assert.equal(session.state, 'open');
    } finally {
      session.destroy();
    }
  });

  test("data on a dialled channel without the ACK flag acknowledges it: after the peer's Go Away and end it is not reported as refused", async () => {
    const [raw, socket] = await tcpPair();
    const peer = new RawPeer(raw);
    const session = multiplexedClient(socket, { keepAliveInterval: 0 });
    try {
      const channel = session.dial();
      const errors: Error[] = [];
      channel.on('error', (error: Error) => errors.push(error));
      channel.write('question');
      await until(() => peer.frames.some((f) => f.streamId === channel.id), 2000, 'the SYN');
      peer.send(frame(D, 0, channel.id, Buffer.from('answer'))); // no ACK flag: a lenient peer's reply
      const got = await new Promise<Buffer>((resolve) => channel.once('data', resolve));
      assert.equal(got.toString(), 'answer');
      assert.equal(channel.protocolState, 'established');
      peer.send(frame(FrameType.goAway, 0, 0, GoAwayCode.normal));
      raw.end();
      await session.closed.catch(() => {});
      assert.ok(
        errors.every((e) => e.name !== 'ChannelRefusedError'),
        `the peer took the channel: ${errors.map(String).join(', ')}`,
      );
    } finally {
      session.destroy();
      raw.destroy();
    }
  });

  test('a flood of one-byte Data frames within every window stops the reading at the memory bound: each waiting chunk costs more than its byte', async () => {
    const { peer, session } = await rawAgainstServer(true, { maxSessionBuffered: 1024 * 1024 });
    try {
      session.on('channel', () => {}); // taken, never read
      peer.socket.write(oneByteFlood(8, 128 * 1024)); // half of each channel's 256 KiB window: no rule broken
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(session.state, 'open');
      // 1 MiB of chunk costs (224 bytes each, plus the byte) is about 4,650 chunks; without the cost the
      // session would have taken all 1 MiB of one-byte chunks (about 110 MB of heap). (The first reads, while
      // nothing waited unread, came joined per channel: a few kilobytes more, in a chunk per channel and read.)
      assert.ok(session.bufferedBytes < 64 * 1024, `${session.bufferedBytes} one-byte chunks held`);
      assert.ok(session.bufferedBytes > 1000, 'it read until the bound');
    } finally {
      session.destroy();
      peer.socket.destroy();
    }
  });

  test("the keep-alive probes of a paused session read a one-byte-frame flood only so far: unread chunks' costs stay bounded", async () => {
    // A probe reads until its ping's answer, which this peer puts behind its flood: the flood is read, at most a
    // quarter of maxSessionBuffered more in chunk costs per pause; the session neither fails nor takes it all.
    const { peer, session } = await rawAgainstServer(true, { maxSessionBuffered: 1024 * 1024, keepAliveTimeout: 300 });
    try {
      session.on('channel', () => {}); // taken, never read
      peer.socket.write(oneByteFlood(8, 128 * 1024));
      await new Promise((resolve) => setTimeout(resolve, 2000)); // several probes (every 150 ms)
      assert.equal(session.state, 'open');
      // 1 MiB of chunk costs at the pause (about 4,650 chunks of a byte), then as much as eight times the credit
      // the peer held at the pause (one channel's window: the other SYNs were still unread): about 15,000
      // chunks in all. The probes took all 1 MiB before (1,048,576 chunks, about 110 MB of heap).
      assert.ok(session.bufferedBytes < 64 * 1024, `${session.bufferedBytes} one-byte chunks held`);
      assert.ok(session.bufferedBytes > 5000, `${session.bufferedBytes}: the probes read`);
    } finally {
      session.destroy();
      peer.socket.destroy();
    }
  });

  test("a peer whose one-byte frames spend the probes' share and that answers no ping fails the session, saying why, and ping() with it", async () => {
    const { peer, session } = await rawAgainstServer(false, {
      maxSessionBuffered: 256 * 1024,
      keepAliveInterval: 200,
      keepAliveTimeout: 1000,
    });
    try {
      session.on('channel', () => {}); // taken, never read
      peer.socket.write(oneByteFlood(1, 200_000));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const started = performance.now();
      const answer = session.ping().then(
        () => undefined,
        (error: unknown) => error as Error & { code?: string },
      );
      const error = await within(answer, 5000, 'the ping to settle');
      assert.equal(error?.code, 'ERR_MUX_KEEPALIVE_TIMEOUT');
      assert.match(error?.message ?? '', /maxSessionBuffered/);
      assert.ok(performance.now() - started < 3000, 'within about keepAliveTimeout');
      assert.ok(session.bufferedBytes < 64 * 1024, `${session.bufferedBytes} one-byte chunks held`);
    } finally {
      session.destroy();
      peer.socket.destroy();
    }
  });

  test("channels opened only to raise the peer's credit do not raise the probes' share past twice the bound", async () => {
    const { peer, session } = await rawAgainstServer(false, {
      maxSessionBuffered: 1024 * 1024,
      keepAliveInterval: 200,
      keepAliveTimeout: 1000,
    });
    try {
      session.on('channel', () => {}); // taken, never read
      // 256 idle channels (64 MiB of credit), then one channel's one-byte frames.
      const idle = Array.from({ length: 256 }, (_, i) => frame(W, Flag.syn, 3 + 2 * i, 0));
      peer.socket.write(Buffer.concat([...idle, oneByteFlood(1, 300_000)]));
      let peak = 0;
      const watch = setInterval(() => (peak = Math.max(peak, session.bufferedBytes)), 10);
      const ended = await within(
        session.closed.then(
          () => undefined,
          (error: unknown) => error as Error & { code?: string },
        ),
        8000,
        'the keep-alive verdict',
      );
      clearInterval(watch);
      assert.equal(ended?.code, 'ERR_MUX_KEEPALIVE_TIMEOUT');
      // At most the bound, and twice the bound from the probes, in chunk costs (224 bytes each): under 15,000
      // chunks of a byte. Eight times the credit of 256 channels was a share of 512 MiB (2,000,000 chunks read).
      assert.ok(peak < 20_000, `${peak} one-byte chunks held`);
    } finally {
      session.destroy();
      peer.socket.destroy();
    }
  });

  test("a peer's ping that arrives behind 40 refused SYNs in one read is still answered (the bound on queued answers counts answers only)", async () => {
    const { peer, session } = await rawAgainstServer();
    try {
      session.goAway(); // every SYN from now on is refused
      await until(() => peer.goAwayCode === GoAwayCode.normal, 2000, 'the Go Away');
      const frames: Buffer[] = [];
      for (let i = 0; i < 40; i++) frames.push(frame(W, Flag.syn, 1 + 2 * i, 0));
      frames.push(frame(FrameType.ping, Flag.syn, 0, 777));
      peer.send(...frames);
      await until(
        () => peer.frames.some((f) => f.type === FrameType.ping && f.flags === Flag.ack && f.length === 777),
        2000,
        'the answer to ping 777',
      );
      assert.equal(peer.frames.filter((f) => (f.flags & Flag.rst) !== 0).length, 40, 'every SYN refused');
    } finally {
      session.destroy();
    }
  });

  test('pings that arrive together while the transport takes writes are all answered (a peer pinging from many callers at once)', async () => {
    const transport = new FakeTransport();
    const session = new MuxSession<Channel>(
      transport,
      'server',
      { keepAliveInterval: 0 },
      (state, s) => new Channel(state, s),
    );
    try {
      await new Promise((resolve) => setImmediate(resolve));
      transport.feed(
        Buffer.concat(Array.from({ length: 200 }, (_, j) => frame(FrameType.ping, Flag.syn, 0, 1000 + j))),
      );
      await new Promise((resolve) => setImmediate(resolve));
      const answered = parseFrames(transport.output())
        .filter((f) => f.type === FrameType.ping && f.flags === Flag.ack)
        .map((f) => f.length);
      assert.deepEqual(
        answered,
        Array.from({ length: 200 }, (_, j) => 1000 + j),
        'every ping answered, in order',
      );
      assert.equal(session.state, 'open');
    } finally {
      session.destroy();
    }
  });

  test('a ping flood while the transport is blocked queues at most 32 answers; answering resumes after drain', async () => {
    // A transport driven by hand, so that "blocked" is exact: every write reports backpressure until drain().
    const transport = new FakeTransport();
    transport.blocked = true;
    const session = new MuxSession<Channel>(
      transport,
      'server',
      { keepAliveInterval: 0 },
      (state, s) => new Channel(state, s),
    );
    const pongs = (): number[] =>
      parseFrames(transport.output())
        .filter((f) => f.type === FrameType.ping && f.flags === Flag.ack)
        .map((f) => f.length);
    try {
      await new Promise((resolve) => setImmediate(resolve)); // the opening ping goes out, and blocks the transport
      for (let i = 0; i < 50; i++) {
        transport.feed(
          Buffer.concat(Array.from({ length: 100 }, (_, j) => frame(FrameType.ping, Flag.syn, 0, 100 * i + j))),
        );
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.equal(session.state, 'open');
      assert.deepEqual(pongs(), [], 'nothing is written while the transport is blocked');
      transport.drain();
      await new Promise((resolve) => setImmediate(resolve));
      const answered = pongs();
      assert.ok(answered.length >= 1 && answered.length <= 32, `${answered.length} answers queued for 5,000 pings`);
      assert.deepEqual(
        answered,
        answered.map((_, i) => i),
        'the first pings are answered, in order',
      );
      // Unblocked, each ping gets its answer again.
      transport.feed(
        Buffer.concat([frame(FrameType.ping, Flag.syn, 0, 90_001), frame(FrameType.ping, Flag.syn, 0, 90_002)]),
      );
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(pongs().slice(-2), [90_001, 90_002]);
    } finally {
      session.destroy();
    }
  });

  test('a SYN flood beyond the backlog is refused with RST, memory stays bounded', async () => {
    const { peer, session } = await rawAgainstServer(true, { acceptBacklog: 16, maxStreams: 64 });
    const syns = Array.from({ length: 2000 }, (_, i) => frame(W, Flag.syn, 2 * i + 1, 0));
    const memory = async (): Promise<number> => {
      const { heapUsed, arrayBuffers } = await settledMemory();
      return heapUsed + arrayBuffers;
    };
    const before = await memory();
    peer.send(...syns);
    await until(() => peer.frames.filter((f) => (f.flags & Flag.rst) !== 0).length === 2000 - 16, 3000, 'refusals');
    assert.equal(session.channelCount, 16);
    assert.equal(session.state, 'open');
    // What is left of 1,984 refusals once answered: nothing but the 16 channels waiting in the backlog (the
    // raw peer keeps the 24 KB of RSTs it received). A refusal that kept 3 KiB would pass 4 MiB.
    const grown = (await memory()) - before;
    assert.ok(grown < 4 * MiB, `memory grew by ${mib(grown)} MiB`);
    session.destroy();
  });

  test('Go Away from the peer: dial() throws GoAwayError, the session stays open', async () => {
    const [raw, socket] = await tcpPair();
    const client = multiplexedClient(socket, { keepAliveInterval: 0 });
    const peer = new RawPeer(raw);
    peer.send(frame(FrameType.goAway, 0, 0, 0));
    await new Promise<number>((resolve) => client.once('goaway', resolve));
    assert.throws(() => client.dial(), { code: 'ERR_MUX_GO_AWAY' });
    assert.equal(client.state, 'open');
    client.destroy();
  });
});

describe('a transport that cannot pause (a browser WebSocket): the session fails rather than hold without bound', () => {
  // FakeTransport's pause() is only a flag: what is fed is delivered all the same, and it says so (cannotPause).
  async function feedUntilFailed(
    session: LightSession,
    transport: FakeTransport,
    chunks: () => Iterable<Buffer>,
  ): Promise<{ error: Error & { code?: string }; peak: number }> {
    let peak = 0;
    let failed: (Error & { code?: string }) | undefined;
    session.closed.catch((error: unknown) => (failed = error as Error));
    let count = 0;
    for (const chunk of chunks()) {
      transport.feed(chunk); // each its own read: nothing joined across them
      peak = Math.max(peak, session.bufferedBytes);
      if (failed !== undefined || session.state === 'closed') break;
      if (++count % 5000 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(failed !== undefined, `the session is ${session.state} after ${count} reads`);
    return { error: failed, peak };
  }

  for (const shape of ['100 channels, each sent its 256 KiB window', 'one channel sent its 32 MiB window'] as const) {
    test(`over TCP (it pauses), a peer within its windows is never taken for one: ${shape}, unread under a 1 MiB bound through several probes, then read exactly`, async () => {
      const many = shape.startsWith('100');
      const window = many ? 256 * 1024 : 32 * 1024 * 1024;
      const options = { maxSessionBuffered: 1024 * 1024, keepAliveInterval: 500, keepAliveTimeout: 1000 };
      const pair = await sessionPair({
        transport: 'tcp',
        client: options,
        server: { ...options, initialWindow: window, maxWindow: Math.max(window, 64 * 1024 * 1024) },
      });
      try {
        const count = many ? 100 : 1;
        const sent: Buffer[] = [];
        for (let i = 0; i < count; i++) {
          sent.push(pseudoRandomBytes(window, i));
          pair.client.dial().end(sent[i]);
        }
        const accepted: Channel[] = [];
        for (let i = 0; i < count; i++) accepted.push(await within(pair.server.accept(), 5000, 'a channel'));
        // Paused at the bound, the session probes every 500 ms, and the probes read what the windows allowed.
        await until(
          () => pair.server.bufferedBytes > 21 * 1024 * 1024 || pair.server.state === 'closed',
          15_000,
          'the probes to read past four times the bound and 16 MiB',
        );
        await new Promise((resolve) => setTimeout(resolve, 500));
        assert.equal(pair.server.state, 'open', String(pair.server.closeError));
        const received = await Promise.all(accepted.map((channel) => readAll(channel)));
        for (let i = 0; i < count; i++) assert.ok(received[i]!.equals(sent[i]!), `channel ${accepted[i]!.id}`);
      } finally {
        await pair.close();
      }
    });
  }

  test('yamux: one-byte frames within the window, each in a read of its own, past four times maxSessionBuffered in chunk costs: ProtocolError, not a million chunks', async () => {
    const transport = Object.assign(new FakeTransport(), { cannotPause: true }); // (its pause() is only a flag)
    const session = new LightSession(transport, 'server', { keepAliveInterval: 0, maxSessionBuffered: 1024 * 1024 });
    session.on('channel', () => {}); // taken, never read
    transport.feed(frame(W, Flag.syn, 1, 0));
    const one = frame(D, 0, 1, Buffer.from([7]));
    const { error, peak } = await feedUntilFailed(session, transport, function* () {
      for (let i = 0; i < 250_000; i++) yield one; // within the 256 KiB window: no rule broken
    });
    assert.equal(error.code, 'ERR_MUX_PROTOCOL');
    assert.match(error.message, /maxSessionBuffered/);
    // Four times 1 MiB and 16 MiB, in chunks of a byte and 224 bytes of cost each: about 93,000 (fewer when the
    // read time slice left some in the decoder, which count too: a loaded machine held 79,606).
    assert.ok(peak < 100_000 && peak > 70_000, `${peak} one-byte chunks held at most`);
    session.destroy();
  });

  test('multiplex (no windows): a channel nobody reads, 64 KiB frames past four times maxSessionBuffered: ProtocolError, not all of them', async () => {
    const transport = Object.assign(new FakeTransport(), { cannotPause: true }); // (its pause() is only a flag)
    const session = new LightSession(transport, 'server', {
      keepAliveInterval: 0,
      maxSessionBuffered: 1024 * 1024,
      protocol: 'multiplex',
    });
    session.on('channel', () => {}); // taken, never read
    const header = (id: number, flags: number, length: number): Buffer => {
      const bytes = Buffer.alloc(8);
      bytes.writeUInt32BE(id, 0);
      bytes.writeUInt32BE(flags * 0x1000000 + length, 4);
      return bytes;
    };
    transport.feed(header(3, 1, 0));
    const data = Buffer.concat([header(3, 0, 64 * 1024), Buffer.alloc(64 * 1024, 1)]);
    const { error, peak } = await feedUntilFailed(session, transport, function* () {
      for (let i = 0; i < 1000; i++) yield data; // 64 MiB
    });
    assert.equal(error.code, 'ERR_MUX_PROTOCOL');
    assert.ok(peak <= 21 * 1024 * 1024, `${(peak / 1048576).toFixed(1)} MiB held at most`);
    session.destroy();
  });
});

test('keep-alive: a silent peer fails the session with ERR_MUX_KEEPALIVE_TIMEOUT in time', async () => {
  const [raw, socket] = await tcpPair();
  const peer = new RawPeer(raw, false);
  const started = Date.now();
  const client = multiplexedClient(socket, { keepAliveInterval: 100, keepAliveTimeout: 200 });
  const error = await new Promise<Error | undefined>((resolve) => client.on('close', resolve));
  const elapsed = Date.now() - started;
  assert.ok(error instanceof TimeoutError);
  assert.equal(error.code, 'ERR_MUX_KEEPALIVE_TIMEOUT');
  assert.ok(elapsed >= 190 && elapsed < 2000, `detected after ${elapsed} ms`);
  assert.ok(peer.frames.some((f) => f.type === FrameType.ping && f.flags === Flag.syn));
});

test('keep-alive: a live peer that answers is never declared dead', async () => {
  // Three timeouts' worth of pings, every one answered: a session that did not clear its deadline on each
  // answer would fail within the first timeout. The timeout (500 ms) leaves room for the event loop of a busy
  // shared machine, where 100 ms once risked a pause in the test process itself looking like a dead peer.
  const timeout = 500;
  const [raw, socket] = await tcpPair();
  const peer = new RawPeer(raw, true);
  const client = multiplexedClient(socket, { keepAliveInterval: 20, keepAliveTimeout: timeout });
  const started = performance.now();
  const pings = (): number => peer.frames.filter((f) => f.type === FrameType.ping && f.flags === Flag.syn).length;
  await until(
    () => (performance.now() - started >= 3 * timeout && pings() >= 10) || client.state !== 'open',
    10_000,
    'three timeouts of pings',
  );
  assert.equal(client.state, 'open', client.closeError?.message);
  assert.ok(pings() >= 10, `${pings()} pings answered`);
  assert.ok(client.rtt !== undefined);
  client.destroy();
});

test('ping() gets a deadline even with keep-alive off: an unanswered ping fails the session in time', async () => {
  const [raw, socket] = await tcpPair();
  new RawPeer(raw, false);
  const client = multiplexedClient(socket, { keepAliveInterval: 0, keepAliveTimeout: 150 });
  await assert.rejects(client.ping(), { code: 'ERR_MUX_KEEPALIVE_TIMEOUT' });
  assert.equal(client.state, 'closed');
});

test('a peer that holds a session under memory pressure while channels come and go: the channels that left are let go', async () => {
  const [a, b] = await tcpPair();
  // The quiet update comes a quarter of keepAliveTimeout after a read: 100 ms here.
  const server = lightServer(b, { maxSessionBuffered: MiB, keepAliveTimeout: 400, memoryBudget: null });
  const client = lightClient(a, { memoryBudget: null });
  const refs: WeakRef<object>[] = [];
  server.on('channel', (channel) => {
    refs.push(new WeakRef(channel));
    channel.on('error', () => {});
    channel.on('data', (data: Uint8Array) => {
      if (!channel.write(data)) {
        channel.pause();
        channel.once('drain', () => channel.resume());
      }
    });
    channel.on('end', () => channel.end());
  });
  try {
    // Three echoes the client never reads: the server holds 768 KiB of its 1 MiB bound unread (pressure).
    const stalled = Array.from({ length: 3 }, () => {
      const channel = client.dial();
      channel.on('error', () => {});
      channel.write(new Uint8Array(MiB));
      return channel;
    });
    await until(() => server.bufferedBytes > MiB / 2, 5000, 'the server under pressure');
    // Channels that send a byte after the quiet update's interval (each owed an update that pressure withholds),
    // then end.
    const churned = 300;
    await Promise.all(
      Array.from({ length: churned }, async () => {
        const channel = client.dial();
        channel.on('error', () => {});
        channel.on('data', () => {});
        await new Promise((resolve) => setTimeout(resolve, 150));
        const closed = once(channel, 'close');
        channel.end(new Uint8Array([1]));
        await within(closed, 5000, 'a churned channel closed');
      }),
    );
    assert.ok(server.bufferedBytes > MiB / 2, 'still under pressure');
    for (let i = 0; i < 5; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      collectGarbage();
    }
    const kept = refs.filter((ref) => ref.deref() !== undefined).length;
    // Before: every channel that was withheld an update stayed in the withheld list until memory was relieved.
    assert.ok(kept <= stalled.length + 30, `${kept} of ${refs.length} server channels still reachable`);
    assert.equal(server.channelCount, stalled.length);
  } finally {
    client.destroy();
    server.destroy();
  }
});
