/**
 * The write path's direct route (issue 16): a large write on an open channel, with nothing else to send,
 * leaves in a transport write of its own at once; anything else (small writes, a SYN still owed, other
 * channels' data waiting, a blocked transport, a spent window) goes through the queue and the scheduler.
 * Checked on what a recording transport is handed, call by call.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LightSession, type LightChannel } from '../src/core/index.js';
import { Flag, FrameType, HEADER_SIZE, decodeHeader, headerBytes } from '../src/core/frame.js';
import type { Transport, TransportEvents } from '../src/core/transport.js';
import type { Channel } from '../src/index.js';
import { until } from './helpers.js';

/** ES2024's resizable ArrayBuffer: in Node 20, not yet in the TypeScript lib this project compiles with. */
const Resizable = ArrayBuffer as unknown as new (
  length: number,
  options: { maxByteLength: number },
) => ArrayBuffer & { resize(length: number): void };

interface Recorded {
  parts: Uint8Array[];
  done: (error?: Error | null) => void;
}

/** A transport that keeps every write (its parts as handed over) and completes it only when told. */
class RecordingTransport implements Transport {
  writes: Recorded[] = [];
  events!: TransportEvents;
  /** What `write()` answers: false makes the session wait for `drain`. */
  accept = true;
  start(events: TransportEvents): void {
    this.events = events;
  }
  write(parts: Uint8Array[], done: (error?: Error | null) => void): boolean {
    this.writes.push({ parts: [...parts], done });
    return this.accept;
  }
  /** Completes every write so far, as a socket would once the bytes are in the kernel. */
  completeAll(): void {
    for (const write of this.writes.splice(0)) write.done(null);
  }
  pause(): void {}
  resume(): void {}
  end(): void {}
  destroy(): void {}
}

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  length: number;
}

/** The frame headers of one recorded write, in order (payloads skipped by their lengths). */
function framesOf(write: Recorded): Frame[] {
  const bytes = Buffer.concat(write.parts);
  const frames: Frame[] = [];
  for (let at = 0; at + HEADER_SIZE <= bytes.length;) {
    const h = decodeHeader(bytes, at, { version: 0, type: 0, flags: 0, streamId: 0, length: 0 });
    frames.push({ type: h.type, flags: h.flags, streamId: h.streamId, length: h.length });
    at += HEADER_SIZE + (h.type === FrameType.data ? h.length : 0);
  }
  return frames;
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A client session on a recording transport, with one channel whose SYN has left (nothing owed, nothing queued). */
async function openChannel(): Promise<{ transport: RecordingTransport; session: LightSession; channel: LightChannel }> {
  const transport = new RecordingTransport();
  const session = new LightSession(transport, 'client', { keepAliveInterval: 0 });
  const channel = session.dial();
  channel.on('error', () => {});
  await tick();
  assert.equal(transport.writes.length, 1, 'the SYN left in one write');
  assert.equal(framesOf(transport.writes[0]!)[0]!.flags & Flag.syn, Flag.syn);
  transport.completeAll();
  return { transport, session, channel };
}

test('a large write on an open channel with nothing else queued leaves at once, in a write of its own, its bytes referenced', async () => {
  const { transport, session, channel } = await openChannel();
  try {
    const data = new Uint8Array(64 * 1024).fill(7);
    channel.write(data);
    // Synchronously: no flush, no microtask in between.
    assert.equal(transport.writes.length, 1);
    const write = transport.writes[0]!;
    assert.deepEqual(framesOf(write), [{ type: FrameType.data, flags: 0, streamId: channel.id, length: data.length }]);
    assert.equal(write.parts.length, 2, 'a header, then the payload');
    // The caller's bytes, not a copy: a view of the same memory (made by the built-ins, whatever the array claims).
    const payload = write.parts[1]!;
    assert.equal(payload.buffer, data.buffer, 'the payload is the caller’s bytes, not a copy');
    assert.equal(payload.byteOffset, data.byteOffset);
    assert.equal(payload.byteLength, data.byteLength);
    assert.equal(channel.stats().bytesOut, data.length);
    assert.equal(session.stats().dataBytesOut, data.length);
  } finally {
    session.destroy();
  }
});

test('small writes still wait for the flush and share one transport write', async () => {
  const { transport, session, channel } = await openChannel();
  try {
    channel.write(new Uint8Array(100));
    channel.write(new Uint8Array(200));
    assert.equal(transport.writes.length, 0, 'nothing leaves before the flush');
    await tick();
    assert.equal(transport.writes.length, 1);
    assert.deepEqual(
      framesOf(transport.writes[0]!).map((f) => f.length),
      [300],
    );
  } finally {
    session.destroy();
  }
});

test('a large write beyond the peer’s window: the window’s part leaves at once, the rest after its Window Update, and the write completes after both', async () => {
  const { transport, session, channel } = await openChannel();
  try {
    const window = channel.stats().sendWindow;
    const data = new Uint8Array(window + 10_000);
    let finished = false;
    channel.on('drain', () => (finished = true));
    assert.equal(channel.write(data), false);
    assert.equal(transport.writes.length, 1, 'the window’s part left at once');
    const first = framesOf(transport.writes[0]!);
    assert.equal(
      first.reduce((sum, f) => sum + f.length, 0),
      window,
    );
    assert.ok(
      first.every((f) => f.length <= session.options.maxFrameSize),
      'cut at the largest frame',
    );
    assert.equal(channel.stats().queuedBytes, 10_000, 'the rest waits for the window');
    transport.completeAll();
    await tick();
    assert.equal(finished, false, 'the write is not complete while part of it waits');
    assert.equal(transport.writes.length, 0, 'nothing beyond the window');
    // The peer grants more window (ACK of the SYN with it).
    transport.events.data(headerBytes(FrameType.windowUpdate, Flag.ack, channel.id, 20_000));
    await tick();
    assert.equal(transport.writes.length, 1);
    assert.deepEqual(
      framesOf(transport.writes[0]!).map((f) => f.length),
      [10_000],
    );
    transport.completeAll();
    await until(() => finished, 2000, "'drain' after the whole write");
  } finally {
    session.destroy();
  }
});

test('a large write while another channel has data waiting goes through the scheduler, after it', async () => {
  const { transport, session, channel } = await openChannel();
  try {
    const other = session.dial();
    other.on('error', () => {});
    other.write(new Uint8Array(10)); // its SYN and data wait for the flush
    channel.write(new Uint8Array(64 * 1024));
    assert.equal(transport.writes.length, 0, 'the large write did not overtake what was waiting');
    await tick();
    const frames = transport.writes.flatMap(framesOf);
    assert.deepEqual(
      frames.map((f) => [f.streamId, f.length]),
      [
        [other.id, 10],
        [channel.id, 64 * 1024],
      ],
    );
  } finally {
    session.destroy();
  }
});

test('a large write on a blocked transport is queued and leaves after drain', async () => {
  const { transport, session, channel } = await openChannel();
  try {
    transport.accept = false;
    channel.write(new Uint8Array(64 * 1024));
    assert.equal(transport.writes.length, 1, 'the first large write went at once; the transport asks to wait');
    transport.accept = true;
    channel.write(new Uint8Array(32 * 1024));
    await tick();
    assert.equal(transport.writes.length, 1, 'nothing more until drain');
    assert.equal(channel.stats().queuedBytes, 32 * 1024);
    transport.events.drain();
    await tick();
    assert.equal(transport.writes.length, 2);
    assert.deepEqual(
      framesOf(transport.writes[1]!).map((f) => f.length),
      [32 * 1024],
    );
  } finally {
    session.destroy();
  }
});

test('a failed direct write fails its write with a typed error, not the transport’s own', async () => {
  const { transport, session, channel } = await openChannel();
  const errors: unknown[] = [];
  channel.on('error', (error) => errors.push(error));
  channel.write(new Uint8Array(64 * 1024));
  assert.equal(transport.writes.length, 1);
  const socketError = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
  transport.writes[0]!.done(socketError);
  await until(() => channel.destroyed, 2000, 'the channel to fail');
  assert.ok(channel.failure !== undefined);
  assert.notEqual(channel.failure, socketError);
  assert.equal((channel.failure as { code?: string }).code, 'ERR_MUX_TRANSPORT_CLOSED');
  session.destroy();
});

test('after a direct write, a small message on another channel waits behind at most one frame of the bulk channel’s rest', async () => {
  const { transport, session, channel } = await openChannel();
  try {
    // The peer grants a large window (ACK of the SYN with it), so the bulk write is limited by one batch only.
    transport.events.data(headerBytes(FrameType.windowUpdate, Flag.ack, channel.id, 16 * 1024 * 1024));
    await tick();
    transport.accept = false; // the socket's buffer is full after the direct part
    channel.write(new Uint8Array(3 * 1024 * 1024));
    assert.equal(transport.writes.length, 1, 'the direct part left at once');
    const direct = framesOf(transport.writes[0]!).reduce((sum, f) => sum + f.length, 0);
    assert.ok(direct <= 1024 * 1024, `the direct part is at most one batch (${direct} bytes)`);
    assert.ok(channel.stats().queuedBytes > 0, 'the rest is queued');
    const other = session.dial();
    other.on('error', () => {});
    other.write(new Uint8Array(10));
    await tick();
    assert.equal(transport.writes.length, 1, 'nothing more while the transport is blocked');
    transport.accept = true;
    transport.events.drain();
    await tick();
    const next = transport.writes.slice(1).flatMap(framesOf);
    const data = next.filter((f) => f.type === FrameType.data);
    const position = data.findIndex((f) => f.streamId === other.id);
    assert.ok(position >= 0 && position <= 1, `the small message is data frame ${position} after the drain`);
  } finally {
    session.destroy();
  }
});

test('a queued write whose buffer was transferred (detached) before it left resets only its channel: no frame announces bytes that do not follow, the session and its other channels go on', async () => {
  const { lightClient, lightServer } = await import('../src/index.js');
  const { tcpPair, within } = await import('./helpers.js');
  const [a, b] = await tcpPair();
  const client = lightClient(a, { keepAliveInterval: 0 });
  const server = lightServer(b, { keepAliveInterval: 0 });
  const accepted: LightChannel[] = [];
  server.on('channel', (channel) => accepted.push(channel));
  try {
    const channel = client.dial();
    const failed = new Promise<Error>((resolve) => channel.once('error', resolve));
    // The peer does not read: the window (256 KiB) is spent, and the next write waits in the queue, in place.
    channel.write(new Uint8Array(256 * 1024));
    const queued = new Uint8Array(100_000).fill(7);
    channel.write(queued);
    await until(() => accepted.length === 1, 2000, 'the channel at the peer');
    const peer = accepted[0]!;
    peer.pause();
    const peerFailed = new Promise<Error>((resolve) => peer.once('error', resolve));
    await until(() => channel.stats().sendWindow === 0, 2000, 'the window spent');
    structuredClone(queued.buffer, { transfer: [queued.buffer] }); // as a postMessage to a worker would
    assert.equal(queued.length, 0, 'detached');
    peer.resume(); // the Window Update comes, and the detached write is next to frame
    const error = await within(failed, 2000, 'the channel to fail');
    assert.ok(error instanceof TypeError && error.message.includes('detached'), String(error));
    assert.equal((await within(peerFailed, 2000, 'the peer to see the reset')).name, 'ChannelResetError');
    // The connection is intact: another channel echoes exactly.
    const other = client.dial();
    const payload = new Uint8Array(300_000).map((_, i) => i % 251);
    other.end(payload);
    await until(() => accepted.length === 2, 2000, 'the second channel');
    const echo = accepted[1]!;
    echo.on('data', (chunk: Uint8Array) => echo.write(chunk.slice()));
    echo.on('end', () => echo.end());
    const chunks: Uint8Array[] = [];
    other.on('data', (chunk: Uint8Array) => chunks.push(chunk));
    await within(new Promise<void>((resolve) => other.once('end', () => resolve())), 3000, 'the echo');
    assert.deepEqual(Buffer.concat(chunks), Buffer.from(payload));
    assert.equal(client.state, 'open');
    assert.equal(server.state, 'open');
  } finally {
    client.destroy();
    server.destroy();
  }
});

test('an exception while writing a batch (here, the transport’s allocate() throws) fails the session with ERR_MUX_INTERNAL, not an unhandled rejection from the flush', async () => {
  class ThrowingAllocate extends RecordingTransport {
    allocate(): Uint8Array {
      throw new Error('allocate broke');
    }
  }
  const transport = new ThrowingAllocate();
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown): void => void rejections.push(reason);
  process.on('unhandledRejection', onRejection);
  const session = new LightSession(transport, 'client', { keepAliveInterval: 0 });
  try {
    session.dial().write(new Uint8Array(10)); // small: framed by the flush, in a batch its transport allocates
    const error = await session.closed.then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.equal((error as { code?: string }).code, 'ERR_MUX_INTERNAL');
    assert.match(String(error), /allocate broke/);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(rejections, []);
  } finally {
    process.off('unhandledRejection', onRejection);
    session.destroy();
  }
});

test('a queued write on a resizable buffer: grown, only the bytes it had when written are sent; shrunk, its channel is reset before any of it goes', async () => {
  const { lightClient, lightServer } = await import('../src/index.js');
  const { tcpPair, within } = await import('./helpers.js');
  for (const resize of ['grown', 'shrunk'] as const) {
    const [a, b] = await tcpPair();
    const client = lightClient(a, { keepAliveInterval: 0 });
    const server = lightServer(b, { keepAliveInterval: 0 });
    try {
      const accepted = new Promise<LightChannel>((resolve) => server.once('channel', resolve));
      const channel = client.dial();
      const errors: Error[] = [];
      channel.on('error', (error: Error) => errors.push(error));
      const first = new Uint8Array(256 * 1024).fill(1); // the whole window: what follows waits in the queue
      channel.write(first);
      const buffer = new Resizable(100_000, { maxByteLength: 200_000 });
      const tracking = new Uint8Array(buffer).fill(2); // a view that follows the buffer's length
      channel.write(tracking);
      channel.end(new Uint8Array(50_000).fill(3));
      const peer = await within(accepted, 2000, 'the channel at the peer');
      peer.pause();
      await until(() => channel.stats().sendWindow === 0, 2000, 'the window spent');
      buffer.resize(resize === 'grown' ? 150_000 : 50_000);
      if (resize === 'grown') tracking.fill(9, 100_000);
      const received: Uint8Array[] = [];
      peer.on('data', (chunk: Uint8Array) => received.push(chunk));
      const peerEnded = new Promise<string>((resolve) => {
        peer.once('end', () => resolve('end'));
        peer.once('error', (error: Error) => resolve(error.name));
      });
      peer.resume();
      const outcome = await within(peerEnded, 3000, "the peer's end or reset");
      const bytes = Buffer.concat(received);
      if (resize === 'grown') {
        assert.equal(outcome, 'end');
        assert.equal(bytes.length, 256 * 1024 + 100_000 + 50_000, 'the 100,000 bytes written, not the 150,000 now');
        assert.ok(bytes.subarray(256 * 1024, 256 * 1024 + 100_000).every((byte) => byte === 2));
        assert.ok(
          bytes.subarray(256 * 1024 + 100_000).every((byte) => byte === 3),
          'then the last write',
        );
        assert.deepEqual(errors, []);
      } else {
        assert.equal(outcome, 'ChannelResetError');
        assert.equal(bytes.length, 256 * 1024, 'nothing of the shrunk write, nor of what followed it');
        assert.ok(errors[0] instanceof TypeError && errors[0].message.includes('shrunk'), String(errors[0]));
      }
      assert.equal(client.state, 'open');
    } finally {
      client.destroy();
      server.destroy();
    }
  }
});

test("a Node Channel's write transferred (detached) or shrunk (a resizable buffer; Node's Buffer view of it then reads empty) while it waited in the stream's own buffer, alone or in a batch (_writev), fails the channel with the TypeError: no silent loss, no end that never finishes", async () => {
  const { sessionPair, within } = await import('./helpers.js');
  // (Two writes waiting in the buffer reach the channel together, through _writev: the first one transferred.)
  // (A Buffer with an own `length` that still says 100,000 once detached: the check asks the built-ins.)
  for (const change of ['detached', 'shrunk', 'detached, first of a batch', 'detached, own length'] as const) {
    const pair = await sessionPair({ transport: 'tcp' });
    try {
      const accepted = new Promise<Channel>((resolve) => pair.server.once('channel', resolve));
      const channel = pair.client.dial();
      const failed = new Promise<Error>((resolve) => channel.once('error', resolve));
      channel.write(Buffer.alloc(300 * 1024, 1)); // beyond the window: its callback waits, later writes stay in Node's buffer
      const buffer =
        change === 'shrunk' ? new Resizable(100_000, { maxByteLength: 200_000 }) : new ArrayBuffer(100_000);
      const written = new Uint8Array(buffer).fill(2);
      channel.write(
        change === 'detached, own length'
          ? Object.defineProperty(Buffer.from(buffer), 'length', { value: written.length })
          : written,
      );
      if (change === 'detached, first of a batch') channel.write(Buffer.alloc(1000, 3));
      channel.end();
      const peer = await within(accepted, 2000, 'the channel at the peer');
      peer.pause();
      await until(() => channel.stats().sendWindow === 0, 2000, 'the window spent');
      if (change === 'shrunk') (buffer as InstanceType<typeof Resizable>).resize(50_000);
      else structuredClone(buffer, { transfer: [buffer] });
      const peerOutcome = new Promise<string>((resolve) => {
        peer.once('end', () => resolve('end'));
        peer.once('error', (error: Error) => resolve(error.name));
      });
      peer.resume();
      const error = await within(failed, 3000, 'the channel to fail');
      assert.ok(error instanceof TypeError && error.message.includes('detached or shrunk'), String(error));
      assert.equal(await within(peerOutcome, 3000, 'the peer to see it'), 'ChannelResetError', change);
      assert.equal(pair.client.state, 'open');
      assert.equal(pair.client.channelCount, 0);
    } finally {
      await pair.close();
    }
  }
});

test('LightChannel.write() of an array of another realm whose buffer was transferred throws, as one of this realm does', async () => {
  const { runInNewContext } = await import('node:vm');
  const session = new LightSession(new RecordingTransport(), 'client', { keepAliveInterval: 0 });
  try {
    const channel = session.dial();
    const foreign = runInNewContext('new Uint8Array(8)') as Uint8Array;
    structuredClone(foreign.buffer, { transfer: [foreign.buffer] });
    assert.throws(() => channel.write(foreign), { name: 'TypeError', message: /detached/ });
    assert.equal(channel.write(runInNewContext('new Uint8Array(0)') as Uint8Array), true, 'an empty one is empty');
  } finally {
    session.destroy();
  }
});
