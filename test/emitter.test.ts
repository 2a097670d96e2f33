import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once, on } from 'node:events';
import { Emitter } from '../src/core/emitter.js';
import { sessionPair } from './helpers.js';

interface Events {
  tick(n: number): void;
  done(): void;
}

class Ticker extends Emitter<Events> {}

test("the core emitter has Node's EventEmitter methods: order, once, listeners, names", () => {
  const ticker = new Ticker();
  const calls: string[] = [];
  const first = (n: number): void => void calls.push(`first ${n}`);
  const last = (n: number): void => void calls.push(`last ${n}`);
  const onlyOnce = (n: number): void => void calls.push(`once ${n}`);
  ticker.on('tick', last);
  ticker.prependListener('tick', first);
  ticker.prependOnceListener('tick', onlyOnce);
  assert.deepEqual(ticker.listeners('tick'), [onlyOnce, first, last], 'listeners() shows a once listener itself');
  assert.notEqual(ticker.rawListeners('tick')[0], onlyOnce, 'rawListeners() shows its wrapper');
  assert.deepEqual(ticker.eventNames(), ['tick']);
  assert.equal(ticker.emit('tick', 1), true);
  assert.equal(ticker.emit('tick', 2), true);
  assert.deepEqual(calls, ['once 1', 'first 1', 'last 1', 'first 2', 'last 2']);
  ticker.off('tick', first).removeListener('tick', last);
  assert.equal(ticker.listenerCount('tick'), 0);
  assert.deepEqual(ticker.eventNames(), []);
  assert.equal(ticker.emit('done'), false, 'no listener');
  assert.equal(ticker.getMaxListeners(), 10);
  assert.equal(ticker.setMaxListeners(1).getMaxListeners(), 1);
  ticker.on('done', () => {}).on('done', () => {}); // beyond the "maximum": no warning, both kept
  assert.equal(ticker.listenerCount('done'), 2);
});

test('a once listener removed before it fires is not called', () => {
  const ticker = new Ticker();
  let called = false;
  const listener = (): void => void (called = true);
  ticker.once('done', listener);
  ticker.off('done', listener);
  ticker.emit('done');
  assert.equal(called, false);
});

test('listeners are called with the emitter as `this`, as Node calls them (once listeners too)', () => {
  const ticker = new Ticker();
  const seen: unknown[] = [];
  ticker.on('tick', function (this: unknown) {
    seen.push(this);
  });
  ticker.once('done', function (this: unknown) {
    seen.push(this);
  });
  ticker.emit('tick', 1);
  ticker.emit('done');
  assert.equal(seen.length, 2);
  assert.equal(seen[0], ticker);
  assert.equal(seen[1], ticker);
});

test("events.once() and events.on() take a session (type-checked: this file compiles with Node's types)", async () => {
  const pair = await sessionPair();
  try {
    const accepted = once(pair.server, 'channel');
    const channel = pair.client.dial();
    channel.write('x');
    const [inbound] = (await accepted) as [typeof channel];
    assert.equal(inbound.id, channel.id);
    for (const end of [channel, inbound]) end.resume().end(); // both halves closed: close() has nothing to wait for
    const closed = once(pair.server, 'close');
    const iterator = on(pair.client, 'close');
    await pair.client.close();
    await closed;
    const { value } = (await iterator.next()) as { value: unknown };
    assert.deepEqual(value, [undefined], 'a clean close carries no error');
    await iterator.return?.();
    assert.equal(pair.client.listenerCount('close'), 0, 'events.on() removed its listener');
  } finally {
    await pair.close();
  }
});
