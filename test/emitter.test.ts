import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once, on } from 'node:events';
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

test('a once listener reached again by an emit from an earlier listener runs once, as with Node', () => {
  for (const emitter of [new Ticker(), new EventEmitter()] as const) {
    const calls: number[] = [];
    const on = emitter.on.bind(emitter) as (event: 'tick', listener: (n: number) => void) => void;
    const once = emitter.once.bind(emitter) as (event: 'tick', listener: (n: number) => void) => void;
    const emit = emitter.emit.bind(emitter) as (event: 'tick', n: number) => void;
    on('tick', (n) => {
      if (n === 1) emit('tick', 2);
    });
    once('tick', (n) => calls.push(n));
    emit('tick', 1);
    assert.deepEqual(calls, [2], emitter.constructor.name);
  }
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

/** A `Ticker` that shows what its table holds for an event: the listener itself, an array, or undefined. */
class TableTicker extends NodeEmitter<Events> {
  entry(event: keyof Events): unknown {
    return this.listenerTable?.[event];
  }
}

test("on(), prependListener() and off() change an event's listener array in place: n listeners cost no copies of it, and off() finds the newest listener first", () => {
  // Counts, not times: copies of the array (each a new array object in the table) and the listeners off() looks
  // at before it finds the one to remove (each non-matching one is asked for the listener a once wrapper holds,
  // read here through a counting getter). Copying on every change, or searching from the oldest, is n² work.
  const n = 1000;
  let looks = 0;
  const listeners = Array.from({ length: n }, () => {
    const listener = (): void => {};
    Object.defineProperty(listener, 'listener', {
      get: () => {
        looks++;
        return undefined;
      },
    });
    return listener;
  });
  const ticker = new TableTicker();
  const arrays = new Set<unknown>();
  ticker.on('tick', listeners[0]!);
  assert.equal(ticker.entry('tick'), listeners[0], 'a single listener is kept as itself');
  for (const listener of listeners.slice(1, n / 2)) {
    ticker.on('tick', listener);
    arrays.add(ticker.entry('tick'));
  }
  for (const listener of listeners.slice(n / 2).reverse()) {
    ticker.prependListener('tick', listener);
    arrays.add(ticker.entry('tick'));
  }
  assert.equal(arrays.size, 1, 'adding made one array, never a copy');
  assert.equal(ticker.listenerCount('tick'), n);
  // From the end: those added with on(), newest first (each the last listener), then the prepended ones from
  // the last of them (each just before the first listener, which is now the last).
  for (const listener of [...listeners.slice(1, n / 2).reverse(), ...listeners.slice(n / 2).reverse()]) {
    ticker.off('tick', listener);
    if (ticker.listenerCount('tick') > 1) arrays.add(ticker.entry('tick'));
  }
  assert.equal(arrays.size, 1, 'removing copied nothing either');
  assert.equal(looks, n / 2, 'each off() looked at no more listeners than follow its own (none, then one)');
  assert.equal(ticker.entry('tick'), listeners[0], 'one listener left: kept as itself again');
});

test('while an emit goes through the listeners of an event, changing them copies its array once; other events are changed in place', () => {
  const ticker = new TableTicker();
  const added = Array.from({ length: 100 }, () => (): void => {});
  ticker.on('done', () => {}).on('done', () => {});
  const doneArray = ticker.entry('done');
  const seen = new Set<unknown>();
  const doneArrays = new Set<unknown>();
  let first = true;
  ticker.on('tick', () => {
    if (!first) return;
    first = false;
    for (const listener of added) {
      ticker.on('tick', listener);
      seen.add(ticker.entry('tick'));
      ticker.on('done', listener);
      doneArrays.add(ticker.entry('done')); // (asserted after: a listener's throw would only be reported)
    }
  });
  ticker.on('tick', () => {});
  const tickArray = ticker.entry('tick');
  ticker.emit('tick', 1);
  assert.deepEqual([...doneArrays], [doneArray], "'done' is not being emitted: its array is changed in place");
  assert.equal(seen.size, 1, 'one copy of the array being emitted, then changed in place');
  assert.notEqual([...seen][0], tickArray, 'the emit kept its own array');
  assert.equal(ticker.listenerCount('tick'), 102);
  ticker.emit('tick', 2); // not emitting it now: changes go in place again
  const after = ticker.entry('tick');
  ticker.off('tick', added[50]!);
  assert.equal(ticker.entry('tick'), after);
});

/** What Node's `EventEmitter` and the core's emitter share, for running one script on both. */
interface Scriptable {
  on(event: 'tick', listener: (n: number) => void): unknown;
  once(event: 'tick', listener: (n: number) => void): unknown;
  off(event: 'tick', listener: (n: number) => void): unknown;
  prependListener(event: 'tick', listener: (n: number) => void): unknown;
  emit(event: 'tick', n: number): boolean;
  listeners(event: 'tick'): unknown[];
}

/** A script of adds, removes and emits (listeners that change the list while it is emitted); returns its log. */
function runScript(emitter: Scriptable): string[] {
  const log: string[] = [];
  const named = (name: string) => (n: number) => void log.push(`${name}${n}`);
  const a = named('a');
  const b = named('b');
  const c = named('c');
  const d = named('d');
  const late = named('late');
  const early = named('early');
  const count = (): void => void log.push(`count ${emitter.listeners('tick').length}`);
  // Duplicates: off() removes the most recently added.
  emitter.on('tick', a);
  emitter.once('tick', a);
  emitter.off('tick', a); // the once listener goes
  emitter.emit('tick', 1);
  emitter.emit('tick', 2);
  emitter.once('tick', b);
  emitter.on('tick', b);
  emitter.off('tick', b); // the plain one goes, the once one stays
  emitter.emit('tick', 3);
  emitter.emit('tick', 4);
  count();
  emitter.off('tick', a);
  // Changes during an emit: not seen by that emit (a removed listener is still called), seen by the next.
  let nested = false;
  const changer = (n: number): void => {
    log.push(`changer${n}`);
    if (n !== 5) return;
    emitter.on('tick', late);
    emitter.prependListener('tick', early);
    emitter.off('tick', c);
    emitter.off('tick', changer);
    if (!nested) {
      nested = true;
      emitter.emit('tick', 50); // a nested emit sees the changes so far
    }
    emitter.once('tick', d);
  };
  emitter.on('tick', changer);
  emitter.on('tick', c);
  emitter.on('tick', c);
  emitter.emit('tick', 5);
  emitter.emit('tick', 6);
  emitter.emit('tick', 7);
  count();
  return log;
}

test("listeners added twice, and changed during an emit, behave as with Node's EventEmitter (the same script, the same calls)", () => {
  const node = runScript(new EventEmitter());
  assert.deepEqual(runScript(new Ticker()), node);
  assert.deepEqual(node.slice(0, 6), ['a1', 'a2', 'a3', 'b3', 'a4', 'count 1'], 'Node removes the newest duplicate');
});
