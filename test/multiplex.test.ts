/**
 * The codec of the original Go package `alecthomas/multiplex`: golden bytes captured from the original,
 * fragmentation, the full-close semantics of its RST, and backpressure without windows.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { FrameDecoder } from '../src/core/decoder.js';
import { MULTIPLEX_FRAGMENT, multiplexCodec } from '../src/core/codecs/multiplex.js';
import { Flag } from '../src/core/frame.js';
import {
  type Channel,
  type LightChannel,
  lightClient,
  lightServer,
  multiplexedClient,
  multiplexedServer,
} from '../src/index.js';
import { Duplex } from 'node:stream';
import { WebSession, streamTransport } from '../src/web/index.js';
import { memoryPipe, pseudoRandomBytes, readAll, tcpPair, until, within } from './helpers.js';

// (compiled to dist/test/: the fixtures stay in test/fixtures/)
const vectors = fileURLToPath(new URL('../../test/fixtures/multiplex/', import.meta.url));
const clientBytes = readFileSync(`${vectors}client-to-server.bin`);
const serverBytes = readFileSync(`${vectors}server-to-client.bin`);
const pattern = Buffer.from(Array.from({ length: 1024 }, (_, i) => i % 256));
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface MuxFrame {
  id: number;
  flags: number;
  payload: Buffer;
}

/** Splits bytes of the multiplex format into frames (independently of the codec under test). */
function muxFrames(bytes: Buffer): MuxFrame[] {
  const frames: MuxFrame[] = [];
  for (let offset = 0; offset + 8 <= bytes.length;) {
    const length = bytes.readUIntBE(offset + 5, 3);
    frames.push({
      id: bytes.readUInt32BE(offset),
      flags: bytes[offset + 4]!,
      payload: bytes.subarray(offset + 8, offset + 8 + length),
    });
    offset += 8 + length;
  }
  return frames;
}

const OPTIONS = { protocol: 'multiplex' } as const;

describe('golden bytes from the original Go package', () => {
  test('the vectors decode to the recorded scenario', () => {
    const events: string[] = [];
    const decoder = new FrameDecoder(
      {
        onHeader: (h) =>
          events.push(`${h.flags & Flag.syn ? 'SYN' : h.flags & Flag.fin ? 'RST' : 'DATA'}(${h.streamId},${h.length})`),
        onPayload: () => {},
        onFrameEnd: () => {},
        onDecodeError: (m) => events.push(`error ${m}`),
      },
      multiplexCodec,
    );
    decoder.push(clientBytes);
    assert.deepEqual(events, ['SYN(3,0)', 'DATA(3,5)', 'SYN(5,0)', 'DATA(5,1024)', 'RST(3,0)', 'RST(5,0)']);
    events.length = 0;
    decoder.push(serverBytes);
    assert.deepEqual(events, ['DATA(3,5)', 'DATA(5,1024)', 'RST(3,0)', 'RST(5,0)']);
  });

  test('muxwire as the echo server writes byte for byte what the original server wrote', async () => {
    const [raw, socket] = memoryPipe();
    const written: Buffer[] = [];
    raw.on('data', (chunk: Buffer) => written.push(chunk));
    const server = multiplexedServer(socket, OPTIONS);
    server.on('channel', (channel) => channel.pipe(channel));
    const frames = muxFrames(clientBytes);
    const bytesOf = (...fs: MuxFrame[]): Buffer =>
      Buffer.concat(
        fs.map((f) =>
          Buffer.concat([
            Buffer.from([0, 0, 0, f.id, f.flags, 0, f.payload.length >> 8, f.payload.length & 0xff]),
            f.payload,
          ]),
        ),
      );
    const total = (): number => Buffer.concat(written).length;
    raw.write(bytesOf(frames[0]!, frames[1]!));
    await until(() => total() === 13, 2000, 'echo of hello');
    raw.write(bytesOf(frames[2]!, frames[3]!));
    await until(() => total() === 13 + 1032, 2000, 'echo of 1024 bytes');
    raw.write(bytesOf(frames[4]!, frames[5]!));
    await until(() => total() === serverBytes.length, 2000, 'closing frames');
    assert.equal(Buffer.concat(written).toString('hex'), serverBytes.toString('hex'));
    assert.equal(server.channelCount, 0);
    server.destroy();
  });

  test('muxwire as the client writes byte for byte what the original client wrote', async () => {
    const [raw, socket] = memoryPipe();
    const written: Buffer[] = [];
    raw.on('data', (chunk: Buffer) => written.push(chunk));
    const client = multiplexedClient(socket, OPTIONS);
    const replies = muxFrames(serverBytes);
    const total = (): number => Buffer.concat(written).length;
    const send = (f: MuxFrame): void => {
      raw.write(
        Buffer.concat([
          Buffer.from([0, 0, 0, f.id, f.flags, 0, f.payload.length >> 8, f.payload.length & 0xff]),
          f.payload,
        ]),
      );
    };
    const readExactly = (channel: Channel, n: number): Promise<Buffer> =>
      new Promise((resolve) => {
        const chunks: Buffer[] = [];
        const onData = (c: Buffer): void => {
          chunks.push(c);
          if (Buffer.concat(chunks).length >= n) {
            channel.off('data', onData);
            resolve(Buffer.concat(chunks));
          }
        };
        channel.on('data', onData);
      });

    const three = client.dial();
    assert.equal(three.id, 3, "the original client's first id is 3");
    const hello = readExactly(three, 5);
    three.write('hello');
    await until(() => total() === 21, 2000, 'SYN and hello');
    send(replies[0]!);
    assert.equal((await hello).toString(), 'hello');

    const five = client.dial();
    assert.equal(five.id, 5);
    const echoed = readExactly(five, 1024);
    five.write(pattern);
    await until(() => total() === 21 + 8 + 1032, 2000, 'SYN and 1024 bytes');
    send(replies[1]!);
    assert.ok((await echoed).equals(pattern));

    three.end();
    five.end();
    await until(() => total() === clientBytes.length, 2000, 'closing frames');
    send(replies[2]!);
    send(replies[3]!);
    three.resume();
    five.resume();
    await until(() => client.channelCount === 0, 2000, 'channels closed');
    assert.equal(Buffer.concat(written).toString('hex'), clientBytes.toString('hex'));
    client.destroy();
  });
});

describe('multiplex codec behaviour', () => {
  test('writes of any size arrive exactly, in frames of at most 1,024 bytes', async () => {
    const [a, b] = memoryPipe();
    const wire: Buffer[] = [];
    b.on('data', (chunk: Buffer) => wire.push(chunk));
    const client = multiplexedClient(a, OPTIONS);
    const server = multiplexedServer(b, OPTIONS);
    const sizes = [1, 1023, 1024, 1025, 2047, 2048, 2049, 1 << 20];
    const received = new Map<number, Promise<Buffer>>();
    server.on('channel', (c) => received.set(c.id, readAll(c)));
    const payloads = sizes.map((n, i) => pseudoRandomBytes(n, i + 1));
    const channels = payloads.map((p) => {
      const c = client.dial();
      c.write(p);
      return c;
    });
    await until(() => received.size === sizes.length, 2000, 'channels');
    // The original has no half-close, so the reader learns the end only when the writer closes entirely.
    for (const c of channels) c.end();
    for (const [i, c] of channels.entries())
      assert.equal(sha(await received.get(c.id)!), sha(payloads[i]!), `size ${sizes[i]}`);
    const frames = muxFrames(Buffer.concat(wire));
    assert.ok(frames.every((f) => f.payload.length <= MULTIPLEX_FRAGMENT));
    assert.equal(
      frames.filter((f) => f.flags === 0).reduce((n, f) => n + f.payload.length, 0),
      sizes.reduce((n, s) => n + s, 0),
    );
    client.destroy();
    server.destroy();
  });

  test('end() closes both directions: the peer reads its end, its channel closes, and it cannot write any more', async () => {
    const [a, b] = memoryPipe();
    const client = multiplexedClient(a, OPTIONS);
    const server = multiplexedServer(b, OPTIONS);
    const inboundP = new Promise<Channel>((resolve) => server.on('channel', resolve));
    const channel = client.dial();
    channel.end('request');
    const inbound = await inboundP;
    const events: string[] = [];
    for (const event of ['end', 'finish', 'close']) inbound.on(event, () => events.push(event));
    assert.equal((await readAll(inbound)).toString(), 'request');
    // As a socket without allowHalfOpen: its writing ends after 'end', and the channel closes.
    await until(() => inbound.destroyed, 2000, "the peer's channel closed");
    assert.deepEqual(events, ['end', 'finish', 'close']);
    const writeError = await new Promise<Error | null | undefined>((resolve) => inbound.write('too late', resolve));
    assert.ok(writeError instanceof Error, 'a write after the close fails');
    channel.resume();
    await until(() => client.channelCount === 0 && server.channelCount === 0, 2000, 'both forgotten');
    client.destroy();
    server.destroy();
  });

  test("a write before the peer's close was read fails the channel as a reset: 'error' only for a listener, no crash", async () => {
    for (const listening of [true, false]) {
      const [raw, socket] = await tcpPair();
      const session = multiplexedServer(socket, { ...OPTIONS, keepAliveInterval: 0 });
      try {
        const accepted = new Promise<Channel>((resolve) => session.on('channel', resolve));
        // SYN, "hello" and the peer's close (RST) in one write, as the original's Write racing its Close.
        raw.write(Buffer.from('0000000301000000' + '0000000300000005' + '68656c6c6f' + '0000000302000000', 'hex'));
        const channel = await accepted;
        const errors: Error[] = [];
        if (listening) channel.on('error', (error) => errors.push(error));
        const replied = new Promise<Error | null | undefined>((resolve) =>
          channel.once('data', (data: Buffer) => channel.write(data, resolve)),
        );
        const writeError = await replied;
        assert.equal((writeError as { code?: string } | null | undefined)?.code, 'ERR_MUX_WRITE_AFTER_END');
        await until(() => channel.destroyed, 2000, 'the channel closed');
        if (listening) {
          assert.equal(errors.length, 1);
          assert.match(errors[0]!.message, /closed by the peer/);
        }
        assert.equal(session.state, 'open');
      } finally {
        session.destroy();
        raw.destroy();
      }
    }
  });

  test("a channel the peer closed closes here once read (Node and light channels), and its 'close' comes", async () => {
    for (const kind of ['node', 'light'] as const) {
      const [raw, socket] = await tcpPair();
      const session =
        kind === 'node'
          ? multiplexedServer(socket, { ...OPTIONS, keepAliveInterval: 0 })
          : lightServer(socket, { ...OPTIONS, keepAliveInterval: 0 });
      try {
        const accepted = session.accept();
        raw.write(Buffer.from('0000000301000000' + '0000000300000002' + '6869' + '0000000302000000', 'hex'));
        const channel = await accepted;
        const events: string[] = [];
        for (const event of ['end', 'finish', 'close', 'error'] as const) {
          (channel as Channel).on(event, () => events.push(event));
        }
        (channel as Channel).on('data', () => {});
        await until(() => events.includes('close'), 2000, `the ${kind} channel's 'close'`);
        assert.deepEqual(events, ['end', 'finish', 'close'], kind);
        assert.equal(session.channelCount, 0);
      } finally {
        session.destroy();
        raw.destroy();
      }
    }
  });

  test("a write after the peer's close ended writing here (before the channel closed) fails the channel as a reset: no throw, no untyped 'error'", async () => {
    // A transport whose writes complete 30 ms late (a TLS socket, a slow stream): the channel is between 'end'
    // and 'close' for that long, its earlier write still waiting.
    const slowPair = (): [Duplex, Duplex] => {
      const ends: Duplex[] = [];
      for (const delay of [30, 0]) {
        const index = ends.length;
        ends.push(
          new Duplex({
            read() {},
            write(chunk: Buffer, _encoding, callback) {
              ends[1 - index]!.push(chunk);
              setTimeout(callback, delay);
            },
            final(callback) {
              ends[1 - index]!.push(null);
              callback();
            },
          }),
        );
      }
      return [ends[0]!, ends[1]!];
    };
    for (const kind of ['node', 'light'] as const) {
      for (const listening of [true, false]) {
        const [a, b] = slowPair();
        const client = kind === 'node' ? multiplexedClient(a, OPTIONS) : lightClient(a, OPTIONS);
        const server = multiplexedServer(b, OPTIONS);
        server.on('channel', (channel: Channel) => channel.on('data', () => channel.end())); // read, then close
        try {
          const channel = client.dial();
          const errors: string[] = [];
          if (listening) channel.on('error', (error: unknown) => errors.push((error as { code: string }).code));
          channel.on('data', () => {});
          channel.write(Buffer.from('request')); // its transport callback comes 30 ms later
          await within(new Promise<void>((resolve) => channel.once('end', () => resolve())), 2000, "the peer's close");
          await new Promise((resolve) => setTimeout(resolve, 5));
          assert.equal(channel.destroyed, false, `${kind}: still waiting for the earlier write`);
          const callbacks: (string | undefined)[] = [];
          let returned: boolean | undefined;
          assert.doesNotThrow(() => {
            returned =
              kind === 'node'
                ? (channel as Channel).write('more', (error) => callbacks.push((error as { code?: string })?.code))
                : (channel as LightChannel).write(Buffer.from('more'));
          }, `${kind}: the write does not throw`);
          assert.equal(returned, false);
          await until(() => channel.destroyed, 2000, `${kind}: the channel closed`);
          await new Promise((resolve) => setImmediate(resolve));
          assert.equal((channel.failure as { code?: string } | undefined)?.code, 'ERR_MUX_WRITE_AFTER_END', kind);
          assert.deepEqual(
            errors,
            listening ? ['ERR_MUX_WRITE_AFTER_END'] : [],
            `${kind}: 'error' only for a listener`,
          );
          if (kind === 'node') assert.deepEqual(callbacks, ['ERR_MUX_WRITE_AFTER_END']);
        } finally {
          client.destroy();
          server.destroy();
          a.destroy();
          b.destroy();
        }
      }
    }
  });

  /** A multiplex frame: id, flags (1 SYN, 2 RST), 24-bit length, payload. */
  const frame = (id: number, flags: number, payload: Buffer = Buffer.alloc(0)): Buffer =>
    Buffer.concat([
      Buffer.from([id >>> 24, (id >> 16) & 0xff, (id >> 8) & 0xff, id & 0xff, flags]),
      Buffer.from([payload.length >> 16, (payload.length >> 8) & 0xff, payload.length & 0xff]),
      payload,
    ]);

  test('channels the peer opened, wrote to and closed before the application took them are handed over with their data', async () => {
    for (const kind of ['node', 'light'] as const) {
      const [raw, socket] = await tcpPair();
      const options = { ...OPTIONS, keepAliveInterval: 0 };
      const session = kind === 'node' ? multiplexedServer(socket, options) : lightServer(socket, options);
      try {
        // The original's README client: Dial, Write, Close at once, three times.
        raw.write(
          Buffer.concat([3, 5, 7].flatMap((id) => [frame(id, 1), frame(id, 0, Buffer.from(`hi ${id}`)), frame(id, 2)])),
        );
        await new Promise((resolve) => setTimeout(resolve, 200)); // the application comes late
        const got: string[] = [];
        for (let i = 0; i < 3; i++) {
          const channel = (await within<Channel | LightChannel>(
            session.accept(),
            2000,
            `${kind}: channel ${i + 1} of 3`,
          )) as Channel;
          const chunks: Buffer[] = [];
          for await (const chunk of channel) chunks.push(Buffer.from(chunk as Uint8Array));
          got.push(Buffer.concat(chunks).toString());
        }
        assert.deepEqual(got, ['hi 3', 'hi 5', 'hi 7'], kind);
        await until(() => session.channelCount === 0, 2000, `the ${kind} channels leave once read`);
      } finally {
        session.destroy();
        raw.destroy();
      }
    }
  });

  test("after this side's close (a RST on this format), no second RST: not on destroy(), nor for data still in flight", async () => {
    for (const how of ['destroy after finish', 'closeRead and end'] as const) {
      const [raw, socket] = await tcpPair();
      const session = multiplexedServer(socket, { ...OPTIONS, keepAliveInterval: 0 });
      const seen: Buffer[] = [];
      raw.on('data', (chunk: Buffer) => seen.push(chunk));
      try {
        const accepted = new Promise<Channel>((resolve) => session.on('channel', resolve));
        raw.write(Buffer.concat([frame(3, 1), frame(3, 0, Buffer.from('x'))]));
        const channel = await accepted;
        channel.on('error', () => {});
        if (how === 'destroy after finish') {
          channel.end('bye', () => channel.destroy());
        } else {
          channel.closeRead();
          channel.end();
          await new Promise((resolve) => setTimeout(resolve, 50));
          raw.write(frame(3, 0, Buffer.alloc(4096, 1))); // the peer's data, sent before it heard of the close
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
        const resets = muxFrames(Buffer.concat(seen)).filter((f) => f.id === 3 && f.flags === 2);
        assert.equal(resets.length, 1, `${how}: one RST for channel 3`);
        assert.equal(session.state, 'open');
      } finally {
        session.destroy();
        raw.destroy();
      }
    }
  });

  test('unread bytes of channels the peer closed still count against maxSessionBuffered: reading pauses, memory stays bounded', async () => {
    const [raw, socket] = await tcpPair();
    const maxSessionBuffered = 2 * 1024 * 1024;
    const session = multiplexedServer(socket, { ...OPTIONS, keepAliveInterval: 0, maxSessionBuffered });
    const held: Channel[] = [];
    session.on('channel', (channel) => held.push(channel)); // taken, never read
    try {
      const chunk = Buffer.alloc(200_000, 7);
      // 100 channels of 200 kB each, every one closed by the peer at once: 20 MB in all.
      const flood = Buffer.concat(
        Array.from({ length: 100 }, (_, i) => 3 + 2 * i).flatMap((id) => [
          frame(id, 1),
          frame(id, 0, chunk),
          frame(id, 2),
        ]),
      );
      raw.write(flood);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const unread = held.reduce((sum, c) => sum + c.readableLength, 0);
      assert.ok(unread <= maxSessionBuffered + 256 * 1024, `${unread} bytes held unread`);
      assert.equal(session.bufferedBytes, unread, 'the session counts what its channels hold');
      assert.ok(held.length < 100, `${held.length} channels taken: reading paused`);
      // Reading them lets the rest in, and each leaves once read.
      for (const c of held) c.resume();
      session.on('channel', (c) => c.resume());
      await until(() => held.length === 100 && session.channelCount === 0, 10_000, 'every channel read and gone');
    } finally {
      session.destroy();
      raw.destroy();
    }
  });

  test('a channel the peer closed and this side has not read yet does not hold close(), nor fail when the transport ends', async () => {
    for (const ending of ['close()', 'the peer ends the transport'] as const) {
      const [raw, socket] = await tcpPair();
      const session = multiplexedServer(socket, { ...OPTIONS, keepAliveInterval: 0, closeTimeout: 5000 });
      try {
        const accepted = new Promise<Channel>((resolve) => session.on('channel', resolve));
        raw.write(Buffer.concat([frame(3, 1), frame(3, 0, Buffer.from('kept')), frame(3, 2)]));
        const channel = await accepted;
        const errors: Error[] = [];
        channel.on('error', (error) => errors.push(error));
        await until(() => session.channelCount === 1, 1000, 'the channel held');
        const started = performance.now();
        if (ending === 'close()') {
          raw.on('data', () => {});
          raw.on('end', () => raw.end());
          await session.close();
        } else {
          raw.end();
        }
        await session.closed; // resolves: nothing was open on the wire
        assert.ok(
          performance.now() - started < 2000,
          `${ending}: ended in ${(performance.now() - started).toFixed(0)} ms`,
        );
        assert.equal((await readAll(channel)).toString(), 'kept', ending);
        assert.deepEqual(errors, [], ending);
      } finally {
        session.destroy();
        raw.destroy();
      }
    }
  });

  test('a channel kept after both closes leaves when destroyed unread, even with its own close still queued', async () => {
    const [raw, socket] = await tcpPair();
    const session = multiplexedServer(socket, { ...OPTIONS, keepAliveInterval: 0 });
    const channels: Channel[] = [];
    session.on('channel', (c) => channels.push(c.on('error', () => {})));
    try {
      raw.pause(); // the peer reads nothing for now: this side's frames back up
      raw.write(Buffer.concat([frame(3, 1), frame(5, 1)]));
      await until(() => channels.length === 2, 2000, 'two channels');
      channels[0]!.write(Buffer.alloc(32 * 1024 * 1024, 1)); // fills the transport
      await new Promise((resolve) => setTimeout(resolve, 100));
      raw.write(Buffer.concat([frame(5, 0, Buffer.alloc(5000, 2)), frame(5, 2)])); // data and the peer's close
      await until(() => channels[1]!.readableLength === 5000, 2000, 'the data arrived');
      channels[1]!.destroy(); // unread, while this side's close still waits behind channel 3's bytes
      channels[0]!.destroy();
      raw.resume();
      raw.on('data', () => {});
      await until(() => session.channelCount === 0 && session.bufferedBytes === 0, 5000, 'both gone, nothing counted');
    } finally {
      session.destroy();
      raw.destroy();
    }
  });

  test("a write to a kept channel fails it and takes it out of the session (light channel; a WebChannel's write too)", async () => {
    const [raw, socket] = await tcpPair();
    const session = lightServer(socket, { ...OPTIONS, keepAliveInterval: 0 });
    try {
      const accepted = session.accept();
      raw.write(Buffer.concat([frame(3, 1), frame(3, 0, Buffer.from('request')), frame(3, 2)]));
      const channel = await accepted;
      const errors: string[] = [];
      channel.on('error', (error) => errors.push((error as { code?: string }).code ?? ''));
      await new Promise((resolve) => setTimeout(resolve, 50)); // the peer's close has arrived
      assert.equal(channel.write(Buffer.from('reply')), false);
      await until(() => session.channelCount === 0, 2000, 'the channel out of the session');
      assert.deepEqual(errors, ['ERR_MUX_WRITE_AFTER_END'], 'the write failed the channel, not in silence');
    } finally {
      session.destroy();
      raw.destroy();
    }
    // The same for a WebChannel (a page's session speaking the original's format).
    const [raw2, socket2] = await tcpPair();
    const web = new WebSession(streamTransport(Duplex.toWeb(socket2)), 'server', {
      ...OPTIONS,
      multiplexCodec,
      keepAliveInterval: 0,
    });
    try {
      raw2.write(Buffer.concat([frame(3, 1), frame(3, 0, Buffer.from('request')), frame(3, 2)]));
      const channel = await web.accept();
      await new Promise((resolve) => setTimeout(resolve, 50));
      const writer = channel.writable.getWriter();
      await writer.write(new TextEncoder().encode('reply')).catch(() => {});
      await until(() => web.channelCount === 0 && web.bufferedBytes === 0, 2000, 'the WebChannel out of the session');
      assert.equal((channel.failure as { code?: string } | undefined)?.code, 'ERR_MUX_WRITE_AFTER_END');
    } finally {
      web.destroy();
      raw2.destroy();
    }
  });

  test("a WebChannel's write after the peer's close is refused (the write rejects, typed), not taken and dropped", async () => {
    const [raw, socket] = await tcpPair();
    const received: Buffer[] = [];
    raw.on('data', (chunk: Buffer) => received.push(chunk));
    const web = new WebSession(streamTransport(Duplex.toWeb(socket)), 'server', {
      ...OPTIONS,
      multiplexCodec,
      keepAliveInterval: 0,
    });
    try {
      raw.write(Buffer.concat([frame(3, 1), frame(3, 0, Buffer.from('request')), frame(3, 2)]));
      const channel = await within(web.accept(), 2000, 'the channel');
      const reader = channel.readable.getReader();
      assert.equal(Buffer.from((await reader.read()).value!).toString(), 'request');
      assert.equal((await reader.read()).done, true, "the peer's close ends the readable");
      const writer = channel.writable.getWriter();
      // A write before the peer's close was seen would have gone out; this one cannot, and says so.
      const outcome = await within(
        writer.write(new TextEncoder().encode('reply')).then(
          () => 'resolved',
          (error: unknown) => (error as { code?: string }).code,
        ),
        2000,
        'the write to settle',
      );
      assert.equal(outcome, 'ERR_MUX_WRITE_AFTER_END');
      assert.equal((channel.failure as { code?: string } | undefined)?.code, 'ERR_MUX_WRITE_AFTER_END');
      await until(() => web.channelCount === 0, 2000, 'the channel out of the session');
      await new Promise((resolve) => setTimeout(resolve, 50));
      const frames = muxFrames(Buffer.concat(received));
      assert.deepEqual(
        frames.map((f) => [f.id, f.flags, f.payload.length]),
        [[3, 2, 0]],
        "this side's close, once, and no data",
      );
    } finally {
      web.destroy();
      raw.destroy();
    }
  });

  test('a WebChannel the peer closed: writer.close() without a write resolves, and only one close goes', async () => {
    const [raw, socket] = await tcpPair();
    const received: Buffer[] = [];
    raw.on('data', (chunk: Buffer) => received.push(chunk));
    const web = new WebSession(streamTransport(Duplex.toWeb(socket)), 'server', {
      ...OPTIONS,
      multiplexCodec,
      keepAliveInterval: 0,
    });
    try {
      raw.write(Buffer.concat([frame(3, 1), frame(3, 0, Buffer.from('request')), frame(3, 2)]));
      const channel = await within(web.accept(), 2000, 'the channel');
      const reader = channel.readable.getReader();
      while (!(await reader.read()).done);
      await within(channel.writable.getWriter().close(), 2000, "the writer's close");
      assert.equal(channel.failure, undefined);
      await until(() => web.channelCount === 0, 2000, 'the channel out of the session');
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(
        muxFrames(Buffer.concat(received)).map((f) => [f.id, f.flags]),
        [[3, 2]],
      );
    } finally {
      web.destroy();
      raw.destroy();
    }
  });

  test('a channel the peer closed that waits in the accept queue when the transport ends can still be accepted and read', async () => {
    for (const ending of ['end', 'reset'] as const) {
      const [raw, socket] = await tcpPair();
      const session = multiplexedServer(socket, { ...OPTIONS, keepAliveInterval: 0 });
      session.closed.catch(() => {});
      try {
        raw.write(Buffer.concat([frame(3, 1), frame(3, 0, Buffer.from('one-shot')), frame(3, 2)]));
        await until(() => session.channelCount === 1, 2000, 'queued');
        if (ending === 'end') raw.end();
        else raw.resetAndDestroy();
        await until(() => session.state === 'closed', 2000, 'the session ended');
        const channel = await session.accept();
        assert.equal((await readAll(channel)).toString(), 'one-shot', ending);
      } finally {
        session.destroy();
        raw.destroy();
      }
    }
  });

  test("channels the peer opened, wrote to and closed just before the transport's end (the original's client dialling, writing, closing, then exiting) are all handed over and read, none fails, and the session ends cleanly", async () => {
    // 1,000 of them in one write: more than the accept queue holds and than one read's time slice decodes, so
    // the session still holds input when the end comes, and the closes it answers then are not sent yet.
    const count = 1000;
    for (const style of ['accept() later', "'channel' listener", "light 'channel' listener"] as const) {
      const [raw, socket] = await tcpPair();
      const options = { ...OPTIONS, keepAliveInterval: 0 };
      const session = style.startsWith('light') ? lightServer(socket, options) : multiplexedServer(socket, options);
      const ended = session.closed.then(
        () => 'clean',
        (error: unknown) => `${(error as { code?: string }).code}: ${(error as Error).message}`,
      );
      const bodies = new Map<number, string>();
      const errors: string[] = [];
      const read = (channel: Channel | LightChannel): Promise<void> =>
        new Promise((resolve) => {
          let body = '';
          channel.on('data', (data: Uint8Array) => void (body += Buffer.from(data).toString()));
          channel.on('error', (error: Error) => {
            errors.push(`channel ${channel.id}: ${(error as { code?: string }).code}`);
            resolve();
          });
          channel.on('end', () => {
            bodies.set(channel.id, body);
            resolve();
          });
        });
      const reads: Promise<void>[] = [];
      if (style !== 'accept() later') session.on('channel', (channel) => reads.push(read(channel)));
      try {
        raw.on('error', () => {});
        raw.resume();
        const frames: Buffer[] = [];
        for (let i = 0; i < count; i++) {
          const id = 3 + 2 * i;
          frames.push(frame(id, 1), frame(id, 0, Buffer.from(`message ${i}`)), frame(id, 2));
        }
        raw.end(Buffer.concat(frames));
        if (style === 'accept() later') {
          await new Promise((resolve) => setTimeout(resolve, 300));
          for (let i = 0; i < count; i++) {
            const accepting = session.accept() as Promise<Channel | LightChannel>;
            const channel = await within(accepting, 2000, `channel ${i}`).catch((error: unknown) => error as Error);
            if (channel instanceof Error) {
              errors.push(`accept() ${i}: ${(channel as { code?: string }).code}`);
              break;
            }
            await read(channel);
          }
        } else {
          await until(() => reads.length === count, 5000, `${style}: every channel handed over`);
        }
        await within(Promise.all(reads), 5000, `${style}: the reads`);
        assert.deepEqual(errors, [], style);
        for (let i = 0; i < count; i++)
          assert.equal(bodies.get(3 + 2 * i), `message ${i}`, `${style}: channel ${3 + 2 * i}`);
        assert.equal(await within(ended, 5000, `${style}: the session's end`), 'clean', style);
      } finally {
        session.destroy();
        raw.destroy();
      }
    }
  });

  test("a channel this side ended whose close had not gone when the peer's close and the transport's end came: its end() completes, 'finish' and 'close' come (Node and light channels)", async () => {
    for (const kind of ['Channel', 'LightChannel'] as const) {
      const [a, b] = memoryPipe();
      const options = { ...OPTIONS, keepAliveInterval: 0 };
      const session = kind === 'Channel' ? multiplexedServer(a, options) : lightServer(a, options);
      b.on('data', () => {});
      const events: string[] = [];
      let finished: Promise<unknown> | undefined;
      session.on('channel', (channel: Channel | LightChannel) => {
        channel.on('data', (data: Uint8Array) => events.push(`data ${Buffer.from(data).toString()}`));
        for (const name of ['end', 'finish', 'close'] as const) channel.on(name, () => events.push(name));
        channel.on('error', (error: Error) => events.push(`error ${(error as { code?: string }).code}`));
        finished = new Promise<void>((resolve) => channel.once('finish', () => resolve()));
        channel.end(); // its close waits for the flush
      });
      try {
        // The original's client: dial, write, close and exit, all arriving together.
        b.end(Buffer.concat([frame(3, 1), frame(3, 0, Buffer.from('hello')), frame(3, 2)]));
        await within(session.closed, 2000, `${kind}: the session's end`);
        await within(finished!, 2000, `${kind}: 'finish'`);
        await until(() => events.includes('close'), 2000, `${kind}: 'close'`);
        assert.deepEqual(events, ['data hello', 'end', 'finish', 'close'], kind);
      } finally {
        session.destroy();
        b.destroy();
      }
    }
  });

  test('a frame far larger than one read is delivered whole: reading does not wait for bytes still to come', async () => {
    const [raw, socket] = await tcpPair();
    const session = multiplexedServer(socket, { ...OPTIONS, keepAliveInterval: 0 });
    try {
      const accepted = new Promise<Channel>((resolve) => session.on('channel', resolve));
      const size = 4 * 1024 * 1024; // the format allows frames up to 16 MiB
      const payload = pseudoRandomBytes(size, 5);
      const header = Buffer.from([0, 0, 0, 3, 0, size >> 16, (size >> 8) & 0xff, size & 0xff]);
      raw.write(Buffer.from('0000000301000000', 'hex'));
      raw.write(Buffer.concat([header, payload]));
      const channel = await accepted;
      const chunks: Buffer[] = [];
      channel.on('data', (chunk: Buffer) => chunks.push(chunk));
      await until(() => chunks.reduce((sum, c) => sum + c.length, 0) === size, 10_000, 'the whole frame');
      assert.equal(sha(Buffer.concat(chunks)), sha(payload));
    } finally {
      session.destroy();
      raw.destroy();
    }
  });

  test('a slow reader pauses the transport (the only backpressure the format has); memory stays bounded', async () => {
    const [a, b] = memoryPipe();
    const client = multiplexedClient(a, OPTIONS);
    const server = multiplexedServer(b, OPTIONS);
    const inbound: Channel[] = [];
    server.on('channel', (c) => inbound.push(c));
    const payload = pseudoRandomBytes(4 << 20, 11);
    const channel = client.dial();
    channel.write(payload);
    await until(() => inbound.length === 1 && inbound[0]!.readableLength > 262144, 2000, 'buffer fills');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(b.isPaused(), 'reading the transport is paused');
    assert.ok(server.bufferedBytes <= 262144 + 64 * 1024, `buffered ${server.bufferedBytes}`);
    const all = readAll(inbound[0]!);
    channel.end();
    assert.equal(sha(await all), sha(payload));
    client.destroy();
    server.destroy();
  });

  test('closeRead(): a channel closed for reading discards its data without pausing the transport', async () => {
    const [a, b] = memoryPipe();
    const client = multiplexedClient(a, OPTIONS);
    const server = multiplexedServer(b, OPTIONS);
    const inbound: Channel[] = [];
    server.on('channel', (c) => inbound.push(c));
    const ignored = client.dial();
    ignored.write('x');
    await until(() => inbound.length === 1, 2000, 'the first channel');
    let seen = 0;
    inbound[0]!.on('data', (chunk: Buffer) => (seen += chunk.length));
    inbound[0]!.pause();
    inbound[0]!.closeRead();
    // Four times the window a channel may hold before the session stops reading: all discarded.
    ignored.write(pseudoRandomBytes(1 << 20, 12));
    const other = client.dial();
    const payload = pseudoRandomBytes(300_000, 13);
    other.write(payload);
    await until(() => inbound.length === 2, 2000, 'the second channel');
    const all = readAll(inbound[1]!);
    other.end();
    assert.equal(sha(await all), sha(payload), 'the other channel flows');
    assert.equal(seen, 0);
    assert.ok(!b.isPaused(), 'reading the transport is not paused');
    assert.equal(server.bufferedBytes, 0);
    client.destroy();
    server.destroy();
  });

  test('a channel destroyed before its SYN left puts nothing on the wire (the original ends its session on a RST for an id it never saw)', async () => {
    const [a, b] = memoryPipe();
    const wire: Buffer[] = [];
    b.on('data', (chunk: Buffer) => wire.push(chunk));
    const client = multiplexedClient(a, OPTIONS);
    const server = multiplexedServer(b, OPTIONS);
    server.on('channel', (c) => {
      c.on('error', () => {});
      c.pipe(c);
    });
    const dropped = client.dial();
    dropped.on('error', () => {});
    dropped.destroy();
    const kept = client.dial();
    kept.on('error', () => {});
    kept.write('hello');
    assert.equal((await new Promise<Buffer>((resolve) => kept.once('data', resolve))).toString(), 'hello');
    assert.deepEqual(
      muxFrames(Buffer.concat(wire)).filter((f) => f.id === dropped.id),
      [],
      'no frame for the destroyed channel',
    );
    client.destroy();
    server.destroy();
  });

  test("this side's close ends its reading too: data the peer sends before it heard is dropped (the session reads on, other channels are heard), and the channel ends and closes without the peer's answer", async () => {
    const [raw, socket] = await tcpPair();
    const session = multiplexedServer(socket, { ...OPTIONS, keepAliveInterval: 0 });
    try {
      const accepted = new Promise<Channel>((resolve) => session.once('channel', resolve));
      raw.write(Buffer.concat([frame(3, 1), frame(3, 0, Buffer.from('x'))]));
      const channel = await accepted;
      const events: string[] = [];
      channel.on('end', () => events.push('end'));
      channel.on('close', () => events.push('close'));
      channel.on('error', (error) => events.push(`error ${error.message}`));
      channel.pause(); // 'x' waits unread; the application closes
      channel.end();
      await new Promise((resolve) => channel.once('finish', resolve));
      // A peer that never answers the RST and goes on writing: 32 MiB, more than a window many times over.
      const chunk = Buffer.concat(Array.from({ length: 64 }, () => frame(3, 0, Buffer.alloc(1024, 1))));
      const writing = (async () => {
        for (let i = 0; i < 512; i++) if (!raw.write(chunk)) await new Promise((resolve) => raw.once('drain', resolve));
      })();
      await within(writing, 20_000, "the peer's 32 MiB to be taken");
      const next = new Promise<Channel>((resolve) => session.once('channel', resolve));
      raw.write(Buffer.concat([frame(5, 1), frame(5, 0, Buffer.from('next'))]));
      const second = await within(next, 10_000, 'the next channel');
      assert.equal((await new Promise<Buffer>((resolve) => second.once('data', resolve))).toString(), 'next');
      // Before, the data went on being delivered to the ended channel: past a window unread, the session stopped
      // reading for good, and the channel waited for the peer's RST to end.
      assert.equal(channel.readableLength, 1, "only the 'x' from before the close");
      channel.resume();
      await until(() => events.includes('close'), 5_000, "the channel's 'close'");
      assert.deepEqual(events, ['end', 'close']);
      assert.equal(session.state, 'open');
    } finally {
      session.destroy();
      raw.destroy();
    }
  });

  test("a Node channel closed here and let go of (its autoDestroy after 'end' and 'finish') stays until the peer answers, past 2 s: close() waits for that (the original's handlers still ran when a linger took such channels out)", async () => {
    const [raw, socket] = await tcpPair();
    const session = multiplexedServer(socket, { ...OPTIONS, keepAliveInterval: 0 });
    try {
      const accepted = new Promise<Channel>((resolve) => session.once('channel', resolve));
      raw.write(Buffer.concat([frame(3, 1), frame(3, 0, Buffer.from('x'))]));
      const channel = await accepted;
      channel.on('error', () => {});
      channel.resume();
      channel.end();
      await until(() => channel.destroyed, 5_000, "the channel's autoDestroy");
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      assert.equal(session.stats().channelsOpen, 1, "kept for the peer's answer");
      const closing = session.close();
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(session.state, 'closing', "close() waits for the peer's answer");
      raw.write(frame(3, 2));
      await within(closing, 5_000, 'close() once the peer answered');
      assert.equal(session.closeError, undefined);
    } finally {
      session.destroy();
      raw.destroy();
    }
  });

  test("after this side's close, destroy() or closeRead() of a channel holding more than a window unread lets it go: the session reads on (Node and light channels)", async () => {
    for (const light of [false, true]) {
      for (const how of ['destroy', 'closeRead'] as const) {
        const what = `${light ? 'light' : 'Node'} channel, ${how}()`;
        const [raw, socket] = await tcpPair();
        const options = { ...OPTIONS, keepAliveInterval: 0 };
        const session = light ? lightServer(socket, options) : multiplexedServer(socket, options);
        try {
          const accepted = new Promise<Channel | LightChannel>((resolve) => session.once('channel', resolve));
          raw.write(frame(3, 1));
          const channel = await accepted;
          channel.on('error', () => {});
          channel.pause();
          // 300 KiB unread, more than the 256 KiB window: reading the transport pauses until it is read or gone.
          const data = Buffer.concat(Array.from({ length: 300 }, () => frame(3, 0, Buffer.alloc(1024, 1))));
          raw.write(data);
          await until(() => channel.readableLength > 256 * 1024, 5_000, `${what}: over a window unread`);
          channel.end();
          await within(
            new Promise<void>((resolve) => channel.once('finish', () => resolve())),
            5_000,
            `${what}: its close to leave`,
          );
          // Its close has left, the peer has not answered: the application lets go of what it had not read.
          if (how === 'destroy') channel.destroy();
          else channel.closeRead();
          if (how === 'closeRead') assert.equal(channel.readableLength, 0, `${what}: the unread data dropped`);
          const next = new Promise<Channel | LightChannel>((resolve) => session.once('channel', resolve));
          raw.write(Buffer.concat([frame(5, 1), frame(5, 0, Buffer.from('next'))]));
          // Before (while this side's close marked the channel closed for reading), the dropped bytes stayed
          // counted, or closeRead() did nothing: the session stayed paused and channel 5 was never heard.
          const second = await within(next, 5_000, `${what}: the next channel`);
          const first = await within(
            new Promise<Uint8Array>((resolve) => second.once('data', (chunk: Uint8Array) => resolve(chunk))),
            5_000,
            `${what}: the next channel's data`,
          );
          assert.equal(Buffer.from(first).toString(), 'next', what);
          await until(() => channel.destroyed, 5_000, `${what}: the channel closed`);
        } finally {
          session.destroy();
          raw.destroy();
        }
      }
    }
  });

  test("close() with a channel this side ended while it held more than a window unread: the peer's answer is read at once (the channel holds reading back no more), and what it held is still read", async () => {
    const [a, b] = await tcpPair();
    const options = { ...OPTIONS, keepAliveInterval: 0 };
    const server = multiplexedServer(a, options);
    const client = multiplexedClient(b, options);
    try {
      const accepted = new Promise<Channel>((resolve) => server.once('channel', resolve));
      const dialled = client.dial();
      dialled.on('error', () => {});
      dialled.resume();
      const sent = pseudoRandomBytes(300 * 1024, 11);
      dialled.write(sent);
      const channel = await accepted;
      channel.pause();
      await until(() => channel.readableLength > 256 * 1024, 5_000, 'over a window unread (reading paused)');
      channel.end(); // the peer answers its RST at once
      // Before, the channel still held reading back: the answer waited unread until the deadline, and close()
      // failed with ERR_MUX_CLOSE_TIMEOUT (30 s by default; with keep-alive, a probe read it after ~10 s).
      await within(server.close({ timeout: 10_000 }), 15_000, 'close()');
      assert.equal(server.closeError, undefined);
      const received: Buffer[] = [];
      channel.on('data', (chunk: Buffer) => received.push(chunk));
      channel.resume();
      await until(() => channel.destroyed, 5_000, "the channel's end");
      assert.deepEqual(Buffer.concat(received), sent.subarray(0, Buffer.concat(received).length));
      assert.ok(Buffer.concat(received).length > 256 * 1024, 'what it held before its close is read');
    } finally {
      server.destroy();
      client.destroy();
    }
  });

  test("data the peer sends after its own RST (the original's Write racing its Close) is ignored, not a protocol error", async () => {
    const [raw, socket] = await tcpPair();
    const session = multiplexedServer(socket, { ...OPTIONS, keepAliveInterval: 0 });
    try {
      const accepted = session.accept();
      const header = (id: number, flags: number, length: number): Buffer => {
        const bytes = Buffer.alloc(8);
        bytes.writeUInt32BE(id, 0);
        bytes[4] = flags;
        bytes.writeUIntBE(length, 5, 3);
        return bytes;
      };
      // SYN with data on channel 3, then RST, then data that was already on its way; then channel 5.
      raw.write(
        Buffer.concat([header(3, 1, 2), Buffer.from('hi'), header(3, 2, 0), header(3, 0, 4), Buffer.from('late')]),
      );
      raw.write(Buffer.concat([header(5, 1, 4), Buffer.from('next')]));
      const first = await accepted;
      first.on('error', () => {});
      const second = await session.accept();
      assert.equal((await new Promise<Buffer>((resolve) => second.once('data', resolve))).toString(), 'next');
      assert.equal(session.state, 'open');
    } finally {
      session.destroy();
      raw.destroy();
    }
  });

  test("after the peer's RST, data still queued behind this side's end() is dropped, not sent (a light channel)", async () => {
    const [raw, socket] = await tcpPair();
    const session = lightServer(socket, { ...OPTIONS, keepAliveInterval: 0 });
    try {
      raw.pause(); // the peer reads nothing until it has closed the channel
      const accepted = session.accept();
      raw.write(Buffer.from('0000000301000000', 'hex')); // SYN on channel 3
      const channel = await accepted;
      channel.on('error', () => {});
      channel.on('data', () => {});
      const total = 32 * 1024 * 1024;
      channel.write(new Uint8Array(total).fill(0x41));
      channel.end();
      await new Promise((resolve) => setTimeout(resolve, 200));
      raw.write(Buffer.from('0000000302000000', 'hex')); // the peer closes channel 3 (RST)
      await new Promise((resolve) => setTimeout(resolve, 200));
      const chunks: Buffer[] = [];
      raw.on('data', (chunk: Buffer) => chunks.push(chunk));
      raw.resume();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const frames = muxFrames(Buffer.concat(chunks)).filter((f) => f.id === 3);
      const sent = frames.reduce((sum, f) => sum + f.payload.length, 0);
      // What the sockets held when the RST came still arrives; the rest of the 32 MiB does not.
      assert.ok(sent < 12 * 1024 * 1024, `${sent} bytes of ${total} sent after the peer's RST`);
      assert.ok(
        frames.some((f) => f.flags === 2),
        "this side's own RST went",
      );
    } finally {
      session.destroy();
      raw.destroy();
    }
  });

  test('ids follow the original (client 3, 5, ...; server 2, 4, ...); no ping, no goAway(); close() without Go Away', async () => {
    const [a, b] = memoryPipe();
    const wire: Buffer[] = [];
    b.on('data', (chunk: Buffer) => wire.push(chunk));
    const client = multiplexedClient(a, OPTIONS);
    const server = multiplexedServer(b, OPTIONS);
    server.on('channel', (c) => c.pipe(c));
    const c3 = client.dial();
    const c5 = client.dial();
    assert.deepEqual([c3.id, c5.id], [3, 5]);
    assert.equal(server.dial().id, 2);
    await assert.rejects(client.ping(), { code: 'ERR_MUX_UNSUPPORTED' });
    assert.throws(() => server.goAway(), { code: 'ERR_MUX_UNSUPPORTED' });
    const echoed = new Promise<Buffer>((resolve) => c3.once('data', resolve));
    c3.write('x');
    assert.equal((await echoed).toString(), 'x', 'the failed goAway() left the server accepting');
    c3.end();
    c5.destroy();
    await client.close({ timeout: 2000 });
    await server.closed;
    const frames = muxFrames(Buffer.concat(wire));
    assert.ok(
      frames.every((f) => f.flags <= 2),
      'only SYN, RST and data frames',
    );
    assert.equal(client.closeError, undefined);
    server.destroy();
  });
});

describe('multiplex: a full accept queue slows the dialler down instead of refusing (the format has no refusal)', () => {
  for (const style of ['for await', 'accept() loop'] as const) {
    test(
      `10,000 channels dialled at once, accepted with ${style} (backlog 256): every one echoed, none closed unanswered`,
      { timeout: 120_000 },
      async () => {
        const [a, b] = await tcpPair();
        const client = multiplexedClient(a, OPTIONS);
        const server = multiplexedServer(b, OPTIONS);
        let pauses = 0;
        const pause = b.pause.bind(b);
        b.pause = () => {
          pauses++;
          return pause();
        };
        const serving = (async () => {
          // Each request is 10 bytes; a frame may arrive in pieces. No half-close in this format: echo, then close.
          const echo = (channel: Channel): void => {
            const chunks: Buffer[] = [];
            channel.on('error', () => {});
            channel.on('data', (chunk: Buffer) => {
              chunks.push(chunk);
              const request = Buffer.concat(chunks);
              if (request.length >= 10) channel.end(request);
            });
          };
          if (style === 'for await') {
            for await (const channel of server) echo(channel);
          } else {
            for (;;) {
              const channel = await server.accept().catch(() => undefined);
              if (channel === undefined) return;
              echo(channel);
            }
          }
        })();
        const replies = await Promise.all(
          Array.from(
            { length: 10_000 },
            (_, i) =>
              new Promise<string>((resolve) => {
                const channel = client.dial();
                const chunks: Buffer[] = [];
                channel.on('error', () => {});
                channel.on('data', (chunk: Buffer) => chunks.push(chunk));
                channel.on('end', () => {
                  channel.end(); // as the original's client: read the echo, then close
                  resolve(Buffer.concat(chunks).toString());
                });
                channel.write(request(i));
              }),
          ),
        );
        const wrong = replies.flatMap((reply, i) => (reply === request(i) ? [] : [`${i}: ${JSON.stringify(reply)}`]));
        assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} of 10,000 channels were not echoed`);
        assert.ok(pauses > 0, 'the server paused reading while its accept queue was full');
        await client.close();
        await server.closed;
        await serving;
      },
    );
  }
});

function request(i: number): string {
  return `hello${String(i).padStart(5, '0')}`;
}

/** A multiplex frame as the format lays it out: channel id, flags, 24-bit length, payload. */
function multiplexFrame(id: number, flags: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(id, 0);
  header[4] = flags;
  header.writeUIntBE(payload.length, 5, 3);
  return Buffer.concat([header, payload]);
}

describe("a paused multiplex session's probes hear a cut transport behind many small frames", () => {
  // docs/multiplex-codec.md: while reading is held back, the session reads 64 KiB every keepAliveTimeout, at
  // most a quarter of maxSessionBuffered (and at least 256 KiB) in a pause, so a cut behind that is noticed.
  // Small frames' chunk costs had spent the probes' share long before (on yamux's formula, with no credit on
  // this format): the peer's end was never read and the session stayed open for ever.
  const keepAliveTimeout = 300;
  const SYN = 1;

  test('a full accept queue: 1,000 channels of 100 bytes, then the peer ends its connection (256 KiB bound)', async () => {
    const [raw, socket] = await tcpPair();
    raw.on('error', () => {});
    raw.resume();
    const session = multiplexedServer(socket, {
      protocol: 'multiplex',
      keepAliveTimeout,
      maxSessionBuffered: 256 * 1024,
    });
    try {
      const frames: Buffer[] = [];
      for (let i = 0, id = 3; i < 1000; i++, id += 2) {
        frames.push(multiplexFrame(id, SYN), multiplexFrame(id, 0, Buffer.alloc(100, 0x78)));
      }
      raw.end(Buffer.concat(frames)); // nobody accepts: the queue (256) fills and reading pauses
      const outcome = await within(
        session.closed.then(
          () => 'ended cleanly',
          (error: unknown) => (error as { code?: string }).code,
        ),
        20 * keepAliveTimeout,
        'the session to hear the end',
      );
      assert.equal(outcome, 'ERR_MUX_TRANSPORT_CLOSED');
      assert.equal(session.stats().bytesIn, 1000 * (2 * 8 + 100), 'every byte was read');
    } finally {
      session.destroy();
      raw.destroy();
    }
  });

  /**
   * A server session over a raw multiplex peer: channel 3's reader is busy elsewhere (paused) and gets
   * `overBytes` in 1 KiB frames, channel 5 waits for a reply; then the peer sends `frames` frames of `size`
   * bytes to channel 3 and its connection ends. Resolves to what the waiting channel heard.
   */
  async function waitingBehindOverfull(
    maxSessionBuffered: number,
    overBytes: number,
    frames: number,
    size: number,
  ): Promise<string> {
    const [raw, socket] = await tcpPair();
    raw.on('error', () => {});
    raw.resume();
    const session = multiplexedServer(socket, { protocol: 'multiplex', keepAliveTimeout, maxSessionBuffered });
    try {
      const channels: Channel[] = [];
      session.on('channel', (channel: Channel) => {
        channel.on('error', () => {});
        channels.push(channel);
      });
      raw.write(
        Buffer.concat([multiplexFrame(3, SYN), multiplexFrame(5, SYN), multiplexFrame(5, 0, Buffer.from('request'))]),
      );
      await until(() => channels.length === 2, 5000, 'both channels');
      const [busy, waiting] = channels as [Channel, Channel];
      busy.pause(); // its reader is busy elsewhere
      waiting.on('data', () => {});
      const heard = new Promise<string>((resolve) => {
        waiting.on('end', () => resolve('end'));
        waiting.on('close', () => resolve(`close: ${(waiting.errored as { code?: string } | null)?.code}`));
      });
      const over: Buffer[] = [];
      for (let i = 0; i < overBytes / 1024; i++) over.push(multiplexFrame(3, 0, Buffer.alloc(1024, 0x62)));
      const small: Buffer[] = [];
      for (let i = 0; i < frames; i++) small.push(multiplexFrame(3, 0, Buffer.alloc(size, 0x61)));
      raw.write(Buffer.concat([...over, ...small]));
      await new Promise((resolve) => setTimeout(resolve, 100));
      raw.end();
      return await within(heard, 40 * keepAliveTimeout, 'the waiting channel to hear of the cut');
    } finally {
      session.destroy();
      raw.destroy();
    }
  }

  test('under a small bound (256 KiB), a cut behind 4,000 frames of 50 bytes, with a channel over its buffer, is heard', async () => {
    // The probes' share of chunk costs was at most twice the bound, less than what the 256 KiB they may read
    // costs in frames of 28 bytes or more (the documented fit): the end was never read.
    assert.equal(await waitingBehindOverfull(256 * 1024, 300 * 1024, 4000, 50), 'close: ERR_MUX_TRANSPORT_CLOSED');
  });

  test("a channel over its buffer holds reading: another channel hears the peer's end behind 15,000 frames of 100 bytes", async () => {
    assert.equal(await waitingBehindOverfull(8 << 20, 0, 15_000, 100), 'close: ERR_MUX_TRANSPORT_CLOSED');
  });
});
