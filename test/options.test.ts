import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DEFAULT_OPTIONS, resolveOptions } from '../src/core/options.js';
import { MemoryBudget, sharedMemoryBudget } from '../src/core/budget.js';

test('defaults apply and are documented values', () => {
  const o = resolveOptions(undefined);
  assert.deepEqual(o, DEFAULT_OPTIONS);
  assert.equal(o.initialWindow, 262144);
  assert.equal(o.maxWindow, 64 * 1024 * 1024);
  assert.equal(o.maxSessionBuffered, 128 * 1024 * 1024);
  assert.equal(o.acceptBacklog, 256);
  assert.equal(o.memoryBudget, sharedMemoryBudget);
  assert.equal(sharedMemoryBudget.limit, 256 * 1024 * 1024);
});

test("the API reference states every option's default, as DEFAULT_OPTIONS has it", () => {
  const source = readFileSync(new URL('../../src/core/options.ts', import.meta.url), 'utf8');
  const body = source.slice(source.indexOf('export interface SessionOptions {'));
  const stated = new Map(
    [...body.matchAll(/@defaultValue ([^\n]*)\n(?:\s*\*[^\n]*\n)*?\s*\*\/\n\s*(\w+)\?:/g)].map((m) => [m[2]!, m[1]!]),
  );
  assert.deepEqual([...stated.keys()].sort(), Object.keys(DEFAULT_OPTIONS).sort(), 'each option has a @defaultValue');
  for (const [key, value] of Object.entries(DEFAULT_OPTIONS)) {
    const text = stated.get(key)!;
    if (typeof value === 'number') assert.equal(Number(/^[\d,]+/.exec(text)?.[0].replaceAll(',', '')), value, key);
    else if (value === null) assert.equal(text, '`null`', key);
    else if (typeof value === 'string') assert.equal(text, `\`'${value}'\``, key);
    else assert.equal(text, '{@link sharedMemoryBudget}', key);
  }
});

test('memoryBudget takes a MemoryBudget or null, and nothing else', () => {
  const budget = new MemoryBudget(1 << 20);
  assert.equal(resolveOptions({ memoryBudget: budget }).memoryBudget, budget);
  assert.equal(resolveOptions({ memoryBudget: null }).memoryBudget, null);
  assert.throws(() => resolveOptions({ memoryBudget: { limit: 5 } as never }), {
    name: 'TypeError',
    message: /memoryBudget/,
  });
  assert.throws(() => resolveOptions({ memoryBudget: 1 << 20 } as never), {
    name: 'TypeError',
    message: /memoryBudget/,
  });
  assert.throws(() => new MemoryBudget(-1), RangeError);
  assert.throws(() => new MemoryBudget(1.5), RangeError);
});

test('a bad value throws TypeError or RangeError naming the option', () => {
  assert.throws(() => resolveOptions({ maxStreams: 'many' as unknown as number }), {
    name: 'TypeError',
    message: /maxStreams/,
  });
  assert.throws(() => resolveOptions({ maxStreams: 0 }), { name: 'RangeError', message: /maxStreams/ });
  assert.throws(() => resolveOptions({ acceptBacklog: 1.5 }), { name: 'RangeError', message: /acceptBacklog/ });
  assert.throws(() => resolveOptions({ initialWindow: 1000 }), { name: 'RangeError', message: /initialWindow/ });
  assert.throws(() => resolveOptions({ maxWindow: 300_000, initialWindow: 400_000 }), {
    name: 'RangeError',
    message: /maxWindow/,
  });
  assert.throws(() => resolveOptions({ maxFrameSize: 100 }), { name: 'RangeError', message: /maxFrameSize/ });
  assert.throws(() => resolveOptions({ keepAliveTimeout: Number.NaN }), {
    name: 'TypeError',
    message: /keepAliveTimeout/,
  });
  assert.throws(() => resolveOptions({ maxStream: 5 } as never), {
    name: 'TypeError',
    message: /unknown option maxStream/,
  });
  assert.throws(() => resolveOptions(5 as never), { name: 'TypeError' });
});

test('valid values are kept', () => {
  const o = resolveOptions({ maxFrameSize: 1024, keepAliveInterval: 0, maxWindow: 1 << 20 });
  assert.equal(o.maxFrameSize, 1024);
  assert.equal(o.keepAliveInterval, 0);
  assert.equal(o.maxWindow, 1 << 20);
});

test("a session's options are frozen: they say what it runs with, and a write throws instead of half taking effect", async () => {
  const { sessionPair } = await import('./helpers.js');
  const pair = await sessionPair({ client: { maxStreams: 5, maxFrameSize: 4096 } });
  try {
    const { options } = pair.client;
    assert.ok(Object.isFrozen(options));
    assert.equal(options.maxStreams, 5);
    // (maxStreams was read at each dial, maxFrameSize once: a write took effect for one and not the other.)
    assert.throws(() => {
      (options as { maxStreams: number }).maxStreams = 1;
    }, TypeError);
    assert.throws(() => {
      (options as { protocol: string }).protocol = 'multiplex';
    }, TypeError);
    assert.equal(options.maxStreams, 5);
    assert.equal(options.protocol, 'yamux');
  } finally {
    await pair.close();
  }
});

test("README's ranges of the numeric options are the ones enforced: each end taken, one past it refused", () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const paragraph = /^Numeric options are whole numbers within these ranges[^:]*:([\s\S]*?)\. `NaN`/m.exec(readme)?.[1];
  assert.ok(paragraph !== undefined, "README's paragraph of ranges is missing");
  const number = (text: string): number => {
    const power = /^2\^(\d+)(−1)?$/.exec(text);
    if (power !== null) return 2 ** Number(power[1]) - (power[2] === undefined ? 0 : 1);
    return Number(text.replaceAll(',', ''));
  };
  const ranges = new Map<string, [number, number]>();
  for (const clause of paragraph.replaceAll('\n', ' ').split(';')) {
    const bounds = /([\d,^−]+) to ([\d,^−]+)( ms)?\s*$/.exec(clause.trim());
    assert.ok(bounds !== null, `no range in "${clause}"`);
    for (const [, name] of clause.matchAll(/`(\w+)`/g)) ranges.set(name!, [number(bounds[1]!), number(bounds[2]!)]);
  }
  const numeric = Object.keys(DEFAULT_OPTIONS).filter(
    (key) => typeof DEFAULT_OPTIONS[key as 'maxStreams'] === 'number',
  );
  assert.deepEqual([...ranges.keys()].sort(), numeric.sort());
  for (const [key, [min, max]] of ranges) {
    assert.equal(resolveOptions({ [key]: min })[key as 'maxStreams'], min, key);
    // (The one rule between options: maxWindow at least initialWindow.)
    const room = key === 'initialWindow' ? { maxWindow: max } : {};
    assert.equal(resolveOptions({ ...room, [key]: max })[key as 'maxStreams'], max, key);
    assert.throws(() => resolveOptions({ [key]: min - 1 }), RangeError, `${key} ${min - 1}`);
    assert.throws(() => resolveOptions({ [key]: max + 1 }), RangeError, `${key} ${max + 1}`);
    assert.throws(() => resolveOptions({ [key]: min + 0.5 }), RangeError, `${key} ${min + 0.5}`);
    assert.throws(() => resolveOptions({ [key]: Infinity }), RangeError, `${key} Infinity`);
    assert.throws(() => resolveOptions({ [key]: NaN }), TypeError, `${key} NaN`);
  }
  assert.throws(() => resolveOptions({ initialWindow: 1 << 20, maxWindow: (1 << 20) - 1 }), RangeError);
});
