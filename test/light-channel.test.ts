import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  ChannelResetError,
  LightChannel,
  LightSession,
  MuxError,
  TransportClosedError,
  lightClient,
  lightServer,
  multiplexedServer,
} from '../src/index.js';
import { LightSession as CoreLightSession } from '../src/core/index.js';
import type { Transport, TransportEvents } from '../src/core/transport.js';
import { memoryPipe, pseudoRandomBytes, tcpPair, until, within } from './helpers.js';
import { corePipe } from './support/core-pipe.js';
import { CHUNK_COST } from '../src/core/flow.js';

async function lightPair(transport: 'memory' | 'tcp' = 'memory', serverOptions = {}) {
  const [a, b] = transport === 'tcp' ? await tcpPair() : memoryPipe();
  const client = lightClient(a, { keepAliveInterval: 0 });
  const server = lightServer(b, { keepAliveInterval: 0, ...serverOptions });
  return {
    client,
    server,
    close: () => {
      client.destroy();
      server.destroy();
      a.destroy();
      b.destroy();
    },
  };
}

/** Reads a light channel with 'data' events to its 'end'. */
function readAll(channel: LightChannel): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    channel.on('data', (chunk) => chunks.push(chunk));
    channel.on('end', () => resolve(Buffer.concat(chunks)));
    channel.on('error', reject);
  });
}

/** Writes `data` in `piece`-byte writes, waiting for 'drain' when asked, then ends. */
async function writeAll(channel: LightChannel, data: Uint8Array, piece = 16 * 1024): Promise<void> {
  for (let at = 0; at < data.length; at += piece) {
    if (!channel.write(data.subarray(at, at + piece))) await once(channel, 'drain');
  }
  channel.end();
}

test('light channels carry data both ways over TCP, exact and in order; events end in close', async () => {
  const { client, server, close } = await lightPair('tcp');
  try {
    assert.ok(client instanceof LightSession);
    const up = pseudoRandomBytes(3 * 1024 * 1024 + 17, 1);
    const down = pseudoRandomBytes(2 * 1024 * 1024 + 5, 2);
    let serverRead: Promise<Buffer> = Promise.reject(new Error('no channel reached the server'));
    serverRead.catch(() => {});
    server.on('channel', (ch) => {
      serverRead = readAll(ch);
      void writeAll(ch, down);
    });
    const ch = client.dial();
    assert.ok(ch instanceof LightChannel);
    const events: string[] = [];
    for (const event of ['end', 'finish', 'close'] as const) ch.on(event, () => events.push(event));
    const closed = once(ch, 'close');
    const reading = readAll(ch);
    await writeAll(ch, up, 50_000);
    assert.ok((await reading).equals(down), 'the client read what the server wrote');
    assert.ok((await serverRead).equals(up), 'the server read what the client wrote');
    await closed;
    assert.equal(events.at(-1), 'close');
    assert.deepEqual([...events].sort(), ['close', 'end', 'finish']);
    assert.equal(ch.destroyed, true);
    assert.equal(ch.failure, undefined);
    await until(() => ch.protocolState === 'closed', 2000, 'both FINs');
  } finally {
    close();
  }
});

test('write() returns false at the high-water mark and drain follows; a paused reader holds the writer at its window', async () => {
  const { client, server, close } = await lightPair('memory', { initialWindow: 256 * 1024 });
  try {
    const accepted = once(server, 'channel') as Promise<[LightChannel]>;
    const ch = client.dial();
    ch.write(new Uint8Array([1]));
    const [peer] = await accepted;
    peer.pause();
    // The peer reads nothing: the writer can send one window, and the rest waits here.
    const big = pseudoRandomBytes(1024 * 1024, 3);
    assert.equal(ch.write(big), false, 'over the high-water mark');
    await until(() => peer.readableLength >= 256 * 1024, 2000, 'a window buffered at the peer');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(peer.readableLength <= 256 * 1024, `the peer holds ${peer.readableLength} bytes, more than its window`);
    assert.ok(ch.writableLength > 0, 'the rest waits on the writer');
    const drained = once(ch, 'drain');
    const reading = readAll(peer); // adds a 'data' listener, but the channel was paused by hand
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(peer.isPaused(), true, 'a data listener does not undo pause()');
    peer.resume();
    await drained;
    ch.end();
    const got = await reading;
    assert.equal(got.length, 1 + big.length);
    assert.ok(got.subarray(1).equals(big));
  } finally {
    close();
  }
});

test('for await reads a light channel to its end; leaving the loop early resets the channel', async () => {
  const { client, server, close } = await lightPair();
  try {
    const data = pseudoRandomBytes(600_000, 4);
    server.once('channel', (ch) => void writeAll(ch, data, 32 * 1024));
    const ch = client.dial();
    ch.end(new Uint8Array(0));
    const chunks: Uint8Array[] = [];
    for await (const chunk of ch) chunks.push(chunk);
    assert.ok(Buffer.concat(chunks).equals(data));

    // Early exit: the channel is destroyed, and the peer's writes fail with a reset.
    const peerError = new Promise<Error>((resolve) => {
      server.once('channel', (peer) => {
        peer.on('error', resolve);
        void writeAll(peer, pseudoRandomBytes(4 * 1024 * 1024, 5), 64 * 1024).catch(() => {});
      });
    });
    const second = client.dial();
    second.write(new Uint8Array([7]));
    for await (const chunk of second) {
      assert.ok(chunk.length > 0);
      break;
    }
    assert.equal(second.destroyed, true);
    const error = await peerError;
    assert.ok(error instanceof ChannelResetError, `got ${error}`);
  } finally {
    close();
  }
});

test("destroy() without an error while for await reads a light channel (or before it reads) rejects the loop with ERR_MUX_CHANNEL_ABORTED, as a Node stream's loop throws: a cut-short body never looks whole; after the end, the loop ends", async () => {
  const { client, server, close } = await lightPair();
  try {
    const accepted = new Promise<LightChannel>((resolve) => server.once('channel', resolve));
    const dialled = client.dial();
    dialled.write(new Uint8Array([1, 2, 3])); // and never ends: the body is cut short here
    const channel = await accepted;
    const chunks: Uint8Array[] = [];
    const loop = (async () => {
      for await (const chunk of channel) {
        chunks.push(chunk);
        setTimeout(() => channel.destroy(), 20); // a timeout or a cancel, while the loop waits for more
      }
    })();
    // Before, the loop ended as at the peer's FIN, with `failure` unset: the consumer took 3 bytes for all.
    await assert.rejects(loop, (error: unknown) => (error as MuxError).code === 'ERR_MUX_CHANNEL_ABORTED');
    assert.deepEqual(Buffer.concat(chunks), Buffer.from([1, 2, 3]));
    assert.equal(channel.failure, undefined, "no failure (no 'error'): the application destroyed it");
    // A loop begun after the destroy() rejects the same way.
    await assert.rejects(
      (async () => {
        for await (const chunk of channel) assert.fail(`read ${chunk.length} bytes`);
      })(),
      (error: unknown) => (error as MuxError).code === 'ERR_MUX_CHANNEL_ABORTED',
    );
    // Destroyed after the peer's FIN was read (the loop saw its end), nothing was cut: the loop had ended.
    const acceptedWhole = new Promise<LightChannel>((resolve) => server.once('channel', resolve));
    client.dial().end(new Uint8Array([9]));
    const whole = await acceptedWhole;
    const read: Uint8Array[] = [];
    for await (const chunk of whole) read.push(chunk);
    whole.destroy();
    assert.deepEqual(Buffer.concat(read), Buffer.from([9]));
    for await (const chunk of whole) assert.fail(`read ${chunk.length} bytes after the end`);
  } finally {
    close();
  }
});

test('half-close: the client ends writing and still reads the reply', async () => {
  const { client, server, close } = await lightPair();
  try {
    server.on('channel', (ch) => {
      const chunks: Uint8Array[] = [];
      ch.on('data', (c) => chunks.push(c));
      ch.on('end', () => ch.end(Buffer.concat(chunks).reverse()));
    });
    const ch = client.dial();
    const closed = once(ch, 'close');
    ch.end(Buffer.from('abcdef'));
    const reply = await readAll(ch);
    assert.equal(reply.toString(), 'fedcba');
    await closed;
  } finally {
    close();
  }
});

test('a reset by the peer fails the light channel with ChannelResetError, listened to or not', async () => {
  const { client, server, close } = await lightPair();
  try {
    server.on('channel', (ch) => ch.destroy());
    const listened = client.dial();
    listened.write(Buffer.from('x'));
    const [error] = (await once(listened, 'error')) as [Error];
    assert.ok(error instanceof ChannelResetError);
    assert.equal(listened.failure, error);

    const unlistened = client.dial(); // no 'error' listener: it just closes, the process does not crash
    unlistened.write(Buffer.from('y'));
    await new Promise<void>((resolve) => unlistened.on('close', () => resolve())); // (events.once would listen for 'error')
    assert.ok(unlistened.failure instanceof ChannelResetError);
    assert.equal(unlistened.write(Buffer.from('z')), false, 'a failed channel takes no more data');
  } finally {
    close();
  }
});

test('light channel misuse: write after end throws a typed error, a non-Uint8Array a TypeError', async () => {
  const { client, close } = await lightPair();
  try {
    const ch = client.dial();
    assert.throws(() => ch.write('text' as unknown as Uint8Array), TypeError);
    ch.end();
    assert.throws(
      () => ch.write(new Uint8Array(1)),
      (e: unknown) => e instanceof MuxError && e.code === 'ERR_MUX_WRITE_AFTER_END',
    );
    ch.destroy();
  } finally {
    close();
  }
});

test('closeRead() on a light channel: end follows, and the peer writing 4 MiB never stalls', async () => {
  const { client, server, close } = await lightPair();
  try {
    let peerFinished: Promise<unknown> = Promise.resolve();
    server.on('channel', (ch) => {
      ch.on('data', () => {});
      const finished = once(ch, 'finish');
      peerFinished = writeAll(ch, pseudoRandomBytes(4 * 1024 * 1024, 6), 64 * 1024).then(() => finished);
    });
    const ch = client.dial();
    ch.write(Buffer.from('go'));
    await until(() => ch.readableLength > 0 || ch.listenerCount('data') > 0, 2000, 'data at the reader');
    const ended = once(ch, 'end');
    ch.closeRead();
    await ended;
    await peerFinished;
    ch.end();
    await once(ch, 'close');
    assert.equal(ch.failure, undefined);
  } finally {
    close();
  }
});

test('a light client talks to a server whose channels are Node streams (the same wire protocol)', async () => {
  const [a, b] = memoryPipe();
  const client = lightClient(a, { keepAliveInterval: 0 });
  const server = multiplexedServer(b, { keepAliveInterval: 0 });
  try {
    server.on('channel', (ch) => ch.pipe(ch)); // echo through a Node Duplex
    const data = pseudoRandomBytes(1024 * 1024, 7);
    const ch = client.dial();
    const reading = readAll(ch);
    await writeAll(ch, data);
    assert.ok((await reading).equals(data));
    await client.close();
  } finally {
    client.destroy();
    server.destroy();
  }
});

test('a graceful close waits for light channels to finish', async () => {
  const { client, server, close } = await lightPair();
  try {
    const data = pseudoRandomBytes(512 * 1024, 8);
    const received = new Promise<Buffer>((resolve) => server.on('channel', (ch) => void readAll(ch).then(resolve)));
    const ch = client.dial();
    const closing = (async () => {
      await writeAll(ch, data);
      ch.on('data', () => {});
      await client.close();
    })();
    server.on('channel', (peer) => peer.end());
    assert.ok((await received).equals(data));
    await closing;
    assert.equal(ch.destroyed, true);
  } finally {
    close();
  }
});

test("channelHighWaterMark sets where a light channel's write() returns false: the bytes waiting and CHUNK_COST for each write", async () => {
  for (const mark of [1024, 64 * 1024]) {
    const [a, b] = memoryPipe();
    const client = lightClient(a, { keepAliveInterval: 0, channelHighWaterMark: mark });
    const server = lightServer(b, { keepAliveInterval: 0 });
    try {
      const ch = client.dial();
      const first = mark - 1 - CHUNK_COST;
      assert.equal(ch.write(new Uint8Array(first)), true, `${first} bytes in one write waiting: under the mark`);
      assert.equal(ch.write(new Uint8Array(1)), false, `${first + 1} bytes in two writes waiting: at the mark`);
      await once(ch, 'drain');
    } finally {
      client.destroy();
      server.destroy();
      a.destroy();
      b.destroy();
    }
  }
});

test('LightSession.accept() and for await over a LightSession take inbound channels in order; iteration ends with the session', async () => {
  const { client, server, close } = await lightPair();
  try {
    for (let i = 0; i < 3; i++) {
      const ch = client.dial();
      ch.end(new Uint8Array([i]));
      ch.resume(); // reads the server's end, so that the channel closes
    }
    const first = await server.accept();
    assert.ok(first instanceof LightChannel);
    assert.deepEqual([...(await readAll(first))], [0]);
    first.end();
    const seen: number[] = [];
    const iterating = (async () => {
      for await (const ch of server) {
        assert.ok(ch instanceof LightChannel);
        seen.push(...(await readAll(ch)));
        ch.end();
      }
    })();
    await until(() => seen.length === 2, 2000, 'the other two channels');
    assert.deepEqual(seen, [1, 2]);
    await client.close();
    await server.closed;
    await iterating; // the loop ends by itself once the session has closed
    await assert.rejects(server.accept(), MuxError);
  } finally {
    close();
  }
});

test('a LightSession over a core transport that is not a Node stream (a hand-written in-memory pipe) carries channels both ways and closes cleanly', async () => {
  const [a, b] = corePipe();
  const client = new CoreLightSession(a, 'client', { keepAliveInterval: 0 });
  const server = new CoreLightSession(b, 'server', { keepAliveInterval: 0 });
  const data = pseudoRandomBytes(700_000, 11); // more than one window: flow control runs over it too
  const echoed = (async () => {
    const ch = await server.accept();
    const got = await readAll(ch);
    await writeAll(ch, got, 50_000);
  })();
  const ch = client.dial();
  const reply = readAll(ch);
  await writeAll(ch, data, 40_000);
  assert.ok((await reply).equals(data), 'the echo is exact');
  await echoed;
  assert.equal(await client.ping().then((rtt) => typeof rtt), 'number');
  await client.close();
  await server.closed;
  assert.equal(client.closeError, undefined);
  assert.equal(server.closeError, undefined);
  assert.ok(a.bytesWritten > data.length && b.bytesWritten > data.length, 'the bytes went through the core pipe');
});

test('a light channel whose last write fails after both FINs were exchanged still ends: error, then close', async () => {
  // Found by the simulation (docs/reliability.md): the session no longer holds such a channel, so only the
  // failed write can end it. A transport whose write callbacks the test calls itself:
  const writes: ((error?: Error | null) => void)[] = [];
  let events: TransportEvents | undefined;
  const transport: Transport = {
    start(sink) {
      events = sink;
    },
    write(_parts, done) {
      writes.push(done);
      return true;
    },
    pause() {},
    resume() {},
    end() {},
    destroy() {
      queueMicrotask(() => events?.close());
    },
  };
  const session = new LightSession(transport, 'client', { keepAliveInterval: 0 });
  const channel = session.dial();
  const seen: string[] = [];
  let failure: unknown;
  channel.on('error', (error) => {
    failure = error;
    seen.push('error');
  });
  channel.on('finish', () => seen.push('finish'));
  const closed = new Promise<void>((resolve) =>
    channel.on('close', () => {
      seen.push('close');
      resolve();
    }),
  );
  channel.end(Uint8Array.of(1, 2, 3)); // SYN, data and FIN leave in one batch
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(writes.length > 0, 'the session wrote');
  // The peer acknowledges and half-closes (Window Update, ACK|FIN, channel 1): both FINs are exchanged.
  events!.data(Uint8Array.of(0, 1, 0, 0x06, 0, 0, 0, 1, 0, 0, 0, 0));
  assert.equal(session.channelCount, 0);
  for (const done of writes.splice(0)) done(new Error('simulated EPIPE'));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(resolve, 2000, 'timeout');
  });
  const outcome = await Promise.race([closed.then(() => 'closed'), timeout]);
  clearTimeout(timer);
  assert.equal(outcome, 'closed', `'close' never came (events: ${seen.join(', ')})`);
  assert.deepEqual(seen, ['error', 'close']);
  assert.ok(failure instanceof TransportClosedError, `typed failure, got ${String(failure)}`);
  assert.equal(channel.failure, failure);
  await session.closed.catch(() => {});
});

/**
 * A light channel on a TCP pair whose peer sends `data` with its FIN, then drops the connection; returned
 * paused and unread once the client's session has failed.
 */
async function sentThenCut(data: Uint8Array, fin = true): Promise<{ channel: LightChannel; close: () => void }> {
  const { client, server, close } = await lightPair('tcp');
  server.on('channel', (inbound) => {
    inbound.on('error', () => {});
    if (fin) inbound.end(data);
    else inbound.write(data);
    void (async () => {
      await until(() => inbound.stats().queuedBytes === 0, 5000, 'the data sent');
      setTimeout(() => server.destroy(), 20);
    })();
  });
  const channel = client.dial();
  channel.write(new Uint8Array([1]));
  channel.pause();
  await until(() => client.state === 'closed', 5000, 'the client session to fail');
  return { channel, close };
}

test('an echo that waits for drain on a light channel kept after its session failed reads every chunk, then gets the error (its writes are taken)', async () => {
  for (const fin of [true, false]) {
    const { client, server, close } = await lightPair('tcp');
    try {
      const sent = new Promise<void>((resolve) => {
        server.on('channel', (inbound) => {
          inbound.on('error', () => {});
          void (async () => {
            for (let i = 0; i < 400; i++) {
              inbound.write(new Uint8Array(10).fill(i));
              await new Promise((next) => setTimeout(next, 0));
            }
            if (fin) inbound.end();
            await until(() => inbound.stats().queuedBytes === 0, 5000, 'the chunks sent');
            setTimeout(resolve, 50);
          })();
        });
      });
      const channel = client.dial();
      channel.write(new Uint8Array([1]));
      channel.pause();
      await sent;
      await until(() => channel.readableLength === 4000, 5000, 'every chunk here');
      server.destroy();
      await until(() => client.state === 'closed', 5000, 'the client session to fail');
      let errorCode: string | undefined;
      channel.on('error', (error) => (errorCode = (error as MuxError).code));
      let echoed = 0;
      channel.on('data', (chunk) => {
        echoed += chunk.length;
        if (!channel.write(chunk)) channel.pause();
      });
      channel.on('drain', () => channel.resume());
      channel.on('end', () => channel.end());
      channel.resume();
      await until(() => channel.destroyed, 3000, `FIN ${fin}: the channel to fail once read`);
      assert.equal(echoed, 4000, `FIN ${fin}: every chunk read and echoed`);
      assert.equal(errorCode, 'ERR_MUX_TRANSPORT_CLOSED');
    } finally {
      close();
    }
  }
});

test("a writer that does not read a light channel kept after its session failed is told to wait, and 'drain' comes a turn later: the event loop goes on; reading brings the data, then the error", async () => {
  const data = pseudoRandomBytes(200 * 1024, 32);
  const { channel, close } = await sentThenCut(data);
  try {
    const piece = new Uint8Array(16 * 1024);
    let timersRan = 0;
    const ticker = setInterval(() => timersRan++, 10);
    let writes = 0;
    const started = performance.now();
    while (performance.now() - started < 300) {
      writes++;
      if (!channel.write(piece)) await once(channel, 'drain');
    }
    clearInterval(ticker);
    assert.ok(timersRan >= 10, `the event loop went on (${timersRan} timer ticks in 300 ms)`);
    assert.ok(writes > 1, `${writes} writes, each answered by a 'drain'`);
    assert.equal(channel.destroyed, false, 'still left to be read');
    const chunks: Uint8Array[] = [];
    let errorCode: string | undefined;
    channel.on('data', (chunk) => chunks.push(chunk));
    channel.on('error', (error) => (errorCode = (error as MuxError).code));
    channel.resume(); // (paused by hand in sentThenCut)
    await until(() => channel.destroyed, 2000, 'the channel to fail once read');
    assert.ok(Buffer.concat(chunks).equals(data), 'every byte, in order');
    assert.equal(errorCode, 'ERR_MUX_TRANSPORT_CLOSED');
  } finally {
    close();
  }
});

test("a light channel whose peer sent its data and FIN before the session failed is read whole, then 'end', then the error (users-asks row 26)", async () => {
  const data = pseudoRandomBytes(200 * 1024, 26);
  const { channel, close } = await sentThenCut(data);
  try {
    assert.equal((channel.failure as MuxError | undefined)?.code, 'ERR_MUX_TRANSPORT_CLOSED');
    const events: string[] = [];
    channel.on('end', () => events.push('end'));
    channel.on('close', () => events.push('close'));
    const failed = once(channel, 'error');
    const chunks: Uint8Array[] = [];
    for await (const chunk of channel) chunks.push(chunk);
    assert.ok(Buffer.concat(chunks).equals(data), 'every byte, in order');
    assert.equal(((await failed)[0] as MuxError).code, 'ERR_MUX_TRANSPORT_CLOSED');
    await until(() => events.includes('close'), 1000, "'close'");
    assert.deepEqual(events, ['end', 'close']);
  } finally {
    close();
  }
});

for (const mode of ['for await', "'data'"] as const) {
  test(`a light channel whose peer had not ended keeps what arrived (${mode}): read whole, then the error, no 'end'`, async () => {
    const data = pseudoRandomBytes(100 * 1024, 30);
    const { channel, close } = await sentThenCut(data, false);
    try {
      assert.equal(channel.destroyed, false, 'kept to be read');
      let ended = false;
      let emitted: Error | undefined;
      channel.on('end', () => (ended = true));
      channel.on('error', (error) => (emitted = error));
      const chunks: Uint8Array[] = [];
      if (mode === 'for await') {
        await assert.rejects(
          (async () => {
            for await (const chunk of channel) chunks.push(chunk);
          })(),
          (error: MuxError) => error.code === 'ERR_MUX_TRANSPORT_CLOSED',
        );
      } else {
        channel.on('data', (chunk) => chunks.push(chunk));
        channel.resume();
        await until(() => emitted !== undefined, 2000, "the channel's error");
      }
      assert.ok(Buffer.concat(chunks).equals(data), 'every byte that arrived, in order');
      await until(() => channel.destroyed, 1000, 'the channel closed');
      assert.equal((emitted as MuxError | undefined)?.code, 'ERR_MUX_TRANSPORT_CLOSED');
      assert.equal(ended, false);
    } finally {
      close();
    }
  });
}

test("a light channel kept without a FIN, whose 'data' listener pauses on the last chunk and resumes later, still gets its error", async () => {
  const data = pseudoRandomBytes(3000, 31);
  const { channel, close } = await sentThenCut(data, false);
  try {
    let error: MuxError | undefined;
    channel.on('error', (e) => (error = e as MuxError));
    let read = 0;
    channel.on('data', (chunk) => {
      read += chunk.length;
      channel.pause();
      setTimeout(() => channel.resume(), 20);
    });
    channel.resume();
    await until(() => channel.destroyed, 3000, 'the channel closed');
    assert.equal(read, data.length);
    assert.equal(error?.code, 'ERR_MUX_TRANSPORT_CLOSED');
  } finally {
    close();
  }
});

for (const before of ['end', 'write'] as const) {
  test(`a light channel left to be read after its session failed: ${before}() first, then every byte is still read, then the error`, async () => {
    const data = pseudoRandomBytes(100 * 1024, 28);
    const { channel, close } = await sentThenCut(data);
    try {
      let error: MuxError | undefined;
      channel.on('error', (e) => (error = e as MuxError));
      if (before === 'end') channel.end();
      else
        assert.equal(
          channel.write(new Uint8Array(10)),
          false,
          "taken, going nowhere: 'drain' follows, the error after the read",
        );
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(channel.destroyed, false, 'left to be read');
      const chunks: Uint8Array[] = [];
      for await (const chunk of channel) chunks.push(chunk);
      assert.ok(Buffer.concat(chunks).equals(data), 'every byte, in order');
      await until(() => error !== undefined, 2000, "the channel's error");
      assert.equal(error?.code, 'ERR_MUX_TRANSPORT_CLOSED');
      await until(() => channel.destroyed, 1000, 'the channel closed');
    } finally {
      close();
    }
  });
}

test('closeRead() while a for await waits on a light channel ends the loop', async () => {
  const { client, server, close } = await lightPair();
  try {
    server.on('channel', (ch) => ch.on('data', () => {})); // the server never writes
    const ch = client.dial();
    ch.write(Buffer.from('hello'));
    const loop = (async () => {
      let chunks = 0;
      for await (const _ of ch) chunks++;
      return chunks;
    })();
    await new Promise((resolve) => setTimeout(resolve, 50)); // the loop waits for data
    ch.closeRead();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      loop,
      new Promise((resolve) => (timer = setTimeout(() => resolve('still waiting'), 2000))),
    ]).finally(() => clearTimeout(timer));
    assert.equal(outcome, 0);
  } finally {
    close();
  }
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test("closeRead() in a 'data' listener drops what was buffered: no more 'data', and the unread count stays at 0", async () => {
  const { client, server, close } = await lightPair('tcp');
  let peer: LightChannel | undefined;
  try {
    server.on('channel', (channel: LightChannel) => {
      peer = channel;
      channel.on('error', () => {});
      void (async () => {
        for (let i = 0; i < 4; i++) {
          channel.write(new Uint8Array(1000).fill(i + 1));
          await sleep(15); // four frames, four chunks
        }
      })();
    });
    const channel = client.dial();
    channel.write(new Uint8Array([0]));
    await until(() => channel.readableLength === 4000, 2000, 'four chunks waiting, no reader yet');
    const events: string[] = [];
    channel.on('data', (chunk: Uint8Array) => {
      events.push(`data:${chunk[0]}`);
      if (events.length === 1) channel.closeRead();
    });
    channel.on('end', () => events.push('end'));
    await until(() => events.includes('end'), 2000, "'end'");
    assert.deepEqual(events, ['data:1', 'end']);
    assert.equal(channel.readableLength, 0);
    assert.equal(channel.stats().bufferedBytes, 0);
    assert.equal(client.bufferedBytes, 0);
    await sleep(50); // the credit the closeRead() gave has reached the peer
    assert.ok(peer !== undefined && peer.stats().sendWindow <= channel.receiveWindow, 'no credit beyond the window');
  } finally {
    close();
  }
});

test("destroy() in the 'end' or 'finish' listener that finishes a channel: 'close' once, no 'error' after it", async () => {
  for (const last of ['end', 'finish'] as const) {
    for (const withError of [false, true]) {
      const { client, server, close } = await lightPair('tcp');
      try {
        server.on('channel', (channel: LightChannel) => {
          channel.on('error', () => {});
          channel.on('data', () => {});
          // 'end' last: the peer's FIN comes after this side's 'finish'; 'finish' last: the other way round.
          if (last === 'end') setTimeout(() => channel.end(new TextEncoder().encode('bye')), 40);
          else channel.end(new TextEncoder().encode('bye'));
        });
        const channel = client.dial();
        const events: string[] = [];
        for (const name of ['end', 'finish', 'close'] as const) channel.on(name, () => events.push(name));
        channel.on('error', (error: Error) => events.push(`error:${error.message}`));
        channel.on('data', () => {});
        channel.on(last, () => channel.destroy(withError ? new Error('mine') : undefined));
        if (last === 'end') channel.end(new TextEncoder().encode('hi'));
        else {
          channel.write(new TextEncoder().encode('hi'));
          channel.on('end', () => setTimeout(() => channel.end(), 20));
        }
        await until(() => events.includes('close'), 2000, "'close'");
        await sleep(50);
        assert.equal(events.filter((e) => e === 'close').length, 1, `${last} ${withError}: ${events.join(' ')}`);
        assert.equal(events.at(-1), 'close', `${last} ${withError}: 'close' last (${events.join(' ')})`);
      } finally {
        close();
      }
    }
  }
});

test('end(data) after end() throws ERR_MUX_WRITE_AFTER_END, as write() does, instead of dropping data', async () => {
  const { client, close } = await lightPair();
  try {
    const channel = client.dial();
    channel.end(new TextEncoder().encode('first'));
    assert.throws(
      () => channel.end(new TextEncoder().encode('second')),
      (error: unknown) => (error as { code?: string }).code === 'ERR_MUX_WRITE_AFTER_END',
    );
    channel.end(); // without data: nothing to refuse
  } finally {
    close();
  }
});

test('200,000 one-byte writes queued behind a full window are framed in linear time once the peer reads, exactly', async () => {
  const { client, server, close } = await lightPair();
  try {
    const accepted = once(server, 'channel') as Promise<[LightChannel]>;
    const channel = client.dial();
    channel.write(new Uint8Array(256 * 1024)); // the whole window
    const [peer] = await accepted;
    peer.pause();
    const count = 200_000;
    for (let i = 0; i < count; i++) channel.write(new Uint8Array([i & 255]));
    await sleep(50);
    const received: Uint8Array[] = [];
    peer.on('data', (chunk: Uint8Array) => received.push(chunk));
    const started = performance.now();
    peer.resume();
    await until(() => received.reduce((n, c) => n + c.length, 0) === 256 * 1024 + count, 60_000, 'everything');
    const elapsed = performance.now() - started;
    const tail = Buffer.concat(received).subarray(256 * 1024);
    let inOrder = true;
    for (let i = 0; i < count; i++) if (tail[i] !== (i & 255)) inOrder = false;
    assert.ok(inOrder, 'every byte, in order');
    // A shift() per framed write copies the rest of the queue: 100,000 such writes took 5 s, 200,000 four times that.
    assert.ok(elapsed < 5_000, `framing took ${Math.round(elapsed)} ms: quadratic`);
  } finally {
    close();
  }
});

test('write(data, callback) and end(callback), as a Node stream takes them, throw TypeError instead of never calling the callback', async () => {
  const { client, server, close } = await lightPair();
  try {
    const channel = client.dial();
    const untyped = channel as unknown as {
      write(data: Uint8Array, callback: () => void): boolean;
      end(callback: () => void): unknown;
    };
    assert.throws(() => untyped.write(new Uint8Array([1]), () => {}), {
      name: 'TypeError',
      message: /take no callback/,
    });
    assert.throws(() => untyped.end(() => {}), { name: 'TypeError', message: /take no callback/ });
    assert.equal(channel.writableLength, 0, 'nothing was queued by the refused calls');
    channel.end(new Uint8Array([2])); // still usable
    const [peer] = (await once(server, 'channel')) as [LightChannel];
    const chunks: Uint8Array[] = [];
    peer.on('data', (chunk: Uint8Array) => chunks.push(chunk));
    await once(peer, 'end');
    assert.deepEqual([...Buffer.concat(chunks)], [2]);
  } finally {
    close();
  }
});

test('write() of empty things that are not Uint8Arrays says it takes a Uint8Array (not that the array was detached)', async () => {
  const { client, close } = await lightPair();
  try {
    const channel = client.dial();
    for (const value of [new ArrayBuffer(0), new DataView(new ArrayBuffer(0)), { byteLength: 0 }]) {
      assert.throws(() => channel.write(value as never), { name: 'TypeError', message: /takes a Uint8Array/ });
    }
    assert.equal(channel.write(new Uint8Array(0)), true);
  } finally {
    close();
  }
});

test("a light channel still uploading while it reads, whose peer replied, ended and dropped the connection, reads the whole reply, then 'end', then the error; a writer told to wait before hears 'drain'", async () => {
  const [a, b] = await tcpPair();
  const client = lightClient(a, { keepAliveInterval: 0 });
  const server = lightServer(b, { keepAliveInterval: 0 });
  try {
    const reply = pseudoRandomBytes(5000, 413);
    // The server never reads the upload (it answers it at once, as an HTTP server's 413 does).
    server.on('channel', (channel: LightChannel) => {
      channel.end(reply);
      // Once the upload's first window arrived and was read by the session (no unread bytes: a FIN, not a RST).
      channel.on('finish', () => setTimeout(() => b.destroy(), 50));
    });
    const channel = client.dial();
    // More than the server's window: the rest waits for credit that never comes.
    assert.equal(channel.write(new Uint8Array(600 * 1024)), false, 'the writer is told to wait');
    const drained = once(channel, 'drain');
    const failed = once(channel, 'error');
    const events: string[] = [];
    channel.on('end', () => events.push('end'));
    channel.on('close', () => events.push('close'));
    // A reader is there (a client reads the response as it uploads), held back for now: the reply waits unread.
    const chunks: Uint8Array[] = [];
    channel.on('data', (chunk) => chunks.push(chunk));
    channel.pause();
    await until(() => client.state === 'closed', 5000, 'the session failed');
    assert.equal(channel.destroyed, false, 'kept to be read');
    await drained;
    channel.resume();
    await until(() => events.includes('end'), 2000, "'end'");
    assert.ok(Buffer.concat(chunks).equals(reply), 'the whole reply, in order');
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

test('a light upload that never reads its channel fails when its session does, though the peer replied and ended: not kept for a read that never comes', async () => {
  const [a, b] = await tcpPair();
  const client = lightClient(a, { keepAliveInterval: 0 });
  const server = lightServer(b, { keepAliveInterval: 0 });
  try {
    server.on('channel', (channel: LightChannel) => {
      channel.end(new TextEncoder().encode('413 too large'));
      channel.on('finish', () => setTimeout(() => b.destroy(), 50));
    });
    const channel = client.dial();
    channel.on('error', () => {});
    const closed = new Promise<void>((resolve) => channel.on('close', () => resolve())); // (not `once`: it rejects at 'error')
    let sent = 0;
    const pump = (): void => {
      while (sent < 64 && !channel.destroyed) {
        sent++;
        if (!channel.write(new Uint8Array(32 * 1024))) return;
      }
      if (sent === 64 && !channel.destroyed) channel.end();
    };
    channel.on('drain', pump);
    pump();
    await within(closed, 5000, "the channel's close");
    assert.equal((channel.failure as MuxError | undefined)?.code, 'ERR_MUX_TRANSPORT_CLOSED');
  } finally {
    client.destroy();
    server.destroy();
    a.destroy();
    b.destroy();
  }
});

test("a light session's dial() refuses allowHalfOpen (a Node Session's option) with TypeError, opening nothing, rather than ignore it", async () => {
  const { client, close } = await lightPair();
  try {
    for (const allowHalfOpen of [false, true]) {
      assert.throws(() => client.dial({ allowHalfOpen } as Parameters<typeof client.dial>[0]), {
        name: 'TypeError',
        message: /allowHalfOpen is an option of a Node Session's dial\(\)/,
      });
    }
    assert.equal(client.channelCount, 0);
    assert.equal(client.dial({ openTimeout: 1000 }).id, 1, 'other options still open a channel');
  } finally {
    close();
  }
});
