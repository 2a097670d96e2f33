/**
 * Reading a `Channel` with `for await` and `stream/consumers`: reading to the end leaves it open for writing (a
 * request read whole, then its reply), as an http2 stream does; leaving the loop early resets it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { json, text } from 'node:stream/consumers';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChannelResetError, MemoryBudget, type Channel } from '../src/index.js';
import { sessionPair, until, within } from './helpers.js';

test('a request read whole with stream/consumers, then its reply: 200 channels answered, none reset', async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    pair.server.on('channel', (channel: Channel) => {
      void (async () => {
        const request = (await json(channel)) as { n: number };
        channel.end(JSON.stringify({ doubled: request.n * 2 }));
      })();
    });
    const replies = await within(
      Promise.all(
        Array.from({ length: 200 }, async (_, n) => {
          const channel = pair.client.dial();
          channel.end(JSON.stringify({ n }));
          return ((await json(channel)) as { doubled: number }).doubled;
        }),
      ),
      20_000,
      'the replies',
    );
    assert.deepEqual(
      replies,
      Array.from({ length: 200 }, (_, n) => n * 2),
    );
    // Every channel ended both ways: a graceful close has nothing to wait for.
    await within(pair.client.close(), 5_000, 'a graceful close');
    await pair.client.closed;
    assert.equal(pair.client.stats().resetsIn, 0);
    assert.equal(pair.server.stats().resetsIn, 0);
  } finally {
    await pair.close();
  }
});

test('for await read to the end, then written to and ended: the reply arrives, and the channel closes once both halves ended', async () => {
  const pair = await sessionPair();
  try {
    const accepted = once(pair.server, 'channel') as Promise<[Channel]>;
    const client = pair.client.dial();
    client.end('ping');
    const [server] = await accepted;
    let got = '';
    for await (const chunk of server) got += (chunk as Buffer).toString();
    assert.equal(got, 'ping');
    assert.equal(server.destroyed, false, 'still open for writing');
    const closed = once(server, 'close');
    server.end('pong');
    assert.equal(await within(text(client), 5_000, 'the reply'), 'pong');
    await within(closed, 5_000, "the server channel's close");
  } finally {
    await pair.close();
  }
});

/**
 * A server loop over a channel whose client sent `payload` (with its FIN when `end`), left on that first chunk by
 * `break` or an exception, after `pauseMs` in the body when given: what the loop threw, whether the server's
 * channel was destroyed, and the error the client then got.
 */
async function leaveOnFirstChunk(
  how: 'break' | 'throw',
  payload: string,
  { end = false, pauseMs = 0 } = {},
): Promise<{ thrown: unknown; destroyed: boolean; error: unknown }> {
  const pair = await sessionPair();
  try {
    const accepted = once(pair.server, 'channel') as Promise<[Channel]>;
    const client = pair.client.dial();
    if (end) client.end(payload);
    else client.write(payload);
    const [server] = await accepted;
    const failed = new Promise<unknown>((resolve) => client.once('error', resolve));
    let thrown: unknown;
    try {
      for await (const chunk of server) {
        assert.equal((chunk as Buffer).toString(), payload);
        if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
        if (how === 'throw') throw new Error('the application gave up');
        break;
      }
    } catch (error) {
      thrown = error;
    }
    const destroyed = server.destroyed;
    const error = await within(failed, 5_000, `the peer's reset (${how})`);
    return { thrown, destroyed, error };
  } finally {
    await pair.close();
  }
}

test('a for await loop left early (break, or an exception) resets the channel, as a Node stream is destroyed', async () => {
  for (const how of ['break', 'throw'] as const) {
    const { thrown, destroyed, error } = await leaveOnFirstChunk(how, 'first');
    assert.equal(thrown === undefined, how === 'break');
    assert.equal(destroyed, true, how);
    assert.ok(error instanceof ChannelResetError, `${how}: ${String(error)}`);
    assert.equal(error.code, 'ERR_MUX_CHANNEL_RESET');
  }
});

test('a channel whose writing had ended closes without a reset when a for await loop reads it to the end', async () => {
  const pair = await sessionPair();
  try {
    const accepted = once(pair.server, 'channel') as Promise<[Channel]>;
    const client = pair.client.dial();
    client.write('request');
    const [server] = await accepted;
    server.end('reply first');
    client.end();
    const closed = once(server, 'close');
    const chunks: Buffer[] = [];
    for await (const chunk of server) chunks.push(chunk as Buffer);
    assert.equal(Buffer.concat(chunks).toString(), 'request');
    await within(closed, 5_000, 'the close once both halves ended');
    assert.equal(await within(text(client), 5_000, 'the reply'), 'reply first');
    assert.equal(pair.client.stats().resetsIn, 0);
  } finally {
    await pair.close();
  }
});

test('a loop that throws or breaks on the last chunk, after an await, resets the channel though its end had come with that chunk', async () => {
  for (const how of ['break', 'throw'] as const) {
    // (the channel's 'end' comes during the pause)
    const { destroyed, error } = await leaveOnFirstChunk(how, 'the only chunk, with its FIN', {
      end: true,
      pauseMs: 30,
    });
    assert.equal(destroyed, true, how);
    assert.ok(error instanceof ChannelResetError, `${how}: ${String(error)}`);
  }
});

test('pipeline(channel, generator, channel): the reply the generator makes from the whole request arrives', async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    pair.server.on('channel', (channel: Channel) => {
      pipeline(
        channel,
        async function* (source: AsyncIterable<Buffer>) {
          let bytes = 0;
          for await (const chunk of source) bytes += chunk.length;
          yield Buffer.from(`got ${bytes} bytes`);
        },
        channel,
      ).catch(() => {});
    });
    const channel = pair.client.dial();
    channel.end(Buffer.alloc(100_000, 1));
    assert.equal(await within(text(channel), 10_000, 'the reply'), 'got 100000 bytes');
    assert.equal(pair.client.stats().resetsIn, 0);
  } finally {
    await pair.close();
  }
});

test("the peer's FIN gives a grown window's memory back at once, though the channel stays open for its reply", async () => {
  const budget = new MemoryBudget(1024 * 1024 * 1024);
  const pair = await sessionPair({ transport: 'tcp', server: { memoryBudget: budget } });
  try {
    const accepted = once(pair.server, 'channel') as Promise<[Channel]>;
    const client = pair.client.dial();
    const chunk = Buffer.alloc(64 * 1024, 7);
    const writing = (async () => {
      for (let i = 0; i < 256; i++) if (!client.write(chunk)) await once(client, 'drain'); // 16 MiB
      client.end();
    })();
    const [server] = await accepted;
    let windowWhileReading = 0;
    let reservedWhileReading = 0;
    for await (const _ of server) {
      windowWhileReading = Math.max(windowWhileReading, server.receiveWindow);
      reservedWhileReading = Math.max(reservedWhileReading, budget.reserved);
    }
    await writing;
    const initial = pair.server.options.initialWindow;
    assert.ok(windowWhileReading > initial, `the window grew while reading (${windowWhileReading} bytes)`);
    assert.equal(server.destroyed, false, 'open for its reply');
    assert.equal(server.receiveWindow, initial, "back to the initial window after the peer's FIN");
    assert.ok(reservedWhileReading > 0, 'the growth was reserved from the budget');
    assert.equal(budget.reserved, 0, "and given back at the peer's FIN");
  } finally {
    await pair.close();
  }
});

test("an iterator given up while its read waits (Readable.from's destroy) resets the channel, even when the peer's FIN ends that read first", async () => {
  const pair = await sessionPair();
  try {
    const accepted = once(pair.server, 'channel') as Promise<[Channel]>;
    const client = pair.client.dial();
    client.on('error', () => {});
    client.write('hello');
    const [server] = await accepted;
    await new Promise((resolve) => setTimeout(resolve, 30));
    server.read(); // nothing buffered when the wrapper starts: its first read waits
    const wrapper = Readable.from(server);
    wrapper.on('error', () => {});
    wrapper.resume();
    await new Promise((resolve) => setTimeout(resolve, 30));
    wrapper.destroy(); // its iterator's return(), which Node queues behind the waiting read
    await new Promise((resolve) => setTimeout(resolve, 30));
    client.end(); // the peer's FIN ends the waiting read: done, though the consumer had given up
    await until(() => server.destroyed, 5_000, 'the channel destroyed');
    await within(pair.server.close({ timeout: 5_000 }), 6_000, 'a graceful close with nothing held');
    await pair.server.closed;
  } finally {
    await pair.close();
  }
});
