/**
 * The rule of a graceful close(), as the README states it: it waits until every open channel has ended in
 * both directions (this side's end() and the peer's), or until the timeout. A channel the application read
 * to its end but never ended itself holds close() until it does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { text } from 'node:stream/consumers';
import { DEFAULT_OPTIONS } from '../src/index.js';
import { readAll, sessionPair } from './helpers.js';

test('close() resolves at once when every channel has ended both ways', async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    const accepted = pair.server.accept();
    const channel = pair.client.dial();
    channel.end('ping');
    const inbound = await accepted;
    assert.equal((await readAll(inbound)).toString(), 'ping'); // (text() would destroy it at the end)
    inbound.end('pong');
    assert.equal(await text(channel), 'pong');
    const started = Date.now();
    await pair.client.close();
    await pair.client.closed;
    assert.ok(Date.now() - started < DEFAULT_OPTIONS.closeTimeout / 2, 'close() did not wait for its timeout');
  } finally {
    await pair.close();
  }
});

test('close() waits for a channel read to its end but not ended here, and resolves once it is ended', async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    const accepted = pair.server.accept();
    const channel = pair.client.dial();
    channel.end('request');
    const inbound = await accepted;
    assert.equal((await readAll(inbound)).toString(), 'request'); // the server read everything: the peer's half is over
    let settled = false;
    const closing = pair.server.close().then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(settled, false, 'close() waits: the server has not ended its half');
    assert.equal(pair.server.state, 'closing');
    assert.equal(pair.server.channelCount, 1);
    inbound.end('response'); // the server's half ends: nothing holds close() any more
    assert.equal(await text(channel), 'response', 'the channel finished normally during close()');
    await closing;
    await pair.server.closed; // a clean close, not ERR_MUX_CLOSE_TIMEOUT
  } finally {
    await pair.close();
  }
});
