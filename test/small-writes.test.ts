/**
 * Backpressure counts a waiting write's own memory, not only its bytes: a writer of a few bytes at a time (an
 * echo of a peer's one-byte frames, spread over many channels) holds an object or two per write, so a bound in
 * bytes alone let each channel hold its high-water mark in writes of a few bytes, 30 times the mark in memory.
 * Each kind of channel says "wait" once its waiting writes' bytes and a cost per write (`CHUNK_COST`) reach the
 * mark, and the bytes still arrive exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { lightClient, lightServer, multiplexedClient, multiplexedServer, type Session } from '../src/index.js';
import { CHUNK_COST } from '../src/core/flow.js';
import { WebSession, streamTransport, type WebChannel } from '../src/web/index.js';
import { memoryPipe, readAll, sessionPair, tcpPair, until } from './helpers.js';

const MARK = 64 * 1024; // channelHighWaterMark's default
/** Writes of one byte each that may wait before "wait": the mark over what each costs, and a few in flight. */
const MOST_WAITING = Math.ceil(MARK / (1 + CHUNK_COST)) + 2;

/** Bytes 0, 1, 2, ... (mod 251) of `length`: a reorder or a loss shows. */
function counting(length: number, from = 0): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (from + i) % 251;
  return bytes;
}

test("a Node Channel's write() of one byte at a time says false after about mark / (1 + CHUNK_COST) writes, not mark writes; 'drain' follows and every byte arrives in order", async () => {
  const pair = await sessionPair();
  try {
    const channel = pair.client.dial();
    const received = pair.server.accept().then(readAll);
    const bytes = counting(200_000);
    let written = 0;
    let stops = 0;
    let firstStop = -1;
    while (written < bytes.length) {
      const ok = channel.write(bytes.subarray(written, written + 1));
      written++;
      if (ok) continue;
      stops++;
      if (firstStop < 0) firstStop = written;
      assert.equal(channel.writableNeedDrain, true, 'write() said false: writableNeedDrain says so too');
      await once(channel, 'drain');
    }
    channel.end();
    assert.ok(firstStop > 0 && firstStop <= MOST_WAITING, `first false after ${firstStop} one-byte writes`);
    assert.ok(stops >= bytes.length / MOST_WAITING - 1, `${stops} stops for ${bytes.length} writes`);
    assert.deepEqual(new Uint8Array(await received), bytes);
  } finally {
    await pair.close();
  }
});

test("a Node Channel: large writes still say false at the mark in bytes, and write(), cork() and end(data) keep Node's semantics", async () => {
  const pair = await sessionPair();
  try {
    const channel = pair.client.dial();
    const received = pair.server.accept().then(readAll);
    assert.equal(channel.write(counting(MARK - 1)), true, 'one write under the mark: true, as on any Node stream');
    assert.equal(channel.write(counting(1, MARK - 1)), false, 'the mark reached: false');
    await once(channel, 'drain');
    channel.cork();
    for (let i = 0; i < 10; i++) assert.equal(channel.write(counting(10, MARK + 10 * i)), true);
    channel.uncork();
    channel.end(counting(5, MARK + 100));
    await once(channel, 'finish');
    assert.deepEqual(new Uint8Array(await received), counting(MARK + 105));
  } finally {
    await pair.close();
  }
});

test("a LightChannel's write() of one byte at a time says false after about mark / (1 + CHUNK_COST) writes; 'drain' follows, bytes exact", async () => {
  const [a, b] = memoryPipe();
  const client = lightClient(a, { keepAliveInterval: 0 });
  const server = lightServer(b, { keepAliveInterval: 0 });
  try {
    const channel = client.dial();
    const chunks: Uint8Array[] = [];
    const ended = server.accept().then(
      (peer) =>
        new Promise<void>((resolve) => {
          peer.on('data', (chunk) => chunks.push(chunk));
          peer.on('end', resolve);
        }),
    );
    const bytes = counting(100_000);
    let written = 0;
    let firstStop = -1;
    while (written < bytes.length) {
      const ok = channel.write(bytes.subarray(written, written + 1));
      written++;
      if (ok) continue;
      if (firstStop < 0) firstStop = written;
      await once(channel, 'drain');
    }
    channel.end();
    await ended;
    assert.ok(firstStop > 0 && firstStop <= MOST_WAITING, `first false after ${firstStop} one-byte writes`);
    assert.deepEqual(new Uint8Array(Buffer.concat(chunks)), bytes);
  } finally {
    client.destroy();
    server.destroy();
    a.destroy();
    b.destroy();
  }
});

test('a WebChannel: one-byte writes resolve at once only while what waits is under the mark with its per-write cost; awaited, the bytes arrive exactly', async () => {
  const aToB = new TransformStream<Uint8Array, Uint8Array>();
  const bToA = new TransformStream<Uint8Array, Uint8Array>();
  // a's transport takes nothing until `open()`: its session's writes wait, as on a link that stalls.
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const toB = aToB.writable.getWriter();
  const gated = new WritableStream<Uint8Array>({
    async write(chunk) {
      await opened;
      await toB.write(chunk);
    },
    close: () => toB.close(),
  });
  const a = new WebSession(streamTransport({ readable: bToA.readable, writable: gated }), 'client', {
    keepAliveInterval: 0,
  });
  const b = new WebSession(streamTransport({ readable: aToB.readable, writable: bToA.writable }), 'server', {
    keepAliveInterval: 0,
  });
  try {
    const channel: WebChannel = a.dial();
    const received = b.accept().then(async (peer) => {
      const parts: Uint8Array[] = [];
      const reader = peer.readable.getReader();
      for (let read = await reader.read(); !read.done; read = await reader.read()) parts.push(read.value);
      return new Uint8Array(Buffer.concat(parts));
    });
    const writer = channel.writable.getWriter();
    const bytes = counting(50_000);
    // Written without waiting: how many resolve while the transport takes nothing.
    let resolved = 0;
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 4 * MOST_WAITING; i++)
      writes.push(
        writer.write(bytes.subarray(i, i + 1)).then(() => {
          resolved++;
        }),
      );
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(
      resolved > 0 && resolved <= MOST_WAITING,
      `${resolved} one-byte writes resolved with the transport stalled`,
    );
    open();
    await Promise.all(writes);
    for (let i = 4 * MOST_WAITING; i < bytes.length; i++) await writer.write(bytes.subarray(i, i + 1));
    await writer.close();
    assert.deepEqual(await received, bytes);
  } finally {
    a.destroy();
    b.destroy();
  }
});

/** Reads each of `session`'s incoming channels in 1,000-byte records (`read(1000)`), then what is left at the end. */
function readRecords(session: Session, counted: (length: number) => void): void {
  session.on('channel', (channel) => {
    channel.on('readable', () => {
      let record: Buffer | null;
      while ((record = channel.read(1000) as Buffer | null) !== null) counted(record.length);
    });
    channel.on('end', () => {
      const rest = channel.read() as Buffer | null;
      if (rest !== null) counted(rest.length);
    });
  });
}

test('a reader of 1,000-byte records from 1,001-byte writes (its buffer seldom empty) is not held at the bound by the cost of chunks it already read: 16 MiB under a 256 KiB bound', async () => {
  const bound = { maxSessionBuffered: 256 * 1024 };
  const pair = await sessionPair({ transport: 'tcp', client: bound, server: bound });
  try {
    const total = 16 * 1024 * 1024;
    let got = 0;
    readRecords(pair.server, (length) => (got += length));
    const channel = pair.client.dial();
    const write = Buffer.alloc(1001, 1);
    let sent = 0;
    const started = performance.now();
    while (sent < total) {
      sent += write.length;
      if (!channel.write(write)) await once(channel, 'drain');
    }
    channel.end();
    // Before, the chunks' cost was given back only when the channel was read empty: it piled up until the
    // session paused at its bound with a few hundred bytes unread, then read one probe's worth every 5 s.
    await until(() => got === sent, 20_000, `every byte (${got} of ${sent})`);
    assert.ok(performance.now() - started < 15_000);
    assert.equal(pair.server.stats().bufferedBytes, 0);
  } finally {
    await pair.close();
  }
});

test('the same reader when each channel began with a one-byte chunk (a version byte): the cost of chunks read goes as each is read, so the session never pauses reading: 32 MiB on 4 channels under a 256 KiB bound', async () => {
  const [a, b] = await tcpPair();
  const bound = { maxSessionBuffered: 256 * 1024, keepAliveInterval: 0 };
  const client = multiplexedClient(a, bound);
  const server = multiplexedServer(b, bound);
  let samples = 0;
  let paused = 0;
  const sampler = setInterval(() => {
    samples++;
    if (b.isPaused()) paused++;
  }, 2);
  try {
    const perChannel = 8 * 1024 * 1024;
    let got = 0;
    readRecords(server, (length) => (got += length));
    const write = Buffer.alloc(1001, 1);
    let sent = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        const channel = client.dial();
        channel.write(Buffer.from([7]));
        sent += 1;
        await delay(50); // the byte arrives alone, as its own chunk
        for (let mine = 0; mine < perChannel; mine += write.length) {
          sent += write.length;
          if (!channel.write(write)) await once(channel, 'drain');
          await new Promise(setImmediate); // writes leave a few at a time, so chunks arrive apart
        }
        channel.end();
      }),
    );
    await until(() => got === sent, 60_000, `every byte (${got} of ${sent})`);
    // The reader keeps under 1,000 bytes and two or three chunks unread per channel, far under the bound. Before,
    // each chunk still whole was assumed to hold at least the smallest chunk's bytes (here 1) until the channel
    // was read empty: the cost piled up, and the session stayed paused at its bound (99% of samples, 11-80 s),
    // reading one probe's worth at a time.
    assert.ok(paused <= samples / 20, `the server's socket was paused in ${paused} of ${samples} samples`);
    assert.equal(server.stats().bufferedBytes, 0);
  } finally {
    clearInterval(sampler);
    client.destroy();
    server.destroy();
    a.destroy();
    b.destroy();
  }
});
