/**
 * What a channel keeps of a received chunk: a view of the chunk where the payload is most of it, a copy where it
 * is a small part. A WebSocket message is one chunk of up to `maxMessageSize` (64 MiB by default): a hostile
 * peer that put one small Data frame for an unread channel in each large message held the whole message per
 * channel while the session counted only the payload, 50 times and more past `maxSessionBuffered`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Duplex, PassThrough } from 'node:stream';
import { multiplexedServer } from '../src/index.js';
import { LightSession, type LightChannel } from '../src/core/light-channel.js';
import { Flag, FrameType } from '../src/core/frame.js';
import { frame, until } from './helpers.js';
import { FakeTransport } from './support/fake-transport.js';

/** One chunk of `size` bytes: a SYN with a Data frame of `payload` bytes on channel 1, padded with Window Updates of 0. */
function paddedChunk(payload: number, size: number): Uint8Array {
  const data = frame(FrameType.data, Flag.syn, 1, new Uint8Array(payload).fill(7));
  const chunk = new Uint8Array(size);
  chunk.set(data);
  const padding = frame(FrameType.windowUpdate, 0, 1, 0);
  let at = data.length;
  for (; at + padding.length <= size; at += padding.length) chunk.set(padding, at);
  return chunk.subarray(0, at);
}

/** The chunks channel 1 hands to the application, once `chunk` was received. */
async function chunksOf(chunk: Uint8Array): Promise<Uint8Array[]> {
  const transport = new FakeTransport(); // its incoming chunks handed over by the test
  const session = new LightSession(transport, 'server', { keepAliveInterval: 0 });
  const accepted = new Promise<LightChannel>((resolve) => session.once('channel', resolve));
  transport.feed(chunk);
  const channel = await accepted;
  const chunks: Uint8Array[] = [];
  channel.on('data', (data) => chunks.push(data));
  await new Promise((resolve) => setImmediate(resolve));
  session.destroy();
  return chunks;
}

test('a small payload of a large chunk is copied: a channel never pins more than 8 times what it is charged', async () => {
  for (const payload of [1, 1_025, 4_000, 60_000]) {
    const chunks = await chunksOf(paddedChunk(payload, 4 * 1024 * 1024));
    assert.equal(
      chunks.reduce((sum, c) => sum + c.length, 0),
      payload,
      `${payload} bytes delivered`,
    );
    for (const chunk of chunks) {
      assert.ok(
        chunk.every((byte) => byte === 7),
        'the bytes sent',
      );
      assert.ok(
        chunk.buffer.byteLength <= 8 * (payload + 224),
        `${payload} B held in a ${chunk.buffer.byteLength} B buffer`,
      );
    }
  }
});

test('a payload that is most of its chunk is handed on as a view of it, not copied', async () => {
  const chunk = paddedChunk(60_000, 64 * 1024);
  const [delivered] = await chunksOf(chunk);
  assert.equal(delivered?.buffer, chunk.buffer);
});

test('payloads of just over an eighth of their chunk, left unread on many channels, keep alive at most the bound more than the session counts', async () => {
  // A peer that stays within every window puts one unread payload of 8,400 bytes in each 64 KiB read: kept as
  // views, 400 of them held 25 MiB of buffers while the session counted 3.4 MiB.
  const maxSessionBuffered = 4 * 1024 * 1024;
  const transport = new FakeTransport();
  const session = new LightSession(transport, 'server', { keepAliveInterval: 0, maxSessionBuffered });
  const channels: LightChannel[] = [];
  session.on('channel', (channel) => channels.push(channel)); // taken, never read until the end
  try {
    const payload = 8_400;
    for (let i = 0; i < 400; i++) {
      const data = frame(FrameType.data, Flag.syn, 2 * i + 1, new Uint8Array(payload).fill(i & 0xff));
      const chunk = new Uint8Array(64 * 1024);
      chunk.set(data);
      const padding = frame(FrameType.windowUpdate, 0, 2 * i + 1, 0);
      let at = data.length;
      for (; at + padding.length <= chunk.length; at += padding.length) chunk.set(padding, at);
      transport.feed(chunk.subarray(0, at));
    }
    // (The read time slice may leave some of it for later turns.)
    await until(() => channels.length === 400, 5000, 'the 400 channels');
    const counted = session.stats().bufferedBytes;
    assert.equal(counted, 400 * payload);
    const buffers = new Set<ArrayBufferLike>();
    let delivered = 0;
    for (const [i, channel] of channels.entries()) {
      channel.on('data', (data) => {
        assert.ok(
          data.every((byte) => byte === (i & 0xff)),
          'the bytes sent',
        );
        delivered += data.length;
        buffers.add(data.buffer);
      });
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(delivered, counted);
    let kept = 0;
    for (const buffer of buffers) kept += buffer.byteLength;
    assert.ok(kept <= counted + 400 * 224 + maxSessionBuffered, `${kept} bytes of buffers for ${counted} counted`);
  } finally {
    session.destroy();
  }
});

test("a Node session's copy of a small payload has a buffer of its own, not a slice of Node's shared pool (which it would pin unread)", async () => {
  const fromPeer = new PassThrough();
  const stream = Duplex.from({ readable: fromPeer, writable: new PassThrough() });
  const session = multiplexedServer(stream, { keepAliveInterval: 0 });
  try {
    const accepted = session.accept();
    fromPeer.write(paddedChunk(200, 64 * 1024));
    const channel = await accepted;
    const [data] = (await once(channel, 'data')) as [Buffer];
    assert.ok(Buffer.isBuffer(data));
    assert.equal(data.length, 200);
    assert.ok(data.buffer.byteLength < 1024, `200 bytes in a buffer of ${data.buffer.byteLength}`);
  } finally {
    session.destroy();
  }
});
