/**
 * What a channel keeps of a received chunk: a view of the chunk where the payload is most of it, a copy where it
 * is a small part. A WebSocket message is one chunk of up to `maxMessageSize` (64 MiB by default): a hostile
 * peer that put one small Data frame for an unread channel in each large message held the whole message per
 * channel while the session counted only the payload, 50 times and more past `maxSessionBuffered`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LightSession, type LightChannel } from '../src/core/light-channel.js';
import { Flag, FrameType } from '../src/core/frame.js';
import { frame } from './helpers.js';
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
