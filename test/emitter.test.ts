import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once, on } from 'node:events';
import { NodeEmitter } from '../src/core/emitter.js';
import { sessionPair } from './helpers.js';
import { LightChannel, LightSession } from '../src/core/light-channel.js';
import { Session } from '../src/node/session.js';
import { WebSession } from '../src/web/session.js';

interface Events {
  tick(n: number): void;
  done(): void;
}

class Ticker extends NodeEmitter<Events> {}

test("the core's NodeEmitter has Node's EventEmitter methods: order, once, listeners, names", () => {
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

test("Node sessions, light sessions and light channels keep all of Node's EventEmitter methods; a WebSession has the core ones", () => {
  const nodeMethods = [
    'addListener',
    'prependListener',
    'prependOnceListener',
    'removeAllListeners',
    'listeners',
    'rawListeners',
    'eventNames',
    'setMaxListeners',
    'getMaxListeners',
  ] as const;
  const coreMethods = ['on', 'once', 'off', 'removeListener', 'emit', 'listenerCount'] as const;
  for (const [name, prototype] of [
    ['Session', Session.prototype],
    ['LightSession', LightSession.prototype],
    ['LightChannel', LightChannel.prototype],
  ] as const) {
    for (const method of [...coreMethods, ...nodeMethods]) {
      assert.equal(typeof (prototype as unknown as Record<string, unknown>)[method], 'function', `${name}.${method}`);
    }
  }
  for (const method of coreMethods) {
    assert.equal(
      typeof (WebSession.prototype as unknown as Record<string, unknown>)[method],
      'function',
      `WebSession.${method}`,
    );
  }
});

test('a Node session given the copied methods uses them on its own listener table (prepend, listeners, max listeners)', async () => {
  const pair = await sessionPair();
  try {
    const order: string[] = [];
    const second = (): void => void order.push('second');
    const first = (): void => void order.push('first');
    pair.client.on('goaway', second).prependListener('goaway', first);
    assert.deepEqual(pair.client.listeners('goaway'), [first, second]);
    assert.ok(pair.client.eventNames().includes('goaway'));
    assert.equal(pair.client.getMaxListeners(), 10);
    assert.equal(pair.client.setMaxListeners(3).getMaxListeners(), 3);
    pair.client.emit('goaway', 0);
    assert.deepEqual(order, ['first', 'second']);
    pair.client.removeAllListeners('goaway');
    assert.equal(pair.client.listenerCount('goaway'), 0);
  } finally {
    await pair.close();
  }
});
