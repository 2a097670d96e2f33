/**
 * Reading a `Channel` with `for await` and `stream/consumers`: reading to the end leaves it open for writing (a
 * request read whole, then its reply), as an http2 stream does; leaving the loop early resets it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { json, text } from 'node:stream/consumers';
import { ChannelResetError, type Channel } from '../src/index.js';
import { sessionPair, within } from './helpers.js';

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

test('a for await loop left early (break, or an exception) resets the channel, as a Node stream is destroyed', async () => {
  for (const how of ['break', 'throw'] as const) {
    const pair = await sessionPair();
    try {
      const accepted = once(pair.server, 'channel') as Promise<[Channel]>;
      const client = pair.client.dial();
      client.write('first');
      const [server] = await accepted;
      const failed = new Promise<unknown>((resolve) => client.once('error', resolve));
      let thrown: unknown;
      try {
        for await (const chunk of server) {
          assert.equal((chunk as Buffer).toString(), 'first');
          if (how === 'throw') throw new Error('the application gave up');
          break;
        }
      } catch (error) {
        thrown = error;
      }
      assert.equal(thrown === undefined, how === 'break');
      assert.equal(server.destroyed, true, how);
      const error = await within(failed, 5_000, `the peer's reset (${how})`);
      assert.ok(error instanceof ChannelResetError, `${how}: ${String(error)}`);
      assert.equal(error.code, 'ERR_MUX_CHANNEL_RESET');
    } finally {
      await pair.close();
    }
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
