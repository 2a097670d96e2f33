/**
 * Async context (`AsyncLocalStorage`, which APM tools such as OpenTelemetry use to tie work to a request)
 * through `Channel`s, as Node's sockets keep it: a write's callback, an `end()` callback and `'finish'` run in
 * the context of the call that wrote; a dialled channel's events in the context of its `dial()`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { once } from 'node:events';
import { type Channel, multiplexedClient, multiplexedServer } from '../src/index.js';
import { memoryPipe, tcpPair, within } from './helpers.js';

const requests = new AsyncLocalStorage<string>();

/** Records, for each channel's request id, the store each callback or listener saw. */
class Seen {
  readonly wrong: string[] = [];
  count = 0;
  check(id: string, what: string): void {
    this.count++;
    const store = requests.getStore();
    if (store !== id) this.wrong.push(`${id} ${what} saw ${String(store)}`);
  }
}

for (const over of ['memory', 'tcp'] as const) {
  test(`(${over}) each accepted channel's write and end() callbacks and 'finish' run in the context of its own handling, though the session writes them all in one turn`, async () => {
    const [a, b] = over === 'memory' ? memoryPipe() : await tcpPair();
    const client = multiplexedClient(a, { keepAliveInterval: 0 });
    const server = multiplexedServer(b, { keepAliveInterval: 0 });
    const seen = new Seen();
    const count = 30;
    let release!: () => void;
    const database = new Promise<void>((resolve) => (release = resolve)); // one answer for every request
    const handled: Promise<void>[] = [];
    server.on('channel', (channel: Channel) => {
      const id = `request ${channel.id}`;
      handled.push(
        requests.run(id, async () => {
          await once(channel, 'readable');
          channel.read();
          await database;
          const finished = once(channel, 'finish').then(() => seen.check(id, "'finish'"));
          await new Promise<void>((resolve) => {
            channel.write('reply', () => seen.check(id, 'write callback'));
            channel.end('.', () => {
              seen.check(id, 'end callback');
              resolve();
            });
          });
          await finished;
        }),
      );
    });
    try {
      const dialled = Array.from({ length: count }, () => client.dial());
      for (const channel of dialled) channel.end('request');
      await within(
        (async () => {
          while (handled.length < count) await new Promise((resolve) => setTimeout(resolve, 5));
        })(),
        5000,
        'every request',
      );
      release(); // every handler writes in the same turn
      await within(Promise.all(handled), 5000, 'every reply');
      assert.equal(seen.count, 3 * count);
      // Before: the write callbacks, end() callbacks and 'finish' of the channels written in one turn saw the
      // store of the request that wrote first.
      assert.deepEqual(seen.wrong, []);
    } finally {
      client.destroy();
      server.destroy();
    }
  });
}

test("a dialled channel's events run in the context of its dial(), not that of the request that made the session", async () => {
  const [a, b] = await tcpPair();
  const server = multiplexedServer(b, { keepAliveInterval: 0 });
  server.on('channel', (channel: Channel) => channel.pipe(channel)); // echo
  // Made lazily inside the first request, as a pool makes its connection.
  const client = requests.run('request 0', () => multiplexedClient(a, { keepAliveInterval: 0 }));
  const seen = new Seen();
  try {
    const calls = Array.from({ length: 10 }, (_, i) =>
      requests.run(`request ${i}`, async () => {
        const id = `request ${i}`;
        const channel = client.dial();
        channel.on('data', () => seen.check(id, "'data'"));
        const ended = once(channel, 'end').then(() => seen.check(id, "'end'"));
        const closed = once(channel, 'close').then(() => seen.check(id, "'close'"));
        channel.end(`call ${i}`);
        await Promise.all([ended, closed]);
      }),
    );
    await within(Promise.all(calls), 5000, 'every call');
    assert.ok(seen.count >= 30);
    // Before: calls 1 to 9 saw request 0's store in every event.
    assert.deepEqual(seen.wrong, []);
  } finally {
    client.destroy();
    server.destroy();
  }
});
