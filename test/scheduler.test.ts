import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChannelState, Pending } from '../src/core/channel-state.js';
import { Flag, FrameType } from '../src/core/frame.js';
import { COPY_LIMIT, FrameBatch, Scratch, WriteScheduler } from '../src/core/scheduler.js';
import { lightClient, lightServer } from '../src/index.js';
import { memoryPipe, parseFrames } from './helpers.js';
import { settledMemory } from './support/resources.js';

function channel(id: number): ChannelState {
  const c = new ChannelState(id, true, 262144, 262144);
  c.state = 'established';
  return c;
}

function run(
  scheduler: WriteScheduler,
  limit = 1 << 30,
): { frames: ReturnType<typeof parseFrames>; batch: FrameBatch } {
  const batch = new FrameBatch((n) => new Uint8Array(n));
  scheduler.fill(batch, limit);
  return { frames: parseFrames(Buffer.concat(batch.finish())), batch };
}

test('data is interleaved round-robin, one fragment per channel per turn', () => {
  const flags: number[] = [];
  const s = new WriteScheduler(1024, { onFlagsSent: (_c, f) => void flags.push(f) });
  const bulk = channel(1);
  const small = channel(3);
  bulk.enqueue(new Uint8Array(10 * 1024), null);
  s.scheduleData(bulk);
  small.enqueue(new Uint8Array(64), null);
  s.scheduleData(small);
  const { frames } = run(s);
  assert.deepEqual(
    frames.slice(0, 3).map((f) => [f.streamId, f.length]),
    [
      [1, 1024],
      [3, 64],
      [1, 1024],
    ],
  );
  assert.equal(
    frames.filter((f) => f.streamId === 1).reduce((n, f) => n + f.length, 0),
    10 * 1024,
  );
  assert.ok(s.idle);
});

test('a small message waits behind at most one fragment of each bulk channel', () => {
  const s = new WriteScheduler(16 * 1024, { onFlagsSent: () => undefined });
  const bulks = [1, 3, 5].map(channel);
  for (const b of bulks) {
    b.enqueue(new Uint8Array(1 << 20), null);
    s.scheduleData(b);
  }
  const first = run(s, 64 * 1024);
  assert.equal(first.frames.length, 4);
  const small = channel(7);
  small.enqueue(new Uint8Array(10), null);
  s.scheduleData(small);
  const next = run(s, 1 << 30);
  const position = next.frames.findIndex((f) => f.streamId === 7);
  assert.ok(position <= 3, `small frame at position ${position}`);
});

test('session frames go first, then channel control frames, then data', () => {
  const s = new WriteScheduler(1024, { onFlagsSent: () => undefined });
  const data = channel(1);
  data.enqueue(new Uint8Array(100), null);
  s.scheduleData(data);
  const control = channel(3);
  control.pendingIncrement = 5000;
  s.scheduleControl(control);
  s.queueSessionFrame(FrameType.ping, Flag.ack, 0, 42);
  const { frames } = run(s);
  assert.deepEqual(
    frames.map((f) => f.type),
    [FrameType.ping, FrameType.windowUpdate, FrameType.data],
  );
  assert.equal(frames[1]!.length, 5000);
});

test('SYN rides on the first data frame; FIN follows the data as a Window Update', () => {
  const sent: number[] = [];
  const s = new WriteScheduler(1024, { onFlagsSent: (_c, f) => void sent.push(f) });
  const c = new ChannelState(1, true, 262144, 262144);
  c.pending = Pending.syn | Pending.fin;
  c.enqueue(Buffer.from('hello'), null);
  s.scheduleControl(c);
  const first = run(s).frames;
  const second = run(s).frames;
  const frames = [...first, ...second];
  assert.deepEqual(
    frames.map((f) => [f.type, f.flags]),
    [
      [FrameType.data, Flag.syn],
      [FrameType.windowUpdate, Flag.fin],
    ],
  );
  assert.equal(frames[0]!.payload.toString(), 'hello');
  assert.deepEqual(sent, [Flag.syn, Flag.fin]);
});

test('a channel never sends beyond its send window', () => {
  const s = new WriteScheduler(16 * 1024, { onFlagsSent: () => undefined });
  const c = channel(1);
  c.sendWindow = 5000;
  c.enqueue(new Uint8Array(20000), null);
  s.scheduleData(c);
  const { frames } = run(s);
  assert.equal(
    frames.reduce((n, f) => n + f.length, 0),
    5000,
  );
  assert.equal(c.queuedBytes, 15000);
  assert.ok(s.idle, 'a blocked channel leaves the ring until its window opens');
});

test("RST drops the channel's flags and goes out as a control frame", () => {
  const s = new WriteScheduler(1024, { onFlagsSent: () => undefined });
  const c = channel(5);
  c.pending = Pending.rst;
  s.scheduleControl(c);
  const { frames } = run(s);
  assert.deepEqual(
    frames.map((f) => [f.type, f.flags, f.streamId]),
    [[FrameType.windowUpdate, Flag.rst, 5]],
  );
});

test('completions are collected when a write is fully framed; small payloads are copied, large referenced', () => {
  const s = new WriteScheduler(64 * 1024, { onFlagsSent: () => undefined });
  const c = channel(1);
  const done: string[] = [];
  const small = Buffer.alloc(COPY_LIMIT, 1);
  const large = Buffer.alloc(COPY_LIMIT + 1, 2);
  c.enqueue(small, () => done.push('small'));
  c.enqueue(large, () => done.push('large'));
  s.scheduleData(c);
  const { batch } = run(s);
  const parts = batch.parts;
  assert.ok(
    parts.some((p) => p.buffer === large.buffer),
    'large payload is referenced',
  );
  assert.ok(!parts.some((p) => p.buffer === small.buffer), 'small payload is copied');
  for (const callback of batch.done) callback();
  assert.deepEqual(done, ['small', 'large']);
});

test('a batch with a scratch buffer: a small write leaves as one exact copy, and reusing the scratch leaves it intact', () => {
  const scratch = new Scratch(2048);
  const batch = new FrameBatch((n) => new Uint8Array(n), undefined, scratch);
  batch.header(FrameType.data, 0, 1, 3);
  batch.payload(Uint8Array.of(1, 2, 3));
  const first = batch.finish();
  assert.equal(first.length, 1, 'one part');
  assert.equal(first[0]!.length, 15, 'exactly the frame');
  assert.notEqual(first[0]!.buffer, scratch.lend(batch)!.buffer, 'a copy, not the scratch');
  const kept = Buffer.from(first[0]!);
  batch.reset();
  batch.header(FrameType.data, 0, 3, 2);
  batch.payload(Uint8Array.of(9, 9));
  const second = batch.finish();
  assert.notEqual(second, first, 'a new parts array');
  assert.deepEqual(Buffer.from(first[0]!), kept, 'the first write is untouched by the second');
  assert.deepEqual(
    parseFrames(Buffer.concat(second)).map((f) => [f.streamId, f.length]),
    [[3, 2]],
  );
});

test('a batch larger than its scratch continues in fresh staging buffers, every byte in order', () => {
  const batch = new FrameBatch((n) => new Uint8Array(n), undefined, new Scratch(2048));
  const payloads = Array.from({ length: 300 }, (_, i) => new Uint8Array(20 + (i % 7)).fill(i & 0xff));
  payloads.forEach((p, i) => {
    batch.header(FrameType.data, 0, 2 * i + 1, p.length);
    batch.payload(p);
  });
  const big = new Uint8Array(COPY_LIMIT + 1).fill(7);
  batch.header(FrameType.data, 0, 999, big.length);
  batch.payload(big);
  const parts = batch.finish();
  assert.ok(parts.length <= 8, `few parts: ${parts.length}`);
  const frames = parseFrames(Buffer.concat(parts));
  assert.equal(frames.length, 301);
  frames.slice(0, 300).forEach((f, i) => {
    assert.equal(f.streamId, 2 * i + 1);
    assert.deepEqual(Buffer.from(f.payload), Buffer.from(payloads[i]!));
  });
  assert.deepEqual(Buffer.from(frames[300]!.payload), Buffer.from(big));
  assert.equal(parts[parts.length - 1], big, 'a large payload is referenced, not copied');
});

test('consecutive writes share a Data frame, unless the channel frames each write apart (then never more than one write per frame)', () => {
  const packed = new WriteScheduler(1024, { onFlagsSent: () => undefined });
  const shared = channel(1);
  for (const size of [5, 5, 3000]) shared.enqueue(new Uint8Array(size), null);
  packed.scheduleData(shared);
  assert.deepEqual(
    run(packed).frames.map((f) => f.length),
    [1024, 1024, 962],
  );

  const apart = new WriteScheduler(1024, { onFlagsSent: () => undefined });
  const own = channel(3);
  own.frameEachWrite = true;
  for (const size of [5, 5, 3000]) own.enqueue(new Uint8Array(size).fill(size & 0xff), null);
  apart.scheduleData(own);
  const { frames } = run(apart);
  // Each write in frames of its own, still cut at maxFrameSize.
  assert.deepEqual(
    frames.map((f) => f.length),
    [5, 5, 1024, 1024, 952],
  );
  assert.ok(frames.every((f) => f.streamId === 3));
  assert.ok(apart.idle);
});

test('a frame per write (libp2p) or a byte of window at a time frames a long queue in linear time, in order', () => {
  const count = 200_000;
  for (const mode of ['frame each write', 'a byte of window at a time'] as const) {
    const s = new WriteScheduler(16 * 1024, { onFlagsSent: () => undefined });
    const c = channel(1);
    if (mode === 'frame each write') {
      c.frameEachWrite = true;
      c.sendWindow = 1 << 30;
    } else c.sendWindow = 0;
    const completed: number[] = [];
    for (let i = 0; i < count; i++) c.enqueue(new Uint8Array([i & 255]), () => completed.push(i));
    const payload: number[] = [];
    const started = performance.now();
    for (let turn = 0; turn < 2 * count && c.queuedBytes > 0; turn++) {
      if (mode === 'a byte of window at a time') c.sendWindow += 1;
      s.scheduleData(c);
      const batch = new FrameBatch((n) => new Uint8Array(n));
      s.fill(batch, 1 << 30);
      const bytes = Buffer.concat(batch.finish());
      for (const frame of parseFrames(bytes)) for (const byte of frame.payload) payload.push(byte);
      for (const done of batch.done) done(null);
    }
    const elapsed = performance.now() - started;
    assert.equal(payload.length, count, mode);
    assert.ok(
      payload.every((byte, i) => byte === (i & 255)),
      `${mode}: every byte in order`,
    );
    assert.equal(completed.length, count);
    assert.ok(
      completed.every((n, i) => n === i),
      `${mode}: completions in order`,
    );
    assert.equal(c.queue.length, 0, `${mode}: the emptied queue let go`);
    // A shift() per frame copied the rest of the queue: 128,000 such frames took seconds.
    assert.ok(elapsed < 5_000, `${mode}: framing took ${Math.round(elapsed)} ms: quadratic`);
  }
});

test("one scratch for every session's batch: one built while another holds it starts in a buffer of its own", () => {
  const scratch = new Scratch(2048);
  const allocated: number[] = [];
  const allocate = (n: number): Uint8Array => {
    allocated.push(n);
    return new Uint8Array(n);
  };
  const outer = new FrameBatch(allocate, undefined, scratch);
  const inner = new FrameBatch(allocate, undefined, scratch);
  outer.header(FrameType.data, 0, 1, 3);
  outer.payload(Uint8Array.of(1, 2, 3));
  // A batch made meanwhile (another session written to from inside this one's write): its own staging.
  inner.header(FrameType.data, 0, 5, 2);
  inner.payload(Uint8Array.of(8, 8));
  outer.header(FrameType.data, 0, 1, 1);
  outer.payload(Uint8Array.of(4));
  const innerParts = inner.finish();
  inner.reset();
  const outerParts = outer.finish();
  outer.reset();
  assert.deepEqual(
    parseFrames(Buffer.concat(outerParts)).map((f) => [f.streamId, [...f.payload]]),
    [
      [1, [1, 2, 3]],
      [1, [4]],
    ],
  );
  assert.deepEqual(
    parseFrames(Buffer.concat(innerParts)).map((f) => [f.streamId, [...f.payload]]),
    [[5, [8, 8]]],
  );
  // Given back at reset(): the next batch of either starts in the scratch again (one exact copy leaves it).
  allocated.length = 0;
  inner.header(FrameType.data, 0, 7, 1);
  inner.payload(Uint8Array.of(9));
  const again = inner.finish();
  inner.reset();
  assert.deepEqual(allocated, [13], 'one exact-size copy out of the scratch, no staging buffer');
  assert.equal(again.length, 1);
});

test('sessions that have written hold no scratch buffer of their own: one is shared by all', async () => {
  const arrayBuffers = async (): Promise<number> => (await settledMemory(5)).arrayBuffers;
  const before = await arrayBuffers();
  const pairs = Array.from({ length: 300 }, () => {
    const [a, b] = memoryPipe();
    return { client: lightClient(a, { keepAliveInterval: 0 }), server: lightServer(b, { keepAliveInterval: 0 }) };
  });
  try {
    // Every session writes (a SYN and a byte one way, the ACK the other), so every writer made a batch.
    await Promise.all(
      pairs.map(async ({ client, server }) => {
        const accepted = server.accept();
        client.dial().end(new Uint8Array([1]));
        const channel = await accepted;
        channel.resume();
        await new Promise<void>((resolve) => channel.once('end', () => resolve()));
      }),
    );
    const perSession = ((await arrayBuffers()) - before) / (2 * pairs.length);
    // One 2 KiB scratch per session was 2,048 bytes each.
    assert.ok(perSession < 512, `${perSession.toFixed(0)} bytes of ArrayBuffers per idle session`);
  } finally {
    for (const { client, server } of pairs) {
      client.destroy();
      server.destroy();
    }
  }
});
